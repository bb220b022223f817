"""``govdata exchange …`` and ``govdata token …``: the city exchange from the command line.

The exchange's parts add their commands to :data:`exchange_app` from their own modules
(``pipelines/cli_exchange_*.py``), imported by :mod:`pipelines.cli`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipelines.cli_common import ActorOpt, HomeOpt, out, user_errors
from pipelines.errors import SpecError

exchange_app = typer.Typer(
    help="The city exchange: applications, reviews, grants, deliveries, objections, webhooks, assessment.",
    no_args_is_help=True,
)
token_app = typer.Typer(help="API tokens for the exchange service (hashed at rest, scoped, revocable).")


def store(home: Path | None) -> Any:
    """The platform database of workspace ``home``."""
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    return CatalogStore(Workspace.from_env(home).catalog_url)


def actor(value: str | None) -> str:
    """The acting user's id, from ``--as``/``GOVDATA_USER``; a clear error when missing."""
    if value is None or not value.strip():
        raise SpecError(
            "who is acting? this command needs a platform user",
            hint="give --as USER (or set GOVDATA_USER); `govdata catalog users list` shows the users",
        )
    return value.strip()


def principal(session: Any, value: str | None) -> Any:
    """The :class:`~exchange.identity.Principal` of the acting local user (every scope its role allows)."""
    from catalog.lifecycle import acting_user
    from exchange.identity import Principal

    return Principal.of_user(acting_user(session, actor(value)))


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="What the token is for, e.g. nightly-publish.")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="A scope (repeatable); default: every scope the role allows.")
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="Expiry, ISO date-time with zone or a date (end of that day, UTC+8)."),
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="For this user (default: --as).")] = None,
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Create an API token and print it once (only its hash is kept)."""
    from exchange.identity import create_token

    with user_errors():
        who = actor(acting)
        expires_at = _parse_expiry(expires) if expires else None
        with store(home).session() as s:
            if user and user != who:
                principal(s, who).require("exchange:admin")
            row, token = create_token(s, user or who, name=name, scopes=scope, expires_at=expires_at, actor=who)
            ident, scopes = row.id, list(row.scopes)
    out.print(f"token {ident} for {user or who} (scopes: {', '.join(scopes)})", highlight=False)
    out.print("keep it now, it is not shown again:", highlight=False)
    out.print(token, highlight=False, markup=False, soft_wrap=True)


def _parse_expiry(value: str) -> dt.datetime:
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.timezone(dt.timedelta(hours=8)))
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SpecError(
            f"--expires {value!r} is not a date or date-time", hint="e.g. 2027-06-30 or 2027-06-30T18:00+08:00"
        ) from None
    if parsed.tzinfo is None:
        raise SpecError(f"--expires {value!r} has no time zone", hint="add one, e.g. 2027-06-30T18:00+08:00")
    return parsed


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's tokens.")] = None,
    home: HomeOpt = None,
) -> None:
    """List API tokens (never the tokens themselves)."""
    from exchange.identity import list_tokens

    with user_errors(), store(home).session() as s:
        rows = [
            (t.id, t.user_id, t.name, ", ".join(t.scopes), t.expires_at, t.revoked_at, t.last_used_at)
            for t in list_tokens(s, user)
        ]
    table = Table(title="API tokens")
    for col in ("id", "user", "name", "scopes", "expires", "revoked", "last used"):
        table.add_column(col, no_wrap=col in ("id", "user"), overflow="fold")
    for row in rows:
        table.add_row(*[_cell(v) for v in row])
    out.print(table)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
    return str(value)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `govdata token list`).")],
    acting: ActorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke an API token: it is refused from now on."""
    from exchange.identity import revoke_token
    from exchange.models import ApiToken

    with user_errors():
        who = actor(acting)
        with store(home).session() as s:
            row = s.get(ApiToken, token_id)
            if row is not None and row.user_id != who:
                principal(s, who).require("exchange:admin")
            revoke_token(s, token_id, actor=who)
    out.print(f"token {token_id} revoked", highlight=False)
