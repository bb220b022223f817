"""A real distributed run: the demo DAGs on CeleryExecutor with two workers publish what LocalExecutor publishes.

Two Airflow deployments of separate processes (``airflow_cluster.AirflowCluster``) against the
machine's PostgreSQL and Redis, one after the other, each with its own metadata database and
``GOVDATA_HOME``:

1. LocalExecutor: api-server, scheduler (running the tasks) and dag-processor;
2. CeleryExecutor: the same plus two Celery workers ``w1`` and ``w2``, one task slot each.

Each triggers one run of every demo dataset DAG (``govdata__<dataset id>``, three departments ×
five steps) at the same logical date, all at once, and waits for them. Then, from the metadata
database: every run and task instance succeeded, and under Celery both workers executed tasks
(``task_instance.hostname`` carries the worker's name, see ``worker_identity``). With one slot per
worker and three runs queued together, ``w1`` alone can never hold more than one task, so ``w2``
gets work whenever both are up, which the harness checks before triggering. Finally the published
versions are equal: each dataset's version manifest in the exchange store, apart from when it was
written, is the same in both deployments, and its row count is the one ``EXPECTED.json`` gives.

The pytest process never imports Airflow (``tests/dags`` configures it in-process).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.spec import find_specs, load_spec
from tests.integration.airflow_cluster import AirflowCluster, DagRun, TaskInstance
from tests.integration.worker_identity import worker_name

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "datasets"
STEPS = ("collect", "cleanse", "quality", "catalog", "publish")
LOGICAL_DATE = "2026-01-05T00:00:00+00:00"
WORKERS = ("w1", "w2")
#: Manifest fields that say when a version was written, not what it holds.
VOLATILE = ("created_at",)


@dataclass(frozen=True)
class Outcome:
    """What one deployment did, read before it was torn down."""

    executor: str
    runs: list[DagRun]
    task_instances: list[TaskInstance]
    manifests: dict[str, dict[str, Any]]
    diagnostics: str


def _demo_datasets() -> dict[str, int]:
    """Dataset id -> the rows its run must publish (``sources/EXPECTED.json`` beside each spec)."""
    expected: dict[str, int] = {}
    for spec_path in find_specs(DATASETS):
        spec = load_spec(spec_path)
        accounting = json.loads((spec_path.parent / "sources" / "EXPECTED.json").read_text(encoding="utf-8"))
        expected[spec.id] = int(accounting[spec.id]["accounting"]["published"])
    return expected


def _published(govdata_home: Path) -> dict[str, dict[str, Any]]:
    """resource -> the manifest of its latest version in the workspace's exchange store."""
    found: dict[str, dict[str, Any]] = {}
    for resource in sorted(p for p in (govdata_home / "exchange").iterdir() if p.is_dir()):
        versions = sorted(resource.glob("v*/manifest.json"))
        if versions:
            manifest = json.loads(versions[-1].read_text(encoding="utf-8"))
            found[resource.name] = {k: v for k, v in manifest.items() if k not in VOLATILE}
    return found


def _run_demo(executor: str, postgres_url: str, redis_url: str, dataset_ids: list[str]) -> Outcome:
    dag_ids = [f"govdata__{dataset_id}" for dataset_id in dataset_ids]
    with AirflowCluster(
        executor=executor,
        postgres_url=postgres_url,
        redis_url=redis_url,
        workers=len(WORKERS),
        worker_concurrency=1,
        parallelism=4,
        datasets_dir=DATASETS,
        start_timeout=180,
    ) as af:
        af.wait_for_dags(dag_ids, timeout=90)
        runs = af.wait_for_runs(af.trigger_all(dag_ids, logical_date=LOGICAL_DATE), timeout=420)
        return Outcome(
            executor=executor,
            runs=runs,
            task_instances=af.task_instances(dag_ids),
            manifests=_published(af.govdata_home),
            diagnostics=af.diagnostics(),
        )


def _check_succeeded(outcome: Outcome, dag_ids: list[str]) -> None:
    failed_runs = {r.dag_id: r.state for r in outcome.runs if r.state != "success"}
    assert not failed_runs, f"{outcome.executor}: runs did not succeed: {failed_runs}\n{outcome.diagnostics}"
    steps = {dag_id: sorted(t.task_id for t in outcome.task_instances if t.dag_id == dag_id) for dag_id in dag_ids}
    assert steps == {dag_id: sorted(STEPS) for dag_id in dag_ids}, f"{outcome.executor}: task instances {steps}"
    not_ok = [f"{t.dag_id}.{t.task_id}: {t.state}" for t in outcome.task_instances if t.state != "success"]
    assert not not_ok, f"{outcome.executor}: task instances did not succeed: {not_ok}\n{outcome.diagnostics}"


def test_two_celery_workers_publish_what_the_local_executor_publishes(postgres_url: str, redis_url: str) -> None:
    expected_rows = _demo_datasets()
    dataset_ids = sorted(expected_rows)
    dag_ids = [f"govdata__{d}" for d in dataset_ids]
    assert len(dataset_ids) >= 3, f"the demo should have three departments' datasets, found {dataset_ids}"

    local = _run_demo("LocalExecutor", postgres_url, redis_url, dataset_ids)
    _check_succeeded(local, dag_ids)
    celery = _run_demo("CeleryExecutor", postgres_url, redis_url, dataset_ids)
    _check_succeeded(celery, dag_ids)

    # Both workers ran tasks, and every task was run by one of them (a named worker process).
    by_worker = Counter(worker_name(t.hostname) for t in celery.task_instances)
    assert set(by_worker) == set(WORKERS), (
        f"tasks per worker (None: not run by a named worker): {dict(by_worker)}\n{celery.diagnostics}"
    )
    assert not any(worker_name(t.hostname) for t in local.task_instances), "LocalExecutor tasks ran in a worker?"

    # The same versions: identical manifests (content sha256, rows, schema, quality, lineage …).
    assert sorted(local.manifests) == dataset_ids, f"LocalExecutor published {sorted(local.manifests)}"
    assert sorted(celery.manifests) == dataset_ids, f"CeleryExecutor published {sorted(celery.manifests)}"
    for dataset_id in dataset_ids:
        ours, theirs = local.manifests[dataset_id], celery.manifests[dataset_id]
        differing = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        assert not differing, (
            f"{dataset_id}: the versions differ in {differing}: "
            f"LocalExecutor {[ours.get(k) for k in differing]} vs CeleryExecutor {[theirs.get(k) for k in differing]}"
        )
        assert ours["version"] == 1, f"{dataset_id}: one run should publish version 1, not {ours['version']}"
        assert ours["rows"] == expected_rows[dataset_id], f"{dataset_id}: {ours['rows']} rows published"
        assert ours["content_sha256"], f"{dataset_id}: the manifest has no content sha256"
