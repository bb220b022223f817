"""Applications and their review over the REST API: who may apply, for what, who decides, who sees what.

The platform (``build_platform``): 交通 bus stops are 无条件共享 (the city's conformity check), 人社
insured persons and 市场监管 enterprises 有条件共享 (the provider decides). Deadlines here are
checked in working days against the calendar; ``test_applications_deadlines`` fixes the clock.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from catalog.models import AuditEvent, DataItem, Entry
from exchange import audit
from exchange.applications import decide, get_application
from exchange.calendar import FALLBACK_ENV, SHANGHAI, default_calendar
from exchange.errors import Conflict
from exchange.identity import Principal
from exchange.models import Application, Grant, Notification, Webhook
from exchange.service import create_app
from tests.exchange.conftest_exchange import HRSS, MARKET, TRANSPORT, Platform, build_platform

API = "/exchange/v1"


@pytest.fixture(autouse=True)
def _calendar_beyond_the_bundled_years(monkeypatch: pytest.MonkeyPatch) -> None:
    # These tests run on the real clock: near a year's end a deadline may reach a year whose
    # State Council schedule is not bundled yet. Count weekends only there (the rule itself is
    # tested with a fixed clock in test_applications_deadlines).
    monkeypatch.setenv(FALLBACK_ENV, "weekends")


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return build_platform(tmp_path / "home", rows=5)


@pytest.fixture
def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform.home))


def until(days: int = 180) -> str:
    """An end date ``days`` ahead of today in Shanghai."""
    return (dt.datetime.now(SHANGHAI).date() + dt.timedelta(days=days)).isoformat()


def application_body(
    entry: str = TRANSPORT, items: tuple[str, ...] = ("stop_id", "stop_name"), **over: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "entry": entry,
        "items": list(items),
        "purpose": "公交线网规划需要站点位置",
        "scenario": "城市规划部门的线网优化分析",
        "delivery_method": "file",
        "end_date": until(),
    }
    body.update(over)
    return body


def apply(client: TestClient, platform: Platform, user: str, **body: Any) -> httpx.Response:
    # ASCII-escaped JSON, so that even lone surrogates ("\ud800") reach the service as sent.
    return client.post(
        f"{API}/applications",
        content=json.dumps(application_body(**body)),
        headers={**platform.auth(user), "Content-Type": "application/json"},
    )


def applied(client: TestClient, platform: Platform, user: str, **body: Any) -> dict[str, Any]:
    answer = apply(client, platform, user, **body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def decide_http(
    client: TestClient, platform: Platform, user: str, app_id: int, decision: str = "approve", **body: Any
) -> httpx.Response:
    return client.post(
        f"{API}/applications/{app_id}/decision", json={"decision": decision, **body}, headers=platform.auth(user)
    )


def set_share_type(platform: Platform, entry: str, share_type: str, condition: str | None = None) -> None:
    with platform.store.session() as s:
        row = s.get(Entry, entry)
        assert row is not None
        row.share_type = share_type
        row.share_condition = condition


def set_item_share_type(platform: Platform, entry: str, item: str, share_type: str | None) -> None:
    with platform.store.session() as s:
        row = s.scalar(select(DataItem).where(DataItem.entry_id == entry, DataItem.name == item))
        assert row is not None
        row.share_type = share_type


def webhook(platform: Platform, department: str, *events: str) -> None:
    with platform.store.session() as s:
        s.add(
            Webhook(
                department_uscc=platform.departments[department],
                url="https://example.invalid/hook",
                secret="s" * 32,
                events=list(events),
                created_by="tests",
            )
        )


def notifications(platform: Platform, department: str) -> list[tuple[str, dict[str, Any]]]:
    with platform.store.session() as s:
        rows = s.scalars(
            select(Notification)
            .where(Notification.department_uscc == platform.departments[department])
            .order_by(Notification.id)
        )
        return [(n.event, dict(n.payload)) for n in rows]


def audit_actions(platform: Platform, subject: str) -> list[tuple[str, str]]:
    with platform.store.session() as s:
        return [(e.actor, e.action) for e in audit.events(s, subject=subject)]


def working_days(start: str, end: str) -> int:
    return default_calendar().working_days_between(dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end))


# --- submitting --------------------------------------------------------------------------------


def test_unconditional_data_goes_to_the_citys_conformity_check_within_2_working_days(
    client: TestClient, platform: Platform
) -> None:
    app = applied(client, platform, "hrss_staff")
    assert app["status"] == "pending" and app["status_label"] == "待审核"
    assert app["share_type"] == "无条件共享"
    assert app["reviewer"] == "city"
    assert app["applicant"] == "hrss_staff" and app["applicant_department"] == platform.departments["hrss"]
    assert app["provider"] == platform.departments["transport"]
    assert working_days(app["submitted_at"], app["due_at"]) == 2
    assert app["deadline"]["state"] in ("on_time", "due_today")
    assert app["grant_id"] is None


def test_conditional_data_goes_to_the_provider_within_5_working_days(client: TestClient, platform: Platform) -> None:
    app = applied(client, platform, "market_staff", entry=HRSS, items=("resident_id", "insured_status"))
    assert (app["share_type"], app["reviewer"]) == ("有条件共享", "provider")
    assert working_days(app["submitted_at"], app["due_at"]) == 5
    assert app["items"] == ["resident_id", "insured_status"]


def test_conditional_data_not_yet_published_gets_10_working_days(client: TestClient, platform: Platform) -> None:
    from catalog.models import Version

    with platform.store.session() as s:  # a catalogued, published entry whose data has no version yet
        for version in s.scalars(select(Version).where(Version.entry_id == MARKET)):
            s.delete(version)
    app = applied(client, platform, "hrss_staff", entry=MARKET, items=("uscc", "enterprise_name"))
    assert working_days(app["submitted_at"], app["due_at"]) == 10


def test_an_items_own_share_type_narrows_the_resources(client: TestClient, platform: Platform) -> None:
    set_item_share_type(platform, TRANSPORT, "line_names", "授权共享")  # Shanghai's alias of 有条件共享
    narrow = applied(client, platform, "hrss_staff", items=("stop_id", "line_names"))
    assert (narrow["share_type"], narrow["reviewer"]) == ("有条件共享", "provider")
    wide = applied(client, platform, "hrss_staff", items=("stop_id", "stop_name"))
    assert (wide["share_type"], wide["reviewer"]) == ("无条件共享", "city")


def test_items_are_kept_in_the_catalogs_order(client: TestClient, platform: Platform) -> None:
    app = applied(client, platform, "hrss_staff", items=("latitude", "stop_id", "longitude"))
    assert app["items"] == ["stop_id", "longitude", "latitude"]


@pytest.mark.parametrize("alias", ["不予共享", "非共享"])
def test_a_not_shared_resource_is_refused_at_once_with_its_recorded_basis(
    client: TestClient, platform: Platform, alias: str
) -> None:
    basis = "依据《上海市公共数据管理办法》第二十条，涉及个人隐私，不予共享"
    set_share_type(platform, HRSS, alias, basis)
    webhook(platform, "market", "application.decided")
    webhook(platform, "hrss", "application.submitted")
    answer = apply(client, platform, "market_staff", entry=HRSS, items=("resident_id",))
    assert answer.status_code == 201
    app = answer.json()
    assert (app["status"], app["status_label"]) == ("refused", "已拒绝")
    assert app["decided_by"] == "system" and app["reviewer"] == "system"
    assert app["reason"] == basis
    assert app["due_at"] is None and app["deadline"] is None and app["decided_at"] is not None
    assert audit_actions(platform, f"application:{app['id']}") == [
        ("market_staff", "application.submit"),
        ("system", "application.refuse"),
    ]
    assert [e for e, _ in notifications(platform, "market")] == ["application.decided"]
    assert notifications(platform, "hrss") == []  # nothing for the provider to review
    # and it cannot be reviewed
    assert decide_http(client, platform, "hrss_reviewer", app["id"]).status_code == 409


def test_without_a_recorded_basis_the_refusal_gives_a_standard_sentence(client: TestClient, platform: Platform) -> None:
    set_share_type(platform, HRSS, "不予共享", None)
    app = applied(client, platform, "market_staff", entry=HRSS, items=("resident_id",))
    assert app["status"] == "refused"
    assert "不予共享" in app["reason"] and "参保人员信息" in app["reason"]


def test_a_not_shared_item_refuses_the_application_and_says_which(client: TestClient, platform: Platform) -> None:
    set_item_share_type(platform, TRANSPORT, "line_names", "不予共享")
    refused = applied(client, platform, "hrss_staff", items=("stop_id", "line_names"))
    assert refused["status"] == "refused" and refused["decided_by"] == "system"
    assert "line_names" in refused["reason"]
    fine = applied(client, platform, "hrss_staff", items=("stop_id",))
    assert fine["status"] == "pending"


@pytest.mark.parametrize("user", ["city_admin", "auditor"])
def test_only_a_departments_staff_or_reviewer_may_apply(client: TestClient, platform: Platform, user: str) -> None:
    answer = apply(client, platform, user)
    assert answer.status_code == 403
    assert "exchange:apply" in answer.json()["error"]


def test_a_department_never_applies_for_its_own_resource(client: TestClient, platform: Platform) -> None:
    for user in ("transport_staff", "transport_reviewer"):
        answer = apply(client, platform, user)
        assert answer.status_code == 403
        assert "own department" in answer.json()["error"]


def test_an_entry_the_applicant_cannot_see_is_not_found(client: TestClient, platform: Platform) -> None:
    missing = apply(client, platform, "hrss_staff", entry="transport_bus_stop")
    assert missing.status_code == 404
    assert "did you mean 'transport_bus_stops'" in missing.json()["hint"]
    with platform.store.session() as s:
        row = s.get(Entry, TRANSPORT)
        assert row is not None
        row.status = "withdrawn"  # 已下架: no longer visible to other departments
    hidden = apply(client, platform, "hrss_staff")
    assert hidden.status_code == 404
    assert hidden.json()["error"] == missing.json()["error"].replace("transport_bus_stop'", "transport_bus_stops'")


def test_an_unknown_item_is_named_with_the_nearest_one(client: TestClient, platform: Platform) -> None:
    answer = apply(client, platform, "hrss_staff", items=("stop_id", "stop_nme"))
    assert answer.status_code == 422
    body = answer.json()
    assert "'stop_nme'" in body["error"] and "items" in body["error"]
    assert "did you mean 'stop_name'" in body["hint"]


@pytest.mark.parametrize(
    ("days", "expected"),
    [(-1, "not in the future"), (0, "not in the future"), (5 * 366 + 2, "more than 5 years")],
)
def test_the_end_date_is_in_the_future_and_not_absurd(
    client: TestClient, platform: Platform, days: int, expected: str
) -> None:
    answer = apply(client, platform, "hrss_staff", end_date=until(days))
    assert answer.status_code == 422
    assert "end_date" in answer.json()["error"] and expected in answer.json()["error"]


def test_database_delivery_names_its_target_without_secrets(client: TestClient, platform: Platform) -> None:
    target = {"url_env": "HRSS_EXCHANGE_DB_URL", "table": "bus_stops", "schema": "exchange_in"}
    app = applied(client, platform, "hrss_staff", delivery_method="database", target=target)
    assert app["target"] == target and app["delivery_method"] == "database"
    with platform.store.session() as s:
        stored = s.get(Application, app["id"])
        assert stored is not None and stored.target == target

    no_target = apply(client, platform, "hrss_staff", delivery_method="database")
    assert no_target.status_code == 422 and "target" in no_target.json()["error"]

    secret_url = "postgresql://hrss:Sup3rSecret@db.example/exchange"
    leaked = apply(
        client, platform, "hrss_staff", delivery_method="database", target={"url_env": secret_url, "table": "t"}
    )
    assert leaked.status_code == 422 and "target.url_env" in leaked.json()["error"]
    assert "Sup3rSecret" not in leaked.text

    extra = apply(
        client,
        platform,
        "hrss_staff",
        delivery_method="database",
        target={"url_env": "X_URL", "table": "t", "password": "Sup3rSecret"},
    )
    assert extra.status_code == 422 and "password" in extra.json()["error"]
    assert "Sup3rSecret" not in extra.text

    bad_table = apply(
        client,
        platform,
        "hrss_staff",
        delivery_method="database",
        target={"url_env": "X_URL", "table": "t; drop table x"},
    )
    assert bad_table.status_code == 422 and "target.table" in bad_table.json()["error"]

    for_a_file = apply(client, platform, "hrss_staff", target={"url_env": "X_URL", "table": "t"})
    assert for_a_file.status_code == 422 and "only database delivery" in for_a_file.json()["error"]


@pytest.mark.parametrize("field", ["purpose", "scenario"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x" * 5000, "at most 2000"),
        ("用途\x00说明", "control character U+0000"),
        ("用途\x1b[31m红", "control character U+001B"),
        ("申请\u202e用途", "control character U+202E"),
        ("\ud800", "unicode"),  # refused while parsing the body
        ("   \n\t ", "empty"),
    ],
)
def test_hostile_text_is_refused_naming_the_field(
    client: TestClient, platform: Platform, field: str, value: str, expected: str
) -> None:
    answer = apply(client, platform, "hrss_staff", **{field: value})
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["error"] and expected in answer.json()["error"]


def test_line_breaks_are_fine_in_free_text(client: TestClient, platform: Platform) -> None:
    app = applied(client, platform, "hrss_staff", purpose="第一行\n第二行\t附注")
    assert app["purpose"] == "第一行\n第二行\t附注"


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], "items"),
        (["stop_id", "stop_id"], "listed twice"),
        (["stop\x00id"], "not a data item name"),
        (["x" * 101], "items"),
        ([f"i{n}" for n in range(501)], "items"),
        ([" stop_id"], "not a data item name"),
    ],
)
def test_hostile_item_lists_are_refused(
    client: TestClient, platform: Platform, items: list[str], expected: str
) -> None:
    answer = client.post(
        f"{API}/applications", json={**application_body(), "items": items}, headers=platform.auth("hrss_staff")
    )
    assert answer.status_code == 422, answer.text
    assert expected in answer.json()["error"]


@pytest.mark.parametrize("entry", ["../../etc/passwd", "x" * 101, "", "transport_bus_stops' OR '1'='1", "\x00"])
def test_hostile_entry_ids_are_refused_or_not_found(client: TestClient, platform: Platform, entry: str) -> None:
    answer = apply(client, platform, "hrss_staff", entry=entry)
    assert answer.status_code in (404, 422), answer.text
    assert answer.json()["error"]


def test_malformed_bodies_are_refused_naming_the_field(client: TestClient, platform: Platform) -> None:
    auth = platform.auth("hrss_staff")
    wrong_method = client.post(f"{API}/applications", json=application_body(delivery_method="ftp"), headers=auth)
    assert wrong_method.status_code == 422 and "delivery_method" in wrong_method.json()["error"]
    not_a_date = client.post(f"{API}/applications", json=application_body(end_date="明年"), headers=auth)
    assert not_a_date.status_code == 422 and "end_date" in not_a_date.json()["error"]
    unknown = client.post(f"{API}/applications", json={**application_body(), "priority": "high"}, headers=auth)
    assert unknown.status_code == 422 and "priority" in unknown.json()["error"]
    not_json = client.post(f"{API}/applications", content=b"\xff\xfe", headers=auth)
    assert not_json.status_code == 422


# --- reviewing ---------------------------------------------------------------------------------


def test_the_provider_or_the_city_decides_conditional_data_and_nobody_else(
    client: TestClient, platform: Platform
) -> None:
    app = applied(client, platform, "transport_staff", entry=HRSS, items=("resident_id", "insured_status"))
    assert decide_http(client, platform, "hrss_staff", app["id"]).status_code == 403  # no exchange:review
    applicants_reviewer = decide_http(client, platform, "transport_reviewer", app["id"])
    assert applicants_reviewer.status_code == 403
    assert "providing department" in applicants_reviewer.json()["error"]
    assert decide_http(client, platform, "market_reviewer", app["id"]).status_code == 404  # not its business
    assert decide_http(client, platform, "auditor", app["id"]).status_code == 403
    approved = decide_http(client, platform, "hrss_reviewer", app["id"], opinion="同意，用于补贴审核")
    assert approved.status_code == 200, approved.text
    assert approved.json()["application"]["status"] == "approved"
    assert approved.json()["application"]["reason"] == "同意，用于补贴审核"

    other = applied(client, platform, "transport_staff", entry=HRSS, items=("resident_id",))
    by_city = decide_http(client, platform, "city_admin", other["id"], "refuse", opinion="事由不充分")
    assert by_city.status_code == 200 and by_city.json()["application"]["decided_by"] == "city_admin"


def test_the_citys_conformity_check_is_the_city_admins(client: TestClient, platform: Platform) -> None:
    app = applied(client, platform, "hrss_staff")
    provider = decide_http(client, platform, "transport_reviewer", app["id"])
    assert provider.status_code == 403 and "conformity check" in provider.json()["error"]
    city = decide_http(client, platform, "city_admin", app["id"])
    assert city.status_code == 200
    assert city.json()["grant"]["items"] == ["stop_id", "stop_name"]


def test_a_refusal_requires_a_reason(client: TestClient, platform: Platform) -> None:
    app = applied(client, platform, "market_staff", entry=HRSS, items=("resident_id",))
    for body in ({}, {"opinion": None}, {"opinion": "   "}):
        answer = decide_http(client, platform, "hrss_reviewer", app["id"], "refuse", **body)
        assert answer.status_code == 422 and "opinion" in answer.json()["error"]
    terms = decide_http(client, platform, "hrss_reviewer", app["id"], "refuse", opinion="不同意", max_uses=3)
    assert terms.status_code == 422 and "max_uses" in terms.json()["error"]
    refused = decide_http(client, platform, "hrss_reviewer", app["id"], "refuse", opinion="超出法定职责范围")
    assert refused.status_code == 200
    body = refused.json()
    assert body["grant"] is None
    assert (body["application"]["status"], body["application"]["reason"]) == ("refused", "超出法定职责范围")
    with platform.store.session() as s:
        assert s.scalar(select(Grant).where(Grant.application_id == app["id"])) is None


def test_a_decided_application_is_not_decided_again(client: TestClient, platform: Platform) -> None:
    app = applied(client, platform, "market_staff", entry=HRSS, items=("resident_id",))
    assert decide_http(client, platform, "hrss_reviewer", app["id"]).status_code == 200
    again = decide_http(client, platform, "city_admin", app["id"], "refuse", opinion="改判")
    assert again.status_code == 409
    assert "approved" in again.json()["error"] and "hrss_reviewer" in again.json()["error"]
    assert (
        client.post(f"{API}/applications/{app['id']}/withdraw", headers=platform.auth("market_staff")).status_code
        == 409
    )
    with platform.store.session() as s:
        assert len(s.scalars(select(Grant).where(Grant.application_id == app["id"])).all()) == 1


def test_of_two_concurrent_reviewers_exactly_one_wins(platform: Platform) -> None:
    submitted = TestClient(create_app(platform.home)).post(
        f"{API}/applications",
        json=application_body(entry=HRSS, items=("resident_id",)),
        headers=platform.auth("market_staff"),
    )
    app_id = submitted.json()["id"]
    provider = Principal.of_user(_user(platform, "hrss_reviewer"))
    city = Principal.of_user(_user(platform, "city_admin"))
    # Both reviewers have read the application as pending before either decides.
    with platform.store.session() as first:
        seen = get_application(first, provider, app_id)
        assert seen.status == "pending"
        with platform.store.session() as second:
            decide(second, city, app_id, approve=False, opinion="市级驳回")
        with pytest.raises(Conflict, match="refused"):
            decide(first, provider, app_id, approve=True)
    with platform.store.session() as s:
        stored = s.get(Application, app_id)
        assert stored is not None and (stored.status, stored.decided_by) == ("refused", "city_admin")
        assert s.scalar(select(Grant).where(Grant.application_id == app_id)) is None


def test_racing_reviewers_over_http_leave_one_decision(client: TestClient, platform: Platform) -> None:
    app = applied(client, platform, "market_staff", entry=HRSS, items=("resident_id",))
    answers: list[int] = []

    def review(user: str, decision: str) -> None:
        own = TestClient(create_app(platform.home))
        answers.append(decide_http(own, platform, user, app["id"], decision, opinion="意见").status_code)

    threads = [
        threading.Thread(target=review, args=("hrss_reviewer", "approve")),
        threading.Thread(target=review, args=("city_admin", "refuse")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200, 409]
    with platform.store.session() as s:
        decisions = [
            e.action
            for e in audit.events(s, subject=f"application:{app['id']}")
            if e.action in ("application.approve", "application.refuse")
        ]
        assert len(decisions) == 1


def _user(platform: Platform, user_id: str) -> Any:
    from catalog.models import User

    with platform.store.session() as s:
        found = s.get(User, user_id)
        assert found is not None
        return found


def test_the_applicant_may_withdraw_its_pending_application(client: TestClient, platform: Platform) -> None:
    app = applied(client, platform, "market_staff", entry=HRSS, items=("resident_id",))
    url = f"{API}/applications/{app['id']}/withdraw"
    assert client.post(url, headers=platform.auth("hrss_reviewer")).status_code == 403  # the provider refuses instead
    assert client.post(url, headers=platform.auth("transport_staff")).status_code == 404
    assert client.post(url, headers=platform.auth("city_admin")).status_code == 403
    done = client.post(url, json={"reason": "需求变更"}, headers=platform.auth("market_reviewer"))
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["status_label"], done.json()["reason"]) == (
        "withdrawn",
        "已撤回",
        "需求变更",
    )
    assert client.post(url, headers=platform.auth("market_staff")).status_code == 409
    assert decide_http(client, platform, "hrss_reviewer", app["id"]).status_code == 409
    assert audit_actions(platform, f"application:{app['id']}")[-1] == ("market_reviewer", "application.withdraw")


# --- who sees what -----------------------------------------------------------------------------


def test_a_department_sees_its_own_and_incoming_applications_only(client: TestClient, platform: Platform) -> None:
    mine = applied(client, platform, "hrss_staff")  # hrss → transport (city check)
    theirs = applied(client, platform, "market_staff", entry=HRSS, items=("resident_id",))  # market → hrss
    other = applied(client, platform, "transport_staff", entry=MARKET, items=("uscc",))  # transport → market

    def ids(user: str, **params: Any) -> list[int]:
        answer = client.get(f"{API}/applications", params=params, headers=platform.auth(user))
        assert answer.status_code == 200, answer.text
        return [a["id"] for a in answer.json()["items"]]

    assert ids("hrss_staff") == [theirs["id"], mine["id"]]
    assert ids("hrss_staff", role="outgoing") == [mine["id"]]
    assert ids("hrss_reviewer", role="incoming") == [theirs["id"]]
    assert ids("auditor") == [other["id"], theirs["id"], mine["id"]]
    assert ids("city_admin", role="incoming") == [mine["id"]]  # the city's conformity checks
    assert ids("city_admin", role="outgoing") == []
    for user in ("hrss_staff", "hrss_reviewer"):
        answer = client.get(f"{API}/applications/{other['id']}", headers=platform.auth(user))
        assert answer.status_code == 404
    assert client.get(f"{API}/applications/{mine['id']}", headers=platform.auth("transport_staff")).status_code == 200
    assert client.get(f"{API}/applications/{mine['id']}", headers=platform.auth("auditor")).status_code == 200
    assert client.get(f"{API}/applications/999999", headers=platform.auth("city_admin")).status_code == 404


def test_listing_filters_and_pages(client: TestClient, platform: Platform) -> None:
    made = [applied(client, platform, "hrss_staff")["id"] for _ in range(5)]
    decide_http(client, platform, "city_admin", made[0], "refuse", opinion="重复申请")
    auth = platform.auth("hrss_staff")
    page = client.get(f"{API}/applications", params={"limit": 2, "offset": 1}, headers=auth).json()
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    assert [a["id"] for a in page["items"]] == [made[3], made[2]]
    pending = client.get(f"{API}/applications", params={"status": "pending"}, headers=auth).json()
    assert pending["total"] == 4 and all(a["status"] == "pending" for a in pending["items"])
    by_entry = client.get(f"{API}/applications", params={"entry": HRSS}, headers=auth).json()
    assert by_entry["total"] == 0
    for params in ({"status": "done"}, {"role": "both"}, {"limit": 0}, {"limit": 501}, {"offset": -1}):
        assert client.get(f"{API}/applications", params=params, headers=auth).status_code == 422


def test_bad_ids_in_the_path_are_refused_not_crashed(client: TestClient, platform: Platform) -> None:
    auth = platform.auth("city_admin")
    for ident in ("0", "-1", "abc", str(2**63), "1.5"):
        assert client.get(f"{API}/applications/{ident}", headers=auth).status_code in (404, 422)
        answer = client.post(f"{API}/applications/{ident}/decision", json={"decision": "approve"}, headers=auth)
        assert answer.status_code in (404, 422)


def test_a_token_without_a_reading_scope_reads_nothing(client: TestClient, platform: Platform) -> None:
    made = client.post(
        f"{API}/tokens", json={"name": "catalog only", "scopes": ["catalog:read"]}, headers=platform.auth("hrss_staff")
    )
    narrow = {"Authorization": f"Bearer {made.json()['token']}"}
    assert client.get(f"{API}/applications", headers=narrow).status_code == 403
    assert client.post(f"{API}/applications", json=application_body(), headers=narrow).status_code == 403
    assert client.get(f"{API}/applications").status_code == 401


def test_the_review_queue_lists_what_the_caller_may_decide_with_deadline_states(
    client: TestClient, platform: Platform
) -> None:
    city_check = applied(client, platform, "hrss_staff")  # transport's data: the city decides
    for_hrss = applied(client, platform, "market_staff", entry=HRSS, items=("resident_id",))
    for_market = applied(client, platform, "transport_staff", entry=MARKET, items=("uscc",))

    def queue(user: str) -> list[dict[str, Any]]:
        answer = client.get(f"{API}/reviews/pending", headers=platform.auth(user))
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()
        return result

    assert [r["id"] for r in queue("hrss_reviewer")] == [for_hrss["id"]]
    assert queue("transport_reviewer") == []  # its resource, but the city's check
    everything = queue("city_admin")
    assert {r["id"] for r in everything} == {city_check["id"], for_hrss["id"], for_market["id"]}
    assert [r["due_at"] for r in everything] == sorted(r["due_at"] for r in everything)
    row = queue("hrss_reviewer")[0]
    assert row["state"] in ("on_time", "due_today") and row["state_label"] in ("未到期", "今日到期")
    assert row["age_working_days"] == 0 and row["applicant_department"] == platform.departments["market"]
    assert client.get(f"{API}/reviews/pending", headers=platform.auth("hrss_staff")).status_code == 403
    assert client.get(f"{API}/reviews/pending", headers=platform.auth("auditor")).status_code == 403
    decide_http(client, platform, "hrss_reviewer", for_hrss["id"])
    assert queue("hrss_reviewer") == []


# --- audit and notifications -------------------------------------------------------------------


def test_every_step_is_audited_and_the_other_side_notified(client: TestClient, platform: Platform) -> None:
    webhook(platform, "hrss", "application.submitted")
    webhook(platform, "market", "application.decided", "grant.revoked")
    app = applied(client, platform, "market_staff", entry=HRSS, items=("resident_id", "name"))
    [(event, payload)] = notifications(platform, "hrss")
    assert event == "application.submitted"
    assert payload["application"] == app["id"] and payload["items"] == ["resident_id", "name"]
    decided = decide_http(client, platform, "hrss_reviewer", app["id"], masking={"name": "name"}).json()
    grant_id = decided["grant"]["id"]
    client.post(f"{API}/grants/{grant_id}/revoke", json={"reason": "项目结束"}, headers=platform.auth("hrss_reviewer"))
    events = notifications(platform, "market")
    assert [e for e, _ in events] == ["application.decided", "grant.revoked"]
    assert events[0][1]["status"] == "approved" and events[0][1]["grant"] == grant_id
    assert events[1][1]["reason"] == "项目结束"
    assert audit_actions(platform, f"application:{app['id']}") == [
        ("market_staff", "application.submit"),
        ("hrss_reviewer", "application.approve"),
    ]
    assert audit_actions(platform, f"grant:{grant_id}") == [
        ("hrss_reviewer", "grant.create"),
        ("hrss_reviewer", "grant.revoke"),
    ]
    with platform.store.session() as s:
        assert audit.verify(s) is None
        created = s.scalar(select(AuditEvent).where(AuditEvent.action == "grant.create"))
        assert created is not None and created.detail["masking"] == {"name": "name"}


def test_a_failed_decision_changes_nothing(client: TestClient, platform: Platform) -> None:
    app = applied(client, platform, "market_staff", entry=HRSS, items=("resident_id", "name"))
    with platform.store.session() as s:
        before = len(audit.events(s))
    bad = decide_http(client, platform, "hrss_reviewer", app["id"], masking={"name": "blur"})
    assert bad.status_code == 422 and "blur" in bad.json()["error"]
    with platform.store.session() as s:
        assert len(audit.events(s)) == before
        stored = s.get(Application, app["id"])
        assert stored is not None and stored.status == "pending"


def test_every_endpoint_is_described_in_the_openapi(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        f"{API}/applications": {"get", "post"},
        f"{API}/applications/{{application_id}}": {"get"},
        f"{API}/applications/{{application_id}}/decision": {"post"},
        f"{API}/applications/{{application_id}}/withdraw": {"post"},
        f"{API}/reviews/pending": {"get"},
        f"{API}/grants": {"get"},
        f"{API}/grants/{{grant_id}}": {"get"},
        f"{API}/grants/{{grant_id}}/revoke": {"post"},
        f"{API}/grants/{{grant_id}}/key": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
        for method in methods:
            operation = paths[path][method]
            ok = next(code for code in operation["responses"] if code.startswith("2"))
            assert "schema" in operation["responses"][ok]["content"]["application/json"], (path, method)
            assert {"401", "403", "404", "409", "422"} <= set(operation["responses"]), (path, method)
