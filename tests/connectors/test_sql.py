"""The sql connector on SQLite: types, ordering, increments, URLs and secrets, errors."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from connectors import make_connector
from connectors.base import ROW_COLUMN, CollectResult
from connectors.sql import _column_array
from pipelines.errors import SourceError, SpecError, TransientError

metadata = sa.MetaData()
people = sa.Table(
    "people",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50)),
    sa.Column("amount", sa.Numeric(10, 2)),
    sa.Column("born", sa.Date),
    sa.Column("updated_at", sa.DateTime),
    sa.Column("active", sa.Boolean),
)


def row(i: int, name: str | None, updated: dt.datetime | None, **extra: Any) -> dict[str, Any]:
    return {
        "id": i,
        "name": name,
        "amount": decimal.Decimal(i) * decimal.Decimal("1.25"),
        "born": dt.date(1990, 1, i),
        "updated_at": updated,
        "active": i % 2 == 0,
        **extra,
    }


@pytest.fixture
def db(tmp_path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            people.insert(),
            [
                row(3, "王五", dt.datetime(2023, 5, 3, 9, 0)),
                row(1, "张三", dt.datetime(2023, 5, 1, 8, 30)),
                row(2, None, dt.datetime(2023, 5, 2, 8, 30)),
            ],
        )
    return engine


def collect(
    tmp_path: Path, since: str | None = None, env: dict[str, str] | None = None, **options: Any
) -> CollectResult:
    options.setdefault("url", "sqlite:///app.db")
    landing = tmp_path / "landing"
    landing.mkdir(exist_ok=True)
    for old in landing.iterdir():
        old.unlink()
    connector = make_connector("sql", options, base_dir=tmp_path, env=env or {})
    return connector.collect(landing, since=since)


def data(result: CollectResult) -> list[dict[str, Any]]:
    return pq.read_table(result.data_path).to_pylist()


WATERMARK = {"column": "updated_at", "type": "timestamp"}


# --- full loads ----------------------------------------------------------------------------------


def test_table_keeps_types_and_orders_by_primary_key(tmp_path: Path, db: sa.Engine) -> None:
    result = collect(tmp_path, table="people")
    assert result.columns == ["id", "name", "amount", "born", "updated_at", "active"]
    table = pq.read_table(result.data_path)
    assert table.schema.field(ROW_COLUMN).type == pa.int64()
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("amount").type == pa.decimal128(10, 2)
    assert table.schema.field("born").type == pa.date32()
    assert table.schema.field("updated_at").type == pa.timestamp("us")
    assert table.schema.field("active").type == pa.bool_()
    rows = data(result)
    assert [(r[ROW_COLUMN], r["id"], r["name"]) for r in rows] == [(1, 1, "张三"), (2, 2, None), (3, 3, "王五")]
    assert rows[0]["amount"] == decimal.Decimal("1.25")
    assert result.details["ordered_by"] == ["id"]
    assert result.details["dialect"] == "sqlite"
    assert result.details["table"] == "people"
    assert result.watermark is None
    assert result.source_sha256 == hashlib.sha256(result.data_path.read_bytes()).hexdigest()


def test_query_keeps_its_own_order(tmp_path: Path, db: sa.Engine) -> None:
    result = collect(tmp_path, query="SELECT id, name FROM people ORDER BY id DESC;")
    assert [(r[ROW_COLUMN], r["id"]) for r in data(result)] == [(1, 3), (2, 2), (3, 1)]
    assert result.details["table"] == "query"


def test_batches_with_changing_types_are_unified(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v, note TEXT)")  # v: no declared type
        conn.exec_driver_sql(
            "INSERT INTO t VALUES (1, 1, NULL), (2, 2, NULL), (3, 'drei', 'x'), (4, 4.5, NULL), (5, NULL, 'y')"
        )
    result = collect(tmp_path, table="t", batch_size=2)
    assert result.rows == 5
    assert result.details["parts"] > 1
    table = pq.read_table(result.data_path)
    assert table.schema.field("v").type == pa.string()
    assert table.column("v").to_pylist() == ["1", "2", "drei", "4.5", None]
    assert table.column("note").to_pylist() == [None, None, "x", None, "y"]
    assert table.column(ROW_COLUMN).to_pylist() == [1, 2, 3, 4, 5]


def test_empty_table(tmp_path: Path, db: sa.Engine) -> None:
    with db.begin() as conn:
        conn.execute(people.delete())
    result = collect(tmp_path, table="people")
    assert result.rows == 0
    assert pq.read_table(result.data_path).schema.names == [ROW_COLUMN, *result.columns]


def test_values_arrow_cannot_hold_land_as_text() -> None:
    u = uuid.UUID(int=1)
    assert _column_array([u, None], None).to_pylist() == [u, None]  # Parquet's UUID type
    assert _column_array([{"a": "中"}, None], None).to_pylist() == [json.dumps({"a": "中"}, ensure_ascii=False), None]
    assert _column_array([1, "x"], pa.int64()).to_pylist() == ["1", "x"]
    assert _column_array([decimal.Decimal("1.5"), decimal.Decimal("2.25")], None).type == pa.decimal128(3, 2)


# --- increments ----------------------------------------------------------------------------------


def test_incremental_collect(tmp_path: Path, db: sa.Engine) -> None:
    full = collect(tmp_path, table="people", watermark=WATERMARK)
    assert full.rows == 3
    assert full.watermark == "2023-05-03T09:00:00"
    assert full.details["ordered_by"] == ["updated_at", "id"]
    with db.begin() as conn:
        conn.execute(
            people.insert(), [row(4, "赵六", dt.datetime(2023, 5, 4)), row(5, "钱七", dt.datetime(2023, 5, 5))]
        )
        conn.execute(people.update().where(people.c.id == 1).values(updated_at=dt.datetime(2023, 5, 6), name="张三丰"))
    delta = collect(tmp_path, since=full.watermark, table="people", watermark=WATERMARK)
    assert [(r[ROW_COLUMN], r["id"], r["name"]) for r in data(delta)] == [
        (1, 4, "赵六"),
        (2, 5, "钱七"),
        (3, 1, "张三丰"),
    ]
    assert delta.watermark == "2023-05-06T00:00:00"
    assert delta.details["watermark"]["since"] == full.watermark
    nothing = collect(tmp_path, since=delta.watermark, table="people", watermark=WATERMARK)
    assert nothing.rows == 0
    assert nothing.watermark == delta.watermark


def test_incremental_query_and_integer_watermark(tmp_path: Path, db: sa.Engine) -> None:
    query = "SELECT id, name FROM people WHERE name IS NOT NULL"
    result = collect(tmp_path, since="1", query=query, watermark={"column": "id", "type": "integer"})
    assert [r["id"] for r in data(result)] == [3]
    assert result.watermark == "3"


def test_since_is_a_bound_parameter(tmp_path: Path, db: sa.Engine) -> None:
    hostile = "x' OR '1'='1"
    result = collect(tmp_path, since=hostile, table="people", watermark={"column": "name", "type": "string"})
    # compared as a value: the Chinese names sort after it; injected, the NULL name would match too
    assert [r["name"] for r in data(result)] == ["张三", "王五"]
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(people)).scalar() == 3


def test_bad_since_value(tmp_path: Path, db: sa.Engine) -> None:
    with pytest.raises(SourceError, match="not a valid integer"):
        collect(tmp_path, since="2023-05-01", table="people", watermark={"column": "id", "type": "integer"})


def test_null_watermarks_are_reported(tmp_path: Path, db: sa.Engine) -> None:
    with db.begin() as conn:
        conn.execute(people.insert(), [row(9, "无时间", None)])
    result = collect(tmp_path, table="people", watermark=WATERMARK)
    assert result.rows == 4
    assert result.details["watermark"]["null_rows"] == 1


# --- where the data is -----------------------------------------------------------------------------


def test_url_env_and_relative_sqlite_path(tmp_path: Path, db: sa.Engine) -> None:
    result = collect(tmp_path, url=None, url_env="APP_DB", env={"APP_DB": "sqlite:///app.db"}, table="people")
    assert result.rows == 3


@pytest.mark.parametrize(
    "conn",
    [
        "sqlite:///app.db",
        json.dumps({"conn_type": "sqlite", "host": None, "schema": "app.db"}),
    ],
)
def test_airflow_connection(tmp_path: Path, db: sa.Engine, conn: str) -> None:
    result = collect(tmp_path, url=None, conn_id="app_db", env={"AIRFLOW_CONN_APP_DB": conn}, table="people")
    assert result.rows == 3


def test_schema_option(tmp_path: Path, db: sa.Engine) -> None:
    assert collect(tmp_path, table="people", schema="main").rows == 3


def test_password_in_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        make_connector("sql", {"url": "postgresql://u:pa55word@db/x", "table": "t"}, base_dir=tmp_path, env={})
    assert "url_env" in str(err.value)
    assert "pa55word" not in str(err.value)
    with pytest.raises(SpecError, match="password"):
        make_connector("sql", {"url": "mysql://u@db/x?password=pa55word", "table": "t"}, base_dir=tmp_path, env={})


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"table": "t"}, "exactly one of url, url_env or conn_id"),
        ({"url": "sqlite:///a.db", "url_env": "X", "table": "t"}, "exactly one of url, url_env or conn_id"),
        ({"url": "sqlite:///a.db"}, "exactly one of table or query"),
        ({"url": "sqlite:///a.db", "table": "t", "query": "select 1"}, "exactly one of table or query"),
        ({"url": "sqlite:///a.db", "table": "t", "watermark": {"column": "c", "type": "date"}}, "watermark.type"),
        ({"url": "sqlite:///a.db", "table": "t", "watermark": {"colum": "c"}}, "unknown option 'watermark.colum'"),
        ({"url": "sqlite:///a.db", "table": "t", "batch_size": 0}, "batch_size"),
        ({"url": "not a url", "table": "t"}, "not a valid SQLAlchemy URL"),
    ],
)
def test_bad_options(tmp_path: Path, options: dict[str, Any], problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        make_connector("sql", options, base_dir=tmp_path, env={})


def test_missing_environment_variables(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="APP_DB"):
        collect(tmp_path, url=None, url_env="APP_DB", table="t")
    with pytest.raises(SpecError, match="AIRFLOW_CONN_MISSING"):
        collect(tmp_path, url=None, conn_id="missing", table="t")


def test_describe_hides_the_password(tmp_path: Path) -> None:
    env = {"APP_DB": "postgresql://govdata:pa55word@db.example:5432/app"}
    connector = make_connector("sql", {"url_env": "APP_DB", "table": "people"}, base_dir=tmp_path, env=env)
    assert "pa55word" not in connector.describe()
    assert "db.example" in connector.describe()
    unset = make_connector("sql", {"url_env": "APP_DB", "table": "people"}, base_dir=tmp_path, env={})
    assert unset.describe() == "sql table people on $APP_DB"


# --- errors --------------------------------------------------------------------------------------


def test_unreachable_server_is_transient_and_hides_the_password(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"APP_DB": f"postgresql://govdata:pa55word@127.0.0.1:{port}/app"}
    with pytest.raises(TransientError) as err:
        collect(tmp_path, url=None, url_env="APP_DB", env=env, table="people")
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "pa55word" not in str(err.value)


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="file not found"):
        collect(tmp_path, url="sqlite:///nope.db", table="people")
    assert not (tmp_path / "nope.db").exists()


def test_missing_table_lists_the_tables(tmp_path: Path, db: sa.Engine) -> None:
    with pytest.raises(SourceError) as err:
        collect(tmp_path, table="peeple")
    assert "'peeple'" in str(err.value)
    assert "available: people" in str(err.value)


def test_missing_watermark_column(tmp_path: Path, db: sa.Engine) -> None:
    with pytest.raises(SourceError, match="watermark column 'changed' is not in the table; its columns are: id"):
        collect(tmp_path, table="people", watermark={"column": "changed"})
    with pytest.raises(SourceError, match="not in the query's result"):
        collect(tmp_path, query="SELECT id FROM people", watermark={"column": "changed"})


def test_bad_query(tmp_path: Path, db: sa.Engine) -> None:
    with pytest.raises(SourceError, match="refused the read"):
        collect(tmp_path, query="SELECT nope FROM people")


def test_repeated_column_names(tmp_path: Path, db: sa.Engine) -> None:
    with pytest.raises(SourceError, match="repeated column names: id"):
        collect(tmp_path, query="SELECT p.id, q.id FROM people p JOIN people q ON p.id = q.id")


@pytest.mark.parametrize("how", ["table", "query"])
def test_text_timestamps_with_t_separator_on_the_same_day(tmp_path: Path, how: str) -> None:
    """SQLite keeps timestamps as text: the second run must not re-fetch earlier rows of the same day."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE stops (id TEXT PRIMARY KEY, updated_at TEXT)"))
        conn.execute(sa.text("INSERT INTO stops VALUES ('a', '2026-11-22T09:00:00'), ('b', '2026-11-22T18:26:51')"))
    source = {"table": "stops"} if how == "table" else {"query": "SELECT id, updated_at FROM stops"}
    first = collect(tmp_path, watermark={"column": "updated_at", "type": "timestamp"}, **source)
    assert (first.rows, first.watermark) == (2, "2026-11-22T18:26:51")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO stops VALUES ('c', '2026-11-22T19:00:00')"))
    second = collect(tmp_path, since=first.watermark, watermark={"column": "updated_at", "type": "timestamp"}, **source)
    assert [r["id"] for r in data(second)] == ["c"]
