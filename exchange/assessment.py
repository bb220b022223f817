"""The periodic assessment (考核) of each department's data sharing, from the platform's own records.

:func:`assess` scores every department (or the ones asked for) over a period ``[since, until)``
on seven measures, each a share in [0, 1] (higher is better), and a weighted total out of 100.
:func:`tables` turns the result into sheets (a summary and one per measure) for
:func:`pipelines.report_export.write_xlsx`.

==============  ============================================================================
measure         score, and what is counted
==============  ============================================================================
completeness    目录完整率: of the department's catalogued entries (status at ``until``:
                registered, waiting for publication or published), those with all 13 core
                elements filled and every data item described (a Chinese title and a valid
                data-type code); 发布日期 is required of published entries only, and 关联资源代码
                may be empty (most resources have none) but must be well-formed when given.
                The elements checked are the entries' current ones: the catalog keeps no history
                of its content, only of the status.
coverage        目录发布率: published / catalogued entries, status at ``until`` (from the
                lifecycle transitions, so a past period is judged as it stood then).
timeliness      按时更新率: for each published entry with an update cycle (not 其他), the cycle
                periods (local time; 实时 counts per day) that lie wholly inside the period,
                have ended, and begin no earlier than the period of its first version; a period
                is on time when at least one version was published in it. Score: on-time
                periods / expected periods over the department's entries.
response        申请按时办结率: applications for the department's resources that the department
                itself reviews (有条件共享; 无条件共享 is the city's conformity check and 不予共享
                is refused at once), decided in the period, plus those still undecided at
                ``until`` whose deadline had passed (an application the applicant withdrew
                counts only if it was still undecided and overdue at ``until``). Score:
                decided by the deadline / all of them. The mean and median working days from submission to decision are reported.
quality         数据质量: mean of the scorecard scores (``scorecards.score``) of the
                department's runs whose logical date lies in the period.
objections      异议按时答复率: objections raised in the period against the department's
                resources; score: answered by their deadline / raised (answered at all is
                reported too).
usage           资源使用率: published entries delivered (a succeeded delivery) or called (a
                successful data-API call) at least once in the period / published entries. The
                file and database deliveries and their rows, the API calls and their rows (the
                API's daily receipts are not counted again as deliveries), and the distinct
                consumers are reported.
==============  ============================================================================

A measure with nothing to count (no applications, no scorecards in the period, …) is not
evaluated: its score is empty and the total is the weighted mean of the evaluated measures only,
rescaled to 100 (``weight_evaluated`` says how much of the weight that total rests on).

Weights (default: completeness 10, coverage 10, timeliness 20, response 20, quality 20,
objections 10, usage 10) come from a YAML mapping with those keys, given as a path or named by
``GOVDATA_ASSESSMENT_WEIGHTS``; unknown keys, negative weights and an all-zero set are errors
naming the file and line.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from catalog.models import DataItem, Department, Entry, Scorecard, Transition, Version
from exchange.calendar import (
    SHANGHAI,
    CalendarError,
    WorkdayCalendar,
    _raise_problems,
    _read_yaml,
    _validation_problems,
    default_calendar,
)
from exchange.models import ApiCall, Application, Delivery, Objection
from exchange.monitoring import cycle_period
from pipelines.errors import TerminalError

__all__ = [
    "MEASURES",
    "METHODS",
    "WEIGHTS_ENV",
    "AssessmentError",
    "Weights",
    "assess",
    "load_weights",
    "missing_elements",
    "tables",
]

WEIGHTS_ENV = "GOVDATA_ASSESSMENT_WEIGHTS"

#: measure key -> (Chinese name, English name)
MEASURES: dict[str, tuple[str, str]] = {
    "completeness": ("目录完整率", "Catalog completeness"),
    "coverage": ("目录发布率", "Catalog coverage"),
    "timeliness": ("按时更新率", "On-time update rate"),
    "response": ("申请按时办结率", "Applications decided on time"),
    "quality": ("数据质量评分", "Quality score"),
    "objections": ("异议按时答复率", "Objections answered on time"),
    "usage": ("资源使用率", "Resources used"),
}
#: measure key -> how it is computed (the workbook's 说明 sheet and the API's description).
METHODS: dict[str, str] = {
    "completeness": "目录完整率 = 13 项核心元数据齐全（每个信息项有中文名称和有效的数据类型代码）的已编目资源数 ÷ 已编目资源数；"
    "已编目 = 考核期末处于已注册、待发布审核或已发布状态",
    "coverage": "目录发布率 = 考核期末已发布的资源数 ÷ 已编目资源数",
    "timeliness": "按时更新率 = 有新版本发布的更新周期数 ÷ 应更新的周期数；应更新的周期 = 考核期内已结束的完整周期"
    "（自首个版本所在周期起；实时按日计；更新周期为“其他”的资源不参评）",
    "response": "申请按时办结率 = 在办理时限内办结的申请数 ÷（考核期内办结的申请数 + 办理时限在考核期内、期末仍未办结的申请数）；"
    "只计本部门审核的有条件共享申请；用时按工作日计",
    "quality": "数据质量评分 = 逻辑日期在考核期内的各次运行的质量评分（0–1，GB/T 36344 各维度）的平均值",
    "objections": "异议按时答复率 = 在答复时限内答复的异议数 ÷ 考核期内对本部门资源提出的异议数",
    "usage": "资源使用率 = 考核期内至少被成功交付或成功调用（接口服务）一次的已发布资源数 ÷ 考核期末已发布的资源数",
}
CATALOGUED = ("registered", "publication_pending", "published")
#: Application statuses that are a reviewer's decision (a withdrawal by the applicant is not).
DECIDED = ("approved", "refused")
TYPE_CODES = frozenset("CNYDTLMGBIF")
AXES = frozenset({"基础", "主题", "部门"})
CYCLES = frozenset({"实时", "每日", "每周", "每月", "每季度", "半年", "每半年", "每年", "其他"})
SHARE_TYPES = {"无条件共享": "unconditional", "有条件共享": "conditional", "授权共享": "conditional"}
NOT_SHARED = frozenset({"不予共享", "非共享"})
_USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{18}$")
_CODE = re.compile(r"^\d{6,}/\S+$")


class AssessmentError(TerminalError):
    """The assessment cannot be made as asked: a bad weights file or filter."""


class Weights(BaseModel):
    """How much each measure counts in the total (any non-negative numbers; they are normalised)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    completeness: float = Field(default=10, ge=0, le=1000, description="目录完整率: entries with every core element.")
    coverage: float = Field(default=10, ge=0, le=1000, description="目录发布率: published / catalogued entries.")
    timeliness: float = Field(default=20, ge=0, le=1000, description="按时更新率: cycle periods with a version.")
    response: float = Field(default=20, ge=0, le=1000, description="申请按时办结率: applications decided in time.")
    quality: float = Field(default=20, ge=0, le=1000, description="数据质量评分: mean scorecard score.")
    objections: float = Field(default=10, ge=0, le=1000, description="异议按时答复率: objections answered in time.")
    usage: float = Field(default=10, ge=0, le=1000, description="资源使用率: published entries used.")

    @model_validator(mode="after")
    def _some_weight(self) -> Weights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("every weight is 0: give at least one measure a positive weight")
        return self


def load_weights(path: str | Path | None = None) -> Weights:
    """The weights from ``path`` or the file named by ``GOVDATA_ASSESSMENT_WEIGHTS``; the defaults without one."""
    name = path if path is not None else (os.environ.get(WEIGHTS_ENV) or None)
    if name is None:
        return Weights()
    file = Path(name)
    what = "assessment weights" + ("" if path is not None else f" (named by {WEIGHTS_ENV})")
    try:
        node, data = _read_yaml(file, what)
    except CalendarError as exc:
        raise AssessmentError(exc.message, hint=exc.hint) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AssessmentError(
            f"{file}: the assessment weights are a mapping of measure to weight",
            hint=f"write e.g. `quality: 30` on its own line; measures: {', '.join(MEASURES)}",
        )
    try:
        return Weights.model_validate(data)
    except ValidationError as exc:
        try:
            _raise_problems(
                file,
                "assessment weights",
                _validation_problems(file, node, exc, Weights),
                f"fix the keys named above; measures: {', '.join(MEASURES)}; weights are numbers ≥ 0",
            )
        except CalendarError as err:
            raise AssessmentError(err.message, hint=err.hint) from None
        raise  # pragma: no cover - _raise_problems always raises for a non-empty list


# --- helpers -----------------------------------------------------------------------------------


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _share(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def missing_elements(entry: Entry, items: Sequence[DataItem], department_name: str | None, status: str) -> list[str]:
    """The core elements (and data-item descriptions) ``entry`` lacks, by their Chinese names; empty when complete."""
    missing = []
    if entry.classification_axis not in AXES or not entry.classification_path:
        missing.append("1 信息资源分类")
    if _blank(entry.name):
        missing.append("2 信息资源名称")
    if _blank(entry.resource_code) or "/" not in entry.resource_code:
        missing.append("3 信息资源代码")
    if _blank(department_name):
        missing.append("4 信息资源提供方")
    if not _USCC.match(entry.department_uscc or ""):
        missing.append("5 提供方代码")
    if _blank(entry.abstract):
        missing.append("6 信息资源摘要")
    if _blank(entry.format_category) or _blank(entry.format_type):
        missing.append("7 信息资源格式")
    if not items:
        missing.append("8 信息项")
    else:
        undescribed = [i.name for i in items if _blank(i.title) or i.type_code not in TYPE_CODES]
        if undescribed:
            missing.append(f"8 信息项描述 ({', '.join(undescribed[:5])}{' …' if len(undescribed) > 5 else ''})")
    needs_basis = entry.share_type in NOT_SHARED or SHARE_TYPES.get(entry.share_type) == "conditional"
    known_type = entry.share_type in SHARE_TYPES or entry.share_type in NOT_SHARED
    if not known_type or _blank(entry.share_method) or (needs_basis and _blank(entry.share_condition)):
        missing.append("9 共享属性")
    if entry.open_to_public is None:
        missing.append("10 开放属性")
    if entry.update_cycle not in CYCLES:
        missing.append("11 更新周期")
    if status == "published" and entry.publish_date is None:
        missing.append("12 发布日期")
    if any(not isinstance(c, str) or not _CODE.match(c) for c in entry.related_resources or []):
        missing.append("13 关联资源代码")
    return missing


def _status_at(session: Session, until: dt.datetime, departments: Sequence[str]) -> dict[str, tuple[Entry, str]]:
    """Each entry of ``departments`` that existed before ``until``, with its lifecycle status then."""
    last = (
        select(Transition.entry_id, func.max(Transition.id).label("id"))
        .where(Transition.at < until)
        .group_by(Transition.entry_id)
        .subquery()
    )
    then = dict(
        session.execute(select(Transition.entry_id, Transition.to_status).join(last, Transition.id == last.c.id)).all()
    )
    moved = set(session.scalars(select(Transition.entry_id).distinct()))
    q = (
        select(Entry)
        .options(selectinload(Entry.items), selectinload(Entry.department))
        .where(Entry.department_uscc.in_(departments))
        .order_by(Entry.department_uscc, Entry.id)
    )
    found: dict[str, tuple[Entry, str]] = {}
    for entry in session.scalars(q):
        created = _utc(entry.created_at)
        if entry.id in then:
            found[entry.id] = (entry, str(then[entry.id]))
        elif entry.id not in moved and created is not None and created < until:
            found[entry.id] = (entry, entry.status)  # never moved through the lifecycle: its status is its own
        elif created is not None and created < until:
            found[entry.id] = (entry, "draft")
    return found


def _local(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


# --- the measures ------------------------------------------------------------------------------


def _periods(cycle: str, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """The cycle's periods lying wholly inside ``[start, end)``."""
    first = cycle_period(cycle, start)
    if first is None:
        return []
    periods = []
    current = first if first[0] >= start else cycle_period(cycle, first[1])
    while current is not None and current[1] <= end:
        periods.append(current)
        current = cycle_period(cycle, current[1])
    return periods


def _timeliness(
    session: Session, entries: dict[str, tuple[Entry, str]], since: dt.datetime, until: dt.datetime, now: dt.datetime
) -> list[dict[str, Any]]:
    published = [e for e, status in entries.values() if status == "published"]
    if not published:
        return []
    ids = [e.id for e in published]
    first = dict(
        session.execute(
            select(Version.entry_id, func.min(Version.published_at))
            .where(Version.entry_id.in_(ids), Version.published_at < until)
            .group_by(Version.entry_id)
        ).all()
    )
    stamps: dict[str, list[dt.datetime]] = defaultdict(list)
    for entry_id, at in session.execute(
        select(Version.entry_id, Version.published_at).where(
            Version.entry_id.in_(ids), Version.published_at >= since, Version.published_at < until
        )
    ):
        stamp = _utc(at)
        assert stamp is not None
        stamps[entry_id].append(stamp)
    end = min(until, now)
    rows = []
    for entry in published:
        begun = _utc(first.get(entry.id))
        row: dict[str, Any] = {
            "department": entry.department_uscc,
            "entry": entry.id,
            "name": entry.name,
            "update_cycle": entry.update_cycle,
            "first_version_at": begun,
            "expected": 0,
            "on_time": 0,
            "missed": [],
        }
        own = cycle_period(entry.update_cycle, begun) if begun is not None else None
        if own is not None:
            for start, stop in _periods(entry.update_cycle, max(since, own[0]), end):
                row["expected"] += 1
                if any(start <= s < stop for s in stamps.get(entry.id, ())):
                    row["on_time"] += 1
                else:
                    row["missed"].append(start)
        row["rate"] = _share(row["on_time"], row["expected"])
        rows.append(row)
    return rows


def _responses(
    session: Session, departments: Sequence[str], since: dt.datetime, until: dt.datetime, calendar: WorkdayCalendar
) -> list[dict[str, Any]]:
    decided_in = and_(Application.status.in_(DECIDED), Application.decided_at >= since, Application.decided_at < until)
    undecided_late = and_(
        or_(Application.decided_at.is_(None), Application.decided_at >= until),
        Application.submitted_at < until,
        Application.due_at < until,
        Application.due_at >= since,
    )
    q = (
        select(Application, Entry.department_uscc, Entry.name)
        .join(Entry, Entry.id == Application.entry_id)
        .where(
            Entry.department_uscc.in_(departments),
            Application.reviewer == "provider",
            Application.due_at.is_not(None),
            or_(decided_in, undecided_late),
        )
        .order_by(Application.submitted_at, Application.id)
    )
    rows = []
    for app, provider, entry_name in session.execute(q):
        submitted, due, decided = _utc(app.submitted_at), _utc(app.due_at), _utc(app.decided_at)
        assert submitted is not None and due is not None
        in_period = app.status in DECIDED and decided is not None and since <= decided < until
        days: int | None = None
        if in_period and decided is not None:
            try:
                days = calendar.working_days_between(submitted, decided)
            except CalendarError:
                days = None
        rows.append(
            {
                "department": provider,
                "id": app.id,
                "entry": app.entry_id,
                "entry_name": entry_name,
                "applicant": app.department_uscc,
                "status": app.status if in_period else "pending",
                "submitted_at": submitted,
                "due_at": due,
                "decided_at": decided if in_period else None,
                "working_days": days,
                "on_time": bool(in_period and decided is not None and decided <= due),
            }
        )
    return rows


def _quality(
    session: Session, departments: Sequence[str], since: dt.datetime, until: dt.datetime
) -> list[dict[str, Any]]:
    q = (
        select(
            Scorecard.department_uscc,
            Scorecard.dataset,
            func.count(),
            func.avg(Scorecard.score),
            func.min(Scorecard.score),
            func.max(Scorecard.score),
            func.sum(Scorecard.score),
        )
        .where(
            Scorecard.department_uscc.in_(departments),
            Scorecard.logical_at >= since,
            Scorecard.logical_at < until,
            Scorecard.score.is_not(None),
        )
        .group_by(Scorecard.department_uscc, Scorecard.dataset)
        .order_by(Scorecard.department_uscc, Scorecard.dataset)
    )
    return [
        {
            "department": dept,
            "dataset": dataset,
            "runs": int(n),
            "mean": round(float(mean), 4),
            "min": round(float(low), 4),
            "max": round(float(high), 4),
            "score_sum": float(total),
        }
        for dept, dataset, n, mean, low, high, total in session.execute(q)
    ]


def _objections(
    session: Session, departments: Sequence[str], since: dt.datetime, until: dt.datetime
) -> list[dict[str, Any]]:
    q = (
        select(Objection, Entry.department_uscc, Entry.name)
        .join(Entry, Entry.id == Objection.entry_id)
        .where(Entry.department_uscc.in_(departments), Objection.raised_at >= since, Objection.raised_at < until)
        .order_by(Objection.raised_at, Objection.id)
    )
    rows = []
    for obj, provider, entry_name in session.execute(q):
        raised, due, answered = _utc(obj.raised_at), _utc(obj.due_at), _utc(obj.answered_at)
        assert due is not None
        rows.append(
            {
                "department": provider,
                "id": obj.id,
                "entry": obj.entry_id,
                "entry_name": entry_name,
                "version": obj.version,
                "raised_by": obj.department_uscc,
                "subject": obj.subject,
                "status": obj.status,
                "raised_at": raised,
                "due_at": due,
                "answered_at": answered,
                "answered": answered is not None,
                "on_time": answered is not None and answered <= due,
            }
        )
    return rows


def _usage(
    session: Session, entries: dict[str, tuple[Entry, str]], since: dt.datetime, until: dt.datetime
) -> list[dict[str, Any]]:
    published = [e for e, status in entries.values() if status == "published"]
    if not published:
        return []
    ids = [e.id for e in published]
    ok = Delivery.outcome == "succeeded"
    at = func.coalesce(Delivery.finished_at, Delivery.started_at)
    deliveries = {
        e: (int(n), int(rows or 0))
        for e, n, rows in session.execute(
            select(Delivery.entry_id, func.count(), func.sum(Delivery.rows))
            .where(Delivery.entry_id.in_(ids), ok, Delivery.mode != "api", at >= since, at < until)
            .group_by(Delivery.entry_id)
        )
    }
    good = and_(ApiCall.status >= 200, ApiCall.status < 400)
    calls = {
        e: (int(n), int(rows or 0))
        for e, n, rows in session.execute(
            select(ApiCall.entry_id, func.count(), func.sum(ApiCall.rows))
            .where(ApiCall.entry_id.in_(ids), good, ApiCall.at >= since, ApiCall.at < until)
            .group_by(ApiCall.entry_id)
        )
    }
    consumers: dict[str, set[str]] = defaultdict(set)
    for e, d in session.execute(
        select(Delivery.entry_id, Delivery.department_uscc)
        .where(Delivery.entry_id.in_(ids), ok, at >= since, at < until)
        .distinct()
    ):
        consumers[e].add(d)
    for called, caller in session.execute(
        select(ApiCall.entry_id, ApiCall.department_uscc)
        .where(
            ApiCall.entry_id.in_(ids),
            good,
            ApiCall.at >= since,
            ApiCall.at < until,
            ApiCall.department_uscc.is_not(None),
        )
        .distinct()
    ):
        consumers[str(called)].add(str(caller))
    rows = []
    for entry in published:
        n, rows_delivered = deliveries.get(entry.id, (0, 0))
        c, api_rows = calls.get(entry.id, (0, 0))
        rows.append(
            {
                "department": entry.department_uscc,
                "entry": entry.id,
                "name": entry.name,
                "deliveries": n,
                "rows": rows_delivered,
                "api_calls": c,
                "api_rows": api_rows,
                "consumers": len(consumers.get(entry.id, ())),
                "used": n > 0 or c > 0,
            }
        )
    return rows


# --- the assessment ----------------------------------------------------------------------------


def assess(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    *,
    departments: Iterable[str] | None = None,
    weights: Weights | None = None,
    now: dt.datetime | None = None,
    calendar: WorkdayCalendar | None = None,
) -> dict[str, Any]:
    """The assessment of ``departments`` (USCCs; default: every department) over ``[since, until)``.

    Returns ``{"since", "until", "generated_at", "weights", "departments": [per department:
    uscc, name, measures {key: {score, …counts}}, score, weight_evaluated, rank], "details":
    {catalog, timeliness, response, quality, objections, usage: rows}}``.
    """
    if since.tzinfo is None or until.tzinfo is None:
        raise AssessmentError("since and until must carry a time zone", hint="e.g. 2026-10-01T00:00:00+08:00")
    since, until = since.astimezone(dt.UTC), until.astimezone(dt.UTC)
    if since >= until:
        raise AssessmentError(
            f"since ({since.isoformat()}) is not before until ({until.isoformat()})",
            hint="the period is [since, until)",
        )
    moment = _utc(now) or dt.datetime.now(dt.UTC)
    cal = calendar or default_calendar()
    w = weights or load_weights()
    names_q = select(Department.uscc, Department.name).order_by(Department.uscc)
    if departments is not None:
        names_q = names_q.where(Department.uscc.in_(sorted(set(departments))))
    names = {str(u): str(n) for u, n in session.execute(names_q)}
    wanted = list(names)

    entries = _status_at(session, until, wanted)
    catalog_rows = []
    for entry, status in entries.values():
        if status not in CATALOGUED:
            continue
        missing = missing_elements(entry, entry.items, entry.department.name if entry.department else None, status)
        catalog_rows.append(
            {
                "department": entry.department_uscc,
                "entry": entry.id,
                "name": entry.name,
                "status": status,
                "complete": not missing,
                "missing": missing,
            }
        )
    timely = _timeliness(session, entries, since, until, moment)
    responses = _responses(session, wanted, since, until, cal)
    quality = _quality(session, wanted, since, until)
    objections = _objections(session, wanted, since, until)
    usage = _usage(session, entries, since, until)

    def of(rows: list[dict[str, Any]], uscc: str) -> list[dict[str, Any]]:
        return [r for r in rows if r["department"] == uscc]

    weight_of = w.model_dump()
    results = []
    for uscc in wanted:
        cat = of(catalog_rows, uscc)
        complete = sum(1 for r in cat if r["complete"])
        published = sum(1 for r in cat if r["status"] == "published")
        tim = of(timely, uscc)
        expected, on_time = sum(r["expected"] for r in tim), sum(r["on_time"] for r in tim)
        resp = of(responses, uscc)
        decided_days = [
            r["working_days"] for r in resp if r["decided_at"] is not None and r["working_days"] is not None
        ]
        qual = of(quality, uscc)
        runs = sum(r["runs"] for r in qual)
        obj = of(objections, uscc)
        use = of(usage, uscc)
        measures: dict[str, dict[str, Any]] = {
            "completeness": {"score": _share(complete, len(cat)), "complete": complete, "catalogued": len(cat)},
            "coverage": {"score": _share(published, len(cat)), "published": published, "catalogued": len(cat)},
            "timeliness": {"score": _share(on_time, expected), "on_time": on_time, "expected": expected},
            "response": {
                "score": _share(sum(1 for r in resp if r["on_time"]), len(resp)),
                "counted": len(resp),
                "decided": sum(1 for r in resp if r["decided_at"] is not None),
                "on_time": sum(1 for r in resp if r["on_time"]),
                "overdue_undecided": sum(1 for r in resp if r["decided_at"] is None),
                "mean_working_days": round(statistics.fmean(decided_days), 2) if decided_days else None,
                "median_working_days": statistics.median(decided_days) if decided_days else None,
            },
            "quality": {
                "score": round(sum(r["score_sum"] for r in qual) / runs, 4) if runs else None,
                "runs": runs,
                "datasets": len(qual),
            },
            "objections": {
                "score": _share(sum(1 for r in obj if r["on_time"]), len(obj)),
                "raised": len(obj),
                "answered": sum(1 for r in obj if r["answered"]),
                "on_time": sum(1 for r in obj if r["on_time"]),
                "answered_rate": _share(sum(1 for r in obj if r["answered"]), len(obj)),
            },
            "usage": {
                "score": _share(sum(1 for r in use if r["used"]), len(use)),
                "used": sum(1 for r in use if r["used"]),
                "published": len(use),
                "deliveries": sum(r["deliveries"] for r in use),
                "rows": sum(r["rows"] for r in use),
                "api_calls": sum(r["api_calls"] for r in use),
                "api_rows": sum(r["api_rows"] for r in use),
            },
        }
        evaluated = {k: m["score"] for k, m in measures.items() if m["score"] is not None and weight_of[k] > 0}
        weight = sum(weight_of[k] for k in evaluated)
        total = round(100 * sum(weight_of[k] * s for k, s in evaluated.items()) / weight, 1) if weight else None
        results.append(
            {
                "uscc": uscc,
                "name": names[uscc],
                "measures": measures,
                "score": total,
                "weight_evaluated": round(weight / sum(weight_of.values()), 4),
            }
        )
    ranked = sorted((r for r in results if r["score"] is not None), key=lambda r: -r["score"])
    for r in results:
        r["rank"] = 1 + sum(1 for o in ranked if o["score"] > r["score"]) if r["score"] is not None else None
    return {
        "since": since,
        "until": until,
        "generated_at": moment,
        "weights": weight_of,
        "departments": results,
        "details": {
            "catalog": catalog_rows,
            "timeliness": timely,
            "response": responses,
            "quality": quality,
            "objections": objections,
            "usage": usage,
        },
    }


# --- as tables -----------------------------------------------------------------------------------


def tables(result: dict[str, Any], *, label: str | None = None) -> list[Any]:
    """The assessment as :class:`pipelines.report_export.Table` sheets: 汇总 and one per measure, then 说明."""
    from pipelines.report_export import Table

    def h(zh: str, en: str) -> str:
        return f"{zh} {en}"

    names = {d["uscc"]: d["name"] for d in result["departments"]}
    rate, score = "0.0%", "0.0"
    dept_cols = [h("部门", "Department"), h("统一社会信用代码", "USCC")]

    def dept(uscc: str) -> list[Any]:
        return [names.get(uscc, uscc), uscc]

    summary = Table(
        "summary",
        "汇总 Summary",
        [
            h("排名", "Rank"),
            *dept_cols,
            h("总分", "Total"),
            *[h(zh, en) for zh, en in MEASURES.values()],
            h("参评权重占比", "Weight evaluated"),
        ],
    )
    summary.number_format = {3: score, **{4 + i: rate for i in range(len(MEASURES))}, 4 + len(MEASURES): rate}
    summary.number_format[4 + list(MEASURES).index("quality")] = "0.0000"
    for d in sorted(result["departments"], key=lambda d: (d["rank"] is None, d["rank"] or 0, d["uscc"])):
        summary.rows.append(
            [
                d["rank"],
                d["name"],
                d["uscc"],
                d["score"],
                *[d["measures"][k]["score"] for k in MEASURES],
                d["weight_evaluated"],
            ]
        )
    details = result["details"]
    catalog = Table(
        "catalog",
        "目录 Catalog",
        [
            *dept_cols,
            h("资源", "Entry"),
            h("资源名称", "Name"),
            h("状态", "Status"),
            h("完整", "Complete"),
            h("缺项", "Missing"),
        ],
    )
    for r in details["catalog"]:
        catalog.rows.append(
            [
                *dept(r["department"]),
                r["entry"],
                r["name"],
                r["status"],
                "是" if r["complete"] else "否",
                "；".join(r["missing"]),
            ]
        )
    timeliness = Table(
        "timeliness",
        "更新 Timeliness",
        [
            *dept_cols,
            h("资源", "Entry"),
            h("资源名称", "Name"),
            h("更新周期", "Update cycle"),
            h("应更新期数", "Expected"),
            h("按时期数", "On time"),
            h("按时更新率", "Rate"),
            h("未更新期次", "Missed periods"),
        ],
        number_format={7: rate},
    )
    for r in details["timeliness"]:
        missed = [m.astimezone(SHANGHAI).date().isoformat() for m in r["missed"][:10]]
        more = f" …(+{len(r['missed']) - 10})" if len(r["missed"]) > 10 else ""
        timeliness.rows.append(
            [
                *dept(r["department"]),
                r["entry"],
                r["name"],
                r["update_cycle"],
                r["expected"],
                r["on_time"],
                r["rate"],
                " ".join(missed) + more,
            ]
        )
    response = Table(
        "response",
        "申请响应 Response",
        [
            *dept_cols,
            h("申请", "Application"),
            h("资源", "Entry"),
            h("申请部门", "Applicant"),
            h("状态", "Status"),
            h("提交时间", "Submitted"),
            h("办理时限", "Due"),
            h("办结时间", "Decided"),
            h("用时(工作日)", "Working days"),
            h("按时", "On time"),
        ],
    )
    for r in details["response"]:
        response.rows.append(
            [
                *dept(r["department"]),
                r["id"],
                r["entry"],
                names.get(r["applicant"], r["applicant"]),
                r["status"],
                _local(r["submitted_at"]),
                _local(r["due_at"]),
                _local(r["decided_at"]),
                r["working_days"],
                "是" if r["on_time"] else "否",
            ]
        )
    quality = Table(
        "quality",
        "质量 Quality",
        [
            *dept_cols,
            h("数据集", "Dataset"),
            h("运行次数", "Runs"),
            h("平均评分", "Mean"),
            h("最低", "Min"),
            h("最高", "Max"),
        ],
        number_format={4: "0.0000", 5: "0.0000", 6: "0.0000"},
    )
    for r in details["quality"]:
        quality.rows.append([*dept(r["department"]), r["dataset"], r["runs"], r["mean"], r["min"], r["max"]])
    objections = Table(
        "objections",
        "异议 Objections",
        [
            *dept_cols,
            h("异议", "Objection"),
            h("资源", "Entry"),
            h("版本", "Version"),
            h("提出部门", "Raised by"),
            h("主题", "Subject"),
            h("状态", "Status"),
            h("提出时间", "Raised"),
            h("答复时限", "Due"),
            h("答复时间", "Answered"),
            h("按时", "On time"),
        ],
    )
    for r in details["objections"]:
        objections.rows.append(
            [
                *dept(r["department"]),
                r["id"],
                r["entry"],
                r["version"],
                names.get(r["raised_by"], r["raised_by"]),
                r["subject"],
                r["status"],
                _local(r["raised_at"]),
                _local(r["due_at"]),
                _local(r["answered_at"]),
                "是" if r["on_time"] else "否",
            ]
        )
    usage = Table(
        "usage",
        "使用 Usage",
        [
            *dept_cols,
            h("资源", "Entry"),
            h("资源名称", "Name"),
            h("交付次数", "Deliveries"),
            h("交付行数", "Rows delivered"),
            h("接口调用", "API calls"),
            h("接口行数", "API rows"),
            h("使用部门数", "Consumers"),
        ],
    )
    for r in details["usage"]:
        usage.rows.append(
            [
                *dept(r["department"]),
                r["entry"],
                r["name"],
                r["deliveries"],
                r["rows"],
                r["api_calls"],
                r["api_rows"],
                r["consumers"],
            ]
        )
    weights = result["weights"]
    about = Table(
        "about",
        "说明 About",
        [h("项目", "Item"), h("内容", "Value")],
        [
            [h("考核期", "Period"), label or ""],
            [h("起", "Since"), _local(result["since"])],
            [h("止(不含)", "Until (exclusive)"), _local(result["until"])],
            [h("生成时间", "Generated at"), _local(result["generated_at"])],
            *[[h(f"权重·{zh}", en), weights[k]] for k, (zh, en) in MEASURES.items()],
            [
                h("总分", "Total"),
                "总分 = Σ(权重 × 得分) ÷ Σ(参评指标的权重) × 100；无可计数据的指标不参评 "
                "(weighted mean of the evaluated measures × 100)",
            ],
            [h("参评权重占比", "Weight evaluated"), "参评指标的权重之和 ÷ 全部权重之和"],
            *[[h(f"计算方法·{zh}", f"Method: {en}"), METHODS[k]] for k, (zh, en) in MEASURES.items()],
            [h("时区", "Time zone"), "Asia/Shanghai"],
        ],
    )
    return [summary, catalog, timeliness, response, quality, objections, usage, about]
