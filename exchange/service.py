"""The platform web service (FastAPI): the catalog's public read APIs and the service's health.

:func:`create_app` builds the app over one workspace; ``govdata serve`` runs it with uvicorn. The
exchange adds its own routes to the same app.

=====================================  ============================================================
``GET /``                              a JSON index of what is served
``GET /healthz``                       ``{"status": "ok"}`` when the catalog database answers, 503 if not
``GET|POST /api/3/action/{name}``      the CKAN-compatible action API (:mod:`catalog.ckan`), also at
``GET|POST /api/action/{name}``        ``/api/action/…``; anonymous callers see published entries only
``GET /catalog.ttl``                   the DCAT-AP 3 feed as Turtle (:mod:`catalog.dcat`)
``GET /catalog.jsonld``                the same feed as JSON-LD
``GET /openapi.json``                  the OpenAPI description of the service
``GET /dashboard``                     the platform admins' monitoring dashboard (:mod:`exchange.routes_monitor`)
=====================================  ============================================================

FastAPI's interactive ``/docs`` and ``/redoc`` pages are switched off: they load Swagger UI and
ReDoc from a CDN, which a government intranet cannot reach. ``/openapi.json`` is served; open it
in any OpenAPI viewer.

Links in the answers (CKAN's ``help``, resource URLs, the DCAT IRIs) start with the address the
request came to, or with ``base_url`` when the service sits behind a proxy.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from catalog import ckan
from catalog.store import CatalogStore
from exchange.store import open_store
from pipelines.errors import GovdataError
from pipelines.workspace import Workspace

__all__ = ["MAX_BODY_BYTES", "create_app"]

log = logging.getLogger(__name__)

#: Largest request body accepted by the action API.
MAX_BODY_BYTES = 1_000_000
SERVICE_TITLE = "govdata 城市共享交换平台"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("govdata")
    except PackageNotFoundError:
        return "0"


def create_app(home: Workspace | str | Path | None = None, *, base_url: str | None = None) -> FastAPI:
    """The platform service over workspace ``home`` (a :class:`Workspace`, a folder, or None: ``$GOVDATA_HOME``).

    Opens (and migrates) the catalog database at once, so a wrong ``GOVDATA_CATALOG_URL`` is an
    error here rather than at the first request. ``base_url`` fixes the address used in links.
    """
    workspace = home if isinstance(home, Workspace) else Workspace.from_env(home)
    # With GOVDATA_STORE_URL, versions' s3:// locations resolve through this workspace's cache.
    open_store(workspace)
    store = CatalogStore(workspace.catalog_url)
    app = FastAPI(
        title=SERVICE_TITLE,
        version=_version(),
        description="政务数据资源目录的 CKAN 兼容只读接口、DCAT-AP 3 数据目录，以及平台健康状态。",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: unusable offline
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.workspace = workspace
    app.state.store = store
    fixed_base = base_url.rstrip("/") if base_url else None

    def base_of(request: Request) -> str:
        return fixed_base or str(request.base_url).rstrip("/")

    @app.get("/", summary="What this service serves", tags=["service"])
    def index(request: Request) -> dict[str, Any]:
        base = base_of(request)
        return {
            "name": "govdata",
            "title": SERVICE_TITLE,
            "version": app.version,
            "links": {
                "ckan_api": f"{base}/api/3/action/package_search",
                "dcat_turtle": f"{base}/catalog.ttl",
                "dcat_jsonld": f"{base}/catalog.jsonld",
                "openapi": f"{base}/openapi.json",
                "health": f"{base}/healthz",
                "dashboard": f"{base}/dashboard",
            },
        }

    @app.get("/healthz", summary="Whether the service and its catalog database answer", tags=["service"])
    def healthz() -> JSONResponse:
        try:
            with store.session() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy; say which
            log.warning("health check failed: %s", exc)
            return JSONResponse({"status": "unavailable", "catalog": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "catalog": "ok"})

    async def action(
        name: Annotated[
            str,
            PathParam(
                description="the action; any other name answers CKAN's 400",
                json_schema_extra={"enum": sorted(ckan.ACTIONS)},
            ),
        ],
        request: Request,
    ) -> Response:
        params = await _params(request)
        if isinstance(params, Response):
            return params
        base = base_of(request)
        try:
            status, body = await run_in_threadpool(ckan.call, store, name, params, base_url=base)
        except Exception:
            log.exception("CKAN action %s failed", name[:100])
            status = 500
            body = {
                "help": f"{base}/api/3/action/help_show?name={name[:100]}",
                "success": False,
                "error": {"__type": "Internal Server Error", "message": "Internal Server Error"},
            }
        return JSONResponse(body, status_code=status)

    from exchange import api

    api.install(app)
    _allow_every_method(app)
    from exchange.routes_monitor import mount_dashboard

    mount_dashboard(app)  # /dashboard: the platform admins' monitoring page

    for prefix, key in (("/api/3/action", "ckan_action_v3"), ("/api/action", "ckan_action")):
        for method in ("GET", "POST"):
            app.add_api_route(
                prefix + "/{name}",
                action,
                methods=[method],
                operation_id=f"{key}_{method.lower()}",
                summary="CKAN action API (read-only)",
                description=(
                    "CKAN's action API v3: package_list, package_show, package_search, organization_list, "
                    "organization_show, resource_show, status_show, help_show. Parameters as query parameters "
                    "(GET) or a JSON object (POST). Answers use CKAN's envelope "
                    '`{"help", "success", "result"}` or `{"help", "success": false, "error": {"__type", "message"}}`.'
                ),
                tags=["CKAN"],
                response_class=JSONResponse,
                responses={
                    400: {"description": "CKAN's bad request: a JSON string naming the problem"},
                    403: {"description": "CKAN's authorisation error (envelope with success false)"},
                    404: {"description": "CKAN's not found: unknown action or record (envelope with success false)"},
                    409: {"description": "CKAN's validation error (envelope with success false)"},
                },
            )

    def feed(fmt: str, media_type: str) -> Any:
        async def render(request: Request) -> Response:
            from catalog import dcat

            try:
                body = await run_in_threadpool(dcat.render, store, fmt, base_of(request))
            except GovdataError as exc:
                log.error("DCAT feed (%s) failed: %s", fmt, exc)
                return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=500)
            return Response(body, media_type=media_type)

        return render

    app.add_api_route(
        "/catalog.ttl",
        feed("turtle", "text/turtle; charset=utf-8"),
        methods=["GET"],
        summary="The catalog as a DCAT-AP 3 feed (Turtle); published entries only",
        tags=["DCAT-AP"],
        response_class=Response,
    )
    app.add_api_route(
        "/catalog.jsonld",
        feed("json-ld", "application/ld+json"),
        methods=["GET"],
        summary="The catalog as a DCAT-AP 3 feed (JSON-LD); published entries only",
        tags=["DCAT-AP"],
        response_class=Response,
    )
    return app


def _allow_every_method(app: FastAPI) -> None:
    """Answer 405 with every method the path supports in ``Allow`` (Starlette names only one route's)."""
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.routing import Match

    from exchange import api

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 400 and request.url.path.startswith(api.PREFIX):
            # FastAPI's "error parsing the body": the exchange answers every bad request as 422.
            return JSONResponse(
                {"error": f"the request body is not valid JSON ({exc.detail})", "hint": "send a JSON object"},
                status_code=422,
            )
        if exc.status_code == 405:
            methods: set[str] = set()
            for route in app.router.routes:
                match, _ = route.matches({**request.scope, "method": "GET"})
                if match is not Match.NONE and getattr(route, "methods", None):
                    methods |= set(route.methods)  # type: ignore[attr-defined]
            if methods:
                headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers or None)

    app.add_exception_handler(StarletteHTTPException, on_http_error)


def _bad_request(message: str) -> Response:
    """CKAN's 400: a bare JSON string."""
    return JSONResponse(f"Bad request - {message}", status_code=400)


async def _params(request: Request) -> dict[str, Any] | Response:
    """The action's parameters: the JSON object (or form) of a POST, else the query parameters.

    A parameter given more than once becomes a list, as in CKAN.
    """
    if request.method == "POST":
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return _bad_request(f"the request body is larger than {MAX_BODY_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _bad_request(f"the request body is larger than {MAX_BODY_BYTES} bytes")
        if body.strip():
            try:
                decoded = body.decode("utf-8")
            except UnicodeDecodeError:
                return _bad_request("JSON Error: the request body is not UTF-8")
            try:
                data = json.loads(decoded)
            except ValueError as exc:
                # A form (CKAN accepts one), unless it was meant as JSON: `curl -d '{…}'` sends JSON as a form.
                is_form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
                if is_form and not decoded.lstrip().startswith(("{", "[")):
                    return _mixed((k, v) for k, vs in parse_qs(decoded, keep_blank_values=True).items() for v in vs)
                return _bad_request(f"JSON Error: {exc}")
            if not isinstance(data, dict):
                return _bad_request(
                    f"JSON Error: Request data JSON decoded to {type(data).__name__} but it needs to be a dictionary."
                )
            return data
    return _mixed(request.query_params.multi_items())


def _mixed(pairs: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            found[key] = [*found[key], value] if isinstance(found[key], list) else [found[key], value]
        else:
            found[key] = value
    return found
