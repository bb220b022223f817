"""``govdata assess`` (the periodic assessment, 考核, as a table and an xlsx workbook) and ``govdata exchange monitor``.

Both read the platform database directly, as the local operator of the workspace (like
``govdata report``): no ``--as`` is needed. The rules are :mod:`exchange.assessment`'s and
:mod:`exchange.monitoring`'s; these commands only choose the period and print.

The period is ``--period`` (``2026``, ``2026-Q3``/``2026Q3``, ``2026H2``, ``2026-10``) or
``--from``/``--to`` (dates, both days included, Asia/Shanghai). ``govdata assess`` without either
assesses the previous calendar month; ``govdata exchange monitor`` shows the last 30 days.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from pipelines.cli_common import HomeOpt, out, user_errors
from pipelines.cli_exchange import exchange_app, store

__all__ = ["assess", "monitor", "watch"]

PeriodOpt = Annotated[
    str | None,
    typer.Option(
        "--period",
        help="A named period: 2026 (year), 2026-Q3 (quarter), 2026H2 (half-year), 2026-10 (month).",
        show_default=False,
    ),
]
FromOpt = Annotated[
    str | None,
    typer.Option("--from", help="First day of the period, YYYY-MM-DD (Asia/Shanghai).", show_default=False),
]
ToOpt = Annotated[
    str | None,
    typer.Option("--to", help="Last day of the period, YYYY-MM-DD, included.", show_default=False),
]
DepartmentOpt = Annotated[
    str | None,
    typer.Option("--department", help="Only this department: its USCC (统一社会信用代码).", show_default=False),
]
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Short column names for the terminal (the workbook has the full ones).
_SHORT = {
    "completeness": "目录\n完整",
    "coverage": "目录\n发布",
    "timeliness": "按时\n更新",
    "response": "按时\n办结",
    "quality": "质量",
    "objections": "异议\n答复",
    "usage": "资源\n使用",
}


def _day(value: str, option: str) -> dt.date:
    from exchange.monitoring import ScopeError

    text = value.strip()
    try:
        if not _DAY.match(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ScopeError(
            f"{option} {value[:40]!r} is not a date", hint=f"give {option} as YYYY-MM-DD, e.g. 2026-10-01"
        ) from None


def _previous_month(today: dt.date) -> str:
    first = today.replace(day=1) - dt.timedelta(days=1)
    return f"{first.year}-{first.month:02d}"


def _scope(
    session: Any,
    *,
    period: str | None,
    first: str | None,
    last: str | None,
    department: str | None,
    default: str,
) -> tuple[Any, str]:
    """The checked :class:`~exchange.monitoring.Scope` and a label for it (the period, or ``from_to``)."""
    from exchange.calendar import SHANGHAI
    from exchange.monitoring import ScopeError, make_scope

    if period is not None and (first is not None or last is not None):
        raise ScopeError("give either --period or --from/--to, not both", hint="e.g. --period 2026-Q3")
    if period is None and first is None and last is None and default == "previous-month":
        period = _previous_month(dt.datetime.now(SHANGHAI).date())
    since = _day(first, "--from") if first is not None else None
    until = _day(last, "--to") + dt.timedelta(days=1) if last is not None else None
    if since is not None and until is not None and until <= since:
        raise ScopeError(
            f"--to {last} is before --from {first}", hint="the period runs from --from to --to, both days included"
        )
    scope = make_scope(session, since=since, until=until, period=period, department=department)
    if period is not None:
        label = period.strip().upper()
    else:
        start = scope.since.astimezone(SHANGHAI).date()
        end = (scope.until - dt.timedelta(microseconds=1)).astimezone(SHANGHAI).date()
        label = f"{start.isoformat()}_{end.isoformat()}"
    return scope, label


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _default_output(home: Path | None, label: str) -> Path:
    from pipelines.workspace import Workspace

    safe = re.sub(r"[^0-9A-Za-z_.-]", "_", label)
    return Workspace.from_env(home).root / "reports" / "_assessment" / f"assessment-{safe}.xlsx"


def assess(
    period: PeriodOpt = None,
    first: FromOpt = None,
    last: ToOpt = None,
    department: DepartmentOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="The .xlsx file (default: <workspace>/reports/_assessment/assessment-<period>.xlsx).",
            show_default=False,
        ),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="YAML weights per measure (default: $GOVDATA_ASSESSMENT_WEIGHTS, else the built-in ones).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")] = False,
    home: HomeOpt = None,
) -> None:
    """Assess each department (考核) over a period; print the scores and write the xlsx workbook.

    Measures: catalog completeness and coverage, on-time updates, applications decided on time,
    quality score, objections answered on time, resources used; the 说明 sheet of the workbook
    gives each one's formula. Without --period or --from/--to: the previous calendar month.
    """
    from exchange.assessment import MEASURES, load_weights, tables
    from exchange.assessment import assess as run_assessment
    from pipelines.report_export import write_xlsx

    with user_errors():
        chosen = load_weights(weights) if weights is not None else None
        with store(home).session() as s:
            scope, label = _scope(
                s, period=period, first=first, last=last, department=department, default="previous-month"
            )
            wanted = [scope.department] if scope.department else None
            result = run_assessment(s, scope.since, scope.until, departments=wanted, weights=chosen)
        target = output or _default_output(home, label)
        written = write_xlsx(target, tables(result, label=label))
    if as_json:
        payload = {k: v for k, v in result.items() if k != "details"}
        out.print_json(
            json.dumps({**payload, "period": label, "output": str(written)}, ensure_ascii=False, default=str)
        )
        return
    table = Table(
        title=f"考核 {label}",
        caption="质量: 平均评分 ×100; 其余为比率; – 无可计数据（不参评）",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("排名", justify="right", no_wrap=True)
    table.add_column("部门", overflow="fold", min_width=8)
    table.add_column("总分", justify="right", no_wrap=True)
    for key in MEASURES:
        table.add_column(_SHORT[key], justify="right", no_wrap=True)
    table.add_column("参评\n权重", justify="right", no_wrap=True)
    ordered = sorted(result["departments"], key=lambda d: (d["rank"] is None, d["rank"] or 0, d["uscc"]))
    for d in ordered:
        measures = d["measures"]
        quality = measures["quality"]["score"]
        cells = [
            ("–" if quality is None else f"{quality * 100:.1f}") if k == "quality" else _pct(measures[k]["score"])
            for k in MEASURES
        ]
        table.add_row(
            "–" if d["rank"] is None else str(d["rank"]),
            d["name"],
            "–" if d["score"] is None else f"{d['score']:.1f}",
            *cells,
            _pct(d["weight_evaluated"]),
        )
    if ordered:
        out.print(table)
    else:
        out.print("no department to assess", highlight=False)
    out.print(f"workbook: {written}", highlight=False, soft_wrap=True)


@exchange_app.command("monitor")
def monitor(
    period: PeriodOpt = None,
    first: FromOpt = None,
    last: ToOpt = None,
    department: DepartmentOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """The exchange's headline numbers (default: the last 30 days): deliveries, failures, latency, pending, freshness."""
    from exchange import monitoring

    with user_errors(), store(home).session() as s:
        scope, label = _scope(s, period=period, first=first, last=last, department=department, default="30-days")
        found = monitoring.summary(s, scope)
    if as_json:
        out.print_json(json.dumps({**found, "period": label}, ensure_ascii=False, default=str))
        return
    pending, fresh = found["pending_applications"], found["freshness"]
    d_lat, a_lat = found["delivery_latency"], found["api_latency"]

    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value:.0f}"

    table = Table(title=f"exchange {label}" + (f" · {scope.department}" if scope.department else ""), show_header=False)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row(
        "deliveries",
        f"{found['deliveries']} ({found['deliveries_succeeded']} succeeded, {found['deliveries_failed']} failed, "
        f"failure rate {_pct(found['failure_rate'])})",
    )
    table.add_row("rows delivered", str(found["rows_delivered"]))
    table.add_row("API calls", f"{found['api_calls']} ({found['api_calls_failed']} failed, {found['api_rows']} rows)")
    table.add_row("delivery latency", f"p50 {ms(d_lat['p50'])} ms, p95 {ms(d_lat['p95'])} ms")
    table.add_row("API latency", f"p50 {ms(a_lat['p50'])} ms, p95 {ms(a_lat['p95'])} ms")
    table.add_row(
        "pending applications (now)",
        f"{pending['on_time'] + pending['due_soon'] + pending['overdue']} "
        f"({pending['overdue']} overdue, {pending['due_soon']} due soon)",
    )
    table.add_row(
        "freshness (now)",
        f"{fresh['fresh']} fresh, {fresh['late']} late, {fresh['never']} never published, {fresh['no_cycle']} no cycle",
    )
    table.add_row("notifications failed", str(found["notifications_failed"]))
    out.print(table)


_CHECKS = ("freshness", "reviews", "deliveries")


@exchange_app.command("watch")
def watch(
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            help="Run only this check (repeatable): freshness, reviews, deliveries. Default: all three.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the pass's counts as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """One pass of the watch (巡检): alert stale resources, overdue reviews and failed deliveries, once each."""
    from exchange.watch import KINDS, run_watch
    from pipelines.errors import SpecError

    with user_errors():
        chosen = tuple(dict.fromkeys(c.strip().lower() for c in (check or _CHECKS)))
        unknown = [c for c in chosen if c not in _CHECKS]
        if unknown:
            raise SpecError(f"--check {unknown[0][:40]!r} is not a check", hint=f"choose from {', '.join(_CHECKS)}")
        report = run_watch(store(home), chosen)
    if as_json:
        out.print_json(json.dumps(report.as_dict(), ensure_ascii=False))
        return
    for kind, name in KINDS.items():
        if kind in report.seen and (report.seen[kind] or report.raised[kind]):
            out.print(
                f"{name} ({kind}): {report.seen[kind]} found, {report.raised[kind]} new alert(s)", highlight=False
            )
    if not report.as_dict()["total_raised"]:
        out.print("no new alerts", highlight=False)
