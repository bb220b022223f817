"""DAG integrity: the DAG folder imports cleanly and every dataset gets a well-formed DAG.

Runs over a temporary datasets folder (two small specs written by the test) and over the
repository's own ``datasets/``. A spec that cannot be loaded is skipped by the DAG file and
reported as a warning; these tests turn that warning into a failure.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import Asset, CronDataIntervalTimetable
from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable

from pipelines.spec import find_specs, load_spec

from .helpers import DAG_FILE, DAGS_DIR, REPO_DATASETS, STEPS, write_spec


def _dagbag(monkeypatch: pytest.MonkeyPatch, datasets: Path) -> DagBag:
    monkeypatch.setenv("GOVDATA_DATASETS_DIR", str(datasets))
    return DagBag(dag_folder=DAGS_DIR)


def _skipped_specs(bag: DagBag) -> list[str]:
    return [w for w in bag.captured_warnings.get(str(DAG_FILE), ()) if "SpecSkippedWarning" in w]


@pytest.fixture(params=["sample", "repository"])
def datasets(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The sample datasets folder, then the repository's own ``datasets/``."""
    if request.param == "repository":
        return REPO_DATASETS
    root = tmp_path / "datasets"
    write_spec(root / "sample", "sample_enterprises")
    write_spec(root / "other", "other_enterprises", tags=["sample", "other"])
    return root


@pytest.fixture
def bag(monkeypatch: pytest.MonkeyPatch, datasets: Path) -> DagBag:
    return _dagbag(monkeypatch, datasets)


def test_no_import_errors(bag: DagBag) -> None:
    assert bag.import_errors == {}


def test_every_spec_loads(bag: DagBag) -> None:
    assert _skipped_specs(bag) == []


def test_one_dag_per_spec(bag: DagBag, datasets: Path) -> None:
    specs = find_specs(datasets)
    assert specs, f"no dataset specs under {datasets}"
    ids = [load_spec(p).id for p in specs]
    expected = {f"govdata__{i}" for i in ids} | {f"govdata_deliver__{i}" for i in ids} | {"govdata_watch"}
    assert set(bag.dag_ids) == expected


def _pipelines(bag: DagBag) -> list[Any]:
    return [dag for dag_id, dag in bag.dags.items() if dag_id.startswith("govdata__")]


def test_owner_tags_and_retries(bag: DagBag) -> None:
    for dag in bag.dags.values():
        assert dag.owner not in ("", "airflow"), dag.dag_id
        assert "govdata" in dag.tags, dag.dag_id
        assert len(dag.tags) >= 2, f"{dag.dag_id}: needs a department tag"
    for dag in _pipelines(bag):
        for t in dag.tasks:
            assert t.retries >= 1, f"{dag.dag_id}.{t.task_id}"
            assert t.on_failure_callback, f"{dag.dag_id}.{t.task_id}: a failure must raise an alert"


def test_each_dataset_has_a_delivery_dag_on_its_asset(bag: DagBag) -> None:
    for dag in _pipelines(bag):
        dataset_id = dag.dag_id.removeprefix("govdata__")
        delivery = bag.dags[f"govdata_deliver__{dataset_id}"]
        asset = Asset(name=f"govdata.{dataset_id}", uri=f"govdata://exchange/{dataset_id}", group="govdata")
        assert isinstance(delivery.timetable, AssetTriggeredTimetable)
        assert list(delivery.timetable.asset_condition.objects) == [asset]
        assert [t.task_id for t in delivery.topological_sort()] == ["due", "deliver"]
        assert delivery.get_task("deliver").is_mapped
        assert delivery.get_task("deliver").on_failure_callback
        assert "delivery" in delivery.tags


def test_the_watch_dag_runs_every_check(bag: DagBag) -> None:
    watch = bag.dags["govdata_watch"]
    assert {t.task_id for t in watch.tasks} == {"freshness", "reviews", "deliveries"}
    assert (watch.timetable.expression, str(watch.timetable.timezone)) == ("*/15 * * * *", "Asia/Shanghai")


def test_five_steps_in_order(bag: DagBag) -> None:
    for dag in _pipelines(bag):
        assert [t.task_id for t in dag.topological_sort()] == STEPS, dag.dag_id
        for before, after in itertools.pairwise(STEPS):
            assert dag.get_task(before).downstream_task_ids == {after}, dag.dag_id
        assert dag.get_task("publish").downstream_task_ids == set()


def test_run_settings(bag: DagBag) -> None:
    for dag in bag.dags.values():
        assert dag.catchup is False, dag.dag_id
        assert dag.max_active_runs == 1, dag.dag_id
        assert dag.start_date is not None, dag.dag_id
        assert dag.doc_md, dag.dag_id


def test_publish_emits_the_exchange_asset(bag: DagBag) -> None:
    for dag_id, dag in bag.dags.items():
        if not dag_id.startswith("govdata__"):
            continue
        dataset_id = dag_id.removeprefix("govdata__")
        outlets = dag.get_task("publish").outlets
        assert outlets == [Asset(name=f"govdata.{dataset_id}", uri=f"govdata://exchange/{dataset_id}", group="govdata")]
        for step in STEPS[:-1]:
            assert not dag.get_task(step).outlets, f"{dag_id}.{step}"


def test_sample_dag_details(monkeypatch: pytest.MonkeyPatch, sample_datasets: Path) -> None:
    bag = _dagbag(monkeypatch, sample_datasets)
    daily = bag.dags["govdata__sample_enterprises"]
    assert daily.owner == "上海市样例管理局"
    assert daily.tags == {"govdata", "sample"}
    assert daily.timetable == CronDataIntervalTimetable("0 0 * * *", timezone="Asia/Shanghai")
    assert "测试用的样例企业名录" in (daily.doc_md or "")
    quarterly = bag.dags["govdata__other_enterprises"]
    assert quarterly.tags == {"govdata", "other", "sample", "quarterly"}
    assert quarterly.timetable == CronDataIntervalTimetable("0 0 1 1,4,7,10 *", timezone="Asia/Shanghai")


def test_a_bad_spec_hides_only_itself(monkeypatch: pytest.MonkeyPatch, sample_datasets: Path) -> None:
    bad = sample_datasets / "broken" / "typo.yaml"
    bad.parent.mkdir()
    bad.write_text("id: typo\nname: 错误\ndepartmnet: {}\n", encoding="utf-8")
    bag = _dagbag(monkeypatch, sample_datasets)
    assert bag.import_errors == {}
    assert {d for d in bag.dag_ids if d.startswith("govdata__")} == {
        "govdata__sample_enterprises",
        "govdata__other_enterprises",
    }
    (warning,) = _skipped_specs(bag)
    assert str(bad) in warning
    assert "department" in warning  # the loader's message names the key and suggests the fix


def test_a_repeated_dataset_id_is_skipped(monkeypatch: pytest.MonkeyPatch, sample_datasets: Path) -> None:
    write_spec(sample_datasets / "zz_copy", "sample_enterprises")
    bag = _dagbag(monkeypatch, sample_datasets)
    assert bag.import_errors == {}
    assert len([d for d in bag.dag_ids if d.startswith("govdata__")]) == 2
    (warning,) = _skipped_specs(bag)
    assert "zz_copy" in warning
    assert "already used" in warning


def test_no_datasets_folder_means_no_dags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bag = _dagbag(monkeypatch, tmp_path / "missing")
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"govdata_watch"}


def test_a_task_process_builds_only_its_own_dags(monkeypatch: pytest.MonkeyPatch, sample_datasets: Path) -> None:
    """Airflow's parsing context names the task's DAG: the file builds that dataset's DAGs only."""
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID, _AIRFLOW_PARSING_CONTEXT_TASK_ID

    # As the task runner sets it (monkeypatch, not Airflow's context manager, which leaves it set).
    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, "govdata_deliver__other_enterprises")
    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_TASK_ID, "deliver")
    bag = _dagbag(monkeypatch, sample_datasets)
    assert bag.import_errors == {}
    assert {d for d in bag.dag_ids if d != "govdata_watch"} == {
        "govdata__other_enterprises",
        "govdata_deliver__other_enterprises",
    }
    # the dataset ids of the specs not built still count: a repeated id is still refused
    write_spec(sample_datasets / "zz_copy", "sample_enterprises")
    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, "govdata__other_enterprises")
    bag = _dagbag(monkeypatch, sample_datasets)
    (warning,) = _skipped_specs(bag)
    assert "already used" in warning
