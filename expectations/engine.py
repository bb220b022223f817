r"""The DuckDB adapter: narrow patches that make GX 1.24.1's SQL datasource run on DuckDB.

Stock GX 1.24.1 cannot validate anything through duckdb-engine. Each patch below fixes one
measured failure, applies only when the SQLAlchemy dialect is ``duckdb`` (every other dialect
takes GX's own code path unchanged), and is pinned to the GX version it was written for:
:func:`apply_patches` raises :class:`GXVersionError` on any other version, and
``tests/expectations/test_engine_pin.py`` exercises every patched path.

Patch 1 — results vanish when GX closes the connection
    What breaks: every metric query fails with ``IndexError: list index out of range`` in
    ``SqlAlchemyExecutionEngine.resolve_metric_bundle`` (``res[0]`` of an empty list).
    Why: ``SqlAlchemyExecutionEngine.execute_query`` runs the query inside
    ``with self.get_connection() as connection:`` and returns the *unfetched* cursor result
    after the block. Leaving the block returns the connection to the pool, whose reset issues a
    rollback. duckdb-engine's cursor is the DuckDB connection itself, so that rollback
    discards the pending result and the caller's ``fetchall()`` returns ``[]``.
    Fix: for the duckdb dialect, ``execute_query`` and ``execute_query_in_transaction`` buffer
    the rows (``CursorResult.freeze()``) while the connection is still open and return a
    buffered ``Result`` with the same fetch API. Statements that return no rows are returned
    as they are.

Patch 2 — regex expectations are "not supported for dialect duckdb"
    What breaks: ``expect_column_values_to_match_regex`` / ``..._not_match_regex`` (and the
    ``_list`` variants) fail with ``NotImplementedError: Regex is not supported for dialect``.
    Why: ``great_expectations.expectations.metrics.util.get_dialect_regex_expression`` knows a
    fixed list of dialects, probed through the dialect *module* GX keeps for the dialects it
    ships. For duckdb GX has none and passes duckdb-engine's ``Dialect`` object instead; no
    probe matches and the function returns ``None``.
    Fix: ``get_dialect_regex_expression`` is wrapped (and rebound in ``util`` and in every metric
    module that imported it by name); for duckdb-engine's dialect it returns
    ``regexp_matches(column, pattern)`` or its negation. ``regexp_matches`` is a *search*
    (true when the pattern matches anywhere), like ``Series.str.contains`` that GX uses on
    pandas, so anchors mean the same on both. DuckDB's regexes are RE2, whose ``\d``, ``\w``,
    ``\s`` are ASCII-only where Python's are Unicode (``\w`` matches 张 in Python, not in RE2);
    :func:`python_regex_to_re2` rewrites them to the Unicode classes Python uses, so a pattern
    like ``^\w{2,4}$`` judges Chinese names the same on both engines. Still different: ``\b``
    and ``\B`` (ASCII word boundaries in RE2), ``\W``/``\S`` *inside* a bracket class, and
    ``$`` before a final newline (Python matches, RE2 does not). RE2 has no look-around or
    back-references: such a pattern fails in DuckDB with an error (the gate reports a SpecError).
    Every other dialect reaches GX's original function.

Not patched, but handled by the caller (``expectations.gate``):
    - ``ExpectationSuite(expectations=[...])`` logs and *drops* an expectation whose type it
      does not know; the gate checks the types and builds every expectation itself, raising
      ``SpecError`` instead.
    - The ephemeral context creates a temporary Data Docs directory outside the project and
      shows tqdm progress bars; :func:`ephemeral_context` configures neither.
    - Result values can be ``Decimal``, ``datetime.date`` or numpy scalars; the gate serialises
      them with :func:`json_default`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import logging
import math
import os
from collections.abc import Callable
from typing import Any

import great_expectations as gx
import sqlalchemy as sa

from pipelines.errors import TerminalError

logger = logging.getLogger(__name__)

#: The GX version these patches were written for and tested against.
PINNED_GX_VERSION = "1.24.1"

#: Metric modules that import ``get_dialect_regex_expression`` by name (patch 2).
_REGEX_MODULES = (
    "great_expectations.expectations.metrics.util",
    "great_expectations.expectations.metrics.column_map_metrics.column_values_match_regex",
    "great_expectations.expectations.metrics.column_map_metrics.column_values_not_match_regex",
    "great_expectations.expectations.metrics.column_map_metrics.column_values_match_regex_list",
    "great_expectations.expectations.metrics.column_map_metrics.column_values_not_match_regex_list",
    "great_expectations.expectations.metrics.column_aggregate_metrics.column_values_match_regex_values",
    "great_expectations.expectations.metrics.column_aggregate_metrics.column_values_not_match_regex_values",
)

_PATCHED_FLAG = "_govdata_duckdb_patch"


class GXVersionError(TerminalError):
    """The installed GX is not the version the DuckDB patches were written for."""


def check_version(version: str | None = None) -> None:
    """Raise :class:`GXVersionError` unless GX is the pinned version."""
    found = version if version is not None else gx.__version__
    if found != PINNED_GX_VERSION:
        raise GXVersionError(
            f"expectations.engine patches great-expectations {PINNED_GX_VERSION}, but {found} is installed",
            hint=(
                f"install great-expectations=={PINNED_GX_VERSION} (uv sync), or re-check every patch listed in "
                "expectations/engine.py against the new version, update PINNED_GX_VERSION and run "
                "tests/expectations/test_engine_pin.py"
            ),
        )


def _is_duckdb(engine: Any) -> bool:
    return engine.dialect_name == "duckdb"


def is_duckdb_dialect(dialect: Any) -> bool:
    """Whether ``dialect`` (what GX passes metric functions as ``_dialect``) is duckdb-engine's."""
    return isinstance(dialect, sa.engine.Dialect) and dialect.name == "duckdb"


def _buffered(result: sa.CursorResult[Any]) -> Any:
    """The rows of ``result`` fetched now, as a ``Result`` with the same fetch API."""
    if not result.returns_rows:
        return result
    return result.freeze()()


def _patch_connection_results(engine_cls: type) -> None:
    """Patch 1: fetch DuckDB results before GX hands the connection back to the pool."""
    original_query = engine_cls.execute_query
    original_in_tx = engine_cls.execute_query_in_transaction

    def execute_query(self: Any, query: Any) -> Any:
        if not _is_duckdb(self):
            return original_query(self, query)
        with self.get_connection() as connection:
            return _buffered(self._execute_query_with_recovery(connection, query))

    def execute_query_in_transaction(self: Any, query: Any) -> Any:
        if not _is_duckdb(self):
            return original_in_tx(self, query)
        with self.get_connection() as connection:
            result = _buffered(self._execute_query_with_recovery(connection, query))
            if connection.in_transaction():
                connection.commit()
            return result

    for new, old in ((execute_query, original_query), (execute_query_in_transaction, original_in_tx)):
        new.__doc__ = old.__doc__
        new.__wrapped__ = old  # type: ignore[attr-defined]
    engine_cls.execute_query = execute_query
    engine_cls.execute_query_in_transaction = execute_query_in_transaction


#: Python's Unicode meaning of the shorthand classes, in RE2 syntax: (outside a class, inside one).
_PYTHON_CLASSES = {
    "d": (r"\p{Nd}", r"\p{Nd}"),
    "D": (r"\P{Nd}", r"\P{Nd}"),
    "w": (r"[\p{L}\p{N}_]", r"\p{L}\p{N}_"),
    "W": (r"[^\p{L}\p{N}_]", None),
    "s": (r"[\t\n\x{0b}\f\r\x{1c}-\x{1f}\x{85}\p{Z}]", r"\t\n\x{0b}\f\r\x{1c}-\x{1f}\x{85}\p{Z}"),
    "S": (r"[^\t\n\x{0b}\f\r\x{1c}-\x{1f}\x{85}\p{Z}]", None),
}


def python_regex_to_re2(pattern: str) -> str:
    """``pattern`` with ``\\d \\w \\s`` (and negations) spelt as Python's Unicode classes for RE2.

    Everything else is left as written. Negated ``\\W``/``\\S`` inside a bracket class have no
    RE2 spelling and keep RE2's ASCII meaning.
    """
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            spelled = _PYTHON_CLASSES.get(escaped)
            replacement = spelled[1 if in_class else 0] if spelled else None
            out.append(replacement if replacement is not None else pattern[i : i + 2])
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
            out.append(char)
            i += 1
            # A "]" right after "[" or "[^" is a literal, not the end of the class.
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("]")
                i += 1
            continue
        if char == "[" and in_class and pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)  # POSIX class such as [:alpha:]
            if end != -1:
                out.append(pattern[i : end + 2])
                i = end + 2
                continue
        if char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


def duckdb_regex_expression(column: Any, regex: str, positive: bool = True) -> Any:
    """``regexp_matches`` (search, like pandas' ``str.contains``) or its negation."""
    pattern = sa.literal(python_regex_to_re2(regex), type_=sa.String())
    matches = sa.func.regexp_matches(column, pattern, type_=sa.Boolean())
    return matches if positive else sa.not_(matches)


def _patch_regex() -> None:
    """Patch 2, part 2: answer the DuckDB marker with ``regexp_matches``."""
    util = importlib.import_module("great_expectations.expectations.metrics.util")
    original: Callable[..., Any] = util.get_dialect_regex_expression

    def get_dialect_regex_expression(column: Any, regex: str, dialect: Any, positive: bool = True) -> Any:
        if is_duckdb_dialect(dialect):
            return duckdb_regex_expression(column, regex, positive)
        return original(column, regex, dialect, positive)

    get_dialect_regex_expression.__wrapped__ = original  # type: ignore[attr-defined]
    get_dialect_regex_expression.__doc__ = original.__doc__
    for name in _REGEX_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "get_dialect_regex_expression", None) is not original:
            raise GXVersionError(
                f"{name} no longer imports get_dialect_regex_expression as expected",
                hint="GX changed the regex metric modules: re-check patch 2 in expectations/engine.py",
            )
        module.get_dialect_regex_expression = get_dialect_regex_expression  # type: ignore[attr-defined]


def apply_patches() -> None:
    """Apply the DuckDB patches once (idempotent); raise on an unpinned GX version."""
    check_version()
    from great_expectations.execution_engine.sqlalchemy_execution_engine import SqlAlchemyExecutionEngine

    if getattr(SqlAlchemyExecutionEngine, _PATCHED_FLAG, False):
        return
    _patch_connection_results(SqlAlchemyExecutionEngine)
    _patch_regex()
    setattr(SqlAlchemyExecutionEngine, _PATCHED_FLAG, True)
    logger.debug("patched GX %s for DuckDB", gx.__version__)


def patched() -> bool:
    """Whether :func:`apply_patches` has run in this process."""
    from great_expectations.execution_engine.sqlalchemy_execution_engine import SqlAlchemyExecutionEngine

    return bool(getattr(SqlAlchemyExecutionEngine, _PATCHED_FLAG, False))


def ephemeral_context() -> Any:
    """An in-memory GX context: no files, no Data Docs temp dir, no analytics, no progress bars."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def duckdb_url(database: os.PathLike[str] | str) -> str:
    """The SQLAlchemy URL of a DuckDB database file."""
    return f"duckdb:///{os.fspath(database)}"


def json_default(value: Any) -> Any:
    """``json.dumps`` default for what GX leaves in results: numpy scalars, Decimal, dates."""
    if isinstance(value, decimal.Decimal):
        as_float = float(value)
        return int(value) if value == value.to_integral_value() and math.isfinite(as_float) else as_float
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    item = getattr(value, "item", None)  # numpy scalars (np.bool_, np.int64, …)
    if callable(item):
        return item()
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
