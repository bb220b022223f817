"""Review deadlines of applications in working days, on a fixed clock, and the pending queue's states.

Around National Day 2026 (国庆节 1–7 October off; Sunday 20 September and Saturday 10 October
make-up working days), an application submitted on Wednesday 30 September is due:
无条件共享 (2 working days) on Friday 9 October; 有条件共享 (5) on Tuesday 13 October, counting the
make-up Saturday; 有条件共享 for data not yet published (10) on Tuesday 20 October.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from catalog.models import User, Version
from exchange.applications import deadline_status, decide, pending_with_deadlines, review_queue, submit
from exchange.calendar import SHANGHAI, load_calendar
from exchange.deadlines import DEADLINES_ENV, DeadlineConfig
from exchange.identity import Principal
from exchange.models import Application
from tests.exchange.conftest_exchange import HRSS, MARKET, TRANSPORT, Platform, build_platform

SUBMITTED = dt.datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI)


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return build_platform(tmp_path / "home", rows=5)


def who(platform: Platform, user_id: str) -> Principal:
    with platform.store.session() as s:
        user = s.get(User, user_id)
        assert user is not None
        return Principal.of_user(user)


def make(
    platform: Platform,
    user: str,
    entry: str,
    items: list[str],
    now: dt.datetime = SUBMITTED,
    end_date: dt.date = dt.date(2027, 3, 31),
    **kw: Any,
) -> int:
    with platform.store.session() as s:
        app = submit(
            s,
            who(platform, user),
            entry=entry,
            items=items,
            purpose="核验",
            scenario="业务办理",
            delivery_method="file",
            end_date=end_date,
            now=now,
            **kw,
        )
        return app.id


def due_date(platform: Platform, app_id: int) -> dt.date:
    with platform.store.session() as s:
        app = s.get(Application, app_id)
        assert app is not None and app.due_at is not None
        return app.due_at.astimezone(SHANGHAI).date()


def test_the_deadline_counts_working_days_over_the_holidays(platform: Platform) -> None:
    city = make(platform, "hrss_staff", TRANSPORT, ["stop_id"])
    provider = make(platform, "market_staff", HRSS, ["resident_id"])
    assert due_date(platform, city) == dt.date(2026, 10, 9)
    assert due_date(platform, provider) == dt.date(2026, 10, 13)


def test_the_provider_gets_10_working_days_when_the_data_must_first_be_published(platform: Platform) -> None:
    with platform.store.session() as s:
        for version in s.scalars(select(Version).where(Version.entry_id == MARKET)):
            s.delete(version)
    app = make(platform, "hrss_staff", MARKET, ["uscc"])
    assert due_date(platform, app) == dt.date(2026, 10, 20)


def test_publication_does_not_lengthen_the_citys_check(platform: Platform) -> None:
    with platform.store.session() as s:
        for version in s.scalars(select(Version).where(Version.entry_id == TRANSPORT)):
            s.delete(version)
    app = make(platform, "hrss_staff", TRANSPORT, ["stop_id"])
    assert due_date(platform, app) == dt.date(2026, 10, 9)


def test_the_hour_and_day_of_submission_do_not_count(platform: Platform) -> None:
    # Friday 18 September at 23:59 and the weekend after give the same deadline: the day of
    # submission is never counted (Sunday 20 September is a make-up working day, so it counts).
    late_friday = make(
        platform, "hrss_staff", TRANSPORT, ["stop_id"], now=dt.datetime(2026, 9, 18, 23, 59, tzinfo=SHANGHAI)
    )
    saturday = make(platform, "hrss_staff", TRANSPORT, ["stop_id"], now=dt.datetime(2026, 9, 19, 8, 0, tzinfo=SHANGHAI))
    assert due_date(platform, late_friday) == due_date(platform, saturday) == dt.date(2026, 9, 21)


def test_the_periods_are_configurable(platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    passed = make(platform, "hrss_staff", TRANSPORT, ["stop_id"], config=DeadlineConfig(unconditional=3))
    assert due_date(platform, passed) == dt.date(2026, 10, 10)  # the make-up Saturday
    file = tmp_path / "deadlines.yaml"
    file.write_text("conditional: 7\nconditional_publication: 12\n", encoding="utf-8")
    monkeypatch.setenv(DEADLINES_ENV, str(file))
    configured = make(platform, "market_staff", HRSS, ["resident_id"])
    assert due_date(platform, configured) == dt.date(2026, 10, 15)


def test_a_late_submission_time_is_stored_as_given(platform: Platform) -> None:
    app_id = make(platform, "hrss_staff", TRANSPORT, ["stop_id"])
    with platform.store.session() as s:
        app = s.get(Application, app_id)
        assert app is not None
        assert app.submitted_at == SUBMITTED
        assert app.due_at is not None and app.due_at.tzinfo is not None


@pytest.mark.parametrize(
    ("now", "state", "label", "remaining", "overdue", "age"),
    [
        (dt.datetime(2026, 9, 30, 18, 0), "on_time", "未到期", 2, 0, 0),
        (dt.datetime(2026, 10, 5, 12, 0), "on_time", "未到期", 2, 0, 0),  # holidays: no time passes
        (dt.datetime(2026, 10, 8, 12, 0), "on_time", "未到期", 1, 0, 1),
        (dt.datetime(2026, 10, 9, 9, 0), "due_today", "今日到期", 0, 0, 2),
        (dt.datetime(2026, 10, 10, 9, 0), "overdue", "已逾期", 0, 1, 3),  # the make-up Saturday
        (dt.datetime(2026, 10, 11, 9, 0), "overdue", "已逾期", 0, 1, 3),
        (dt.datetime(2026, 10, 16, 9, 0), "overdue", "已逾期", 0, 6, 8),
    ],
)
def test_pending_applications_stand_against_their_deadline(
    platform: Platform,
    now: dt.datetime,
    state: str,
    label: str,
    remaining: int,
    overdue: int,
    age: int,
) -> None:
    app_id = make(platform, "hrss_staff", TRANSPORT, ["stop_id"])
    at = now.replace(tzinfo=SHANGHAI)
    with platform.store.session() as s:
        [row] = pending_with_deadlines(s, now=at)
    assert row["id"] == app_id
    assert (row["state"], row["state_label"]) == (state, label)
    assert (row["remaining_working_days"], row["overdue_working_days"], row["age_working_days"]) == (
        remaining,
        overdue,
        age,
    )
    assert row["due_at"].astimezone(SHANGHAI).date() == dt.date(2026, 10, 9)
    assert row["submitted_at"] == SUBMITTED


def test_the_pending_list_narrows_by_department_side_and_reviewer(platform: Platform) -> None:
    to_transport = make(platform, "hrss_staff", TRANSPORT, ["stop_id"])
    to_hrss = make(platform, "market_staff", HRSS, ["resident_id"])
    to_market = make(platform, "transport_staff", MARKET, ["uscc"])
    hrss, market = platform.departments["hrss"], platform.departments["market"]
    later = dt.datetime(2026, 10, 12, 9, 0, tzinfo=SHANGHAI)
    with platform.store.session() as s:
        everything = pending_with_deadlines(s, now=later)
        assert [r["id"] for r in everything] == [to_transport, to_hrss, to_market]  # by due date
        assert [r["state"] for r in everything] == ["overdue", "on_time", "on_time"]
        assert [r["id"] for r in pending_with_deadlines(s, hrss, later)] == [to_hrss]
        assert [r["id"] for r in pending_with_deadlines(s, hrss, later, side="applicant")] == [to_transport]
        assert [r["id"] for r in pending_with_deadlines(s, hrss, later, side="either")] == [to_transport, to_hrss]
        assert [r["id"] for r in pending_with_deadlines(s, now=later, reviewer="city")] == [to_transport]
        assert [r["id"] for r in review_queue(s, who(platform, "market_reviewer"), later)] == [to_market]
        row = pending_with_deadlines(s, market, later)[0]
        assert set(row) >= {
            "id",
            "entry",
            "applicant_department",
            "submitted_at",
            "due_at",
            "state",
            "age_working_days",
        }
        assert row["provider_name"] == "上海市市场监督管理局"
        assert row["applicant_department_name"] == "上海市交通委员会"
        decide(s, who(platform, "market_reviewer"), to_market, approve=False, opinion="不同意", now=later)
    with platform.store.session() as s:
        assert [r["id"] for r in pending_with_deadlines(s, market, later)] == []


def test_without_a_working_day_table_the_state_still_follows_from_the_times(platform: Platform) -> None:
    weekends = load_calendar(fallback="weekends", environ={})
    submitted = dt.datetime(2031, 3, 3, 10, 0, tzinfo=SHANGHAI)  # a Monday, in a year without a table
    app_id = make(
        platform, "hrss_staff", TRANSPORT, ["stop_id"], now=submitted, end_date=dt.date(2031, 12, 31), calendar=weekends
    )
    assert due_date(platform, app_id) == dt.date(2031, 3, 5)
    strict = load_calendar(fallback="error", environ={})
    with platform.store.session() as s:
        app = s.get(Application, app_id)
        assert app is not None
        late = deadline_status(app, dt.datetime(2031, 3, 6, 9, 0, tzinfo=SHANGHAI), calendar=strict)
        assert late is not None
        assert late["state"] == "overdue"
        assert late["remaining_working_days"] is None and late["age_working_days"] is None
        counted = deadline_status(app, dt.datetime(2031, 3, 6, 9, 0, tzinfo=SHANGHAI), calendar=weekends)
        assert counted is not None and counted["overdue_working_days"] == 1 and counted["age_working_days"] == 3


def test_decided_applications_have_no_deadline_state(platform: Platform) -> None:
    app_id = make(platform, "hrss_staff", TRANSPORT, ["stop_id"])
    with platform.store.session() as s:
        app, grant = decide(s, who(platform, "city_admin"), app_id, approve=True, now=SUBMITTED)
        assert grant is not None
        assert deadline_status(app, SUBMITTED) is None
