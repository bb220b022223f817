"""Who is calling the exchange: API tokens (hashed at rest, scoped, revocable) and the caller's rights.

A token is ``gdt_<id>_<secret>``: ``id`` (12 characters) is public and names the token in lists
and the audit log; ``secret`` is 32 random bytes (base64url). Only ``sha256(token)`` is stored.
A plain hash is enough: the secret has 256 bits of entropy, so there is nothing to brute-force
and a slow password hash would only slow every request. A per-grant data-API key has the same
shape with the prefix ``gdk_`` (:func:`new_secret`).

Rights are the intersection of two things:

* the **role** of the token's user (:class:`catalog.access.Role`): department staff (部门工作人员),
  the department's reviewer (部门审核人, role ``dept_admin``), the city admin (市级管理员) and the
  auditor (审计人员); and the user's **department**, which bounds what a department user sees;
* the token's **scopes** (:data:`SCOPES`), each of which the role must allow (:data:`ROLE_SCOPES`).

A token of an inactive user, a revoked token and an expired token are refused alike (401).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.access import Role, Viewer
from catalog.models import User, utcnow
from exchange import audit
from exchange.errors import AuthError, Forbidden
from exchange.models import ApiToken
from pipelines.errors import TerminalError

__all__ = [
    "ROLE_SCOPES",
    "SCOPES",
    "AuthError",
    "Forbidden",
    "Principal",
    "authenticate",
    "create_token",
    "hash_token",
    "list_tokens",
    "new_secret",
    "revoke_token",
]

#: What a token may be used for.
SCOPES: dict[str, str] = {
    "catalog:read": "read the catalog, including the own department's unpublished entries",
    "exchange:apply": "apply for data, raise objections, manage the department's webhooks",
    "exchange:review": "review applications to the department's data, answer objections, revoke grants",
    "exchange:publish": "publish versions of the department's resources (uploads)",
    "exchange:deliver": "receive deliveries of the department's grants (download, database, API)",
    "exchange:admin": "city administration: conformity checks, every department's records, tokens",
    "monitor:read": "the dashboard, monitoring and assessment",
    "audit:read": "read and export the audit log",
}

#: The scopes each role may hold.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.STAFF: frozenset({"catalog:read", "exchange:apply", "exchange:deliver", "exchange:publish"}),
    Role.DEPT_ADMIN: frozenset(
        {"catalog:read", "exchange:apply", "exchange:deliver", "exchange:publish", "exchange:review", "monitor:read"}
    ),
    Role.CITY_ADMIN: frozenset(
        {"catalog:read", "exchange:review", "exchange:admin", "monitor:read", "audit:read", "exchange:publish"}
    ),
    Role.AUDITOR: frozenset({"catalog:read", "monitor:read", "audit:read"}),
}

TOKEN_PREFIX = "gdt_"
KEY_PREFIX = "gdk_"
_ID_LEN = 12


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user with a role, perhaps a department, and the token's scopes."""

    user: str
    role: Role
    department: str | None  # USCC; None for city-level users
    scopes: frozenset[str]
    token: str | None = None  # the token id; None when acting locally (CLI)

    @property
    def city(self) -> bool:
        """A city-level user: the city admin or an auditor (sees every department's records)."""
        return self.role in (Role.CITY_ADMIN, Role.AUDITOR)

    @property
    def viewer(self) -> Viewer:
        """The catalog's view of this caller (what entries it may see)."""
        return Viewer(user=self.user, role=self.role, department=self.department)

    def require(self, scope: str) -> None:
        """Raise :class:`Forbidden` unless the caller holds ``scope``."""
        if scope not in SCOPES:
            raise TerminalError(f"unknown scope {scope!r}", hint="this is a bug in the caller")
        if scope not in self.scopes:
            raise Forbidden(
                f"this token lacks the scope {scope!r} ({SCOPES[scope]})",
                hint=f"create a token with --scope {scope} (the role {self.role.value} "
                f"{'may' if scope in ROLE_SCOPES[self.role] else 'may not'} hold it)",
            )

    def require_department(self, uscc: str, *, what: str) -> None:
        """Raise :class:`Forbidden` unless the caller is city-level or belongs to department ``uscc``."""
        if not self.city and self.department != uscc:
            raise Forbidden(f"{what} belongs to another department", hint="ask that department or the city admin")

    @classmethod
    def of_user(cls, user: User, scopes: Iterable[str] | None = None) -> Principal:
        """The principal of ``user`` acting locally (the CLI): every scope its role allows, or ``scopes``."""
        role = Role(user.role)
        allowed = ROLE_SCOPES[role]
        return cls(
            user=user.id,
            role=role,
            department=user.department_uscc,
            scopes=allowed if scopes is None else frozenset(scopes) & allowed,
        )


def hash_token(token: str) -> str:
    """The stored form of a token or key: sha256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_secret(prefix: str = TOKEN_PREFIX) -> tuple[str, str, str]:
    """A fresh ``(id, token, sha256)``: ``token`` is ``<prefix><id>_<secret>``, shown once."""
    ident = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()[:_ID_LEN]
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    token = f"{prefix}{ident}_{secret}"
    return ident, token, hash_token(token)


def split_token(token: str, prefix: str = TOKEN_PREFIX) -> str | None:
    """The id part of a well-formed token, else None."""
    if not token.startswith(prefix) or len(token) > 200:
        return None
    ident, sep, secret = token[len(prefix) :].partition("_")
    if not sep or len(ident) != _ID_LEN or not secret:
        return None
    return ident


def _check_scopes(role: Role, scopes: Sequence[str] | None) -> list[str]:
    allowed = ROLE_SCOPES[role]
    if scopes is None:
        return sorted(allowed)
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise TerminalError(
            f"unknown scope(s): {', '.join(map(repr, unknown))}", hint=f"use some of: {', '.join(SCOPES)}"
        )
    beyond = [s for s in scopes if s not in allowed]
    if beyond:
        raise Forbidden(
            f"the role {role.value} may not hold the scope(s) {', '.join(map(repr, beyond))}",
            hint=f"that role may hold: {', '.join(sorted(allowed))}",
        )
    if not scopes:
        raise TerminalError("a token needs at least one scope", hint="omit --scope for every scope the role allows")
    return sorted(set(scopes))


def create_token(
    session: Session,
    user_id: str,
    *,
    name: str,
    scopes: Sequence[str] | None = None,
    expires_at: dt.datetime | None = None,
    actor: str | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``user_id``; returns the row and the token itself (shown once, never stored).

    ``scopes`` None: every scope the user's role allows. ``actor`` (default: the user) is recorded
    in the audit log; a user may create its own tokens, the city admin anyone's.
    """
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise TerminalError(f"no active user {user_id!r}", hint="list users with `govdata catalog users`")
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise TerminalError("a token needs a name of 1 to 100 characters", hint="e.g. --name nightly-publish")
    if expires_at is not None and expires_at.tzinfo is None:
        raise TerminalError("the expiry must carry a time zone", hint="e.g. 2027-01-01T00:00:00+08:00")
    if expires_at is not None and expires_at <= utcnow():
        raise TerminalError(f"the expiry {expires_at.isoformat()} is in the past", hint="give a future time")
    chosen = _check_scopes(Role(user.role), scopes)
    ident, token, digest = new_secret()
    row = ApiToken(id=ident, user_id=user.id, name=name, token_sha256=digest, scopes=chosen, expires_at=expires_at)
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=actor or user.id,
        action="token.create",
        subject=f"token:{ident}",
        detail={"user": user.id, "name": name, "scopes": chosen, "expires_at": expires_at},
    )
    return row, token


def revoke_token(session: Session, token_id: str, *, actor: str) -> ApiToken:
    """Revoke token ``token_id`` (idempotent: revoking a revoked token changes nothing)."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise TerminalError(f"no token {token_id!r}", hint="list tokens with `govdata token list`")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        row.revoked_by = actor
        audit.append(
            session, actor=actor, action="token.revoke", subject=f"token:{token_id}", detail={"user": row.user_id}
        )
    return row


def list_tokens(session: Session, user_id: str | None = None) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(session.scalars(query))


def authenticate(session: Session, token: str, *, touch: bool = True) -> Principal:
    """The principal of ``token``; :class:`AuthError` for a malformed, unknown, revoked or expired one."""
    ident = split_token(token)
    row = session.get(ApiToken, ident) if ident else None
    if row is None or not hmac.compare_digest(row.token_sha256, hash_token(token)):
        raise AuthError("the API token is not valid", hint="create one with `govdata token create`")
    now = utcnow()
    if row.revoked_at is not None:
        raise AuthError(f"the API token {ident} was revoked", hint="create a new one with `govdata token create`")
    expires = row.expires_at
    if expires is not None and now >= (expires if expires.tzinfo else expires.replace(tzinfo=dt.UTC)):
        raise AuthError(f"the API token {ident} has expired", hint="create a new one with `govdata token create`")
    user = row.user
    if not user.active:
        raise AuthError(f"the user {user.id} of token {ident} is inactive", hint="ask the city admin")
    if touch and (row.last_used_at is None or (now - _aware(row.last_used_at)).total_seconds() > 60):
        row.last_used_at = now  # at most once a minute: a write per request would serialise SQLite
    role = Role(user.role)
    return Principal(
        user=user.id,
        role=role,
        department=user.department_uscc,
        scopes=frozenset(row.scopes) & ROLE_SCOPES[role],
        token=row.id,
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
