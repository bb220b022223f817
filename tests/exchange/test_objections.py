"""Objections (纠错) end to end: the whole thread over HTTP and the CLI, who may and may not, deadlines, hostile input.

The platform's 市场监管 (market) department holds a grant on 人社 (hrss)'s insured persons; grants
are made here as rows, the way the review makes them. 交通 (transport) holds none and must learn
nothing: every objection answers it 404.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from catalog.models import AuditEvent, Version
from exchange import objections
from exchange.identity import Principal
from exchange.models import Application, Grant, Notification, Objection, Webhook
from exchange.service import create_app
from pipelines.cli import app as cli
from tests.exchange.conftest_exchange import HRSS, MARKET, Platform, build_platform, private_copy

API = "/exchange/v1"
SH = ZoneInfo("Asia/Shanghai")
GRANTED = ["resident_id", "name", "insured_status", "contribution_base"]
PERSON = "310100000000000003"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    platform = build_platform(tmp_path_factory.mktemp("objections") / "home", rows=5)
    grant(platform, HRSS, "market", GRANTED)
    with platform.store.session() as s:  # each side listens to its objection events
        for short, event in (("hrss", "objection.raised"), ("market", "objection.answered")):
            s.add(
                Webhook(
                    department_uscc=platform.departments[short],
                    url=f"https://{short}.example.gov.cn/hook",
                    secret="whsec_test",
                    events=[event],
                    created_by="tests",
                )
            )
    return platform


@pytest.fixture
def platform(template: Platform, tmp_path: Path) -> Platform:
    """A copy of the module's platform, so each test starts without objections."""
    return private_copy(template, tmp_path / "home")


@pytest.fixture
def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform.home))


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (objections.DAYS_ENV, "GOVDATA_USER", "GOVDATA_HOME", "GOVDATA_CATALOG_URL"):
        monkeypatch.delenv(name, raising=False)
    yield


def grant(platform: Platform, entry: str, short: str, items: list[str], *, revoked: bool = False) -> int:
    """A grant of ``entry``'s ``items`` to department ``short``, as an approved application leaves it."""
    uscc = platform.departments[short]
    now = dt.datetime.now(dt.UTC)
    with platform.store.session() as s:
        application = Application(
            entry_id=entry,
            department_uscc=uscc,
            applicant=f"{short}_staff",
            items=items,
            purpose="核验参保状态",
            scenario="企业登记联办",
            delivery_method="file",
            end_date=dt.date(2027, 12, 31),
            share_type="有条件共享",
            reviewer="provider",
            status="approved",
            due_at=now + dt.timedelta(days=7),
            decided_at=now,
            decided_by="hrss_reviewer",
        )
        s.add(application)
        s.flush()
        row = Grant(
            application_id=application.id,
            entry_id=entry,
            department_uscc=uscc,
            items=items,
            masking={},
            delivery_method="file",
            granted_by="hrss_reviewer",
            expires_at=now + dt.timedelta(days=365),
            revoked_at=now if revoked else None,
            revoked_by="hrss_reviewer" if revoked else None,
        )
        s.add(row)
        s.flush()
        return row.id


def raise_one(client: TestClient, platform: Platform, user: str = "market_staff", **fields: Any) -> Any:
    body = {
        "entry": HRSS,
        "version": 1,
        "subject": "参保状态与实际不符",
        "detail": "公民身份号码 310100000000000003 的参保状态应为“暂停缴费”，交付数据为“正常参保”。",
        "items": ["insured_status"],
        "keys": [PERSON],
        **fields,
    }
    return client.post(f"{API}/objections", json=body, headers=platform.auth(user))


def principal(platform: Platform, user: str) -> Principal:
    from catalog.models import User

    with platform.store.session() as s:
        found = s.get(User, user)
        assert found is not None
        return Principal.of_user(found)


def notifications(platform: Platform, event: str) -> list[Notification]:
    with platform.store.session() as s:
        return list(s.scalars(select(Notification).where(Notification.event == event)))


def audit_actions(platform: Platform) -> list[str]:
    with platform.store.session() as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


# --- the whole thread over HTTP ---------------------------------------------------------------------


def test_the_whole_thread_over_http(platform: Platform, client: TestClient) -> None:
    raised = raise_one(client, platform)
    assert raised.status_code == 201, raised.text
    obj = raised.json()
    oid = obj["id"]
    assert (obj["status"], obj["version"], obj["entry"]) == ("open", 1, HRSS)
    assert obj["department"] == platform.departments["market"]
    assert obj["provider"] == platform.departments["hrss"]
    assert obj["keys"] == [{"resident_id": PERSON}] and obj["items"] == ["insured_status"]
    assert obj["overdue"] is False and obj["messages"] == []
    raised_at = dt.datetime.fromisoformat(obj["raised_at"])
    due = dt.datetime.fromisoformat(obj["due_at"]).astimezone(SH)
    assert due.time() == dt.time.max and due.date() > raised_at.astimezone(SH).date()
    [note] = notifications(platform, "objection.raised")
    assert note.department_uscc == platform.departments["hrss"]
    assert note.payload["objection"] == oid and note.payload["subject"] == "参保状态与实际不符"

    # The provider, the raiser and the city see it; it stays with the dataset.
    for user in ("hrss_reviewer", "hrss_staff", "market_reviewer", "city_admin", "auditor"):
        listed = client.get(f"{API}/objections", params={"entry": HRSS}, headers=platform.auth(user))
        assert [o["id"] for o in listed.json()] == [oid], user
        assert client.get(f"{API}/objections/{oid}", headers=platform.auth(user)).status_code == 200

    # Only the provider's reviewer answers.
    answer = {"message": "已核实，系统迁移时状态映射错误，将于下一版本更正。"}
    for user, status in (("market_staff", 403), ("hrss_staff", 403), ("city_admin", 403), ("auditor", 403)):
        refused = client.post(f"{API}/objections/{oid}/answer", json=answer, headers=platform.auth(user))
        assert refused.status_code == status, (user, refused.text)
    answered = client.post(f"{API}/objections/{oid}/answer", json=answer, headers=platform.auth("hrss_reviewer"))
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["status"] == "answered" and body["answered_at"]
    assert [(m["author"], m["role"]) for m in body["messages"]] == [("hrss_reviewer", "provider")]
    [told] = notifications(platform, "objection.answered")
    assert told.department_uscc == platform.departments["market"] and told.payload["status"] == "answered"
    again = client.post(f"{API}/objections/{oid}/answer", json=answer, headers=platform.auth("hrss_reviewer"))
    assert again.status_code == 409 and "message" in again.json()["hint"]

    # Either side talks; the city admin may too; an auditor only reads.
    for user in ("market_staff", "hrss_reviewer", "city_admin"):
        said = client.post(
            f"{API}/objections/{oid}/messages", json={"message": f"{user} 补充"}, headers=platform.auth(user)
        )
        assert said.status_code == 200, said.text
    assert (
        client.post(
            f"{API}/objections/{oid}/messages", json={"message": "x"}, headers=platform.auth("auditor")
        ).status_code
        == 403
    )
    thread = client.get(f"{API}/objections/{oid}", headers=platform.auth("market_staff")).json()["messages"]
    assert [m["role"] for m in thread] == ["provider", "subscriber", "provider", "city"]

    # The raiser closes; the provider may not.
    assert client.post(f"{API}/objections/{oid}/close", headers=platform.auth("hrss_reviewer")).status_code == 403
    closed = client.post(
        f"{API}/objections/{oid}/close", json={"message": "已确认"}, headers=platform.auth("market_staff")
    )
    assert closed.status_code == 200 and closed.json()["status"] == "closed" and closed.json()["closed_at"]
    assert closed.json()["messages"][-1]["body"] == "已确认"
    for path, payload in (("messages", {"message": "还有"}), ("close", None), ("answer", answer)):
        late = client.post(f"{API}/objections/{oid}/{path}", json=payload, headers=platform.auth("market_staff"))
        assert late.status_code in (403, 409), late.text
    assert client.post(f"{API}/objections/{oid}/close", headers=platform.auth("market_staff")).status_code == 409

    actions = audit_actions(platform)
    for action in ("objection.raise", "objection.answer", "objection.message", "objection.close"):
        assert action in actions
    with platform.store.session() as s:
        stats = objections.objection_stats(s, platform.departments["hrss"])
    assert (stats.raised, stats.answered, stats.answered_on_time, stats.overdue_open) == (1, 1, 1, 0)
    assert stats.closed == 1 and stats.on_time_rate == 1.0


def test_other_departments_learn_nothing(platform: Platform, client: TestClient) -> None:
    oid = raise_one(client, platform).json()["id"]
    outsider = platform.auth("transport_reviewer")
    assert client.get(f"{API}/objections", headers=outsider).json() == []
    assert client.get(f"{API}/objections", params={"entry": HRSS}, headers=outsider).json() == []
    assert client.get(f"{API}/objections/{oid}", headers=outsider).status_code == 404
    for path, payload in (("answer", {"message": "x"}), ("messages", {"message": "x"}), ("close", None)):
        answer = client.post(f"{API}/objections/{oid}/{path}", json=payload, headers=outsider)
        assert answer.status_code == 404, (path, answer.text)
    # The same answer as for an objection that does not exist at all.
    missing = client.get(f"{API}/objections/{oid + 1000}", headers=outsider)
    assert missing.json()["error"].replace(str(oid + 1000), "N") == client.get(
        f"{API}/objections/{oid}", headers=outsider
    ).json()["error"].replace(str(oid), "N")


def test_who_may_raise_an_objection(platform: Platform, client: TestClient) -> None:
    no_grant = raise_one(client, platform, "transport_staff")
    assert no_grant.status_code == 404 and "grant" in no_grant.json()["error"]
    own = raise_one(client, platform, "hrss_staff")
    assert own.status_code == 403 and "new version" in own.json()["hint"]
    assert raise_one(client, platform, "city_admin").status_code == 403
    assert raise_one(client, platform, "auditor").status_code == 403
    assert raise_one(client, platform, "market_staff", entry="no_such_entry").status_code == 404
    assert raise_one(client, platform, "market_reviewer").status_code == 201

    # A grant held in the past is enough: the department received the data.
    grant(platform, MARKET, "transport", ["uscc", "enterprise_name"], revoked=True)
    held = raise_one(
        client, platform, "transport_staff", entry=MARKET, items=["enterprise_name"], keys=["USCC00000001"]
    )
    assert held.status_code == 201, held.text
    # The provider sees the objection to its data; the third department does not.
    market_sees = {o["id"] for o in client.get(f"{API}/objections", headers=platform.auth("market_staff")).json()}
    hrss_sees = {o["id"] for o in client.get(f"{API}/objections", headers=platform.auth("hrss_staff")).json()}
    assert held.json()["id"] in market_sees and held.json()["id"] not in hrss_sees


def test_the_version_items_and_keys_are_checked(platform: Platform, client: TestClient) -> None:
    missing = raise_one(client, platform, version=9)
    assert missing.status_code == 404 and "versions are 1 to 1" in missing.json()["hint"]
    latest = raise_one(client, platform, version=None)
    assert latest.status_code == 201 and latest.json()["version"] == 1
    unknown = raise_one(client, platform, items=["insured_stat"])
    assert unknown.status_code == 422 and "insured_status" in unknown.json()["hint"]
    ungranted = raise_one(client, platform, items=["mobile"])
    assert ungranted.status_code == 403 and "never granted" in ungranted.json()["error"]
    composite = raise_one(client, platform, keys=[{"resident_id": PERSON, "name": "张三"}])
    assert composite.status_code == 422 and "resident_id" in composite.json()["error"]
    repeated = raise_one(client, platform, keys=[PERSON, PERSON, {"resident_id": PERSON}], items=["name", "name"])
    assert repeated.status_code == 201 and repeated.json()["keys"] == [{"resident_id": PERSON}]
    assert repeated.json()["items"] == ["name"]

    # A version whose key has two items takes objects naming both.
    with platform.store.session() as s:
        version = s.scalar(select(Version).where(Version.entry_id == HRSS, Version.number == 1))
        assert version is not None
        version.schema = [dict(c, primary_key=c["name"] in ("resident_id", "insured_on")) for c in version.schema]
    single = raise_one(client, platform, keys=[PERSON])
    assert single.status_code == 422 and "several items" in single.json()["error"]
    both = raise_one(client, platform, keys=[{"resident_id": PERSON, "insured_on": "2020-01-01"}])
    assert both.status_code == 201 and both.json()["keys"] == [{"resident_id": PERSON, "insured_on": "2020-01-01"}]


HOSTILE_BODIES: list[dict[str, Any]] = [
    {"subject": ""},
    {"subject": "   "},
    {"subject": "第一行\n第二行"},
    {"subject": "x" * 201},
    {"subject": "bell\x07"},
    {"detail": ""},
    {"detail": "nul\x00byte"},
    {"detail": "x" * 10_001},
    {"items": ["x" * 101]},
    {"items": [""]},
    {"items": ["name"] * 201},
    {"keys": [PERSON] * 501},
    {"keys": ["x" * 201]},
    {"keys": [""]},
    {"keys": ["   "]},
    {"keys": [{"resident_id": 1}]},
    {"keys": [{}]},
    {"keys": [[PERSON]]},
    {"keys": [{"resident_id": "a\x00"}]},
    {"entry": "x" * 101},
    {"entry": ""},
    {"version": 0},
    {"version": -1},
    {"version": 2**40},
    {"version": "1; DROP TABLE objections"},
    {"status": "closed"},
    {"department": "113100000024187771"},
]


@pytest.mark.parametrize("fields", HOSTILE_BODIES, ids=lambda f: json.dumps(f, ensure_ascii=True)[:40])
def test_hostile_input_is_refused(platform: Platform, client: TestClient, fields: dict[str, Any]) -> None:
    answer = raise_one(client, platform, **fields)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] and "Traceback" not in answer.text
    with platform.store.session() as s:
        assert s.scalars(select(Objection)).all() == []


def test_odd_but_honest_text_is_kept_as_written(platform: Platform, client: TestClient) -> None:
    detail = '=HYPERLINK("http://evil.example","点我")\n第二行\r\n+1 -1 @SUM(A1) 😀𠀀 <script>alert(1)</script>'
    raised = raise_one(client, platform, detail=detail, subject="' OR 1=1 -- 𠀀")
    assert raised.status_code == 201
    shown = client.get(f"{API}/objections/{raised.json()['id']}", headers=platform.auth("hrss_reviewer")).json()
    assert shown["detail"] == detail.strip() and shown["subject"] == "' OR 1=1 -- 𠀀"
    assert (
        client.get(f"{API}/objections", params={"entry": "' OR 1=1 --"}, headers=platform.auth("hrss_reviewer")).json()
        == []
    )


@pytest.mark.parametrize(
    "path", ["/objections/0", "/objections/-3", "/objections/99999999999999999999", "/objections/x"]
)
def test_bad_ids_are_refused(platform: Platform, client: TestClient, path: str) -> None:
    assert client.get(API + path, headers=platform.auth("hrss_staff")).status_code == 422


def test_bad_queries_and_missing_tokens(platform: Platform, client: TestClient) -> None:
    for query in ("?status=lost", "?overdue=maybe", "?limit=0", "?entry=" + "x" * 101):
        assert client.get(f"{API}/objections{query}", headers=platform.auth("hrss_staff")).status_code == 422
    assert client.get(f"{API}/objections").status_code == 401
    assert client.post(f"{API}/objections", json={}).status_code == 401


# --- deadlines in working days -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "days", "due"),
    [
        # National Day: 1–7 October off, Saturday 10 October a make-up working day.
        (dt.datetime(2026, 9, 30, 16, 0, tzinfo=SH), None, dt.date(2026, 10, 13)),
        (dt.datetime(2026, 9, 30, 23, 59, tzinfo=SH), "2", dt.date(2026, 10, 9)),
        # Spring Festival: Saturday 14 February worked, 15–23 February off.
        (dt.datetime(2026, 2, 13, 9, 0, tzinfo=SH), None, dt.date(2026, 2, 27)),
        # A Sunday: the day raised is never counted.
        (dt.datetime(2026, 3, 8, 12, 0, tzinfo=SH), "1", dt.date(2026, 3, 9)),
        # 20:00 UTC on Monday is already Tuesday in Shanghai.
        (dt.datetime(2026, 3, 9, 20, 0, tzinfo=dt.UTC), "1", dt.date(2026, 3, 11)),
    ],
)
def test_the_deadline_is_counted_in_working_days(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, raised: dt.datetime, days: str | None, due: dt.date
) -> None:
    if days:
        monkeypatch.setenv(objections.DAYS_ENV, days)
    with platform.store.session() as s:
        obj = objections.raise_objection(
            s, principal(platform, "market_staff"), entry=HRSS, subject="s", detail="d", now=raised
        )
        due_at = obj.due_at
    local = due_at.astimezone(SH)
    assert (local.date(), local.time()) == (due, dt.time.max)


@pytest.mark.parametrize("value", ["0", "251", "five", "-3", "٥"])
def test_a_bad_number_of_days_is_named(
    platform: Platform, client: TestClient, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(objections.DAYS_ENV, value)
    answer = raise_one(client, platform)
    assert answer.status_code == 422 and objections.DAYS_ENV in answer.json()["error"]


def test_overdue_objections_and_the_assessment_figures(platform: Platform, client: TestClient) -> None:
    market = principal(platform, "market_staff")
    hrss = principal(platform, "hrss_reviewer")
    monday = dt.datetime(2026, 3, 2, 10, 0, tzinfo=SH)  # due at the end of Monday 9 March
    with platform.store.session() as s:
        on_time = objections.raise_objection(s, market, entry=HRSS, subject="a", detail="d", now=monday)
        late = objections.raise_objection(s, market, entry=HRSS, subject="b", detail="d", now=monday)
        never = objections.raise_objection(s, market, entry=HRSS, subject="c", detail="d", now=monday)
        withdrawn = objections.raise_objection(s, market, entry=HRSS, subject="e", detail="d", now=monday)
        ids = on_time.id, late.id, never.id, withdrawn.id
    with platform.store.session() as s:
        objections.answer(s, hrss, ids[0], message="ok", now=dt.datetime(2026, 3, 9, 23, 0, tzinfo=SH))
        objections.answer(s, hrss, ids[1], message="late", now=dt.datetime(2026, 3, 10, 9, 0, tzinfo=SH))
        objections.close(s, market, ids[3], now=dt.datetime(2026, 3, 3, 9, 0, tzinfo=SH))
        stats = objections.objection_stats(s, platform.departments["hrss"])
        assert (stats.raised, stats.answered, stats.answered_on_time, stats.overdue_open) == (4, 2, 1, 1)
        assert (stats.open, stats.closed, stats.on_time_rate) == (1, 1, 0.25)
        # At a moment before the deadline nothing was overdue; other departments' data has none.
        before = objections.objection_stats(
            s, platform.departments["hrss"], now=dt.datetime(2026, 3, 9, 12, 0, tzinfo=SH)
        )
        assert before.overdue_open == 0
        assert objections.objection_stats(s, platform.departments["market"]).raised == 0
        window = objections.objection_stats(
            s, since=dt.datetime(2026, 3, 3, tzinfo=SH), until=dt.datetime(2026, 4, 1, tzinfo=SH)
        )
        assert window.raised == 0
        assert objections.objection_stats(s, until=dt.datetime(2026, 3, 3, tzinfo=SH)).raised == 4
        with pytest.raises(objections.TerminalError):
            objections.objection_stats(s, since=dt.datetime(2026, 3, 3))  # naive

    overdue = client.get(f"{API}/objections", params={"overdue": "true"}, headers=platform.auth("hrss_reviewer")).json()
    assert [o["id"] for o in overdue] == [ids[2]] and overdue[0]["overdue"] is True
    not_overdue = client.get(f"{API}/objections", params={"overdue": "false"}, headers=platform.auth("market_staff"))
    assert sorted(o["id"] for o in not_overdue.json()) == sorted([ids[0], ids[1], ids[3]])
    answered = client.get(f"{API}/objections", params={"status": "answered"}, headers=platform.auth("city_admin"))
    assert sorted(o["id"] for o in answered.json()) == sorted(ids[:2])


# --- the command line ---------------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "240"})
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_the_whole_thread_from_the_command_line(platform: Platform) -> None:
    home = ("--home", str(platform.home))
    raised = invoke(
        "exchange", "objections", "raise", HRSS, "--version", "1",
        "--subject", "参保状态错误", "--detail", "应为暂停缴费",
        "--item", "insured_status", "--key", PERSON, "--json", "--as", "market_staff", *home,
    )  # fmt: skip
    assert raised.exit_code == 0, raised.output
    record = json.loads(raised.output)
    oid = str(record["id"])
    assert record["keys"] == [{"resident_id": PERSON}] and record["status"] == "open"

    listed = json.loads(
        invoke("exchange", "objections", "list", "--dataset", HRSS, "--json", "--as", "hrss_reviewer", *home).output
    )
    assert [o["id"] for o in listed] == [record["id"]]
    assert json.loads(invoke("exchange", "objections", "list", "--json", "--as", "transport_staff", *home).output) == []
    table = invoke("exchange", "objections", "list", "--as", "city_admin", *home)
    assert "参保状态错误" in table.output

    denied = invoke("exchange", "objections", "answer", oid, "--message", "x", "--as", "transport_reviewer", *home)
    assert denied.exit_code == 1 and f"no objection {oid}" in denied.output
    answered = invoke("exchange", "objections", "answer", oid, "--message", "已更正", "--as", "hrss_reviewer", *home)
    assert answered.exit_code == 0 and "answered" in answered.output
    assert (
        invoke("exchange", "objections", "message", oid, "--message", "谢谢", "--as", "market_staff", *home).exit_code
        == 0
    )
    closed = invoke("exchange", "objections", "close", oid, "--as", "market_staff", *home)
    assert closed.exit_code == 0 and "closed" in closed.output
    shown = json.loads(invoke("exchange", "objections", "show", oid, "--json", "--as", "hrss_staff", *home).output)
    assert [m["body"] for m in shown["messages"]] == ["已更正", "谢谢"] and shown["status"] == "closed"
    again = invoke("exchange", "objections", "close", oid, "--as", "market_staff", *home)
    assert again.exit_code == 1 and "closed already" in again.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["raise", "nowhere", "--subject", "s", "--detail", "d", "--as", "market_staff"], "no resource"),
        (["raise", HRSS, "--subject", "s", "--detail", "d", "--as", "transport_staff"], "grant"),
        (["raise", HRSS, "--subject", "s", "--detail", "d", "--key", "{bad", "--as", "market_staff"], "JSON"),
        (
            ["raise", HRSS, "--subject", "s", "--detail", "d", "--key", '{"resident_id": 1}', "--as", "market_staff"],
            "text",
        ),
        (["raise", HRSS, "--subject", "s", "--detail", "d", "--item", "mobil", "--as", "market_staff"], "mobile"),
        (["raise", HRSS, "--subject", "", "--detail", "d", "--as", "market_staff"], "subject"),
        (["raise", HRSS, "--subject", "s", "--detail", "d"], "who is acting"),
        (["list", "--status", "lost", "--as", "market_staff"], "open, answered, closed"),
        (["show", "7", "--as", "market_staff"], "no objection 7"),
        (["answer", "7", "--message", "m", "--as", "nobody"], "no active user"),
    ],
)
def test_the_cli_says_what_is_wrong(platform: Platform, args: list[str], says: str) -> None:
    result = invoke("exchange", "objections", *args, "--home", str(platform.home))
    assert result.exit_code != 0
    assert says in result.output, result.output
