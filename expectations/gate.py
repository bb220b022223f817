"""The quality gate: run a dataset's GX suite on its staged Parquet through DuckDB.

:func:`validate` is the one entry point the pipeline calls. How it works:

1. The suite JSON is loaded and checked (:mod:`pipelines.suites`), including every column
   it names against the staged columns, before GX runs.
2. A throw-away DuckDB database in ``report_dir`` holds the views over the Parquet files:
   ``staged_rows`` (every column), ``staged`` (what GX validates) and ``dataset`` (without the
   row key, so schema expectations see the dataset as the suite describes it). No data is
   copied; DuckDB reads the Parquet. The row key is checked unique and non-null first:
   quarantine is by key. Then the conditions of the custom expectations (the identifier
   checksums) are computed once per row, and ``staged`` becomes the staged rows plus one flag
   column per condition (:mod:`pipelines.quality_prepass`). This preparation needs no GX: the
   quality step starts it in a process of its own before importing GX (``prepass=``); without
   it, it runs here. DuckDB settings follow ``GOVDATA_DUCKDB_MEMORY`` / ``GOVDATA_DUCKDB_THREADS``.
3. GX (patched by :mod:`expectations.engine`) validates the suite on those views through its
   SQL datasource: the schema expectations (:data:`pipelines.suites.SCHEMA_TYPES`) on
   ``dataset``, all others on ``staged``, where GX computes all counts in one bundled query;
   the custom metrics answer GX with their flag column instead of their checksum expression.
   Result format ``SUMMARY`` with the row key as ``unexpected_index_column_names`` and
   ``return_unexpected_index_query``, but ``partial_unexpected_count`` 0: GX would otherwise
   run two more row-condition queries per expectation (a full scan each for the ones that
   pass — ~7 s of CPU for each identifier check on 5M rows).
4. Failing rows: for every failed row-level expectation, GX's own ``unexpected_index_query``
   (the SQL of exactly GX's unexpected condition; for a custom expectation it reads the flag,
   so no checksum is evaluated twice) runs in DuckDB and its row keys go to
   ``failures_path``. Each query's row count must equal GX's ``unexpected_count`` or the gate
   stops (known cases: GX 1.24's query ignores ``row_condition``; a non-midnight lower bound on
   a DATE column is cut to the day — both work with ``on_failure: block``). This lists *every*
   failing row without pulling them through Python (on SQL, GX lists at most 20 even in
   ``COMPLETE``, and would build a Python dict per row). The report's samples
   (``partial_unexpected_list``/``_index_list``/``_counts``, GX's own field shapes) are the 20
   lowest failing row keys, read back by key — the row condition is not evaluated again. A
   failed single-column uniqueness check (dataset-level: nothing listed) gets its lowest keys
   by counting only the values of the lowest-keyed rows, not every value again.
5. The validation result JSON is written to ``report_dir`` with the values of sensitive
   columns masked; the throw-away database is removed.

Row-level vs dataset-level: map expectations (``expect_column_values_*`` and the other
column-map / multicolumn-map types) are row-level — their failing rows are quarantined and the
rest pass — except uniqueness (``expect_column_values_to_be_unique``,
``expect_compound_columns_to_be_unique``), which is dataset-level like row counts and schema
checks: a failure blocks publishing. ``meta: {"govdata": {"on_failure": "quarantine" |
"block"}}`` overrides this per expectation. A row-level expectation that succeeds (including
one that fails fewer rows than its ``mostly`` allows) quarantines nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import sqlalchemy as sa
from great_expectations.core import ExpectationSuite
from great_expectations.exceptions import GreatExpectationsError
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

from expectations import custom, engine  # noqa: F401  (custom: registers the expectations)
from pipelines import quality_conditions, quality_prepass
from pipelines.errors import SpecError, TerminalError
from pipelines.sql import ident, lit, path_lit
from pipelines.suites import (
    MAP_TYPES,
    NO_ROW_LIST_TYPES,
    SCHEMA_TYPES,
    TESTED_TYPES,
    check_columns,
    govdata_meta,
    is_row_level,
    load_suite,
    referenced_columns,
)

logger = logging.getLogger(__name__)

STAGED_VIEW = quality_prepass.STAGED_VIEW  # what GX validates: the staged rows and the flag columns
DATASET_VIEW = quality_prepass.DATASET_VIEW  # without the row key, for the schema expectations
ROWS_VIEW = quality_prepass.ROWS_VIEW  # the staged rows as read from the Parquet
VALIDATION_RESULT_FILE = "validation_result.json"
FAILURES_FILE = "gate_failures.parquet"
PARTIAL_UNEXPECTED_COUNT = 20
UNIQUE_TYPE = "expect_column_values_to_be_unique"
#: How many of the lowest row keys are the first candidates for a uniqueness sample; small enough for
#: DuckDB to filter the scan by their values.
_DUPLICATE_CANDIDATES = 4096
MASK = "***"
#: meta key that ties GX's results (which come back in GX's own order) to the suite entries.
INDEX_META = "_govdata_index"

_RESULT_LIST_KEYS = ("partial_unexpected_list", "unexpected_list")
_RESULT_INDEX_KEYS = ("partial_unexpected_index_list", "unexpected_index_list")
#: DuckDB error kinds that a suite causes (a kwarg the column's type or RE2 cannot take).
_SUITE_ERROR_KINDS = (
    "Binder Error",
    "Conversion Error",
    "Parser Error",
    "Invalid Input Error",
    "Catalog Error",
    "not supported",
)


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, in the terms the pipeline needs."""

    name: str  # stable short label, used as the quarantine reason
    expectation_type: str
    column: str | None
    kwargs: dict[str, Any]  # as in the suite (JSON-safe)
    success: bool
    row_level: bool  # True: failing rows are quarantined; False: a failure blocks publishing
    element_count: int
    unexpected_count: int  # 0 for table-level expectations, which have no rows to count
    missing_count: int | None
    observed_value: Any  # JSON-safe (dataset-level expectations)


@dataclass(frozen=True)
class GateResult:
    """What the gate decided, and where its record is."""

    outcomes: list[ExpectationOutcome]
    failures_path: Path | None  # Parquet: one row per (failing row, expectation); None without row-level failures
    validation_result_path: Path  # GX's validation result JSON, sensitive values masked
    row_count: int = field(default=0)  # rows in the staged data

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        """Dataset-level outcomes that failed: any one of them holds the dataset."""
        return [o for o in self.outcomes if not o.row_level and not o.success]

    @property
    def success(self) -> bool:
        """True when every expectation passed."""
        return all(o.success for o in self.outcomes)


def validate(
    staged: Path,
    suite_path: Path,
    *,
    report_dir: Path,
    dataset: str,
    run_id: str,
    row_column: str = "_govdata_row",
    sensitive_columns: Sequence[str] = (),
    prepass: quality_prepass.Started | None = None,
) -> GateResult:
    """Validate the staged Parquet (file or folder) against the suite; write the record to ``report_dir``.

    ``prepass`` is the gate's DuckDB preparation already started for the same staged data,
    suite and row key (:func:`pipelines.quality_prepass.start`, while GX was importing); the
    gate takes it over. Without it, the gate prepares in this process.

    Raises :class:`SpecError` for a suite problem (missing file, bad JSON, unknown type, a
    column the data lacks, kwargs GX rejects or the data's types cannot take) and
    :class:`TerminalError` when the staged data cannot be read. A failed expectation is never
    an exception: it is an outcome.
    """
    started = time.perf_counter()
    staged, suite_path, report_dir = Path(staged), Path(suite_path), Path(report_dir)
    if prepass is not None:
        wanted = (staged, suite_path, row_column)
        if (prepass.staged, prepass.suite_path, prepass.row_column) != wanted:
            prepass.close()
            raise ValueError(f"the prepass was started for {prepass.staged}, {prepass.suite_path}, not {wanted}")
        work = prepass.work
    try:
        suite = load_suite(suite_path)
        if prepass is None:
            files = quality_prepass.parquet_files(staged)
            work = quality_prepass.new_work_folder(report_dir)
    except BaseException:
        if prepass is not None:
            prepass.close()
        raise
    try:
        prepared = prepass.wait() if prepass is not None else _prepass(work, files, suite, row_column)
        database, config, columns, row_count = prepared.database, prepared.config, prepared.columns, prepared.row_count
        conditions = prepared.conditions
        check_columns(suite_path, suite, [c for c in columns if c != row_column])
        entries: list[dict[str, Any]] = suite["expectations"]
        expectations = [_expectation(suite_path, i, e) for i, e in enumerate(entries)]
        for entry in entries:
            if entry["type"] not in TESTED_TYPES:
                logger.warning("%s: %s is not tested on DuckDB by govdata", suite_path, entry["type"])
        names = _names(entries)
        sensitive = set(sensitive_columns)
        outcomes: list[ExpectationOutcome] = []
        with _gx_source(database, config) as source:
            began = time.perf_counter()
            evrs, envelope = _run_gx(source, suite, expectations, row_column, dataset)
            logger.debug("GX validated %d expectations in %.2f s", len(entries), time.perf_counter() - began)
            for index, (entry, evr) in enumerate(zip(entries, evrs, strict=True)):
                _raise_on_exception(suite_path, index, entry, evr, sensitive)
                outcomes.append(_outcome(names[index], entry, evr, row_count, sensitive))
            _check_flags_read(conditions, evrs, names)
            with _raw_connection(source) as con:
                failures_path, samples = _collect_rows(
                    con, entries, outcomes, evrs, row_column, report_dir / FAILURES_FILE, suite_path, row_count
                )
        result_path = _write_result(
            report_dir / VALIDATION_RESULT_FILE,
            envelope,
            evrs,
            samples,
            names,
            entries,
            sensitive,
            dataset=dataset,
            run_id=run_id,
            row_column=row_column,
            precomputed=quality_conditions.describe(conditions, names),
        )
    finally:
        if prepass is not None:
            prepass.stop()  # its process, if the gate failed before waiting for it
        quality_prepass.remove_work_folder(work)
    gate = GateResult(outcomes, failures_path, result_path, row_count)
    logger.info(
        "quality gate %s/%s: %d expectations, %d failed (%d blocking), %d rows, %.1f s",
        dataset,
        run_id,
        len(outcomes),
        sum(not o.success for o in outcomes),
        len(gate.blocking_failures),
        row_count,
        time.perf_counter() - started,
    )
    return gate


# --- staged data in DuckDB ---------------------------------------------------------------------


def _duckdb_config(work: Path) -> dict[str, Any]:
    """DuckDB settings for every connection to the gate database (they must all be equal)."""
    return quality_prepass.duckdb_config(work)


def _quiet(dbapi_connection: Any, _record: Any = None) -> None:
    dbapi_connection.execute(quality_prepass.SESSION_SQL)


def _prepare(database: Path, config: dict[str, Any], files: list[Path], row_column: str) -> tuple[list[str], int]:
    """The staged views and the row-key check alone (:func:`pipelines.quality_prepass.prepare`)."""
    with quality_prepass.connect(database, config) as con:
        return quality_prepass.prepare(con, files, row_column)


def _prepass(work: Path, files: list[Path], suite: dict[str, Any], row_column: str) -> quality_prepass.Prepared:
    """The staged views, the row-key check and the custom conditions computed once, in this process."""
    return quality_prepass.run(work, files, suite, row_column, quality_conditions.local_today())


def _check_flags_read(conditions: list[quality_conditions.Condition], evrs: list[Any], names: list[str]) -> None:
    """Log a precomputed condition GX evaluated itself (same result, only slower: see test_engine_pin)."""
    for condition in conditions:
        for index in condition.indexes:
            query = _row_query(evrs[index])
            if query and condition.column not in query:
                logger.warning(
                    "GX evaluated the condition of %s itself instead of reading its precomputed flag", names[index]
                )


# --- GX ----------------------------------------------------------------------------------------


def _expectation(suite_path: Path, index: int, entry: dict[str, Any]) -> Any:
    """The GX Expectation for a suite entry; SpecError (with GX's reason) if GX rejects it."""
    try:
        config = ExpectationConfiguration(
            type=entry["type"],
            kwargs=dict(entry.get("kwargs") or {}),
            meta={**(entry.get("meta") or {}), INDEX_META: index},
            notes=entry.get("notes"),
            description=entry.get("description"),
        )
        return config.to_domain_obj()
    except (GreatExpectationsError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split())
        raise SpecError(
            f"{suite_path}: expectations[{index}] ({entry['type']}): invalid kwargs: {reason}",
            hint="compare the kwargs with the expectation's documentation (required keys, value types)",
        ) from None


@contextlib.contextmanager
def _gx_source(database: Path, config: dict[str, Any]) -> Iterator[Any]:
    """A GX SQL datasource on the gate database, in a fresh ephemeral context; engines disposed after."""
    context = engine.ephemeral_context()
    source = context.data_sources.add_sql(
        name="govdata_gate",
        connection_string=engine.duckdb_url(database),
        kwargs={"connect_args": {"config": config}},
    )
    sa.event.listen(source.get_execution_engine().engine, "connect", _quiet)
    try:
        yield source
    finally:
        # Close every DuckDB connection now: an open one keeps the database file in use.
        source.get_execution_engine().engine.dispose()
        source.get_engine().dispose()


@contextlib.contextmanager
def _raw_connection(source: Any) -> Iterator[Any]:
    """The DuckDB connection behind GX's engine (same settings, so the same database instance)."""
    raw = source.get_execution_engine().engine.raw_connection()
    try:
        _quiet(raw.driver_connection)
        yield raw.driver_connection
    finally:
        raw.close()


def _run_gx(
    source: Any, suite: dict[str, Any], expectations: list[Any], row_column: str, dataset: str
) -> tuple[list[Any], dict[str, Any]]:
    """Validate on the two views.

    Returns one ExpectationValidationResult per suite entry, in suite order, and the JSON
    envelope (meta: batch, run, time) of GX's suite result for the ``staged`` view.
    """
    groups: dict[str, list[int]] = {STAGED_VIEW: [], DATASET_VIEW: []}
    for index, expectation in enumerate(expectations):
        view = DATASET_VIEW if expectation.expectation_type in SCHEMA_TYPES else STAGED_VIEW
        groups[view].append(index)
    formats = {
        STAGED_VIEW: {
            "result_format": "SUMMARY",
            "partial_unexpected_count": 0,  # samples come from the row pass: no extra scan per expectation
            "unexpected_index_column_names": [row_column],
            "return_unexpected_index_query": True,
        },
        DATASET_VIEW: {"result_format": "SUMMARY", "partial_unexpected_count": 0},
    }
    results: list[Any] = [None] * len(expectations)
    envelope: dict[str, Any] = {}
    for view, indexes in groups.items():
        if not indexes:
            continue
        # Data Docs group results by asset name: name the assets after the dataset.
        asset = source.add_table_asset(name=dataset if view == STAGED_VIEW else f"{dataset} (schema)", table_name=view)
        batch = asset.add_batch_definition_whole_table(view).get_batch()
        gx_suite = ExpectationSuite(name=suite["name"], expectations=[expectations[i] for i in indexes])
        if len(gx_suite.expectations) != len(indexes):  # pragma: no cover - every entry was built above
            raise TerminalError("GX dropped an expectation from the suite", hint="see the log for GX's reason")
        validated = batch.validate(gx_suite, result_format=formats[view])
        if not envelope or view == STAGED_VIEW:
            envelope = {k: v for k, v in validated.to_json_dict().items() if k != "results"}
        for evr in validated.results:
            results[int(evr.expectation_config.meta[INDEX_META])] = evr
    if any(r is None for r in results):  # pragma: no cover - GX returns one result per expectation
        raise TerminalError("GX returned no result for an expectation", hint="report this as a govdata bug")
    return results, envelope


def _raise_on_exception(suite_path: Path, index: int, entry: dict[str, Any], evr: Any, sensitive: set[str]) -> None:
    """An expectation GX could not evaluate is an error, never a silent failure."""
    info = evr.exception_info or {}
    problems = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    raised = [p for p in problems if p.get("raised_exception")]
    if not raised:
        return
    message = " ".join(str(raised[0].get("exception_message") or "").split())
    logger.debug("GX traceback for expectations[%d]: %s", index, raised[0].get("exception_traceback"))
    message = message.split(" [SQL: ")[0]  # the statement is in the DEBUG log, not in the user's error
    caused_by_suite = any(kind in message for kind in _SUITE_ERROR_KINDS)
    if sensitive & {c for _, c in referenced_columns(entry)}:
        message = "(details withheld: the expectation reads a sensitive column)"
    where = f"{suite_path}: expectations[{index}] ({entry['type']})"
    if caused_by_suite:
        raise SpecError(
            f"{where} cannot be evaluated on the staged data: {message}",
            hint="check the kwargs against the column's type (numbers vs strings, ISO date-times for dates; "
            "regexes use RE2 syntax: no look-around)",
        )
    raise TerminalError(f"{where}: GX failed: {message}", hint="the GX traceback is logged at DEBUG level")


def _label(entry: dict[str, Any]) -> str:
    """``type(column)``, ``type(a,b)`` for column pairs and lists, ``type`` for table expectations."""
    if str(entry["type"]).startswith("expect_table_"):
        return str(entry["type"])
    kwargs = entry.get("kwargs") or {}
    if isinstance(kwargs.get("column"), str):
        return f"{entry['type']}({kwargs['column']})"
    if isinstance(kwargs.get("column_A"), str) and isinstance(kwargs.get("column_B"), str):
        return f"{entry['type']}({kwargs['column_A']},{kwargs['column_B']})"
    if isinstance(kwargs.get("column_list"), list):
        return f"{entry['type']}({','.join(str(c) for c in kwargs['column_list'])})"
    return str(entry["type"])


def _names(entries: list[dict[str, Any]]) -> list[str]:
    """Stable short labels; a repeated label gets ``#2``, ``#3``… in suite order."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for entry in entries:
        base = govdata_meta(entry).get("name") or _label(entry)
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return names


def expectation_names(entries: list[dict[str, Any]]) -> list[str]:
    """The name the gate gives each suite entry (its quarantine reason), in suite order."""
    return _names(entries)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=engine.json_default))


def _outcome(name: str, entry: dict[str, Any], evr: Any, row_count: int, sensitive: set[str]) -> ExpectationOutcome:
    result = dict(evr.result or {})
    kwargs = entry.get("kwargs") or {}
    column = kwargs.get("column") if isinstance(kwargs.get("column"), str) else None
    observed = result.get("observed_value")
    if observed is not None and sensitive & {c for _, c in referenced_columns(entry)}:
        observed = MASK
    element_count = result.get("element_count")
    return ExpectationOutcome(
        name=name,
        expectation_type=entry["type"],
        column=column,
        kwargs=_json_safe(kwargs),
        success=bool(evr.success),
        row_level=is_row_level(entry),
        element_count=int(element_count) if element_count is not None else row_count,
        unexpected_count=int(result.get("unexpected_count") or 0),
        missing_count=int(result["missing_count"]) if result.get("missing_count") is not None else None,
        observed_value=_json_safe(observed),
    )


# --- failing rows ------------------------------------------------------------------------------


def _row_query(evr: Any) -> str:
    return str((evr.result or {}).get("unexpected_index_query") or "").strip().rstrip(";").strip()


def _collect_rows(
    con: Any,
    entries: list[dict[str, Any]],
    outcomes: list[ExpectationOutcome],
    evrs: list[Any],
    row_column: str,
    target: Path,
    suite_path: Path,
    row_count: int,
) -> tuple[Path | None, dict[int, dict[str, Any]]]:
    """Write every failing row of the failed row-level expectations; sample every failed map expectation.

    Returns the failures file (None when no row fails) and, per suite index, the sample fields
    (``partial_unexpected_list``, ``partial_unexpected_index_list``, ``partial_unexpected_counts``)
    for the validation result: up to :data:`PARTIAL_UNEXPECTED_COUNT` failing rows, lowest row
    keys first, read back by key (the row condition is not evaluated again).
    """
    row = ident(row_column)
    target.unlink(missing_ok=True)
    con.execute(f"CREATE OR REPLACE TEMP TABLE failures ({row} BIGINT, expectation VARCHAR)")
    quarantined: list[int] = []
    queries: dict[str, str] = {}  # expectation name -> GX's row query
    outcome_names = [o.name for o in outcomes]
    wanted: dict[int, tuple[list[int], list[str]]] = {}  # suite index -> (sample keys, columns)
    for index, (entry, outcome, evr) in enumerate(zip(entries, outcomes, evrs, strict=True)):
        if outcome.success or outcome.unexpected_count <= 0 or entry["type"] not in MAP_TYPES:
            continue
        query = _row_query(evr)
        columns = [c for _, c in referenced_columns(entry)]
        if not outcome.row_level:
            if query and entry["type"] not in NO_ROW_LIST_TYPES:
                kwargs = entry.get("kwargs") or {}
                if (
                    entry["type"] == UNIQUE_TYPE
                    and isinstance(kwargs.get("column"), str)
                    and not kwargs.get("row_condition")
                ):
                    keys = _duplicate_sample_keys(con, kwargs["column"], row_column, row_count)
                else:
                    keys = _sample_keys(
                        con, f"SELECT q.{row} FROM ({query}) AS q ORDER BY 1 LIMIT {PARTIAL_UNEXPECTED_COUNT}"
                    )
                wanted[index] = (keys, columns)
            continue
        if not query:
            raise TerminalError(
                f"{suite_path}: GX returned no row query for {outcome.name}",
                hint="this expectation cannot quarantine rows; set meta.govdata.on_failure to 'block'",
            )
        quarantined.append(index)
        queries[outcome.name] = query
    if not quarantined:
        return None, _samples(con, wanted, row_column)
    _list_failing_rows(con, queries, row_column, suite_path)
    for index in quarantined:
        keys = _sample_keys(
            con,
            f"SELECT {row} FROM failures WHERE expectation = {lit(outcome_names[index])} ORDER BY 1 "
            f"LIMIT {PARTIAL_UNEXPECTED_COUNT}",
        )
        wanted[index] = (keys, [c for _, c in referenced_columns(entries[index])])
    samples = _samples(con, wanted, row_column)
    counts = dict(con.execute("SELECT expectation, count(*) FROM failures GROUP BY expectation").fetchall())
    for index in quarantined:
        outcome = outcomes[index]
        if counts.get(outcome.name, 0) != outcome.unexpected_count:
            raise TerminalError(
                f"{suite_path}: {outcome.name}: GX counted {outcome.unexpected_count} failing rows but its row "
                f"query returns {counts.get(outcome.name, 0)}",
                hint="the expectation's row query disagrees with its condition (e.g. row_condition or "
                "non-midnight date bounds); set meta.govdata.on_failure to 'block' for it",
            )
    tmp = target.with_name(target.name + ".tmp")
    con.execute(
        f"COPY (SELECT * FROM failures ORDER BY {row}, expectation) TO {path_lit(tmp)} "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    tmp.replace(target)
    return target, samples


#: The shape of GX's ``unexpected_index_query`` on a SQL engine: the row key and the column(s)
#: from the table, filtered by the expectation's row condition.
_ROW_QUERY = re.compile(r"^SELECT\s+(?P<select>.+?)\s+FROM\s+(?P<source>\w+)\s+WHERE\s+(?P<where>.+)$", re.S)


def _list_failing_rows(con: Any, queries: dict[str, str], row_column: str, suite_path: Path) -> None:
    """Insert (row key, expectation) for every failing row of every failed row-level expectation.

    GX's row queries all read the staged view with a WHERE condition; rather than scanning the
    data once per expectation, one query evaluates every condition once per row (a row that
    fails several expectations is listed once for each). A query of another shape, or a combined
    query DuckDB refuses, is run on its own. The caller compares the listed counts with GX's.
    """
    row = ident(row_column)
    combined: dict[str, str] = {}
    alone: dict[str, str] = {}
    for name, query in queries.items():
        shape = _ROW_QUERY.match(query)
        selected = shape["select"].split(",", 1)[0].strip() if shape else ""
        if shape and shape["source"] == STAGED_VIEW and selected in (row_column, row):
            combined[name] = shape["where"]
        else:
            alone[name] = query
    if len(combined) > 1:
        began = time.perf_counter()
        flags = ", ".join(f"CASE WHEN ({where}) THEN {lit(name)} END" for name, where in combined.items())
        anywhere = " OR ".join(f"({where})" for where in combined.values())
        try:
            con.execute(
                f"INSERT INTO failures SELECT CAST({row} AS BIGINT), expectation FROM (SELECT {row}, "
                f"unnest([{flags}]) AS expectation FROM {STAGED_VIEW} WHERE {anywhere}) WHERE expectation IS NOT NULL"
            )
            logger.debug(
                "rows of %d expectations listed in one pass, %.2f s", len(combined), time.perf_counter() - began
            )
        except duckdb.Error as exc:
            logger.debug("listing the failing rows in one pass failed (%s); one query per expectation", exc)
            alone.update({name: queries[name] for name in combined})
    else:
        alone.update({name: queries[name] for name in combined})
    for name, query in alone.items():
        try:
            began = time.perf_counter()
            con.execute(f"INSERT INTO failures SELECT CAST(q.{row} AS BIGINT), {lit(name)} FROM ({query}) AS q")
            logger.debug("rows of %s listed in %.2f s", name, time.perf_counter() - began)
        except duckdb.Error as exc:
            raise TerminalError(
                f"{suite_path}: cannot list the failing rows of {name}: {exc}",
                hint="set meta.govdata.on_failure to 'block' for this expectation and report the query",
            ) from exc


def _sample_keys(con: Any, query: str) -> list[int]:
    return [int(r[0]) for r in con.execute(query).fetchall()]


def _duplicate_sample_keys(con: Any, column: str, row_column: str, row_count: int) -> list[int]:
    """The lowest row keys (up to :data:`PARTIAL_UNEXPECTED_COUNT`) whose ``column`` value occurs more than once.

    The rows GX's uniqueness query returns (a non-null value that two or more rows hold), without
    counting every value again: the candidates are the rows with the lowest keys and a value;
    only their values are counted over the whole view (a semi-join with a small build side).
    Every failing row up to the highest candidate key is among the candidates, so once enough
    are found, or every row (``row_count``) was a candidate, the keys are exactly GX's lowest
    ones. Otherwise the candidates grow.
    """
    row, value = ident(row_column), ident(column)
    candidates = _DUPLICATE_CANDIDATES
    while True:
        keys = _sample_keys(
            con,
            f"WITH candidates AS (SELECT {row} AS k, {value} AS v FROM {ROWS_VIEW} WHERE {value} IS NOT NULL "
            f"ORDER BY {row} LIMIT {candidates}), "
            f"repeated AS (SELECT {value} AS v FROM {ROWS_VIEW} WHERE {value} IN (SELECT v FROM candidates) "
            "GROUP BY 1 HAVING count(*) >= 2) "
            f"SELECT k FROM candidates WHERE v IN (SELECT v FROM repeated) ORDER BY k LIMIT {PARTIAL_UNEXPECTED_COUNT}",
        )
        if len(keys) >= PARTIAL_UNEXPECTED_COUNT or candidates >= row_count:
            return keys
        candidates *= 8


def _samples(con: Any, wanted: dict[int, tuple[list[int], list[str]]], row_column: str) -> dict[int, dict[str, Any]]:
    """:func:`_sample` of every (keys, columns) in ``wanted``: all rows read by key in one query."""
    keys = sorted({k for ks, _ in wanted.values() for k in ks})
    columns = list(dict.fromkeys(c for _, cs in wanted.values() for c in cs))
    found: dict[int, dict[str, Any]] = {}
    if keys:
        selected = ", ".join(ident(c) for c in [row_column, *columns])
        listed = ", ".join(str(k) for k in keys)
        for key, *cells in con.execute(
            f"SELECT {selected} FROM {ROWS_VIEW} WHERE {ident(row_column)} IN ({listed})"
        ).fetchall():
            found[key] = dict(zip(columns, cells, strict=True))
    return {
        index: _sample([(k, [found[k][c] for c in cs]) for k in sorted(set(ks)) if k in found], cs, row_column)
        for index, (ks, cs) in wanted.items()
    }


def _sample(rows: list[tuple[int, list[Any]]], columns: list[str], row_column: str) -> dict[str, Any]:
    """GX's ``SUMMARY`` sample fields for ``rows`` (row key, the values of ``columns``), lowest keys first."""
    if not rows:
        return {"partial_unexpected_list": [], "partial_unexpected_index_list": [], "partial_unexpected_counts": []}
    values: list[Any] = []
    index_list: list[dict[str, Any]] = []
    for key, cells in rows:
        record = dict(zip(columns, cells, strict=True))
        values.append(cells[0] if len(columns) == 1 else record)
        index_list.append({row_column: key, **record})
    hashable = [tuple(v.values()) if isinstance(v, dict) else v for v in values]
    counts = Counter(hashable).most_common()
    counts.sort(key=lambda item: (-item[1], str(item[0])))
    return {
        "partial_unexpected_list": values,
        "partial_unexpected_index_list": index_list,
        "partial_unexpected_counts": [{"value": list(v) if isinstance(v, tuple) else v, "count": n} for v, n in counts],
    }


# --- the validation result record --------------------------------------------------------------


def _mask_value(value: Any) -> Any:
    return None if value is None else MASK


def _mask_item(item: Any, columns: list[str], sensitive: set[str]) -> Any:
    """Mask one unexpected value: a scalar (single column), a dict by column, or a tuple in column order."""
    if isinstance(item, dict):
        return {k: (_mask_value(v) if k in sensitive else v) for k, v in item.items()}
    if isinstance(item, list | tuple) and len(columns) > 1:
        return [(_mask_value(v) if c in sensitive else v) for c, v in zip(columns, item, strict=False)]
    return _mask_value(item)


def mask_result(result: dict[str, Any], columns: list[str], sensitive: set[str]) -> dict[str, Any]:
    """A copy of one expectation result (JSON dict) with the sensitive columns' values masked."""
    if not sensitive & set(columns):
        return result
    masked = dict(result)
    for key in _RESULT_LIST_KEYS:
        if isinstance(masked.get(key), list):
            masked[key] = [_mask_item(v, columns, sensitive) for v in masked[key]]
    if isinstance(masked.get("partial_unexpected_counts"), list):
        masked["partial_unexpected_counts"] = [
            {**c, "value": _mask_item(c.get("value"), columns, sensitive)} if isinstance(c, dict) else c
            for c in masked["partial_unexpected_counts"]
        ]
    for key in _RESULT_INDEX_KEYS:
        if isinstance(masked.get(key), list):
            masked[key] = [
                {k: (_mask_value(v) if k in sensitive else v) for k, v in i.items()} if isinstance(i, dict) else i
                for i in masked[key]
            ]
    for key in ("observed_value", "details", "unexpected_rows"):
        if masked.get(key) is not None:
            masked[key] = MASK
    return masked


def _write_result(
    target: Path,
    envelope: dict[str, Any],
    evrs: list[Any],
    samples: dict[int, dict[str, Any]],
    names: list[str],
    entries: list[dict[str, Any]],
    sensitive: set[str],
    *,
    dataset: str,
    run_id: str,
    row_column: str,
    precomputed: dict[str, Any] | None = None,
) -> Path:
    """GX's suite result for both views as one document, sensitive values masked."""
    results = []
    for index, (name, entry, evr) in enumerate(zip(names, entries, evrs, strict=True)):
        record = evr.to_json_dict()
        config_meta = (record.get("expectation_config") or {}).get("meta")
        if isinstance(config_meta, dict):
            config_meta.pop(INDEX_META, None)
        columns = [c for _, c in referenced_columns(entry)]
        result = record.get("result") or {}
        if index in samples:
            result = {**result, **_json_safe(samples[index])}
        record["result"] = mask_result(result, columns, sensitive)
        record["meta"] = {**(record.get("meta") or {}), "govdata": {"name": name, "row_level": is_row_level(entry)}}
        results.append(record)
    successful = sum(bool(r["success"]) for r in results)
    meta = dict(envelope.get("meta") or {})
    now = dt.datetime.now(dt.UTC).isoformat()
    meta.setdefault("run_id", {"run_name": run_id, "run_time": now})  # as ValidationDefinition.run adds them
    meta.setdefault("validation_time", now)
    meta["govdata"] = {
        "dataset": dataset,
        "run_id": run_id,
        "engine": "duckdb",
        "row_column": row_column,
        "sensitive_columns_masked": sorted(sensitive),
        "schema_expectations_exclude": [row_column],
        "samples": f"partial_unexpected_* list up to {PARTIAL_UNEXPECTED_COUNT} failing rows (lowest {row_column} "
        "first), read by key from the rows GX's unexpected_index_query returned (uniqueness: the same rows, "
        "found by counting the lowest keys' values)",
    }
    if precomputed:
        meta["govdata"]["precomputed_conditions"] = {
            "note": f"each condition below was computed once per row before GX validated; the view {STAGED_VIEW!r} "
            "holds it as a flag column (TRUE: the row fails it) that the expectations' metrics and their "
            "unexpected_index_query read",
            "flags": precomputed,
        }
    document = {
        **envelope,
        "success": successful == len(results),
        "results": results,
        "statistics": {
            "evaluated_expectations": len(results),
            "successful_expectations": successful,
            "unsuccessful_expectations": len(results) - successful,
            "success_percent": 100.0 * successful / len(results) if results else None,
        },
        "meta": meta,
    }
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=2, default=engine.json_default), encoding="utf-8")
    tmp.replace(target)
    return target
