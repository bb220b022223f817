"""One real run: ``dag.test()`` of the sample dataset's DAG publishes a version end to end.

Uses the real runner (DuckDB, GX) against a temporary GOVDATA_HOME and the session's SQLite
Airflow DB; takes ~20 s, most of it importing GX in the quality task.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent
from airflow.utils.session import create_session
from sqlalchemy import select

from .helpers import DAGS_DIR, SOURCE_CSV, STEPS, write_spec

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


@pytest.mark.slow
def test_a_backfill_of_three_days_makes_three_versions_and_again_nothing(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each daily period reads its own export (``{ds}.csv``); running the periods again is a no-op."""
    root = tmp_path / "datasets"
    dept = root / "backfill"
    write_spec(dept, "daily_exports", source={"connector": "csv", "options": {"path": "exports/{ds}.csv"}})
    days = [dt.date(2026, 1, 5), dt.date(2026, 1, 6), dt.date(2026, 1, 7)]
    (dept / "exports").mkdir()
    lines = SOURCE_CSV.splitlines(keepends=True)
    for n, day in enumerate(days):  # the first 3, 4 and 5 enterprises: each day's export differs
        (dept / "exports" / f"{day.isoformat()}.csv").write_text("".join(lines[: n + 4]), encoding="utf-8")
    home = tmp_path / "govdata-home"
    monkeypatch.setenv("GOVDATA_DATASETS_DIR", str(root))
    monkeypatch.setenv("GOVDATA_HOME", str(home))
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    dag = DagBag(dag_folder=DAGS_DIR).dags["govdata__daily_exports"]
    shanghai = ZoneInfo("Asia/Shanghai")

    def backfill() -> list[dict[str, object]]:
        reports = []
        for day in days:
            # the scheduler's logical date of the daily period: local midnight, handed over in UTC
            logical = dt.datetime.combine(day, dt.time(), tzinfo=shanghai).astimezone(dt.UTC)
            run = dag.test(logical_date=logical)
            assert {ti.state for ti in run.get_task_instances()} == {"success"}
            steps = home / "reports" / "daily_exports" / day.isoformat() / "steps"
            reports.append(json.loads((steps / "publish.json").read_text(encoding="utf-8")))
        return reports

    first = backfill()
    assert [(r["status"], r["version"], r["rows"]) for r in first] == [
        ("published", 1, 3),
        ("published", 2, 4),
        ("published", 3, 5),
    ]
    store = home / "exchange" / "daily_exports"
    before = sorted(p.name for p in store.iterdir())

    again = backfill()
    assert [(r["status"], r["version"]) for r in again] == [("unchanged", 1), ("unchanged", 2), ("unchanged", 3)]
    assert sorted(p.name for p in store.iterdir()) == before
