"""What every exchange endpoint shares: the caller (bearer token), the database session, errors.

Each part of the exchange keeps its routes in its own module (``exchange/routes_*.py``) with a
module-level ``router`` (a :class:`fastapi.APIRouter`); :func:`install` mounts them all under
``/exchange/v1`` on the platform app (:func:`exchange.service.create_app`).

* ``Caller`` — the authenticated :class:`~exchange.identity.Principal`; a missing, malformed,
  unknown, revoked or expired token answers 401 before the endpoint runs.
* ``DB`` — a session whose transaction commits when the endpoint returns and rolls back when it
  raises. It commits *before* the answer is sent (FastAPI's dependency scope ``function``): with
  the default scope the commit ran after the client already had its 2xx, so a client's next
  request could miss what the previous one wrote (a grant just made by an approval), and a
  commit that failed was answered as a success.
* Errors: a :class:`~pipelines.errors.GovdataError` raised anywhere answers
  ``{"error": message, "hint": hint}`` with the status of :func:`exchange.errors.http_status`
  (401, 403, 404, 409, 422, 503); :data:`ERRORS` documents them in the OpenAPI description.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.orm import Session

from catalog.store import CatalogStore
from exchange.errors import AuthError, http_status
from exchange.identity import Principal, authenticate
from pipelines.errors import GovdataError

__all__ = ["DB", "ERRORS", "PREFIX", "ROUTE_MODULES", "Caller", "ErrorBody", "install", "store_of"]

log = logging.getLogger(__name__)

PREFIX = "/exchange/v1"

#: The modules whose ``router`` is mounted under :data:`PREFIX`, in this order.
ROUTE_MODULES = (
    "exchange.routes_tokens",
    "exchange.routes_applications",
    "exchange.routes_grants",
    "exchange.routes_delivery",
    "exchange.routes_uploads",
    "exchange.routes_webhooks",
    "exchange.routes_objections",
    "exchange.routes_monitor",
)


class ErrorBody(BaseModel):
    """An error answer: what went wrong and what to do."""

    error: str
    hint: str | None = None


#: The error answers every authenticated endpoint may give, for the OpenAPI description.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid token (missing, malformed, unknown, revoked, expired)"},
    403: {"model": ErrorBody, "description": "the token's role or scopes do not allow this"},
    404: {"model": ErrorBody, "description": "no such record, or none the caller may see"},
    409: {"model": ErrorBody, "description": "the record's state does not allow this"},
    422: {"model": ErrorBody, "description": "the request is not valid; the error names the field"},
    503: {"model": ErrorBody, "description": "a transient problem (database busy); try again"},
}

_bearer = HTTPBearer(auto_error=False, description="an API token `gdt_…` from `govdata token create`")


def store_of(request: Request) -> CatalogStore:
    store: CatalogStore = request.app.state.store
    return store


def _principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthError("this endpoint needs an API token", hint="send the header `Authorization: Bearer gdt_…`")
    with store_of(request).session() as session:
        return authenticate(session, credentials.credentials)


def _session(request: Request) -> Iterator[Session]:
    with store_of(request).session() as session:
        yield session


Caller = Annotated[Principal, Depends(_principal)]
DB = Annotated[Session, Depends(_session, scope="function")]


def error_response(exc: GovdataError) -> JSONResponse:
    status = http_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Mount every exchange router on ``app`` and answer govdata errors as JSON."""

    async def on_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GovdataError)
        if http_status(exc) >= 500:
            log.warning("exchange: %s", exc)
        return error_response(exc)

    async def on_invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(validation_error(exc.errors()), status_code=422)

    app.add_exception_handler(GovdataError, on_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
    for name in ROUTE_MODULES:
        module = importlib.import_module(name)
        app.include_router(module.router, prefix=PREFIX)


def validation_error(errors: Any) -> dict[str, Any]:
    """FastAPI's validation errors as an :class:`ErrorBody`: every field named, with what is wrong."""
    problems = []
    for problem in list(errors)[:20]:
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body") or "body"
        problems.append(f"{where}: {problem.get('msg', 'invalid')}")
    return {
        "error": "the request is not valid: " + "; ".join(problems),
        "hint": "correct the named fields (see /openapi.json for what each endpoint takes)",
    }
