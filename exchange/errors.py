"""The exchange's errors, each with the HTTP status the service answers it with."""

from __future__ import annotations

from pipelines.errors import GovdataError, TerminalError, TransientError

__all__ = ["AuthError", "Conflict", "Forbidden", "NotFound", "http_status"]


class AuthError(TerminalError):
    """No valid credentials (HTTP 401)."""


class Forbidden(TerminalError):
    """Valid credentials, but not for this (HTTP 403)."""


class NotFound(TerminalError):
    """No such thing, or none the caller may see (HTTP 404): a department never learns what it may not read."""


class Conflict(TerminalError):
    """The thing is not in a state that allows this (HTTP 409): decided already, revoked, expired."""


def http_status(exc: GovdataError) -> int:
    """The HTTP status for ``exc``: 401, 403, 404, 409, 503 for a transient problem, else 422."""
    for kind, status in ((AuthError, 401), (Forbidden, 403), (NotFound, 404), (Conflict, 409), (TransientError, 503)):
        if isinstance(exc, kind):
            return status
    return 422
