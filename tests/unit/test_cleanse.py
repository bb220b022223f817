"""Cleanse rules on tiny landed frames: every row ends in exactly one bucket, with reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cleanse import check_schema, cleanse
from pipelines.errors import SchemaDriftError, SpecError
from pipelines.identifiers import is_valid_resident_id
from pipelines.spec import DatasetSpec
from tests.unit.specfactory import spec_dict


def land(tmp_path: Path, columns: dict[str, list[Any]]) -> Path:
    n = len(next(iter(columns.values())))
    table = pa.table(
        {
            "_govdata_row": pa.array(range(1, n + 1), pa.int64()),
            **{k: pa.array(v, pa.string()) for k, v in columns.items()},
        }
    )
    path = tmp_path / "data.parquet"
    pq.write_table(table, path)
    return path


def make_spec(columns: list[dict[str, Any]], **cleanse_rules: Any) -> DatasetSpec:
    return DatasetSpec.model_validate(spec_dict(columns=columns, cleanse=cleanse_rules))


def rows(path: Path | None) -> list[tuple[Any, ...]]:
    return duckdb.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY 1").fetchall() if path else []


def test_text_standardisation_and_null_tokens(tmp_path: Path) -> None:
    spec = make_spec([{"name": "v", "title": "值"}])
    landed = land(tmp_path, {"v": ["  ＡＢＣ１２３　", "NULL", "无", "-", "/", "", " keep me ", None]})
    res = cleanse(spec, landed, tmp_path / "st", where="test")
    assert [r[1] for r in rows(res.staged_path)] == ["ABC123", None, None, None, None, None, "keep me", None]
    assert res.staged == 8 and res.cast_failed == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023年5月1日", "2023-05-01"),
        ("2023.5.1", "2023-05-01"),
        ("2023/05/01", "2023-05-01"),
        ("2023-5-1", "2023-05-01"),
        ("20230501", "2023-05-01"),
        ("45047", "2023-05-01"),  # Excel serial
        ("2023-05-01 00:00:00", "2023-05-01"),
        ("２０２３年５月１日", "2023-05-01"),  # full-width digits
    ],
)
def test_dates_in_chinese_and_numeric_formats(tmp_path: Path, text: str, expected: str) -> None:
    spec = make_spec([{"name": "d", "title": "日期", "type": "date"}])
    res = cleanse(spec, land(tmp_path, {"d": [text]}), tmp_path / "st", where="test")
    assert res.cast_failed == 0
    assert str(rows(res.staged_path)[0][1]) == expected


@pytest.mark.parametrize("text", ["2023年13月1日", "2023.2.30", "yesterday", "2023", "19990230"])
def test_impossible_dates_are_quarantined_not_nulled(tmp_path: Path, text: str) -> None:
    spec = make_spec([{"name": "d", "title": "日期", "type": "date"}])
    res = cleanse(spec, land(tmp_path, {"d": [text]}), tmp_path / "st", where="test")
    assert res.staged == 0 and res.cast_failed == 1
    reasons = rows(res.cast_failed_path)[0][-1]
    assert reasons == [f'cast_failed:日期(d): cannot read "{text}" as date']


def test_numbers_booleans_and_timestamps(tmp_path: Path) -> None:
    spec = make_spec(
        [
            {"name": "n", "title": "数", "type": "integer"},
            {"name": "m", "title": "钱", "type": "money"},
            {"name": "b", "title": "是否", "type": "boolean"},
            {"name": "t", "title": "时间", "type": "timestamp"},
        ]
    )
    landed = land(
        tmp_path,
        {
            "n": ["1,234", "12.5", "x"],
            "m": ["¥1,000.50", "3", "3"],
            "b": ["是", "否", "maybe"],
            "t": ["2023年5月1日 8时30分", "2023-05-01T08:30:00", "20230501083000"],
        },
    )
    res = cleanse(spec, landed, tmp_path / "st", where="test")
    staged = rows(res.staged_path)
    assert len(staged) == 1
    assert staged[0][1:4] == (1234, pytest.approx(1000.5), True)
    assert str(staged[0][4]) == "2023-05-01 08:30:00"
    failed = {r[0]: r[-1] for r in rows(res.cast_failed_path)}
    # 12.5 is not an integer: never rounded silently
    assert any('cannot read "12.5" as integer' in x for x in failed[2])
    assert len(failed[3]) == 2  # "x" and "maybe"


def test_resident_id_normalisation(tmp_path: Path) -> None:
    spec = make_spec([{"name": "rid", "title": "身份证"}], resident_ids=["rid"])
    res = cleanse(
        spec,
        land(tmp_path, {"rid": ["11010519491231002x", "110105491231002", " 310115198001010014 "]}),
        tmp_path / "st",
        where="t",
    )
    got = [r[1] for r in rows(res.staged_path)]
    assert got[0] == "11010519491231002X"
    assert got[1] == "11010519491231002X" and is_valid_resident_id(got[1])  # 15 → 18 with computed check
    assert got[2] == "310115198001010014"


def test_code_map_inline_and_file(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("source,code\n浦东新区,310115\n徐汇区,310104\n", encoding="utf-8")
    spec = make_spec(
        [{"name": "a", "title": "区1"}, {"name": "b", "title": "区2"}],
        code_maps=[
            {"column": "a", "mapping": {"浦东": "310115"}, "unmapped": "keep"},
            {"column": "b", "file": "d.csv", "unmapped": "quarantine"},
        ],
    )
    spec = spec.model_copy(update={"path": tmp_path / "spec.yaml"})
    res = cleanse(spec, land(tmp_path, {"a": ["浦东", "闵行"], "b": ["徐汇区", "火星"]}), tmp_path / "st", where="t")
    assert rows(res.staged_path) == [(1, "310115", "310104")]
    assert rows(res.cast_failed_path)[0][-1] == ['unmapped_code:区2(b): "火星" is not in the code dictionary']


def test_dedupe_keep_latest_and_first(tmp_path: Path) -> None:
    cols = [
        {"name": "k", "title": "键", "primary_key": True},
        {"name": "u", "title": "更新", "type": "timestamp"},
    ]
    data = {
        "k": ["a", "a", "b", "a", None, None],
        "u": ["2024-01-02", "2024-01-03", "2024-01-01", "2024-01-01", "2024-01-01", "2024-01-01"],
    }
    latest = cleanse(
        make_spec(cols, dedupe={"keep": "latest", "order_by": "u"}), land(tmp_path, data), tmp_path / "l", where="t"
    )
    assert [r[0] for r in rows(latest.staged_path)] == [2, 3, 5, 6]  # null keys are not merged
    assert {r[0]: r[-1] for r in rows(latest.duplicates_path)} == {1: 2, 4: 2}
    first = cleanse(make_spec(cols), land(tmp_path, data), tmp_path / "f", where="t")
    assert [r[0] for r in rows(first.staged_path)] == [1, 3, 5, 6]
    assert first.duplicates == 2


def test_named_filters_count_by_rule_and_bad_rows_are_not_deduped_away(tmp_path: Path) -> None:
    cols = [
        {"name": "k", "title": "键", "primary_key": True},
        {"name": "name", "title": "名称"},
        {"name": "d", "title": "日", "type": "date"},
    ]
    spec = make_spec(
        cols,
        filters=[
            {"name": "test_records", "where": "name LIKE '测试%'"},
            {"name": "closed", "where": "name LIKE '%(已注销)'"},
        ],
    )
    data = {
        "k": ["1", "2", "3", "4", "4"],
        "name": ["测试企业", "甲(已注销)", "乙", "丙", "丙"],
        "d": ["2023-01-01", "2023-01-01", "bad", "2023-01-01", "2023-01-01"],
    }
    res = cleanse(spec, land(tmp_path, data), tmp_path / "st", where="t")
    assert res.filtered == {"closed": 1, "test_records": 1}
    assert res.cast_failed == 1 and res.duplicates == 1 and res.staged == 1
    assert res.rows_in == res.staged + res.cast_failed + res.duplicates + sum(res.filtered.values())


def test_filter_with_broken_sql_names_the_rule(tmp_path: Path) -> None:
    spec = make_spec([{"name": "k", "title": "键"}], filters=[{"name": "broken", "where": "no_such_column = 1"}])
    with pytest.raises(SpecError, match="rule 'broken'"):
        cleanse(spec, land(tmp_path, {"k": ["1"]}), tmp_path / "st", where="t")


def test_sensitive_values_never_appear_in_reasons(tmp_path: Path) -> None:
    spec = make_spec([{"name": "birth", "title": "出生日期", "type": "date", "sensitive": True}])
    res = cleanse(spec, land(tmp_path, {"birth": ["19990230"]}), tmp_path / "st", where="t")
    reason = rows(res.cast_failed_path)[0][-1][0]
    assert "19990230" not in reason and "sensitive, not shown" in reason


def test_schema_drift_names_the_missing_column_and_what_is_there() -> None:
    spec = make_spec([{"name": "uscc", "title": "代码", "source": "统一社会信用代码"}, {"name": "x", "title": "x"}])
    with pytest.raises(SchemaDriftError) as err:
        check_schema(spec, ["统一社会信用代码 ", "y"], "csv file a.csv")
    assert "'统一社会信用代码' for column uscc (the source has '统一社会信用代码 ')" in str(err.value)
    assert "the source has: 统一社会信用代码 , y" in str(err.value.hint)


def test_extra_source_columns_are_reported(tmp_path: Path) -> None:
    spec = make_spec([{"name": "k", "title": "键"}])
    res = cleanse(spec, land(tmp_path, {"k": ["1"], "extra": ["x"]}), tmp_path / "st", where="t")
    assert res.ignored_source_columns == ["extra"]
