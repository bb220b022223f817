"""Small helpers for writing DuckDB SQL safely: quoting and a configured connection."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb


def ident(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def path_lit(path: Path) -> str:
    """A file path as a SQL string literal."""
    return lit(str(path))


def connect(temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection bounded for a small machine.

    ``GOVDATA_DUCKDB_MEMORY`` (default ``1GB``) caps the buffer pool; larger work spills to
    ``temp_dir``. Threads default to the CPU count (``GOVDATA_DUCKDB_THREADS`` overrides).
    """
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute(f"SET memory_limit = {lit(os.environ.get('GOVDATA_DUCKDB_MEMORY', '1GB'))}")
    threads = os.environ.get("GOVDATA_DUCKDB_THREADS")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {path_lit(temp_dir)}")
    con.execute("SET preserve_insertion_order = true")
    return con


def copy_to_parquet(con: duckdb.DuckDBPyConnection, query: str, target: Path, *, compression: str = "zstd") -> None:
    """Write ``query``'s result to ``target`` as Parquet, replacing it atomically.

    zstd by default (published and landed files are kept and shipped); intermediates that are
    read back soon (the cleanse's classified and staged rows) are better written with
    ``lz4_raw``, which costs a fraction of zstd's CPU time to write and read.
    """
    tmp = target.with_name(target.name + ".tmp")
    con.execute(f"COPY ({query}) TO {path_lit(tmp)} (FORMAT parquet, COMPRESSION {compression})")
    tmp.replace(target)
