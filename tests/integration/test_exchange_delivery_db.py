"""The fault test of database delivery: the subscriber's connection is killed in the middle of writing a version.

Version 1 is delivered; version 2 (inserts, updates, deletes) is being written when another
connection kills the delivering session (PostgreSQL ``pg_terminate_backend``, MariaDB ``KILL
CONNECTION``). The moment is made exact, not timed: a trigger the subscriber put on its table
counts the rows written (in a sequence, which a rollback does not undo) and, at row ``GATE``,
waits for a lock the test holds. So the test finds the session blocked half-way through the
version, checks that nobody else sees any of it, and kills it. Afterwards the table holds exactly
version 1 and the bookkeeping says so; the retry (the delivery's own, with backoff, or the next
``deliver_due``) writes version 2 exactly once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import select

from exchange import delivery_db
from exchange.models import Delivery
from exchange.service import create_app
from pipelines.masking import MASKING_KEY_ENV
from tests.exchange.conftest_exchange import HRSS, Platform, build_platform, private_copy, publish
from tests.exchange.delivery.conftest import make_grant, reference_rows

pytestmark = pytest.mark.integration

URL_ENV = "SUBSCRIBER_DB_URL"
ROWS = 2000
BATCH = 100
GATE = 450  # the trigger blocks at the 450th row written: several batches into version 2
WAIT = 60.0  # seconds to wait for the blocked session before giving up


def second_version(v1: pa.Table) -> pa.Table:
    """Version 2: every 10th row deleted, every 3rd updated, 500 rows inserted (~1,100 changes)."""
    rows = v1.to_pylist()
    out = []
    for i, r in enumerate(rows):
        if i % 10 == 0:
            continue
        if i % 3 == 0:
            r = {**r, "insured_status": "2", "contribution_base": round(r["contribution_base"] + 1.25, 2)}
        out.append(r)
    for i in range(500):
        out.append({**rows[i], "resident_id": f"3109{i:014d}", "name": "王五", "mobile": f"1370000{i:04d}"})
    return pa.Table.from_pylist(out, schema=v1.schema)


@dataclass
class Database:
    """The subscriber's database, a schema of its own, and the gate on its table."""

    backend: str
    url: str
    schema: str
    engine: sa.Engine
    lock: str

    def rows(self) -> dict[tuple[Any, ...], dict[str, Any]]:
        with self.engine.connect() as conn:
            table = sa.Table("insured", sa.MetaData(schema=self.schema), autoload_with=conn)
            rows = [
                {c: float(v) if isinstance(v, Decimal) else v for c, v in r.items()}
                for r in conn.execute(select(table)).mappings()
            ]
        by_key = {(r["resident_id"],): r for r in rows}
        assert len(by_key) == len(rows), "duplicate keys in the target table"
        return by_key

    def book(self) -> list[tuple[int, str]]:
        with self.engine.connect() as conn:
            book = sa.Table(delivery_db.BOOKKEEPING_TABLE, sa.MetaData(schema=self.schema), autoload_with=conn)
            return [(r.version, r.kind) for r in conn.execute(select(book).order_by(book.c.version))]

    def add_gate(self) -> None:
        """A trigger that, at the ``GATE``-th row written, waits for the lock held by :meth:`hold`."""
        s = self.schema
        with self.engine.begin() as conn:
            if self.backend == "postgres":
                conn.exec_driver_sql(f"CREATE SEQUENCE {s}.gate_rows")
                conn.exec_driver_sql(
                    f"CREATE FUNCTION {s}.gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    f"IF nextval('{s}.gate_rows') = {GATE} THEN "
                    f"PERFORM pg_advisory_lock({self.lock}); PERFORM pg_advisory_unlock({self.lock}); "
                    "END IF; RETURN NULL; END $$"
                )
                conn.exec_driver_sql(
                    f"CREATE TRIGGER gate AFTER INSERT OR UPDATE OR DELETE ON {s}.insured "
                    f"FOR EACH ROW EXECUTE FUNCTION {s}.gate()"
                )
            else:
                conn.exec_driver_sql(f"CREATE SEQUENCE {s}.gate_rows")
                for event in ("INSERT", "UPDATE", "DELETE"):
                    conn.exec_driver_sql(
                        f"CREATE TRIGGER {s}.gate_{event.lower()} AFTER {event} ON {s}.insured FOR EACH ROW "
                        f"BEGIN IF NEXTVAL({s}.gate_rows) = {GATE} THEN "
                        f"DO GET_LOCK('{self.lock}', 120); DO RELEASE_LOCK('{self.lock}'); END IF; END"
                    )

    def hold(self) -> sa.Connection:
        """Take the gate's lock on a connection of the test's own (released when it closes)."""
        conn = self.engine.connect()
        if self.backend == "postgres":
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({self.lock})")
        else:
            assert conn.exec_driver_sql(f"SELECT GET_LOCK('{self.lock}', 5)").scalar() == 1
        return conn

    def blocked_session(self, conn: sa.Connection) -> int | None:
        """The delivering session waiting at the gate, if it is there yet."""
        if self.backend == "postgres":
            query = sa.text(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' "
                "AND application_name = :name"
            )
            value = conn.execute(query, {"name": self.lock}).scalar()
        else:
            query = sa.text(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE STATE = 'User lock' "
                "AND ID <> CONNECTION_ID() AND INFO LIKE :statement"
            )
            value = conn.execute(query, {"statement": f"%GET_LOCK('{self.lock}'%"}).scalar()  # the trigger's wait
        return int(value) if value is not None else None

    def kill(self, conn: sa.Connection, session: int) -> None:
        if self.backend == "postgres":
            assert conn.exec_driver_sql(f"SELECT pg_terminate_backend({session})").scalar() is True
        else:
            conn.exec_driver_sql(f"KILL CONNECTION {session}")


@pytest.fixture(params=["postgres", "mariadb"])
def database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    base = request.getfixturevalue("postgres_url" if request.param == "postgres" else "mariadb_url")
    schema = f"gd_fault_{uuid.uuid4().hex[:8]}"
    lock = str(uuid.uuid4().int % 2**31) if request.param == "postgres" else f"gd_gate_{schema}"
    engine = sa.create_engine(base)
    create, drop = (
        (f"CREATE SCHEMA {schema}", f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        if request.param == "postgres"
        else (f"CREATE DATABASE {schema} CHARACTER SET utf8mb4", f"DROP DATABASE IF EXISTS {schema}")
    )
    with engine.begin() as conn:
        conn.exec_driver_sql(create)
    # PostgreSQL: the delivering sessions are found by their application name.
    url = f"{base}?application_name={lock}" if request.param == "postgres" else base
    monkeypatch.setenv(URL_ENV, url)
    try:
        yield Database(request.param, url, schema, engine, lock)
    finally:
        engine.dispose()
        with engine.begin() as conn:
            conn.exec_driver_sql(drop)
        engine.dispose()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    platform = build_platform(tmp_path_factory.mktemp("fault-template") / "home", rows=ROWS)
    platform.store.engine.dispose()
    return platform


@pytest.fixture
def platform(template: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Platform:

    monkeypatch.setenv(MASKING_KEY_ENV, "fault-test-masking-key")
    monkeypatch.setenv(delivery_db.BATCH_ENV, str(BATCH))
    monkeypatch.setenv(delivery_db.BACKOFF_ENV, "0")
    for name in ("GOVDATA_USER", "GOVDATA_CATALOG_URL", "GOVDATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    return private_copy(template, tmp_path / "home")


def receipts(platform: Platform, grant: int) -> list[Delivery]:
    with platform.store.session() as s:
        return list(s.scalars(select(Delivery).where(Delivery.grant_id == grant).order_by(Delivery.id)))


def kill_mid_write(database: Database, deliver: Callable[[], Any], while_blocked: Callable[[], None]) -> Any:
    """Run ``deliver`` in a thread, wait until it is blocked at the gate, call ``while_blocked``, kill it."""
    result: dict[str, Any] = {}
    holder = database.hold()
    worker = threading.Thread(target=lambda: result.setdefault("answer", deliver()), daemon=True)
    try:
        worker.start()
        deadline = time.monotonic() + WAIT
        session = None
        while session is None:
            assert time.monotonic() < deadline, "the delivery never reached the gate"
            assert worker.is_alive(), f"the delivery ended before the gate: {result}"
            time.sleep(0.05)
            session = database.blocked_session(holder)
        while_blocked()
        database.kill(holder, session)
    finally:
        holder.close()  # releases the lock (the delivery may be past the gate, or retrying)
        worker.join(WAIT)
    assert not worker.is_alive(), "the delivery did not finish after the kill"
    return result["answer"]


def test_a_killed_delivery_leaves_the_previous_version_and_the_next_run_completes_it(
    platform: Platform, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(delivery_db.RETRIES_ENV, "0")  # no retry within the run: the next run retries
    grant, _ = make_grant(
        platform, method="database", target={"url_env": URL_ENV, "table": "insured", "schema": database.schema}
    )
    v1 = platform.tables[HRSS]
    expected_v1 = reference_rows(platform, v1)
    with TestClient(create_app(platform.home)) as client:
        auth = platform.auth("market_staff")
        first = client.post(f"/exchange/v1/grants/{grant}/deliver", headers=auth)
        assert first.status_code == 200, first.text
        assert database.rows() == expected_v1
        database.add_gate()
        v2 = second_version(v1)
        publish(platform, HRSS, v2)

        def nobody_sees_half_a_version() -> None:
            assert database.rows() == expected_v1
            assert database.book() == [(1, "full")]

        answer = kill_mid_write(
            database,
            lambda: client.post(f"/exchange/v1/grants/{grant}/deliver", headers=auth),
            nobody_sees_half_a_version,
        )
    assert answer.status_code == 503, answer.text  # transient: a later run may succeed
    assert database.rows() == expected_v1
    assert database.book() == [(1, "full")]
    failed = receipts(platform, grant)[-1]
    assert (failed.outcome, failed.version, failed.kind, failed.base_version) == ("failed", 2, "changes", 1)
    assert failed.attempts == 1 and failed.error and "insured" in failed.error
    killed = (
        ("terminating connection", "server closed the connection")
        if database.backend == "postgres"
        else ("Lost connection",)
    )
    assert any(words in failed.error for words in killed), failed.error

    [done] = delivery_db.deliver_due(platform.store)  # the scheduler's next run
    assert done["outcome"] == "succeeded" and done["version"] == 2 and done["kind"] == "changes"
    expected_v2 = reference_rows(platform, v2)
    assert database.rows() == expected_v2
    assert len(expected_v2) == v2.num_rows
    assert database.book() == [(1, "full"), (2, "changes")]
    assert [(r.version, r.outcome) for r in receipts(platform, grant)] == [
        (1, "succeeded"),
        (2, "failed"),
        (2, "succeeded"),
    ]
    assert delivery_db.deliver_due(platform.store) == []  # and only once


def test_the_delivery_retries_by_itself_after_the_kill(
    platform: Platform, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(delivery_db.RETRIES_ENV, "3")
    monkeypatch.setenv(delivery_db.BACKOFF_ENV, "0.2")
    delays: list[float] = []
    monkeypatch.setattr(delivery_db, "_sleep", delays.append)  # the clock: record the backoff, do not wait
    grant, _ = make_grant(
        platform, method="database", target={"url_env": URL_ENV, "table": "insured", "schema": database.schema}
    )
    v1 = platform.tables[HRSS]
    expected_v1 = reference_rows(platform, v1)
    assert delivery_db.deliver_to_database(platform.store, grant, actor="market_staff")["outcome"] == "succeeded"
    database.add_gate()
    v2 = second_version(v1)
    publish(platform, HRSS, v2)

    def nobody_sees_half_a_version() -> None:
        assert database.rows() == expected_v1
        assert database.book() == [(1, "full")]

    answer = kill_mid_write(
        database,
        lambda: delivery_db.deliver_to_database(platform.store, grant, actor="market_staff"),
        nobody_sees_half_a_version,
    )
    assert answer["outcome"] == "succeeded" and answer["attempts"] == 2 and answer["already_present"] is False
    assert len(delays) == 1 and 0.1 <= delays[0] < 0.3
    assert database.rows() == reference_rows(platform, v2)
    assert database.book() == [(1, "full"), (2, "changes")]
    assert [(r.version, r.outcome, r.attempts) for r in receipts(platform, grant)] == [
        (1, "succeeded", 1),
        (2, "succeeded", 2),
    ]
