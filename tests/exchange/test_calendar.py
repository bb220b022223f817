"""The working-day calendar: the bundled State Council schedules, counting, the city's file, bad input."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.calendar import (
    BUNDLED_CALENDAR,
    CALENDAR_ENV,
    FALLBACK_ENV,
    SHANGHAI,
    CalendarError,
    DayKind,
    WorkdayCalendar,
    add_working_days,
    default_calendar,
    is_working_day,
    load_calendar,
    working_days_between,
)

D = dt.date
UTC = dt.UTC


@pytest.fixture(autouse=True)
def _no_city_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CALENDAR_ENV, raising=False)
    monkeypatch.delenv(FALLBACK_ENV, raising=False)


@pytest.fixture(scope="module")
def cal() -> WorkdayCalendar:
    return load_calendar(environ={})


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0, tz: dt.tzinfo = SHANGHAI) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=tz)


def end_of(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime.combine(D(y, m, d), dt.time.max, tzinfo=SHANGHAI)


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


# --- the bundled schedules -------------------------------------------------------------------

# (first day off, last day off, make-up working days) of each year's Spring Festival and National Day,
# copied from the notices.
BLOCKS = [
    pytest.param(D(2023, 1, 21), D(2023, 1, 27), [D(2023, 1, 28), D(2023, 1, 29)], id="2023-春节"),
    pytest.param(D(2023, 9, 29), D(2023, 10, 6), [D(2023, 10, 7), D(2023, 10, 8)], id="2023-中秋国庆"),
    pytest.param(D(2024, 2, 10), D(2024, 2, 17), [D(2024, 2, 4), D(2024, 2, 18)], id="2024-春节"),
    pytest.param(D(2024, 10, 1), D(2024, 10, 7), [D(2024, 9, 29), D(2024, 10, 12)], id="2024-国庆"),
    pytest.param(D(2025, 1, 28), D(2025, 2, 4), [D(2025, 1, 26), D(2025, 2, 8)], id="2025-春节"),
    pytest.param(D(2025, 10, 1), D(2025, 10, 8), [D(2025, 9, 28), D(2025, 10, 11)], id="2025-国庆中秋"),
    pytest.param(D(2026, 2, 15), D(2026, 2, 23), [D(2026, 2, 14), D(2026, 2, 28)], id="2026-春节"),
    pytest.param(D(2026, 10, 1), D(2026, 10, 7), [D(2026, 9, 20), D(2026, 10, 10)], id="2026-国庆"),
]


@pytest.mark.parametrize(("first", "last", "makeup"), BLOCKS)
def test_spring_festival_and_national_day_blocks(
    cal: WorkdayCalendar, first: dt.date, last: dt.date, makeup: list[dt.date]
) -> None:
    for day in days(first, last):
        assert cal.day(day).kind is DayKind.HOLIDAY, day
        assert not cal.is_working_day(day)
    for day in makeup:
        assert day.weekday() >= 5
        assert cal.day(day).kind is DayKind.MAKEUP_WORKING_DAY
        assert cal.is_working_day(day)
    # the days either side of the block that are ordinary weekdays stay working days
    before, after = first - dt.timedelta(days=1), last + dt.timedelta(days=1)
    for day in (before, after):
        if day.weekday() < 5:
            assert cal.is_working_day(day), day


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (D(2023, 4, 5), "清明节"),
        (D(2023, 1, 2), "元旦"),
        (D(2024, 1, 1), "元旦"),
        (D(2024, 5, 3), "劳动节"),
        (D(2024, 6, 10), "端午节"),
        (D(2024, 9, 16), "中秋节"),
        (D(2025, 1, 1), "元旦"),
        (D(2025, 4, 4), "清明节"),
        (D(2025, 5, 5), "劳动节"),
        (D(2025, 6, 2), "端午节"),
        (D(2026, 1, 2), "元旦"),
        (D(2026, 4, 6), "清明节"),
        (D(2026, 5, 4), "劳动节"),
        (D(2026, 6, 19), "端午节"),
        (D(2026, 9, 25), "中秋节"),
    ],
)
def test_other_national_holidays_are_days_off(cal: WorkdayCalendar, day: dt.date, name: str) -> None:
    assert day.weekday() < 5  # a weekday the schedule gives off
    found = cal.day(day)
    assert (found.kind, found.name, found.working) == (DayKind.HOLIDAY, name, False)


@pytest.mark.parametrize(
    "day", [D(2023, 4, 23), D(2023, 6, 25), D(2024, 4, 7), D(2024, 5, 11), D(2025, 4, 27), D(2026, 1, 4), D(2026, 5, 9)]
)
def test_other_makeup_working_days(cal: WorkdayCalendar, day: dt.date) -> None:
    assert day.weekday() >= 5
    assert cal.is_working_day(day)


# Working days per year, by hand from the notices: days − weekend days − weekday holidays + make-up days.
@pytest.mark.parametrize(("year", "expected"), [(2023, 249), (2024, 251), (2025, 248), (2026, 248)])
def test_working_days_per_year(cal: WorkdayCalendar, year: int, expected: int) -> None:
    assert cal.working_days_between(D(year - 1, 12, 31), D(year, 12, 31)) == expected


def test_every_bundled_day_agrees_with_chinese_calendar(cal: WorkdayCalendar) -> None:
    """An independent source: the ``chinese-calendar`` package's tables (holidays and 调休), day by day."""
    import chinese_calendar

    assert cal.years, "the bundled table holds no year"
    disagree = []
    for year in cal.years:
        for day in days(dt.date(year, 1, 1), dt.date(year, 12, 31)):
            try:
                theirs = chinese_calendar.is_workday(day)
            except NotImplementedError:  # a year newer than the package's data: nothing to compare
                break
            if cal.is_working_day(day) != theirs:
                disagree.append((day.isoformat(), cal.is_working_day(day), theirs))
    assert not disagree, f"bundled calendar vs chinese-calendar (date, ours, theirs): {disagree}"


def test_ordinary_days(cal: WorkdayCalendar) -> None:
    assert cal.day(D(2026, 11, 24)).kind is DayKind.WORKING_DAY  # a Tuesday
    assert cal.day(D(2026, 11, 21)).kind is DayKind.WEEKEND  # a Saturday
    assert cal.years == [2023, 2024, 2025, 2026]
    assert "2026" in (cal.source(2026) or "")


def test_module_functions_use_the_environment_calendar() -> None:
    assert is_working_day(D(2026, 10, 10))
    assert not is_working_day(at(2026, 10, 1))
    assert add_working_days(at(2026, 9, 30), 1) == end_of(2026, 10, 8)
    assert working_days_between(D(2026, 9, 30), D(2026, 10, 9)) == 2


# --- counting --------------------------------------------------------------------------------


@pytest.mark.parametrize("hour", [0, 9, 16, 19, 23])
def test_friday_at_any_hour_gets_the_same_deadline(cal: WorkdayCalendar, hour: int) -> None:
    # the day of submission is never counted: Monday and Tuesday are the two working days
    assert cal.add_working_days(at(2026, 11, 20, hour, 30), 2) == end_of(2026, 11, 24)


def test_weekend_submission_counts_from_monday(cal: WorkdayCalendar) -> None:
    assert cal.add_working_days(at(2026, 11, 21, 11), 2) == end_of(2026, 11, 24)
    assert cal.add_working_days(at(2026, 11, 22, 23, 59), 2) == end_of(2026, 11, 24)


def test_the_date_is_the_date_in_shanghai(cal: WorkdayCalendar) -> None:
    # Thursday 16:30 UTC is Friday 00:30 in Shanghai: counting starts on Monday, not on Friday
    submitted = dt.datetime(2026, 11, 19, 16, 30, tzinfo=UTC)
    due = cal.add_working_days(submitted, 2)
    assert due == end_of(2026, 11, 24)
    assert due.tzinfo == SHANGHAI
    new_york = dt.datetime(2026, 11, 19, 20, 0, tzinfo=ZoneInfo("America/New_York"))  # Friday 09:00 in Shanghai
    assert cal.add_working_days(new_york, 2) == end_of(2026, 11, 24)


def test_before_a_holiday_block(cal: WorkdayCalendar) -> None:
    # 30 Sep 2026: 1–7 Oct off, Sat 10 Oct a make-up working day
    assert cal.add_working_days(at(2026, 9, 30), 2) == end_of(2026, 10, 9)
    assert cal.add_working_days(at(2026, 9, 30), 3) == end_of(2026, 10, 10)
    assert cal.add_working_days(at(2026, 9, 30), 5) == end_of(2026, 10, 13)
    # Friday 13 Feb 2026: Sat 14 Feb works, 15–23 Feb off, Sat 28 Feb works
    assert cal.add_working_days(at(2026, 2, 13, 18), 5) == end_of(2026, 2, 27)
    assert cal.add_working_days(at(2026, 2, 13, 18), 10) == end_of(2026, 3, 5)


def test_on_a_makeup_working_day(cal: WorkdayCalendar) -> None:
    assert cal.add_working_days(at(2026, 10, 10, 9), 2) == end_of(2026, 10, 13)
    assert cal.add_working_days(at(2026, 9, 19, 9), 1) == end_of(2026, 9, 20)  # the Sunday that works


def test_last_day_of_the_year_and_across_years(cal: WorkdayCalendar) -> None:
    # 1–3 Jan 2026 off; Sunday 4 Jan works
    assert cal.add_working_days(at(2025, 12, 31, 16), 1) == end_of(2026, 1, 4)
    assert cal.add_working_days(at(2025, 12, 31, 16), 2) == end_of(2026, 1, 5)
    assert cal.add_working_days(at(2024, 12, 31), 10) == end_of(2025, 1, 15)
    assert cal.working_days_between(at(2024, 12, 31), end_of(2025, 1, 15)) == 10
    assert cal.add_working_days(at(2023, 12, 29), 1) == end_of(2024, 1, 2)


def test_close_of_business(cal: WorkdayCalendar) -> None:
    due = cal.add_working_days(at(2026, 11, 20), 2, close=dt.time(17, 30))
    assert due == dt.datetime(2026, 11, 24, 17, 30, tzinfo=SHANGHAI)


def test_working_days_between(cal: WorkdayCalendar) -> None:
    assert cal.working_days_between(D(2026, 9, 30), D(2026, 10, 8)) == 1
    assert cal.working_days_between(D(2026, 10, 8), D(2026, 9, 30)) == -1
    assert cal.working_days_between(D(2026, 11, 24), D(2026, 11, 24)) == 0
    assert cal.working_days_between(at(2026, 11, 20, 23), at(2026, 11, 23, 1)) == 1


WHEN = st.datetimes(
    min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2026, 11, 30), timezones=st.sampled_from([SHANGHAI, UTC])
)


@settings(max_examples=300, deadline=None)
@given(start=WHEN, n=st.integers(min_value=1, max_value=20))
def test_properties_of_adding_working_days(cal: WorkdayCalendar, start: dt.datetime, n: int) -> None:
    due = cal.add_working_days(start, n)
    assert cal.is_working_day(due)
    assert cal.working_days_between(start, due) == n
    assert due > start
    # the deadline is the first instant with n working days behind it: the day before has n − 1
    assert cal.working_days_between(start, due.date() - dt.timedelta(days=1)) == n - 1
    assert cal.add_working_days(start, n + 1) > due


@settings(max_examples=200, deadline=None)
@given(
    a=st.dates(min_value=D(2023, 1, 1), max_value=D(2026, 12, 31)),
    b=st.dates(min_value=D(2023, 1, 1), max_value=D(2026, 12, 31)),
    c=st.dates(min_value=D(2023, 1, 1), max_value=D(2026, 12, 31)),
)
def test_between_adds_up(cal: WorkdayCalendar, a: dt.date, b: dt.date, c: dt.date) -> None:
    assert cal.working_days_between(a, b) + cal.working_days_between(b, c) == cal.working_days_between(a, c)
    assert cal.working_days_between(a, b) == -cal.working_days_between(b, a)


# --- bad arguments ---------------------------------------------------------------------------


def test_naive_datetimes_are_refused(cal: WorkdayCalendar) -> None:
    naive = dt.datetime(2026, 11, 20, 18)
    with pytest.raises(CalendarError, match="no time zone") as err:
        cal.add_working_days(naive, 2)
    assert "Asia/Shanghai" in (err.value.hint or "")
    with pytest.raises(CalendarError, match="no time zone"):
        cal.is_working_day(naive)
    with pytest.raises(CalendarError, match="no time zone"):
        cal.working_days_between(at(2026, 11, 20), naive)


@pytest.mark.parametrize("n", [0, -1, True, 2.5, "2", 10_000])
def test_bad_number_of_days(cal: WorkdayCalendar, n: object) -> None:
    with pytest.raises(CalendarError, match="whole number from 1"):
        cal.add_working_days(at(2026, 11, 20), n)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["2026-11-20", 20261120, None])
def test_not_a_date(cal: WorkdayCalendar, value: object) -> None:
    with pytest.raises(CalendarError, match="must be a"):
        cal.is_working_day(value)  # type: ignore[arg-type]
    with pytest.raises(CalendarError, match="must be a"):
        cal.add_working_days(value, 1)  # type: ignore[arg-type]


def test_a_date_start_is_refused(cal: WorkdayCalendar) -> None:
    with pytest.raises(CalendarError, match="timezone-aware datetime"):
        cal.add_working_days(D(2026, 11, 20), 1)  # type: ignore[arg-type]


def test_close_with_a_zone_is_refused(cal: WorkdayCalendar) -> None:
    with pytest.raises(CalendarError, match="local time"):
        cal.add_working_days(at(2026, 11, 20), 1, close=dt.time(17, tzinfo=UTC))


# --- years without a table ------------------------------------------------------------------


def test_a_year_without_a_table_is_an_error(cal: WorkdayCalendar) -> None:
    with pytest.raises(CalendarError, match=r"no working-day table for 2027 .*2023, 2024, 2025, 2026") as err:
        cal.is_working_day(D(2027, 3, 1))
    assert CALENDAR_ENV in (err.value.hint or "") and FALLBACK_ENV in (err.value.hint or "")
    with pytest.raises(CalendarError, match="2027"):
        cal.add_working_days(at(2026, 12, 28), 5)  # runs into 2027
    with pytest.raises(CalendarError, match="2022"):
        cal.working_days_between(D(2022, 6, 1), D(2023, 1, 5))
    # a date a notice names is known even in a year without a table: 31 Dec 2022 opens 2023's 元旦
    assert cal.day(D(2022, 12, 31)).kind is DayKind.HOLIDAY
    with pytest.raises(CalendarError, match="2022"):
        cal.is_working_day(D(2022, 12, 30))


def test_weekend_fallback_only_when_configured(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(FALLBACK_ENV, "weekends")
    cal = load_calendar()
    with caplog.at_level(logging.WARNING, logger="exchange.calendar"):
        assert cal.is_working_day(D(2027, 3, 1))  # a Monday
        assert not cal.is_working_day(D(2027, 3, 6))  # a Saturday
        # the fallback knows weekends only: Friday 1 January counts as a working day
        assert cal.add_working_days(at(2026, 12, 31), 2) == end_of(2027, 1, 4)
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1 and FALLBACK_ENV in warnings[0].getMessage()
    assert cal.is_working_day(D(2026, 10, 10))  # the tables still rule where they exist


def test_bad_fallback_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FALLBACK_ENV, "guess")
    with pytest.raises(CalendarError, match=f"{FALLBACK_ENV} is 'guess'"):
        load_calendar()


# --- the city's file -------------------------------------------------------------------------

# An example schedule in the format, not the real 2027 notice.
CITY_2027 = """\
years:
  2027:
    source: 示例：某年放假安排（测试用）
    holidays:
      - {name: 元旦, from: 2027-01-01, to: 2027-01-03, days: 3}
      - {name: 春节, from: 2027-02-06, to: 2027-02-14, days: 9}
    workdays:
      - {name: 春节, date: 2027-02-20}
"""


def write(tmp_path: Path, text: str, name: str = "city.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_city_file_adds_a_year_through_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CALENDAR_ENV, str(write(tmp_path, CITY_2027)))
    cal = default_calendar()
    assert cal.years == [2023, 2024, 2025, 2026, 2027]
    assert not cal.is_working_day(D(2027, 2, 8))
    assert cal.is_working_day(D(2027, 2, 20))  # a Saturday the example declares working
    assert cal.is_working_day(D(2027, 3, 1))
    assert cal.add_working_days(at(2026, 12, 31), 2) == end_of(2027, 1, 5)
    monkeypatch.delenv(CALENDAR_ENV)
    with pytest.raises(CalendarError, match="2027"):
        default_calendar().is_working_day(D(2027, 3, 1))


def test_city_file_overrides_a_bundled_date(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = """\
years:
  2026:
    source: 本市补充安排（测试用）
    holidays:
      - {name: 本市假日, from: 2026-10-10}
"""
    with caplog.at_level(logging.INFO, logger="exchange.calendar"):
        cal = load_calendar(write(tmp_path, text), environ={})
    assert not cal.is_working_day(D(2026, 10, 10))  # bundled: a make-up working day
    assert not cal.is_working_day(D(2026, 10, 1))  # the rest of the bundled year stays
    assert any("2026-10-10" in r.getMessage() and "city.yaml" in r.getMessage() for r in caplog.records)


def test_city_file_replaces_a_bundled_year(tmp_path: Path) -> None:
    text = """\
years:
  2026:
    source: 更正后的安排（测试用）
    replace: true
    holidays:
      - {name: 国庆节, from: 2026-10-01, to: 2026-10-03}
"""
    cal = load_calendar(write(tmp_path, text), environ={})
    assert not cal.is_working_day(D(2026, 10, 2))
    assert cal.is_working_day(D(2026, 10, 5))  # was off in the bundled schedule
    assert not cal.is_working_day(D(2026, 10, 10))  # a plain Saturday again
    assert cal.is_working_day(D(2025, 10, 11))  # other years untouched


BAD_FILES = [
    pytest.param(
        "years:\n  2027:\n    source: x\n    holidays: [\n", r"city\.yaml:\d+: invalid YAML", id="yaml-syntax"
    ),
    pytest.param("- 2027-01-01\n", "a mapping with one key", id="not-a-mapping"),
    pytest.param("", "a mapping with one key", id="empty"),
    pytest.param(
        "years:\n  2027:\n    source: x\n    holiday:\n      - {name: 元旦, from: 2027-01-01}\n",
        r"city\.yaml:4: unknown key 'years\.2027\.holiday' \(did you mean 'holidays'\?\)",
        id="unknown-key",
    ),
    pytest.param(
        "years:\n  2027:\n    source: x\n    holidays:\n      - {name: 春节, from: 2027-02-30}\n",
        r"city\.yaml:5: years\.2027\.holidays\[0\]\.from: .*'2027-02-30'",
        id="impossible-date",
    ),
    pytest.param(
        "years:\n  2027:\n    holidays:\n      - {name: 元旦, from: 2027-01-01}\n",
        r"city\.yaml:2: required key 'years\.2027\.source' is missing",
        id="missing-source",
    ),
    pytest.param(
        "years:\n  27:\n    source: x\n    holidays:\n      - {name: 元旦, from: 2027-01-01}\n",
        r"city\.yaml:2: years\.27.*greater than or equal to 1949",
        id="two-digit-year",
    ),
    pytest.param(
        "years:\n  2027:\n    source: x\n    holidays:\n      - {name: 元旦, from: 2027-01-01}\n"
        "    workdays:\n      - {name: 元旦, date: 2027-01-04}\n",
        r"city\.yaml:7: years\.2027\.workdays\[0\]: 2027-01-04 is a Monday; a make-up working day",
        id="makeup-on-a-weekday",
    ),
    pytest.param(
        "years:\n  2027:\n    source: x\n    holidays:\n      - {name: 春节, from: 2027-02-12, to: 2027-02-06}\n",
        r"city\.yaml:5: years\.2027\.holidays\[0\]: `to` \(2027-02-06\) is before `from`",
        id="range-backwards",
    ),
    pytest.param(
        "years:\n  2027:\n    source: x\n    holidays:\n      - {name: 春节, from: 2027-02-06, to: 2027-02-12, days: 9}\n",
        r"city\.yaml:5: .*`days` is 9 but 2027-02-06\.\.2027-02-12 is 7 day",
        id="days-disagree",
    ),
    pytest.param(
        "years:\n  2027:\n    source: x\n    holidays:\n      - {name: 春节, from: 2027-02-06, to: 2027-02-12}\n"
        "      - {name: 元宵, from: 2027-02-12, to: 2027-02-13}\n",
        r"city\.yaml:6: years\.2027\.holidays\[1\]: 2027-02-12 \(元宵\) overlaps years\.2027\.holidays\[0\] "
        r"\(春节, .*city\.yaml:5\)",
        id="overlapping-blocks",
    ),
    pytest.param(
        "years:\n  2027:\n    source: x\n    holidays:\n      - {name: 春节, from: 2027-02-06, to: 2027-02-14}\n"
        "    workdays:\n      - {name: 春节, date: 2027-02-13}\n",
        r"city\.yaml:7: .*2027-02-13 is declared both a day off \(节假日, 春节, .*city\.yaml:5\) and a make-up",
        id="contradiction",
    ),
    pytest.param(
        "years:\n  2027:\n    source: x\n    holidays:\n      - {name: 春节, from: 2072-02-06}\n",
        r"city\.yaml:5: .*2072-02-06 is outside the 2027 schedule",
        id="wrong-year",
    ),
    pytest.param(
        "years:\n  2027:\n    source: x\n    workdays:\n      - {name: 春节, date: 2027-02-20}\n",
        r"city\.yaml:2: years\.2027: lists no holidays",
        id="no-holidays",
    ),
]


@pytest.mark.parametrize(("text", "pattern"), BAD_FILES)
def test_malformed_city_file(tmp_path: Path, text: str, pattern: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CalendarError, match=pattern) as err:
        load_calendar(path, environ={})
    assert err.value.hint  # says what to do


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        "years:\n  2027:\n    source: x\n    holidays:\n      - {name: 春节, from: 2027-02-12, to: 2027-02-06}\n"
        "    workdays:\n      - {name: 元旦, date: 2027-01-04}\n"
    )
    with pytest.raises(CalendarError, match="2 problem") as err:
        load_calendar(write(tmp_path, text), environ={})
    assert "city.yaml:5" in err.value.message and "city.yaml:7" in err.value.message


def test_missing_or_unreadable_city_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(CalendarError, match=rf"nowhere\.yaml: working-day calendar \(named by {CALENDAR_ENV}\)"):
        load_calendar(environ={CALENDAR_ENV: str(missing)})
    latin = tmp_path / "gbk.yaml"
    latin.write_bytes("years:\n  2027:\n    source: 放假\n".encode("gbk"))
    with pytest.raises(CalendarError, match=r"gbk\.yaml: not UTF-8") as err:
        load_calendar(latin, environ={})
    assert err.value.hint == "save it as UTF-8"


def test_the_bundled_file_is_clean() -> None:
    # loading checks every rule above; a typo in the bundled file fails here first
    cal = load_calendar(BUNDLED_CALENDAR, environ={})
    assert cal.years == [2023, 2024, 2025, 2026]
