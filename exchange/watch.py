"""The watch (巡检): raise an alert when a resource misses its update cycle, a review its deadline, or a delivery or pipeline task fails.

Each check reads what monitoring already computes (:mod:`exchange.monitoring`) and raises an
:class:`~exchange.models.Alert` at most once per *key*, so running the watch every few minutes
never repeats an alert:

======================  ==========================================  ===================================
kind                    raised for                                  key (once per …)
======================  ==========================================  ===================================
``dataset.stale``       a published resource past its expected      resource and the version it is
                        update (declared 更新周期 vs last version)    late after (a new version clears it)
``review.overdue``      a pending application past its review       application
                        deadline (working days)
``delivery.failed``     a delivery receipt whose outcome is failed  receipt
``run.failed``          a pipeline task that failed for good        DAG run and task
                        (Airflow's failure callback)
======================  ==========================================  ===================================

An alert is stored for the dashboard (``GET /exchange/v1/monitor/alerts``) and, when it concerns
a department, queued as the webhook event of the same name for the department's webhooks that
listen to it (the provider for a stale resource, an overdue conditional review or a failed task;
the provider too for a failed delivery of its data — the subscriber already got
``delivery.failed`` when it happened). An overdue review of unconditional data is the city's
(the department is None): it shows on the dashboard only.

Runs from the Airflow watch DAG (``dags/govdata_watch.py``) or ``govdata exchange watch``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from catalog.models import Entry
from exchange import monitoring, notify
from exchange.models import Alert, Delivery, Grant

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {
    "dataset.stale": "资源未按更新周期更新",
    "review.overdue": "申请审核超期",
    "delivery.failed": "交付失败",
    "run.failed": "数据治理任务失败",
}
#: Failed deliveries older than this are history, not news: the first watch on an old platform
#: does not raise an alert for every failure ever recorded.
DELIVERY_LOOKBACK = dt.timedelta(days=7)
_MAX_TEXT = 2000


@dataclass
class WatchReport:
    """What one pass of the watch found and raised."""

    raised: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    seen: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def as_dict(self) -> dict[str, Any]:
        return {"raised": dict(self.raised), "seen": dict(self.seen), "total_raised": sum(self.raised.values())}


def _now(now: dt.datetime | None) -> dt.datetime:
    moment = now or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ValueError("the watch needs an aware time")
    return moment.astimezone(dt.UTC)


def raise_alert(
    session: Session,
    *,
    kind: str,
    key: str,
    department: str | None,
    subject: str,
    message: str,
    detail: Mapping[str, Any],
    source: str = "watch",
    now: dt.datetime | None = None,
) -> bool:
    """Store the alert unless its key was raised before, and queue its webhook event; True if new.

    The insert and the webhook events commit with the caller's transaction; a concurrent watch
    that raised the same key first wins, and this one raises nothing.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}")
    full_key = f"{kind}:{key}"[:250]
    if session.scalar(sa.select(Alert.id).where(Alert.key == full_key)) is not None:
        return False
    payload = notify.jsonable({"kind": kind, "subject": subject, "message": message, **detail})
    try:
        with session.begin_nested():
            session.add(
                Alert(
                    key=full_key,
                    kind=kind,
                    department_uscc=department,
                    subject=subject[:200],
                    message=message[:_MAX_TEXT],
                    detail=payload,
                    source=source,
                    raised_at=_now(now),
                )
            )
    except sa.exc.IntegrityError:
        return False  # another watch raised it a moment ago
    if department is not None:
        notify.emit(session, department=department, event=kind, payload=payload)
    log.warning("alert %s: %s", kind, message)
    return True


def check_freshness(session: Session, *, now: dt.datetime | None = None, report: WatchReport | None = None) -> int:
    """Alert each published resource that is late against its update cycle, once per last version."""
    moment = _now(now)
    scope = monitoring.make_scope(now=moment)
    raised = 0
    for r in monitoring.freshness(session, scope, now=moment)["resources"]:
        if r["state"] != "late":
            continue
        if report is not None:
            report.seen["dataset.stale"] += 1
        message = (
            f"{r['name']}（{r['entry']}）更新周期为{r['update_cycle']}，最新版本 v{r['last_version']} "
            f"应在 {r['expected_by'].isoformat()} 前更新，已逾期 {r['late_hours']} 小时"
        )
        raised += raise_alert(
            session,
            kind="dataset.stale",
            key=f"{r['entry']}:v{r['last_version']}",
            department=r["department"],
            subject=f"entry:{r['entry']}",
            message=message,
            detail={
                "entry": r["entry"],
                "update_cycle": r["update_cycle"],
                "last_version": r["last_version"],
                "last_published_at": r["last_published_at"],
                "expected_by": r["expected_by"],
                "late_hours": r["late_hours"],
            },
            now=moment,
        )
    return raised


def check_reviews(session: Session, *, now: dt.datetime | None = None, report: WatchReport | None = None) -> int:
    """Alert each pending application past its review deadline, once."""
    moment = _now(now)
    scope = monitoring.make_scope(now=moment)
    raised = 0
    for a in monitoring.pending_applications(session, scope, now=moment, limit=10_000)["applications"]:
        if a["state"] != "overdue":
            continue
        if report is not None:
            report.seen["review.overdue"] += 1
        city = a["reviewer"] != "provider"
        message = (
            f"申请 #{a['id']}（{a['applicant_name'] or a['applicant']} 申请 {a['entry_name'] or a['entry']}）"
            f"应于 {a['due_at'].isoformat()} 前{'由市级平台' if city else '由提供方'}审核，已超期 "
            f"{a['working_days_overdue']} 个工作日"
        )
        raised += raise_alert(
            session,
            kind="review.overdue",
            key=f"application:{a['id']}",
            department=None if city else a["provider"],
            subject=f"application:{a['id']}",
            message=message,
            detail={
                "application": a["id"],
                "entry": a["entry"],
                "applicant": a["applicant"],
                "reviewer": a["reviewer"],
                "due_at": a["due_at"],
                "working_days_overdue": a["working_days_overdue"],
            },
            now=moment,
        )
    return raised


def check_deliveries(session: Session, *, now: dt.datetime | None = None, report: WatchReport | None = None) -> int:
    """Alert each failed delivery of the last :data:`DELIVERY_LOOKBACK` to its provider, once per receipt."""
    moment = _now(now)
    rows = session.execute(
        sa.select(Delivery, Entry.department_uscc, Entry.name)
        .join(Grant, Grant.id == Delivery.grant_id)
        .join(Entry, Entry.id == Grant.entry_id)
        .where(Delivery.outcome == "failed", Delivery.started_at >= moment - DELIVERY_LOOKBACK)
        .order_by(Delivery.id)
    ).all()
    raised = 0
    for receipt, provider, entry_name in rows:
        if report is not None:
            report.seen["delivery.failed"] += 1
        message = (
            f"{entry_name}（{receipt.entry_id}）v{receipt.version} 经{receipt.mode}交付给授权 #{receipt.grant_id} "
            f"失败（{receipt.attempts} 次尝试）：{(receipt.error or '').strip()[:300]}"
        )
        raised += raise_alert(
            session,
            kind="delivery.failed",
            key=f"delivery:{receipt.id}",
            department=provider,
            subject=f"delivery:{receipt.id}",
            message=message,
            detail={
                "delivery": receipt.id,
                "grant": receipt.grant_id,
                "entry": receipt.entry_id,
                "version": receipt.version,
                "mode": receipt.mode,
                "attempts": receipt.attempts,
                "subscriber": receipt.department_uscc,
            },
            now=moment,
        )
    return raised


def run_failed(
    store: Any,
    *,
    dataset: str,
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int | None,
    error: str,
    now: dt.datetime | None = None,
) -> bool:
    """Raise ``run.failed`` for a pipeline task that failed for good (Airflow's failure callback)."""
    with store.session() as s:
        entry = s.get(Entry, dataset)
        department = entry.department_uscc if entry is not None else None
        message = f"{dataset} 的 {task_id} 任务失败（{dag_id} / {run_id}，第 {try_number or 1} 次尝试）：{error[:500]}"
        new = raise_alert(
            s,
            kind="run.failed",
            key=f"{dag_id}:{run_id}:{task_id}",
            department=department,
            subject=f"run:{dag_id}/{run_id}/{task_id}",
            message=message,
            detail={"dataset": dataset, "dag_id": dag_id, "run_id": run_id, "task_id": task_id, "try": try_number},
            source="airflow",
            now=now,
        )
        s.commit()
    return new


def run_watch(store: Any, checks: tuple[str, ...] = ("freshness", "reviews", "deliveries"), **kw: Any) -> WatchReport:
    """One pass of the chosen checks, each in its own transaction; returns what was seen and raised."""
    functions = {"freshness": check_freshness, "reviews": check_reviews, "deliveries": check_deliveries}
    unknown = [c for c in checks if c not in functions]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; choose from {', '.join(functions)}")
    report = WatchReport()
    kinds = {"freshness": "dataset.stale", "reviews": "review.overdue", "deliveries": "delivery.failed"}
    for name in checks:
        with store.session() as s:
            report.raised[kinds[name]] += functions[name](s, report=report, **kw)
            s.commit()
    log.info("watch: %s", report.as_dict())
    return report


def alerts(session: Session, scope: monitoring.Scope, *, limit: int = 50) -> dict[str, Any]:
    """Alerts raised in the period (the department's, or all): counts by kind and the newest."""
    where: list[Any] = [Alert.raised_at >= scope.since, Alert.raised_at < scope.until]
    if scope.department is not None:
        where.append(Alert.department_uscc == scope.department)
    counts = dict.fromkeys(KINDS, 0)
    for kind, n in session.execute(sa.select(Alert.kind, sa.func.count()).where(*where).group_by(Alert.kind)):
        counts[str(kind)] = int(n)
    newest = list(
        session.scalars(
            sa.select(Alert).where(*where).order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(max(1, limit))
        )
    )
    names = monitoring.department_names(session, {a.department_uscc for a in newest if a.department_uscc})
    return {
        "scope": scope.as_dict(),
        "total": sum(counts.values()),
        "counts": [{"kind": k, "name": KINDS[k], "count": counts[k]} for k in KINDS],
        "latest": [
            {
                "id": a.id,
                "kind": a.kind,
                "kind_name": KINDS.get(a.kind, a.kind),
                "department": a.department_uscc,
                "department_name": names.get(a.department_uscc) if a.department_uscc else None,
                "subject": a.subject,
                "message": a.message,
                "source": a.source,
                "raised_at": a.raised_at,
            }
            for a in newest
        ],
    }
