"""The quality gate's DuckDB work before GX: the staged views, the row-key check, and the custom conditions computed once.

GX-free (DuckDB, SQLAlchemy and the standard library), so that the quality step can run it in a
process of its own while it imports GX (~5 s of one core): :func:`start` spawns
``python -m pipelines.quality_prepass`` and :meth:`Started.wait` hands the result to
:func:`expectations.gate.validate`. Called without a started prepass, the gate runs the same
:func:`run` in its own process.

Why the conditions are computed once: on SQL, GX counts each map expectation's failing rows (a
bundled query, plus one query per multicolumn expectation) but lists at most 20 of them, so the
gate used to evaluate every condition again to list the failing rows (``gate_failures.parquet``).
The conditions of govdata's own metrics, the identifier checksums, are almost all of that work.

How (the database is a throw-away file in the gate's work folder):

1. :func:`prepare` — ``staged_rows`` (the Parquet), ``staged`` (what GX validates; for now the
   same rows), ``dataset`` (without the row key, for the schema expectations), and the check
   that the row key is unique and not null: quarantine is by key.
2. :func:`pipelines.quality_conditions.plan` — for every custom map expectation the suite
   validates on ``staged``, the value kwargs GX will hand the metric and the metric's own DuckDB
   condition; each distinct condition gets a flag column named after the metric, its columns,
   its kwargs and the day.
3. :func:`materialise` — one pass over ``staged_rows`` evaluates every planned condition once
   per row and keeps the rows that fail at least one: a table of the row key and one BOOLEAN per
   condition (TRUE where ``NOT condition`` is true, NULL otherwise). ``staged`` becomes
   ``staged_rows`` LEFT JOINed with it — every staged row and column plus the flag columns (NULL
   constants, without a join, when no row fails).
4. GX validates the suite on ``staged`` exactly as before. When GX asks a govdata metric for
   its condition, the metric finds its flag column among the batch's columns and answers
   ``flag IS NULL`` instead of building the checksum expression
   (:func:`pipelines.quality_conditions.read_flag`). GX's own queries still compute every count,
   percentage and success; GX's ``unexpected_index_query`` reads the flag too, so listing the
   failing rows reads flags instead of evaluating checksums a second time.

Exactness: a flag is TRUE exactly where ``NOT condition`` is TRUE, so ``NOT (flag IS NULL)`` is
TRUE on exactly the rows where GX's ``NOT condition`` would be; GX's NULL-value filter and
``row_condition`` apply on top as before. A metric that finds no matching flag (another batch,
other kwargs, the day changed, a GX version that passes other kwargs) builds its expression as
before: slower, same result. A condition DuckDB cannot bind on the data's types is not
computed here; GX evaluates it and reports its error as before. ``tests/expectations/
test_engine_pin.py`` holds the kwargs to GX 1.24.1's own and checks that GX reads every custom
metric's flag.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from pipelines.errors import SpecError, TerminalError
from pipelines.sql import ident, path_lit
from pipelines.suites import SCHEMA_TYPES, load_suite

if TYPE_CHECKING:  # SQLAlchemy (~0.4 s) is imported when the conditions are built, not to start a prepass
    from pipelines.quality_conditions import Condition

logger = logging.getLogger(__name__)

STAGED_VIEW = "staged"
DATASET_VIEW = "dataset"
#: The staged rows as read from the Parquet; ``staged`` (what GX validates) adds the flag columns.
ROWS_VIEW = "staged_rows"
#: The rows that fail at least one condition computed once, with their flags.
FAILED_TABLE = "govdata_precomputed_failures"
DATABASE_FILE = "gate.duckdb"
#: Session settings for every DuckDB connection of the gate. DuckDB draws a progress bar on
#: stderr for any query over ~2 s, even without a terminal; it is a session option, not a
#: connect-time one.
SESSION_SQL = "SET enable_progress_bar = false"
#: Key ranges up to 2^24 (16.7M rows numbered by cleanse) are checked with a perfect hash table.
_KEY_CHECK_PERFECT_HT_BITS = 24
#: Exit status of the prepass process for an error it reports as JSON (TerminalError, SpecError).
_EXIT_REPORTED = 3


def duckdb_config(work: Path) -> dict[str, Any]:
    """DuckDB settings for every connection to the gate database (they must all be equal)."""
    config: dict[str, Any] = {
        "memory_limit": os.environ.get("GOVDATA_DUCKDB_MEMORY", "1GB"),
        "temp_directory": str(work / "spill"),
        "preserve_insertion_order": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    threads = os.environ.get("GOVDATA_DUCKDB_THREADS")
    if threads:
        config["threads"] = int(threads)
    return config


@contextlib.contextmanager
def connect(database: Path, config: dict[str, Any]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection to the gate database, quiet."""
    con = duckdb.connect(str(database), config=config)
    con.execute(SESSION_SQL)
    try:
        yield con
    finally:
        con.close()


def parquet_files(staged: Path) -> list[Path]:
    """The staged Parquet file, or the files of a staged folder (hidden ones left out)."""
    if staged.is_file():
        return [staged.resolve()]
    if staged.is_dir():
        files = sorted(
            p.resolve()
            for p in staged.rglob("*.parquet")
            if not any(part.startswith(".") for part in p.relative_to(staged).parts)
        )
        if files:
            return files
        raise TerminalError(f"{staged}: no Parquet files to validate", hint="run the cleanse step first")
    raise TerminalError(f"{staged}: staged data not found", hint="run the cleanse step first")


def prepare(con: duckdb.DuckDBPyConnection, files: Sequence[Path], row_column: str) -> tuple[list[str], int]:
    """Create the three views; check the row key; return the staged columns and the row count."""
    sources = "[" + ", ".join(path_lit(f) for f in files) + "]"
    try:
        con.execute(f"CREATE VIEW {ROWS_VIEW} AS SELECT * FROM read_parquet({sources}, union_by_name = true)")
        columns = [row[0] for row in con.execute(f"DESCRIBE {ROWS_VIEW}").fetchall()]
    except duckdb.Error as exc:
        raise TerminalError(f"{files[0].parent}: cannot read the staged Parquet: {exc}") from exc
    if row_column not in columns:
        raise TerminalError(
            f"{files[0].parent}: the staged data has no {row_column!r} column",
            hint="the cleanse step adds it; re-run cleanse for this run",
        )
    key = ident(row_column)
    con.execute(f"CREATE VIEW {STAGED_VIEW} AS SELECT * FROM {ROWS_VIEW}")
    con.execute(f"CREATE VIEW {DATASET_VIEW} AS SELECT * EXCLUDE ({key}) FROM {ROWS_VIEW}")
    # A perfect hash table (an array over the key range the Parquet statistics give) counts the
    # distinct keys of up to 2^24 rows ~5x faster and in a third of the memory; DuckDB falls back
    # to its hash table for a wider range.
    con.execute(f"SET perfect_ht_threshold = {_KEY_CHECK_PERFECT_HT_BITS}")
    counted = con.execute(f"SELECT count(*), count({key}), count(DISTINCT {key}) FROM {ROWS_VIEW}").fetchone()
    con.execute("RESET perfect_ht_threshold")
    row_count, non_null, distinct = counted or (0, 0, 0)
    if not row_count == non_null == distinct:
        raise TerminalError(
            f"{files[0].parent}: the row key {row_column!r} must be unique and not null "
            f"({row_count} rows, {row_count - non_null} null keys, {non_null - distinct} repeated keys)",
            hint="the cleanse step numbers the rows; re-run cleanse for this run",
        )
    return columns, int(row_count)


def _flag_sql(condition: Condition) -> str:
    return f"CASE WHEN NOT ({condition.sql}) THEN TRUE END AS {ident(condition.column)}"


def materialise(
    con: duckdb.DuckDBPyConnection, conditions: Sequence[Condition], *, row_column: str
) -> tuple[list[Condition], int]:
    """Evaluate ``conditions`` once per staged row; make ``staged`` the staged rows plus their flags.

    Returns the conditions computed (those DuckDB cannot bind on the data are left to GX) and
    the number of rows that fail at least one. Without conditions ``staged`` stays as it is.
    """
    from pipelines.quality_conditions import FLAG_PREFIX

    columns = {r[0] for r in con.execute(f"DESCRIBE {ROWS_VIEW}").fetchall()}
    if any(c.startswith(FLAG_PREFIX) for c in columns):
        logger.warning("a staged column starts with %s: no condition is computed once", FLAG_PREFIX)
        return [], 0
    bindable = []
    for condition in conditions:
        try:  # binds the expression against the data's types; reads no row
            con.execute(f"SELECT {condition.sql} FROM {ROWS_VIEW} LIMIT 0")
            bindable.append(condition)
        except duckdb.Error as exc:  # the type only: a message may quote the data
            logger.debug("condition %s not computed once (GX evaluates it): %s", condition.column, type(exc).__name__)
    if not bindable:
        return [], 0
    row = ident(row_column)
    flags = [ident(c.column) for c in bindable]
    began = time.perf_counter()
    try:
        # MATERIALIZED: DuckDB would push the filter below the projection and evaluate every
        # condition a second time for the rows that pass it (~15 % more work on the benchmark).
        con.execute(
            f"CREATE OR REPLACE TABLE {FAILED_TABLE} AS WITH evaluated AS MATERIALIZED (SELECT {row}, "
            f"{', '.join(_flag_sql(c) for c in bindable)} FROM {ROWS_VIEW}) "
            f"SELECT * FROM evaluated WHERE {' OR '.join(flags)}"
        )
    except duckdb.Error as exc:  # a run-time error of one condition: GX evaluates them all and reports it
        logger.debug("conditions not computed once (GX evaluates them): %s", type(exc).__name__)
        con.execute(f"DROP TABLE IF EXISTS {FAILED_TABLE}")
        return [], 0
    counted = con.execute(f"SELECT count(*) FROM {FAILED_TABLE}").fetchone()
    failed = int(counted[0]) if counted else 0
    if failed:
        selected = ", ".join(f"f.{f}" for f in flags)
        con.execute(
            f"CREATE OR REPLACE VIEW {STAGED_VIEW} AS SELECT s.*, {selected} FROM {ROWS_VIEW} AS s "
            f"LEFT JOIN {FAILED_TABLE} AS f ON s.{row} = f.{row}"
        )
    else:
        con.execute(f"DROP TABLE {FAILED_TABLE}")
        constants = ", ".join(f"NULL::BOOLEAN AS {f}" for f in flags)
        con.execute(f"CREATE OR REPLACE VIEW {STAGED_VIEW} AS SELECT *, {constants} FROM {ROWS_VIEW}")
    logger.debug(
        "%d conditions computed once per row in %.2f s; %d rows fail at least one",
        len(bindable),
        time.perf_counter() - began,
        failed,
    )
    return bindable, failed


@dataclass
class Prepared:
    """The gate database, ready for GX: the staged views, the row count, the conditions computed once."""

    work: Path  # the gate's throw-away folder (the gate removes it)
    database: Path
    config: dict[str, Any]
    columns: list[str]  # the staged columns, the row key included
    row_count: int
    conditions: list[Condition]
    failed_rows: int  # rows failing at least one condition computed once
    seconds: dict[str, float] = field(default_factory=dict)  # "views + key check", "conditions computed once"
    process: str = "in-process"  # or "own process"


def run(work: Path, files: Sequence[Path], suite: dict[str, Any], row_column: str, today: dt.date) -> Prepared:
    """The prepass, in this process, in ``work`` (which must exist)."""
    from pipelines import quality_conditions

    config = duckdb_config(work)
    database = work / DATABASE_FILE
    seconds: dict[str, float] = {}
    with connect(database, config) as con:
        began = time.perf_counter()
        columns, row_count = prepare(con, files, row_column)
        seconds["views + key check"] = time.perf_counter() - began
        entries = [(i, e) for i, e in enumerate(suite["expectations"]) if e.get("type") not in SCHEMA_TYPES]
        began = time.perf_counter()
        planned = quality_conditions.plan(entries, today)
        conditions, failed = materialise(con, planned, row_column=row_column) if planned else ([], 0)
        seconds["conditions computed once"] = time.perf_counter() - began
    return Prepared(work, database, config, columns, row_count, conditions, failed, seconds)


def new_work_folder(report_dir: Path) -> Path:
    """A fresh throw-away folder for the gate database, inside ``report_dir``."""
    report_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".gate-", dir=report_dir))


def remove_work_folder(work: Path) -> None:
    """Remove the throw-away database; a failure is logged, never raised over the gate's own error."""
    try:
        shutil.rmtree(work)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("could not remove the gate's work folder %s: %s", work, exc)


# --- in a process of its own -----------------------------------------------------------------------


class Started:
    """A prepass running in a process of its own (:func:`start`); :meth:`wait` gives its :class:`Prepared`.

    :func:`expectations.gate.validate` takes it over (``prepass=``) and removes its work folder;
    a caller that does not get as far as the gate calls :meth:`close`.
    """

    def __init__(
        self,
        process: subprocess.Popen[str] | None,
        *,
        staged: Path,
        suite_path: Path,
        files: list[Path],
        work: Path,
        row_column: str,
        today: dt.date,
    ) -> None:
        self.staged, self.suite_path, self.files, self.work = staged, suite_path, files, work
        self.row_column, self.today = row_column, today
        self._process = process
        self._result: Prepared | None = None

    def wait(self) -> Prepared:
        """The prepass's result: from its process, or computed here when that process failed."""
        if self._result is not None:
            return self._result
        process, self._process = self._process, None
        report: dict[str, Any] = {}
        status, errors = None, ""
        if process is not None:
            output, errors = process.communicate()
            status = process.returncode
            with contextlib.suppress(ValueError):
                report = json.loads(output or "{}")
        if status == 0 and "prepared" in report:
            self._result = _prepared_from_json(report["prepared"])
            return self._result
        if status == _EXIT_REPORTED and "error" in report:
            error = report["error"]
            kind = SpecError if error.get("kind") == "SpecError" else TerminalError
            raise kind(str(error.get("message")), hint=error.get("hint"))
        if process is not None:
            # Only the exception's type: its message may quote the data (sensitive columns included).
            lines = [line for line in str(errors or "").splitlines() if line.strip()]
            raised = lines[-1].split(":", 1)[0].strip() if lines else "no error output"
            logger.warning("the gate's prepass process failed (exit %s, %s); preparing in this process", status, raised)
        for leftover in self.work.iterdir():  # a half-written database
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        self._result = run(self.work, self.files, load_suite(self.suite_path), self.row_column, self.today)
        return self._result

    def stop(self) -> None:
        """Stop the process if it still runs."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.communicate()

    def close(self) -> None:
        """Stop the process and remove the work folder: for a caller that never handed it to the gate."""
        self.stop()
        remove_work_folder(self.work)


def start(staged: Path, suite_path: Path, report_dir: Path, *, row_column: str) -> Started:
    """Start the gate's prepass for ``staged`` in a process of its own; return at once.

    Raises what the gate would raise for a missing or malformed suite and missing staged data.
    """
    staged, suite_path = Path(staged), Path(suite_path)
    load_suite(suite_path)
    files = parquet_files(staged)
    work = new_work_folder(Path(report_dir))
    today = dt.datetime.now().astimezone().date()  # quality_conditions.local_today, without SQLAlchemy
    request = {"work": str(work), "files": [str(f) for f in files], "suite": str(suite_path)}
    request.update(row_column=row_column, today=today.isoformat())
    environment = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)  # this checkout, whatever the caller's sys.path
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (root, environment.get("PYTHONPATH")) if p)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.quality_prepass", json.dumps(request)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
    except OSError as exc:  # no process: the gate prepares in this one
        logger.warning("cannot start the gate's prepass process (%s); the gate prepares in this process", exc)
        process = None
    started = Started(
        process, staged=staged, suite_path=suite_path, files=files, work=work, row_column=row_column, today=today
    )
    return started


def _prepared_to_json(prepared: Prepared) -> dict[str, Any]:
    document = asdict(prepared)
    document.update(work=str(prepared.work), database=str(prepared.database))
    return document


def _prepared_from_json(document: dict[str, Any]) -> Prepared:
    from pipelines.quality_conditions import Condition

    conditions = [
        Condition(
            column=c["column"],
            metric=c["metric"],
            columns=tuple(c["columns"]),
            sql=c["sql"],
            indexes=tuple(c["indexes"]),
            value_kwargs=dict(c.get("value_kwargs") or {}),
        )
        for c in document["conditions"]
    ]
    return Prepared(
        work=Path(document["work"]),
        database=Path(document["database"]),
        config=dict(document["config"]),
        columns=list(document["columns"]),
        row_count=int(document["row_count"]),
        conditions=conditions,
        failed_rows=int(document["failed_rows"]),
        seconds={k: float(v) for k, v in document["seconds"].items()},
        process="own process",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The prepass process: a JSON request as the argument, the :class:`Prepared` (or the error) as JSON on stdout."""
    request = json.loads((sys.argv[1:] if argv is None else argv)[0])
    try:
        prepared = run(
            Path(request["work"]),
            [Path(f) for f in request["files"]],
            load_suite(Path(request["suite"])),
            request["row_column"],
            dt.date.fromisoformat(request["today"]),
        )
    except (TerminalError, SpecError) as exc:
        error = {"kind": type(exc).__name__, "message": exc.message, "hint": exc.hint}
        sys.stdout.write(json.dumps({"error": error}, ensure_ascii=False))
        return _EXIT_REPORTED
    sys.stdout.write(json.dumps({"prepared": _prepared_to_json(prepared)}, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
