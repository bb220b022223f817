"""Source paths per period (``{ds}``), schedule plans and run keys in the dataset's time zone."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipelines.errors import SpecError
from pipelines.schedule import plan_for, render_source_options
from pipelines.spec import DatasetSpec
from pipelines.workspace import run_id_for

from .specfactory import spec_dict

DAY = dt.date(2026, 11, 24)


def _spec(path: str = "source.csv", **changes: Any) -> DatasetSpec:
    return DatasetSpec.model_validate(
        spec_dict(source={"connector": "csv", "options": {"path": path, "encoding": "utf-8"}}, **changes)
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("exports/{ds}.csv", "exports/2026-11-24.csv"),
        ("exports/{year}/{month}/{ds_nodash}.csv", "exports/2026/11/20261124.csv"),
        ("{year}-{day}.csv", "2026-24.csv"),
        ("braces/{{literal}}/{ds}.csv", "braces/{literal}/2026-11-24.csv"),
        ("plain.csv", "plain.csv"),
    ],
)
def test_a_source_path_names_its_period(template: str, expected: str) -> None:
    options = render_source_options(_spec(template), DAY)
    assert options == {"path": expected, "encoding": "utf-8"}


def test_an_aware_logical_date_uses_its_own_calendar_day() -> None:
    midnight = dt.datetime(2026, 11, 24, tzinfo=ZoneInfo("Asia/Shanghai"))  # 2026-11-23 16:00 UTC
    assert render_source_options(_spec("{ds}.csv"), midnight)["path"] == "2026-11-24.csv"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("exports/{date}.csv", "unknown placeholder {date}"),
        ("exports/{ds!r}.csv", "only plain placeholders"),
        ("exports/{ds:>40}.csv", "only plain placeholders"),
        ("exports/{0}.csv", "unknown placeholder {0}"),
        ("exports/{}.csv", "unknown placeholder {}"),
        ("exports/{ds.year}.csv", "unknown placeholder {ds.year}"),
        ("exports/{ds", "not a valid template"),
        ("exports/ds}.csv", "not a valid template"),
    ],
)
def test_hostile_path_templates_name_the_key_and_the_fix(template: str, message: str) -> None:
    with pytest.raises(SpecError, match=r"source\.options\.path") as raised:
        render_source_options(_spec(template), DAY)
    assert message in raised.value.message
    assert raised.value.hint


def test_a_dated_path_needs_a_date() -> None:
    with pytest.raises(SpecError, match="depends on the run's date") as raised:
        render_source_options(_spec("{ds}.csv"), None)
    assert "--date" in (raised.value.hint or "")


def test_plans_follow_the_cycle_unless_the_spec_says_otherwise() -> None:
    assert plan_for(_spec()).cron == "0 0 * * *"
    assert plan_for(_spec()).source == "cycle"
    weekly = plan_for(_spec(catalog={**spec_dict()["catalog"], "update_cycle": "每周"}))
    assert weekly.cron == "0 0 * * 1"
    realtime = plan_for(_spec(catalog={**spec_dict()["catalog"], "update_cycle": "实时"}))
    assert (realtime.cron, realtime.interval) == (None, dt.timedelta(minutes=15))
    other = plan_for(_spec(catalog={**spec_dict()["catalog"], "update_cycle": "其他"}))
    assert other.triggered_only
    custom = plan_for(_spec(schedule={"cron": " 0  2 * * * ", "timezone": "UTC"}))
    assert (custom.cron, custom.timezone, custom.source) == ("0 2 * * *", "UTC", "spec")


@pytest.mark.parametrize(
    ("moment", "key"),
    [
        (dt.date(2026, 11, 24), "2026-11-24"),
        (dt.datetime(2026, 11, 24), "2026-11-24"),
        (dt.datetime(2026, 11, 24, tzinfo=dt.UTC), "2026-11-24"),
        (dt.datetime(2026, 11, 24, tzinfo=ZoneInfo("Asia/Shanghai")), "2026-11-24"),
        (dt.datetime(2026, 11, 24, 10, 15, tzinfo=ZoneInfo("Asia/Shanghai")), "2026-11-24T021500Z"),
        (dt.datetime(2026, 11, 24, 8, tzinfo=ZoneInfo("Asia/Shanghai")), "2026-11-24"),  # UTC midnight
    ],
)
def test_run_keys(moment: dt.date, key: str) -> None:
    assert run_id_for(moment) == key
