"""Webhooks and objections on the machine's real PostgreSQL: dispatchers that run side by side.

Each test works in a schema of its own. Several dispatchers claim due notifications with
``SELECT … FOR UPDATE SKIP LOCKED`` and a compare-and-set: each notification reaches the receiver
exactly once, and a dispatcher never waits for rows another one holds.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from catalog.models import Department, User
from exchange import notify, objections
from exchange.identity import Principal
from exchange.models import Notification, Webhook
from exchange.notify import dispatch_due, emit
from tests.exchange.conftest_exchange import HRSS, Platform, build_platform
from tests.exchange.test_objections import GRANTED, grant
from tests.exchange.test_webhooks import Receiver

pytestmark = pytest.mark.integration

UNIT = "11310000TEST00001X"


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    schema = f"govdata_hooks_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as con:
        con.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
        con.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        from catalog.store import _ENGINES

        for key in [k for k in _ENGINES if schema in k]:
            _ENGINES.pop(key).dispose()
        with admin.begin() as con:
            con.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv(notify.ALLOW_ENV, "127.0.0.1/32")
    running = Receiver().start()
    yield running
    running.stop()


def test_dispatchers_side_by_side_send_each_notification_once(pg_url: str, receiver: Receiver) -> None:
    from catalog.store import CatalogStore

    store = CatalogStore(pg_url)
    assert store.engine.dialect.name == "postgresql"
    with store.session() as s:
        s.add(Department(uscc=UNIT, name="测试局"))
        s.flush()
        s.add(
            Webhook(
                department_uscc=UNIT, url=receiver.url, secret="whsec_pg", events=["version.delivered"], created_by="t"
            )
        )
        s.flush()
        for i in range(60):
            emit(s, department=UNIT, event="version.delivered", payload={"i": i})
    start = threading.Barrier(4)
    claimed: list[int] = []

    def run() -> None:
        start.wait()
        claimed.append(dispatch_due(store, limit=20, workers=3).claimed)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while dispatch_due(store).claimed:
        pass
    delivered = [r.headers["X-Govdata-Delivery"] for r in receiver.requests]
    assert len(delivered) == 60 and len(set(delivered)) == 60
    with store.session() as s:
        rows = list(s.scalars(sa.select(Notification)))
    assert {(n.status, n.attempts) for n in rows} == {("sent", 1)}
    for r in receiver.requests:
        assert notify.verify_signature(
            "whsec_pg", r.headers["X-Govdata-Timestamp"], r.body, r.headers["X-Govdata-Signature"]
        )


def test_a_dispatcher_skips_rows_another_one_holds(pg_url: str, receiver: Receiver) -> None:
    from catalog.store import CatalogStore

    store = CatalogStore(pg_url)
    with store.session() as s:
        s.add(Department(uscc=UNIT, name="测试局"))
        s.flush()
        s.add(
            Webhook(department_uscc=UNIT, url=receiver.url, secret="whsec_pg", events=["grant.revoked"], created_by="t")
        )
        s.flush()
        for i in range(3):
            emit(s, department=UNIT, event="grant.revoked", payload={"i": i})
    with store.session() as holder:
        held = holder.scalars(sa.select(Notification).order_by(Notification.id).limit(2).with_for_update()).all()
        assert len(held) == 2
        # Another dispatcher, while those two are locked: it takes the third and does not wait.
        summary: list[notify.DispatchSummary] = []
        other = threading.Thread(target=lambda: summary.append(dispatch_due(store)))
        other.start()
        other.join(timeout=60)
        assert not other.is_alive()
    assert summary[0].claimed == 1 and summary[0].sent == 1
    first = int(receiver.requests[0].headers["X-Govdata-Delivery"])
    assert first not in {n.id for n in held}
    assert dispatch_due(store).sent == 2  # once released
    delivered = [int(r.headers["X-Govdata-Delivery"]) for r in receiver.requests]
    assert sorted(delivered) == sorted([first, *(n.id for n in held)])


def test_objections_and_their_figures_on_postgresql(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVDATA_CATALOG_URL", pg_url)
    platform: Platform = build_platform(tmp_path / "home", rows=5)
    grant(platform, HRSS, "market", GRANTED)
    sh = ZoneInfo("Asia/Shanghai")
    with platform.store.session() as s:
        market = Principal.of_user(s.get(User, "market_staff"))  # type: ignore[arg-type]
        hrss = Principal.of_user(s.get(User, "hrss_reviewer"))  # type: ignore[arg-type]
        monday = dt.datetime(2026, 3, 2, 10, 0, tzinfo=sh)
        first = objections.raise_objection(
            s, market, entry=HRSS, subject="a", detail="d", items=["name"], keys=["310100000000000001"], now=monday
        )
        second = objections.raise_objection(s, market, entry=HRSS, subject="b", detail="d", now=monday)
        ids = first.id, second.id
    with platform.store.session() as s:
        objections.answer(s, hrss, ids[0], message="ok", now=dt.datetime(2026, 3, 9, 23, 0, tzinfo=sh))
        stats = objections.objection_stats(s, platform.departments["hrss"])
        assert (stats.raised, stats.answered, stats.answered_on_time, stats.overdue_open) == (2, 1, 1, 1)
        assert [o.id for o in objections.list_objections(s, hrss, overdue=True)] == [ids[1]]
        assert objections.list_objections(s, market, entry=HRSS, status="answered")[0].id == ids[0]
