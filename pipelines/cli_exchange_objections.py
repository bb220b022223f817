"""``govdata exchange objections …``: raise an objection (纠错) to a version, answer it, talk, close it.

The rules (who raises, answers, closes and sees; the deadline in working days) are
:mod:`exchange.objections`'s; these commands call it as the local user ``--as``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.cli_common import ActorOpt, HomeOpt, out, user_errors
from pipelines.cli_exchange import actor, exchange_app, principal, store
from pipelines.errors import SpecError

objections_app = typer.Typer(
    help="Objections (纠错/异议): a subscriber reports wrong data; the provider answers by a deadline.",
    no_args_is_help=True,
)
exchange_app.add_typer(objections_app, name="objections")

IdArg = Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="The objection's id (see `objections list`).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _key(value: str) -> Any:
    """A ``--key``: a plain value, or a JSON object ``{"item": "value", …}`` for a composite key."""
    text = value.strip()
    if not text.startswith("{"):
        return value
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"--key {value[:60]!r} starts like a JSON object but is not one ({exc.msg})",
            hint='give a composite key as --key \'{"item1": "value1", "item2": "value2"}\'',
        ) from None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise SpecError(
            f"--key {value[:60]!r} must map key items to text values", hint='e.g. --key \'{"reg_no": "A001"}\''
        )
    return parsed


def _record(row: Any, session: Any) -> dict[str, Any]:
    from catalog.models import Entry, utcnow
    from exchange.objections import is_overdue

    entry = session.get(Entry, row.entry_id)

    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat(timespec="seconds") if value else None

    return {
        "id": row.id,
        "entry": row.entry_id,
        "provider": entry.department_uscc if entry else None,
        "version": row.version,
        "department": row.department_uscc,
        "raised_by": row.raised_by,
        "subject": row.subject,
        "detail": row.detail,
        "items": list(row.items or []),
        "keys": list(row.keys or []),
        "status": row.status,
        "raised_at": iso(row.raised_at),
        "due_at": iso(row.due_at),
        "answered_at": iso(row.answered_at),
        "closed_at": iso(row.closed_at),
        "overdue": is_overdue(row, utcnow()),
        "messages": [{"author": m.author, "role": m.role, "body": m.body, "at": iso(m.at)} for m in row.messages],
    }


def _print(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(record, ensure_ascii=False))
        return
    late = "  [bold red]overdue[/]" if record["overdue"] else ""
    out.print(f"objection {record['id']}  {record['status']}{late}", highlight=False)
    for label, key in (
        ("resource", "entry"),
        ("version", "version"),
        ("raised by", "raised_by"),
        ("department", "department"),
        ("provider", "provider"),
        ("raised at", "raised_at"),
        ("due", "due_at"),
        ("answered", "answered_at"),
        ("closed", "closed_at"),
    ):
        if record[key] is not None:
            out.print(f"  {label:<11}{record[key]}", highlight=False, markup=False)
    out.print(f"  subject    {record['subject']}", highlight=False, markup=False, soft_wrap=True)
    if record["items"]:
        out.print(f"  items      {', '.join(record['items'])}", highlight=False, markup=False)
    if record["keys"]:
        shown = "; ".join(", ".join(f"{k}={v}" for k, v in key.items()) for key in record["keys"][:10])
        more = f" (and {len(record['keys']) - 10} more)" if len(record["keys"]) > 10 else ""
        out.print(f"  rows       {shown}{more}", highlight=False, markup=False, soft_wrap=True)
    out.print(f"  detail     {record['detail']}", highlight=False, markup=False, soft_wrap=True)
    for m in record["messages"]:
        out.print(
            f"  — {m['at']} {m['author']} ({m['role']}): {m['body']}", highlight=False, markup=False, soft_wrap=True
        )


@objections_app.command("raise")
def raise_(
    dataset: Annotated[str, typer.Argument(help="The resource (catalog entry id).")],
    subject: Annotated[str, typer.Option("--subject", help="One line: what is wrong.")],
    detail: Annotated[str, typer.Option("--detail", help="What is wrong, and what it should be.")],
    version: Annotated[
        int | None, typer.Option("--version", min=1, max=2**31 - 1, help="The version concerned (default: latest).")
    ] = None,
    item: Annotated[list[str] | None, typer.Option("--item", help="A data item concerned (repeatable).")] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key", help='A row concerned, by primary key (repeatable); composite: \'{"a": "1", "b": "2"}\'.'
        ),
    ] = None,
    as_json: JsonOpt = False,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Raise an objection of your department to a version of a resource it received."""
    from exchange.objections import raise_objection

    with user_errors():
        who = actor(acting)
        keys = [_key(k) for k in key or []]
        with store(home).session() as s:
            row = raise_objection(
                s,
                principal(s, who),
                entry=dataset,
                version=version,
                subject=subject,
                detail=detail,
                items=item or [],
                keys=keys,
            )
            record = _record(row, s)
    if not as_json:
        out.print(f"objection {record['id']} raised; the provider answers by {record['due_at']}", highlight=False)
    _print(record, as_json)


@objections_app.command("list")
def listing(
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this resource's.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only open, answered or closed ones.")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only those open past their deadline.")] = False,
    as_json: JsonOpt = False,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Objections raised by or against your department (city-level users: all), newest first."""
    from exchange.objections import STATUSES, list_objections

    with user_errors():
        who = actor(acting)
        if status is not None and status not in STATUSES:
            raise SpecError(f"--status {status!r} is not a status", hint=f"use one of: {', '.join(STATUSES)}")
        with store(home).session() as s:
            rows = list_objections(s, principal(s, who), entry=dataset, status=status, overdue=overdue or None)
            records = [_record(r, s) for r in rows]
    if as_json:
        out.print_json(json.dumps(records, ensure_ascii=False))
        return
    table = Table(title="objections")
    for col in ("id", "resource", "version", "raised by", "subject", "status", "due", "answered"):
        table.add_column(col, overflow="fold")
    for r in records:
        state = r["status"] + (" (overdue)" if r["overdue"] else "")
        table.add_row(
            str(r["id"]),
            r["entry"],
            str(r["version"]),
            f"{r['raised_by']} ({r['department']})",
            r["subject"],
            state,
            r["due_at"] or "",
            r["answered_at"] or "",
        )
    out.print(table)


@objections_app.command("show")
def show(objection_id: IdArg, as_json: JsonOpt = False, acting: ActorOpt = None, home: HomeOpt = None) -> None:
    """One objection and its thread."""
    from exchange.objections import get

    with user_errors():
        who = actor(acting)
        with store(home).session() as s:
            record = _record(get(s, principal(s, who), objection_id), s)
    _print(record, as_json)


@objections_app.command("answer")
def answer(
    objection_id: IdArg,
    message: Annotated[str, typer.Option("--message", help="The answer.")],
    as_json: JsonOpt = False,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Answer an objection to your department's data (its reviewer)."""
    from exchange.objections import answer as do_answer

    with user_errors():
        who = actor(acting)
        with store(home).session() as s:
            record = _record(do_answer(s, principal(s, who), objection_id, message=message), s)
    _print(record, as_json)


@objections_app.command("message")
def message(
    objection_id: IdArg,
    message: Annotated[str, typer.Option("--message", help="The message.")],
    as_json: JsonOpt = False,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Add a message to an objection's thread (the raiser, the provider, the city admin)."""
    from exchange.objections import add_message

    with user_errors():
        who = actor(acting)
        with store(home).session() as s:
            record = _record(add_message(s, principal(s, who), objection_id, message=message), s)
    _print(record, as_json)


@objections_app.command("close")
def close(
    objection_id: IdArg,
    message: Annotated[str | None, typer.Option("--message", help="A last word, optional.")] = None,
    as_json: JsonOpt = False,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Close an objection your department raised (settled, or withdrawn)."""
    from exchange.objections import close as do_close

    with user_errors():
        who = actor(acting)
        with store(home).session() as s:
            record = _record(do_close(s, principal(s, who), objection_id, message=message), s)
    _print(record, as_json)
