"""Monitoring (监测) over HTTP: every number the monitor endpoints give, recomputed here from the stored rows.

The platform's activity comes from :func:`tests.exchange.monitor_scenario.populate` (three weeks
of applications, deliveries, API calls, objections and webhooks through the exchange's own
functions). Each test reads the raw rows (deliveries, API calls, applications, versions,
notifications, audit events) and computes what the endpoint must answer in plain Python: per-day
buckets in Asia/Shanghai, percentiles with numpy's linear interpolation, freshness from the
update cycle by calendar arithmetic. Then the department filter, the period filter, who may see
what, and hostile query parameters.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog.models import AuditEvent, Entry, User, Version
from exchange import monitoring
from exchange.models import ApiCall, Application, Delivery, Grant, Notification, Objection, Webhook
from exchange.service import create_app
from tests.exchange.conftest_exchange import HRSS, MARKET, TRANSPORT, Platform, build_platform
from tests.exchange.monitor_scenario import ENV, Activity, at, populate

API = "/exchange/v1"
SH = ZoneInfo("Asia/Shanghai")
ENDPOINTS = (
    "summary",
    "deliveries",
    "latency",
    "api-calls",
    "applications",
    "freshness",
    "consumers",
    "audit",
    "notifications",
)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Platform, Activity]:
    platform = build_platform(tmp_path_factory.mktemp("monitoring") / "home", rows=40)
    return platform, populate(platform)


@pytest.fixture(scope="module")
def platform(scenario: tuple[Platform, Activity]) -> Platform:
    return scenario[0]


@pytest.fixture(scope="module")
def activity(scenario: tuple[Platform, Activity]) -> Activity:
    return scenario[1]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("GOVDATA_USER", "GOVDATA_HOME", "GOVDATA_CATALOG_URL", "GOVDATA_ASSESSMENT_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.home)) as c:
        yield c


def get(client: TestClient, platform: Platform, path: str, user: str = "city_admin", **params: Any) -> Any:
    answer = client.get(f"{API}/monitor/{path}", params=params, headers=platform.auth(user))
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- the reference: plain Python over the stored rows --------------------------------------------


def aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def local_day(value: dt.datetime) -> str:
    return value.astimezone(SH).date().isoformat()


def window(since: str, until: str) -> tuple[dt.datetime, dt.datetime]:
    """``[since, until)`` of two dates at 00:00 Asia/Shanghai."""
    start = dt.datetime.combine(dt.date.fromisoformat(since), dt.time(), SH).astimezone(dt.UTC)
    end = dt.datetime.combine(dt.date.fromisoformat(until), dt.time(), SH).astimezone(dt.UTC)
    return start, end


def days_between(since: str, until: str) -> list[str]:
    first, last = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days)]


def rows_of(platform: Platform, model: Any) -> list[Any]:
    with platform.store.session() as s:
        found = list(s.scalars(select(model)))
        s.expunge_all()
        return found


def providers(platform: Platform) -> dict[str, str]:
    """Entry id -> providing department."""
    with platform.store.session() as s:
        return {str(entry): str(dept) for entry, dept in s.execute(select(Entry.id, Entry.department_uscc)).all()}


def involved(platform: Platform, dept: str | None, side: str, entry: str | None, other: str | None) -> bool:
    """Whether a record of ``entry`` with the subscriber/caller ``other`` is in the department filter."""
    if dept is None:
        return True
    provided = providers(platform).get(entry or "") == dept
    if side == "provider":
        return provided
    if side == "subscriber":
        return other == dept
    return provided or other == dept


def expected_deliveries(
    platform: Platform, since: str, until: str, dept: str | None = None, side: str = "any"
) -> list[Delivery]:
    start, end = window(since, until)
    chosen = []
    for d in rows_of(platform, Delivery):
        when = aware(d.finished_at or d.started_at)
        assert when is not None
        if start <= when < end and involved(platform, dept, side, d.entry_id, d.department_uscc):
            chosen.append(d)
    return chosen


def expected_calls(platform: Platform, since: str, until: str, dept: str | None = None, side: str = "any") -> list[Any]:
    start, end = window(since, until)
    return [
        c
        for c in rows_of(platform, ApiCall)
        if start <= aware(c.at) < end and involved(platform, dept, side, c.entry_id, c.department_uscc)  # type: ignore[operator]
    ]


def percentile(values: list[float], q: float) -> float | None:
    return None if not values else round(float(np.percentile(values, q * 100)), 3)


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, abs_tol=0.002)


def period(activity: Activity, first_days_ago: int, last_days_ago: int) -> tuple[str, str]:
    """``since``/``until`` dates covering the local days ``first_days_ago`` … ``last_days_ago`` before now."""
    today = activity.now.astimezone(SH).date()
    return (
        (today - dt.timedelta(days=first_days_ago)).isoformat(),
        (today - dt.timedelta(days=last_days_ago - 1)).isoformat(),
    )


# --- the numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dept", [None, "hrss", "market", "transport"])
@pytest.mark.parametrize("side", ["any", "provider", "subscriber"])
def test_deliveries_and_rows_per_day(
    client: TestClient, platform: Platform, activity: Activity, dept: str | None, side: str
) -> None:
    since, until = period(activity, 25, 0)
    uscc = platform.departments[dept] if dept else None
    params = {"since": since, "until": until, "side": side, **({"department": uscc} if uscc else {})}
    answer = get(client, platform, "deliveries", **params)
    reference = expected_deliveries(platform, since, until, uscc, side)

    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    for d in reference:
        bucket = per_day[local_day(aware(d.finished_at or d.started_at))]  # type: ignore[arg-type]
        bucket["deliveries"] += 1
        bucket[d.outcome] += 1
        bucket["rows"] += d.rows if d.outcome == "succeeded" else 0
    assert [p["day"] for p in answer["per_day"]] == days_between(since, until)
    for p in answer["per_day"]:
        want = per_day.get(p["day"], Counter())
        assert (p["deliveries"], p["succeeded"], p["failed"], p["running"], p["rows"]) == (
            want["deliveries"],
            want["succeeded"],
            want["failed"],
            want["running"],
            want["rows"],
        ), p["day"]
    assert answer["totals"]["deliveries"] == len(reference)
    assert answer["totals"]["rows"] == sum(d.rows for d in reference if d.outcome == "succeeded")
    failures = sorted((d for d in reference if d.outcome == "failed"), key=lambda d: -d.id)
    assert [f["id"] for f in answer["latest_failures"]] == [d.id for d in failures]
    if dept is None:  # the scenario itself: 6 file/API receipts and a failed database delivery
        assert (answer["totals"]["succeeded"], answer["totals"]["failed"]) == (6, 1)
        assert answer["latest_failures"][0]["mode"] == "database"
        assert "MONITOR_TEST_SUBSCRIBER_DB_URL" in answer["latest_failures"][0]["error"]


@pytest.mark.parametrize("dept", [None, "hrss", "transport"])
def test_the_summary_agrees_with_the_rows(
    client: TestClient, platform: Platform, activity: Activity, dept: str | None
) -> None:
    since, until = period(activity, 25, 0)
    uscc = platform.departments[dept] if dept else None
    params = {"since": since, "until": until, **({"department": uscc} if uscc else {})}
    s = get(client, platform, "summary", **params)
    dels = expected_deliveries(platform, since, until, uscc)
    calls = expected_calls(platform, since, until, uscc)
    ok_calls = [c for c in calls if 200 <= c.status < 400]
    assert s["deliveries"] == len(dels)
    assert s["deliveries_succeeded"] == sum(d.outcome == "succeeded" for d in dels)
    assert s["deliveries_failed"] == sum(d.outcome == "failed" for d in dels)
    failed = s["deliveries_failed"]
    assert s["failure_rate"] == (round(failed / len(dels), 4) if dels else None)
    assert s["rows_delivered"] == sum(d.rows for d in dels if d.outcome == "succeeded")
    assert (s["api_calls"], s["api_calls_failed"], s["api_rows"]) == (
        len(calls),
        len(calls) - len(ok_calls),
        sum(c.rows for c in ok_calls),
    )
    finished = [d.latency_ms for d in dels if d.outcome != "running" and d.latency_ms is not None]
    assert s["delivery_latency"]["count"] == len(finished)
    assert close(s["delivery_latency"]["p50"], percentile(finished, 0.5))
    assert close(s["delivery_latency"]["p95"], percentile(finished, 0.95))
    assert close(s["delivery_latency"]["max"], max(finished) if finished else None)
    latencies = [c.latency_ms for c in calls]
    assert close(s["api_latency"]["p95"], percentile(latencies, 0.95))
    assert close(s["api_latency"]["mean"], round(sum(latencies) / len(latencies), 3) if latencies else None)
    notes = [
        n
        for n in rows_of(platform, Notification)
        if (uscc is None or n.department_uscc == uscc) and window(since, until)[0] <= aware(n.created_at)  # type: ignore[operator]
    ]
    assert s["notifications_failed"] == sum(n.status == "failed" for n in notes)
    assert {d["uscc"] for d in s["departments"]} == set(platform.departments.values())
    if dept is None:
        assert s["api_calls"] == 5 and s["api_calls_failed"] == 2  # a wrong key and a malformed page size


def test_latency_per_day_matches_numpy(client: TestClient, platform: Platform, activity: Activity) -> None:
    since, until = period(activity, 25, 0)
    answer = get(client, platform, "latency", since=since, until=until)
    by_day: dict[str, list[float]] = defaultdict(list)
    for d in expected_deliveries(platform, since, until):
        if d.outcome != "running" and d.latency_ms is not None:
            by_day[local_day(aware(d.finished_at or d.started_at))].append(d.latency_ms)  # type: ignore[arg-type]
    api_by_day: dict[str, list[float]] = defaultdict(list)
    for c in expected_calls(platform, since, until):
        api_by_day[local_day(aware(c.at))].append(c.latency_ms)  # type: ignore[arg-type]
    assert [p["day"] for p in answer["per_day"]] == days_between(since, until)
    for p in answer["per_day"]:
        values, api = by_day.get(p["day"], []), api_by_day.get(p["day"], [])
        assert p["delivery_count"] == len(values) and p["api_count"] == len(api)
        assert close(p["delivery_p50"], percentile(values, 0.5)), p
        assert close(p["delivery_p95"], percentile(values, 0.95)), p
        assert close(p["api_p50"], percentile(api, 0.5)), p
        assert close(p["api_p95"], percentile(api, 0.95)), p
    assert sum(p["api_count"] for p in answer["per_day"]) == 5


def test_percentiles_interpolate_like_percentile_cont(platform: Platform, activity: Activity) -> None:
    """p50/p95 over known values (the scenario's API latencies): numpy's linear interpolation, to the ms."""
    calls = rows_of(platform, ApiCall)
    values = sorted(c.latency_ms for c in calls)
    scope = monitoring.make_scope(since=activity.now - dt.timedelta(days=30), until=activity.now + dt.timedelta(days=1))
    with platform.store.session() as s:
        found = monitoring.latency(s, scope)["api"]
    assert found["count"] == len(values) == 5
    for name, q in (("p50", 0.5), ("p95", 0.95)):
        rank = q * (len(values) - 1)
        low, high = values[math.floor(rank)], values[math.ceil(rank)]
        assert close(found[name], round(low + (high - low) * (rank - math.floor(rank)), 3))


def test_api_calls_per_day_and_per_caller(client: TestClient, platform: Platform, activity: Activity) -> None:
    since, until = period(activity, 25, 0)
    answer = get(client, platform, "api-calls", since=since, until=until)
    calls = expected_calls(platform, since, until)
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    per_caller: dict[str | None, Counter[str]] = defaultdict(Counter)
    for c in calls:
        good = 200 <= c.status < 400
        for bucket in (per_day[local_day(aware(c.at))], per_caller[c.department_uscc]):  # type: ignore[arg-type]
            bucket["calls"] += 1
            bucket["succeeded"] += good
            bucket["rows"] += c.rows if good else 0
    for p in answer["per_day"]:
        want = per_day.get(p["day"], Counter())
        assert (p["calls"], p["succeeded"], p["failed"], p["rows"]) == (
            want["calls"],
            want["succeeded"],
            want["calls"] - want["succeeded"],
            want["rows"],
        )
    got = {c["department"]: (c["calls"], c["succeeded"], c["rows"]) for c in answer["callers"]}
    assert got == {k: (v["calls"], v["succeeded"], v["rows"]) for k, v in per_caller.items()}
    transport = platform.departments["transport"]
    assert got[transport] == (3, 3, 15)  # three pages: 5 + 7 + 3 rows
    assert got[None] == (2, 0, 0)  # the wrong key and the malformed page size: refused before the key is read


def test_pending_applications_against_their_deadlines(
    client: TestClient, platform: Platform, activity: Activity
) -> None:
    answer = get(client, platform, "applications")
    with platform.store.session() as s:
        pending = {a.id: a for a in s.scalars(select(Application).where(Application.status == "pending"))}
        s.expunge_all()
    assert answer["total"] == len(pending) == 2
    states = {a["id"]: a["state"] for a in answer["applications"]}
    assert states == {
        activity.applications["hrss_transport_overdue"]: "overdue",
        activity.applications["transport_market_pending"]: "on_time",
    }
    for item in answer["applications"]:
        app = pending[item["id"]]
        due = aware(app.due_at)
        assert due is not None
        assert dt.datetime.fromisoformat(item["due_at"]) == due
        assert (item["state"] == "overdue") == (due < dt.datetime.now(dt.UTC))
    assert answer["applications"][0]["state"] == "overdue"  # the most urgent first
    assert answer["counts"] == {"on_time": 1, "due_soon": 0, "overdue": 1}
    buckets = {b["age"]: b for b in answer["by_age"]}
    assert sum(b["on_time"] + b["due_soon"] + b["overdue"] for b in answer["by_age"]) == 2
    assert buckets["0"]["on_time"] == 1  # submitted minutes ago
    assert buckets[">10"]["overdue"] == 1  # submitted twenty days ago
    # The department filter applies on its side: transport reviews neither, but applied for one.
    transport = platform.departments["transport"]
    as_provider = get(client, platform, "applications", department=transport, side="provider")
    as_applicant = get(client, platform, "applications", department=transport, side="subscriber")
    assert [a["id"] for a in as_provider["applications"]] == [activity.applications["hrss_transport_overdue"]]
    assert [a["id"] for a in as_applicant["applications"]] == [activity.applications["transport_market_pending"]]


def test_due_soon_and_age_against_a_fixed_clock(platform: Platform, activity: Activity) -> None:
    """At a moment just before the on-time application's deadline it is due soon; after it, overdue."""
    with platform.store.session() as s:
        app = s.get(Application, activity.applications["transport_market_pending"])
        assert app is not None and app.due_at is not None
        due = aware(app.due_at)
        assert due is not None
        scope = monitoring.make_scope(since=activity.now - dt.timedelta(days=1), until=activity.now)
        before = monitoring.pending_applications(s, scope, now=due - dt.timedelta(hours=2))
        after = monitoring.pending_applications(s, scope, now=due + dt.timedelta(hours=1))
    state_before = {a["id"]: a["state"] for a in before["applications"]}
    state_after = {a["id"]: a["state"] for a in after["applications"]}
    assert state_before[app.id] == "due_soon" and before["counts"]["due_soon"] == 1
    assert state_after[app.id] == "overdue" and after["counts"]["overdue"] == 2


def _expected_by(cycle: str, published: dt.datetime) -> dt.datetime:
    """The end of the update-cycle period after the one of ``published`` (for the three bundled cycles)."""
    day = published.astimezone(SH).date()
    if cycle in ("实时", "每日"):
        end = day + dt.timedelta(days=2)
    elif cycle == "每月":
        month = day.month + 2
        end = dt.date(day.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)
    else:  # pragma: no cover - the scenario has no other cycle
        raise AssertionError(cycle)
    return dt.datetime.combine(end, dt.time(), SH).astimezone(dt.UTC)


def test_freshness_of_each_resource(client: TestClient, platform: Platform) -> None:
    answer = get(client, platform, "freshness")
    with platform.store.session() as s:
        last = {
            e.id: (
                e.update_cycle,
                max(
                    (v.number, aware(v.published_at))
                    for v in s.scalars(select(Version).where(Version.entry_id == e.id))
                ),
            )
            for e in s.scalars(select(Entry).where(Entry.status == "published"))
        }
    got = {r["entry"]: r for r in answer["resources"]}
    assert set(got) == {HRSS, MARKET, TRANSPORT}
    for entry, (cycle, (number, published)) in last.items():
        assert published is not None
        row = got[entry]
        assert (row["update_cycle"], row["last_version"]) == (cycle, number)
        assert dt.datetime.fromisoformat(row["expected_by"]) == _expected_by(cycle, published)
        assert row["state"] == ("late" if dt.datetime.now(dt.UTC) > _expected_by(cycle, published) else "fresh")
    assert got[MARKET]["last_version"] == 2
    assert answer["counts"]["fresh"] + answer["counts"]["late"] == 3


def test_freshness_goes_late_after_the_following_period(platform: Platform) -> None:
    """市场监管's registry is 每日: fresh until the end of the day after its last version, late after."""
    with platform.store.session() as s:
        published = aware(s.scalar(select(Version.published_at).where(Version.entry_id == MARKET, Version.number == 2)))
        assert published is not None
        due = _expected_by("每日", published)
        scope = monitoring.make_scope(since=published - dt.timedelta(days=1), until=published + dt.timedelta(days=1))
        fresh = {r["entry"]: r for r in monitoring.freshness(s, scope, now=due - dt.timedelta(minutes=1))["resources"]}
        late = {r["entry"]: r for r in monitoring.freshness(s, scope, now=due + dt.timedelta(hours=36))["resources"]}
    assert fresh[MARKET]["state"] == "fresh"
    assert late[MARKET]["state"] == "late" and late[MARKET]["late_hours"] == 36.0
    assert late[HRSS]["state"] == "fresh"  # 每月: due only at the end of next month
    assert next(iter(late)) in (MARKET, TRANSPORT)  # the late ones come first


def test_top_consumers(client: TestClient, platform: Platform, activity: Activity) -> None:
    since, until = period(activity, 25, 0)
    answer = get(client, platform, "consumers", since=since, until=until)
    rows: Counter[str] = Counter()
    api_rows: Counter[str] = Counter()
    for d in expected_deliveries(platform, since, until):
        if d.outcome == "succeeded" and d.mode != "api":
            rows[d.department_uscc] += d.rows
    for c in expected_calls(platform, since, until):
        if c.department_uscc and 200 <= c.status < 400:
            api_rows[c.department_uscc] += c.rows
    got = {c["department"]: c for c in answer["consumers"]}
    for uscc in set(rows) | set(api_rows):
        assert (got[uscc]["rows"], got[uscc]["api_rows"]) == (rows[uscc], api_rows[uscc])
        assert got[uscc]["total_rows"] == rows[uscc] + api_rows[uscc]
    totals = [c["total_rows"] for c in answer["consumers"]]
    assert totals == sorted(totals, reverse=True)
    market = platform.departments["market"]
    assert answer["consumers"][0]["department"] == market  # three downloads of 人社 and one of 交通
    assert got[market]["deliveries"] == 4 and got[market]["resources"] == 2
    # Filtered by a provider: only the consumers of its resources.
    hrss = get(client, platform, "consumers", since=since, until=until, department=platform.departments["hrss"])
    assert {c["department"] for c in hrss["consumers"]} == {market, platform.departments["transport"]}


def _subjects_of(platform: Platform, dept: str) -> set[str]:
    """The audit subjects that concern ``dept``: its entries, and the records it takes part in."""
    own = {e for e, d in providers(platform).items() if d == dept}
    subjects = {f"catalog_entry:{e}" for e in own} | {f"department:{dept}"}
    for model, kind in (
        (Application, "application"),
        (Grant, "grant"),
        (Delivery, "delivery"),
        (Objection, "objection"),
    ):
        for row in rows_of(platform, model):
            if row.department_uscc == dept or row.entry_id in own:
                subjects.add(f"{kind}:{row.id}")
    for model, kind in ((Webhook, "webhook"), (Notification, "notification")):
        subjects |= {f"{kind}:{r.id}" for r in rows_of(platform, model) if r.department_uscc == dept}
    return subjects


@pytest.mark.parametrize("dept", [None, "hrss", "transport"])
def test_recent_audit_events(client: TestClient, platform: Platform, activity: Activity, dept: str | None) -> None:
    since, until = period(activity, 25, -1)
    uscc = platform.departments[dept] if dept else None
    answer = get(
        client, platform, "audit", since=since, until=until, limit=500, **({"department": uscc} if uscc else {})
    )
    start, end = window(since, until)
    events = [e for e in rows_of(platform, AuditEvent) if start <= aware(e.at) < end]  # type: ignore[operator]
    if uscc is not None:
        users = {u.id for u in rows_of(platform, User) if u.department_uscc == uscc}
        subjects = _subjects_of(platform, uscc)
        events = [e for e in events if e.actor in users or e.subject in subjects]
    assert answer["total"] == len(events) > 0
    assert [e["seq"] for e in answer["events"]] == sorted((e.seq for e in events), reverse=True)
    limited = get(client, platform, "audit", since=since, until=until, limit=3)
    assert len(limited["events"]) == 3 and limited["events"][0]["seq"] > limited["events"][2]["seq"]


def test_notifications_are_counted_and_shown(client: TestClient, platform: Platform) -> None:
    answer = get(client, platform, "notifications")
    notes = rows_of(platform, Notification)
    assert answer["counts"] == {
        "pending": sum(n.status == "pending" for n in notes),
        "sent": sum(n.status == "sent" for n in notes),
        "failed": sum(n.status == "failed" for n in notes),
    }
    assert answer["counts"]["sent"] > 0 and answer["counts"]["failed"] > 0
    by_event = Counter(n.event for n in notes)
    assert {e["event"]: e["total"] for e in answer["by_event"]} == dict(by_event)
    assert {n["id"] for n in answer["latest_failures"]} == {n.id for n in notes if n.status == "failed"}
    assert {n["id"] for n in answer["latest"]} == {n.id for n in notes}
    market = platform.departments["market"]
    assert all(n["department"] == market for n in answer["latest_failures"])  # its receiver is down
    assert all(
        "Connection refused" in n["last_error"] or "connect" in n["last_error"] for n in answer["latest_failures"]
    )
    hrss = get(client, platform, "notifications", department=platform.departments["hrss"])
    assert hrss["counts"]["failed"] == 0 and hrss["counts"]["sent"] == answer["counts"]["sent"]


# --- the period filter ----------------------------------------------------------------------------------


def test_a_period_counts_only_its_days(client: TestClient, platform: Platform, activity: Activity) -> None:
    """Days 6 to 3 ago hold one file download, the failed database delivery, and the API's two days."""
    since, until = period(activity, 6, 3)
    answer = get(client, platform, "deliveries", since=since, until=until)
    assert [p["day"] for p in answer["per_day"]] == days_between(since, until)
    reference = expected_deliveries(platform, since, until)
    assert answer["totals"]["deliveries"] == len(reference) == 4
    assert {d.mode for d in reference} == {"file", "database", "api"}
    wider = get(client, platform, "deliveries", since=period(activity, 25, 0)[0], until=period(activity, 25, 0)[1])
    assert wider["totals"]["deliveries"] == 7
    empty = get(client, platform, "summary", since="2026-01-01", until="2026-01-02")
    assert (empty["deliveries"], empty["api_calls"], empty["rows_delivered"]) == (0, 0, 0)
    # An ISO date-time with a zone works as well as a date, to the minute.
    start = at(activity.now, 4, 10, 30)  # between the two API pages of that day
    half = get(
        client, platform, "api-calls", since=start.isoformat(), until=(start + dt.timedelta(hours=1)).isoformat()
    )
    assert half["totals"]["calls"] == 1


def test_the_default_period_is_the_last_30_days(client: TestClient, platform: Platform) -> None:
    answer = get(client, platform, "deliveries")
    assert len(answer["per_day"]) == 30
    assert answer["per_day"][-1]["day"] == dt.datetime.now(SH).date().isoformat()
    assert answer["totals"]["deliveries"] == 7


# --- who sees what ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_reviewer_sees_only_its_own_department(client: TestClient, platform: Platform, endpoint: str) -> None:
    hrss = platform.departments["hrss"]
    own = get(client, platform, endpoint, user="hrss_reviewer")
    filtered = get(client, platform, endpoint, user="city_admin", department=hrss)
    assert own["scope"]["department"] == hrss
    strip = {"as_of", "departments"}  # the summary offers a reviewer its own department only (below)
    assert {k: v for k, v in own.items() if k not in strip} == {k: v for k, v in filtered.items() if k not in strip}
    other = client.get(
        f"{API}/monitor/{endpoint}",
        params={"department": platform.departments["market"]},
        headers=platform.auth("hrss_reviewer"),
    )
    assert other.status_code == 403 and "not yours" in other.json()["error"]
    lower = client.get(
        f"{API}/monitor/{endpoint}", params={"department": hrss.lower()}, headers=platform.auth("hrss_reviewer")
    )
    assert lower.status_code == 200  # its own code in any case


def test_the_reviewer_summary_offers_only_its_department(client: TestClient, platform: Platform) -> None:
    summary = get(client, platform, "summary", user="transport_reviewer")
    assert [d["uscc"] for d in summary["departments"]] == [platform.departments["transport"]]
    city = get(client, platform, "summary", user="auditor")
    assert len(city["departments"]) == 3


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_city_admin_and_auditor_see_everything(client: TestClient, platform: Platform, endpoint: str) -> None:
    admin = get(client, platform, endpoint, user="city_admin")
    auditor = get(client, platform, endpoint, user="auditor")
    strip = {"as_of"}
    assert {k: v for k, v in admin.items() if k not in strip} == {k: v for k, v in auditor.items() if k not in strip}
    assert admin["scope"]["department"] is None


@pytest.mark.parametrize("endpoint", [*ENDPOINTS, "../assessment", "../assessment.xlsx"])
@pytest.mark.parametrize("user", ["hrss_staff", "market_staff", "transport_staff"])
def test_staff_without_monitor_read_are_refused(
    client: TestClient, platform: Platform, endpoint: str, user: str
) -> None:
    answer = client.get(f"{API}/monitor/{endpoint}", headers=platform.auth(user))
    assert answer.status_code == 403
    assert "monitor:read" in answer.json()["error"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_without_a_token_it_is_401(client: TestClient, endpoint: str) -> None:
    assert client.get(f"{API}/monitor/{endpoint}").status_code == 401
    bad = client.get(f"{API}/monitor/{endpoint}", headers={"Authorization": "Bearer gdt_nope"})
    assert bad.status_code == 401


def test_a_token_without_the_scope_is_refused(client: TestClient, platform: Platform) -> None:
    from exchange.identity import create_token

    with platform.store.session() as s:
        _, token = create_token(s, "hrss_reviewer", name="no-monitor", scopes=["catalog:read", "exchange:review"])
    answer = client.get(f"{API}/monitor/summary", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403 and "monitor:read" in answer.json()["error"]


# --- hostile query parameters ----------------------------------------------------------------------------


HOSTILE: list[tuple[dict[str, Any], str]] = [
    ({"since": "2026-02-30"}, "since"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-10-01T08:00:00"}, "time zone"),
    ({"until": "2026/10/01"}, "until"),
    ({"since": "1900-01-01"}, "outside the years"),
    ({"until": "9999-12-31"}, "outside the years"),
    ({"since": "2026-10-10", "until": "2026-10-01"}, "not before"),
    ({"since": "2026-10-01", "until": "2026-10-01"}, "not before"),
    ({"since": "2020-01-01", "until": "2026-01-01"}, "longer than"),
    ({"since": "x" * 41}, "since"),
    ({"department": "hrss"}, "统一社会信用代码"),
    ({"department": "1131000000245310XN' OR '1'='1"}, "department"),
    ({"department": "113100000000000001"}, "not a department of the platform"),
    ({"side": "sideways"}, "side"),
    ({"limit": "0"}, "limit"),
    ({"limit": "100000"}, "limit"),
    ({"limit": "ten"}, "limit"),
]


@pytest.mark.parametrize(("params", "named"), HOSTILE)
def test_hostile_filters_are_a_clear_422(
    client: TestClient, platform: Platform, params: dict[str, Any], named: str
) -> None:
    endpoint = "deliveries"  # takes every filter (side, limit)
    answer = client.get(f"{API}/monitor/{endpoint}", params=params, headers=platform.auth("city_admin"))
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert named in body["error"], body
    assert body["hint"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_endpoint_refuses_a_reversed_period(client: TestClient, platform: Platform, endpoint: str) -> None:
    answer = client.get(
        f"{API}/monitor/{endpoint}",
        params={"since": "2026-10-10", "until": "2026-10-01"},
        headers=platform.auth("city_admin"),
    )
    assert answer.status_code == 422 and "not before" in answer.json()["error"]


def test_the_longest_period_allowed_works_and_one_day_more_does_not(client: TestClient, platform: Platform) -> None:
    start = dt.date(2024, 1, 1)
    longest = (start + dt.timedelta(days=monitoring.MAX_SPAN_DAYS)).isoformat()
    answer = get(client, platform, "deliveries", since=start.isoformat(), until=longest)
    assert len(answer["per_day"]) == monitoring.MAX_SPAN_DAYS
    beyond = (start + dt.timedelta(days=monitoring.MAX_SPAN_DAYS + 1)).isoformat()
    refused = client.get(
        f"{API}/monitor/deliveries",
        params={"since": start.isoformat(), "until": beyond},
        headers=platform.auth("city_admin"),
    )
    assert refused.status_code == 422


def test_an_unknown_department_is_no_leak_for_a_reviewer(client: TestClient, platform: Platform) -> None:
    """A reviewer naming any other code, known or not, gets the same 403: it learns nothing."""
    for code in (platform.departments["market"], "113100000000000001"):
        answer = client.get(
            f"{API}/monitor/summary", params={"department": code}, headers=platform.auth("hrss_reviewer")
        )
        assert answer.status_code == 403


def test_the_dashboard_page_is_served_with_a_strict_policy(client: TestClient, tmp_path: Path) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert "数据共享交换平台监测看板" in page.text and 'lang="zh-CN"' in page.text
    for asset in ("app.js", "app.css", "vendor/echarts.common.min.js", "vendor/LICENSE", "vendor/NOTICE"):
        answer = client.get(f"/dashboard/assets/{asset}")
        assert answer.status_code == 200, asset
        assert "default-src 'none'" in answer.headers["content-security-policy"]
    for hostile in (
        "../routes_monitor.py",
        "..%2Froutes_monitor.py",
        "index.html",
        "vendor/../../service.py",
        "nope.js",
    ):
        assert client.get(f"/dashboard/assets/{hostile}").status_code == 404, hostile
    # Nothing the page loads points elsewhere.
    import re

    for text in (page.text, client.get("/dashboard/assets/app.js").text, client.get("/dashboard/assets/app.css").text):
        assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", text)
        assert "http://" not in text and "https://" not in text
    assert client.get("/").json()["links"]["dashboard"].endswith("/dashboard")


# --- the same SQL on PostgreSQL and MariaDB ---------------------------------------------------------------


@pytest.fixture
def server_db(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh platform database on the machine's PostgreSQL (a schema) or MariaDB (a database)."""
    import uuid

    import sqlalchemy as sa

    kind = request.param
    base = request.getfixturevalue("postgres_url" if kind == "postgresql" else "mariadb_url")
    name = f"govdata_mon_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base)
    if kind == "postgresql":
        setup = ["CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public", f'CREATE SCHEMA "{name}"']
        teardown = f'DROP SCHEMA "{name}" CASCADE'
        url = f"{base}?options=-csearch_path%3D{name}"
    else:
        setup = [f"CREATE DATABASE {name} CHARACTER SET utf8mb4"]
        teardown = f"DROP DATABASE IF EXISTS {name}"
        url = f"{base.rsplit('/', 1)[0]}/{name}?charset=utf8mb4"
    with admin.begin() as con:
        for statement in setup:
            con.execute(sa.text(statement))
    try:
        yield url
    finally:
        from catalog.store import _ENGINES

        for key in [k for k in _ENGINES if name in k]:
            _ENGINES.pop(key).dispose()
        with admin.begin() as con:
            con.execute(sa.text(teardown))
        admin.dispose()


@pytest.mark.integration
@pytest.mark.parametrize("server_db", ["postgresql", "mariadb"], indirect=True)
def test_the_same_numbers_on_postgresql_and_mariadb(
    server_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local days, percentiles and the department filters are SQL: the checks above, on each database."""
    monkeypatch.setenv("GOVDATA_CATALOG_URL", server_db)
    on_server = build_platform(tmp_path / "home", rows=20)
    assert on_server.store.engine.dialect.name in ("postgresql", "mysql", "mariadb")
    done = populate(on_server)
    with TestClient(create_app(on_server.home)) as c:
        for dept in (None, "hrss"):
            test_deliveries_and_rows_per_day(c, on_server, done, dept, "any")
            test_the_summary_agrees_with_the_rows(c, on_server, done, dept)
            test_recent_audit_events(c, on_server, done, dept)
        test_deliveries_and_rows_per_day(c, on_server, done, "market", "subscriber")
        test_latency_per_day_matches_numpy(c, on_server, done)
        test_api_calls_per_day_and_per_caller(c, on_server, done)
        test_pending_applications_against_their_deadlines(c, on_server, done)
        test_freshness_of_each_resource(c, on_server)
        test_top_consumers(c, on_server, done)
        test_notifications_are_counted_and_shown(c, on_server)
        test_a_period_counts_only_its_days(c, on_server, done)
    test_percentiles_interpolate_like_percentile_cont(on_server, done)
