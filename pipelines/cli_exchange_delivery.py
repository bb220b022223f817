"""``govdata exchange download|deliver|deliveries``: delivery (交付) from the command line.

``download`` writes a file delivery (full version or changes) to ``--out``; ``deliver`` runs a
database delivery of one grant, or with ``--due`` of every active database grant that is behind
(what a scheduler runs); ``deliveries`` lists receipts. The rules are
:mod:`exchange.delivery` and :mod:`exchange.delivery_db`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.cli_common import ActorOpt, HomeOpt, err, out, user_errors
from pipelines.cli_exchange import actor, exchange_app, principal, store
from pipelines.errors import SpecError


def _workspace_tmp(home: Path | None) -> Path:
    from pipelines.workspace import Workspace

    return Workspace.from_env(home).root / "tmp" / "delivery"


@exchange_app.command("download")
def download(
    grant: Annotated[int, typer.Argument(help="The grant's id.", min=1)],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the file (a folder: a file named after it).")],
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv (UTF-8 with BOM).")] = "parquet",
    since: Annotated[
        int | None, typer.Option("--since", help="The changes since this version (default: the last delivered).", min=0)
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="The whole version, not the changes.")] = False,
    version: Annotated[
        int | None, typer.Option("--version", help="Which version (default: the latest).", min=1)
    ] = None,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Download a grant's data: the full version or the changes since a version (one use of the grant)."""
    from exchange.delivery import download as prepare

    with user_errors():
        who = actor(acting)
        if fmt not in ("parquet", "csv"):
            raise SpecError(f"--format {fmt!r} is not parquet or csv", hint="use --format parquet or --format csv")
        if since is not None and full:
            raise SpecError("give either --since or --full, not both", hint="drop one of them")
        platform = store(home)
        with platform.session() as s:
            caller = principal(s, who)
        prepared = prepare(
            platform,
            grant,
            caller,
            fmt=fmt,
            since=since,
            full=full,
            version=version,
            work_dir=_workspace_tmp(home),
        )
        try:
            target = out_path / prepared.filename if out_path.is_dir() else out_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(prepared.file.path), target)
        finally:
            prepared.cleanup()
    f = prepared.file
    since_text = f" since version {f.base_version}" if f.base_version is not None else ""
    out.print(
        f"{f.kind}{since_text}: version {f.version}, {f.rows} rows"
        + (f" ({f.inserted} inserted, {f.updated} updated, {f.deleted} deleted)" if f.kind == "changes" else "")
        + f" → {target}",
        highlight=False,
        soft_wrap=True,
    )
    out.print(f"sha256 {f.sha256}, receipt {prepared.receipt}", highlight=False)


def _print_receipt(receipt: dict[str, Any]) -> None:
    where = receipt.get("target") or "?"
    if receipt["outcome"] == "succeeded":
        extra = " (already there: nothing written)" if receipt.get("already_present") else ""
        counts = (
            f" ({receipt['inserted']} inserted, {receipt['updated']} updated, {receipt['deleted']} deleted)"
            if receipt["kind"] == "changes"
            else ""
        )
        out.print(
            f"grant {receipt['grant']}: version {receipt['version']} ({receipt['kind']}) into {where}: "
            f"{receipt['rows']} rows{counts} in {receipt['attempts']} attempt(s){extra}; receipt {receipt['id']}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        err.print(
            f"[bold red]failed:[/] grant {receipt['grant']}: version {receipt['version']} into {where} after "
            f"{receipt['attempts']} attempt(s): {receipt['error']}; receipt {receipt['id']}",
            highlight=False,
            soft_wrap=True,
        )


@exchange_app.command("deliver")
def deliver(
    grant: Annotated[
        int | None, typer.Argument(help="The grant's id (or --due for all that are behind).", min=1)
    ] = None,
    due: Annotated[bool, typer.Option("--due", help="Every active database grant that is behind.")] = False,
    version: Annotated[
        int | None, typer.Option("--version", help="Which version (default: the latest).", min=1)
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="The whole version again, even if the target holds it (one grant).")
    ] = False,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Run database deliveries (库表交换) now, retried with backoff; exit 1 if one fails."""
    from exchange.delivery import grant_for
    from exchange.delivery_db import deliver_due, deliver_to_database
    from pipelines.workspace import Workspace

    with user_errors():
        if due == (grant is not None):
            raise SpecError("give a grant id or --due (not both)", hint="e.g. `govdata exchange deliver 3 --as USER`")
        platform = store(home)
        if due:
            if version is not None or full:
                raise SpecError("--version and --full apply to one grant, not to --due", hint="drop them")
            who = None
            if acting:
                with platform.session() as s:
                    principal(s, acting).require("exchange:admin")
                who = actor(acting)
            root = Workspace.from_env(home).root
            receipts = (
                deliver_due(platform, lineage_home=root)
                if who is None
                else deliver_due(platform, actor=who, lineage_home=root)
            )
            if not receipts:
                out.print("no database grant is behind", highlight=False)
        else:
            assert grant is not None
            who = actor(acting)
            with platform.session() as s:
                grant_for(s, grant, principal(s, who), purpose="deliver")
            receipts = [
                deliver_to_database(
                    platform,
                    grant,
                    actor=who,
                    version=version,
                    full=full,
                    work_dir=_workspace_tmp(home),
                    lineage_home=Workspace.from_env(home).root,
                )
            ]
    for receipt in receipts:
        _print_receipt(receipt)
    if any(r["outcome"] != "succeeded" for r in receipts):
        raise typer.Exit(1)


@exchange_app.command("deliveries")
def deliveries(
    grant: Annotated[int | None, typer.Option("--grant", help="Only this grant's receipts.", min=1)] = None,
    outcome: Annotated[str | None, typer.Option("--outcome", help="running, succeeded or failed.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (newest first).", min=1, max=10_000)] = 50,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """List delivery receipts: the department's (with --as), or all."""
    from exchange.delivery import list_deliveries, receipt_dict

    with user_errors():
        if outcome is not None and outcome not in ("running", "succeeded", "failed"):
            raise SpecError(f"--outcome {outcome!r} is not running, succeeded or failed", hint="pick one of those")
        with store(home).session() as s:
            caller = principal(s, acting) if acting else None
            rows, total = list_deliveries(s, caller, grant=grant, outcome=outcome, limit=limit)
            receipts = [receipt_dict(r) for r in rows]
    table = Table(title=f"delivery receipts ({len(receipts)} of {total})")
    for col in ("id", "grant", "entry", "mode", "kind", "version", "rows", "outcome", "attempts", "finished", "sha256"):
        table.add_column(col)
    for r in receipts:
        kind = r["kind"] if r["base_version"] is None else f"changes since {r['base_version']}"
        table.add_row(
            str(r["id"]),
            str(r["grant"]),
            r["entry"],
            r["mode"],
            kind,
            str(r["version"]),
            str(r["rows"]),
            r["outcome"] + (f": {r['error']}" if r["error"] else ""),
            str(r["attempts"]),
            r["finished_at"].isoformat(timespec="seconds") if r["finished_at"] else "",
            (r["sha256"] or "")[:12],
        )
    out.print(table)
