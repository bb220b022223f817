"""Delivery over HTTP: file downloads, database deliveries, the data API, and the receipts.

=================================================  ===========================================================
``GET  /grants/{id}/download``                      the subscriber downloads a full version or the changes since
                                                    a version (Parquet or CSV), streamed; headers carry the
                                                    version, rows, sha256 and receipt id
``GET  /grants/{id}/versions``                      the resource's versions and the one last delivered
``POST /grants/{id}/deliver``                       run a database delivery now (the subscriber or the city admin);
                                                    ``full`` replaces the table's rows with the whole version
``GET  /deliveries``                                receipts: the department's (as subscriber and as provider);
                                                    city-level users see all
``GET  /data/{id}``                                 the data API: pages of masked rows, authenticated by the
                                                    grant's key in ``X-Grant-Key`` (not a bearer token)
=================================================  ===========================================================

The rules (masking, uses, receipts, the cursor) are :mod:`exchange.delivery` and
:mod:`exchange.delivery_db`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from exchange import delivery
from exchange.api import DB, ERRORS, Caller, store_of
from exchange.delivery import MAX_INT, MAX_PAGE_SIZE
from pipelines.errors import TerminalError, TransientError

router = APIRouter(tags=["delivery"], responses=ERRORS)

GrantId = Annotated[int, PathParam(ge=1, le=MAX_INT, description="the grant's id")]


class Receipt(BaseModel):
    """A delivery receipt (交付回执)."""

    id: int
    grant: int
    entry: str
    department: str = Field(description="the subscriber department (USCC)")
    mode: str = Field(description="file, database or api")
    kind: str = Field(description="full, or changes since base_version")
    version: int
    base_version: int | None
    format: str | None = Field(description="parquet, csv, json (data API)")
    rows: int
    inserted: int
    updated: int
    deleted: int
    sha256: str | None = Field(description="sha256 of what was delivered (the file)")
    outcome: str = Field(description="running, succeeded or failed")
    attempts: int = Field(description="attempts made (data API: page requests on that day)")
    error: str | None
    actor: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    latency_ms: float | None


class DatabaseReceipt(Receipt):
    """The receipt of a database delivery that just ran."""

    target: str | None = Field(description="the target table (schema.table)")
    already_present: bool = Field(description="the target held this version already; nothing was written")
    retryable: bool | None = Field(description="for a failure: whether a later retry may succeed")


class ReceiptPage(BaseModel):
    items: list[Receipt]
    total: int
    limit: int
    offset: int


class VersionInfo(BaseModel):
    version: int
    rows: int
    published_at: dt.datetime
    content_sha256: str
    delivered: bool = Field(description="a delivery of this version to the grant succeeded")


class GrantVersions(BaseModel):
    grant: int
    entry: str
    state: str = Field(description="active, revoked, expired or exhausted")
    delivery_method: str
    latest: int | None
    last_delivered: int | None = Field(description="the last version delivered to the grant (the default `since`)")
    versions: list[VersionInfo]


class DeliverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, le=MAX_INT, description="default: the latest version")
    full: bool = Field(
        default=False,
        description="replace the table's rows with the whole version, even if the target holds it or an earlier one",
    )


class DataPage(BaseModel):
    """One page of the data API."""

    grant: int
    entry: str
    version: int = Field(description="the version the pages come from (pinned by the cursor)")
    columns: list[str]
    rows: list[dict[str, Any]] = Field(description="masked rows, ordered by the (delivered) primary key")
    count: int
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")
    receipt: int = Field(description="the day's receipt of this grant and version")


def _work_dir(request: Request) -> Path:
    root: Path = request.app.state.workspace.root
    return root / "tmp" / "delivery"


_FILE = {
    "description": "the file, streamed: Parquet, or CSV (UTF-8 with BOM); changes carry the column `_op`",
    "content": {
        "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        "text/csv": {"schema": {"type": "string"}},
    },
    "headers": {
        "X-Govdata-Version": {"description": "the version delivered", "schema": {"type": "integer"}},
        "X-Govdata-Rows": {"description": "rows in the file", "schema": {"type": "integer"}},
        "X-Govdata-Sha256": {"description": "sha256 of the file", "schema": {"type": "string"}},
        "X-Govdata-Receipt": {"description": "the receipt id", "schema": {"type": "integer"}},
        "X-Govdata-Kind": {"description": "full or changes", "schema": {"type": "string"}},
    },
}


@router.get(
    "/grants/{grant_id}/download",
    response_class=FileResponse,
    responses={200: _FILE},
    summary="Download a full version or the changes since a version (Parquet or CSV)",
)
def download(
    grant_id: GrantId,
    request: Request,
    caller: Caller,
    format: Annotated[Literal["parquet", "csv"], Query(description="parquet (default) or csv")] = "parquet",
    since: Annotated[
        int | None,
        Query(ge=0, le=MAX_INT, description="the changes since this version; default: the last one delivered"),
    ] = None,
    full: Annotated[bool, Query(description="the whole version, not the changes")] = False,
    version: Annotated[int | None, Query(ge=1, le=MAX_INT, description="which version; default the latest")] = None,
) -> FileResponse:
    prepared = delivery.download(
        store_of(request),
        grant_id,
        caller,
        fmt=format,
        since=since,
        full=full,
        version=version,
        work_dir=_work_dir(request),
    )
    return FileResponse(
        prepared.file.path,
        media_type=prepared.media_type,
        filename=prepared.filename,
        headers=prepared.headers(),
        background=BackgroundTask(prepared.cleanup),
    )


@router.get(
    "/grants/{grant_id}/versions",
    response_model=GrantVersions,
    summary="The versions of a grant's resource and the one last delivered to it",
)
def versions(grant_id: GrantId, caller: Caller, db: DB) -> dict[str, Any]:
    return delivery.grant_versions(db, grant_id, caller)


@router.post(
    "/grants/{grant_id}/deliver",
    response_model=DatabaseReceipt,
    summary="Run a database delivery of a grant now (subscriber or city admin); retried with backoff",
)
def deliver(grant_id: GrantId, request: Request, caller: Caller, body: DeliverIn | None = None) -> dict[str, Any]:
    from exchange.delivery_db import deliver_to_database

    store = store_of(request)
    with store.session() as s:
        delivery.grant_for(s, grant_id, caller, purpose="deliver")
    receipt = deliver_to_database(
        store,
        grant_id,
        actor=caller.user,
        version=body.version if body else None,
        work_dir=_work_dir(request),
        full=body.full if body else False,
        lineage_home=request.app.state.workspace.root,
    )
    if receipt["outcome"] != "succeeded":
        message = (
            f"database delivery of grant {grant_id} (version {receipt['version']}) failed after "
            f"{receipt['attempts']} attempt(s): {receipt['error']} (receipt {receipt['id']})"
        )
        if receipt.get("retryable"):
            raise TransientError(message, hint="the target database did not answer; try again later")
        raise TerminalError(message, hint="correct the target (see the error) and deliver again")
    return receipt


@router.get("/deliveries", response_model=ReceiptPage, summary="Delivery receipts, newest first")
def deliveries(
    caller: Caller,
    db: DB,
    grant: Annotated[int | None, Query(ge=1, le=MAX_INT, description="only this grant's")] = None,
    outcome: Annotated[Literal["running", "succeeded", "failed"] | None, Query()] = None,
    mode: Annotated[Literal["file", "database", "api"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> dict[str, Any]:
    rows, total = delivery.list_deliveries(
        db, caller, grant=grant, outcome=outcome, mode=mode, limit=limit, offset=offset
    )
    return {"items": [delivery.receipt_dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}


@router.get(
    "/data/{grant_id}",
    response_model=DataPage,
    summary="The data API (接口服务): pages of masked rows with the grant's key",
    description=(
        "Authenticated by the grant's key in `X-Grant-Key` (`gdk_…`), not by a bearer token. Pages "
        "follow the primary key; pass `next_cursor` as `cursor` until it is null. Each page request "
        "consumes one use of the grant and is recorded for monitoring."
    ),
    openapi_extra={
        "parameters": [
            {
                "name": "page_size",
                "in": "query",
                "required": False,
                "description": f"rows per page, 1 to {MAX_PAGE_SIZE} (default {delivery.DEFAULT_PAGE_SIZE})",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
            },
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "the previous page's next_cursor, unchanged",
                "schema": {"type": "string", "maxLength": 4096},
            },
            {
                "name": "version",
                "in": "query",
                "required": False,
                "description": "which version (default the latest; a cursor pins its own)",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
            },
        ]
    },
)
def data(
    grant_id: GrantId,
    request: Request,
    x_grant_key: Annotated[
        str | None, Header(alias="X-Grant-Key", description="the grant's data key, gdk_…", include_in_schema=True)
    ] = None,
) -> dict[str, Any]:
    # page_size, cursor and version are read here rather than by FastAPI, so that a malformed
    # request is answered like a refused one and still recorded as an API call.
    query = request.query_params
    root: Path = request.app.state.workspace.root
    return delivery.api_page(
        store_of(request),
        grant_id,
        x_grant_key,
        page_size=query.get("page_size"),
        cursor=query.get("cursor"),
        version=query.get("version"),
        cache_dir=root / "cache" / "data-api",
    )
