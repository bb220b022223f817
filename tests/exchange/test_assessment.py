"""The assessment (考核) of March 2026, built by hand: every measure, the total, the workbook, the API and ``govdata assess``.

The platform's three departments are moved back to 5 January 2026 (their entries, lifecycle
steps and first versions): the catalog's own functions stamp everything with the clock, and
the assessment judges history. On top, through the exchange's functions (each takes ``now=``):

======================  ===========================================================================
人社 hrss               insured persons (每月): a version on 10 March; a second entry only
                        registered, without abstract and items; applications: 2 decided on time,
                        1 late, 2 undecided past their deadline, 1 not yet due, 1 withdrawn, 1 in
                        January, 1 overdue since February; objections: 1 answered on time, 1 late, 1 never, 1 in April;
                        scorecards 0.9 and 0.8 in March (0.1 in February); used by the data API
                        and a download
市场监管 market         enterprise registry (每日): versions on 20 of March's 31 days (and on 28
                        February 23:30 and 1 April 00:00:30, local time, just outside); one
                        application decided on time; scorecard 0.7; delivered only in April
交通 transport          bus stops (实时): no version in March; its applicant is reviewed by the
                        city (not its own response); nothing delivered
======================  ===========================================================================

With the default weights (completeness 10, coverage 10, timeliness 20, response 20, quality 20,
objections 10, usage 10) the totals are, by hand:

* hrss: 10·½ + 10·½ + 20·1 + 20·0.4 + 20·0.85 + 10·0.3333 + 10·1 = 68.333 of 100 → 68.3
* market: (10 + 10 + 20·0.6452 + 20·1 + 20·0.7 + 10·0) / 90 (no objections) → 74.3
* transport: (10 + 10 + 20·0 + 10·0) / 50 (no applications, scorecards, objections) → 40.0
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
from openpyxl import load_workbook
from sqlalchemy import select
from typer.testing import CliRunner

from catalog.models import Entry, Transition, Version
from exchange import applications, assessment, delivery, grants, objections
from exchange.models import Grant
from exchange.service import create_app
from pipelines.cli import app as cli
from tests.exchange.conftest_exchange import HRSS, MARKET, TRANSPORT, Platform, build_platform, generated_rows, publish
from tests.exchange.monitor_scenario import ENV, clock, principal

API = "/exchange/v1"
SH = ZoneInfo("Asia/Shanghai")
SINCE = dt.datetime(2026, 3, 1, tzinfo=SH)
UNTIL = dt.datetime(2026, 4, 1, tzinfo=SH)
AFTER = dt.datetime(2026, 4, 15, 10, tzinfo=SH)  # when the assessment is made
END_DATE = dt.date(2030, 12, 31)  # the grants' end of use (the data-API key is issued only to an active grant)
EXTRA, LATER = "hrss_pension_payments", "hrss_unemployment_claims"


def sh(month: int, day: int, hour: int = 10, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=SH)


def utc(value: dt.datetime) -> dt.datetime:
    """Stored times are UTC (SQLite keeps no zone)."""
    return value.astimezone(dt.UTC)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    for name in (
        "GOVDATA_USER",
        "GOVDATA_HOME",
        "GOVDATA_CATALOG_URL",
        assessment.WEIGHTS_ENV,
        objections.DAYS_ENV,
        "GOVDATA_WORKDAY_CALENDAR",
    ):
        monkeypatch.delenv(name, raising=False)


# --- the scenario ----------------------------------------------------------------------------------------


def _backdate(platform: Platform, moment: dt.datetime) -> None:
    """The platform as it stood since ``moment``: entries, lifecycle steps and first versions."""
    with platform.store.session() as s:
        for entry in s.scalars(select(Entry)):
            entry.created_at = utc(moment)
        for i, step in enumerate(s.scalars(select(Transition).order_by(Transition.id))):
            step.at = utc(moment) + dt.timedelta(seconds=i)
        for version in s.scalars(select(Version)):
            version.published_at = utc(moment) + dt.timedelta(minutes=1)


def _copy_entry(platform: Platform, source: str, new_id: str, code: str, at: dt.datetime, *, to: str) -> None:
    """A further entry of ``source``'s department: no abstract, no data items; one lifecycle step at ``at``."""
    with platform.store.session() as s:
        base = s.get(Entry, source)
        assert base is not None
        columns = {c.key: getattr(base, c.key) for c in Entry.__table__.columns if c.key not in ("search_text",)}
        columns.update(
            id=new_id,
            resource_code=code,
            name=f"{base.name}（补充）",
            abstract="",
            status=to,
            publish_date=None,
            created_at=utc(at),
            updated_at=utc(at),
        )
        s.add(Entry(**columns))
        s.flush()
        s.add(
            Transition(
                entry_id=new_id,
                action="register",
                from_status="draft",
                to_status=to,
                actor="hrss_reviewer",
                role="dept_admin",
                at=utc(at),
            )
        )


def _versions(platform: Platform, entry: str, moments: list[dt.datetime]) -> None:
    """Further versions of ``entry`` published at ``moments`` (copies of version 1's record)."""
    with platform.store.session() as s:
        first = s.scalar(select(Version).where(Version.entry_id == entry, Version.number == 1))
        assert first is not None
        top = s.scalar(select(Version.number).where(Version.entry_id == entry).order_by(Version.number.desc()).limit(1))
        for i, moment in enumerate(moments, start=(top or 1) + 1):
            s.add(
                Version(
                    entry_id=entry,
                    number=i,
                    run_id=f"hand-{i}",
                    row_count=first.row_count,
                    content_sha256=first.content_sha256,
                    fingerprint=f"{i:064d}",
                    schema=first.schema,
                    quality=first.quality,
                    lineage=first.lineage,
                    location=first.location,
                    watermark=None,
                    published_at=utc(moment),
                )
            )


def _apply(platform: Platform, user: str, entry: str, method: str, when: dt.datetime) -> int:
    items = [c.name for c in platform.specs[entry].columns][:4]
    with platform.store.session() as s:
        app = applications.submit(
            s,
            principal(platform, user),
            entry=entry,
            items=items,
            purpose="考核测试",
            scenario="考核测试",
            delivery_method=method,
            end_date=END_DATE,
            now=utc(when),
        )
        return app.id


def _decide(platform: Platform, user: str, app_id: int, when: dt.datetime, *, approve: bool = True) -> int | None:
    with platform.store.session() as s:
        _, grant = applications.decide(
            s,
            principal(platform, user),
            app_id,
            approve=approve,
            opinion=None if approve else "事由不充分",
            now=utc(when),
        )
        return None if grant is None else grant.id


def _object(platform: Platform, user: str, when: dt.datetime) -> tuple[int, dt.datetime]:
    with platform.store.session() as s:
        row = objections.raise_objection(
            s, principal(platform, user), entry=HRSS, subject="数据有误", detail="请核实", now=utc(when)
        )
        return row.id, row.due_at


def _answer(platform: Platform, objection: int, when: dt.datetime) -> None:
    with platform.store.session() as s:
        objections.answer(s, principal(platform, "hrss_reviewer"), objection, message="已核实", now=utc(when))


def _scorecard(platform: Platform, dataset: str, when: dt.datetime, score: float) -> None:
    spec = platform.specs[dataset]
    platform.store.save_scorecard(
        {
            "dataset": dataset,
            "run_id": when.date().isoformat(),
            "logical_date": utc(when).isoformat(),
            "department": {"uscc": spec.department.uscc, "name": spec.department.name},
            "status": "published",
            "version": 1,
            "score": score,
            "computed_at": utc(when).isoformat(),
        }
    )


def build(home: Path) -> tuple[Platform, dict[str, Any]]:
    platform = build_platform(home, rows=20)
    _backdate(platform, sh(1, 5, 9))
    ids: dict[str, Any] = {}
    # Catalog: a registered (not published) entry, incomplete; one registered only after the period.
    _copy_entry(platform, HRSS, EXTRA, "112461465423/900001", sh(2, 2), to="registered")
    _copy_entry(platform, HRSS, LATER, "112461465423/900002", sh(4, 5), to="registered")
    # Versions: 人社 once in March (a real file: the data API reads it); 市场监管 on 20 days.
    number = publish(platform, HRSS, generated_rows(platform.specs[HRSS], 20, seed=3), run_id="march")
    with platform.store.session() as s:
        v = s.scalar(select(Version).where(Version.entry_id == HRSS, Version.number == number))
        assert v is not None
        v.published_at = utc(sh(3, 10, 9))
    market_days = [sh(3, d, 9) for d in range(1, 20)] + [sh(3, 5, 14), sh(3, 31, 23, 59)]
    _versions(platform, MARKET, [sh(2, 28, 23, 30), *market_days, sh(4, 1, 0, 0, 30)])

    # Applications for 人社's data (有条件共享: 人社 reviews, 5 working days).
    a1 = ids["a1"] = _apply(platform, "market_staff", HRSS, "api", sh(3, 2, 10))  # due 9 Mar
    a2 = ids["a2"] = _apply(platform, "transport_staff", HRSS, "file", sh(3, 2, 11))  # due 9 Mar
    a3 = ids["a3"] = _apply(platform, "market_staff", HRSS, "file", sh(3, 3, 9))  # due 10 Mar
    a4 = ids["a4"] = _apply(platform, "transport_staff", HRSS, "file", sh(3, 20, 10))  # due 27 Mar, never decided
    a5 = ids["a5"] = _apply(platform, "market_staff", HRSS, "file", sh(3, 30, 10))  # due 7 Apr (清明 6 Apr)
    a6 = ids["a6"] = _apply(platform, "transport_staff", HRSS, "file", sh(3, 23, 10))  # due 30 Mar, decided 2 Apr
    a7 = ids["a7"] = _apply(platform, "market_staff", HRSS, "file", sh(1, 12, 10))  # January
    ids["a8"] = _apply(platform, "transport_staff", HRSS, "file", sh(2, 9, 10))  # due 14 Feb: February's, never decided
    withdrawn = ids["withdrawn"] = _apply(platform, "market_staff", HRSS, "file", sh(3, 10, 10))
    ids["grant_api"] = _decide(platform, "hrss_reviewer", a1, sh(3, 4, 15))
    ids["grant_file"] = _decide(platform, "hrss_reviewer", a2, sh(3, 12, 9))
    _decide(platform, "hrss_reviewer", a3, sh(3, 5, 16), approve=False)
    _decide(platform, "hrss_reviewer", a6, sh(4, 2, 9), approve=False)
    _decide(platform, "hrss_reviewer", a7, sh(1, 14, 9))
    with platform.store.session() as s:
        applications.withdraw(s, principal(platform, "market_staff"), withdrawn, now=utc(sh(3, 11)))
    assert a4 and a5
    # 市场监管 decides its one application on time; 交通's data is the city's to check (无条件共享).
    m1 = ids["m1"] = _apply(platform, "hrss_staff", MARKET, "file", sh(3, 9, 10))
    ids["grant_market"] = _decide(platform, "market_reviewer", m1, sh(3, 10, 10))
    t1 = _apply(platform, "market_staff", TRANSPORT, "file", sh(3, 2, 10))
    _decide(platform, "city_admin", t1, sh(3, 20, 10))

    # Use: the data API on 5 and 6 March (and 2 April), a download on 13 March; 市场监管's only in April.
    with platform.store.session() as s:
        grant = s.get(Grant, ids["grant_api"])
        assert grant is not None
        key = grants.issue_key(s, grant, principal(platform, "market_staff"))
    for when in (sh(3, 5), sh(3, 6), sh(4, 2)):
        delivery.api_page(platform.store, ids["grant_api"], key, page_size=5, cache_dir=home / "cache", now=utc(when))
    for grant_id, user, when in (
        (ids["grant_file"], "transport_staff", sh(3, 13)),
        (ids["grant_market"], "hrss_staff", sh(4, 3)),
    ):
        with clock(utc(when)):
            delivery.download(
                platform.store, grant_id, principal(platform, user), full=True, work_dir=home / "tmp", now=utc(when)
            ).cleanup()

    # Objections to 人社's data (5 working days to answer).
    o1, due1 = _object(platform, "market_staff", sh(3, 5))
    _answer(platform, o1, sh(3, 6))
    o2, due2 = _object(platform, "transport_staff", sh(3, 13))
    _answer(platform, o2, due2 + dt.timedelta(hours=10))
    ids["o3"], _ = _object(platform, "market_staff", sh(3, 25))
    ids["o4"], _ = _object(platform, "transport_staff", sh(4, 1, 9))
    ids.update(o1=o1, o2=o2, due1=due1)

    # Quality scorecards.
    for dataset, when, score in (
        (HRSS, sh(3, 3), 0.9),
        (HRSS, sh(3, 17), 0.8),
        (HRSS, sh(2, 10), 0.1),
        (MARKET, sh(3, 8), 0.7),
    ):
        _scorecard(platform, dataset, when, score)
    return platform, ids


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Platform, dict[str, Any]]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in ENV.items():
            mp.setenv(name, value)
        return build(tmp_path_factory.mktemp("assessment") / "home")


@pytest.fixture(scope="module")
def platform(scenario: tuple[Platform, dict[str, Any]]) -> Platform:
    return scenario[0]


@pytest.fixture(scope="module")
def ids(scenario: tuple[Platform, dict[str, Any]]) -> dict[str, Any]:
    return scenario[1]


@pytest.fixture(scope="module")
def result(platform: Platform) -> dict[str, Any]:
    with platform.store.session() as s:
        return assessment.assess(s, SINCE, UNTIL, now=AFTER)


@pytest.fixture(scope="module")
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.home)) as c:
        yield c


def of(result: dict[str, Any], platform: Platform, short: str) -> dict[str, Any]:
    uscc = platform.departments[short]
    return next(d for d in result["departments"] if d["uscc"] == uscc)


def details(result: dict[str, Any], part: str, platform: Platform, short: str) -> list[dict[str, Any]]:
    return [r for r in result["details"][part] if r["department"] == platform.departments[short]]


# --- each measure ----------------------------------------------------------------------------------------


def test_catalog_completeness_and_coverage(result: dict[str, Any], platform: Platform) -> None:
    hrss = of(result, platform, "hrss")["measures"]
    assert hrss["completeness"] == {"score": 0.5, "complete": 1, "catalogued": 2}
    assert hrss["coverage"] == {"score": 0.5, "published": 1, "catalogued": 2}
    rows = {r["entry"]: r for r in details(result, "catalog", platform, "hrss")}
    assert set(rows) == {HRSS, EXTRA}  # the entry registered in April is not yet in March's catalog
    assert rows[HRSS]["complete"] and rows[HRSS]["missing"] == []
    assert rows[EXTRA]["status"] == "registered"
    assert rows[EXTRA]["missing"] == ["6 信息资源摘要", "8 信息项"]
    for short in ("market", "transport"):
        m = of(result, platform, short)["measures"]
        assert (m["completeness"]["score"], m["coverage"]["score"]) == (1.0, 1.0)


def test_the_catalog_is_judged_as_it_stood_at_the_end_of_the_period(platform: Platform) -> None:
    with platform.store.session() as s:
        january = assessment.assess(s, sh(1, 1, 0), sh(2, 1, 0), now=AFTER, departments=[platform.departments["hrss"]])
        april = assessment.assess(s, sh(4, 1, 0), sh(5, 1, 0), now=AFTER, departments=[platform.departments["hrss"]])
    assert january["departments"][0]["measures"]["coverage"] == {"score": 1.0, "published": 1, "catalogued": 1}
    assert april["departments"][0]["measures"]["coverage"] == {"score": 0.3333, "published": 1, "catalogued": 3}


def test_on_time_updates_per_cycle_period(result: dict[str, Any], platform: Platform) -> None:
    assert of(result, platform, "hrss")["measures"]["timeliness"] == {"score": 1.0, "on_time": 1, "expected": 1}
    market = of(result, platform, "market")["measures"]["timeliness"]
    assert market == {"score": round(20 / 31, 4), "on_time": 20, "expected": 31}
    [row] = details(result, "timeliness", platform, "market")
    missed = [m.astimezone(SH).date() for m in row["missed"]]
    assert missed == [dt.date(2026, 3, d) for d in range(20, 31)]  # 31 March (23:59) counts, 1 April 00:00:30 not
    assert of(result, platform, "transport")["measures"]["timeliness"] == {"score": 0.0, "on_time": 0, "expected": 31}


def test_only_ended_periods_are_expected(platform: Platform) -> None:
    """Assessed on 16 March at noon: 15 days have ended (all with a version); the month has not."""
    with platform.store.session() as s:
        mid = assessment.assess(s, SINCE, UNTIL, now=sh(3, 16, 12))
    assert of(mid, platform, "market")["measures"]["timeliness"] == {"score": 1.0, "on_time": 15, "expected": 15}
    assert of(mid, platform, "hrss")["measures"]["timeliness"]["score"] is None  # not evaluated, not 0


def test_application_response(result: dict[str, Any], platform: Platform, ids: dict[str, Any]) -> None:
    hrss = of(result, platform, "hrss")["measures"]["response"]
    assert hrss == {
        "score": 0.4,
        "counted": 5,
        "decided": 3,
        "on_time": 2,
        "overdue_undecided": 2,
        "mean_working_days": 4.0,  # 2 (2→4 Mar), 8 (2→12 Mar), 2 (3→5 Mar)
        "median_working_days": 2,
    }
    rows = {r["id"]: r for r in details(result, "response", platform, "hrss")}
    assert set(rows) == {ids["a1"], ids["a2"], ids["a3"], ids["a4"], ids["a6"]}
    assert rows[ids["a1"]]["on_time"] and rows[ids["a3"]]["on_time"] and rows[ids["a3"]]["status"] == "refused"
    assert not rows[ids["a2"]]["on_time"] and rows[ids["a2"]]["working_days"] == 8
    assert rows[ids["a6"]]["status"] == "pending"  # decided only in April: undecided at the end of March
    with platform.store.session() as s:  # overdue since February and never decided: February's, not March's
        february = assessment.assess(s, sh(2, 1, 0), SINCE, now=AFTER, departments=[platform.departments["hrss"]])
    [feb] = february["departments"]
    assert [r["id"] for r in february["details"]["response"]] == [ids["a8"]]
    assert (feb["measures"]["response"]["score"], feb["measures"]["response"]["overdue_undecided"]) == (0.0, 1)
    market = of(result, platform, "market")["measures"]["response"]
    assert (market["score"], market["counted"], market["median_working_days"]) == (1.0, 1, 1)
    assert of(result, platform, "transport")["measures"]["response"]["score"] is None  # the city reviews 交通's


def test_quality_score(result: dict[str, Any], platform: Platform) -> None:
    assert of(result, platform, "hrss")["measures"]["quality"] == {"score": 0.85, "runs": 2, "datasets": 1}
    assert of(result, platform, "market")["measures"]["quality"] == {"score": 0.7, "runs": 1, "datasets": 1}
    assert of(result, platform, "transport")["measures"]["quality"] == {"score": None, "runs": 0, "datasets": 0}


def test_objections_answered(result: dict[str, Any], platform: Platform, ids: dict[str, Any]) -> None:
    hrss = of(result, platform, "hrss")["measures"]["objections"]
    assert hrss == {"score": 0.3333, "raised": 3, "answered": 2, "on_time": 1, "answered_rate": 0.6667}
    rows = {r["id"]: r for r in details(result, "objections", platform, "hrss")}
    assert set(rows) == {ids["o1"], ids["o2"], ids["o3"]}
    assert rows[ids["o1"]]["on_time"] and not rows[ids["o2"]]["on_time"] and not rows[ids["o3"]]["answered"]
    assert of(result, platform, "market")["measures"]["objections"]["score"] is None


def test_usage(result: dict[str, Any], platform: Platform) -> None:
    hrss = of(result, platform, "hrss")["measures"]["usage"]
    assert hrss == {
        "score": 1.0,
        "used": 1,
        "published": 1,
        "deliveries": 1,  # the download; the API's daily receipts are its calls
        "rows": 20,
        "api_calls": 2,  # 5 and 6 March; 2 April is outside
        "api_rows": 10,
    }
    [row] = details(result, "usage", platform, "hrss")
    assert row["consumers"] == 2
    assert of(result, platform, "market")["measures"]["usage"]["score"] == 0.0  # delivered in April only
    assert of(result, platform, "transport")["measures"]["usage"]["used"] == 0


def test_the_totals_and_ranks(result: dict[str, Any], platform: Platform) -> None:
    hrss, market, transport = (of(result, platform, s) for s in ("hrss", "market", "transport"))
    assert (hrss["score"], hrss["weight_evaluated"], hrss["rank"]) == (68.3, 1.0, 2)
    assert (market["score"], market["weight_evaluated"], market["rank"]) == (74.3, 0.9, 1)
    assert (transport["score"], transport["weight_evaluated"], transport["rank"]) == (40.0, 0.5, 3)


def test_weights_from_a_file(platform: Platform, tmp_path: Path) -> None:
    weights = tmp_path / "weights.yaml"
    weights.write_text(
        "completeness: 0\ncoverage: 0\ntimeliness: 0\nresponse: 0\nquality: 1\nobjections: 0\nusage: 0\n"
    )
    with platform.store.session() as s:
        only_quality = assessment.assess(s, SINCE, UNTIL, now=AFTER, weights=assessment.load_weights(weights))
    assert of(only_quality, platform, "hrss")["score"] == 85.0
    assert of(only_quality, platform, "transport")["score"] is None  # nothing it could be judged on
    assert of(only_quality, platform, "transport")["rank"] is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("quality: 30\nqualty: 2\n", "qualty"),
        ("quality: -1\n", "quality"),
        ("quality: lots\n", "quality"),
        ("- quality\n", "mapping"),
        ("completeness: 0\ncoverage: 0\ntimeliness: 0\nresponse: 0\nquality: 0\nobjections: 0\nusage: 0\n", "0"),
        ("quality: [1\n", "weights"),
    ],
)
def test_bad_weights_name_the_file_and_the_key(tmp_path: Path, text: str, named: str) -> None:
    weights = tmp_path / "weights.yaml"
    weights.write_text(text)
    with pytest.raises(assessment.AssessmentError) as caught:
        assessment.load_weights(weights)
    assert str(weights) in caught.value.message and named in caught.value.message + (caught.value.hint or "")


def test_a_naive_or_reversed_period_is_refused(platform: Platform) -> None:
    with platform.store.session() as s:
        with pytest.raises(assessment.AssessmentError, match="time zone"):
            assessment.assess(s, dt.datetime(2026, 3, 1), dt.datetime(2026, 4, 1))
        with pytest.raises(assessment.AssessmentError, match="not before"):
            assessment.assess(s, UNTIL, SINCE)


# --- the workbook -----------------------------------------------------------------------------------------


def _sheets(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    book = load_workbook(path, read_only=True)
    try:
        return {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)] for ws in book.worksheets}
    finally:
        book.close()


def check_workbook(path: Path, platform: Platform) -> None:
    sheets = _sheets(path)
    assert list(sheets) == [
        "汇总 Summary",
        "目录 Catalog",
        "更新 Timeliness",
        "申请响应 Response",
        "质量 Quality",
        "异议 Objections",
        "使用 Usage",
        "说明 About",
    ]
    summary = sheets["汇总 Summary"]
    header = summary[0]
    assert header[:4] == ("排名 Rank", "部门 Department", "统一社会信用代码 USCC", "总分 Total")
    assert [h.split(" ")[0] for h in header[4:11]] == [zh for zh, _ in assessment.MEASURES.values()]
    rows = {r[2]: r for r in summary[1:]}
    hrss, market = rows[platform.departments["hrss"]], rows[platform.departments["market"]]
    assert (hrss[0], hrss[3], hrss[4], hrss[5], hrss[7], hrss[8]) == (2, 68.3, 0.5, 0.5, 0.4, 0.85)
    assert (market[0], market[3], market[6]) == (1, 74.3, round(20 / 31, 4))
    assert [r[0] for r in summary[1:]] == [1, 2, 3]  # ranked
    for title in (
        "目录 Catalog",
        "更新 Timeliness",
        "申请响应 Response",
        "质量 Quality",
        "异议 Objections",
        "使用 Usage",
    ):
        assert all(any("\u4e00" <= ch <= "\u9fff" for ch in h) for h in sheets[title][0]), title  # Chinese headers
    timeliness = {r[2]: r for r in sheets["更新 Timeliness"][1:]}
    assert timeliness[MARKET][5:8] == (31, 20, round(20 / 31, 4))
    assert timeliness[MARKET][8].startswith("2026-03-20 2026-03-21")
    response = sheets["申请响应 Response"]
    assert len(response) == 1 + 5 + 1  # hrss's five, market's one
    catalog = {r[2]: r for r in sheets["目录 Catalog"][1:]}
    assert catalog[EXTRA][5:7] == ("否", "6 信息资源摘要；8 信息项")
    about = {r[0]: r[1] for r in sheets["说明 About"][1:]}
    assert about["考核期 Period"] in ("2026-03", "2026-03-01_2026-03-31")
    for zh, en in assessment.MEASURES.values():
        method = about[f"计算方法·{zh} Method: {en}"]
        assert method.startswith(zh) and ("÷" in method or "平均" in method)
        assert about[f"权重·{zh} {en}"] is not None
    assert "× 100" in about["总分 Total"]


def test_the_workbook_read_back(result: dict[str, Any], platform: Platform, tmp_path: Path) -> None:
    from pipelines.report_export import write_xlsx

    target = write_xlsx(tmp_path / "a.xlsx", assessment.tables(result, label="2026-03"))
    check_workbook(target, platform)


# --- over HTTP --------------------------------------------------------------------------------------------


def test_the_api_gives_the_same_assessment(client: TestClient, platform: Platform, result: dict[str, Any]) -> None:
    answer = client.get(f"{API}/assessment", params={"period": "2026-03"}, headers=platform.auth("auditor"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["details"] is None
    got = {d["uscc"]: [d["score"], d["rank"], d["measures"]] for d in body["departments"]}
    want = {d["uscc"]: (d["score"], d["rank"], d["measures"]) for d in result["departments"]}
    assert got == json.loads(json.dumps(want))
    same = client.get(
        f"{API}/assessment", params={"since": "2026-03-01", "until": "2026-04-01"}, headers=platform.auth("city_admin")
    )
    assert [(d["uscc"], d["score"]) for d in same.json()["departments"]] == [
        (d["uscc"], d["score"]) for d in body["departments"]
    ]
    with_rows = client.get(
        f"{API}/assessment", params={"period": "2026-03", "details": "true"}, headers=platform.auth("city_admin")
    )
    assert len(with_rows.json()["details"]["response"]) == 6


def test_a_reviewer_is_assessed_alone(client: TestClient, platform: Platform) -> None:
    own = client.get(f"{API}/assessment", params={"period": "2026-03"}, headers=platform.auth("market_reviewer"))
    assert [d["uscc"] for d in own.json()["departments"]] == [platform.departments["market"]]
    other = client.get(
        f"{API}/assessment",
        params={"period": "2026-03", "department": platform.departments["hrss"]},
        headers=platform.auth("market_reviewer"),
    )
    assert other.status_code == 403
    for user in ("hrss_staff", "market_staff"):
        assert client.get(f"{API}/assessment.xlsx", headers=platform.auth(user)).status_code == 403


def test_the_workbook_over_http(client: TestClient, platform: Platform, tmp_path: Path) -> None:
    answer = client.get(f"{API}/assessment.xlsx", params={"period": "2026-03"}, headers=platform.auth("city_admin"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert 'filename="assessment-2026-03.xlsx"' in answer.headers["content-disposition"]
    target = tmp_path / "http.xlsx"
    target.write_bytes(answer.content)
    check_workbook(target, platform)


BAD_PERIODS = [
    "2026-13",
    "2026-00",
    "2026Q5",
    "Q3-2026",
    "2026-Q",
    "26-03",
    "abcd",
    "1999",
    "2026-03-01",
    "2026 03",
    "x" * 19,
]


@pytest.mark.parametrize("bad", BAD_PERIODS)
def test_bad_periods_over_http_are_a_clear_422(client: TestClient, platform: Platform, bad: str) -> None:
    answer = client.get(f"{API}/assessment", params={"period": bad}, headers=platform.auth("city_admin"))
    assert answer.status_code == 422, answer.text
    assert "period" in answer.json()["error"] and answer.json()["hint"]


def test_period_and_since_exclude_each_other(client: TestClient, platform: Platform) -> None:
    answer = client.get(
        f"{API}/assessment", params={"period": "2026-03", "since": "2026-03-01"}, headers=platform.auth("city_admin")
    )
    assert answer.status_code == 422 and "either" in answer.json()["error"]
    too_long = client.get(f"{API}/assessment", params={"period": "x" * 21}, headers=platform.auth("city_admin"))
    assert too_long.status_code == 422


# --- govdata assess ---------------------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def test_govdata_assess_prints_the_table_and_writes_the_workbook(platform: Platform, tmp_path: Path) -> None:
    target = tmp_path / "out" / "march.xlsx"
    done = invoke("assess", "--period", "2026-03", "--output", str(target), "--home", str(platform.home))
    assert done.exit_code == 0, done.output
    assert "考核 2026-03" in done.output
    lines = [line for line in done.output.splitlines() if "上海市" in line]
    assert lines[0].split()[:3] == ["1", "上海市市场监督管理局", "74.3"]
    assert "68.3" in lines[1] and "40.0" in lines[2]
    assert str(target) in done.output.replace("\n", "")
    check_workbook(target, platform)


def test_govdata_assess_default_output_and_json(platform: Platform) -> None:
    done = invoke("assess", "--period", "2026-q1", "--json", "--home", str(platform.home))
    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    assert body["period"] == "2026-Q1"
    written = Path(body["output"])
    assert written == platform.home / "reports" / "_assessment" / "assessment-2026-Q1.xlsx" and written.is_file()
    assert "details" not in body
    by_dates = json.loads(
        invoke("assess", "--from", "2026-01-01", "--to", "2026-03-31", "--json", "--home", str(platform.home)).output
    )
    assert [(d["uscc"], d["score"]) for d in by_dates["departments"]] == [
        (d["uscc"], d["score"]) for d in body["departments"]
    ]
    assert by_dates["period"] == "2026-01-01_2026-03-31"


def test_govdata_assess_one_department(platform: Platform, tmp_path: Path) -> None:
    done = invoke(
        "assess", "--period", "2026-03", "--department", platform.departments["hrss"].lower(), "--json",
        "--output", str(tmp_path / "hrss.xlsx"), "--home", str(platform.home),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert [d["uscc"] for d in json.loads(done.output)["departments"]] == [platform.departments["hrss"]]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        *[(("--period", bad), "period") for bad in BAD_PERIODS],
        (("--period", "2026-03", "--from", "2026-03-01"), "either"),
        (("--from", "2026-03-32"), "--from"),
        (("--to", "March"), "--to"),
        (("--from", "2026-03-10", "--to", "2026-03-01"), "before --from"),
        (("--from", "2020-01-01", "--to", "2026-01-01"), "longer than"),
        (("--department", "hrss"), "统一社会信用代码"),
        (("--department", "113100000000000001"), "not a department"),
        (("--period", "2026-03", "--output", "report.csv"), ".xlsx"),
    ],
)
def test_govdata_assess_refuses_bad_input_clearly(
    platform: Platform, tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    done = invoke("assess", *args, "--home", str(platform.home))
    assert done.exit_code == 1, done.output
    assert said in done.output and "error:" in done.output and "→" in done.output


def test_govdata_assess_with_a_weights_file(platform: Platform, tmp_path: Path) -> None:
    weights = tmp_path / "w.yaml"
    weights.write_text(
        "quality: 1\ncompleteness: 0\ncoverage: 0\ntimeliness: 0\nresponse: 0\nobjections: 0\nusage: 0\n"
    )
    done = invoke("assess", "--period", "2026-03", "--weights", str(weights), "--json", "--home", str(platform.home))
    scores = {d["uscc"]: d["score"] for d in json.loads(done.output)["departments"]}
    assert scores[platform.departments["hrss"]] == 85.0
    weights.write_text("qualty: 1\n")
    bad = invoke("assess", "--period", "2026-03", "--weights", str(weights), "--home", str(platform.home))
    assert bad.exit_code == 1 and "qualty" in bad.output


def test_govdata_exchange_monitor_summary(platform: Platform) -> None:
    done = invoke("exchange", "monitor", "--period", "2026-03", "--json", "--home", str(platform.home))
    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    # March: the API's receipts of 5 and 6 March and the download of 13 March.
    assert (body["deliveries"], body["deliveries_succeeded"], body["api_calls"], body["api_rows"]) == (3, 3, 2, 10)
    table = invoke("exchange", "monitor", "--home", str(platform.home))
    assert table.exit_code == 0 and "pending applications (now)" in table.output
    bad = invoke("exchange", "monitor", "--period", "2026-13", "--home", str(platform.home))
    assert bad.exit_code == 1 and "month 13" in bad.output
