"""Exchange activity for the monitoring, assessment and dashboard tests (no tests here).

:func:`populate` drives a :func:`~tests.exchange.conftest_exchange.build_platform` platform
through the exchange's public functions over the last three weeks: applications (approved,
refused, pending and overdue), grants of every delivery method, file downloads, a failed
database delivery, data-API calls (good and refused), objections (answered and open), webhooks
(one receiver that answers, one that is down) and quality scorecards. Each step is dated with the
``now=`` the exchange's functions take; file and database deliveries stamp their receipts with
the clock, which is set to the day for the duration of the call (the clock only, nothing of
ours is replaced).

The tests compute what the monitor must show from the stored rows themselves, so they hold for
any data: when ``govdata demo`` populates the exchange, the dashboard's fixture can use it instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from catalog.models import User
from exchange import applications, delivery, grants, notify, objections
from exchange.delivery_db import RetryPolicy, deliver_to_database
from exchange.identity import Principal
from exchange.models import Grant
from pipelines.masking import MASKING_KEY_ENV
from tests.exchange.conftest_exchange import HRSS, MARKET, TRANSPORT, Platform, generated_rows, publish

SH = ZoneInfo("Asia/Shanghai")
#: The environment the exchange needs for the scenario (and the server that shows it).
ENV = {
    MASKING_KEY_ENV: "monitor-tests-masking-key",
    "GOVDATA_WORKDAY_FALLBACK": "weekends",  # a run in a year without a bundled calendar still counts
}
MISSING_DB_ENV = "MONITOR_TEST_SUBSCRIBER_DB_URL"  # never set: the database delivery fails


@dataclass
class Activity:
    """What :func:`populate` did, for the tests' expectations."""

    now: dt.datetime
    applications: dict[str, int] = field(default_factory=dict)  # name -> id
    grants: dict[str, int] = field(default_factory=dict)  # name -> id
    objections: dict[str, int] = field(default_factory=dict)
    webhooks: dict[str, int] = field(default_factory=dict)  # short department name -> id
    api_key: str = ""


def at(now: dt.datetime, days_ago: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    """``hour``:``minute`` Asia/Shanghai on the local day ``days_ago`` days before ``now``, in UTC."""
    day = now.astimezone(SH).date() - dt.timedelta(days=days_ago)
    return dt.datetime.combine(day, dt.time(hour, minute), SH).astimezone(dt.UTC)


def principal(platform: Platform, user: str) -> Principal:
    with platform.store.session() as s:
        found = s.get(User, user)
        assert found is not None, user
        return Principal.of_user(found)


@contextmanager
def clock(moment: dt.datetime) -> Iterator[None]:
    """The delivery modules' clock reads ``moment`` (their receipts' start and finish times)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("exchange.delivery.utcnow", lambda: moment)
        mp.setattr("exchange.delivery_db.utcnow", lambda: moment)
        yield


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@contextmanager
def receiver() -> Iterator[str]:
    """A webhook receiver on loopback that answers 204; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


LOOPBACK = notify.WebhookSettings(attempts=1, timeout=5, allow=(ipaddress.ip_network("127.0.0.0/8"),))


def _apply(platform: Platform, user: str, entry: str, method: str, when: dt.datetime, **extra: Any) -> int:
    spec = platform.specs[entry]
    items = [c.name for c in spec.columns][:4]
    with platform.store.session() as s:
        app = applications.submit(
            s,
            principal(platform, user),
            entry=entry,
            items=items,
            purpose="业务协同核验",
            scenario="监测测试",
            delivery_method=method,
            end_date=(when + dt.timedelta(days=365)).date(),
            now=when,
            **extra,
        )
        return app.id


def _decide(platform: Platform, user: str, app_id: int, when: dt.datetime, *, approve: bool = True) -> int | None:
    with platform.store.session() as s:
        _, grant = applications.decide(
            s, principal(platform, user), app_id, approve=approve, opinion=None if approve else "用途不明确", now=when
        )
        return grant.id if grant is not None else None


def _download(platform: Platform, user: str, grant_id: int, when: dt.datetime) -> None:
    with clock(when):
        prepared = delivery.download(
            platform.store, grant_id, principal(platform, user), full=True, work_dir=platform.home / "tmp", now=when
        )
    prepared.cleanup()


def _api(platform: Platform, grant_id: int, key: str | None, when: dt.datetime, **params: Any) -> None:
    from pipelines.errors import GovdataError

    with contextlib.suppress(GovdataError):  # a refused call is recorded all the same: the monitor shows it
        delivery.api_page(platform.store, grant_id, key, cache_dir=platform.home / "cache", now=when, **params)


def populate(platform: Platform, now: dt.datetime | None = None) -> Activity:
    """Three weeks of exchange activity up to ``now`` (default: the clock); see the module doc."""
    now = now or dt.datetime.now(dt.UTC)
    act = Activity(now=now)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in ENV.items():
            mp.setenv(name, value)
        mp.delenv(MISSING_DB_ENV, raising=False)
        with receiver() as url:
            with platform.store.session() as s:
                hook, _ = notify.register_webhook(
                    s,
                    principal(platform, "hrss_reviewer"),
                    url=url,
                    events=["application.submitted", "objection.raised"],
                    settings=LOOPBACK,
                )
                act.webhooks["hrss"] = hook.id
                down, _ = notify.register_webhook(
                    s,
                    principal(platform, "market_reviewer"),
                    url=f"http://127.0.0.1:{closed_port()}/hook",
                    events=["application.decided", "version.delivered", "delivery.failed"],
                    settings=LOOPBACK,
                )
                act.webhooks["market"] = down.id
            _activity(platform, act)
            notify.dispatch_due(platform.store, limit=1000, settings=LOOPBACK, workers=2)
    return act


def _activity(platform: Platform, act: Activity) -> None:
    now = act.now
    apps, grants_ = act.applications, act.grants
    # Applications and their reviews (有条件共享: the provider; 无条件共享: the city).
    apps["market_hrss"] = _apply(platform, "market_staff", HRSS, "file", at(now, 12))
    grants_["market_hrss"] = _decide(platform, "hrss_reviewer", apps["market_hrss"], at(now, 11)) or 0
    apps["transport_hrss"] = _apply(platform, "transport_staff", HRSS, "api", at(now, 9))
    grants_["transport_hrss"] = _decide(platform, "hrss_reviewer", apps["transport_hrss"], at(now, 8)) or 0
    apps["hrss_market"] = _apply(
        platform,
        "hrss_staff",
        MARKET,
        "database",
        at(now, 8),
        target={"url_env": MISSING_DB_ENV, "table": "enterprises"},
    )
    grants_["hrss_market"] = _decide(platform, "market_reviewer", apps["hrss_market"], at(now, 7)) or 0
    apps["transport_market_refused"] = _apply(platform, "transport_staff", MARKET, "file", at(now, 6))
    _decide(platform, "market_reviewer", apps["transport_market_refused"], at(now, 2), approve=False)
    apps["market_transport"] = _apply(platform, "market_staff", TRANSPORT, "file", at(now, 4))
    grants_["market_transport"] = _decide(platform, "city_admin", apps["market_transport"], at(now, 3)) or 0
    # Still pending: one long overdue (the city's conformity check), one just submitted.
    apps["hrss_transport_overdue"] = _apply(platform, "hrss_staff", TRANSPORT, "file", at(now, 20))
    apps["transport_market_pending"] = _apply(platform, "transport_staff", MARKET, "api", now - dt.timedelta(minutes=5))

    # A second version of the market registry.
    publish(platform, MARKET, generated_rows(platform.specs[MARKET], 30, seed=11), run_id="test-2")

    # File downloads on four days; one at 01:30, the day before in UTC (days are local days).
    for days_ago, hour, minute in ((10, 14, 0), (6, 1, 30), (2, 14, 0)):
        _download(platform, "market_staff", grants_["market_hrss"], at(now, days_ago, hour, minute))
    _download(platform, "market_reviewer", grants_["market_transport"], at(now, 1, 9))
    # A database delivery whose target is not configured: it fails for good.
    with clock(at(now, 5, 16)):
        receipt = deliver_to_database(
            platform.store,
            grants_["hrss_market"],
            actor="hrss_staff",
            now=at(now, 5, 16),
            policy=RetryPolicy(retries=0, backoff=0),
            work_dir=platform.home / "tmp",
        )
    assert receipt["outcome"] == "failed", receipt
    # The data API: pages on two days, a call with a wrong key, a malformed one.
    with platform.store.session() as s:
        grant = s.get(Grant, grants_["transport_hrss"])
        assert grant is not None
        act.api_key = grants.issue_key(s, grant, principal(platform, "transport_staff"))
    api_grant = grants_["transport_hrss"]
    _api(platform, api_grant, act.api_key, at(now, 4, 9), page_size=5)
    _api(platform, api_grant, act.api_key, at(now, 4, 11), page_size=7)
    _api(platform, api_grant, act.api_key, at(now, 3, 9), page_size=3)
    _api(platform, api_grant, "gdk_wrongwrongwr_nottherightsecret", at(now, 3, 10))
    _api(platform, api_grant, act.api_key, at(now, 3, 11), page_size="lots")

    # Objections to 人社's data: one answered, one open.
    with platform.store.session() as s:
        raised = objections.raise_objection(
            s,
            principal(platform, "market_staff"),
            entry=HRSS,
            subject="参保状态有误",
            detail="应为暂停缴费",
            now=at(now, 6),
        )
        act.objections["answered"] = raised.id
    with platform.store.session() as s:
        objections.answer(s, principal(platform, "hrss_reviewer"), raised.id, message="已更正", now=at(now, 5))
    with platform.store.session() as s:
        still = objections.raise_objection(
            s,
            principal(platform, "transport_staff"),
            entry=HRSS,
            subject="缴费基数异常",
            detail="请核实",
            now=at(now, 2),
        )
        act.objections["open"] = still.id

    # Quality scorecards of each department's runs.
    for dataset, score in ((HRSS, 0.95), (MARKET, 0.88), (TRANSPORT, 0.72)):
        spec = platform.specs[dataset]
        platform.store.save_scorecard(
            {
                "dataset": dataset,
                "run_id": "monitor-test",
                "logical_date": at(now, 3, 0).isoformat(),
                "department": {"uscc": spec.department.uscc, "name": spec.department.name},
                "status": "published",
                "version": 1,
                "score": score,
                "computed_at": at(now, 3, 1).isoformat(),
            }
        )
