"""Grants (授权): what an approved application allows, until when, how often; revocation; the data-API key.

A grant is made only by approving an application (:func:`exchange.applications.decide` calls
:func:`plan_grant` before it changes anything, and :func:`create_grant` after): the reviewer may
narrow the items applied for, set masking overrides, name join keys, end the grant before the
application's end date, and cap its uses. Everything that can be checked without the data is
checked here, at review time, against the latest published version's schema
(:func:`exchange.delivery_masking.plan_rules`): an unknown rule, a rule on an item not granted, a
masking rule that would make a key collide. Nothing fails later at delivery for a reason the
reviewer could have been told.

``Grant.masking`` holds the reviewer's explicit choices only: item → rule name
(:class:`pipelines.masking.MaskRule`) or ``None`` (clearance: delivered in clear). An item absent
from it gets the default rule at delivery (:func:`exchange.delivery_masking.mask_for_grant`).
The grant expires at the end of the application's end date in Asia/Shanghai unless the reviewer
says earlier.

Who sees a grant: the department that holds it (the subscriber), the department whose resource it
is (the provider), and the city's users (admin, auditor). Anyone else gets 404, never 403: a
department does not learn which grants others hold. Revocation is for the provider's reviewer
(``dept_admin``) or the city admin, with a reason; revoking a revoked grant is a conflict (409)
that names who revoked it and when, so a second reviewer knows the first one acted. The subscriber
department's staff or reviewer issues the per-grant data-API key (:func:`issue_key`): shown once,
only its sha256 is kept, issuing again replaces it. Delivery itself, and counting uses, belong to
the delivery part.

:func:`clean_text` is the input check every free-text field of the exchange's applications and
grants goes through (purpose, scenario, opinions, reasons): trimmed, bounded, no control
characters.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hmac
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true, update
from sqlalchemy.orm import Session, selectinload

from catalog.access import Role
from catalog.models import DataItem, Department, Entry, Version, utcnow
from exchange import audit, notify
from exchange.calendar import SHANGHAI
from exchange.delivery_masking import plan_rules
from exchange.errors import AuthError, Conflict, Forbidden, NotFound
from exchange.identity import KEY_PREFIX, Principal, hash_token, new_secret, split_token
from exchange.models import Grant, record_id
from pipelines.errors import SpecError, TerminalError
from pipelines.masking import MaskRule
from pipelines.spec import DATA_TYPE_CODES

if TYPE_CHECKING:
    from exchange.models import Application

__all__ = [
    "GRANT_READ_SCOPES",
    "MAX_TEXT",
    "MAX_USES",
    "STATES",
    "STATE_LABELS",
    "GrantPlan",
    "aware",
    "check_name",
    "check_names",
    "clean_text",
    "create_grant",
    "department_names",
    "end_of_day",
    "get_grant",
    "grant_dict",
    "grant_for_key",
    "issue_key",
    "list_grants",
    "nearest",
    "now_or",
    "plan_grant",
    "revoke",
    "version_columns",
]

#: Longest free text (purpose, scenario, opinion, reason), in characters.
MAX_TEXT = 2000
#: Largest cap on a grant's uses.
MAX_USES = 1_000_000_000
MAX_NAME = 100

ACTIVE, REVOKED, EXPIRED, EXHAUSTED = "active", "revoked", "expired", "exhausted"
STATES = (ACTIVE, REVOKED, EXPIRED, EXHAUSTED)
STATE_LABELS = {ACTIVE: "有效", REVOKED: "已撤销", EXPIRED: "已过期", EXHAUSTED: "次数已用尽"}

#: Any one of these lets a caller read the grants it may see.
GRANT_READ_SCOPES = frozenset(
    {"exchange:apply", "exchange:deliver", "exchange:review", "exchange:admin", "monitor:read", "audit:read"}
)

GrantRole = Literal["held", "given"]

# Bidirectional overrides and isolates: they make text display other than it reads (spoofing).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_TYPE_OF_CODE = {code: name for name, code in reversed(DATA_TYPE_CODES.items())}


# --- input checks ------------------------------------------------------------------------------


def _bad_char(text: str) -> tuple[int, str] | None:
    for i, ch in enumerate(text):
        if ch in "\t\n\r":
            continue
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI or ch in "\ufffe\uffff":
            return i, ch
    return None


def clean_text(field: str, value: object, *, required: bool = True, limit: int = MAX_TEXT) -> str | None:
    """``value`` trimmed; a :class:`SpecError` naming ``field`` when it is missing, too long or has control characters.

    Line breaks and tabs are allowed; other control characters, lone surrogates and bidirectional
    overrides are not. ``required=False``: empty or ``None`` gives ``None``.
    """
    if value is None:
        if required:
            raise SpecError(f"{field} is required", hint=f"give the {field} as text of 1 to {limit} characters")
        return None
    if not isinstance(value, str):
        raise SpecError(f"{field} must be text, not {type(value).__name__}", hint=f"give the {field} as text")
    if len(value) > 4 * limit:  # refuse a huge value before looking at each character
        raise SpecError(
            f"{field} has {len(value)} characters, more than {limit}",
            hint="shorten it; attach long documents elsewhere and refer to them",
        )
    text = value.strip()
    if not text:
        if required:
            raise SpecError(f"{field} is empty", hint=f"give the {field} as text of 1 to {limit} characters")
        return None
    if len(text) > limit:
        raise SpecError(
            f"{field} has {len(text)} characters, more than {limit}",
            hint="shorten it; attach long documents elsewhere and refer to them",
        )
    bad = _bad_char(text)
    if bad is not None:
        raise SpecError(
            f"{field} holds the control character U+{ord(bad[1]):04X} at position {bad[0] + 1}",
            hint="remove it: plain text (line breaks allowed) only",
        )
    return text


def check_name(field: str, value: object) -> str:
    """A data item's or record's name: text of 1 to 100 characters without control characters."""
    if not isinstance(value, str):
        raise SpecError(f"{field}: {value!r} is not a name", hint="give data item names as text")
    if not value or len(value) > MAX_NAME or _bad_char(value) is not None or value != value.strip():
        shown = value[:60] + ("…" if len(value) > 60 else "")
        raise SpecError(
            f"{field}: {shown!r} is not a data item name",
            hint=f"names are 1 to {MAX_NAME} characters, without spaces around them or control characters",
        )
    return value


def check_names(field: str, values: object, *, limit: int = 500) -> list[str]:
    """A list of names (none twice); :class:`SpecError` naming ``field`` otherwise."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise SpecError(f"{field} must be a list of data item names", hint='e.g. ["stop_id", "stop_name"]')
    if len(values) > limit:
        raise SpecError(f"{field} lists {len(values)} names, more than {limit}", hint="name fewer items")
    names = [check_name(field, v) for v in values]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SpecError(f"{field}: {', '.join(map(repr, twice))} listed twice", hint="name each item once")
    return names


def nearest(name: str, choices: Sequence[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of ``choices``, or nothing."""
    match = difflib.get_close_matches(name[:MAX_NAME], list(choices), n=1, cutoff=0.5)
    return f"did you mean {match[0]!r}? " if match else ""


def aware(value: dt.datetime, what: str) -> dt.datetime:
    """``value`` if it carries a time zone; a :class:`SpecError` naming ``what`` if not."""
    if not isinstance(value, dt.datetime):
        raise SpecError(f"{what} must be a date-time, not {value!r}", hint="e.g. 2027-06-30T18:00:00+08:00")
    if value.tzinfo is None or value.utcoffset() is None:
        raise SpecError(f"{what} {value.isoformat()} has no time zone", hint="e.g. 2027-06-30T18:00:00+08:00")
    return value


def now_or(now: dt.datetime | None) -> dt.datetime:
    """``now`` (timezone-aware) or the current time."""
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise TerminalError("now must be timezone-aware", hint="this is a bug in the caller")
    return now


def end_of_day(day: dt.date) -> dt.datetime:
    """The end of ``day`` in Asia/Shanghai (24:00, i.e. 00:00 of the next day), in UTC."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=SHANGHAI).astimezone(dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


# --- planning and creating a grant -------------------------------------------------------------


@dataclass(frozen=True)
class GrantPlan:
    """A reviewer's approval, checked: what the grant will hold."""

    items: list[str]
    masking: dict[str, str | None]
    join_keys: list[str]
    expires_at: dt.datetime
    max_uses: int | None


def version_columns(session: Session, entry_id: str) -> list[dict[str, Any]]:
    """The schema of the entry's latest published version, or (none published yet) its catalogued data items."""
    latest = session.scalar(
        select(Version).where(Version.entry_id == entry_id).order_by(Version.number.desc()).limit(1)
    )
    if latest is not None and latest.schema:
        return [dict(c) for c in latest.schema]
    items = session.scalars(select(DataItem).where(DataItem.entry_id == entry_id).order_by(DataItem.position))
    return [
        {
            "name": i.name,
            "title": i.title,
            "type": _TYPE_OF_CODE.get(i.type_code, "string"),
            "primary_key": i.primary_key,
            "nullable": i.nullable,
            "sensitive": i.sensitive,
            "masking": i.masking_rule,
        }
        for i in items
    ]


def plan_grant(
    session: Session,
    application: Application,
    *,
    items: Sequence[str] | None = None,
    masking: Mapping[str, str | None] | None = None,
    join_keys: Sequence[str] | None = None,
    expires_at: dt.datetime | None = None,
    max_uses: int | None = None,
    now: dt.datetime | None = None,
) -> GrantPlan:
    """Check a reviewer's approval of ``application`` and return what the grant will hold.

    ``items`` (default: all applied for) must be among the items applied for; ``masking`` maps
    granted items to a rule name or ``None`` (clear); ``join_keys`` are granted items hashed
    rather than masked; ``expires_at`` (timezone-aware) may only end the grant earlier than the
    application's end date; ``max_uses`` caps the uses (1 to :data:`MAX_USES`).
    """
    now = now_or(now)
    applied = [str(i) for i in application.items]
    chosen = applied if items is None else check_names("items", items)
    if not chosen:
        raise SpecError("items: an approval grants at least one data item", hint="refuse the application instead")
    for item in chosen:
        if item not in applied:
            raise SpecError(
                f"items: {item!r} was not applied for, so it cannot be granted",
                hint=f"{nearest(item, applied)}the application asks for: {', '.join(applied)}",
            )
    chosen = [i for i in applied if i in set(chosen)]  # the application's order
    rules: dict[str, str | None] = {}
    if masking is not None:
        if not isinstance(masking, Mapping):
            raise SpecError("masking must map data items to a rule name or null", hint='e.g. {"mobile": "mobile"}')
        if len(masking) > 500:
            raise SpecError(f"masking has {len(masking)} entries, more than 500", hint="give one rule per granted item")
        for item, rule in masking.items():
            check_name("masking", item)
            if rule is not None and not isinstance(rule, str):
                raise SpecError(
                    f"masking: the rule for {item!r} must be a rule name or null",
                    hint=f"use one of: {', '.join(r.value for r in MaskRule)}, or null for clear",
                )
            rules[item] = rule
    keys = [] if join_keys is None else check_names("join_keys", join_keys)
    columns = version_columns(session, application.entry_id)
    plan_rules(columns, chosen, rules, join_keys=keys)  # SpecError naming the item and the fix
    overrides = {item: (None if rule is None else MaskRule(rule).value) for item, rule in rules.items()}
    default_end = end_of_day(application.end_date)
    if default_end <= now:
        raise Conflict(
            f"application {application.id}: its end date {application.end_date} has passed, so a grant would be "
            "expired already",
            hint="refuse it; the applicant may apply again with a later end date",
        )
    if expires_at is None:
        ends = default_end
    else:
        ends = aware(expires_at, "expires_at")
        if ends <= now:
            raise SpecError(
                f"expires_at {ends.isoformat()} is in the past", hint="give a later time, or omit it for the end date"
            )
        if ends > default_end:
            raise SpecError(
                f"expires_at {ends.isoformat()} is after the application's end date {application.end_date}",
                hint=f"a grant may end earlier than applied for, not later; at the latest {default_end.isoformat()}",
            )
        ends = ends.astimezone(dt.UTC)
    if max_uses is not None and (isinstance(max_uses, bool) or not isinstance(max_uses, int)):
        raise SpecError(f"max_uses must be a whole number, not {max_uses!r}", hint="e.g. 100, or omit it for no cap")
    if max_uses is not None and not 1 <= max_uses <= MAX_USES:
        raise SpecError(f"max_uses {max_uses} is not between 1 and {MAX_USES}", hint="omit it for no cap")
    return GrantPlan(items=chosen, masking=overrides, join_keys=keys, expires_at=ends, max_uses=max_uses)


def create_grant(
    session: Session, application: Application, plan: GrantPlan, *, actor: str, now: dt.datetime | None = None
) -> Grant:
    """Create the grant of an approved application (in the caller's transaction) and audit it."""
    now = now_or(now)
    grant = Grant(
        application_id=application.id,
        entry_id=application.entry_id,
        department_uscc=application.department_uscc,
        items=list(plan.items),
        masking=dict(plan.masking),
        join_keys=list(plan.join_keys),
        delivery_method=application.delivery_method,
        target=dict(application.target) if application.target else None,
        granted_at=now,
        granted_by=actor,
        expires_at=plan.expires_at,
        max_uses=plan.max_uses,
        uses=0,
    )
    session.add(grant)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action="grant.create",
        subject=f"grant:{grant.id}",
        detail={
            "application": application.id,
            "entry": application.entry_id,
            "subscriber": application.department_uscc,
            "items": plan.items,
            "masking": plan.masking,
            "join_keys": plan.join_keys,
            "delivery_method": application.delivery_method,
            "expires_at": plan.expires_at,
            "max_uses": plan.max_uses,
        },
    )
    return grant


# --- reading -----------------------------------------------------------------------------------


def _require_read(principal: Principal) -> None:
    if not principal.scopes & GRANT_READ_SCOPES:
        raise Forbidden(
            "this token may not read grants",
            hint=f"use a token with one of the scopes {', '.join(sorted(GRANT_READ_SCOPES))}",
        )


def _may_see(principal: Principal, grant: Grant) -> bool:
    return principal.city or principal.department in (grant.department_uscc, grant.entry.department_uscc)


def get_grant(session: Session, principal: Principal, grant_id: object) -> Grant:
    """Grant ``grant_id`` if ``principal`` may see it; :class:`NotFound` (404) otherwise."""
    _require_read(principal)
    ident = record_id(grant_id)
    grant = None if ident is None else session.get(Grant, ident, options=[selectinload(Grant.entry)])
    if grant is None or not _may_see(principal, grant):
        shown = str(grant_id)[:40]
        raise NotFound(
            f"no grant {shown!r} that you may see",
            hint="`govdata exchange grants` or GET /exchange/v1/grants lists the grants you may see",
        )
    return grant


def _state_clause(state: str, now: dt.datetime) -> ColumnElement[bool]:
    live = Grant.revoked_at.is_(None)
    exhausted = and_(Grant.max_uses.is_not(None), Grant.uses >= Grant.max_uses)
    if state == REVOKED:
        return Grant.revoked_at.is_not(None)
    if state == EXPIRED:
        return and_(live, Grant.expires_at <= now)
    if state == EXHAUSTED:
        return and_(live, Grant.expires_at > now, exhausted)
    return and_(live, Grant.expires_at > now, or_(Grant.max_uses.is_(None), Grant.uses < Grant.max_uses))


def list_grants(
    session: Session,
    principal: Principal,
    *,
    state: str | None = None,
    role: GrantRole | None = None,
    entry: str | None = None,
    limit: int = 50,
    offset: int = 0,
    now: dt.datetime | None = None,
) -> tuple[list[Grant], int]:
    """The grants ``principal`` may see, newest first, and how many there are in all.

    ``role`` narrows a department's view: ``held`` (grants it holds, as subscriber) or ``given``
    (grants on its own resources); for the city, ``given`` means all and ``held`` none.
    """
    _require_read(principal)
    now = now_or(now)
    if state is not None and state not in STATES:
        raise SpecError(f"state {state!r} is not a grant state", hint=f"use one of: {', '.join(STATES)}")
    if role is not None and role not in ("held", "given"):
        raise SpecError(f"role {role!r} is not held or given", hint="held: the grants you hold; given: on your data")
    if not 1 <= limit <= 500 or offset < 0:
        raise SpecError("limit is 1 to 500 and offset at least 0", hint="e.g. limit=50&offset=100")
    query = select(Grant).join(Entry, Grant.entry_id == Entry.id)
    if principal.city:
        query = query.where(false() if role == "held" else true())
    else:
        held = Grant.department_uscc == principal.department
        given = Entry.department_uscc == principal.department
        query = query.where(held if role == "held" else given if role == "given" else or_(held, given))
    if state is not None:
        query = query.where(_state_clause(state, now))
    if entry is not None:
        query = query.where(Grant.entry_id == entry[:200])
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = session.scalars(
        query.options(selectinload(Grant.entry)).order_by(Grant.id.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def department_names(session: Session) -> dict[str, str]:
    """USCC → department name, for answers and tables."""
    return {str(u): str(n) for u, n in session.execute(select(Department.uscc, Department.name))}


def grant_dict(
    grant: Grant, *, now: dt.datetime | None = None, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """One grant as plain data (the API's answer, the CLI's rows); never the key itself."""
    names = names or {}
    state = grant.state(now_or(now))
    provider = grant.entry.department_uscc
    return {
        "id": grant.id,
        "application_id": grant.application_id,
        "entry": grant.entry_id,
        "entry_name": grant.entry.name,
        "provider": provider,
        "provider_name": names.get(provider),
        "subscriber": grant.department_uscc,
        "subscriber_name": names.get(grant.department_uscc),
        "items": list(grant.items),
        "masking": dict(grant.masking or {}),
        "join_keys": list(grant.join_keys or []),
        "delivery_method": grant.delivery_method,
        "target": dict(grant.target) if grant.target else None,
        "granted_at": _utc(grant.granted_at),
        "granted_by": grant.granted_by,
        "expires_at": _utc(grant.expires_at),
        "max_uses": grant.max_uses,
        "uses": grant.uses,
        "state": state,
        "state_label": STATE_LABELS[state],
        "revoked_at": None if grant.revoked_at is None else _utc(grant.revoked_at),
        "revoked_by": grant.revoked_by,
        "revoke_reason": grant.revoke_reason,
        "api_key_id": grant.api_key_id,
        "last_version": grant.last_version,
    }


# --- revocation and keys -----------------------------------------------------------------------


def revoke(
    session: Session, principal: Principal, grant_id: object, *, reason: str | None, now: dt.datetime | None = None
) -> Grant:
    """Revoke a grant: nothing more is delivered under it. The provider's reviewer or the city admin; a reason.

    Revoking a revoked grant is a :class:`Conflict` (409) naming who revoked it and when.
    Expired and exhausted grants may still be revoked (the record then says why it ended).
    """
    principal.require("exchange:review")
    now = now_or(now)
    grant = get_grant(session, principal, grant_id)
    provider = grant.entry.department_uscc
    if not (
        principal.role is Role.CITY_ADMIN or (principal.role is Role.DEPT_ADMIN and principal.department == provider)
    ):
        raise Forbidden(
            f"grant {grant.id} may be revoked only by the reviewer of the providing department ({provider}) "
            "or the city admin",
            hint="ask the providing department's reviewer (dept_admin) or the city admin",
        )
    text = clean_text("reason", reason)
    if grant.revoked_at is None:
        done = session.execute(
            update(Grant)
            .where(Grant.id == grant.id, Grant.revoked_at.is_(None))
            .values(revoked_at=now, revoked_by=principal.user, revoke_reason=text)
            .execution_options(synchronize_session=False)
        )
        changed = getattr(done, "rowcount", 0) == 1
    else:
        changed = False
    session.refresh(grant)
    if not changed:
        when = _utc(grant.revoked_at).isoformat(timespec="seconds") if grant.revoked_at else "earlier"
        raise Conflict(
            f"grant {grant.id} was revoked already, at {when} by {grant.revoked_by}: {grant.revoke_reason}",
            hint="nothing more to do: a revoked grant delivers nothing",
        )
    audit.append(
        session,
        actor=principal.user,
        action="grant.revoke",
        subject=f"grant:{grant.id}",
        detail={"entry": grant.entry_id, "subscriber": grant.department_uscc, "reason": text},
    )
    notify.emit(
        session,
        department=grant.department_uscc,
        event="grant.revoked",
        payload={
            "grant": grant.id,
            "application": grant.application_id,
            "entry": grant.entry_id,
            "reason": text,
            "revoked_at": now,
        },
    )
    return grant


def issue_key(session: Session, grant: Grant, actor: Principal) -> str:
    """A new data-API key for ``grant`` (接口服务), returned once; only its sha256 is kept.

    For the subscriber department's staff or reviewer (scope ``exchange:deliver``), on an active
    grant delivered by ``api``. Issuing again replaces the old key at once.
    """
    actor.require("exchange:deliver")
    if actor.department is None or actor.department != grant.department_uscc:
        raise Forbidden(
            f"the key of grant {grant.id} is issued to the subscribing department ({grant.department_uscc}) only",
            hint="a user of that department (staff or reviewer) issues it",
        )
    state = grant.state()
    if state != ACTIVE:
        raise Conflict(
            f"grant {grant.id} is {state} ({STATE_LABELS[state]}): no key is issued for it",
            hint="apply again for a new grant",
        )
    if grant.delivery_method != "api":
        raise Conflict(
            f"grant {grant.id} is delivered by {grant.delivery_method}, not by the data API: it has no API key",
            hint="file and database deliveries use the department's API token (scope exchange:deliver)",
        )
    ident, key, digest = new_secret(KEY_PREFIX)
    replaced = grant.api_key_id
    grant.api_key_id = ident
    grant.api_key_sha256 = digest
    session.flush()
    audit.append(
        session,
        actor=actor.user,
        action="grant.key",
        subject=f"grant:{grant.id}",
        detail={"key_id": ident, "replaced": replaced},
    )
    return key


def grant_for_key(session: Session, key: str) -> Grant:
    """The grant a data-API key belongs to; :class:`AuthError` (401) for a malformed, unknown or replaced key.

    The grant's state (revoked, expired, exhausted) is for the caller to check.
    """
    ident = split_token(key, KEY_PREFIX) if isinstance(key, str) else None
    grant = session.scalar(select(Grant).where(Grant.api_key_id == ident)) if ident else None
    if grant is None or grant.api_key_sha256 is None or not hmac.compare_digest(grant.api_key_sha256, hash_token(key)):
        raise AuthError(
            "the data-API key is not valid", hint="issue a key with POST /exchange/v1/grants/{id}/key (shown once)"
        )
    return grant
