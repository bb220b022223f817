"""The authorisation matrix of the exchange: every role × every endpoint × whose record it is.

Issue 5's acceptance test: no department reads or writes another department's records beyond
what the rules allow. The matrix is built from the app itself: every operation under
``/exchange/v1`` in ``create_app(home).openapi()`` must have an entry in :data:`RULES` (a new
endpoint cannot be added without its authorisation rule), and every entry must still name an
operation.

**The world** (one platform, built once for the module through the API): 人社 (hrss) provides,
市场监管 (market) subscribes, 交通 (transport) is the third department. So in every row of
:data:`RULES` the record the path names belongs to hrss (its upload, webhook, notification, its
entry), or is a provider/subscriber relation between hrss (provider) and market (subscriber):
market's application for hrss data, the grant it holds, its receipts, its objection. The one
exception says so: ``city_application`` is market's application for transport's 无条件共享 data,
which the city's conformity check decides. Tokens are personal: ``own_token`` is the caller's own,
``clerk_token`` one of ``hrss_clerk``, a user who makes no calls here.

**The columns** (:data:`CALLERS`): anonymous, each department's staff and reviewer (dept_admin),
the city admin and the auditor; each token holds every scope its role allows.

**A cell** is ``ok`` (any 2xx) or the exact status of the refusal. Exact codes pin the
"consistent per endpoint" rule: a record of another department answers the same (404: it is not
shown to exist) to everyone who may not see it, and a caller whose role lacks the endpoint's
scope gets 403 before anything is looked up. Each cell is a real request on a real record;
a cell that changes the record (decide, withdraw, revoke, answer, close, remove, abort, revoke a
token) uses a record made for it alone when it is allowed, and the shared record when it is
refused, which must then be unchanged. Reads run before writes.

The lists are checked separately: every list endpoint answers each caller exactly the records
of its department (both sides of a relation), all of them for city-level users, computed from
the database; a department's monitoring holds nothing that concerns only other departments.
The data API (``/data/{id}``) takes the grant's key, not a token: its cells are in
:func:`test_the_data_api_answers_the_grants_own_key_only`. Rights are the role *and* the token's
scopes: a reviewer's token narrowed to ``catalog:read`` is refused everything else, and cannot
make itself a wider token.

Two rules here were wrong in the code and were fixed with this test: the providing department
could see its grant but not the grant's versions (``/grants/{id}/versions`` answered it 404), and
a narrowed token could create a token with every scope of its role.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog import lifecycle
from catalog.models import Entry
from exchange import publishing
from exchange.api import PREFIX
from exchange.calendar import FALLBACK_ENV, SHANGHAI
from exchange.identity import create_token
from exchange.models import ApiToken, Application, Delivery, Grant, Notification, Objection, Upload, Webhook
from exchange.service import create_app
from pipelines.masking import MASKING_KEY_ENV
from tests.exchange.conftest_exchange import HRSS, MARKET, TRANSPORT, Platform, build_platform, manifest_for

CALLERS = (
    "anonymous",
    "hrss_staff",
    "hrss_reviewer",
    "market_staff",
    "market_reviewer",
    "transport_staff",
    "transport_reviewer",
    "city_admin",
    "auditor",
)
TARGET_ENV = "MARKET_MATRIX_DB_URL"
CLERK = "hrss_clerk"


@dataclass(frozen=True)
class Rule:
    """Who may call one operation on one record (see the module doc)."""

    #: One outcome per caller, in :data:`CALLERS` order: ``ok`` (2xx), or 401, 403, 404.
    expect: str
    #: The record the path (or body) names: a key of :meth:`World.subject`.
    subject: str = "none"
    #: The call uses the record up: each allowed caller gets one of its own.
    fresh: bool = False
    #: Which request to send, when an operation has more than one rule.
    variant: str = ""
    why: str = ""

    def outcomes(self) -> dict[str, str]:
        cells = self.expect.split()
        assert len(cells) == len(CALLERS), f"{self.expect!r}: one outcome per caller in CALLERS"
        assert set(cells) <= {"ok", "401", "403", "404"}, self.expect
        return dict(zip(CALLERS, cells, strict=True))


EVERYONE = "401 ok ok ok ok ok ok ok ok"
#             anon hS  hR  mS  mR  tS  tR  city aud
MONITOR = "401 403 ok 403 403 403 403 ok ok"
HRSS_ONLY = "401 ok ok 403 403 403 403 ok 403"  # the department's own entry: it and the city admin
HRSS_UPLOAD = "401 ok ok 404 404 404 404 ok 403"
HRSS_HOOK = "401 ok ok 404 404 404 404 ok 404"

#: (method, path) → the rules of that operation. The columns are CALLERS:
#:  anonymous, hrss_staff, hrss_reviewer, market_staff, market_reviewer, transport_staff,
#:  transport_reviewer, city_admin, auditor.
RULES: dict[tuple[str, str], tuple[Rule, ...]] = {
    # --- identity ------------------------------------------------------------------------------
    ("GET", "/me"): (Rule(EVERYONE),),
    ("GET", "/tokens"): (Rule(EVERYONE, why="the caller's own tokens; the city admin's: all"),),
    ("POST", "/tokens"): (
        Rule(EVERYONE, variant="self", why="anyone makes tokens for itself"),
        Rule("401 403 403 403 403 403 403 ok 403", variant="clerk", why="for another user: the city admin only"),
    ),
    ("DELETE", "/tokens/{token_id}"): (
        Rule(EVERYONE, subject="own_token", fresh=True),
        Rule("401 404 404 404 404 404 404 ok 404", subject="clerk_token", fresh=True, why="not even its reviewer"),
    ),
    # --- applications: market applied for hrss data ----------------------------------------------
    ("POST", "/applications"): (
        Rule("401 403 403 ok ok ok ok 403 403", why="for hrss's entry: not hrss itself, not the city-level users"),
    ),
    ("GET", "/applications"): (Rule(EVERYONE),),
    ("GET", "/applications/{application_id}"): (
        Rule("401 ok ok ok ok 404 404 ok ok", subject="application", why="both sides and the city"),
    ),
    ("POST", "/applications/{application_id}/decision"): (
        Rule(
            "401 403 ok 403 403 403 404 ok 403",
            subject="application",
            fresh=True,
            why="有条件共享: the provider's reviewer or the city admin; the applicant's reviewer may not",
        ),
        Rule(
            "401 403 404 403 403 403 403 ok 403",
            subject="city_application",
            fresh=True,
            why="无条件共享 (transport's data): the city's conformity check only, not transport's reviewer",
        ),
    ),
    ("POST", "/applications/{application_id}/withdraw"): (
        Rule("401 403 403 ok ok 404 404 403 403", subject="application", fresh=True, why="the applicant only"),
    ),
    ("GET", "/reviews/pending"): (Rule("401 403 ok 403 ok 403 ok ok 403", why="reviewers and the city admin"),),
    # --- grants: market holds a grant on hrss data ----------------------------------------------------
    ("GET", "/grants"): (Rule(EVERYONE),),
    ("GET", "/grants/{grant_id}"): (Rule("401 ok ok ok ok 404 404 ok ok", subject="grant"),),
    ("POST", "/grants/{grant_id}/revoke"): (
        Rule("401 403 ok 403 403 403 404 ok 403", subject="grant", fresh=True, why="the provider's reviewer, city"),
    ),
    ("POST", "/grants/{grant_id}/key"): (
        Rule("401 403 403 ok ok 404 404 403 403", subject="api_grant", why="the subscriber only"),
    ),
    # --- delivery --------------------------------------------------------------------------------------
    ("GET", "/grants/{grant_id}/download"): (
        Rule("401 404 404 ok ok 404 404 404 404", subject="grant", why="the subscriber only"),
    ),
    ("GET", "/grants/{grant_id}/versions"): (
        Rule("401 ok ok ok ok 404 404 ok ok", subject="grant", why="like the grant itself"),
    ),
    ("POST", "/grants/{grant_id}/deliver"): (
        Rule("401 404 404 ok ok 404 404 ok 404", subject="db_grant", why="the subscriber, or the city admin (ops)"),
    ),
    ("GET", "/deliveries"): (Rule(EVERYONE),),
    ("GET", "/data/{grant_id}"): (
        Rule("401 401 401 401 401 401 401 401 401", subject="api_grant", why="a bearer token is not a data key"),
    ),
    # --- uploads: hrss publishes -------------------------------------------------------------------------
    ("GET", "/uploads"): (Rule("401 ok ok ok ok ok ok ok 403"),),
    ("POST", "/uploads"): (Rule(HRSS_ONLY, why="hrss's spec: hrss, or the city admin for it"),),
    ("GET", "/uploads/{upload_id}"): (Rule(HRSS_UPLOAD, subject="upload"),),
    ("DELETE", "/uploads/{upload_id}"): (Rule(HRSS_UPLOAD, subject="upload", fresh=True),),
    ("PUT", "/uploads/{upload_id}/chunks/{offset}"): (Rule(HRSS_UPLOAD, subject="upload"),),
    ("POST", "/uploads/{upload_id}/commit"): (Rule(HRSS_UPLOAD, subject="commit_upload"),),
    ("GET", "/publishing/{entry}/latest"): (Rule(HRSS_ONLY, subject="hrss_entry"),),
    ("GET", "/publishing/{entry}/versions/{number}/data"): (Rule(HRSS_ONLY, subject="hrss_entry"),),
    # --- webhooks: hrss's -----------------------------------------------------------------------------------
    ("GET", "/webhooks"): (Rule("401 ok ok ok ok ok ok ok 403", why="a department's own; the city admin: all"),),
    ("POST", "/webhooks"): (Rule("401 ok ok ok ok ok ok 403 403", why="for the caller's own department"),),
    ("DELETE", "/webhooks/{webhook_id}"): (Rule(HRSS_HOOK, subject="webhook", fresh=True),),
    ("POST", "/webhooks/{webhook_id}/rotate"): (
        Rule("401 ok ok 404 404 404 404 404 404", subject="webhook", why="the secret is the department's alone"),
    ),
    ("GET", "/notifications"): (Rule(EVERYONE),),
    ("POST", "/notifications/{notification_id}/retry"): (Rule(HRSS_HOOK, subject="notification"),),
    # --- objections: market's, to hrss data --------------------------------------------------------------
    ("POST", "/objections"): (
        Rule("401 403 403 ok ok 404 404 403 403", why="to hrss data: the department holding a grant on it"),
    ),
    ("GET", "/objections"): (Rule(EVERYONE),),
    ("GET", "/objections/{objection_id}"): (Rule("401 ok ok ok ok 404 404 ok ok", subject="objection"),),
    ("POST", "/objections/{objection_id}/answer"): (
        Rule("401 403 ok 403 403 404 404 403 403", subject="objection", fresh=True, why="the provider's reviewer"),
    ),
    ("POST", "/objections/{objection_id}/messages"): (
        Rule("401 403 ok ok ok 404 404 ok 403", subject="objection", why="raiser, provider's reviewer, city admin"),
    ),
    ("POST", "/objections/{objection_id}/close"): (
        Rule("401 403 403 ok ok 404 404 ok 403", subject="objection", fresh=True, why="the raiser, or the city"),
    ),
    # --- monitoring and assessment, asked for hrss (department=<hrss>) ----------------------------------------
    **{
        ("GET", path): (Rule(MONITOR, subject="hrss_department", why="monitor:read; a department its own only"),)
        for path in (
            "/monitor/summary",
            "/monitor/deliveries",
            "/monitor/latency",
            "/monitor/api-calls",
            "/monitor/applications",
            "/monitor/freshness",
            "/monitor/consumers",
            "/monitor/audit",
            "/monitor/notifications",
            "/monitor/alerts",
            "/assessment",
            "/assessment.xlsx",
        )
    },
}


# --- the world ---------------------------------------------------------------------------------------


def until(days: int = 120) -> str:
    return (dt.datetime.now(SHANGHAI).date() + dt.timedelta(days=days)).isoformat()


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, f"{answer.request.method} {answer.request.url}: {answer.text}"
    return answer.json() if "json" in answer.headers.get("content-type", "") else answer.content


@dataclass
class World:
    """One platform and the records of the matrix, made through the API (see the module doc)."""

    platform: Platform
    client: TestClient
    ids: dict[str, int | str] = field(default_factory=dict)
    upload_bodies: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def uscc(self) -> dict[str, str]:
        return self.platform.departments

    def call(self, user: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **(self.platform.auth(user) if user else {})}
        return self.client.request(method, PREFIX + path, headers=headers, **kwargs)

    # records, made as their owners would

    def apply(self, user: str, entry: str, method: str = "file", items: tuple[str, ...] = ()) -> int:
        spec = self.platform.specs[entry]
        body: dict[str, Any] = {
            "entry": entry,
            "items": list(items) or [c.name for c in spec.columns][:4],
            "purpose": "授权矩阵测试",
            "scenario": "验证跨部门访问控制",
            "delivery_method": method,
            "end_date": until(),
        }
        if method == "database":
            body["target"] = {"url_env": TARGET_ENV, "table": f"t_{next(self.counter)}"}
        return int(ok(self.call(user, "POST", "/applications", json=body), 201)["id"])

    def grant(self, user: str, entry: str, reviewer: str, method: str = "file") -> int:
        app = self.apply(user, entry, method)
        decided = ok(self.call(reviewer, "POST", f"/applications/{app}/decision", json={"decision": "approve"}))
        return int(decided["grant"]["id"])

    def objection(self, user: str, entry: str) -> int:
        body = {"entry": entry, "subject": "数据有误", "detail": f"第 {next(self.counter)} 条记录有误"}
        return int(ok(self.call(user, "POST", "/objections", json=body), 201)["id"])

    def webhook(self, user: str) -> int:
        body = {"url": f"https://receiver-{next(self.counter)}.example.gov.cn/hook", "events": ["grant.revoked"]}
        return int(ok(self.call(user, "POST", "/webhooks", json=body), 201)["id"])

    def token(self, user: str) -> str:
        with self.platform.store.session() as s:
            row, _ = create_token(s, user, name=f"matrix-{next(self.counter)}", actor=user)
            return row.id

    def upload_body(self, entry: str, salt: int) -> tuple[dict[str, Any], bytes]:
        """The declaration and the bytes of an upload of ``entry``: its rows, one value changed by ``salt``."""
        spec = self.platform.specs[entry]
        rows = self.platform.tables[entry].to_pylist()
        text = next(c.name for c in spec.columns if c.type == "string" and not c.primary_key)
        rows[0] = {**rows[0], text: f"{rows[0][text]}-{salt}"}
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=self.platform.tables[entry].schema), sink)
        data = sink.getvalue()
        run = f"matrix-{salt}"
        manifest = manifest_for(spec, data, rows=len(rows), run_id=run, source="authorisation matrix")
        digest = manifest["content_sha256"]
        declaration = {
            "entry": entry,
            "size": len(data),
            "sha256": digest,
            "manifest": manifest,
            "spec": publishing.spec_document(spec),
        }
        return declaration, data

    def upload(self, user: str, entry: str, *, send: bool) -> str:
        declaration, data = self.upload_body(entry, next(self.counter))
        started = ok(self.call(user, "POST", "/uploads", json=declaration), 201)
        if send:
            ok(self.call(user, "PUT", f"/uploads/{started['id']}/chunks/0", content=data))
        self.upload_bodies[started["id"]] = (declaration, data)
        return str(started["id"])

    @classmethod
    def build(cls, platform: Platform, client: TestClient) -> World:
        w = cls(platform, client)
        for short in ("hrss", "market", "transport"):  # every department hears of everything
            body = {"url": f"https://{short}.example.gov.cn/govdata", "events": ["application.submitted"]}
            w.ids[f"{short}_webhook"] = ok(w.call(f"{short}_staff", "POST", "/webhooks", json=body), 201)["id"]
        w.ids["webhook"] = w.ids["hrss_webhook"]
        # market ← hrss (the subject of most rows)
        w.ids["grant"] = w.grant("market_staff", HRSS, "hrss_reviewer")
        w.ids["api_grant"] = w.grant("market_staff", HRSS, "hrss_reviewer", "api")
        w.ids["db_grant"] = w.grant("market_staff", HRSS, "hrss_reviewer", "database")
        w.ids["application"] = w.apply("market_staff", HRSS)
        w.ids["city_application"] = w.apply("market_staff", TRANSPORT)
        # the others' relations, which the lists must keep apart
        w.ids["transport_holds_market"] = w.grant("transport_staff", MARKET, "market_reviewer")
        w.ids["hrss_holds_transport"] = w.grant("hrss_staff", TRANSPORT, "city_admin")
        w.ids["hrss_pending_transport"] = w.apply("hrss_reviewer", TRANSPORT)
        w.ids["transport_pending_market"] = w.apply("transport_staff", MARKET)
        # receipts of every mode and every pair
        for user, grant in (
            ("market_staff", "grant"),
            ("transport_staff", "transport_holds_market"),
            ("hrss_staff", "hrss_holds_transport"),
        ):
            ok(w.call(user, "GET", f"/grants/{w.ids[grant]}/download", params={"full": "true"}))
        ok(w.call("market_staff", "POST", f"/grants/{w.ids['db_grant']}/deliver"))
        key = ok(w.call("market_staff", "POST", f"/grants/{w.ids['api_grant']}/key"), 201)["key"]
        ok(w.client.get(f"{PREFIX}/data/{w.ids['api_grant']}", headers={"X-Grant-Key": key}))
        # objections: market's to hrss data, and the others'
        w.ids["objection"] = w.objection("market_staff", HRSS)
        w.objection("transport_staff", MARKET)
        w.objection("hrss_staff", TRANSPORT)
        # uploads: hrss's (complete, never committed), one to commit, and transport's
        w.ids["upload"] = w.upload("hrss_staff", HRSS, send=True)
        w.ids["commit_upload"] = w.upload("hrss_reviewer", HRSS, send=True)
        w.upload("transport_staff", TRANSPORT, send=False)
        with platform.store.session() as s:
            w.ids["notification"] = (
                s.scalars(select(Notification.id).where(Notification.webhook_id == w.ids["hrss_webhook"])).first() or 0
            )
            lifecycle.add_user(s, CLERK, name="人社 经办人", role="staff", department=w.uscc["hrss"])
        assert w.ids["notification"], "hrss's webhook heard of market's applications"
        w.ids["clerk_token"] = w.token(CLERK)
        return w

    # what a rule's subject names

    def subject(self, name: str, caller: str, *, fresh: bool) -> dict[str, Any]:
        """The path parameters naming record ``name`` for ``caller``; a new record when ``fresh``."""
        if name == "none":
            return {}
        if name in ("hrss_entry", "hrss_department"):
            return {"entry": HRSS, "number": 1, "department": self.uscc["hrss"]}
        if name == "own_token":
            return {"token_id": self.token(caller) if caller != "anonymous" else self.ids["clerk_token"]}
        makers: dict[str, tuple[str, Callable[[], int | str]]] = {
            "application": ("application_id", lambda: self.apply("market_staff", HRSS)),
            "city_application": ("application_id", lambda: self.apply("market_staff", TRANSPORT)),
            "grant": ("grant_id", lambda: self.grant("market_staff", HRSS, "hrss_reviewer")),
            "api_grant": ("grant_id", lambda: self.ids["api_grant"]),
            "db_grant": ("grant_id", lambda: self.ids["db_grant"]),
            "objection": ("objection_id", lambda: self.objection("market_staff", HRSS)),
            "upload": ("upload_id", lambda: self.upload("hrss_staff", HRSS, send=False)),
            "commit_upload": ("upload_id", lambda: self.ids["commit_upload"]),
            "webhook": ("webhook_id", lambda: self.webhook("hrss_staff")),
            "notification": ("notification_id", lambda: self.ids["notification"]),
            "clerk_token": ("token_id", lambda: self.token(CLERK)),
        }
        param, make = makers[name]
        return {param: make() if fresh else self.ids[name], "offset": 0}

    def request(self, method: str, path: str, rule: Rule, params: dict[str, Any]) -> dict[str, Any]:
        """The body and query of the request a cell sends (valid: only the caller decides the answer)."""
        upload = params.get("upload_id")
        bodies: dict[tuple[str, str], Any] = {
            ("POST", "/tokens"): {"name": "matrix", **({"user": CLERK} if rule.variant == "clerk" else {})},
            ("POST", "/applications"): {
                "entry": HRSS,
                "items": ["resident_id", "name"],
                "purpose": "授权矩阵测试",
                "scenario": "验证跨部门访问控制",
                "delivery_method": "file",
                "end_date": until(),
            },
            ("POST", "/applications/{application_id}/decision"): {"decision": "approve"},
            ("POST", "/applications/{application_id}/withdraw"): {"reason": "矩阵测试撤回"},
            ("POST", "/grants/{grant_id}/revoke"): {"reason": "矩阵测试撤销"},
            ("POST", "/uploads"): self.upload_bodies[str(self.ids["upload"])][0],
            ("POST", "/webhooks"): {
                "url": f"https://receiver-{next(self.counter)}.example.gov.cn/hook",
                "events": ["grant.revoked"],
            },
            ("POST", "/objections"): {"entry": HRSS, "subject": "数据有误", "detail": "矩阵测试"},
            ("POST", "/objections/{objection_id}/answer"): {"message": "已核实并更正"},
            ("POST", "/objections/{objection_id}/messages"): {"message": "补充说明"},
            ("POST", "/objections/{objection_id}/close"): {"message": "已解决"},
        }
        if (method, path) == ("PUT", "/uploads/{upload_id}/chunks/{offset}"):
            return {
                "content": self.upload_bodies[str(upload)][1],
                "headers": {"Content-Type": "application/octet-stream"},
            }
        if rule.subject == "hrss_department":
            return {"params": {"department": params["department"]}}
        if path.endswith("/download"):
            return {"params": {"full": "true"}}
        body = bodies.get((method, path))
        return {} if body is None else {"json": body}

    def state(self, name: str, params: dict[str, Any]) -> Any:
        """What a refused call must leave unchanged of record ``name`` (seen by the city admin), or None."""
        paths = {
            "application": "/applications/{application_id}",
            "city_application": "/applications/{application_id}",
            "grant": "/grants/{grant_id}",
            "objection": "/objections/{objection_id}",
            "upload": "/uploads/{upload_id}",
        }
        if name in paths:
            answer = ok(self.call("city_admin", "GET", paths[name].format(**params)))
            return {k: answer.get(k) for k in ("status", "state", "revoked_at", "decided_by", "received")}
        if name == "webhook":
            return params["webhook_id"] in {h["id"] for h in ok(self.call("city_admin", "GET", "/webhooks"))}
        if name == "clerk_token":
            tokens = ok(self.call("city_admin", "GET", "/tokens"))
            return [t["revoked_at"] for t in tokens if t["id"] == params["token_id"]]
        return None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("authorization-matrix")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("GOVDATA_USER", "GOVDATA_CATALOG_URL", "GOVDATA_HOME", "GOVDATA_DELIVERY_RETRIES"):
            mp.delenv(name, raising=False)
        mp.setenv(FALLBACK_ENV, "weekends")  # deadlines near a year's end: see test_applications
        mp.setenv(MASKING_KEY_ENV, "authorisation-matrix-masking-key")
        mp.setenv("GOVDATA_DELIVERY_BACKOFF", "0")
        mp.setenv(TARGET_ENV, f"sqlite:///{root / 'market-target.db'}")
        platform = build_platform(root / "home", rows=12)
        with TestClient(create_app(platform.home)) as client:
            yield World.build(platform, client)


# --- the matrix -----------------------------------------------------------------------------------------


def operations(world: World) -> list[tuple[str, str]]:
    """Every operation under /exchange/v1 in the app's OpenAPI description: (METHOD, path after the prefix)."""
    found = []
    for path, item in world.client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        if path.startswith(PREFIX + "/"):
            found += [(method.upper(), path[len(PREFIX) :]) for method in item if method != "parameters"]
    return found


def test_every_operation_has_a_rule_and_every_rule_an_operation(world: World) -> None:
    found = set(operations(world))
    missing = sorted(found - set(RULES))
    stale = sorted(set(RULES) - found)
    assert not missing, f"operations without an authorisation rule in RULES: {missing}"
    assert not stale, f"rules of operations the app no longer has: {stale}"
    assert len(found) >= 50
    for rules in RULES.values():
        for rule in rules:
            rule.outcomes()  # well-formed
            assert rule.outcomes()["anonymous"] == "401", rule


def status_class(status: int) -> str:
    return "ok" if 200 <= status < 300 else str(status)


def run_cells(world: World, *, writes: bool) -> list[str]:
    """Call every cell of the reading (or the writing) operations; the cells that differ from RULES."""
    wrong: list[str] = []
    for method, path in operations(world):
        if (method != "GET") != writes:
            continue
        for rule in RULES[(method, path)]:
            shared = world.subject(rule.subject, "anonymous", fresh=False)
            before = world.state(rule.subject, shared) if rule.fresh else None
            for caller, expected in rule.outcomes().items():
                params = world.subject(rule.subject, caller, fresh=rule.fresh and expected == "ok")
                user = None if caller == "anonymous" else caller
                answer = world.call(user, method, path.format(**params), **world.request(method, path, rule, params))
                got = status_class(answer.status_code)
                if got != expected:
                    wrong.append(
                        f"{method} {path} [{rule.subject}{'/' + rule.variant if rule.variant else ''}] "
                        f"{caller}: expected {expected}, got {answer.status_code} {answer.text[:160]}"
                    )
                elif expected != "ok":
                    assert answer.json().get("error"), (method, path, caller, answer.text)
            if rule.fresh:
                after = world.state(rule.subject, shared)
                if before != after:
                    wrong.append(
                        f"{method} {path}: a refused call changed the shared {rule.subject}: {before} → {after}"
                    )
    return wrong


def test_reads_follow_the_rules(world: World) -> None:
    wrong = run_cells(world, writes=False)
    assert not wrong, "cells that differ from RULES:\n" + "\n".join(wrong)


# --- the lists --------------------------------------------------------------------------------------------


def departments_of(world: World, caller: str) -> set[str] | None:
    """The departments whose records ``caller`` sees in lists: its own; None (all) for city-level users."""
    short = caller.split("_")[0]
    return {world.uscc[short]} if short in world.uscc else None


def providers(world: World) -> dict[str, str]:
    with world.platform.store.session() as s:
        return {e.id: e.department_uscc for e in s.scalars(select(Entry))}


LISTS = (
    "applications",
    "reviews",
    "grants",
    "deliveries",
    "uploads",
    "webhooks",
    "notifications",
    "objections",
    "tokens",
)


def expected_ids(world: World, kind: str, caller: str) -> set[Any]:
    """The ids of records of ``kind`` that ``caller`` must find in its list, from the database."""
    mine = departments_of(world, caller)
    owner = providers(world)

    def sees(*departments: str) -> bool:
        return mine is None or bool(mine & set(departments))

    with world.platform.store.session() as s:
        if kind == "applications":
            return {a.id for a in s.scalars(select(Application)) if sees(a.department_uscc, owner[a.entry_id])}
        if kind == "reviews":
            pending = s.scalars(select(Application).where(Application.status == "pending"))
            if mine is None:
                return {a.id for a in pending}
            return {a.id for a in pending if a.reviewer == "provider" and owner[a.entry_id] in mine}
        if kind == "grants":
            return {g.id for g in s.scalars(select(Grant)) if sees(g.department_uscc, owner[g.entry_id])}
        if kind == "deliveries":
            return {d.id for d in s.scalars(select(Delivery)) if sees(d.department_uscc, owner[d.entry_id])}
        if kind == "uploads":
            return {u.id for u in s.scalars(select(Upload).where(Upload.status == "open")) if sees(u.department_uscc)}
        if kind == "webhooks":
            return {h.id for h in s.scalars(select(Webhook).where(Webhook.active.is_(True))) if sees(h.department_uscc)}
        if kind == "notifications":
            return {n.id for n in s.scalars(select(Notification)) if sees(n.department_uscc)}
        if kind == "objections":
            return {o.id for o in s.scalars(select(Objection)) if sees(o.department_uscc, owner[o.entry_id])}
        assert kind == "tokens"
        everyone = caller == "city_admin"
        return {t.id for t in s.scalars(select(ApiToken)) if everyone or t.user_id == caller}


def listed_ids(world: World, kind: str, caller: str) -> set[Any] | None:
    """The ids ``caller`` gets from the list endpoint of ``kind``; None when it may not list them."""
    path, query = {
        "applications": ("/applications", {"limit": 500}),
        "reviews": ("/reviews/pending", {}),
        "grants": ("/grants", {"limit": 500}),
        "deliveries": ("/deliveries", {"limit": 500}),
        "uploads": ("/uploads", {}),
        "webhooks": ("/webhooks", {}),
        "notifications": ("/notifications", {"limit": 1000}),
        "objections": ("/objections", {"limit": 500}),
        "tokens": ("/tokens", {}),
    }[kind]
    answer = world.call(caller, "GET", path, params=query)
    if answer.status_code == 403:
        return None
    body = ok(answer)
    items = body["items"] if isinstance(body, dict) else body
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)), f"{path} lists a record twice"
    return set(ids)


@pytest.mark.parametrize("caller", CALLERS[1:])
def test_lists_hold_exactly_what_the_caller_may_see(world: World, caller: str) -> None:
    for kind in LISTS:
        got = listed_ids(world, kind, caller)
        path = {"reviews": "/reviews/pending"}.get(kind, f"/{kind}")
        expected_status = RULES[("GET", path)][0].outcomes()[caller]
        assert (got is None) == (expected_status == "403"), (kind, caller)
        if got is None:
            continue
        want = expected_ids(world, kind, caller)
        assert got == want, f"{caller} lists {kind}: extra {sorted(got - want)}, missing {sorted(want - got)}"
    # Every department sees some records and is kept from others': the lists above are not empty.
    if departments_of(world, caller) is not None:
        assert expected_ids(world, "grants", caller) and expected_ids(world, "objections", caller)
        assert expected_ids(world, "grants", caller) != expected_ids(world, "grants", "city_admin")


def foreign_subjects(world: World, department: str) -> set[str]:
    """Audit subjects of records that concern only other departments than ``department``."""
    owner = providers(world)
    subjects: set[str] = set()
    with world.platform.store.session() as s:
        for a in s.scalars(select(Application)):
            if department not in (a.department_uscc, owner[a.entry_id]):
                subjects.add(f"application:{a.id}")
        for g in s.scalars(select(Grant)):
            if department not in (g.department_uscc, owner[g.entry_id]):
                subjects.add(f"grant:{g.id}")
        for o in s.scalars(select(Objection)):
            if department not in (o.department_uscc, owner[o.entry_id]):
                subjects.add(f"objection:{o.id}")
        subjects |= {f"webhook:{h.id}" for h in s.scalars(select(Webhook)) if h.department_uscc != department}
        subjects |= {f"upload:{u.id}" for u in s.scalars(select(Upload)) if u.department_uscc != department}
        subjects |= {f"catalog_entry:{e}" for e, uscc in owner.items() if uscc != department}
    return subjects


@pytest.mark.parametrize("department", ["hrss", "market", "transport"])
def test_a_departments_monitoring_shows_only_its_own_records(world: World, department: str) -> None:
    """A reviewer's monitoring (no department named: its own) holds nothing that concerns only others."""
    reviewer, uscc = f"{department}_reviewer", world.uscc[department]

    def seen(path: str) -> Any:
        return ok(world.call(reviewer, "GET", path, params={"limit": 500}))

    subjects = {e["subject"] for e in seen("/monitor/audit")["events"]}
    assert subjects, "the department's own actions are in its feed"
    leaked = subjects & foreign_subjects(world, uscc)
    assert not leaked, f"{department}'s audit feed shows other departments' records: {sorted(leaked)}"
    everything = ok(world.call("auditor", "GET", "/monitor/audit", params={"limit": 500}))
    assert {e["subject"] for e in everything["events"]} & foreign_subjects(world, uscc)

    pending = seen("/monitor/applications")["applications"]
    assert pending and all(uscc in (a["provider"], a["applicant"]) for a in pending), pending
    assert {r["department"] for r in seen("/monitor/freshness")["resources"]} == {uscc}
    assert {n["department"] for n in seen("/monitor/notifications")["latest"]} == {uscc}
    assert [d["uscc"] for d in seen("/assessment")["departments"]] == [uscc]
    assert [d["uscc"] for d in seen("/monitor/summary")["departments"]] == [uscc]
    other = world.uscc["hrss" if department != "hrss" else "market"]
    for path in ("/monitor/audit", "/monitor/applications", "/assessment"):
        assert world.call(reviewer, "GET", path, params={"department": other}).status_code == 403


def test_the_data_api_answers_the_grants_own_key_only(world: World) -> None:
    """The data API's cells: the subscriber's key of this grant, another grant's key, another department's, none."""
    grant = world.ids["api_grant"]
    sibling = world.grant("market_staff", HRSS, "hrss_reviewer", "api")
    foreign = world.grant("transport_staff", MARKET, "market_reviewer", "api")
    keys = {
        "own": ok(world.call("market_staff", "POST", f"/grants/{grant}/key"), 201)["key"],
        "sibling": ok(world.call("market_reviewer", "POST", f"/grants/{sibling}/key"), 201)["key"],
        "foreign": ok(world.call("transport_staff", "POST", f"/grants/{foreign}/key"), 201)["key"],
    }
    expect = {"own": 200, "sibling": 403, "foreign": 403}
    for name, key in keys.items():
        answer = world.client.get(f"{PREFIX}/data/{grant}", headers={"X-Grant-Key": key})
        assert answer.status_code == expect[name], (name, answer.text)
    assert world.client.get(f"{PREFIX}/data/{grant}").status_code == 401
    # A department's API token is not a key, not even with the key's header name.
    token = world.platform.tokens["market_staff"]
    assert world.client.get(f"{PREFIX}/data/{grant}", headers={"X-Grant-Key": token}).status_code == 401


#: What a token narrowed to ``catalog:read`` may still do; every other operation refuses it.
READ_ONLY = {
    ("GET", "/me"),
    ("GET", "/tokens"),
    ("POST", "/tokens"),
    ("DELETE", "/tokens/{token_id}"),
    ("GET", "/objections"),
    ("GET", "/objections/{objection_id}"),
}


@pytest.mark.parametrize("user", ["hrss_reviewer", "market_reviewer"])
def test_a_narrowed_token_does_only_what_its_scopes_allow(world: World, user: str) -> None:
    """The second half of the rights: the token's scopes. A reviewer's token narrowed to catalog:read."""
    narrow = f"{user} (catalog:read)"
    with world.platform.store.session() as s:
        _, world.platform.tokens[narrow] = create_token(s, user, name="read only", scopes=["catalog:read"])
    wrong = []
    for method, path in operations(world):
        rule = RULES[(method, path)][0]
        allowed = (method, path) in READ_ONLY
        params = world.subject(rule.subject, user, fresh=allowed and rule.fresh)
        answer = world.call(narrow, method, path.format(**params), **world.request(method, path, rule, params))
        full = rule.outcomes()[user]
        got = status_class(answer.status_code)
        refusals = {"403", full} - {"ok"}  # the scope (403), or what the full token gets when refused
        if (got != "ok") if allowed else (got not in refusals):
            wrong.append(f"{method} {path}: {got} (the full token: {full}) {answer.text[:160]}")
    assert not wrong, f"{user}'s catalog:read token:\n" + "\n".join(wrong)

    # The tokens it makes hold no more than it does: not even scopes its role allows.
    made = ok(world.call(narrow, "POST", "/tokens", json={"name": "from a narrow token"}), 201)
    assert made["scopes"] == ["catalog:read"]
    wider = world.call(narrow, "POST", "/tokens", json={"name": "wider", "scopes": ["catalog:read", "exchange:review"]})
    assert wider.status_code == 403 and "exchange:review" in wider.json()["error"], wider.text
    beyond_role = world.call(narrow, "POST", "/tokens", json={"name": "admin", "scopes": ["exchange:admin"]})
    assert beyond_role.status_code == 403 and "dept_admin" in beyond_role.json()["error"], beyond_role.text
    full = ok(world.call(user, "POST", "/tokens", json={"name": "full", "scopes": ["exchange:review"]}), 201)
    assert full["scopes"] == ["exchange:review"]


def test_writes_follow_the_rules(world: World) -> None:
    wrong = run_cells(world, writes=True)
    assert not wrong, "cells that differ from RULES:\n" + "\n".join(wrong)
