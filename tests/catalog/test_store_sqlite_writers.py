"""The SQLite catalog's write turn: this process's writers queue for the write lock instead of polling for it.

What is checked: a write takes the turn and its transaction's end (commit, rollback, an error)
gives it back; reads never take it; writers in several threads all get through and none is
lost; a writer that waits longer than the busy timeout goes ahead and SQLite decides (a nested
write in the thread that holds the turn fails as it did before the queue, it does not hang).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from catalog import store as store_module
from catalog.models import Department
from catalog.store import WRITE_TURNS, CatalogStore


def _store(path: Path) -> tuple[CatalogStore, threading.Lock]:
    store = CatalogStore(f"sqlite:///{path}")
    return store, WRITE_TURNS[store.engine.url.render_as_string(hide_password=False)]


def _department(n: int) -> Department:
    return Department(uscc=f"11310000{n:09d}X", name=f"测试部门{n}")


def test_a_write_holds_the_turn_until_its_transaction_ends(tmp_path: Path) -> None:
    store, turn = _store(tmp_path / "catalog.db")
    with store.session() as s:
        s.execute(select(Department)).all()
        assert not turn.locked()  # reads never take it
        s.add(_department(1))
        s.flush()
        assert turn.locked()
        s.add(_department(2))
        s.flush()  # a second write of the same transaction: no second turn
    assert not turn.locked()
    with pytest.raises(RuntimeError, match="changed my mind"), store.session() as s:
        s.add(_department(3))
        s.flush()
        assert turn.locked()
        raise RuntimeError("changed my mind")
    assert not turn.locked()
    with store.session() as s:
        assert sorted(d.uscc[-4:] for d in s.scalars(select(Department))) == ["001X", "002X"]
    with store.engine.connect() as conn:  # a plain connection: commit and rollback give it back too
        conn.execute(text("UPDATE departments SET name = name WHERE uscc = 'none'"))
        assert turn.locked()
        conn.rollback()
        assert not turn.locked()


def test_writers_in_many_threads_all_get_through(tmp_path: Path) -> None:
    store, turn = _store(tmp_path / "catalog.db")
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(k: int) -> None:
        start.wait()
        try:
            for i in range(25):
                with store.session() as s:
                    s.add(_department(k * 1000 + i))
                    s.flush()
                    s.execute(select(Department).limit(1)).all()  # some work while holding the write lock
        except BaseException as exc:  # noqa: BLE001 - collected and reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    with store.session() as s:
        assert len(s.scalars(select(Department)).all()) == 200
    assert not turn.locked()


def test_a_nested_write_in_the_thread_holding_the_turn_fails_as_before_and_does_not_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_BUSY_TIMEOUT_MS", 200)  # both waits: for the turn, then SQLite's
    store, turn = _store(tmp_path / "nested.db")
    with store.session() as outer:
        outer.add(_department(1))
        outer.flush()
        with pytest.raises(OperationalError, match="locked"), store.session() as inner:
            inner.add(_department(2))
            inner.flush()
        assert turn.locked()  # still the outer transaction's
    assert not turn.locked()
    with store.session() as s:
        assert [d.uscc for d in s.scalars(select(Department))] == [_department(1).uscc]
