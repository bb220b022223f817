"""The ``govdata`` command line: run datasets, validate specs, look at the catalog.

Heavy modules (DuckDB, GX, SQLAlchemy models) are imported inside the commands, so
``govdata --help`` answers at once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

# Importing the catalog's command modules registers their commands on catalog_app.
# Likewise the exchange's command modules on exchange_app.
from pipelines import (  # noqa: F401
    cli_catalog_io,
    cli_catalog_review,
    cli_catalog_search,
    cli_exchange_applications,
    cli_exchange_delivery,
    cli_exchange_monitor,
    cli_exchange_objections,
    cli_exchange_uploads,
    cli_exchange_webhooks,
)
from pipelines.cli_audit import audit_app
from pipelines.cli_catalog import catalog_app
from pipelines.cli_common import EXIT_ERROR, EXIT_HELD, EXIT_OK, HomeOpt, err, out
from pipelines.cli_common import fail as _fail
from pipelines.cli_common import user_errors as _user_errors
from pipelines.cli_exchange import exchange_app, token_app
from pipelines.cli_quarantine import quarantine_app
from pipelines.cli_report import report_app
from pipelines.cli_serve import serve
from pipelines.errors import GovdataError

app = typer.Typer(
    name="govdata",
    help="Data governance for city departments: collect → cleanse → quality-check → catalog → publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(catalog_app, name="catalog")
app.add_typer(report_app, name="report")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(audit_app, name="audit")
app.add_typer(exchange_app, name="exchange")
app.add_typer(token_app, name="token")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each step does.")] = False) -> None:
    _setup_logging(verbose)


def _progress(console: Console) -> tuple[Callable[[str, str], None], Callable[[], None]]:
    status = console.status("starting…")
    status.start()

    def update(step: str, state: str) -> None:
        if state == "start":
            status.update(f"[bold]{step}[/] …")
        elif state == "done":
            console.print(f"  [green]✓[/] {step}")
        elif state == "held":
            why = "a breaking schema change awaits approval" if step == "publish" else "held by the quality gate"
            console.print(f"  [red]✗[/] {step}: {why}")

    return update, status.stop


def _print_report(report: dict[str, Any]) -> None:
    rows = report["rows"]
    colour = {"published": "green", "unchanged": "green", "held": "red"}.get(report["status"], "yellow")
    out.print(
        f"\n[bold]{report['dataset']}[/] run {report['run_id']}: [{colour}]{report['status']}[/]", highlight=False
    )
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("collected", str(rows["collected"]))
    table.add_row("published", str(rows["published"]))
    detail = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in rows["quarantined_detail"].items() if v)
    table.add_row("quarantined", f"{rows['quarantined']}" + (f"  ({detail})" if detail else ""))
    table.add_row("duplicates removed", str(rows["duplicates_removed"]))
    for rule, n in rows["filtered"].items():
        table.add_row(f"filtered: {rule}", str(n))
    if rows["held"]:
        table.add_row("held (not published)", str(rows["held"]))
    if report["version"]:
        table.add_row("version", f"v{report['version']} ({report['version_rows']} rows)")
    q = report["quality"]
    for problem, n in report.get("problems", {}).items():
        table.add_row("  cleanse", f"{problem}: {n} rows")
    table.add_row("quality score", f"{q['score']:.3f}")
    for failed in q["failed_expectations"]:
        table.add_row(
            "  failed",
            f"{failed['name']}: {failed['unexpected_count']} rows" if failed["row_level"] else failed["name"],
        )
    for reason in q["held_because"]:
        table.add_row("[red]held because[/]", reason)
    for key, value in report["outputs"].items():
        if value:
            table.add_row(key, value)
    out.print(table)


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="The dataset spec (YAML).")],
    date: Annotated[str | None, typer.Option("--date", help="Logical date YYYY-MM-DD (default: today, UTC).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run report as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """Run one dataset through the five steps. Exit 0 published, 2 held by the quality gate, 1 error."""
    from pipelines import runner

    with _user_errors():
        progress, stop = _progress(err)
        try:
            report = runner.run(spec, date, home=home, progress=progress)
        finally:
            stop()
    if as_json:
        out.print_json(json.dumps(report, ensure_ascii=False, default=str))
    else:
        _print_report(report)
    raise typer.Exit(EXIT_HELD if report["status"] == "held" else EXIT_OK)


@app.command()
def validate(spec: Annotated[Path, typer.Argument(help="The dataset spec (YAML).")]) -> None:
    """Check a spec, its connector options and its expectation suite without running anything."""
    from connectors import make_connector
    from pipelines.spec import load_spec
    from pipelines.suites import check_suite

    with _user_errors():
        s = load_spec(spec)
        connector = make_connector(s.source.connector, s.source.options, base_dir=s.base_dir, where=f"{s.path} source")
        check_suite(s.suite_path(), [c.name for c in s.columns])
    out.print(f"[green]✓[/] {spec}: dataset [bold]{s.id}[/] ({s.name}, {s.department.name})", highlight=False)
    out.print(f"  source: {connector.describe()}", highlight=False)
    out.print(f"  {len(s.columns)} columns, primary key: {', '.join(s.primary_key) or 'none'}", highlight=False)
    out.print(f"  suite: {s.suite_path()}", highlight=False)


def _datasets_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "datasets"


@app.command()
def demo(
    datasets: Annotated[
        Path | None, typer.Option(help="Folder of dataset specs (default: the bundled examples).")
    ] = None,
    date: Annotated[str | None, typer.Option("--date", help="Logical date YYYY-MM-DD (default: today, UTC).")] = None,
    home: HomeOpt = None,
) -> None:
    """Run the bundled example departments end to end and show what was published and quarantined."""
    from pipelines import runner
    from pipelines.spec import find_specs, load_spec
    from pipelines.workspace import Workspace

    folder = datasets or _datasets_dir()
    with _user_errors():
        specs = [load_spec(p) for p in find_specs(folder)]
    if not specs:
        _fail(GovdataError(f"no dataset specs under {folder}", hint="give --datasets DIR"))
    ws = Workspace.from_env(home)
    reports = []
    for s in specs:
        err.print(f"[bold]{s.department.name}[/] · {s.name} ({s.id})", highlight=False)
        with _user_errors():
            progress, stop = _progress(err)
            try:
                report = runner.run(s, date, home=home, progress=progress)
            finally:
                stop()
        _print_report(report)
        reports.append((s, report))
    from pipelines.cli_catalog_review import seed_demo_users

    with _user_errors():
        users = seed_demo_users(ws, specs, folder)
    from exchange import demo as exchange_demo

    err.print("[bold]交换 Exchange[/] · applications, reviews, deliveries", highlight=False)
    with _user_errors():
        exchanged = exchange_demo.run(ws, users)
    out.print("\n[bold]Summary[/]")
    for s, r in reports:
        rows = r["rows"]
        ok = r["status"] in ("published", "unchanged")
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        filtered = sum(rows["filtered"].values())
        out.print(
            f"  {mark} {s.id} ({s.department.name}): {r['status']}"
            + (f" v{r['version']}" if r["version"] else "")
            + f" · {rows['collected']} collected → {rows['published']} published, {rows['quarantined']} quarantined, "
            f"{rows['duplicates_removed']} duplicates removed, {filtered} filtered",
            highlight=False,
        )
    out.print("\nWhere to look:", style="bold")
    published = f"{ws.store_url.split('?', 1)[0]}  (cache {ws.exchange})" if ws.store_url else str(ws.exchange)
    out.print(f"  published versions   {published}", highlight=False)
    out.print(
        f"  quarantined rows     {ws.root / 'quarantine'}  (`govdata quarantine list`, `… export DATASET`)",
        highlight=False,
    )
    out.print(f"  run reports          {ws.root / 'reports'}/<dataset>/<run>/run_report.json", highlight=False)
    out.print(f"  catalog              {ws.catalog_url}   (`govdata catalog list`)", highlight=False)
    out.print(f"  reports site         {ws.root / 'reports' / '_site' / 'index.html'}  (offline)", highlight=False)
    out.print("\nCatalog users (act as one with --as ID):", style="bold")
    for u in users:
        out.print(f"  {u['id']:<28} {u['role']:<11} {u['name']}", highlight=False)
    out.print()
    for line in exchange_demo.summary_lines(exchanged):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    held = [r for _, r in reports if r["status"] == "held"]
    raise typer.Exit(EXIT_ERROR if exchanged.failed else EXIT_HELD if held else EXIT_OK)


@app.command()
def status(
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset.")] = None,
    limit: Annotated[int, typer.Option(help="How many runs to show.")] = 20,
    home: HomeOpt = None,
) -> None:
    """Show the latest runs: status, row accounting and version."""
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    with _user_errors():
        runs = CatalogStore(Workspace.from_env(home).catalog_url).runs(dataset, limit)
    table = Table(title="recent runs")
    for col in ("dataset", "run", "status", "collected", "published", "quarantined", "version", "finished"):
        table.add_column(col)
    for r in runs:
        rows = r.report.get("rows", {})
        table.add_row(
            r.dataset,
            r.run_id,
            r.status,
            str(rows.get("collected", "-")),
            str(rows.get("published", "-")),
            str(rows.get("quarantined", "-")),
            f"v{r.version}" if r.version else "-",
            r.finished_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        )
    if not runs:
        out.print("no runs yet: try `govdata demo`")
        return
    out.print(table)


app.command("assess")(cli_exchange_monitor.assess)  # the periodic assessment (考核) of the departments
app.command("serve")(serve)  # after the commands on datasets in `govdata --help`


def main() -> None:
    """Console-script entry point."""
    try:
        app()
        code: int = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if "great_expectations" in sys.modules:
        # After GX has run on DuckDB, interpreter teardown makes DuckDB's nanobind bindings print
        # ~100 "leaked instance" lines (module globals outlive their types). Nothing is left to
        # clean up at this point, so leave without the teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
