"""The csv connector: land a delimited text file (UTF-8 or GB18030) as VARCHAR Parquet, rejecting what cannot be parsed.

How a file is landed:

1. The encoding is detected or checked on the first MiB (:mod:`connectors.encoding`), then the
   file is transcoded to UTF-8 in 16 MiB chunks into a temporary ``_source.utf8.csv`` inside
   the landing folder, with the sha256 of the original bytes. DuckDB never sees non-UTF-8
   bytes (it cannot read GB18030 and would return 0 rows without an error). The temporary
   file is deleted afterwards: the landing keeps ``data.parquet`` (zstd) and, if any,
   ``rejects.parquet``; the original is identified by ``source_sha256``.
2. The header is read with Python's csv module (column names; BOM already stripped), then
   DuckDB ``read_csv`` parses the file once into Parquet (all VARCHAR, no sniffing: the
   dialect is the declared one), with ``store_rejects`` so malformed records are captured.
3. Every line is accounted for: header + landed records (with their embedded line breaks) +
   rejected records + blank lines must equal the file's lines. If DuckDB lost lines (it can,
   after an unclosed quote) the collect fails with a SourceError instead of landing less.

``_govdata_row`` means:

- in ``data.parquet``: the 1-based ordinal of the record among the records DuckDB parsed, in
  file order (header excluded). Records rejected for undecodable bytes keep their ordinal in
  ``rejects.parquet``, so the data's ordinals have gaps exactly there and the column is
  written out; without such rejects they are 1..rows and the column is left out (readers number
  the rows by position, see :func:`connectors.base.landing_sql`).
- in ``rejects.parquet``: for a record DuckDB could not parse (wrong field count, broken
  quoting), the physical line (1-based, counting the header) where the record starts, and the
  reason starts with ``line N:``; for a record with undecodable bytes, its record ordinal as in
  ``data.parquet``, and the reason starts with ``record N:``.

Blank lines are not records: DuckDB skips them and they are counted in the details.
"""

from __future__ import annotations

import contextlib
import csv as pycsv
import io
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import ClassVar, Literal

import duckdb
import pyarrow as pa
from pydantic import Field, model_validator

from connectors.base import (
    DATA_FILE,
    POSITION_COLUMN,
    REJECTS_FILE,
    ROW_COLUMN,
    CollectResult,
    ConnectorOptions,
    landing_sql,
)
from connectors.encoding import (
    SAMPLE_SIZE,
    TranscodeStats,
    blank_lines_upper_bound,
    count_line_breaks,
    detect,
    transcode_to_utf8,
)
from pipelines.errors import SourceError
from pipelines.files import resolve_path
from pipelines.sql import connect as duckdb_connection

log = logging.getLogger(__name__)

_TMP_TEXT = "_source.utf8.csv"
_TMP_PARSED = "_parsed.parquet"
_OPTION = "source.options.encoding"
#: DuckDB's read buffer (None: its default). Tests make it small to get parallel splits on small files.
_BUFFER_SIZE: int | None = None
_FIELDS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")
_REJECTS_SCHEMA = pa.schema([(ROW_COLUMN, pa.int64()), ("raw", pa.string()), ("reason", pa.string())])


class CsvOptions(ConnectorOptions):
    """Options of the csv connector."""

    path: str = Field(description="The CSV file, relative to the spec's folder (or absolute).")
    encoding: Literal["auto", "utf-8", "utf-8-sig", "gb18030", "gbk", "gb2312"] = Field(
        default="auto",
        description="Text encoding. auto: a UTF-8 BOM means utf-8-sig, valid UTF-8 means utf-8, else gb18030. "
        "gbk and gb2312 are decoded as gb18030 (their superset).",
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="Field delimiter (one character).")
    header: bool = Field(
        default=True, description="The first line holds the column names; without it columns are column1..N."
    )
    quote: str = Field(
        default='"', min_length=1, max_length=1, description="Quote character; a quote inside a value is doubled."
    )
    max_undecodable_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Largest share of undecodable bytes tolerated; records holding one are rejected. Above it the "
        "collect fails (the declared encoding is probably wrong).",
    )

    @model_validator(mode="after")
    def _dialect(self) -> CsvOptions:
        if self.delimiter == self.quote:
            raise ValueError("delimiter and quote must differ")
        if self.delimiter in "\r\n" or self.quote in "\r\n":
            raise ValueError("delimiter and quote cannot be line breaks")
        return self


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def unique_column_names(raw: list[str]) -> tuple[list[str], dict[str, str]]:
    """Column names from a header: empty names become columnN, repeats get _2, _3 (case-insensitively,
    as DuckDB compares identifiers). Returns the names and {position: new name} for renamed ones."""
    names: list[str] = []
    renamed: dict[str, str] = {}
    seen: set[str] = set()
    for i, name in enumerate(raw, start=1):
        candidate = name if name != "" else f"column{i}"
        if candidate.lower() in seen:
            n = 2
            while f"{candidate}_{n}".lower() in seen:
                n += 1
            candidate = f"{candidate}_{n}"
        if candidate != name:
            renamed[f"{i}:{name}"] = candidate
        seen.add(candidate.lower())
        names.append(candidate)
    return names, renamed


class CsvConnector:
    """Land a CSV file. See the module docstring for the landing and ``_govdata_row``."""

    name: ClassVar[str] = "csv"
    Options: ClassVar[type[ConnectorOptions]] = CsvOptions

    def __init__(self, options: CsvOptions, *, base_dir: Path, env: Mapping[str, str]) -> None:
        self.options = options
        self.path = resolve_path(base_dir, options.path)

    def describe(self) -> str:
        return f"csv file {self.options.path} (encoding {self.options.encoding})"

    # --- collect ---------------------------------------------------------------------------------

    def collect(self, landing_dir: Path, *, since: str | None = None) -> CollectResult:
        if since is not None:
            log.debug("%s: a file is always collected whole; since=%s ignored", self.path, since)
        opts = self.options
        sample = self._sample()
        detection = detect(
            self.path,
            sample,
            opts.encoding,
            max_undecodable_share=opts.max_undecodable_share,
            option=_OPTION,
        )
        text_path = landing_dir / _TMP_TEXT
        parsed_path = landing_dir / _TMP_PARSED
        try:
            stats = transcode_to_utf8(
                self.path, text_path, detection, max_undecodable_share=opts.max_undecodable_share, option=_OPTION
            )
            columns, renamed, header_lines, skip = self._header(text_path, stats)
            with duckdb_connection() as con:
                self._parse(con, text_path, parsed_path, columns, skip, stats)
                result = self._finish(con, landing_dir, text_path, parsed_path, columns, header_lines, stats)
        except BaseException:
            for partial in (landing_dir / DATA_FILE, landing_dir / REJECTS_FILE):
                partial.unlink(missing_ok=True)
            raise
        finally:
            for tmp in (text_path, parsed_path):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        details = dict(result.details)
        details.update(
            {
                "encoding": stats.codec,
                "encoding_declared": opts.encoding,
                "encoding_detected": stats.reason,
                "bom": stats.bom,
                "bytes": stats.source_bytes,
                "undecodable_bytes": stats.undecodable_bytes,
                "undecodable_share": round(stats.undecodable_share, 6),
                "first_undecodable": stats.located[0].describe() if stats.located else None,
                "delimiter": opts.delimiter,
                "header": opts.header,
                "renamed_columns": renamed,
            }
        )
        log.info(
            "%s: landed %d records, rejected %d (%s, %d bytes)",
            self.path,
            result.rows,
            result.rejected,
            stats.codec,
            stats.source_bytes,
        )
        return CollectResult(
            data_path=result.data_path,
            rows=result.rows,
            rejected=result.rejected,
            rejects_path=result.rejects_path,
            columns=columns,
            source_sha256=stats.sha256,
            details=details,
        )

    def _sample(self) -> bytes:
        path = self.path
        if not path.exists():
            raise SourceError(
                f"{path}: CSV file not found",
                hint="check source.options.path (relative paths are resolved against the spec's folder)",
            )
        if path.is_dir():
            raise SourceError(f"{path}: is a directory, not a CSV file", hint="point source.options.path at the file")
        try:
            with path.open("rb") as f:
                sample = f.read(SAMPLE_SIZE)
        except OSError as exc:
            raise SourceError(f"{path}: cannot be read: {exc.strerror}", hint="check the file's permissions") from exc
        if not sample:
            raise SourceError(
                f"{path}: the file is empty (0 bytes)", hint="re-export the file; it has no header or rows"
            )
        return sample

    def _header(self, text_path: Path, stats: TranscodeStats) -> tuple[list[str], dict[str, str], int, int]:
        """Column names, renamed columns, lines taken by the header (with blank lines before it),
        and the blank lines before the first record (DuckDB's ``skip``)."""
        opts = self.options
        with text_path.open(encoding="utf-8", newline="") as f:
            reader = pycsv.reader(f, delimiter=opts.delimiter, quotechar=opts.quote, doublequote=True, strict=False)
            first: list[str] | None = None
            blank = 0
            try:
                for record in reader:
                    if record:
                        first = record
                        break
                    blank = reader.line_num
            except pycsv.Error as exc:
                raise SourceError(
                    f"{self.path}: the first record cannot be read: {exc}",
                    hint="check source.options.delimiter and quote, and the file's first line",
                ) from exc
            header_lines = reader.line_num
        if first is None:
            raise SourceError(
                f"{self.path}: the file has no records" + (" and no header line" if opts.header else ""),
                hint="the file holds only blank lines or a byte order mark; re-export it",
            )
        if not opts.header:
            return [f"column{i}" for i in range(1, len(first) + 1)], {}, blank, blank
        if any("\ufffd" in name for name in first):
            where = stats.located[0].describe() if stats.located else "the header line"
            raise SourceError(
                f"{self.path}: the header line has undecodable bytes ({where}) as {stats.codec}",
                hint=f"set {_OPTION} to the file's real encoding (auto, utf-8, gb18030)",
            )
        names, renamed = unique_column_names(first)
        if ROW_COLUMN in names:
            raise SourceError(
                f"{self.path}: the header has a column named {ROW_COLUMN}, a name govdata reserves",
                hint="rename that column in the file",
            )
        if renamed:
            log.warning("%s: header names made unique or filled in: %s", self.path, renamed)
        return names, renamed, header_lines, blank

    def _parse(
        self,
        con: duckdb.DuckDBPyConnection,
        text_path: Path,
        parsed_path: Path,
        columns: list[str],
        skip: int,
        stats: TranscodeStats,
    ) -> None:
        opts = self.options
        struct = "{" + ", ".join(f"{_sql_str(c)}: 'VARCHAR'" for c in columns) + "}"
        read = (
            f"read_csv({_sql_str(str(text_path))}, auto_detect=false, columns={struct}, "
            f"header={'true' if opts.header else 'false'}, skip={skip}, delim={_sql_str(opts.delimiter)}, "
            f"quote={_sql_str(opts.quote)}, escape={_sql_str(opts.quote)}, strict_mode=true, "
            "store_rejects=true, ignore_errors=true, parallel=true"
            + (f", buffer_size={_BUFFER_SIZE})" if _BUFFER_SIZE else ")")
        )
        # The records land in file order, so their ordinals are their positions and readers number
        # them (connectors.base.landing_sql); a row_number() window here would cost ~2/3 of the parse.
        # A source column named like DuckDB's position column would clash with that: number it here.
        numbered = any(c.lower() == POSITION_COLUMN for c in columns)
        select = f"SELECT row_number() OVER () AS {ROW_COLUMN}, * FROM {read}" if numbered else f"SELECT * FROM {read}"
        sql = f"COPY ({select}) TO {_sql_str(str(parsed_path))} (FORMAT parquet, COMPRESSION zstd)"
        try:
            con.execute(sql)
        except duckdb.Error as exc:
            first_line = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
            mixed = (
                f" The file mixes line endings ({stats.crlf} CRLF and {stats.bare_lf} LF), which the reader "
                "cannot parse."
                if stats.mixed_line_endings
                else ""
            )
            raise SourceError(
                f"{self.path}: DuckDB could not parse the CSV: {first_line}.{mixed}",
                hint="convert the file to one kind of line ending (e.g. dos2unix)"
                if mixed
                else "check source.options.delimiter and quote against the file",
            ) from exc

    def _finish(
        self,
        con: duckdb.DuckDBPyConnection,
        landing_dir: Path,
        text_path: Path,
        parsed_path: Path,
        columns: list[str],
        header_lines: int,
        stats: TranscodeStats,
    ) -> CollectResult:
        opts = self.options
        parsed = f"({landing_sql(parsed_path)})"
        cols = [_ident(c) for c in columns]
        parse_rejects = self._parse_rejects(con, text_path, len(columns))

        # --- line accounting: nothing may vanish between the file and the landing -----------------
        rows = _scalar(con, f"SELECT count(*) FROM {parsed}")
        reject_lines = sum(
            count_line_breaks(raw) + (0 if raw.endswith(("\n", "\r")) else 1) for _, raw, _ in parse_rejects
        )
        embedded = 0
        # lines = header + records' lines (one each, plus their embedded breaks) + rejected lines +
        # blank lines. When header + records + rejected lines already make up every line, there are
        # no embedded breaks and no blank lines (both count >= 0), so the values need no scan.
        if cols and header_lines + rows + reject_lines != stats.lines:
            # line breaks inside values: CRLF, LF and lone CR count once each, as in the file's line count
            breaks = " + ".join(
                f"coalesce(len(string_split(replace(replace({c}, chr(13) || chr(10), chr(10)), chr(13), chr(10)), "
                f"chr(10))) - 1, 0)"
                for c in cols
            )
            has_break = " OR ".join(f"contains({c}, chr(10)) OR contains({c}, chr(13))" for c in cols)
            embedded = _scalar(con, f"SELECT coalesce(sum({breaks}), 0) FROM {parsed} WHERE {has_break}")
        accounted = header_lines + rows + embedded + reject_lines
        blank = stats.lines - accounted
        if blank < 0 or (blank > 0 and blank > blank_lines_upper_bound(text_path)):
            unclosed = next((line for line, _, reason in parse_rejects if "quot" in reason), None)
            why = f"; the quoting is broken at line {unclosed}" if unclosed else ""
            raise SourceError(
                f"{self.path}: the CSV reader accounted for {accounted} of the file's {stats.lines} lines "
                f"({rows} records, {len(parse_rejects)} rejected){why}, so records would be lost",
                hint=f"fix the quoting at line {unclosed} (a quoted value must be closed by a quote followed by "
                "the delimiter or the end of the line)"
                if unclosed
                else "check the file's quoting and line endings, and source.options.delimiter and quote",
            )

        # --- records with undecodable bytes go to the rejects, never into the data ---------------
        undecodable_rejects = 0
        reject_tables: list[str] = []
        if parse_rejects:
            con.register(
                "_parse_rejects",
                pa.Table.from_pylist(
                    [{ROW_COLUMN: n, "raw": raw, "reason": reason} for n, raw, reason in parse_rejects],
                    schema=_REJECTS_SCHEMA,
                ),
            )
            reject_tables.append(f"SELECT {ROW_COLUMN}, raw, reason FROM _parse_rejects")
        data_path = landing_dir / DATA_FILE
        if stats.replacement_chars and cols:
            bad = " OR ".join(f"coalesce(contains({c}, '\ufffd'), false)" for c in cols)
            q, d = opts.quote, opts.delimiter
            # the record re-serialised as CSV (UTF-8, U+FFFD where bytes were undecodable)
            quoted = ", ".join(
                f"CASE WHEN {c} IS NULL THEN '' WHEN contains({c}, {_sql_str(q)}) OR contains({c}, {_sql_str(d)}) "
                f"OR contains({c}, chr(10)) OR contains({c}, chr(13)) "
                f"THEN {_sql_str(q)} || replace({c}, {_sql_str(q)}, {_sql_str(q + q)}) || {_sql_str(q)} ELSE {c} END"
                for c in cols
            )
            what = (
                f"undecodable bytes: not valid {stats.codec} (shown as U+FFFD)"
                if stats.undecodable_bytes
                else "contains U+FFFD replacement characters (the text was damaged before the file was written)"
            )
            con.execute(
                f"CREATE TEMP TABLE _undecodable AS SELECT {ROW_COLUMN}, concat_ws({_sql_str(d)}, {quoted}) AS raw, "
                f"'record ' || {ROW_COLUMN} || ': ' || {_sql_str(what)} AS reason FROM {parsed} WHERE {bad}"
            )
            undecodable_rejects = _scalar(con, "SELECT count(*) FROM _undecodable")
            reject_tables.append(f"SELECT {ROW_COLUMN}, raw, reason FROM _undecodable")
            con.execute(
                f"COPY (SELECT * FROM {parsed} WHERE NOT ({bad}) ORDER BY {ROW_COLUMN}) "
                f"TO {_sql_str(str(data_path))} (FORMAT parquet, COMPRESSION zstd)"
            )
            rows -= undecodable_rejects
        else:
            parsed_path.replace(data_path)

        rejects_path: Path | None = None
        rejected = len(parse_rejects) + undecodable_rejects
        if rejected:
            rejects_path = landing_dir / REJECTS_FILE
            con.execute(
                f"COPY ({' UNION ALL '.join(reject_tables)}) TO {_sql_str(str(rejects_path))} "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
            log.warning(
                "%s: %d records rejected (%d malformed, %d with undecodable bytes)",
                self.path,
                rejected,
                len(parse_rejects),
                undecodable_rejects,
            )
        return CollectResult(
            data_path=data_path,
            rows=rows,
            rejected=rejected,
            rejects_path=rejects_path,
            details={
                "lines": stats.lines,
                "header_lines": header_lines,
                "blank_lines_skipped": blank,
                "malformed_rejects": len(parse_rejects),
                "undecodable_rejects": undecodable_rejects,
            },
        )

    def _parse_rejects(
        self, con: duckdb.DuckDBPyConnection, text_path: Path, n_columns: int
    ) -> list[tuple[int, str, str]]:
        """DuckDB's rejected records as (physical line, raw text, reason), one per record, in file order."""
        found = con.execute(
            "SELECT line_byte_position, arg_min(csv_line, rowid), arg_min(error_type::VARCHAR, rowid), "
            "arg_min(error_message, rowid) FROM reject_errors GROUP BY line_byte_position ORDER BY line_byte_position"
        ).fetchall()
        if not found:
            return []
        starts: list[int] = []
        records: list[tuple[str, str]] = []
        for position, csv_line, error_type, message in found:
            raw = str(csv_line or "")
            stripped = raw.lstrip("\r\n")  # DuckDB includes blank lines before the record
            starts.append(int(position) - 1 + len(raw[: len(raw) - len(stripped)].encode("utf-8")))
            records.append((stripped, self._reason(stripped, str(error_type), str(message), n_columns)))
        lines = _lines_at(text_path, starts)
        return [
            (lines[start], raw, f"line {lines[start]}: {reason}")
            for start, (raw, reason) in zip(starts, records, strict=True)
        ]

    def _reason(self, raw: str, error_type: str, message: str, n_columns: int) -> str:
        if error_type in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
            found: int | None = None
            try:
                reader = pycsv.reader(
                    io.StringIO(raw, newline=""),
                    delimiter=self.options.delimiter,
                    quotechar=self.options.quote,
                    strict=True,
                )
                found = len(next(reader, []))
            except pycsv.Error:
                match = _FIELDS.search(message)
                found = int(match.group(2)) if match else None
            got = f"found {found}" if found is not None else message
            return f"expected {n_columns} fields, {got}"
        if error_type == "UNQUOTED VALUE":
            return "malformed quoting: a quoted value is not closed, or text follows its closing quote"
        if error_type == "LINE SIZE OVER MAXIMUM":
            return f"record too long for the CSV reader: {message}"
        return f"{error_type.lower()}: {message}"


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    rows = con.execute(sql).fetchall()  # fetchall: DuckDB 2 refuses new work while a result is unfinished
    return int(rows[0][0]) if rows else 0


def _lines_at(path: Path, offsets: Iterable[int]) -> dict[int, int]:
    """The 1-based physical line starting at each byte offset of a UTF-8 file, in one streaming pass."""
    wanted = sorted(set(offsets))
    result: dict[int, int] = {}
    lines = 0
    prev_cr = False
    pos = 0
    i = 0
    with path.open("rb") as f:
        while i < len(wanted):
            chunk = f.read(16 * 1024 * 1024)
            if not chunk:
                break
            done = 0
            while i < len(wanted) and wanted[i] - pos <= len(chunk):
                cut = wanted[i] - pos
                piece = chunk[done:cut]
                if piece:
                    lines += count_line_breaks(piece) - (1 if prev_cr and piece[:1] == b"\n" else 0)
                    prev_cr = piece.endswith(b"\r")
                result[wanted[i]] = lines + 1
                done = cut
                i += 1
            piece = chunk[done:]
            if piece:
                lines += count_line_breaks(piece) - (1 if prev_cr and piece[:1] == b"\n" else 0)
                prev_cr = piece.endswith(b"\r")
            pos += len(chunk)
    for offset in wanted[i:]:
        result[offset] = lines + 1
    return result
