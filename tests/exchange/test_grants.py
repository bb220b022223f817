"""Grants over the REST API: terms checked at review time, expiry, state, visibility, revocation, the API key."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog.models import User
from exchange.applications import decide, submit
from exchange.calendar import FALLBACK_ENV, SHANGHAI
from exchange.errors import AuthError, Conflict
from exchange.grants import end_of_day, grant_for_key, list_grants
from exchange.identity import Principal, hash_token
from exchange.models import Grant
from exchange.service import create_app
from tests.exchange.conftest_exchange import HRSS, MARKET, TRANSPORT, Platform, build_platform
from tests.exchange.test_applications import API, applied, decide_http, notifications, until, webhook

ITEMS = ("resident_id", "name", "mobile", "address", "insured_status")


@pytest.fixture(autouse=True)
def _calendar_beyond_the_bundled_years(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FALLBACK_ENV, "weekends")  # real clock: see test_applications


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return build_platform(tmp_path / "home", rows=5)


@pytest.fixture
def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform.home))


def hrss_application(client: TestClient, platform: Platform, method: str = "api", **body: Any) -> dict[str, Any]:
    """market applies for 人社's insured persons (有条件共享: hrss_reviewer decides)."""
    return applied(client, platform, "market_staff", entry=HRSS, items=ITEMS, delivery_method=method, **body)


def approve(
    client: TestClient, platform: Platform, app_id: int, user: str = "hrss_reviewer", **terms: Any
) -> dict[str, Any]:
    answer = decide_http(client, platform, user, app_id, **terms)
    assert answer.status_code == 200, answer.text
    grant: dict[str, Any] = answer.json()["grant"]
    return grant


def granted(client: TestClient, platform: Platform, method: str = "api", **terms: Any) -> dict[str, Any]:
    return approve(client, platform, hrss_application(client, platform, method)["id"], **terms)


def principal(platform: Platform, user_id: str) -> Principal:
    with platform.store.session() as s:
        user = s.get(User, user_id)
        assert user is not None
        return Principal.of_user(user)


# --- the terms ---------------------------------------------------------------------------------


def test_approval_grants_the_items_until_the_end_of_the_end_date_in_shanghai(
    client: TestClient, platform: Platform
) -> None:
    app = hrss_application(client, platform, end_date=until(90))
    grant = approve(client, platform, app["id"])
    assert grant["items"] == list(ITEMS)
    assert grant["masking"] == {} and grant["join_keys"] == []  # the default rules apply at delivery
    assert grant["subscriber"] == platform.departments["market"]
    assert grant["provider"] == platform.departments["hrss"]
    assert (grant["state"], grant["state_label"]) == ("active", "有效")
    assert grant["delivery_method"] == "api" and grant["uses"] == 0 and grant["max_uses"] is None
    end = dt.date.fromisoformat(until(90))
    expires = dt.datetime.fromisoformat(grant["expires_at"])
    assert expires == dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=SHANGHAI)
    assert expires.astimezone(dt.UTC).hour == 16  # 24:00 in Shanghai is 16:00 UTC
    shown = client.get(f"{API}/applications/{app['id']}", headers=platform.auth("market_staff")).json()
    assert shown["grant_id"] == grant["id"]


def test_the_reviewer_may_grant_a_subset_with_masking_overrides_and_a_cap(
    client: TestClient, platform: Platform
) -> None:
    grant = granted(
        client,
        platform,
        items=["resident_id", "name", "insured_status"],
        masking={"name": None, "resident_id": "hash"},
        join_keys=["resident_id"],
        max_uses=10,
        opinion="仅限核验",
    )
    assert grant["items"] == ["resident_id", "name", "insured_status"]
    assert grant["masking"] == {"name": None, "resident_id": "hash"}  # null: clearance to see it in clear
    assert grant["join_keys"] == ["resident_id"] and grant["max_uses"] == 10
    with platform.store.session() as s:
        stored = s.get(Grant, grant["id"])
        assert stored is not None and stored.masking == {"name": None, "resident_id": "hash"}


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ({"masking": {"name": "blur"}}, "unknown masking rule 'blur'"),
        ({"masking": {"resident_id": "resident_id"}}, "primary-key column 'resident_id' cannot be masked"),
        ({"items": ["name"], "masking": {"mobile": "mobile"}}, "which the grant does not include"),
        ({"masking": {"salary": "redact"}}, "'salary' does not exist"),
        ({"items": ["name"], "join_keys": ["mobile"]}, "join key 'mobile' is not among the granted items"),
        ({"join_keys": ["name"], "masking": {"name": "name"}}, "join-key column 'name' cannot be masked"),
        ({"items": ["gender"]}, "'gender' was not applied for"),
        ({"items": ["name", "name"]}, "listed twice"),
        ({"items": []}, "items"),
        ({"max_uses": 0}, "max_uses"),
        ({"max_uses": 10**12}, "max_uses"),
        ({"expires_at": "2020-01-01T00:00:00+08:00"}, "in the past"),
        ({"expires_at": "2099-01-01T00:00:00+08:00"}, "after the application's end date"),
        ({"expires_at": "2027-01-01T00:00:00"}, "no time zone"),
        ({"masking": {"name\x00": "name"}}, "masking"),
    ],
)
def test_bad_terms_are_refused_at_review_time_and_nothing_changes(
    client: TestClient, platform: Platform, terms: dict[str, Any], expected: str
) -> None:
    app = hrss_application(client, platform)
    answer = decide_http(client, platform, "hrss_reviewer", app["id"], **terms)
    assert answer.status_code == 422, answer.text
    assert expected in answer.json()["error"]
    assert answer.json()["hint"]
    still = client.get(f"{API}/applications/{app['id']}", headers=platform.auth("hrss_reviewer")).json()
    assert still["status"] == "pending"


def test_the_reviewer_may_end_the_grant_earlier(client: TestClient, platform: Platform) -> None:
    earlier = (dt.datetime.now(SHANGHAI) + dt.timedelta(days=30)).replace(microsecond=0)
    grant = granted(client, platform, expires_at=earlier.isoformat())
    assert dt.datetime.fromisoformat(grant["expires_at"]) == earlier


def test_an_application_whose_end_date_passed_cannot_be_approved(platform: Platform) -> None:
    submitted = dt.datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)
    with platform.store.session() as s:
        app = submit(
            s,
            principal(platform, "market_staff"),
            entry=HRSS,
            items=["resident_id"],
            purpose="核验",
            scenario="业务",
            delivery_method="file",
            end_date=dt.date(2026, 3, 31),
            now=submitted,
        )
        app_id = app.id
    with platform.store.session() as s, pytest.raises(Conflict, match="end date 2026-03-31 has passed"):
        decide(
            s, principal(platform, "hrss_reviewer"), app_id, approve=True, now=dt.datetime(2026, 4, 1, tzinfo=SHANGHAI)
        )
    with platform.store.session() as s:
        _, grant = decide(
            s, principal(platform, "hrss_reviewer"), app_id, approve=False, opinion="已过期", now=submitted
        )
        assert grant is None


def test_a_database_grant_carries_the_applications_target(client: TestClient, platform: Platform) -> None:
    target = {"url_env": "MARKET_DB_URL", "table": "insured_persons"}
    app = hrss_application(client, platform, "database", target=target)
    grant = approve(client, platform, app["id"])
    assert grant["delivery_method"] == "database" and grant["target"] == target


# --- state -------------------------------------------------------------------------------------


def test_the_state_follows_expiry_revocation_and_the_cap(client: TestClient, platform: Platform) -> None:
    capped = granted(client, platform, max_uses=2)
    other = granted(client, platform)
    with platform.store.session() as s:
        row = s.get(Grant, capped["id"])
        assert row is not None
        row.uses = 2  # the delivery part counts uses
    shown = client.get(f"{API}/grants/{capped['id']}", headers=platform.auth("market_staff")).json()
    assert (shown["state"], shown["state_label"], shown["uses"]) == ("exhausted", "次数已用尽", 2)
    with platform.store.session() as s:
        row = s.get(Grant, other["id"])
        assert row is not None
        after = row.expires_at + dt.timedelta(seconds=1)
        assert row.state(after) == "expired"
        assert row.state(row.expires_at - dt.timedelta(seconds=1)) == "active"
        viewer = principal(platform, "market_staff")
        # both end with the same end date; expiry outranks the cap (Grant.state)
        assert [g.id for g in list_grants(s, viewer, state="expired", now=after)[0]] == [other["id"], capped["id"]]
        assert [g.id for g in list_grants(s, viewer, state="exhausted")[0]] == [capped["id"]]
        assert [g.id for g in list_grants(s, viewer, state="active")[0]] == [other["id"]]
    listed = client.get(f"{API}/grants", params={"state": "exhausted"}, headers=platform.auth("market_staff")).json()
    assert [g["id"] for g in listed["items"]] == [capped["id"]]


# --- who sees what -----------------------------------------------------------------------------


def test_grants_are_seen_by_their_holder_their_provider_and_the_city_only(
    client: TestClient, platform: Platform
) -> None:
    held_by_market = granted(client, platform)  # hrss → market
    city_checked = applied(client, platform, "market_staff", entry=TRANSPORT, items=("stop_id",))
    by_city = approve(client, platform, city_checked["id"], user="city_admin")  # transport → market
    to_hrss = applied(client, platform, "hrss_staff", entry=MARKET, items=("uscc",))
    given_by_market = approve(client, platform, to_hrss["id"], user="market_reviewer")  # market → hrss

    def ids(user: str, **params: Any) -> list[int]:
        answer = client.get(f"{API}/grants", params=params, headers=platform.auth(user))
        assert answer.status_code == 200, answer.text
        return [g["id"] for g in answer.json()["items"]]

    assert ids("market_staff") == [given_by_market["id"], by_city["id"], held_by_market["id"]]
    assert ids("market_staff", role="held") == [by_city["id"], held_by_market["id"]]
    assert ids("market_reviewer", role="given") == [given_by_market["id"]]
    assert ids("transport_staff") == [by_city["id"]]
    assert ids("hrss_reviewer") == [given_by_market["id"], held_by_market["id"]]
    assert ids("auditor") == ids("city_admin") == [given_by_market["id"], by_city["id"], held_by_market["id"]]
    assert ids("city_admin", role="held") == []
    assert ids("market_staff", entry=TRANSPORT) == [by_city["id"]]
    page = client.get(f"{API}/grants", params={"limit": 1, "offset": 1}, headers=platform.auth("auditor")).json()
    assert (page["total"], [g["id"] for g in page["items"]]) == (3, [by_city["id"]])
    answer = client.get(f"{API}/grants/{held_by_market['id']}", headers=platform.auth("transport_reviewer"))
    assert answer.status_code == 404 and "no grant" in answer.json()["error"]
    for params in ({"state": "alive"}, {"role": "mine"}, {"limit": 0}, {"offset": -3}):
        assert client.get(f"{API}/grants", params=params, headers=platform.auth("market_staff")).status_code == 422
    for ident in ("0", "x", str(2**40)):
        assert client.get(f"{API}/grants/{ident}", headers=platform.auth("city_admin")).status_code == 422


# --- revocation --------------------------------------------------------------------------------


def test_the_provider_or_the_city_revokes_with_a_reason_and_twice_is_a_conflict(
    client: TestClient, platform: Platform
) -> None:
    webhook(platform, "market", "grant.revoked")
    grant = granted(client, platform)
    url = f"{API}/grants/{grant['id']}/revoke"
    reason = {"reason": "项目已结束"}
    assert client.post(url, json=reason, headers=platform.auth("market_staff")).status_code == 403  # holder, no review
    holder = client.post(url, json=reason, headers=platform.auth("market_reviewer"))
    assert holder.status_code == 403 and "providing department" in holder.json()["error"]
    assert client.post(url, json=reason, headers=platform.auth("hrss_staff")).status_code == 403  # no review scope
    assert client.post(url, json=reason, headers=platform.auth("transport_reviewer")).status_code == 404
    assert client.post(url, json=reason, headers=platform.auth("auditor")).status_code == 403
    for body in ({}, {"reason": ""}, {"reason": "  "}, {"reason": "x" * 2001}, {"reason": "停\x07用"}):
        answer = client.post(url, json=body, headers=platform.auth("hrss_reviewer"))
        assert answer.status_code == 422 and "reason" in answer.json()["error"], body
    done = client.post(url, json=reason, headers=platform.auth("hrss_reviewer"))
    assert done.status_code == 200
    body = done.json()
    assert (body["state"], body["state_label"]) == ("revoked", "已撤销")
    assert (body["revoked_by"], body["revoke_reason"]) == ("hrss_reviewer", "项目已结束")
    again = client.post(url, json={"reason": "再次撤销"}, headers=platform.auth("city_admin"))
    assert again.status_code == 409
    assert "revoked already" in again.json()["error"] and "hrss_reviewer" in again.json()["error"]
    assert [e for e, _ in notifications(platform, "market")] == ["grant.revoked"]
    by_city = granted(client, platform)
    answer = client.post(f"{API}/grants/{by_city['id']}/revoke", json=reason, headers=platform.auth("city_admin"))
    assert answer.status_code == 200 and answer.json()["revoked_by"] == "city_admin"


# --- the data-API key --------------------------------------------------------------------------


def test_the_subscriber_issues_the_grants_api_key_shown_once_and_stored_hashed(
    client: TestClient, platform: Platform
) -> None:
    grant = granted(client, platform)
    url = f"{API}/grants/{grant['id']}/key"
    assert client.post(url, headers=platform.auth("hrss_reviewer")).status_code == 403  # the provider
    assert client.post(url, headers=platform.auth("city_admin")).status_code == 403
    assert client.post(url, headers=platform.auth("transport_staff")).status_code == 404
    first = client.post(url, headers=platform.auth("market_staff"))
    assert first.status_code == 201
    key = first.json()["key"]
    assert key.startswith("gdk_") and first.json()["key_id"] in key
    shown = client.get(f"{API}/grants/{grant['id']}", headers=platform.auth("market_staff")).json()
    assert shown["api_key_id"] == first.json()["key_id"] and key not in str(shown)
    db = sqlite3.connect(platform.home / "catalog.db")
    dump = "\n".join(db.iterdump())
    db.close()
    assert key not in dump and key.rsplit("_", 1)[1] not in dump and hash_token(key) in dump
    with platform.store.session() as s:
        assert grant_for_key(s, key).id == grant["id"]
    second = client.post(url, headers=platform.auth("market_reviewer"))
    assert second.status_code == 201 and second.json()["key"] != key
    with platform.store.session() as s:
        assert grant_for_key(s, second.json()["key"]).id == grant["id"]
        for stale in (key, key[:-2] + "xx", "gdk_short", "", "gdt_" + key[4:]):
            with pytest.raises(AuthError):
                grant_for_key(s, stale)
    client.post(f"{API}/grants/{grant['id']}/revoke", json={"reason": "停用"}, headers=platform.auth("hrss_reviewer"))
    revoked = client.post(url, headers=platform.auth("market_staff"))
    assert revoked.status_code == 409 and "revoked" in revoked.json()["error"]


def test_only_api_grants_have_a_key(client: TestClient, platform: Platform) -> None:
    grant = granted(client, platform, method="file")
    answer = client.post(f"{API}/grants/{grant['id']}/key", headers=platform.auth("market_staff"))
    assert answer.status_code == 409 and "data API" in answer.json()["error"]


def test_grant_actions_are_audited(client: TestClient, platform: Platform) -> None:
    from exchange import audit

    grant = granted(client, platform)
    key = client.post(f"{API}/grants/{grant['id']}/key", headers=platform.auth("market_staff")).json()["key"]
    client.post(f"{API}/grants/{grant['id']}/revoke", json={"reason": "停用"}, headers=platform.auth("city_admin"))
    with platform.store.session() as s:
        events = audit.events(s, subject=f"grant:{grant['id']}")
        assert [(e.actor, e.action) for e in events] == [
            ("hrss_reviewer", "grant.create"),
            ("market_staff", "grant.key"),
            ("city_admin", "grant.revoke"),
        ]
        assert events[0].detail["items"] == list(ITEMS) and events[0].detail["subscriber"] == grant["subscriber"]
        assert events[1].detail["key_id"] == key.split("_")[1]
        assert all(key.rsplit("_", 1)[1] not in str(e.detail) for e in events)  # never the secret
        assert events[2].detail["reason"] == "停用"
        assert audit.verify(s) is None


def test_expiry_is_the_end_of_the_day_in_shanghai() -> None:
    assert end_of_day(dt.date(2027, 6, 30)) == dt.datetime(2027, 6, 30, 16, 0, tzinfo=dt.UTC)
    assert end_of_day(dt.date(2027, 12, 31)) == dt.datetime(2027, 12, 31, 16, 0, tzinfo=dt.UTC)


def test_grants_come_only_from_approvals(platform: Platform) -> None:
    with platform.store.session() as s:
        assert s.scalars(select(Grant)).all() == []
