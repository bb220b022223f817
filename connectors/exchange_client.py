"""The HTTP client of a remote city exchange (``govdata serve``): publish versions, read the latest one.

:class:`ExchangeClient` speaks the upload protocol of :mod:`exchange.uploads`:

* :meth:`~ExchangeClient.upload` declares the file (``POST /uploads``: the server answers the
  upload's id, the chunk size to use and the bytes it already has, so re-running after a crash
  resumes where the last attempt stopped), sends the rest chunk by chunk, and commits.
* A dropped connection, a timeout or a 5xx answer is retried with exponential backoff; after a
  failed chunk the client asks the server how far it got (``GET /uploads/{id}``) and continues
  from there, so a chunk is never sent into a gap and a chunk that did arrive is not resent. A
  409 on a chunk (another copy of this client got further) is handled the same way.
* Errors say what to do: 401 means the token (``GOVDATA_EXCHANGE_TOKEN``) is wrong, expired or
  revoked; 403 that the token's user may not publish this entry (not its department, or the
  token lacks ``exchange:publish``); 413 and 422 carry the server's reason.

:meth:`~ExchangeClient.latest_version` and :meth:`~ExchangeClient.download` give the catalog step
the department's latest published version and its data (merge mode).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import httpx

from exchange.errors import AuthError, Conflict, Forbidden, NotFound
from pipelines.errors import TerminalError, TransientError
from pipelines.files import sha256_file

__all__ = ["DEFAULT_CHUNK", "ExchangeClient"]

log = logging.getLogger(__name__)

PREFIX = "/exchange/v1"
#: The chunk size asked for when none is given (the server may answer a smaller one).
DEFAULT_CHUNK = 8 * 1024 * 1024
#: How long a commit may take to answer (the server verifies the file's sha256 and Parquet footer first).
COMMIT_TIMEOUT = 1800.0
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_MAX_BACKOFF = 30.0
_TOKEN_HINT = (
    "set GOVDATA_EXCHANGE_TOKEN (or GOVDATA_EXCHANGE_TOKEN_FILE) to a valid token with the scope exchange:publish; "
    "a user of your department creates one on the exchange with `govdata token create --name publish "
    "--scope exchange:publish`"
)


class _Retry(Exception):
    """A transient failure of one request: a dropped connection, a timeout, a 5xx answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ExchangeClient:
    """A client of the exchange at ``base_url`` (``http://host:8000``), authenticated by an API token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 60.0,
        attempts: int = 6,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        url = base_url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")) or len(url) < 8:
            raise TerminalError(
                f"{base_url!r} is not an http(s) address", hint="give the exchange's address, e.g. http://exchange:8000"
            )
        self.base_url = url
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.timeout = timeout
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "govdata-exchange-client"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ExchangeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------------

    def _once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a transient failure raises :class:`_Retry`, an error answer its GovdataError."""
        try:
            answer = self._http.request(method, PREFIX + path, **kwargs)
        except httpx.TransportError as exc:  # connect, read, write errors; timeouts; a dropped connection
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        if answer.status_code in _RETRY_STATUS:
            raise _Retry(f"HTTP {answer.status_code}: {_message(answer)[0]}")
        if answer.status_code >= 400:
            self._fail(answer)
        return answer

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request retried with exponential backoff while it fails transiently."""
        for attempt in range(1, self.attempts + 1):
            try:
                return self._once(method, path, **kwargs)
            except _Retry as exc:
                if attempt == self.attempts:
                    self._unreachable(exc.reason)
                self._wait(attempt, exc.reason)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _wait(self, attempt: int, reason: str) -> None:
        delay = min(self.backoff * 2 ** (attempt - 1), _MAX_BACKOFF)
        log.warning(
            "exchange %s: %s; retrying in %.1f s (attempt %d of %d)",
            self.base_url,
            reason,
            delay,
            attempt + 1,
            self.attempts,
        )
        self._sleep(delay)

    def _unreachable(self, reason: str) -> NoReturn:
        raise TransientError(
            f"the exchange at {self.base_url} (GOVDATA_EXCHANGE_URL) did not answer after {self.attempts} "
            f"attempt(s) ({reason})",
            hint="check GOVDATA_EXCHANGE_URL and the network, then run again: the upload resumes where it stopped",
        )

    def _fail(self, answer: httpx.Response) -> NoReturn:
        message, hint = _message(answer)
        status = answer.status_code
        if status == 401:
            raise AuthError(f"the exchange at {self.base_url} refused the API token: {message}", hint=_TOKEN_HINT)
        if status == 403:
            raise Forbidden(
                f"the exchange at {self.base_url} refused: {message}",
                hint=hint
                or "the token's user must belong to the department in the spec (department.uscc) and the token "
                "must hold exchange:publish",
            )
        if status == 404:
            raise NotFound(f"the exchange at {self.base_url}: {message}", hint=hint)
        if status == 409:
            raise Conflict(f"the exchange at {self.base_url}: {message}", hint=hint)
        raise TerminalError(f"the exchange at {self.base_url} refused (HTTP {status}): {message}", hint=hint)

    # --- reading -----------------------------------------------------------------------------

    def latest_version(self, entry: str) -> dict[str, Any] | None:
        """The entry's latest version on the exchange (number, fingerprint, run_id, …), or None."""
        version = self._call("GET", f"/publishing/{entry}/latest").json().get("version")
        return dict(version) if version else None

    def data_url(self, entry: str, number: int) -> str:
        return f"{self.base_url}{PREFIX}/publishing/{entry}/versions/{number}/data"

    def download(self, entry: str, number: int, target: Path, *, sha256: str) -> Path:
        """Download the data of version ``number`` to ``target`` (atomically), checked against ``sha256``."""
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
        try:
            for attempt in range(1, self.attempts + 1):
                try:
                    with self._http.stream("GET", f"{PREFIX}/publishing/{entry}/versions/{number}/data") as answer:
                        if answer.status_code in _RETRY_STATUS:
                            raise _Retry(f"HTTP {answer.status_code}")
                        if answer.status_code >= 400:
                            answer.read()
                            self._fail(answer)
                        with tmp.open("wb") as fh:
                            for block in answer.iter_bytes(1 << 20):
                                fh.write(block)
                    break
                except httpx.TransportError as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                except _Retry as exc:
                    reason = exc.reason
                if attempt == self.attempts:
                    self._unreachable(reason)
                self._wait(attempt, reason)
            got = sha256_file(tmp)
            if got != sha256:
                raise TransientError(
                    f"the data of {entry} v{number} downloaded from {self.base_url} has sha256 {got}, not {sha256}",
                    hint="run again (the download is repeated)",
                )
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    # --- uploading ---------------------------------------------------------------------------

    def start(
        self, file: Path, *, manifest: Mapping[str, Any], spec: Mapping[str, Any], chunk_size: int | None = None
    ) -> dict[str, Any]:
        """Declare an upload of ``file`` (or find the open one of the same content): id, chunk size, received."""
        body = {
            "entry": manifest.get("resource"),
            "size": file.stat().st_size,
            "sha256": manifest.get("content_sha256"),
            "chunk_size": chunk_size or DEFAULT_CHUNK,
            "manifest": dict(manifest),
            "spec": dict(spec),
        }
        answer: dict[str, Any] = self._call("POST", "/uploads", json=body).json()
        return answer

    def status(self, upload_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._call("GET", f"/uploads/{upload_id}").json()
        return answer

    def send_chunk(self, upload_id: str, offset: int, data: bytes) -> dict[str, Any]:
        """Send one chunk (one attempt: :meth:`upload` decides what to do after a failure)."""
        answer: dict[str, Any] = self._once(
            "PUT",
            f"/uploads/{upload_id}/chunks/{offset}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        ).json()
        return answer

    def commit(self, upload_id: str) -> dict[str, Any]:
        """Commit a complete upload (the server checks and publishes; committing again answers the same).

        The server hashes the whole file before it answers, so the answer may take minutes for a
        large file: the read timeout is :data:`COMMIT_TIMEOUT` (a retry after a timeout would
        only wait for the same commit again).
        """
        timeout = httpx.Timeout(max(self.timeout, COMMIT_TIMEOUT), connect=min(self.timeout, 10.0))
        answer: dict[str, Any] = self._call("POST", f"/uploads/{upload_id}/commit", timeout=timeout).json()
        return answer

    def abort(self, upload_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._call("DELETE", f"/uploads/{upload_id}").json()
        return answer

    def upload(
        self,
        file: Path,
        *,
        manifest: Mapping[str, Any],
        spec: Mapping[str, Any],
        chunk_size: int | None = None,
    ) -> dict[str, Any]:
        """Upload ``file`` with its prepared manifest and spec document, resuming as needed, and commit it.

        Returns the commit's answer: ``status`` published, unchanged or held, ``version``, …. An
        upload that expired or was aborted on the server while this one was sending is started
        again once.
        """
        for again in (False, True):
            started = self.start(file, manifest=manifest, spec=spec, chunk_size=chunk_size)
            upload_id = str(started["id"])
            if started["received"]:
                log.info(
                    "exchange %s: resuming upload %s at byte %s of %s",
                    self.base_url,
                    upload_id,
                    started["received"],
                    started["size"],
                )
            state = self._send(file, started)
            if state == "open" or state == "committed":
                answer = self.commit(upload_id)
                log.info(
                    "exchange %s: upload %s: %s v%s",
                    self.base_url,
                    upload_id,
                    answer.get("status"),
                    answer.get("version"),
                )
                return answer
            if again:
                break
            log.warning("exchange %s: upload %s is %s on the server; starting again", self.base_url, upload_id, state)
        raise Conflict(
            f"the exchange at {self.base_url} closed the upload of {file.name} twice while it was sent ({state})",
            hint="run again; if it keeps happening, ask the platform admin about GOVDATA_UPLOAD_TTL_HOURS",
        )

    def _send(self, file: Path, started: Mapping[str, Any]) -> str:
        """Send what the server lacks; the upload's status at the end (``open`` when complete)."""
        upload_id, size = str(started["id"]), int(started["size"])
        chunk, received = int(started["chunk_size"]), int(started["received"])
        failures = 0
        fd = os.open(file, os.O_RDONLY)
        try:
            while received < size:
                data = os.pread(fd, min(chunk, size - received), received)
                if not data:
                    raise TerminalError(
                        f"{file} became shorter while it was uploaded", hint="run the catalog step again"
                    )
                try:
                    received = int(self.send_chunk(upload_id, received, data)["received"])
                    failures = 0
                    continue
                except _Retry as exc:
                    reason = exc.reason
                except Conflict as exc:  # another sender got further, our chunk arrived but not its answer, or closed
                    reason = exc.message
                failures += 1
                if failures >= self.attempts:
                    self._unreachable(reason)
                self._wait(failures, reason)
                now = self.status(upload_id)
                if now["status"] != "open":
                    return str(now["status"])
                received = int(now["received"])
        finally:
            os.close(fd)
        return "open"


def _message(answer: httpx.Response) -> tuple[str, str | None]:
    """The server's error and hint (``{"error", "hint"}``), or the start of its body."""
    try:
        body = answer.json()
    except ValueError:
        return (answer.text[:200].strip() or answer.reason_phrase), None
    if isinstance(body, dict) and "error" in body:
        return str(body["error"]), (str(body["hint"]) if body.get("hint") else None)
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:500], None
    return str(body)[:200], None
