"""The watch (巡检): alerts for stale resources, overdue reviews and failed deliveries, once each.

Runs over the monitoring scenario (three weeks of exchange activity, with an overdue review, a
failed database delivery and resources past their update cycle) through the CLI and the API,
and checks the alerts against the raw rows: exactly the late resources, the overdue
applications and the failed receipts; a second pass raises nothing; the webhook events go to
the departments that listen; each department sees only its own alerts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from catalog.models import Version
from exchange import monitoring, notify
from exchange.models import Alert, Delivery, Notification
from exchange.service import create_app
from exchange.watch import raise_alert, run_failed
from pipelines.cli import app
from tests.exchange.conftest_exchange import HRSS, Platform, build_platform
from tests.exchange.monitor_scenario import ENV, LOOPBACK, Activity, populate, principal

API = "/exchange/v1"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Platform, Activity]:
    platform = build_platform(tmp_path_factory.mktemp("watch") / "home", rows=20)
    activity = populate(platform)
    with platform.store.session() as s:  # hrss's monthly data was last published 70 days ago: late
        for version in s.scalars(select(Version).where(Version.entry_id == HRSS)):
            version.published_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=70)
        s.commit()
    with platform.store.session() as s:  # hrss listens to the watch's events (no receiver: they stay queued)
        notify.register_webhook(
            s,
            principal(platform, "hrss_reviewer"),
            url="http://127.0.0.1:9/watch",
            events=["dataset.stale", "delivery.failed", "run.failed"],
            settings=LOOPBACK,
        )
        s.commit()
    return platform, activity


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("GOVDATA_USER", "GOVDATA_HOME", "GOVDATA_CATALOG_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def client(scenario: tuple[Platform, Activity]) -> Iterator[TestClient]:
    with TestClient(create_app(scenario[0].home)) as c:
        yield c


def _watch(home: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["exchange", "watch", "--home", str(home), *args])
    return result


def _expected(platform: Platform) -> dict[str, set[str]]:
    """What must be alerted, from the monitoring views and the raw receipts."""
    now = dt.datetime.now(dt.UTC)
    with platform.store.session() as s:
        scope = monitoring.make_scope(now=now)
        late = {
            f"dataset.stale:{r['entry']}:v{r['last_version']}"
            for r in monitoring.freshness(s, scope, now=now)["resources"]
            if r["state"] == "late"
        }
        overdue = {
            f"review.overdue:application:{a['id']}"
            for a in monitoring.pending_applications(s, scope, now=now)["applications"]
            if a["state"] == "overdue"
        }
        failed = {
            f"delivery.failed:delivery:{d.id}"
            for d in s.scalars(select(Delivery).where(Delivery.outcome == "failed"))
            if d.started_at >= now - dt.timedelta(days=7)
        }
    return {"dataset.stale": late, "review.overdue": overdue, "delivery.failed": failed}


def test_one_pass_alerts_each_finding_once_and_a_second_pass_nothing(
    scenario: tuple[Platform, Activity], client: TestClient
) -> None:
    platform, _ = scenario
    expected = _expected(platform)
    assert all(expected.values()), f"the scenario must have something of each kind: {expected}"

    first = _watch(platform.home, "--json")
    assert first.exit_code == 0, first.output
    counts = json.loads(first.output)
    assert counts["raised"] == {**{k: len(v) for k, v in expected.items()}, "run.failed": 0}

    with platform.store.session() as s:
        alerts = s.scalars(select(Alert)).all()
        assert {k: {a.key for a in alerts if a.kind == k} for k in expected} == expected
        assert all(a.source == "watch" and a.message for a in alerts)
        overdue = next(a for a in alerts if a.kind == "review.overdue")
        assert "超期" in overdue.message and overdue.detail["working_days_overdue"] >= 1
        # hrss listens to dataset.stale and delivery.failed: one queued event per alert of its own
        hrss = platform.departments["hrss"]
        queued = s.scalars(
            select(Notification).where(Notification.event.in_(["dataset.stale", "delivery.failed"]))
        ).all()
        own = [a for a in alerts if a.department_uscc == hrss and a.kind in ("dataset.stale", "delivery.failed")]
        assert sorted(n.payload["subject"] for n in queued if n.department_uscc == hrss) == sorted(
            a.subject for a in own
        )

    again = _watch(platform.home, "--json")
    assert json.loads(again.output)["raised"] == dict.fromkeys(counts["raised"], 0)
    with platform.store.session() as s:
        assert len(s.scalars(select(Alert)).all()) == sum(len(v) for v in expected.values())

    # the dashboard's API: the city sees every alert; a department its own only
    everything = client.get(f"{API}/monitor/alerts", headers=platform.auth("city_admin"), params={"limit": 200})
    assert everything.status_code == 200, everything.text
    body = everything.json()
    assert body["total"] == sum(len(v) for v in expected.values())
    assert {c["kind"]: c["count"] for c in body["counts"]} == {
        **{k: len(v) for k, v in expected.items()},
        "run.failed": 0,
    }
    market = platform.departments["market"]
    mine = client.get(f"{API}/monitor/alerts", headers=platform.auth("market_reviewer"), params={"limit": 200}).json()
    assert {a["department"] for a in mine["latest"]} <= {market}
    other = client.get(
        f"{API}/monitor/alerts",
        headers=platform.auth("market_reviewer"),
        params={"department": platform.departments["hrss"]},
    )
    assert other.status_code == 403, other.text


def test_run_failed_is_stored_once_per_task(scenario: tuple[Platform, Activity]) -> None:
    platform, _ = scenario
    kw: dict[str, Any] = {
        "dataset": "hrss_insured_persons",
        "dag_id": "govdata__hrss_insured_persons",
        "run_id": "scheduled__2026-11-23T16:00:00+00:00",
        "task_id": "collect",
        "try_number": 3,
        "error": "exports/2026-11-24.csv: file not found",
    }
    assert run_failed(platform.store, **kw) is True
    assert run_failed(platform.store, **kw) is False  # the callback of a re-run of the same try
    with platform.store.session() as s:
        (alert,) = s.scalars(select(Alert).where(Alert.kind == "run.failed")).all()
        assert alert.department_uscc == platform.departments["hrss"]
        assert alert.source == "airflow"
        assert "collect" in alert.message and "file not found" in alert.message
        queued = s.scalars(select(Notification).where(Notification.event == "run.failed")).all()
        assert [n.payload["task_id"] for n in queued] == ["collect"]


@pytest.mark.parametrize("bad", ["nonsense", "fresh", "--check"])
def test_hostile_checks_are_refused_with_the_choices(scenario: tuple[Platform, Activity], bad: str) -> None:
    result = _watch(scenario[0].home, "--check", bad)
    assert result.exit_code != 0
    assert "freshness" in result.output


def test_unknown_alert_kinds_and_naive_times_are_bugs(scenario: tuple[Platform, Activity]) -> None:
    platform, _ = scenario
    with platform.store.session() as s:
        with pytest.raises(ValueError, match="unknown alert kind"):
            raise_alert(s, kind="data.leaked", key="x", department=None, subject="x", message="x", detail={})
        with pytest.raises(ValueError, match="aware"):
            raise_alert(
                s,
                kind="run.failed",
                key="naive",
                department=None,
                subject="x",
                message="x",
                detail={},
                now=dt.datetime(2026, 1, 1),
            )
