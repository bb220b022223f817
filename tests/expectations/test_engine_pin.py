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

from expectations import custom, engine
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
