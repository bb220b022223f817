"""Schedules from 更新周期: the timetable Airflow's scheduler sees for every cycle, and spec overrides.

Each DAG is serialised and deserialised the way the DAG processor hands it to the scheduler
(``encode_timetable``/``decode_timetable``), and the scheduler's own timetable answers which
period a moment falls in and which run comes next.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.decoders import decode_timetable
from airflow.serialization.encoders import encode_timetable
from airflow.timetables.base import DataInterval, TimeRestriction

from pipelines.spec import UpdateCycle, load_spec
from pipelines.workspace import run_id_for

from .helpers import DAGS_DIR, spec_dict, write_spec

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _at(*args: int, tz: ZoneInfo = SHANGHAI) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)  # type: ignore[misc]


def _dag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **changes: Any) -> Any:
    root = tmp_path / "datasets"
    write_spec(root / "dept", "scheduled", **changes)
    monkeypatch.setenv("GOVDATA_DATASETS_DIR", str(root))
    bag = DagBag(dag_folder=DAGS_DIR)
    assert bag.import_errors == {}
    assert not [w for w in bag.captured_warnings.get(str(DAGS_DIR / "govdata_datasets.py"), ()) if "Skipped" in w]
    return bag.dags["govdata__scheduled"]


def _scheduler_timetable(dag: Any) -> Any:
    return decode_timetable(encode_timetable(dag.timetable))


def _cycle(cycle: str) -> dict[str, Any]:
    return {"catalog": {**spec_dict("x")["catalog"], "update_cycle": cycle}}


# The period that contains Wednesday 25 November 2026, 10:30 in Shanghai, per cycle.
PERIODS = {
    "每日": (_at(2026, 11, 25), _at(2026, 11, 26)),
    "每周": (_at(2026, 11, 23), _at(2026, 11, 30)),  # Monday to Monday
    "每月": (_at(2026, 11, 1), _at(2026, 12, 1)),
    "每季度": (_at(2026, 10, 1), _at(2027, 1, 1)),
    "半年": (_at(2026, 7, 1), _at(2027, 1, 1)),
    "每年": (_at(2026, 1, 1), _at(2027, 1, 1)),
    "实时": (_at(2026, 11, 25, 10, 15), _at(2026, 11, 25, 10, 30)),
}


@pytest.mark.parametrize("cycle", list(PERIODS))
def test_each_update_cycle_schedules_its_period(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cycle: str) -> None:
    timetable = _scheduler_timetable(_dag(monkeypatch, tmp_path, **_cycle(cycle)))
    start, end = PERIODS[cycle]
    # the scheduler's next run after the period before: exactly this period, due when it ended
    before = DataInterval(start - (end - start), start) if cycle == "实时" else None
    info = timetable.next_dagrun_info(
        last_automated_data_interval=before,
        restriction=TimeRestriction(earliest=start, latest=None, catchup=True),
    )
    assert info is not None
    assert (info.data_interval.start, info.data_interval.end) == (start, end)
    assert info.run_after == end
    # the run key is the period's start, as the CLI names it
    key = run_id_for(info.data_interval.start.astimezone(SHANGHAI))
    assert key == (start.date().isoformat() if cycle != "实时" else "2026-11-25T021500Z")


def test_every_update_cycle_is_covered() -> None:
    assert set(PERIODS) | {UpdateCycle.OTHER.value} == {c.value for c in UpdateCycle}


def test_other_runs_only_when_triggered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dag = _dag(monkeypatch, tmp_path, **_cycle("其他"))
    timetable = _scheduler_timetable(dag)
    assert not timetable.can_be_scheduled
    assert "only when triggered" in (dag.doc_md or "")


def test_a_cron_in_the_spec_overrides_the_cycle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dag = _dag(monkeypatch, tmp_path, schedule={"cron": "30 2 * * 1-5"})
    info = _scheduler_timetable(dag).next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=_at(2026, 11, 27, 3), latest=None, catchup=True),  # a Friday
    )
    assert info is not None
    # Monday 02:30 to Tuesday 02:30: the weekend is skipped
    assert (info.data_interval.start, info.data_interval.end) == (_at(2026, 11, 30, 2, 30), _at(2026, 12, 1, 2, 30))


def test_interval_time_zone_start_and_catchup_from_the_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dag = _dag(
        monkeypatch,
        tmp_path,
        schedule={"interval_minutes": 5, "timezone": "Asia/Urumqi", "start_date": "2026-01-01", "catchup": True},
        **_cycle("实时"),
    )
    assert dag.catchup is True
    assert dag.start_date == _at(2026, 1, 1, tz=ZoneInfo("Asia/Urumqi"))
    interval = _scheduler_timetable(dag).infer_manual_data_interval(run_after=_at(2026, 3, 1, 12))
    assert interval.end - interval.start == dt.timedelta(minutes=5)


def test_defaults_do_not_catch_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dag = _dag(monkeypatch, tmp_path)
    assert dag.catchup is False
    assert dag.start_date == _at(2024, 1, 1)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"cron": "@daily"}, "five-field cron"),
        ({"cron": "0 0 * *"}, "not a five-field cron"),
        ({"cron": "0 0 * * *; rm -rf /"}, "not a five-field cron"),
        ({"cron": "0 0 * * *", "interval_minutes": 5}, "not both"),
        ({"interval_minutes": 0}, "interval_minutes"),
        ({"timezone": "Beijing"}, "not an IANA time zone"),
        ({"every": "day"}, "every"),
    ],
)
def test_hostile_schedules_are_refused_with_the_key(tmp_path: Path, schedule: dict[str, Any], message: str) -> None:
    path = write_spec(tmp_path, "bad_schedule", schedule=schedule)
    with pytest.raises(Exception, match=message) as raised:
        load_spec(path)
    assert "schedule" in str(raised.value)
    assert str(path) in str(raised.value)


def test_a_bad_cron_hides_only_its_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A cron croniter cannot read (month 13) passes the light check; Airflow's own check catches it."""
    root = tmp_path / "datasets"
    write_spec(root / "dept", "good_one")
    write_spec(root / "dept", "bad_cron", schedule={"cron": "0 0 1 13 *"})
    monkeypatch.setenv("GOVDATA_DATASETS_DIR", str(root))
    bag = DagBag(dag_folder=DAGS_DIR)
    assert "govdata__good_one" in bag.dag_ids
    assert "govdata__bad_cron" not in bag.dag_ids
    problems = " ".join(bag.captured_warnings.get(str(DAGS_DIR / "govdata_datasets.py"), ())) + " ".join(
        bag.import_errors.values()
    )
    assert "bad_cron" in problems
