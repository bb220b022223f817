"""Incremental collection from a real PostgreSQL and MariaDB: full load, changes since the watermark, nothing new."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from connectors import make_connector
from connectors.base import ROW_COLUMN, CollectResult

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 3, 1, 9, 0, 0, 123456)


def ddl(dialect: str, table: str) -> str:
    if dialect == "postgresql":
        return (
            f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(50), "
            "updated_at TIMESTAMP WITH TIME ZONE NOT NULL)"
        )
    return (
        f"CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(50), updated_at DATETIME(6) NOT NULL) "
        "DEFAULT CHARSET=utf8mb4"
    )


def stamp(dialect: str, minutes: int) -> dt.datetime:
    value = T0 + dt.timedelta(minutes=minutes)
    return value.replace(tzinfo=dt.UTC) if dialect == "postgresql" else value


@pytest.fixture(params=["postgres", "mariadb"])
def database(request: pytest.FixtureRequest, unique_name: str) -> Iterator[tuple[sa.Engine, str]]:
    url = request.getfixturevalue("postgres_url" if request.param == "postgres" else "mariadb_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(ddl(engine.dialect.name, unique_name))
    try:
        yield engine, unique_name
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {unique_name}")
        engine.dispose()


def insert(engine: sa.Engine, table: str, rows: list[tuple[int, str, int]]) -> None:
    d = engine.dialect.name
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"INSERT INTO {table} (id, name, updated_at) VALUES (:id, :name, :ts)"),
            [{"id": i, "name": n, "ts": stamp(d, m)} for i, n, m in rows],
        )


def collect(engine: sa.Engine, tmp_path: Path, since: str | None, **options: Any) -> CollectResult:
    env = {"GOVDATA_IT_URL": engine.url.render_as_string(hide_password=False)}
    connector = make_connector("sql", {"url_env": "GOVDATA_IT_URL", **options}, base_dir=tmp_path, env=env)
    landing = tmp_path / f"landing-{since or 'full'}".replace(":", "_")
    landing.mkdir()
    return connector.collect(landing, since=since)


def rows(result: CollectResult) -> list[tuple[int, int, str]]:
    return [(r[ROW_COLUMN], r["id"], r["name"]) for r in pq.read_table(result.data_path).to_pylist()]


def run_increments(engine: sa.Engine, name: str, tmp_path: Path, **options: Any) -> None:
    d = engine.dialect.name
    insert(engine, name, [(1, "张三", 0), (2, "李四", 1), (3, "王𠮷", 2)])

    full = collect(engine, tmp_path, None, **options)
    assert rows(full) == [(1, 1, "张三"), (2, 2, "李四"), (3, 3, "王𠮷")]
    assert full.watermark is not None
    assert dt.datetime.fromisoformat(full.watermark) == stamp(d, 2)
    assert full.details["dialect"] == d

    insert(engine, name, [(4, "赵六", 10), (5, "钱七", 11)])
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {name} SET name = :name, updated_at = :ts WHERE id = 1"),
            {"name": "张三丰", "ts": stamp(d, 12)},
        )

    delta = collect(engine, tmp_path, full.watermark, **options)
    assert rows(delta) == [(1, 4, "赵六"), (2, 5, "钱七"), (3, 1, "张三丰")]
    assert delta.watermark is not None
    assert dt.datetime.fromisoformat(delta.watermark) == stamp(d, 12)
    assert delta.details["watermark"]["since"] == full.watermark

    nothing = collect(engine, tmp_path, delta.watermark, **options)
    assert nothing.rows == 0
    assert nothing.watermark == delta.watermark
    assert pq.read_table(nothing.data_path).schema.names[0] == ROW_COLUMN


def test_table_watermark(database: tuple[sa.Engine, str], tmp_path: Path) -> None:
    engine, table = database
    run_increments(engine, table, tmp_path, table=table, watermark={"column": "updated_at", "type": "timestamp"})


def test_query_watermark(database: tuple[sa.Engine, str], tmp_path: Path) -> None:
    engine, table = database
    query = f"SELECT id, name, updated_at FROM {table} WHERE name <> '测试'"
    run_increments(engine, table, tmp_path, query=query, watermark={"column": "updated_at", "type": "timestamp"})


def test_timestamp_types_are_kept(database: tuple[sa.Engine, str], tmp_path: Path) -> None:
    engine, table = database
    insert(engine, table, [(1, "张三", 0)])
    result = collect(engine, tmp_path, None, table=table)
    field = pq.read_table(result.data_path).schema.field("updated_at")
    if engine.dialect.name == "postgresql":
        assert str(field.type) == "timestamp[us, tz=UTC]"
    else:
        assert str(field.type) == "timestamp[us]"
    assert result.details["ordered_by"] == ["id"]
