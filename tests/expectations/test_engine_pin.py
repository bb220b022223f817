"""The DuckDB adapter is pinned: GX is the version it was written for, and every patched path works.

A GX upgrade fails here first: the version check, then each patch's own test — including the
tests that show the stock behaviour is still broken (when one of those fails, GX fixed the bug
and the patch can go).
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import great_expectations as gx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from great_expectations.expectations import (
    ExpectColumnValuesToMatchRegex,
    ExpectColumnValuesToNotMatchRegex,
)
from great_expectations.expectations.registry import get_metric_kwargs

from expectations import custom, engine
from pipelines import quality_conditions
from pipelines.suites import CUSTOM_TYPES, GX_CORE_TYPES, MAP_TYPES, SCHEMA_TYPES


def test_gx_is_the_version_the_patches_were_written_for() -> None:
    assert gx.__version__ == engine.PINNED_GX_VERSION, (
        f"great-expectations {gx.__version__} is installed; expectations/engine.py patches "
        f"{engine.PINNED_GX_VERSION}: re-check each patch in its docstring, then update PINNED_GX_VERSION"
    )


def test_another_gx_version_is_refused_with_a_clear_error() -> None:
    with pytest.raises(engine.GXVersionError) as caught:
        engine.check_version("1.25.0")
    assert "1.24.1" in str(caught.value) and "1.25.0" in str(caught.value)
    assert "PINNED_GX_VERSION" in (caught.value.hint or "")


def test_patches_are_applied_once() -> None:
    assert engine.patched()
    query = SqlAlchemyExecutionEngine.execute_query
    engine.apply_patches()
    assert SqlAlchemyExecutionEngine.execute_query is query
    assert not hasattr(query.__wrapped__, "__wrapped__")  # wrapped exactly once


VALUES = ["abc", "xbz", "a.c", None, "张三", "王小二三四", "１２", "a\u3000b", "x_y", "é", "-"]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pin") / "pin.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t (id BIGINT, s VARCHAR)")
        con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(VALUES, start=1)))
    return path


@pytest.fixture(scope="module")
def duckdb_engine(database: Path) -> Iterator[Any]:
    execution_engine = SqlAlchemyExecutionEngine(connection_string=engine.duckdb_url(database))
    yield execution_engine
    execution_engine.engine.dispose()


# --- patch 1: results survive the connection ----------------------------------------------------


def test_stock_execute_query_loses_duckdb_results(duckdb_engine: Any) -> None:
    """Why patch 1 exists. If this fails, GX fixed it: drop patch 1."""
    stock = SqlAlchemyExecutionEngine.execute_query.__wrapped__
    assert stock(duckdb_engine, sa.text("SELECT count(*) FROM t")).fetchall() == []


def test_execute_query_returns_duckdb_rows(duckdb_engine: Any) -> None:
    assert duckdb_engine.execute_query(sa.text("SELECT count(*) FROM t")).fetchall() == [(len(VALUES),)]
    ids = duckdb_engine.execute_query(sa.text("SELECT id FROM t ORDER BY id")).scalars().all()
    assert ids == list(range(1, len(VALUES) + 1))
    result = duckdb_engine.execute_query_in_transaction(sa.text("SELECT s FROM t WHERE id = 1"))
    assert result.fetchone() == ("abc",)


def test_other_dialects_take_the_stock_path(tmp_path: Path) -> None:
    sqlite = SqlAlchemyExecutionEngine(connection_string=f"sqlite:///{tmp_path / 'x.db'}")
    try:
        result = sqlite.execute_query(sa.text("SELECT 1"))
        assert isinstance(result, sa.CursorResult)  # not the buffered result patch 1 returns
        assert result.fetchall() == [(1,)]
    finally:
        sqlite.engine.dispose()


# --- patch 2: regex on DuckDB, with pandas' search semantics ------------------------------------


def test_every_regex_module_uses_the_wrapper() -> None:
    original = None
    for name in engine._REGEX_MODULES:
        function = importlib.import_module(name).get_dialect_regex_expression
        original = original or function.__wrapped__
        assert function.__wrapped__ is original, name


def test_stock_regex_builder_does_not_know_duckdb(duckdb_engine: Any) -> None:
    """Why patch 2 exists. If this fails, GX learnt DuckDB regexes: check their anchoring, drop patch 2."""
    util = importlib.import_module("great_expectations.expectations.metrics.util")
    stock = util.get_dialect_regex_expression.__wrapped__
    assert stock(sa.column("s"), "b", duckdb_engine.engine.dialect) is None


def test_regex_on_other_dialects_is_gx_s_own() -> None:
    util = importlib.import_module("great_expectations.expectations.metrics.util")
    sqlite = sa.create_engine("sqlite://").dialect
    module = sa.dialects.sqlite  # GX passes the dialect module for the dialects it knows
    ours = util.get_dialect_regex_expression(sa.column("s"), "b", module)
    stock = util.get_dialect_regex_expression.__wrapped__(sa.column("s"), "b", module)
    assert str(ours.compile(dialect=sqlite)) == str(stock.compile(dialect=sqlite))
    assert "regexp_matches" not in str(ours.compile(dialect=sqlite))


@pytest.fixture(scope="module")
def batches(database: Path) -> Iterator[dict[str, Any]]:
    context = engine.ephemeral_context()
    source = context.data_sources.add_sql(name="pin_duckdb", connection_string=engine.duckdb_url(database))
    sql = source.add_table_asset(name="t", table_name="t").add_batch_definition_whole_table("all").get_batch()
    frame = pd.DataFrame({"id": range(1, len(VALUES) + 1), "s": VALUES})
    pandas = (
        context.data_sources.add_pandas(name="pin_pandas")
        .add_dataframe_asset(name="t")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    yield {"sql": sql, "pandas": pandas}
    source.get_execution_engine().engine.dispose()
    source.get_engine().dispose()


@pytest.mark.parametrize(
    "regex",
    [
        "b",
        "^a",
        "c$",
        "^a.c$",
        r"\.",
        "z|^x",
        "[^a-c]",
        r"^\w{2,4}$",
        r"\d",
        r"\s",
        r"\W",
        r"[\w-]+$",
        r"^[^\d]+$",
        "^[张王]",
    ],
)
@pytest.mark.parametrize("kind", [ExpectColumnValuesToMatchRegex, ExpectColumnValuesToNotMatchRegex])
def test_regex_counts_match_pandas(batches: dict[str, Any], regex: str, kind: type) -> None:
    results = {name: batch.validate(kind(column="s", regex=regex)) for name, batch in batches.items()}
    for result in results.values():
        assert not result.exception_info.get("raised_exception"), result.exception_info
    assert results["sql"].result["unexpected_count"] == results["pandas"].result["unexpected_count"]
    assert results["sql"].result["missing_count"] == results["pandas"].result["missing_count"] == 1


def test_regex_query_is_a_search(batches: dict[str, Any]) -> None:
    result = batches["sql"].validate(
        ExpectColumnValuesToMatchRegex(column="s", regex="b"),
        result_format={
            "result_format": "SUMMARY",
            "unexpected_index_column_names": ["id"],
            "return_unexpected_index_query": True,
        },
    )
    assert "regexp_matches(s, 'b')" in result.result["unexpected_index_query"]
    assert result.result["unexpected_count"] == sum(1 for v in VALUES if v is not None and "b" not in v)


@pytest.mark.parametrize(
    ("python", "re2"),
    [
        (r"^\w{2,4}$", r"^[\p{L}\p{N}_]{2,4}$"),
        (r"[\w-]+", r"[\p{L}\p{N}_-]+"),
        (r"\d\D[^\d]", r"\p{Nd}\P{Nd}[^\p{Nd}]"),
        (r"[]\s]", r"[]\t\n\x{0b}\f\r\x{1c}-\x{1f}\x{85}\p{Z}]"),
        (r"\\w \. \p{Han} [\W]", r"\\w \. \p{Han} [\W]"),  # escaped backslash, others, \W in a class: as written
    ],
)
def test_python_classes_are_spelt_for_re2(python: str, re2: str) -> None:
    assert engine.python_regex_to_re2(python) == re2


def test_sql_row_lists_are_capped_even_in_complete_format(batches: dict[str, Any]) -> None:
    """Why the gate runs GX's unexpected_index_query itself instead of asking for COMPLETE."""
    from great_expectations.expectations.metrics.map_metric_provider import map_condition_auxilliary_methods as aux

    source = Path(aux.__file__).read_text(encoding="utf-8")
    index_function = source[source.index("def _sqlalchemy_map_condition_index(") :]
    index_function = index_function[: index_function.index("\ndef ")]
    assert '.limit(result_format["partial_unexpected_count"])' in index_function


# --- what the gate relies on besides the patches ---------------------------------------------------


def test_suite_type_tables_match_gx_s_registry() -> None:
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.registry import (
        get_expectation_impl,
        list_registered_expectation_implementations,
    )

    registered = set(list_registered_expectation_implementations())
    assert registered - CUSTOM_TYPES == set(GX_CORE_TYPES)
    assert registered >= CUSTOM_TYPES
    maps = {
        name
        for name in registered
        if issubclass(
            get_expectation_impl(name), (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
        )
    }
    assert maps == set(MAP_TYPES)
    assert registered >= SCHEMA_TYPES
    assert set(custom.CUSTOM_EXPECTATIONS) == CUSTOM_TYPES


def test_invalid_expectations_are_dropped_silently_by_gx() -> None:
    """Why the gate builds every expectation itself (and raises SpecError) before making a suite."""
    suite = gx.ExpectationSuite(name="s", expectations=[{"type": "expect_column_values_to_be_nul", "kwargs": {}}])
    assert suite.expectations == []


def test_ephemeral_context_is_quiet_and_writes_nothing() -> None:
    context = engine.ephemeral_context()
    config = context.variables.config
    assert config.analytics_enabled is False
    assert config.progress_bars.globally is False and config.progress_bars.metric_calculations is False
    assert not config.data_docs_sites


def test_results_serialise_with_json_default() -> None:
    values = [
        np.bool_(True),
        np.int64(3),
        np.float64(0.5),
        decimal.Decimal("2.50"),
        decimal.Decimal("7"),
        dt.date(2024, 2, 29),
    ]
    assert json.loads(json.dumps(values, default=engine.json_default)) == [True, 3, 0.5, 2.5, 7, "2024-02-29"]
    with pytest.raises(TypeError):
        json.dumps(object(), default=engine.json_default)


# --- the custom conditions computed once (pipelines.quality_prepass) ---------------------------------
#
# The gate computes each custom metric's condition before GX validates and names its flag column
# after the value kwargs GX will hand the metric; the metric reads the flag only when the names
# match. GX 1.24.1's get_metric_kwargs and the "table.columns" GX passes to a condition are what
# this relies on: if an upgrade changes either, these tests fail (the gate would still be right,
# evaluating every condition twice as before, but slowly).

KWARGS_CASES: dict[str, list[dict[str, Any]]] = {
    "expect_column_values_to_be_valid_cn_resident_id": [
        {"column": "id"},
        {"column": "id", "allow_15": True},
        {"column": "id", "area_table": "historical"},
        {"column": "id", "area_table": "current", "mostly": 0.9},
    ],
    "expect_column_values_to_be_valid_uscc": [{"column": "u"}, {"column": "u", "check_org_code": False}],
    "expect_column_values_to_be_valid_cn_org_code": [{"column": "o"}, {"column": "o", "hyphen": "required"}],
    "expect_column_values_to_be_valid_cn_admin_division": [
        {"column": "d"},
        {"column": "d", "prefix": "3101", "level": "county"},
        {"column": "d", "area_table": "historical", "prefix": ["31", "32"]},
    ],
    "expect_column_values_to_be_valid_cn_mobile": [{"column": "m"}, {"column": "m", "allow_country_code": False}],
    "expect_cn_resident_id_to_match_birth_date_and_sex": [
        {"column": "id", "birth_date_column": "born"},
        {"column": "id", "sex_column": "sex", "sex_values": {"male": ["1"], "female": ["2"]}},
        {"column": "id", "birth_date_column": "born", "sex_column": "sex", "allow_15": False},
    ],
}


def test_every_custom_type_has_a_condition_computed_once() -> None:
    assert set(KWARGS_CASES) == set(quality_conditions.METRICS) == set(custom.CUSTOM_EXPECTATIONS)
    for name, spec in quality_conditions.METRICS.items():
        expectation = custom.CUSTOM_EXPECTATIONS[name]
        assert expectation.map_metric == spec.metric, name
        registered = get_metric_kwargs(f"{spec.metric}.condition")
        assert tuple(registered["metric_value_keys"]) == tuple(spec.defaults), name
        for key, default in spec.defaults.items():  # the expectation's own defaults (pydantic fields)
            assert expectation.__fields__[key].default == default, (name, key)


@pytest.mark.parametrize(
    ("kind", "kwargs"), [(kind, kwargs) for kind, cases in KWARGS_CASES.items() for kwargs in cases]
)
def test_condition_kwargs_are_the_ones_gx_hands_the_metric(kind: str, kwargs: dict[str, Any]) -> None:
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    spec = quality_conditions.METRICS[kind]
    expectation = ExpectationConfiguration(type=kind, kwargs=kwargs).to_domain_obj()
    got = get_metric_kwargs(f"{spec.metric}.condition", configuration=expectation.configuration)
    assert dict(got["metric_value_kwargs"]) == spec.value_kwargs(kwargs)
    domain = got["metric_domain_kwargs"]
    assert (list(domain["column_list"]) if spec.multicolumn else [domain["column"]]) == spec.columns(kwargs)


def test_gx_reads_the_flag_of_every_custom_metric(tmp_path: Path) -> None:
    """GX 1.24.1 hands each custom condition the batch's columns and the kwargs the flag is named after."""
    from expectations import gate

    staged = tmp_path / "staged.parquet"
    with duckdb.connect() as con:
        con.execute(
            "COPY (SELECT i::BIGINT AS _govdata_row, 'x' || i AS id, 'x' AS u, 'x' AS o, 'x' AS d, 'x' AS m, "
            "DATE '1990-01-01' AS born, '1' AS sex FROM range(5) t(i)) "
            f"TO '{staged}' (FORMAT parquet)"
        )
    entries = [{"type": kind, "kwargs": kwargs} for kind, cases in KWARGS_CASES.items() for kwargs in cases]
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "pin", "expectations": entries}), encoding="utf-8")
    result = gate.validate(staged, suite, report_dir=tmp_path / "report", dataset="pin", run_id="r")
    document = json.loads(result.validation_result_path.read_text(encoding="utf-8"))
    today = quality_conditions.local_today()
    for entry, record in zip(entries, document["results"], strict=True):
        spec = quality_conditions.METRICS[entry["type"]]
        flag = quality_conditions.flag_column(
            spec.metric, spec.columns(entry["kwargs"]), spec.value_kwargs(entry["kwargs"]), today
        )
        query = record["result"].get("unexpected_index_query") or ""
        assert f"{flag} IS NOT NULL" in query, (entry, query)  # NOT (flag IS NULL): the rows that fail
