"""``govdata audit verify`` and ``govdata audit export``: the hash-chained audit log for auditors.

``verify`` walks the chain (:func:`exchange.audit.verify`) and names the first entry that is not
what was written: edited, removed, inserted or reordered. What a walk cannot see is a log cut
off at its end or rewritten as a whole with every hash recomputed; for that, keep the head hash
an export states somewhere else and compare.

``export`` writes every field of every (selected) entry, ``prev_hash`` and ``hash`` included, so
an auditor can recompute the chain without govdata. Each file first states the head of the log,
the number of entries, the filters, whether it is a subset, and whether the chain verified when
it was written:

- ``jsonl``: the first line is that statement (``"kind": "govdata.audit.export"``); every other
  line is one entry as :func:`exchange.audit.record` gives it.
- ``csv`` (UTF-8 with BOM, for Excel): rows ``#,key,value`` with the statement, an empty row,
  the header row (``序号 seq`` …, the field name last), then one row per entry.
- ``xlsx``: sheet ``审计日志`` (the entries, same header) and sheet ``说明`` (the statement).

In csv and xlsx ``detail`` is its JSON text (keys sorted, compact, non-ASCII as is) and ``at``
the ISO time in UTC with microseconds, exactly as the hash covers them. A csv text cell starting
with ``' = + - @``, a tab or a carriage return has one ``'`` put in front (spreadsheet software
would take it for a formula): drop one leading ``'`` to read the value. xlsx keeps such values
as text cells, unchanged.

The hash of an entry is the sha256 of the UTF-8 JSON object of ``seq, at, actor, action,
subject, detail, prev_hash`` (keys sorted, separators ``,`` and ``:``, non-ASCII not escaped);
the first entry's ``prev_hash`` is 64 zeros, every other one is the ``hash`` of the entry before.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from pipelines.cli_common import EXIT_ERROR, HomeOpt, err, out, user_errors
from pipelines.errors import SpecError, TerminalError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from catalog.models import AuditEvent
    from exchange.audit import AuditProblem

audit_app = typer.Typer(
    help="The audit log (审计日志): check its hash chain, export it for auditors.", no_args_is_help=True
)

#: The fields of an entry, in export order, with their Chinese headers.
FIELDS: tuple[tuple[str, str], ...] = (
    ("seq", "序号"),
    ("at", "时间(UTC)"),
    ("actor", "操作人"),
    ("action", "操作"),
    ("subject", "对象"),
    ("detail", "详情"),
    ("prev_hash", "前一条哈希"),
    ("hash", "本条哈希"),
)
HEADERS = [f"{zh} {name}" for name, zh in FIELDS]
ALGORITHM = (
    "hash = sha256 of the UTF-8 JSON object {seq, at, actor, action, subject, detail, prev_hash} "
    "(keys sorted, separators ',' ':', non-ASCII not escaped); the first entry's prev_hash is 64 zeros, "
    "every other prev_hash is the hash of the entry before"
)
HINT_TAMPERED = (
    "govdata only appends to the audit log, so it was changed outside govdata (directly in the database). "
    "Restore the database from a backup taken before the change, and keep the audit export made before it: "
    "it lists every entry with its hash and is the evidence of what the log held"
)
#: A text cell starting with one of these is a formula (or data) to spreadsheet software.
_CSV_ESCAPE = ("'", "=", "+", "-", "@", "\t", "\r")
#: Characters XML (and so xlsx) cannot hold.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XLSX_CELL_MAX = 32767
_DATE_FORMATS = "YYYY-MM-DD (a whole day in UTC) or an ISO date-time such as 2026-11-24T08:00:00+08:00"


class ExportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    jsonl = "jsonl"


@contextmanager
def _session(home: Path | None) -> Iterator[Session]:
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    with CatalogStore(Workspace.from_env(home).catalog_url).session() as s:
        yield s


def _short(value: str) -> str:
    return value[:12] + "…" if len(value) > 13 else value


def _describe(session: Session, problem: AuditProblem) -> str:
    """What differs at the entry where the problem shows."""
    from sqlalchemy import select

    from catalog.models import AuditEvent
    from exchange.audit import entry_hash

    event = session.get(AuditEvent, problem.seq)
    if event is None:
        return ""
    what = f"entry {event.seq} ({event.action}, {event.subject}, by {event.actor})"
    if problem.kind == "edited":
        return f"{what}: stored hash {_short(event.hash)}, its content now hashes to {_short(entry_hash(event))}"
    owner = session.scalar(select(AuditEvent.seq).where(AuditEvent.hash == event.prev_hash))
    if owner is None:
        return f"{what} links to prev_hash {_short(event.prev_hash)}, which no entry in the log has"
    return f"{what} links to prev_hash {_short(event.prev_hash)}, the hash of entry {owner}"


@audit_app.command("verify")
def verify_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """Check the audit log's hash chain: exit 0 when intact, 1 naming the first entry changed outside govdata."""
    from sqlalchemy import func, select

    from catalog.models import AuditEvent
    from exchange import audit

    with user_errors(), _session(home) as s:
        problem = _verify(s)
        count = int(s.scalar(select(func.count()).select_from(AuditEvent)) or 0)
        head_seq, head_hash = audit.head(s)
        differs = _describe(s, problem) if problem is not None else ""
    result: dict[str, Any] = {
        "intact": problem is None,
        "entries": count,
        "head": {"seq": head_seq, "hash": head_hash},
        "problem": None,
    }
    if problem is not None:
        result["problem"] = {"seq": problem.seq, "kind": problem.kind, "message": problem.message, "differs": differs}
        result["hint"] = HINT_TAMPERED
    if as_json:
        out.print_json(json.dumps(result, ensure_ascii=False))
    elif problem is None:
        if count == 0:
            out.print("[green]✓[/] the audit log is empty: nothing to verify", highlight=False)
        else:
            out.print(
                f"[green]✓[/] audit log intact: {count} entries, head entry {head_seq} {head_hash}",
                highlight=False,
                soft_wrap=True,
            )
        out.print(
            "[dim]A log cut off at its end, or rewritten with every hash recomputed, also verifies: "
            "compare the head with the one your last export states.[/]",
            highlight=False,
            soft_wrap=True,
        )
    else:
        err.print(
            f"[bold red]audit log broken at entry {problem.seq} ({problem.kind}):[/] {escape(problem.message)}",
            highlight=False,
            soft_wrap=True,
        )
        if differs:
            err.print(f"  {escape(differs)}", highlight=False, soft_wrap=True)
        err.print(f"[yellow]→[/] {HINT_TAMPERED}", highlight=False, soft_wrap=True)
    if problem is not None:
        raise typer.Exit(EXIT_ERROR)


def _verify(session: Session) -> AuditProblem | None:
    from exchange import audit

    try:
        return audit.verify(session)
    except (ValueError, TypeError) as exc:  # a stored time or detail that is not a time or JSON any more
        raise TerminalError(
            f"the audit log cannot be read: a stored value is malformed ({exc})", hint=HINT_TAMPERED
        ) from None


# --- export -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    given: tuple[tuple[str, str], ...] = ()  # option → value as typed, for the statement


def _when(option: str, value: str, *, end: bool) -> dt.datetime:
    """A ``--since``/``--until`` value; a date is a whole UTC day (``--until`` includes it)."""
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=dt.UTC)
            return day + dt.timedelta(days=1) if end else day
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SpecError(f"{option} {value!r} is not a date", hint=f"give {_DATE_FORMATS}") from None
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def _filters(
    since: str | None, until: str | None, actor: str | None, action: str | None, subject: str | None
) -> Filters:
    given: list[tuple[str, str]] = []
    for option, value in (
        ("--since", since),
        ("--until", until),
        ("--actor", actor),
        ("--action", action),
        ("--subject", subject),
    ):
        if value is not None:
            if not value.strip():
                raise SpecError(f"{option} is empty", hint=f"give a value or leave {option} out")
            given.append((option, value))
    start = _when("--since", since, end=False) if since is not None else None
    stop = _when("--until", until, end=True) if until is not None else None
    if start is not None and stop is not None and start >= stop:
        raise SpecError(
            f"--since {since!r} is not before --until {until!r}: no entry can match",
            hint="swap them, or widen the range (--until with a date includes that whole day)",
        )
    return Filters(
        since=start,
        until=stop,
        actor=actor.strip() if actor else None,
        action=action.strip() if action else None,
        subject=subject.strip() if subject else None,
        given=tuple(given),
    )


def _query(filters: Filters, head_seq: int) -> Any:
    from sqlalchemy import or_, select

    from catalog.models import AuditEvent

    q = select(AuditEvent).where(AuditEvent.seq <= head_seq)
    if filters.since is not None:
        q = q.where(AuditEvent.at >= filters.since)
    if filters.until is not None:
        q = q.where(AuditEvent.at < filters.until)
    if filters.actor is not None:
        q = q.where(AuditEvent.actor == filters.actor)
    if filters.action is not None:
        q = q.where(AuditEvent.action.startswith(filters.action, autoescape=True))
    if filters.subject is not None:
        q = q.where(
            or_(
                AuditEvent.subject == filters.subject,
                AuditEvent.subject.endswith(":" + filters.subject, autoescape=True),
            )
        )
    return q


def _detail_text(detail: Any) -> str:
    return json.dumps(detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _cells(event: AuditEvent) -> list[Any]:
    from exchange.audit import record

    rec = record(event)
    return [rec["seq"], rec["at"], rec["actor"], rec["action"], rec["subject"], _detail_text(rec["detail"]),
            rec["prev_hash"], rec["hash"]]  # fmt: skip


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_CSV_ESCAPE):
        return "'" + value
    return value


def _statement_rows(meta: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The statement as (key, Chinese label, value) rows for csv and xlsx."""
    problem = meta["problem"]
    return [
        ("generated_at", "导出时间(UTC)", meta["generated_at"]),
        ("head_seq", "日志末条序号", meta["head"]["seq"]),
        ("head_hash", "日志末条哈希", meta["head"]["hash"]),
        ("entries_in_log", "日志条数", meta["entries_in_log"]),
        ("entries_exported", "导出条数", meta["entries_exported"]),
        ("subset", "是否子集", "yes" if meta["subset"] else "no"),
        ("filters", "筛选条件", json.dumps(meta["filters"], ensure_ascii=False) if meta["filters"] else "none"),
        ("chain_verified", "哈希链校验通过", "yes" if meta["chain_verified"] else "no"),
        ("problem", "校验问题", "" if problem is None else f"entry {problem['seq']} ({problem['kind']}): "
                                                            f"{problem['message']}"),
        ("hash_algorithm", "哈希算法", ALGORITHM),
        ("csv_text_escape", "文本转义", "a csv text cell starting with ' = + - @ tab or CR has one ' in front: "
                                        "drop it to read the value"),
    ]  # fmt: skip


def _write_jsonl(tmp: Path, meta: dict[str, Any], rows: Iterator[AuditEvent]) -> None:
    from exchange.audit import record

    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(json.dumps(meta, ensure_ascii=False) + "\n")
        for event in rows:
            fh.write(json.dumps(record(event), ensure_ascii=False, allow_nan=False) + "\n")


def _write_csv(tmp: Path, meta: dict[str, Any], rows: Iterator[AuditEvent]) -> None:
    import csv

    with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        for key, _, value in _statement_rows(meta):
            writer.writerow(["#", key, _csv_cell(value)])
        writer.writerow([])
        writer.writerow(HEADERS)
        for event in rows:
            writer.writerow([_csv_cell(v) for v in _cells(event)])


def _write_xlsx(tmp: Path, meta: dict[str, Any], rows: Iterator[AuditEvent]) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("审计日志")
    about = wb.create_sheet("说明")
    ws.freeze_panes = "A2"
    for index, width in enumerate((8, 28, 16, 30, 36, 80, 66, 66)):
        ws.column_dimensions[chr(ord("A") + index)].width = width
    bold = Font(bold=True)

    def cell(sheet: Any, value: Any, *, font: Font | None = None) -> Any:
        c = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            c.data_type = "s"  # text that looks like a formula stays text
        if font is not None:
            c.font = font
        return c

    ws.append([cell(ws, h, font=bold) for h in HEADERS])
    try:
        for event in rows:
            values = _cells(event)
            for (name, _), value in zip(FIELDS, values, strict=True):
                if isinstance(value, str) and (_XML_ILLEGAL.search(value) or len(value) > _XLSX_CELL_MAX):
                    why = "holds a control character" if _XML_ILLEGAL.search(value) else "is longer than a cell holds"
                    raise TerminalError(
                        f"audit log entry {event.seq}: its {name} {why}, which an xlsx file cannot keep as it is",
                        hint="export as --format jsonl or csv, which keep every value exactly",
                    )
            ws.append([cell(ws, v) for v in values])
    except TerminalError:
        wb.save(tmp)  # closes the sheets' streams; the caller removes the partial file
        raise
    about.column_dimensions["A"].width = 20
    about.column_dimensions["B"].width = 18
    about.column_dimensions["C"].width = 100
    about.append([cell(about, h, font=bold) for h in ("项目 key", "说明 label", "值 value")])
    for key, label, value in _statement_rows(meta):
        if key != "csv_text_escape":
            about.append([cell(about, key), cell(about, label), cell(about, value)])
    wb.save(tmp)


_SUFFIX = {".csv": ExportFormat.csv, ".xlsx": ExportFormat.xlsx, ".jsonl": ExportFormat.jsonl}


def _target(fmt: ExportFormat | None, output: Path | None, force: bool) -> tuple[ExportFormat, Path]:
    by_suffix = _SUFFIX.get(output.suffix.lower()) if output is not None else None
    if fmt is not None and by_suffix is not None and by_suffix is not fmt:
        raise SpecError(
            f"--format {fmt.value} does not match the file name {output}",
            hint=f"name the file *.{fmt.value}, or use --format {by_suffix.value}",
        )
    kind = fmt or by_suffix or ExportFormat.xlsx
    today = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    target = output if output is not None else Path(f"govdata-audit-{today}.{kind.value}")
    if target.is_dir():
        raise SpecError(f"{target} is a folder", hint=f"give a file name, e.g. --output audit.{kind.value}")
    if target.exists() and not force:
        raise SpecError(f"{target} exists already", hint="give another --output, or --force to replace it")
    return kind, target


@audit_app.command("export")
def export_cmd(
    fmt: Annotated[
        ExportFormat | None,
        typer.Option("--format", help="xlsx, csv (UTF-8 with BOM) or jsonl; default: from --output, else xlsx."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (default: govdata-audit-<date>.<format> here).",
                     show_default=False),
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help=f"Entries from this time: {_DATE_FORMATS}.",
                                              show_default=False)] = None,
    until: Annotated[str | None, typer.Option("--until", help="Entries up to this time (a date includes its day).",
                                              show_default=False)] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Entries by this user id.", show_default=False)] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", help="Entries whose action starts with this (e.g. catalog.).", show_default=False),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="Entries about this subject (catalog_entry:ID, or just the ID).",
                     show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the output file if it exists.")] = False,
    home: HomeOpt = None,
) -> None:  # fmt: skip
    """Export the audit log with every field and hash, so an auditor can recompute the chain offline.

    The file states the head of the log, the entry count, the filters (a filtered export is a
    subset) and whether the chain verified when it was written. It is written even when the
    chain does not verify, with a warning: it is then the evidence of what the log holds.
    """
    from sqlalchemy import func, select

    from catalog.models import AuditEvent
    from exchange import audit

    with user_errors():
        filters = _filters(since, until, actor, action, subject)
        kind, target = _target(fmt, output, force)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        with _session(home) as s:
            head_seq, head_hash = audit.head(s)
            problem = _verify(s)
            in_log = int(s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.seq <= head_seq)) or 0)
            query = _query(filters, head_seq)
            exported = int(s.scalar(select(func.count()).select_from(query.subquery())) or 0)
            meta: dict[str, Any] = {
                "kind": "govdata.audit.export",
                "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "head": {"seq": head_seq, "hash": head_hash},
                "entries_in_log": in_log,
                "entries_exported": exported,
                "subset": bool(filters.given),
                "filters": dict(filters.given),
                "chain_verified": problem is None,
                "problem": None
                if problem is None
                else {"seq": problem.seq, "kind": problem.kind, "message": problem.message},
                "fields": [name for name, _ in FIELDS],
                "hash_algorithm": ALGORITHM,
            }
            rows: Iterator[AuditEvent] = iter(
                s.scalars(query.order_by(AuditEvent.seq).execution_options(yield_per=1000))
            )
            writer = {ExportFormat.jsonl: _write_jsonl, ExportFormat.csv: _write_csv, ExportFormat.xlsx: _write_xlsx}
            try:
                writer[kind](tmp, meta, rows)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        tmp.replace(target)
    what = f"{exported} of {in_log} entries" if filters.given else f"{exported} entries"
    out.print(
        escape(f"wrote {what} ({kind.value}) to {target}; head entry {head_seq} {head_hash}"),
        highlight=False,
        soft_wrap=True,
    )
    if problem is not None:
        err.print(
            f"[bold yellow]warning:[/] the chain did not verify (entry {problem.seq}, {problem.kind}): "
            f"{escape(problem.message)}; the export says so",
            highlight=False,
            soft_wrap=True,
        )
