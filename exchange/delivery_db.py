"""Database delivery (库表交换): a grant's rows written into the subscriber's own database, one transaction per version.

Where
    The grant's ``target`` names the place, never a secret: ``{"url_env": "SUBSCRIBER_DB_URL",
    "table": "insured_persons", "schema": "exchange"}`` (``schema`` optional). The environment
    variable holds a SQLAlchemy URL: PostgreSQL (``postgresql+psycopg://``), MySQL/MariaDB
    (``mysql+pymysql://``), or SQLite for the embedded default (``sqlite:///…``); any other
    scheme is refused before anything connects. The platform's own settings (``GOVDATA_*``, such
    as its catalog URL or the masking key) are never a target. Names are plain SQL names (letters,
    digits, ``_``), quoted by SQLAlchemy, so a reserved word works and nothing is injected. An
    error names the table and where it is (backend, host, port, database: never the user or the
    password, which is also scrubbed from any driver message) in the receipt, the audit log and
    the log.

What
    The same masked content a file delivery carries (:func:`exchange.delivery.build_delivery`):
    the full version the first time, afterwards the changes since the version the target holds.
    The table is created when missing, its types taken from the delivered file (which follow the
    version's schema, except that a masked item is text): text keys ``VARCHAR(255)`` (hashed ones
    ``VARCHAR(64)``), other text ``TEXT``, integers ``BIGINT``, decimals ``NUMERIC(p, s)``,
    floats ``DOUBLE``, dates, time stamps (PostgreSQL keeps the zone; MySQL and SQLite get UTC),
    booleans; the version's primary key is the table's. A table that exists is checked first:
    every delivered column there, of a fitting kind (text, number, date, time stamp…) and, for
    PostgreSQL and MySQL, wide enough for the longest delivered value; no other ``NOT NULL``
    column without a default; the key its primary key or a unique index. Each refusal names the
    column; nothing is written. Rows are upserted by the key (PostgreSQL
    ``INSERT … ON CONFLICT DO UPDATE``, MySQL/MariaDB ``INSERT … ON DUPLICATE KEY UPDATE``,
    SQLite ``ON CONFLICT``), deleted keys deleted; a full delivery first empties the table, so
    the table mirrors the version. ``full`` asks for that whole version again even when the table
    holds an earlier one (or this one): a re-delivery, when the subscriber doubts its copy.

One version, one transaction
    The rows and a bookkeeping row in ``govdata_deliveries`` (table, version, sha256 of the
    delivered file, rows, delivered_at, in the target's own database and schema) are written in
    one transaction. A delivery that fails half-way leaves the table as it was (the previous
    version, intact); a retry first reads the bookkeeping: if the version is recorded, it is
    there, and nothing is written again (the receipt says so, with no rows); if not, it is
    applied whole. The changes are computed since the version the bookkeeping names when this
    grant wrote it (another grant may mask differently: then the full version); a table dropped
    since is delivered again in full. The
    bookkeeping's primary key (table, version) stops two concurrent deliveries of one version
    from both committing. Rows go in batches of ``GOVDATA_DELIVERY_BATCH_ROWS`` (default 5,000)
    read from the file's Parquet record batches and sent with ``executemany``.

Retries
    A transient failure (the database unreachable or gone mid-delivery: SQLAlchemy's
    ``OperationalError``, ``InterfaceError``, a ``DBAPIError`` that invalidated the connection,
    or a :class:`~pipelines.errors.TransientError`; from MySQL only lost connections, lock
    timeouts, deadlocks and too many connections, since PyMySQL calls most server errors
    operational) is retried up to ``GOVDATA_DELIVERY_RETRIES``
    times (default 4, so 5 attempts), waiting ``GOVDATA_DELIVERY_BACKOFF`` seconds (default 1)
    times 2^(attempt − 1), times a random factor in [0.5, 1.5), at most 60 s. Any other error
    fails at once. Every attempt is counted on the receipt. A use of the grant is taken when the
    delivery starts and given back if nothing was delivered (it failed, or the target already
    held the version).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine

from catalog.lifecycle import SYSTEM_ACTOR
from catalog.models import Version, utcnow
from exchange.delivery import (
    MAX_INT,
    OP_COLUMN,
    DeliveryFile,
    GrantInfo,
    VersionData,
    build_delivery,
    consume_use,
    ensure_active,
    ensure_method,
    error_text,
    failed,
    incompatible,
    iter_batches,
    latest_number,
    mark_delivered,
    receipt_dict,
    refund_use,
    succeeded,
    version_data,
)
from exchange.errors import Conflict, NotFound
from exchange.models import Delivery, Grant
from pipelines import lineage
from pipelines.errors import GovdataError, SpecError, TerminalError

__all__ = [
    "BOOKKEEPING_TABLE",
    "RetryPolicy",
    "Target",
    "deliver_due",
    "deliver_to_database",
    "is_transient",
    "parse_target",
]

log = logging.getLogger(__name__)

BOOKKEEPING_TABLE = "govdata_deliveries"
RETRIES_ENV = "GOVDATA_DELIVERY_RETRIES"
BACKOFF_ENV = "GOVDATA_DELIVERY_BACKOFF"
BATCH_ENV = "GOVDATA_DELIVERY_BATCH_ROWS"
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 1.0
MAX_DELAY = 60.0
DEFAULT_BATCH_ROWS = 5000

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_SQL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: The platform's own settings (its catalog URL, the masking key, …) are never a delivery target.
_PLATFORM_ENV_PREFIX = "GOVDATA_"
#: The databases a delivery writes into (SQLAlchemy backend names; any installed driver).
BACKENDS = ("postgresql", "mysql", "mariadb", "sqlite")
_SCHEME = re.compile(r"[a-z][a-z0-9]*(?:\+[a-z0-9_]+)?")
#: MySQL/MariaDB error codes worth a retry: lock wait timeout, deadlock, too many connections,
#: server shutdown, connection killed; and the client's own (2000 and up: cannot connect, gone away, lost).
_MYSQL_TRANSIENT = frozenset({1040, 1053, 1205, 1213, 1927})

#: How the retry loop waits (replaced in tests to record the delays instead of sleeping).
_sleep: Callable[[float], None] = time.sleep


# --- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a grant's rows go: the variable holding the URL, the table, and an optional schema."""

    url_env: str
    table: str
    schema: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table

    def url(self) -> str:
        value = os.environ.get(self.url_env, "").strip()
        if not value:
            raise TerminalError(
                f"the target database of this grant is read from ${self.url_env}, which is not set",
                hint=f"set {self.url_env} to the subscriber database's SQLAlchemy URL "
                "(e.g. postgresql+psycopg://user:password@host/db) where deliveries run",
            )
        return value


def _shown(value: object) -> str:
    """A refused name for a message: cut short, never more than 40 characters."""
    return repr(value[:40] + ("…" if len(value) > 40 else "")) if isinstance(value, str) else repr(value)[:40]


def parse_target(grant: GrantInfo) -> Target:
    """The grant's database target, checked: names only (no URL, no secret)."""
    target = grant.target
    hint = 'the grant\'s target must be {"url_env": "ENV_VAR_WITH_URL", "table": "name", "schema": "optional"}'
    if not isinstance(target, Mapping):
        raise SpecError(f"grant {grant.id} names no target database", hint=hint)
    unknown = sorted(str(k)[:40] for k in set(target) - {"url_env", "table", "schema"})
    if unknown:
        raise SpecError(f"grant {grant.id}: unknown target key(s) {', '.join(map(repr, unknown))}", hint=hint)
    url_env, table, schema = target.get("url_env"), target.get("table"), target.get("schema")
    if not isinstance(url_env, str) or not _ENV_NAME.fullmatch(url_env):
        # Never echo the value: it may be the URL itself, password included.
        raise SpecError(f"grant {grant.id}: the target's url_env is not an environment variable name", hint=hint)
    if url_env.upper().startswith(_PLATFORM_ENV_PREFIX):
        raise SpecError(
            f"grant {grant.id}: the target's url_env ${url_env} is one of the platform's own settings, "
            "which never receive deliveries",
            hint="name a variable of the subscriber's own, e.g. SUBSCRIBER_DB_URL",
        )
    if schema == "":
        schema = None
    for name, value, optional in (("table", table, False), ("schema", schema, True)):
        if value is None and optional:
            continue
        if not isinstance(value, str) or not _SQL_NAME.fullmatch(value):
            raise SpecError(
                f"grant {grant.id}: target {name} {_shown(value)} is not a plain SQL name",
                hint="use letters, digits and _ (at most 63, not starting with a digit)",
            )
    assert isinstance(table, str)
    if table.lower() == BOOKKEEPING_TABLE:
        raise SpecError(f"grant {grant.id}: the target table cannot be {BOOKKEEPING_TABLE}", hint="choose another name")
    return Target(url_env=url_env, table=table, schema=schema if isinstance(schema, str) else None)


def _env_number(name: str, default: float, low: float, high: float, *, whole: bool) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(int(raw)) if whole else float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        kind = "a whole number" if whole else "a number of seconds"
        raise SpecError(f"{name}={raw!r} is not {kind} from {low:g} to {high:g}", hint=f"unset it for {default:g}")
    return value


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a database delivery is retried (see the module doc)."""

    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    max_delay: float = MAX_DELAY

    @classmethod
    def from_env(cls) -> RetryPolicy:
        return cls(
            retries=int(_env_number(RETRIES_ENV, DEFAULT_RETRIES, 0, 20, whole=True)),
            backoff=_env_number(BACKOFF_ENV, DEFAULT_BACKOFF, 0, 600, whole=False),
        )

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1, 2, …): exponential, with jitter, capped."""
        factor = float((rng or random).uniform(0.5, 1.5))
        return float(min(self.max_delay, self.backoff * 2.0 ** (attempt - 1) * factor))


def batch_rows_from_env() -> int:
    return int(_env_number(BATCH_ENV, DEFAULT_BATCH_ROWS, 1, 1_000_000, whole=True))


def is_transient(exc: BaseException) -> bool:
    """Whether retrying may help: the database was unreachable, went away, or was busy."""
    if isinstance(exc, GovdataError):
        return exc.retryable
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(
        exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, sa_exc.DisconnectionError)
    ):
        return False
    # PyMySQL calls most server errors "operational" (an unknown column, a full disk's table):
    # only those that can pass are retried.
    args = getattr(getattr(exc, "orig", None), "args", ())
    code = args[0] if args and type(getattr(exc, "orig", None)).__module__.startswith("pymysql") else None
    if isinstance(code, int):
        return code in _MYSQL_TRANSIENT or code >= 2000
    return True


@dataclass(frozen=True)
class Connected:
    """A target's engine, where it points (no user, no password) and the secrets never to show."""

    engine: Engine
    where: str
    secrets: tuple[str, ...]

    def scrub(self, text: str) -> str:
        """``text`` without the URL's password (drivers do not echo it; this makes sure)."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _where(url: sa.URL) -> str:
    if url.get_backend_name() == "sqlite":
        return f"sqlite {Path(url.database).name if url.database else ':memory:'}"
    host = f"{url.host or 'localhost'}" + (f":{url.port}" if url.port else "")
    return f"{url.get_backend_name()} {host}/{url.database or ''}"


def _engine(target: Target) -> Connected:
    """The engine of ``target``'s database: an allowed backend, its driver installed (nothing connects yet)."""
    raw = target.url()
    valid_hint = "e.g. postgresql+psycopg://user:password@host:5432/db or mysql+pymysql://user:password@host/db"
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    if not _SCHEME.fullmatch(scheme):
        # Not echoed: a mistyped value may be a password.
        raise TerminalError(f"${target.url_env} does not hold a database URL (dialect+driver://…)", hint=valid_hint)
    backend = scheme.split("+", 1)[0]
    if backend not in BACKENDS:
        raise TerminalError(
            f"${target.url_env} names {scheme}://, which is not a database a delivery writes into",
            hint="deliver into PostgreSQL (postgresql+psycopg://), MySQL/MariaDB (mysql+pymysql://) or SQLite "
            "(sqlite:///path), or choose file delivery",
        )
    try:
        url = sa.make_url(raw)
    except (sa_exc.ArgumentError, ValueError):
        raise TerminalError(f"${target.url_env} does not hold a valid SQLAlchemy URL", hint=valid_hint) from None
    password = url.password if isinstance(url.password, str) else None
    secrets = tuple(
        sorted({v for v in (password, quote(password or "", safe=""), raw) if v and len(v) >= 3}, key=len, reverse=True)
    )
    try:
        engine = sa.create_engine(url, pool_pre_ping=True)
    except (sa_exc.NoSuchModuleError, ImportError):
        raise TerminalError(
            f"${target.url_env} names the driver {scheme}://, which is not installed",
            hint="install the driver (govdata[postgres] or govdata[mysql]) or correct the URL",
        ) from None
    except (sa_exc.ArgumentError, ValueError, TypeError):
        raise TerminalError(f"${target.url_env} does not hold a valid SQLAlchemy URL", hint=valid_hint) from None
    return Connected(engine=engine, where=_where(url), secrets=secrets)


# --- tables ------------------------------------------------------------------------------------------


def bookkeeping_table(metadata: sa.MetaData) -> sa.Table:
    """``govdata_deliveries``: one row per version delivered into a table (written with the rows)."""
    return sa.Table(
        BOOKKEEPING_TABLE,
        metadata,
        sa.Column("table_name", sa.String(255), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("grant_id", sa.Integer, nullable=False),
        sa.Column("entry_id", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("base_version", sa.Integer),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("delivered_at", sa.DateTime, nullable=False),  # UTC
        mysql_charset="utf8mb4",
        mysql_engine="InnoDB",
    )


def column_type(field: pa.Field, *, key: bool, hashed: bool) -> sa.types.TypeEngine[Any]:
    """The SQL type of one delivered column (see the module doc)."""
    t = field.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        if hashed:
            return sa.String(64)
        return sa.String(255) if key else sa.Text()
    if pa.types.is_boolean(t):
        return sa.Boolean()
    if pa.types.is_integer(t):
        return sa.Numeric(20, 0) if t == pa.uint64() else sa.BigInteger()
    if pa.types.is_floating(t):
        return sa.Double()
    if pa.types.is_decimal(t):
        return sa.Numeric(t.precision, t.scale)
    if pa.types.is_date(t):
        return sa.Date()
    if pa.types.is_timestamp(t):
        return sa.DateTime(timezone=t.tz is not None).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    if pa.types.is_time(t):
        return sa.Time()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return sa.LargeBinary()
    raise SpecError(
        f"column {field.name!r} has the type {t}, which a database delivery cannot write",
        hint="deliver this item by file, or leave it out of the grant",
    )


def target_table(
    metadata: sa.MetaData,
    target: Target,
    schema: pa.Schema,
    primary_key: tuple[str, ...],
    rules: Mapping[str, str | None],
) -> sa.Table:
    columns = []
    for f in schema:
        if f.name == OP_COLUMN:
            continue
        key = f.name in primary_key
        columns.append(
            sa.Column(
                f.name,
                column_type(f, key=key, hashed=rules.get(f.name) == "hash"),
                primary_key=key,
                autoincrement=False,
            )
        )
    return sa.Table(target.table, metadata, *columns, mysql_charset="utf8mb4", mysql_engine="InnoDB")


def _family(t: Any) -> str:
    """A column type's kind, for comparing what a table has with what is delivered."""
    if isinstance(t, sa.Boolean):
        return "boolean"
    if isinstance(t, (sa.Integer, sa.Numeric, sa.Float)):
        return "number"
    if isinstance(t, sa.DateTime):
        return "timestamp"
    if isinstance(t, sa.Date):
        return "date"
    if isinstance(t, sa.Time):
        return "time"
    if isinstance(t, (sa.String, sa.Enum)):
        return "text"
    if isinstance(t, (sa.LargeBinary, sa.BINARY, sa.VARBINARY)):
        return "binary"
    return "other"  # a type the inspector does not know (SQLite takes any): not judged


def _compatible(wanted: str, present: str) -> bool:
    return wanted == present or present == "other" or {wanted, present} == {"boolean", "number"}


def _longest(path: Path, names: list[str]) -> dict[str, int]:
    """The longest value (in characters) of each text column ``names`` of a delivery file."""
    if not names:
        return {}
    parquet = pq.ParquetFile(path)
    longest = dict.fromkeys(names, 0)
    for batch in parquet.iter_batches(batch_size=65_536, columns=names):
        for name in names:
            value = pc.max(pc.utf8_length(batch.column(name))).as_py()
            longest[name] = max(longest[name], int(value or 0))
    return longest


def _check_table(
    conn: Connection, table: sa.Table, target: Target, primary_key: tuple[str, ...], file: DeliveryFile
) -> None:
    """An existing target table must take the delivered rows: every column, of a fitting type and length,
    no other column that needs a value, and the key as its primary key (or a unique index)."""
    inspector = sa.inspect(conn)
    reflected = {str(c["name"]): c for c in inspector.get_columns(target.table, schema=target.schema)}
    fold = conn.dialect.name in ("mysql", "mariadb", "sqlite")  # column names there ignore case
    present = {(n.lower() if fold else n): c for n, c in reflected.items()}
    missing = [c.name for c in table.columns if (c.name.lower() if fold else c.name) not in present]
    if missing:
        raise TerminalError(
            f"the target table {target.qualified} has no column(s) {', '.join(map(repr, missing))}: "
            "it was made for another schema of the data",
            hint=f"add the columns, or drop the table and its rows in {BOOKKEEPING_TABLE} to have it created again",
        )
    limited: dict[str, int] = {}
    for column in table.columns:
        there = present[column.name.lower() if fold else column.name]
        wanted, has = _family(column.type), _family(there["type"])
        if not _compatible(wanted, has):
            raise TerminalError(
                f"the target table {target.qualified} has the column {column.name!r} as {there['type']}, "
                f"which cannot hold the delivered {wanted} values ({column.type.compile(conn.dialect)})",
                hint=f"change the column's type, or drop the table and its rows in {BOOKKEEPING_TABLE} "
                "to have it created again",
            )
        length = getattr(there["type"], "length", None)
        if wanted == "text" and isinstance(length, int) and conn.dialect.name != "sqlite":
            limited[column.name] = length
    for name, longest in _longest(file.path, list(limited)).items():
        if longest > limited[name]:
            raise TerminalError(
                f"the target table {target.qualified} has the column {name!r} with room for {limited[name]} "
                f"characters, and the delivery has values of {longest}",
                hint=f"widen the column (at least {longest}), or drop the table to have it created again",
            )
    pk = inspector.get_pk_constraint(target.table, schema=target.schema).get("constrained_columns") or []
    uniques = [
        set(u.get("column_names") or []) for u in inspector.get_unique_constraints(target.table, schema=target.schema)
    ]
    uniques += [
        {str(c) for c in i.get("column_names") or [] if c is not None}
        for i in inspector.get_indexes(target.table, schema=target.schema)
        if i.get("unique")
    ]
    if set(pk) != set(primary_key) and set(primary_key) not in uniques:
        raise TerminalError(
            f"the target table {target.qualified} has no primary key or unique index on {', '.join(primary_key)}, "
            "so rows cannot be upserted",
            hint=f"add PRIMARY KEY ({', '.join(primary_key)}), or drop the table to have it created again",
        )
    delivered = {c.name.lower() if fold else c.name for c in table.columns}
    for name, other in present.items():
        if name in delivered or other.get("nullable", True) or other.get("autoincrement") is True:
            continue
        if other.get("default") is None and not other.get("computed") and not other.get("identity"):
            raise TerminalError(
                f"the target table {target.qualified} has the column {str(other['name'])!r}, which the delivery "
                "does not fill, and it is NOT NULL without a default",
                hint="give the column a default or allow nulls, or drop it",
            )


def _upsert(dialect: str, table: sa.Table, primary_key: tuple[str, ...]) -> Any:
    others = [c for c in table.columns if c.name not in primary_key]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(table)
        if not others:
            return pg.on_conflict_do_nothing(index_elements=list(primary_key))
        return pg.on_conflict_do_update(
            index_elements=list(primary_key), set_={c.name: pg.excluded[c.name] for c in others}
        )
    if dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as my_insert

        my = my_insert(table)
        kept = others or [table.c[primary_key[0]]]
        return my.on_duplicate_key_update({c.name: my.inserted[c.name] for c in kept})
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as lite_insert

        lite = lite_insert(table)
        if not others:
            return lite.on_conflict_do_nothing(index_elements=list(primary_key))
        return lite.on_conflict_do_update(
            index_elements=list(primary_key), set_={c.name: lite.excluded[c.name] for c in others}
        )
    raise TerminalError(
        f"database delivery does not support the {dialect} dialect yet",
        hint="deliver into PostgreSQL, MySQL/MariaDB or SQLite, or by file",
    )


def _naive_utc(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Zoned time stamps as UTC without a zone (MySQL and SQLite store no zone)."""
    if not any(pa.types.is_timestamp(f.type) and f.type.tz for f in batch.schema):
        return batch
    arrays = []
    for f, column in zip(batch.schema, batch.columns, strict=True):
        zoned = pa.types.is_timestamp(f.type) and f.type.tz
        arrays.append(column.cast(pa.timestamp(f.type.unit)) if zoned else column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _apply(
    conn: Connection, table: sa.Table, file: DeliveryFile, primary_key: tuple[str, ...], batch_rows: int
) -> None:
    """Write ``file``'s rows into ``table`` on ``conn`` (inside the caller's transaction)."""
    dialect = conn.dialect.name
    upsert = _upsert(dialect, table, primary_key)
    params = [f"govdata_key_{i}" for i in range(len(primary_key))]
    delete = table.delete().where(
        sa.and_(*(table.c[k] == sa.bindparam(p) for k, p in zip(primary_key, params, strict=True)))
    )
    columns = [c.name for c in table.columns]
    for batch in iter_batches(file.path, batch_rows):
        if file.kind == "changes":
            gone = pc.equal(batch.column(OP_COLUMN), "delete")
            doomed = batch.filter(gone)
            if doomed.num_rows:
                keys = zip(*(doomed.column(k).to_pylist() for k in primary_key), strict=True)
                conn.execute(delete, [dict(zip(params, key, strict=True)) for key in keys])
            batch = batch.filter(pc.invert(gone))
        if batch.num_rows:
            batch = batch.select(columns)
            if dialect != "postgresql":
                batch = _naive_utc(batch)
            conn.execute(upsert, batch.to_pylist())


# --- one attempt ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """What an attempt did: wrote a version, or found it there already."""

    already: bool
    kind: str
    base_version: int | None
    rows: int
    inserted: int
    updated: int
    deleted: int
    sha256: str


def _ensure_bookkeeping(conn: Connection, book: sa.Table) -> None:
    try:
        book.create(conn, checkfirst=True)
        conn.commit()
    except sa_exc.DBAPIError:
        conn.rollback()
        if not sa.inspect(conn).has_table(book.name, schema=book.schema):  # not a concurrent creation
            raise


def _attempt(
    engine: Engine,
    target: Target,
    grant: GrantInfo,
    new: VersionData,
    load_version: Callable[[int], VersionData | None],
    files: dict[int | None, DeliveryFile],
    folder: Path,
    batch_rows: int,
    full: bool = False,
) -> Applied:
    metadata = sa.MetaData(schema=target.schema)
    book = bookkeeping_table(metadata)
    mine = book.c.table_name == target.qualified
    with engine.connect() as conn:
        _ensure_bookkeeping(conn, book)
        # A table dropped since (by the subscriber) holds nothing, whatever the bookkeeping says.
        exists = sa.inspect(conn).has_table(target.table, schema=target.schema)
        present = (
            conn.execute(sa.select(book).where(mine, book.c.version == new.number)).mappings().first()
            if exists and not full
            else None
        )
        if present is not None:
            conn.rollback()
            return Applied(
                True, present["kind"], present["base_version"], int(present["row_count"]), 0, 0, 0, present["sha256"]
            )
        recorded = conn.execute(
            sa.select(book.c.version, book.c.grant_id).where(mine).order_by(book.c.version.desc()).limit(1)
        ).first()
        conn.rollback()
        last = recorded if exists else None
        # Bookkeeping of a table that is gone, or a re-delivery: it starts again with this version.
        restart = full or (recorded is not None and not exists)
        if last is not None and last.version > new.number:
            raise Conflict(
                f"the target table {target.qualified} holds version {last.version} already; delivering version "
                f"{new.number} would take it back",
                hint="deliver the latest version instead",
            )
        # The changes since the version the table holds, if this grant wrote it (another grant may mask
        # otherwise) and it can still be read; else the full version replaces the table's rows.
        base = None
        if last is not None and last.grant_id == grant.id and not full:
            base = load_version(int(last.version))
        if base is not None and (incompatible(base, new, grant.items) or not base.data_path.is_file()):
            base = None
        slot = base.number if base is not None else None
        file = files.get(slot)
        if file is None:
            name = f"v{new.number}" + (f"-since-v{slot}" if slot is not None else "") + ".parquet"
            file = build_delivery(grant, new, base, folder / name, fmt="parquet", work_dir=folder)
            files[slot] = file
        table = target_table(metadata, target, pq.read_schema(file.path), new.primary_key, file.rules)
        if not new.primary_key or any(k not in table.c for k in new.primary_key):
            raise SpecError(
                f"grant {grant.id}: a database delivery upserts by the primary key, which the grant does not include",
                hint="the grant must include every primary-key item (it may be hashed), or deliver by file",
            )
        if exists:
            _check_table(conn, table, target, new.primary_key, file)
            conn.commit()
        else:
            _create_table(conn, table, target)

        def there(row: sa.RowMapping) -> Applied:
            return Applied(True, row["kind"], row["base_version"], int(row["row_count"]), 0, 0, 0, row["sha256"])

        try:
            with conn.begin():
                # Looked at again inside the transaction: a delivery running at the same time may
                # have committed this version since (then it is there, and this one writes nothing).
                again = (
                    None
                    if restart
                    else conn.execute(sa.select(book).where(mine, book.c.version == new.number)).mappings().first()
                )
                if again is None:
                    if file.kind == "full":
                        conn.execute(table.delete())
                    if restart:
                        conn.execute(book.delete().where(mine, book.c.version >= new.number))
                    _apply(conn, table, file, new.primary_key, batch_rows)
                    conn.execute(
                        book.insert().values(
                            table_name=target.qualified,
                            version=new.number,
                            grant_id=grant.id,
                            entry_id=grant.entry_id,
                            kind=file.kind,
                            base_version=file.base_version,
                            row_count=file.rows,
                            sha256=file.sha256,
                            delivered_at=utcnow().replace(tzinfo=None),
                        )
                    )
        except sa_exc.IntegrityError:
            # Another delivery committed this version first: then it is there, exactly once.
            again = conn.execute(sa.select(book).where(mine, book.c.version == new.number)).mappings().first()
            conn.rollback()
            if again is None:
                raise
            return there(again)
        if again is not None:
            return there(again)
    return Applied(
        False, file.kind, file.base_version, file.rows, file.inserted, file.updated, file.deleted, file.sha256
    )


def _create_table(conn: Connection, table: sa.Table, target: Target) -> None:
    """Create the target table; one created by a concurrent delivery meanwhile is as good."""
    try:
        table.create(conn, checkfirst=True)
        conn.commit()
    except sa_exc.DBAPIError:
        conn.rollback()
        if not sa.inspect(conn).has_table(target.table, schema=target.schema):
            raise
        conn.rollback()


# --- entry points ----------------------------------------------------------------------------------------


def _set_attempts(store: Any, receipt: int, attempts: int) -> None:
    with store.session() as s:
        s.execute(
            sa.update(Delivery)
            .where(Delivery.id == receipt)
            .values(attempts=attempts)
            .execution_options(synchronize_session=False)
        )


def deliver_to_database(
    store: Any,
    grant_id: int,
    *,
    actor: str,
    version: int | None = None,
    now: dt.datetime | None = None,
    policy: RetryPolicy | None = None,
    batch_rows: int | None = None,
    work_dir: Path | None = None,
    full: bool = False,
    lineage_parent: lineage.Parent | None = None,
    lineage_home: Path | None = None,
) -> dict[str, Any]:
    """Deliver ``version`` (default the latest) of grant ``grant_id`` into its target database; returns the receipt.

    ``full``: replace the table's rows with the whole version even if the target holds an earlier
    version of this grant, or this one (a re-delivery: when the subscriber doubts its copy).

    Each started delivery is an OpenLineage run (:func:`pipelines.lineage.observe_delivery`):
    ``lineage_parent`` names the run it belongs to (the Airflow DAG run), ``lineage_home`` the
    workspace of the default lineage files (default ``$GOVDATA_HOME``).

    Refusals (no such grant, another delivery method, a grant not active, no version) raise
    before anything is written. Once started, the outcome is in the receipt: ``succeeded``
    (``already_present`` when the target held the version), or ``failed`` with the error, the
    attempts, and ``retryable`` (whether a later retry may succeed). Authorisation is the
    caller's (see :func:`exchange.delivery.grant_for`).
    """
    now = now or utcnow()
    policy = policy or RetryPolicy.from_env()
    rows_per_batch = batch_rows or batch_rows_from_env()
    with store.session() as s:
        grant = s.get(Grant, grant_id) if 0 < grant_id <= MAX_INT else None
        if grant is None:
            raise NotFound(f"no grant {grant_id}", hint="list the grants with their ids")
        ensure_method(grant, "database")
        ensure_active(grant, now)
        info = GrantInfo.of(grant)
        number = version if version is not None else latest_number(s, info.entry_id)
        if number is None:
            raise Conflict(f"{info.entry_id} has no published version yet", hint="wait for the provider to publish")
        new = version_data(s, info.entry_id, number)
        consume_use(s, grant_id, now)
        row = Delivery(
            grant_id=info.id,
            entry_id=info.entry_id,
            department_uscc=info.department,
            mode="database",
            kind="full",
            version=number,
            outcome="running",
            attempts=0,
            actor=actor,
            started_at=utcnow(),
        )
        s.add(row)
        s.flush()
        receipt = row.id
    seen = lineage.observe_delivery(info, new, receipt=receipt, parent=lineage_parent, home=lineage_home)
    t0 = time.perf_counter()
    folder = (
        Path(tempfile.mkdtemp(prefix="govdata-delivery-"))
        if work_dir is None
        else work_dir / f"database-{uuid.uuid4().hex}"
    )
    files: dict[int | None, DeliveryFile] = {}
    attempts = 0
    target: Target | None = None
    connected: Connected | None = None

    def load_version(n: int) -> VersionData | None:
        with store.session() as s2:
            try:
                return version_data(s2, info.entry_id, n)
            except SpecError:
                return None

    def failure(exc: BaseException) -> str:
        """The receipt's error: what failed, naming the table and where it is (never the password)."""
        text = error_text(exc)
        if target is not None and target.qualified not in text:
            where = connected.where if connected is not None else f"${target.url_env}"
            text = f"into {target.qualified} ({where}): {text}"
        return connected.scrub(text) if connected is not None else text

    try:
        target = parse_target(info)
        connected = _engine(target)
        seen.start(connected.engine.url, table=target.table, schema=target.schema)
        try:
            while True:
                attempts += 1
                _set_attempts(store, receipt, attempts)
                try:
                    applied = _attempt(
                        connected.engine, target, info, new, load_version, files, folder, rows_per_batch, full
                    )
                    break
                except Exception as exc:
                    if not is_transient(exc) or attempts > policy.retries:
                        raise
                    delay = policy.delay(attempts)
                    log.warning(
                        "database delivery of grant %d (version %d): attempt %d failed (%s); retrying in %.1f s",
                        info.id,
                        number,
                        attempts,
                        failure(exc),
                        delay,
                    )
                    _sleep(delay)
        finally:
            connected.engine.dispose()
    except Exception as exc:
        tried = list(files.values())[-1] if files else None
        with store.session() as s:
            row = s.get(Delivery, receipt)
            assert row is not None
            row.outcome = "failed"
            row.attempts = attempts
            row.error = failure(exc)
            if tried is not None:
                row.kind, row.base_version = tried.kind, tried.base_version
            row.finished_at = utcnow()
            row.latency_ms = (time.perf_counter() - t0) * 1000
            refund_use(s, info.id)
            s.flush()
            failed(s, row, target=target.qualified if target else None)
            answer = {**receipt_dict(row), "target": target.qualified if target else None}
        log.warning("database delivery of grant %d (version %d) failed for good: %s", info.id, number, answer["error"])
        seen.fail(answer["error"], exc)
        if not isinstance(exc, (GovdataError, sa_exc.SQLAlchemyError, OSError, pa.ArrowException)):
            raise
        return {**answer, "already_present": False, "retryable": is_transient(exc)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    with store.session() as s:
        row = s.get(Delivery, receipt)
        assert row is not None
        row.kind, row.base_version = applied.kind, applied.base_version
        if not applied.already:  # a version already there: nothing written, no rows
            row.rows, row.inserted, row.updated, row.deleted = (
                applied.rows,
                applied.inserted,
                applied.updated,
                applied.deleted,
            )
        row.sha256, row.outcome, row.attempts = applied.sha256, "succeeded", attempts
        row.format = "parquet"
        row.finished_at = utcnow()
        row.latency_ms = (time.perf_counter() - t0) * 1000
        if applied.already:
            refund_use(s, info.id)
        s.flush()
        new_version = mark_delivered(s, info.id, number)
        succeeded(s, row, new_version=new_version, target=target.qualified, already_present=applied.already)
        answer = receipt_dict(row)
    log.info(
        "database delivery of grant %d (version %d, %s) into %s: %d rows in %d attempt(s)%s",
        info.id,
        number,
        applied.kind,
        target.qualified,
        applied.rows,
        attempts,
        " (already there)" if applied.already else "",
    )
    answer = {**answer, "target": target.qualified, "already_present": applied.already, "retryable": None}
    seen.complete(answer)
    return answer


def due_grants(store: Any, now: dt.datetime, *, entry: str | None = None) -> list[int]:
    """Active database grants whose resource (``entry``, or any) has a version newer than the last one delivered to them."""
    with store.session() as s:
        latest = (
            sa.select(Version.entry_id, sa.func.max(Version.number).label("number"))
            .group_by(Version.entry_id)
            .subquery()
        )
        return list(
            s.scalars(
                sa.select(Grant.id)
                .join(latest, latest.c.entry_id == Grant.entry_id)
                .where(
                    Grant.delivery_method == "database",
                    Grant.revoked_at.is_(None),
                    Grant.expires_at > now,
                    sa.or_(Grant.max_uses.is_(None), Grant.uses < Grant.max_uses),
                    sa.or_(Grant.last_version.is_(None), Grant.last_version < latest.c.number),
                    sa.true() if entry is None else Grant.entry_id == entry,
                )
                .order_by(Grant.id)
            )
        )


def deliver_due(
    store: Any,
    *,
    now: dt.datetime | None = None,
    policy: RetryPolicy | None = None,
    actor: str = SYSTEM_ACTOR,
    lineage_home: Path | None = None,
) -> list[dict[str, Any]]:
    """Deliver the latest version to every active database grant that is behind; one receipt each.

    A grant refused at the start (it changed state meanwhile) is logged and skipped; a failed
    delivery is in its receipt, and the others go on.
    """
    now = now or utcnow()
    policy = policy or RetryPolicy.from_env()
    receipts = []
    for grant_id in due_grants(store, now):
        try:
            receipts.append(
                deliver_to_database(store, grant_id, actor=actor, now=now, policy=policy, lineage_home=lineage_home)
            )
        except GovdataError as exc:
            log.warning("due delivery of grant %d skipped: %s", grant_id, exc.message)
    return receipts
