"""The source-connector contract: every connector lands what it read as one Parquet file.

A connector reads its source and writes, into the run's landing folder:

- ``data.parquet``: every record it could parse, columns named as in the source, plus
  ``_govdata_row`` (BIGINT, 1-based ordinal of the record in the source) as the first column.
  A connector may leave ``_govdata_row`` out when the ordinals are exactly 1..rows in file
  order (the csv connector does: numbering 5M parsed rows with a window costs more than the
  parse itself); readers never see the difference, because they read the landing through
  :func:`landing_sql` or :func:`read_landing`, which number such rows by their position.
  File sources (CSV, XLSX) land every value as VARCHAR, exactly as read (after transcoding to
  UTF-8); typed sources (SQL, Parquet) keep their types.
- ``rejects.parquet`` (only when there are any): records it could not parse, with
  ``_govdata_row`` (line or row number), ``raw`` (the record's text) and ``reason``.

Nothing is ever dropped: ``rows + rejected`` is every record of the source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

ROW_COLUMN = "_govdata_row"
DATA_FILE = "data.parquet"
REJECTS_FILE = "rejects.parquet"
#: The name DuckDB gives the position column of ``read_parquet(..., file_row_number=true)``.
POSITION_COLUMN = "file_row_number"


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def landing_sql(path: Path) -> str:
    """A DuckDB query for a landed ``data.parquet`` with ``_govdata_row`` as the first column."""
    source = _sql_str(str(path))
    if ROW_COLUMN in pq.read_schema(path).names:
        return f"SELECT * FROM read_parquet({source})"
    # file_row_number is the 0-based position in the file; it costs nothing to read
    return (
        f'SELECT {POSITION_COLUMN} + 1 AS "{ROW_COLUMN}", * EXCLUDE ({POSITION_COLUMN}) '
        f"FROM read_parquet({source}, file_row_number = true)"
    )


def read_landing(path: Path) -> pa.Table:
    """A landed ``data.parquet`` as an Arrow table with ``_govdata_row`` as the first column."""
    table = pq.read_table(path)
    if ROW_COLUMN in table.schema.names:
        return table
    return table.add_column(0, pa.field(ROW_COLUMN, pa.int64()), [pa.array(range(1, table.num_rows + 1), pa.int64())])


class ConnectorOptions(BaseModel):
    """Base of every connector's options model: closed, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class CollectResult:
    """What a connector landed."""

    data_path: Path
    rows: int
    rejected: int = 0
    rejects_path: Path | None = None
    columns: list[str] = field(default_factory=list)
    #: sha256 of the source bytes as read (files) or of the landed data (databases).
    source_sha256: str | None = None
    #: Highest watermark value seen (incremental sources), as an ISO/str value.
    watermark: str | None = None
    #: Connector-specific facts for the run report (encoding, sheet, query, undecodable bytes…).
    details: dict[str, Any] = field(default_factory=dict)


class Connector(Protocol):
    """A source connector. Construct with validated options; ``collect`` does the work."""

    name: ClassVar[str]
    Options: ClassVar[type[ConnectorOptions]]

    def __init__(self, options: Any, *, base_dir: Path, env: Mapping[str, str]) -> None: ...

    def describe(self) -> str:
        """One line naming the source for messages, without secrets (e.g. ``csv file a/b.csv``)."""
        ...

    def collect(self, landing_dir: Path, *, since: str | None = None) -> CollectResult:
        """Read the source into ``landing_dir`` (which exists and is empty).

        ``since`` is the last published watermark for incremental sources (None: everything).
        Raise :class:`pipelines.errors.SourceError` (naming file, row or field) for bad input,
        :class:`pipelines.errors.TransientError` when a server cannot be reached.
        """
        ...
