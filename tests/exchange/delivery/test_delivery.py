"""File delivery (文件交换) over HTTP: full versions and change sets, Parquet and CSV, masked, with receipts.

Every expected file is computed in Python from the published rows (value-by-value masking, a
row-by-row diff), independent of the DuckDB SQL that builds the deliveries.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from catalog.models import AuditEvent
from exchange import changes, delivery
from exchange.models import Delivery, Grant, Notification, Webhook
from pipelines.masking import MASKING_KEY_ENV
from tests.exchange.conftest_exchange import HRSS, MARKET, Platform, publish
from tests.exchange.delivery.conftest import NOW, make_grant, reference_changes, reference_rows, second_version

V1 = "/exchange/v1"


def download(client: TestClient, platform: Platform, grant: int, user: str = "market_staff", **params: Any) -> Any:
    return client.get(f"{V1}/grants/{grant}/download", params=params, headers=platform.auth(user))


def parquet_rows(body: bytes) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(body)).to_pylist()
    return rows


def by_key(rows: list[dict[str, Any]], key: str = "resident_id") -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(r[key],): r for r in rows}


def receipts(platform: Platform, grant: int) -> list[Delivery]:
    with platform.store.session() as s:
        return list(s.scalars(select(Delivery).where(Delivery.grant_id == grant).order_by(Delivery.id)))


def grant_row(platform: Platform, grant: int) -> Grant:
    with platform.store.session() as s:
        row = s.get(Grant, grant)
        assert row is not None
        return row


def add_webhook(platform: Platform, short: str) -> None:
    with platform.store.session() as s:
        s.add(
            Webhook(
                department_uscc=platform.departments[short],
                url="http://127.0.0.1:9/hook",
                secret="s" * 32,
                events=["version.delivered", "delivery.failed"],
                created_by=f"{short}_reviewer",
            )
        )


def notifications(platform: Platform, event: str) -> list[Notification]:
    with platform.store.session() as s:
        return list(s.scalars(select(Notification).where(Notification.event == event).order_by(Notification.id)))


# --- full versions ---------------------------------------------------------------------------------------


def test_full_download_is_the_masked_version_with_its_receipt(client: TestClient, platform: Platform) -> None:
    grant, _ = make_grant(platform)
    add_webhook(platform, "market")
    answer = download(client, platform, grant)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/vnd.apache.parquet"
    assert answer.headers["x-govdata-version"] == "1"
    assert answer.headers["x-govdata-kind"] == "full"
    assert int(answer.headers["x-govdata-rows"]) == platform.tables[HRSS].num_rows
    assert answer.headers["x-govdata-sha256"] == hashlib.sha256(answer.content).hexdigest()
    assert by_key(parquet_rows(answer.content)) == reference_rows(platform, platform.tables[HRSS])

    [receipt] = receipts(platform, grant)
    assert str(receipt.id) == answer.headers["x-govdata-receipt"]
    assert (receipt.mode, receipt.kind, receipt.version, receipt.base_version) == ("file", "full", 1, None)
    assert (receipt.outcome, receipt.attempts, receipt.format) == ("succeeded", 1, "parquet")
    assert receipt.sha256 == answer.headers["x-govdata-sha256"]
    assert receipt.rows == platform.tables[HRSS].num_rows and receipt.latency_ms is not None
    assert grant_row(platform, grant).last_version == 1
    assert grant_row(platform, grant).uses == 1
    with platform.store.session() as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "delivery.file")).all()
        assert event.subject == f"grant:{grant}" and event.actor == "market_staff"
        assert event.detail["receipt"] == receipt.id and event.detail["sha256"] == receipt.sha256
    [note] = notifications(platform, "version.delivered")
    assert note.payload["version"] == 1 and note.payload["grant"] == grant

    # Again: a second use, no second "new version" notification.
    again = download(client, platform, grant, full="true")
    assert again.status_code == 200 and again.headers["x-govdata-kind"] == "full"
    assert again.headers["x-govdata-sha256"] == answer.headers["x-govdata-sha256"]
    assert len(notifications(platform, "version.delivered")) == 1
    assert grant_row(platform, grant).uses == 2


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_changes_since_the_last_delivery_match_a_python_diff(client: TestClient, platform: Platform, fmt: str) -> None:
    grant, _ = make_grant(platform)
    first = download(client, platform, grant)
    assert first.status_code == 200
    v1 = platform.tables[HRSS]
    table, what = second_version(v1)
    assert publish(platform, HRSS, table) == 2

    answer = download(client, platform, grant, format=fmt)  # since: the last delivered (1)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-govdata-kind"] == "changes"
    assert answer.headers["x-govdata-version"] == "2"
    expected = reference_changes(reference_rows(platform, v1), reference_rows(platform, table))
    if fmt == "parquet":
        got_rows = parquet_rows(answer.content)
    else:
        assert answer.content.startswith(delivery.CSV_BOM)
        assert answer.headers["content-type"].startswith("text/csv")
        # Arrow reads it back to the very same table (types from the Parquet delivery of the same changes).
        same = download(client, platform, grant, since=1, format="parquet")
        schema = pq.read_table(io.BytesIO(same.content)).schema
        back = pa_csv.read_csv(
            io.BytesIO(answer.content),
            convert_options=pa_csv.ConvertOptions(
                column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
        )
        assert back.to_pylist() == parquet_rows(same.content)
        got_rows = back.to_pylist()
        text = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
        assert any("**" in r["name"] and len(r["name"]) >= 3 for r in text)  # Chinese survives
    ops = {(r["resident_id"],): (r["_op"], {k: v for k, v in r.items() if k != "_op"}) for r in got_rows}
    assert set(ops) == set(expected)
    for k, (op, row) in expected.items():
        assert ops[k][0] == op
        if row is None:
            assert all(v is None for c, v in ops[k][1].items() if c != "resident_id")
        else:
            assert ops[k][1] == row
    counts = {op: sum(1 for o, _ in expected.values() if o == op) for op in ("insert", "update", "delete")}
    assert counts == {"insert": len(what["inserted"]), "update": len(what["visible"]), "delete": len(what["deleted"])}
    assert [r["resident_id"] for r in got_rows] == sorted(r["resident_id"] for r in got_rows)  # ordered by key
    receipt = next(r for r in receipts(platform, grant) if r.format == fmt and r.kind == "changes")
    assert (receipt.inserted, receipt.updated, receipt.deleted) == (
        counts["insert"],
        counts["update"],
        counts["delete"],
    )
    assert (receipt.base_version, receipt.version) == (1, 2)
    assert grant_row(platform, grant).last_version == 2


def test_the_change_index_gives_the_same_deliveries_as_comparing_the_versions(
    client: TestClient, platform: Platform
) -> None:
    grant, _ = make_grant(platform)
    v1 = platform.tables[HRSS]
    table, what = second_version(v1)
    assert publish(platform, HRSS, table) == 2
    folder = platform.exchange.version_dir(HRSS, 2)
    index = changes.index_of(folder)
    assert index is not None and changes.index_of(platform.exchange.version_dir(HRSS, 1)) is None
    old_rows, new_rows = (pq.read_table(p) for p in index)
    # Only the rows that differ: every changed key, nothing else (v1's rows changed or deleted, v2's changed or new).
    assert old_rows.num_rows < v1.num_rows and new_rows.num_rows < table.num_rows
    assert old_rows.schema.names == new_rows.schema.names == table.schema.names
    assert set(what["inserted"]) <= set(new_rows.column("resident_id").to_pylist())
    assert set(what["deleted"]) <= set(old_rows.column("resident_id").to_pylist())
    assert not set(what["inserted"]) & set(old_rows.column("resident_id").to_pylist())

    def delivered(**params: Any) -> list[dict[str, Any]]:
        answer = download(client, platform, grant, **params)
        assert answer.status_code == 200, answer.text
        return parquet_rows(answer.content)

    with_index = delivered(since=1)
    for p in index:
        p.rename(p.with_name(p.name + ".aside"))
    assert changes.index_of(folder) is None
    assert delivered(since=1) == with_index  # compared in full: the same rows
    expected = reference_changes(reference_rows(platform, v1), reference_rows(platform, table))
    assert {(r["resident_id"],) for r in with_index} == set(expected)
    for p in index:
        p.with_name(p.name + ".aside").rename(p)

    # Two versions on: v3's index is against v2, so changes since 1 compare v1 and v3 in full.
    table3 = table.slice(5)  # five more rows deleted
    assert publish(platform, HRSS, table3) == 3
    across = delivered(since=1)
    expected = reference_changes(reference_rows(platform, v1), reference_rows(platform, table3))
    assert {(r["resident_id"],) for r in across} == set(expected)


def test_no_change_index_when_the_columns_change(tmp_path: Path) -> None:
    first, second = tmp_path / "v1.parquet", tmp_path / "v2.parquet"
    pq.write_table(pa.table({"id": [1, 2], "v": ["a", "b"]}), first)
    pq.write_table(pa.table({"id": [1, 2], "v": ["a", "c"], "w": [1, 1]}), second)
    assert not changes.build_index(first, second, ["id"], tmp_path)
    pq.write_table(pa.table({"id": [1, 2], "v": [1, 2]}), second)  # another type the old values do not cast to
    assert not changes.build_index(first, second, ["id"], tmp_path)
    assert changes.index_of(tmp_path) is None
    assert not changes.build_index(first, second, [], tmp_path)
    pq.write_table(pa.table({"id": [1, 3], "v": ["a", "c"]}), second)
    assert changes.build_index(first, second, ["id"], tmp_path)
    assert pq.read_table(tmp_path / changes.OLD_FILE).to_pylist() == [{"id": 2, "v": "b"}]
    assert pq.read_table(tmp_path / changes.NEW_FILE).to_pylist() == [{"id": 3, "v": "c"}]
    # A wider type (as a sum widens a DECIMAL): compared as the delivery compares, old values cast.
    narrow, wide = tmp_path / "narrow.parquet", tmp_path / "wide.parquet"
    pq.write_table(pa.table({"id": pa.array([1, 2, 3], pa.int32()), "v": pa.array([1, 2, 3], pa.int32())}), narrow)
    pq.write_table(pa.table({"id": pa.array([1, 2, 4], pa.int64()), "v": pa.array([1, 5, 4], pa.int64())}), wide)
    assert changes.build_index(narrow, wide, ["id"], tmp_path / "widened")
    assert pq.read_table(tmp_path / "widened" / changes.OLD_FILE).to_pylist() == [{"id": 2, "v": 2}, {"id": 3, "v": 3}]
    assert pq.read_table(tmp_path / "widened" / changes.NEW_FILE).to_pylist() == [{"id": 2, "v": 5}, {"id": 4, "v": 4}]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    assert not changes.build_index(first, tmp_path / "bad.parquet", ["id"], tmp_path / "other")


def test_changes_follow_only_granted_items(client: TestClient, platform: Platform) -> None:
    items = ["resident_id", "name", "gender"]
    grant, _ = make_grant(platform, items=items)
    assert download(client, platform, grant).status_code == 200
    table, what = second_version(platform.tables[HRSS])
    publish(platform, HRSS, table)
    answer = download(client, platform, grant)
    rows = parquet_rows(answer.content)
    assert set(rows[0]) == {*items, "_op"}
    # status, contribution and mobile changes are invisible here; the names masked the same.
    assert {r["_op"] for r in rows} == {"insert", "delete"}
    assert len(rows) == len(what["inserted"]) + len(what["deleted"])


def test_since_full_and_versions_listing(client: TestClient, platform: Platform) -> None:
    grant, _ = make_grant(platform)
    table, _ = second_version(platform.tables[HRSS])
    publish(platform, HRSS, table)
    listing = client.get(f"{V1}/grants/{grant}/versions", headers=platform.auth("market_staff")).json()
    assert listing["latest"] == 2 and listing["last_delivered"] is None and listing["state"] == "active"
    assert [(v["version"], v["delivered"]) for v in listing["versions"]] == [(1, False), (2, False)]

    first = download(client, platform, grant)  # nothing delivered yet: the full latest version
    assert first.headers["x-govdata-kind"] == "full" and first.headers["x-govdata-version"] == "2"
    nothing = download(client, platform, grant)  # since 2, up to 2: an empty change set
    assert nothing.headers["x-govdata-kind"] == "changes" and nothing.headers["x-govdata-rows"] == "0"
    assert parquet_rows(nothing.content) == []
    old = download(client, platform, grant, version=1)
    assert old.headers["x-govdata-version"] == "1"
    changes = download(client, platform, grant, since=1)
    assert changes.headers["x-govdata-kind"] == "changes" and int(changes.headers["x-govdata-rows"]) > 0
    listing = client.get(f"{V1}/grants/{grant}/versions", headers=platform.auth("city_admin")).json()
    assert listing["last_delivered"] == 2  # a download of an older version does not take it back
    assert [(v["version"], v["delivered"]) for v in listing["versions"]] == [(1, True), (2, True)]


def test_empty_csv_has_a_header_and_the_bom(client: TestClient, platform: Platform) -> None:
    grant, _ = make_grant(platform, items=["resident_id", "name"])
    assert download(client, platform, grant).status_code == 200
    empty = download(client, platform, grant, format="csv")
    assert empty.headers["x-govdata-rows"] == "0"
    assert empty.content == delivery.CSV_BOM + b'"resident_id","name","_op"\n'


# --- who may download, and when ---------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["transport_staff", "hrss_reviewer", "auditor", "city_admin"])
def test_other_departments_get_404(client: TestClient, platform: Platform, user: str) -> None:
    grant, _ = make_grant(platform)
    answer = download(client, platform, grant, user=user)
    assert answer.status_code == 404, answer.text
    assert receipts(platform, grant) == []
    assert grant_row(platform, grant).uses == 0


def test_a_token_without_the_deliver_scope_is_refused(client: TestClient, platform: Platform) -> None:
    grant, _ = make_grant(platform)
    token = client.post(
        f"{V1}/tokens", json={"name": "read-only", "scopes": ["catalog:read"]}, headers=platform.auth("market_staff")
    ).json()["token"]
    answer = client.get(f"{V1}/grants/{grant}/download", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403 and "exchange:deliver" in answer.json()["error"]
    assert client.get(f"{V1}/grants/{grant}/download").status_code == 401


@pytest.mark.parametrize(
    ("change", "word"),
    [
        (
            {"revoked_at": NOW - dt.timedelta(hours=1), "revoked_by": "hrss_reviewer", "revoke_reason": "用途变更"},
            "revoked",
        ),
        ({"expires_at": NOW - dt.timedelta(seconds=1)}, "expired"),
        ({"max_uses": 3, "uses": 3}, "exhausted"),
    ],
)
def test_revoked_expired_and_exhausted_grants_deliver_nothing(
    client: TestClient, platform: Platform, change: dict[str, Any], word: str
) -> None:
    grant, _key = make_grant(platform, max_uses=3)
    with platform.store.session() as s:
        row = s.get(Grant, grant)
        assert row is not None
        for name, value in change.items():
            setattr(row, name, value)
    answer = download(client, platform, grant)
    assert answer.status_code == 409
    assert word in answer.json()["error"]
    if word == "revoked":
        assert "用途变更" in answer.json()["error"]
    assert receipts(platform, grant) == []
    with platform.store.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action.like("delivery.%"))) == 0


def test_the_cap_on_uses_holds_and_uses_are_taken_atomically(client: TestClient, platform: Platform) -> None:
    grant, _ = make_grant(platform, max_uses=2)
    assert download(client, platform, grant).status_code == 200
    assert download(client, platform, grant).status_code == 200
    third = download(client, platform, grant)
    assert third.status_code == 409 and "exhausted" in third.json()["error"]
    assert grant_row(platform, grant).uses == 2

    racing, _ = make_grant(platform, max_uses=5)
    outcomes: list[str] = []

    def take() -> None:
        try:
            with platform.store.session() as s:
                delivery.consume_use(s, racing, dt.datetime.now(dt.UTC))
            outcomes.append("ok")
        except delivery.Conflict as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=take) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 5
    assert all("exhausted" in o for o in outcomes if o != "ok")
    assert grant_row(platform, racing).uses == 5


def test_a_grant_for_another_method_does_not_download(client: TestClient, platform: Platform) -> None:
    grant, _ = make_grant(platform, method="api", api_key=True)
    answer = download(client, platform, grant)
    assert answer.status_code == 409 and "data API" in answer.json()["error"]


@pytest.mark.parametrize(
    "params",
    [
        {"format": "xml"},
        {"format": ""},
        {"since": "-1"},
        {"since": "abc"},
        {"since": str(2**63)},
        {"version": "0"},
        {"version": "1e3"},
        {"since": "1", "full": "true"},
        {"full": "maybe"},
        {"since": "7"},
        {"version": "9"},
        {"format": "../../etc/passwd"},
    ],
)
def test_hostile_parameters_are_refused_with_422(
    client: TestClient, platform: Platform, params: dict[str, str]
) -> None:
    grant, _ = make_grant(platform)
    answer = download(client, platform, grant, **params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]
    assert grant_row(platform, grant).uses == 0


@pytest.mark.parametrize("path", ["0", "-1", str(2**31), "abc", "1%00", "99999"])
def test_hostile_grant_ids(client: TestClient, platform: Platform, path: str) -> None:
    answer = client.get(f"{V1}/grants/{path}/download", headers=platform.auth("market_staff"))
    assert answer.status_code in (404, 422), answer.text


def test_since_after_the_version_is_refused(client: TestClient, platform: Platform) -> None:
    grant, _ = make_grant(platform)
    publish(platform, HRSS, second_version(platform.tables[HRSS])[0])
    answer = download(client, platform, grant, since=2, version=1)
    assert answer.status_code == 422 and "since=2" in answer.json()["error"]


# --- masking ---------------------------------------------------------------------------------------------------


def test_hashed_keys_join_within_a_subscriber_and_differ_between_subscribers(
    client: TestClient, platform: Platform
) -> None:
    items = ["resident_id", "gender"]
    mine, _ = make_grant(platform, items=items)
    mine_too, _ = make_grant(platform, items=["resident_id", "insured_status"])
    theirs, _ = make_grant(platform, items=items, subscriber="transport")
    a = {r["resident_id"] for r in parquet_rows(download(client, platform, mine).content)}
    b = {r["resident_id"] for r in parquet_rows(download(client, platform, mine_too).content)}
    c = {r["resident_id"] for r in parquet_rows(download(client, platform, theirs, user="transport_staff").content)}
    assert a == b  # one subscriber joins its grants
    assert not a & c  # two subscribers cannot link their copies
    assert all(len(v) == 64 for v in a | c)
    clear = {r["resident_id"] for r in platform.tables[HRSS].to_pylist()}
    assert not (a | c) & clear


def test_without_a_masking_key_a_hashed_key_is_refused_and_recorded(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MASKING_KEY_ENV)
    hashed, _ = make_grant(platform, items=["resident_id", "gender"])
    answer = download(client, platform, hashed)
    assert answer.status_code == 422 and MASKING_KEY_ENV in answer.json()["error"] + answer.json()["hint"]
    [receipt] = receipts(platform, hashed)
    assert receipt.outcome == "failed" and MASKING_KEY_ENV in (receipt.error or "")
    assert grant_row(platform, hashed).uses == 0
    # Nothing hashed: delivered as usual.
    clear, _ = make_grant(platform, entry=MARKET, items=["uscc", "enterprise_name", "legal_representative"])
    assert download(client, platform, clear).status_code == 200


def test_a_grant_in_clear_delivers_clear_values(client: TestClient, platform: Platform) -> None:
    items = ["resident_id", "name", "mobile"]
    grant, _ = make_grant(platform, items=items, masking={"resident_id": None, "name": None, "mobile": None})
    rows = parquet_rows(download(client, platform, grant).content)
    source = {r["resident_id"]: r for r in platform.tables[HRSS].to_pylist()}
    assert all(source[r["resident_id"]]["name"] == r["name"] for r in rows)


# --- receipts ----------------------------------------------------------------------------------------------------


def test_receipts_are_listed_per_department_with_filters(client: TestClient, platform: Platform) -> None:
    market_grant, _ = make_grant(platform)
    transport_grant, _ = make_grant(platform, subscriber="transport")
    for _ in range(3):
        assert download(client, platform, market_grant).status_code == 200
    assert download(client, platform, transport_grant, user="transport_staff").status_code == 200

    def listing(user: str, **params: Any) -> dict[str, Any]:
        answer = client.get(f"{V1}/deliveries", params=params, headers=platform.auth(user))
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    market = listing("market_staff")
    assert market["total"] == 3 and {r["grant"] for r in market["items"]} == {market_grant}
    assert [r["id"] for r in market["items"]] == sorted((r["id"] for r in market["items"]), reverse=True)
    assert listing("transport_staff")["total"] == 1
    assert listing("hrss_reviewer")["total"] == 4  # the provider sees the deliveries of its data
    assert listing("city_admin")["total"] == 4 and listing("auditor")["total"] == 4
    assert listing("city_admin", grant=transport_grant)["total"] == 1
    assert listing("market_staff", grant=transport_grant)["total"] == 0
    assert listing("city_admin", outcome="failed")["total"] == 0
    page = listing("city_admin", limit=2, offset=1)
    assert len(page["items"]) == 2 and page["total"] == 4
    for bad in ({"limit": "0"}, {"limit": "501"}, {"outcome": "done"}, {"offset": "-1"}, {"grant": "x"}):
        assert client.get(f"{V1}/deliveries", params=bad, headers=platform.auth("city_admin")).status_code == 422
