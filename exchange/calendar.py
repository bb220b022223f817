"""The working-day calendar of mainland China that review deadlines are counted in.

A day is a working day when the State Council's schedule for its year makes it one: Monday to
Friday unless the schedule gives it off (放假), and Saturday or Sunday only when the schedule
declares it a make-up working day (调休上班). The schedules are data, not code: the published
notices of the years we are sure of are bundled in ``exchange/workdays_cn.yaml``; a city adds a
new year (each notice appears in November for the next year) or corrects one with its own file in
the same format, named by ``GOVDATA_WORKDAY_CALENDAR``. A year without a table is an error, never
a guess, unless ``GOVDATA_WORKDAY_FALLBACK=weekends`` says to count only weekends for such years
(logged once per year).

Counting follows the Civil Code's rule for periods (民法典 第二百零一条, 第二百零三条): the day of
submission is never counted, whatever the hour and whether or not it is a working day; the period
ends at 24:00 of its last day, or at the configured close of business that day. So a submission at
08:00 or at 23:00 on a Friday, or on the Saturday after, gets the same deadline: the end of the
n-th working day after that date. Dates are those of Asia/Shanghai; naive datetimes are refused
(a naive time from a server in UTC would shift the day by eight hours without anyone noticing).

Why a data file and not a package at run time: ``chinese-calendar`` (MIT) holds the same tables
including 调休, but a city gets next year's schedule only with its next release, and ``holidays``
derives future Chinese years from patterns instead of refusing them. The bundled file plus the
city's own file let a city add the State Council's notice the day it is published, and a year
without a table is an error, never a guess. ``chinese-calendar`` is the tests' independent
cross-check: every day of every bundled year must agree with it (``tests/exchange/test_calendar.py``).
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.errors import TerminalError

log = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALENDAR_ENV = "GOVDATA_WORKDAY_CALENDAR"
FALLBACK_ENV = "GOVDATA_WORKDAY_FALLBACK"
BUNDLED_CALENDAR = Path(__file__).with_name("workdays_cn.yaml")
MAX_WORKING_DAYS = 2500  # about ten years: a longer period is a typo, and would walk past year 9999
Fallback = Literal["error", "weekends"]
_FORMAT_HINT = (
    f"the format is that of exchange/{BUNDLED_CALENDAR.name}: `years: {{YYYY: {{source: <the notice>, "
    "holidays: [{name: 春节, from: YYYY-MM-DD, to: YYYY-MM-DD, days: N}, …], "
    "workdays: [{name: 春节, date: YYYY-MM-DD}, …]}}`"
)


class CalendarError(TerminalError):
    """The working-day calendar cannot answer: a malformed table, a year without one, a bad argument."""


class DayKind(StrEnum):
    """What a date is in the calendar."""

    WORKING_DAY = "工作日"
    WEEKEND = "休息日"
    HOLIDAY = "节假日"
    MAKEUP_WORKING_DAY = "调休上班"


@dataclass(frozen=True)
class Day:
    """One date of the calendar: its kind, the festival it belongs to, where that was declared."""

    date: dt.date
    kind: DayKind
    name: str | None = None
    declared_at: str | None = None

    @property
    def working(self) -> bool:
        return self.kind in (DayKind.WORKING_DAY, DayKind.MAKEUP_WORKING_DAY)


# --- the file format ---------------------------------------------------------------------------


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HolidayBlock(_Closed):
    """One festival's days off (放假), as the notice gives them."""

    name: str = Field(min_length=1, description="The festival (元旦, 春节, 清明节, 劳动节, 端午节, 中秋节, 国庆节).")
    start: dt.date = Field(alias="from", description="First day off (ISO date).")
    end: dt.date | None = Field(default=None, alias="to", description="Last day off, inclusive; omit for one day.")
    days: int | None = Field(default=None, ge=1, description="The notice's 共N天; checked against the block.")


class MakeupDay(_Closed):
    """A Saturday or Sunday the notice declares a working day (调休上班)."""

    name: str = Field(min_length=1, description="The festival it makes up for.")
    date: dt.date = Field(description="The make-up working day (ISO date).")


class YearSchedule(_Closed):
    """One year's schedule, from one State Council notice."""

    source: str = Field(min_length=1, description="The notice the entries come from (title, number, address).")
    replace: bool = Field(
        default=False,
        description="In a city file: drop the bundled entries of this year instead of adding to them.",
    )
    holidays: list[HolidayBlock] = Field(default_factory=list, description="The days off, one block per festival.")
    workdays: list[MakeupDay] = Field(default_factory=list, description="The make-up working days.")


Year = Annotated[int, Field(ge=1949, le=2100)]


class CalendarFile(_Closed):
    """A calendar file: the schedules by year."""

    years: dict[Year, YearSchedule] = Field(description="Each year's schedule, keyed by the year.")


# --- YAML with file / line / key errors (shared with exchange.deadlines) --------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings, so a bad date is a validation error with a line."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_yaml(path: Path, what: str) -> tuple[yaml.Node | None, Any]:
    """Parse ``path``; raise :class:`CalendarError` naming the file (and line) when it cannot be read."""
    if not path.is_file():
        raise CalendarError(f"{path}: {what} not found", hint=f"give the path of an existing {what} (YAML)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CalendarError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})", hint="save it as UTF-8") from exc
    try:
        return yaml.compose(text, Loader=_Loader), yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise CalendarError(f"{where}: invalid YAML: {problem}", hint="fix the YAML syntax at that line") from exc


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the node at ``loc`` (or of its deepest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _where(path: Path, node: yaml.Node | None, loc: tuple[int | str, ...]) -> str:
    line = _line_of(node, loc)
    return f"{path}:{line}" if line else str(path)


def _key(loc: tuple[int | str, ...]) -> str:
    """``years.2026.holidays[0].from``: list positions in brackets, mapping keys (years too) dotted."""
    out = ""
    for previous, part in zip((None, *loc), loc, strict=False):
        out += f"[{part}]" if isinstance(part, int) and previous != "years" else f".{part}"
    return out.lstrip(".") or "(top level)"


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys valid at ``loc`` (aliases where a field has one), to suggest the nearest."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = current.model_fields if isinstance(current, type) and issubclass(current, BaseModel) else {}
        match = next((f for n, f in fields.items() if part in (n, f.alias)), None)
        if match is None:
            return []
        candidates = [match.annotation, *getattr(match.annotation, "__args__", ())]
        for arg in list(candidates):
            candidates.extend(getattr(arg, "__args__", ()))
        current = next((a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None)
    if not (isinstance(current, type) and issubclass(current, BaseModel)):
        return []
    return sorted(f.alias or n for n, f in current.model_fields.items())


def _validation_problems(path: Path, node: yaml.Node | None, exc: ValidationError, model: type[BaseModel]) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "[key]"))))
        where, key = _where(path, node, loc), _key(loc)
        if err["type"] == "extra_forbidden":
            valid = _fields_at(model, loc[:-1])
            near = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
            suggestion = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(f"{where}: unknown key {key!r}{suggestion}; valid keys here: {', '.join(valid)}")
        elif err["type"] == "missing":
            problems.append(f"{where}: required key {key!r} is missing")
        else:
            problems.append(f"{where}: {key}: {str(err['msg']).removeprefix('Value error, ')} (got {err['input']!r})")
    return problems


def _raise_problems(path: Path, what: str, problems: list[str], hint: str) -> None:
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise CalendarError(f"{path}: {len(problems)} problem(s) in the {what}:\n{listed}", hint=hint)


# --- parsing one file into dated entries -----------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    kind: DayKind
    name: str
    year: int  # the schedule (notice) it belongs to
    where: str  # file:line
    key: str


@dataclass(frozen=True)
class _Parsed:
    path: Path
    schedules: dict[int, YearSchedule]
    entries: dict[dt.date, _Entry]


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def parse_calendar_file(path: str | Path) -> _Parsed:
    """Read and check one calendar file; every problem is reported with its file, line and key."""
    path = Path(path)
    node, data = _read_yaml(path, "working-day calendar")
    if not isinstance(data, dict):
        raise CalendarError(f"{path}: a calendar file is a mapping with one key, `years`", hint=_FORMAT_HINT)
    try:
        parsed = CalendarFile.model_validate(data)
    except ValidationError as exc:
        _raise_problems(path, "working-day calendar", _validation_problems(path, node, exc, CalendarFile), _FORMAT_HINT)
        raise  # pragma: no cover - _raise_problems always raises for a non-empty list
    problems: list[str] = []
    entries: dict[dt.date, _Entry] = {}

    def add(day: dt.date, entry: _Entry, loc: tuple[int | str, ...]) -> None:
        first = dt.date(entry.year - 1, 12, 1)
        last = dt.date(entry.year + 1, 1, 31)
        if not first <= day <= last:
            problems.append(
                f"{entry.where}: {entry.key}: {day} is outside the {entry.year} schedule "
                f"(a notice's dates fall between {first} and {last}); check the year of the date"
            )
            return
        other = entries.get(day)
        if other is None:
            entries[day] = entry
        elif other.kind != entry.kind:
            problems.append(
                f"{entry.where}: {entry.key}: {day} is declared both a day off ({other.kind.value}, "
                f"{other.name}, {other.where}) and a make-up working day ({entry.name}); keep the one the notice says"
                if entry.kind is DayKind.MAKEUP_WORKING_DAY
                else f"{entry.where}: {entry.key}: {day} is declared both a make-up working day ({other.name}, "
                f"{other.where}) and a day off ({entry.name}); keep the one the notice says"
            )
        else:
            problems.append(
                f"{entry.where}: {entry.key}: {day} ({entry.name}) overlaps {other.key} ({other.name}, "
                f"{other.where}); list each date once"
            )

    for year, schedule in parsed.years.items():
        if not schedule.holidays:
            problems.append(
                f"{_where(path, node, ('years', year))}: years.{year}: lists no holidays; every State Council "
                "notice gives days off, so an empty year would count only weekends"
            )
        for i, block in enumerate(schedule.holidays):
            loc: tuple[int | str, ...] = ("years", year, "holidays", i)
            where, key = _where(path, node, loc), f"years.{year}.holidays[{i}]"
            end = block.end or block.start
            if end < block.start:
                problems.append(f"{where}: {key}: `to` ({end}) is before `from` ({block.start}); swap them")
                continue
            span = (end - block.start).days + 1
            if block.days is not None and block.days != span:
                problems.append(
                    f"{where}: {key}: `days` is {block.days} but {block.start}..{end} is {span} day(s); "
                    "copy both from the notice (共N天)"
                )
                continue
            if span > 31:
                problems.append(f"{where}: {key}: {span} days off in one block; check `from` and `to`")
                continue
            for offset in range(span):
                day = block.start + dt.timedelta(days=offset)
                add(day, _Entry(DayKind.HOLIDAY, block.name, year, where, key), loc)
        for i, makeup in enumerate(schedule.workdays):
            loc = ("years", year, "workdays", i)
            where, key = _where(path, node, loc), f"years.{year}.workdays[{i}]"
            if makeup.date.weekday() < 5:
                problems.append(
                    f"{where}: {key}: {makeup.date} is a {_WEEKDAYS[makeup.date.weekday()]}; a make-up working "
                    "day (调休上班) is a Saturday or Sunday the notice declares a working day (weekdays already are)"
                )
                continue
            add(makeup.date, _Entry(DayKind.MAKEUP_WORKING_DAY, makeup.name, year, where, key), loc)
    _raise_problems(path, "working-day calendar", problems, f"fix the entries named above; {_FORMAT_HINT}")
    return _Parsed(path, dict(parsed.years), entries)


# --- the calendar ----------------------------------------------------------------------------


def _local_date(value: object, what: str) -> dt.date:
    """The Asia/Shanghai date of ``value`` (a date, or a timezone-aware datetime)."""
    if isinstance(value, dt.datetime):
        return _aware(value, what).astimezone(SHANGHAI).date()
    if isinstance(value, dt.date):
        return value
    raise CalendarError(
        f"{what} must be a date or a datetime, not {type(value).__name__} {value!r}",
        hint="parse it first, e.g. datetime.fromisoformat('2026-11-24T09:30+08:00')",
    )


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise CalendarError(
            f"{what} {value.isoformat()} has no time zone; working days are counted in Asia/Shanghai "
            "and a naive time is ambiguous by up to a day",
            hint="pass a timezone-aware datetime, e.g. datetime.now(tz=ZoneInfo('Asia/Shanghai'))",
        )
    return value


class WorkdayCalendar:
    """Working days of mainland China from one or more schedule files; see the module docstring."""

    def __init__(
        self,
        entries: Mapping[dt.date, _Entry],
        years: Mapping[int, str],
        *,
        fallback: Fallback = "error",
    ) -> None:
        self._entries = dict(entries)
        self._years = dict(years)  # year → the notice it comes from
        self.fallback: Fallback = fallback
        self._warned: set[int] = set()

    @property
    def years(self) -> list[int]:
        """The years that have a table."""
        return sorted(self._years)

    def source(self, year: int) -> str | None:
        """The notice a year's table comes from."""
        return self._years.get(year)

    def day(self, value: dt.date | dt.datetime) -> Day:
        """What ``value`` (a date, or an aware datetime taken in Asia/Shanghai) is in the calendar."""
        date = _local_date(value, "the date")
        entry = self._entries.get(date)
        if entry is not None:
            return Day(date, entry.kind, entry.name, entry.where)
        if date.year not in self._years:
            self._no_table(date)
        return Day(date, DayKind.WEEKEND if date.weekday() >= 5 else DayKind.WORKING_DAY)

    def _no_table(self, date: dt.date) -> None:
        if self.fallback == "weekends":
            if date.year not in self._warned:
                self._warned.add(date.year)
                log.warning(
                    "no working-day table for %s: counting only Saturdays and Sundays as days off (%s=weekends)",
                    date.year,
                    FALLBACK_ENV,
                )
            return
        covered = ", ".join(map(str, self.years)) or "none"
        raise CalendarError(
            f"no working-day table for {date.year} (asked about {date}); the calendar has tables for {covered}",
            hint=(
                f"add the State Council's schedule for {date.year} (国务院办公厅关于{date.year}年部分节假日安排的通知) "
                f"to the YAML file named by {CALENDAR_ENV}; {_FORMAT_HINT}. Or set {FALLBACK_ENV}=weekends to "
                "count only weekends in years without a table"
            ),
        )

    def is_working_day(self, value: dt.date | dt.datetime) -> bool:
        """True on a working day (Monday to Friday not given off, or a make-up working day)."""
        return self.day(value).working

    def add_working_days(self, start: dt.datetime, n: int, *, close: dt.time | None = None) -> dt.datetime:
        """The deadline ``n`` working days after ``start``: the end of the n-th working day after its date.

        The day of ``start`` (in Asia/Shanghai) is not counted, whatever its hour or kind. The result
        is that day's ``close`` in Asia/Shanghai, or its last instant (23:59:59.999999, i.e. 24:00)
        when no close is given, so the deadline's date is the n-th working day.
        """
        if not isinstance(start, dt.datetime):
            raise CalendarError(
                f"the start must be a timezone-aware datetime, not {type(start).__name__} {start!r}",
                hint="pass the submission time, e.g. datetime.now(tz=ZoneInfo('Asia/Shanghai'))",
            )
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_WORKING_DAYS:
            raise CalendarError(
                f"the number of working days must be a whole number from 1 to {MAX_WORKING_DAYS}, not {n!r}",
                hint="give the period in working days, e.g. 5",
            )
        if close is not None and close.tzinfo is not None:
            raise CalendarError(
                f"the close of business {close.isoformat()} carries a time zone; it is a local time in Asia/Shanghai",
                hint="give it without a zone, e.g. 17:30",
            )
        day = _local_date(start, "the start")
        counted = 0
        while counted < n:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return dt.datetime.combine(day, close or dt.time.max, tzinfo=SHANGHAI)

    def working_days_between(self, a: dt.date | dt.datetime, b: dt.date | dt.datetime) -> int:
        """The working days after the date of ``a`` up to and including the date of ``b``.

        Dates are taken in Asia/Shanghai. Negative when ``b`` is before ``a``; so
        ``working_days_between(s, add_working_days(s, n)) == n`` and the working days by which a
        deadline is overdue are ``working_days_between(due_at, now)``.
        """
        first, last = _local_date(a, "the first date"), _local_date(b, "the second date")
        sign = 1
        if last < first:
            first, last, sign = last, first, -1
        count = 0
        day = first
        while day < last:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return sign * count


def _fallback_from(value: str | None, source: str) -> Fallback:
    value = (value or "error").strip().lower() or "error"
    if value == "error":
        return "error"
    if value == "weekends":
        return "weekends"
    raise CalendarError(
        f"{source} is {value!r}; expected `error` (refuse years without a table) or `weekends`",
        hint=f"set {FALLBACK_ENV}=weekends or unset it",
    )


def load_calendar(
    city_file: str | Path | None = None,
    *,
    fallback: Fallback | None = None,
    environ: Mapping[str, str] | None = None,
) -> WorkdayCalendar:
    """The bundled schedules, with the city's file (``city_file`` or ``GOVDATA_WORKDAY_CALENDAR``) on top.

    The city's entries add to the bundled ones; a date in both takes the city's meaning (logged); a
    year with ``replace: true`` drops the bundled entries of that year first.
    """
    env = os.environ if environ is None else environ
    mode = fallback if fallback is not None else _fallback_from(env.get(FALLBACK_ENV), FALLBACK_ENV)
    bundled = parse_calendar_file(BUNDLED_CALENDAR)
    entries = dict(bundled.entries)
    years = {year: schedule.source for year, schedule in bundled.schedules.items()}
    path = city_file if city_file is not None else (env.get(CALENDAR_ENV) or None)
    if path is not None:
        if not Path(path).is_file():
            named = f" (named by {CALENDAR_ENV})" if city_file is None else ""
            raise CalendarError(
                f"{path}: working-day calendar{named} not found",
                hint=f"give the path of the city's calendar YAML in {CALENDAR_ENV}, or unset it; {_FORMAT_HINT}",
            )
        city = parse_calendar_file(path)
        for year, schedule in city.schedules.items():
            if schedule.replace:
                dropped = [d for d, e in entries.items() if e.year == year]
                for d in dropped:
                    del entries[d]
                log.info("working-day calendar: %s replaces the bundled %s schedule", city.path, year)
            years[year] = schedule.source
        for day, entry in city.entries.items():
            before = entries.get(day)
            if before is not None and before.kind != entry.kind:
                log.info(
                    "working-day calendar: %s is %s (%s, %s), not %s as bundled",
                    day,
                    entry.kind.value,
                    entry.name,
                    entry.where,
                    before.kind.value,
                )
            entries[day] = entry
    return WorkdayCalendar(entries, years, fallback=mode)


_DEFAULT: tuple[tuple[object, ...], WorkdayCalendar] | None = None


def default_calendar() -> WorkdayCalendar:
    """The calendar the environment configures, loaded once and again when the configuration changes."""
    global _DEFAULT
    path = os.environ.get(CALENDAR_ENV) or None
    try:
        mtime = Path(path).stat().st_mtime_ns if path else None
    except OSError:
        mtime = None
    key = (path, mtime, os.environ.get(FALLBACK_ENV))
    if _DEFAULT is None or _DEFAULT[0] != key:
        _DEFAULT = (key, load_calendar())
    return _DEFAULT[1]


def is_working_day(value: dt.date | dt.datetime, *, calendar: WorkdayCalendar | None = None) -> bool:
    """True on a working day; see :meth:`WorkdayCalendar.is_working_day`."""
    return (calendar or default_calendar()).is_working_day(value)


def add_working_days(
    start: dt.datetime, n: int, *, close: dt.time | None = None, calendar: WorkdayCalendar | None = None
) -> dt.datetime:
    """The end of the n-th working day after the date of ``start``; see :meth:`WorkdayCalendar.add_working_days`."""
    return (calendar or default_calendar()).add_working_days(start, n, close=close)


def working_days_between(
    a: dt.date | dt.datetime, b: dt.date | dt.datetime, *, calendar: WorkdayCalendar | None = None
) -> int:
    """Working days after ``a`` up to ``b``; see :meth:`WorkdayCalendar.working_days_between`."""
    return (calendar or default_calendar()).working_days_between(a, b)
