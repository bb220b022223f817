"""``/exchange/v1/objections``: a subscriber's objection (纠错/异议) to a version, the provider's answer, the thread.

Rules (who raises, answers, closes, sees; the deadline in working days): :mod:`exchange.objections`.
Every record the caller may not see answers 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from catalog.models import Entry, utcnow
from exchange import objections
from exchange.api import DB, ERRORS, Caller
from exchange.models import Objection

router = APIRouter(tags=["objections"], responses=ERRORS)

ObjectionId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="the objection's id")]
Status = Literal["open", "answered", "closed"]
KeyValue = Annotated[str, Field(min_length=1, max_length=objections.MAX_KEY_VALUE)]
Text = Annotated[str, Field(min_length=1, max_length=objections.MAX_TEXT)]


class ObjectionIn(BaseModel):
    """An objection to a version of a resource the caller's department holds or held a grant on."""

    model_config = ConfigDict(extra="forbid")

    entry: str = Field(min_length=1, max_length=100, description="the resource (catalog entry id)")
    version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="the version concerned; omitted: the latest"
    )
    subject: str = Field(min_length=1, max_length=objections.MAX_SUBJECT, description="one line")
    detail: Text = Field(description="what is wrong, and what it should be")
    items: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=objections.MAX_ITEMS, description="the data items concerned"
    )
    keys: list[KeyValue | Annotated[dict[str, KeyValue], Field(min_length=1, max_length=20)]] = Field(
        default_factory=list,
        max_length=objections.MAX_KEYS,
        description="primary-key values of the rows concerned: a value for a one-item key, "
        "an object {key item: value} for a composite key",
    )


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: Text


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str | None = Field(default=None, max_length=objections.MAX_TEXT, description="a last word, optional")


class MessageOut(BaseModel):
    author: str
    role: str = Field(description="subscriber, provider or city")
    body: str
    at: dt.datetime


class ObjectionOut(BaseModel):
    id: int
    entry: str
    resource_code: str
    provider: str = Field(description="the department whose data it is (USCC)")
    version: int
    department: str = Field(description="the department that raised it (USCC)")
    raised_by: str
    subject: str
    detail: str
    items: list[str]
    keys: list[dict[str, str]]
    status: Status
    raised_at: dt.datetime
    due_at: dt.datetime = Field(description="the end of the last working day to answer by")
    answered_at: dt.datetime | None
    closed_at: dt.datetime | None
    overdue: bool = Field(description="open past its deadline")
    messages: list[MessageOut]


def _out(row: Objection, db: Any, now: dt.datetime) -> dict[str, Any]:
    entry = db.get(Entry, row.entry_id)
    return {
        "id": row.id,
        "entry": row.entry_id,
        "resource_code": entry.resource_code if entry else "",
        "provider": entry.department_uscc if entry else "",
        "version": row.version,
        "department": row.department_uscc,
        "raised_by": row.raised_by,
        "subject": row.subject,
        "detail": row.detail,
        "items": [str(i) for i in row.items or []],
        "keys": [{str(k): str(v) for k, v in key.items()} for key in row.keys or [] if isinstance(key, dict)],
        "status": row.status,
        "raised_at": row.raised_at,
        "due_at": row.due_at,
        "answered_at": row.answered_at,
        "closed_at": row.closed_at,
        "overdue": objections.is_overdue(row, now),
        "messages": [{"author": m.author, "role": m.role, "body": m.body, "at": m.at} for m in row.messages],
    }


@router.post("/objections", response_model=ObjectionOut, status_code=201, summary="Raise an objection (纠错)")
def create(body: ObjectionIn, caller: Caller, db: DB) -> dict[str, Any]:
    row = objections.raise_objection(
        db,
        caller,
        entry=body.entry,
        version=body.version,
        subject=body.subject,
        detail=body.detail,
        items=body.items,
        keys=body.keys,
    )
    return _out(row, db, utcnow())


@router.get(
    "/objections",
    response_model=list[ObjectionOut],
    summary="Objections raised by or against the caller's department (city-level users: all), newest first",
)
def listing(
    caller: Caller,
    db: DB,
    entry: Annotated[str | None, Query(max_length=100, description="only this resource's")] = None,
    status: Annotated[Status | None, Query(description="only this status")] = None,
    overdue: Annotated[bool | None, Query(description="only those open past their deadline (or not)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    now = utcnow()
    rows = objections.list_objections(
        db, caller, entry=entry, status=status, overdue=overdue, now=now, limit=limit, offset=offset
    )
    return [_out(row, db, now) for row in rows]


@router.get("/objections/{objection_id}", response_model=ObjectionOut, summary="One objection with its thread")
def show(objection_id: ObjectionId, caller: Caller, db: DB) -> dict[str, Any]:
    return _out(objections.get(db, caller, objection_id), db, utcnow())


@router.post(
    "/objections/{objection_id}/answer",
    response_model=ObjectionOut,
    summary="The provider's answer (its reviewer); the raiser is notified",
)
def answer(objection_id: ObjectionId, body: MessageIn, caller: Caller, db: DB) -> dict[str, Any]:
    return _out(objections.answer(db, caller, objection_id, message=body.message), db, utcnow())


@router.post(
    "/objections/{objection_id}/messages",
    response_model=ObjectionOut,
    summary="A message in the thread (raiser, provider or city admin)",
)
def message(objection_id: ObjectionId, body: MessageIn, caller: Caller, db: DB) -> dict[str, Any]:
    return _out(objections.add_message(db, caller, objection_id, message=body.message), db, utcnow())


@router.post(
    "/objections/{objection_id}/close",
    response_model=ObjectionOut,
    summary="Close the thread (the raising department, or the city admin)",
)
def close(objection_id: ObjectionId, caller: Caller, db: DB, body: CloseIn | None = None) -> dict[str, Any]:
    text = body.message if body is not None else None
    return _out(objections.close(db, caller, objection_id, message=text), db, utcnow())
