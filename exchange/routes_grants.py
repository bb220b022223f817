"""``/exchange/v1/grants``: the grants a department holds or gave, their state, revocation, the data-API key.

=====================================  ===============================================================
``GET /grants``                        the grants the caller may see (state, role held|given, entry;
                                       limit/offset)
``GET /grants/{id}``                   one grant with its state (active, revoked, expired, exhausted)
``POST /grants/{id}/revoke``           the provider's reviewer or the city admin revokes it (a reason
                                       is required; revoking a revoked grant answers 409)
``POST /grants/{id}/key``              the subscriber issues the grant's data-API key (shown once;
                                       issuing again replaces the old key)
=====================================  ===============================================================

The rules are those of :mod:`exchange.grants`. A grant the caller may not see answers 404.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from exchange import grants as core
from exchange.api import DB, ERRORS, Caller
from exchange.models import Grant

router = APIRouter(tags=["grants"], responses=ERRORS)

GrantId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="the grant's id")]
GrantState = Literal["active", "revoked", "expired", "exhausted"]


class GrantOut(BaseModel):
    """A grant: what the subscriber may receive, how masked, until when, how often."""

    id: int
    application_id: int
    entry: str
    entry_name: str
    provider: str
    provider_name: str | None
    subscriber: str
    subscriber_name: str | None
    items: list[str]
    masking: dict[str, str | None] = Field(
        description="the reviewer's overrides: item → rule, or null for clear; items not named get the default rule"
    )
    join_keys: list[str]
    delivery_method: str
    target: dict[str, str] | None
    granted_at: dt.datetime
    granted_by: str
    expires_at: dt.datetime
    max_uses: int | None
    uses: int
    state: GrantState
    state_label: str
    revoked_at: dt.datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    api_key_id: str | None = Field(description="the public id of the current data-API key (never the key)")
    last_version: int | None


class GrantPage(BaseModel):
    """One page of grants, newest first."""

    total: int
    limit: int
    offset: int
    items: list[GrantOut]


class RevokeIn(BaseModel):
    """Why the grant is revoked."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(min_length=1, max_length=core.MAX_TEXT)]


class KeyOut(BaseModel):
    """A new data-API key: shown only now, never stored (only its sha256 is kept)."""

    grant_id: int
    key_id: str
    key: str = Field(description="send as `Authorization: Bearer gdk_…` to the data API; keep it now")


def grant_out(grant: Grant, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A grant as :class:`GrantOut` data."""
    return core.grant_dict(grant, names=names)


@router.get("/grants", response_model=GrantPage, summary="The grants the caller may see")
def grants(
    caller: Caller,
    db: DB,
    state: Annotated[GrantState | None, Query(description="only grants in this state")] = None,
    role: Annotated[
        Literal["held", "given"] | None,
        Query(description="held: grants the caller's department holds; given: grants on its resources"),
    ] = None,
    entry: Annotated[str | None, Query(max_length=100, description="only grants on this resource")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> dict[str, Any]:
    rows, total = core.list_grants(db, caller, state=state, role=role, entry=entry, limit=limit, offset=offset)
    names = core.department_names(db)
    return {"total": total, "limit": limit, "offset": offset, "items": [grant_out(g, names) for g in rows]}


@router.get("/grants/{grant_id}", response_model=GrantOut, summary="One grant and its state")
def grant(grant_id: GrantId, caller: Caller, db: DB) -> dict[str, Any]:
    return grant_out(core.get_grant(db, caller, grant_id), core.department_names(db))


@router.post(
    "/grants/{grant_id}/revoke",
    response_model=GrantOut,
    summary="Revoke a grant (provider's reviewer or city admin; a reason is required; twice: 409)",
)
def revoke(grant_id: GrantId, body: RevokeIn, caller: Caller, db: DB) -> dict[str, Any]:
    return grant_out(core.revoke(db, caller, grant_id, reason=body.reason), core.department_names(db))


@router.post(
    "/grants/{grant_id}/key",
    response_model=KeyOut,
    status_code=201,
    summary="Issue the grant's data-API key (subscriber; shown once; replaces the previous key)",
)
def key(grant_id: GrantId, caller: Caller, db: DB) -> dict[str, Any]:
    found = core.get_grant(db, caller, grant_id)
    secret = core.issue_key(db, found, caller)
    return {"grant_id": found.id, "key_id": found.api_key_id, "key": secret}
