"""``/exchange/v1/uploads`` and ``/exchange/v1/publishing``: publish a version over HTTP.

The protocol, its limits and who may use it are described in :mod:`exchange.uploads`; the
publishing endpoints give a department's pipeline what its catalog step needs from the
exchange in remote mode (:mod:`exchange.publishing`): the latest version of its own entry and,
for ``publish.mode: merge``, that version's data.

Request bodies are cut off at a limit before they are read whole: a chunk at
``GOVDATA_UPLOAD_MAX_CHUNK``, any other body at :data:`MAX_JSON_BYTES`; over it the answer is
413, like a chunk larger than the upload's chunk size or an upload larger than
``GOVDATA_UPLOAD_MAX_BYTES``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from catalog.access import Role
from catalog.models import Entry, Version
from exchange import uploads
from exchange.api import DB, ERRORS, Caller, ErrorBody, store_of
from exchange.errors import Forbidden, NotFound
from exchange.publishing import PreparedVersion
from exchange.store import open_store
from pipelines.workspace import Workspace

__all__ = ["MAX_JSON_BYTES", "router"]

#: The largest JSON body (an upload's declaration: manifest and spec).
MAX_JSON_BYTES = 1_000_000
PARQUET = "application/vnd.apache.parquet"


class _TooLargeBody(Exception):
    """Raised while a request body is read, once it passes the route's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class _BoundedRequest(Request):
    """A request whose body stream stops with :class:`_TooLargeBody` past ``limit`` bytes."""

    limit = MAX_JSON_BYTES

    async def stream(self) -> AsyncGenerator[bytes, None]:
        seen = 0
        async for piece in super().stream():
            seen += len(piece)
            if seen > self.limit:
                raise _TooLargeBody(self.limit)
            yield piece


def _too_large(message: str, hint: str) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint}, status_code=413)


class _BoundedRoute(APIRoute):
    """A route that refuses bodies over its limit (413) and answers :class:`uploads.TooLarge` as 413."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        chunks = "PUT" in self.methods

        async def bounded(request: Request) -> Response:
            limit = uploads.Limits.from_env().max_chunk if chunks else MAX_JSON_BYTES
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                return _too_large(
                    f"the request body of {declared} bytes is larger than {limit} bytes",
                    "send smaller chunks" if chunks else "send a smaller request",
                )
            wrapped = _BoundedRequest(request.scope, request.receive)
            wrapped.limit = limit
            try:
                # Read (and cache) the body here: FastAPI turns any error while it reads a body
                # into a 400 "error parsing the body", which would hide the 413.
                await wrapped.body()
            except _TooLargeBody as exc:
                return _too_large(
                    f"the request body is larger than {exc.limit} bytes",
                    "send smaller chunks" if chunks else "send a smaller request",
                )
            try:
                return await handler(wrapped)
            except uploads.TooLarge as exc:
                return _too_large(exc.message, exc.hint or "send less")

        return bounded


router = APIRouter(tags=["uploads"], responses=ERRORS, route_class=_BoundedRoute)

TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "the body, the chunk or the upload is larger than allowed"}
}

UploadId = Annotated[
    str, PathParam(pattern=uploads.ID_PATTERN, max_length=32, description="The upload's id (32 hex digits).")
]
EntryId = Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9_]*$", max_length=100, description="The entry (dataset id).")]
UploadStatus = Literal["open", "committed", "aborted", "refused", "expired"]


class UploadIn(BaseModel):
    """The declaration of an upload."""

    model_config = {"extra": "forbid"}

    entry: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=100, description="The entry (the spec's id).")
    size: int = Field(gt=0, le=2**62, description="The data file's size in bytes.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="The data file's sha256 (lower-case hex).")
    chunk_size: int | None = Field(
        default=None,
        ge=uploads.MIN_CHUNK,
        le=2**31 - 1,
        description="The chunk size the client wants; the answer says the one to use (default 8 MiB).",
    )
    manifest: PreparedVersion = Field(description="The version the catalog step prepared.")
    spec: dict[str, Any] = Field(
        description="The dataset spec document (the YAML as JSON); the entry is registered from it at commit."
    )


class UploadOut(BaseModel):
    """An upload and how far it got."""

    id: str
    entry: str
    department: str
    user: str
    status: UploadStatus
    size: int
    sha256: str
    chunk_size: int = Field(description="Send chunks of at most this many bytes.")
    received: int = Field(description="Bytes received in order: the offset of the next chunk.")
    complete: bool
    version: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    expires_at: dt.datetime | None = Field(description="An open upload idle until then expires.")


class CommitOut(BaseModel):
    """What the commit did."""

    id: str
    entry: str
    status: Literal["published", "unchanged", "held"] = Field(
        description="published: a new version; unchanged: the content is the latest version already; "
        "held: a breaking schema change waits for the city admin (the upload stays open)"
    )
    version: int | None
    rows: int | None = None
    content_sha256: str | None = None
    schema_change: dict[str, Any] | None = None
    review: str | None = None
    entry_status: str | None = None
    same_run: bool = False
    held_because: list[str] = Field(default_factory=list)
    hint: str | None = None


class PublishedVersion(BaseModel):
    number: int
    run_id: str
    fingerprint: str
    content_sha256: str
    rows: int
    watermark: str | None
    published_at: dt.datetime


class LatestOut(BaseModel):
    """The latest version of an entry of the caller's department (null: none yet)."""

    entry: str
    version: PublishedVersion | None


def _workspace(request: Request) -> Workspace:
    workspace: Workspace = request.app.state.workspace
    return workspace


@router.post(
    "/uploads",
    response_model=UploadOut,
    status_code=201,
    responses=TOO_LARGE,
    summary="Start an upload of a version (or resume the open one of the same content)",
)
def start(body: UploadIn, caller: Caller, request: Request, response: Response) -> dict[str, Any]:
    answer, new = uploads.start(
        store_of(request),
        _workspace(request),
        caller,
        entry=body.entry,
        size=body.size,
        sha256=body.sha256,
        chunk_size=body.chunk_size,
        manifest=body.manifest,
        spec_document=body.spec,
        limits=uploads.Limits.from_env(),
    )
    if not new:
        response.status_code = 200
    return answer


@router.get("/uploads", response_model=list[UploadOut], summary="Open uploads of the caller's department")
def listing(caller: Caller, db: DB) -> list[dict[str, Any]]:
    return uploads.list_uploads(db, caller, uploads.Limits.from_env())


@router.get("/uploads/{upload_id}", response_model=UploadOut, summary="An upload: how many bytes arrived")
def status(upload_id: UploadId, caller: Caller, request: Request) -> dict[str, Any]:
    return uploads.status(store_of(request), _workspace(request), caller, upload_id, uploads.Limits.from_env())


@router.put(
    "/uploads/{upload_id}/chunks/{offset}",
    response_model=UploadOut,
    responses=TOO_LARGE,
    summary="Send one chunk at the offset the upload has received",
)
def chunk(
    upload_id: UploadId,
    offset: Annotated[int, PathParam(ge=0, le=2**62, description="Where the chunk starts: `received`.")],
    data: Annotated[bytes, Body(media_type="application/octet-stream", description="The chunk's bytes.")],
    caller: Caller,
    request: Request,
) -> dict[str, Any]:
    return uploads.write_chunk(
        store_of(request), _workspace(request), caller, upload_id, offset, data, uploads.Limits.from_env()
    )


@router.post(
    "/uploads/{upload_id}/commit",
    response_model=CommitOut,
    summary="Verify the assembled file (size, sha256, Parquet) and publish it atomically",
)
def commit(upload_id: UploadId, caller: Caller, request: Request) -> dict[str, Any]:
    return uploads.commit(store_of(request), _workspace(request), caller, upload_id, uploads.Limits.from_env())


@router.delete("/uploads/{upload_id}", response_model=UploadOut, summary="Abort an upload and delete its bytes")
def abort(upload_id: UploadId, caller: Caller, request: Request) -> dict[str, Any]:
    return uploads.abort(store_of(request), _workspace(request), caller, upload_id, uploads.Limits.from_env())


def _own_entry(db: DB, caller: Caller, entry: str) -> Entry | None:
    """The entry when the caller may publish it; None when the exchange has none of that id yet."""
    caller.require("exchange:publish")
    row = db.get(Entry, entry)
    if row is not None and caller.role is not Role.CITY_ADMIN and row.department_uscc != caller.department:
        raise Forbidden(
            f"the entry {entry} belongs to another department on this exchange",
            hint="publish only your own department's resources",
        )
    return row


@router.get(
    "/publishing/{entry}/latest",
    response_model=LatestOut,
    summary="The latest version of one of the caller's entries (what a remote run compares with)",
)
def latest(entry: EntryId, caller: Caller, db: DB) -> dict[str, Any]:
    from sqlalchemy import select

    if _own_entry(db, caller, entry) is None:
        return {"entry": entry, "version": None}
    v = db.scalar(select(Version).where(Version.entry_id == entry).order_by(Version.number.desc()).limit(1))
    if v is None:
        return {"entry": entry, "version": None}
    return {
        "entry": entry,
        "version": {
            "number": v.number,
            "run_id": v.run_id,
            "fingerprint": v.fingerprint,
            "content_sha256": v.content_sha256,
            "rows": v.row_count,
            "watermark": v.watermark,
            "published_at": v.published_at if v.published_at.tzinfo else v.published_at.replace(tzinfo=dt.UTC),
        },
    }


@router.get(
    "/publishing/{entry}/versions/{number}/data",
    response_class=FileResponse,
    responses={
        200: {
            "description": "the version's Parquet file (the department's own data, for merge-mode runs)",
            "content": {PARQUET: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    summary="The data of one of the caller's versions (Parquet)",
)
def data(
    entry: EntryId,
    number: Annotated[int, PathParam(ge=1, le=10**9, description="The version number.")],
    caller: Caller,
    db: DB,
    request: Request,
) -> FileResponse:
    from sqlalchemy import select

    if _own_entry(db, caller, entry) is None:
        raise NotFound(f"no entry {entry} on this exchange", hint="publish it first")
    committed = db.scalar(select(Version.number).where(Version.entry_id == entry, Version.number == number))
    stored = open_store(_workspace(request)).read(entry, number) if committed else None
    if stored is None or not stored.data_path.is_file():
        raise NotFound(f"no version {number} of {entry}", hint="GET …/latest names the latest version")
    return FileResponse(stored.data_path, media_type=PARQUET, filename=f"{entry}-v{number}.parquet")
