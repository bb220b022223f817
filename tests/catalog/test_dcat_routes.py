"""The DCAT-AP feed where its readers get it: ``GET /catalog.ttl|.jsonld`` and ``govdata catalog export``.

The feed itself (mapping, SHACL, hostile text) is tested in ``test_dcat.py``; here the same demo
catalog must come out of the web service and the CLI byte for byte as the golden files pin it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rdflib import Graph, URIRef
from typer.testing import CliRunner

from catalog.store import CatalogStore
from exchange.service import create_app
from pipelines.cli import app
from pipelines.workspace import Workspace
from tests.catalog.test_dcat import BASE, GOLDEN, demo_store, ds, set_entry

ROUTES = [
    ("/catalog.ttl", "demo_catalog.ttl", "text/turtle"),
    ("/catalog.jsonld", "demo_catalog.jsonld", "application/ld+json"),
]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("GOVDATA_HOME", str(tmp_path / "ws"))
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    ws = Workspace.from_env()
    demo_store(ws.catalog_url)
    return ws


@pytest.mark.parametrize(("path", "golden", "media"), ROUTES)
def test_the_service_serves_the_golden_feed(workspace: Workspace, path: str, golden: str, media: str) -> None:
    with TestClient(create_app(workspace, base_url=BASE)) as client:
        answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(media)
    assert answer.text == (GOLDEN / golden).read_text(encoding="utf-8")


def test_links_follow_the_address_the_request_came_to(workspace: Workspace) -> None:
    with TestClient(create_app(workspace), base_url="http://10.0.0.7:8000") as client:
        answer = client.get("/catalog.ttl")
    graph = Graph().parse(data=answer.text, format="turtle")
    assert (URIRef("http://10.0.0.7:8000/catalog/datasets/hrss_insured_persons"), None, None) in graph


def test_an_entry_withdrawn_is_gone_from_the_public_feed(workspace: Workspace) -> None:
    set_entry(CatalogStore(workspace.catalog_url), "transport_bus_stops", status="withdrawn")
    with TestClient(create_app(workspace, base_url=BASE)) as client:
        graph = Graph().parse(data=client.get("/catalog.ttl").text, format="turtle")
    assert (ds("transport_bus_stops"), None, None) not in graph
    assert (ds("hrss_insured_persons"), None, None) in graph


@pytest.mark.parametrize(
    ("fmt", "golden"), [("dcat-turtle", "demo_catalog.ttl"), ("dcat-jsonld", "demo_catalog.jsonld")]
)
def test_the_cli_exports_the_golden_feed(workspace: Workspace, tmp_path: Path, fmt: str, golden: str) -> None:
    out = tmp_path / "feed.out"
    result = CliRunner().invoke(
        app, ["catalog", "export", "--format", fmt, "--base-url", BASE, "--output", str(out)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == (GOLDEN / golden).read_text(encoding="utf-8")


def test_the_cli_export_as_a_department_user_includes_its_own_drafts(workspace: Workspace, tmp_path: Path) -> None:
    from catalog.lifecycle import add_user

    store = CatalogStore(workspace.catalog_url)
    set_entry(store, "transport_bus_stops", status="draft")
    entry = store.entry("transport_bus_stops")
    assert entry is not None
    with store.session() as s:
        add_user(s, "transport_staff", name="交通委工作人员", role="staff", department=entry.department_uscc)
    feeds = {}
    for who in ("transport_staff", None):
        out = tmp_path / f"{who}.ttl"
        args = ["catalog", "export", "--format", "dcat-turtle", "--base-url", BASE, "--output", str(out)]
        result = CliRunner().invoke(app, [*args, *(["--as", who] if who else [])], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        feeds[who] = Graph().parse(out, format="turtle")
    assert (ds("transport_bus_stops"), None, None) in feeds["transport_staff"]
    assert (ds("transport_bus_stops"), None, None) in feeds[None]  # the local operator sees everything


def test_an_unknown_export_format_names_the_valid_ones(workspace: Workspace) -> None:
    result = CliRunner().invoke(app, ["catalog", "export", "--format", "rdfxml"], env={"COLUMNS": "200"})
    assert result.exit_code != 0
    assert "dcat-turtle" in result.output and "xlsx" in result.output
