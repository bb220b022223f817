"""One real run: ``dag.test()`` of the sample dataset's DAG publishes a version end to end.

Uses the real runner (DuckDB, GX) against a temporary GOVDATA_HOME and the session's SQLite
Airflow DB; takes ~20 s, most of it importing GX in the quality task.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent
from airflow.utils.session import create_session
from sqlalchemy import select

from .helpers import DAGS_DIR, STEPS

DAY = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
DATASET = "sample_enterprises"


@pytest.mark.slow
def test_sample_dag_publishes_a_version(
    airflow_db: Path, sample_datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "govdata-home"
    monkeypatch.setenv("GOVDATA_HOME", str(home))
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    dag = DagBag(dag_folder=DAGS_DIR).dags[f"govdata__{DATASET}"]

    run = dag.test(logical_date=DAY)

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == dict.fromkeys(STEPS, "success")
    steps = home / "reports" / DATASET / "2026-11-24" / "steps"
    published = json.loads((steps / "publish.json").read_text(encoding="utf-8"))
    assert published["status"] == "published"
    assert published["version"] == 1
    assert published["rows"] == 5  # the sample CSV's five enterprises
    assert Path(published["uri"]).is_dir()
    # the publish task brought the offline reports site up to date with this run
    datadocs = (home / "reports" / "_site" / "datadocs" / "index.html").read_text(encoding="utf-8")
    assert DATASET in datadocs
    assert (home / "reports" / "_site" / "index.html").is_file()

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_dag_id == dag.dag_id)).all()
        assert [(e.source_task_id, e.extra["version"], e.extra["status"]) for e in events] == [
            ("publish", 1, "published")
        ]
