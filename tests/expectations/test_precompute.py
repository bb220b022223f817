"""The custom conditions computed once (pipelines.quality_prepass): the same GX result, the same rows.

The gate evaluates the custom expectations' conditions once per row before GX validates, and
GX's metrics read the flags (see pipelines/quality_prepass.py). Each test here compares the gate
with that pass and without it (GX evaluating every condition itself, as before) on hostile data:
the outcomes, the failing rows and the validation result must be the same, field for field.
The prepass's own process (the quality step starts it while GX imports) must give the same.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import sqlalchemy as sa

from expectations import gate
from pipelines import quality_conditions, quality_prepass
from pipelines.errors import SpecError, TerminalError
from pipelines.quality_conditions import FLAG_PREFIX
from tests.expectations.test_differential import differential_suite, make_rows, project_columns, write_staged

ROW = "_govdata_row"


# --- data and suites -------------------------------------------------------------------------------


def hostile_rows(kind: str, n: int = 240) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Rows of the differential test's columns: mixed defects, every value failing, every value passing, NULLs."""
    columns = project_columns()
    rng = random.Random(11)
    rows = make_rows(rng, n, columns, differential_suite())
    if kind == "all_failing":
        for row in rows:
            row.update(
                resident_id="31011519900101123X"[:-1] + "x",  # lower-case check character: invalid
                uscc="91310115MA1K0000X",  # 17 characters
                org_code="1234567",
                district_code="999999",
                mobile="1234",
                phone="1234",
            )
    elif kind == "all_passing":
        for row in rows:
            row.update(VALID)
    elif kind == "all_null":
        for row in rows:
            for column in ("resident_id", "uscc", "org_code", "district_code", "mobile", "phone"):
                row[column] = None
    return rows, columns


def _valid_values() -> dict[str, Any]:
    from pipelines.identifiers import org_code_check_char, resident_id_check_char, uscc_check_char

    body = "310115" + "19900101" + "123"  # 17th digit odd: a man
    org = "12345678"
    first17 = "91310115" + org + org_code_check_char(org)
    return {
        "resident_id": body + resident_id_check_char(body),
        "birth_date": dt.date(1990, 1, 1),
        "birth_text": "1990-01-01",
        "gender": "男",
        "sex_code": 1,
        "uscc": first17 + uscc_check_char(first17),
        "org_code": f"{org}-{org_code_check_char(org)}",
        "district_code": "310115",
        "mobile": "13912345678",
        "phone": "13912345678",
    }


#: Values that pass every custom expectation of :func:`custom_suite`.
VALID = _valid_values()


def custom_suite() -> list[dict[str, Any]]:
    """Every custom entry of the differential suite (each type, defaults and options), a few others,
    one entry twice (they share a flag) and one that blocks instead of quarantining."""
    entries = [e for e in differential_suite() if e["type"] in quality_conditions.METRICS]
    rid = next(e for e in entries if e["type"] == "expect_column_values_to_be_valid_cn_resident_id")
    return [
        *entries,
        {**rid, "meta": {"govdata": {"name": "the same condition again"}}},
        {**rid, "kwargs": {**rid["kwargs"], "mostly": 0.5}, "meta": {"govdata": {"on_failure": "block"}}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "resident_id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "resident_id"}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "postal_code", "regex": "^[0-9]{6}$"}},
    ]


def run_gate(
    root: Path, rows: list[dict[str, Any]], columns: dict[str, str], suite: list[dict[str, Any]], **kwargs: Any
) -> gate.GateResult:
    root.mkdir(parents=True, exist_ok=True)
    staged = root / "staged.parquet"
    if not staged.exists():
        write_staged(rows, columns, staged)
    suite_path = root / "suite.json"
    suite_path.write_text(json.dumps({"name": "s", "expectations": suite}, ensure_ascii=False), encoding="utf-8")
    return gate.validate(
        staged,
        suite_path,
        report_dir=root / "report",
        dataset="d",
        run_id="r",
        sensitive_columns=["resident_id"],
        **kwargs,
    )


def without_precompute(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate as before: no condition computed once, GX evaluates every condition itself."""
    monkeypatch.setattr(quality_conditions, "plan", lambda entries, today: [])


def failing_rows(result: gate.GateResult) -> list[tuple[int, str]]:
    if result.failures_path is None:
        return []
    frame = pd.read_parquet(result.failures_path)
    return sorted(zip(frame[ROW].astype(int), frame["expectation"], strict=True))


def comparable(result: gate.GateResult) -> list[dict[str, Any]]:
    """The validation result's per-expectation records, without the row query (which names the flag)."""
    document = json.loads(result.validation_result_path.read_text(encoding="utf-8"))
    records = []
    for record in document["results"]:
        fields = dict(record["result"])
        fields.pop("unexpected_index_query", None)
        records.append({"success": record["success"], "result": fields, "config": record["expectation_config"]})
    return records


def flags_of(result: gate.GateResult) -> dict[str, Any]:
    document = json.loads(result.validation_result_path.read_text(encoding="utf-8"))
    return (document["meta"]["govdata"].get("precomputed_conditions") or {}).get("flags") or {}


# --- the same result with and without the flags ------------------------------------------------------


@pytest.mark.parametrize("kind", ["mixed", "all_failing", "all_passing", "all_null"])
def test_flags_give_gx_s_own_counts_rows_and_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    rows, columns = hostile_rows(kind)
    suite = custom_suite()
    with_flags = run_gate(tmp_path / "flags", rows, columns, suite)
    with monkeypatch.context() as patch:
        without_precompute(patch)
        before = run_gate(tmp_path / "plain", rows, columns, suite)
    assert with_flags.outcomes == before.outcomes
    assert failing_rows(with_flags) == failing_rows(before)
    assert comparable(with_flags) == comparable(before)
    assert flags_of(before) == {}
    flags = flags_of(with_flags)
    custom = [i for i, e in enumerate(suite) if e["type"] in quality_conditions.METRICS]
    assert sorted(i for f in flags.values() for i in f["expectations"]) == sorted(
        gate.expectation_names(suite)[i] for i in custom
    )
    assert len(flags) < len(custom)  # among others, the repeated and the blocking entry share one flag
    shared = next(f for f in flags.values() if "the same condition again" in f["expectations"])
    assert len(shared["expectations"]) >= 3
    if kind == "mixed":
        assert sum(o.unexpected_count for o in with_flags.outcomes if o.row_level) > 0
        assert any(not o.success for o in with_flags.outcomes if o.expectation_type in quality_conditions.METRICS)
    if kind == "all_failing":
        rid = gate.expectation_names(suite).index("expect_column_values_to_be_valid_cn_resident_id(resident_id)")
        assert with_flags.outcomes[rid].unexpected_count == len(rows)
    if kind in ("all_passing", "all_null"):
        assert all(
            o.unexpected_count == 0 for o in with_flags.outcomes if o.expectation_type in quality_conditions.METRICS
        )


def test_gx_reads_the_flags_in_its_queries(tmp_path: Path) -> None:
    rows, columns = hostile_rows("mixed")
    suite = custom_suite()
    result = run_gate(tmp_path, rows, columns, suite)
    document = json.loads(result.validation_result_path.read_text(encoding="utf-8"))
    for entry, record in zip(suite, document["results"], strict=True):
        query = record["result"].get("unexpected_index_query") or ""
        if entry["type"] in quality_conditions.METRICS:
            assert FLAG_PREFIX in query, (entry, query)
            assert "regexp_full_match" not in query and "list_transform" not in query, query
        elif entry["type"] != "expect_column_values_to_be_unique":  # its query lists every column of the view
            assert FLAG_PREFIX not in query, query


def test_sensitive_values_stay_masked_with_flags(tmp_path: Path) -> None:
    rows, columns = hostile_rows("mixed")
    result = run_gate(tmp_path, rows, columns, custom_suite())
    text = result.validation_result_path.read_text(encoding="utf-8")
    ids = {r["resident_id"] for r in rows if isinstance(r.get("resident_id"), str) and len(r["resident_id"]) >= 15}
    assert ids and not any(i in text for i in ids)


def test_duplicates_and_the_uniqueness_check_are_unaffected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows, columns = hostile_rows("mixed")
    rows = rows + [dict(r, **{ROW: r[ROW] + 10_000}) for r in rows[:40]]  # 40 records twice
    suite = custom_suite()
    with_flags = run_gate(tmp_path / "flags", rows, columns, suite)
    with monkeypatch.context() as patch:
        without_precompute(patch)
        before = run_gate(tmp_path / "plain", rows, columns, suite)
    unique = next(o for o in with_flags.outcomes if o.expectation_type == "expect_column_values_to_be_unique")
    assert unique.unexpected_count >= 2 * sum(1 for r in rows[:40] if r.get("resident_id") is not None) - 1
    assert with_flags.outcomes == before.outcomes
    assert failing_rows(with_flags) == failing_rows(before)
    assert comparable(with_flags) == comparable(before)


# --- the prepass in its own process ------------------------------------------------------------------


def test_the_prepass_process_gives_the_same_result(tmp_path: Path) -> None:
    rows, columns = hostile_rows("mixed")
    suite = custom_suite()
    here = run_gate(tmp_path / "here", rows, columns, suite)
    root = tmp_path / "process"
    root.mkdir()
    write_staged(rows, columns, root / "staged.parquet")
    suite_path = root / "suite.json"
    suite_path.write_text(json.dumps({"name": "s", "expectations": suite}, ensure_ascii=False), encoding="utf-8")
    started = quality_prepass.start(root / "staged.parquet", suite_path, root / "report", row_column=ROW)
    prepared = started.wait()
    assert prepared.process == "own process" and prepared.failed_rows > 0
    assert set(prepared.seconds) == {"views + key check", "conditions computed once"}
    there = run_gate(root, rows, columns, suite, prepass=started)
    assert there.outcomes == here.outcomes
    assert failing_rows(there) == failing_rows(here)
    assert comparable(there) == comparable(here)
    assert flags_of(there) == flags_of(here)
    assert not started.work.exists()  # the gate removed the prepass's work folder
    assert sorted(p.name for p in (root / "report").iterdir()) == sorted(
        [gate.FAILURES_FILE, gate.VALIDATION_RESULT_FILE]
    )


def test_the_prepass_process_reports_the_gate_s_errors(tmp_path: Path) -> None:
    staged = tmp_path / "staged.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT 1 AS id, 'x' AS mobile) TO '{staged}' (FORMAT parquet)")
    suite_path = tmp_path / "suite.json"
    entry = {"type": "expect_column_values_to_be_valid_cn_mobile", "kwargs": {"column": "mobile"}}
    suite_path.write_text(json.dumps({"name": "s", "expectations": [entry]}), encoding="utf-8")
    started = quality_prepass.start(staged, suite_path, tmp_path / "report", row_column=ROW)
    with pytest.raises(TerminalError, match="has no '_govdata_row' column") as caught:
        gate.validate(staged, suite_path, report_dir=tmp_path / "report", dataset="d", run_id="r", prepass=started)
    assert caught.value.hint and "cleanse" in caught.value.hint
    assert not started.work.exists()
    with pytest.raises(SpecError, match="suite file not found"):
        quality_prepass.start(staged, tmp_path / "none.json", tmp_path / "report", row_column=ROW)
    with pytest.raises(TerminalError, match="staged data not found"):
        quality_prepass.start(tmp_path / "none.parquet", suite_path, tmp_path / "report", row_column=ROW)


def test_a_failed_prepass_process_is_redone_here(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows, columns = hostile_rows("mixed")
    suite = custom_suite()
    here = run_gate(tmp_path / "here", rows, columns, suite)
    root = tmp_path / "crash"
    root.mkdir()
    write_staged(rows, columns, root / "staged.parquet")
    suite_path = root / "suite.json"
    suite_path.write_text(json.dumps({"name": "s", "expectations": suite}, ensure_ascii=False), encoding="utf-8")
    work = quality_prepass.new_work_folder(root / "report")
    (work / quality_prepass.DATABASE_FILE).write_bytes(b"half a database")
    crashed = subprocess.Popen(
        [sys.executable, "-c", "raise ValueError('cannot convert 310115199001011234')"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = quality_prepass.Started(
        crashed,
        staged=root / "staged.parquet",
        suite_path=suite_path,
        files=[root / "staged.parquet"],
        work=work,
        row_column=ROW,
        today=quality_conditions.local_today(),
    )
    with caplog.at_level("DEBUG"):
        there = run_gate(root, rows, columns, suite, prepass=started)
    assert there.outcomes == here.outcomes
    assert failing_rows(there) == failing_rows(here)
    assert "prepass process failed (exit 1, ValueError)" in caplog.text
    assert "310115199001011234" not in caplog.text  # the error's message may quote the data: never logged


def test_a_prepass_for_other_data_is_refused_and_closed(tmp_path: Path) -> None:
    rows, columns = hostile_rows("mixed", 30)
    root = tmp_path / "a"
    root.mkdir()
    write_staged(rows, columns, root / "staged.parquet")
    suite_path = root / "suite.json"
    suite_path.write_text(json.dumps({"name": "s", "expectations": custom_suite()}), encoding="utf-8")
    started = quality_prepass.start(root / "staged.parquet", suite_path, root / "report", row_column=ROW)
    with pytest.raises(ValueError, match="prepass was started for"):
        gate.validate(
            root / "other.parquet", suite_path, report_dir=root / "report", dataset="d", run_id="r", prepass=started
        )
    assert not started.work.exists()


def test_close_stops_the_process_and_removes_the_work_folder(tmp_path: Path) -> None:
    rows, columns = hostile_rows("mixed", 30)
    write_staged(rows, columns, tmp_path / "staged.parquet")
    suite_path = tmp_path / "suite.json"
    suite_path.write_text(json.dumps({"name": "s", "expectations": custom_suite()}), encoding="utf-8")
    started = quality_prepass.start(tmp_path / "staged.parquet", suite_path, tmp_path / "report", row_column=ROW)
    started.close()
    assert not started.work.exists()
    started.close()  # twice is harmless


# --- what is not computed once -------------------------------------------------------------------------


def test_a_condition_duckdb_cannot_bind_is_left_to_gx(tmp_path: Path) -> None:
    """A custom check on an integer column: GX reports DuckDB's error as a suite error, as before."""
    rows, columns = hostile_rows("mixed", 30)
    suite = [{"type": "expect_column_values_to_be_valid_cn_mobile", "kwargs": {"column": "sex_code"}}]
    with pytest.raises(SpecError, match="cannot be evaluated"):
        run_gate(tmp_path, rows, columns, suite)


def test_a_staged_column_with_the_flag_prefix_turns_the_flags_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staged = tmp_path / "staged.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT i::BIGINT AS {ROW}, CASE WHEN i % 3 = 0 THEN '12' ELSE '13912345678' END AS mobile, "
            f"TRUE AS {FLAG_PREFIX}x FROM range(50) t(i)) TO '{staged}' (FORMAT parquet)"
        )
    suite_path = tmp_path / "suite.json"
    entry = {"type": "expect_column_values_to_be_valid_cn_mobile", "kwargs": {"column": "mobile"}}
    suite_path.write_text(json.dumps({"name": "s", "expectations": [entry]}), encoding="utf-8")
    result = gate.validate(staged, suite_path, report_dir=tmp_path / "r", dataset="d", run_id="r")
    assert result.outcomes[0].unexpected_count == 17
    assert flags_of(result) == {}


def test_no_custom_expectation_no_flags(tmp_path: Path) -> None:
    rows, columns = hostile_rows("mixed", 30)
    suite = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "resident_id"}}]
    result = run_gate(tmp_path, rows, columns, suite)
    assert flags_of(result) == {}


# --- the flags' names and the GX-free plan ---------------------------------------------------------


def test_a_flag_name_is_the_metric_its_columns_kwargs_and_day() -> None:
    day = dt.date(2026, 11, 25)
    name = quality_conditions.flag_column("m", ["a"], {"k": 1}, day)
    assert name.startswith(FLAG_PREFIX) and name == quality_conditions.flag_column("m", [sa.column("a")], {"k": 1}, day)
    others = [
        quality_conditions.flag_column("n", ["a"], {"k": 1}, day),
        quality_conditions.flag_column("m", ["b"], {"k": 1}, day),
        quality_conditions.flag_column("m", ["a"], {"k": 2}, day),
        quality_conditions.flag_column("m", ["a"], {"k": 1}, day + dt.timedelta(days=1)),
    ]
    assert name not in others and len(set(others)) == 4


def test_read_flag_needs_the_flag_among_the_batch_columns() -> None:
    day = dt.date(2026, 11, 25)
    flag = quality_conditions.flag_column("m", ["a"], {}, day)
    assert quality_conditions.read_flag("m", ["a"], {}, {}, day) is None
    assert quality_conditions.read_flag("m", ["a"], {}, {"_metrics": {"table.columns": ["a"]}}, day) is None
    found = quality_conditions.read_flag("m", ["a"], {}, {"_metrics": {"table.columns": ["a", flag]}}, day)
    assert str(found) == f"{flag} IS NULL"


def test_the_plan_shares_a_flag_and_skips_what_it_cannot_build() -> None:
    day = dt.date(2026, 11, 25)
    mobile = {"type": "expect_column_values_to_be_valid_cn_mobile", "kwargs": {"column": "m"}}
    entries = [
        (0, mobile),
        (1, {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "m"}}),
        (2, {**mobile, "meta": {"govdata": {"name": "again"}}}),
        (
            3,
            {
                "type": "expect_column_values_to_be_valid_cn_mobile",
                "kwargs": {"column": "m", "allow_country_code": False},
            },
        ),
        (4, {"type": "expect_column_values_to_be_valid_cn_admin_division", "kwargs": {"column": "d", "prefix": "0"}}),
        (5, {"type": "expect_column_values_to_be_valid_cn_mobile", "kwargs": {}}),
    ]
    planned = quality_conditions.plan(entries, day)
    assert [c.indexes for c in planned] == [(0, 2), (3,)]
    assert planned[0].value_kwargs == {"allow_country_code": True}


def test_compiled_conditions_keep_percent_signs() -> None:
    """The SQL is rendered as GX's engine renders it (numeric_dollar): a strptime format stays ``%Y``."""
    sql = quality_conditions.compile_sql(
        quality_conditions.consistency_sql(
            sa.column("id"), sa.column("born"), None, allow_15=True, today=dt.date(2026, 1, 1), duckdb=True
        )
    )
    assert "'%Y%m%d'" in sql and "%%" not in sql


def test_the_prepass_imports_no_gx() -> None:
    """It runs while the quality step imports GX: importing GX itself would take the overlap away."""
    code = (
        "import sys, pipelines.quality_prepass\n"
        "assert 'sqlalchemy' not in sys.modules  # starting a prepass needs none (~0.4 s)\n"
        "import pipelines.quality_conditions\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('great_expectations', 'expectations'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
