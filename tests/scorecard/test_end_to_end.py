"""The bundled departments run twice (and once held) into a scratch home: scorecard files, catalog, trend, exports.

Every expected number is taken from the runs themselves (run reports, catalog, published data),
never written into the test.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import openpyxl
import pytest
from typer.testing import CliRunner

from catalog.store import CatalogStore
from pipelines import scorecard
from pipelines.cli import app
from pipelines.errors import GovdataError
from pipelines.spec import find_specs, load_spec
from pipelines.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
DATES = ("2026-11-23", "2026-11-24")
HELD_DATE = "2026-11-25"
cli = CliRunner()


def invoke(*args: str) -> Any:
    result = cli.invoke(app, list(args), env={"COLUMNS": "200"})
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The demo run for two logical dates, then the HRSS dataset held (quarantine limit 0) on a third."""
    base = tmp_path_factory.mktemp("scorecard-e2e")
    home = base / "home"
    datasets = base / "datasets"
    shutil.copytree(REPO / "datasets", datasets)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOVDATA_HOME", str(home))
        mp.delenv("GOVDATA_CATALOG_URL", raising=False)
        for date in DATES:
            result = invoke("demo", "--datasets", str(datasets), "--date", date)
            assert result.exit_code in (0, 2), result.output  # 2: a dataset was held, which is scored too
        hrss = datasets / "hrss" / "insured_persons.yaml"
        strict = hrss.with_name("insured_persons_strict.yaml")
        text = hrss.read_text(encoding="utf-8")
        assert "max_quarantine_share: 0.1" in text
        strict.write_text(text.replace("max_quarantine_share: 0.1", "max_quarantine_share: 0.0"), encoding="utf-8")
        held = invoke("run", str(strict), "--date", HELD_DATE)
        assert held.exit_code == 2, held.output
        specs = {s.id: s for s in (load_spec(p) for p in find_specs(datasets)) if s.path != strict.resolve()}
        yield {"home": home, "specs": specs, "store": CatalogStore(Workspace.from_env(home).catalog_url)}


def runs(demo: dict[str, Any]) -> list[tuple[str, str]]:
    keys = [(d, date) for d in sorted(demo["specs"]) for date in DATES]
    return [*keys, ("hrss_insured_persons", HELD_DATE)]


def report_of(demo: dict[str, Any], dataset: str, run_id: str) -> dict[str, Any]:
    path = demo["home"] / "reports" / dataset / run_id / "run_report.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def card_of(demo: dict[str, Any], dataset: str, run_id: str) -> dict[str, Any]:
    return scorecard.load(demo["home"] / "reports" / dataset / run_id / "scorecard.json")


def indicator(card: dict[str, Any], code: str) -> dict[str, Any]:
    return next(i for i in card["indicators"] if i["code"] == code)


def test_every_run_writes_a_scorecard_that_agrees_with_its_run_report(demo: dict[str, Any]) -> None:
    for dataset, run_id in runs(demo):
        card = card_of(demo, dataset, run_id)
        report = report_of(demo, dataset, run_id)
        rows = report["rows"]
        assert card["schema"] == "govdata.scorecard/1"
        assert (card["dataset"], card["run_id"], card["logical_date"]) == (dataset, run_id, report["logical_date"])
        assert card["status"] == report["status"]
        assert card["version"] == report["version"]
        assert card["gate"] == ("held" if report["status"] == "held" else "passed")
        assert report["quality"]["scorecard"] == card  # the run report carries the final scorecard
        assert report["quality"]["score"] == card["score"]
        spec = demo["specs"][dataset]
        assert card["department"] == {"name": spec.department.name, "uscc": spec.department.uscc}
        assert card["update_cycle"] == spec.catalog.update_cycle.value

        # the computed indicators come from the row accounting
        detail = rows["quarantined_detail"]
        assert card["rows"]["collected"] == rows["collected"]
        assert card["rows"]["quarantined"] == rows["quarantined"]
        dirty = indicator(card, "030500")
        assert dirty["a"] == detail["malformed_at_read"] + detail["cast_failed"]
        assert dirty["b"] == rows["collected"]
        if rows["collected"]:
            assert dirty["x"] == round(1 - dirty["a"] / dirty["b"], 6)
        assert indicator(card, "030300")["a"] == rows["duplicates_removed"]

        # each expectation's A and B come from its result in the run report
        expected: dict[str, list[int]] = {}
        for o in report["quality"]["expectations"]:
            sums = expected.setdefault(o["indicator"], [0, 0])
            if o["type"] in ("expect_table_columns_to_match_set", "expect_table_row_count_to_be_between"):
                b = max(card["rows"]["staged"], 1)
                a = b if o["success"] else 0
            else:
                b = o["element_count"] - (o["missing_count"] or 0)
                a = b - o["unexpected_count"]
            sums[0] += a
            sums[1] += b
        for code, (a, b) in expected.items():
            ind = indicator(card, code)
            from_expectations = [s for s in ind["sources"] if s["kind"] == "expectation"]
            assert sum(s["a"] for s in from_expectations) == a, code
            assert sum(s["b"] for s in from_expectations) == b, code

        # X, the dimension scores and the overall score follow from A and B
        for ind in card["indicators"]:
            if ind["b"]:
                good = ind["b"] - ind["a"] if ind["formula"] == "1-A/B" else ind["a"]
                assert ind["x"] == round(good / ind["b"], 6)
        scored = []
        for d in card["dimensions"]:
            xs = [indicator(card, c)["x"] for c in d["indicators"]]
            assert d["score"] == (round(sum(xs) / len(xs), 6) if xs else None)
            if d["score"] is not None:
                scored.append(d["score"])
        assert card["score"] == round(sum(scored) / len(scored), 6)


def test_the_held_run_is_scored_and_stored(demo: dict[str, Any]) -> None:
    card = card_of(demo, "hrss_insured_persons", HELD_DATE)
    report = report_of(demo, "hrss_insured_persons", HELD_DATE)
    assert card["status"] == card["gate"] == "held" and card["version"] is None
    assert report["quality"]["held_because"]
    stored = demo["store"].scorecards(dataset="hrss_insured_persons")
    assert [c["run_id"] for c in stored] == [*DATES, HELD_DATE]
    assert stored[-1] == card


def test_the_catalog_keeps_the_scorecard_with_the_version(demo: dict[str, Any]) -> None:
    store = demo["store"]
    for dataset in demo["specs"]:
        entry = store.entry(dataset)
        cards = {c["run_id"]: c for c in store.scorecards(dataset=dataset)}
        assert set(DATES) <= set(cards)
        for version in entry.versions if entry else []:
            card = cards[version.run_id]
            assert card["version"] == version.number and card["status"] == "published"
            assert version.quality["indicators"] == scorecard.summary(card)["indicators"]
            assert version.quality["score"] == card["score"]
        published = {v.run_id for v in (entry.versions if entry else [])}
        for run_id, card in cards.items():
            if run_id not in published and card["status"] != "held":
                assert card["status"] == "unchanged" and card["version"] is not None


def test_the_trend_per_dataset_and_department(demo: dict[str, Any]) -> None:
    home = demo["home"]
    points = scorecard.trend(home, dataset="hrss_insured_persons")
    assert [p["run_id"] for p in points] == [*DATES, HELD_DATE]
    assert [p["status"] for p in points][-1] == "held"
    for p in points:
        card = card_of(demo, "hrss_insured_persons", p["run_id"])
        assert p["score"] == card["score"]
        assert p["dimensions"] == {d["key"]: d["score"] for d in card["dimensions"]}
        assert p["indicators"]["030500"] == indicator(card, "030500")["x"]

    spec = demo["specs"]["market_enterprise_registry"]
    by_uscc = scorecard.trend(home, department=spec.department.uscc.lower())
    by_name = scorecard.trend(home, department=spec.department.name)
    assert by_uscc == by_name
    assert {p["dataset"] for p in by_uscc} == {
        s.id for s in demo["specs"].values() if s.department.uscc == spec.department.uscc
    }
    everything = scorecard.trend(home)
    assert len(everything) == len(runs(demo))
    assert [p["logical_date"] for p in everything] == sorted(p["logical_date"] for p in everything)
    periods = scorecard.by_period(everything)
    assert [g["logical_date"] for g in periods] == [*DATES, HELD_DATE]
    assert periods[0]["runs"] == len(demo["specs"]) and periods[-1]["held"] == 1
    first = [p["score"] for p in everything if p["logical_date"] == DATES[0] and p["score"] is not None]
    assert periods[0]["score"] == round(sum(first) / len(first), 6)
    assert scorecard.trend(home, dataset="no_such_dataset") == []


def test_a_rerun_replaces_its_point(demo: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVDATA_HOME", str(demo["home"]))
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    spec = demo["specs"]["hrss_insured_persons"]
    before = scorecard.trend(demo["home"], dataset=spec.id)
    result = invoke("run", str(spec.path), "--date", DATES[1])
    assert result.exit_code == 0, result.output
    after = scorecard.trend(demo["home"], dataset=spec.id)
    assert [p["run_id"] for p in after] == [p["run_id"] for p in before]
    rerun = next(p for p in after if p["run_id"] == DATES[1])
    assert rerun["status"] == "unchanged" and rerun["computed_at"] >= before[1]["computed_at"]


def _sheet_rows(path: Path, title: str) -> list[list[Any]]:
    wb = openpyxl.load_workbook(path, read_only=True)
    return [list(r) for r in wb[title].iter_rows(values_only=True)]


def _csv_rows(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel opens it as UTF-8
    return list(csv.reader(raw.decode("utf-8-sig").splitlines()))


def _value(text: str) -> Any:
    """A cell as a number when it is one (xlsx keeps 1.0 as 1), else as text."""
    try:
        return float(text)
    except ValueError:
        return text


def test_export_xlsx_and_csv_carry_the_scorecards_and_the_history(demo: dict[str, Any], tmp_path: Path) -> None:
    home = str(demo["home"])
    xlsx = tmp_path / "out" / "scorecards.xlsx"
    result = invoke("report", "export", "--home", home, "--output", str(xlsx))
    assert result.exit_code == 0, result.output
    cards = demo["store"].scorecards()
    wb = openpyxl.load_workbook(xlsx, read_only=True)
    assert wb.sheetnames == [
        "总体评分 Overall",
        "维度 Dimensions",
        "指标 Indicators",
        "运行记录 Run history",
        "说明 About",
    ]

    overall = _sheet_rows(xlsx, "总体评分 Overall")
    header = overall[0]
    assert header[:2] == ["数据集 Dataset", "资源名称 Name"] and "总体评分 Overall score" in header
    assert "规范性 validity" in header and "准确性 accuracy" in header
    by_key = {(r[0], r[4]): dict(zip(header, r, strict=True)) for r in overall[1:]}
    assert len(by_key) == len(cards)
    for card in cards:
        row = by_key[(card["dataset"], card["run_id"])]
        assert row["总体评分 Overall score"] == card["score"]
        assert row["状态 Status"] == card["status"]
        assert row["版本 Version"] == card["version"]
        assert row["完整性 completeness"] == next(d["score"] for d in card["dimensions"] if d["key"] == "completeness")

    indicators = _sheet_rows(xlsx, "指标 Indicators")
    ih = indicators[0]
    assert ih[3:5] == ["指标代码 Code", "指标 Indicator"] and ih[-3:] == ["A", "B", "指标值 X"]
    exported = {(r[0], r[1], r[3]): (r[9], r[10], r[11]) for r in indicators[1:]}
    expected = {
        (c["dataset"], c["run_id"], i["code"]): (i["a"], i["b"], i["x"])
        for c in cards
        for i in c["indicators"]
        if i["b"] is not None
    }
    assert exported == expected

    history = _sheet_rows(xlsx, "运行记录 Run history")
    hh = history[0]
    records = {(r[0], r[3]): dict(zip(hh, r, strict=True)) for r in history[1:]}
    for dataset, run_id in runs(demo):
        report = report_of(demo, dataset, run_id)
        row = records[(dataset, run_id)]
        assert row["状态 Status"] == report["status"]
        assert row["采集 Collected"] == report["rows"]["collected"]
        assert row["发布 Published"] == report["rows"]["published"]
        assert row["隔离 Quarantined"] == report["rows"]["quarantined"]
        assert row["版本 Version"] == report["version"]

    folder = tmp_path / "csv"
    result = invoke("report", "export", "--home", home, "--format", "csv", "--output", str(folder))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["overall.csv", "dimensions.csv", "indicators.csv", "runs.csv", "about.csv"]
    )
    for name, title in (
        ("overall", "总体评分 Overall"),
        ("indicators", "指标 Indicators"),
        ("runs", "运行记录 Run history"),
    ):
        from_csv = [[_value(v) for v in r] for r in _csv_rows(folder / f"{name}.csv")]
        from_xlsx = [[_value("" if v is None else str(v)) for v in r] for r in _sheet_rows(xlsx, title)]
        assert from_csv == from_xlsx, name


def test_export_for_one_department(demo: dict[str, Any], tmp_path: Path) -> None:
    spec = demo["specs"]["transport_bus_stops"]
    folder = tmp_path / "dept"
    result = invoke(
        "report", "export", "--home", str(demo["home"]), "--department", spec.department.name, "--format", "csv",
        "--output", str(folder),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    datasets = {r[0] for r in _csv_rows(folder / "overall.csv")[1:]} | {
        r[0] for r in _csv_rows(folder / "runs.csv")[1:]
    }
    assert datasets == {s.id for s in demo["specs"].values() if s.department.uscc == spec.department.uscc}


def test_sensitive_values_never_reach_scorecards_or_exports(demo: dict[str, Any], tmp_path: Path) -> None:
    home = demo["home"]
    values: set[str] = set()
    for spec in demo["specs"].values():
        for run_id in DATES:
            landing = home / "landing" / spec.id / run_id / "data.parquet"
            columns = [c.source_name for c in spec.columns if c.sensitive]
            for column in columns:
                rows = duckdb.sql(f"SELECT DISTINCT CAST(\"{column}\" AS VARCHAR) FROM '{landing}'").fetchall()
                values |= {str(r[0]) for r in rows if r[0] is not None and len(str(r[0]).encode()) >= 4}
    assert len(values) > 50  # the demo has sensitive columns (names, IDs, phones, addresses)
    xlsx = tmp_path / "all.xlsx"
    assert invoke("report", "export", "--home", str(home), "--output", str(xlsx)).exit_code == 0
    assert (
        invoke("report", "export", "--home", str(home), "--format", "csv", "--output", str(tmp_path / "c")).exit_code
        == 0
    )
    texts = [p.read_text(encoding="utf-8") for p in (home / "reports").rglob("scorecard.json")]
    texts += [p.read_text(encoding="utf-8-sig") for p in (tmp_path / "c").glob("*.csv")]
    wb = openpyxl.load_workbook(xlsx, read_only=True)
    texts += [" ".join(str(v) for row in ws.iter_rows(values_only=True) for v in row) for ws in wb.worksheets]
    shown = invoke("report", "scorecard", "hrss_insured_persons", "--home", str(home)).output
    texts.append(shown + invoke("report", "scorecard", "hrss_insured_persons", "--json", "--home", str(home)).output)
    leaks = {v for v in values for t in texts if v in t}
    assert leaks == set()


def test_report_scorecard_shows_the_latest_run_and_the_trend(demo: dict[str, Any]) -> None:
    home = str(demo["home"])
    latest = demo["store"].scorecards(dataset="hrss_insured_persons")[-1]
    text = invoke("report", "scorecard", "hrss_insured_persons", "--home", home).output
    assert f"run {latest['run_id']}" in text and f"{latest['score']:.4f}" in text
    for ind in latest["indicators"]:
        if ind["b"] is not None:
            assert ind["code"] in text and ind["name"] in text
    assert "规范性" in text and "validity" in text
    for date in (*DATES, HELD_DATE):
        assert date in text  # the trend lists every run

    data = json.loads(invoke("report", "scorecard", "hrss_insured_persons", "--json", "--home", home).stdout)
    assert data["scorecard"] == latest
    assert [p["run_id"] for p in data["trend"]] == [*DATES, HELD_DATE]
    first = json.loads(
        invoke("report", "scorecard", "hrss_insured_persons", "--run", DATES[0], "--json", "--home", home).stdout
    )
    assert first["scorecard"] == card_of(demo, "hrss_insured_persons", DATES[0])

    spec = demo["specs"]["hrss_insured_persons"]
    trend = json.loads(invoke("report", "trend", "--department", spec.department.uscc, "--json", "--home", home).stdout)
    assert {p["dataset"] for p in trend} == {s.id for s in demo["specs"].values() if s.department == spec.department}
    by_date = json.loads(invoke("report", "trend", "--by-date", "--json", "--home", home).stdout)
    assert [g["logical_date"] for g in by_date] == [*DATES, HELD_DATE]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "scorecard", "hrss_insured_person"], "did you mean 'hrss_insured_persons'"),
        (["report", "scorecard", "hrss_insured_persons", "--run", "1999-01-01"], "no scorecard for run '1999-01-01'"),
        (["report", "trend", "--department", "上海市人力资源"], "did you mean '上海市人力资源和社会保障局'"),
        (["report", "trend", "--dataset", "transport"], "no runs of dataset 'transport'"),
        (["report", "export", "--dataset", "market_enterprise_registr"], "did you mean 'market_enterprise_registry'"),
        (["report", "export", "--department", "91310000XXXXXXXXXX"], "no department"),
        (["report", "export", "--output", "{tmp}/scorecards.txt"], "needs a file name ending in .xlsx"),
        (["report", "export", "--format", "csv", "--output", "{tmp}/a_file"], "is a file"),
        (["report", "export", "--output", "{tmp}/a_folder.xlsx"], "is a folder"),
    ],
)
def test_hostile_report_arguments_are_clear_errors(
    demo: dict[str, Any], tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "a_file").write_text("keep me", encoding="utf-8")
    (tmp_path / "a_folder.xlsx").mkdir()
    result = invoke(*[a.replace("{tmp}", str(tmp_path)) for a in args], "--home", str(demo["home"]))
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
    assert (tmp_path / "a_file").read_text(encoding="utf-8") == "keep me"


def test_an_unknown_format_is_a_usage_error(demo: dict[str, Any]) -> None:
    result = invoke("report", "export", "--format", "pdf", "--home", str(demo["home"]))
    assert result.exit_code == 2 and "pdf" in result.output


def test_an_empty_home_has_nothing_to_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    for args in (["report", "export"], ["report", "trend"], ["report", "scorecard", "x"]):
        result = invoke(*args, "--home", str(tmp_path / "empty"))
        assert result.exit_code == 1
        assert "no runs yet" in result.output or "no scorecards match" in result.output
    assert not list(tmp_path.glob("govdata-report-*"))


def test_a_file_that_is_not_a_scorecard_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "scorecard.json"
    bad.write_text(json.dumps({"schema": "other/1"}), encoding="utf-8")
    with pytest.raises(GovdataError, match=re.escape("expected 'govdata.scorecard/1'")):
        scorecard.load(bad)
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(GovdataError, match="not a readable scorecard"):
        scorecard.load(bad)
