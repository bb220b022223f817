"""Database delivery (库表交换) over HTTP and the CLI: into SQLite always, PostgreSQL and MariaDB as integration tests.

Each scenario runs against every backend: the first delivery writes the full version, the next one
only the changes (inserts, updates, deletes by the key), a repeated one nothing; the target table
is compared with rows computed in Python (value-by-value masking and a row-by-row diff, the
references of this folder's conftest), never with the SQL under test. PostgreSQL and MariaDB cases
write into a schema (MariaDB: a database) of their own, dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from catalog.models import AuditEvent
from exchange import delivery_db
from exchange.models import Delivery, Grant, Notification
from pipelines.cli import app as cli
from tests.exchange.conftest_exchange import HRSS, MARKET, Platform, publish
from tests.exchange.delivery.conftest import NOW, make_grant, reference_changes, reference_rows, second_version

V1 = "/exchange/v1"
URL_ENV = "SUBSCRIBER_DB_URL"
SECRET = "Sup3rSecretPw"


# --- the subscriber's database ------------------------------------------------------------------------------


@dataclass
class Subscriber:
    """The receiving database: its URL (in $SUBSCRIBER_DB_URL), a schema of its own, and ways to read it."""

    backend: str
    url: str
    schema: str | None
    engine: sa.Engine

    def target(self, table: str) -> dict[str, Any]:
        return {"url_env": URL_ENV, "table": table, **({"schema": self.schema} if self.schema else {})}

    def qualified(self, table: str) -> str:
        return f"{self.schema}.{table}" if self.schema else table

    def has_table(self, table: str) -> bool:
        with self.engine.connect() as conn:
            return sa.inspect(conn).has_table(table, schema=self.schema)

    def table(self, conn: sa.Connection, name: str) -> sa.Table:
        return sa.Table(name, sa.MetaData(schema=self.schema), autoload_with=conn)

    def rows(self, name: str, key: str = "resident_id") -> dict[tuple[Any, ...], dict[str, Any]]:
        """The table's rows by key (as the references are); fails on a duplicate key."""
        with self.engine.connect() as conn:
            rows = [
                {c: float(v) if isinstance(v, Decimal) else v for c, v in r.items()}  # MariaDB reflects DOUBLE so
                for r in conn.execute(select(self.table(conn, name))).mappings()
            ]
        by_key = {(r[key],): r for r in rows}
        assert len(by_key) == len(rows), "duplicate keys in the target table"
        return by_key

    def book(self, name: str) -> list[dict[str, Any]]:
        """The bookkeeping rows of table ``name``, by version."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(delivery_db.BOOKKEEPING_TABLE, schema=self.schema):
                return []
            book = self.table(conn, delivery_db.BOOKKEEPING_TABLE)
            query = select(book).where(book.c.table_name == self.qualified(name)).order_by(book.c.version)
            return [dict(r) for r in conn.execute(query).mappings()]

    def tables(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names(schema=self.schema))


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.integration),
        pytest.param("mariadb", marks=pytest.mark.integration),
    ]
)
def subscriber(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Subscriber]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'subscriber.db'}"
        engine = sa.create_engine(url)
        monkeypatch.setenv(URL_ENV, url)
        yield Subscriber("sqlite", url, None, engine)
        engine.dispose()
        return
    url = request.getfixturevalue("postgres_url" if request.param == "postgres" else "mariadb_url")
    schema = f"gd_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url)
    create, drop = (
        (f"CREATE SCHEMA {schema}", f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        if request.param == "postgres"
        else (f"CREATE DATABASE {schema} CHARACTER SET utf8mb4", f"DROP DATABASE IF EXISTS {schema}")
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(create)
    monkeypatch.setenv(URL_ENV, url)
    try:
        yield Subscriber(request.param, url, schema, engine)
    finally:
        engine.dispose()
        with engine.begin() as conn:
            conn.exec_driver_sql(drop)
        engine.dispose()


# --- helpers -------------------------------------------------------------------------------------------------


def deliver(client: TestClient, platform: Platform, grant: int, user: str = "market_staff", **body: Any) -> Any:
    return client.post(f"{V1}/grants/{grant}/deliver", json=body or None, headers=platform.auth(user))


def receipts(platform: Platform, grant: int) -> list[Delivery]:
    with platform.store.session() as s:
        return list(s.scalars(select(Delivery).where(Delivery.grant_id == grant).order_by(Delivery.id)))


def grant_row(platform: Platform, grant: int) -> Grant:
    with platform.store.session() as s:
        row = s.get(Grant, grant)
        assert row is not None
        return row


def db_grant(platform: Platform, subscriber: Subscriber, table: str = "insured", **kwargs: Any) -> int:
    grant, _ = make_grant(platform, method="database", target=subscriber.target(table), **kwargs)
    return grant


def everything_recorded(platform: Platform) -> str:
    """Every receipt, audit entry and notification as text (to look for leaked secrets)."""
    with platform.store.session() as s:
        parts = [repr((d.error, d.sha256)) for d in s.scalars(select(Delivery))]
        parts += [repr(e.detail) for e in s.scalars(select(AuditEvent))]
        parts += [repr(n.payload) for n in s.scalars(select(Notification))]
    return "\n".join(parts)


# --- full, changes, nothing ----------------------------------------------------------------------------------


def test_full_then_only_the_changes_then_nothing(
    client: TestClient, platform: Platform, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(delivery_db.BATCH_ENV, "16")  # many batches per version
    grant = db_grant(platform, subscriber)
    v1 = platform.tables[HRSS]

    first = deliver(client, platform, grant)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["outcome"], body["kind"], body["version"], body["base_version"]) == ("succeeded", "full", 1, None)
    assert body["rows"] == v1.num_rows and body["attempts"] == 1 and body["already_present"] is False
    assert body["target"] == subscriber.qualified("insured") and body["mode"] == "database"
    assert subscriber.rows("insured") == reference_rows(platform, v1)
    [book] = subscriber.book("insured")
    assert (book["version"], book["kind"], book["base_version"], book["row_count"]) == (1, "full", None, v1.num_rows)
    assert book["sha256"] == body["sha256"] and book["grant_id"] == grant
    with subscriber.engine.connect() as conn:
        pk = sa.inspect(conn).get_pk_constraint("insured", schema=subscriber.schema)["constrained_columns"]
    assert pk == ["resident_id"]

    v2, what = second_version(v1)
    assert publish(platform, HRSS, v2) == 2
    second = deliver(client, platform, grant)
    assert second.status_code == 200, second.text
    body = second.json()
    expected = reference_changes(reference_rows(platform, v1), reference_rows(platform, v2))
    counts = {op: sum(1 for o, _ in expected.values() if o == op) for op in ("insert", "update", "delete")}
    assert counts == {"insert": len(what["inserted"]), "update": len(what["visible"]), "delete": len(what["deleted"])}
    assert (body["kind"], body["version"], body["base_version"]) == ("changes", 2, 1)
    assert (body["inserted"], body["updated"], body["deleted"]) == (
        counts["insert"],
        counts["update"],
        counts["delete"],
    )
    assert body["rows"] == len(expected)
    assert subscriber.rows("insured") == reference_rows(platform, v2)
    books = subscriber.book("insured")
    assert [(b["version"], b["kind"], b["base_version"], b["row_count"]) for b in books] == [
        (1, "full", None, v1.num_rows),
        (2, "changes", 1, len(expected)),
    ]
    assert books[1]["sha256"] == body["sha256"]
    assert grant_row(platform, grant).last_version == 2 and grant_row(platform, grant).uses == 2

    # The same version again: nothing written, the bookkeeping says it is there, the use given back.
    again = deliver(client, platform, grant)
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["already_present"] is True and body["version"] == 2 and body["rows"] == 0
    assert body["sha256"] == books[1]["sha256"]
    assert subscriber.book("insured") == books
    assert subscriber.rows("insured") == reference_rows(platform, v2)
    assert grant_row(platform, grant).uses == 2

    listing = client.get(
        f"{V1}/deliveries", params={"grant": grant, "mode": "database"}, headers=platform.auth("market_staff")
    )
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert [(r["version"], r["kind"], r["rows"], r["outcome"]) for r in reversed(items)] == [
        (1, "full", v1.num_rows, "succeeded"),
        (2, "changes", len(expected), "succeeded"),
        (2, "changes", 0, "succeeded"),
    ]
    assert [r["sha256"] for r in reversed(items)] == [books[0]["sha256"], books[1]["sha256"], books[1]["sha256"]]
    assert all(r["finished_at"] and r["latency_ms"] is not None for r in items)
    assert (
        client.get(f"{V1}/deliveries", params={"grant": grant}, headers=platform.auth("hrss_reviewer")).json()["total"]
        == 3
    )
    with platform.store.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "delivery.database")).all()
    assert [e.detail["target"] for e in events] == [subscriber.qualified("insured")] * 3
    assert [e.detail["already_present"] for e in events] == [False, False, True]


def test_two_deliveries_of_one_version_at_once_write_it_once(platform: Platform, subscriber: Subscriber) -> None:
    grant = db_grant(platform, subscriber)

    def both() -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        errors: list[Exception] = []

        def run() -> None:
            try:
                answers.append(delivery_db.deliver_to_database(platform.store, grant, actor="market_staff"))
            except Exception as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == [] and len(answers) == 2
        assert {a["outcome"] for a in answers} == {"succeeded"}
        assert sorted(a["already_present"] for a in answers) == [False, True]
        return answers

    both()  # the first delivery: the table is created by one of them
    assert subscriber.rows("insured") == reference_rows(platform, platform.tables[HRSS])
    assert [b["version"] for b in subscriber.book("insured")] == [1]
    v2, _ = second_version(platform.tables[HRSS])
    publish(platform, HRSS, v2)
    assert {a["kind"] for a in both()} == {"changes"}
    assert subscriber.rows("insured") == reference_rows(platform, v2)
    assert [b["version"] for b in subscriber.book("insured")] == [1, 2]
    assert grant_row(platform, grant).uses == 2  # the second one's use given back, each time


def test_a_dropped_table_is_delivered_again_in_full(
    client: TestClient, platform: Platform, subscriber: Subscriber
) -> None:
    grant = db_grant(platform, subscriber)
    assert deliver(client, platform, grant).status_code == 200
    with subscriber.engine.begin() as conn:
        subscriber.table(conn, "insured").drop(conn)
    again = deliver(client, platform, grant)
    assert again.status_code == 200, again.text
    assert again.json()["already_present"] is False and again.json()["kind"] == "full"
    assert subscriber.rows("insured") == reference_rows(platform, platform.tables[HRSS])
    assert [b["version"] for b in subscriber.book("insured")] == [1]


def test_a_full_re_delivery_replaces_whatever_the_table_holds(
    client: TestClient, platform: Platform, subscriber: Subscriber
) -> None:
    grant = db_grant(platform, subscriber)
    assert deliver(client, platform, grant).status_code == 200
    v2, _ = second_version(platform.tables[HRSS])
    publish(platform, HRSS, v2)
    assert deliver(client, platform, grant).json()["kind"] == "changes"
    with subscriber.engine.begin() as conn:  # the subscriber's copy went astray
        table = subscriber.table(conn, "insured")
        conn.execute(table.delete().where(table.c.gender == "1"))
        conn.execute(table.update().values(name="改过"))
        conn.execute(table.insert().values(resident_id="stray"))
    answer = deliver(client, platform, grant, full=True)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["kind"], body["version"], body["already_present"], body["rows"]) == ("full", 2, False, v2.num_rows)
    assert subscriber.rows("insured") == reference_rows(platform, v2)
    assert [(b["version"], b["kind"]) for b in subscriber.book("insured")] == [(1, "full"), (2, "full")]


def test_an_older_version_does_not_take_the_table_back(
    client: TestClient, platform: Platform, subscriber: Subscriber
) -> None:
    grant = db_grant(platform, subscriber)
    v2, _ = second_version(platform.tables[HRSS])
    publish(platform, HRSS, v2)
    assert deliver(client, platform, grant).json()["version"] == 2
    old = deliver(client, platform, grant, version=1)
    assert old.status_code == 422 and "would take it back" in old.json()["error"]
    assert subscriber.rows("insured") == reference_rows(platform, v2)
    assert [b["version"] for b in subscriber.book("insured")] == [2]
    assert receipts(platform, grant)[-1].outcome == "failed"


def test_reserved_and_mixed_case_names_are_quoted(
    client: TestClient, platform: Platform, subscriber: Subscriber
) -> None:
    for table in ("select", "Mixed_Case"):
        grant = db_grant(platform, subscriber, table=table, items=["resident_id", "gender"])
        answer = deliver(client, platform, grant)
        assert answer.status_code == 200, answer.text
        expected = reference_rows(platform, platform.tables[HRSS], items=["resident_id", "gender"])
        assert subscriber.rows(table) == expected
    assert {"select", "Mixed_Case"} <= set(subscriber.tables())


def _utc_naive(rows: dict[tuple[Any, ...], dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Time stamps as naive UTC (MySQL and SQLite store no zone; PostgreSQL answers in the session's)."""

    def plain(v: Any) -> Any:
        if isinstance(v, dt.datetime) and v.tzinfo is not None:
            return v.astimezone(dt.UTC).replace(tzinfo=None)
        return v

    return {k: {c: plain(v) for c, v in r.items()} for k, r in rows.items()}


def test_time_stamps_numbers_and_long_text_of_another_dataset(
    client: TestClient, platform: Platform, subscriber: Subscriber
) -> None:
    grant, _ = make_grant(
        platform, entry=MARKET, subscriber="hrss", method="database", target=subscriber.target("enterprises")
    )
    v1 = platform.tables[MARKET]
    assert deliver(client, platform, grant, user="hrss_staff").status_code == 200
    expected = reference_rows(platform, v1, entry=MARKET, subscriber="hrss")
    assert _utc_naive(subscriber.rows("enterprises", key="uscc")) == _utc_naive(expected)

    rows = v1.to_pylist()
    for r in rows[:10]:
        r["updated_at"] = r["updated_at"] + dt.timedelta(days=1, microseconds=123456)
        r["registered_capital"] = r["registered_capital"] + 0.25
        r["business_scope"] = "一般项目：" + "技术服务、" * 300  # long text
    v2 = pa.Table.from_pylist([*rows[3:], {**rows[0], "uscc": "91310000MA1FL0000X"}], schema=v1.schema)
    publish(platform, MARKET, v2)
    answer = deliver(client, platform, grant, user="hrss_staff")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["inserted"], answer.json()["updated"], answer.json()["deleted"]) == (1, 7, 3)
    expected = reference_rows(platform, v2, entry=MARKET, subscriber="hrss")
    assert _utc_naive(subscriber.rows("enterprises", key="uscc")) == _utc_naive(expected)


# --- masking ----------------------------------------------------------------------------------------------------


def test_masking_follows_the_grant(client: TestClient, platform: Platform, subscriber: Subscriber) -> None:
    items = ["resident_id", "name", "gender", "mobile", "contribution_base"]
    masking = {"mobile": "redact"}
    grant = db_grant(platform, subscriber, items=items, masking=masking)
    assert deliver(client, platform, grant).status_code == 200
    got = subscriber.rows("insured")
    v1 = platform.tables[HRSS]
    assert got == reference_rows(platform, v1, items=items, masking=masking)
    assert set(next(iter(got.values()))) == set(items)  # items not granted are not there at all
    assert {r["mobile"] for r in got.values()} == {"***"}
    assert all(len(r["name"]) >= 2 and r["name"].endswith("*") for r in got.values())
    assert all(len(k[0]) == 64 for k in got)

    # Hashed keys: equal within the subscriber (it joins its tables), unrelated for another one.
    other_items = ["resident_id", "insured_status"]
    mine_too = db_grant(platform, subscriber, table="status", items=other_items)
    theirs, _ = make_grant(
        platform, method="database", target=subscriber.target("theirs"), items=other_items, subscriber="transport"
    )
    assert deliver(client, platform, mine_too).status_code == 200
    assert deliver(client, platform, theirs, user="transport_staff").status_code == 200
    assert set(subscriber.rows("status")) == set(got)
    assert not set(subscriber.rows("theirs")) & set(got)

    clear = {str(r[c]) for r in v1.to_pylist() for c in ("resident_id", "name", "mobile")}
    with subscriber.engine.connect() as conn:
        stored = {
            str(v)
            for name in ("insured", "status", "theirs", delivery_db.BOOKKEEPING_TABLE)
            for row in conn.execute(select(subscriber.table(conn, name))).all()
            for v in row
        }
    assert not stored & clear


# --- grants that deliver nothing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "word"),
    [
        (
            {"revoked_at": NOW - dt.timedelta(hours=1), "revoked_by": "hrss_reviewer", "revoke_reason": "用途变更"},
            "revoked",
        ),
        ({"expires_at": NOW - dt.timedelta(seconds=1)}, "expired"),
        ({"max_uses": 2, "uses": 2}, "exhausted"),
    ],
)
def test_revoked_expired_and_exhausted_grants_write_nothing(
    client: TestClient, platform: Platform, subscriber: Subscriber, change: dict[str, Any], word: str
) -> None:
    grant = db_grant(platform, subscriber, max_uses=2)
    with platform.store.session() as s:
        row = s.get(Grant, grant)
        assert row is not None
        for name, value in change.items():
            setattr(row, name, value)
    answer = deliver(client, platform, grant)
    assert answer.status_code == 409 and word in answer.json()["error"]
    assert receipts(platform, grant) == []
    assert subscriber.tables() == []
    assert delivery_db.deliver_due(platform.store) == []  # not due either


def test_the_last_use_delivers_and_then_the_grant_is_exhausted(
    client: TestClient, platform: Platform, subscriber: Subscriber
) -> None:
    grant = db_grant(platform, subscriber, max_uses=1)
    v1 = platform.tables[HRSS]
    assert deliver(client, platform, grant).status_code == 200
    publish(platform, HRSS, second_version(v1)[0])
    answer = deliver(client, platform, grant)
    assert answer.status_code == 409 and "exhausted" in answer.json()["error"]
    assert [b["version"] for b in subscriber.book("insured")] == [1]
    assert subscriber.rows("insured") == reference_rows(platform, v1)


# --- who may deliver, and hostile requests -----------------------------------------------------------------


@pytest.mark.parametrize("user", ["transport_staff", "hrss_reviewer", "hrss_staff", "auditor"])
def test_other_departments_cannot_deliver(client: TestClient, platform: Platform, user: str) -> None:
    grant, _ = make_grant(platform, method="database", target={"url_env": URL_ENV, "table": "t"})
    answer = deliver(client, platform, grant, user=user)
    assert answer.status_code in (403, 404), answer.text
    assert receipts(platform, grant) == [] and grant_row(platform, grant).uses == 0


def test_the_city_admin_may_run_a_delivery(client: TestClient, platform: Platform, subscriber: Subscriber) -> None:
    grant = db_grant(platform, subscriber)
    answer = deliver(client, platform, grant, user="city_admin")
    assert answer.status_code == 200, answer.text
    assert answer.json()["actor"] == "city_admin"


def test_a_grant_for_another_method_is_refused(client: TestClient, platform: Platform) -> None:
    grant, _ = make_grant(platform)
    answer = deliver(client, platform, grant)
    assert answer.status_code == 409 and "file download" in answer.json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"version": 0},
        {"version": "abc"},
        {"version": 2**31},
        {"version": 1.5},
        {"extra": 1},
        {"version": 9},
        {"full": "maybe"},
        {"full": [True]},
    ],
)
def test_hostile_bodies_are_refused(
    client: TestClient, platform: Platform, subscriber: Subscriber, body: dict[str, Any]
) -> None:
    grant = db_grant(platform, subscriber)
    answer = client.post(f"{V1}/grants/{grant}/deliver", json=body, headers=platform.auth("market_staff"))
    assert answer.status_code == 422, answer.text
    assert receipts(platform, grant) == [] and grant_row(platform, grant).uses == 0
    assert subscriber.tables() == []


@pytest.mark.parametrize("path", ["0", "-1", str(2**31), "abc", "99999"])
def test_hostile_grant_ids(client: TestClient, platform: Platform, path: str) -> None:
    answer = client.post(f"{V1}/grants/{path}/deliver", headers=platform.auth("city_admin"))
    assert answer.status_code in (404, 422), answer.text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (delivery_db.RETRIES_ENV, "-1"),
        (delivery_db.RETRIES_ENV, "lots"),
        (delivery_db.RETRIES_ENV, "100"),
        (delivery_db.BACKOFF_ENV, "nan"),
        (delivery_db.BACKOFF_ENV, "-2"),
        (delivery_db.BATCH_ENV, "0"),
        (delivery_db.BATCH_ENV, "1e9"),
    ],
)
def test_bad_retry_and_batch_settings_are_named(
    client: TestClient,
    platform: Platform,
    subscriber: Subscriber,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
) -> None:
    grant = db_grant(platform, subscriber)
    monkeypatch.setenv(name, value)
    answer = deliver(client, platform, grant)
    assert answer.status_code == 422 and name in answer.json()["error"]
    assert receipts(platform, grant) == [] and grant_row(platform, grant).uses == 0


# --- hostile targets -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ({"url_env": URL_ENV, "table": "x; DROP TABLE grants"}, "not a plain SQL name"),
        ({"url_env": URL_ENV, "table": 'x"--'}, "not a plain SQL name"),
        ({"url_env": URL_ENV, "table": "insured\n"}, "not a plain SQL name"),
        ({"url_env": URL_ENV, "table": "x` (a int); DROP DATABASE test; --"}, "not a plain SQL name"),
        ({"url_env": URL_ENV, "table": "1abc"}, "not a plain SQL name"),
        ({"url_env": URL_ENV, "table": "a" * 64}, "not a plain SQL name"),
        ({"url_env": URL_ENV, "table": ""}, "not a plain SQL name"),
        ({"url_env": URL_ENV, "table": ["insured"]}, "not a plain SQL name"),
        ({"url_env": URL_ENV, "table": "govdata_deliveries"}, "cannot be govdata_deliveries"),
        ({"url_env": URL_ENV, "table": "GOVDATA_DELIVERIES"}, "cannot be govdata_deliveries"),
        ({"url_env": URL_ENV, "table": "t", "schema": "public; DROP SCHEMA public"}, "not a plain SQL name"),
        ({"url_env": URL_ENV, "table": "t", "password": SECRET}, "unknown target key"),
        ({"url_env": f"postgresql://bob:{SECRET}@db/x", "table": "t"}, "not an environment variable name"),
        ({"url_env": "GOVDATA_CATALOG_URL", "table": "t"}, "platform's own settings"),
        ({"url_env": "govdata_masking_key", "table": "t"}, "platform's own settings"),
        ({"url_env": URL_ENV}, "not a plain SQL name"),
    ],
)
def test_hostile_target_names_write_nothing(
    client: TestClient, platform: Platform, subscriber: Subscriber, target: dict[str, Any], words: str
) -> None:
    grant, _ = make_grant(platform, method="database", target=target)
    answer = deliver(client, platform, grant)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["error"]
    [receipt] = receipts(platform, grant)
    assert receipt.outcome == "failed" and words in (receipt.error or "")
    assert grant_row(platform, grant).uses == 0
    assert subscriber.tables() == []
    assert SECRET not in answer.text + everything_recorded(platform)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"http://bob:{SECRET}@evil.example/x", "http://, which is not a database"),
        ("file:///etc/passwd", "file://, which is not a database"),
        ("duckdb:///subscriber.duckdb", "duckdb://, which is not a database"),
        (f"oracle+cx_oracle://scott:{SECRET}@db/orcl", "oracle+cx_oracle://, which is not a database"),
        (f"postgresql+nodriver://bob:{SECRET}@db/x", "postgresql+nodriver://, which is not installed"),
        (f"bob:{SECRET}", "does not hold a database URL"),
        (f"postgresql+psycopg://bob:{SECRET}@db:notaport/x", "not hold a valid SQLAlchemy URL"),
        ("", "which is not set"),
    ],
)
def test_urls_of_other_schemes_are_refused_without_leaking(
    client: TestClient,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    url: str,
    words: str,
) -> None:
    monkeypatch.setenv(URL_ENV, url)
    grant, _ = make_grant(platform, method="database", target={"url_env": URL_ENV, "table": "insured"})
    with caplog.at_level(logging.DEBUG):
        answer = deliver(client, platform, grant)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert words in error and f"${URL_ENV}" in error and "insured" in error
    [receipt] = receipts(platform, grant)
    assert receipt.outcome == "failed" and words in (receipt.error or "") and "insured" in (receipt.error or "")
    assert SECRET not in answer.text + everything_recorded(platform) + caplog.text
    assert grant_row(platform, grant).uses == 0


@pytest.mark.parametrize(
    ("url", "where"),
    [
        (f"postgresql+psycopg://alice:{SECRET}@127.0.0.1:1/subscriber", "postgresql 127.0.0.1:1/subscriber"),
        (f"mysql+pymysql://alice:{SECRET}@127.0.0.1:1/subscriber", "mysql 127.0.0.1:1/subscriber"),
    ],
)
def test_an_unreachable_database_is_retried_with_backoff_then_receipted(
    client: TestClient,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    url: str,
    where: str,
) -> None:
    monkeypatch.setenv(URL_ENV, url)
    monkeypatch.setenv(delivery_db.RETRIES_ENV, "2")
    monkeypatch.setenv(delivery_db.BACKOFF_ENV, "0.5")
    delays: list[float] = []
    monkeypatch.setattr(delivery_db, "_sleep", delays.append)  # the clock: record instead of waiting
    grant, _ = make_grant(platform, method="database", target={"url_env": URL_ENV, "table": "insured"})
    with caplog.at_level(logging.DEBUG):
        answer = deliver(client, platform, grant)
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert "after 3 attempt(s)" in error and "insured" in error and where in error
    assert len(delays) == 2 and 0.25 <= delays[0] < 0.75 and 0.5 <= delays[1] < 1.5
    [receipt] = receipts(platform, grant)
    assert (receipt.outcome, receipt.attempts, receipt.version) == ("failed", 3, 1)
    assert where in (receipt.error or "") and "insured" in (receipt.error or "")
    assert SECRET not in answer.text + everything_recorded(platform) + caplog.text
    assert "alice" not in (receipt.error or "")
    assert grant_row(platform, grant).uses == 0 and grant_row(platform, grant).last_version is None
    listed = client.get(
        f"{V1}/deliveries", params={"grant": grant, "outcome": "failed"}, headers=platform.auth("market_staff")
    ).json()
    assert listed["total"] == 1 and listed["items"][0]["attempts"] == 3 and where in listed["items"][0]["error"]
    with platform.store.session() as s:
        [note] = s.scalars(select(Notification).where(Notification.event == "delivery.failed")).all() or [None]
    # no webhook is registered here, so nothing is queued; the audit log has the failure
    assert note is None
    with platform.store.session() as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "delivery.database")).all()
    assert event.detail["outcome"] == "failed" and event.detail["target"] == "insured"


def _existing(subscriber: Subscriber, name: str, columns: list[sa.Column[Any]]) -> None:
    """A table the subscriber made itself, with one sentinel row."""
    with subscriber.engine.begin() as conn:
        table = sa.Table(name, sa.MetaData(schema=subscriber.schema), *columns)
        table.create(conn)
        extra = {"row_id": 1, "checked_by": "someone"}
        conn.execute(table.insert().values(resident_id="sentinel", **{k: v for k, v in extra.items() if k in table.c}))


def _columns(**replace: Any) -> list[sa.Column[Any]]:
    """The columns of an ``ITEMS`` delivery, some replaced (``None``: left out), some added."""
    columns: dict[str, Any] = {
        "resident_id": (sa.String(64), {"primary_key": True}),
        "name": (sa.Text(), {}),
        "gender": (sa.Text(), {}),
        "contribution_base": (sa.Double(), {}),
        "birth_date": (sa.Date(), {}),
    }
    columns.update(replace)
    return [sa.Column(n, t, autoincrement=False, **kw) for n, spec in columns.items() if spec for t, kw in [spec]]


ITEMS = ["resident_id", "name", "gender", "contribution_base", "birth_date"]


@pytest.mark.parametrize(
    ("replace", "words"),
    [
        ({"name": (sa.Integer(), {})}, "column 'name'"),
        ({"contribution_base": (sa.String(20), {})}, "column 'contribution_base'"),
        ({"birth_date": (sa.Boolean(), {})}, "column 'birth_date'"),
        ({"gender": None}, "no column(s) 'gender'"),
        ({"checked_by": (sa.String(20), {"nullable": False})}, "column 'checked_by'"),
        (
            {"resident_id": (sa.String(64), {}), "row_id": (sa.Integer(), {"primary_key": True})},
            "no primary key or unique index on resident_id",
        ),
    ],
)
def test_an_incompatible_existing_table_is_named_and_left_alone(
    client: TestClient, platform: Platform, subscriber: Subscriber, replace: dict[str, Any], words: str
) -> None:
    _existing(subscriber, "insured", _columns(**replace))
    grant = db_grant(platform, subscriber, items=ITEMS)
    answer = deliver(client, platform, grant)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["error"] and subscriber.qualified("insured") in answer.json()["error"]
    [receipt] = receipts(platform, grant)
    assert receipt.outcome == "failed" and receipt.attempts == 1 and words in (receipt.error or "")
    assert list(subscriber.rows("insured")) == [("sentinel",)]
    assert subscriber.book("insured") == []


def test_a_column_too_narrow_for_the_values_is_named(
    client: TestClient, platform: Platform, subscriber: Subscriber
) -> None:
    if subscriber.backend == "sqlite":
        pytest.skip("SQLite does not enforce a VARCHAR's length")
    _existing(subscriber, "insured", _columns(resident_id=(sa.String(20), {"primary_key": True})))
    grant = db_grant(platform, subscriber, items=ITEMS)
    answer = deliver(client, platform, grant)
    assert answer.status_code == 422, answer.text
    assert "column 'resident_id' with room for 20 characters" in answer.json()["error"]
    assert list(subscriber.rows("insured")) == [("sentinel",)]


def test_an_existing_compatible_table_is_filled(client: TestClient, platform: Platform, subscriber: Subscriber) -> None:
    # The subscriber made the table itself: wider types, an extra nullable column, an extra column with a default.
    _existing(
        subscriber,
        "insured",
        _columns(
            name=(sa.String(200), {}),
            note=(sa.Text(), {}),
            loaded=(sa.Integer(), {"nullable": False, "server_default": "1"}),
        ),
    )
    grant = db_grant(platform, subscriber, items=ITEMS)
    answer = deliver(client, platform, grant)
    assert answer.status_code == 200, answer.text
    got = subscriber.rows("insured")
    expected = reference_rows(platform, platform.tables[HRSS], items=ITEMS)
    assert {k: {c: r[c] for c in ITEMS} for k, r in got.items()} == expected  # the sentinel is gone: a full version


# --- the command line ----------------------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "240"})
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_the_cli_delivers_one_grant_or_all_that_are_due(platform: Platform, subscriber: Subscriber) -> None:
    home = str(platform.home)
    grant = db_grant(platform, subscriber)
    other = db_grant(platform, subscriber, table="genders", items=["resident_id", "gender"])
    file_grant, _ = make_grant(platform)

    one = invoke("exchange", "deliver", str(grant), "--as", "market_staff", "--home", home)
    assert one.exit_code == 0, one.output
    assert f"grant {grant}: version 1 (full) into {subscriber.qualified('insured')}: 200 rows" in one.output
    assert subscriber.rows("insured") == reference_rows(platform, platform.tables[HRSS])

    due = invoke("exchange", "deliver", "--due", "--home", home)
    assert due.exit_code == 0, due.output
    assert f"grant {other}: version 1 (full)" in due.output and f"grant {grant}:" not in due.output
    assert f"grant {file_grant}" not in due.output
    assert "no database grant is behind" in invoke("exchange", "deliver", "--due", "--home", home).output

    v2, _ = second_version(platform.tables[HRSS])
    publish(platform, HRSS, v2)
    due = invoke("exchange", "deliver", "--due", "--as", "city_admin", "--home", home)
    assert due.exit_code == 0, due.output
    assert f"grant {grant}: version 2 (changes)" in due.output and f"grant {other}: version 2 (changes)" in due.output
    assert subscriber.rows("insured") == reference_rows(platform, v2)
    with platform.store.session() as s:
        actors = {d.actor for d in s.scalars(select(Delivery).where(Delivery.version == 2))}
    assert actors == {"city_admin"}

    again = invoke("exchange", "deliver", str(grant), "--as", "market_staff", "--home", home)
    assert again.exit_code == 0 and "already there: nothing written" in again.output

    full = invoke("exchange", "deliver", str(grant), "--full", "--as", "market_staff", "--home", home)
    assert full.exit_code == 0 and f"grant {grant}: version 2 (full) into" in full.output, full.output
    assert subscriber.rows("insured") == reference_rows(platform, v2)

    listed = invoke("exchange", "deliveries", "--grant", str(grant), "--as", "market_staff", "--home", home)
    assert listed.exit_code == 0 and "changes since 1" in listed.output and "4 of 4" in listed.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--due", "{grant}"], "give a grant id or --due"),
        ([], "give a grant id or --due"),
        (["--due", "--version", "1"], "--version and --full apply to one grant"),
        (["--due", "--full"], "--version and --full apply to one grant"),
        (["--due", "--as", "market_staff"], "exchange:admin"),
        (["{grant}", "--as", "transport_staff"], "no grant"),
        (["{grant}"], "who is acting"),
        (["99999", "--as", "city_admin"], "no grant 99999"),
        (["{grant}", "--as", "nobody"], "nobody"),
    ],
)
def test_the_cli_refuses_bad_requests(platform: Platform, subscriber: Subscriber, args: list[str], words: str) -> None:
    grant = db_grant(platform, subscriber)
    result = invoke("exchange", "deliver", *[a.format(grant=grant) for a in args], "--home", str(platform.home))
    assert result.exit_code != 0
    assert words in result.output + result.stderr
    assert subscriber.tables() == []


def test_the_cli_exits_1_on_a_failed_delivery(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_ENV, f"postgresql+psycopg://bob:{SECRET}@127.0.0.1:1/x")
    monkeypatch.setenv(delivery_db.RETRIES_ENV, "0")
    grant, _ = make_grant(platform, method="database", target={"url_env": URL_ENV, "table": "insured"})
    result = invoke("exchange", "deliver", str(grant), "--as", "market_staff", "--home", str(platform.home))
    assert result.exit_code == 1
    assert "failed:" in result.stderr and "insured" in result.stderr and "127.0.0.1:1" in result.stderr
    assert SECRET not in result.output + result.stderr
