"""``/exchange/v1/monitor/*`` and ``/exchange/v1/assessment``: monitoring and assessment; the dashboard page.

Every endpoint needs the scope ``monitor:read`` (department reviewers, the city admin, auditors;
department staff cannot hold it, so they get 403). The city admin and auditors see every
department and may filter by one; a department reviewer sees its own department only: without a
``department`` filter its own is applied, and naming another department is refused (403).

Filters, on every endpoint (see :mod:`exchange.monitoring`):

* ``since``, ``until``: the period ``[since, until)``, each a date (00:00 Asia/Shanghai) or an
  ISO date-time with a zone; default the last 30 days up to the end of today. ``/assessment``
  also takes ``period`` (``2026Q4``, ``2026H2``, ``2026-11``, ``2026``) instead.
* ``department``: a USCC; ``side``: ``provider``, ``subscriber`` or ``any``.

A bad value (a malformed date, ``since`` not before ``until``, a period longer than
:data:`~exchange.monitoring.MAX_SPAN_DAYS` days, an unknown department) answers 422 naming the parameter.

The dashboard (:data:`pages`, mounted at the application root, not under ``/exchange/v1``):
``GET /dashboard`` is the page, ``GET /dashboard/assets/<file>`` its script, stylesheet and the
vendored ECharts. The page holds no data: it asks for an API token and reads the endpoints
above with it. Its Content-Security-Policy allows nothing but this origin, so even a tampered
page cannot send a token or data elsewhere.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from exchange import assessment, monitoring, watch
from exchange.api import DB, ERRORS, Caller
from exchange.calendar import SHANGHAI
from exchange.errors import Forbidden, NotFound
from exchange.identity import Principal

__all__ = ["DASHBOARD", "mount_dashboard", "pages", "router"]

router = APIRouter(tags=["monitor"], responses=ERRORS)

DASHBOARD = Path(__file__).resolve().parent / "dashboard"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# --- parameters ----------------------------------------------------------------------------------

Since = Annotated[
    str | None,
    Query(
        max_length=40,
        description="start of the period (inclusive): a date (00:00 Asia/Shanghai) or an ISO date-time with a zone",
        examples=["2026-10-01"],
    ),
]
Until = Annotated[
    str | None,
    Query(
        max_length=40,
        description="end of the period (exclusive): a date or an ISO date-time with a zone; default the end of today",
        examples=["2026-11-25"],
    ),
]
Department = Annotated[
    str | None,
    Query(
        max_length=40,
        description="a department's USCC; a department reviewer may give only its own (and gets it by default)",
        examples=["113100000024251683"],
    ),
]
Side = Annotated[
    Literal["provider", "subscriber", "any"],
    Query(description="the department as provider of the resources, as subscriber, or either"),
]
Limit = Annotated[int, Query(ge=1, le=500, description="at most this many items in the lists")]
Period = Annotated[
    str | None,
    Query(max_length=20, description="a named period instead of since/until: 2026Q4, 2026H2, 2026-11 or 2026"),
]


def _department_for(caller: Principal, db: Session, department: str | None) -> str | None:
    """The department filter the caller may use: its own for a department user, any (or none) for the city."""
    caller.require("monitor:read")
    wanted = monitoring.check_format(department) if department is not None and department.strip() else None
    if caller.city:
        if wanted is not None:
            monitoring.check_department(db, wanted)
        return wanted
    own = caller.department
    if own is None:
        raise Forbidden("this user belongs to no department", hint="ask the city admin")
    if wanted is not None and wanted != own:
        raise Forbidden(
            f"department {wanted} is not yours: a department sees only its own monitoring",
            hint=f"leave out department (yours, {own}, is used) or ask the city admin",
        )
    return own


def _scope(
    caller: Principal,
    db: Session,
    *,
    since: str | None,
    until: str | None,
    department: str | None,
    side: str = "any",
    period: str | None = None,
) -> monitoring.Scope:
    dept = _department_for(caller, db, department)
    return monitoring.make_scope(None, since=since, until=until, period=period, department=dept, side=side)


def _visible_departments(caller: Principal) -> list[str] | None:
    return None if caller.city else [caller.department] if caller.department else []


# --- answers -------------------------------------------------------------------------------------


class ScopeOut(BaseModel):
    since: dt.datetime
    until: dt.datetime
    department: str | None
    side: str


class Stats(BaseModel):
    count: int
    mean: float | None
    max: float | None
    p50: float | None
    p95: float | None


class DepartmentRef(BaseModel):
    uscc: str
    name: str


class StateCounts(BaseModel):
    on_time: int = Field(description="未到期: more than one working day left")
    due_soon: int = Field(description="即将到期: due today or on the next working day")
    overdue: int = Field(description="已逾期")


class FreshCounts(BaseModel):
    fresh: int
    late: int
    never: int
    no_cycle: int


class Summary(BaseModel):
    scope: ScopeOut
    as_of: dt.datetime
    deliveries: int
    deliveries_succeeded: int
    deliveries_failed: int
    failure_rate: float | None
    rows_delivered: int
    api_calls: int
    api_calls_failed: int
    api_rows: int
    delivery_latency: Stats
    api_latency: Stats
    pending_applications: StateCounts
    freshness: FreshCounts
    notifications_failed: int
    departments: list[DepartmentRef] = Field(description="the departments the caller may filter by")


class DeliveryDay(BaseModel):
    day: str
    deliveries: int
    succeeded: int
    failed: int
    running: int
    rows: int


class DeliveryTotals(BaseModel):
    deliveries: int
    succeeded: int
    failed: int
    running: int
    rows: int


class Failure(BaseModel):
    id: int
    at: dt.datetime | None
    entry: str
    entry_name: str | None
    subscriber: str
    subscriber_name: str | None
    mode: str
    version: int
    attempts: int
    error: str


class Deliveries(BaseModel):
    scope: ScopeOut
    per_day: list[DeliveryDay]
    totals: DeliveryTotals
    latest_failures: list[Failure]


class LatencyDay(BaseModel):
    day: str
    delivery_p50: float | None
    delivery_p95: float | None
    delivery_count: int
    api_p50: float | None
    api_p95: float | None
    api_count: int


class Latency(BaseModel):
    scope: ScopeOut
    delivery: Stats
    api: Stats
    per_day: list[LatencyDay]


class ApiDay(BaseModel):
    day: str
    calls: int
    succeeded: int
    failed: int
    rows: int


class ApiTotals(BaseModel):
    calls: int
    succeeded: int
    failed: int
    rows: int


class ApiCaller(BaseModel):
    department: str | None
    name: str | None
    calls: int
    succeeded: int
    failed: int
    success_rate: float | None
    rows: int
    mean_latency_ms: float | None
    last_call_at: dt.datetime | None


class ApiCalls(BaseModel):
    scope: ScopeOut
    per_day: list[ApiDay]
    totals: ApiTotals
    callers: list[ApiCaller]


class PendingApplication(BaseModel):
    id: int
    entry: str
    entry_name: str | None
    provider: str
    provider_name: str | None
    applicant: str
    applicant_name: str | None
    reviewer: str
    share_type: str
    submitted_at: dt.datetime
    due_at: dt.datetime
    age_working_days: int | None
    state: Literal["on_time", "due_soon", "overdue"]
    state_name: str
    working_days_left: int | None
    working_days_overdue: int | None


class AgeBucket(BaseModel):
    age: str = Field(description="working days since submission")
    on_time: int
    due_soon: int
    overdue: int


class Pending(BaseModel):
    scope: ScopeOut
    as_of: dt.datetime
    total: int
    counts: StateCounts
    by_age: list[AgeBucket]
    applications: list[PendingApplication]


class FreshResource(BaseModel):
    entry: str
    name: str
    department: str
    department_name: str
    update_cycle: str
    last_version: int | None
    last_published_at: dt.datetime | None
    expected_by: dt.datetime | None
    state: Literal["fresh", "late", "never", "no_cycle"]
    late_hours: float | None


class Freshness(BaseModel):
    scope: ScopeOut
    as_of: dt.datetime
    counts: FreshCounts
    resources: list[FreshResource]


class Consumer(BaseModel):
    department: str
    name: str | None
    deliveries: int
    rows: int
    resources: int
    api_calls: int
    api_ok: int
    api_rows: int
    total_rows: int


class Consumers(BaseModel):
    scope: ScopeOut
    total: int
    consumers: list[Consumer]


class AuditOut(BaseModel):
    seq: int
    at: dt.datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditEvents(BaseModel):
    scope: ScopeOut
    total: int
    events: list[AuditOut]


class NotificationCounts(BaseModel):
    pending: int
    sent: int
    failed: int


class EventCount(BaseModel):
    event: str
    total: int
    sent: int
    failed: int


class NotificationItem(BaseModel):
    id: int
    department: str
    department_name: str | None
    event: str
    status: Literal["pending", "sent", "failed"]
    attempts: int
    last_status: int | None
    last_error: str
    created_at: dt.datetime | None
    sent_at: dt.datetime | None
    next_attempt_at: dt.datetime | None


class Notifications(BaseModel):
    scope: ScopeOut
    total: int
    counts: NotificationCounts
    by_event: list[EventCount]
    latest: list[NotificationItem] = Field(description="the newest notifications of the period, any status")
    latest_failures: list[NotificationItem] = Field(
        description="the newest failures: failed for good, or still pending after a failed attempt"
    )


class Completeness(BaseModel):
    score: float | None
    complete: int
    catalogued: int


class Coverage(BaseModel):
    score: float | None
    published: int
    catalogued: int


class Timeliness(BaseModel):
    score: float | None
    on_time: int
    expected: int


class Response_(BaseModel):
    score: float | None
    counted: int
    decided: int
    on_time: int
    overdue_undecided: int
    mean_working_days: float | None
    median_working_days: float | None


class Quality(BaseModel):
    score: float | None
    runs: int
    datasets: int


class ObjectionsM(BaseModel):
    score: float | None
    raised: int
    answered: int
    on_time: int
    answered_rate: float | None


class Usage(BaseModel):
    score: float | None
    used: int
    published: int
    deliveries: int
    rows: int
    api_calls: int
    api_rows: int


class Measures(BaseModel):
    completeness: Completeness
    coverage: Coverage
    timeliness: Timeliness
    response: Response_
    quality: Quality
    objections: ObjectionsM
    usage: Usage


class DepartmentScore(BaseModel):
    uscc: str
    name: str
    score: float | None = Field(description="weighted total out of 100 over the evaluated measures")
    rank: int | None
    weight_evaluated: float = Field(description="share of the total weight on measures that could be evaluated")
    measures: Measures


class AssessmentOut(BaseModel):
    since: dt.datetime
    until: dt.datetime
    generated_at: dt.datetime
    weights: dict[str, float]
    departments: list[DepartmentScore]
    details: dict[str, list[dict[str, Any]]] | None = Field(
        default=None, description="the rows behind each measure (with details=true)"
    )


# --- endpoints -----------------------------------------------------------------------------------


@router.get("/monitor/summary", response_model=Summary, summary="Headline numbers of the period and the states now")
def summary(
    caller: Caller, db: DB, since: Since = None, until: Until = None, department: Department = None, side: Side = "any"
) -> dict[str, Any]:
    scope = _scope(caller, db, since=since, until=until, department=department, side=side)
    return monitoring.summary(db, scope, departments=_visible_departments(caller))


@router.get("/monitor/deliveries", response_model=Deliveries, summary="Deliveries and rows per day, failures")
def deliveries(
    caller: Caller,
    db: DB,
    since: Since = None,
    until: Until = None,
    department: Department = None,
    side: Side = "any",
    limit: Limit = 20,
) -> dict[str, Any]:
    scope = _scope(caller, db, since=since, until=until, department=department, side=side)
    return monitoring.deliveries(db, scope, failures=limit)


@router.get("/monitor/latency", response_model=Latency, summary="Delivery and API latency: p50/p95 overall and per day")
def latency(
    caller: Caller, db: DB, since: Since = None, until: Until = None, department: Department = None, side: Side = "any"
) -> dict[str, Any]:
    scope = _scope(caller, db, since=since, until=until, department=department, side=side)
    return monitoring.latency(db, scope)


@router.get("/monitor/api-calls", response_model=ApiCalls, summary="Data-API calls per day and per caller")
def api_calls(
    caller: Caller,
    db: DB,
    since: Since = None,
    until: Until = None,
    department: Department = None,
    side: Side = "any",
    limit: Limit = 20,
) -> dict[str, Any]:
    scope = _scope(caller, db, since=since, until=until, department=department, side=side)
    return monitoring.api_calls(db, scope, limit=limit)


@router.get(
    "/monitor/applications",
    response_model=Pending,
    summary="Pending applications against their review deadlines, now (the period does not apply)",
)
def applications(
    caller: Caller,
    db: DB,
    since: Since = None,
    until: Until = None,
    department: Department = None,
    side: Side = "any",
    limit: Limit = 200,
) -> dict[str, Any]:
    scope = _scope(caller, db, since=since, until=until, department=department, side=side)
    return monitoring.pending_applications(db, scope, limit=limit)


@router.get(
    "/monitor/freshness",
    response_model=Freshness,
    summary="Each published resource's update cycle against its last version (department: the provider)",
)
def freshness(
    caller: Caller, db: DB, since: Since = None, until: Until = None, department: Department = None
) -> dict[str, Any]:
    scope = _scope(caller, db, since=since, until=until, department=department, side="provider")
    return monitoring.freshness(db, scope)


@router.get(
    "/monitor/consumers",
    response_model=Consumers,
    summary="Top consumers by rows delivered (department: the consumers of its resources)",
)
def consumers(
    caller: Caller,
    db: DB,
    since: Since = None,
    until: Until = None,
    department: Department = None,
    limit: Limit = 10,
) -> dict[str, Any]:
    scope = _scope(caller, db, since=since, until=until, department=department, side="provider")
    return monitoring.consumers(db, scope, limit=limit)


@router.get(
    "/monitor/audit", response_model=AuditEvents, summary="Recent audit events (department: those concerning it)"
)
def audit_events(
    caller: Caller,
    db: DB,
    since: Since = None,
    until: Until = None,
    department: Department = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    scope = _scope(caller, db, since=since, until=until, department=department)
    return monitoring.audit_events(db, scope, limit=limit)


@router.get(
    "/monitor/notifications", response_model=Notifications, summary="Webhook notifications: counts and latest failures"
)
def notifications(
    caller: Caller,
    db: DB,
    since: Since = None,
    until: Until = None,
    department: Department = None,
    limit: Limit = 20,
) -> dict[str, Any]:
    scope = _scope(caller, db, since=since, until=until, department=department)
    return monitoring.notifications(db, scope, limit=limit)


class AlertCount(BaseModel):
    kind: str
    name: str = Field(description="the kind's Chinese name")
    count: int


class AlertItem(BaseModel):
    id: int
    kind: str = Field(description="dataset.stale, review.overdue, delivery.failed or run.failed")
    kind_name: str
    department: str | None = Field(description="the department it concerns; null: the city platform")
    department_name: str | None
    subject: str = Field(description="what it is about, e.g. entry:<id>, application:<id>, delivery:<id>")
    message: str
    source: Literal["watch", "airflow"]
    raised_at: dt.datetime


class Alerts(BaseModel):
    scope: ScopeOut
    total: int
    counts: list[AlertCount]
    latest: list[AlertItem] = Field(description="the newest alerts of the period")


@router.get("/monitor/alerts", response_model=Alerts, summary="Alerts of the watch and of failed pipeline tasks")
def alerts(
    caller: Caller,
    db: DB,
    since: Since = None,
    until: Until = None,
    department: Department = None,
    limit: Limit = 20,
) -> dict[str, Any]:
    scope = _scope(caller, db, since=since, until=until, department=department)
    return watch.alerts(db, scope, limit=limit)


def _assessment(
    caller: Principal,
    db: Session,
    *,
    since: str | None,
    until: str | None,
    period: str | None,
    department: str | None,
) -> tuple[dict[str, Any], str]:
    scope = _scope(caller, db, since=since, until=until, department=department, period=period)
    if scope.department is not None:
        wanted: list[str] | None = [scope.department]
    else:
        wanted = _visible_departments(caller)
    result = assessment.assess(db, scope.since, scope.until, departments=wanted)
    label = period.strip().upper() if period else f"{_day(scope.since)}–{_day(scope.until)}"
    return result, label


def _day(moment: dt.datetime) -> str:
    return moment.astimezone(SHANGHAI).date().isoformat()


@router.get("/assessment", response_model=AssessmentOut, summary="The assessment (考核) of departments over a period")
def assess(
    caller: Caller,
    db: DB,
    since: Since = None,
    until: Until = None,
    period: Period = None,
    department: Department = None,
    details: Annotated[bool, Query(description="include the rows behind each measure")] = False,
) -> dict[str, Any]:
    result, _ = _assessment(caller, db, since=since, until=until, period=period, department=department)
    if not details:
        result = {**result, "details": None}
    return result


@router.get(
    "/assessment.xlsx",
    response_class=Response,
    summary="The assessment as an xlsx workbook (a summary sheet and one per measure)",
    responses={200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}, "description": "xlsx"}},
)
def assess_xlsx(
    caller: Caller,
    db: DB,
    since: Since = None,
    until: Until = None,
    period: Period = None,
    department: Department = None,
) -> Response:
    from pipelines.report_export import write_xlsx

    result, label = _assessment(caller, db, since=since, until=until, period=period, department=department)
    with tempfile.TemporaryDirectory() as folder:
        target = write_xlsx(Path(folder) / "assessment.xlsx", assessment.tables(result, label=label))
        body = target.read_bytes()
    name = f"assessment-{label}.xlsx".replace("–", "_")
    return Response(body, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"'})


# --- the dashboard page --------------------------------------------------------------------------

pages = APIRouter(include_in_schema=False)

#: What the page may load: this origin only (ECharts' tooltips set inline styles).
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    "": "text/plain; charset=utf-8",  # LICENSE, NOTICE
}


def _assets() -> dict[str, Path]:
    """The files the page may load, by their path under ``dashboard/`` (nothing else is ever served)."""
    found = {}
    for path in sorted(DASHBOARD.rglob("*")):
        if path.is_file() and path.suffix in _TYPES and path.name != "index.html":
            found[path.relative_to(DASHBOARD).as_posix()] = path
    return found


_ASSETS = _assets()


@pages.get("/dashboard")
def dashboard() -> FileResponse:
    return FileResponse(DASHBOARD / "index.html", media_type=_TYPES[".html"], headers=_HEADERS)


@pages.get("/dashboard/")
def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("../dashboard", status_code=308)


@pages.get("/dashboard/assets/{name:path}")
def dashboard_asset(name: str) -> FileResponse:
    path = _ASSETS.get(name)
    if path is None:
        raise NotFound(f"no dashboard asset {name[:100]!r}", hint="open /dashboard")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_HEADERS)


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard page and its assets at the root of ``app`` (``/dashboard``)."""
    app.include_router(pages)
