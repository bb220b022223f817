"""The audit log: hash-chained, append-only, every kind of tampering found, safe under concurrent writers."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from catalog.models import AuditEvent
from catalog.store import CatalogStore
from exchange import audit
from pipelines.errors import TerminalError

TABLE = AuditEvent.__table__


@pytest.fixture
def store(tmp_path: Path) -> CatalogStore:
    return CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")


def fill(store: CatalogStore, n: int = 6) -> None:
    for i in range(1, n + 1):
        with store.session() as s:
            audit.append(s, actor=f"user{i}", action="catalog.test", subject=f"catalog_entry:e{i % 2}", detail={"i": i})


def independent_hash(row: dict[str, object]) -> str:
    """The documented hash, computed here without the module's helpers."""
    at = row["at"]
    assert isinstance(at, dt.datetime)
    at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    doc = {
        "seq": row["seq"],
        "at": at.isoformat(timespec="microseconds"),
        "actor": row["actor"],
        "action": row["action"],
        "subject": row["subject"],
        "detail": row["detail"],
        "prev_hash": row["prev_hash"],
    }
    text = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def rows(store: CatalogStore) -> list[dict[str, object]]:
    with store.engine.connect() as con:
        return [dict(r._mapping) for r in con.execute(sa.select(TABLE).order_by(TABLE.c.seq))]


def execute(store: CatalogStore, *statements: sa.Executable) -> None:
    with store.engine.begin() as con:
        for statement in statements:
            con.execute(statement)


# --- the chain -----------------------------------------------------------------------------------


def test_entries_are_numbered_and_chained_with_the_documented_hash(store: CatalogStore) -> None:
    fill(store, 5)
    found = rows(store)
    assert [r["seq"] for r in found] == [1, 2, 3, 4, 5]
    assert found[0]["prev_hash"] == "0" * 64
    for before, after in itertools.pairwise(found):
        assert after["prev_hash"] == before["hash"]
    for r in found:
        assert r["hash"] == independent_hash(r)
    with store.session() as s:
        assert audit.verify(s) is None
        assert audit.head(s) == (5, found[-1]["hash"])


def test_an_empty_log_verifies_and_its_head_is_the_genesis(store: CatalogStore) -> None:
    with store.session() as s:
        assert audit.verify(s) is None
        assert audit.head(s) == (0, audit.GENESIS)


def test_the_exported_record_reproduces_the_hash(store: CatalogStore) -> None:
    fill(store, 2)
    with store.session() as s:
        for event in audit.events(s):
            doc = audit.record(event)
            body = {k: v for k, v in doc.items() if k != "hash"}
            body["at"] = dt.datetime.fromisoformat(body["at"])
            assert hashlib.sha256(audit.canonical(**body)).hexdigest() == doc["hash"]


def test_detail_is_stored_as_json_and_hashed_as_stored(store: CatalogStore) -> None:
    with store.session() as s:
        audit.append(s, actor="a", action="x", subject="s", detail={"day": dt.date(2026, 11, 24), "名称": "人口"})
    with store.session() as s:
        (event,) = audit.events(s)
        assert event.detail == {"day": "2026-11-24", "名称": "人口"}
        assert audit.verify(s) is None


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"detail": {"x": float("nan")}}, "cannot be stored as JSON"),
        ({"actor": ""}, "audit actor"),
        ({"action": "a" * 65}, "audit action"),
        ({"subject": "s" * 201}, "audit subject"),
    ],
)
def test_bad_entries_are_refused(store: CatalogStore, kwargs: dict[str, object], problem: str) -> None:
    args: dict[str, object] = {"actor": "a", "action": "x", "subject": "s", "detail": {}} | kwargs
    with pytest.raises(TerminalError, match=problem), store.session() as s:
        audit.append(s, **args)  # type: ignore[arg-type]
    assert rows(store) == []


def test_an_entry_rolls_back_with_the_change_it_records(store: CatalogStore) -> None:
    fill(store, 1)
    with pytest.raises(RuntimeError), store.session() as s:
        audit.append(s, actor="a", action="x", subject="s")
        raise RuntimeError("the change failed")
    assert [r["seq"] for r in rows(store)] == [1]
    fill(store, 1)
    assert [r["seq"] for r in rows(store)] == [1, 2]


def test_events_are_read_in_order_and_filtered(store: CatalogStore) -> None:
    fill(store, 6)
    with store.session() as s:
        assert [e.seq for e in audit.events(s)] == [1, 2, 3, 4, 5, 6]
        assert [e.seq for e in audit.events(s, subject="catalog_entry:e1")] == [1, 3, 5]
        assert [e.seq for e in audit.events(s, actor="user4")] == [4]
        assert [e.seq for e in audit.events(s, after_seq=4)] == [5, 6]
        assert [e.seq for e in audit.events(s, limit=2)] == [1, 2]
        assert audit.events(s, action="nothing") == []
        third = audit.events(s)[2].at
        assert next(e.seq for e in audit.events(s, since=third)) == 3
        assert all(e.seq < 3 for e in audit.events(s, until=third))


# --- tampering: each kind is found, at the right entry ---------------------------------------------


def test_an_edited_detail_is_found(store: CatalogStore) -> None:
    fill(store)
    execute(store, sa.update(TABLE).where(TABLE.c.seq == 3).values(detail={"i": 99}))
    with store.session() as s:
        problem = audit.verify(s)
    assert problem is not None and (problem.seq, problem.kind) == (3, "edited")
    assert "entry 3" in problem.message


@pytest.mark.parametrize(
    "column", ["actor", "action", "subject", "at", "seq-free prev_hash"], ids=lambda c: c.split()[-1]
)
def test_any_edited_field_is_found(store: CatalogStore, column: str) -> None:
    fill(store)
    values: dict[str, object] = {
        "actor": {"actor": "someone_else"},
        "action": {"action": "catalog.other"},
        "subject": {"subject": "catalog_entry:other"},
        "at": {"at": dt.datetime(2020, 1, 1, tzinfo=dt.UTC)},
        "seq-free prev_hash": {"prev_hash": "f" * 64},
    }[column]
    execute(store, sa.update(TABLE).where(TABLE.c.seq == 4).values(**values))
    with store.session() as s:
        problem = audit.verify(s)
    assert problem is not None and problem.seq == 4


def test_an_edit_with_its_hash_recomputed_shows_at_the_next_entry(store: CatalogStore) -> None:
    fill(store)
    third = rows(store)[2]
    forged = {**third, "detail": {"i": 99}}
    forged["hash"] = independent_hash(forged)
    execute(store, sa.update(TABLE).where(TABLE.c.seq == 3).values(detail=forged["detail"], hash=forged["hash"]))
    with store.session() as s:
        problem = audit.verify(s)
    assert problem is not None and problem.seq == 4 and problem.kind == "removed"
    assert "hash recomputed" in problem.message


@pytest.mark.parametrize(("seq", "shows_at"), [(1, 2), (3, 4), (5, 6)])
def test_a_removed_entry_is_found(store: CatalogStore, seq: int, shows_at: int) -> None:
    fill(store)
    execute(store, sa.delete(TABLE).where(TABLE.c.seq == seq))
    with store.session() as s:
        problem = audit.verify(s)
    assert problem is not None and (problem.seq, problem.kind) == (shows_at, "removed")
    assert f"entries {seq} are missing" in problem.message


def test_a_removed_entry_with_the_rest_renumbered_is_found(store: CatalogStore) -> None:
    fill(store)
    execute(
        store,
        sa.delete(TABLE).where(TABLE.c.seq == 3),
        sa.update(TABLE).where(TABLE.c.seq > 3).values(seq=TABLE.c.seq + 100),
        sa.update(TABLE).where(TABLE.c.seq > 100).values(seq=TABLE.c.seq - 101),
    )
    assert [r["seq"] for r in rows(store)] == [1, 2, 3, 4, 5]
    with store.session() as s:
        problem = audit.verify(s)
    assert problem is not None and (problem.seq, problem.kind) == (3, "removed")


def test_an_inserted_entry_is_found(store: CatalogStore) -> None:
    fill(store)
    second = rows(store)[1]
    execute(
        store,
        sa.update(TABLE).where(TABLE.c.seq >= 3).values(seq=TABLE.c.seq + 100),
        sa.update(TABLE).where(TABLE.c.seq > 100).values(seq=TABLE.c.seq - 99),
    )
    fake = {
        "seq": 3,
        "at": dt.datetime.now(dt.UTC),
        "actor": "intruder",
        "action": "catalog.approve_publication",
        "subject": "catalog_entry:e1",
        "detail": {"opinion": "looks fine"},
        "prev_hash": second["hash"],
    }
    fake["hash"] = independent_hash(fake)  # a well-formed entry, chained to the one before it
    execute(store, sa.insert(TABLE).values(**fake))
    with store.session() as s:
        problem = audit.verify(s)
    assert problem is not None and (problem.seq, problem.kind) == (4, "inserted")
    assert "entry 3 was inserted" in problem.message


def test_reordered_entries_are_found(store: CatalogStore) -> None:
    fill(store)
    execute(
        store,
        sa.update(TABLE).where(TABLE.c.seq == 3).values(seq=-3),
        sa.update(TABLE).where(TABLE.c.seq == 4).values(seq=3),
        sa.update(TABLE).where(TABLE.c.seq == -3).values(seq=4),
    )
    with store.session() as s:
        problem = audit.verify(s)
    assert problem is not None and (problem.seq, problem.kind) == (3, "reordered")


def test_a_forged_first_entry_is_found(store: CatalogStore) -> None:
    fill(store, 3)
    execute(store, sa.update(TABLE).where(TABLE.c.seq == 1).values(prev_hash="1" * 64))
    with store.session() as s:
        problem = audit.verify(s)
    assert problem is not None and problem.seq == 1


# --- concurrent writers ----------------------------------------------------------------------------


def hammer(store: CatalogStore, writers: int, each: int) -> list[BaseException]:
    """``writers`` threads append ``each`` entries, one transaction per entry, all starting together."""
    start = threading.Barrier(writers)
    failures: list[BaseException] = []

    def work(w: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with Session(store.engine) as s, s.begin():
                    audit.append(s, actor=f"w{w}", action="test.concurrent", subject=f"s{w}", detail={"i": i})
        except BaseException as exc:  # noqa: BLE001  (collected and reported by the test)
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def test_concurrent_writers_on_sqlite_keep_one_gapless_chain(store: CatalogStore) -> None:
    failures = hammer(store, writers=4, each=15)
    assert failures == []
    found = rows(store)
    assert [r["seq"] for r in found] == list(range(1, 61))
    with store.session() as s:
        assert audit.verify(s) is None
    per_writer = {f"w{w}": [r["detail"]["i"] for r in found if r["actor"] == f"w{w}"] for w in range(4)}  # type: ignore[index]
    assert per_writer == {f"w{w}": list(range(15)) for w in range(4)}


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[CatalogStore]:
    schema = f"govdata_audit_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as con:
        con.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield CatalogStore(f"{postgres_url}?options=-csearch_path%3D{schema}")
    with admin.begin() as con:
        con.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.integration
def test_concurrent_writers_on_postgresql_keep_one_gapless_chain(pg_store: CatalogStore) -> None:
    assert pg_store.engine.dialect.name == "postgresql"
    failures = hammer(pg_store, writers=4, each=15)
    assert failures == []
    assert [r["seq"] for r in rows(pg_store)] == list(range(1, 61))
    with pg_store.session() as s:
        assert audit.verify(s) is None
    execute(pg_store, sa.update(TABLE).where(TABLE.c.seq == 30).values(detail={"i": -1}))
    with pg_store.session() as s:
        problem = audit.verify(s)
    assert problem is not None and (problem.seq, problem.kind) == (30, "edited")
