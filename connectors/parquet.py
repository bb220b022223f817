"""The parquet connector: land one Parquet file, or a folder or glob of them, keeping their types.

DuckDB's ``read_parquet`` reads the files (in sorted path order; a folder means every
``*.parquet`` below it, with hive partition columns when the folder names carry them) and one
``COPY`` writes ``data.parquet`` with ``_govdata_row`` in front. ``_govdata_row`` is the 1-based
ordinal of the row in that read order: files sorted by path, rows in file order. Parquet is
self-describing, so nothing is rejected: a file DuckDB cannot read fails the collect.
``source_sha256`` is the sha256 of the files' bytes, one after the other in read order.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import duckdb
from pydantic import Field

from connectors.base import DATA_FILE, ROW_COLUMN, CollectResult, ConnectorOptions
from pipelines.errors import SourceError
from pipelines.files import resolve_path
from pipelines.sql import connect as duckdb_connection

log = logging.getLogger(__name__)

_GLOB_CHARS = set("*?[")


class ParquetOptions(ConnectorOptions):
    """Options of the parquet connector."""

    path: str = Field(
        description="A Parquet file, a folder (every *.parquet below it) or a glob such as exports/*.parquet; "
        "relative to the spec's folder."
    )
    columns: list[str] | None = Field(
        default=None, min_length=1, description="Columns to land, in this order; default: all of them."
    )


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ParquetConnector:
    """Land Parquet files. See the module docstring for the read order and ``_govdata_row``."""

    name: ClassVar[str] = "parquet"
    Options: ClassVar[type[ConnectorOptions]] = ParquetOptions

    def __init__(self, options: ParquetOptions, *, base_dir: Path, env: Mapping[str, str]) -> None:
        self.options = options
        self.path = resolve_path(base_dir, options.path)

    def describe(self) -> str:
        return f"parquet {self.options.path}"

    def _files(self) -> list[Path]:
        path = self.path
        if _GLOB_CHARS & set(str(self.options.path)):
            parts = path.parts
            first = next(i for i, part in enumerate(parts) if _GLOB_CHARS & set(part))
            root, pattern = Path(*parts[:first]), str(Path(*parts[first:]))
            files = sorted(p for p in root.glob(pattern) if p.is_file())
            if not files:
                raise SourceError(
                    f"{path}: no file matches this pattern",
                    hint="check source.options.path (relative paths are resolved against the spec's folder)",
                )
            return files
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
            if not files:
                raise SourceError(f"{path}: the folder holds no *.parquet file", hint="check source.options.path")
            return files
        if not path.exists():
            raise SourceError(
                f"{path}: Parquet file not found",
                hint="check source.options.path (relative paths are resolved against the spec's folder)",
            )
        return [path]

    def collect(self, landing_dir: Path, *, since: str | None = None) -> CollectResult:
        if since is not None:
            log.debug("%s: files are always collected whole; since=%s ignored", self.path, since)
        files = self._files()
        for f in files:
            if f.stat().st_size == 0:
                raise SourceError(f"{f}: the file is empty (0 bytes)", hint="re-export the Parquet file")
        listing = "[" + ", ".join(_sql_str(str(f)) for f in files) + "]"
        read = f"read_parquet({listing}, union_by_name=true)"
        data_path = landing_dir / DATA_FILE
        with duckdb_connection() as con:
            try:
                available = [str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {read}").fetchall()]
            except duckdb.Error as exc:
                raise SourceError(
                    f"{self._name(files)}: not a readable Parquet file: {_first_line(exc)}",
                    hint="re-export the file as Parquet (a renamed CSV or a truncated copy cannot be read)",
                ) from exc
            if ROW_COLUMN in available:
                raise SourceError(
                    f"{self._name(files)}: has a column named {ROW_COLUMN}, which govdata reserves",
                    hint="rename that column or list the others in source.options.columns",
                )
            columns = list(self.options.columns or available)
            missing = [c for c in columns if c not in available]
            if missing:
                raise SourceError(
                    f"{self._name(files)}: no column(s) {', '.join(map(repr, missing))}; available: "
                    f"{', '.join(available)}",
                    hint="fix source.options.columns",
                )
            select = ", ".join(_ident(c) for c in columns)
            try:
                con.execute(
                    f"COPY (SELECT row_number() OVER () AS {ROW_COLUMN}, {select} FROM {read}) "
                    f"TO {_sql_str(str(data_path))} (FORMAT parquet, COMPRESSION zstd)"
                )
                found = con.execute(f"SELECT count(*) FROM read_parquet({_sql_str(str(data_path))})").fetchall()
            except duckdb.Error as exc:
                raise SourceError(
                    f"{self._name(files)}: reading failed: {_first_line(exc)}",
                    hint="re-export the file; it may be truncated or corrupt",
                ) from exc
        rows = int(found[0][0])
        digest = hashlib.sha256()
        size = 0
        for f in files:
            with f.open("rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    digest.update(chunk)
                    size += len(chunk)
        log.info("%s: landed %d rows from %d file(s)", self.path, rows, len(files))
        return CollectResult(
            data_path=data_path,
            rows=rows,
            columns=columns,
            source_sha256=digest.hexdigest(),
            details={
                "files": len(files),
                "file_names": [f.name for f in files[:20]],
                "bytes": size,
                "columns_selected": self.options.columns is not None,
            },
        )

    def _name(self, files: list[Path]) -> str:
        return str(files[0]) if len(files) == 1 else f"{self.path} ({len(files)} files)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
