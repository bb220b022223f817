"""``govdata quarantine``: list, show and export quarantined rows; resubmit corrected ones.

Values of sensitive columns are shown masked everywhere here. Heavy modules are imported
inside the commands, so ``govdata --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.cli_common import HomeOpt, err, out
from pipelines.cli_common import user_errors as _user_errors

quarantine_app = typer.Typer(
    help="Quarantined rows (隔离区): list, show, export for correction, resubmit corrected rows.",
    no_args_is_help=True,
)

RunOpt = Annotated[
    str | None,
    typer.Option("--run", help="Run id (default: the newest run with rows still to correct).", show_default=False),
]


def _workspace(home: Path | None) -> Any:
    from pipelines.workspace import Workspace

    return Workspace.from_env(home)


def _causes(run: Any) -> list[tuple[str, int]]:
    stages = {"collect": "读取", "cleanse": "清洗", "quality": "质检"}
    return [
        (f"{stages.get(item['stage'], item['stage'])} {item['cause']}", int(item["rows"]))
        for item in run.info.get("causes") or []
    ]


@quarantine_app.command("list")
def list_(
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this dataset.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """Runs with quarantined rows: counts by cause, and what resubmissions accepted."""
    from pipelines import quarantine

    with _user_errors():
        runs = quarantine.list_runs(_workspace(home), dataset)
    if as_json:
        document = [
            {
                "dataset": r.dataset,
                "run_id": r.run_id,
                "logical_date": r.info.get("logical_date"),
                "resubmission_of": r.info.get("resubmission_of"),
                "quarantined": r.rows,
                "by_stage": r.info.get("by_stage"),
                "causes": r.info.get("causes"),
                "accepted_by_resubmission": None if r.is_resubmission else r.accepted,
                "outstanding": None if r.is_resubmission else r.outstanding,
                "resubmissions": [a["run_id"] for a in (r.ledger or {}).get("attempts", [])],
            }
            for r in runs
        ]
        out.print_json(json.dumps(document, ensure_ascii=False))
        return
    if not runs:
        out.print("no quarantined rows" + (f" for {dataset}" if dataset else ""))
        return
    table = Table(title="隔离区 quarantine")
    for col in ("dataset", "run", "logical date", "rows", "cause", "accepted", "outstanding"):
        table.add_column(col, overflow="fold", no_wrap=col in ("rows", "accepted", "outstanding"))
    for r in runs:
        attempts = len((r.ledger or {}).get("attempts", []))
        causes = _causes(r) or [("", 0)]
        run_label = r.run_id + (f"\n(resubmission of {r.info['resubmission_of']})" if r.is_resubmission else "")
        accepted = "-" if r.is_resubmission else f"{r.accepted}" + (f"\n({attempts} resubmissions)" if attempts else "")
        for i, (cause, n) in enumerate(causes):
            first = i == 0
            table.add_row(
                r.dataset if first else "",
                run_label if first else "",
                str(r.info.get("logical_date")) if first else "",
                str(r.rows) if first else "",
                f"{cause}: {n}" if cause else "",
                accepted if first else "",
                ("-" if r.is_resubmission else str(r.outstanding)) if first else "",
                end_section=i == len(causes) - 1,
            )
    out.print(table)


@quarantine_app.command("show")
def show(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    run: RunOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many rows to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """The rows still in quarantine with their reasons (sensitive values masked)."""
    from pipelines import quarantine as q

    with _user_errors():
        ws = _workspace(home)
        found = q.find_run(ws, dataset, run)
        rows = q.explained_rows(ws, found, q.outstanding_rows(ws, found, limit))
        total = found.outstanding
    columns = found.columns
    if as_json:
        keep = [q.ROW, q.RUN, q.STAGE, q.REASONS, q.REASON_TEXT]
        document = {
            "dataset": found.dataset,
            "run_id": found.run_id,
            "outstanding": total,
            "rows": [{**{k: r.get(k) for k in keep}, **{c["name"]: r.get(c["name"]) for c in columns}} for r in rows],
        }
        out.print_json(json.dumps(document, ensure_ascii=False, default=str))
        return
    out.print(
        f"[bold]{found.dataset}[/] run {found.run_id}: {total} rows in quarantine"
        + (f", showing {len(rows)}" if len(rows) < total else ""),
        highlight=False,
    )
    table = Table(show_lines=True)
    for col in ("row", "stage", "reason", "values"):
        table.add_column(col, overflow="fold")
    for r in rows:
        values = "\n".join(
            f"{c['title']}: {'' if r.get(c['name']) is None else r.get(c['name'])}"
            + (" (masked)" if c["sensitive"] else "")
            for c in columns
        )
        if r.get(q.RAW):
            values += f"\n原始记录: {r[q.RAW]}"
        attempt = "" if r[q.RUN] == found.run_id else f"\n({r[q.RUN]})"
        table.add_row(
            str(r[q.ROW]) + attempt,
            q.STAGE_ZH.get(str(r[q.STAGE]), str(r[q.STAGE])),
            str(r[q.REASON_TEXT]),
            values,
        )
    out.print(table)
    out.print(f"export them for correction: govdata quarantine export {found.dataset} --run {found.run_id}")


@quarantine_app.command("export")
def export(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    run: RunOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="The file to write (.xlsx, or .csv); default quarantine_<dataset>_<run>.xlsx."
        ),
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Write the rows still in quarantine to an xlsx for the data officer to correct and resubmit."""
    from pipelines import quarantine as q

    with _user_errors():
        result = q.export(_workspace(home), dataset, run, output)
    out.print(
        f"[green]✓[/] {result.rows} rows of {result.dataset} run {result.run_id} → {result.path} "
        f"({result.expectations} kinds of problem explained)",
        highlight=False,
    )
    out.print(f"correct the rows, then: govdata quarantine resubmit {result.path}", highlight=False)


def _print_resubmission(report: dict[str, Any]) -> None:
    acc = report["resubmission"]
    colour = {"published": "green", "unchanged": "green", "held": "red"}.get(report["status"], "yellow")
    out.print(
        f"\n[bold]{report['dataset']}[/] {report['run_id']} (resubmission of {acc['of_run']}): "
        f"[{colour}]{report['status']}[/]" + (f" v{report['version']}" if report.get("version") else ""),
        highlight=False,
    )
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("quarantined in the original run", str(acc["original_quarantined"]))
    table.add_row("  resubmitted and accepted", str(acc["accepted"]))
    table.add_row("  resubmitted and quarantined again", str(acc["quarantined_again"]))
    if acc["held"]:
        table.add_row("  resubmitted, held by the gate", str(acc["held"]))
    detail = acc["not_resubmitted_detail"]
    table.add_row(
        "  not resubmitted",
        f"{acc['not_resubmitted']} (accepted earlier {detail['accepted_earlier']}, "
        f"still quarantined {detail['still_quarantined']})",
    )
    table.add_row(
        "after this resubmission", f"accepted {acc['after']['accepted']}, in quarantine {acc['after']['quarantined']}"
    )
    if acc["unchanged_rows"]:
        table.add_row("[yellow]unchanged rows[/]", f"{acc['unchanged_rows']} row(s) were resubmitted without a change")
    restored = sum(acc["restored_masked_cells"].values())
    if restored:
        table.add_row("masked cells kept", f"{restored} (restored from the original data)")
    if report.get("version_rows") is not None:
        table.add_row("version rows", str(report["version_rows"]))
    for note in acc.get("notes") or []:
        table.add_row("note", note)
    for failed in acc["merged_version_check"].get("failed") or []:
        table.add_row("[red]held because[/]", f"the new version fails {failed}")
    out.print(table)
    if acc["quarantined_again"]:
        out.print(
            f"still failing rows: govdata quarantine show {report['dataset']} --run {acc['of_run']}", highlight=False
        )


@quarantine_app.command("resubmit")
def resubmit(
    file: Annotated[Path, typer.Argument(help="The corrected export (.xlsx, or its data sheet saved as .csv).")],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Dataset id (needed for a CSV; checked for an xlsx).")
    ] = None,
    spec: Annotated[
        Path | None, typer.Option("--spec", help="The dataset's spec, if it moved since the run.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the resubmission's run report as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """Send corrected rows back through cleanse and the gate into a new version. Exit 0 done, 2 held, 1 error."""
    from pipelines import quarantine as q
    from pipelines.cli import _progress
    from pipelines.cli_common import EXIT_HELD

    with _user_errors():
        progress, stop = _progress(err)
        try:
            report = q.resubmit(file, dataset=dataset, spec_path=spec, home=home, progress=progress)
        finally:
            stop()
    if as_json:
        out.print_json(json.dumps(report, ensure_ascii=False, default=str))
    else:
        _print_resubmission(report)
    if report["status"] == "held":
        raise typer.Exit(EXIT_HELD)
