"""Chunked, resumable uploads of versions to the exchange; nothing is visible before the commit.

A department's pipeline in remote mode (:mod:`exchange.publishing`) sends its candidate version
to ``govdata serve`` in four kinds of request (the routes are in :mod:`exchange.routes_uploads`):

``POST /uploads``                    declare it: entry, size, sha256, chunk size, the prepared
                                     manifest and the spec document. Answers the upload's id, the
                                     chunk size to use (the server may lower it) and the bytes
                                     ``received`` so far: starting the same content again (same
                                     entry, size and sha256, by the same department) while an
                                     upload of it is open answers that upload, so a client that
                                     crashed resumes without remembering anything.
``PUT /uploads/{id}/chunks/{offset}`` one chunk (``application/octet-stream``), at most the chunk
                                     size. ``offset`` must be ``received``; a chunk received before
                                     (same offset, same bytes) is acknowledged again; a gap, an
                                     overlap or different bytes at a received offset is 409 and
                                     names the expected offset.
``GET /uploads/{id}``                how far it got (resume after a dropped connection).
``POST /uploads/{id}/commit``        verify the assembled file (size, sha256, Parquet footer: row
                                     count and columns) and commit it through
                                     :func:`exchange.publishing.commit`, the same function the
                                     local publish step uses. A second commit answers the first
                                     one's result. ``DELETE /uploads/{id}`` aborts.

**Nothing partial is visible.** Chunks are written to ``<workspace>/uploads/<id>.part``, outside
the exchange store; the catalog, the store and the CKAN API learn of a version only when the
commit renames the verified file into the store and writes the catalog row. A file whose size
or sha256 differs from the declaration is refused at commit (status ``refused``, the part
deleted, nothing published).

**Order and durability.** A chunk is written at its offset and fsynced before ``received``
moves; an exclusive ``flock`` on the part file serialises the writers of one upload (threads and
processes of the service on its host), so two copies of a chunk sent at once cannot interleave.

**Who.** The scope ``exchange:publish``; a department's users upload to their own department's
entries only (the spec's ``department.uscc`` must be the caller's, and an entry the exchange
already has must belong to that department). The city admin (市级管理员) may publish for any
department — the city big-data centre loads data for departments without a pipeline of their
own — but cannot move an entry to another department; every upload and commit is in the audit
log under the caller's id. Only the department (or the city admin) sees an upload.

**Limits** (environment of ``govdata serve``): ``GOVDATA_UPLOAD_MAX_BYTES`` (largest upload,
default 20 GiB), ``GOVDATA_UPLOAD_MAX_CHUNK`` (largest chunk, default 64 MiB; the request body
is cut off there), ``GOVDATA_UPLOAD_TTL_HOURS`` (an open upload without activity for this long
expires, default 24), ``GOVDATA_UPLOAD_MAX_OPEN`` (open uploads per department, default 8).
Expired uploads are cleared when a new upload starts and by ``govdata exchange uploads --clean``.

**Audit.** ``upload.start``, ``upload.commit``, ``upload.abort``, ``upload.refuse``,
``upload.expire``; the commit also writes ``version.publish`` (:mod:`exchange.publishing`).
The ``uploads`` row keeps ``manifest`` as ``{"manifest": …, "spec": …, "result": …}``: the
prepared version, the spec document and, once committed, the commit's answer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.access import Role
from catalog.models import Entry, utcnow
from catalog.store import CatalogStore
from exchange import audit, publishing
from exchange.errors import Conflict, Forbidden, NotFound
from exchange.identity import Principal
from exchange.models import Upload
from pipelines.errors import SpecError, TerminalError, TransientError
from pipelines.workspace import Workspace

__all__ = [
    "ID_PATTERN",
    "MIN_CHUNK",
    "Limits",
    "TooLarge",
    "abort",
    "clean",
    "commit",
    "info",
    "list_uploads",
    "part_path",
    "start",
    "status",
    "write_chunk",
]

#: An upload id: 32 lower-case hex digits (a uuid4), the only form ever joined to a path.
ID_PATTERN = r"^[0-9a-f]{32}$"
_ID = re.compile(ID_PATTERN)
#: The smallest chunk size a client may ask for.
MIN_CHUNK = 1024
#: The chunk size offered when the client does not ask for one.
DEFAULT_CHUNK = 8 * 1024 * 1024
#: Statuses: ``open`` (receiving), ``committed``, ``aborted``, ``refused`` (failed verification), ``expired``.
OPEN = "open"
SYSTEM_ACTOR = "govdata"


class TooLarge(TerminalError):
    """A body, chunk or upload over a limit (HTTP 413)."""


@dataclass(frozen=True)
class Limits:
    """The service's upload limits (see the module docstring for the variables)."""

    max_bytes: int = 20 * 1024**3
    max_chunk: int = 64 * 1024**2
    ttl: dt.timedelta = dt.timedelta(hours=24)
    max_open: int = 8

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        env = os.environ if environ is None else environ
        default = cls()

        def number(name: str, fallback: float, low: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return fallback
            try:
                value = float(raw)
            except ValueError:
                value = float("nan")
            if not value >= low or value == float("inf"):
                raise SpecError(
                    f"the exchange service is misconfigured: {name}={raw!r} is not a number of at least {low:g}",
                    hint=f"the platform admin fixes {name} in the environment of `govdata serve`",
                )
            return value

        limits = cls(
            max_bytes=int(number("GOVDATA_UPLOAD_MAX_BYTES", default.max_bytes, 1)),
            max_chunk=int(number("GOVDATA_UPLOAD_MAX_CHUNK", default.max_chunk, MIN_CHUNK)),
            ttl=dt.timedelta(hours=number("GOVDATA_UPLOAD_TTL_HOURS", default.ttl.total_seconds() / 3600, 0.001)),
            max_open=int(number("GOVDATA_UPLOAD_MAX_OPEN", default.max_open, 1)),
        )
        return limits


def uploads_dir(workspace: Workspace) -> Path:
    """Where parts are kept: beside the exchange store, never inside it."""
    return workspace.root / "uploads"


def part_path(workspace: Workspace, upload_id: str) -> Path:
    """The part file of upload ``upload_id`` (an id of any other form is refused before any path is made)."""
    if not _ID.fullmatch(upload_id):
        raise NotFound(f"no upload {upload_id[:40]!r}", hint="upload ids are 32 hexadecimal digits")
    return uploads_dir(workspace) / f"{upload_id}.part"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def info(row: Upload, limits: Limits) -> dict[str, Any]:
    """An upload as the API answers it."""
    return {
        "id": row.id,
        "entry": row.entry_id,
        "department": row.department_uscc,
        "user": row.user_id,
        "status": row.status,
        "size": row.size,
        "sha256": row.sha256,
        "chunk_size": row.chunk_size,
        "received": row.received,
        "complete": row.received == row.size,
        "version": row.version,
        "created_at": _aware(row.created_at),
        "updated_at": _aware(row.updated_at),
        "expires_at": _aware(row.updated_at) + limits.ttl if row.status == OPEN else None,
    }


def _may_see(caller: Principal, row: Upload) -> bool:
    return caller.role is Role.CITY_ADMIN or caller.department == row.department_uscc


def _get(session: Session, caller: Principal, upload_id: str, *, lock: bool = False) -> Upload:
    caller.require("exchange:publish")
    if not _ID.fullmatch(upload_id):
        raise NotFound(f"no upload {upload_id[:40]!r}", hint="upload ids are 32 hexadecimal digits")
    query = select(Upload).where(Upload.id == upload_id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None or not _may_see(caller, row):
        raise NotFound(
            f"no upload {upload_id} of your department",
            hint="GET /exchange/v1/uploads lists your open uploads; POST /exchange/v1/uploads starts one",
        )
    return row


def _expired(row: Upload, limits: Limits, now: dt.datetime) -> bool:
    return row.status == OPEN and _aware(row.updated_at) + limits.ttl <= now


def _expire(session: Session, workspace: Workspace, row: Upload, *, actor: str) -> None:
    row.status = "expired"
    part_path(workspace, row.id).unlink(missing_ok=True)
    audit.append(
        session,
        actor=actor,
        action="upload.expire",
        subject=f"upload:{row.id}",
        detail={"entry": row.entry_id, "received": row.received, "size": row.size},
    )


def _not_open(session: Session, workspace: Workspace, row: Upload, limits: Limits) -> Conflict | None:
    """Why the upload takes no more requests (an idle one is expired now), or None.

    The caller raises the answer after its session committed, so the expiry is kept.
    """
    if _expired(row, limits, utcnow()):
        _expire(session, workspace, row, actor=SYSTEM_ACTOR)
    if row.status == OPEN:
        return None
    if row.status == "committed":
        return Conflict(f"upload {row.id} is committed", hint="POST …/commit again answers its result")
    return Conflict(
        f"upload {row.id} is {row.status}, not open", hint="start a new upload with POST /exchange/v1/uploads"
    )


# --- start -------------------------------------------------------------------------------------


def start(
    store: CatalogStore,
    workspace: Workspace,
    caller: Principal,
    *,
    entry: str,
    size: int,
    sha256: str,
    chunk_size: int | None,
    manifest: publishing.PreparedVersion,
    spec_document: Any,
    limits: Limits,
) -> tuple[dict[str, Any], bool]:
    """Open an upload (or answer the open one of the same content); returns its info and whether it is new."""
    caller.require("exchange:publish")
    spec = publishing.parse_spec(spec_document)
    if entry != spec.id:
        raise SpecError(f"entry {entry!r} is not the spec's id {spec.id!r}", hint="send the spec of the entry")
    publishing.check_against(spec, manifest)
    if manifest.content_sha256 != sha256:
        raise SpecError("sha256 is not the manifest's content_sha256", hint="declare the sha256 of the data file")
    if manifest.bytes is not None and manifest.bytes != size:
        raise SpecError(f"size {size} is not the manifest's bytes {manifest.bytes}", hint="declare the file's size")
    if size > limits.max_bytes:
        raise TooLarge(
            f"the upload of {size} bytes is larger than this exchange accepts ({limits.max_bytes} bytes)",
            hint="ask the platform admin to raise GOVDATA_UPLOAD_MAX_BYTES",
        )
    chunk = min(chunk_size or DEFAULT_CHUNK, limits.max_chunk)
    uscc = spec.department.uscc
    if caller.role is not Role.CITY_ADMIN and caller.department != uscc:
        raise Forbidden(
            f"the spec's department {uscc} is not yours ({caller.department or 'none'}): "
            f"you may publish only your own department's resources",
            hint="use a token of a user of that department, or ask the city admin",
        )
    with store.session() as session:
        clean(session, workspace, limits, actor=SYSTEM_ACTOR)
    with store.session() as session:
        existing = session.get(Entry, spec.id)
        if existing is not None and existing.department_uscc != uscc:
            raise Forbidden(
                f"the entry {spec.id} belongs to another department on this exchange",
                hint="give the dataset another id; an entry cannot move between departments by publishing",
            )
        clash = session.scalar(
            select(Entry.id).where(Entry.resource_code == spec.catalog.resource_code, Entry.id != spec.id)
        )
        if clash is not None:
            raise Conflict(
                f"the resource code {spec.catalog.resource_code} is used by another entry on this exchange",
                hint="give every dataset its own catalog.resource_code",
            )
        document = {"manifest": manifest.document(), "spec": publishing.spec_document(spec), "result": None}
        same = session.scalar(
            select(Upload)
            .where(
                Upload.entry_id == spec.id,
                Upload.sha256 == sha256,
                Upload.size == size,
                Upload.department_uscc == uscc,
                Upload.status == OPEN,
            )
            .order_by(Upload.created_at.desc())
            .limit(1)
        )
        if same is not None and part_path(workspace, same.id).is_file():
            same.manifest = document  # the same bytes, perhaps declared by a later run
            same.updated_at = utcnow()
            session.flush()
            return info(same, limits), False
        opened = session.scalar(
            select(func.count()).select_from(Upload).where(Upload.department_uscc == uscc, Upload.status == OPEN)
        )
        if opened and opened >= limits.max_open:
            raise Conflict(
                f"the department has {opened} open uploads, the most this exchange allows",
                hint="finish or abort one (DELETE /exchange/v1/uploads/{id}; GET /exchange/v1/uploads lists them), "
                "or wait until they expire",
            )
        folder = uploads_dir(workspace)
        folder.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(folder).free < size:
            raise TransientError(
                f"the exchange has not enough free disk space for {size} bytes", hint="try again later"
            )
        row = Upload(
            id=uuid.uuid4().hex,
            entry_id=spec.id,
            department_uscc=uscc,
            user_id=caller.user,
            size=size,
            sha256=sha256,
            chunk_size=chunk,
            received=0,
            manifest=document,
            status=OPEN,
        )
        session.add(row)
        fd = os.open(part_path(workspace, row.id), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        session.flush()
        audit.append(
            session,
            actor=caller.user,
            action="upload.start",
            subject=f"upload:{row.id}",
            detail={
                "entry": spec.id,
                "department": uscc,
                "size": size,
                "sha256": sha256,
                "run_id": manifest.run_id,
                "chunk_size": chunk,
            },
        )
        return info(row, limits), True


# --- chunks ------------------------------------------------------------------------------------


@contextmanager
def _locked(part: Path) -> Iterator[int]:
    """The part file, open for reading and writing, under an exclusive lock."""
    try:
        fd = os.open(part, os.O_RDWR)
    except FileNotFoundError:
        raise Conflict(
            f"upload {part.stem} has no data on the server any more (expired or cleaned)",
            hint="start a new upload with POST /exchange/v1/uploads",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def write_chunk(
    store: CatalogStore,
    workspace: Workspace,
    caller: Principal,
    upload_id: str,
    offset: int,
    data: bytes,
    limits: Limits,
) -> dict[str, Any]:
    """Write one chunk at ``offset`` (see the module docstring for what is accepted)."""
    with store.session() as session:
        row = _get(session, caller, upload_id)
        problem = _not_open(session, workspace, row, limits)
        chunk_size, size = row.chunk_size, row.size
    if problem is not None:
        raise problem
    if not data:
        raise SpecError("the chunk is empty", hint="send the bytes of the chunk as the request body")
    if len(data) > chunk_size:
        raise TooLarge(
            f"the chunk of {len(data)} bytes is larger than the upload's chunk size of {chunk_size}",
            hint=f"send chunks of at most {chunk_size} bytes",
        )
    end = offset + len(data)
    if end > size:
        raise SpecError(
            f"the chunk at offset {offset} ends at byte {end}, past the declared size of {size}",
            hint="send only the bytes of the declared file",
        )
    with _locked(part_path(workspace, upload_id)) as fd, store.session() as session:
        row = _get(session, caller, upload_id, lock=True)
        if row.status != OPEN:  # committed, aborted or expired since the check above
            raise Conflict(f"upload {upload_id} is {row.status}, not open", hint="start a new upload")
        received = row.received
        if offset == received:
            written = 0
            while written < len(data):
                written += os.pwrite(fd, memoryview(data)[written:], offset + written)
            os.fsync(fd)
            row.received = end
            row.updated_at = utcnow()
        elif end <= received:
            if os.pread(fd, len(data), offset) != data:
                raise Conflict(
                    f"the chunk at offset {offset} differs from the bytes received there before; "
                    f"the next expected offset is {received}",
                    hint="the file changed while it was uploaded: start a new upload",
                )
        elif offset < received:
            raise Conflict(
                f"the chunk at offset {offset} overlaps the {received} bytes received; expected offset {received}",
                hint=f"send the next chunk from offset {received} (GET the upload to see how far it got)",
            )
        else:
            raise Conflict(
                f"the chunk at offset {offset} leaves a gap: expected offset {received}",
                hint=f"send the next chunk from offset {received} (GET the upload to see how far it got)",
            )
        return info(row, limits)


def status(
    store: CatalogStore, workspace: Workspace, caller: Principal, upload_id: str, limits: Limits
) -> dict[str, Any]:
    """How far an upload got; an upload past its expiry is expired now."""
    with store.session() as session:
        row = _get(session, caller, upload_id)
        if _expired(row, limits, utcnow()):
            _expire(session, workspace, row, actor=SYSTEM_ACTOR)
        return info(row, limits)


def list_uploads(
    session: Session, caller: Principal | None, limits: Limits, *, every_status: bool = False
) -> list[dict[str, Any]]:
    """Uploads the caller may see (``None``: every one; the local operator), open ones unless ``every_status``."""
    query = select(Upload).order_by(Upload.created_at, Upload.id)
    if caller is not None:
        caller.require("exchange:publish")
        if caller.role is not Role.CITY_ADMIN:
            query = query.where(Upload.department_uscc == (caller.department or ""))
    if not every_status:
        query = query.where(Upload.status == OPEN)
    return [info(row, limits) for row in session.scalars(query.limit(1000))]


# --- commit and abort --------------------------------------------------------------------------


def _result(row: Upload) -> dict[str, Any]:
    stored = dict((row.manifest or {}).get("result") or {})
    return {"id": row.id, **stored}


def _refuse(store: CatalogStore, workspace: Workspace, upload_id: str, actor: str, reason: str) -> TerminalError:
    with store.session() as session:
        row = session.get(Upload, upload_id)
        if row is not None and row.status == OPEN:
            row.status = "refused"
            audit.append(
                session, actor=actor, action="upload.refuse", subject=f"upload:{upload_id}", detail={"reason": reason}
            )
    part_path(workspace, upload_id).unlink(missing_ok=True)
    return TerminalError(
        f"upload {upload_id} refused: {reason}; nothing was published",
        hint="upload the file again (run the publish step again)",
    )


def _verify(part: Path, *, size: int, sha256: str, manifest: publishing.PreparedVersion) -> str | None:
    """Why the assembled file is not what was declared, or None."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.files import sha256_file

    actual = part.stat().st_size
    if actual != size:
        return f"the assembled file has {actual} bytes, not the declared {size}"
    digest = sha256_file(part)
    if digest != sha256:
        return f"the assembled file's sha256 is {digest}, not the declared {sha256} (a chunk was corrupted)"
    try:
        meta = pq.read_metadata(part)
    except (pa.ArrowException, OSError) as exc:
        return f"the file is not a readable Parquet file ({exc})"
    names = list(meta.schema.to_arrow_schema().names)
    expected = [c.name for c in manifest.schema_]
    if names != expected:
        return f"the Parquet file has the columns {names}, the manifest {expected}"
    if meta.num_rows != manifest.rows:
        return f"the Parquet file has {meta.num_rows} rows, the manifest says {manifest.rows}"
    return None


def commit(
    store: CatalogStore, workspace: Workspace, caller: Principal, upload_id: str, limits: Limits
) -> dict[str, Any]:
    """Verify the assembled file and commit it as the entry's next version (idempotent: see the module doc)."""
    from catalog import lifecycle
    from exchange.store import open_store

    with store.session() as session:
        row = _get(session, caller, upload_id)
        if row.status == "committed":
            return _result(row)
        problem = _not_open(session, workspace, row, limits)
        size, sha256, received, document = row.size, row.sha256, row.received, dict(row.manifest)
    if problem is not None:
        raise problem
    if received != size:
        raise Conflict(
            f"upload {upload_id} is incomplete: {received} of {size} bytes received",
            hint=f"send the rest from offset {received}, then commit",
        )
    spec = publishing.parse_spec(document["spec"])
    manifest = publishing.parse_manifest(document["manifest"])
    part = part_path(workspace, upload_id)
    if part.is_file():  # else a commit of it is under way or died after moving it: the commit below decides
        with _locked(part):
            refusal = _verify(part, size=size, sha256=sha256, manifest=manifest)
        if refusal is not None:
            raise _refuse(store, workspace, upload_id, caller.user, refusal)

    def mark(session: Session, outcome: publishing.Outcome) -> None:
        row = session.get(Upload, upload_id)
        if row is None or row.status != OPEN:
            return  # a concurrent commit of the same upload recorded it first
        answer = outcome.document()
        answer.pop("location", None)  # a path on this server: of no use to the caller
        row.status = "committed"
        row.version = outcome.version
        row.updated_at = utcnow()
        row.manifest = {**dict(row.manifest), "result": answer}
        audit.append(
            session,
            actor=caller.user,
            action="upload.commit",
            subject=f"upload:{upload_id}",
            detail={
                "entry": outcome.entry,
                "status": outcome.status,
                "version": outcome.version,
                "size": size,
                "sha256": sha256,
            },
        )

    outcome = publishing.commit(
        store,
        open_store(workspace),
        spec,
        manifest,
        part,
        actor=caller.user,
        review=lifecycle.review_mode(),  # the exchange's own setting decides, not the publisher's
        on_commit=mark,
    )
    if outcome.status == "held":
        # The upload stays open with its bytes: once the city admin approves the schema change,
        # the department's next run finds it (same content) and commits without sending it again.
        answer = outcome.document()
        answer.pop("location", None)
        return {"id": upload_id, **answer}
    part.unlink(missing_ok=True)  # an unchanged version leaves the part behind
    with store.session() as session:
        done = session.get(Upload, upload_id)
        assert done is not None
        return _result(done)


def abort(
    store: CatalogStore, workspace: Workspace, caller: Principal, upload_id: str, limits: Limits
) -> dict[str, Any]:
    """Abort an open upload and delete its bytes (aborting an aborted upload changes nothing)."""
    with store.session() as session:
        row = _get(session, caller, upload_id)
        if row.status in ("aborted", "expired", "refused"):
            return info(row, limits)
        if row.status != OPEN:
            raise Conflict(f"upload {upload_id} is {row.status}", hint="a committed upload cannot be aborted")
        row.status = "aborted"
        row.updated_at = utcnow()
        part_path(workspace, upload_id).unlink(missing_ok=True)
        audit.append(
            session,
            actor=caller.user,
            action="upload.abort",
            subject=f"upload:{upload_id}",
            detail={"entry": row.entry_id, "received": row.received, "size": row.size},
        )
        return info(row, limits)


# --- housekeeping ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cleaned:
    """What :func:`clean` removed."""

    expired: list[str] = dataclasses.field(default_factory=list)  # upload ids
    orphans: list[str] = dataclasses.field(default_factory=list)  # part files without an open upload


def clean(
    session: Session, workspace: Workspace, limits: Limits, *, actor: str, now: dt.datetime | None = None
) -> Cleaned:
    """Expire open uploads idle for longer than the limit; delete part files no open upload owns.

    A part file is only deleted as an orphan when it is older than the limit too, so an upload
    being started at this moment (file made, row not yet committed) is never touched.
    """
    now = now or utcnow()
    cutoff = now - limits.ttl
    stale = session.scalars(select(Upload).where(Upload.status == OPEN, Upload.updated_at <= cutoff)).all()
    expired = []
    for row in stale:
        _expire(session, workspace, row, actor=actor)
        expired.append(row.id)
    orphans = []
    folder = uploads_dir(workspace)
    if folder.is_dir():
        open_ids = set(session.scalars(select(Upload.id).where(Upload.status == OPEN)))
        for part in folder.glob("*.part"):
            if part.stem in open_ids:
                continue
            try:
                modified = dt.datetime.fromtimestamp(part.stat().st_mtime, dt.UTC)
            except FileNotFoundError:
                continue
            if modified <= cutoff:
                part.unlink(missing_ok=True)
                orphans.append(part.name)
    return Cleaned(expired, orphans)
