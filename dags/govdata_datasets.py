"""One Airflow DAG per dataset spec: collect >> cleanse >> quality >> catalog >> publish.

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

from airflow.sdk import DAG, Asset, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from pipelines.errors import GovdataError, TerminalError
from pipelines.spec import DatasetSpec, UpdateCycle, find_specs, load_spec

log = logging.getLogger(__name__)

DATASETS_ENV = "GOVDATA_DATASETS_DIR"
DAG_ID_PREFIX = "govdata__"
STEPS = ("collect", "cleanse", "quality", "catalog", "publish")
#: The steps after which the reports site is updated (Data Docs of the run, scorecard pages).
SITE_STEPS = ("quality", "publish")

#: A fixed date in the past: with ``catchup=False`` only the latest interval is scheduled.
START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
RETRIES = 2
RETRY_DELAY = dt.timedelta(minutes=5)

#: 更新周期 -> Airflow schedule. Kept simple on purpose; a later issue refines the schedules.
SCHEDULES: dict[UpdateCycle, str | None] = {
    UpdateCycle.REALTIME: "@hourly",  # near enough until streaming sources exist
    UpdateCycle.DAILY: "@daily",
    UpdateCycle.WEEKLY: "@weekly",
    UpdateCycle.MONTHLY: "@monthly",
    UpdateCycle.QUARTERLY: "@quarterly",
    UpdateCycle.HALF_YEARLY: "0 0 1 1,7 *",
    UpdateCycle.YEARLY: "@yearly",
    UpdateCycle.OTHER: None,  # triggered by hand or by the CLI
}

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
            f"- **Update cycle (更新周期):** {c.update_cycle.value}",
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


def _logical_date(context: Any) -> dt.datetime:
    """The run key: the logical date, else the data interval start, else when the run was due.

    On a schedule the two coincide; for a manual run the logical date is the date the user asked
    for (a cron data-interval timetable would give the previous interval), and Airflow 3 lets a
    manual run have neither, hence ``run_after``.
    """
    value: dt.datetime | None = context.get("logical_date") or context.get("data_interval_start")
    if value is None:
        value = context["dag_run"].run_after
    return value


def run_step(step: str, spec_path: str) -> dict[str, Any]:
    """Run one runner step for the current task's logical date, mapping errors to Airflow's.

    Terminal errors (a held quality gate, a bad spec or source) fail the task without retries;
    transient and unexpected errors propagate, so Airflow retries them.
    """
    from pipelines import runner  # heavy (DuckDB; GX in quality): only when a task runs

    step_fn: Callable[..., dict[str, Any]] = getattr(runner, step)
    logical_date = _logical_date(get_current_context())
    log.info("govdata %s of %s for %s", step, spec_path, logical_date.isoformat())
    try:
        report = step_fn(spec_path, logical_date)
    except TerminalError as exc:  # QualityGateHeld is one: nothing was published, do not retry
        raise AirflowFailException(str(exc)) from exc
    except GovdataError as exc:
        log.warning("govdata %s failed (will be retried if attempts remain): %s", step, exc)
        raise
    finally:
        if step in SITE_STEPS:  # a held gate ends the run at quality; a publish ends it for good
            _update_site(spec_path, logical_date)
    # The report is small by contract; round-trip it so an odd scalar cannot break the XCom push.
    safe: dict[str, Any] = json.loads(json.dumps(report, ensure_ascii=False, default=str))
    return safe


def _update_site(spec_path: str, logical_date: dt.datetime) -> None:
    """Bring the reports site up to date with this run (best effort: never fails the task)."""
    from pipelines import runner, site

    try:
        ctx = runner.RunContext.make(spec_path, logical_date, None)
        site.after_run(ctx.workspace, ctx.spec, ctx.run_id)
    except Exception as exc:  # noqa: BLE001 - the site is a view of the run; it never fails the task
        log.warning("the reports site was not updated for %s: %s", spec_path, exc)


def build_dag(spec_path: str | Path, *, root: Path | None = None) -> DAG:
    """The DAG of one dataset spec (raises the spec's :class:`~pipelines.errors.SpecError`)."""
    return _build(load_spec(spec_path), root if root is not None else datasets_dir())


def _build(spec: DatasetSpec, root: Path) -> DAG:
    path = str(spec.path)
    owner = spec.department.name or "govdata"
    asset = asset_for(spec)

    with DAG(
        dag_id=dag_id_for(spec),
        description=f"{spec.name} ({spec.department.name})",
        schedule=SCHEDULES[spec.catalog.update_cycle],
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=_tags(spec, root),
        doc_md=_doc_md(spec),
        default_args={"owner": owner, "retries": RETRIES, "retry_delay": RETRY_DELAY},
    ) as dag:

        @task
        def collect() -> dict[str, Any]:
            """Copy the source into the immutable landing folder."""
            return run_step("collect", path)

        @task
        def cleanse() -> dict[str, Any]:
            """Standardise, cast and de-duplicate into staging."""
            return run_step("cleanse", path)

        @task
        def quality() -> dict[str, Any]:
            """Run the expectation suite; a held gate fails the run here, without retries."""
            return run_step("quality", path)

        @task
        def catalog() -> dict[str, Any]:
            """Register the catalog entry and prepare the candidate version."""
            return run_step("catalog", path)

        @task(outlets=[asset])
        def publish() -> dict[str, Any]:
            """Commit the version to the exchange; the asset event tells subscribers."""
            report = run_step("publish", path)
            extra = {k: report.get(k) for k in ("status", "version", "uri", "rows", "content_sha256")}
            get_current_context()["outlet_events"][asset].extra = extra
            return report

        collect() >> cleanse() >> quality() >> catalog() >> publish()

    return dag


def _skip(spec_path: Path, exc: GovdataError) -> None:
    SPEC_ERRORS[str(spec_path)] = str(exc)
    log.error("govdata: skipped dataset spec %s: %s", spec_path, exc)
    warnings.warn(f"skipped dataset spec {spec_path}: {exc}", SpecSkippedWarning, stacklevel=2)


def build_dags(root: Path | None = None) -> dict[str, DAG]:
    """One DAG per loadable spec under ``root``; bad specs are skipped and reported."""
    root = root if root is not None else datasets_dir()
    SPEC_ERRORS.clear()
    dags: dict[str, DAG] = {}
    if not root.is_dir():
        log.warning("govdata: no datasets folder at %s (set %s)", root, DATASETS_ENV)
        return dags
    seen: dict[str, Path] = {}
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
        seen[spec.id] = spec_path
        dag = _build(spec, root)
        dags[dag.dag_id] = dag
    return dags


# Module-level names are how Airflow finds the DAGs (DAGs made in a `with` block also auto-register).
globals().update(build_dags())
