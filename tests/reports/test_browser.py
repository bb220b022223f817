"""Acceptance: the reports site in headless Chromium with every network request refused.

The pages are opened from ``file://``; any request for another scheme is aborted and recorded,
and a recorded request fails the test. Screenshots go to ``$GOVDATA_TEST_ARTIFACTS/reports-site``
(default: the test's temporary folder); the test prints where.

Chromium is the distribution's (``/usr/bin/chromium``, Debian package ``chromium``), never a
downloaded browser build. Without it the tests skip, unless ``GOVDATA_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.reports.conftest import DATES, Demo
from tests.reports.test_site import DATASETS, run_page


@dataclass
class Browser:
    context: Any
    shots: Path
    refused: list[str] = field(default_factory=list)  # requests for anything but file://
    errors: list[str] = field(default_factory=list)  # page errors and console errors

    def open(self, path: Path) -> Any:
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{path.name}: {exc}"))
        page.on("console", lambda m: self.errors.append(f"{path.name}: {m.text}") if m.type == "error" else None)
        page.goto(path.as_uri(), wait_until="load")
        return page

    def shot(self, page: Any, name: str) -> Path:
        target = self.shots / f"{name}.png"
        page.screenshot(path=str(target), full_page=True)
        return target


@pytest.fixture
def browser(chromium: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Browser]:
    base = Path(os.environ["GOVDATA_TEST_ARTIFACTS"]) if os.environ.get("GOVDATA_TEST_ARTIFACTS") else tmp_path
    shots = base / "reports-site" / request.node.name
    shots.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, service_workers="block")
    session = Browser(context, shots)

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith("file://"):
            route.continue_()
        else:
            session.refused.append(url)
            route.abort()

    context.route("**/*", guard)
    try:
        yield session
    finally:
        context.close()
        print(f"screenshots: {shots}")
    assert session.refused == [], f"the site tried to reach the network: {session.refused}"
    assert session.errors == [], f"errors in the pages: {session.errors}"


def _icons(page: Any, selector: str) -> list[dict[str, Any]]:
    """Size, font and glyph of the icons matching ``selector``."""
    return list(
        page.eval_on_selector_all(
            selector,
            """els => els.map(el => {
                const box = el.getBoundingClientRect();
                const before = getComputedStyle(el, '::before');
                return {width: box.width, height: box.height, font: before.fontFamily, glyph: before.content};
            })""",
        )
    )


def _font_awesome_loaded(page: Any) -> bool:
    return bool(
        page.evaluate(
            """async () => {
                await document.fonts.ready;
                return [...document.fonts].some(f => f.family.includes('Font Awesome') && f.status === 'loaded');
            }"""
        )
    )


def test_the_data_docs_index_lists_every_run_with_its_status_icon(demo: Demo, browser: Browser) -> None:
    page = browser.open(demo.site / "datadocs" / "index.html")
    rows = page.locator("table.ge-index-page-validation-results-table tbody tr")
    rows.first.wait_for(state="visible")
    assert rows.count() == len(DATASETS) * len(DATES)
    text = page.locator("table.ge-index-page-validation-results-table").inner_text()
    for dataset in DATASETS:
        assert dataset in text
    for date in DATES:
        assert date in text
    icons = _icons(page, "table.ge-index-page-validation-results-table tbody tr i.fas")
    assert len(icons) == rows.count()
    assert all(
        i["width"] > 0 and i["height"] > 0 and "Font Awesome" in i["font"] and i["glyph"] not in ("none", "")
        for i in icons
    )
    assert _font_awesome_loaded(page)
    browser.shot(page, "datadocs-index")

    page.locator("table.ge-index-page-validation-results-table tbody tr").first.click()  # GX's row link
    page.wait_for_load_state("load")
    assert "/datadocs/validations/" in page.url


def test_a_run_page_shows_the_results_masked_with_chinese_names(demo: Demo, browser: Browser) -> None:
    page = browser.open(run_page(demo.site, "hrss_insured_persons", DATES[-1]))
    header = page.locator(".govdata-header")
    header.wait_for(state="visible")
    assert "上海市城镇职工基本养老保险参保人员信息" in header.inner_text()
    page.locator(".govdata-header summary").first.click()
    assert page.locator(".govdata-header td", has_text="公民身份号码").first.is_visible()
    passed = _icons(page, "i.fa-check-circle")
    failed = _icons(page, "i.fa-times")
    assert passed and failed
    assert all(i["width"] > 0 and "Font Awesome" in i["font"] for i in passed + failed)
    assert _font_awesome_loaded(page)
    assert page.get_by_text("***").first.is_visible()  # a failing ID or mobile, masked
    browser.shot(page, "run-page")


def _chart_marks(page: Any, chart: str) -> dict[str, int]:
    page.locator(f"#{chart}[data-rendered='true'] svg").first.wait_for(state="attached", timeout=30_000)
    return dict(
        page.eval_on_selector(
            f"#{chart} svg",
            """svg => ({
                lines: [...svg.querySelectorAll('.mark-line.role-mark path')].filter(p => (p.getAttribute('d') || '').length > 2).length,
                points: svg.querySelectorAll('.mark-symbol.role-mark path').length,
            })""",
        )
    )


def test_the_scorecard_pages_draw_their_charts(demo: Demo, browser: Browser) -> None:
    page = browser.open(demo.site / "datasets" / "market_enterprise_registry.html")
    overall = _chart_marks(page, "chart-overall")
    assert overall["lines"] == 1 and overall["points"] == len(DATES)
    dimensions = _chart_marks(page, "chart-dimensions")
    assert dimensions["lines"] >= 4 and dimensions["points"] >= 4 * len(DATES)
    assert page.locator("table.grid td", has_text="030600").first.is_visible()
    browser.shot(page, "dataset-scorecard")

    page.get_by_role("link", name="上海市市场监督管理局").first.click()
    page.wait_for_load_state("load")
    assert "/departments/" in page.url
    assert _chart_marks(page, "chart-datasets")["points"] == len(DATES)
    browser.shot(page, "department-scorecard")

    landing = browser.open(demo.site / "index.html")
    assert landing.locator("table.grid i.fa-check-circle").first.is_visible()
    assert _font_awesome_loaded(landing)
    browser.shot(landing, "landing")
