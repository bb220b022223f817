"""040200 关联数据一致性: a dataset's district codes checked against a published district dictionary.

Both datasets run through the CLI into one scratch home (the dictionary first); the codes the
dictionary does not hold are quarantined, counted in the scorecard, and the reference version
used is recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from catalog.store import CatalogStore
from pipelines import scorecard
from pipelines.cli import app
from pipelines.workspace import Workspace
from tests.scorecard.helpers import DEPT_B, write_dataset

cli = CliRunner()
DATE = "2026-11-24"
DISTRICTS = [("310101", "黄浦区"), ("310104", "徐汇区"), ("310115", "浦东新区"), ("310151", "崇明区")]
REFERENCE = {"dataset": "district_dictionary", "column": "code"}


def invoke(*args: str) -> Any:
    result = cli.invoke(app, list(args), env={"COLUMNS": "200"})
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def dictionary(folder: Path, rows: list[tuple[str, str]] = DISTRICTS) -> Path:
    return write_dataset(
        folder,
        dataset="district_dictionary",
        resource_code="101510001/000201",
        department=DEPT_B,
        columns=[
            {"name": "code", "title": "行政区划代码", "primary_key": True, "nullable": False},
            {"name": "name", "title": "名称"},
            {"name": "head", "title": "负责人", "sensitive": True},
        ],
        header=["code", "name", "head"],
        rows=[[code, name, f"负责人{i}"] for i, (code, name) in enumerate(rows)],
        expectations=[{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "code"}}],
    )


def stops(folder: Path, codes: list[str], reference: Any = REFERENCE, **govdata: Any) -> Path:
    check = {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "district_code"},
        "meta": {"govdata": {"reference": reference, **govdata}},
    }
    return write_dataset(
        folder,
        dataset="bus_stops",
        resource_code="101510001/000202",
        columns=[
            {"name": "stop_id", "title": "站点编码", "primary_key": True, "nullable": False},
            {"name": "district_code", "title": "所属行政区划代码"},
        ],
        header=["stop_id", "district_code"],
        rows=[[f"S{i:04d}", code] for i, code in enumerate(codes)],
        expectations=[{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "stop_id"}}, check],
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "home"
    monkeypatch.setenv("GOVDATA_HOME", str(target))
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    return target


def codes_with_defects() -> list[str]:
    known = [c for c, _ in DISTRICTS]
    codes = [known[i % len(known)] for i in range(40)]
    codes[3], codes[17], codes[29] = "310199", "999999", "310102"  # not in the dictionary
    codes[8] = ""  # empty: not judged by the in-set check (nulls are completeness's business)
    return codes


def test_codes_missing_from_the_reference_are_quarantined_and_scored(home: Path, tmp_path: Path) -> None:
    assert invoke("run", str(dictionary(tmp_path)), "--date", DATE).exit_code == 0
    codes = codes_with_defects()
    result = invoke("run", str(stops(tmp_path, codes)), "--date", DATE, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    known = {c for c, _ in DISTRICTS}
    bad = [c for c in codes if c and c not in known]
    judged = [c for c in codes if c]

    check = next(o for o in report["quality"]["expectations"] if o["type"] == "expect_column_values_to_be_in_set")
    assert check["unexpected_count"] == len(bad) and check["indicator"] == "040200"
    assert report["rows"]["quarantined_detail"]["failed_expectations"] == len(bad)

    quarantine = Path(report["outputs"]["quarantine"]) / "quarantine.parquet"
    rows = duckdb.sql(f"SELECT district_code, _govdata_reasons FROM '{quarantine}' ORDER BY 1").fetchall()
    assert sorted(r[0] for r in rows) == sorted(bad)
    assert all(check["name"] in r[1] for r in rows)
    published = Path(report["outputs"]["published"]) / "data.parquet"
    assert duckdb.sql(f"SELECT count(*) FROM '{published}'").fetchall() == [(len(codes) - len(bad),)]

    card = report["quality"]["scorecard"]
    related = next(i for i in card["indicators"] if i["code"] == "040200")
    assert (related["a"], related["b"]) == (len(judged) - len(bad), len(judged))
    assert related["x"] == round((len(judged) - len(bad)) / len(judged), 6)
    store = CatalogStore(Workspace.from_env().catalog_url)
    dictionary_version = store.latest_version("district_dictionary")
    assert dictionary_version is not None
    assert card["references"] == [
        {
            "index": 1,
            "dataset": "district_dictionary",
            "column": "code",
            "version": dictionary_version.number,
            "run_id": DATE,
            "content_sha256": dictionary_version.content_sha256,
            "values": len(DISTRICTS),
        }
    ]
    resolved = json.loads((Path(report["outputs"]["reports"]) / "suite.resolved.json").read_text(encoding="utf-8"))
    assert resolved["expectations"][1]["kwargs"]["value_set"] == sorted(known)
    assert store.scorecards(dataset="bus_stops")[-1]["references"] == card["references"]
    # lineage: the version records the source and the published resource it read
    version = store.latest_version("bus_stops")
    dictionary_entry = store.entry("district_dictionary")
    assert version is not None and dictionary_entry is not None
    assert version.upstream == [dictionary_entry.resource_code]
    assert version.source_system is not None and version.source_system.startswith("csv file ")
    assert version.source_system == version.lineage["source"]

    shown = invoke("report", "scorecard", "bus_stops").output
    assert "district_dictionary.code" in " ".join(shown.split()) and "040200" in shown


def test_the_current_version_of_the_reference_is_used(home: Path, tmp_path: Path) -> None:
    assert invoke("run", str(dictionary(tmp_path)), "--date", DATE).exit_code == 0
    codes = ["310101", "310102", "310102", "310104"]
    first = json.loads(invoke("run", str(stops(tmp_path, codes)), "--date", DATE, "--json").stdout)
    assert first["rows"]["quarantined"] == 2
    # the dictionary gains 310102 in its next version; the next run of the stops accepts those rows
    assert (
        invoke("run", str(dictionary(tmp_path, [*DISTRICTS, ("310102", "卢湾区")])), "--date", "2026-11-25").exit_code
        == 0
    )
    second = json.loads(invoke("run", str(stops(tmp_path, codes)), "--date", "2026-11-25", "--json").stdout)
    assert second["rows"]["quarantined"] == 0
    assert second["quality"]["scorecard"]["references"][0]["version"] == 2
    points = scorecard.trend(home, dataset="bus_stops")
    assert [p["indicators"]["040200"] for p in points] == [0.5, 1.0]


def test_a_reference_check_can_block_instead(home: Path, tmp_path: Path) -> None:
    assert invoke("run", str(dictionary(tmp_path)), "--date", DATE).exit_code == 0
    result = invoke("run", str(stops(tmp_path, ["310101", "310199"], on_failure="block")), "--date", DATE)
    assert result.exit_code == 2
    card = scorecard.trend(home, dataset="bus_stops")[-1]
    assert card["status"] == "held" and card["indicators"]["040200"] == 0.5


@pytest.mark.parametrize(
    ("reference", "publish_dictionary", "message"),
    [
        (REFERENCE, False, "reference dataset 'district_dictionary' is not in the catalog"),
        ({"dataset": "district_dictionry", "column": "code"}, True, "did you mean 'district_dictionary'"),
        ({"dataset": "district_dictionary", "column": "cod"}, True, "has no column 'cod' (did you mean 'code'?)"),
        ({"dataset": "district_dictionary", "column": "head"}, True, "is marked sensitive"),
    ],
)
def test_reference_problems_are_clear_errors(
    home: Path, tmp_path: Path, reference: dict[str, str], publish_dictionary: bool, message: str
) -> None:
    if publish_dictionary:
        assert invoke("run", str(dictionary(tmp_path)), "--date", DATE).exit_code == 0
    spec = stops(tmp_path, ["310101"], reference=reference)
    result = invoke("run", str(spec), "--date", DATE)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert message in text
    assert f"{spec.parent / 'suite.json'}: expectations[1]" in text  # names the suite file and the entry
    assert not (home / "exchange" / "bus_stops").exists()


def test_a_registered_reference_without_a_published_version_is_an_error(home: Path, tmp_path: Path) -> None:
    spec = dictionary(tmp_path)
    spec.write_text(spec.read_text(encoding="utf-8") + "publish:\n  enabled: false\n", encoding="utf-8")
    assert invoke("run", str(spec), "--date", DATE).exit_code == 0  # catalogued, not published
    result = invoke("run", str(stops(tmp_path, ["310101"])), "--date", DATE)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "reference dataset 'district_dictionary' has no published version yet" in text
