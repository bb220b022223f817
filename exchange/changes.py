"""The change index of a version: the rows that differ from the version before it, kept beside it.

A subscriber that holds version *n-1* needs only the rows whose key was inserted, updated or
deleted in *n*. Finding them means comparing both versions in full (every key, a hash of every
row): on 5M rows that comparison is most of an incremental delivery's time, and it is the same for
every subscriber. So the store does it once, when it commits version *n*, and writes

* ``changes.old.parquet``: the rows of *n-1* whose key changed or went away, with *n-1*'s schema;
* ``changes.new.parquet``: the rows of *n* whose key changed or is new, with *n*'s schema.

An incremental delivery from *n-1* then compares these two small files instead of the two versions
(:func:`exchange.delivery._build_changes`): the comparison per grant, over the granted items and
after masking, is the same SQL, only on fewer rows. Rows equal in every column are in neither file,
and a row that differs in any column is in both, so for any set of granted items the index holds
every row whose granted values changed (a superset; the delivery drops updates whose delivered
values are equal, as it always did).

The index is an optimisation, never a source of truth: it is built only when both versions have the
same columns (a changed type is compared as the delivery compares it: the old value cast to the new
type) and the same primary key, and a failure to build it is logged and
leaves the version without one. Deliveries across several versions, or of versions without an
index, compare the versions in full.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import duckdb

from pipelines.sql import connect, ident, path_lit

__all__ = ["NEW_FILE", "OLD_FILE", "build_index", "index_of"]

log = logging.getLogger(__name__)

OLD_FILE = "changes.old.parquet"
NEW_FILE = "changes.new.parquet"


def _columns(con: duckdb.DuckDBPyConnection, path: Path) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1])) for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({path_lit(path)})").fetchall()
    ]


def build_index(previous: Path, current: Path, primary_key: Sequence[str], folder: Path) -> bool:
    """Write the change index of ``current`` against ``previous`` into ``folder``; False when not built.

    Not built (and nothing written) when there is no primary key, when the versions' columns differ,
    or when DuckDB fails on the files, e.g. an old value that does not cast to the new type (logged).
    """
    if not primary_key or not previous.is_file() or not current.is_file():
        return False
    con = connect(folder / ".duckdb-changes")
    try:
        columns, before = _columns(con, current), dict(_columns(con, previous))
        names = [c for c, _ in columns]
        if names != list(before) or not set(primary_key) <= set(names):
            return False
        types = dict(columns)

        def old(c: str) -> str:
            # As the delivery compares them: the previous version's values cast to the current types.
            return f"CAST({ident(c)} AS {types[c]})" if before[c] != types[c] else ident(c)

        keys = ", ".join(ident(k) for k in primary_key)
        old_keys = ", ".join(f"{old(k)} AS {ident(k)}" for k in primary_key)
        every_new = "hash(" + ", ".join(ident(c) for c in names) + ")"
        every_old = "hash(" + ", ".join(old(c) for c in names) + ")"
        join = " AND ".join(f"o.{ident(k)} = n.{ident(k)}" for k in primary_key)
        old_src, new_src = f"read_parquet({path_lit(previous)})", f"read_parquet({path_lit(current)})"
        con.execute(
            "CREATE TEMP TABLE govdata_changed AS SELECT "
            + ", ".join(f"coalesce(n.{ident(k)}, o.{ident(k)}) AS {ident(k)}" for k in primary_key)
            + f" FROM (SELECT {old_keys}, {every_old} AS h FROM {old_src}) o"
            f" FULL OUTER JOIN (SELECT {keys}, {every_new} AS h FROM {new_src}) n ON {join}"
            " WHERE o.h IS DISTINCT FROM n.h"
        )
        old_key_values = ", ".join(old(k) for k in primary_key)
        for name, src, key in ((OLD_FILE, old_src, old_key_values), (NEW_FILE, new_src, keys)):
            con.execute(
                f"COPY (SELECT * FROM {src} WHERE ({key}) IN (SELECT {keys} FROM govdata_changed))"
                f" TO {path_lit(folder / name)} (FORMAT parquet, COMPRESSION zstd)"
            )
        return True
    except duckdb.Error as exc:
        log.warning(
            "%s: no change index against %s (%s); deliveries compare the versions in full", current, previous, exc
        )
        for name in (OLD_FILE, NEW_FILE):
            (folder / name).unlink(missing_ok=True)
        return False
    finally:
        con.close()
        shutil.rmtree(folder / ".duckdb-changes", ignore_errors=True)


def index_of(version_folder: Path) -> tuple[Path, Path] | None:
    """The change index (old rows, new rows) stored with a version against the one before it, if any."""
    old, new = version_folder / OLD_FILE, version_folder / NEW_FILE
    return (old, new) if old.is_file() and new.is_file() else None
