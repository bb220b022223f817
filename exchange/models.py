"""The exchange's tables, in the same platform database as the catalog (one Alembic history).

=====================  ========================================================================
``api_tokens``         a user's API tokens: only the sha256 of the secret is kept; scoped, revocable
``applications``       a department's application (申请) for another department's resource, and
                       its review (审核): who decides, by when, the decision and its reason
``grants``             what an approved application allows (授权): items, masking, delivery method,
                       expiry, revocation, a cap on uses; the per-grant API key (hash only)
``deliveries``         one receipt per delivery attempt run (交付回执): version, rows, checksum,
                       time, outcome, attempts
``uploads``            a chunked, resumable upload of a version to a remote exchange
``webhooks``           a department's signed notification endpoints
``notifications``      the webhook outbox: every event to send, its attempts and outcome
``objections``         a subscriber's report of wrong data (纠错) against a version, and the thread
``objection_messages``
``api_calls``          calls of the data API (接口服务): caller, latency, outcome, rows
``alerts``             what the watch raised (a stale resource, an overdue review, a failed
                       delivery or pipeline task), once per subject and period
=====================  ========================================================================

Times are timezone-aware UTC (:class:`catalog.models.UtcDateTime`), on SQLite too. A change here needs a new migration (see CONTRIBUTING).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.models import Base, Entry, User, UtcDateTime, utcnow

#: The largest id of an exchange record (the tables' ids are 32-bit integers on every database).
MAX_ID = 2**31 - 1


def record_id(value: object) -> int | None:
    """``value`` as a record id (an int, or a string of digits, 1 to :data:`MAX_ID`); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= MAX_ID else None
    if isinstance(value, str) and value.isdigit() and len(value) < 10:
        return int(value) or None
    return None


class ApiToken(Base):
    """An API token of one user. The token is ``gdt_<id>_<secret>``; only sha256(token) is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # the public part, shown in lists
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[Any]] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship()


class Application(Base):
    """An application (申请) by one department for data items of another department's resource."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    department_uscc: Mapped[str] = mapped_column(ForeignKey("departments.uscc"), index=True)  # the applicant
    applicant: Mapped[str] = mapped_column(String(64))  # user id
    items: Mapped[list[Any]] = mapped_column()  # data item names asked for
    purpose: Mapped[str] = mapped_column(Text)  # 事由
    scenario: Mapped[str] = mapped_column(Text)  # 应用场景
    delivery_method: Mapped[str] = mapped_column(String(16))  # file, database, api
    end_date: Mapped[dt.date] = mapped_column(Date)  # the use ends (the grant expires) at the end of this day
    target: Mapped[dict[str, Any] | None] = mapped_column()  # database delivery: where (no secrets)
    share_type: Mapped[str] = mapped_column(String(16))  # the resource's, when applied for
    reviewer: Mapped[str] = mapped_column(String(16))  # city (conformity check) or provider
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    submitted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    due_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)  # None: refused at once
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)  # the basis of a refusal, the opinion of an approval

    entry: Mapped[Entry] = relationship()


class Grant(Base):
    """What an approved application allows: the items (and how each is masked), until when, how often."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), unique=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    department_uscc: Mapped[str] = mapped_column(ForeignKey("departments.uscc"), index=True)  # the subscriber
    items: Mapped[list[Any]] = mapped_column()
    masking: Mapped[dict[str, Any]] = mapped_column()  # item -> rule (None: clear); absent: the default
    join_keys: Mapped[list[Any]] = mapped_column(default=list)
    delivery_method: Mapped[str] = mapped_column(String(16))
    target: Mapped[dict[str, Any] | None] = mapped_column()
    granted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    granted_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    api_key_id: Mapped[str | None] = mapped_column(String(16), unique=True)
    api_key_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    last_version: Mapped[int | None] = mapped_column(Integer)  # the last version delivered in full

    application: Mapped[Application] = relationship()
    entry: Mapped[Entry] = relationship()

    def state(self, now: dt.datetime | None = None) -> str:
        """``active``, ``revoked``, ``expired`` or ``exhausted`` (the cap on uses reached)."""
        now = now or utcnow()
        if self.revoked_at is not None:
            return "revoked"
        expires = self.expires_at if self.expires_at.tzinfo else self.expires_at.replace(tzinfo=dt.UTC)
        if now >= expires:
            return "expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "exhausted"
        return "active"


class Delivery(Base):
    """A delivery receipt (交付回执): one version (or the changes up to it) for one grant."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id"), index=True)
    entry_id: Mapped[str] = mapped_column(String(100), index=True)
    department_uscc: Mapped[str] = mapped_column(String(18), index=True)  # the subscriber
    mode: Mapped[str] = mapped_column(String(16))  # file, database, api
    kind: Mapped[str] = mapped_column(String(16))  # full or changes
    version: Mapped[int] = mapped_column(Integer)
    base_version: Mapped[int | None] = mapped_column(Integer)  # changes since this version
    format: Mapped[str | None] = mapped_column(String(16))  # parquet, csv
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    inserted: Mapped[int] = mapped_column(BigInteger, default=0)
    updated: Mapped[int] = mapped_column(BigInteger, default=0)
    deleted: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16), default="running", index=True)  # running succeeded failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    latency_ms: Mapped[float | None] = mapped_column(Float)


class Upload(Base):
    """A chunked, resumable upload of one version; visible to nobody until committed."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    entry_id: Mapped[str] = mapped_column(String(100), index=True)
    department_uscc: Mapped[str] = mapped_column(String(18))
    user_id: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    chunk_size: Mapped[int] = mapped_column(Integer)
    received: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes received in order
    manifest: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="open")  # open committed aborted
    version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Webhook(Base):
    """A department's notification endpoint; events are signed with HMAC-SHA256 over its secret."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    department_uscc: Mapped[str] = mapped_column(ForeignKey("departments.uscc"), index=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))  # the signing key; the receiver holds the same
    events: Mapped[list[Any]] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class Notification(Base):
    """One event for one webhook (the outbox): sent, retried with backoff, or failed for good."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id"), index=True)
    department_uscc: Mapped[str] = mapped_column(String(18), index=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)  # pending sent failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class Objection(Base):
    """A subscriber's objection (纠错/异议) to data in one version; the provider answers by ``due_at``."""

    __tablename__ = "objections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    department_uscc: Mapped[str] = mapped_column(ForeignKey("departments.uscc"), index=True)  # who objects
    raised_by: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text)
    items: Mapped[list[Any]] = mapped_column(default=list)  # data items concerned
    keys: Mapped[list[Any]] = mapped_column(default=list)  # primary-key values of the rows concerned
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)  # open answered closed
    raised_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    messages: Mapped[list[ObjectionMessage]] = relationship(
        back_populates="objection", order_by="ObjectionMessage.id", cascade="all, delete-orphan"
    )


class ObjectionMessage(Base):
    """One message in an objection's thread."""

    __tablename__ = "objection_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    objection_id: Mapped[int] = mapped_column(ForeignKey("objections.id"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))  # subscriber or provider (or city)
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    objection: Mapped[Objection] = relationship(back_populates="messages")


class ApiCall(Base):
    """One call of the data API (接口服务) for the monitoring: caller, latency, outcome, rows."""

    __tablename__ = "api_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    grant_id: Mapped[int | None] = mapped_column(Integer, index=True)
    entry_id: Mapped[str | None] = mapped_column(String(100), index=True)
    department_uscc: Mapped[str | None] = mapped_column(String(18), index=True)  # the caller's
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(Integer, default=0)


class Alert(Base):
    """One alert of the watch (:mod:`exchange.watch`), raised once per ``key`` (kind, subject, period)."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(250), unique=True)  # dedupe: kind:subject:period
    kind: Mapped[str] = mapped_column(String(32), index=True)
    department_uscc: Mapped[str | None] = mapped_column(String(18), index=True)  # None: the city platform
    subject: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column()
    source: Mapped[str] = mapped_column(String(16))  # watch | airflow
    raised_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
