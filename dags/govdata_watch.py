"""The watch DAG (巡检): every few minutes, alert stale resources, overdue reviews and failed deliveries.

Glue only: each task runs one check of :mod:`exchange.watch` (also ``govdata exchange watch``),
which stores each alert once (shown on the exchange dashboard) and queues it as a webhook
event for the department it concerns. ``GOVDATA_WATCH_MINUTES`` sets the interval (default 15).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from airflow.sdk import DAG, CronTriggerTimetable, task

log = logging.getLogger(__name__)

WATCH_DAG_ID = "govdata_watch"
DEFAULT_MINUTES = 15


def _minutes() -> int:
    raw = os.environ.get("GOVDATA_WATCH_MINUTES", "").strip()
    if not raw:
        return DEFAULT_MINUTES
    if not raw.isdigit() or not 1 <= int(raw) <= 59:
        log.error("govdata: GOVDATA_WATCH_MINUTES=%r is not 1 to 59; using %d", raw[:20], DEFAULT_MINUTES)
        return DEFAULT_MINUTES
    return int(raw)


def run_check(name: str) -> dict[str, Any]:
    """One check of the watch against the workspace's platform database; returns its counts."""
    from catalog.store import CatalogStore
    from exchange.watch import run_watch
    from pipelines.workspace import Workspace

    report = run_watch(CatalogStore(Workspace.from_env().catalog_url), (name,))
    return report.as_dict()


with DAG(
    dag_id=WATCH_DAG_ID,
    description="巡检: stale resources, overdue reviews, failed deliveries",
    schedule=CronTriggerTimetable(f"*/{_minutes()} * * * *", timezone="Asia/Shanghai"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["govdata", "watch"],
    doc_md=__doc__,
    default_args={"owner": "govdata", "retries": 1, "retry_delay": dt.timedelta(minutes=1)},
) as watch_dag:

    @task
    def freshness() -> dict[str, Any]:
        """Resources past their update cycle (dataset.stale)."""
        return run_check("freshness")

    @task
    def reviews() -> dict[str, Any]:
        """Applications past their review deadline (review.overdue)."""
        return run_check("reviews")

    @task
    def deliveries() -> dict[str, Any]:
        """Deliveries that failed for good (delivery.failed)."""
        return run_check("deliveries")

    freshness()
    reviews()
    deliveries()
