"""Two Airflow DAGs per dataset spec: its pipeline, and the deliveries to its subscribers.

``govdata__<id>`` runs collect >> cleanse >> quality >> catalog >> publish on the schedule its
更新周期 promises (:mod:`pipelines.schedule`); publish emits the dataset's Asset event.
``govdata_deliver__<id>`` is scheduled on that Asset: each event (several queued events make one
run, which delivers the latest version) finds the active database grants of the dataset that are
behind and delivers to each (one mapped task per grant, through :mod:`exchange.delivery_db`:
masked, upserted in one transaction, receipted). A revoked, expired or used-up grant is not due,
so it receives nothing more; file and API grants are pulled by the subscriber. A task that fails
for good raises a ``run.failed`` alert (:func:`exchange.watch.run_failed`).

This file is glue only. At parse time it reads the YAML specs (cheap: PyYAML and pydantic) and
nothing else: no Great Expectations, pandas, DuckDB or ``pipelines.runner`` at module top, no
database or network. Each task imports the runner when it runs, reads the run's logical date
from the context, calls one runner step and returns that step's small report (paths and counts;
the data itself moves between steps on disk, never through XCom).

Where the specs come from: ``GOVDATA_DATASETS_DIR`` if set, else the ``datasets/`` folder next to
this file's folder. Where the runs write: ``GOVDATA_HOME`` (set it for every Airflow component).

A spec that fails to load does not hide the other datasets' DAGs. Airflow records import errors
per *file*, so raising here would take every DAG in this file out of the UI because of one typo.
Instead the bad spec is skipped, logged at ERROR by the DAG processor, emitted as a
:class:`SpecSkippedWarning` (Airflow's DagBag keeps it in ``captured_warnings`` for this file, and
the DAG integrity test fails on it) and listed in :data:`SPEC_ERRORS`. ``govdata validate SPEC``
shows the same message with the file, line and key.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import (
    DAG,
    Asset,
    CronDataIntervalTimetable,
    DeltaDataIntervalTimetable,
    chain,
    get_current_context,
    get_parsing_context,
)
from airflow.sdk.exceptions import AirflowFailException

from pipelines.errors import GovdataError, TerminalError, is_transient
from pipelines.schedule import plan_for
from pipelines.spec import DatasetSpec, find_specs, load_spec

log = logging.getLogger(__name__)

DATASETS_ENV = "GOVDATA_DATASETS_DIR"
DAG_ID_PREFIX = "govdata__"
DELIVER_PREFIX = "govdata_deliver__"
STEPS = ("collect", "cleanse", "quality", "catalog", "publish")
#: The steps after which the reports site is updated (Data Docs of the run, scorecard pages).
SITE_STEPS = ("quality", "publish")

#: Each step task's documentation in the Airflow UI.
STEP_DOCS = {
    "collect": "Copy the source into the immutable landing folder.",
    "cleanse": "Standardise, cast and de-duplicate into staging.",
    "quality": "Run the expectation suite; a held gate fails the run here, without retries.",
    "catalog": "Register the catalog entry and prepare the candidate version.",
    "publish": "Commit the version to the exchange; the asset event tells subscribers.",
}

RETRIES = 2
RETRY_DELAY = dt.timedelta(minutes=5)

#: Spec files that failed to load in the last parse of this file: path -> message.
SPEC_ERRORS: dict[str, str] = {}


class SpecSkippedWarning(UserWarning):
    """A dataset spec could not be loaded, so its DAG was left out."""


def datasets_dir() -> Path:
    """The folder searched for dataset specs."""
    configured = os.environ.get(DATASETS_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parent.parent / "datasets"


def dag_id_for(spec: DatasetSpec) -> str:
    return f"{DAG_ID_PREFIX}{spec.id}"


def asset_for(spec: DatasetSpec) -> Asset:
    """The exchange resource a successful publish updates (subscribers schedule on it)."""
    return Asset(name=f"govdata.{spec.id}", uri=f"govdata://exchange/{spec.id}", group="govdata")


def _department_tag(spec: DatasetSpec, root: Path) -> str:
    """The short department tag: the spec's folder under the datasets root (datasets/<dept>/…)."""
    if spec.path is not None:
        try:
            parts = spec.path.relative_to(root.resolve()).parts
        except ValueError:
            parts = ()
        if len(parts) > 1:
            return parts[0]
    return spec.department.name


def _tags(spec: DatasetSpec, root: Path) -> list[str]:
    return list(dict.fromkeys(["govdata", _department_tag(spec, root), *spec.tags]))


def _doc_md(spec: DatasetSpec) -> str:
    c = spec.catalog
    return "\n".join(
        [
            f"# {spec.name}",
            "",
            f"- **Dataset id:** `{spec.id}`",
            f"- **Department (提供方):** {spec.department.name} (`{spec.department.uscc}`)",
            f"- **Resource code (信息资源代码):** `{c.resource_code}`",
            f"- **Update cycle (更新周期):** {c.update_cycle.value}; schedule: {plan_for(spec).describe()}",
            f"- **Sharing (共享类型):** {c.sharing.type.value}",
            f"- **Spec:** `{spec.path.name if spec.path else '?'}`",
            "",
            "## 信息资源摘要",
            "",
            c.abstract,
            "",
            "Run the same steps outside Airflow with `govdata run SPEC --date YYYY-MM-DD`.",
        ]
    )


def timetable_for(spec: DatasetSpec) -> CronDataIntervalTimetable | DeltaDataIntervalTimetable | None:
    """The Airflow timetable of a spec's plan: data intervals, so each run covers one whole period.

    Raises :class:`TerminalError` naming the spec and key when Airflow cannot read the cron.
    """
    plan = plan_for(spec)
    timetable: CronDataIntervalTimetable | DeltaDataIntervalTimetable | None = None
    if plan.cron is not None:
        timetable = CronDataIntervalTimetable(plan.cron, timezone=plan.timezone)
    elif plan.interval is not None:
        timetable = DeltaDataIntervalTimetable(plan.interval)
    if timetable is not None:
        try:
            timetable.validate()
        except Exception as exc:
            raise TerminalError(
                f"{spec.path}: schedule.cron {plan.cron!r} is not valid: {exc}",
                hint="write five fields (minute hour day-of-month month day-of-week), e.g. '0 2 * * *'",
            ) from exc
    return timetable


def _logical_date(context: Any, timezone: str) -> dt.datetime:
    """The run key: the data interval's start (the logical date), in the dataset's time zone.

    On a schedule and in a backfill the logical date is the start of the period the run covers;
    for a manual run it is the date the user asked for, and Airflow 3 lets a manual run have no
    logical date at all, hence ``run_after``. In the dataset's zone the daily period of
    24 November starts at local midnight, so its key is ``2026-11-24``, as from the CLI.
    """
    from zoneinfo import ZoneInfo

    value: dt.datetime | None = context.get("logical_date") or context.get("data_interval_start")
    if value is None:
        value = context["dag_run"].run_after
    return value.astimezone(ZoneInfo(timezone))


def _lineage_parent(context: Any) -> Any:
    """The DAG run as the OpenLineage parent of the step's events (None: the core's own run parent)."""
    from pipelines import lineage

    dag_run = context.get("dag_run")
    dag_id, run_id = getattr(dag_run, "dag_id", None), getattr(dag_run, "run_id", None)
    if not dag_id or not run_id:
        return None
    return lineage.Parent.of(str(dag_id), str(run_id))


def run_step(step: str, spec_path: str, timezone: str = "Asia/Shanghai") -> dict[str, Any]:
    """Run one runner step for the current task's period, mapping errors to Airflow's.

    Only transient errors (a database or network that went away, a lock held) are retried;
    terminal ones (a held quality gate, a bad spec or source) and unexpected ones (a bug: the
    same input fails the same way) fail the task at once, so a retry never hides a defect.
    """
    from pipelines import runner  # heavy (DuckDB; GX in quality): only when a task runs

    step_fn: Callable[..., dict[str, Any]] = getattr(runner, step)
    context = get_current_context()
    logical_date = _logical_date(context, timezone)
    log.info("govdata %s of %s for %s", step, spec_path, logical_date.isoformat())
    try:
        report = step_fn(spec_path, logical_date, lineage_parent=_lineage_parent(context))
    except TerminalError as exc:  # QualityGateHeld is one: nothing was published, do not retry
        raise AirflowFailException(str(exc)) from exc
    except Exception as exc:
        if not is_transient(exc):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        log.warning("govdata %s failed (will be retried if attempts remain): %s", step, exc)
        raise
    finally:
        if step in SITE_STEPS:  # a held gate ends the run at quality; a publish ends it for good
            _update_site(spec_path, logical_date)
    # The report is small by contract; round-trip it so an odd scalar cannot break the XCom push.
    safe: dict[str, Any] = json.loads(json.dumps(report, ensure_ascii=False, default=str))
    return safe


def publish_step(spec_path: str, timezone: str, asset: Asset) -> dict[str, Any]:
    """The publish step; the version it published rides on the Asset event for the subscribers' DAG."""
    report = run_step("publish", spec_path, timezone)
    extra = {k: report.get(k) for k in ("status", "version", "uri", "rows", "content_sha256")}
    get_current_context()["outlet_events"][asset].extra = extra
    return report


def _update_site(spec_path: str, logical_date: dt.datetime) -> None:
    """Bring the reports site up to date with this run (best effort: never fails the task)."""
    from pipelines import runner, site

    try:
        ctx = runner.RunContext.make(spec_path, logical_date, None)
        site.after_run(ctx.workspace, ctx.spec, ctx.run_id)
    except Exception as exc:  # noqa: BLE001 - the site is a view of the run; it never fails the task
        log.warning("the reports site was not updated for %s: %s", spec_path, exc)


def _store() -> Any:
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    return CatalogStore(Workspace.from_env().catalog_url)


def alert_on_failure(context: Any) -> None:
    """Airflow's failure callback: a task that failed for good raises a ``run.failed`` alert (best effort)."""
    ti = context["ti"]
    dag_id = str(ti.dag_id)
    dataset = dag_id.removeprefix(DELIVER_PREFIX).removeprefix(DAG_ID_PREFIX)
    try:
        from exchange.watch import run_failed

        run_failed(
            _store(),
            dataset=dataset,
            dag_id=dag_id,
            run_id=str(ti.run_id),
            task_id=str(ti.task_id),
            try_number=getattr(ti, "try_number", None),
            error=str(context.get("exception") or "failed"),
        )
    except Exception as exc:  # noqa: BLE001 - an alert that cannot be stored must not mask the task's own failure
        log.error("govdata: the run.failed alert for %s/%s was not stored: %s", dag_id, ti.task_id, exc)


def due_deliveries(dataset: str) -> list[list[int]]:
    """The active database grants of ``dataset`` that are behind its latest version (logs the triggering events).

    One argument list per grant (``[[7], [9]]``): the mapped ``deliver`` task's ``op_args``.
    """
    from exchange.delivery_db import due_grants

    events = get_current_context().get("triggering_asset_events") or {}
    versions = sorted({e.extra.get("version") for evs in events.values() for e in evs if e.extra.get("version")})
    grants = due_grants(_store(), dt.datetime.now(dt.UTC), entry=dataset)
    log.info("govdata: %s published version(s) %s; due database grants: %s", dataset, versions or "-", grants)
    return [[grant] for grant in grants]


def deliver_grant(grant_id: int) -> dict[str, Any]:
    """Deliver the latest version to one grant's database; a grant that stopped being active is skipped."""
    from airflow.sdk.exceptions import AirflowSkipException

    from exchange.delivery_db import deliver_to_database
    from exchange.errors import Conflict

    try:
        parent = _lineage_parent(get_current_context())
        receipt = deliver_to_database(_store(), grant_id, actor="airflow", lineage_parent=parent)
    except Conflict as exc:  # revoked, expired or used up since it was found due
        raise AirflowSkipException(str(exc)) from exc
    except TerminalError as exc:
        raise AirflowFailException(str(exc)) from exc
    safe: dict[str, Any] = json.loads(json.dumps(receipt, ensure_ascii=False, default=str))
    if receipt["outcome"] != "succeeded":  # retried with backoff inside already; the receipt says why
        raise AirflowFailException(
            f"delivery of grant {grant_id} (version {receipt['version']}) failed after "
            f"{receipt['attempts']} attempt(s): {receipt['error']}; receipt {receipt['id']}"
        )
    return safe


def build_dag(spec_path: str | Path, *, root: Path | None = None) -> DAG:
    """The DAG of one dataset spec (raises the spec's :class:`~pipelines.errors.SpecError`)."""
    return _build(load_spec(spec_path), root if root is not None else datasets_dir())


def _build(spec: DatasetSpec, root: Path) -> DAG:
    path = str(spec.path)
    owner = spec.department.name or "govdata"
    asset = asset_for(spec)
    plan = plan_for(spec)
    tz = plan.timezone
    timetable = timetable_for(spec)

    with DAG(
        dag_id=dag_id_for(spec),
        description=f"{spec.name} ({spec.department.name})",
        schedule=timetable,
        start_date=plan.start,
        catchup=plan.catchup,
        max_active_runs=1,
        tags=_tags(spec, root),
        doc_md=_doc_md(spec),
        default_args={
            "owner": owner,
            "retries": RETRIES,
            "retry_delay": RETRY_DELAY,
            "on_failure_callback": alert_on_failure,
        },
    ) as dag:
        steps = [
            PythonOperator(task_id=step, python_callable=run_step, op_args=[step, path, tz], doc=STEP_DOCS[step])
            for step in STEPS[:-1]
        ]
        steps.append(
            PythonOperator(
                task_id="publish",
                python_callable=publish_step,
                op_args=[path, tz, asset],
                outlets=[asset],
                doc=STEP_DOCS["publish"],
            )
        )
        chain(*steps)

    return dag


def _build_deliveries(spec: DatasetSpec, root: Path) -> DAG:
    """The DAG that serves ``spec``'s subscribers whenever its Asset is updated."""
    dataset = spec.id
    with DAG(
        dag_id=f"{DELIVER_PREFIX}{dataset}",
        description=f"交付 {spec.name} to its subscribers ({spec.department.name})",
        schedule=[asset_for(spec)],
        start_date=plan_for(spec).start,
        catchup=False,
        max_active_runs=1,
        tags=[*_tags(spec, root), "delivery"],
        doc_md=f"# 交付: {spec.name}\n\nRuns when `{dataset}` publishes; delivers the latest version to every "
        "active database grant that is behind. `govdata exchange deliver --due` does the same by hand.",
        default_args={
            "owner": spec.department.name or "govdata",
            "retries": 0,  # the database delivery retries with backoff itself
            "on_failure_callback": alert_on_failure,
        },
    ) as dag:
        due = PythonOperator(
            task_id="due",
            python_callable=due_deliveries,
            op_args=[dataset],
            doc="The grants to serve: active, database delivery, behind the latest version.",
        )
        PythonOperator.partial(
            task_id="deliver",
            python_callable=deliver_grant,
            doc="Deliver to one grant (masked, upserted in one transaction, receipted).",
        ).expand(op_args=due.output)

    return dag


def _skip(spec_path: Path, exc: GovdataError) -> None:
    SPEC_ERRORS[str(spec_path)] = str(exc)
    log.error("govdata: skipped dataset spec %s: %s", spec_path, exc)
    warnings.warn(f"skipped dataset spec {spec_path}: {exc}", SpecSkippedWarning, stacklevel=2)


def build_dags(root: Path | None = None) -> dict[str, DAG]:
    """Two DAGs (pipeline, deliveries) per loadable spec under ``root``; bad specs are skipped and reported."""
    root = root if root is not None else datasets_dir()
    SPEC_ERRORS.clear()
    dags: dict[str, DAG] = {}
    if not root.is_dir():
        log.warning("govdata: no datasets folder at %s (set %s)", root, DATASETS_ENV)
        return dags
    seen: dict[str, Path] = {}
    # A task process parses this file to find its own DAG: build only that one (Airflow's
    # parsing context), not the whole city's, so a task does not wait for 1,000 DAGs to be built.
    wanted = get_parsing_context().dag_id
    for spec_path in find_specs(root):
        try:
            spec = load_spec(spec_path)
            if spec.id in seen:
                raise TerminalError(
                    f"{spec_path}: dataset id {spec.id!r} is already used by {seen[spec.id]}",
                    hint="dataset ids must be unique in the city; rename one of them",
                )
        except GovdataError as exc:
            _skip(spec_path, exc)
            continue
        if wanted is not None and wanted not in (f"{DAG_ID_PREFIX}{spec.id}", f"{DELIVER_PREFIX}{spec.id}"):
            seen[spec.id] = spec_path
            continue
        try:
            dag = _build(spec, root)
        except GovdataError as exc:
            _skip(spec_path, exc)
            continue
        seen[spec.id] = spec_path
        dags[dag.dag_id] = dag
        deliveries = _build_deliveries(spec, root)
        dags[deliveries.dag_id] = deliveries
    return dags


# Module-level names are how Airflow finds the DAGs (DAGs made in a `with` block also auto-register).
globals().update(build_dags())
