"""``/exchange/v1/webhooks`` and ``/exchange/v1/notifications``: a department's signed webhooks and its outbox.

A department's users (scope ``exchange:apply``) register, list, remove and rotate the secrets of
their department's webhooks; the secret is in the answer to the creation and to a rotation only.
The city admin lists and removes every department's. Notifications (what was sent, is waiting, or
failed, with the last status and error) are listed for the caller's department, or all of them for
city-level users (the dashboard); a failed one can be queued again. How receivers verify a
notification: :mod:`exchange.notify`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from exchange import notify
from exchange.api import DB, ERRORS, Caller
from exchange.models import Notification, Webhook

router = APIRouter(tags=["webhooks"], responses=ERRORS)

if TYPE_CHECKING:
    Event = str
else:  # an enum of the event names in the OpenAPI description
    Event = Literal[tuple(notify.EVENTS)]
RowId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="the record's id")]


class WebhookIn(BaseModel):
    """A webhook to register for the caller's department."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=notify.MAX_URL_LENGTH,
        description="http or https address of the receiver; no credentials, no fragment, not this machine "
        "or a link-local address",
        examples=["https://receiver.dept.example.gov.cn/govdata/events"],
    )
    events: list[Event] = Field(
        min_length=1, max_length=len(notify.EVENTS), description=f"some of: {', '.join(notify.EVENTS)}"
    )


class WebhookOut(BaseModel):
    id: int
    department: str
    url: str
    events: list[str]
    active: bool
    created_by: str
    created_at: dt.datetime


class NewSecret(WebhookOut):
    secret: str = Field(
        description="the signing secret: shown only now; X-Govdata-Signature is "
        '"sha256=" + hex HMAC-SHA256(secret, "<X-Govdata-Timestamp>.<raw body>")'
    )


class NotificationOut(BaseModel):
    id: int
    webhook: int
    department: str
    event: str
    status: Literal["pending", "sent", "failed"]
    attempts: int
    next_attempt_at: dt.datetime | None = Field(description="when the next attempt is due (pending only)")
    last_status: int | None = Field(description="the receiver's HTTP status at the last attempt")
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    data: dict[str, Any] = Field(description="the event's data, as sent")


def _hook(row: Webhook) -> dict[str, Any]:
    return {
        "id": row.id,
        "department": row.department_uscc,
        "url": row.url,
        "events": list(row.events),
        "active": row.active,
        "created_by": row.created_by,
        "created_at": row.created_at,
    }


def _note(row: Notification) -> dict[str, Any]:
    return {
        "id": row.id,
        "webhook": row.webhook_id,
        "department": row.department_uscc,
        "event": row.event,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at if row.status == "pending" else None,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "sent_at": row.sent_at,
        "data": dict(row.payload or {}),
    }


@router.post(
    "/webhooks", response_model=NewSecret, status_code=201, summary="Register a webhook of the caller's department"
)
def create(body: WebhookIn, caller: Caller, db: DB) -> dict[str, Any]:
    row, secret = notify.register_webhook(db, caller, url=body.url, events=body.events)
    return {**_hook(row), "secret": secret}


@router.get("/webhooks", response_model=list[WebhookOut], summary="The department's webhooks (city admin: all)")
def webhooks(caller: Caller, db: DB) -> list[dict[str, Any]]:
    return [_hook(row) for row in notify.list_webhooks(db, caller)]


@router.delete(
    "/webhooks/{webhook_id}", response_model=WebhookOut, summary="Remove a webhook (pending notifications fail)"
)
def remove(webhook_id: RowId, caller: Caller, db: DB) -> dict[str, Any]:
    return _hook(notify.remove_webhook(db, caller, webhook_id))


@router.post(
    "/webhooks/{webhook_id}/rotate",
    response_model=NewSecret,
    summary="A new signing secret (the old one stops at once)",
)
def rotate(webhook_id: RowId, caller: Caller, db: DB) -> dict[str, Any]:
    row, secret = notify.rotate_secret(db, caller, webhook_id)
    return {**_hook(row), "secret": secret}


@router.get(
    "/notifications",
    response_model=list[NotificationOut],
    summary="Notifications of the caller's department, newest first (city-level users: all)",
)
def notifications(
    caller: Caller,
    db: DB,
    status: Annotated[Literal["pending", "sent", "failed"] | None, Query(description="only this status")] = None,
    event: Annotated[Event | None, Query(description="only this event")] = None,
    webhook: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="only this webhook's")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    rows = notify.list_notifications(
        db, caller, status=status, event=event, webhook=webhook, limit=limit, offset=offset
    )
    return [_note(row) for row in rows]


@router.post(
    "/notifications/{notification_id}/retry",
    response_model=NotificationOut,
    summary="Queue a failed notification again (due now, a fresh budget of attempts)",
)
def retry(notification_id: RowId, caller: Caller, db: DB) -> dict[str, Any]:
    return _note(notify.retry_notification(db, caller, notification_id))
