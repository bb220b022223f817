"""``govdata catalog import`` and ``govdata catalog export``: the national cataloguing sheet and the DCAT-AP feed.

The rules of the sheet (layout, what is checked, ids of imported entries, entries made from
dataset specs) are in :mod:`catalog.spreadsheet`.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pipelines.cli_catalog import catalog_app
from pipelines.cli_common import EXIT_ERROR, ActorOpt, HomeOpt, err, out, user_errors
from pipelines.errors import SpecError

if TYPE_CHECKING:
    from catalog.spreadsheet import ImportReport

#: ``--format`` values → what is written: ``xlsx`` or the DCAT feed format of :func:`catalog.dcat.render`.
EXPORT_FORMATS = {
    "xlsx": "xlsx",
    "dcat-turtle": "turtle",
    "dcat": "turtle",
    "dcat-ttl": "turtle",
    "dcat-jsonld": "json-ld",
    "dcat-json-ld": "json-ld",
}
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


@catalog_app.command("import")
def catalog_import(
    file: Annotated[Path, typer.Argument(help="The national cataloguing sheet (.xlsx).", show_default=False)],
    department: Annotated[
        str | None,
        typer.Option(
            "--department",
            help="USCC of the department whose entries the sheet holds (not needed when the sheet has the "
            "provider columns 信息资源提供方, 提供方代码).",
            show_default=False,
        ),
    ] = None,
    department_name: Annotated[
        str | None,
        typer.Option("--department-name", help="Create the department with this name if the catalog lacks it."),
    ] = None,
    partial: Annotated[
        bool, typer.Option("--partial", help="Import the entries without problems and report the others.")
    ] = False,
    actor: ActorOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """Import the national cataloguing sheet: one row per data item, the resource fields repeated.

    Every problem is reported with its row and column; nothing is imported until all are fixed
    (or, with --partial, the entries without a problem are). Exit 1 when nothing was imported.
    """
    from catalog.access import viewer_for
    from catalog.spreadsheet import import_workbook
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    with user_errors():
        store = CatalogStore(Workspace.from_env(home).catalog_url)
        with store.session() as s:
            viewer = viewer_for(s, actor)
        report = import_workbook(
            store, file, department=department, department_name=department_name, partial=partial, viewer=viewer
        )
    if as_json:
        out.print_json(json.dumps(report.as_dict(), ensure_ascii=False, default=str))
    else:
        _print_import(report)
    if report.blocked:
        raise typer.Exit(EXIT_ERROR)


def _print_import(report: ImportReport) -> None:
    entries = f"{len(report.created)} created, {len(report.updated)} updated, {len(report.unchanged)} unchanged" + (
        f", {len(report.refused)} not imported" if report.refused else ""
    )
    sheets = ", ".join(map(repr, report.sheets)) or "no sheet"
    out.print(escape(f"{report.file}: {report.rows} data row(s) read from {sheets}"), highlight=False)
    out.print(f"entries: {entries}; data items written: {report.items}", highlight=False)
    if report.departments_created:
        out.print(f"departments added: {', '.join(report.departments_created)}", highlight=False)
    for note in report.notes:
        out.print(f"[dim]note:[/] {escape(note)}", highlight=False)
    if not report.problems:
        return
    several = len({p.sheet for p in report.problems}) > 1
    table = Table(title=f"{len(report.problems)} problem(s)", show_lines=True)
    if several:
        table.add_column("sheet")
    table.add_column("row", justify="right", no_wrap=True)
    table.add_column("column")
    table.add_column("problem", overflow="fold")
    table.add_column("fix", overflow="fold")
    for p in report.problems:
        column = " ".join(x for x in (p.letter, p.column) if x) or "-"
        cells = [str(p.row) if p.row else "-", column, p.problem, p.fix]
        table.add_row(
            *(Text(c) for c in ([p.sheet or "-", *cells] if several else cells))
        )  # the sheet's text, not markup
    out.print(table, highlight=False)
    if report.blocked:
        err.print(
            "[bold red]nothing was imported:[/] fix the problems above and import again"
            + ("" if report.partial else " (or use --partial to import the entries without problems)"),
            highlight=False,
        )
    else:
        err.print(
            f"[yellow]imported partly:[/] {len(report.refused)} resource(s) with problems were left out",
            highlight=False,
        )


@catalog_app.command("export")
def catalog_export(
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="xlsx (the national cataloguing sheet), dcat-turtle or dcat-jsonld (the DCAT-AP 3 feed).",
        ),
    ] = "xlsx",
    department: Annotated[
        str | None,
        typer.Option(
            "--department",
            help="Only this department's entries (USCC), in the plain national layout; without it the whole "
            "catalog, with the provider columns appended (xlsx only).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write (default: catalog.xlsx / catalog-USCC.xlsx; the DCAT feed goes to standard output).",
            show_default=False,
        ),
    ] = None,
    actor: ActorOpt = None,
    base_url: Annotated[
        str,
        typer.Option("--base-url", envvar="GOVDATA_BASE_URL", help="Address of the platform, for the DCAT IRIs."),
    ] = DEFAULT_BASE_URL,
    home: HomeOpt = None,
) -> None:
    """Export the catalog: the national cataloguing sheet (xlsx) or the DCAT-AP 3 feed.

    With --as USER only the entries that user may see are exported; without it, everything.
    """
    from catalog.access import viewer_for
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    with user_errors():
        kind = EXPORT_FORMATS.get(fmt.strip().lower())
        if kind is None:
            near = difflib.get_close_matches(fmt.strip().lower(), list(EXPORT_FORMATS), n=1)
            raise SpecError(
                f"unknown export format {fmt!r}",
                hint=(f"did you mean {near[0]!r}? " if near else "") + "use xlsx, dcat-turtle or dcat-jsonld",
            )
        store = CatalogStore(Workspace.from_env(home).catalog_url)
        with store.session() as s:
            viewer = viewer_for(s, actor)
        if kind == "xlsx":
            from catalog.spreadsheet import export_workbook

            default = f"catalog-{department.strip().upper()}.xlsx" if department else "catalog.xlsx"
            report = export_workbook(store, output or Path(default), department=department, viewer=viewer)
            out.print(
                escape(
                    f"wrote {report.entries} entries ({report.rows} rows, {len(report.departments)} department(s)) "
                    f"to {report.path}"
                ),
                highlight=False,
            )
            return
        if department is not None:
            raise SpecError(
                "--department applies to the xlsx sheet only; the DCAT feed is the catalog the viewer may see",
                hint="leave out --department, or use --format xlsx",
            )
        from catalog.dcat import render

        text = render(store, kind, base_url, viewer)
        if output is None:
            sys.stdout.write(text)
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.part")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)
        out.print(escape(f"wrote the DCAT-AP feed ({kind}) to {output}"), highlight=False)
