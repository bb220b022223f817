"""The exchange store in an S3-compatible object store, with a local read-through cache.

Production keeps the published versions in an object store (``GOVDATA_STORE_URL``, e.g.
``s3://govdata/exchange?endpoint=https://oss.intranet:9000&region=cn-sh-1``); the workspace's
``exchange/`` folder becomes a cache of it. The layout under the URL is the local store's:
``<resource>/v<NNNNNN>/{data.parquet, manifest.json, changes.*.parquet}``.

- **Nothing partial is visible.** A version's files are uploaded first and its manifest last;
  a version exists when its manifest object does. Single-object PUTs are atomic in S3, so a
  reader sees a whole version or none. Overwriting leftovers of an interrupted publish removes
  their manifest first. The catalog row is still the commit point (:func:`exchange.publishing.commit`).
- **The cache is only a cache.** Every read asks the store for the manifest (one small GET) and
  uses the cached folder only when its manifest is the same; otherwise it downloads the
  version's files into a hidden folder, checks the data file's sha256 against the manifest and
  renames the folder into place. Deleting the cache loses nothing.
- **Credentials never sit in the URL** (it is stored as each version's location): the AWS
  variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, optional ``AWS_SESSION_TOKEN``) or
  the AWS SDK's own chain (profile files, instance roles) provide them.

The client is Arrow's S3 filesystem (:class:`pyarrow.fs.S3FileSystem`): pyarrow is already how
every step writes Parquet, and its S3 support (the AWS SDK for C++) does multipart uploads,
retries and SigV4 signing for any S3-compatible server.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from pipelines.errors import GovdataError, SpecError, TerminalError, TransientError

if TYPE_CHECKING:
    from pyarrow.fs import S3FileSystem

    from exchange.store import LocalExchangeStore, StoredVersion

__all__ = ["STORE_URL_ENV", "ObjectExchangeStore", "StoreURL", "parse_store_url"]

STORE_URL_ENV = "GOVDATA_STORE_URL"
#: Query options of a store URL: what each one means.
OPTIONS = {
    "endpoint": "the server, http(s)://host:port (default: AWS itself)",
    "region": "the region the bucket is in (default us-east-1)",
    "addressing": "path (default: bucket in the path, what most intranet servers want) or virtual",
    "timeout": "seconds a request may take (default 60)",
}
_SECRETS = {"access_key", "secret_key", "session_token", "password", "secret", "token", "aws_secret_access_key"}
_CHUNK = 1 << 20
_HINT = f"e.g. {STORE_URL_ENV}=s3://govdata/exchange?endpoint=http://127.0.0.1:9000&region=us-east-1"


@dataclass(frozen=True)
class StoreURL:
    """A parsed ``GOVDATA_STORE_URL``."""

    bucket: str
    prefix: str
    endpoint: str | None = None
    region: str = "us-east-1"
    virtual: bool = False
    timeout: float = 60.0

    @property
    def canonical(self) -> str:
        """``s3://bucket/prefix``: the beginning of every version's location (no options, no secrets)."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, *parts: str) -> str:
        """The filesystem path (bucket/prefix/...) of ``parts``."""
        return "/".join(p for p in (self.bucket, self.prefix, *parts) if p)


def _bad(url: str, problem: str, hint: str = _HINT) -> SpecError:
    shown = url.split("?", 1)[0][:120]
    return SpecError(f"{STORE_URL_ENV}={shown}: {problem}", hint=hint)


def parse_store_url(url: str) -> StoreURL:
    """Parse and check a store URL; :class:`SpecError` names what is wrong and how to write it."""
    raw = url.strip()
    parts = urlsplit(raw)
    if parts.scheme != "s3":
        raise _bad(raw, f"the scheme must be s3:// (got {parts.scheme + '://' if parts.scheme else 'none'})")
    if parts.username or parts.password or "@" in parts.netloc:
        raise _bad(
            raw,
            "credentials do not belong in the URL (it is stored with every version)",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead",
        )
    bucket = parts.netloc
    # S3 bucket names: 3-63 characters, lower-case letters, digits, dots and hyphens.
    if (
        not (3 <= len(bucket) <= 63)
        or not all(c.islower() or c.isdigit() or c in ".-" for c in bucket)
        or not (bucket[0].isalnum() and bucket[-1].isalnum())
    ):
        raise _bad(
            raw,
            f"{bucket!r} is not a valid bucket name",
            "use 3-63 lower-case letters, digits, dots and hyphens, e.g. s3://govdata/exchange",
        )
    prefix = parts.path.strip("/")
    if "//" in prefix or any(seg in {".", ".."} for seg in prefix.split("/")) or any(ord(c) < 32 for c in prefix):
        raise _bad(
            raw,
            f"the prefix {prefix!r} has empty, '.' or '..' segments or control characters",
            "use a plain folder path after the bucket, e.g. s3://govdata/exchange",
        )
    if parts.fragment:
        raise _bad(raw, "a #fragment is not allowed")
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in _SECRETS:
            raise _bad(
                raw,
                f"option {name!r} would put a secret in the URL",
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead",
            )
        if name not in OPTIONS:
            known = "; ".join(f"{k}: {v}" for k, v in OPTIONS.items())
            raise _bad(raw, f"unknown option {name!r}", f"the options are {known}")
        if name in options:
            raise _bad(raw, f"option {name!r} is given twice", "give each option once")
        options[name] = value
    endpoint = options.get("endpoint") or None
    if endpoint is not None:
        ep = urlsplit(endpoint)
        if ep.scheme not in ("http", "https") or not ep.hostname or ep.path.strip("/") or ep.query:
            raise _bad(
                raw,
                f"endpoint {endpoint!r} is not http(s)://host[:port]",
                "give the server's address only, e.g. endpoint=https://oss.intranet:9000",
            )
        try:
            ep.port  # noqa: B018 - validates the port
        except ValueError:
            raise _bad(
                raw, f"endpoint {endpoint!r} has an invalid port", "a port is a number from 1 to 65535"
            ) from None
    addressing = options.get("addressing", "path")
    if addressing not in ("path", "virtual"):
        raise _bad(raw, f"addressing={addressing!r} is not path or virtual", "path (the default) or virtual")
    region = options.get("region", "us-east-1") or "us-east-1"
    if not all(c.isalnum() or c in "-_" for c in region):
        raise _bad(raw, f"region {region!r} is not a region name", "e.g. region=us-east-1")
    timeout = 60.0
    if "timeout" in options:
        try:
            timeout = float(options["timeout"])
        except ValueError:
            timeout = -1.0
        if not 1 <= timeout <= 3600:
            raise _bad(
                raw,
                f"timeout={options['timeout'][:20]!r} is not a number of seconds from 1 to 3600",
                "e.g. timeout=120",
            )
    return StoreURL(bucket, prefix, endpoint, region, addressing == "virtual", timeout)


def _filesystem(url: StoreURL) -> S3FileSystem:
    from pyarrow.fs import AwsStandardS3RetryStrategy, S3FileSystem

    kwargs: dict[str, Any] = {
        "region": url.region,
        "request_timeout": url.timeout,
        "connect_timeout": min(url.timeout, 10.0),
        "force_virtual_addressing": url.virtual,
        "retry_strategy": AwsStandardS3RetryStrategy(max_attempts=5),
        # A run must never create or delete buckets: a wrong name is an error, not a new bucket.
        "allow_bucket_creation": False,
        "allow_bucket_deletion": False,
    }
    if url.endpoint:
        ep = urlsplit(url.endpoint)
        kwargs["scheme"] = ep.scheme
        kwargs["endpoint_override"] = ep.netloc
    # Since 2025 the AWS SDKs send uploads as aws-chunked with a trailing CRC unless told otherwise,
    # which many S3-compatible servers refuse (Swift's s3api: 501 NotImplemented; older Ceph and
    # MinIO). Integrity does not depend on it: sizes are checked after each upload and the data
    # file's sha256 on every read. Set the variables to WHEN_SUPPORTED for servers that take it.
    for name in ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"):
        os.environ.setdefault(name, "WHEN_REQUIRED")
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if bool(key) != bool(secret):
        raise SpecError(
            "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set",
            hint=f"set both for the object store of {STORE_URL_ENV} (or neither, to use the AWS SDK's profiles)",
        )
    if key and secret:
        kwargs.update(access_key=key, secret_key=secret, session_token=os.environ.get("AWS_SESSION_TOKEN") or None)
    return S3FileSystem(**kwargs)


def _store_error(url: StoreURL, what: str, exc: OSError) -> GovdataError:
    """An OSError from the S3 client as govdata's error: transient when retrying may help."""
    text = str(exc)
    upper = text.upper()
    where = f"{url.canonical} ({url.endpoint or 'AWS'})"
    if (
        "ACCESS_DENIED" in upper
        or "ACCESSDENIED" in upper
        or "SIGNATURE" in upper
        or "INVALIDACCESSKEY" in upper
        or "FORBIDDEN" in upper
        or "403" in text
    ):
        return TerminalError(
            f"object store {where} refused to {what}: access denied ({text[:300]})",
            hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the key's rights on the bucket",
        )
    if "NO_SUCH_BUCKET" in upper or "NOSUCHBUCKET" in upper or "BUCKET DOES NOT EXIST" in upper:
        return TerminalError(
            f"object store {where}: bucket {url.bucket!r} does not exist ({what})",
            hint="create the bucket (govdata never creates buckets) or correct GOVDATA_STORE_URL",
        )
    return TransientError(
        f"object store {where} could not {what}: {text[:300]}",
        hint="check that the object store is reachable from this host; the step is retried",
    )


class ObjectExchangeStore:
    """The exchange store in an S3-compatible object store; ``root`` is the local cache (and lock folder)."""

    kind = "object"

    def __init__(self, url: StoreURL | str, cache: Path, filesystem: S3FileSystem | None = None) -> None:
        from exchange.store import LocalExchangeStore

        self.url = url if isinstance(url, StoreURL) else parse_store_url(url)
        self.root = cache
        self.cache: LocalExchangeStore = LocalExchangeStore(cache)
        self._fs = filesystem
        self._lock = threading.Lock()

    @property
    def fs(self) -> S3FileSystem:
        """The S3 client; the first use checks that the bucket is there (a listing of nothing proves nothing)."""
        with self._lock:
            if self._fs is None:
                fs = _filesystem(self.url)
                from pyarrow.fs import FileType

                try:
                    found = fs.get_file_info(self.url.bucket).type != FileType.NotFound
                except OSError as exc:
                    raise _store_error(self.url, f"look up bucket {self.url.bucket}", exc) from None
                if not found:
                    raise TerminalError(
                        f"object store {self.url.canonical} ({self.url.endpoint or 'AWS'}): bucket "
                        f"{self.url.bucket!r} does not exist",
                        hint="create the bucket (govdata never creates buckets) or correct " + STORE_URL_ENV,
                    )
                self._fs = fs
            return self._fs

    def describe(self) -> str:
        return f"the object store {self.url.canonical}" + (f" at {self.url.endpoint}" if self.url.endpoint else "")

    def location(self, resource: str, number: int) -> str:
        return f"{self.url.canonical}/{resource}/v{number:06d}"

    def owns(self, location: str) -> bool:
        return location.startswith(self.url.canonical + "/")

    def _key(self, resource: str, number: int, name: str | None = None) -> str:
        parts = [resource, f"v{number:06d}"] + ([name] if name else [])
        return self.url.key(*parts)

    # --- reading ---------------------------------------------------------------------------

    def _remote_manifest(self, resource: str, number: int) -> dict[str, Any] | None:
        from exchange.store import MANIFEST_FILE

        key = self._key(resource, number, MANIFEST_FILE)
        try:
            with self.fs.open_input_stream(key) as fh:
                raw = fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if "NOT_FOUND" in str(exc).upper() or "NOSUCHKEY" in str(exc).upper():
                return None
            raise _store_error(self.url, f"read {key}", exc) from None
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise TerminalError(
                f"{self.url.canonical}/{resource}/v{number:06d}/{MANIFEST_FILE}: not valid JSON ({exc})",
                hint="the stored manifest is damaged; republish the version",
            ) from None
        if not isinstance(manifest, dict):
            raise TerminalError(
                f"{self.url.canonical}/{resource}/v{number:06d}/{MANIFEST_FILE}: not a JSON object",
                hint="the stored manifest is damaged; republish the version",
            )
        return manifest

    def read(self, resource: str, number: int) -> StoredVersion | None:
        """The version with its files in the local cache (downloaded and checked when missing or stale)."""
        from exchange.store import StoredVersion

        manifest = self._remote_manifest(resource, number)
        if manifest is None:
            return None
        cached = self.cache.read(resource, number)
        if cached is None or cached.manifest != manifest or not cached.data_path.is_file():
            self._fetch(resource, number, manifest)
        return StoredVersion(
            resource, number, self.cache.version_dir(resource, number), manifest, self.location(resource, number)
        )

    def _fetch(self, resource: str, number: int, manifest: dict[str, Any]) -> None:
        from pyarrow.fs import FileSelector, FileType

        from exchange.store import DATA_FILE, MANIFEST_FILE

        prefix = self._key(resource, number)
        try:
            infos = self.fs.get_file_info(FileSelector(prefix, allow_not_found=True))
        except OSError as exc:
            raise _store_error(self.url, f"list {prefix}", exc) from None
        names = sorted(Path(i.path).name for i in infos if i.type == FileType.File)
        base = self.root / resource
        base.mkdir(parents=True, exist_ok=True)
        incoming = base / f".fetch-{uuid.uuid4().hex}"
        incoming.mkdir()
        try:
            digest = None
            for name in names:
                if name == MANIFEST_FILE:
                    continue
                digest = self._download(f"{prefix}/{name}", incoming / name, hashed=name == DATA_FILE) or digest
            expected = manifest.get("content_sha256")
            if DATA_FILE not in names:
                raise TerminalError(
                    f"{self.location(resource, number)}: the manifest is there but {DATA_FILE} is missing",
                    hint="the version is damaged in the object store; republish it",
                )
            if digest != expected:
                raise TerminalError(
                    f"{self.location(resource, number)}/{DATA_FILE}: sha256 {digest} differs from the manifest's "
                    f"{expected}",
                    hint="the stored data file was changed or damaged; republish the version",
                )
            (incoming / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
            target = self.cache.version_dir(resource, number)
            current = self.cache.read(resource, number)
            if current is not None and current.manifest == manifest and current.data_path.is_file():
                return  # another process filled it meanwhile: keep the folder its readers may have open
            if target.exists():
                shutil.rmtree(target)  # a stale copy
            try:
                incoming.rename(target)
            except OSError:  # another process put the same version in place meanwhile
                if self.cache.read(resource, number) is None:
                    raise
        finally:
            shutil.rmtree(incoming, ignore_errors=True)

    def _download(self, key: str, target: Path, *, hashed: bool) -> str | None:
        sha = hashlib.sha256() if hashed else None
        try:
            with self.fs.open_input_stream(key) as src, target.open("wb") as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    if sha is not None:
                        sha.update(chunk)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise TransientError(f"{key} vanished while it was read", hint="try again") from None
            raise _store_error(self.url, f"read {key}", exc) from None
        return sha.hexdigest() if sha is not None else None

    def versions(self, resource: str) -> list[int]:
        """Every version folder in the store, complete or not (an interrupted publish has no manifest)."""
        from pyarrow.fs import FileSelector, FileType

        try:
            infos = self.fs.get_file_info(FileSelector(self.url.key(resource), allow_not_found=True))
        except OSError as exc:
            raise _store_error(self.url, f"list {self.url.key(resource)}", exc) from None
        names = (Path(i.path).name for i in infos if i.type == FileType.Directory)
        return sorted(int(n[1:]) for n in names if n.startswith("v") and n[1:].isdigit())

    # --- writing ---------------------------------------------------------------------------

    def write(self, resource: str, number: int, data: Path, manifest: dict[str, Any]) -> StoredVersion:
        """Build the version in the cache (as the local store does) and upload it, manifest last."""
        from exchange.store import MANIFEST_FILE, StoredVersion

        existing = self.read(resource, number)
        if existing is not None and existing.manifest.get("content_sha256") == manifest.get("content_sha256"):
            data.unlink(missing_ok=True)
            return existing
        if number > 1:
            self.read(resource, number - 1)  # the change index needs the version before in the cache
        local = self.cache.write(resource, number, data, manifest)
        if existing is not None:  # leftovers of an interrupted publish with other content: hide them first
            self._delete(self._key(resource, number, MANIFEST_FILE))
        names = sorted(p.name for p in local.path.iterdir() if p.is_file() and p.name != MANIFEST_FILE)
        for name in [*names, MANIFEST_FILE]:
            self._upload(local.path / name, self._key(resource, number, name))
        return StoredVersion(resource, number, local.path, manifest, self.location(resource, number))

    def _upload(self, source: Path, key: str) -> None:
        size = source.stat().st_size
        try:
            with source.open("rb") as src, self.fs.open_output_stream(key) as out:
                while chunk := src.read(8 * _CHUNK):
                    out.write(chunk)
            stored = self.fs.get_file_info(key).size
        except OSError as exc:
            raise _store_error(self.url, f"write {key}", exc) from None
        if stored != size:
            raise TransientError(
                f"{self.url.canonical}: {key} holds {stored} bytes after the upload, not {size}",
                hint="the upload was cut; the publish is retried",
            )

    def _delete(self, key: str) -> None:
        try:
            self.fs.delete_file(key)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if "NOT_FOUND" not in str(exc).upper():
                raise _store_error(self.url, f"delete {key}", exc) from None

    def clear_incoming(self, resource: str) -> None:
        """Remove local leftovers of publishes and downloads that died half-way."""
        self.cache.clear_incoming(resource)
        base = self.root / resource
        if base.is_dir():
            for p in base.glob(".fetch-*"):
                shutil.rmtree(p, ignore_errors=True)

    def remove_uncommitted(self, resource: str, committed: set[int]) -> list[int]:
        """Delete versions no catalog row points at: the manifest first, so the version vanishes whole."""
        from pyarrow.fs import FileSelector, FileType

        from exchange.store import MANIFEST_FILE

        removed = []
        for number in self.versions(resource):
            if number in committed:
                continue
            self._delete(self._key(resource, number, MANIFEST_FILE))
            prefix = self._key(resource, number)
            try:
                infos = self.fs.get_file_info(FileSelector(prefix, allow_not_found=True))
            except OSError as exc:
                raise _store_error(self.url, f"list {prefix}", exc) from None
            for info in infos:
                if info.type == FileType.File:
                    self._delete(info.path)
            shutil.rmtree(self.cache.version_dir(resource, number), ignore_errors=True)
            removed.append(number)
        return removed
