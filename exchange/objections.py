"""Objections (纠错/异议): a subscriber reports wrong data in a version; the provider answers by a deadline.

**Who raises.** A department that holds or held a grant on the resource (any grant, also an
expired or revoked one: it received the data and may find it wrong afterwards), through a user
with the scope ``exchange:apply``. The provider cannot object to its own data (it corrects it and
publishes a new version), and the city admin cannot raise one: an objection is one department's
claim against another's data, and the city's own corrections go through the catalog review. A
department without a grant is told there is no such resource for it (404), like any record it may
not see.

**What it names.** A version of the resource (default: the latest), a subject and the detail, the
data items concerned (they must be items of that version and among those granted to the
department) and, optionally, the primary-key values of the rows concerned (at most
:data:`MAX_KEYS`). Key values are not looked up in the data: a subscriber may hold them only as
keyed hashes, and the provider can match those; they are stored as ``{key item: value}``.

**The deadline.** ``due_at`` is the end of the N-th working day after the day it was raised, N =
``GOVDATA_OBJECTION_DAYS`` (default 5), counted by :mod:`exchange.calendar` like the review
deadlines (:mod:`exchange.deadlines`). An objection is *overdue* while it is open after ``due_at``.

**The thread.** ``open`` → ``answered`` (the provider department's reviewer, scope
``exchange:review``, answers once; ``answered_at`` is kept) → ``closed`` (by the raising department
when satisfied, or withdrawn by it before an answer; the city admin may close one too). The
provider does not close: whether the answer settles the matter is the raiser's call. Until it is
closed, the raiser's users (``exchange:apply``), the provider's reviewers (``exchange:review``) and
the city admin add messages. An unsatisfied raiser replies in the thread or raises a new objection;
an answer is never taken back, so "answered on time" stays a fact.

**Who sees it.** The provider department (every objection to its data), the raising department
(its own), and city-level users (all). The record stays with the dataset: ``GET
/objections?entry=…`` lists an entry's objections for whoever may see them.

Raising emits ``objection.raised`` to the provider's webhooks, answering ``objection.answered`` to
the raiser's; raise, answer, message and close are written to the audit log.
:func:`objection_stats` gives the assessment's figures per provider department and period.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, selectinload

from catalog.models import Entry, Version, utcnow
from exchange import audit
from exchange.calendar import add_working_days, default_calendar
from exchange.errors import Conflict, Forbidden, NotFound
from exchange.identity import Principal
from exchange.models import Grant, Objection, ObjectionMessage
from exchange.notify import emit
from pipelines.errors import TerminalError

__all__ = [
    "DAYS_ENV",
    "MAX_KEYS",
    "STATUSES",
    "ObjectionStats",
    "add_message",
    "answer",
    "close",
    "get",
    "is_overdue",
    "list_objections",
    "objection_days",
    "objection_stats",
    "raise_objection",
]

DAYS_ENV = "GOVDATA_OBJECTION_DAYS"
DEFAULT_DAYS = 5
STATUSES = ("open", "answered", "closed")
MAX_SUBJECT = 200
MAX_TEXT = 10_000
MAX_ITEMS = 200
MAX_KEYS = 500
MAX_KEY_VALUE = 200
_MAX_ID = 2**31 - 1


def objection_days(environ: Mapping[str, str] | None = None) -> int:
    """The working days a provider has to answer: ``GOVDATA_OBJECTION_DAYS`` (default 5)."""
    raw = ((os.environ if environ is None else environ).get(DAYS_ENV) or "").strip()
    if not raw:
        return DEFAULT_DAYS
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 250:
        raise TerminalError(
            f"{DAYS_ENV}={raw!r} is not a whole number of working days from 1 to 250",
            hint=f"set {DAYS_ENV} to e.g. {DEFAULT_DAYS}, or unset it for the default",
        )
    return int(raw)


def is_overdue(objection: Objection, now: dt.datetime | None = None) -> bool:
    """Open (not answered, not closed) after its deadline."""
    return objection.status == "open" and (now or utcnow()) > objection.due_at


# --- checking what people send -------------------------------------------------------------------


def _text(value: Any, field: str, limit: int, *, multiline: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TerminalError(f"the objection's {field} is empty", hint=f"give the {field} (1 to {limit} characters)")
    text = value.strip()
    if len(text) > limit:
        raise TerminalError(
            f"the objection's {field} is {len(text)} characters long; at most {limit} are allowed",
            hint=f"shorten the {field}" + ("" if multiline else "; put the rest in the detail"),
        )
    allowed = "\n\t\r" if multiline else ""
    for position, char in enumerate(text):
        if (ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0) and char not in allowed:
            raise TerminalError(
                f"the objection's {field} holds the control character {char!r} at position {position + 1}",
                hint="remove it" + ("" if multiline else "; the subject is one line"),
            )
    return text


def _schema(version: Version, entry: Entry) -> list[dict[str, Any]]:
    """The version's data items (its recorded schema; the entry's items when none was recorded)."""
    columns = [c for c in (version.schema or []) if isinstance(c, dict) and c.get("name")]
    if columns:
        return columns
    return [{"name": i.name, "primary_key": i.primary_key} for i in entry.items]


def _items(wanted: Sequence[str], schema: list[dict[str, Any]], granted: set[str], where: str) -> list[str]:
    names = [str(c["name"]) for c in schema]
    chosen = list(dict.fromkeys(_text(i, "data item", 100, multiline=False) for i in wanted))
    if len(chosen) > MAX_ITEMS:
        raise TerminalError(f"{len(chosen)} data items named; at most {MAX_ITEMS}", hint="name the items concerned")
    for item in chosen:
        if item not in names:
            near = difflib.get_close_matches(item, names, n=1)
            raise TerminalError(
                f"{where} has no data item {item!r}",
                hint=(f"did you mean {near[0]!r}? " if near else "") + f"its items are: {', '.join(names)}",
            )
        if granted and item not in granted:
            raise Forbidden(
                f"the data item {item!r} of {where} was never granted to your department",
                hint=f"name items your department received: {', '.join(sorted(granted))}",
            )
    return chosen


def _keys(given: Sequence[Any], schema: list[dict[str, Any]], where: str) -> list[dict[str, str]]:
    """Key values as ``{key item: value}``: a plain value for a one-item key, an object for a composite key."""
    if not given:
        return []
    key = [str(c["name"]) for c in schema if c.get("primary_key")]
    if not key:
        raise TerminalError(
            f"{where} has no primary key, so rows cannot be named by key values",
            hint="describe the rows in the detail instead",
        )
    if len(given) > MAX_KEYS:
        raise TerminalError(
            f"{len(given)} rows named by key; at most {MAX_KEYS}",
            hint="name a sample of the rows concerned and describe the rest in the detail",
        )
    found: list[dict[str, str]] = []
    for position, value in enumerate(given, start=1):
        if isinstance(value, Mapping):
            if set(value) != set(key):
                raise TerminalError(
                    f"key {position} names {', '.join(map(str, value)) or 'nothing'}; "
                    f"the primary key of {where} is {', '.join(key)}",
                    hint=f"give an object with exactly these items: {', '.join(key)}",
                )
            row = {k: _text(value[k], f"key value {k} (row {position})", MAX_KEY_VALUE, multiline=False) for k in key}
        elif len(key) == 1:
            row = {key[0]: _text(value, f"key value (row {position})", MAX_KEY_VALUE, multiline=False)}
        else:
            raise TerminalError(
                f"key {position} is a single value, but the primary key of {where} has several items",
                hint=f"give each key as an object of {', '.join(key)}",
            )
        if row not in found:
            found.append(row)
    return found


# --- who may see and do what ----------------------------------------------------------------------


def _provider(objection: Objection, session: Session) -> str:
    entry = session.get(Entry, objection.entry_id)
    assert entry is not None  # a foreign key
    return entry.department_uscc


def _side(principal: Principal, objection: Objection, session: Session) -> str | None:
    """``subscriber``, ``provider`` or ``city`` when the caller may see the objection, else None."""
    if principal.city:
        return "city"
    if principal.department is None:
        return None
    if objection.department_uscc == principal.department:
        return "subscriber"
    if _provider(objection, session) == principal.department:
        return "provider"
    return None


def get(session: Session, principal: Principal, objection_id: int) -> Objection:
    """The objection ``objection_id`` with its thread, if the caller may see it (else :class:`NotFound`)."""
    principal.require("catalog:read")
    found = (
        session.get(Objection, objection_id, options=[selectinload(Objection.messages)])
        if 0 < objection_id <= _MAX_ID
        else None
    )
    if found is None or _side(principal, found, session) is None:
        raise NotFound(
            f"no objection {objection_id} raised by or against your department",
            hint="list them with GET /exchange/v1/objections or `govdata exchange objections list`",
        )
    return found


# --- the thread -------------------------------------------------------------------------------------


def _payload(objection: Objection, entry: Entry) -> dict[str, Any]:
    return {
        "objection": objection.id,
        "entry": entry.id,
        "resource_code": entry.resource_code,
        "version": objection.version,
        "department": objection.department_uscc,
        "provider": entry.department_uscc,
        "subject": objection.subject,
        "status": objection.status,
        "raised_at": objection.raised_at,
        "due_at": objection.due_at,
        "answered_at": objection.answered_at,
    }


def raise_objection(
    session: Session,
    principal: Principal,
    *,
    entry: str,
    subject: str,
    detail: str,
    version: int | None = None,
    items: Sequence[str] = (),
    keys: Sequence[Any] = (),
    now: dt.datetime | None = None,
) -> Objection:
    """Raise an objection of the caller's department against ``version`` (default: the latest) of ``entry``."""
    principal.require("exchange:apply")
    if principal.department is None:
        raise Forbidden(
            "only a department that received the data raises an objection; a city-level user has no department",
            hint="ask the subscribing department to raise it, or correct the catalog through its review",
        )
    department = principal.department
    found = session.get(Entry, entry) if isinstance(entry, str) and 0 < len(entry) <= 100 else None
    grants = (
        list(session.scalars(select(Grant).where(Grant.entry_id == found.id, Grant.department_uscc == department)))
        if found is not None
        else []
    )
    if found is not None and found.department_uscc == department:
        raise Forbidden(
            f"{found.id} is your own department's resource",
            hint="correct the data at its source and publish a new version; objections come from subscribers",
        )
    if found is None or not grants:
        raise NotFound(
            f"no resource {entry[:100]!r} that your department holds or held a grant on",
            hint="an objection is raised by a department that received the data; apply for it first",
        )
    subject = _text(subject, "subject", MAX_SUBJECT, multiline=False)
    detail = _text(detail, "detail", MAX_TEXT, multiline=True)
    versions = {v.number: v for v in session.scalars(select(Version).where(Version.entry_id == found.id))}
    if not versions:
        raise NotFound(f"{found.id} has no published version yet", hint="wait for its first version")
    number = max(versions) if version is None else version
    chosen = versions.get(number) if isinstance(number, int) and not isinstance(number, bool) else None
    if chosen is None:
        raise NotFound(
            f"{found.id} has no version {number!r}",
            hint=f"its versions are {min(versions)} to {max(versions)}; omit the version for the latest",
        )
    where = f"version {chosen.number} of {found.id}"
    schema = _schema(chosen, found)
    granted = {str(i) for g in grants for i in (g.items or [])}
    chosen_items = _items(items, schema, granted, where)
    chosen_keys = _keys(keys, schema, where)
    raised_at = now or utcnow()
    due_at = add_working_days(raised_at, objection_days(), calendar=default_calendar())
    objection = Objection(
        entry_id=found.id,
        version=chosen.number,
        department_uscc=department,
        raised_by=principal.user,
        subject=subject,
        detail=detail,
        items=chosen_items,
        keys=chosen_keys,
        status="open",
        raised_at=raised_at,
        due_at=due_at,
    )
    session.add(objection)
    session.flush()
    audit.append(
        session,
        actor=principal.user,
        action="objection.raise",
        subject=f"objection:{objection.id}",
        detail={
            "entry": found.id,
            "version": chosen.number,
            "department": department,
            "provider": found.department_uscc,
            "subject": subject,
            "items": chosen_items,
            "keys": len(chosen_keys),
            "due_at": due_at,
        },
    )
    emit(session, department=found.department_uscc, event="objection.raised", payload=_payload(objection, found))
    return objection


def _message(
    session: Session, objection: Objection, principal: Principal, role: str, body: str, at: dt.datetime
) -> None:
    objection.messages.append(ObjectionMessage(author=principal.user, role=role, body=body, at=at))
    session.flush()


def answer(
    session: Session, principal: Principal, objection_id: int, *, message: str, now: dt.datetime | None = None
) -> Objection:
    """The provider department's answer: the objection becomes ``answered``; the raiser is notified."""
    objection = get(session, principal, objection_id)
    if _side(principal, objection, session) != "provider":
        raise Forbidden(
            "only the department that provides the data answers an objection to it",
            hint="add a message to the thread instead",
        )
    principal.require("exchange:review")
    if objection.status != "open":
        when = objection.answered_at or objection.closed_at
        raise Conflict(
            f"objection {objection.id} is {objection.status} already"
            + (f" (since {when.isoformat(timespec='seconds')})" if when else ""),
            hint="add a message to the thread" if objection.status == "answered" else "a closed thread takes no answer",
        )
    body = _text(message, "answer", MAX_TEXT, multiline=True)
    at = now or utcnow()
    objection.status = "answered"
    objection.answered_at = at
    _message(session, objection, principal, "provider", body, at)
    on_time = at <= objection.due_at
    audit.append(
        session,
        actor=principal.user,
        action="objection.answer",
        subject=f"objection:{objection.id}",
        detail={"entry": objection.entry_id, "department": objection.department_uscc, "on_time": on_time},
    )
    entry = session.get(Entry, objection.entry_id)
    assert entry is not None
    emit(session, department=objection.department_uscc, event="objection.answered", payload=_payload(objection, entry))
    return objection


def add_message(
    session: Session, principal: Principal, objection_id: int, *, message: str, now: dt.datetime | None = None
) -> Objection:
    """A message in the thread from the raiser, the provider or the city admin; not once it is closed."""
    objection = get(session, principal, objection_id)
    side = _side(principal, objection, session)
    principal.require(
        {"subscriber": "exchange:apply", "provider": "exchange:review", "city": "exchange:admin"}[side or "city"]
    )
    if objection.status == "closed":
        raise Conflict(f"objection {objection.id} is closed", hint="raise a new objection if the data is still wrong")
    body = _text(message, "message", MAX_TEXT, multiline=True)
    _message(session, objection, principal, side or "city", body, now or utcnow())
    audit.append(
        session,
        actor=principal.user,
        action="objection.message",
        subject=f"objection:{objection.id}",
        detail={"entry": objection.entry_id, "role": side, "status": objection.status},
    )
    return objection


def close(
    session: Session,
    principal: Principal,
    objection_id: int,
    *,
    message: str | None = None,
    now: dt.datetime | None = None,
) -> Objection:
    """Close the thread: the raising department (satisfied, or withdrawing it) or the city admin."""
    objection = get(session, principal, objection_id)
    side = _side(principal, objection, session)
    if side == "provider":
        raise Forbidden(
            "the department that raised the objection closes it, not the provider",
            hint="answer it (or add a message); the raiser closes it when the answer settles the matter",
        )
    principal.require("exchange:apply" if side == "subscriber" else "exchange:admin")
    if objection.status == "closed":
        raise Conflict(f"objection {objection.id} is closed already", hint="nothing to do")
    at = now or utcnow()
    if message is not None and message.strip():
        _message(session, objection, principal, side or "city", _text(message, "message", MAX_TEXT, multiline=True), at)
    answered = objection.status == "answered"
    objection.status = "closed"
    objection.closed_at = at
    audit.append(
        session,
        actor=principal.user,
        action="objection.close",
        subject=f"objection:{objection.id}",
        detail={"entry": objection.entry_id, "department": objection.department_uscc, "answered": answered},
    )
    return objection


def list_objections(
    session: Session,
    principal: Principal,
    *,
    entry: str | None = None,
    status: str | None = None,
    overdue: bool | None = None,
    now: dt.datetime | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[Objection]:
    """Objections the caller may see, newest first, narrowed to one entry, a status, overdue or not."""
    principal.require("catalog:read")
    query = select(Objection).order_by(Objection.raised_at.desc(), Objection.id.desc())
    if not principal.city:
        if principal.department is None:
            return []
        own_data = select(Entry.id).where(Entry.department_uscc == principal.department)
        query = query.where(or_(Objection.department_uscc == principal.department, Objection.entry_id.in_(own_data)))
    if entry is not None:
        query = query.where(Objection.entry_id == entry)
    if status is not None:
        query = query.where(Objection.status == status)
    if overdue is not None:
        late = and_(Objection.status == "open", Objection.due_at < (now or utcnow()))
        query = query.where(late if overdue else ~late)
    query = query.options(selectinload(Objection.messages)).limit(max(1, min(limit, 1000))).offset(max(0, offset))
    return list(session.scalars(query))


# --- for the assessment -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectionStats:
    """Objections to one department's data (or all) raised in a period, and how they were answered."""

    raised: int
    answered: int
    answered_on_time: int
    overdue_open: int  # open past their deadline now
    open: int  # not answered and not closed, overdue or not
    closed: int

    @property
    def on_time_rate(self) -> float | None:
        """Answered on time / raised (None when nothing was raised)."""
        return self.answered_on_time / self.raised if self.raised else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "on_time_rate": self.on_time_rate}


def objection_stats(
    session: Session,
    department: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    *,
    now: dt.datetime | None = None,
) -> ObjectionStats:
    """Objections to ``department``'s data (the provider; None: every department) raised in ``[since, until)``.

    ``answered`` counts those answered at all, ``answered_on_time`` those answered by their
    deadline; ``overdue_open`` those still open past it at ``now`` (default: the clock).
    """
    for name, value in (("since", since), ("until", until), ("now", now)):
        if value is not None and value.tzinfo is None:
            raise TerminalError(f"{name} must be timezone-aware", hint="e.g. datetime(2026, 1, 1, tzinfo=UTC)")
    at = now or utcnow()
    query = select(
        func.count(),
        func.count(Objection.answered_at),
        _count_if(and_(Objection.answered_at.is_not(None), Objection.answered_at <= Objection.due_at)),
        _count_if(and_(Objection.status == "open", Objection.due_at < at)),
        _count_if(Objection.status == "open"),
        _count_if(Objection.status == "closed"),
    ).select_from(Objection)
    if department is not None:
        query = query.join(Entry, Entry.id == Objection.entry_id).where(Entry.department_uscc == department)
    if since is not None:
        query = query.where(Objection.raised_at >= since)
    if until is not None:
        query = query.where(Objection.raised_at < until)
    raised, answered, on_time, overdue, still_open, closed = session.execute(query).one()
    return ObjectionStats(
        raised=int(raised or 0),
        answered=int(answered or 0),
        answered_on_time=int(on_time or 0),
        overdue_open=int(overdue or 0),
        open=int(still_open or 0),
        closed=int(closed or 0),
    )


def _count_if(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))
