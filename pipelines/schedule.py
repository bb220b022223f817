"""When a dataset runs: its declared 更新周期 turned into a schedule, and the run key of a period.

This module is the core's half of scheduling; it imports no Airflow. The DAG factory
(``dags/govdata_datasets.py``) turns a :class:`Plan` into an Airflow timetable, and the CLI
uses the same plan to name the period a ``--date`` falls in.

Every cycle has a *data interval*: a run covers one whole period (a day, a week, a month …)
and starts after the period ended, in the city's time zone (default ``Asia/Shanghai``). The
start of the interval is the run key (:func:`pipelines.workspace.run_id_for`): the daily run for
24 November 2026 has the key ``2026-11-24`` whether Airflow scheduled it, a backfill re-ran it
or an officer typed ``govdata run SPEC --date 2026-11-24``, so all three replace the same run's
outputs and never make a second version of the same content.

=========  ================================  =============================================
更新周期     default schedule                 interval
=========  ================================  =============================================
实时        every 15 minutes                  15 minutes (``schedule.interval_minutes``)
每日        ``0 0 * * *``                     one calendar day
每周        ``0 0 * * 1``                     Monday to Monday (the week starts on Monday)
每月        ``0 0 1 * *``                     one calendar month
每季度      ``0 0 1 1,4,7,10 *``              one calendar quarter
半年        ``0 0 1 1,7 *``                   January–June, July–December
每年        ``0 0 1 1 *``                     one calendar year
其他        none                              runs only when triggered (UI, CLI, API)
=========  ================================  =============================================

A spec may override this with ``schedule.cron`` (a five-field cron expression: the interval
runs from one match to the next) or ``schedule.interval_minutes``, and set ``timezone``,
``start_date`` and ``catchup``.
"""

from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from pipelines.errors import SpecError
from pipelines.spec import DatasetSpec, UpdateCycle

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_START = dt.date(2024, 1, 1)
DEFAULT_REALTIME_MINUTES = 15

#: 更新周期 -> cron expression of the period boundaries (None: only triggered runs).
CYCLE_CRONS: dict[UpdateCycle, str | None] = {
    UpdateCycle.REALTIME: None,  # an interval, see DEFAULT_REALTIME_MINUTES
    UpdateCycle.DAILY: "0 0 * * *",
    UpdateCycle.WEEKLY: "0 0 * * 1",
    UpdateCycle.MONTHLY: "0 0 1 * *",
    UpdateCycle.QUARTERLY: "0 0 1 1,4,7,10 *",
    UpdateCycle.HALF_YEARLY: "0 0 1 1,7 *",
    UpdateCycle.YEARLY: "0 0 1 1 *",
    UpdateCycle.OTHER: None,
}

#: The placeholders a source path may use, filled from the run's period (its logical date).
PATH_FIELDS = {
    "ds": "the period's start date, 2026-11-24",
    "ds_nodash": "the same without dashes, 20261124",
    "year": "2026",
    "month": "11 (two digits)",
    "day": "24 (two digits)",
}


@dataclass(frozen=True)
class Plan:
    """How one dataset is scheduled: a cron of period boundaries, a fixed interval, or neither."""

    cron: str | None
    interval: dt.timedelta | None
    timezone: str
    start: dt.datetime
    catchup: bool
    source: str  # "cycle" (from 更新周期) or "spec" (schedule: in the spec)

    @property
    def triggered_only(self) -> bool:
        return self.cron is None and self.interval is None

    def describe(self) -> str:
        if self.cron:
            return f"cron {self.cron!r} in {self.timezone}"
        if self.interval:
            return f"every {int(self.interval.total_seconds() // 60)} minutes"
        return "only when triggered"


def plan_for(spec: DatasetSpec) -> Plan:
    """The schedule of ``spec``: its ``schedule:`` section where given, else its 更新周期."""
    s = spec.schedule
    tz = ZoneInfo(s.timezone)
    start = dt.datetime.combine(s.start_date or DEFAULT_START, dt.time(), tzinfo=tz)
    cycle = spec.catalog.update_cycle
    if s.cron is not None:
        return Plan(s.cron, None, s.timezone, start, s.catchup, "spec")
    if s.interval_minutes is not None:
        return Plan(None, dt.timedelta(minutes=s.interval_minutes), s.timezone, start, s.catchup, "spec")
    if cycle is UpdateCycle.REALTIME:
        minutes = dt.timedelta(minutes=DEFAULT_REALTIME_MINUTES)
        return Plan(None, minutes, s.timezone, start, s.catchup, "cycle")
    return Plan(CYCLE_CRONS[cycle], None, s.timezone, start, s.catchup, "cycle")


def local_moment(spec: DatasetSpec, moment: dt.datetime) -> dt.datetime:
    """``moment`` (an aware datetime, e.g. Airflow's UTC logical date) in the spec's time zone."""
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    return moment.astimezone(ZoneInfo(spec.schedule.timezone))


def render_source_options(spec: DatasetSpec, logical_date: dt.date | dt.datetime | None) -> dict[str, Any]:
    """The source options with ``{ds}``-style placeholders in ``path`` filled for the run's period.

    A daily export that arrives as ``exports/2026-11-24.csv`` is declared as
    ``path: exports/{ds}.csv``; each run (and each backfilled period) reads its own file. Only
    ``path`` is rendered; a literal brace is written ``{{`` or ``}}``.
    """
    options = dict(spec.source.options)
    path = options.get("path")
    if not isinstance(path, str) or ("{" not in path and "}" not in path):
        return options
    where = f"{spec.path or spec.id}: source.options.path"
    try:
        parsed = [(f, spec_, conv) for _, f, spec_, conv in string.Formatter().parse(path) if f is not None]
    except ValueError as exc:
        raise SpecError(
            f"{where} {path!r} is not a valid template: {exc}", hint="write a literal brace as {{ or }}"
        ) from exc
    fields = [f for f, _, _ in parsed]
    dressed = [f for f, fmt, conv in parsed if fmt or conv]
    if dressed:
        raise SpecError(
            f"{where} formats the placeholder {{{dressed[0]}}}; only plain placeholders are allowed",
            hint="write e.g. {ds} or {ds_nodash} without ! or :",
        )
    unknown = [f for f in fields if f not in PATH_FIELDS]
    if unknown:
        raise SpecError(
            f"{where} uses the unknown placeholder {{{unknown[0]}}}",
            hint="placeholders are: " + ", ".join(f"{{{k}}} ({v})" for k, v in PATH_FIELDS.items()),
        )
    if fields and logical_date is None:
        raise SpecError(f"{where} depends on the run's date, and none was given", hint="run it with --date YYYY-MM-DD")
    day = logical_date.date() if isinstance(logical_date, dt.datetime) else logical_date
    values = {}
    if day is not None:
        values = {
            "ds": day.isoformat(),
            "ds_nodash": day.strftime("%Y%m%d"),
            "year": f"{day.year:04d}",
            "month": f"{day.month:02d}",
            "day": f"{day.day:02d}",
        }
    options["path"] = path.format(**values)
    return options
