"""Applications (申请) for another department's data, and their review (审核) against working-day deadlines.

Life of an application::

    submit ──▶ pending ──approve──▶ approved (+ a grant, exchange.grants)
                  │ ├──refuse───▶ refused   (a reason is required)
                  │ └──withdraw─▶ withdrawn (by the applying department)
                  └ 不予共享: recorded as refused at once, decided by "system", with the recorded basis

Who reviews follows the share type (DOMAIN.md, "Exchange"), the strictest of the resource's and
of each requested item's (an item may be narrower than its resource):

* 无条件共享 → ``city``: the city platform's conformity check (the city admin), 2 working days;
* 有条件共享 → ``provider``: the providing department's reviewer (``dept_admin``) decides, or the
  city admin; 5 working days, 10 when the data must first be published (the entry has no
  published version yet);
* 不予共享 → no review: the application is stored as ``refused`` with the resource's recorded basis
  (``Entry.share_condition``) or a standard sentence, so the applicant sees why.

Deadlines come from :func:`exchange.deadlines.review_deadline` (configurable periods, the
working-day calendar of :mod:`exchange.calendar`) and are stored as ``due_at``;
:func:`pending_with_deadlines` reports each pending application's state against it (on time,
due today, overdue) and its age in working days, for the reviewers' queues and the dashboard.

Visibility: a department sees the applications it made and those for its own resources; the city
(admin, auditor) sees all. Anything else is "not found" (404), never "forbidden": a department
does not learn what others asked for. Every change of status is a compare-and-set (``UPDATE …
WHERE status = 'pending'``), so of two reviewers deciding at once exactly one wins and the other
gets a conflict (409). Each submission, decision and withdrawal is written to the audit log in the
same transaction, and the other side is notified (:func:`exchange.notify.emit`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from sqlalchemy import ColumnElement, false, func, or_, select, true, update
from sqlalchemy.orm import Session, selectinload

from catalog.access import Role, Status, visibility_filter
from catalog.models import Entry, Version
from exchange import audit, notify
from exchange.calendar import SHANGHAI, CalendarError, WorkdayCalendar, default_calendar
from exchange.deadlines import (
    Deadline,
    DeadlineConfig,
    DeadlineState,
    NotRequestableError,
    parse_share_type,
    review_deadline,
)
from exchange.errors import Conflict, Forbidden, NotFound
from exchange.grants import (
    check_names,
    clean_text,
    create_grant,
    department_names,
    nearest,
    now_or,
    plan_grant,
)
from exchange.identity import Principal
from exchange.models import Application, Grant, record_id
from pipelines.errors import SpecError
from pipelines.spec import ShareType

__all__ = [
    "APPLICATION_READ_SCOPES",
    "METHODS",
    "METHOD_LABELS",
    "REVIEWER_LABELS",
    "STATUSES",
    "STATUS_LABELS",
    "SYSTEM_ACTOR",
    "application_dict",
    "deadline_status",
    "decide",
    "get_application",
    "grants_of",
    "list_applications",
    "parse_method",
    "pending_with_deadlines",
    "review_queue",
    "submit",
    "visible_pending",
    "withdraw",
]

log = logging.getLogger(__name__)

PENDING, APPROVED, REFUSED, WITHDRAWN = "pending", "approved", "refused", "withdrawn"
STATUSES = (PENDING, APPROVED, REFUSED, WITHDRAWN)
STATUS_LABELS = {PENDING: "待审核", APPROVED: "已通过", REFUSED: "已拒绝", WITHDRAWN: "已撤回"}

CITY, PROVIDER, SYSTEM = "city", "provider", "system"
REVIEWER_LABELS = {CITY: "市级平台符合性审查", PROVIDER: "提供方审核", SYSTEM: "系统（不予共享）"}
#: Who decides an application refused at once (a reserved id: no user can be called so).
SYSTEM_ACTOR = "system"

METHODS = ("file", "database", "api")
METHOD_LABELS = {"file": "文件交换", "database": "库表交换", "api": "接口服务"}
_METHOD_ALIASES = {
    **{m: m for m in METHODS},
    "文件": "file",
    "文件交换": "file",
    "db": "database",
    "数据库": "database",
    "库表": "database",
    "库表交换": "database",
    "接口": "api",
    "接口服务": "api",
}

#: Any one of these lets a caller read the applications it may see.
APPLICATION_READ_SCOPES = frozenset(
    {"exchange:apply", "exchange:review", "exchange:admin", "monitor:read", "audit:read"}
)

MAX_ITEMS = 500
MAX_YEARS = 5
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")
_SQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_RANK = {ShareType.UNCONDITIONAL: 0, ShareType.CONDITIONAL: 1, ShareType.NOT_SHARED: 2}

AppRole = Literal["incoming", "outgoing"]
Side = Literal["provider", "applicant", "either"]


# --- input checks ------------------------------------------------------------------------------


def parse_method(value: object) -> str:
    """A delivery method (file, database, api) from its code or Chinese name (文件, 库表, 接口 …)."""
    found = _METHOD_ALIASES.get(value.strip().lower()) if isinstance(value, str) else None
    if found is None:
        shown = value[:40] if isinstance(value, str) else value
        raise SpecError(
            f"delivery_method {shown!r} is not a delivery method",
            hint="use file (文件交换), database (库表交换) or api (接口服务)",
        )
    return found


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _check_end_date(value: object, now: dt.datetime) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise SpecError(f"end_date {value!r} is not a date", hint="give a date like 2027-06-30")
    today = now.astimezone(SHANGHAI).date()
    if value <= today:
        raise SpecError(
            f"end_date {value} is not in the future (today is {today} in Asia/Shanghai)",
            hint="the use ends at the end of end_date: give a later date",
        )
    latest = _add_years(today, MAX_YEARS)
    if value > latest:
        raise SpecError(
            f"end_date {value} is more than {MAX_YEARS} years ahead",
            hint=f"give a date up to {latest}; apply again when the time comes",
        )
    return value


def _check_target(method: str, target: object) -> dict[str, str] | None:
    if method != "database":
        if target:
            raise SpecError(
                f"target: only database delivery takes a target, this application asks for {method}",
                hint="drop the target, or choose the delivery method database",
            )
        return None
    if not isinstance(target, Mapping) or not target:
        raise SpecError(
            "target: database delivery needs a target: {url_env, table, schema (optional)}",
            hint='e.g. {"url_env": "SUBSCRIBER_DB_URL", "table": "insured_persons"}; the variable holds the '
            "SQLAlchemy URL of the receiving database",
        )
    unknown = [str(k)[:40] for k in target if k not in ("url_env", "table", "schema")]
    if unknown:
        raise SpecError(
            f"target: unknown key(s) {', '.join(map(repr, unknown))}; an application holds no secrets",
            hint="name the environment variable that holds the database URL in target.url_env; "
            "put no URL, user or password in the application",
        )
    url_env = target.get("url_env")
    if not isinstance(url_env, str) or not _ENV_NAME.fullmatch(url_env):
        # Never echo the value: it may be the URL itself, password included.
        raise SpecError(
            "target.url_env is not the name of an environment variable",
            hint="give a name like SUBSCRIBER_DB_URL (upper-case letters, digits, _): the variable holds the "
            "SQLAlchemy URL where deliveries run; never put the URL itself here",
        )
    table = target.get("table")
    if not isinstance(table, str) or not _SQL_NAME.fullmatch(table):
        shown = table[:40] if isinstance(table, str) else table
        raise SpecError(
            f"target.table {shown!r} is not a table name",
            hint="1 to 63 letters, digits or _, starting with a letter or _ (e.g. insured_persons)",
        )
    checked = {"url_env": url_env, "table": table}
    schema = target.get("schema")
    if schema is not None and schema != "":
        if not isinstance(schema, str) or not _SQL_NAME.fullmatch(schema):
            shown = schema[:40] if isinstance(schema, str) else schema
            raise SpecError(
                f"target.schema {shown!r} is not a schema name",
                hint="1 to 63 letters, digits or _, starting with a letter or _; or omit it for the default",
            )
        checked["schema"] = schema
    return checked


def _check_items(entry: Entry, items: object) -> list[str]:
    names = check_names("items", items, limit=MAX_ITEMS)
    known = [i.name for i in entry.items]
    if not names:
        raise SpecError("items: name at least one data item", hint=f"the items of {entry.id!r} are: {', '.join(known)}")
    for name in names:
        if name not in known:
            raise SpecError(
                f"items: {name!r} is not a data item of {entry.id!r}",
                hint=f"{nearest(name, known)}its items are: {', '.join(known)}",
            )
    wanted = set(names)
    return [n for n in known if n in wanted]  # the catalog's order


def _visible_entry(session: Session, principal: Principal, entry_id: object) -> Entry:
    ident = entry_id if isinstance(entry_id, str) else ""
    found = None
    if 0 < len(ident) <= 100 and ident.isprintable():
        found = session.scalar(
            select(Entry)
            .options(selectinload(Entry.items))
            .where(Entry.id == ident, visibility_filter(principal.viewer))
        )
    if found is None or (found.status != Status.PUBLISHED.value and found.department_uscc != principal.department):
        known = list(
            session.scalars(
                select(Entry.id).where(visibility_filter(principal.viewer), Entry.status == Status.PUBLISHED.value)
            )
        )
        near = difflib.get_close_matches(ident[:100], known, n=1)
        raise NotFound(
            f"no published catalog entry {ident[:100]!r} that you may see",
            hint=(f"did you mean {near[0]!r}? " if near else "") + "search the catalog for published resources",
        )
    return found


def _share_types(entry: Entry, items: Sequence[str]) -> tuple[ShareType, list[str]]:
    """The strictest share type of the resource and the requested items, and the items that are 不予共享."""
    kind = parse_share_type(entry.share_type)
    not_shared: list[str] = []
    wanted = set(items)
    for item in entry.items:
        if item.name in wanted and item.share_type:
            own = parse_share_type(item.share_type)
            if own is ShareType.NOT_SHARED:
                not_shared.append(item.name)
            if _RANK[own] > _RANK[kind]:
                kind = own
    return kind, not_shared


def _refusal_basis(entry: Entry, not_shared_items: Sequence[str]) -> str:
    if parse_share_type(entry.share_type) is ShareType.NOT_SHARED:
        recorded = (entry.share_condition or "").strip()
        return recorded or (f"信息资源“{entry.name}”的共享类型为不予共享，依据目录登记不向其他部门提供，不能申请。")
    return f"数据项 {', '.join(not_shared_items)} 的共享类型为不予共享，不能申请；去掉这些数据项后可重新申请。"


# --- submitting --------------------------------------------------------------------------------


def submit(
    session: Session,
    principal: Principal,
    *,
    entry: str,
    items: Sequence[str],
    purpose: str,
    scenario: str,
    delivery_method: str,
    end_date: dt.date,
    target: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
    config: DeadlineConfig | None = None,
    calendar: WorkdayCalendar | None = None,
) -> Application:
    """Apply, for ``principal``'s department, for ``items`` of the published resource ``entry``.

    Returns the stored application: ``pending`` with its reviewer and ``due_at``, or ``refused``
    at once (decided by ``system``) when the resource or a requested item is 不予共享. Errors:
    :class:`Forbidden` for a caller that may not apply or for its own department's resource,
    :class:`NotFound` for an entry it cannot see, :class:`SpecError` naming the bad field.
    """
    principal.require("exchange:apply")
    if principal.department is None or principal.role not in (Role.STAFF, Role.DEPT_ADMIN):
        raise Forbidden(
            "only a department's staff or reviewer may apply for data",
            hint="act as a user of the department that needs the data",
        )
    now = now_or(now)
    found = _visible_entry(session, principal, entry)
    if found.department_uscc == principal.department:
        raise Forbidden(
            f"{found.id!r} is a resource of your own department: a department does not apply for its own data",
            hint="use it directly; applications are for other departments' resources",
        )
    names = _check_items(found, items)
    purpose_text = clean_text("purpose (事由)", purpose)
    scenario_text = clean_text("scenario (应用场景)", scenario)
    method = parse_method(delivery_method)
    until = _check_end_date(end_date, now)
    place = _check_target(method, target)
    kind, not_shared_items = _share_types(found, names)
    published = session.scalar(select(func.count()).select_from(Version).where(Version.entry_id == found.id)) or 0
    try:
        deadline: Deadline | None = review_deadline(
            kind,
            now,
            needs_publication=published == 0,
            config=config,
            calendar=calendar,
            not_shared_basis=found.share_condition,
        )
    except NotRequestableError:
        deadline = None
    app = Application(
        entry_id=found.id,
        department_uscc=principal.department,
        applicant=principal.user,
        items=names,
        purpose=purpose_text,
        scenario=scenario_text,
        delivery_method=method,
        end_date=until,
        target=place,
        share_type=kind.value,
        reviewer=SYSTEM if deadline is None else (CITY if kind is ShareType.UNCONDITIONAL else PROVIDER),
        status=PENDING,
        submitted_at=now,
        due_at=None if deadline is None else deadline.due_at.astimezone(dt.UTC),
    )
    if deadline is None:
        app.status = REFUSED
        app.decided_at = now
        app.decided_by = SYSTEM_ACTOR
        app.reason = _refusal_basis(found, not_shared_items)
    session.add(app)
    session.flush()
    subject = f"application:{app.id}"
    audit.append(
        session,
        actor=principal.user,
        action="application.submit",
        subject=subject,
        detail={
            "entry": found.id,
            "provider": found.department_uscc,
            "applicant_department": principal.department,
            "items": names,
            "delivery_method": method,
            "end_date": until,
            "share_type": kind.value,
            "reviewer": app.reviewer,
            "due_at": app.due_at,
            "basis": None if deadline is None else deadline.basis,
        },
    )
    if deadline is None:
        audit.append(
            session,
            actor=SYSTEM_ACTOR,
            action="application.refuse",
            subject=subject,
            detail={"reason": app.reason, "share_type": kind.value, "not_shared_items": not_shared_items},
        )
        notify.emit(session, department=app.department_uscc, event="application.decided", payload=_decided(app, None))
    else:
        notify.emit(
            session,
            department=found.department_uscc,
            event="application.submitted",
            payload={
                "application": app.id,
                "entry": found.id,
                "entry_name": found.name,
                "applicant_department": principal.department,
                "items": names,
                "delivery_method": method,
                "reviewer": app.reviewer,
                "due_at": app.due_at,
            },
        )
    return app


def _decided(app: Application, grant: Grant | None) -> dict[str, Any]:
    return {
        "application": app.id,
        "entry": app.entry_id,
        "status": app.status,
        "reason": app.reason,
        "decided_at": app.decided_at,
        "grant": None if grant is None else grant.id,
    }


# --- reading -----------------------------------------------------------------------------------


def _require_read(principal: Principal) -> None:
    if not principal.scopes & APPLICATION_READ_SCOPES:
        raise Forbidden(
            "this token may not read applications",
            hint=f"use a token with one of the scopes {', '.join(sorted(APPLICATION_READ_SCOPES))}",
        )


def get_application(session: Session, principal: Principal, application_id: object) -> Application:
    """Application ``application_id`` if ``principal`` may see it; :class:`NotFound` (404) otherwise."""
    _require_read(principal)
    ident = record_id(application_id)
    app = None if ident is None else session.get(Application, ident, options=[selectinload(Application.entry)])
    if app is None or not (principal.city or principal.department in (app.department_uscc, app.entry.department_uscc)):
        raise NotFound(
            f"no application {str(application_id)[:40]!r} that you may see",
            hint="`govdata exchange applications` or GET /exchange/v1/applications lists those you may see",
        )
    return app


def _side_clause(principal: Principal, role: AppRole | None) -> ColumnElement[bool]:
    if principal.city:
        if role == "incoming":
            return Application.reviewer == CITY
        return false() if role == "outgoing" else true()
    mine = Application.department_uscc == principal.department
    theirs = Entry.department_uscc == principal.department
    return mine if role == "outgoing" else theirs if role == "incoming" else or_(mine, theirs)


def list_applications(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    role: AppRole | None = None,
    entry: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Application], int]:
    """The applications ``principal`` may see, newest first, and how many there are in all.

    ``role``: ``outgoing`` (the department's own applications) or ``incoming`` (for its
    resources); for the city, ``incoming`` means those the city's conformity check decides and
    ``outgoing`` none (the city applies for nothing).
    """
    _require_read(principal)
    if status is not None and status not in STATUSES:
        raise SpecError(f"status {status!r} is not an application status", hint=f"use one of: {', '.join(STATUSES)}")
    if role is not None and role not in ("incoming", "outgoing"):
        raise SpecError(
            f"role {role!r} is not incoming or outgoing",
            hint="incoming: applications for your data; outgoing: your department's own",
        )
    if not 1 <= limit <= 500 or offset < 0:
        raise SpecError("limit is 1 to 500 and offset at least 0", hint="e.g. limit=50&offset=100")
    query = select(Application).join(Entry, Application.entry_id == Entry.id).where(_side_clause(principal, role))
    if status is not None:
        query = query.where(Application.status == status)
    if entry is not None:
        query = query.where(Application.entry_id == entry[:200])
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = session.scalars(
        query.options(selectinload(Application.entry)).order_by(Application.id.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def grants_of(session: Session, applications: Sequence[Application]) -> dict[int, int]:
    """Application id → the id of its grant, for the approved ones among ``applications``."""
    ids = [a.id for a in applications if a.status == APPROVED]
    if not ids:
        return {}
    return {
        int(a): int(g)
        for a, g in session.execute(select(Grant.application_id, Grant.id).where(Grant.application_id.in_(ids)))
    }


# --- deadlines ---------------------------------------------------------------------------------


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def deadline_status(
    app: Application, now: dt.datetime | None = None, *, calendar: WorkdayCalendar | None = None
) -> dict[str, Any] | None:
    """A pending application's standing against its deadline at ``now``; ``None`` when it is decided.

    ``state`` is that of :meth:`exchange.deadlines.Deadline.status` (``on_time``, ``due_today``,
    ``overdue``). Where the working-day calendar has no table for a year it must count, the state
    still follows from the times, and the working-day counts are ``None`` (logged).
    """
    if app.status != PENDING or app.due_at is None:
        return None
    now = now_or(now)
    cal = calendar or default_calendar()
    submitted, due = _utc(app.submitted_at), _utc(app.due_at)
    remaining: int | None
    overdue: int | None
    age: int | None
    try:
        recorded = Deadline(
            share_type=parse_share_type(app.share_type),
            submitted_at=submitted.astimezone(SHANGHAI),
            due_at=due,
            working_days=cal.working_days_between(submitted, due),
            needs_publication=False,  # not needed to place ``now`` against the recorded due date
            basis="the due date recorded at submission",
            calendar=cal,
        )
        status = recorded.status(now)
        state, remaining, overdue = status.state, status.remaining_working_days, status.overdue_working_days
        age = cal.working_days_between(submitted, now)
    except CalendarError as exc:
        log.warning("application %s: working days not counted: %s", app.id, exc.message)
        if now > due:
            state = DeadlineState.OVERDUE
        elif now.astimezone(SHANGHAI).date() == due.astimezone(SHANGHAI).date():
            state = DeadlineState.DUE_TODAY
        else:
            state = DeadlineState.ON_TIME
        remaining = overdue = age = None
    return {
        "state": state.value,
        "state_label": state.chinese,
        "remaining_working_days": remaining,
        "overdue_working_days": overdue,
        "age_working_days": age,
    }


def pending_with_deadlines(
    session: Session,
    department: str | None = None,
    now: dt.datetime | None = None,
    *,
    side: Side = "provider",
    reviewer: str | None = None,
    calendar: WorkdayCalendar | None = None,
) -> list[dict[str, Any]]:
    """Every pending application with its deadline state, the most urgent first.

    ``department`` (a USCC) narrows to the applications for its resources (``side="provider"``,
    the default: what it must answer), those it made (``"applicant"``) or either; ``reviewer``
    to ``city`` or ``provider``. Each dict: ``id``, ``entry``, ``entry_name``, ``provider``,
    ``provider_name``, ``applicant_department``, ``applicant_department_name``, ``applicant``,
    ``reviewer``, ``share_type``, ``items``, ``delivery_method``, ``submitted_at``, ``due_at``
    (aware UTC), ``state`` (on_time, due_today, overdue), ``state_label``,
    ``remaining_working_days``, ``overdue_working_days``, ``age_working_days``.
    """
    now = now_or(now)
    query = (
        select(Application)
        .join(Entry, Application.entry_id == Entry.id)
        .where(Application.status == PENDING)
        .options(selectinload(Application.entry))
    )
    if department is not None:
        provides = Entry.department_uscc == department
        applies = Application.department_uscc == department
        query = query.where(
            provides if side == "provider" else applies if side == "applicant" else or_(provides, applies)
        )
    if reviewer is not None:
        query = query.where(Application.reviewer == reviewer)
    names = department_names(session)
    cal = calendar or default_calendar()
    rows = []
    for app in session.scalars(query.order_by(Application.due_at, Application.id)):
        standing = deadline_status(app, now, calendar=cal) or {}
        rows.append(
            {
                "id": app.id,
                "entry": app.entry_id,
                "entry_name": app.entry.name,
                "provider": app.entry.department_uscc,
                "provider_name": names.get(app.entry.department_uscc),
                "applicant_department": app.department_uscc,
                "applicant_department_name": names.get(app.department_uscc),
                "applicant": app.applicant,
                "reviewer": app.reviewer,
                "share_type": app.share_type,
                "items": list(app.items),
                "delivery_method": app.delivery_method,
                "submitted_at": _utc(app.submitted_at),
                "due_at": None if app.due_at is None else _utc(app.due_at),
                **standing,
            }
        )
    return rows


def review_queue(
    session: Session, principal: Principal, now: dt.datetime | None = None, *, calendar: WorkdayCalendar | None = None
) -> list[dict[str, Any]]:
    """The pending applications ``principal`` may decide, with their deadline states.

    The city admin: every pending application (its own conformity checks and the providers'
    reviews, which it may also decide and must chase when overdue); a department's reviewer: the
    provider reviews of its department's resources.
    """
    principal.require("exchange:review")
    if principal.role is Role.CITY_ADMIN:
        return pending_with_deadlines(session, now=now, calendar=calendar)
    if principal.role is not Role.DEPT_ADMIN or principal.department is None:
        return []
    return pending_with_deadlines(session, principal.department, now, reviewer=PROVIDER, calendar=calendar)


def visible_pending(
    session: Session, principal: Principal, now: dt.datetime | None = None, *, calendar: WorkdayCalendar | None = None
) -> list[dict[str, Any]]:
    """The pending applications ``principal`` may see (made by or for its department; the city: all)."""
    _require_read(principal)
    if principal.city:
        return pending_with_deadlines(session, now=now, calendar=calendar)
    if principal.department is None:
        return []
    return pending_with_deadlines(session, principal.department, now, side="either", calendar=calendar)


def application_dict(
    app: Application,
    *,
    now: dt.datetime | None = None,
    grant_id: int | None = None,
    names: Mapping[str, str] | None = None,
    calendar: WorkdayCalendar | None = None,
) -> dict[str, Any]:
    """One application as plain data (the API's answer, the CLI's rows), with its deadline state when pending."""
    names = names or {}
    provider = app.entry.department_uscc
    return {
        "id": app.id,
        "entry": app.entry_id,
        "entry_name": app.entry.name,
        "provider": provider,
        "provider_name": names.get(provider),
        "applicant_department": app.department_uscc,
        "applicant_department_name": names.get(app.department_uscc),
        "applicant": app.applicant,
        "items": list(app.items),
        "purpose": app.purpose,
        "scenario": app.scenario,
        "delivery_method": app.delivery_method,
        "end_date": app.end_date,
        "target": dict(app.target) if app.target else None,
        "share_type": app.share_type,
        "reviewer": app.reviewer,
        "reviewer_label": REVIEWER_LABELS.get(app.reviewer, app.reviewer),
        "status": app.status,
        "status_label": STATUS_LABELS.get(app.status, app.status),
        "submitted_at": _utc(app.submitted_at),
        "due_at": None if app.due_at is None else _utc(app.due_at),
        "decided_at": None if app.decided_at is None else _utc(app.decided_at),
        "decided_by": app.decided_by,
        "reason": app.reason,
        "grant_id": grant_id,
        "deadline": deadline_status(app, now, calendar=calendar),
    }


# --- deciding ----------------------------------------------------------------------------------


def _check_reviewer(app: Application, principal: Principal) -> None:
    if app.reviewer == CITY and principal.role is not Role.CITY_ADMIN:
        raise Forbidden(
            f"application {app.id} is for {app.share_type} data: the city platform's conformity check decides it",
            hint="the city admin decides it",
        )
    if app.reviewer == PROVIDER and not (
        principal.role is Role.CITY_ADMIN
        or (principal.role is Role.DEPT_ADMIN and principal.department == app.entry.department_uscc)
    ):
        raise Forbidden(
            f"application {app.id} is decided by the providing department's reviewer "
            f"({app.entry.department_uscc}) or the city admin",
            hint="ask the providing department's reviewer (dept_admin)",
        )


def _not_pending(app: Application) -> Conflict:
    when = _utc(app.decided_at).isoformat(timespec="seconds") if app.decided_at else "earlier"
    return Conflict(
        f"application {app.id} is {app.status} ({STATUS_LABELS.get(app.status, app.status)}) already, "
        f"since {when} by {app.decided_by}",
        hint="a decided application is not decided again; the applicant may apply again",
    )


def _set_status(
    session: Session, app: Application, status: str, *, by: str, reason: str | None, now: dt.datetime
) -> None:
    """Compare-and-set ``pending`` → ``status``: of two concurrent deciders only one changes the row."""
    done = session.execute(
        update(Application)
        .where(Application.id == app.id, Application.status == PENDING)
        .values(status=status, decided_at=now, decided_by=by, reason=reason)
        .execution_options(synchronize_session=False)
    )
    session.refresh(app)
    if getattr(done, "rowcount", 0) != 1:
        raise _not_pending(app)


def decide(
    session: Session,
    principal: Principal,
    application_id: object,
    *,
    approve: bool,
    opinion: str | None = None,
    items: Sequence[str] | None = None,
    masking: Mapping[str, str | None] | None = None,
    join_keys: Sequence[str] | None = None,
    expires_at: dt.datetime | None = None,
    max_uses: int | None = None,
    now: dt.datetime | None = None,
) -> tuple[Application, Grant | None]:
    """Approve (creating the grant) or refuse (``opinion`` required) a pending application.

    Only its reviewer decides (the city admin for ``city``; the providing department's
    ``dept_admin`` or the city admin for ``provider``), with scope ``exchange:review``. The grant's
    terms (``items`` a subset of those applied for, ``masking`` overrides, ``join_keys``,
    ``expires_at``, ``max_uses``) are checked by :func:`exchange.grants.plan_grant` before anything
    changes. A decided application gives :class:`Conflict` (409), also to the loser of a race.
    """
    principal.require("exchange:review")
    now = now_or(now)
    app = get_application(session, principal, application_id)
    if app.status != PENDING:
        raise _not_pending(app)
    _check_reviewer(app, principal)
    text = clean_text("opinion", opinion, required=not approve)
    if not approve:
        extra = [
            name
            for name, value in (
                ("items", items),
                ("masking", masking),
                ("join_keys", join_keys),
                ("expires_at", expires_at),
                ("max_uses", max_uses),
            )
            if value is not None
        ]
        if extra:
            raise SpecError(
                f"{', '.join(extra)}: these are terms of an approval; a refusal takes only its reason (opinion)",
                hint="drop them, or approve instead",
            )
    plan = (
        plan_grant(
            session,
            app,
            items=items,
            masking=masking,
            join_keys=join_keys,
            expires_at=expires_at,
            max_uses=max_uses,
            now=now,
        )
        if approve
        else None
    )
    _set_status(session, app, APPROVED if approve else REFUSED, by=principal.user, reason=text, now=now)
    audit.append(
        session,
        actor=principal.user,
        action="application.approve" if approve else "application.refuse",
        subject=f"application:{app.id}",
        detail={
            "entry": app.entry_id,
            "applicant_department": app.department_uscc,
            "reviewer": app.reviewer,
            "role": principal.role.value,
            "opinion": text,
            "items": None if plan is None else plan.items,
        },
    )
    grant = None if plan is None else create_grant(session, app, plan, actor=principal.user, now=now)
    notify.emit(session, department=app.department_uscc, event="application.decided", payload=_decided(app, grant))
    return app, grant


def withdraw(
    session: Session,
    principal: Principal,
    application_id: object,
    *,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> Application:
    """Withdraw a pending application: for the applying department's staff or reviewer only."""
    principal.require("exchange:apply")
    now = now_or(now)
    app = get_application(session, principal, application_id)
    if principal.department != app.department_uscc:
        raise Forbidden(
            f"application {app.id} was made by another department ({app.department_uscc}); only it may withdraw it",
            hint="refuse it instead, if you are its reviewer",
        )
    if app.status != PENDING:
        raise _not_pending(app)
    text = clean_text("reason", reason, required=False)
    _set_status(session, app, WITHDRAWN, by=principal.user, reason=text, now=now)
    audit.append(
        session,
        actor=principal.user,
        action="application.withdraw",
        subject=f"application:{app.id}",
        detail={"entry": app.entry_id, "reason": text},
    )
    return app
