"""The gate API: outcomes, the failing-rows file, the masked validation result, and suite errors.

One staged dataset with known defects is validated once per module; its outcomes are compared
with an independent computation (pandas, row by row) and, expectation by expectation, with
GX running the same suite on pandas (a differential test of GX-on-DuckDB).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from expectations import engine, gate
from pipelines.errors import SpecError, TerminalError
from pipelines.identifiers import (
    is_valid_resident_id,
    is_valid_uscc,
    org_code_check_char,
    resident_id_check_char,
    uscc_check_char,
)
from pipelines.suites import check_suite, load_suite

REPO = Path(__file__).resolve().parents[2]
ROW = "_govdata_row"
N = 2000
STATUSES = ["存续", "在业", "注销"]


# --- the staged data ------------------------------------------------------------------------------


def _resident_id(rng: random.Random) -> str:
    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(25000))
    body = rng.choice(["310115", "310101"]) + born.strftime("%Y%m%d") + f"{rng.randrange(1000):03d}"
    return body + resident_id_check_char(body)


def _uscc(rng: random.Random) -> str:
    prefix = rng.choice(["91", "11", "N1", "Y1"]) + "310115"
    org = "".join(rng.choice("0123456789ABCDEFGH") for _ in range(9))[:8]  # 9 draws: the data stays as it was
    first17 = prefix + org + org_code_check_char(org)  # positions 9-17 are a GB 11714 code with its check
    return first17 + uscc_check_char(first17)


def staged_frame(n: int = N, seed: int = 7) -> pd.DataFrame:
    """Rows with about 1-3 % defects per column, at known places."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        row = {
            ROW: i,
            "uscc": _uscc(rng),
            "resident_id": _resident_id(rng),
            "name": f"名{i}",
            "status": rng.choice(STATUSES),
            "amount": round(rng.uniform(0, 1000), 2),
            "established_on": dt.date(2000, 1, 1) + dt.timedelta(days=rng.randrange(8000)),
            "district_code": rng.choice(["310115", "310101"]),
            "phone": "139" + f"{rng.randrange(10**8):08d}",
            "seq": i,
            "a": i % 50,
            "b": i // 50,
        }
        if i % 97 == 1:
            row["uscc"] = row["uscc"][:-1] + ("0" if row["uscc"][-1] != "0" else "1")
        if i % 89 == 2:
            row["uscc"] = None
        if i % 83 == 3:
            row["resident_id"] = row["resident_id"][:-1] + "x"
        if i % 79 == 4:
            row["name"] = None
        if i % 73 == 5:
            row["status"] = "未知"
        if i % 71 == 6:
            row["amount"] = -1.0
        if i % 67 == 7:
            row["established_on"] = dt.date(1985, 5, 5)
        if i % 61 == 8:
            row["district_code"] = "31011"
        if i % 59 == 9:
            row["phone"] = "1239999"
        if i % 53 == 10:
            row["name"] = "<script>"
        if i % 500 == 11:
            row["seq"] = i - 1  # duplicates
        if i % 400 == 13:
            row["a"], row["b"] = (i - 1) % 50, (i - 1) // 50  # the previous row's pair
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["established_on"] = pd.to_datetime(frame["established_on"])
    return frame


def write_staged(frame: pd.DataFrame, path: Path) -> Path:
    with duckdb.connect() as con:
        con.register("frame", frame)
        con.execute(
            "COPY (SELECT * REPLACE (CAST(established_on AS DATE) AS established_on, "
            f"CAST({ROW} AS BIGINT) AS {ROW}) FROM frame) TO '{path}' (FORMAT parquet)"
        )
    return path


DATASET_COLUMNS = [
    "uscc",
    "resident_id",
    "name",
    "status",
    "amount",
    "established_on",
    "district_code",
    "phone",
    "seq",
    "a",
    "b",
]

SUITE: list[dict[str, Any]] = [
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 100, "max_value": 1_000_000}},
    {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": DATASET_COLUMNS, "exact_match": True}},
    {"type": "expect_table_columns_to_match_ordered_list", "kwargs": {"column_list": DATASET_COLUMNS}},
    {"type": "expect_column_to_exist", "kwargs": {"column": "uscc"}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "uscc"}},
    {"type": "expect_column_values_to_be_valid_uscc", "kwargs": {"column": "uscc"}},
    {"type": "expect_column_values_to_be_valid_cn_resident_id", "kwargs": {"column": "resident_id"}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}},
    {"type": "expect_column_values_to_not_match_regex", "kwargs": {"column": "name", "regex": "[<>]"}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": STATUSES}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0, "max_value": 1000}},
    {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "established_on", "min_value": "1990-01-01T00:00:00", "max_value": "2030-12-31T00:00:00"},
    },
    {"type": "expect_column_value_lengths_to_equal", "kwargs": {"column": "district_code", "value": 6}},
    {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "name", "min_value": 2, "max_value": 5}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "phone", "regex": "^1[3-9][0-9]{9}$"}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "phone", "regex": "9"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "seq"}},
    {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["a", "b"]}},
    {"type": "expect_select_column_values_to_be_unique_within_record", "kwargs": {"column_list": ["a", "b"]}},
]
SENSITIVE = ["resident_id", "name"]


def write_suite(path: Path, expectations: list[dict[str, Any]], name: str = "test_suite") -> Path:
    path.write_text(
        json.dumps({"name": name, "expectations": expectations, "meta": {}}, ensure_ascii=False), encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return staged_frame()


@pytest.fixture(scope="module")
def run(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("gate")
    staged = write_staged(frame, base / "staged.parquet")
    suite = write_suite(base / "suite.json", SUITE)
    result = gate.validate(
        staged, suite, report_dir=base / "report", dataset="test", run_id="2026-01-01", sensitive_columns=SENSITIVE
    )
    return {"result": result, "base": base, "staged": staged, "suite": suite}


def by_name(result: gate.GateResult) -> dict[str, gate.ExpectationOutcome]:
    return {o.name: o for o in result.outcomes}


# --- independent expectations of the outcome --------------------------------------------------------


def expected_failing_rows(frame: pd.DataFrame) -> dict[str, set[int]]:
    """Row keys each row-level expectation must fail, computed in plain pandas/Python."""
    rows = frame[ROW]

    def where(mask: pd.Series) -> set[int]:
        return {int(r) for r in rows[mask.fillna(False).astype(bool)]}

    def non_null(column: str, check: Callable[[Any], bool]) -> set[int]:
        return where(frame[column].map(lambda v: isinstance(v, str) and not check(v)))

    return {
        "expect_column_values_to_not_be_null(uscc)": where(frame["uscc"].isna()),
        "expect_column_values_to_be_valid_uscc(uscc)": non_null("uscc", is_valid_uscc),
        "expect_column_values_to_be_valid_cn_resident_id(resident_id)": non_null("resident_id", is_valid_resident_id),
        "expect_column_values_to_not_be_null(name)": where(frame["name"].isna()),
        "expect_column_values_to_not_match_regex(name)": non_null("name", lambda v: "<" not in v and ">" not in v),
        "expect_column_values_to_be_in_set(status)": where(~frame["status"].isin(STATUSES)),
        "expect_column_values_to_be_between(amount)": where((frame["amount"] < 0) | (frame["amount"] > 1000)),
        "expect_column_values_to_be_between(established_on)": where(
            frame["established_on"] < pd.Timestamp("1990-01-01")
        ),
        "expect_column_value_lengths_to_equal(district_code)": where(frame["district_code"].str.len() != 6),
        "expect_column_value_lengths_to_be_between(name)": non_null("name", lambda v: 2 <= len(v) <= 5),
        "expect_column_values_to_match_regex(phone)": non_null("phone", lambda v: len(v) == 11 and v[1] in "3456789"),
        "expect_column_values_to_match_regex(phone)#2": non_null("phone", lambda v: "9" in v),
        "expect_select_column_values_to_be_unique_within_record(a,b)": where(frame["a"] == frame["b"]),
    }


def test_every_failing_row_is_listed_with_its_expectation(run: dict[str, Any], frame: pd.DataFrame) -> None:
    result: gate.GateResult = run["result"]
    assert result.failures_path is not None
    listed = pd.read_parquet(result.failures_path)
    assert list(listed.columns) == [ROW, "expectation"]
    got: dict[str, set[int]] = {}
    for key, name in zip(listed[ROW], listed["expectation"], strict=True):
        got.setdefault(name, set()).add(int(key))
    expected = {name: keys for name, keys in expected_failing_rows(frame).items() if keys}
    assert got == expected
    assert all(expected.values()), "every row-level expectation should have defects in this data"


def test_failures_file_is_typed_and_sorted(run: dict[str, Any]) -> None:
    path = run["result"].failures_path
    with duckdb.connect() as con:
        types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{path}')").fetchall())
        keys = [r[0] for r in con.execute(f"SELECT {ROW} FROM '{path}'").fetchall()]
    assert types == {ROW: "BIGINT", "expectation": "VARCHAR"}
    assert keys == sorted(keys)


def test_outcomes_in_suite_order_with_stable_names(run: dict[str, Any]) -> None:
    names = [o.name for o in run["result"].outcomes]
    assert names[:6] == [
        "expect_table_row_count_to_be_between",
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_column_to_exist(uscc)",
        "expect_column_values_to_not_be_null(uscc)",
        "expect_column_values_to_be_valid_uscc(uscc)",
    ]
    assert "expect_column_values_to_match_regex(phone)#2" in names
    assert len(set(names)) == len(SUITE)


def test_row_level_and_dataset_level(run: dict[str, Any], frame: pd.DataFrame) -> None:
    result: gate.GateResult = run["result"]
    outcomes = by_name(result)
    for name, keys in expected_failing_rows(frame).items():
        assert outcomes[name].row_level, name
        assert outcomes[name].unexpected_count == len(keys), name
        assert outcomes[name].success is (not keys)
    assert [o.name for o in result.blocking_failures] == [
        "expect_column_values_to_be_unique(seq)",
        "expect_compound_columns_to_be_unique(a,b)",
    ]
    unique = outcomes["expect_column_values_to_be_unique(seq)"]
    assert not unique.row_level and unique.unexpected_count == 8  # four pairs of duplicates
    assert outcomes["expect_compound_columns_to_be_unique(a,b)"].row_level is False


def test_schema_expectations_do_not_see_the_row_key(run: dict[str, Any]) -> None:
    outcomes = by_name(run["result"])
    for name in ("expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list"):
        assert outcomes[name].success, outcomes[name].observed_value
        assert ROW not in outcomes[name].observed_value
    assert outcomes["expect_table_row_count_to_be_between"].observed_value == N
    assert outcomes["expect_column_to_exist(uscc)"].success


def test_outcomes_are_json_safe(run: dict[str, Any]) -> None:
    for outcome in run["result"].outcomes:
        json.dumps(outcome.__dict__)
        assert outcome.element_count == N
    missing = by_name(run["result"])["expect_column_values_to_be_valid_uscc(uscc)"].missing_count
    assert missing == sum(1 for i in range(N) if i % 89 == 2)


def test_report_dir_holds_only_the_two_records(run: dict[str, Any]) -> None:
    report = run["base"] / "report"
    assert sorted(p.name for p in report.iterdir()) == sorted([gate.FAILURES_FILE, gate.VALIDATION_RESULT_FILE])


# --- the validation result record ------------------------------------------------------------------


def test_validation_result_is_gx_json_for_the_whole_suite(run: dict[str, Any]) -> None:
    document = json.loads(run["result"].validation_result_path.read_text(encoding="utf-8"))
    assert document["suite_name"] == "test_suite"
    assert document["statistics"]["evaluated_expectations"] == len(SUITE)
    assert [r["expectation_config"]["type"] for r in document["results"]] == [e["type"] for e in SUITE]
    assert document["success"] is False
    assert document["meta"]["govdata"]["dataset"] == "test"
    assert all("_govdata_index" not in (r["expectation_config"].get("meta") or {}) for r in document["results"])
    uscc = document["results"][5]["result"]
    assert uscc["unexpected_count"] > 0
    assert len(uscc["partial_unexpected_index_list"]) == min(20, uscc["unexpected_count"])
    assert uscc["partial_unexpected_index_list"][0][ROW] == 1  # lowest failing key first
    assert uscc["partial_unexpected_list"][0] is not None  # a non-sensitive value is shown


def test_validation_result_loads_back_into_gx(run: dict[str, Any]) -> None:
    """Data Docs are built from this file: GX's own schema must read it."""
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema

    document = json.loads(run["result"].validation_result_path.read_text(encoding="utf-8"))
    loaded = ExpectationSuiteValidationResultSchema().load(document)
    assert len(loaded.results) == len(SUITE) and loaded.success is False
    assert loaded.meta["active_batch_definition"]["data_asset_name"] == "test"
    assert loaded.meta["run_id"]["run_name"] == "2026-01-01"


def test_sensitive_values_never_reach_the_record(run: dict[str, Any], frame: pd.DataFrame) -> None:
    text = run["result"].validation_result_path.read_text(encoding="utf-8")
    document = json.loads(text)
    for column in SENSITIVE:
        for value in frame[column].dropna():
            assert f'"{value}"' not in text, f"{column} value {value!r} in the validation result"
    rid = document["results"][6]["result"]
    assert rid["partial_unexpected_list"] and set(rid["partial_unexpected_list"]) == {gate.MASK}
    assert all(
        item["resident_id"] == gate.MASK and isinstance(item[ROW], int) for item in rid["partial_unexpected_index_list"]
    )
    assert rid["partial_unexpected_counts"][0]["value"] == gate.MASK
    nulls = document["results"][7]["result"]  # name not null: the failing values are NULLs, kept as null
    assert set(nulls["partial_unexpected_list"]) == {None}


def test_mask_result_handles_multi_column_values() -> None:
    result = {
        "partial_unexpected_list": [{"a": 1, "secret": "x"}],
        "partial_unexpected_counts": [{"value": [1, "x"], "count": 2}],
        "partial_unexpected_index_list": [{ROW: 5, "a": 1, "secret": "x"}],
        "unexpected_list": [{"a": 2, "secret": "y"}],
        "observed_value": "x",
    }
    masked = gate.mask_result(result, ["a", "secret"], {"secret"})
    assert masked["partial_unexpected_list"] == [{"a": 1, "secret": gate.MASK}]
    assert masked["partial_unexpected_counts"] == [{"value": [1, gate.MASK], "count": 2}]
    assert masked["partial_unexpected_index_list"] == [{ROW: 5, "a": 1, "secret": gate.MASK}]
    assert masked["unexpected_list"] == [{"a": 2, "secret": gate.MASK}]
    assert masked["observed_value"] == gate.MASK
    assert gate.mask_result(result, ["a"], {"secret"}) is result


# --- differential: the same suite through GX on pandas ----------------------------------------------


def test_duckdb_counts_equal_gx_on_pandas(run: dict[str, Any], frame: pd.DataFrame) -> None:
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from pipelines.suites import SCHEMA_TYPES

    context = engine.ephemeral_context()
    source = context.data_sources.add_pandas(name="diff")
    staged = frame.copy()
    staged["established_on"] = pd.to_datetime(staged["established_on"])
    dataset = staged.drop(columns=[ROW])
    pandas_results = []
    for entry in SUITE:
        data = dataset if entry["type"] in SCHEMA_TYPES else staged
        asset = source.add_dataframe_asset(name=f"a{len(pandas_results)}")
        batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": data})
        expectation = ExpectationConfiguration(type=entry["type"], kwargs=entry["kwargs"]).to_domain_obj()
        pandas_results.append(batch.validate(ExpectationSuite(name="p", expectations=[expectation])).results[0])
    for entry, duck, pandas in zip(SUITE, run["result"].outcomes, pandas_results, strict=True):
        assert not pandas.exception_info.get("raised_exception"), (entry, pandas.exception_info)
        assert duck.success == bool(pandas.success), entry
        assert duck.unexpected_count == int(pandas.result.get("unexpected_count") or 0), entry
        if "missing_count" in pandas.result:
            assert duck.missing_count == pandas.result["missing_count"], entry
        if "observed_value" in pandas.result:
            observed = pandas.result["observed_value"]
            assert duck.observed_value == (sorted(observed) if entry["type"].endswith("_set") else observed), entry


# --- suite-level options ---------------------------------------------------------------------------


def test_on_failure_overrides_and_mostly(tmp_path: Path, frame: pd.DataFrame) -> None:
    staged = write_staged(frame, tmp_path / "staged.parquet")
    suite = write_suite(
        tmp_path / "suite.json",
        [
            {
                "type": "expect_column_values_to_be_unique",
                "kwargs": {"column": "seq"},
                "meta": {"govdata": {"on_failure": "quarantine"}},
            },
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "status", "value_set": STATUSES},
                "meta": {"govdata": {"on_failure": "block", "name": "status_known"}},
            },
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "amount", "min_value": 0, "mostly": 0.9},
            },
        ],
    )
    result = gate.validate(staged, suite, report_dir=tmp_path / "report", dataset="t", run_id="r")
    unique, status, amount = result.outcomes
    assert unique.row_level and not unique.success
    assert status.name == "status_known" and not status.row_level and not status.success
    assert amount.success and amount.unexpected_count > 0 and amount.row_level  # within `mostly`: passes
    assert result.blocking_failures == [status]
    listed = pd.read_parquet(result.failures_path)
    assert set(listed["expectation"]) == {unique.name}  # blocked and passing expectations quarantine nothing
    duplicated = frame[frame["seq"].duplicated(keep=False)][ROW]
    assert set(listed[ROW]) == set(duplicated)


def test_no_failures_means_no_failures_file(tmp_path: Path, frame: pd.DataFrame) -> None:
    staged = write_staged(frame.head(1), tmp_path / "staged.parquet")
    report = tmp_path / "report"
    report.mkdir()
    (report / gate.FAILURES_FILE).write_bytes(b"stale")
    suite = write_suite(
        tmp_path / "suite.json", [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "seq"}}]
    )
    result = gate.validate(staged, suite, report_dir=report, dataset="t", run_id="r")
    assert result.failures_path is None and not result.blocking_failures and result.outcomes[0].success
    assert not (report / gate.FAILURES_FILE).exists()


def test_a_folder_of_parquet_files(tmp_path: Path, frame: pd.DataFrame) -> None:
    folder = tmp_path / "staging"
    folder.mkdir()
    write_staged(frame.iloc[:700], folder / "part-0.parquet")
    write_staged(frame.iloc[700:], folder / "part-1.parquet")
    (folder / ".spill").mkdir()
    (folder / ".spill" / "junk.parquet").write_bytes(b"not parquet")
    suite = write_suite(
        tmp_path / "suite.json",
        [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": N, "max_value": N}}],
    )
    result = gate.validate(folder, suite, report_dir=tmp_path / "report", dataset="t", run_id="r")
    assert result.outcomes[0].success and result.row_count == N


def test_nothing_is_written_outside_the_report_dir(
    tmp_path: Path, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    staged = write_staged(frame.head(50), tmp_path / "staged.parquet")
    suite = write_suite(tmp_path / "suite.json", SUITE[4:8])
    home, temp, cwd = tmp_path / "home", tmp_path / "tmp", tmp_path / "cwd"
    for folder in (home, temp, cwd):
        folder.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(cwd)
    gate.validate(staged, suite, report_dir=tmp_path / "report", dataset="t", run_id="r", sensitive_columns=SENSITIVE)
    assert [list(f.iterdir()) for f in (home, temp, cwd)] == [[], [], []]


def test_duckdb_connections_draw_no_progress_bar(tmp_path: Path, small: Path) -> None:
    """DuckDB prints a progress bar on stderr for queries over ~2 s, terminal or not."""
    database = tmp_path / "gate.duckdb"
    config = gate._duckdb_config(tmp_path)
    gate._prepare(database, config, [small], ROW)
    setting = "SELECT current_setting('enable_progress_bar')"
    with gate._gx_source(database, config) as source:
        with source.get_execution_engine().engine.connect() as conn:
            assert conn.exec_driver_sql(setting).scalar() is False
        with gate._raw_connection(source) as con:
            assert con.execute(setting).fetchone() == (False,)


# --- errors ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> Path:
    return write_staged(frame.head(30), tmp_path_factory.mktemp("small") / "staged.parquet")


def _validate(small: Path, suite: Path) -> gate.GateResult:
    return gate.validate(small, suite, report_dir=suite.parent / "report", dataset="t", run_id="r")


def test_missing_suite_file(tmp_path: Path, small: Path) -> None:
    with pytest.raises(SpecError, match="suite file not found") as caught:
        _validate(small, tmp_path / "nope.json")
    assert str(tmp_path / "nope.json") in str(caught.value)


def test_bad_json_names_line_and_column(tmp_path: Path, small: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x",\n  "expectations": [\n    {"type": "a",}\n  ]\n}', encoding="utf-8")
    with pytest.raises(SpecError, match=r"bad\.json:3:\d+: invalid JSON"):
        _validate(small, path)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"type": "expect_column_values_to_not_be_nul", "kwargs": {"column": "seq"}},
            "did you mean 'expect_column_values_to_not_be_null'",
        ),
        (
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "sequ"}},
            "names column 'sequ'.*did you mean 'seq'",
        ),
        ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": ROW}}, "not in the staged data"),
        (
            {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["a", "bb"]}},
            "kwargs.column_list names column 'bb'",
        ),
        (
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount"}},
            r"expectations\[1\].*invalid kwargs",
        ),
        ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "seq", "colour": 1}}, "invalid kwargs"),
        (
            {"expectation_type": "expect_column_values_to_not_be_null", "kwargs": {"column": "seq"}},
            "GX 1.x calls it 'type'",
        ),
        (
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "seq"},
                "meta": {"govdata": {"on_failure": "drop"}},
            },
            "on_failure is 'drop'",
        ),
        (
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 1},
                "meta": {"govdata": {"on_failure": "quarantine"}},
            },
            "judges the whole dataset",
        ),
        (
            {
                "type": "expect_compound_columns_to_be_unique",
                "kwargs": {"column_list": ["a", "b"]},
                "meta": {"govdata": {"on_failur": "quarantine"}},
            },
            "did you mean 'on_failure'",
        ),
    ],
)
def test_suite_problems_name_the_file_and_the_expectation(
    tmp_path: Path, small: Path, entry: dict[str, Any], message: str
) -> None:
    suite = write_suite(
        tmp_path / "suite.json", [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}, entry]
    )
    with pytest.raises(SpecError, match=message) as caught:
        _validate(small, suite)
    assert f"{suite}: expectations[1]" in str(caught.value)
    assert caught.value.hint


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "phone", "regex": "^(?!0)1"}},
            "RE2|regex|Invalid",
        ),
        (
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "phone", "min_value": 1, "max_value": 5},
            },
            "Conversion|Binder|cannot",
        ),
    ],
)
def test_expectations_the_data_cannot_take_are_spec_errors(
    tmp_path: Path, small: Path, entry: dict[str, Any], message: str
) -> None:
    suite = write_suite(tmp_path / "suite.json", [entry])
    with pytest.raises(SpecError, match=message):
        _validate(small, suite)


def test_sensitive_column_errors_withhold_the_value(tmp_path: Path, small: Path) -> None:
    suite = write_suite(
        tmp_path / "suite.json",
        [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "phone", "min_value": 1}}],
    )
    with pytest.raises(SpecError, match="details withheld") as caught:
        gate.validate(small, suite, report_dir=tmp_path / "r", dataset="t", run_id="r", sensitive_columns=["phone"])
    assert "139" not in str(caught.value)


def test_non_midnight_date_bound_is_caught_not_misquarantined(tmp_path: Path, small: Path, frame: pd.DataFrame) -> None:
    """GX's row query casts the bound to the DATE column; the count check stops the gate."""
    day = pd.Timestamp(frame["established_on"].iloc[:30].min()).date()
    suite = write_suite(
        tmp_path / "suite.json",
        [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "established_on", "min_value": f"{day}T12:00:00"},
            }
        ],
    )
    with pytest.raises(TerminalError, match="GX counted 1 failing rows but its row query returns 0"):
        _validate(small, suite)


@pytest.mark.filterwarnings("ignore:.*(row_condition|condition_parser).*deprecated:DeprecationWarning")
def test_row_condition_works_dataset_level_only(tmp_path: Path, frame: pd.DataFrame) -> None:
    """GX 1.24's unexpected_index_query drops the row_condition: the count check catches it."""
    head = frame.head(100)  # negative amounts at seq 6 (outside the condition) and 77 (inside)
    staged = write_staged(head, tmp_path / "staged.parquet")
    kwargs = {
        "column": "amount",
        "min_value": 0,
        "row_condition": 'col("seq")>10',
        "condition_parser": "great_expectations",
    }
    quarantine = write_suite(tmp_path / "q.json", [{"type": "expect_column_values_to_be_between", "kwargs": kwargs}])
    with pytest.raises(TerminalError, match="GX counted 1 failing rows but its row query returns 2"):
        _validate(staged, quarantine)
    block = write_suite(
        tmp_path / "b.json",
        [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": kwargs,
                "meta": {"govdata": {"on_failure": "block"}},
            }
        ],
    )
    (outcome,) = _validate(staged, block).outcomes
    assert outcome.unexpected_count == 1 and not outcome.success and not outcome.row_level


def test_bad_staged_data(tmp_path: Path, frame: pd.DataFrame) -> None:
    suite = write_suite(
        tmp_path / "suite.json", [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]
    )
    with pytest.raises(TerminalError, match="staged data not found"):
        gate.validate(tmp_path / "missing", suite, report_dir=tmp_path / "r", dataset="t", run_id="r")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TerminalError, match="no Parquet files"):
        gate.validate(tmp_path / "empty", suite, report_dir=tmp_path / "r", dataset="t", run_id="r")
    no_key = write_staged(frame.head(5), tmp_path / "k.parquet")
    with pytest.raises(TerminalError, match="has no 'row_id' column"):
        gate.validate(no_key, suite, report_dir=tmp_path / "r", dataset="t", run_id="r", row_column="row_id")
    repeated = frame.head(5).copy()
    repeated[ROW] = [0, 1, 1, 2, 3]
    with pytest.raises(TerminalError, match="1 repeated keys"):
        gate.validate(
            write_staged(repeated, tmp_path / "d.parquet"), suite, report_dir=tmp_path / "r", dataset="t", run_id="r"
        )
    assert not any(p.name.startswith(".gate-") for p in (tmp_path / "r").iterdir())


# --- light imports -----------------------------------------------------------------------------------


def test_suite_checks_do_not_import_gx(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite.json", SUITE)
    code = textwrap.dedent(
        f"""
        import sys
        from pipelines.suites import check_suite, load_suite
        check_suite({str(suite)!r}, {DATASET_COLUMNS!r})
        assert len(load_suite({str(suite)!r})["expectations"]) == {len(SUITE)}
        heavy = [m for m in ("great_expectations", "duckdb", "pandas") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr


def test_check_suite_in_process(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite.json", SUITE)
    check_suite(suite, DATASET_COLUMNS)
    assert load_suite(suite)["name"] == "test_suite"
    with pytest.raises(SpecError, match="'uscc'"):
        check_suite(suite, [c for c in DATASET_COLUMNS if c != "uscc"])


def test_importing_the_gate_prints_nothing_even_with_info_logging() -> None:
    """Airflow's logging config puts the root logger at INFO: GX must still stay silent."""
    code = textwrap.dedent(
        """
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        import expectations
        from expectations import gate
        from pipelines.suites import CUSTOM_TYPES
        names = expectations.register()
        assert names == sorted(CUSTOM_TYPES), names
        """
    )
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""


def test_importing_the_package_registers_the_custom_expectations_with_gx() -> None:
    code = textwrap.dedent(
        """
        import expectations  # the only import: registration must come with it
        from great_expectations.expectations.registry import get_expectation_impl
        for name in ("expect_column_values_to_be_valid_cn_resident_id", "expect_column_values_to_be_valid_uscc"):
            assert get_expectation_impl(name).expectation_type == name, name
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr


# --- listing the failing rows in one pass --------------------------------------------------------


def _listing_db() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW {gate.STAGED_VIEW} AS SELECT i AS _govdata_row, "
        "CASE WHEN i % 7 = 0 THEN NULL ELSE i END AS a, CASE WHEN i % 5 = 0 THEN 'x' ELSE 'y' END AS b "
        "FROM range(1, 1001) t(i)"
    )
    con.execute("CREATE TEMP TABLE failures (_govdata_row BIGINT, expectation VARCHAR)")
    return con


def test_failing_rows_of_several_expectations_are_listed_in_one_pass_exactly(tmp_path: Path) -> None:
    queries = {
        "a_not_null": "SELECT _govdata_row, a \nFROM staged \nWHERE a IS NULL",
        "b_in_set": "SELECT _govdata_row, b \nFROM staged \nWHERE b IS NOT NULL AND (b NOT IN ('y'))",
        "a_between": "SELECT _govdata_row, a \nFROM staged \nWHERE a IS NOT NULL AND NOT (a >= 1 AND a <= 900)",
        # another shape (a sub-query): run on its own
        "odd": "SELECT s._govdata_row FROM (SELECT * FROM staged) s WHERE s._govdata_row % 2 = 1 AND s.b = 'x'",
    }
    con = _listing_db()
    gate._list_failing_rows(con, queries, "_govdata_row", tmp_path / "suite.json")
    listed = con.execute(
        "SELECT expectation, list(_govdata_row ORDER BY _govdata_row) FROM failures GROUP BY 1"
    ).fetchall()
    separately = {
        name: [r[0] for r in con.execute(f"SELECT q._govdata_row FROM ({q}) q ORDER BY 1").fetchall()]
        for name, q in queries.items()
    }
    assert dict(listed) == separately
    assert len(separately["a_not_null"]) == 142
    assert len(separately["a_between"]) == 86  # 901..1000 without the multiples of 7 (NULL)
    assert 35 in separately["a_not_null"] and 35 in separately["b_in_set"]  # one row, two expectations


def test_a_condition_the_one_pass_cannot_take_falls_back_and_names_the_expectation(tmp_path: Path) -> None:
    queries = {
        "a_not_null": "SELECT _govdata_row, a \nFROM staged \nWHERE a IS NULL",
        "broken": "SELECT _govdata_row, a \nFROM staged \nWHERE no_such_column > 1",
    }
    con = _listing_db()
    with pytest.raises(TerminalError, match="cannot list the failing rows of broken"):
        gate._list_failing_rows(con, queries, "_govdata_row", tmp_path / "suite.json")
    assert con.execute("SELECT count(*) FROM failures WHERE expectation = 'a_not_null'").fetchone() == (142,)


@pytest.mark.parametrize(
    ("repeated_at", "nulls_at"),
    [
        # 30 duplicate pairs, all beyond the first candidates: the candidates must grow
        ([(k, k + 7) for k in range(9001, 9301, 10)], []),
        # fewer duplicates than a full sample, far apart, and repeated NULLs, which are no duplicates
        ([(3, 29999), (15000, 15001), (29998, 30000)], [5, 6, 7, 20000]),
    ],
)
def test_uniqueness_samples_are_the_lowest_rows_gx_lists(
    tmp_path: Path, repeated_at: list[tuple[int, int]], nulls_at: list[int]
) -> None:
    keys = list(range(1, 30001))
    values: dict[int, str | None] = {k: f"v{k}" for k in keys}
    for first, second in repeated_at:
        values[second] = values[first]
    for k in nulls_at:
        values[k] = None
    rng = random.Random(3)
    rng.shuffle(keys)  # the file is not in key order
    staged = tmp_path / "staged.parquet"
    with duckdb.connect() as con:
        con.register("frame", pd.DataFrame({ROW: keys, "code": [values[k] for k in keys]}))
        con.execute(f"COPY (SELECT CAST({ROW} AS BIGINT) AS {ROW}, code FROM frame) TO '{staged}' (FORMAT parquet)")
    suite = write_suite(
        tmp_path / "suite.json", [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "code"}}]
    )
    result = _validate(staged, suite)
    seen = pd.Series([values[k] for k in sorted(values)], index=sorted(values)).dropna()
    failing = sorted(seen[seen.duplicated(keep=False)].index)
    (outcome,) = result.outcomes
    assert outcome.unexpected_count == len(failing) and not outcome.success
    record = json.loads(result.validation_result_path.read_text(encoding="utf-8"))["results"][0]["result"]
    expected = failing[: gate.PARTIAL_UNEXPECTED_COUNT]
    assert [item[ROW] for item in record["partial_unexpected_index_list"]] == expected
    assert record["partial_unexpected_list"] == [values[k] for k in expected]
    assert record["partial_unexpected_index_list"][0] == {ROW: expected[0], "code": values[expected[0]]}
    assert sum(c["count"] for c in record["partial_unexpected_counts"]) == len(expected)
