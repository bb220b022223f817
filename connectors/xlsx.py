"""The xlsx connector: land one worksheet of an Excel workbook as VARCHAR Parquet.

The sheet is streamed with openpyxl (``read_only=True, data_only=True``: cached formula values,
never the formulas) and written with a pyarrow ParquetWriter in batches, so a big sheet is never
held in memory twice. Every value lands as text, the way a person reads the cell:

- date and datetime cells (cells with a date number format, which openpyxl converts) become ISO
  strings: ``2023-05-01`` (midnight, and the format shows no time) or ``2023-05-01 08:30:00``;
  time cells ``08:30:00``; durations ``26:00:00``;
- whole numbers ``123`` (not ``123.0``), other numbers with up to 15 significant digits (what
  Excel stores and shows), booleans ``true``/``false``;
- empty cells and empty strings are NULL; strings are kept as they are;
- plain numbers stay numbers even when they are Excel date serials (``45047``): the cleanse step
  converts serials in date columns. List a column in ``date_columns`` to convert its serials
  here instead, with the workbook's own epoch (1900 or 1904), which only the workbook knows.

``_govdata_row`` is the Excel row number (1-based sheet row, as Excel shows it), for data and
rejects alike. Rows above ``header_row`` are titles, not records. Entirely empty rows are not
records either: they are skipped and counted (``blank_rows_skipped``). A row with a value to the
right of the last header column is rejected (its value would have no column), never cut.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import from_excel
from openpyxl.utils.exceptions import InvalidFileException
from pydantic import Field

from connectors.base import DATA_FILE, REJECTS_FILE, ROW_COLUMN, CollectResult, ConnectorOptions
from connectors.csv import unique_column_names
from pipelines.errors import SourceError
from pipelines.files import resolve_path, sha256_file

log = logging.getLogger(__name__)

BATCH_ROWS = 10_000
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, and password-protected .xlsx

#: What :func:`workbook_kind` finds at a path.
WorkbookKind = Literal["missing", "directory", "empty", "ole2", "not_zip", "xlsx"]


def workbook_kind(path: Path) -> WorkbookKind:
    """What is at ``path`` before openpyxl is asked: a file, its first bytes (every reader of xlsx uses this).

    ``ole2`` is an Excel 97-2003 .xls or a password-protected workbook (both unreadable);
    ``not_zip`` is anything else that is not an xlsx package (a CSV saved as .xlsx, say).
    """
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "directory"
    with path.open("rb") as f:
        head = f.read(8)
    if not head:
        return "empty"
    if head == _OLE2_MAGIC:
        return "ole2"
    return "xlsx" if head.startswith(b"PK") else "not_zip"


_TIME_TOKENS = re.compile(r"[hs]")
_FORMAT_NOISE = re.compile(r'"[^"]*"|\[[^\]]*\]|\\.')  # quoted literals, [colour]/[$-409], escapes


class XlsxOptions(ConnectorOptions):
    """Options of the xlsx connector."""

    path: str = Field(description="The .xlsx workbook, relative to the spec's folder (or absolute).")
    sheet: str | int | None = Field(
        default=None, description="Worksheet name, or 0-based index; default: the first worksheet."
    )
    header_row: int = Field(default=1, ge=1, description="1-based sheet row holding the column names.")
    date_columns: list[str] = Field(
        default_factory=list,
        description="Columns whose plain-number cells are Excel date serials, converted here to ISO dates with the "
        "workbook's epoch. Other columns keep serials as numbers (the cleanse step converts date columns).",
    )


def _shows_time(number_format: str | None) -> bool:
    if not number_format:
        return False
    return bool(_TIME_TOKENS.search(_FORMAT_NOISE.sub("", number_format).lower()))


def _iso_datetime(value: dt.datetime, number_format: str | None) -> str:
    if value.microsecond:
        # Excel stores times as fractions of a day: keep milliseconds at most, dropping float noise.
        value = value.replace(microsecond=0) + dt.timedelta(milliseconds=round(value.microsecond / 1000))
    if value.time() == dt.time(0) and not _shows_time(number_format):
        return value.date().isoformat()
    return value.isoformat(sep=" ", timespec="milliseconds" if value.microsecond else "seconds")


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return format(value, ".15g")


def cell_text(value: Any, number_format: str | None = None) -> str | None:
    """A cell value as the text that lands (see the module docstring)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dt.datetime):
        return _iso_datetime(value, number_format)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return _iso_datetime(dt.datetime.combine(dt.date(2000, 1, 1), value), "hh:mm:ss").split(" ")[1]
    if isinstance(value, dt.timedelta):
        seconds = round(value.total_seconds())
        sign = "-" if seconds < 0 else ""
        hours, rest = divmod(abs(seconds), 3600)
        return f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return str(value)


class XlsxConnector:
    """Land one worksheet. See the module docstring for values and ``_govdata_row``."""

    name: ClassVar[str] = "xlsx"
    Options: ClassVar[type[ConnectorOptions]] = XlsxOptions

    def __init__(self, options: XlsxOptions, *, base_dir: Path, env: Mapping[str, str]) -> None:
        self.options = options
        self.path = resolve_path(base_dir, options.path)

    def describe(self) -> str:
        sheet = "" if self.options.sheet is None else f" sheet {self.options.sheet!r}"
        return f"xlsx file {self.options.path}{sheet}"

    def collect(self, landing_dir: Path, *, since: str | None = None) -> CollectResult:
        if since is not None:
            log.debug("%s: a workbook is always collected whole; since=%s ignored", self.path, since)
        self._check_file()
        opts = self.options
        with self.path.open("rb") as fh:
            try:
                wb = load_workbook(fh, read_only=True, data_only=True)
            except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, OSError) as exc:
                raise SourceError(
                    f"{self.path}: not an Excel .xlsx workbook ({type(exc).__name__}: {exc})",
                    hint="save the file as .xlsx from Excel or WPS, or use the csv connector for a CSV file",
                ) from exc
            try:
                ws, sheet_name = self._sheet(wb)
                ws.reset_dimensions()  # the stored dimension can be wrong: read every cell there is
                rows = ws.iter_rows(min_row=1)
                try:
                    columns, renamed = self._header(rows, sheet_name)
                    date_idx = self._date_columns(columns, sheet_name)
                    epoch = wb.epoch
                    result = self._land(landing_dir, rows, columns, date_idx, lambda v: from_excel(v, epoch=epoch))
                except (
                    zipfile.BadZipFile,
                    zlib.error,
                    EOFError,
                    SyntaxError,
                ) as exc:  # XML ParseErrors are SyntaxErrors
                    raise SourceError(
                        f"{self.path} [{sheet_name}]: the workbook is damaged and cannot be read to the end "
                        f"({type(exc).__name__}: {exc})",
                        hint="open it in Excel or WPS, save it again as .xlsx, and re-run",
                    ) from exc
            except BaseException:
                for partial in (landing_dir / DATA_FILE, landing_dir / REJECTS_FILE):
                    partial.unlink(missing_ok=True)
                raise
            finally:
                wb.close()
        details = dict(result.details)
        details.update(
            {
                "sheet": sheet_name,
                "sheets": list(wb.sheetnames),
                "header_row": opts.header_row,
                "renamed_columns": renamed,
                "date_columns": list(opts.date_columns),
                "epoch": "1904" if epoch.year == 1904 else "1900",
                "bytes": self.path.stat().st_size,
            }
        )
        log.info("%s [%s]: landed %d rows, rejected %d", self.path, sheet_name, result.rows, result.rejected)
        return CollectResult(
            data_path=result.data_path,
            rows=result.rows,
            rejected=result.rejected,
            rejects_path=result.rejects_path,
            columns=columns,
            source_sha256=sha256_file(self.path),
            details=details,
        )

    # --- steps -----------------------------------------------------------------------------------

    def _check_file(self) -> None:
        path = self.path
        kind = workbook_kind(path)
        if kind == "missing":
            raise SourceError(
                f"{path}: workbook not found",
                hint="check source.options.path (relative paths are resolved against the spec's folder)",
            )
        if kind == "directory":
            raise SourceError(f"{path}: is a directory, not a workbook", hint="point source.options.path at the file")
        if kind == "empty":
            raise SourceError(f"{path}: the file is empty (0 bytes)", hint="re-export the workbook")
        if kind == "ole2":
            raise SourceError(
                f"{path}: an old Excel 97-2003 .xls file or a password-protected workbook, which cannot be read",
                hint="open it in Excel or WPS and save it as .xlsx without a password",
            )

    def _sheet(self, wb: Any) -> tuple[Any, str]:
        sheet = self.options.sheet
        names: list[str] = list(wb.sheetnames)
        listing = ", ".join(f"{i}: {n!r}" for i, n in enumerate(names))
        if sheet is None:
            if not wb.worksheets:
                raise SourceError(f"{self.path}: the workbook has no worksheet", hint="re-export the workbook")
            ws = wb.worksheets[0]
            return ws, str(ws.title)
        if isinstance(sheet, int):
            if not 0 <= sheet < len(names):
                raise SourceError(
                    f"{self.path}: no sheet at index {sheet}; the workbook has {len(names)} sheet(s): {listing}",
                    hint="set source.options.sheet to a sheet name or a 0-based index from that list",
                )
            name = names[sheet]
        else:
            if sheet not in names:
                raise SourceError(
                    f"{self.path}: no sheet named {sheet!r}; the sheets are: {listing}",
                    hint="set source.options.sheet to one of those names (or a 0-based index)",
                )
            name = sheet
        ws = wb[name]
        if not hasattr(ws, "iter_rows"):
            raise SourceError(f"{self.path}: sheet {name!r} is a chart, not a worksheet", hint="choose a worksheet")
        return ws, name

    def _header(self, rows: Iterator[Sequence[Any]], sheet: str) -> tuple[list[str], dict[str, str]]:
        header_row = self.options.header_row
        header: Sequence[Any] | None = None
        for number, row in enumerate(rows, start=1):
            if number == header_row:
                header = row
                break
        where = f"{self.path} [{sheet}]"
        if header is None:
            raise SourceError(
                f"{where}: header_row {header_row} is beyond the sheet's last row",
                hint="set source.options.header_row to the row holding the column names",
            )
        texts = [cell_text(c.value, getattr(c, "number_format", None)) for c in header]
        while texts and texts[-1] is None:
            texts.pop()
        if not texts:
            raise SourceError(
                f"{where}: row {header_row} (header_row) is empty",
                hint="set source.options.header_row to the row holding the column names",
            )
        names, renamed = unique_column_names([t or "" for t in texts])
        if ROW_COLUMN in names:
            raise SourceError(f"{where}: a column is named {ROW_COLUMN}, a name govdata reserves", hint="rename it")
        if renamed:
            log.warning("%s: header names made unique or filled in: %s", where, renamed)
        return names, renamed

    def _date_columns(self, columns: list[str], sheet: str) -> set[int]:
        missing = [c for c in self.options.date_columns if c not in columns]
        if missing:
            raise SourceError(
                f"{self.path} [{sheet}]: date_columns names {', '.join(map(repr, missing))}, not in the header "
                f"({', '.join(columns)})",
                hint="list header names in source.options.date_columns",
            )
        return {columns.index(c) for c in self.options.date_columns}

    def _land(
        self,
        landing_dir: Path,
        rows: Iterator[Sequence[Any]],
        columns: list[str],
        date_idx: set[int],
        from_serial: Any,
    ) -> CollectResult:
        width = len(columns)
        schema = pa.schema([(ROW_COLUMN, pa.int64()), *[(c, pa.string()) for c in columns]])
        data_path = landing_dir / DATA_FILE
        batch: list[list[Any]] = [[] for _ in range(width + 1)]
        rejects: list[dict[str, Any]] = []
        landed = blank = serials = 0
        number = self.options.header_row
        with pq.ParquetWriter(data_path, schema, compression="zstd") as writer:
            for row in rows:
                number += 1
                # the sheet's own row number when a cell carries it (gaps are filled by openpyxl)
                number = next((c.row for c in row if getattr(c, "row", None)), number)
                values: list[str | None] = []
                for i, cell in enumerate(row):
                    value = cell.value
                    if value is None or type(value) is str:  # the common cells, without the calls below
                        values.append(value or None)
                        continue
                    if i in date_idx and isinstance(value, int | float) and not isinstance(value, bool):
                        value = from_serial(value)
                        serials += 1
                    fmt = getattr(cell, "number_format", None) if isinstance(value, dt.datetime) else None
                    values.append(cell_text(value, fmt))
                if not any(v is not None for v in values):
                    blank += 1
                    continue
                beyond = [(i, v) for i, v in enumerate(values[width:], start=width + 1) if v is not None]
                if beyond:
                    col, val = beyond[0]
                    rejects.append(
                        {
                            ROW_COLUMN: number,
                            "raw": "\t".join("" if v is None else v for v in values),
                            "reason": f"row {number}: a value in column {get_column_letter(col)} ({val[:40]!r}) is "
                            f"right of the last header column ({get_column_letter(width)})",
                        }
                    )
                    continue
                batch[0].append(number)
                for i in range(width):
                    batch[i + 1].append(values[i] if i < len(values) else None)
                landed += 1
                if len(batch[0]) >= BATCH_ROWS:
                    writer.write_table(pa.table(batch, schema=schema))
                    batch = [[] for _ in range(width + 1)]
            writer.write_table(pa.table(batch, schema=schema))
        rejects_path: Path | None = None
        if rejects:
            rejects_path = landing_dir / REJECTS_FILE
            reject_schema = pa.schema([(ROW_COLUMN, pa.int64()), ("raw", pa.string()), ("reason", pa.string())])
            pq.write_table(pa.Table.from_pylist(rejects, schema=reject_schema), rejects_path, compression="zstd")
            log.warning("%s: %d rows rejected (values right of the header)", self.path, len(rejects))
        return CollectResult(
            data_path=data_path,
            rows=landed,
            rejected=len(rejects),
            rejects_path=rejects_path,
            details={
                "blank_rows_skipped": blank,
                "rows_above_header": self.options.header_row - 1,
                "last_row": number,
                "date_serials_converted": serials,
            },
        )
