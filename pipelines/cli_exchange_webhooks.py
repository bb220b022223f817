"""``govdata exchange webhooks …`` (a department's signed webhooks) and ``govdata exchange notify`` (send the outbox once).

The rules (who may register, where a webhook may point, how receivers verify a notification, the
retry schedule) are :mod:`exchange.notify`'s; these commands call it as the local user ``--as``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.cli_common import ActorOpt, HomeOpt, out, user_errors
from pipelines.cli_exchange import actor, exchange_app, principal, store

webhooks_app = typer.Typer(
    help="A department's webhooks: signed notifications of applications, decisions, deliveries, objections.",
    no_args_is_help=True,
)
exchange_app.add_typer(webhooks_app, name="webhooks")


def _show_secret(hook_id: int, secret: str, what: str) -> None:
    out.print(f"webhook {hook_id} {what}", highlight=False)
    out.print("its signing secret; keep it now, it is not shown again:", highlight=False)
    out.print(secret, highlight=False, markup=False, soft_wrap=True)


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="The receiver's http(s) address.")],
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="An event to send (repeatable); `webhooks events` lists them."),
    ] = None,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Register a webhook of your department and print its signing secret once."""
    from exchange.notify import register_webhook

    with user_errors():
        who = actor(acting)
        with store(home).session() as s:
            hook, secret = register_webhook(s, principal(s, who), url=url, events=event or [])
            ident, events = hook.id, list(hook.events)
    _show_secret(ident, secret, f"registered for: {', '.join(events)}")


@webhooks_app.command("events")
def events() -> None:
    """The events a webhook may listen to."""
    from exchange.notify import EVENTS

    table = Table(title="webhook events")
    table.add_column("event")
    table.add_column("sent when")
    for name, meaning in EVENTS.items():
        table.add_row(name, meaning)
    out.print(table)


@webhooks_app.command("list")
def listing(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Your department's webhooks (the city admin: every department's). Secrets are never shown."""
    from exchange.notify import count_notifications, list_webhooks

    with user_errors():
        who = actor(acting)
        with store(home).session() as s:
            caller = principal(s, who)
            rows: list[dict[str, Any]] = [
                {
                    "id": h.id,
                    "department": h.department_uscc,
                    "url": h.url,
                    "events": list(h.events),
                    "created_by": h.created_by,
                    "created_at": h.created_at.isoformat(timespec="seconds"),
                }
                for h in list_webhooks(s, caller)
            ]
            counts = count_notifications(s, caller.department)
    if as_json:
        out.print_json(json.dumps({"webhooks": rows, "notifications": counts}, ensure_ascii=False))
        return
    table = Table(title="webhooks")
    for col in ("id", "department", "url", "events", "created by", "created at"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), r["department"], r["url"], ", ".join(r["events"]), r["created_by"], r["created_at"])
    out.print(table)
    out.print(
        f"notifications: {counts['pending']} waiting, {counts['sent']} sent, {counts['failed']} failed",
        highlight=False,
    )


@webhooks_app.command("remove")
def remove(
    webhook_id: Annotated[int, typer.Argument(min=1, help="The webhook's id (see `webhooks list`).")],
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Remove a webhook: nothing more is sent to it, its secret is erased."""
    from exchange.notify import remove_webhook

    with user_errors():
        who = actor(acting)
        with store(home).session() as s:
            remove_webhook(s, principal(s, who), webhook_id)
    out.print(f"webhook {webhook_id} removed", highlight=False)


@webhooks_app.command("rotate")
def rotate(
    webhook_id: Annotated[int, typer.Argument(min=1, help="The webhook's id (see `webhooks list`).")],
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Give a webhook a new signing secret (the old one stops at once) and print it once."""
    from exchange.notify import rotate_secret

    with user_errors():
        who = actor(acting)
        with store(home).session() as s:
            hook, secret = rotate_secret(s, principal(s, who), webhook_id)
            ident = hook.id
    _show_secret(ident, secret, "has a new secret")


@exchange_app.command("notify")
def notify(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Send at most this many.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    home: HomeOpt = None,
) -> None:
    """Send the notifications that are due, once, and print what became of them."""
    from exchange.notify import dispatch_due

    with user_errors():
        summary = dispatch_due(store(home), limit=limit)
    if as_json:
        out.print_json(json.dumps(summary.as_dict(), ensure_ascii=False))
        return
    out.print(
        f"notifications: {summary.claimed} due, {summary.sent} sent, {summary.retrying} to retry later, "
        f"{summary.failed} failed for good",
        highlight=False,
    )
    for line in summary.errors:
        out.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
