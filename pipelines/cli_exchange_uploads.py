"""``govdata exchange uploads``: the uploads of versions to this exchange (open ones; clear stale ones).

Run on the exchange's host against its workspace: it lists the uploads in the platform database
(:mod:`exchange.uploads`) and, with ``--clean``, expires the ones idle for longer than
``GOVDATA_UPLOAD_TTL_HOURS`` and deletes part files that no open upload owns. Without ``--as``
it lists every department's uploads (the host's operator); with ``--as USER`` what that user
may see through the API (its department's, or every one for the city admin), and the expiries
are audited under that user.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.cli_common import ActorOpt, HomeOpt, out, user_errors
from pipelines.cli_exchange import exchange_app, principal, store


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@exchange_app.command("uploads")
def uploads_command(
    every: Annotated[bool, typer.Option("--all", help="Every upload, not only open ones.")] = False,
    clean: Annotated[
        bool, typer.Option("--clean", help="Expire idle open uploads and delete part files nobody owns.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Uploads of versions to this exchange: open ones (resumable), with --clean the stale ones removed."""
    from exchange import uploads
    from pipelines.workspace import Workspace

    with user_errors():
        workspace = Workspace.from_env(home)
        limits = uploads.Limits.from_env()
        platform = store(home)
        caller = None
        if acting is not None and acting.strip():
            with platform.session() as session:  # a known, active user; it sees its department's uploads
                caller = principal(session, acting)
        cleaned = None
        if clean:
            with platform.session() as session:
                cleaned = uploads.clean(session, workspace, limits, actor=caller.user if caller else "govdata")
        with platform.session() as session:
            rows = uploads.list_uploads(session, caller, limits, every_status=every)
    if as_json:
        doc: dict[str, Any] = {"uploads": rows}
        if cleaned is not None:
            doc["cleaned"] = {"expired": cleaned.expired, "orphans": cleaned.orphans}
        out.print_json(json.dumps(doc, ensure_ascii=False, default=str))
        return
    if cleaned is not None:
        out.print(
            f"expired {len(cleaned.expired)} idle upload(s), deleted {len(cleaned.orphans)} orphaned part file(s)",
            highlight=False,
        )
    if not rows:
        out.print("no open uploads" if not every else "no uploads", highlight=False)
        return
    table = Table(title="uploads" if every else "open uploads")
    for col in ("id", "entry", "department", "user", "status", "received", "updated", "expires"):
        table.add_column(col, no_wrap=col in ("id", "entry"), overflow="fold")
    for r in rows:
        done = f"{_size(r['received'])} / {_size(r['size'])}"
        table.add_row(
            r["id"],
            r["entry"],
            r["department"],
            r["user"],
            r["status"],
            done,
            _when(r["updated_at"]),
            _when(r["expires_at"]),
        )
    out.print(table)
