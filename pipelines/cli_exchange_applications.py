"""``govdata exchange apply|applications|application|withdraw|review|grants|grant|revoke|grant-key``.

Applications, their review and the grants they create, from the command line, acting as a
platform user (``--as``): the same rules as the REST API (:mod:`exchange.applications`,
:mod:`exchange.grants`), in the workspace's platform database. Tables show each status code with
its Chinese label beside it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from pipelines.cli_common import ActorOpt, HomeOpt, out, user_errors
from pipelines.cli_exchange import exchange_app, principal, store
from pipelines.errors import SpecError

if TYPE_CHECKING:
    from collections.abc import Sequence

_SHANGHAI_OFFSET = dt.timezone(dt.timedelta(hours=8))


def _local(value: dt.datetime | None) -> str:
    """A time as Shanghai local time, to the minute."""
    if value is None:
        return ""
    return value.astimezone(_SHANGHAI_OFFSET).strftime("%Y-%m-%d %H:%M")


def _items(value: str, option: str) -> list[str]:
    names = [part.strip() for part in value.split(",")]
    if not value.strip() or any(not n for n in names):
        raise SpecError(f"{option} {value!r} is not a comma-separated list of data items", hint=f"e.g. {option} a,b")
    return names


def _date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise SpecError(f"{option} {value!r} is not a date", hint=f"e.g. {option} 2027-06-30") from None


def _expiry(value: str) -> dt.datetime:
    """A date (end of that day, Asia/Shanghai) or a date-time with a zone."""
    from exchange.grants import end_of_day

    text = value.strip()
    if len(text) == 10:
        return end_of_day(_date(text, "--expires"))
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SpecError(
            f"--expires {value!r} is not a date or date-time", hint="e.g. 2027-06-30 or 2027-06-30T18:00+08:00"
        ) from None
    if parsed.tzinfo is None:
        raise SpecError(f"--expires {value!r} has no time zone", hint="add one, e.g. 2027-06-30T18:00+08:00")
    return parsed


def _status(code: str, label: str | None) -> str:
    return f"{code} {label}" if label else code


def _describe(row: dict[str, Any]) -> str:
    """One line about an application's status."""
    if row["status"] == "pending":
        deadline = row.get("deadline") or {}
        state = deadline.get("state")
        due = _local(row["due_at"])
        return (
            f"application {row['id']}: {_status(row['status'], row['status_label'])}, reviewer "
            f"{_status(row['reviewer'], row['reviewer_label'])}, due {due}"
            + (f" ({_status(state, deadline.get('state_label'))})" if state else "")
        )
    line = f"application {row['id']}: {_status(row['status'], row['status_label'])}"
    if row.get("decided_by"):
        line += f" by {row['decided_by']}"
    if row.get("reason"):
        line += f": {row['reason']}"
    return line


@exchange_app.command("apply")
def apply(
    dataset: Annotated[str, typer.Argument(help="The resource (catalog entry id) to apply for.")],
    items: Annotated[str, typer.Option("--items", help="Data items needed, comma-separated: a,b,c.")],
    purpose: Annotated[str, typer.Option("--purpose", help="事由: why the data is needed.")],
    scenario: Annotated[str, typer.Option("--scenario", help="应用场景: where and how it will be used.")],
    method: Annotated[str, typer.Option("--method", help="Delivery: file (文件), database (库表) or api (接口).")],
    until: Annotated[str, typer.Option("--until", help="End date of the use, YYYY-MM-DD (at most 5 years).")],
    target_url_env: Annotated[
        str | None,
        typer.Option("--target-url-env", help="Database delivery: the environment variable holding the database URL."),
    ] = None,
    target_table: Annotated[
        str | None, typer.Option("--target-table", help="Database delivery: the table to write into.")
    ] = None,
    target_schema: Annotated[
        str | None, typer.Option("--target-schema", help="Database delivery: the schema (default: the database's).")
    ] = None,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Apply for data items of another department's published resource."""
    from exchange.applications import application_dict, submit
    from exchange.grants import department_names

    with user_errors():
        names = _items(items, "--items")
        end = _date(until, "--until")
        target: dict[str, Any] | None = None
        if target_url_env is not None or target_table is not None or target_schema is not None:
            target = {"url_env": target_url_env, "table": target_table, "schema": target_schema}
        with store(home).session() as s:
            app = submit(
                s,
                principal(s, acting),
                entry=dataset,
                items=names,
                purpose=purpose,
                scenario=scenario,
                delivery_method=method,
                end_date=end,
                target=target,
            )
            row = application_dict(app, names=department_names(s))
    if row["status"] == "refused":
        out.print(f"[bold red]refused at once[/] ({row['share_type']})", highlight=False)
    out.print(_describe(row), highlight=False, markup=False, soft_wrap=True)


def _application_table(rows: Sequence[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("id", "resource", "applicant", "items", "method", "status", "reviewer", "submitted", "due", "deadline"):
        table.add_column(col, overflow="fold")
    for r in rows:
        deadline = r.get("deadline") or {}
        state = deadline.get("state")
        table.add_row(
            str(r["id"]),
            r["entry"],
            r.get("applicant_department_name") or r["applicant_department"],
            ", ".join(r["items"]),
            r["delivery_method"],
            _status(r["status"], r["status_label"]),
            _status(r["reviewer"], r["reviewer_label"]),
            _local(r["submitted_at"]),
            _local(r["due_at"]),
            _status(state, deadline.get("state_label")) if state else "",
        )
    return table


def _pending_table(rows: Sequence[dict[str, Any]], title: str) -> Table:
    from exchange.applications import REVIEWER_LABELS

    table = Table(title=title)
    for col in ("id", "resource", "provider", "applicant", "reviewer", "submitted", "due", "state", "age (wd)", "left"):
        table.add_column(col, overflow="fold")
    for r in rows:
        left = r["remaining_working_days"] if r["state"] != "overdue" else -(r["overdue_working_days"] or 0)
        table.add_row(
            str(r["id"]),
            r["entry"],
            r.get("provider_name") or r["provider"],
            r.get("applicant_department_name") or r["applicant_department"],
            _status(r["reviewer"], REVIEWER_LABELS.get(r["reviewer"])),
            _local(r["submitted_at"]),
            _local(r["due_at"]),
            _status(r["state"], r["state_label"]),
            "" if r["age_working_days"] is None else str(r["age_working_days"]),
            "" if left is None else str(left),
        )
    return table


@exchange_app.command("applications")
def applications(
    pending: Annotated[bool, typer.Option("--pending", help="Only pending ones, with their deadline states.")] = False,
    status: Annotated[
        str | None, typer.Option("--status", help="Only this status: pending, approved, refused, withdrawn.")
    ] = None,
    role: Annotated[
        str | None, typer.Option("--role", help="incoming (for your data) or outgoing (your department's own).")
    ] = None,
    entry: Annotated[str | None, typer.Option("--entry", help="Only for this resource.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1 to 500).")] = 50,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many.")] = 0,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """List the applications you may see (made by or for your department; the city: all)."""
    from exchange.applications import application_dict, grants_of, list_applications, visible_pending
    from exchange.grants import department_names

    with user_errors(), store(home).session() as s:
        who = principal(s, acting)
        if pending:
            rows = visible_pending(s, who)
            if entry is not None:
                rows = [r for r in rows if r["entry"] == entry]
            out.print(_pending_table(rows, f"待审核申请 pending applications ({len(rows)})"))
            return
        found, total = list_applications(
            s,
            who,
            status=status,
            role=role,  # type: ignore[arg-type]  # checked by list_applications
            entry=entry,
            limit=limit,
            offset=offset,
        )
        grants = grants_of(s, found)
        names = department_names(s)
        listed = [application_dict(a, grant_id=grants.get(a.id), names=names) for a in found]
    out.print(_application_table(listed, f"申请 applications ({len(listed)} of {total})"))


@exchange_app.command("application")
def application(
    application_id: Annotated[int, typer.Argument(help="The application's id.")],
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Show one application: what was asked for, why, and its review."""
    from exchange.applications import application_dict, get_application, grants_of
    from exchange.grants import department_names

    with user_errors(), store(home).session() as s:
        app = get_application(s, principal(s, acting), application_id)
        row = application_dict(app, grant_id=grants_of(s, [app]).get(app.id), names=department_names(s))
    table = Table(title=f"申请 application {row['id']}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key in ("entry", "entry_name", "provider_name", "applicant_department_name", "applicant", "items", "purpose"):
        value = row[key]
        table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value or ""))
    table.add_row("scenario", row["scenario"])
    table.add_row("delivery", f"{row['delivery_method']} {_method_label(row['delivery_method'])}")
    table.add_row("end date", str(row["end_date"]))
    table.add_row("share type", row["share_type"])
    table.add_row("reviewer", _status(row["reviewer"], row["reviewer_label"]))
    table.add_row("status", _status(row["status"], row["status_label"]))
    table.add_row("submitted", _local(row["submitted_at"]))
    table.add_row("due", _local(row["due_at"]))
    if row["deadline"]:
        table.add_row("deadline", _status(row["deadline"]["state"], row["deadline"]["state_label"]))
    table.add_row("decided", f"{_local(row['decided_at'])} {row['decided_by'] or ''}".strip())
    table.add_row("reason", row["reason"] or "")
    table.add_row("grant", "" if row["grant_id"] is None else str(row["grant_id"]))
    out.print(table)


def _method_label(method: str) -> str:
    from exchange.applications import METHOD_LABELS

    return METHOD_LABELS.get(method, "")


@exchange_app.command("withdraw")
def withdraw(
    application_id: Annotated[int, typer.Argument(help="The application's id.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (optional).")] = None,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Withdraw your department's pending application."""
    from exchange.applications import application_dict
    from exchange.applications import withdraw as withdraw_application

    with user_errors(), store(home).session() as s:
        app = withdraw_application(s, principal(s, acting), application_id, reason=reason)
        row = application_dict(app)
    out.print(_describe(row), highlight=False, markup=False, soft_wrap=True)


def _masking(clear: Sequence[str], mask: Sequence[str]) -> dict[str, str | None] | None:
    rules: dict[str, str | None] = {}
    for item in clear:
        rules[item.strip()] = None
    for pair in mask:
        item, sep, rule = pair.partition("=")
        if not sep or not item.strip() or not rule.strip():
            raise SpecError(f"--mask {pair!r} is not ITEM=RULE", hint="e.g. --mask mobile=mobile")
        if item.strip() in rules:
            raise SpecError(f"data item {item.strip()!r} has two masking choices", hint="give one --mask or --clear")
        rules[item.strip()] = rule.strip()
    return rules or None


@exchange_app.command("review")
def review(
    application_id: Annotated[int, typer.Argument(help="The application's id.")],
    approve: Annotated[bool, typer.Option("--approve", help="Approve it (creates the grant).")] = False,
    refuse: Annotated[bool, typer.Option("--refuse", help="Refuse it (--opinion gives the reason).")] = False,
    opinion: Annotated[str | None, typer.Option("--opinion", help="The opinion; required to refuse.")] = None,
    items: Annotated[
        str | None, typer.Option("--items", help="Approve only these items, comma-separated (default: all).")
    ] = None,
    clear: Annotated[list[str] | None, typer.Option("--clear", help="Deliver this item in clear (repeatable).")] = None,
    mask: Annotated[
        list[str] | None, typer.Option("--mask", help="ITEM=RULE: mask this item by RULE (repeatable).")
    ] = None,
    join_key: Annotated[
        list[str] | None, typer.Option("--join-key", help="A granted item used as a join key (repeatable).")
    ] = None,
    max_uses: Annotated[int | None, typer.Option("--max-uses", help="Cap on deliveries/calls.")] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="End the grant earlier: a date (end of day) or date-time.")
    ] = None,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Decide a pending application: approve (with the grant's terms) or refuse (with a reason)."""
    from exchange.applications import application_dict, decide
    from exchange.grants import department_names, grant_dict

    with user_errors():
        if approve == refuse:
            raise SpecError(
                "give exactly one of --approve and --refuse", hint="e.g. --approve, or --refuse --opinion …"
            )
        rules = _masking(clear or [], mask or [])
        chosen = _items(items, "--items") if items is not None else None
        ends = _expiry(expires) if expires is not None else None
        with store(home).session() as s:
            app, grant = decide(
                s,
                principal(s, acting),
                application_id,
                approve=approve,
                opinion=opinion,
                items=chosen,
                masking=rules,
                join_keys=join_key or None,
                expires_at=ends,
                max_uses=max_uses,
            )
            names = department_names(s)
            row = application_dict(app, names=names)
            granted = None if grant is None else grant_dict(grant, names=names)
    out.print(_describe(row), highlight=False, markup=False, soft_wrap=True)
    if granted is not None:
        out.print(_grant_table([granted], f"授权 grant {granted['id']}"))


def _grant_table(rows: Sequence[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("id", "resource", "provider", "subscriber", "items", "masking", "method", "expires", "uses", "state"):
        table.add_column(col, overflow="fold")
    for g in rows:
        masking = ", ".join(f"{k}={'clear' if v is None else v}" for k, v in g["masking"].items()) or "default"
        uses = f"{g['uses']}/{g['max_uses']}" if g["max_uses"] is not None else str(g["uses"])
        table.add_row(
            str(g["id"]),
            g["entry"],
            g.get("provider_name") or g["provider"],
            g.get("subscriber_name") or g["subscriber"],
            ", ".join(g["items"]),
            masking,
            g["delivery_method"],
            _local(g["expires_at"]),
            uses,
            _status(g["state"], g["state_label"]),
        )
    return table


@exchange_app.command("grants")
def grants(
    state: Annotated[
        str | None, typer.Option("--state", help="Only this state: active, revoked, expired, exhausted.")
    ] = None,
    role: Annotated[
        str | None, typer.Option("--role", help="held (grants you hold) or given (grants on your data).")
    ] = None,
    entry: Annotated[str | None, typer.Option("--entry", help="Only grants on this resource.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1 to 500).")] = 50,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many.")] = 0,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """List the grants you may see (held by or given by your department; the city: all)."""
    from exchange.grants import department_names, grant_dict, list_grants

    with user_errors(), store(home).session() as s:
        found, total = list_grants(
            s,
            principal(s, acting),
            state=state,
            role=role,  # type: ignore[arg-type]  # checked by list_grants
            entry=entry,
            limit=limit,
            offset=offset,
        )
        names = department_names(s)
        rows = [grant_dict(g, names=names) for g in found]
    out.print(_grant_table(rows, f"授权 grants ({len(rows)} of {total})"))


@exchange_app.command("grant")
def grant(
    grant_id: Annotated[int, typer.Argument(help="The grant's id.")],
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Show one grant and its state."""
    from exchange.grants import department_names, get_grant, grant_dict

    with user_errors(), store(home).session() as s:
        row = grant_dict(get_grant(s, principal(s, acting), grant_id), names=department_names(s))
    out.print(_grant_table([row], f"授权 grant {row['id']}"))
    if row["revoked_at"] is not None:
        out.print(
            f"revoked {_local(row['revoked_at'])} by {row['revoked_by']}: {row['revoke_reason']}",
            highlight=False,
            markup=False,
        )
    if row["target"]:
        out.print(f"target: {row['target']}", highlight=False, markup=False)


@exchange_app.command("revoke")
def revoke(
    grant_id: Annotated[int, typer.Argument(help="The grant's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the grant is revoked (required).")],
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke a grant: nothing more is delivered under it (provider's reviewer or city admin)."""
    from exchange.grants import revoke as revoke_grant

    with user_errors(), store(home).session() as s:
        found = revoke_grant(s, principal(s, acting), grant_id, reason=reason)
        ident, by = found.id, found.revoked_by
    out.print(f"grant {ident} revoked (已撤销) by {by}", highlight=False)


@exchange_app.command("grant-key")
def grant_key(
    grant_id: Annotated[int, typer.Argument(help="The grant's id (delivered by api).")],
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Issue the data-API key of a grant your department holds; shown once, replaces any earlier key."""
    from exchange.grants import get_grant, issue_key

    with user_errors(), store(home).session() as s:
        who = principal(s, acting)
        found = get_grant(s, who, grant_id)
        key = issue_key(s, found, who)
        ident = found.api_key_id
    out.print(f"data-API key {ident} for grant {grant_id}; keep it now, it is not shown again:", highlight=False)
    out.print(key, highlight=False, markup=False, soft_wrap=True)
