"""Source datasets named per the OpenLineage naming spec, without secrets; sensitive values never in an event."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import runner
from pipelines.errors import GovdataError
from tests.e2e.test_sensitive_scan import Scanner, secrets_of
from tests.lineage.conftest import DATE, events_of
from tests.unit.specfactory import spec_dict

pytestmark = pytest.mark.usefixtures("no_user_config")

REPO = Path(__file__).resolve().parents[2]
Validate = Callable[[list[dict[str, Any]]], None]


def example(tmp_path: Path, department: str, spec: str) -> Path:
    """A bundled department copied to tmp (its sources beside it)."""
    target = tmp_path / department
    shutil.copytree(REPO / "datasets" / department, target)
    return target / spec


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_no_sensitive_value_of_the_source_is_in_any_event(
    tmp_path: Path, workspace: Path, assert_valid: Validate
) -> None:
    spec_path = example(tmp_path, "hrss", "insured_persons.yaml")
    report = runner.run(spec_path, DATE)
    assert report["status"] == "published" and report["rows"]["quarantined"] > 0  # row-level failures too
    path = workspace / "lineage" / "hrss_insured_persons" / f"{DATE}.jsonl"
    events = events_of(workspace, "hrss_insured_persons")
    assert_valid(events)

    secrets = secrets_of(workspace)
    assert len(secrets) > 100, "the example's sensitive values were not found"
    scanner = Scanner(secrets)
    # The file escapes non-ASCII (\\uXXXX): scan it as written and as decoded.
    decoded = "\n".join(json.dumps(e, ensure_ascii=False) for e in events)
    hits = scanner.text_hits(path.read_text(encoding="utf-8")) | scanner.text_hits(decoded)
    assert not hits, f"{len(hits)} sensitive values in the lineage events"
    planted = sorted(secrets)[0]
    assert scanner.text_hits(decoded + f" {planted} "), "control: the scanner finds a planted value"

    # sensitive columns are named and tagged, never shown
    staged = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(".cleanse"))
    facets = staged["outputs"][0]["facets"]
    assert {"resident_id", "name", "mobile", "address"} <= {f["name"] for f in facets["schema"]["fields"]}
    assert {(t["field"], t["key"]) for t in facets["tags"]["tags"]} == {
        ("resident_id", "sensitive"),
        ("name", "sensitive"),
        ("mobile", "sensitive"),
        ("address", "sensitive"),
    }
    quality = next(e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(".quality"))
    assert any(not a["success"] for a in quality["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"])
    assert [o["name"] for o in quality["outputs"]] == [
        str(workspace.resolve() / "quarantine" / "hrss_insured_persons" / DATE)
    ]


def test_a_sqlite_source_is_its_database_file_and_table(
    tmp_path: Path, workspace: Path, assert_valid: Validate
) -> None:
    spec_path = example(tmp_path, "transport", "bus_stops.yaml")
    runner.collect(spec_path, DATE)
    events = events_of(workspace, "transport_bus_stops")
    assert_valid(events)
    source = events[-1]["inputs"][0]
    database = (spec_path.parent / "sources" / "transport.db").resolve()
    assert (source["namespace"], source["name"]) == (f"sqlite://{database}", "bus_stop")
    assert source["facets"]["dataSource"]["uri"] == f"sqlite://{database}"
    assert source["inputFacets"]["inputStatistics"]["rowCount"] > 0


@pytest.mark.parametrize(
    ("url", "options", "namespace", "name"),
    [
        (
            "postgresql+psycopg://officer:s3cret-Pw@127.0.0.1:{port}/city",
            {"table": "enterprises", "schema": "reg"},
            "postgres://127.0.0.1:{port}",
            "city.reg.enterprises",
        ),
        (
            "mysql+pymysql://officer:s3cret-Pw@127.0.0.1:{port}/city",
            {"table": "enterprises"},
            "mysql://127.0.0.1:{port}",
            "city.enterprises",
        ),
    ],
    ids=["postgres", "mysql"],
)
def test_a_database_source_is_named_by_server_and_table_without_its_credentials(
    tmp_path: Path,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    assert_valid: Validate,
    url: str,
    options: dict[str, str],
    namespace: str,
    name: str,
) -> None:
    port = closed_port()
    monkeypatch.setenv("LINEAGE_TEST_DB_URL", url.format(port=port))
    spec = spec_dict(source={"connector": "sql", "options": {"url_env": "LINEAGE_TEST_DB_URL", **options}})
    spec_path = tmp_path / "db.yaml"
    spec_path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    with pytest.raises(GovdataError, match=r"127\.0\.0\.1"):  # nothing listens: the collect step fails
        runner.collect(spec_path, DATE)

    events = events_of(workspace, spec["id"])
    assert_valid(events)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    for event in events:
        source = event["inputs"][0]
        assert (source["namespace"], source["name"]) == (namespace.format(port=port), name)
    message = events[-1]["run"]["facets"]["errorMessage"]["message"]
    assert f"127.0.0.1:{port}" in message  # the connector's own message: the server, not the login
    text = lineage_text(events)
    assert "s3cret-Pw" not in text and "officer" not in text


def lineage_text(events: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(e, ensure_ascii=False) for e in events)


def test_a_source_that_cannot_be_resolved_still_has_its_fail_event(
    tmp_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch, assert_valid: Validate
) -> None:
    monkeypatch.delenv("LINEAGE_TEST_UNSET_URL", raising=False)
    spec = spec_dict(source={"connector": "sql", "options": {"url_env": "LINEAGE_TEST_UNSET_URL", "table": "t"}})
    spec_path = tmp_path / "unset.yaml"
    spec_path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    with pytest.raises(GovdataError, match="LINEAGE_TEST_UNSET_URL"):
        runner.collect(spec_path, DATE)
    events = events_of(workspace, spec["id"])
    assert_valid(events)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert (events[-1]["inputs"][0]["namespace"], events[-1]["inputs"][0]["name"]) == ("sql", spec["id"])
    assert "LINEAGE_TEST_UNSET_URL" in events[-1]["run"]["facets"]["errorMessage"]["message"]
