"""The data API (接口服务): keyset pages with a per-grant key, refusals, monitoring, and the masking scan of every mode."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog.models import AuditEvent
from exchange.identity import KEY_PREFIX, new_secret
from exchange.models import ApiCall, Delivery, Grant, Notification, Webhook
from tests.exchange.conftest_exchange import HRSS, Platform, publish
from tests.exchange.delivery.conftest import NOW, make_grant, reference_rows, second_version

V1 = "/exchange/v1"


def page(client: TestClient, grant: int, key: str | None, **params: Any) -> Any:
    headers = {"X-Grant-Key": key} if key is not None else {}
    return client.get(f"{V1}/data/{grant}", params=params, headers=headers)


def walk(
    client: TestClient, grant: int, key: str, size: int, **params: Any
) -> tuple[list[dict[str, Any]], int, set[int]]:
    rows: list[dict[str, Any]] = []
    cursor = params.pop("cursor", None)
    pages = 0
    versions: set[int] = set()
    while True:
        answer = page(client, grant, key, page_size=size, **({"cursor": cursor} if cursor else {}), **params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages += 1
        rows += body["rows"]
        versions.add(body["version"])
        assert body["count"] == len(body["rows"]) <= size
        cursor = body["next_cursor"]
        if cursor is None:
            return rows, pages, versions


def as_json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


def calls(platform: Platform) -> list[ApiCall]:
    with platform.store.session() as s:
        return list(s.scalars(select(ApiCall).order_by(ApiCall.id)))


def test_paging_returns_every_masked_row_once_in_key_order(client: TestClient, platform: Platform) -> None:
    grant, key = make_grant(platform, method="api", api_key=True)
    assert key is not None
    with platform.store.session() as s:
        s.add(
            Webhook(
                department_uscc=platform.departments["market"],
                url="http://127.0.0.1:9/hook",
                secret="s" * 32,
                events=["version.delivered"],
                created_by="market_reviewer",
            )
        )
    rows, pages, versions = walk(client, grant, key, 37)
    assert versions == {1} and pages == 6  # 200 rows: 5 full pages and one of 15
    expected = reference_rows(platform, platform.tables[HRSS])
    assert [r["resident_id"] for r in rows] == sorted(k[0] for k in expected)
    assert {(r["resident_id"],): r for r in rows} == {
        k: {c: as_json(v) for c, v in row.items()} for k, row in expected.items()
    }

    with platform.store.session() as s:
        grant_row = s.get(Grant, grant)
        assert grant_row is not None and grant_row.uses == pages and grant_row.last_version == 1
        [receipt] = s.scalars(select(Delivery).where(Delivery.grant_id == grant)).all()
        assert (receipt.mode, receipt.rows, receipt.attempts, receipt.outcome) == ("api", 200, pages, "succeeded")
        audited = s.scalars(select(AuditEvent).where(AuditEvent.action == "delivery.api")).all()
        assert len(audited) == 1 and audited[0].subject == f"grant:{grant}"
        [note] = s.scalars(select(Notification).where(Notification.event == "version.delivered")).all()
        assert note.payload["mode"] == "api" and note.payload["version"] == 1
    recorded = calls(platform)
    assert [c.status for c in recorded] == [200] * pages
    assert sum(c.rows for c in recorded) == 200
    assert {c.department_uscc for c in recorded} == {platform.departments["market"]}
    assert all(c.grant_id == grant and c.entry_id == HRSS and c.latency_ms >= 0 for c in recorded)

    # A second walk the same day: the same receipt grows, no second audit entry.
    walk(client, grant, key, 5000)
    with platform.store.session() as s:
        [receipt] = s.scalars(select(Delivery).where(Delivery.grant_id == grant)).all()
        assert receipt.rows == 400 and receipt.attempts == pages + 1
        assert len(s.scalars(select(AuditEvent).where(AuditEvent.action == "delivery.api")).all()) == 1


def test_a_cursor_pins_its_version(client: TestClient, platform: Platform) -> None:
    grant, key = make_grant(platform, method="api", api_key=True)
    assert key is not None
    first = page(client, grant, key, page_size=50).json()
    publish(platform, HRSS, second_version(platform.tables[HRSS])[0])
    rest, _, versions = walk(client, grant, key, 50, cursor=first["next_cursor"])
    assert versions == {1} and len(first["rows"]) + len(rest) == 200
    fresh, _, versions = walk(client, grant, key, 5000)
    assert versions == {2} and len(fresh) == 202
    old, _, versions = walk(client, grant, key, 5000, version=1)
    assert versions == {1} and len(old) == 200
    conflict = page(client, grant, key, cursor=first["next_cursor"], version=2)
    assert conflict.status_code == 422 and "version 1" in conflict.json()["error"]


def test_keys_are_checked(client: TestClient, platform: Platform) -> None:
    grant, key = make_grant(platform, method="api", api_key=True)
    other, other_key = make_grant(platform, method="api", api_key=True)
    foreign, foreign_key = make_grant(platform, method="api", api_key=True, subscriber="transport")
    assert key and other_key and foreign_key
    ident = key[len(KEY_PREFIX) :].split("_")[0]
    cases: list[tuple[str | None, int]] = [
        (None, 401),
        ("", 401),
        ("Bearer " + key, 401),
        (key + "x", 401),
        (key[:-3], 401),
        (f"{KEY_PREFIX}{ident}_wrongsecret", 401),
        ("gdt_" + key[4:], 401),
        ("x" * 5000, 401),
        (other_key, 403),
        (foreign_key, 403),
    ]
    for sent, status in cases:
        answer = page(client, grant, sent)
        assert answer.status_code == status, (sent, answer.text)
        assert answer.json()["error"]
    # A replaced key is refused at once.
    _, newer, digest = new_secret(KEY_PREFIX)
    with platform.store.session() as s:
        row = s.get(Grant, grant)
        assert row is not None
        row.api_key_id, row.api_key_sha256 = newer.split("_")[1], digest
    assert page(client, grant, key).status_code == 401
    assert page(client, grant, newer).status_code == 200
    recorded = calls(platform)
    assert [c.status for c in recorded] == [s for _, s in cases] + [401, 200]
    assert recorded[0].department_uscc is None  # no key: the caller is unknown
    assert {c.department_uscc for c in recorded if c.status == 403} == {
        platform.departments["market"],
        platform.departments["transport"],
    }
    with platform.store.session() as s:
        uses = {g.id: g.uses for g in s.scalars(select(Grant))}
    assert uses[grant] == 1 and uses[other] == 0 and uses[foreign] == 0


def test_tampered_cursors_and_bad_parameters_answer_422(client: TestClient, platform: Platform) -> None:
    grant, key = make_grant(platform, method="api", api_key=True)
    other, other_key = make_grant(platform, method="api", api_key=True)
    assert key and other_key
    cursor = page(client, grant, key, page_size=10).json()["next_cursor"]
    body, tag = cursor.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged_body = base64.urlsafe_b64encode(json.dumps({"v": 1, "k": ["0"]}).encode()).decode().rstrip("=")
    foreign_cursor = page(client, other, other_key, page_size=10).json()["next_cursor"]
    assert payload["v"] == 1 and len(payload["k"]) == 1
    hostile = [
        cursor[:-1] + ("0" if cursor[-1] != "0" else "1"),
        body + "." + tag[::-1],
        forged_body + "." + tag,
        body,
        cursor + ".x",
        cursor[: len(cursor) // 2],
        "....",
        "测试.游标",
        "x" * 5000,
        "%00",
        foreign_cursor,
    ]
    for bad in hostile:
        answer = page(client, grant, key, cursor=bad)
        assert answer.status_code == 422, (bad, answer.text)
        assert "cursor" in answer.json()["error"]
    for params in (
        {"page_size": "0"},
        {"page_size": "5001"},
        {"page_size": "abc"},
        {"page_size": "1.5"},
        {"page_size": "-3"},
        {"version": "0"},
        {"version": "x"},
        {"version": str(2**40)},
        {"version": "9"},
    ):
        answer = page(client, grant, key, **params)
        assert answer.status_code == 422, (params, answer.text)
    assert page(client, grant, key, page_size="5000").json()["count"] == 200
    statuses = [c.status for c in calls(platform)]
    assert statuses.count(422) == len(hostile) + 9


@pytest.mark.parametrize(
    ("change", "status", "word"),
    [
        ({"revoked_at": NOW, "revoked_by": "hrss_reviewer"}, 409, "revoked"),
        ({"expires_at": NOW - dt.timedelta(days=1)}, 409, "expired"),
        ({"max_uses": 0}, 409, "exhausted"),
        ({"delivery_method": "file"}, 409, "file download"),
    ],
)
def test_inactive_grants_serve_no_pages(
    client: TestClient, platform: Platform, change: dict[str, Any], status: int, word: str
) -> None:
    grant, key = make_grant(platform, method="api", api_key=True)
    with platform.store.session() as s:
        row = s.get(Grant, grant)
        assert row is not None
        for name, value in change.items():
            setattr(row, name, value)
    answer = page(client, grant, key)
    assert answer.status_code == status and word in answer.json()["error"]
    assert [c.status for c in calls(platform)] == [status]
    with platform.store.session() as s:
        assert s.scalars(select(Delivery)).all() == []


def test_a_grant_without_the_key_item_cannot_page(client: TestClient, platform: Platform) -> None:
    grant, key = make_grant(platform, method="api", api_key=True, items=["name", "gender"])
    answer = page(client, grant, key)
    assert answer.status_code == 422 and "primary-key" in answer.json()["error"]


# --- the masking scan: nothing sensitive in clear, whatever the mode --------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [] if value is None else [str(value)]


def test_masking_scan_no_sensitive_value_in_clear_in_any_delivery(
    client: TestClient, platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1 = platform.tables[HRSS]
    v2, _ = second_version(v1)
    secrets = {
        str(r[c]) for table in (v1, v2) for r in table.to_pylist() for c in ("resident_id", "name", "mobile", "address")
    }
    assert len(secrets) > 600
    delivered: list[str] = []

    file_grant, _ = make_grant(platform)
    api_grant, key = make_grant(platform, method="api", api_key=True)
    target = tmp_path / "subscriber.db"
    monkeypatch.setenv("SUBSCRIBER_DB", f"sqlite:///{target}")
    db_grant, _ = make_grant(platform, method="database", target={"url_env": "SUBSCRIBER_DB", "table": "insured"})
    auth = platform.auth("market_staff")

    def files(**params: Any) -> None:
        for fmt in ("parquet", "csv"):
            answer = client.get(f"{V1}/grants/{file_grant}/download", params={**params, "format": fmt}, headers=auth)
            assert answer.status_code == 200, answer.text
            if fmt == "parquet":
                delivered.extend(_strings(pq.read_table(io.BytesIO(answer.content)).to_pylist()))
            else:
                delivered.append(answer.content.decode("utf-8-sig"))

    def api() -> None:
        cursor = None
        while True:
            answer = page(client, api_grant, key, page_size=64, **({"cursor": cursor} if cursor else {}))
            assert answer.status_code == 200
            delivered.append(answer.text)
            cursor = answer.json()["next_cursor"]
            if cursor is None:
                return

    def database() -> None:
        answer = client.post(f"{V1}/grants/{db_grant}/deliver", headers=auth)
        assert answer.status_code == 200, answer.text
        engine = sa.create_engine(f"sqlite:///{target}")
        with engine.connect() as conn:
            for name in ("insured", "govdata_deliveries"):
                delivered.extend(_strings([dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {name}")).mappings()]))
        engine.dispose()

    files(full="true")
    api()
    database()
    publish(platform, HRSS, v2)
    files(since=1)
    files()
    api()
    database()
    # the API's sorted masked copies at rest, too
    for cached in (platform.home / "cache").rglob("*.parquet"):
        delivered.extend(_strings(pq.read_table(cached).to_pylist()))

    assert len(delivered) > 5000
    text = "\n".join(delivered)
    leaks = sorted(s for s in secrets if s in text)
    assert leaks == [], f"{len(leaks)} sensitive values delivered in clear, e.g. {leaks[:5]}"
    assert "**" in text and "***" in text and "****" in text  # and they were delivered masked
