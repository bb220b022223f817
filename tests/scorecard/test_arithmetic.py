"""X = A/B per indicator, dimension and overall scores, and timeliness, against hand-computed cases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines import scorecard
from pipelines.scorecard import Measure, build, expectation_measure, period_of, timeliness
from pipelines.suites import CUSTOM_TYPES, KNOWN_TYPES
from tests.scorecard.helpers import spec

UTC = dt.UTC


def outcome(**values: Any) -> dict[str, Any]:
    base = {"name": "x", "success": True, "row_level": True, "element_count": 0, "unexpected_count": 0}
    return {**base, **values}


def indicator(card: dict[str, Any], code: str) -> dict[str, Any]:
    return next(i for i in card["indicators"] if i["code"] == code)


def dimension(card: dict[str, Any], key: str) -> dict[str, Any]:
    return next(d for d in card["dimensions"] if d["key"] == key)


def card_of(measures: list[Measure]) -> dict[str, Any]:
    return build(spec(), run_id="2026-11-24", logical_date=dt.date(2026, 11, 24), gate="passed", measures=measures)


# --- one expectation's A and B -------------------------------------------------------------------


def test_a_value_level_expectation_judges_the_non_null_values() -> None:
    entry = {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "mobile", "regex": "^1"}}
    m = expectation_measure(3, entry, outcome(element_count=352, unexpected_count=6, missing_count=2), 352)
    assert (m.indicator, m.evaluated, m.failed, m.a) == ("030200", 350, 6, 344)
    assert m.source == {
        "kind": "expectation",
        "index": 3,
        "name": "x",
        "type": "expect_column_values_to_match_regex",
        "column": "mobile",
        "success": True,
    }


def test_not_null_judges_every_row() -> None:
    entry = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}
    m = expectation_measure(0, entry, outcome(success=False, element_count=10, unexpected_count=3), 10)
    assert (m.indicator, m.evaluated, m.failed, m.a) == ("020100", 10, 3, 7)


def test_a_table_level_expectation_counts_all_records_or_none() -> None:
    entry = {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}
    passed = expectation_measure(0, entry, outcome(row_level=False, element_count=40), 40)
    failed = expectation_measure(0, entry, outcome(success=False, row_level=False, element_count=40), 40)
    empty = expectation_measure(0, entry, outcome(success=False, row_level=False), 0)
    assert (passed.indicator, passed.evaluated, passed.failed) == ("020200", 40, 0)
    assert (failed.evaluated, failed.failed, failed.a) == (40, 40, 0)
    assert (empty.evaluated, empty.failed) == (1, 1)  # an empty table still fails its row count


def test_a_failed_map_expectation_without_counts_fails_the_table() -> None:
    entry = {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "a", "type_": "VARCHAR"}}
    m = expectation_measure(0, entry, outcome(success=False, element_count=20), 20)
    assert (m.indicator, m.evaluated, m.failed) == ("010100", 20, 20)


def test_uniqueness_counts_every_duplicated_value() -> None:
    entry = {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}}
    m = expectation_measure(0, entry, outcome(success=False, element_count=9, unexpected_count=4, missing_count=1), 9)
    assert (m.indicator, m.evaluated, m.failed, m.a) == ("030400", 8, 4, 4)


def test_meta_overrides_the_default_indicator() -> None:
    entry = {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "d"},
        "meta": {"govdata": {"indicator": "050100"}},
    }
    assert expectation_measure(0, entry, outcome(element_count=5), 5).indicator == "050100"
    by_dimension = {**entry, "meta": {"govdata": {"dimension": "准确性"}}}
    assert scorecard.indicator_of(by_dimension) == "030100"  # the default is already an accuracy one
    elsewhere = {**entry, "meta": {"govdata": {"dimension": "consistency"}}}
    assert scorecard.indicator_of(elsewhere) == "040200"  # the dimension's main indicator
    reference = {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "d"},
        "meta": {"govdata": {"reference": {"dataset": "b", "column": "c"}}},
    }
    assert scorecard.indicator_of(reference) == "040200"


def test_measures_refuse_impossible_counts() -> None:
    with pytest.raises(ValueError, match="failed"):
        Measure("020100", 3, 4, {})
    with pytest.raises(ValueError, match="unknown indicator"):
        Measure("099999", 3, 1, {})


# --- indicators, dimensions, overall --------------------------------------------------------------


def test_an_indicator_sums_a_and_b_over_its_sources() -> None:
    card = card_of([Measure("020100", 10, 3, {"n": 1}), Measure("020100", 30, 1, {"n": 2})])
    ind = indicator(card, "020100")
    assert (ind["a"], ind["b"], ind["x"], ind["formula"]) == (36, 40, 0.9, "A/B")
    assert [(s["n"], s["a"], s["b"]) for s in ind["sources"]] == [(1, 7, 10), (2, 29, 30)]


def test_duplication_rate_is_one_minus_duplicates_over_records() -> None:
    ind = indicator(card_of([scorecard.duplicate_records(200, 8)]), "030300")
    assert (ind["a"], ind["b"], ind["x"], ind["formula"]) == (8, 200, 0.96, "1-A/B")


def test_dirty_data_rate_counts_unreadable_and_untypable_records() -> None:
    m = scorecard.dirty_records(collected=400, rejected_at_read=3, cast_failed=7)
    assert (m.evaluated, m.failed, m.a) == (400, 10, 10)
    ind = indicator(card_of([m]), "030500")
    assert (ind["a"], ind["b"], ind["x"], ind["formula"]) == (10, 400, 0.975, "1-A/B")


def test_record_completeness_is_capped_by_the_records() -> None:
    m = scorecard.record_completeness(5, 9, approximate=True, expectations=["a"])
    assert (m.evaluated, m.failed, m.source["approximate"]) == (5, 5, True)


def test_dimension_is_the_mean_of_its_indicators_and_overall_the_mean_of_dimensions() -> None:
    card = card_of(
        [
            Measure("030100", 4, 1, {}),  # 0.75
            Measure("030300", 10, 5, {}),  # X = 1 - 5/10 = 0.5
            Measure("020100", 8, 0, {}),  # 1.0
            Measure("040200", 0, 0, {}),  # nothing evaluated: left out
        ]
    )
    assert dimension(card, "accuracy")["score"] == 0.625
    assert dimension(card, "accuracy")["indicators"] == ["030100", "030300"]
    assert dimension(card, "completeness")["score"] == 1.0
    assert dimension(card, "consistency")["score"] is None
    assert indicator(card, "040200")["x"] is None and indicator(card, "040200")["b"] == 0
    assert indicator(card, "060100")["b"] is None and indicator(card, "060100")["sources"] == []
    assert card["score"] == 0.8125
    assert card["schema"] == "govdata.scorecard/1"
    assert [d["name"] for d in card["dimensions"]] == ["规范性", "完整性", "准确性", "一致性", "时效性", "可访问性"]
    assert [d["dama"] for d in card["dimensions"]][:5] == [
        "validity",
        "completeness",
        "accuracy",
        "consistency",
        "timeliness",
    ]
    assert len(card["indicators"]) == 23


def test_nothing_evaluated_gives_no_score() -> None:
    card = card_of([])
    assert card["score"] is None
    assert all(d["score"] is None for d in card["dimensions"])


def test_summary_keeps_the_run_report_shape() -> None:
    card = card_of([Measure("030100", 4, 1, {}), Measure("030100", 4, 0, {}), Measure("020100", 2, 0, {})])
    s = scorecard.summary(card)
    assert s["score"] == card["score"] == 0.9375
    assert s["dimensions"] == {
        "completeness": {"name": "完整性", "dama": "completeness", "score": 1.0, "checks": 1},
        "accuracy": {"name": "准确性", "dama": "accuracy", "score": 0.875, "checks": 2},
    }
    assert s["indicators"] == [
        {"code": "020100", "name": "数据元素完整性", "a": 2, "b": 2, "x": 1.0},
        {"code": "030100", "name": "内容正确性", "a": 7, "b": 8, "x": 0.875},
    ]


# --- compute(): the computed indicators from a run's reports --------------------------------------


def _failures(path: Path, pairs: list[tuple[int, str]]) -> Path:
    con = duckdb.connect()
    con.execute("CREATE TABLE f (_govdata_row BIGINT, expectation VARCHAR)")
    con.executemany("INSERT INTO f VALUES (?, ?)", pairs)
    con.execute(f"COPY f TO '{path}' (FORMAT parquet)")
    con.close()
    return path


def test_compute_derives_record_completeness_duplicates_and_dirty_data(tmp_path: Path) -> None:
    entries = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "b"}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "a", "regex": "x"}},
    ]
    outcomes = [
        outcome(name="nn_a", success=False, element_count=50, unexpected_count=3),
        outcome(name="nn_b", success=False, element_count=50, unexpected_count=2),
        outcome(name="re_a", success=False, element_count=50, unexpected_count=4, missing_count=3),
    ]
    # rows 1 and 2 miss both a and b: record completeness counts them once
    failures = _failures(
        tmp_path / "f.parquet",
        [(1, "nn_a"), (2, "nn_a"), (3, "nn_a"), (1, "nn_b"), (2, "nn_b"), (7, "re_a"), (8, "re_a"), (9, "re_a")],
    )
    card, measured = scorecard.compute(
        spec(),
        run_id="2026-11-24",
        logical_date=dt.date(2026, 11, 24),
        entries=entries,
        outcomes=outcomes,
        row_count=50,
        failures=failures,
        collected={"rows": 60, "rejected": 2, "finished_at": "2026-11-24T10:00:00+00:00"},
        cleansed={"rows_in": 58, "cast_failed": 3, "filtered": {"test": 1}, "duplicates_removed": 4},
        quarantined=10,
        accepted=44,
        gate="passed",
        previous_run_id=None,
    )
    assert [(m.indicator, m.evaluated, m.failed) for m in measured] == [
        ("020100", 50, 3),
        ("020100", 50, 2),
        ("030200", 47, 4),
    ]
    assert (indicator(card, "020100")["a"], indicator(card, "020100")["b"]) == (95, 100)
    rec = indicator(card, "020200")
    assert (rec["a"], rec["b"], rec["sources"][0]["approximate"]) == (47, 50, False)
    assert (indicator(card, "030500")["a"], indicator(card, "030500")["b"]) == (5, 60)  # 2 rejected + 3 cast
    assert (indicator(card, "030300")["a"], indicator(card, "030300")["b"]) == (4, 54)  # 58 - 3 - 1 compared
    assert card["rows"] == {
        "collected": 60,
        "rejected_at_read": 2,
        "cast_failed": 3,
        "filtered": 1,
        "duplicates_removed": 4,
        "staged": 50,
        "quarantined": 10,
        "accepted": 44,
    }
    assert card["timeliness"]["on_time"] is True and card["timeliness"]["in_order"] is True


def test_compute_uses_a_blocking_completeness_failure_as_a_lower_bound(tmp_path: Path) -> None:
    entries = [
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "a"},
            "meta": {"govdata": {"on_failure": "block"}},
        }
    ]
    card, _ = scorecard.compute(
        spec(columns=[{"name": "a", "title": "甲"}], cleanse={}),  # no primary key: duplication is not evaluated
        run_id="2026-11-24",
        logical_date=dt.date(2026, 11, 24),
        entries=entries,
        outcomes=[outcome(name="nn_a", success=False, row_level=False, element_count=20, unexpected_count=6)],
        row_count=20,
        failures=None,
        collected={"rows": 20, "rejected": 0, "finished_at": "2026-11-24T10:00:00+00:00"},
        cleansed={"rows_in": 20, "cast_failed": 0, "filtered": {}, "duplicates_removed": 0},
        quarantined=0,
        accepted=20,
        gate="held",
        previous_run_id="2026-11-25",
    )
    rec = indicator(card, "020200")
    assert (rec["a"], rec["b"], rec["sources"][0]["approximate"]) == (14, 20, True)
    assert indicator(card, "030300")["b"] is None
    assert indicator(card, "050300")["x"] == 0.0  # older than the published version: out of order
    assert card["gate"] == card["status"] == "held" and card["version"] is None


# --- timeliness ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cycle", "logical", "start", "end"),
    [
        ("每日", dt.date(2026, 11, 24), dt.datetime(2026, 11, 24, tzinfo=UTC), dt.datetime(2026, 11, 25, tzinfo=UTC)),
        ("每周", dt.date(2026, 11, 26), dt.datetime(2026, 11, 23, tzinfo=UTC), dt.datetime(2026, 11, 30, tzinfo=UTC)),
        ("每月", dt.date(2026, 12, 31), dt.datetime(2026, 12, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC)),
        ("每季度", dt.date(2026, 11, 24), dt.datetime(2026, 10, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC)),
        ("半年", dt.date(2026, 6, 30), dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2026, 7, 1, tzinfo=UTC)),
        ("每年", dt.date(2026, 3, 1), dt.datetime(2026, 1, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC)),
        ("实时", dt.date(2026, 11, 24), dt.datetime(2026, 11, 24, tzinfo=UTC), dt.datetime(2026, 11, 25, tzinfo=UTC)),
        (
            "实时",
            dt.datetime(2026, 11, 24, 23, 30, tzinfo=UTC),
            dt.datetime(2026, 11, 24, 23, tzinfo=UTC),
            dt.datetime(2026, 11, 25, tzinfo=UTC),
        ),
    ],
)
def test_periods_of_the_update_cycles(cycle: str, logical: dt.date, start: dt.datetime, end: dt.datetime) -> None:
    assert period_of(cycle, logical) == (start, end)


def test_the_other_cycle_has_no_period() -> None:
    assert period_of("其他", dt.date(2026, 11, 24)) is None
    measures, block = timeliness("其他", dt.date(2026, 11, 24), dt.datetime(2030, 1, 1, tzinfo=UTC), None)
    assert [m.indicator for m in measures] == ["050300"]
    assert block["due"] is None and block["on_time"] is None


@pytest.mark.parametrize(
    ("cycle", "logical", "arrived", "due", "on_time"),
    [
        # data of a period is due by the end of the following period
        ("每日", dt.date(2026, 11, 24), dt.datetime(2026, 11, 25, 23, 59, tzinfo=UTC), "2026-11-26T00:00:00", True),
        ("每日", dt.date(2026, 11, 24), dt.datetime(2026, 11, 26, 0, 0, 1, tzinfo=UTC), "2026-11-26T00:00:00", False),
        ("每月", dt.date(2026, 11, 24), dt.datetime(2026, 12, 31, 12, tzinfo=UTC), "2027-01-01T00:00:00", True),
        ("每月", dt.date(2026, 12, 5), dt.datetime(2027, 2, 1, 0, 0, 1, tzinfo=UTC), "2027-02-01T00:00:00", False),
        ("每季度", dt.date(2026, 11, 24), dt.datetime(2027, 3, 31, tzinfo=UTC), "2027-04-01T00:00:00", True),
        ("半年", dt.date(2026, 8, 1), dt.datetime(2027, 7, 2, tzinfo=UTC), "2027-07-01T00:00:00", False),
        ("每年", dt.date(2026, 8, 1), dt.datetime(2027, 12, 31, tzinfo=UTC), "2028-01-01T00:00:00", True),
        ("每周", dt.date(2026, 11, 24), dt.datetime(2026, 12, 6, 23, tzinfo=UTC), "2026-12-07T00:00:00", True),
        # an hourly key (a non-midnight logical date-time) of real-time data is due two hours on
        (
            "实时",
            dt.datetime(2026, 11, 24, 23, 0, tzinfo=UTC),
            dt.datetime(2026, 11, 25, 1, 30, tzinfo=UTC),
            "2026-11-25T01:00:00",
            False,
        ),
        # early data (arrived before its period ended) is on time
        ("每日", dt.date(2026, 11, 24), dt.datetime(2026, 11, 24, 10, tzinfo=UTC), "2026-11-26T00:00:00", True),
    ],
)
def test_point_in_time_timeliness(cycle: str, logical: dt.date, arrived: dt.datetime, due: str, on_time: bool) -> None:
    measures, block = timeliness(cycle, logical, arrived, None)
    arrival = next(m for m in measures if m.indicator == "050200")
    assert block["due"] == due + "+00:00"
    assert block["on_time"] is on_time
    assert (arrival.a, arrival.evaluated) == (1 if on_time else 0, 1)


def test_time_sequence_compares_with_the_latest_published_version() -> None:
    arrived = dt.datetime(2026, 11, 24, 10, tzinfo=UTC)
    later = scorecard.parse_run_id("2026-11-25")
    earlier = scorecard.parse_run_id("2026-11-23T063000Z")
    assert earlier == dt.datetime(2026, 11, 23, 6, 30, tzinfo=UTC)
    for previous, in_order in (
        (None, True),
        (earlier, True),
        (later, False),
        (scorecard.parse_run_id("2026-11-24"), True),
    ):
        measures, block = timeliness("每日", dt.date(2026, 11, 24), arrived, previous)
        order = next(m for m in measures if m.indicator == "050300")
        assert block["in_order"] is in_order
        assert order.a == (1 if in_order else 0)
    assert scorecard.parse_run_id("not-a-key") is None


def test_naive_times_are_utc() -> None:
    _, block = timeliness("每日", dt.datetime(2026, 11, 24, 0, 0), dt.datetime(2026, 11, 24, 8, 0), None)
    assert block["arrived_at"] == "2026-11-24T08:00:00+00:00"
    assert block["period_start"] == "2026-11-24T00:00:00+00:00"


# --- the tables ----------------------------------------------------------------------------------


def test_every_known_expectation_type_has_a_default_indicator() -> None:
    assert scorecard.untagged_types(KNOWN_TYPES) == []
    assert set(CUSTOM_TYPES) <= set(scorecard.DEFAULT_INDICATOR)
    for name in (
        "expect_column_values_to_be_valid_cn_org_code",
        "expect_column_values_to_be_valid_cn_admin_division",
        "expect_column_values_to_be_valid_cn_mobile",
        "expect_cn_resident_id_to_match_birth_date_and_sex",
    ):
        assert name in scorecard.DEFAULT_INDICATOR
    assert scorecard.DEFAULT_INDICATOR["expect_cn_resident_id_to_match_birth_date_and_sex"] == "040200"
    assert all(code in scorecard.INDICATORS for code in scorecard.DEFAULT_INDICATOR.values())


def test_the_indicator_table_matches_the_standard() -> None:
    by_dimension: dict[str, list[str]] = {}
    for code, ind in scorecard.INDICATORS.items():
        by_dimension.setdefault(ind.dimension, []).append(code)
    assert {k: len(v) for k, v in by_dimension.items()} == {
        "conformity": 6,
        "completeness": 2,
        "accuracy": 6,
        "consistency": 3,
        "timeliness": 4,
        "accessibility": 2,
    }
    assert [c for c, i in scorecard.INDICATORS.items() if i.inverse] == ["030300", "030500"]
    assert scorecard.INDICATORS["030300"].name == "重复率" and scorecard.INDICATORS["030500"].name == "脏数据出现率"
