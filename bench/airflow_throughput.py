"""Benchmark: 50 small datasets end to end through Airflow, on LocalExecutor and on CeleryExecutor with two workers.

``make bench-airflow`` (or ``.venv/bin/python bench/airflow_throughput.py [--datasets 50]``) does this:

1. generates ``--datasets`` (default 50) small dataset specs into a work folder: five departments,
   each dataset a CSV of ``--rows`` (default 20) enterprises with valid 统一社会信用代码, its own
   resource code and a three-expectation suite, so every run publishes;
2. for each executor, one after the other, starts a fresh Airflow deployment of separate
   processes (``tests/integration/airflow_cluster.py``: api-server, scheduler, dag-processor and,
   for Celery, the workers; a throwaway PostgreSQL metadata database, an unused Redis database as
   the broker) over those specs, waits until every DAG is parsed and the machine is quiet, then
   triggers one run of every DAG (REST API, one request after the other, all at the same
   logical date) and waits until all runs have finished:

   ``LocalExecutor``   parallelism ``--slots`` (default 4): the scheduler's own worker processes run the tasks;
   ``CeleryExecutor``  ``--workers`` (default 2) workers with ``--concurrency`` (default 2) each,
                       parallelism = workers × concurrency, Redis broker, results in PostgreSQL;

3. reports per executor: wall time from the first trigger until the last run finished,
   datasets/minute and tasks/second; from the metadata database the summed task run time, how
   much of the task slots it filled, the median wait of a task between queued and started, the
   median run time of each step and, for Celery, the tasks each worker ran; the peak memory of
   all processes of the deployment during the runs: the summed PSS (pages shared by forked
   processes divided among them, sampled every 2 s) and the summed RSS (every 0.5 s; counts
   shared pages once per process, so it overstates); the CPU time of the deployment and of
   other processes on the machine meanwhile;
4. writes ``bench/results/airflow_throughput-<UTC>.json`` and ``.md`` and prints the table.

Exit status: 0, 1 when a deployment failed to start or its runs did not finish in time, 3 when a
run failed. Needs PostgreSQL (``--postgres-url``) and, for Celery, Redis (``--redis-url``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _path in (BENCH, REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import run as bench  # noqa: E402  (bench/run.py: the idle wait, machine and commit facts)

from pipelines.identifiers import org_code_check_char, uscc_check_char  # noqa: E402
from tests.dags.helpers import SUITE, spec_dict  # noqa: E402
from tests.integration.airflow_cluster import AirflowCluster, ClusterError, TaskInstance, tree_processes  # noqa: E402
from tests.integration.worker_identity import worker_name  # noqa: E402

RESULTS = BENCH / "results"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
LOGICAL_DATE = "2026-01-05T00:00:00+00:00"
STEPS = ("collect", "cleanse", "quality", "catalog", "publish")
DEPARTMENTS = 5
EXIT_FAILED = 1
EXIT_RUN_FAILED = 3


def _log(message: str) -> None:
    print(f"[airflow-throughput {dt.datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the datasets ------------------------------------------------------------------------------


def _uscc(prefix: str) -> str:
    return prefix + uscc_check_char(prefix)


def generate_datasets(root: Path, count: int, rows: int) -> list[str]:
    """``count`` small dataset specs under ``root/<department>/``; returns their ids."""
    ids = []
    for n in range(count):
        dept = n % DEPARTMENTS
        folder = root / f"dept{dept + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        dataset_id = f"bench_enterprises_{n + 1:03d}"
        organisation = f"MB2F{dept:04d}"
        dept_uscc = _uscc(f"11310000{organisation}{org_code_check_char(organisation)}")
        lines = ["统一社会信用代码,企业名称,成立日期"]
        for r in range(rows):
            org = f"M{n:03d}{r:04d}"
            code = _uscc(f"91310000{org}{org_code_check_char(org)}")
            lines.append(
                f"{code},样例企业{n + 1}-{r + 1}有限公司,20{10 + r % 15:02d}-{1 + r % 12:02d}-{1 + r % 28:02d}"
            )
        (folder / f"{dataset_id}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (folder / f"{dataset_id}.suite.json").write_text(json.dumps({**SUITE, "name": dataset_id}), encoding="utf-8")
        spec = spec_dict(
            dataset_id,
            name=f"样例企业信息 {n + 1}",
            department={"name": f"上海市样例管理局第{dept + 1}处", "uscc": dept_uscc},
            tags=["bench"],
        )
        spec["catalog"] = {
            **spec["catalog"],
            "resource_code": f"101510001/{n + 1:06d}",
            "abstract": "吞吐量基准用的样例企业名录。",
        }
        (folder / f"{dataset_id}.yaml").write_text(
            yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        ids.append(dataset_id)
    return ids


# --- one deployment ------------------------------------------------------------------------------


def _tree_cpu_seconds(pids: list[int]) -> float:
    """CPU time of the process trees under ``pids``: every live process plus what it has reaped."""
    import psutil

    total = 0.0
    for proc in tree_processes(pids):
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def measure(executor: str, args: argparse.Namespace, datasets_dir: Path, dataset_ids: list[str]) -> dict[str, Any]:
    """Start a deployment, run every dataset's DAG once, and return the figures."""
    celery = executor == "CeleryExecutor"
    slots = args.workers * args.concurrency if celery else args.slots
    dag_ids = [f"govdata__{d}" for d in dataset_ids]
    _log(f"{executor}: waiting for a quiet machine, then starting the deployment ({slots} task slots)")
    quiet = bench.wait_until_quiet(args.max_wait)
    started = time.monotonic()
    with AirflowCluster(
        executor=executor,
        postgres_url=args.postgres_url,
        redis_url=args.redis_url if celery else None,
        workers=args.workers,
        worker_concurrency=args.concurrency,
        parallelism=slots,
        datasets_dir=datasets_dir,
        keep=args.keep,
        sample_memory=True,
    ) as af:
        ready_s = time.monotonic() - started
        af.wait_for_dags(dag_ids, timeout=300)
        parsed_s = time.monotonic() - started
        _log(f"{executor}: ready in {ready_s:.0f} s, {len(dag_ids)} DAGs parsed after {parsed_s:.0f} s ({af.base})")
        idle = bench.wait_until_quiet(args.max_wait, threshold=0.3)
        pids = af.component_pids
        busy0, _ = bench._cpu_jiffies()
        cpu0 = _tree_cpu_seconds(pids) + sum(os.times()[:2])
        af.reset_memory_peaks()
        t0 = time.monotonic()
        runs = af.trigger_all(dag_ids, logical_date=LOGICAL_DATE)
        triggered_s = time.monotonic() - t0
        finished = af.wait_for_runs(runs, timeout=args.timeout, poll=0.5)
        wall = time.monotonic() - t0
        busy1, _ = bench._cpu_jiffies()
        deployment_cpu = _tree_cpu_seconds(pids) + sum(os.times()[:2]) - cpu0
        peak = af.peak_memory or {"rss": 0, "pss": 0}
        tis = af.task_instances(dag_ids)
        failed_runs = sorted(r.dag_id for r in finished if r.state != "success")
        diagnostics = af.diagnostics() if failed_runs else ""
        base = str(af.base)
    machine_cpu = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
    result = {
        "executor": executor,
        "slots": slots,
        "workers": args.workers if celery else None,
        "concurrency": args.concurrency if celery else None,
        "datasets": len(dag_ids),
        "tasks": len(tis),
        "runs_failed": failed_runs,
        "wall_s": round(wall, 1),
        "trigger_s": round(triggered_s, 2),
        "datasets_per_min": round(len(dag_ids) / wall * 60, 2),
        "tasks_per_s": round(len(tis) / wall, 3),
        "startup_s": round(ready_s, 1),
        "parse_s": round(parsed_s - ready_s, 1),
        "peak_rss_mib": round(peak["rss"] / 2**20),
        "peak_pss_mib": round(peak["pss"] / 2**20),
        "deployment_cpu_s": round(deployment_cpu, 1),
        "other_cpu_s": round(max(0.0, machine_cpu - deployment_cpu), 1),
        "quiet_before_start": quiet,
        "quiet_before_runs": idle,
        **_task_figures(tis, slots, wall),
        "work_folder": base if args.keep else None,
    }
    if diagnostics:
        result["diagnostics"] = diagnostics
    return result


def _task_figures(tis: list[TaskInstance], slots: int, wall: float) -> dict[str, Any]:
    busy = [s for t in tis if (s := _seconds(t.start_date, t.end_date)) is not None]
    waits = [s for t in tis if (s := _seconds(t.queued_dttm, t.start_date)) is not None]
    by_step: dict[str, list[float]] = defaultdict(list)
    for t in tis:
        if (s := _seconds(t.start_date, t.end_date)) is not None:
            by_step[t.task_id].append(s)
    # Who ran each task: a named Celery worker, else the scheduler's own processes (LocalExecutor);
    # a task that never started (upstream failed) has no host.
    workers = Counter((worker_name(t.hostname) or "scheduler") if t.hostname else "not run" for t in tis)
    return {
        "task_states": dict(Counter(t.state or "none" for t in tis)),
        "task_run_s": round(sum(busy), 1),
        "slot_use": round(sum(busy) / (slots * wall), 3) if wall else None,
        "queue_wait_median_s": _median(waits),
        "step_median_s": {step: _median(by_step.get(step, [])) for step in STEPS},
        "tasks_by_worker": dict(sorted(workers.items())),
        "retries": sum(1 for t in tis if t.try_number > 1),
    }


# --- the report ----------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    rows = report["results"]
    lines = [
        f"Airflow throughput ({report['started'][:10]}, commit {report['code'].get('commit')}, "
        f"{report['datasets']} datasets × {len(STEPS)} tasks, {report['rows']} rows each)",
        "",
        "| executor | task slots | wall s | datasets/min | tasks/s | task run s | slot use "
        "| peak PSS (RSS) MiB | deployment CPU s | other CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        slots = f"{r['workers']} × {r['concurrency']}" if r["workers"] else str(r["slots"])
        lines.append(
            f"| {r['executor']} | {slots} | {r['wall_s']:.1f} | {r['datasets_per_min']:.1f} | {r['tasks_per_s']:.2f} "
            f"| {r['task_run_s']:.0f} | {r['slot_use']:.0%} | {r['peak_pss_mib']:,} ({r['peak_rss_mib']:,}) "
            f"| {r['deployment_cpu_s']:.0f} | {r['other_cpu_s']:.0f} |"
        )
    lines += ["", "| executor | " + " | ".join(STEPS) + " | tasks by worker | startup s |", "|---|" + "---:|" * 7]
    for r in rows:
        steps = " | ".join(str(r["step_median_s"][s]) for s in STEPS)
        workers = ", ".join(f"{k} {v}" for k, v in r["tasks_by_worker"].items())
        lines.append(f"| {r['executor']} | {steps} | {workers} | {r['startup_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=50, help="how many dataset DAGs to run (default 50)")
    parser.add_argument("--rows", type=int, default=20, help="rows per dataset's CSV (default 20)")
    parser.add_argument("--slots", type=int, default=4, help="LocalExecutor parallelism (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    parser.add_argument("--concurrency", type=int, default=2, help="task slots per Celery worker (default 2)")
    parser.add_argument("--only", choices=["LocalExecutor", "CeleryExecutor"], action="append")
    parser.add_argument("--postgres-url", default=os.environ.get("GOVDATA_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--redis-url", default=os.environ.get("GOVDATA_TEST_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the runs of one executor")
    parser.add_argument("--max-wait", type=float, default=120, help="seconds to wait for a quiet machine each time")
    parser.add_argument("--keep", action="store_true", help="keep the work folders (generated specs, deployments)")
    args = parser.parse_args(argv)
    if not (0 < args.datasets <= 999 and 0 < args.rows <= 9999):
        parser.error("--datasets must be 1..999 and --rows 1..9999 (the generated codes have room for no more)")

    work = Path(tempfile.mkdtemp(prefix="govdata-airflow-throughput-"))
    started = dt.datetime.now(dt.UTC)
    results: list[dict[str, Any]] = []
    status = 0
    try:
        datasets_dir = work / "datasets"
        dataset_ids = generate_datasets(datasets_dir, args.datasets, args.rows)
        _log(f"{len(dataset_ids)} dataset specs in {datasets_dir}")
        for executor in args.only or ["LocalExecutor", "CeleryExecutor"]:
            try:
                result = measure(executor, args, datasets_dir, dataset_ids)
            except ClusterError as exc:
                _log(f"{executor} failed: {exc}")
                status = EXIT_FAILED
                continue
            results.append(result)
            _log(
                f"{executor}: {result['wall_s']:.1f} s, {result['datasets_per_min']:.1f} datasets/min, "
                f"{result['tasks_per_s']:.2f} tasks/s, peak PSS {result['peak_pss_mib']:,} MiB, "
                f"tasks by worker {result['tasks_by_worker']}"
            )
            if result["runs_failed"]:
                _log(f"{executor}: runs failed: {result['runs_failed']}\n{result.get('diagnostics', '')}")
                status = status or EXIT_RUN_FAILED
    finally:
        if args.keep:
            _log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "datasets": args.datasets,
        "rows": args.rows,
        "logical_date": LOGICAL_DATE,
        "code": bench.code_version(),
        "machine": bench.machine(),
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"airflow_throughput-{stamp}.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
    )
    table = markdown(report)
    (RESULTS / f"airflow_throughput-{stamp}.md").write_text(table, encoding="utf-8")
    print(table)
    return status


if __name__ == "__main__":
    sys.exit(main())
