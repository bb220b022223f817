"""``govdata report``: quality scorecards, their trend, and exports for auditors (xlsx, csv).

Imports only typer and rich at module top (``govdata --help`` stays fast); the catalog and the
export writers are imported inside the commands.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.cli_common import HomeOpt, out
from pipelines.cli_common import fail as _fail
from pipelines.cli_common import user_errors as _user_errors
from pipelines.errors import GovdataError

report_app = typer.Typer(
    help="Quality scorecards (GB/T 36344 dimensions, DB31/T 1523 indicators), trends and exports.",
    no_args_is_help=True,
)

DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="Only this dataset (id).", show_default=False)]
DepartmentOpt = Annotated[
    str | None,
    typer.Option("--department", help="Only this department: its USCC (提供方代码) or exact name.", show_default=False),
]
SPARKS = "▁▂▃▄▅▆▇█"


class ExportFormat(StrEnum):
    xlsx = "xlsx"
    csv = "csv"


def _store(home: Path | None) -> Any:
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    return CatalogStore(Workspace.from_env(home).catalog_url)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def sparkline(values: Sequence[float | None]) -> str:
    """One block character per value, scaled between the smallest and largest (gaps for none)."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    return "".join(
        " " if v is None else SPARKS[len(SPARKS) - 1 if span == 0 else round((v - low) / span * (len(SPARKS) - 1))]
        for v in values
    )


def _status(status: str) -> str:
    colour = {"published": "green", "unchanged": "green", "passed": "green", "held": "red"}.get(status, "yellow")
    return f"[{colour}]{status}[/]"


@report_app.command("scorecard")
def scorecard_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    run: Annotated[str | None, typer.Option("--run", help="This run key instead of the latest.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many runs the trend shows.")] = 12,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scorecard and the trend as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """Show a dataset's scorecard (the latest run, or --run) with the trend over its runs."""
    from pipelines import scorecard
    from pipelines.report_export import check_dataset

    with _user_errors():
        store = _store(home)
        check_dataset(store, dataset)
        cards = store.scorecards(dataset=dataset)
        if not cards:
            raise GovdataError(
                f"dataset {dataset!r} has no scorecard yet",
                hint="scorecards are computed by the quality step: run the dataset",
            )
        chosen = cards[-1]
        if run is not None:
            matches = [c for c in cards if c["run_id"] == run]
            if not matches:
                raise GovdataError(
                    f"dataset {dataset!r} has no scorecard for run {run!r}",
                    hint="runs with a scorecard: " + ", ".join(c["run_id"] for c in cards[-20:]),
                )
            chosen = matches[0]
    points = [scorecard.point(c) for c in cards][-limit:]
    if as_json:
        typer.echo(json.dumps({"scorecard": chosen, "trend": points}, ensure_ascii=False, indent=2))
        return
    version = f" v{chosen['version']}" if chosen.get("version") else ""
    out.print(
        f"[bold]{chosen.get('dataset_name') or dataset}[/] ({dataset}) · {chosen['department']['name']}\n"
        f"run {chosen['run_id']} · {_status(chosen['status'])}{version} · overall score "
        f"[bold]{_score(chosen['score'])}[/]",
        highlight=False,
    )
    dims = Table(title="维度 dimensions (GB/T 36344-2018)")
    for col in ("code", "维度", "DAMA", "score", "indicators"):
        dims.add_column(col, no_wrap=col != "indicators")
    for d in chosen["dimensions"]:
        dims.add_row(d["code"], d["name"], d["dama"], _score(d["score"]), " ".join(d["indicators"]) or "not evaluated")
    out.print(dims)
    inds = Table(title="指标 indicators (DB31/T 1523-2024), X = A/B")
    for col in ("code", "指标", "dimension", "formula", "A", "B", "X"):
        inds.add_column(col, no_wrap=col != "指标", justify="right" if col in ("A", "B", "X") else "left")
    skipped = []
    for i in chosen["indicators"]:
        if i["b"] is None:
            skipped.append(i["code"])
            continue
        inds.add_row(i["code"], i["name"], i["dimension"], i["formula"], str(i["a"]), str(i["b"]), _score(i["x"]))
    out.print(inds)
    if skipped:
        out.print(f"not evaluated: {', '.join(skipped)}", style="dim", highlight=False)
    t = chosen.get("timeliness") or {}
    if t.get("due"):
        on_time = "on time" if t.get("on_time") else "[red]late[/]"
        out.print(
            f"时效性: {t['update_cycle']} · arrived {t['arrived_at']} · due {t['due']} · {on_time}", highlight=False
        )
    for ref in chosen.get("references") or []:
        out.print(
            f"reference: expectations[{ref['index']}] checked against {ref['dataset']}.{ref['column']} "
            f"v{ref['version']} ({ref['values']} values)",
            highlight=False,
        )
    _print_trend(points, title=f"trend ({len(points)} runs)")


def _print_trend(points: Sequence[dict[str, Any]], *, title: str, show_dataset: bool = False) -> None:
    from pipelines.scorecard import DIMENSIONS

    table = Table(title=title)
    columns = ["dataset"] if show_dataset else []
    columns += ["run", "status", "version", "score"]  # the run key is the logical date
    for col in columns:
        table.add_column(col, no_wrap=True)
    # Only the dimensions some run evaluated, by Chinese name: the table stays narrow.
    shown = [d for d in DIMENSIONS if any(p["dimensions"].get(d.key) is not None for p in points)]
    for d in shown:
        table.add_column(d.name, no_wrap=True, justify="right")
    for p in points:
        cells = [p["dataset"]] if show_dataset else []
        cells += [
            p["run_id"],
            _status(p["status"]),
            f"v{p['version']}" if p.get("version") else "-",
            _score(p["score"]),
        ]
        cells += [_score(p["dimensions"].get(d.key)) for d in shown]
        table.add_row(*cells)
    out.print(table)
    line = sparkline([p["score"] for p in points])
    if line:
        scores = [p["score"] for p in points if p["score"] is not None]
        out.print(f"overall {line}  ({min(scores):.4f} … {max(scores):.4f})", highlight=False)


@report_app.command("trend")
def trend_cmd(
    dataset: DatasetOpt = None,
    department: DepartmentOpt = None,
    by_date: Annotated[
        bool, typer.Option("--by-date", help="One line per logical date (mean over the datasets).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the trend points as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """The scorecards over time, per dataset or per department (held runs included)."""
    from pipelines import scorecard
    from pipelines.report_export import check_dataset, resolve_department

    with _user_errors():
        store = _store(home)
        if dataset is not None:
            check_dataset(store, dataset)
        uscc = resolve_department(store, department) if department is not None else None
        points = [scorecard.point(c) for c in store.scorecards(dataset=dataset, department=uscc)]
    if not points:
        _fail(GovdataError("no scorecards match", hint="run a dataset first (`govdata run SPEC`)"))
    if by_date:
        grouped = scorecard.by_period(points)
        if as_json:
            typer.echo(json.dumps(grouped, ensure_ascii=False, indent=2))
            return
        table = Table(title="trend by logical date (mean over datasets)")
        for col in ("logical date", "datasets", "runs", "held", "score"):
            table.add_column(col)
        for g in grouped:
            table.add_row(
                g["logical_date"], ", ".join(g["datasets"]), str(g["runs"]), str(g["held"]), _score(g["score"])
            )
        out.print(table)
        return
    if as_json:
        typer.echo(json.dumps(points, ensure_ascii=False, indent=2))
        return
    _print_trend(points, title=f"trend ({len(points)} runs)", show_dataset=dataset is None)


@report_app.command("export")
def export_cmd(
    dataset: DatasetOpt = None,
    department: DepartmentOpt = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="xlsx: one workbook; csv: a folder of files.")] = (
        ExportFormat.xlsx
    ),
    output: Annotated[
        Path | None,
        typer.Option("--output", help="The .xlsx file, or the folder for csv (default: govdata-report-<date> here)."),
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Write the scorecards (per indicator, dimension, overall) and the run history as xlsx or csv."""
    from pipelines import report_export

    today = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    target = output or Path(f"govdata-report-{today}" + (".xlsx" if fmt is ExportFormat.xlsx else ""))
    with _user_errors():
        selection = report_export.select(_store(home), dataset=dataset, department=department)
        parts = report_export.tables(selection)
        if fmt is ExportFormat.xlsx:
            written = [report_export.write_xlsx(target, parts)]
        else:
            written = report_export.write_csv(target, parts)
    out.print(
        f"[green]✓[/] {len(selection.cards)} scorecards, {len(selection.runs)} runs → "
        + ", ".join(str(p) for p in written),
        highlight=False,
        soft_wrap=True,
    )


@report_app.command("site")
def site_cmd(
    full: Annotated[
        bool, typer.Option("--full", help="Render every run's Data Docs page again, not only the missing ones.")
    ] = False,
    home: HomeOpt = None,
) -> None:
    """Build or update the offline reports site (Data Docs, scorecard pages) and print its index."""
    from pipelines import site
    from pipelines.workspace import Workspace

    with _user_errors():
        built = site.build(Workspace.from_env(home).root, full=full)
    out.print(
        f"[green]✓[/] {built.runs} runs, {built.pages_written} pages written → {built.index}",
        highlight=False,
        soft_wrap=True,
    )
