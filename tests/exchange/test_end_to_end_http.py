"""The exchange end to end over real HTTP on loopback: publish → apply → review → grant → deliver → revoke.

Issue 5's acceptance test. A real ``uvicorn`` server of ``create_app(home)`` listens on a free
loopback port (in a thread); everything after the platform's setup goes through it with httpx,
as departments on other machines would:

1. 人社 (hrss) and 市场监管 (market) publish a version from their own pipeline workspaces by the
   pipeline's remote publish (``GOVDATA_EXCHANGE_URL`` and ``GOVDATA_EXCHANGE_TOKEN``:
   :func:`exchange.publishing.target`, chunked uploads and the commit);
2. market applies for hrss's insured persons by file, with masked items; 交通 (transport) applies
   for market's enterprises by database (a SQLite file, or the machine's PostgreSQL) and for hrss's
   insured persons by the data API; the providers' reviewers approve through the API and the
   grants appear for the subscribers;
3. each mode delivers the version in full: a file download, ``POST /grants/{id}/deliver``, the
   data API's pages with ``X-Grant-Key``;
4. both providers publish a next version with rows changed, added and deleted: the incremental
   download holds exactly the changes, the database target equals the new version, the data API
   shows it;
5. the grants are revoked and the providers publish once more: no mode delivers anything (409,
   the grant's state), the target table is unchanged.

Every delivered output (full and incremental files, Parquet and CSV, the target table, the API's
pages) is scanned for the clear values of the masked items, with a control scan of the provider's
own data that must find them. The receipts are checked against what was delivered, the audit log
holds every step and ``govdata audit verify`` passes.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy import select
from typer.testing import CliRunner

from catalog.models import AuditEvent, Version
from exchange import publishing
from exchange.calendar import FALLBACK_ENV, SHANGHAI
from exchange.delivery import subscriber_key
from exchange.delivery_masking import plan_rules
from exchange.service import create_app
from pipelines.cli import app as cli
from pipelines.masking import MASKING_KEY_ENV, mask
from pipelines.workspace import Workspace
from tests.exchange.conftest_exchange import (
    HRSS,
    MARKET,
    Platform,
    build_platform,
    generated_rows,
    manifest_for,
    use_object_store,
)

API = "/exchange/v1"
TARGET_ENV = "TRANSPORT_FRONT_DB_URL"  # the subscriber's front-end database (前置机)
FILE_ITEMS = ["resident_id", "name", "mobile", "address", "insured_status", "contribution_base"]
API_ITEMS = ["resident_id", "name", "gender", "insured_status"]
DB_ITEMS = ["uscc", "enterprise_name", "legal_representative", "status", "district_code", "established_on"]
#: The masked items, whose clear values must appear in no delivered output.
SECRET_ITEMS = {HRSS: ("resident_id", "name", "mobile", "address"), MARKET: ("legal_representative",)}
REVOKED = 409


# --- the server ----------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


@pytest.fixture(params=["local-store", pytest.param("object-store", marks=pytest.mark.integration)])
def platform(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """The platform; its versions in the workspace's folder, or in a bucket of the test S3 server."""
    monkeypatch.delenv("GOVDATA_STORE_URL", raising=False)
    if request.param == "object-store":
        use_object_store(request.getfixturevalue("s3_server"), monkeypatch)
    for name in ("GOVDATA_USER", "GOVDATA_CATALOG_URL", "GOVDATA_HOME", "GOVDATA_DELIVERY_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(FALLBACK_ENV, "weekends")  # review deadlines near a year's end: see test_applications
    monkeypatch.setenv(MASKING_KEY_ENV, "end-to-end-masking-key")
    monkeypatch.setenv("GOVDATA_DELIVERY_BACKOFF", "0")
    return build_platform(tmp_path / "exchange", rows=5)


@pytest.fixture
def server(platform: Platform) -> Iterator[Server]:
    """``create_app(home)`` served by uvicorn on a free loopback port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(platform.home), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20  # a readiness wait, not a timed assertion
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield Server(f"http://127.0.0.1:{port}", server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def target_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """transport's front-end database: a SQLite file, or a schema of its own in the machine's PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'transport-front.db'}"
        monkeypatch.setenv(TARGET_ENV, url)
        yield url
        return
    base: str = request.getfixturevalue("postgres_url")
    schema = f"e2e_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    monkeypatch.setenv(TARGET_ENV, url)
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


# --- the departments' side ------------------------------------------------------------------------------


class Department:
    """One department's user talking to the exchange over HTTP."""

    def __init__(self, server: Server, platform: Platform, user: str) -> None:
        self.user = user
        self.http = httpx.Client(base_url=server.url + API, headers=platform.auth(user), timeout=60)

    def get(self, path: str, status: int = 200, **kwargs: Any) -> httpx.Response:
        answer = self.http.get(path, **kwargs)
        assert answer.status_code == status, f"{self.user} GET {path}: {answer.status_code} {answer.text[:500]}"
        return answer

    def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        answer = self.http.post(path, json=body)
        assert answer.status_code == status, f"{self.user} POST {path}: {answer.status_code} {answer.text[:500]}"
        return answer.json()


def publish_remotely(
    server: Server, platform: Platform, pipeline_home: Path, user: str, table: pa.Table, run: str
) -> int:
    """Publish ``table`` the way a department's pipeline does in remote mode; returns the new version."""
    spec = platform.specs[HRSS if user.startswith("hrss") else MARKET]
    workspace = Workspace.from_env(pipeline_home)
    data = pipeline_home / "staging" / f"{spec.id}-{run}.parquet"
    data.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.select([c.name for c in spec.columns]), data)
    prepared = publishing.PreparedVersion.model_validate(
        manifest_for(spec, data.read_bytes(), rows=table.num_rows, run_id=run, source=f"{spec.id} business system")
    )
    environ = {
        publishing.EXCHANGE_URL_ENV: server.url,
        publishing.EXCHANGE_TOKEN_ENV: platform.tokens[user],
    }
    with publishing.target(workspace, environ) as target:
        assert isinstance(target, publishing.RemoteTarget)
        outcome = target.publish(spec, prepared, data)
    assert outcome.status == "published", outcome
    assert outcome.version is not None
    platform.tables[spec.id] = table
    return outcome.version


# --- the data ---------------------------------------------------------------------------------------------


SURNAMES = "张王李赵刘陈杨黄周吴"
GIVEN = ["伟", "芳", "秀英", "建国", "丽娟", "志强", "海燕", "晓明"]


def hrss_rows(platform: Platform, n: int) -> pa.Table:
    table = generated_rows(platform.specs[HRSS], n, seed=101)
    rows = table.to_pylist()
    for i, row in enumerate(rows):
        row["name"] = SURNAMES[i % 10] + GIVEN[i % 8]
        row["mobile"] = f"139{i:04d}{(7 * i) % 10000:04d}"
    return pa.Table.from_pylist(rows, schema=table.schema)


def market_rows(platform: Platform, n: int) -> pa.Table:
    table = generated_rows(platform.specs[MARKET], n, seed=202)
    rows = table.to_pylist()
    for i, row in enumerate(rows):
        row["legal_representative"] = SURNAMES[(i + 3) % 10] + GIVEN[(i + 5) % 8]
    return pa.Table.from_pylist(rows, schema=table.schema)


def next_hrss(table: pa.Table) -> tuple[pa.Table, dict[str, list[str]]]:
    """hrss's next version: 3 rows deleted, 4 updated (visibly), 1 updated only where the mask hides it, 4 inserted."""
    rows = table.to_pylist()
    ids = [r["resident_id"] for r in rows]
    deleted, updated, hidden = ids[:3], ids[5:9], ids[12]
    out = []
    for row in rows:
        if row["resident_id"] in deleted:
            continue
        row = dict(row)
        if row["resident_id"] in updated:
            row["insured_status"] = "3"
            row["contribution_base"] = round(row["contribution_base"] + 100.5, 2)
        if row["resident_id"] == hidden:  # new middle digits: masks to the same 139****nnnn
            row["mobile"] = row["mobile"][:3] + "0000" + row["mobile"][7:]
        out.append(row)
    inserted = [f"3101{800_000 + i:014d}" for i in range(4)]
    for i, rid in enumerate(inserted):
        out.append(
            {
                **rows[-1],
                "resident_id": rid,
                "name": "欧阳" + GIVEN[i],
                "mobile": f"1380000{i:04d}",
                "address": f"上海市徐汇区漕溪北路{i + 1}号",
            }
        )
    changed = {"deleted": deleted, "updated": updated, "inserted": inserted, "hidden": [hidden]}
    return pa.Table.from_pylist(out, schema=table.schema), changed


def next_market(table: pa.Table) -> pa.Table:
    rows = table.to_pylist()
    out = [dict(r) for r in rows[2:]]  # 2 deleted
    for row in out[:3]:  # 3 updated
        row["status"] = "注销"
    for i in range(3):  # 3 inserted
        out.append({**rows[-1], "uscc": f"USCC9{i:07d}", "legal_representative": "司马" + GIVEN[i]})
    return pa.Table.from_pylist(out, schema=table.schema)


# --- references and normal forms ---------------------------------------------------------------------------


def norm(value: Any) -> Any:
    """One value as all outputs can be compared: dates and times as ISO text, numbers to 2 decimals."""
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (float, decimal.Decimal)) and not isinstance(value, bool):
        return f"{float(value):.2f}"
    return value


def normal(row: Mapping[str, Any], items: Sequence[str]) -> dict[str, Any]:
    return {k: norm(row[k]) for k in items}


def reference(
    platform: Platform, entry: str, table: pa.Table, items: Sequence[str], masking: Mapping[str, Any], subscriber: str
) -> dict[str, dict[str, Any]]:
    """``table`` as ``subscriber`` must receive it, masked value by value in Python, by the delivered key."""
    version = platform.store.latest_version(entry)
    assert version is not None
    delivered, plan, _ = plan_rules(list(version.schema), list(items), dict(masking))
    key = subscriber_key(platform.departments[subscriber])
    pk = platform.specs[entry].primary_key[0]
    out = {}
    for row in table.to_pylist():
        masked = {c: row[c] if plan[c] is None else mask(row[c], plan[c], key=key) for c in delivered}
        out[str(masked[pk])] = normal(masked, delivered)
    return out


def changes(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    found: dict[str, tuple[str, Any]] = {}
    for k, row in new.items():
        if k not in old:
            found[k] = ("insert", row)
        elif old[k] != row:
            found[k] = ("update", row)
    for k in old:
        if k not in new:
            found[k] = ("delete", None)
    return found


def parquet_rows(content: bytes) -> list[dict[str, Any]]:
    return pq.read_table(io.BytesIO(content)).to_pylist()


def csv_rows(content: bytes) -> list[dict[str, str]]:
    assert content.startswith(b"\xef\xbb\xbf"), "CSV deliveries are UTF-8 with a BOM"
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def target_rows(url: str, table: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {table}"))]
    finally:
        engine.dispose()


class Scan:
    """The clear values of the masked items, looked for in every delivered output (as text)."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.outputs = 0

    def learn(self, entry: str, table: pa.Table) -> None:
        for item in SECRET_ITEMS[entry]:
            self.secrets |= {str(v) for v in table.column(item).to_pylist() if v}

    def hits(self, values: Any) -> set[str]:
        text = "\n".join(str(v) for v in values if v is not None)
        return {s for s in self.secrets if s in text}

    def check(self, what: str, rows: Sequence[Mapping[str, Any]]) -> None:
        assert rows, f"{what}: nothing delivered to scan"
        found = self.hits(v for row in rows for v in row.values())
        assert not found, f"{what}: {len(found)} masked value(s) delivered in clear, e.g. {sorted(found)[0][:2]}…"
        self.outputs += 1


# --- the scenario ------------------------------------------------------------------------------------------------


def until(days: int = 200) -> str:
    return (dt.datetime.now(SHANGHAI).date() + dt.timedelta(days=days)).isoformat()


def application(entry: str, items: Sequence[str], method: str, **extra: Any) -> dict[str, Any]:
    return {
        "entry": entry,
        "items": list(items),
        "purpose": "跨部门数据核验",
        "scenario": "端到端验收测试",
        "delivery_method": method,
        "end_date": until(),
        **extra,
    }


def walk(server: Server, grant: int, key: str, size: int = 7) -> tuple[list[dict[str, Any]], set[int], str]:
    """Every page of the data API with the grant's key; the rows, the versions seen and the raw text."""
    rows: list[dict[str, Any]] = []
    versions: set[int] = set()
    texts: list[str] = []
    cursor = None
    with httpx.Client(base_url=server.url + API, timeout=60) as anonymous:
        for _ in range(100):
            params: dict[str, Any] = {"page_size": size, **({"cursor": cursor} if cursor else {})}
            answer = anonymous.get(f"/data/{grant}", params=params, headers={"X-Grant-Key": key})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            rows += body["rows"]
            versions.add(body["version"])
            texts.append(answer.text)
            cursor = body["next_cursor"]
            if cursor is None:
                return rows, versions, "\n".join(texts)
    raise AssertionError("the data API never reached its last page")


def by_key(rows: Sequence[Mapping[str, Any]], key: str, items: Sequence[str]) -> dict[str, dict[str, Any]]:
    out = {str(r[key]): normal(r, items) for r in rows}
    assert len(out) == len(rows), "a key delivered twice"
    return out


def receipts(dept: Department, grant: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = dept.get("/deliveries", params={"grant": grant, "limit": 500}).json()["items"]
    assert {r["grant"] for r in items} <= {grant}
    return sorted(items, key=lambda r: r["id"])


def test_publish_apply_review_deliver_update_revoke_over_http(
    platform: Platform, server: Server, target_url: str, tmp_path: Path
) -> None:
    hrss_staff, hrss_reviewer = (
        Department(server, platform, "hrss_staff"),
        Department(server, platform, "hrss_reviewer"),
    )
    market_staff = Department(server, platform, "market_staff")
    market_reviewer = Department(server, platform, "market_reviewer")
    transport_staff = Department(server, platform, "transport_staff")
    scan = Scan()

    # 1. hrss and market publish from their own pipelines, over HTTP.
    health = httpx.get(server.url + "/healthz", timeout=10)
    assert health.json()["status"] == "ok"
    hrss_v = [
        publish_remotely(
            server, platform, tmp_path / "hrss-pipeline", "hrss_staff", hrss_rows(platform, 30), "2026-11-01"
        )
    ]
    market_v = [
        publish_remotely(
            server, platform, tmp_path / "market-pipeline", "market_staff", market_rows(platform, 25), "2026-11-01"
        )
    ]
    scan.learn(HRSS, platform.tables[HRSS])
    scan.learn(MARKET, platform.tables[MARKET])
    latest = hrss_staff.get(f"/publishing/{HRSS}/latest").json()["version"]
    assert latest["number"] == hrss_v[0] and latest["rows"] == 30
    control = hrss_staff.get(f"/publishing/{HRSS}/versions/{hrss_v[0]}/data").content
    assert len(scan.hits(v for r in parquet_rows(control) for v in r.values())) >= 30, "the scan finds clear values"

    # 2. Apply, review, grant.
    file_app = market_staff.post("/applications", application(HRSS, FILE_ITEMS, "file"), status=201)
    db_app = transport_staff.post(
        "/applications",
        application(MARKET, DB_ITEMS, "database", target={"url_env": TARGET_ENV, "table": "enterprises"}),
        status=201,
    )
    api_app = transport_staff.post("/applications", application(HRSS, API_ITEMS, "api"), status=201)
    assert {a["status"] for a in (file_app, db_app, api_app)} == {"pending"}
    assert {a["id"] for a in hrss_reviewer.get("/reviews/pending").json()} == {file_app["id"], api_app["id"]}
    assert {a["id"] for a in market_reviewer.get("/reviews/pending").json()} == {db_app["id"]}
    file_masking = {"mobile": "mobile", "contribution_base": None}  # the rest: the default rule of each item
    decided = hrss_reviewer.post(
        f"/applications/{file_app['id']}/decision",
        {"decision": "approve", "opinion": "同意，按最小必要原则脱敏", "masking": file_masking},
    )
    file_grant = decided["grant"]["id"]
    assert decided["application"]["status"] == "approved" and decided["application"]["grant_id"] == file_grant
    db_grant = market_reviewer.post(f"/applications/{db_app['id']}/decision", {"decision": "approve"})["grant"]["id"]
    api_grant = hrss_reviewer.post(f"/applications/{api_app['id']}/decision", {"decision": "approve"})["grant"]["id"]
    held = {g["id"]: g for g in market_staff.get("/grants", params={"role": "held"}).json()["items"]}
    assert set(held) == {file_grant} and held[file_grant]["state"] == "active"
    assert sorted(held[file_grant]["items"]) == sorted(FILE_ITEMS) and held[file_grant]["masking"] == file_masking
    held = {g["id"]: g for g in transport_staff.get("/grants", params={"role": "held"}).json()["items"]}
    assert set(held) == {db_grant, api_grant} and {g["state"] for g in held.values()} == {"active"}
    given = {g["id"] for g in hrss_reviewer.get("/grants", params={"role": "given"}).json()["items"]}
    assert given == {file_grant, api_grant}

    # 3. Every mode delivers the version in full.
    file_ref = [reference(platform, HRSS, platform.tables[HRSS], FILE_ITEMS, file_masking, "market")]
    full = market_staff.get(f"/grants/{file_grant}/download")
    assert (full.headers["X-Govdata-Kind"], int(full.headers["X-Govdata-Version"])) == ("full", hrss_v[0])
    assert full.headers["X-Govdata-Sha256"] == hashlib.sha256(full.content).hexdigest()
    delivered = parquet_rows(full.content)
    assert int(full.headers["X-Govdata-Rows"]) == len(delivered) == 30
    assert by_key(delivered, "resident_id", FILE_ITEMS) == file_ref[0]
    scan.check("full file", delivered)
    as_csv = market_staff.get(f"/grants/{file_grant}/download", params={"format": "csv", "full": "true"})
    scan.check("full file, CSV", csv_rows(as_csv.content))

    db_ref = [reference(platform, MARKET, platform.tables[MARKET], DB_ITEMS, {}, "transport")]
    receipt = transport_staff.post(f"/grants/{db_grant}/deliver")
    assert (receipt["outcome"], receipt["kind"], receipt["version"], receipt["rows"]) == (
        "succeeded",
        "full",
        market_v[0],
        25,
    )
    in_target = target_rows(target_url, "enterprises")
    assert by_key(in_target, "uscc", DB_ITEMS) == db_ref[0]
    scan.check("database target", in_target)

    key = transport_staff.post(f"/grants/{api_grant}/key", status=201)["key"]
    api_ref = [reference(platform, HRSS, platform.tables[HRSS], API_ITEMS, {}, "transport")]
    rows, versions, text = walk(server, api_grant, key)
    assert versions == {hrss_v[0]} and by_key(rows, "resident_id", API_ITEMS) == api_ref[0]
    scan.check("data API", rows)
    assert not scan.hits([text])
    # One subscriber's hashed keys are not another's: the two grants of hrss data do not join.
    assert not set(file_ref[0]) & set(api_ref[0])

    # 4. A next version: the changes, exactly; the target equals it; the API shows it.
    hrss_base = platform.tables[HRSS]
    hrss_next, changed = next_hrss(hrss_base)
    hrss_v.append(publish_remotely(server, platform, tmp_path / "hrss-pipeline", "hrss_staff", hrss_next, "2026-11-02"))
    market_v.append(
        publish_remotely(
            server,
            platform,
            tmp_path / "market-pipeline",
            "market_staff",
            next_market(platform.tables[MARKET]),
            "2026-11-02",
        )
    )
    scan.learn(HRSS, platform.tables[HRSS])
    scan.learn(MARKET, platform.tables[MARKET])
    versions_seen = market_staff.get(f"/grants/{file_grant}/versions").json()
    assert (versions_seen["latest"], versions_seen["last_delivered"]) == (hrss_v[1], hrss_v[0])

    file_ref.append(reference(platform, HRSS, platform.tables[HRSS], FILE_ITEMS, file_masking, "market"))
    expected = changes(file_ref[0], file_ref[1])
    # The reference's keys are the hashed resident IDs, row by row: which clear ID each one is.
    hashed = dict(zip(hrss_base.column("resident_id").to_pylist(), file_ref[0], strict=True))
    hashed |= dict(zip(hrss_next.column("resident_id").to_pylist(), file_ref[1], strict=True))
    by_op = {op: {k for k, (o, _) in expected.items() if o == op} for op in ("delete", "update", "insert")}
    assert by_op == {
        "delete": {hashed[r] for r in changed["deleted"]},
        "update": {hashed[r] for r in changed["updated"]},
        "insert": {hashed[r] for r in changed["inserted"]},
    }
    assert hashed[changed["hidden"][0]] not in expected  # new mobile digits the mask hides: no change here
    increment = market_staff.get(f"/grants/{file_grant}/download")
    assert increment.headers["X-Govdata-Kind"] == "changes"
    assert int(increment.headers["X-Govdata-Version"]) == hrss_v[1]
    got_changes = parquet_rows(increment.content)
    assert int(increment.headers["X-Govdata-Rows"]) == len(got_changes)
    got = {
        str(r["resident_id"]): (r["_op"], None if r["_op"] == "delete" else normal(r, FILE_ITEMS)) for r in got_changes
    }
    assert got == expected
    assert sorted(op for op, _ in got.values()) == ["delete"] * 3 + ["insert"] * 4 + ["update"] * 4
    scan.check("incremental file", got_changes)
    changes_csv = market_staff.get(f"/grants/{file_grant}/download", params={"format": "csv", "since": hrss_v[0]})
    assert len(csv_rows(changes_csv.content)) == len(expected)
    scan.check("incremental file, CSV", csv_rows(changes_csv.content))

    receipt = transport_staff.post(f"/grants/{db_grant}/deliver")
    db_ref.append(reference(platform, MARKET, platform.tables[MARKET], DB_ITEMS, {}, "transport"))
    db_changes = changes(db_ref[0], db_ref[1])
    assert (receipt["outcome"], receipt["version"]) == ("succeeded", market_v[1])
    assert (
        (receipt["inserted"], receipt["updated"], receipt["deleted"])
        == tuple(sum(op == kind for op, _ in db_changes.values()) for kind in ("insert", "update", "delete"))
        == (3, 3, 2)
    )
    in_target = target_rows(target_url, "enterprises")
    assert by_key(in_target, "uscc", DB_ITEMS) == db_ref[1]
    scan.check("database target, next version", in_target)

    api_ref.append(reference(platform, HRSS, platform.tables[HRSS], API_ITEMS, {}, "transport"))
    rows, versions, text = walk(server, api_grant, key)
    assert versions == {hrss_v[1]} and by_key(rows, "resident_id", API_ITEMS) == api_ref[1]
    scan.check("data API, next version", rows)
    assert not scan.hits([text])

    # The receipts say what was delivered.
    file_receipts = receipts(market_staff, file_grant)
    assert [(r["kind"], r["version"], r["base_version"], r["outcome"]) for r in file_receipts] == [
        ("full", hrss_v[0], None, "succeeded"),
        ("full", hrss_v[0], None, "succeeded"),
        ("changes", hrss_v[1], hrss_v[0], "succeeded"),
        ("changes", hrss_v[1], hrss_v[0], "succeeded"),
    ]
    assert file_receipts[0]["sha256"] == full.headers["X-Govdata-Sha256"] and file_receipts[0]["rows"] == 30
    assert file_receipts[2]["sha256"] == increment.headers["X-Govdata-Sha256"]
    assert (file_receipts[2]["inserted"], file_receipts[2]["updated"], file_receipts[2]["deleted"]) == (4, 4, 3)
    assert [r["format"] for r in file_receipts] == ["parquet", "csv", "parquet", "csv"]
    db_receipts = receipts(transport_staff, db_grant)
    assert [(r["mode"], r["kind"], r["version"], r["outcome"]) for r in db_receipts] == [
        ("database", "full", market_v[0], "succeeded"),
        ("database", "changes", market_v[1], "succeeded"),
    ]
    api_receipts = receipts(transport_staff, api_grant)
    assert [(r["mode"], r["version"], r["rows"], r["outcome"]) for r in api_receipts] == [
        ("api", hrss_v[0], 30, "succeeded"),
        ("api", hrss_v[1], 31, "succeeded"),
    ]
    # The provider sees the receipts of its data; the third department none of them.
    assert {r["id"] for r in receipts(hrss_reviewer, file_grant)} == {r["id"] for r in file_receipts}
    assert receipts(Department(server, platform, "transport_reviewer"), file_grant) == []

    # 5. Revoke: nothing more is delivered, by any mode, also of a version published afterwards.
    for reviewer, grant in ((hrss_reviewer, file_grant), (hrss_reviewer, api_grant), (market_reviewer, db_grant)):
        revoked = reviewer.post(f"/grants/{grant}/revoke", {"reason": "使用期内发现超范围使用，撤销授权"})
        assert revoked["state"] == "revoked" and revoked["revoked_by"] == reviewer.user
    before = target_rows(target_url, "enterprises")
    hrss_v.append(
        publish_remotely(
            server, platform, tmp_path / "hrss-pipeline", "hrss_staff", hrss_rows(platform, 33), "2026-11-03"
        )
    )
    market_v.append(
        publish_remotely(
            server, platform, tmp_path / "market-pipeline", "market_staff", market_rows(platform, 27), "2026-11-03"
        )
    )
    for params in ({}, {"full": "true"}, {"since": hrss_v[0]}, {"version": hrss_v[0], "full": "true"}):
        refused = market_staff.http.get(f"/grants/{file_grant}/download", params=params)
        assert refused.status_code == REVOKED and "revoked" in refused.json()["error"], refused.text
    refused = transport_staff.http.post(f"/grants/{db_grant}/deliver")
    assert refused.status_code == REVOKED and "revoked" in refused.json()["error"], refused.text
    assert target_rows(target_url, "enterprises") == before
    with httpx.Client(base_url=server.url + API, timeout=60) as anonymous:
        refused = anonymous.get(f"/data/{api_grant}", headers={"X-Grant-Key": key})
    assert refused.status_code == REVOKED and "revoked" in refused.json()["error"], refused.text
    assert "rows" not in refused.json()
    assert transport_staff.http.post(f"/grants/{api_grant}/key").status_code == REVOKED
    assert receipts(market_staff, file_grant) == file_receipts
    assert [r["id"] for r in receipts(transport_staff, db_grant) if r["outcome"] == "succeeded"] == [
        r["id"] for r in db_receipts
    ]
    assert receipts(transport_staff, api_grant) == api_receipts
    states = {g["id"]: g["state"] for g in transport_staff.get("/grants").json()["items"]}
    assert states == {db_grant: "revoked", api_grant: "revoked"}
    assert scan.outputs == 8

    # The audit log holds every step, in order, and nothing was delivered after the revocations.
    with platform.store.session() as s:
        events = [(e.actor, e.action, e.subject) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    first = next(i for i, e in enumerate(events) if e[1] == "upload.start")
    assert all(e[1] != "version.publish" for e in events[:first])  # the platform's seed versions only
    steps = [
        (actor, action, "upload:…" if subject.startswith("upload:") else subject)
        for actor, action, subject in events[first:]
    ]

    def published(user: str, entry: str, number: int) -> list[tuple[str, str, str]]:
        upload = (user, "upload.start", "upload:…"), (user, "version.publish", f"version:{entry}/{number}")
        return [*upload, (user, "upload.commit", "upload:…")]

    def approved(reviewer: str, app: int, grant: int) -> list[tuple[str, str, str]]:
        return [(reviewer, "application.approve", f"application:{app}"), (reviewer, "grant.create", f"grant:{grant}")]

    deliveries = [
        ("market_staff", "delivery.file", f"grant:{file_grant}"),
        ("market_staff", "delivery.file", f"grant:{file_grant}"),  # the CSV
        ("transport_staff", "delivery.database", f"grant:{db_grant}"),
    ]
    assert steps == [
        *published("hrss_staff", HRSS, hrss_v[0]),
        *published("market_staff", MARKET, market_v[0]),
        ("market_staff", "application.submit", f"application:{file_app['id']}"),
        ("transport_staff", "application.submit", f"application:{db_app['id']}"),
        ("transport_staff", "application.submit", f"application:{api_app['id']}"),
        *approved("hrss_reviewer", file_app["id"], file_grant),
        *approved("market_reviewer", db_app["id"], db_grant),
        *approved("hrss_reviewer", api_app["id"], api_grant),
        *deliveries,
        ("transport_staff", "grant.key", f"grant:{api_grant}"),
        (f"key:{api_grant}", "delivery.api", f"grant:{api_grant}"),  # once a day and version, however many pages
        *published("hrss_staff", HRSS, hrss_v[1]),
        *published("market_staff", MARKET, market_v[1]),
        *deliveries,
        (f"key:{api_grant}", "delivery.api", f"grant:{api_grant}"),
        ("hrss_reviewer", "grant.revoke", f"grant:{file_grant}"),
        ("hrss_reviewer", "grant.revoke", f"grant:{api_grant}"),
        ("market_reviewer", "grant.revoke", f"grant:{db_grant}"),
        *published("hrss_staff", HRSS, hrss_v[2]),
        *published("market_staff", MARKET, market_v[2]),
    ]
    # …and its hash chain verifies.
    verified = CliRunner().invoke(cli, ["audit", "verify", "--home", str(platform.home)])
    assert verified.exit_code == 0, verified.output
    # Every version is where the platform keeps them: the workspace's folder, or the bucket.
    with platform.store.session() as s:
        locations = list(s.scalars(select(Version.location)))
    assert len(locations) == 9
    store_url = platform.workspace.store_url
    if store_url is None:
        assert all(Path(loc).is_relative_to(platform.workspace.exchange) for loc in locations), locations
    else:
        assert all(loc.startswith(store_url.split("?", 1)[0] + "/") for loc in locations), locations


def test_what_an_answer_reports_is_committed_before_it_is_sent(platform: Platform, server: Server) -> None:
    """A client acts on an answer at once: a token just shown works, a grant just approved is listed.

    The exchange's session used to commit after the answer was on the wire (FastAPI's default
    dependency scope), so over real HTTP about two in three new tokens were refused at once (401).
    """
    hrss = Department(server, platform, "hrss_staff")
    with httpx.Client(base_url=server.url + API, timeout=60) as fresh:
        for i in range(20):
            token = hrss.post("/tokens", {"name": f"at once {i}"}, status=201)["token"]
            me = fresh.get("/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200, (i, me.text)
    market, reviewer = Department(server, platform, "market_staff"), Department(server, platform, "hrss_reviewer")
    for _ in range(5):
        app = market.post("/applications", application(HRSS, ["resident_id", "name"], "file"), status=201)
        grant = reviewer.post(f"/applications/{app['id']}/decision", {"decision": "approve"})["grant"]["id"]
        assert grant in {g["id"] for g in market.get("/grants", params={"role": "held"}).json()["items"]}
