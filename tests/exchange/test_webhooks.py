"""Signed webhooks end to end: registration over HTTP and the CLI, a real receiver, retries, refusals.

The receiver is a small HTTP server on 127.0.0.1 that records every request and can answer 500 to
the first N, answer any status, or hang. Loopback is refused to webhooks by default, so these tests
allow 127.0.0.1/32 through ``GOVDATA_WEBHOOK_ALLOW_NETWORKS``, as a city would for a receiver on
the platform's own machine. The retry schedule is walked by passing ``now``; nothing sleeps.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from catalog.models import AuditEvent
from exchange import notify
from exchange.models import Notification, Webhook
from exchange.notify import WebhookSettings, dispatch_due, emit, start_dispatcher, verify_signature
from exchange.service import create_app
from pipelines.cli import app as cli
from tests.exchange.conftest_exchange import Platform, build_platform, private_copy

API = "/exchange/v1"
LOOPBACK = "127.0.0.1/32"


# --- a real receiver ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Listens on 127.0.0.1:<free port>: the first ``fail_first`` requests answer 500, then ``status``.

    ``hang``: read the request and never answer (until the test ends).
    """

    fail_first: int = 0
    status: int = 200
    hang: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hooks/govdata?channel=test"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                    count = len(receiver.requests)
                if receiver.hang:
                    receiver.release.wait(60)
                    return
                status = 500 if count <= receiver.fail_first else receiver.status
                answer = b"ok" if status < 300 else "接收方拒绝: no".encode()
                self.send_response(status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    return build_platform(tmp_path_factory.mktemp("webhooks") / "home", rows=5)


@pytest.fixture
def platform(template: Platform, tmp_path: Path) -> Platform:
    """A copy of the module's platform: each test starts with no webhooks and an empty outbox."""
    return private_copy(template, tmp_path / "home")


@pytest.fixture
def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform.home))


@pytest.fixture
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(notify.ALLOW_ENV, LOOPBACK)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        notify.ALLOW_ENV,
        notify.DENY_ENV,
        notify.ATTEMPTS_ENV,
        notify.BACKOFF_ENV,
        notify.TIMEOUT_ENV,
        "GOVDATA_USER",
        "GOVDATA_HOME",
        "GOVDATA_CATALOG_URL",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def register(client: TestClient, platform: Platform, user: str, url: str, events: list[str] | None = None) -> Any:
    return client.post(
        f"{API}/webhooks",
        json={"url": url, "events": events or ["version.delivered", "objection.raised"]},
        headers=platform.auth(user),
    )


def queue(platform: Platform, short: str = "hrss", event: str = "version.delivered", **data: Any) -> list[int]:
    """Emit ``event`` to department ``short`` the way the exchange does; the ids of the queued notifications."""
    with platform.store.session() as s:
        emit(s, department=platform.departments[short], event=event, payload={"entry": "x", "version": 2, **data})
        s.flush()
        return list(
            s.scalars(select(Notification.id).where(Notification.status == "pending").order_by(Notification.id))
        )


def row(platform: Platform, notification_id: int) -> Notification:
    with platform.store.session() as s:
        found = s.get(Notification, notification_id)
        assert found is not None
        return found


def audit_actions(platform: Platform) -> list[str]:
    with platform.store.session() as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


# --- registration ---------------------------------------------------------------------------------


def test_a_department_registers_lists_rotates_and_removes_its_webhooks(platform: Platform, client: TestClient) -> None:
    created = register(client, platform, "hrss_staff", "https://receiver.hrss.example.gov.cn/govdata")
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) > 40
    assert hook["department"] == platform.departments["hrss"]
    assert hook["events"] == ["version.delivered", "objection.raised"]
    own = client.get(f"{API}/webhooks", headers=platform.auth("hrss_reviewer")).json()
    assert [h["id"] for h in own] == [hook["id"]]
    assert "secret" not in own[0]

    # Another department neither sees nor touches it; the city admin sees every department's.
    assert client.get(f"{API}/webhooks", headers=platform.auth("market_staff")).json() == []
    for method, path in (("delete", f"/webhooks/{hook['id']}"), ("post", f"/webhooks/{hook['id']}/rotate")):
        answer = client.request(method.upper(), API + path, headers=platform.auth("market_reviewer"))
        assert answer.status_code == 404, answer.text
    assert [h["id"] for h in client.get(f"{API}/webhooks", headers=platform.auth("city_admin")).json()] == [hook["id"]]
    assert client.get(f"{API}/webhooks", headers=platform.auth("auditor")).status_code == 403

    rotated = client.post(f"{API}/webhooks/{hook['id']}/rotate", headers=platform.auth("hrss_reviewer"))
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != hook["secret"]
    with platform.store.session() as s:
        stored = s.get(Webhook, hook["id"])
        assert stored is not None and stored.secret == new_secret
    # The city admin may remove a department's webhook but never sees a secret.
    assert client.post(f"{API}/webhooks/{hook['id']}/rotate", headers=platform.auth("city_admin")).status_code == 404

    removed = client.delete(f"{API}/webhooks/{hook['id']}", headers=platform.auth("hrss_staff"))
    assert removed.status_code == 200 and removed.json()["active"] is False
    assert client.get(f"{API}/webhooks", headers=platform.auth("hrss_staff")).json() == []
    assert client.delete(f"{API}/webhooks/{hook['id']}", headers=platform.auth("hrss_staff")).status_code == 404
    with platform.store.session() as s:
        stored = s.get(Webhook, hook["id"])
        assert stored is not None and stored.secret == ""  # erased
        log = json.dumps([e.detail for e in s.scalars(select(AuditEvent))], ensure_ascii=False)
    assert hook["secret"] not in log and new_secret not in log
    assert "channel=" not in log  # the query string (it may carry a token) is not logged
    assert {"webhook.create", "webhook.rotate", "webhook.remove"} <= set(audit_actions(platform))


def test_the_same_url_twice_and_city_users_are_refused(platform: Platform, client: TestClient) -> None:
    url = "https://receiver.example.gov.cn/a"
    assert register(client, platform, "hrss_staff", url).status_code == 201
    again = register(client, platform, "hrss_reviewer", url.upper().replace("/A", "/a"))
    assert again.status_code == 409 and "already" in again.json()["error"]
    # The same receiver for another department is that department's own webhook.
    assert register(client, platform, "market_staff", url).status_code == 201
    city = register(client, platform, "city_admin", "https://city.example.gov.cn/")
    assert city.status_code == 403


HOSTILE_URLS = [
    "ftp://receiver.example.gov.cn/hook",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "gopher://receiver.example.gov.cn:70/_POST",
    "//receiver.example.gov.cn/hook",
    "receiver.example.gov.cn/hook",
    "http://user:secret@receiver.example.gov.cn/hook",
    "http://receiver.example.gov.cn@evil.example/hook",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fe80::1]/",
    "http://127.0.0.1:8000/exchange/v1/tokens",
    "http://localhost/admin",
    "http://LOCALHOST./admin",
    "http://api.localhost/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://0.0.0.0:8000/",
    "http://0/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.0.0.1/",
    "http://127.1/",
    "http://0177.0.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://[::]/",
    "http://receiver.example.gov.cn/hook#frag",
    "http://receiver.example.gov.cn:99999/",
    "http://receiver.example.gov.cn:0/",
    "http://[::1/",
    "http://[receiver.example.gov.cn]/",
    "http:///hook",
    "http://receiver example.gov.cn/",
    "http://receiver.example.gov.cn/a b",
    "http://receiver.example.gov.cn/\r\nX-Injected: 1",
    "http://receiver.example.gov.cn\\@evil.example/",
    "http://接收方.example.gov.cn/",
    "http://-bad-.example.gov.cn/",
    "http://" + "a" * 64 + ".example.gov.cn/",
    "https://receiver.example.gov.cn/" + "a" * 2000,
    "   ",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_urls_are_refused_at_registration(platform: Platform, client: TestClient, url: str) -> None:
    answer = register(client, platform, "hrss_staff", url)
    assert answer.status_code == 422, (url, answer.text)
    body = answer.json()
    assert body["error"] and body["hint"]
    assert "Traceback" not in answer.text
    with platform.store.session() as s:
        assert s.scalars(select(Webhook)).all() == []


@pytest.mark.parametrize(
    "url",
    [
        "https://receiver.example.gov.cn/govdata",
        "HTTP://Receiver.Example.GOV.cn:8443/hooks?token=abc",
        "http://10.20.30.40/hook",  # the intranet's private addresses are where departments are
        "http://192.168.1.5:8080/",
        "http://[fd00::5]/hook",
        "http://receiver/",
        "http://xn--fiq228c.example.gov.cn/",
    ],
)
def test_ordinary_receivers_are_accepted(platform: Platform, client: TestClient, url: str) -> None:
    answer = register(client, platform, "hrss_staff", url)
    assert answer.status_code == 201, answer.text
    assert answer.json()["url"].startswith(url.split("://")[0].lower() + "://")


def test_loopback_is_allowed_only_when_the_city_says_so(
    platform: Platform, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://127.0.0.1:9/hook"
    refused = register(client, platform, "hrss_staff", url)
    assert refused.status_code == 422 and "loopback" in refused.json()["error"]
    assert notify.ALLOW_ENV in refused.json()["hint"]
    monkeypatch.setenv(notify.ALLOW_ENV, LOOPBACK)
    assert register(client, platform, "hrss_staff", url).status_code == 201
    monkeypatch.setenv(notify.DENY_ENV, "10.0.0.0/8")
    denied = register(client, platform, "hrss_staff", "http://10.1.2.3/")
    assert denied.status_code == 422 and notify.DENY_ENV in denied.json()["error"]
    monkeypatch.setenv(notify.ALLOW_ENV, "not-a-network")
    bad = register(client, platform, "hrss_staff", "http://10.1.2.4/")
    assert bad.status_code == 422 and notify.ALLOW_ENV in bad.json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://r.example.gov.cn/", "events": []},
        {"url": "https://r.example.gov.cn/", "events": ["version.deleted"]},
        {"url": "https://r.example.gov.cn/", "events": "version.delivered"},
        {"url": "https://r.example.gov.cn/"},
        {"url": "https://r.example.gov.cn/", "events": ["version.delivered"], "secret": "mine"},
        {"url": 12, "events": ["version.delivered"]},
        {"url": "", "events": ["version.delivered"]},
        {"url": "https://r.example.gov.cn/\x00", "events": ["version.delivered"]},
    ],
)
def test_bad_registrations_are_refused(platform: Platform, client: TestClient, body: dict[str, Any]) -> None:
    answer = client.post(f"{API}/webhooks", json=body, headers=platform.auth("hrss_staff"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]


@pytest.mark.parametrize("path", ["/webhooks/0", "/webhooks/-1", "/webhooks/99999999999999999999", "/webhooks/x"])
def test_bad_ids_are_refused_not_crashed(platform: Platform, client: TestClient, path: str) -> None:
    answer = client.delete(API + path, headers=platform.auth("hrss_staff"))
    assert answer.status_code in (404, 422), answer.text


# --- sending --------------------------------------------------------------------------------------


def test_a_notification_arrives_signed_and_the_receiver_can_verify_it(
    platform: Platform, client: TestClient, receiver: Receiver, allow_loopback: None
) -> None:
    hook = register(client, platform, "hrss_staff", receiver.url, ["version.delivered"]).json()
    [nid] = queue(platform, event="version.delivered", rows=3, note="名称 ✓")
    queue(platform, event="objection.answered")  # not listened to: nothing queued, nothing sent
    summary = dispatch_due(platform.store)
    assert (summary.claimed, summary.sent, summary.failed) == (1, 1, 0)

    [got] = receiver.requests
    assert got.path == "/hooks/govdata?channel=test"
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert headers["x-govdata-event"] == "version.delivered"
    assert headers["x-govdata-delivery"] == str(nid)
    assert headers["content-type"] == "application/json; charset=utf-8"
    stamp, signature = headers["x-govdata-timestamp"], headers["x-govdata-signature"]
    assert signature.startswith("sha256=")
    assert verify_signature(hook["secret"], stamp, got.body, signature, 300)
    # What a receiver must refuse: another body, another secret, an old timestamp, a garbled header.
    assert not verify_signature(hook["secret"], stamp, got.body.replace(b"3", b"4"), signature, 300)
    assert not verify_signature("whsec_other", stamp, got.body, signature, 300)
    assert not verify_signature(hook["secret"], stamp, got.body, signature, 300, now=int(stamp) + 301)
    assert verify_signature(hook["secret"], stamp, got.body, signature, None, now=int(stamp) + 10_000)
    assert not verify_signature(hook["secret"], str(int(stamp) + 1), got.body, signature, 300)
    for garbled in ("", "sha256=", "md5=" + signature[7:], signature.upper()):
        assert not verify_signature(hook["secret"], stamp, got.body, garbled, 300)
    assert not verify_signature(hook["secret"], "12.5", got.body, signature, None)

    doc = json.loads(got.body)
    assert set(doc) == {"id", "event", "created_at", "department", "data"}
    assert doc["id"] == nid and doc["department"] == platform.departments["hrss"]
    assert doc["data"] == {"entry": "x", "version": 2, "rows": 3, "note": "名称 ✓"}
    sent = row(platform, nid)
    assert (sent.status, sent.attempts, sent.last_status, sent.last_error) == ("sent", 1, 200, None)
    assert dispatch_due(platform.store).claimed == 0  # nothing twice


def test_failures_are_retried_with_exponential_backoff(
    platform: Platform, client: TestClient, receiver: Receiver, allow_loopback: None
) -> None:
    receiver.fail_first = 2
    register(client, platform, "hrss_staff", receiver.url)
    [nid] = queue(platform)
    t0 = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)

    first = dispatch_due(platform.store, now=t0)
    assert (first.sent, first.retrying) == (0, 1)
    waiting = row(platform, nid)
    assert (waiting.status, waiting.attempts, waiting.last_status) == ("pending", 1, 500)
    assert "HTTP 500" in (waiting.last_error or "") and "接收方拒绝" in (waiting.last_error or "")
    assert waiting.next_attempt_at == t0 + dt.timedelta(seconds=60)

    assert dispatch_due(platform.store, now=t0 + dt.timedelta(seconds=59)).claimed == 0  # not due yet
    second_at = t0 + dt.timedelta(seconds=60)
    assert dispatch_due(platform.store, now=second_at).retrying == 1
    assert row(platform, nid).next_attempt_at == second_at + dt.timedelta(seconds=240)  # 60 s × 4

    third_at = second_at + dt.timedelta(seconds=240)
    assert dispatch_due(platform.store, now=third_at).sent == 1
    done = row(platform, nid)
    assert (done.status, done.attempts, done.last_status, done.sent_at) == ("sent", 3, 200, third_at)
    assert len({r.body for r in receiver.requests}) == 1  # the same body every time
    assert {r.headers["X-Govdata-Delivery"] for r in receiver.requests} == {str(nid)}


def test_the_schedule_grows_by_four_and_is_capped() -> None:
    settings = WebhookSettings(backoff=60)
    assert [settings.delay(n).total_seconds() for n in range(1, 6)] == [60, 240, 960, 3840, 15360]
    assert settings.delay(9) == dt.timedelta(hours=6)
    assert settings.delay(1, retry_after=600) == dt.timedelta(seconds=600)
    assert settings.delay(1, retry_after=10**9) == dt.timedelta(hours=6)


def test_a_notification_fails_for_good_after_the_last_attempt_and_can_be_retried(
    platform: Platform,
    client: TestClient,
    receiver: Receiver,
    allow_loopback: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(notify.ATTEMPTS_ENV, "3")
    receiver.status = 503
    register(client, platform, "hrss_staff", receiver.url)
    [nid] = queue(platform)
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    for _ in range(3):
        dispatch_due(platform.store, now=now)
        now += dt.timedelta(days=1)
    failed = row(platform, nid)
    assert (failed.status, failed.attempts, failed.last_status) == ("failed", 3, 503)
    assert dispatch_due(platform.store, now=now).claimed == 0
    assert len(receiver.requests) == 3

    listed = client.get(f"{API}/notifications?status=failed", headers=platform.auth("hrss_staff")).json()
    assert [n["id"] for n in listed] == [nid] and listed[0]["last_status"] == 503
    assert client.post(f"{API}/notifications/{nid}/retry", headers=platform.auth("market_staff")).status_code == 404
    retried = client.post(f"{API}/notifications/{nid}/retry", headers=platform.auth("hrss_staff"))
    assert retried.status_code == 200 and retried.json()["status"] == "pending" and retried.json()["attempts"] == 0
    receiver.status = 200
    assert dispatch_due(platform.store).sent == 1
    again = client.post(f"{API}/notifications/{nid}/retry", headers=platform.auth("hrss_staff"))
    assert again.status_code == 409
    assert "notification.retry" in audit_actions(platform)


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        *[(code, False) for code in (400, 401, 404, 410, 301, 302)],
        *[(code, True) for code in (408, 429, 500, 502, 503, 504)],
    ],
)
def test_which_answers_are_retried(
    platform: Platform, client: TestClient, receiver: Receiver, allow_loopback: None, status: int, retried: bool
) -> None:
    receiver.status = status
    if 300 <= status < 400:
        receiver.headers = {"Location": "http://169.254.169.254/"}
    register(client, platform, "hrss_staff", receiver.url)
    [nid] = queue(platform)
    summary = dispatch_due(platform.store)
    after = row(platform, nid)
    assert after.last_status == status and after.attempts == 1
    assert after.status == ("pending" if retried else "failed")
    assert (summary.retrying, summary.failed) == ((1, 0) if retried else (0, 1))
    assert len(receiver.requests) == 1  # a redirect is not followed


def test_retry_after_is_honoured(
    platform: Platform, client: TestClient, receiver: Receiver, allow_loopback: None
) -> None:
    receiver.status = 429
    receiver.headers = {"Retry-After": "3600"}
    register(client, platform, "hrss_staff", receiver.url)
    [nid] = queue(platform)
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    dispatch_due(platform.store, now=now)
    assert row(platform, nid).next_attempt_at == now + dt.timedelta(seconds=3600)


def test_a_receiver_that_hangs_times_out_and_is_retried(
    platform: Platform,
    client: TestClient,
    receiver: Receiver,
    allow_loopback: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(notify.TIMEOUT_ENV, "0.5")
    receiver.hang = True
    register(client, platform, "hrss_staff", receiver.url)
    [nid] = queue(platform)
    summary = dispatch_due(platform.store)
    assert summary.retrying == 1
    after = row(platform, nid)
    assert after.status == "pending" and after.last_status is None
    assert "timed out" in (after.last_error or "")
    assert "channel=test" not in (after.last_error or "")  # no query string (it may hold a token)


def test_a_receiver_that_is_down_is_retried(platform: Platform, client: TestClient, allow_loopback: None) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    register(client, platform, "hrss_staff", f"http://127.0.0.1:{port}/hook")
    [nid] = queue(platform)
    assert dispatch_due(platform.store).retrying == 1
    after = row(platform, nid)
    assert after.status == "pending" and "cannot connect" in (after.last_error or "")


def test_the_address_is_checked_again_when_sending(
    platform: Platform, client: TestClient, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(notify.ALLOW_ENV, LOOPBACK)
    register(client, platform, "hrss_staff", receiver.url)
    [nid] = queue(platform)
    monkeypatch.delenv(notify.ALLOW_ENV)  # the city withdrew the allowance (or the name now points here)
    assert dispatch_due(platform.store).failed == 1
    after = row(platform, nid)
    assert after.status == "failed" and "loopback" in (after.last_error or "")
    assert receiver.requests == []


def test_a_host_name_that_resolves_to_this_machine_is_not_sent_to() -> None:
    settings = WebhookSettings()
    # Registration accepts a name it cannot judge; sending resolves it and refuses loopback.
    outcome = notify.post("http://ip6-localhost.:9/hook", {}, b"{}", settings)
    if outcome.error and "cannot resolve" in outcome.error:
        outcome = notify.post("http://localhost:9/hook", {}, b"{}", settings)
    assert not outcome.ok and not outcome.retry
    assert "may not go" in (outcome.error or "")


def test_removing_a_webhook_fails_what_waited_for_it(
    platform: Platform, client: TestClient, receiver: Receiver, allow_loopback: None
) -> None:
    hook = register(client, platform, "hrss_staff", receiver.url).json()
    [nid] = queue(platform)
    client.delete(f"{API}/webhooks/{hook['id']}", headers=platform.auth("hrss_staff"))
    assert row(platform, nid).status == "failed"
    assert dispatch_due(platform.store).claimed == 0
    assert queue(platform) == []  # nothing more is queued for it
    assert receiver.requests == []
    retried = client.post(f"{API}/notifications/{nid}/retry", headers=platform.auth("hrss_staff"))
    assert retried.status_code == 409


def test_notifications_are_listed_per_department_and_for_the_city(
    platform: Platform, client: TestClient, receiver: Receiver, allow_loopback: None
) -> None:
    register(client, platform, "hrss_staff", receiver.url)
    register(client, platform, "market_staff", receiver.url)
    [hrss_note] = queue(platform, "hrss")
    market_note = queue(platform, "market")[-1]
    dispatch_due(platform.store)

    def ids(user: str, query: str = "") -> list[int]:
        answer = client.get(f"{API}/notifications{query}", headers=platform.auth(user))
        assert answer.status_code == 200, answer.text
        return [n["id"] for n in answer.json()]

    assert ids("hrss_staff") == [hrss_note]
    assert ids("market_reviewer") == [market_note]
    assert sorted(ids("city_admin")) == sorted([hrss_note, market_note])
    assert sorted(ids("auditor")) == sorted([hrss_note, market_note])
    assert ids("hrss_staff", "?status=pending") == []
    assert ids("hrss_staff", "?status=sent&event=version.delivered") == [hrss_note]
    for bad in ("?status=lost", "?limit=0", "?limit=100000", "?event=nope", "?webhook=0"):
        assert client.get(f"{API}/notifications{bad}", headers=platform.auth("hrss_staff")).status_code == 422
    assert client.get(f"{API}/notifications").status_code == 401


def test_concurrent_dispatchers_send_each_notification_once(
    platform: Platform, client: TestClient, receiver: Receiver, allow_loopback: None
) -> None:
    register(client, platform, "hrss_staff", receiver.url)
    with platform.store.session() as s:
        for i in range(40):
            emit(s, department=platform.departments["hrss"], event="version.delivered", payload={"i": i})
    summaries: list[notify.DispatchSummary] = []
    start = threading.Barrier(4)

    def run() -> None:
        start.wait()
        summaries.append(dispatch_due(platform.store, limit=15, workers=2))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while dispatch_due(platform.store).claimed:  # whatever the four passes left over (limit 15 each)
        pass
    delivered = [r.headers["X-Govdata-Delivery"] for r in receiver.requests]
    assert len(delivered) == 40 and len(set(delivered)) == 40
    with platform.store.session() as s:
        assert {n.status for n in s.scalars(select(Notification))} == {"sent"}
        assert {n.attempts for n in s.scalars(select(Notification))} == {1}


def test_the_background_dispatcher_sends_and_stops(
    platform: Platform, client: TestClient, receiver: Receiver, allow_loopback: None
) -> None:
    register(client, platform, "hrss_staff", receiver.url)
    stop = start_dispatcher(platform.store, 0.05)
    try:
        [nid] = queue(platform)
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop()
    assert [r.headers["X-Govdata-Delivery"] for r in receiver.requests] == [str(nid)]
    assert not any(t.name == "govdata-webhook-dispatcher" for t in threading.enumerate())
    with pytest.raises(notify.TerminalError):
        start_dispatcher(platform.store, 0)


def test_govdata_serve_sends_queued_notifications_and_no_webhooks_leaves_them(
    platform: Platform, client: TestClient, receiver: Receiver, allow_loopback: None
) -> None:
    from tests.catalog.conftest_search import start_server, venv_env

    assert register(client, platform, "hrss_staff", receiver.url).status_code == 201
    env = venv_env(**{notify.ALLOW_ENV: LOOPBACK})
    quiet = start_server(platform.home, "--no-webhooks", env=env)
    try:
        assert any("--no-webhooks" in line for line in quiet.banner)
        [nid] = queue(platform)
        time.sleep(1.5)  # several passes of a dispatcher, were one running
    finally:
        quiet.stop()
    assert receiver.requests == []
    server = start_server(platform.home, "--webhook-interval", "0.1", env=env)
    try:
        deadline = time.monotonic() + 60
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        code, _, _ = server.stop()
    assert code == 0
    assert [r.headers["X-Govdata-Delivery"] for r in receiver.requests] == [str(nid)]
    with platform.store.session() as s:
        assert s.get(Notification, nid).status == "sent"  # type: ignore[union-attr]


def test_bad_settings_are_named() -> None:
    for name, value in ((notify.ATTEMPTS_ENV, "0"), (notify.BACKOFF_ENV, "soon"), (notify.TIMEOUT_ENV, "-1")):
        with pytest.raises(notify.TerminalError) as info:
            WebhookSettings.from_env({name: value})
        assert name in info.value.message


# --- the command line -----------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "240"})
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_the_cli_manages_webhooks_and_sends_the_outbox(
    platform: Platform, receiver: Receiver, allow_loopback: None
) -> None:
    home = str(platform.home)
    added = invoke(
        "exchange",
        "webhooks",
        "add",
        receiver.url,
        "--event",
        "version.delivered",
        "--as",
        "hrss_staff",
        "--home",
        home,
    )
    assert added.exit_code == 0, added.output
    secret = next(line.strip() for line in added.output.splitlines() if line.strip().startswith("whsec_"))
    with platform.store.session() as s:
        [hook] = s.scalars(select(Webhook)).all()
        assert hook.secret == secret

    listed = invoke("exchange", "webhooks", "list", "--json", "--as", "hrss_reviewer", "--home", home)
    doc = json.loads(listed.output)
    assert [h["id"] for h in doc["webhooks"]] == [hook.id] and secret not in listed.output
    assert (
        json.loads(invoke("exchange", "webhooks", "list", "--json", "--as", "market_staff", "--home", home).output)[
            "webhooks"
        ]
        == []
    )

    [nid] = queue(platform)
    sent = invoke("exchange", "notify", "--json", "--home", home)
    assert sent.exit_code == 0 and json.loads(sent.output)["sent"] == 1
    assert [r.headers["X-Govdata-Delivery"] for r in receiver.requests] == [str(nid)]
    assert "0 due" in invoke("exchange", "notify", "--home", home).output

    rotated = invoke("exchange", "webhooks", "rotate", str(hook.id), "--as", "hrss_staff", "--home", home)
    assert rotated.exit_code == 0 and secret not in rotated.output and "whsec_" in rotated.output
    other = invoke("exchange", "webhooks", "remove", str(hook.id), "--as", "market_staff", "--home", home)
    assert other.exit_code == 1 and "no webhook" in other.output
    assert invoke("exchange", "webhooks", "remove", str(hook.id), "--as", "hrss_staff", "--home", home).exit_code == 0
    assert invoke("exchange", "webhooks", "events").exit_code == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["add", "file:///etc/passwd", "--event", "version.delivered", "--as", "hrss_staff"], "http"),
        (["add", "https://r.example.gov.cn/", "--as", "hrss_staff"], "at least one event"),
        (["add", "https://r.example.gov.cn/", "--event", "version.delivred", "--as", "hrss_staff"], "did you mean"),
        (["add", "https://r.example.gov.cn/", "--event", "version.delivered", "--as", "nobody"], "no active user"),
        (["add", "https://r.example.gov.cn/", "--event", "version.delivered"], "who is acting"),
        (["add", "https://r.example.gov.cn/", "--event", "version.delivered", "--as", "auditor"], "scope"),
        (["rotate", "5", "--as", "hrss_staff"], "no webhook 5"),
        (["list", "--as", "auditor"], "scope"),
    ],
)
def test_the_cli_says_what_is_wrong(platform: Platform, args: list[str], says: str) -> None:
    result = invoke("exchange", "webhooks", *args, "--home", str(platform.home))
    assert result.exit_code != 0
    assert says in result.output, result.output
