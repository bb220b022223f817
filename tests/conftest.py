"""Shared fixtures: real services and Debian's Chromium (skipped, or failed in CI, when absent), a scratch workspace."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("GOVDATA_REQUIRE_SERVICES") == "1"

POSTGRES_URL = os.environ.get("GOVDATA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("GOVDATA_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("GOVDATA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _service(name: str, host: str, port: int, url: str) -> str:
    if _reachable(host, port):
        return url
    message = f"{name} is not reachable on {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and GOVDATA_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(f"{message}: start it (see CONTRIBUTING.md) to run this integration test")


@pytest.fixture
def postgres_url() -> str:
    """URL of the machine's PostgreSQL (database ``test``)."""
    return _service("PostgreSQL", "127.0.0.1", 5432, POSTGRES_URL)


@pytest.fixture
def mariadb_url() -> str:
    """URL of the machine's MariaDB/MySQL (database ``test``)."""
    return _service("MariaDB", "127.0.0.1", 3306, MARIADB_URL)


@pytest.fixture
def redis_url() -> str:
    """URL of the machine's Redis (database 0; tests that write pick their own database number)."""
    return _service("Redis", "127.0.0.1", 6379, REDIS_URL)


@pytest.fixture
def unique_name() -> str:
    """A table name no other test run uses."""
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh GOVDATA_HOME for one test."""
    home = tmp_path / "govdata-home"
    monkeypatch.setenv("GOVDATA_HOME", str(home))
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    yield home


@pytest.fixture(autouse=True)
def _no_stray_lineage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lineage off outside ``tests/lineage`` (whose conftest turns it back on and checks it).

    Many tests deliver or run steps with an explicit workspace and no ``GOVDATA_HOME``; their
    lineage files would land in ``./var/lineage`` of whatever folder pytest runs in.
    """
    monkeypatch.setenv("GOVDATA_LINEAGE", "off")


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without interpreter teardown once GX has run on DuckDB (as the CLI does).

    Otherwise DuckDB's nanobind bindings print ~100 "leaked instance" lines after pytest's
    summary, burying the result line. Everything pytest reports is written by now.
    """
    import sys

    if "great_expectations" in sys.modules and _EXIT_STATUS and not hasattr(config, "workerinput"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])


CHROMIUM = os.environ.get("GOVDATA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _no_browser(message: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}, and GOVDATA_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(f"{message}: install it (`apt-get install chromium`) to run the browser tests")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Headless Chromium from the distribution (never a downloaded build), driven by Playwright."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _no_browser(f"Chromium is not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed (a dev dependency: `uv sync`)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An S3-compatible store for the session: OpenStack Swift with s3api on 127.0.0.1 (``tests/integration/s3server.py``)."""
    from tests.integration import s3server

    try:
        s3server.check_installed()
    except s3server.SwiftNotInstalledError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"{exc}, and GOVDATA_REQUIRE_SERVICES=1 requires it", pytrace=False)
        pytest.skip(str(exc))
    with s3server.SwiftS3(tmp_path_factory.mktemp("swift-s3")) as server:
        yield server
