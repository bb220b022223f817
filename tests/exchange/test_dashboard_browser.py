"""Acceptance: the platform admins' dashboard in headless Chromium, served by a real ``govdata serve`` on loopback.

Every request the page makes to anything but the server on 127.0.0.1 is aborted and recorded,
and a recorded request fails the test (government intranets have no internet; the page must
need none). Console errors fail it too (a Content-Security-Policy violation is one). The charts
are checked through ECharts' own instances (``echarts.getInstanceByDom(…).getOption()``): the
series must hold the numbers the API gives, not merely exist. Screenshots go to
``tests/artifacts/dashboard/`` (or ``$GOVDATA_TEST_ARTIFACTS/dashboard``).

Most tests show :func:`dashboard_platform`'s data, three weeks of exchange activity from
:mod:`tests.exchange.monitor_scenario` (so every chart and filter has something to tell apart);
the last one opens the dashboard on what ``govdata demo`` leaves, with the token it prints. Chromium is the distribution's (``/usr/bin/chromium``); without it the
tests skip, unless ``GOVDATA_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import load_workbook

from exchange.watch import run_watch
from tests.catalog.conftest_search import Server, start_server, venv_env
from tests.exchange.conftest_exchange import Platform, build_platform
from tests.exchange.monitor_scenario import ENV, populate

SH = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parents[2]
CHARTS = ("chart-deliveries", "chart-latency", "chart-api", "chart-pending", "chart-consumers", "chart-assessment")


# --- the data, the server, the browser ----------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """A platform the dashboard shows: its workspace and an API token per user."""

    home: Path
    tokens: dict[str, str]
    departments: dict[str, str]  # short name -> USCC


def dashboard_platform(home: Path) -> Shown:
    """The platform with three weeks of exchange activity (switch to ``govdata demo`` when it fills the exchange)."""
    platform: Platform = build_platform(home, rows=40)
    populate(platform)
    run_watch(platform.store)  # the watch's alerts: the overdue review and the failed delivery
    platform.store.engine.dispose()
    return Shown(home=platform.home, tokens=dict(platform.tokens), departments=dict(platform.departments))


@pytest.fixture(scope="module")
def shown(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Shown:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("GOVDATA_CATALOG_URL", "GOVDATA_HOME", "GOVDATA_USER"):
            mp.delenv(name, raising=False)
        return dashboard_platform(tmp_path_factory.mktemp("dashboard") / "home")


@pytest.fixture(scope="module")
def server(shown: Shown) -> Iterator[Server]:
    running = start_server(shown.home, env=venv_env(**ENV))
    assert urlsplit(running.base).hostname == "127.0.0.1"
    yield running
    running.stop(signal.SIGTERM)


@dataclass
class Session:
    """One browser context on the dashboard, with what it tried to reach and what went wrong."""

    context: Any
    base: str
    shots: Path
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)

    def open(self) -> Any:
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.goto(f"{self.base}/dashboard", wait_until="load")
        return page

    def shot(self, page: Any, name: str) -> Path:
        target = self.shots / f"{name}.png"
        page.screenshot(path=str(target), full_page=True)
        return target


@contextmanager
def browsing(chromium: Any, server: Server) -> Iterator[Session]:
    """A browser context on ``server``'s dashboard that refuses and records every other address."""
    base = (
        Path(os.environ["GOVDATA_TEST_ARTIFACTS"])
        if os.environ.get("GOVDATA_TEST_ARTIFACTS")
        else REPO / "tests" / "artifacts"
    )
    shots = base / "dashboard"
    shots.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(
        viewport={"width": 1440, "height": 1000}, service_workers="block", accept_downloads=True, locale="zh-CN"
    )
    origin = urlsplit(server.base)
    state = Session(context, server.base, shots)

    def guard(route: Any) -> None:
        url = route.request.url
        where = urlsplit(url)
        if where.scheme in ("http", "https") and where.hostname == "127.0.0.1" and where.port == origin.port:
            state.loaded.append(url)
            route.continue_()
        elif where.scheme in ("data", "blob"):
            route.continue_()
        else:
            state.refused.append(url)
            route.abort()

    context.route("**/*", guard)
    try:
        yield state
    finally:
        context.close()
        print(f"screenshots: {shots}")
    assert state.refused == [], f"the dashboard tried to reach beyond the server: {state.refused}"
    assert state.errors == [], f"errors in the page: {state.errors}"


@pytest.fixture
def session(chromium: Any, server: Server) -> Iterator[Session]:
    with browsing(chromium, server) as state:
        yield state


def api(server: Server, shown: Shown, path: str, user: str = "city_admin", **params: Any) -> Any:
    answer = httpx.get(
        f"{server.base}/exchange/v1/{path}",
        params={k: v for k, v in params.items() if v not in (None, "")},
        headers={"Authorization": f"Bearer {shown.tokens[user]}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def login(page: Any, token: str) -> None:
    page.wait_for_selector("#login-form", state="visible")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")


def ready(page: Any, **query: Any) -> dict[str, Any]:
    """Wait until the board shows the answers to a query with these values; returns the query."""
    page.wait_for_function(
        """want => {
            if (document.body.dataset.state !== 'ready') return false;
            const q = JSON.parse(document.body.dataset.query || '{}');
            return Object.entries(want).every(([k, v]) => q[k] === v);
        }""",
        arg=query,
        timeout=30_000,
    )
    return dict(json.loads(page.get_attribute("body", "data-query")))


def series(page: Any, chart: str) -> list[dict[str, Any]]:
    """The chart's series (name and data) as ECharts holds them."""
    return list(
        page.evaluate(
            """id => {
                const chart = window.echarts.getInstanceByDom(document.getElementById(id));
                if (!chart) return null;
                return chart.getOption().series.map(s => ({name: s.name, data: s.data}));
            }""",
            chart,
        )
    )


def x_axis(page: Any, chart: str) -> list[Any]:
    return list(
        page.evaluate(
            "id => window.echarts.getInstanceByDom(document.getElementById(id)).getOption().xAxis[0].data", chart
        )
    )


def drawn(page: Any, chart: str) -> int:
    """How many SVG shapes the chart drew."""
    return int(page.evaluate("id => document.querySelectorAll(`#${id} svg path, #${id} svg rect`).length", chart))


def by_name(found: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {s["name"]: s["data"] for s in found}


def number(page: Any, selector: str) -> int:
    return int(page.inner_text(selector).replace(",", "").strip())


def rows(page: Any, table: str) -> int:
    return int(page.locator(f"#{table} tbody tr").count())


# --- the tests ----------------------------------------------------------------------------------------------


def test_the_dashboard_loads_offline_and_draws_every_chart(session: Session, server: Server, shown: Shown) -> None:
    page = session.open()
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.title() == "数据共享交换平台监测看板"
    assert page.is_visible("#login") and not page.is_visible("#board")
    session.shot(page, "01-login")
    login(page, shown.tokens["city_admin"])
    query = ready(page, department="")
    assert (
        page.evaluate("() => window.sessionStorage.length") == 1
        and page.evaluate("() => window.localStorage.length") == 0
    )
    assert "市大数据中心管理员" in page.inner_text("#who-name") and "市级管理员" in page.inner_text("#who-name")
    # Everything the page loaded came from the server itself.
    paths = {urlsplit(u).path for u in session.loaded}
    assert {
        "/dashboard",
        "/dashboard/assets/app.js",
        "/dashboard/assets/app.css",
        "/dashboard/assets/vendor/echarts.common.min.js",
    } <= paths

    summary = api(server, shown, "monitor/summary", since=query["since"], until=query["until"])
    deliveries = api(server, shown, "monitor/deliveries", since=query["since"], until=query["until"])
    assert summary["deliveries"] > 0 and summary["api_calls"] > 0
    assert number(page, "#k-deliveries") == summary["deliveries"]
    assert number(page, "#k-rows") == summary["rows_delivered"]
    assert number(page, "#k-api") == summary["api_calls"]
    assert number(page, "#k-pending") == sum(summary["pending_applications"].values())
    assert number(page, "#k-notes") == summary["notifications_failed"] > 0

    for chart in CHARTS:
        assert drawn(page, chart) > 0, chart
        assert page.get_attribute(f"#{chart}", "data-rendered") == "true"
    per_day = by_name(series(page, "chart-deliveries"))
    assert per_day["成功"] == [d["succeeded"] for d in deliveries["per_day"]]
    assert per_day["失败"] == [d["failed"] for d in deliveries["per_day"]]
    assert per_day["交付行数"] == [d["rows"] for d in deliveries["per_day"]]
    assert sum(per_day["成功"]) == summary["deliveries_succeeded"] and sum(per_day["失败"]) == 1
    assert len(x_axis(page, "chart-deliveries")) == 30
    latency = by_name(series(page, "chart-latency"))
    assert any(v is not None for v in latency["交付 p95"]) and any(v is not None for v in latency["接口 p50"])
    calls = by_name(series(page, "chart-api"))
    assert sum(calls["成功"]) + sum(calls["失败"]) == summary["api_calls"]
    pending = by_name(series(page, "chart-pending"))
    assert sum(pending["已逾期"]) == summary["pending_applications"]["overdue"] == 1
    assert sum(pending["未到期"]) == summary["pending_applications"]["on_time"] == 1
    consumers = api(server, shown, "monitor/consumers", since=query["since"], until=query["until"])
    shown_rows = by_name(series(page, "chart-consumers"))
    assert sorted(shown_rows["文件/库表交付行数"]) == sorted(c["rows"] for c in consumers["consumers"])
    scores = series(page, "chart-assessment")[0]["data"]
    assessed = api(server, shown, "assessment", since=query["since"], until=query["until"])
    assert scores == [d["score"] for d in assessed["departments"] if d["score"] is not None] and scores

    # The tables: pending applications (the overdue first), freshness, failures, notifications, audit.
    assert rows(page, "table-pending") == 2
    assert page.locator("#table-pending tbody tr").first.get_attribute("class") == "overdue"
    assert rows(page, "table-freshness") == 3
    assert set(page.locator("#table-freshness tbody tr td:nth-child(4)").all_inner_texts()) == {"每月", "每日", "实时"}
    assert rows(page, "table-failures") == 1
    notes = api(server, shown, "monitor/notifications", since=query["since"], until=query["until"])
    assert rows(page, "table-notes") == notes["counts"]["failed"] == len(notes["latest_failures"])
    assert rows(page, "table-note-events") == len(notes["by_event"])
    assert f"失败 {notes['counts']['failed']}" in page.inner_text("#note-counts")
    assert f"已发送 {notes['counts']['sent']}" in page.inner_text("#note-counts")
    alerts = api(server, shown, "monitor/alerts", since=query["since"], until=query["until"], limit=30)
    assert rows(page, "table-alerts") == alerts["total"] == len(alerts["latest"]) >= 2
    shown_counts = {b.get_attribute("data-kind"): int(b.inner_text()) for b in page.locator("#alert-counts b").all()}
    assert shown_counts == {c["kind"]: c["count"] for c in alerts["counts"]}
    assert shown_counts["review.overdue"] >= 1 and shown_counts["delivery.failed"] >= 1
    assert rows(page, "table-audit") == 30
    assert rows(page, "table-assessment") == 3
    session.shot(page, "02-city-admin")


def test_the_department_filter_changes_the_numbers(session: Session, server: Server, shown: Shown) -> None:
    page = session.open()
    login(page, shown.tokens["auditor"])
    everything = ready(page, department="")
    total = number(page, "#k-deliveries")
    options = page.locator("#f-department option").all_inner_texts()
    assert options[0] == "全部部门" and "上海市人力资源和社会保障局" in options and len(options) == 4

    transport = shown.departments["transport"]
    page.select_option("#f-department", transport)
    query = ready(page, department=transport)
    expected = api(server, shown, "monitor/summary", since=query["since"], until=query["until"], department=transport)
    assert number(page, "#k-deliveries") == expected["deliveries"] != total
    chart = by_name(series(page, "chart-deliveries"))
    assert sum(chart["成功"]) == expected["deliveries_succeeded"]
    assert rows(page, "table-freshness") == 1  # its own resource only
    assert rows(page, "table-assessment") == 1
    # As provider only: nothing of 交通's was delivered but one file download of its bus stops.
    page.select_option("#f-side", "provider")
    query = ready(page, department=transport, side="provider")
    provider = api(
        server,
        shown,
        "monitor/summary",
        since=query["since"],
        until=query["until"],
        department=transport,
        side="provider",
    )
    assert number(page, "#k-deliveries") == provider["deliveries"]
    session.shot(page, "03-department-transport")
    page.select_option("#f-side", "any")
    page.select_option("#f-department", "")
    back = ready(page, department="", side="any")
    assert back["since"] == everything["since"] and number(page, "#k-deliveries") == total


def test_the_period_filter(session: Session, server: Server, shown: Shown) -> None:
    page = session.open()
    login(page, shown.tokens["city_admin"])
    ready(page, department="")
    page.select_option("#f-range", "7")
    query = ready(page, since=(dt.datetime.now(SH).date() - dt.timedelta(days=6)).isoformat())
    assert len(x_axis(page, "chart-deliveries")) == 7
    week = api(server, shown, "monitor/summary", since=query["since"], until=query["until"])
    assert number(page, "#k-deliveries") == week["deliveries"]
    # A custom period: 15 to 8 days ago holds one download (10 days ago) and nothing else.
    today = dt.datetime.now(SH).date()
    first, last = (today - dt.timedelta(days=15)).isoformat(), (today - dt.timedelta(days=8)).isoformat()
    page.select_option("#f-range", "custom")
    page.fill("#f-since", first)
    page.fill("#f-until", last)
    page.click("#apply")
    query = ready(page, since=first)
    assert query["until"] == (today - dt.timedelta(days=7)).isoformat()
    assert x_axis(page, "chart-deliveries")[0] == first[5:] and len(x_axis(page, "chart-deliveries")) == 8
    custom = api(server, shown, "monitor/deliveries", since=first, until=query["until"])
    assert sum(by_name(series(page, "chart-deliveries"))["成功"]) == custom["totals"]["succeeded"] > 0
    assert number(page, "#k-deliveries") == custom["totals"]["deliveries"]
    assert "时间段：" + first in page.inner_text("#period")
    session.shot(page, "04-custom-period")
    # A reversed period is refused in the page, with a message, and nothing is asked of the server.
    before = len(session.loaded)
    page.fill("#f-since", last)
    page.fill("#f-until", first)
    page.click("#apply")
    page.wait_for_selector("#board-error", state="visible")
    assert "止日期早于起日期" in page.inner_text("#board-error")
    assert len(session.loaded) == before


def test_a_reviewer_sees_its_own_department_only(session: Session, server: Server, shown: Shown) -> None:
    page = session.open()
    login(page, shown.tokens["hrss_reviewer"])
    hrss = shown.departments["hrss"]
    query = ready(page, department=hrss)
    assert page.is_disabled("#f-department")
    assert page.locator("#f-department option").all_inner_texts() == ["上海市人力资源和社会保障局"]
    own = api(server, shown, "monitor/summary", user="hrss_reviewer", since=query["since"], until=query["until"])
    assert number(page, "#k-deliveries") == own["deliveries"]
    assert rows(page, "table-assessment") == 1
    session.shot(page, "05-reviewer-hrss")
    # Logging out and in as the city admin gives back every department.
    page.click("#logout")
    assert page.evaluate("() => window.sessionStorage.length") == 0
    login(page, shown.tokens["city_admin"])
    ready(page, department="")
    assert not page.is_disabled("#f-department") and page.locator("#f-department option").count() == 4


@pytest.mark.parametrize(
    ("token", "said"),
    [("staff", "monitor:read"), ("gdt_aaaaaaaaaaaa_notavalidsecret", "令牌无效"), ("not a token at all", "令牌无效")],
)
def test_tokens_that_may_not_see_it_are_refused_in_chinese(
    session: Session, shown: Shown, token: str, said: str
) -> None:
    page = session.open()
    login(page, shown.tokens["market_staff"] if token == "staff" else token)
    page.wait_for_function(
        "() => document.body.dataset.state === 'login' && !document.getElementById('login-error').hidden"
    )
    assert said in page.inner_text("#login-error")
    assert not page.is_visible("#board")
    assert page.evaluate("() => window.sessionStorage.length") == 0
    # The refused login's 401/403 answers are expected: they are not page errors.
    session.errors[:] = [e for e in session.errors if "401" not in e and "403" not in e]


def test_the_assessment_exports_as_xlsx(session: Session, shown: Shown, tmp_path: Path) -> None:
    page = session.open()
    login(page, shown.tokens["city_admin"])
    query = ready(page, department="")
    with page.expect_download() as info:
        page.click("#export")
    download = info.value
    assert (
        download.suggested_filename
        == f"考核-{query['since']}_{(dt.date.fromisoformat(query['until']) - dt.timedelta(days=1)).isoformat()}.xlsx"
    )
    target = tmp_path / "export.xlsx"
    download.save_as(str(target))
    book = load_workbook(target, read_only=True)
    try:
        assert book.sheetnames[0] == "汇总 Summary" and book.sheetnames[-1] == "说明 About"
        assert len(list(book["汇总 Summary"].iter_rows(values_only=True))) == 4
    finally:
        book.close()


# --- the demo's data --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_server(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """``govdata demo`` in a fresh home, then ``govdata serve`` on it; with the token the demo printed."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    home = tmp_path_factory.mktemp("dashboard-demo") / "home"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("GOVDATA_CATALOG_URL", "GOVDATA_HOME", "GOVDATA_USER", "GOVDATA_DEMO_DATABASE_URL"):
            mp.delenv(name, raising=False)
        result = CliRunner().invoke(app, ["demo", "--home", str(home)], env={"COLUMNS": "250"})
    assert result.exit_code in (0, 2), result.output  # 2: a dataset held by its gate, as the demo shows
    tokens = re.findall(r"\bgdt_[A-Za-z0-9_-]+", result.output)
    assert tokens, f"the demo printed no token for the dashboard: {result.output}"
    running = start_server(home, env=venv_env())
    try:
        yield running, tokens[-1]
    finally:
        running.stop(signal.SIGTERM)


def test_the_dashboard_shows_the_demo(chromium: Any, demo_server: tuple[Server, str]) -> None:
    server, token = demo_server

    def get(path: str, **params: Any) -> Any:
        answer = httpx.get(
            f"{server.base}/exchange/v1/{path}",
            params={k: v for k, v in params.items() if v},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    with browsing(chromium, server) as session:
        page = session.open()
        login(page, token)
        query = ready(page, department="")
        summary = get("monitor/summary", since=query["since"], until=query["until"])
        # The demo delivered 人社's data to two departments (a file and a database).
        assert summary["deliveries_succeeded"] >= 2 and summary["rows_delivered"] > 0
        assert number(page, "#k-deliveries") == summary["deliveries"]
        assert number(page, "#k-rows") == summary["rows_delivered"]
        per_day = by_name(series(page, "chart-deliveries"))
        assert sum(per_day["成功"]) == summary["deliveries_succeeded"]
        assert sum(per_day["交付行数"]) == summary["rows_delivered"]
        assert drawn(page, "chart-deliveries") > 0 and drawn(page, "chart-consumers") > 0
        consumers = by_name(series(page, "chart-consumers"))["文件/库表交付行数"]
        assert len(consumers) == 2 and sum(consumers) == summary["rows_delivered"]
        published = get("monitor/freshness")["resources"]
        assert rows(page, "table-freshness") == len(published) >= 3
        assert rows(page, "table-audit") > 0
        session.shot(page, "10-demo-city-admin")

        # The filter: 市场监管 received one file; the board shows its numbers only.
        market = next(
            value
            for value, label in zip(
                page.locator("#f-department option").evaluate_all("os => os.map(o => o.value)"),
                page.locator("#f-department option").all_inner_texts(),
                strict=True,
            )
            if "市场监督管理局" in label
        )
        page.select_option("#f-department", market)
        query = ready(page, department=market)
        theirs = get("monitor/summary", since=query["since"], until=query["until"], department=market)
        assert number(page, "#k-deliveries") == theirs["deliveries"] < summary["deliveries"]
        assert sum(by_name(series(page, "chart-deliveries"))["成功"]) == theirs["deliveries_succeeded"] >= 1
        session.shot(page, "11-demo-market")
