"""API tokens and the caller's identity: hashed at rest, scoped, revocable, expiring, per role."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from catalog.access import Role
from exchange.errors import AuthError
from exchange.identity import ROLE_SCOPES, authenticate, hash_token
from exchange.models import ApiToken
from exchange.service import create_app
from pipelines.cli import app as cli
from tests.exchange.conftest_exchange import Platform, build_platform


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return build_platform(tmp_path / "home", rows=5)


@pytest.fixture
def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform.home))


def test_the_caller_is_who_the_token_says(platform: Platform, client: TestClient) -> None:
    me = client.get("/exchange/v1/me", headers=platform.auth("hrss_reviewer")).json()
    assert me["user"] == "hrss_reviewer"
    assert me["role"] == "dept_admin"
    assert me["department"] == platform.departments["hrss"]
    assert set(me["scopes"]) == ROLE_SCOPES[Role.DEPT_ADMIN]


def test_tokens_are_stored_only_as_hashes(platform: Platform) -> None:
    db = sqlite3.connect(platform.home / "catalog.db")
    dump = "\n".join(db.iterdump())
    db.close()
    for token in platform.tokens.values():
        secret = token.split("_", 2)[2]  # gdt_<id>_<secret>; the secret may itself hold "_"
        assert len(secret) >= 40
        assert secret not in dump
        assert hash_token(token) in dump


@pytest.mark.parametrize(
    "header",
    [
        None,
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer gdt_"},
        {"Authorization": "Bearer gdt_aaaaaaaaaaaa_wrong"},
        {"Authorization": "Bearer " + "x" * 10_000},
        {"Authorization": "Bearer gdt_../../etc_x"},
        {"Authorization": "Bearer ' OR 1=1 --"},
    ],
)
def test_missing_or_bad_tokens_are_refused_with_401(client: TestClient, header: dict[str, str] | None) -> None:
    answer = client.get("/exchange/v1/me", headers=header or {})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["hint"]


def test_a_token_with_the_right_id_but_a_wrong_secret_is_refused(platform: Platform, client: TestClient) -> None:
    token = platform.tokens["hrss_staff"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert client.get("/exchange/v1/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_a_revoked_token_is_refused_from_then_on(platform: Platform, client: TestClient) -> None:
    auth = platform.auth("market_staff")
    created = client.post("/exchange/v1/tokens", json={"name": "second"}, headers=auth)
    assert created.status_code == 201
    second = {"Authorization": f"Bearer {created.json()['token']}"}
    assert client.get("/exchange/v1/me", headers=second).status_code == 200
    revoked = client.delete(f"/exchange/v1/tokens/{created.json()['id']}", headers=auth)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    answer = client.get("/exchange/v1/me", headers=second)
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]
    assert client.get("/exchange/v1/me", headers=auth).status_code == 200  # the first token still works


def test_an_expired_token_is_refused(platform: Platform) -> None:
    from exchange.identity import create_token

    with platform.store.session() as s:
        row, token = create_token(
            s, "hrss_staff", name="short", expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        )
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with platform.store.session() as s, pytest.raises(AuthError, match="expired"):
        authenticate(s, token)


def test_an_inactive_users_tokens_are_refused(platform: Platform, client: TestClient) -> None:
    from catalog.models import User

    with platform.store.session() as s:
        user = s.get(User, "transport_staff")
        assert user is not None
        user.active = False
    answer = client.get("/exchange/v1/me", headers=platform.auth("transport_staff"))
    assert answer.status_code == 401 and "inactive" in answer.json()["error"]


def test_scopes_narrow_a_token_and_cannot_exceed_the_role(platform: Platform, client: TestClient) -> None:
    auth = platform.auth("hrss_staff")
    narrow = client.post("/exchange/v1/tokens", json={"name": "read", "scopes": ["catalog:read"]}, headers=auth)
    assert narrow.status_code == 201 and narrow.json()["scopes"] == ["catalog:read"]
    me = client.get("/exchange/v1/me", headers={"Authorization": f"Bearer {narrow.json()['token']}"}).json()
    assert me["scopes"] == ["catalog:read"]
    beyond = client.post("/exchange/v1/tokens", json={"name": "x", "scopes": ["exchange:admin"]}, headers=auth)
    assert beyond.status_code == 403 and "exchange:admin" in beyond.json()["error"]
    unknown = client.post("/exchange/v1/tokens", json={"name": "x", "scopes": ["root"]}, headers=auth)
    assert unknown.status_code == 422 and "scopes" in unknown.json()["error"]


def test_only_the_city_admin_creates_or_revokes_tokens_for_others(platform: Platform, client: TestClient) -> None:
    staff = client.post(
        "/exchange/v1/tokens", json={"name": "x", "user": "hrss_reviewer"}, headers=platform.auth("hrss_staff")
    )
    assert staff.status_code == 403
    admin = client.post(
        "/exchange/v1/tokens", json={"name": "x", "user": "hrss_reviewer"}, headers=platform.auth("city_admin")
    )
    assert admin.status_code == 201 and admin.json()["user"] == "hrss_reviewer"
    other = client.delete(f"/exchange/v1/tokens/{admin.json()['id']}", headers=platform.auth("hrss_staff"))
    assert other.status_code == 404  # another user's token is not even named
    listed = client.get("/exchange/v1/tokens", headers=platform.auth("hrss_staff")).json()
    assert {t["user"] for t in listed} == {"hrss_staff"}
    everyone = client.get("/exchange/v1/tokens", headers=platform.auth("city_admin")).json()
    assert {"hrss_staff", "hrss_reviewer", "city_admin"} <= {t["user"] for t in everyone}
    assert all("token" not in t for t in everyone)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": "x", "expires_at": "2000-01-01T00:00:00Z"},
        {"name": "x", "expires_at": "2030-01-01T00:00:00"},
        {"name": "x", "scopes": []},
        {"name": "x", "user": "nobody"},
        [],
        "text",
    ],
)
def test_bad_token_requests_name_the_problem(platform: Platform, client: TestClient, body: Any) -> None:
    answer = client.post("/exchange/v1/tokens", json=body, headers=platform.auth("city_admin"))
    assert answer.status_code in (404, 422), answer.text
    assert answer.json()["error"] and answer.json()["hint"]


def test_the_cli_creates_lists_and_revokes_tokens(platform: Platform, client: TestClient) -> None:
    runner = CliRunner()
    home = ["--home", str(platform.home)]
    made = runner.invoke(
        cli, ["token", "create", "--name", "nightly", "--scope", "exchange:publish", "--as", "hrss_staff", *home]
    )
    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]
    assert token.startswith("gdt_")
    me = client.get("/exchange/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["user"] == "hrss_staff" and me["scopes"] == ["exchange:publish"]
    listed = runner.invoke(cli, ["token", "list", "--user", "hrss_staff", *home])
    assert listed.exit_code == 0 and me["token"] in listed.output and token not in listed.output
    other = runner.invoke(cli, ["token", "revoke", me["token"], "--as", "market_staff", *home])
    assert other.exit_code == 1 and "scope" in other.output
    done = runner.invoke(cli, ["token", "revoke", me["token"], "--as", "hrss_staff", *home])
    assert done.exit_code == 0, done.output
    assert client.get("/exchange/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    nobody = runner.invoke(cli, ["token", "create", "--name", "x", *home])
    assert nobody.exit_code == 1 and "--as" in nobody.output
    past = runner.invoke(cli, ["token", "create", "--name", "x", "--expires", "yesterday", "--as", "hrss_staff", *home])
    assert past.exit_code == 1 and "--expires" in past.output


def test_token_changes_are_in_the_audit_log(platform: Platform, client: TestClient) -> None:
    from exchange import audit

    made = client.post("/exchange/v1/tokens", json={"name": "x"}, headers=platform.auth("auditor")).json()
    client.delete(f"/exchange/v1/tokens/{made['id']}", headers=platform.auth("auditor"))
    with platform.store.session() as s:
        actions = [(e.action, e.subject) for e in audit.events(s)]
        assert audit.verify(s) is None
        row = s.get(ApiToken, made["id"])
        assert row is not None and row.revoked_by == "auditor"
    assert ("token.create", f"token:{made['id']}") in actions
    assert ("token.revoke", f"token:{made['id']}") in actions
