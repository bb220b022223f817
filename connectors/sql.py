"""The sql connector: land a table or query from any SQLAlchemy database as typed Parquet, optionally incrementally.

The rows are streamed (server-side cursors, ``yield_per``) in batches into a pyarrow
ParquetWriter; a big table never sits in memory. Types stay native: the Arrow type of a column
comes from the table's reflected SQL type when it is unambiguous, else from the values; when a
later batch does not fit the types written so far, a new part file is started and DuckDB unifies
the parts at the end (for example NULL-only then text becomes VARCHAR, mixed decimals widen).
Values Arrow cannot hold as one type (JSON objects, a column mixing numbers and text) land as
text; UUIDs keep Parquet's UUID type.

Secrets never live in the spec: the URL comes from ``url`` (refused if it holds a password),
``url_env`` (an environment variable) or ``conn_id`` (an Airflow connection, read from
``AIRFLOW_CONN_<ID>`` as a URI or JSON, without importing Airflow).

Incremental collection: with ``watermark`` configured and a ``since`` value, only rows whose
watermark column is greater than ``since`` are fetched (a bound parameter; a ``query`` is wrapped
as a subquery), and the highest watermark landed is returned (ISO for timestamps), or ``since``
unchanged when nothing is new. Rows whose watermark is NULL are never fetched incrementally:
their count is reported on full loads.

``_govdata_row`` is the 1-based ordinal of the row in fetch order. The fetch is ordered by the
watermark column (then the primary key) when a watermark is configured, else by the primary key
when the table has one, so the ordinal is stable between runs; a ``query`` without a watermark
keeps its own ORDER BY (``details.ordered_by`` says which applies).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, NoReturn

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from pydantic import Field, field_validator, model_validator
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url

from connectors.base import DATA_FILE, ROW_COLUMN, CollectResult, ConnectorOptions
from pipelines.errors import SourceError, SpecError, TransientError
from pipelines.files import sha256_file
from pipelines.sql import connect as duckdb_connection

log = logging.getLogger(__name__)

#: Bare dialect names mapped to the drivers govdata installs (extras ``postgres`` and ``mysql``).
DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}
_SECRET_QUERY_KEYS = {"password", "passwd", "pwd", "secret"}
_CONNECT_TIMEOUT = {"postgresql": "connect_timeout", "mysql": "connect_timeout"}
_PART = "_part-{:04d}.parquet"


class Watermark(ConnectorOptions):
    """The column that says which rows are new."""

    column: str = Field(description="Watermark column (in the table or the query's result).")
    type: Literal["timestamp", "integer", "string"] = Field(
        default="timestamp", description="How `since` is compared and the watermark reported."
    )


class SqlOptions(ConnectorOptions):
    """Options of the sql connector."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL without a password (e.g. sqlite:///data/app.db); relative SQLite paths resolve "
        "against the spec's folder.",
    )
    url_env: str | None = Field(default=None, description="Name of the environment variable holding the URL.")
    conn_id: str | None = Field(
        default=None, description="Airflow connection id, read from the environment variable AIRFLOW_CONN_<ID>."
    )
    table: str | None = Field(default=None, description="Table (or view) to collect whole.")
    db_schema: str | None = Field(
        default=None, alias="schema", description="Schema (PostgreSQL) or database (MySQL) of `table`."
    )
    query: str | None = Field(default=None, description="SELECT to collect instead of a table.")
    watermark: Watermark | None = Field(default=None, description="Incremental collection: {column, type}.")
    batch_size: int = Field(default=50_000, gt=0, description="Rows fetched and written per batch.")

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            url = make_url(value)
        except sa_exc.ArgumentError:
            raise ValueError("not a valid SQLAlchemy URL (dialect+driver://user@host:port/database)") from None
        if url.password or _SECRET_QUERY_KEYS & {k.lower() for k in url.query}:
            # never echo the value: it holds the secret
            raise ValueError(
                "the URL contains a password; secrets never go in a spec: put the URL in an environment "
                "variable and name it with url_env (or use an Airflow connection with conn_id)"
            )
        return value

    @model_validator(mode="after")
    def _one_of(self) -> SqlOptions:
        given = [k for k in ("url", "url_env", "conn_id") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of url, url_env or conn_id (got {', '.join(given) or 'none'})")
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        if self.db_schema and not self.table:
            raise ValueError("schema goes with table")
        return self


def _airflow_url(raw: str, conn_id: str) -> URL:
    """An Airflow connection (URI or JSON form) as a SQLAlchemy URL."""
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            conn = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SpecError(
                f"Airflow connection {conn_id!r}: the JSON in AIRFLOW_CONN_{conn_id.upper()} is invalid ({exc.msg})",
                hint="fix the connection (see Airflow's 'JSON format' for connections)",
            ) from None
        conn_type = str(conn.get("conn_type", ""))
        extra = conn.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra.strip() else {}
        return URL.create(
            drivername=DRIVERS.get(conn_type, conn_type),
            username=conn.get("login"),
            password=conn.get("password"),
            host=conn.get("host"),
            port=int(conn["port"]) if conn.get("port") else None,
            database=conn.get("schema"),
            query={str(k): str(v) for k, v in extra.items() if not isinstance(v, dict | list)},
        )
    url = make_url(raw)
    query = {k: v for k, v in url.query.items() if k != "__extra__"}
    return url.set(query=query)


class SqlConnector:
    """Land a table or query. See the module docstring for types, increments and ``_govdata_row``."""

    name: ClassVar[str] = "sql"
    Options: ClassVar[type[ConnectorOptions]] = SqlOptions

    def __init__(self, options: SqlOptions, *, base_dir: Path, env: Mapping[str, str]) -> None:
        self.options = options
        self.base_dir = Path(base_dir)
        self.env = dict(env)

    # --- naming ----------------------------------------------------------------------------------

    def describe(self) -> str:
        opts = self.options
        what = f"table {opts.db_schema + '.' if opts.db_schema else ''}{opts.table}" if opts.table else "query"
        try:
            where = self._url().render_as_string(hide_password=True)
        except (SpecError, sa_exc.ArgumentError):
            where = f"${opts.url_env}" if opts.url_env else f"connection {opts.conn_id}"
        return f"sql {what} on {where}"

    def _url(self) -> URL:
        opts = self.options
        if opts.url is not None:
            url = make_url(opts.url)
        elif opts.url_env is not None:
            raw = self.env.get(opts.url_env)
            if not raw:
                raise SpecError(
                    f"sql source: the environment variable {opts.url_env} (url_env) is not set",
                    hint=f"export {opts.url_env}=<SQLAlchemy URL> where the pipeline runs",
                )
            try:
                url = make_url(raw)
            except sa_exc.ArgumentError:
                raise SpecError(
                    f"sql source: {opts.url_env} does not hold a valid SQLAlchemy URL",
                    hint="use dialect+driver://user:password@host:port/database",
                ) from None
        else:
            assert opts.conn_id is not None
            var = f"AIRFLOW_CONN_{opts.conn_id.upper()}"
            raw = self.env.get(var)
            if not raw:
                raise SpecError(
                    f"sql source: Airflow connection {opts.conn_id!r} not found ({var} is not set)",
                    hint=f"define the connection as {var}=<URI> (or create it in Airflow and export it)",
                )
            try:
                url = _airflow_url(raw, opts.conn_id)
            except sa_exc.ArgumentError:
                raise SpecError(
                    f"sql source: {var} is not a connection URI", hint="use conn-type://login:password@host:port/schema"
                ) from None
        url = url.set(drivername=DRIVERS.get(url.drivername, url.drivername))
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            db = Path(url.database).expanduser()
            if not db.is_absolute() and not url.database.startswith("file:"):
                url = url.set(database=str(self.base_dir / db))
        return url

    def _server(self, url: URL) -> str:
        if url.get_backend_name() == "sqlite":
            return f"sqlite database {url.database}"
        port = f":{url.port}" if url.port else ""
        return f"{url.get_backend_name()} server {url.host or 'localhost'}{port} (database {url.database})"

    # --- collect ---------------------------------------------------------------------------------

    def collect(self, landing_dir: Path, *, since: str | None = None) -> CollectResult:
        opts = self.options
        url = self._url()
        engine = self._engine(url)
        try:
            with self._connect(engine, url) as conn:
                stmt, params, ordered_by, table_columns = self._statement(conn, since)
                result = self._land(conn, stmt, params, landing_dir, table_columns)
        finally:
            engine.dispose()
        rows, columns, wm_min, wm_max, nulls, parts = result
        wm = opts.watermark
        watermark: str | None = None
        if wm is not None:
            watermark = _watermark_text(wm_max) if wm_max is not None else since
            if nulls and since is None:
                log.warning(
                    "%s: %d rows have a NULL %s; incremental runs will never fetch them",
                    self.describe(),
                    nulls,
                    wm.column,
                )
        data_path = landing_dir / DATA_FILE
        details: dict[str, Any] = {
            "dialect": url.get_backend_name(),
            "driver": url.get_driver_name(),
            "table": (f"{opts.db_schema}.{opts.table}" if opts.db_schema else opts.table) if opts.table else "query",
            "ordered_by": ordered_by,
            "batch_size": opts.batch_size,
            "parts": parts,
        }
        if wm is not None:
            details["watermark"] = {
                "column": wm.column,
                "type": wm.type,
                "since": since,
                "min": _watermark_text(wm_min) if wm_min is not None else None,
                "max": watermark,
                "null_rows": nulls,
            }
        log.info("%s: landed %d rows (since=%s, watermark=%s)", self.describe(), rows, since, watermark)
        return CollectResult(
            data_path=data_path,
            rows=rows,
            columns=columns,
            source_sha256=sha256_file(data_path),
            watermark=watermark,
            details=details,
        )

    def _engine(self, url: URL) -> Engine:
        connect_args: dict[str, Any] = {}
        key = _CONNECT_TIMEOUT.get(url.get_backend_name())
        if key and key not in url.query:
            connect_args[key] = 10
        try:
            return sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
        except sa_exc.NoSuchModuleError as exc:
            raise SpecError(
                f"sql source: unknown database dialect {url.drivername!r}",
                hint="use a SQLAlchemy URL such as postgresql://, mysql://, sqlite:///",
            ) from exc
        except ModuleNotFoundError as exc:
            raise SpecError(
                f"sql source: the database driver for {url.drivername} is not installed ({exc.name})",
                hint="install govdata with the postgres or mysql extra (uv sync --extra postgres)",
            ) from exc

    @contextlib.contextmanager
    def _connect(self, engine: Engine, url: URL) -> Any:
        server = self._server(url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            db = Path(str(url.database))
            if not db.is_file():
                # connecting would silently create an empty database
                raise SourceError(
                    f"{server}: file not found",
                    hint="check source.options.url (relative SQLite paths resolve against the spec's folder)",
                )
        try:
            conn = engine.connect()
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            if _refused_login(exc.orig):
                raise SourceError(
                    f"{server} refused the connection: {reason}",
                    hint="check the user, its password and the database name in the URL's environment variable",
                ) from None
            raise TransientError(
                f"{server} cannot be reached: {reason}",
                hint="check that the server is up and reachable from here; the run will be retried",
            ) from None
        except sa_exc.DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise SourceError(f"{server}: connection refused: {reason}", hint="check the user and its rights") from None
        try:
            yield conn
        finally:
            conn.close()

    def _statement(
        self, conn: Connection, since: str | None
    ) -> tuple[Any, dict[str, Any], list[str] | str | None, dict[str, Any]]:
        """The SELECT, its parameters, what it is ordered by, and the table's SQL types by column."""
        opts = self.options
        wm = opts.watermark
        since_value = _parse_since(since, wm) if (wm is not None and since is not None) else None
        if since is not None and wm is None:
            log.debug("%s: no watermark configured; since=%s ignored, collecting everything", self.describe(), since)
        if opts.table is not None:
            table = self._reflect(conn, opts.table, opts.db_schema)
            names = [c.name for c in table.columns]
            if ROW_COLUMN in names:
                raise SourceError(
                    f"{self.describe()}: the table has a column named {ROW_COLUMN}, which govdata reserves"
                )
            stmt = sa.select(table)
            pk = [c.name for c in table.primary_key.columns]
            order: list[str] = []
            if wm is not None:
                if wm.column not in table.c:
                    raise SourceError(
                        f"{self.describe()}: watermark column {wm.column!r} is not in the table; its columns are: "
                        f"{', '.join(names)}",
                        hint="set source.options.watermark.column to one of those columns",
                    )
                order = [wm.column] + [c for c in pk if c != wm.column]
                if since_value is not None:
                    if isinstance(table.c[wm.column].type, sa.String):
                        # Timestamps kept as text (common in SQLite): compare text with the text we
                        # returned, or '2026-01-01T10:00' vs a bound '2026-01-01 09:00' compares 'T' > ' '.
                        since_value = since
                    stmt = stmt.where(table.c[wm.column] > sa.bindparam("since"))
            else:
                order = pk
            if order:
                stmt = stmt.order_by(*[table.c[c] for c in order])
            types = {c.name: c.type for c in table.columns}
            params = {"since": since_value} if since_value is not None else {}
            return stmt, params, order or None, types
        assert opts.query is not None
        query = opts.query.strip().rstrip(";").strip()
        if wm is None:
            return sa.text(query), {}, "the query's own ORDER BY", {}
        q = conn.dialect.identifier_preparer.quote
        sql = f"SELECT * FROM ({query}) _govdata_src"
        params = {}
        if since_value is not None:
            sql += f" WHERE _govdata_src.{q(wm.column)} > :since"
            # SQLite has no timestamp type: a query's timestamps are text, so compare them as text.
            params["since"] = since if conn.dialect.name == "sqlite" else since_value
        sql += f" ORDER BY _govdata_src.{q(wm.column)}"
        return sa.text(sql), params, [wm.column], {}

    def _reflect(self, conn: Connection, name: str, schema: str | None) -> sa.Table:
        try:
            return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)
        except sa_exc.NoSuchTableError:
            inspector = sa.inspect(conn)
            try:
                tables = sorted(inspector.get_table_names(schema=schema)) + sorted(
                    inspector.get_view_names(schema=schema)
                )
            except sa_exc.DBAPIError:
                tables = []
            where = f" in schema {schema!r}" if schema else ""
            raise SourceError(
                f"{self.describe()}: no table or view {name!r}{where}; available: {', '.join(tables) or 'none'}",
                hint="set source.options.table (and schema) to one of those",
            ) from None

    def _land(
        self,
        conn: Connection,
        stmt: Any,
        params: dict[str, Any],
        landing_dir: Path,
        table_types: dict[str, Any],
    ) -> tuple[int, list[str], Any, Any, int, int]:
        opts = self.options
        wm = opts.watermark
        try:
            result = conn.execution_options(stream_results=True, yield_per=opts.batch_size).execute(stmt, params)
        except sa_exc.DBAPIError as exc:
            if wm is not None and opts.query is not None and not exc.connection_invalidated:
                self._check_query_columns(conn, wm.column)
            self._query_failed(exc)
        columns = list(result.keys())
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise SourceError(
                f"{self.describe()}: the result has repeated column names: {', '.join(dupes)}",
                hint="give every column of the query a distinct alias",
            )
        if ROW_COLUMN in columns:
            raise SourceError(f"{self.describe()}: a column is named {ROW_COLUMN}, which govdata reserves")
        known = [_arrow_type(table_types.get(c)) for c in columns]
        wm_idx = columns.index(wm.column) if wm is not None and wm.column in columns else None
        if wm is not None and wm_idx is None:
            raise SourceError(
                f"{self.describe()}: watermark column {wm.column!r} is not in the query's result; its columns are: "
                f"{', '.join(columns)}",
                hint="set source.options.watermark.column to one of those columns",
            )
        writer: pq.ParquetWriter | None = None
        parts: list[Path] = []
        total = nulls = 0
        wm_min: Any = None
        wm_max: Any = None
        try:
            try:
                for batch in result.partitions():
                    table = _batch_table(batch, columns, known, total)
                    total += table.num_rows
                    if wm_idx is not None:
                        arr = table.column(wm_idx + 1)
                        nulls += arr.null_count
                        if arr.null_count < len(arr):
                            lo, hi = pc.min_max(arr).values()
                            wm_min = lo.as_py() if wm_min is None else min(wm_min, lo.as_py())
                            wm_max = hi.as_py() if wm_max is None else max(wm_max, hi.as_py())
                    if writer is not None and not table.schema.equals(writer.schema):
                        try:
                            table = table.cast(writer.schema)
                        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                            writer.close()
                            writer = None
                    if writer is None:
                        parts.append(landing_dir / _PART.format(len(parts)))
                        writer = pq.ParquetWriter(parts[-1], table.schema, compression="zstd")
                    writer.write_table(table)
            except sa_exc.DBAPIError as exc:
                self._query_failed(exc)
            if writer is None:  # no rows: an empty file with the columns
                empty = _batch_table([], columns, known, 0)
                parts.append(landing_dir / _PART.format(0))
                writer = pq.ParquetWriter(parts[-1], empty.schema, compression="zstd")
                writer.write_table(empty)
            writer.close()
            writer = None
            _merge_parts(parts, landing_dir / DATA_FILE)
        finally:
            if writer is not None:
                writer.close()
            for part in parts:
                part.unlink(missing_ok=True)
        return total, columns, wm_min, wm_max, nulls, len(parts)

    def _check_query_columns(self, conn: Connection, column: str) -> None:
        """After the wrapped query failed: name a watermark column the query does not return."""
        assert self.options.query is not None
        query = self.options.query.strip().rstrip(";").strip()
        conn.rollback()
        try:
            columns = list(conn.execute(sa.text(f"SELECT * FROM ({query}) _govdata_src WHERE 1 = 0")).keys())
        except sa_exc.DBAPIError:
            conn.rollback()
            return  # the query itself is wrong: the original error says why
        if column not in columns:
            raise SourceError(
                f"{self.describe()}: watermark column {column!r} is not in the query's result; its columns are: "
                f"{', '.join(columns)}",
                hint="set source.options.watermark.column to one of those columns",
            )

    def _query_failed(self, exc: sa_exc.DBAPIError) -> NoReturn:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if exc.connection_invalidated:
            raise TransientError(
                f"{self.describe()}: the connection was lost: {reason}", hint="the run will be retried"
            ) from None
        raise SourceError(
            f"{self.describe()}: the database refused the read: {reason}",
            hint="check source.options.table / query and watermark.column against the database",
        ) from None


# --- values and types --------------------------------------------------------------------------


def _refused_login(orig: BaseException | None) -> bool:
    """The server answered but refused the login or the database: retrying will not help."""
    if orig is None:
        return False
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg
    if isinstance(sqlstate, str) and (sqlstate.startswith("28") or sqlstate == "3D000"):
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] in (1044, 1045, 1049, 1698)  # pymysql: access denied, unknown database


def _arrow_type(sql_type: Any) -> pa.DataType | None:
    """The Arrow type for a reflected SQL type, when it is unambiguous."""
    if sql_type is None:
        return None
    t = sql_type
    if isinstance(t, sa.Boolean):
        return pa.bool_()
    if isinstance(t, sa.Integer):
        return pa.int64()
    if isinstance(t, sa.Float):
        return pa.float64() if not getattr(t, "asdecimal", False) else None
    if isinstance(t, sa.Numeric):
        p, s = t.precision, t.scale
        if t.asdecimal and p is not None and s is not None and 0 < p <= 38 and 0 <= s <= p:
            return pa.decimal128(p, s)
        return None
    if isinstance(t, sa.DateTime):
        return pa.timestamp("us", tz="UTC") if t.timezone else pa.timestamp("us")
    if isinstance(t, sa.Date):
        return pa.date32()
    if isinstance(t, sa.Time):
        return pa.time64("us")
    if isinstance(t, sa.Enum | sa.String):  # Text and Unicode are Strings
        return pa.string()
    if isinstance(t, sa.LargeBinary):
        return pa.binary()
    return None


def _text_value(v: Any) -> Any:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False, default=str)
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    return str(v)


def _column_array(values: Sequence[Any], known: pa.DataType | None) -> pa.Array:
    if known is not None:
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return pa.array(values, type=known)
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        arr = None
    if (
        arr is None
        or pa.types.is_struct(arr.type)
        or pa.types.is_map(arr.type)
        or (pa.types.is_null(arr.type) and any(v is not None for v in values))
    ):
        # values Arrow cannot hold as one type (UUID, JSON, a mix of numbers and text): land them as text
        return pa.array([_text_value(v) for v in values], type=pa.string())
    return arr


def _batch_table(
    batch: Sequence[Sequence[Any]], columns: list[str], known: list[pa.DataType | None], start: int
) -> pa.Table:
    n = len(batch)
    by_column: list[Sequence[Any]] = list(zip(*batch, strict=True)) if n else [() for _ in columns]
    arrays = [pa.array(range(start + 1, start + n + 1), type=pa.int64())]
    for values, typ in zip(by_column, known, strict=True):
        if n == 0:
            arrays.append(pa.array([], type=typ or pa.string()))
        else:
            arrays.append(_column_array(values, typ))
    return pa.Table.from_arrays(arrays, names=[ROW_COLUMN, *columns])


def _merge_parts(parts: list[Path], target: Path) -> None:
    """One part: it is the landing. Several (the types changed between batches): DuckDB unifies them."""
    if len(parts) == 1:
        parts[0].replace(target)
        return

    files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts)
    out = "'" + str(target).replace("'", "''") + "'"
    log.info("%s: unifying %d parts whose column types differ", target, len(parts))
    with duckdb_connection() as con:
        con.execute(
            f"COPY (SELECT * FROM read_parquet([{files}], union_by_name=true) ORDER BY {ROW_COLUMN}) "
            f"TO {out} (FORMAT parquet, COMPRESSION zstd)"
        )


_INT = re.compile(r"^[+-]?\d+$")


def _parse_since(since: str, wm: Watermark) -> Any:
    try:
        if wm.type == "integer":
            if not _INT.match(since.strip()):
                raise ValueError(since)
            return int(since)
        if wm.type == "timestamp":
            return dt.datetime.fromisoformat(since.strip())
    except ValueError:
        raise SourceError(
            f"sql source: the last watermark {since!r} is not a valid {wm.type} for column {wm.column!r}",
            hint="check source.options.watermark.type (timestamp, integer or string)",
        ) from None
    return since


def _watermark_text(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)
