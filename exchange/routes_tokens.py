"""``/exchange/v1/me`` and ``/exchange/v1/tokens``: who the caller is; API tokens (create, list, revoke).

A user creates and revokes its own tokens; the city admin may do so for anyone. The token itself
is in the answer to its creation only.

A token never makes a wider one: a token a user makes for itself holds at most the scopes of the
token that made it (without ``scopes``: exactly those). Otherwise a token narrowed to
``catalog:read`` could mint one with every scope of its role, and narrowing would protect nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from catalog.models import User
from exchange.api import DB, ERRORS, Caller
from exchange.errors import Forbidden, NotFound
from exchange.identity import ROLE_SCOPES, SCOPES, create_token, list_tokens, revoke_token
from exchange.models import ApiToken

router = APIRouter(tags=["identity"], responses=ERRORS)

if TYPE_CHECKING:
    Scope = str
else:
    Scope = Literal[tuple(SCOPES)]  # the scopes, as an enum in the OpenAPI description


class Me(BaseModel):
    user: str
    name: str
    role: str
    department: str | None
    scopes: list[str]
    token: str | None


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] | None = Field(
        min_length=1,
        default=None,
        description=f"some of: {', '.join(SCOPES)}, at most those of the token making it; omitted: the making "
        "token's scopes for the caller's own token (all the role allows for a full token), all the role "
        "allows for another user's",
    )
    expires_at: dt.datetime | None = None
    user: str | None = Field(default=None, max_length=64, description="for another user (city admin only)")


class TokenOut(BaseModel):
    id: str
    user: str
    name: str
    scopes: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


class NewToken(TokenOut):
    token: str = Field(description="the token itself; shown only now, never stored")


def _out(row: ApiToken) -> dict[str, Any]:
    return {
        "id": row.id,
        "user": row.user_id,
        "name": row.name,
        "scopes": list(row.scopes),
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
        "last_used_at": row.last_used_at,
    }


@router.get("/me", response_model=Me, summary="The caller: user, role, department, the token's scopes")
def me(caller: Caller, db: DB) -> dict[str, Any]:
    user = db.get(User, caller.user)
    return {
        "user": caller.user,
        "name": user.name if user else caller.user,
        "role": caller.role.value,
        "department": caller.department,
        "scopes": sorted(caller.scopes),
        "token": caller.token,
    }


@router.get("/tokens", response_model=list[TokenOut], summary="The caller's tokens (the city admin: everyone's)")
def tokens(caller: Caller, db: DB) -> list[dict[str, Any]]:
    everyone = "exchange:admin" in caller.scopes
    return [_out(t) for t in list_tokens(db, None if everyone else caller.user)]


@router.post("/tokens", response_model=NewToken, status_code=201, summary="Create a token (shown once)")
def create(body: TokenIn, caller: Caller, db: DB) -> dict[str, Any]:
    owner = body.user or caller.user
    scopes = body.scopes
    if owner != caller.user:
        caller.require("exchange:admin")
        if db.get(User, owner) is None:
            raise NotFound(f"no user {owner!r}", hint="list users with `govdata catalog users`")
    else:
        scopes = sorted(caller.scopes) if scopes is None else scopes
        # Scopes the role may not hold at all are refused by create_token, naming the role.
        beyond = sorted((set(scopes) & ROLE_SCOPES[caller.role]) - caller.scopes)
        if beyond:
            raise Forbidden(
                f"this token may not make a token with the scope(s) {', '.join(map(repr, beyond))}: "
                f"it holds only {', '.join(sorted(caller.scopes))}",
                hint="ask for at most the scopes of this token, or make the token with a full token "
                "(or `govdata token create`)",
            )
    row, token = create_token(db, owner, name=body.name, scopes=scopes, expires_at=body.expires_at, actor=caller.user)
    return {**_out(row), "token": token}


@router.delete("/tokens/{token_id}", response_model=TokenOut, summary="Revoke a token (idempotent)")
def revoke(token_id: str, caller: Caller, db: DB) -> dict[str, Any]:
    row = db.get(ApiToken, token_id)
    if row is None or (row.user_id != caller.user and "exchange:admin" not in caller.scopes):
        raise NotFound(f"no token {token_id!r} of yours", hint="list your tokens with GET /exchange/v1/tokens")
    return _out(revoke_token(db, token_id, actor=caller.user))
