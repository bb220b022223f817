"""The append-only, hash-chained audit log (审计日志).

Every change of state that matters (a catalog transition, a review, a user added; later grants,
deliveries, revocations) appends one :class:`catalog.models.AuditEvent`. Entries are numbered
``seq`` = 1, 2, 3 … without gaps; each keeps the hash of the one before it (``prev_hash``; the
first one keeps :data:`GENESIS`) and its own ``hash``: the sha256 of a canonical JSON object of
its fields (``seq``, ``at`` in UTC with microseconds, ``actor``, ``action``, ``subject``,
``detail``) and ``prev_hash`` (keys sorted, no whitespace, UTF-8; see :func:`entry_hash`).

:func:`append` writes in the caller's session, so the event commits or rolls back with the
change it records. Concurrent writers are serialised: on PostgreSQL by a transaction-level
advisory lock, on SQLite by taking the database's write lock before reading the last entry;
on any other database an entry whose ``seq`` another writer took first is retried under a
savepoint. :func:`verify` walks the chain and returns the first problem: an edited entry
(its hash no longer matches its content), a removed one (a gap in ``seq``, or a link to a hash
no entry has), an inserted one, or entries in another order. What it cannot see by itself is a
log cut off at the end, or rewritten as a whole with every hash recomputed: keep the head
(:func:`head`, printed by an export) somewhere else and compare.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.models import AuditEvent
from pipelines.errors import TerminalError, TransientError

__all__ = [
    "GENESIS",
    "AuditProblem",
    "append",
    "canonical",
    "entry_hash",
    "events",
    "head",
    "record",
    "verify",
]

#: The ``prev_hash`` of the first entry.
GENESIS = "0" * 64
#: PostgreSQL advisory lock held (until commit) by a transaction appending to the log.
_PG_LOCK_KEY = 7_106_713
_ATTEMPTS = 20

ProblemKind = Literal["edited", "removed", "inserted", "reordered"]


def _utc(at: dt.datetime) -> dt.datetime:
    """``at`` in UTC; a naive time (SQLite gives those back) is UTC already."""
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def _json_value(detail: Mapping[str, Any] | None) -> dict[str, Any]:
    """``detail`` as it will read back from the database: plain JSON (dates and other values as text)."""
    try:
        value = json.loads(json.dumps(dict(detail or {}), ensure_ascii=False, default=str, allow_nan=False))
    except ValueError as exc:
        raise TerminalError(
            f"audit detail cannot be stored as JSON: {exc}", hint="pass numbers that are finite and keys that are text"
        ) from None
    assert isinstance(value, dict)
    return value


def canonical(
    *, seq: int, at: dt.datetime, actor: str, action: str, subject: str, detail: Mapping[str, Any], prev_hash: str
) -> bytes:
    """The bytes an entry's hash covers: its fields and ``prev_hash`` as canonical JSON."""
    doc = {
        "seq": seq,
        "at": _utc(at).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject": subject,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def entry_hash(event: AuditEvent) -> str:
    """The hash ``event`` should have, computed from its stored fields."""
    return hashlib.sha256(
        canonical(
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            detail=event.detail,
            prev_hash=event.prev_hash,
        )
    ).hexdigest()


def head(session: Session) -> tuple[int, str]:
    """The last entry's ``(seq, hash)``; ``(0, GENESIS)`` for an empty log."""
    row = session.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))


def _serialise(session: Session) -> None:
    """Keep other writers out until this transaction ends, so the last entry read stays the last."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    elif dialect == "sqlite":
        # A write statement takes SQLite's write lock (waiting up to busy_timeout) even when it
        # changes no row; the driver also opens the transaction for it. Reads after it see the
        # latest committed entries, and nobody else can append before this transaction ends.
        session.execute(text("UPDATE audit_log SET seq = seq WHERE seq < 0"))


def append(
    session: Session, *, actor: str, action: str, subject: str, detail: Mapping[str, Any] | None = None
) -> AuditEvent:
    """Append one entry in ``session``'s transaction (it commits with the caller's change) and return it."""
    for name, value, limit in (("actor", actor, 64), ("action", action, 64), ("subject", subject, 200)):
        if not value or len(value) > limit:
            raise TerminalError(
                f"audit {name} {value!r} must be 1 to {limit} characters", hint="this is a bug in the caller"
            )
    body = _json_value(detail)
    _serialise(session)
    for _ in range(_ATTEMPTS):
        seq, prev = head(session)
        at = dt.datetime.now(dt.UTC)
        event = AuditEvent(
            seq=seq + 1, at=at, actor=actor, action=action, subject=subject, detail=body, prev_hash=prev, hash=""
        )
        event.hash = entry_hash(event)
        try:
            with session.begin_nested():
                session.add(event)
        except IntegrityError:  # another writer took this seq first (databases without a lock above)
            continue
        return event
    raise TransientError(
        f"could not append to the audit log after {_ATTEMPTS} attempts: other writers kept taking the next entry",
        hint="try again",
    )


@dataclass(frozen=True)
class AuditProblem:
    """The first place where the log is not what was written."""

    seq: int  # the entry at which the problem shows
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        return self.message


def _rows(session: Session) -> Iterator[AuditEvent]:
    yield from session.scalars(select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=1000))


def verify(session: Session) -> AuditProblem | None:
    """Walk the chain from the first entry; the first problem found, or ``None`` when it is intact."""
    # Which entry each hash belongs to: tells a link to a later entry (reordered) from one to an
    # earlier entry (something inserted after it) and from one to no entry at all (removed).
    owner = {h: int(s) for s, h in session.execute(select(AuditEvent.seq, AuditEvent.hash))}
    expected_seq, prev = 1, GENESIS
    for event in _rows(session):
        if event.seq != expected_seq:
            missing = f"{expected_seq}" if event.seq == expected_seq + 1 else f"{expected_seq}–{event.seq - 1}"
            return AuditProblem(event.seq, "removed", f"audit log entries {missing} are missing (removed)")
        if event.prev_hash != prev:
            linked = owner.get(event.prev_hash)
            if linked is None:
                return AuditProblem(
                    event.seq,
                    "removed",
                    f"audit log entry {event.seq} follows an entry that is no longer in the log "
                    f"(entry {event.seq - 1} was removed, or replaced and its hash recomputed)",
                )
            if linked >= event.seq:
                return AuditProblem(
                    event.seq,
                    "reordered",
                    f"audit log entry {event.seq} was written after entry {linked}: the entries were reordered",
                )
            between = f"{linked + 1}" if linked + 1 == event.seq - 1 else f"{linked + 1}–{event.seq - 1}"
            return AuditProblem(
                event.seq,
                "inserted",
                f"audit log entry {event.seq} was written right after entry {linked}: "
                f"entry {between} was inserted later",
            )
        if entry_hash(event) != event.hash:
            return AuditProblem(
                event.seq, "edited", f"audit log entry {event.seq} was changed after it was written (its hash differs)"
            )
        expected_seq, prev = event.seq + 1, event.hash
    return None


def events(
    session: Session,
    *,
    subject: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    after_seq: int | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    """Entries in log order, narrowed by exact subject/action/actor, a time range ``[since, until)``, or ``seq``."""
    q = select(AuditEvent).order_by(AuditEvent.seq)
    if subject is not None:
        q = q.where(AuditEvent.subject == subject)
    if action is not None:
        q = q.where(AuditEvent.action == action)
    if actor is not None:
        q = q.where(AuditEvent.actor == actor)
    if since is not None:
        q = q.where(AuditEvent.at >= _utc(since))
    if until is not None:
        q = q.where(AuditEvent.at < _utc(until))
    if after_seq is not None:
        q = q.where(AuditEvent.seq > after_seq)
    if limit is not None:
        q = q.limit(max(limit, 0))
    return list(session.scalars(q))


def record(event: AuditEvent) -> dict[str, Any]:
    """One entry as plain JSON (what an export writes); :func:`canonical` of it reproduces the hash."""
    return {
        "seq": event.seq,
        "at": _utc(event.at).isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "detail": event.detail,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
