"""Subscriptions as Assets: a provider's publish queues its delivery DAG, which serves active database grants.

Real runs under ``dag.test()`` (the real runner, the real exchange, a real SQLite subscriber
database): publish → the Asset event queues ``govdata_deliver__<id>`` in Airflow's metadata DB →
the delivery run writes the version into the subscriber's table → two more publishes queue one
run, which delivers the latest → after revocation a run delivers nothing and the table stays.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
from airflow.utils.session import create_session
from sqlalchemy import select

from catalog.store import CatalogStore
from exchange.models import Alert, Application, Delivery, Grant
from pipelines.spec import load_spec
from pipelines.workspace import Workspace

from .helpers import DAGS_DIR, REPO_DATASETS, SOURCE_CSV, write_spec

DATASET = "published_enterprises"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime.now(dt.UTC)


def _logical(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=SHANGHAI).astimezone(dt.UTC)


def _grant(store: CatalogStore, subscriber: str, db_env: str) -> int:
    """An approved application of ``subscriber`` for the dataset, delivered into its database."""
    target = {"url_env": db_env, "table": "enterprises"}
    with store.session() as s:
        app = Application(
            entry_id=DATASET,
            department_uscc=subscriber,
            applicant="transport_staff",
            items=["uscc", "name", "founded"],
            purpose="企业信息核验",
            scenario="测试",
            delivery_method="database",
            end_date=(NOW + dt.timedelta(days=30)).date(),
            target=target,
            share_type="无条件共享",
            reviewer="city",
            status="approved",
            decided_at=NOW,
            decided_by="city_admin",
        )
        s.add(app)
        s.flush()
        grant = Grant(
            application_id=app.id,
            entry_id=DATASET,
            department_uscc=subscriber,
            items=["uscc", "name", "founded"],
            masking={},
            join_keys=[],
            delivery_method="database",
            target=target,
            granted_by="city_admin",
            expires_at=NOW + dt.timedelta(days=30),
        )
        s.add(grant)
        s.commit()
        return grant.id


def _queued(dag_id: str) -> int:
    with create_session() as session:
        return len(session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag_id)).all())


def _clear_queue(dag_id: str) -> None:
    """What the scheduler does when it creates the asset-triggered run."""
    with create_session() as session:
        for row in session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == dag_id)):
            session.delete(row)


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT uscc, name FROM enterprises ORDER BY uscc").fetchall()


@pytest.mark.slow
def test_publish_queues_the_delivery_which_serves_active_grants_only(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "datasets"
    dept = root / "provider"
    write_spec(dept, DATASET, source={"connector": "csv", "options": {"path": "exports/{ds}.csv"}})
    (dept / "exports").mkdir()
    lines = SOURCE_CSV.splitlines(keepends=True)
    days = [dt.date(2026, 2, 2), dt.date(2026, 2, 3), dt.date(2026, 2, 4), dt.date(2026, 2, 5)]
    for n, day in enumerate(days):  # 2, 3, 4, 5 enterprises
        (dept / "exports" / f"{day.isoformat()}.csv").write_text("".join(lines[: n + 3]), encoding="utf-8")
    home = tmp_path / "govdata-home"
    subscriber_db = tmp_path / "subscriber.db"
    monkeypatch.setenv("GOVDATA_DATASETS_DIR", str(root))
    monkeypatch.setenv("GOVDATA_HOME", str(home))
    monkeypatch.setenv("TRANSPORT_DB_URL", f"sqlite:///{subscriber_db}")
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    bag = DagBag(dag_folder=DAGS_DIR)
    assert bag.import_errors == {}
    provider, delivery = bag.dags[f"govdata__{DATASET}"], bag.dags[f"govdata_deliver__{DATASET}"]

    # version 1, and the Asset event queues one delivery run (dag.test() writes the DAG folder's
    # DAGs to the metadata DB as the DAG processor would, so the scheduler knows the consumer)
    provider.test(logical_date=_logical(days[0]))
    assert _queued(delivery.dag_id) == 1
    store = CatalogStore(Workspace.from_env(home).catalog_url)
    subscriber = load_spec(REPO_DATASETS / "transport" / "bus_stops.yaml")
    store.register(subscriber, source="tests")  # the subscribing department
    grant = _grant(store, subscriber.department.uscc, "TRANSPORT_DB_URL")
    _clear_queue(delivery.dag_id)
    run = delivery.test()
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == {"due": "success", "deliver": "success"}
    assert [r[0] for r in _rows(subscriber_db)] == [line.split(",")[0] for line in lines[1:3]]

    # two more publishes before the next delivery run: one queued run, which delivers the latest
    provider.test(logical_date=_logical(days[1]))
    provider.test(logical_date=_logical(days[2]))
    assert _queued(delivery.dag_id) == 1
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.name == f"govdata.{DATASET}")
        ).all()
        versions = sorted(e.extra["version"] for e in events if e.extra.get("status") == "published")
    assert versions == [1, 2, 3]
    _clear_queue(delivery.dag_id)
    delivery.test()
    assert len(_rows(subscriber_db)) == 4
    with store.session() as s:
        receipts = s.scalars(select(Delivery).where(Delivery.grant_id == grant).order_by(Delivery.id)).all()
        assert [(r.version, r.outcome) for r in receipts] == [(1, "succeeded"), (3, "succeeded")]
        assert s.get(Grant, grant).last_version == 3

    # revoked: the next publish is not delivered, and the subscriber's table keeps version 3
    with store.session() as s:
        s.get(Grant, grant).revoked_at = dt.datetime.now(dt.UTC)
        s.commit()
    provider.test(logical_date=_logical(days[3]))
    run = delivery.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["due"] == "success"
    assert states.get("deliver") in (None, "skipped")  # mapped over no grants
    assert len(_rows(subscriber_db)) == 4
    with store.session() as s:
        assert len(s.scalars(select(Delivery).where(Delivery.grant_id == grant)).all()) == 2


@pytest.mark.slow
def test_a_task_that_fails_for_good_raises_a_run_failed_alert(
    airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "datasets"
    write_spec(root / "provider", "missing_export", source={"connector": "csv", "options": {"path": "none/{ds}.csv"}})
    home = tmp_path / "govdata-home"
    monkeypatch.setenv("GOVDATA_DATASETS_DIR", str(root))
    monkeypatch.setenv("GOVDATA_HOME", str(home))
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    dag = DagBag(dag_folder=DAGS_DIR).dags["govdata__missing_export"]
    # the entry exists (an earlier run registered it), so the alert names its department
    spec = load_spec(root / "provider" / "missing_export.yaml")
    store = CatalogStore(Workspace.from_env(home).catalog_url)
    store.register(spec, source="tests")

    run = dag.test(logical_date=_logical(dt.date(2026, 3, 2)))

    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["collect"] == "failed"
    with store.session() as s:
        (alert,) = s.scalars(select(Alert)).all()
    assert (alert.kind, alert.source, alert.department_uscc) == ("run.failed", "airflow", spec.department.uscc)
    assert alert.subject.startswith("run:govdata__missing_export/") and alert.subject.endswith("/collect")
    assert "none/2026-03-02.csv" in alert.message  # the runner's own message: the file it looked for
