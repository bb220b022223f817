"""Quality tags and references in a suite's meta: valid ones are read, hostile ones are clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.errors import SpecError
from pipelines.scorecard import check_tags, indicator_of
from pipelines.suites import load_suite
from tests.scorecard.helpers import write_dataset

NOT_NULL = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "code"}}


def suite_file(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"name": "t", "expectations": [NOT_NULL, *entries]}, ensure_ascii=False), "utf-8")
    return path


def entry(kind: str = "expect_column_values_to_be_between", **govdata: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": {"column": "code"}, "meta": {"govdata": govdata}}


def error_of(tmp_path: Path, *entries: dict[str, Any]) -> str:
    path = suite_file(tmp_path, *entries)
    with pytest.raises(SpecError) as caught:
        load_suite(path)
    text = str(caught.value)
    assert str(path) in text and "expectations[1]" in text  # the file and the expectation's index
    return text


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"indicator": "050100"}, "050100"),
        ({"dimension": "completeness"}, "020100"),
        ({"dimension": "一致性"}, "040200"),
        ({"dimension": "validity"}, "010400"),  # DAMA's name
        ({"dimension": "uniqueness"}, "030100"),  # DAMA's uniqueness is part of 准确性; between defaults there
        ({"dimension": "timeliness", "indicator": "050300"}, "050300"),
        ({}, "030100"),
    ],
)
def test_valid_overrides_are_read(tmp_path: Path, override: dict[str, Any], expected: str) -> None:
    suite = load_suite(suite_file(tmp_path, entry(**override)))
    assert indicator_of(suite["expectations"][1]) == expected


@pytest.mark.parametrize(
    ("value", "nearest"),
    [
        ("030700", "030600"),  # past the last accuracy code
        ("020300", "020200"),
        ("010150", "010100"),
        ("990100", "060200"),
        ("唯一性", "030400"),  # the name instead of the code
        ("dirty", None),
        ("", None),
    ],
)
def test_an_unknown_indicator_names_the_nearest_code(tmp_path: Path, value: str, nearest: str | None) -> None:
    text = error_of(tmp_path, entry(indicator=value))
    assert "is not a DB31/T 1523-2024 indicator" in text
    if nearest:
        assert f"did you mean {nearest!r}" in text


@pytest.mark.parametrize(
    ("value", "nearest"), [(30100, "030100"), (20200.0, "020200"), (True, None), (["030100"], None)]
)
def test_an_indicator_that_is_not_a_string_is_refused(tmp_path: Path, value: Any, nearest: str | None) -> None:
    text = error_of(tmp_path, entry(indicator=value))
    assert "must be a string code" in text
    if nearest:
        assert f'"{nearest}"' in text


def test_an_unknown_dimension_names_the_nearest(tmp_path: Path) -> None:
    text = error_of(tmp_path, entry(dimension="acuracy"))
    assert "is not a GB/T 36344-2018 dimension" in text and "did you mean 'accuracy'" in text
    text = error_of(tmp_path, entry(dimension=["accuracy"]))
    assert "must be a string" in text


def test_an_indicator_outside_the_named_dimension_is_refused(tmp_path: Path) -> None:
    text = error_of(tmp_path, entry(dimension="completeness", indicator="030100"))
    assert "belongs to accuracy (准确性)" in text and "020100" in text


def test_top_level_meta_tags_are_pointed_to_their_place(tmp_path: Path) -> None:
    legacy = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "code"}, "meta": {"dimension": "x"}}
    assert "meta.govdata.dimension" in error_of(tmp_path, legacy)


def test_an_unknown_govdata_key_lists_the_valid_ones(tmp_path: Path) -> None:
    text = error_of(tmp_path, entry(indicatr="030100"))
    assert "did you mean 'indicator'" in text and "reference" in text


@pytest.mark.parametrize(
    ("kind", "reference", "kwargs", "message"),
    [
        ("expect_column_values_to_be_in_set", "district_dictionary", {}, "must be an object"),
        ("expect_column_values_to_be_in_set", {"dataset": "d", "colum": "c"}, {}, "did you mean 'column'"),
        ("expect_column_values_to_be_in_set", {"dataset": "d"}, {}, "reference.column is missing"),
        ("expect_column_values_to_be_in_set", {"dataset": 3, "column": "c"}, {}, "reference.dataset is missing or not"),
        ("expect_column_values_to_be_in_set", {"dataset": "../etc", "column": "c"}, {}, "is not a dataset id"),
        ("expect_column_values_to_be_between", {"dataset": "d", "column": "c"}, {}, "works with"),
        ("expect_column_values_to_be_in_set", {"dataset": "d", "column": "c"}, {"value_set": ["1"]}, "exclude each"),
    ],
)
def test_hostile_references_are_refused(
    tmp_path: Path, kind: str, reference: Any, kwargs: dict[str, Any], message: str
) -> None:
    bad = {"type": kind, "kwargs": {"column": "code", **kwargs}, "meta": {"govdata": {"reference": reference}}}
    assert message in error_of(tmp_path, bad)


def test_a_type_without_a_default_must_be_tagged() -> None:
    with pytest.raises(SpecError, match="has no default quality indicator"):
        check_tags(Path("s.json"), 0, {"type": "expect_something_new", "kwargs": {}})
    check_tags(Path("s.json"), 0, {"type": "expect_something_new", "meta": {"govdata": {"indicator": "010400"}}})


def test_govdata_validate_reports_a_bad_code_without_a_traceback(tmp_path: Path) -> None:
    spec_path = write_dataset(
        tmp_path,
        dataset="tagged",
        resource_code="101510001/000101",
        columns=[{"name": "code", "title": "代码", "primary_key": True, "nullable": False}],
        header=["code"],
        rows=[["1"]],
        expectations=[NOT_NULL, entry(indicator="030700")],
    )
    result = CliRunner().invoke(app, ["validate", str(spec_path)])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "suite.json: expectations[1]" in output and "did you mean '030600'" in output
    assert "Traceback" not in output
