"""The run events of a dataset through the CLI and the runner: shape, datasets, parents, order, schemas."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines import lineage, runner
from pipelines.cli import app
from pipelines.workspace import Workspace
from tests.lineage.conftest import DATASET, DATE, STEPS, events_of

pytestmark = pytest.mark.usefixtures("no_user_config")

Validate = Callable[[list[dict[str, Any]]], None]


def names(datasets: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets or []]


def by_step(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["job"]["name"].rsplit(".", 1)[1], e["eventType"]): e for e in events}


def test_a_published_run_has_start_and_complete_for_every_step_with_real_datasets(
    spec_path: Path, workspace: Path, assert_valid: Validate
) -> None:
    result = CliRunner().invoke(app, ["run", str(spec_path), "--date", DATE, "--json"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "published"

    events = events_of(workspace)
    assert_valid(events)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        (f"{DATASET}.{step}", kind) for step in STEPS for kind in ("START", "COMPLETE")
    ]
    assert {e["job"]["namespace"] for e in events} == {lineage.DEFAULT_NAMESPACE}

    # one run id per step execution, shared by its START and COMPLETE; a parent shared by all five
    run_ids = [e["run"]["runId"] for e in events]
    assert run_ids[0::2] == run_ids[1::2] and len(set(run_ids)) == len(STEPS)
    assert all(uuid.UUID(r).version == 7 for r in run_ids)
    parents = {json.dumps(e["run"]["facets"]["parent"], sort_keys=True) for e in events}
    assert len(parents) == 1
    parent = events[0]["run"]["facets"]["parent"]
    assert parent["job"] == {"namespace": "govdata", "name": DATASET, "facets": {}}
    assert parent["run"]["runId"] == lineage.Parent.of(DATASET, DATE).run_id == parent["root"]["run"]["runId"]

    times = [dt.datetime.fromisoformat(e["eventTime"]) for e in events]
    assert all(t.tzinfo is not None for t in times) and times == sorted(times)

    ws = Workspace.from_env()
    landing, staging = ws.landing(DATASET, DATE), ws.staging(DATASET, DATE)
    candidate = staging / runner.CANDIDATE_FILE
    source = spec_path.resolve().parent / f"{DATASET}.csv"
    done = by_step(events)
    expected = {
        "collect": ([("file", str(source))], [("file", str(landing))]),
        "cleanse": ([("file", str(landing))], [("file", str(staging))]),
        "quality": ([("file", str(staging))], []),  # nothing quarantined: no quarantine output
        "catalog": ([("file", str(staging))], [("govdata-catalog", "101510001/000001"), ("file", str(candidate))]),
        "publish": ([("file", str(candidate))], [("govdata-exchange", f"{DATASET}/1")]),
    }
    for step, (inputs, outputs) in expected.items():
        complete = done[(step, "COMPLETE")]
        assert (names(complete["inputs"]), names(complete["outputs"])) == (inputs, outputs), step
        assert complete["job"]["facets"]["jobType"]["processingType"] == "BATCH"
        assert complete["job"]["facets"]["jobType"]["integration"] == "GOVDATA"
        assert complete["job"]["facets"]["jobType"]["jobType"] == "TASK"
        assert complete["run"]["facets"]["nominalTime"]["nominalStartTime"].startswith(DATE)
        assert "errorMessage" not in complete["run"]["facets"]

    collect = done[("collect", "COMPLETE")]
    assert collect["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"] == report["rows"]["collected"] == 5
    assert len(collect["inputs"][0]["facets"]["version"]["datasetVersion"]) == 64  # the source file's sha256
    landed = collect["outputs"][0]
    assert landed["outputFacets"]["outputStatistics"]["rowCount"] == 5
    assert [f["name"] for f in landed["facets"]["schema"]["fields"]] == ["统一社会信用代码", "企业名称", "成立日期"]

    staged = done[("cleanse", "COMPLETE")]["outputs"][0]
    assert [(f["name"], f["type"]) for f in staged["facets"]["schema"]["fields"]] == [
        ("uscc", "VARCHAR"),
        ("name", "VARCHAR"),
        ("founded", "DATE"),
    ]
    assert staged["outputFacets"]["outputStatistics"]["rowCount"] == 5

    checked = done[("quality", "COMPLETE")]["inputs"][0]["inputFacets"]
    assertions = checked["dataQualityAssertions"]["assertions"]
    assert [a["assertion"] for a in assertions] == [
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_unique",
        "max_quarantine_share",
    ]
    assert all(a["success"] for a in assertions)
    assert [a.get("column") for a in assertions] == [None, "uscc", "uscc", None]
    assert checked["dataQualityMetrics"]["rowCount"] == 5
    assert checked["dataQualityMetrics"]["columnMetrics"] == {"uscc": {"nullCount": 0, "quantiles": {}}}

    entry = done[("catalog", "COMPLETE")]["outputs"][0]["facets"]
    assert entry["catalog"]["type"] == "sqlite" and entry["catalog"]["framework"] == "govdata"
    assert "schema" in entry and "documentation" in entry

    published = done[("publish", "COMPLETE")]["outputs"][0]
    assert published["facets"]["version"]["datasetVersion"] == str(report["version"]) == "1"
    assert published["facets"]["version"]["contentSha256"] == report["content_sha256"]
    assert published["outputFacets"]["outputStatistics"]["rowCount"] == report["version_rows"] == 5
    assert published["facets"]["storage"] == {
        **published["facets"]["storage"],
        "storageLayer": "govdata-exchange",
        "fileFormat": "parquet",
    }


def test_a_held_gate_fails_the_quality_step_and_nothing_follows(
    spec_path: Path, workspace: Path, assert_valid: Validate
) -> None:
    suite = spec_path.parent / f"{DATASET}.suite.json"
    held = {
        "name": DATASET,
        "expectations": [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1000}, "meta": {}}],
    }
    suite.write_text(json.dumps(held), encoding="utf-8")
    report = runner.run(spec_path, DATE)
    assert report["status"] == "held"

    events = events_of(workspace)
    assert_valid(events)
    assert [(e["job"]["name"].rsplit(".", 1)[1], e["eventType"]) for e in events] == [
        ("collect", "START"),
        ("collect", "COMPLETE"),
        ("cleanse", "START"),
        ("cleanse", "COMPLETE"),
        ("quality", "START"),
        ("quality", "FAIL"),
    ]
    failed = events[-1]
    assert "held by the quality gate" in failed["run"]["facets"]["errorMessage"]["message"]
    assert failed["run"]["facets"]["errorMessage"]["programmingLanguage"] == "python"
    first = failed["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0]
    assert first["assertion"] == "expect_table_row_count_to_be_between"
    assert (first["success"], first["severity"]) == (False, "error")
    assert first["params"]["element_count"] == 5


def test_steps_run_one_by_one_share_the_run_parent_or_take_the_dag_run(
    spec_path: Path, workspace: Path, assert_valid: Validate
) -> None:
    # Separate calls (as separate Airflow task processes make them) still share one parent...
    runner.collect(spec_path, DATE)
    runner.cleanse(spec_path, DATE)
    # ...unless the glue names the DAG run.
    dag_run = lineage.Parent.of("govdata_lineage_sample", "scheduled__2026-11-23T16:00:00+00:00")
    runner.quality(spec_path, DATE, lineage_parent=dag_run)

    events = events_of(workspace)
    assert_valid(events)
    parents = [e["run"]["facets"]["parent"] for e in events]
    default = lineage.Parent.of(DATASET, DATE)
    assert {p["run"]["runId"] for p in parents[:4]} == {default.run_id}
    assert {(p["job"]["name"], p["run"]["runId"]) for p in parents[4:]} == {(dag_run.name, dag_run.run_id)}
    assert {p["root"]["run"]["runId"] for p in parents[4:]} == {dag_run.run_id}
    # the same DAG run always has the same id: every task process derives it alike
    assert lineage.Parent.of("govdata_lineage_sample", "scheduled__2026-11-23T16:00:00+00:00") == dag_run


def test_a_parent_needs_a_uuid_run_id() -> None:
    with pytest.raises(ValueError, match="is not a UUID"):
        lineage.Parent(name="govdata_x", run_id="scheduled__2026-11-24")
    given = lineage.Parent(name="govdata_x", run_id=str(uuid.uuid4()).upper(), namespace="airflow")
    assert given.run_id == given.run_id.lower() and given.namespace == "airflow"


def test_the_namespace_comes_from_openlineage_namespace(
    spec_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch, assert_valid: Validate
) -> None:
    monkeypatch.setenv(lineage.NAMESPACE_ENV, "shanghai-market")
    runner.collect(spec_path, DATE)
    events = events_of(workspace)
    assert_valid(events)
    assert {e["job"]["namespace"] for e in events} == {"shanghai-market"}
    assert {e["run"]["facets"]["parent"]["job"]["namespace"] for e in events} == {"shanghai-market"}


def test_the_validator_rejects_a_broken_event(validator: Any) -> None:
    """A control: the schemas are really applied, to the event and to each facet."""
    good = {
        "eventTime": "2026-11-24T00:00:00+00:00",
        "eventType": "COMPLETE",
        "producer": "urn:govdata:0",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "govdata", "name": "x.collect"},
    }
    assert validator.errors(good) == []
    assert validator.errors({**good, "run": {"runId": "not-a-uuid"}})
    assert validator.errors({**good, "eventType": "DONE"})
    facet_url = (
        "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
    )
    bad_facet = {"_producer": "urn:govdata:0", "_schemaURL": facet_url}  # datasetVersion is required
    broken = {**good, "outputs": [{"namespace": "file", "name": "/x", "facets": {"version": bad_facet}}]}
    assert any("datasetVersion" in p for p in validator.errors(broken))
    unknown = {**bad_facet, "_schemaURL": "https://openlineage.io/spec/facets/9-9-9/Nope.json#/$defs/Nope"}
    assert validator.errors({**good, "outputs": [{"namespace": "f", "name": "/x", "facets": {"x": unknown}}]})
