"""Review deadlines: the defaults per share type, configuration, refusal of 不予共享, overdue tracking."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.calendar import CALENDAR_ENV, FALLBACK_ENV, SHANGHAI, CalendarError, WorkdayCalendar, load_calendar
from exchange.deadlines import (
    DEADLINES_ENV,
    DeadlineConfig,
    DeadlineError,
    DeadlineState,
    NotRequestableError,
    load_deadline_config,
    parse_share_type,
    review_deadline,
)
from pipelines.spec import ShareType


@pytest.fixture(autouse=True)
def _defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (CALENDAR_ENV, FALLBACK_ENV, DEADLINES_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def cal() -> WorkdayCalendar:
    return load_calendar(environ={})


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def end_of(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime.combine(dt.date(y, m, d), dt.time.max, tzinfo=SHANGHAI)


# Submitted Wednesday 30 Sep 2026: 1–7 Oct off, Sat 10 Oct works (8, 9, 10, 12, 13 … 16, 19, 20 Oct).
@pytest.mark.parametrize(
    ("share_type", "publication", "days", "due"),
    [
        ("无条件共享", False, 2, end_of(2026, 10, 9)),
        ("无条件共享", True, 2, end_of(2026, 10, 9)),  # publication is not on the platform's clock
        ("有条件共享", False, 5, end_of(2026, 10, 13)),
        ("有条件共享", True, 10, end_of(2026, 10, 20)),
        ("授权共享", False, 5, end_of(2026, 10, 13)),
        ("授权共享", True, 10, end_of(2026, 10, 20)),
        ("unconditional", False, 2, end_of(2026, 10, 9)),
        (ShareType.CONDITIONAL, True, 10, end_of(2026, 10, 20)),
    ],
)
def test_default_deadlines(
    cal: WorkdayCalendar, share_type: str | ShareType, publication: bool, days: int, due: dt.datetime
) -> None:
    deadline = review_deadline(share_type, at(2026, 9, 30), needs_publication=publication, calendar=cal)
    assert (deadline.working_days, deadline.due_at, deadline.needs_publication) == (days, due, publication)
    assert deadline.share_type is parse_share_type(share_type)
    assert str(days) in deadline.basis and deadline.share_type.value in deadline.basis


def test_default_calendar_and_config_from_the_environment() -> None:
    deadline = review_deadline("有条件共享", at(2026, 11, 20, 19, 30))  # Friday evening
    assert deadline.due_at == end_of(2026, 11, 27)
    assert deadline.submitted_at.tzinfo == SHANGHAI


@pytest.mark.parametrize("share_type", ["不予共享", "非共享", "not_shared", ShareType.NOT_SHARED])
def test_not_shared_cannot_be_requested(cal: WorkdayCalendar, share_type: str | ShareType) -> None:
    with pytest.raises(NotRequestableError, match="不予共享 resource cannot be requested") as err:
        review_deadline(share_type, at(2026, 11, 24), calendar=cal)
    assert err.value.hint and "refuse" in err.value.hint
    with pytest.raises(NotRequestableError, match="recorded basis: 涉及国家秘密"):
        review_deadline(share_type, at(2026, 11, 24), calendar=cal, not_shared_basis="涉及国家秘密")


@pytest.mark.parametrize("share_type", ["部分共享", "", "无条件", 3])
def test_unknown_share_type(cal: WorkdayCalendar, share_type: object) -> None:
    with pytest.raises(DeadlineError, match="unknown share type") as err:
        review_deadline(share_type, at(2026, 11, 24), calendar=cal)  # type: ignore[arg-type]
    assert "授权共享" in (err.value.hint or "")


def test_naive_submission_time_is_refused(cal: WorkdayCalendar) -> None:
    with pytest.raises(CalendarError, match="no time zone"):
        review_deadline("无条件共享", dt.datetime(2026, 11, 24, 9), calendar=cal)


def test_a_deadline_in_a_year_without_a_table(cal: WorkdayCalendar) -> None:
    with pytest.raises(CalendarError, match="no working-day table for 2027"):
        review_deadline("有条件共享", at(2026, 12, 28), needs_publication=True, calendar=cal)


# --- configuration ---------------------------------------------------------------------------


def test_configured_periods(cal: WorkdayCalendar) -> None:
    cfg = DeadlineConfig(unconditional=1, conditional=3, conditional_publication=7, close=dt.time(17, 30))
    assert review_deadline("无条件共享", at(2026, 11, 20), config=cfg, calendar=cal).due_at == at(2026, 11, 23, 17, 30)
    assert review_deadline("授权共享", at(2026, 11, 20), config=cfg, calendar=cal).working_days == 3
    assert review_deadline("有条件共享", at(2026, 11, 20), needs_publication=True, config=cfg, calendar=cal).due_at == (
        at(2026, 12, 1, 17, 30)
    )


def test_config_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deadlines.yaml"
    path.write_text('conditional: 7\nconditional_publication: 12\nclose: "17:30"\n', encoding="utf-8")
    monkeypatch.setenv(DEADLINES_ENV, str(path))
    assert load_deadline_config() == DeadlineConfig(conditional=7, conditional_publication=12, close=dt.time(17, 30))
    deadline = review_deadline("有条件共享", at(2026, 11, 20))
    assert (deadline.working_days, deadline.due_at) == (7, at(2026, 12, 1, 17, 30))
    path.write_text("", encoding="utf-8")
    assert load_deadline_config() == DeadlineConfig()


BAD_CONFIGS = [
    pytest.param(
        "conditonal: 7\n", r"deadlines\.yaml:1: unknown key 'conditonal' \(did you mean 'conditional'\?\)", id="typo"
    ),
    pytest.param("conditional: 0\n", r"deadlines\.yaml:1: conditional: .*greater than or equal to 1", id="zero"),
    pytest.param("conditional: five\n", r"deadlines\.yaml:1: conditional: .*valid integer", id="words"),
    pytest.param("unconditional: 2000\n", r"deadlines\.yaml:1: unconditional: .*less than or equal to 250", id="huge"),
    pytest.param(
        "conditional: 8\nconditional_publication: 6\n",
        r"conditional_publication \(6\) is shorter than conditional \(8\)",
        id="publication-shorter",
    ),
    pytest.param("close: 17:30\n", r"deadlines\.yaml:1: close: .*in quotes", id="unquoted-time"),
    pytest.param("close: '25:00'\n", r"deadlines\.yaml:1: close: .*valid time", id="bad-time"),
    pytest.param("- conditional: 5\n", "is a mapping", id="a-list"),
    pytest.param("conditional: [5\n", r"deadlines\.yaml:2: invalid YAML", id="yaml-syntax"),
]


@pytest.mark.parametrize(("text", "pattern"), BAD_CONFIGS)
def test_bad_config_file(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "deadlines.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DeadlineError, match=pattern) as err:
        load_deadline_config(path)
    assert err.value.hint


def test_missing_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEADLINES_ENV, str(tmp_path / "nowhere.yaml"))
    with pytest.raises(
        DeadlineError, match=rf"nowhere\.yaml: review deadline configuration \(named by {DEADLINES_ENV}\)"
    ):
        review_deadline("无条件共享", at(2026, 11, 24))


# --- overdue tracking ------------------------------------------------------------------------


def test_status_over_time(cal: WorkdayCalendar) -> None:
    deadline = review_deadline("无条件共享", at(2026, 11, 20, 19, 30), calendar=cal)  # due end of Tue 24 Nov
    assert deadline.due_date == dt.date(2026, 11, 24)
    cases = [
        (at(2026, 11, 20, 20), DeadlineState.ON_TIME, 2, 0),
        (at(2026, 11, 22, 12), DeadlineState.ON_TIME, 2, 0),  # Sunday: Monday and Tuesday left
        (at(2026, 11, 23, 9), DeadlineState.ON_TIME, 1, 0),
        (at(2026, 11, 24, 0, 0), DeadlineState.DUE_TODAY, 0, 0),
        (end_of(2026, 11, 24), DeadlineState.DUE_TODAY, 0, 0),
        (at(2026, 11, 25, 0, 0), DeadlineState.OVERDUE, 0, 1),
        (at(2026, 11, 27, 18), DeadlineState.OVERDUE, 0, 3),
        (at(2026, 11, 29, 18), DeadlineState.OVERDUE, 0, 3),  # the weekend adds nothing
        (at(2026, 11, 30, 8), DeadlineState.OVERDUE, 0, 4),
    ]
    for now, state, remaining, overdue in cases:
        status = deadline.status(now)
        assert (status.state, status.remaining_working_days, status.overdue_working_days) == (
            state,
            remaining,
            overdue,
        ), now
    assert DeadlineState.OVERDUE.chinese == "已逾期"


def test_overdue_across_a_holiday_block(cal: WorkdayCalendar) -> None:
    deadline = review_deadline("无条件共享", at(2026, 9, 28), calendar=cal)  # due end of Wed 30 Sep
    assert deadline.due_at == end_of(2026, 9, 30)
    assert deadline.status(at(2026, 10, 7, 18)).overdue_working_days == 0  # still the holiday
    assert deadline.status(at(2026, 10, 8, 9)).overdue_working_days == 1
    assert deadline.status(at(2026, 10, 10, 9)).overdue_working_days == 3  # the Saturday that works


def test_status_with_a_close_of_business(cal: WorkdayCalendar) -> None:
    cfg = DeadlineConfig(close=dt.time(17, 30))
    deadline = review_deadline("有条件共享", at(2026, 11, 20), config=cfg, calendar=cal)
    assert deadline.status(at(2026, 11, 27, 17, 30)).state is DeadlineState.DUE_TODAY
    late = deadline.status(at(2026, 11, 27, 17, 31))
    assert (late.state, late.overdue_working_days) == (DeadlineState.OVERDUE, 0)


def test_status_refuses_naive_now(cal: WorkdayCalendar) -> None:
    deadline = review_deadline("无条件共享", at(2026, 11, 20), calendar=cal)
    with pytest.raises(CalendarError, match="no time zone"):
        deadline.status(dt.datetime(2026, 11, 25, 9))
    with pytest.raises(DeadlineError, match="timezone-aware datetime"):
        deadline.status(dt.date(2026, 11, 25))  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    submitted=st.datetimes(
        min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2026, 11, 15), timezones=st.just(SHANGHAI)
    ),
    share_type=st.sampled_from(["无条件共享", "有条件共享", "授权共享"]),
    publication=st.booleans(),
    later=st.integers(min_value=0, max_value=40 * 24 * 60),
)
def test_status_agrees_with_the_due_time(
    cal: WorkdayCalendar, submitted: dt.datetime, share_type: str, publication: bool, later: int
) -> None:
    deadline = review_deadline(share_type, submitted, needs_publication=publication, calendar=cal)
    now = submitted + dt.timedelta(minutes=later)
    status = deadline.status(now)
    assert (status.state is DeadlineState.OVERDUE) == (now > deadline.due_at)
    if status.state is DeadlineState.ON_TIME:
        assert 1 <= status.remaining_working_days <= deadline.working_days
    if status.state is DeadlineState.OVERDUE:
        assert status.overdue_working_days == cal.working_days_between(deadline.due_date, now)
    assert cal.working_days_between(submitted, deadline.due_at) == deadline.working_days
