"""The demo's exchange round: two departments subscribe to 人社's data, one request is refused, all masked.

Acceptance runs ``govdata demo`` twice in one fresh home (the second run must change nothing) and
then checks the exchange: the 2 grants, the refusal and its reason, the delivered CSV and the
SQLite target, the dashboard token. The masking scan reads the clear sensitive values from the
published version (resident IDs, names, mobiles, addresses) and looks for each in every delivered
file and in the demo's output: zero hits, while the same scanner finds them in the published data.
A variant delivers into the machine's PostgreSQL (``GOVDATA_DEMO_DATABASE_URL``, a fresh schema).

The cases around it (a bad or unreachable database URL, a revoked grant, a removed file, a new
version, a masking key of the operator's own, missing data) run :func:`exchange.demo.run` on the
small test platform of ``conftest_exchange``, through the same exchange functions.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from catalog.models import Entry, User
from catalog.store import CatalogStore
from exchange import demo as exchange_demo
from exchange.delivery import subscriber_key
from exchange.demo import DEMO_DATABASE_ENV, REFUSAL_REASON, TARGET_URL_ENV, ExchangeDemo
from exchange.grants import revoke
from exchange.identity import Principal
from exchange.models import ApiToken, Application, Delivery, Grant, Notification, Objection, Webhook
from exchange.service import create_app
from pipelines.cli import app
from pipelines.masking import MASKING_KEY_ENV, MaskRule, mask
from pipelines.workspace import Workspace
from tests.e2e.test_sensitive_scan import Scanner, files_under
from tests.exchange.conftest_exchange import HRSS, Platform, build_platform, generated_rows, publish

DATE = "2026-11-24"
SENSITIVE = {
    "resident_id": MaskRule.RESIDENT_ID,
    "name": MaskRule.NAME,
    "mobile": MaskRule.MOBILE,
    "address": MaskRule.ADDRESS,
}
TOKEN = re.compile(r"gdt_[a-z0-9]{12}_[A-Za-z0-9_-]+")
_ENV = (MASKING_KEY_ENV, DEMO_DATABASE_ENV, TARGET_URL_ENV, "GOVDATA_CATALOG_URL", "GOVDATA_HOME", "GOVDATA_USER")


@dataclass
class Demo:
    home: Path
    store: CatalogStore
    outputs: list[str]
    counts: list[dict[str, int]]  # after each run


def counts(store: CatalogStore) -> dict[str, int]:
    with store.session() as s:
        return {
            name: int(s.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in (
                ("applications", Application),
                ("grants", Grant),
                ("objections", Objection),
                ("webhooks", Webhook),
                ("notifications", Notification),
                ("receipts", Delivery),
            )
        } | {
            "active_demo_tokens": int(
                s.scalar(
                    select(func.count())
                    .select_from(ApiToken)
                    .where(ApiToken.name == exchange_demo.TOKEN_NAME, ApiToken.revoked_at.is_(None))
                )
                or 0
            )
        }


def run_demo(home: Path) -> str:
    result = CliRunner().invoke(app, ["demo", "--date", DATE, "--home", str(home)], env={"COLUMNS": "250"})
    assert "Traceback" not in result.output, result.output
    assert result.exit_code in (0, 2), result.output  # 2: a dataset held by its gate
    return result.output


def clear_values(home: Path) -> set[str]:
    """The sensitive values of the published 人社 version, in clear, that their own mask would hide."""
    store = CatalogStore(Workspace.from_env(home).catalog_url)
    version = store.latest_version(HRSS)
    assert version is not None
    data = Path(version.location) / "data.parquet"
    found: set[str] = set()
    con = duckdb.connect()
    try:
        for column, rule in SENSITIVE.items():
            rows = con.execute(
                f"SELECT DISTINCT CAST({column} AS VARCHAR) FROM read_parquet(?) WHERE {column} IS NOT NULL",
                [str(data)],
            ).fetchall()
            found |= {v for (v,) in rows if len(v.strip()) >= 2 and mask(v, rule) != v}
    finally:
        con.close()
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``govdata demo`` twice in one fresh home, with no masking key and no database URL configured."""
    home = tmp_path_factory.mktemp("demo-exchange") / "home"
    with pytest.MonkeyPatch.context() as mp:
        for name in _ENV:
            mp.delenv(name, raising=False)
        outputs, seen = [], []
        for _ in range(2):
            outputs.append(run_demo(home))
            seen.append(counts(CatalogStore(Workspace.from_env(home).catalog_url)))
            for name in (MASKING_KEY_ENV, TARGET_URL_ENV):
                assert name not in os.environ, f"the demo left ${name} set"
        yield Demo(home, CatalogStore(Workspace.from_env(home).catalog_url), outputs, seen)


# --- acceptance: the demo ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_demo_grants_twice_and_refuses_once_with_its_reason(demo: Demo) -> None:
    with demo.store.session() as s:
        grants = s.scalars(select(Grant).order_by(Grant.id)).all()
        apps = s.scalars(select(Application).order_by(Application.id)).all()
        names = {e.id: e.department_uscc for e in s.scalars(select(Entry))}
        assert [(g.entry_id, g.delivery_method, g.state()) for g in grants] == [
            (HRSS, "file", "active"),
            (HRSS, "database", "active"),
        ]
        assert {g.department_uscc for g in grants} == {
            names["market_enterprise_registry"],
            names["transport_bus_stops"],
        }
        assert grants[0].masking == {"resident_id": "hash", "name": "name", "mobile": "mobile", "address": "address"}
        refused = [a for a in apps if a.status == "refused"]
        assert len(refused) == 1 and len(apps) == 3
        assert refused[0].reason == REFUSAL_REASON and refused[0].decided_by == "hrss_admin"
        assert refused[0].department_uscc == names["transport_bus_stops"]
        assert s.scalar(select(func.count()).select_from(Grant).where(Grant.application_id == refused[0].id)) == 0
    first = demo.outputs[0]
    assert "交换 Exchange" in first and "拒绝 refused" in first and REFUSAL_REASON[:20] in first
    assert "✓ grant #1 文件交换 file: v1" in first and "✓ grant #2 库表交换 database: v1" in first


@pytest.mark.slow
def test_the_second_run_changes_nothing_but_the_dashboard_token(demo: Demo) -> None:
    before, after = demo.counts
    # one more receipt: the database delivery that found the version in the target already
    assert (before.pop("receipts"), after.pop("receipts")) == (2, 3)
    assert before == after, (before, after)
    assert after["grants"] == 2 and after["objections"] == 1 and after["webhooks"] == 3
    assert after["active_demo_tokens"] == 1
    assert after["notifications"] > 0
    second = demo.outputs[1]
    assert second.count("(from an earlier run)") == 2
    assert second.count("already delivered, nothing new") == 2
    with demo.store.session() as s:
        receipts = s.scalars(select(Delivery).order_by(Delivery.id)).all()
    assert [(r.mode, r.outcome) for r in receipts] == [
        ("file", "succeeded"),
        ("database", "succeeded"),
        ("database", "succeeded"),  # the second run found the version in the target: nothing written
    ]
    assert receipts[0].rows == receipts[1].rows > 0 and receipts[2].version == receipts[1].version == 1


@pytest.mark.slow
def test_the_delivered_file_and_database_hold_no_sensitive_value_in_clear(demo: Demo) -> None:
    secrets = clear_values(demo.home)
    kinds = {
        "resident IDs": sum(bool(re.fullmatch(r"\d{17}[\dX]", s)) for s in secrets),
        "mobiles": sum(bool(re.fullmatch(r"1\d{10}", s)) for s in secrets),
        "addresses": sum("路" in s for s in secrets),
    }
    assert all(n >= 50 for n in kinds.values()), kinds
    scanner = Scanner(secrets)
    # control: the scanner finds them where they are in clear
    published = CatalogStore(Workspace.from_env(demo.home).catalog_url).latest_version(HRSS)
    assert published is not None
    assert len(scanner.scan([Path(published.location) / "data.parquet"])) >= 200
    delivered = files_under(demo.home / "subscribers")
    assert {p.suffix for p in delivered} >= {".csv", ".db"}, delivered
    hits = scanner.scan(delivered)
    assert not hits, f"{len(hits)} sensitive value(s) in clear:\n" + "\n".join(str(h) for h in hits[:20])
    text = "\n".join(demo.outputs)
    assert not scanner.text_hits(text)
    csv = next(p for p in delivered if p.suffix == ".csv").read_text(encoding="utf-8-sig")
    assert re.search(r"\d{3}\*{4}\d{4}", csv) and re.search(r"[0-9a-f]{64}", csv) and "区***" in csv


@pytest.mark.slow
def test_the_sqlite_target_holds_every_published_row(demo: Demo) -> None:
    published = demo.store.latest_version(HRSS)
    assert published is not None
    target = demo.home / "subscribers" / "transport" / "transport.db"
    con = sqlite3.connect(target)
    try:
        columns = [r[1] for r in con.execute("PRAGMA table_info(hrss_insured_persons)")]
        assert columns == ["resident_id", "name", "birth_date", "insured_status"]
        assert con.execute("SELECT count(*), count(DISTINCT resident_id) FROM hrss_insured_persons").fetchone() == (
            published.row_count,
            published.row_count,
        )
        assert con.execute("SELECT table_name, version, row_count FROM govdata_deliveries").fetchall() == [
            ("hrss_insured_persons", 1, published.row_count)
        ]
        assert all(len(r[0]) == 64 for r in con.execute("SELECT resident_id FROM hrss_insured_persons"))
    finally:
        con.close()
    key_file = demo.home / "state" / "demo-masking.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


@pytest.mark.slow
def test_the_printed_token_opens_the_dashboard_and_the_previous_one_is_revoked(demo: Demo) -> None:
    old = TOKEN.findall(demo.outputs[0])
    new = TOKEN.findall(demo.outputs[1])
    assert len(old) == len(new) == 1 and old != new
    with TestClient(create_app(demo.home)) as client:
        assert client.get("/dashboard").status_code == 200
        summary = client.get("/exchange/v1/monitor/summary", headers={"Authorization": f"Bearer {new[0]}"})
        assert summary.status_code == 200, summary.text
        listed = client.get("/exchange/v1/applications", headers={"Authorization": f"Bearer {new[0]}"})
        assert listed.status_code == 200 and listed.json()["total"] == 3
        assert client.get("/exchange/v1/grants", headers={"Authorization": f"Bearer {old[0]}"}).status_code == 401


@pytest.mark.slow
@pytest.mark.integration
def test_the_demo_delivers_into_postgresql_when_given_its_url(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = f"demo_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(DEMO_DATABASE_ENV, url)
    try:
        output = run_demo(tmp_path / "home")
        store = CatalogStore(Workspace.from_env(tmp_path / "home").catalog_url)
        published = store.latest_version(HRSS)
        assert published is not None
        with admin.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT count(*) FROM {schema}.hrss_insured_persons")).scalar()
            booked = conn.execute(sa.text(f"SELECT version, row_count FROM {schema}.govdata_deliveries")).all()
        assert rows == published.row_count > 0
        assert [tuple(r) for r in booked] == [(1, published.row_count)]
        assert "✓ grant #2 库表交换 database: v1" in output and f"${DEMO_DATABASE_ENV}" in output
        assert not (tmp_path / "home" / "subscribers" / "transport" / "transport.db").exists()
        assert not Scanner(clear_values(tmp_path / "home")).text_hits(output)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


# --- the cases around it, on the small test platform ------------------------------------------------


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Platform:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    return build_platform(tmp_path / "home", rows=30)


def users(platform: Platform) -> list[dict[str, Any]]:
    roles = {"staff": "staff", "reviewer": "dept_admin"}
    seeded: list[dict[str, Any]] = [
        {"id": f"{short}_{kind}", "role": role, "department": uscc}
        for short, uscc in platform.departments.items()
        for kind, role in roles.items()
    ]
    return [*seeded, {"id": "city_admin", "role": "city_admin", "department": None}]


def play(platform: Platform) -> ExchangeDemo:
    result = exchange_demo.run(platform.workspace, users(platform))
    assert result.skipped is None, result.skipped
    assert TARGET_URL_ENV not in os.environ, "the demo left the target's variable set"
    return result


def test_a_database_url_that_does_not_parse_fails_that_delivery_only(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEMO_DATABASE_ENV, "not a url at all")
    result = play(platform)
    by_mode = {d.mode: d for d in result.deliveries}
    assert by_mode["file"].outcome == "succeeded" and by_mode["file"].rows == 30
    assert by_mode["database"].outcome == "failed" and result.failed
    assert "database URL" in (by_mode["database"].error or "")
    assert f"${DEMO_DATABASE_ENV}, not a valid SQLAlchemy URL" in by_mode["database"].where
    lines = "\n".join(exchange_demo.summary_lines(result))
    assert "✗ grant" in lines and "not a url at all" not in lines
    with platform.store.session() as s:
        grant = s.get(Grant, by_mode["database"].grant)
        assert grant is not None and grant.uses == 0  # the failed delivery gave its use back


def test_an_unreachable_database_fails_quickly_without_showing_its_password(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEMO_DATABASE_ENV, "postgresql+psycopg://demo:s3cret-pw@127.0.0.1:1/nowhere")
    result = play(platform)
    failed = next(d for d in result.deliveries if d.mode == "database")
    assert failed.outcome == "failed"
    shown = "\n".join(exchange_demo.summary_lines(result)) + repr(result)
    assert "s3cret-pw" not in shown and "***" in (result.database or "")
    with platform.store.session() as s:
        receipt = s.get(Delivery, failed.receipt)
        assert receipt is not None and receipt.attempts == 2 and "s3cret-pw" not in (receipt.error or "")


def test_a_revoked_grant_is_applied_for_again_and_the_refusal_is_not_repeated(platform: Platform) -> None:
    first = play(platform)
    file_grant = next(g for g in first.grants if g.method == "file")
    with platform.store.session() as s:
        reviewer = s.get(User, "hrss_reviewer")
        assert reviewer is not None
        revoke(s, Principal.of_user(reviewer), file_grant.id, reason="补贴审核工作结束")
    second = play(platform)
    renewed = next(g for g in second.grants if g.method == "file")
    assert renewed.id != file_grant.id and not renewed.reused
    assert next(g for g in second.grants if g.method == "database").reused
    assert second.refusal is not None and first.refusal is not None
    assert second.refusal.application == first.refusal.application
    with platform.store.session() as s:
        states = sorted(g.state() for g in s.scalars(select(Grant)))
        assert states == ["active", "active", "revoked"]
        assert s.scalar(select(func.count()).select_from(Application).where(Application.status == "refused")) == 1


def test_a_removed_file_is_downloaded_again_in_full_and_a_new_version_as_changes(platform: Platform) -> None:
    first = play(platform)
    delivered = Path(next(d for d in first.deliveries if d.mode == "file").where)
    assert delivered.name == f"{HRSS}-v1.csv"
    delivered.unlink()
    again = next(d for d in play(platform).deliveries if d.mode == "file")
    assert (again.outcome, again.kind, again.rows) == ("succeeded", "full", 30) and delivered.is_file()
    table = generated_rows(platform.specs[HRSS], 32, seed=1)  # other values, two more rows
    publish(platform, HRSS, table)
    third = play(platform)
    changes = next(d for d in third.deliveries if d.mode == "file")
    assert (changes.outcome, changes.kind, changes.version) == ("succeeded", "changes", 2)
    assert Path(changes.where).name == f"{HRSS}-v2-since-v1.csv"
    db = next(d for d in third.deliveries if d.mode == "database")
    assert (db.outcome, db.kind, db.version) == ("succeeded", "changes", 2)
    con = sqlite3.connect(platform.home / "subscribers" / "transport" / "transport.db")
    try:
        assert con.execute("SELECT count(*) FROM hrss_insured_persons").fetchone() == (32,)
    finally:
        con.close()


def test_an_operators_masking_key_is_used_and_no_demo_key_is_made(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MASKING_KEY_ENV, "operator-key-for-tests")
    result = play(platform)
    assert result.masking_key == f"${MASKING_KEY_ENV}"
    assert not (platform.workspace.state / "demo-masking.key").exists()
    assert os.environ[MASKING_KEY_ENV] == "operator-key-for-tests"
    csv = Path(next(d for d in result.deliveries if d.mode == "file").where).read_text(encoding="utf-8-sig")
    key = subscriber_key(platform.departments["market"])
    first_id = platform.tables[HRSS].column("resident_id")[0].as_py()
    assert mask(first_id, MaskRule.HASH, key=key) in csv and first_id not in csv


def hashed_ids(target: Path) -> list[str]:
    con = sqlite3.connect(target)
    try:
        return sorted(str(r[0]) for r in con.execute("SELECT resident_id FROM hrss_insured_persons"))
    finally:
        con.close()


def test_the_demo_key_is_made_once_and_hashes_stay_the_same(platform: Platform) -> None:
    play(platform)
    key_file = platform.workspace.state / "demo-masking.key"
    key = key_file.read_text(encoding="utf-8")
    target = platform.home / "subscribers" / "transport" / "transport.db"
    before = hashed_ids(target)
    target.unlink()  # the subscriber lost its database: the next run fills a new one
    play(platform)
    after = hashed_ids(target)
    assert key_file.read_text(encoding="utf-8") == key and before == after and len(after) == 30
    assert MASKING_KEY_ENV not in os.environ


def test_without_the_bundled_data_the_demo_says_why_and_does_nothing(tmp_path: Path) -> None:
    workspace = Workspace.from_env(tmp_path / "empty")
    result = exchange_demo.run(workspace, [])
    assert result.skipped and "not in the catalog" in result.skipped
    assert exchange_demo.summary_lines(result)[-1].startswith("  skipped: ")
    assert not (workspace.root / "subscribers").exists()


def test_an_unpublished_provider_or_missing_users_skip_the_demo(platform: Platform) -> None:
    assert "users are missing" in (exchange_demo.run(platform.workspace, []).skipped or "")
    with platform.store.session() as s:
        entry = s.get(Entry, HRSS)
        assert entry is not None
        entry.status = "withdrawn"
    skipped = exchange_demo.run(platform.workspace, users(platform)).skipped or ""
    assert HRSS in skipped and "withdrawn" in skipped
    with platform.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Application)) == 0
