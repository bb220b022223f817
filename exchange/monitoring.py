"""Monitoring of the exchange (监测): what moved, what failed, how fast, what waits, what is stale.

Every function reads the platform database through one :class:`~sqlalchemy.orm.Session` and
returns plain dicts (JSON-ready apart from ``datetime`` values, which are UTC). Counting,
grouping, per-day bucketing and percentiles happen in SQL, on SQLite, PostgreSQL and
MySQL/MariaDB alike; Python only fills in days without traffic and applies the working-day
calendar and the update cycles, which are rules rather than sums.

The filters: :class:`Scope`
---------------------------
A period ``[since, until)`` (timezone-aware; dates are taken at 00:00 in Asia/Shanghai, see
:func:`parse_moment` and :func:`parse_period`) and optionally a department (its USCC) with the
side it is seen from:

===============  ==============================================================================
``provider``     the department's resources: deliveries and API calls of them, applications for
                 them, their freshness, who consumes them
``subscriber``   the department as consumer: deliveries to it, its API calls, its applications
``any``          either (the default): everything the department takes part in
===============  ==============================================================================

Freshness and consumers look at resources, so a department filter there always means the
provider; notifications belong to the department they are sent to; an audit event concerns a
department when one of its users acted, or its subject (``<kind>:<id>``, see
:func:`audit_events`) is the department, one of its catalog entries, or an application,
grant, delivery, objection, upload, webhook or notification it takes part in.

Days are calendar days in Asia/Shanghai (UTC+8, no daylight saving): a delivery counts on the
day it finished, or started when it has not finished. Pending applications and freshness are
states at ``now``, not sums over the period: an application pending for forty days is shown
whatever period is chosen.

Definitions
-----------
- **rows delivered**: the rows of succeeded deliveries; a failed attempt delivered nothing. The
  data API (接口服务) writes one receipt per grant, version and day with the rows of its pages, so
  these counts include the API's rows; :func:`consumers` separates the two.
- **API call success**: an HTTP status from 200 to 399; anything else counts as failed.
- **latency percentiles**: ``percentile_cont`` (linear interpolation between the two nearest
  ranks), computed in SQL with window functions (``row_number`` over the values in order), so
  every database gives the same p50/p95 without fetching the values.
- **pending application states**: ``on_time`` (more than one working day left), ``due_soon``
  (due today or on the next working day: ≤ 1 working day left), ``overdue`` (past ``due_at``);
  working days from :mod:`exchange.calendar` (the State Council's schedules).
- **freshness**: a version is expected in every period of the declared update cycle (更新周期:
  实时 and 每日 a day, 每周 an ISO week from Monday, 每月, 每季度, 半年, 每年; local time). A
  resource is ``fresh`` until the end of the period after the one of its last version, and
  ``late`` after that (by how long); ``never`` when it is published but has no version; 其他
  declares no cycle (``no_cycle``). 实时 counts per day: a real-time feed shows its lag in the
  deliveries, not in versions.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, and_, case, cast, func, literal, or_, select
from sqlalchemy.orm import Session

from catalog.models import AuditEvent, Department, Entry, User, Version
from exchange.audit import record
from exchange.calendar import SHANGHAI, CalendarError, WorkdayCalendar, default_calendar
from exchange.models import ApiCall, Application, Delivery, Grant, Notification, Objection, Upload, Webhook
from pipelines.errors import TerminalError

__all__ = [
    "MAX_SPAN_DAYS",
    "SIDES",
    "Scope",
    "api_calls",
    "audit_events",
    "check_department",
    "check_format",
    "consumers",
    "cycle_period",
    "deliveries",
    "department_names",
    "freshness",
    "latency",
    "make_scope",
    "notifications",
    "parse_moment",
    "parse_period",
    "pending_applications",
    "summary",
]

Side = Literal["provider", "subscriber", "any"]
SIDES: tuple[Side, ...] = ("provider", "subscriber", "any")
#: The longest period a query may cover (about three years): longer is a typo, and a per-day
#: series of it would be too long to draw.
MAX_SPAN_DAYS = 1100
DEFAULT_DAYS = 30
_FIRST_YEAR, _LAST_YEAR = 2000, 2100
_USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{18}$")
_PERIOD = re.compile(r"^(\d{4})(?:-?(Q)([1-4])|-?(H)([12])|-(\d{1,2}))?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ScopeError(TerminalError):
    """A filter value that cannot be used: names the parameter and the form it takes."""


# --- filters -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What to look at: ``[since, until)`` (aware, UTC), a department (USCC) or all, and its side."""

    since: dt.datetime
    until: dt.datetime
    department: str | None = None
    side: Side = "any"

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "department": self.department, "side": self.side}


def _year_ok(year: int, what: str, text: str) -> None:
    if not _FIRST_YEAR <= year < _LAST_YEAR:
        raise ScopeError(
            f"{what} {text!r} is outside the years {_FIRST_YEAR}–{_LAST_YEAR - 1}",
            hint="give a date like 2026-10-01",
        )


def parse_moment(value: str | dt.date | dt.datetime, what: str = "since") -> dt.datetime:
    """A moment from a date (00:00 that day in Asia/Shanghai) or an ISO date-time with a time zone.

    ``what`` names the parameter in errors. A date-time without a zone is refused: its day would
    depend on the clock of whoever sent it.
    """
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ScopeError(f"{what} {value.isoformat()} has no time zone", hint="e.g. 2026-10-01T00:00:00+08:00")
        _year_ok(value.year, what, value.isoformat())
        return value.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        _year_ok(value.year, what, value.isoformat())
        return dt.datetime.combine(value, dt.time(), SHANGHAI).astimezone(dt.UTC)
    text = str(value).strip()
    example = "a date like 2026-10-01 (00:00 Asia/Shanghai) or a date-time with a zone like 2026-10-01T08:00:00+08:00"
    if not text or len(text) > 40:
        raise ScopeError(f"{what} must be {example}, not {text[:40]!r}", hint=f"give {what} as {example}")
    try:
        if _DATE.match(text):
            return parse_moment(dt.date.fromisoformat(text), what)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise ScopeError(f"{what} {text!r} is not a date or date-time", hint=f"give {what} as {example}") from None
    if parsed.tzinfo is None:
        raise ScopeError(
            f"{what} {text!r} has no time zone",
            hint="add one (e.g. +08:00), or give a date alone for 00:00 Asia/Shanghai",
        )
    return parse_moment(parsed, what)


def parse_period(value: str) -> tuple[dt.datetime, dt.datetime]:
    """``[since, until)`` of a named period in Asia/Shanghai: ``2026``, ``2026Q4``, ``2026H2``, ``2026-11``."""
    text = str(value).strip().upper()
    forms = "2026 (a year), 2026Q4 (a quarter), 2026H2 (a half-year) or 2026-11 (a month)"
    match = _PERIOD.match(text) if len(text) <= 10 else None
    if match is None:
        raise ScopeError(f"the period {str(value)[:40]!r} is not one of the known forms", hint=f"give {forms}")
    year = int(match.group(1))
    _year_ok(year, "the period", text)
    if match.group(2):
        first, months = (int(match.group(3)) - 1) * 3 + 1, 3
    elif match.group(4):
        first, months = (int(match.group(5)) - 1) * 6 + 1, 6
    elif match.group(6):
        first, months = int(match.group(6)), 1
        if not 1 <= first <= 12:
            raise ScopeError(f"the period {text!r} names month {first}", hint="months are 01 to 12, e.g. 2026-11")
    else:
        first, months = 1, 12
    start = dt.date(year, first, 1)
    end = _add_months(start, months)
    return parse_moment(start, "the period"), parse_moment(end, "the period")


def _add_months(day: dt.date, months: int) -> dt.date:
    total = day.year * 12 + day.month - 1 + months
    return dt.date(total // 12, total % 12 + 1, 1)


def check_format(value: str) -> str:
    """``value`` as a USCC (upper case); :class:`ScopeError` naming the form when it is not one."""
    text = str(value).strip().upper()
    if not _USCC.match(text):
        raise ScopeError(
            f"department {str(value)[:40]!r} is not a 统一社会信用代码 (18 characters of 0-9 and A-Y without I O S V Z)",
            hint="give the department's USCC, e.g. 113100000024251683",
        )
    return text


def check_department(session: Session, value: str) -> str:
    """The USCC of department ``value`` (any case); :class:`ScopeError` if malformed or unknown.

    An unknown department is a bad filter value (422), not a missing record: the path exists.
    """
    text = check_format(value)
    if session.get(Department, text) is None:
        known = ", ".join(f"{u} {n}" for u, n in list(department_names(session).items())[:10])
        raise ScopeError(
            f"department {text} is not a department of the platform",
            hint=f"give one of: {known}" if known else "no department is registered yet",
        )
    return text


def make_scope(
    session: Session | None = None,
    *,
    since: str | dt.date | dt.datetime | None = None,
    until: str | dt.date | dt.datetime | None = None,
    period: str | None = None,
    department: str | None = None,
    side: str = "any",
    now: dt.datetime | None = None,
    default_days: int = DEFAULT_DAYS,
) -> Scope:
    """A checked :class:`Scope`; without a period, the last ``default_days`` days up to the end of today.

    ``period`` (see :func:`parse_period`) and ``since``/``until`` exclude each other. With a
    ``session`` the department must exist.
    """
    if side not in SIDES:
        raise ScopeError(f"side {str(side)[:20]!r} is not one of {', '.join(SIDES)}", hint="e.g. side=provider")
    if period is not None and (since is not None or until is not None):
        raise ScopeError("give either a period or since/until, not both", hint="e.g. --period 2026Q4")
    if period is not None:
        start, end = parse_period(period)
    else:
        moment = (now or dt.datetime.now(dt.UTC)).astimezone(SHANGHAI)
        tomorrow = dt.datetime.combine(moment.date() + dt.timedelta(days=1), dt.time(), SHANGHAI)
        end = parse_moment(until, "until") if until is not None else tomorrow.astimezone(dt.UTC)
        start = parse_moment(since, "since") if since is not None else end - dt.timedelta(days=default_days)
    if start >= end:
        raise ScopeError(
            f"since ({start.astimezone(SHANGHAI).isoformat()}) is not before until ({end.astimezone(SHANGHAI).isoformat()})",
            hint="the period is [since, until): until is the first moment after it",
        )
    if end - start > dt.timedelta(days=MAX_SPAN_DAYS):
        raise ScopeError(
            f"the period from {start.date()} to {end.date()} is longer than {MAX_SPAN_DAYS} days",
            hint="choose a shorter period (a year at most is usual)",
        )
    dept = None
    if department is not None and str(department).strip():
        dept = check_department(session, department) if session is not None else str(department).strip().upper()
    return Scope(since=start, until=end, department=dept, side=side)  # type: ignore[arg-type]


# --- SQL helpers -------------------------------------------------------------------------------


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _local_day(session: Session, column: Any) -> ColumnElement[Any]:
    """The calendar day (``YYYY-MM-DD`` text) of a UTC time column, in Asia/Shanghai."""
    name = _dialect(session)
    if name == "sqlite":
        return func.date(column, "+8 hours")
    if name == "postgresql":
        return func.to_char(func.timezone("Asia/Shanghai", column), "YYYY-MM-DD")
    if name in ("mysql", "mariadb"):
        return func.date_format(func.convert_tz(column, "+00:00", "+08:00"), "%Y-%m-%d")
    raise TerminalError(
        f"monitoring does not know how to take local days on a {name} database",
        hint="use SQLite, PostgreSQL or MySQL/MariaDB for the platform database",
    )


def _day_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)[:10]


def _days(scope: Scope) -> list[str]:
    """Every local day the period touches, in order."""
    first = scope.since.astimezone(SHANGHAI).date()
    last = (scope.until - dt.timedelta(microseconds=1)).astimezone(SHANGHAI).date()
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _provided_by(department: str) -> Any:
    return select(Entry.id).where(Entry.department_uscc == department)


def _sided(scope: Scope, entry_col: Any, subscriber_col: Any) -> list[ColumnElement[bool]]:
    """The department filter for a table with a resource column and a subscriber/caller column."""
    if scope.department is None:
        return []
    provider = entry_col.in_(_provided_by(scope.department))
    subscriber = subscriber_col == scope.department
    if scope.side == "provider":
        return [provider]
    if scope.side == "subscriber":
        return [subscriber]
    return [or_(provider, subscriber)]


def _delivery_at() -> ColumnElement[dt.datetime]:
    return func.coalesce(Delivery.finished_at, Delivery.started_at)


def _delivery_filter(scope: Scope) -> list[ColumnElement[bool]]:
    at = _delivery_at()
    return [at >= scope.since, at < scope.until, *_sided(scope, Delivery.entry_id, Delivery.department_uscc)]


def _api_filter(scope: Scope) -> list[ColumnElement[bool]]:
    return [
        ApiCall.at >= scope.since,
        ApiCall.at < scope.until,
        *_sided(scope, ApiCall.entry_id, ApiCall.department_uscc),
    ]


def _ok_call() -> ColumnElement[bool]:
    return and_(ApiCall.status >= 200, ApiCall.status < 400)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _sum_if(condition: ColumnElement[bool], value: Any) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def department_names(session: Session, only: Iterable[str] | None = None) -> dict[str, str]:
    """USCC → name of the departments (all, or those in ``only``)."""
    q = select(Department.uscc, Department.name).order_by(Department.uscc)
    if only is not None:
        wanted = sorted(set(only))
        if not wanted:
            return {}
        q = q.where(Department.uscc.in_(wanted))
    return {str(u): str(n) for u, n in session.execute(q)}


_QUANTILES = (("p50", 0.5), ("p95", 0.95))


def _percentiles(
    session: Session,
    value: Any,
    where: Sequence[ColumnElement[bool]],
    day: ColumnElement[Any] | None = None,
) -> dict[str | None, dict[str, Any]]:
    """count, mean, max, p50 and p95 of ``value`` over the rows matching ``where``, per ``day`` (or overall: key None).

    percentile_cont in portable SQL: number the values in order per group (``row_number``), then
    the p-quantile lies between the largest value at a position ≤ p·(n−1) and the smallest at a
    position ≥ p·(n−1); the fraction between them comes from n alone.
    """
    partition = [day] if day is not None else None
    numbered: list[Any] = [
        value.label("v"),
        func.row_number().over(partition_by=partition, order_by=value).label("rn"),
        func.count().over(partition_by=partition).label("n"),
    ]
    if day is not None:
        numbered.append(day.label("g"))
    inner = select(*numbered).where(value.is_not(None), *where).subquery()
    group = [inner.c.g, inner.c.n] if day is not None else [inner.c.n]
    columns: list[Any] = [
        inner.c.g if day is not None else inner.c.n,
        inner.c.n,
        func.avg(inner.c.v),
        func.max(inner.c.v),
    ]
    for _, q in _QUANTILES:
        position = literal(q) * (inner.c.n - 1)
        columns.append(func.max(case((inner.c.rn - 1 <= position, inner.c.v))))
        columns.append(func.min(case((inner.c.rn - 1 >= position, inner.c.v))))
    found: dict[str | None, dict[str, Any]] = {}
    for row in session.execute(select(*columns).group_by(*group)):
        n = int(row[1])
        stats: dict[str, Any] = {"count": n, "mean": _num(row[2]), "max": _num(row[3])}
        for i, (name, q) in enumerate(_QUANTILES):
            low, high = _num(row[4 + 2 * i]), _num(row[5 + 2 * i])
            rank = q * (n - 1)
            fraction = rank - int(rank)
            stats[name] = None if low is None or high is None else round(low + (high - low) * fraction, 3)
        found[None if day is None else _day_text(row[0])] = stats
    return found


def _num(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _empty_stats() -> dict[str, Any]:
    return {"count": 0, "mean": None, "max": None, "p50": None, "p95": None}


# --- deliveries, failures, latency, API calls ----------------------------------------------------


def deliveries(session: Session, scope: Scope, *, failures: int = 20) -> dict[str, Any]:
    """Deliveries and rows per day (succeeded, failed, running), totals, and the latest failures with their errors."""
    day = _local_day(session, _delivery_at())
    succeeded = Delivery.outcome == "succeeded"
    failed = Delivery.outcome == "failed"
    q = (
        select(
            day.label("day"),
            func.count(),
            _count_if(succeeded),
            _count_if(failed),
            _sum_if(succeeded, Delivery.rows),
        )
        .where(*_delivery_filter(scope))
        .group_by(day)
    )
    by_day = {_day_text(d): (int(n), int(ok), int(bad), int(rows)) for d, n, ok, bad, rows in session.execute(q)}
    per_day: list[dict[str, Any]] = []
    for d in _days(scope):
        n, ok, bad, rows = by_day.get(d, (0, 0, 0, 0))
        per_day.append(
            {"day": d, "deliveries": n, "succeeded": ok, "failed": bad, "running": n - ok - bad, "rows": rows}
        )
    totals = {
        key: sum(int(p[key]) for p in per_day) for key in ("deliveries", "succeeded", "failed", "running", "rows")
    }
    return {
        "scope": scope.as_dict(),
        "per_day": per_day,
        "totals": totals,
        "latest_failures": latest_failures(session, scope, limit=failures),
    }


def latest_failures(session: Session, scope: Scope, *, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent failed deliveries of the period, newest first, with their errors."""
    q = (
        select(Delivery, Entry.name, Department.name)
        .join(Entry, Entry.id == Delivery.entry_id, isouter=True)
        .join(Department, Department.uscc == Delivery.department_uscc, isouter=True)
        .where(Delivery.outcome == "failed", *_delivery_filter(scope))
        .order_by(_delivery_at().desc(), Delivery.id.desc())
        .limit(max(1, limit))
    )
    return [
        {
            "id": d.id,
            "at": _utc(d.finished_at or d.started_at),
            "entry": d.entry_id,
            "entry_name": entry_name,
            "subscriber": d.department_uscc,
            "subscriber_name": dept_name,
            "mode": d.mode,
            "version": d.version,
            "attempts": d.attempts,
            "error": (d.error or "")[:2000],
        }
        for d, entry_name, dept_name in session.execute(q)
    ]


def latency(session: Session, scope: Scope) -> dict[str, Any]:
    """p50/p95 (and count, mean, max) of delivery and API-call latency (ms): overall and per day."""
    d_where = [*_delivery_filter(scope), Delivery.outcome != "running"]
    a_where = _api_filter(scope)
    d_day = _percentiles(session, Delivery.latency_ms, d_where, _local_day(session, _delivery_at()))
    a_day = _percentiles(session, ApiCall.latency_ms, a_where, _local_day(session, ApiCall.at))
    overall_d = _percentiles(session, Delivery.latency_ms, d_where).get(None, _empty_stats())
    overall_a = _percentiles(session, ApiCall.latency_ms, a_where).get(None, _empty_stats())
    per_day = []
    for d in _days(scope):
        ds, as_ = d_day.get(d, _empty_stats()), a_day.get(d, _empty_stats())
        per_day.append(
            {
                "day": d,
                "delivery_p50": ds["p50"],
                "delivery_p95": ds["p95"],
                "delivery_count": ds["count"],
                "api_p50": as_["p50"],
                "api_p95": as_["p95"],
                "api_count": as_["count"],
            }
        )
    return {"scope": scope.as_dict(), "delivery": overall_d, "api": overall_a, "per_day": per_day}


def api_calls(session: Session, scope: Scope, *, limit: int = 20) -> dict[str, Any]:
    """Data-API calls per day (calls, failed, rows) and per caller department (calls, success, rows, latency)."""
    ok = _ok_call()
    day = _local_day(session, ApiCall.at)
    q = select(day, func.count(), _count_if(ok), _sum_if(ok, ApiCall.rows)).where(*_api_filter(scope)).group_by(day)
    by_day = {_day_text(d): (int(n), int(good), int(rows)) for d, n, good, rows in session.execute(q)}
    per_day: list[dict[str, Any]] = []
    for d in _days(scope):
        n, good, rows = by_day.get(d, (0, 0, 0))
        per_day.append({"day": d, "calls": n, "succeeded": good, "failed": n - good, "rows": rows})
    callers_q = (
        select(
            ApiCall.department_uscc,
            func.count(),
            _count_if(ok),
            _sum_if(ok, ApiCall.rows),
            func.avg(ApiCall.latency_ms),
            func.max(ApiCall.at),
        )
        .where(*_api_filter(scope))
        .group_by(ApiCall.department_uscc)
        .order_by(func.count().desc(), ApiCall.department_uscc)
        .limit(max(1, limit))
    )
    rows_ = list(session.execute(callers_q))
    names = department_names(session, [r[0] for r in rows_ if r[0]])
    callers = [
        {
            "department": uscc,
            "name": names.get(uscc) if uscc else None,
            "calls": int(n),
            "succeeded": int(good),
            "failed": int(n) - int(good),
            "success_rate": round(int(good) / int(n), 4) if n else None,
            "rows": int(rows),
            "mean_latency_ms": _num(mean),
            "last_call_at": _utc(last),
        }
        for uscc, n, good, rows, mean, last in rows_
    ]
    totals = {key: sum(int(p[key]) for p in per_day) for key in ("calls", "succeeded", "failed", "rows")}
    return {"scope": scope.as_dict(), "per_day": per_day, "totals": totals, "callers": callers}


# --- pending applications --------------------------------------------------------------------

#: Age buckets (working days since submission) for the chart of pending applications.
AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0),
    ("1", 1, 1),
    ("2", 2, 2),
    ("3", 3, 3),
    ("4", 4, 4),
    ("5", 5, 5),
    ("6-10", 6, 10),
    (">10", 11, None),
)
STATES = ("on_time", "due_soon", "overdue")
STATE_NAMES = {"on_time": "未到期", "due_soon": "即将到期", "overdue": "已逾期"}


def _bucket(age: int) -> str:
    for name, low, high in AGE_BUCKETS:
        if age >= low and (high is None or age <= high):
            return name
    return AGE_BUCKETS[0][0]


def deadline_state(
    due_at: dt.datetime, now: dt.datetime, calendar: WorkdayCalendar
) -> tuple[str, int | None, int | None]:
    """``(state, working days left, working days overdue)`` of a deadline at ``now``.

    ``due_soon``: due today or on the next working day. The working days overdue are None when
    the calendar has no table for the days since the deadline (the state is still ``overdue``).
    """
    if now > due_at:
        try:
            return "overdue", 0, calendar.working_days_between(due_at, now)
        except CalendarError:
            return "overdue", 0, None
    left = calendar.working_days_between(now, due_at)
    return ("due_soon" if left <= 1 else "on_time"), left, 0


def pending_applications(
    session: Session,
    scope: Scope,
    *,
    now: dt.datetime | None = None,
    calendar: WorkdayCalendar | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """Pending applications at ``now`` against their review deadlines: counts by state and by age, and the list.

    The period does not apply (see the module doc); the department filter does, on its side.
    """
    moment = _utc(now) or dt.datetime.now(dt.UTC)
    cal = calendar or default_calendar()
    where: list[ColumnElement[bool]] = [Application.status == "pending", Application.due_at.is_not(None)]
    where += _sided(scope, Application.entry_id, Application.department_uscc)
    q = (
        select(Application, Entry.name, Entry.department_uscc)
        .join(Entry, Entry.id == Application.entry_id)
        .where(*where)
        .order_by(Application.due_at, Application.id)
    )
    found = list(session.execute(q))
    names = department_names(session, {a.department_uscc for a, _, _ in found} | {p for _, _, p in found})
    counts = dict.fromkeys(STATES, 0)
    by_age = {name: dict.fromkeys(STATES, 0) for name, _, _ in AGE_BUCKETS}
    items: list[dict[str, Any]] = []
    for app, entry_name, provider in found:
        due = _utc(app.due_at)
        submitted = _utc(app.submitted_at)
        assert due is not None and submitted is not None
        state, left, overdue = deadline_state(due, moment, cal)
        try:
            age = cal.working_days_between(submitted, moment)
        except CalendarError:
            age = None
        counts[state] += 1
        by_age[_bucket(age if age is not None else 11)][state] += 1
        items.append(
            {
                "id": app.id,
                "entry": app.entry_id,
                "entry_name": entry_name,
                "provider": provider,
                "provider_name": names.get(provider),
                "applicant": app.department_uscc,
                "applicant_name": names.get(app.department_uscc),
                "reviewer": app.reviewer,
                "share_type": app.share_type,
                "submitted_at": submitted,
                "due_at": due,
                "age_working_days": age,
                "state": state,
                "state_name": STATE_NAMES[state],
                "working_days_left": left,
                "working_days_overdue": overdue,
            }
        )
    urgency = {"overdue": 0, "due_soon": 1, "on_time": 2}
    items.sort(key=lambda i: (urgency[i["state"]], i["due_at"], i["id"]))
    return {
        "scope": scope.as_dict(),
        "as_of": moment,
        "total": len(items),
        "counts": counts,
        "by_age": [{"age": name, **by_age[name]} for name, _, _ in AGE_BUCKETS],
        "applications": items[: max(1, limit)],
    }


# --- freshness -----------------------------------------------------------------------------------

_CYCLE_MONTHS = {"每月": 1, "每季度": 3, "半年": 6, "每半年": 6, "每年": 12}


def cycle_period(cycle: str, when: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The ``[start, end)`` (UTC) of the update-cycle period containing ``when``, in Asia/Shanghai; None for 其他."""
    local = when.astimezone(SHANGHAI)
    day = local.date()
    if cycle in ("实时", "每日"):
        start, end = day, day + dt.timedelta(days=1)
    elif cycle == "每周":
        start = day - dt.timedelta(days=day.weekday())
        end = start + dt.timedelta(days=7)
    elif cycle in _CYCLE_MONTHS:
        months = _CYCLE_MONTHS[cycle]
        first = day.replace(day=1)
        start = _add_months(first, -((first.month - 1) % months))
        end = _add_months(start, months)
    else:
        return None
    return (
        dt.datetime.combine(start, dt.time(), SHANGHAI).astimezone(dt.UTC),
        dt.datetime.combine(end, dt.time(), SHANGHAI).astimezone(dt.UTC),
    )


def expected_by(cycle: str, last: dt.datetime) -> dt.datetime | None:
    """When the next version is due after one published at ``last``: the end of the following period."""
    period = cycle_period(cycle, last)
    if period is None:
        return None
    following = cycle_period(cycle, period[1])
    assert following is not None
    return following[1]


def freshness(session: Session, scope: Scope, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Each published resource's update cycle against its last version: fresh, late (by how long), never, no_cycle."""
    moment = _utc(now) or dt.datetime.now(dt.UTC)
    last = (
        select(Version.entry_id, func.max(Version.number).label("n"), func.max(Version.published_at).label("at"))
        .group_by(Version.entry_id)
        .subquery()
    )
    q = (
        select(Entry.id, Entry.name, Entry.department_uscc, Department.name, Entry.update_cycle, last.c.n, last.c.at)
        .join(Department, Department.uscc == Entry.department_uscc)
        .join(last, last.c.entry_id == Entry.id, isouter=True)
        .where(Entry.status == "published")
        .order_by(Entry.department_uscc, Entry.id)
    )
    if scope.department is not None:
        q = q.where(Entry.department_uscc == scope.department)
    counts = {"fresh": 0, "late": 0, "never": 0, "no_cycle": 0}
    resources = []
    for entry_id, name, uscc, dept_name, cycle, number, at in session.execute(q):
        published = _utc(at)
        due = expected_by(cycle, published) if published is not None else None
        if published is None:
            state = "never"
        elif due is None:
            state = "no_cycle"
        elif moment > due:
            state = "late"
        else:
            state = "fresh"
        counts[state] += 1
        late_hours = round((moment - due).total_seconds() / 3600, 1) if state == "late" and due else None
        resources.append(
            {
                "entry": entry_id,
                "name": name,
                "department": uscc,
                "department_name": dept_name,
                "update_cycle": cycle,
                "last_version": number,
                "last_published_at": published,
                "expected_by": due,
                "state": state,
                "late_hours": late_hours,
            }
        )
    order = {"late": 0, "never": 1, "fresh": 2, "no_cycle": 3}
    resources.sort(key=lambda r: (order[r["state"]], -(r["late_hours"] or 0), r["department"], r["entry"]))
    return {"scope": scope.as_dict(), "as_of": moment, "counts": counts, "resources": resources}


# --- consumers -----------------------------------------------------------------------------------


def consumers(session: Session, scope: Scope, *, limit: int = 10) -> dict[str, Any]:
    """Subscriber departments ranked by rows received, with their deliveries, API calls and API rows.

    ``deliveries`` and ``rows`` are the succeeded file and database deliveries; ``api_calls`` and
    ``api_rows`` the data API's calls (the API's daily receipts are left out of ``deliveries``: their
    rows are the calls' rows, which would count twice). ``resources``: the distinct resources
    received either way. With a department filter: the consumers of that department's resources.
    """
    provider = Scope(scope.since, scope.until, scope.department, "provider")
    ok = Delivery.outcome == "succeeded"
    pushed = and_(ok, Delivery.mode != "api")
    d_q = (
        select(
            Delivery.department_uscc,
            _count_if(pushed),
            _sum_if(pushed, Delivery.rows),
            func.count(func.distinct(case((ok, Delivery.entry_id)))),  # resources received, not only tried
        )
        .where(*_delivery_filter(provider))
        .group_by(Delivery.department_uscc)
    )
    a_q = (
        select(ApiCall.department_uscc, func.count(), _count_if(_ok_call()), _sum_if(_ok_call(), ApiCall.rows))
        .where(*_api_filter(provider), ApiCall.department_uscc.is_not(None))
        .group_by(ApiCall.department_uscc)
    )
    table: dict[str, dict[str, Any]] = {}

    def row(uscc: str) -> dict[str, Any]:
        return table.setdefault(
            uscc,
            {
                "department": uscc,
                "deliveries": 0,
                "rows": 0,
                "resources": 0,
                "api_calls": 0,
                "api_ok": 0,
                "api_rows": 0,
            },
        )

    for uscc, n, rows, resources in session.execute(d_q):
        row(uscc).update(deliveries=int(n), rows=int(rows), resources=int(resources))
    for uscc, n, good, rows in session.execute(a_q):
        row(uscc).update(api_calls=int(n), api_ok=int(good), api_rows=int(rows))
    names = department_names(session, table)
    ranked = sorted(
        table.values(), key=lambda r: (-(r["rows"] + r["api_rows"]), -r["deliveries"], -r["api_calls"], r["department"])
    )
    for r in ranked:
        r["name"] = names.get(r["department"])
        r["total_rows"] = r["rows"] + r["api_rows"]
    return {"scope": provider.as_dict(), "consumers": ranked[: max(1, limit)], "total": len(ranked)}


# --- audit events ------------------------------------------------------------------------------


def _subjects(kind: str, ids: Any) -> Any:
    return select((literal(f"{kind}:") + cast(ids.c[0], String)).label("s")).select_from(ids)


def _audit_concerns(department: str) -> ColumnElement[bool]:
    """An audit event concerns ``department`` when its user acted or its subject is one of its records."""
    entries = _provided_by(department)
    theirs = Entry.department_uscc == department
    apps = (
        select(Application.id)
        .where(or_(Application.department_uscc == department, Application.entry_id.in_(entries)))
        .subquery()
    )
    grants = select(Grant.id).where(or_(Grant.department_uscc == department, Grant.entry_id.in_(entries))).subquery()
    dels = (
        select(Delivery.id)
        .where(or_(Delivery.department_uscc == department, Delivery.entry_id.in_(entries)))
        .subquery()
    )
    objs = (
        select(Objection.id)
        .where(or_(Objection.department_uscc == department, Objection.entry_id.in_(entries)))
        .subquery()
    )
    own_entries = select(Entry.id).where(theirs).subquery()
    hooks = select(Webhook.id).where(Webhook.department_uscc == department).subquery()
    uploads = select(Upload.id).where(Upload.department_uscc == department).subquery()
    notes = select(Notification.id).where(Notification.department_uscc == department).subquery()
    subjects = [
        _subjects("catalog_entry", own_entries),
        _subjects("application", apps),
        _subjects("grant", grants),
        _subjects("delivery", dels),
        _subjects("objection", objs),
        _subjects("webhook", hooks),
        _subjects("upload", uploads),
        _subjects("notification", notes),
    ]
    users = select(User.id).where(User.department_uscc == department)
    return or_(
        AuditEvent.actor.in_(users),
        AuditEvent.subject == f"department:{department}",
        *[AuditEvent.subject.in_(s) for s in subjects],
    )


def audit_events(session: Session, scope: Scope, *, limit: int = 50) -> dict[str, Any]:
    """The most recent audit-log entries of the period, newest first (see :func:`_audit_concerns`)."""
    q = select(AuditEvent).where(AuditEvent.at >= scope.since, AuditEvent.at < scope.until)
    if scope.department is not None:
        q = q.where(_audit_concerns(scope.department))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(AuditEvent.seq.desc()).limit(max(1, limit)))
    events = []
    for event in rows:
        item = record(event)
        item["at"] = _utc(event.at)
        events.append(item)
    return {"scope": scope.as_dict(), "total": int(total), "events": events}


# --- notifications -------------------------------------------------------------------------------


def notifications(session: Session, scope: Scope, *, limit: int = 20) -> dict[str, Any]:
    """Webhook notifications created in the period: counts by status and by event, the latest ones and the latest failures.

    A failure is a notification that failed for good, or one still pending after a failed attempt.
    """
    where: list[ColumnElement[bool]] = [Notification.created_at >= scope.since, Notification.created_at < scope.until]
    if scope.department is not None:
        where.append(Notification.department_uscc == scope.department)
    counts = {"pending": 0, "sent": 0, "failed": 0}
    for status, n in session.execute(
        select(Notification.status, func.count()).where(*where).group_by(Notification.status)
    ):
        counts[str(status)] = int(n)
    by_event = [
        {"event": event, "total": int(n), "sent": int(sent), "failed": int(failed)}
        for event, n, sent, failed in session.execute(
            select(
                Notification.event,
                func.count(),
                _count_if(Notification.status == "sent"),
                _count_if(Notification.status == "failed"),
            )
            .where(*where)
            .group_by(Notification.event)
            .order_by(func.count().desc(), Notification.event)
        )
    ]
    failing = or_(
        Notification.status == "failed", and_(Notification.status == "pending", Notification.last_error.is_not(None))
    )
    newest = (Notification.created_at.desc(), Notification.id.desc())
    found = list(session.scalars(select(Notification).where(*where, failing).order_by(*newest).limit(max(1, limit))))
    recent = list(session.scalars(select(Notification).where(*where).order_by(*newest).limit(max(1, limit))))
    names = department_names(session, {n.department_uscc for n in [*found, *recent]})

    def item(n: Notification) -> dict[str, Any]:
        return {
            "id": n.id,
            "department": n.department_uscc,
            "department_name": names.get(n.department_uscc),
            "event": n.event,
            "status": n.status,
            "attempts": n.attempts,
            "last_status": n.last_status,
            "last_error": (n.last_error or "")[:1000],
            "created_at": _utc(n.created_at),
            "sent_at": _utc(n.sent_at),
            "next_attempt_at": _utc(n.next_attempt_at),
        }

    return {
        "scope": scope.as_dict(),
        "total": sum(counts.values()),
        "counts": counts,
        "by_event": by_event,
        "latest": [item(n) for n in recent],
        "latest_failures": [item(n) for n in found],
    }


# --- summary -------------------------------------------------------------------------------------


def summary(
    session: Session,
    scope: Scope,
    *,
    now: dt.datetime | None = None,
    calendar: WorkdayCalendar | None = None,
    departments: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The headline numbers of the period, the states now, and the departments the caller may filter by."""
    d = session.execute(
        select(
            func.count(),
            _count_if(Delivery.outcome == "succeeded"),
            _count_if(Delivery.outcome == "failed"),
            _sum_if(Delivery.outcome == "succeeded", Delivery.rows),
        ).where(*_delivery_filter(scope))
    ).one()
    a = session.execute(
        select(func.count(), _count_if(_ok_call()), _sum_if(_ok_call(), ApiCall.rows)).where(*_api_filter(scope))
    ).one()
    d_lat = _percentiles(session, Delivery.latency_ms, [*_delivery_filter(scope), Delivery.outcome != "running"])
    a_lat = _percentiles(session, ApiCall.latency_ms, _api_filter(scope))
    pending = pending_applications(session, scope, now=now, calendar=calendar, limit=1)
    fresh = freshness(session, scope, now=now)
    n_where: list[ColumnElement[bool]] = [Notification.created_at >= scope.since, Notification.created_at < scope.until]
    if scope.department is not None:
        n_where.append(Notification.department_uscc == scope.department)
    failed_notes = session.scalar(
        select(func.count()).select_from(Notification).where(*n_where, Notification.status == "failed")
    )
    deliveries_n, calls = int(d[0]), int(a[0])
    return {
        "scope": scope.as_dict(),
        "as_of": pending["as_of"],
        "deliveries": deliveries_n,
        "deliveries_succeeded": int(d[1]),
        "deliveries_failed": int(d[2]),
        "failure_rate": round(int(d[2]) / deliveries_n, 4) if deliveries_n else None,
        "rows_delivered": int(d[3]),
        "api_calls": calls,
        "api_calls_failed": calls - int(a[1]),
        "api_rows": int(a[2]),
        "delivery_latency": d_lat.get(None, _empty_stats()),
        "api_latency": a_lat.get(None, _empty_stats()),
        "pending_applications": pending["counts"],
        "freshness": fresh["counts"],
        "notifications_failed": int(failed_notes or 0),
        "departments": [{"uscc": u, "name": n} for u, n in department_names(session, departments).items()],
    }
