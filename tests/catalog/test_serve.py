"""``govdata serve`` and the service it runs: URLs printed, index, health, OpenAPI, clean stop, clear errors."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exchange.service import create_app
from pipelines.workspace import Workspace
from tests.catalog.conftest_search import PUBLISHED, Server, build_catalog, start_server, venv_env

GOVDATA = str(Path(sys.executable).parent / "govdata")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve") / "home"
    build_catalog(Workspace.from_env(folder).catalog_url)
    return folder


@pytest.fixture
def server(home: Path) -> Iterator[Server]:
    running = start_server(home)
    yield running
    running.stop(signal.SIGKILL)


def test_serve_prints_its_urls_and_answers_on_them(server: Server) -> None:
    banner = "\n".join(server.banner)
    for path in ("/api/3/action/package_search", "/catalog.ttl", "/catalog.jsonld", "/openapi.json", "/healthz"):
        assert f"{server.base}{path}" in banner
    assert "Ctrl-C" in banner
    index = httpx.get(f"{server.base}/").json()
    assert index["name"] == "govdata"
    assert index["links"]["ckan_api"] == f"{server.base}/api/3/action/package_search"
    assert httpx.get(index["links"]["health"]).json() == {"status": "ok", "catalog": "ok"}
    listed = httpx.get(f"{server.base}/api/action/package_list").json()["result"]
    assert listed == PUBLISHED


def test_openapi_is_served_and_the_cdn_pages_are_off(server: Server) -> None:
    spec = httpx.get(f"{server.base}/openapi.json").json()
    assert {"/api/3/action/{name}", "/api/action/{name}", "/healthz", "/catalog.ttl", "/catalog.jsonld"} <= set(
        spec["paths"]
    )
    assert set(spec["paths"]["/api/3/action/{name}"]) == {"get", "post"}
    for page in ("/docs", "/redoc"):
        assert httpx.get(f"{server.base}{page}").status_code == 404


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_a_signal(server: Server, sig: int) -> None:
    assert httpx.get(f"{server.base}/healthz").status_code == 200
    code, _, err = server.stop(sig)
    assert code == 0, err
    assert f"stopped ({signal.Signals(sig).name})" in err
    assert "Traceback" not in err
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base}/healthz", timeout=2)


def test_a_port_in_use_is_a_clear_error(home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [GOVDATA, "serve", "--port", str(port), "--home", str(home)],
            capture_output=True,
            text=True,
            env=venv_env(),
            timeout=120,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--port" in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_catalog_database_is_a_clear_error(home: Path) -> None:
    done = subprocess.run(
        [GOVDATA, "serve", "--port", "0", "--home", str(home)],
        capture_output=True,
        text=True,
        env=venv_env(GOVDATA_CATALOG_URL="postgresql+psycopg://nobody@127.0.0.1:1/none"),
        timeout=120,
    )
    assert done.returncode == 1
    assert "not reachable" in done.stderr and "GOVDATA_CATALOG_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_port_is_refused_by_the_option(home: Path) -> None:
    done = subprocess.run(
        [GOVDATA, "serve", "--port", "70000", "--home", str(home)], capture_output=True, text=True, env=venv_env()
    )
    assert done.returncode == 2 and "--port" in done.stderr


def asgi_get(app: Any, *paths: str) -> list[httpx.Response]:
    """GET each path from the ASGI app in-process (no server)."""

    async def fetch() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(fetch())


def test_a_fixed_base_url_is_used_in_links(home: Path) -> None:
    app = create_app(home, base_url="https://data.example.gov.cn/")
    index, show = asgi_get(app, "/", "/api/3/action/package_show?id=traffic_flow")
    assert index.json()["links"]["openapi"] == "https://data.example.gov.cn/openapi.json"
    body = show.json()
    assert body["help"] == "https://data.example.gov.cn/api/3/action/help_show?name=package_show"
    assert body["result"]["resources"][0]["url"].startswith("https://data.example.gov.cn/api/3/action/resource_show?")


def test_the_app_serves_the_workspace_it_was_given(tmp_path: Path) -> None:
    """An empty workspace: a new catalog database, migrated, with nothing in it."""
    app = create_app(Workspace.from_env(tmp_path / "empty"))
    health, listed, found = asgi_get(app, "/healthz", "/api/3/action/package_list", "/api/3/action/package_search")
    assert health.status_code == 200
    assert listed.json()["result"] == []
    assert found.json()["result"]["count"] == 0
    assert (tmp_path / "empty" / "catalog.db").is_file()
