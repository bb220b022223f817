"""The quarantine folder of a run: sensitive values masked, reasons that quote none of them,
unreadable records withheld; resubmission of such rows, and the runs it refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from pipelines import runner
from pipelines.identifiers import resident_id_check_char
from pipelines.quarantine import WITHHELD
from tests.quarantine.conftest import edit, govdata, govdata_json, read_sheet

DATE = "2026-11-24"
HEADER = "公民身份号码,姓名,手机号码,出生日期,城市"


def pid(n: int) -> str:
    body = f"31011519{80 + n % 20:02d}0{1 + n % 9}1{n % 10}{100 + n:03d}"[:17]
    return body + resident_id_check_char(body)


def good(n: int) -> str:
    return f"{pid(n)},张{'伟芳娜敏静丽强磊军洋'[n % 10]}{'明华'[n % 2]},1381234{n:04d},19{80 + n % 20}-01-0{1 + n % 9},上海"


SUITE = {
    "name": "people",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "pid"}, "meta": {}},
        {"type": "expect_column_values_to_be_valid_cn_resident_id", "kwargs": {"column": "pid"}, "meta": {}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}, "meta": {}},
    ],
    "meta": {},
}
#: Clear values of the defective rows, which must not leave the landing and staging folders.
BAD_BORN = "1990-02-30"
SHIFTED = f"{pid(91)},欧阳娜娜,13999990000,1991-01-01,上海,多出来的字段,13777770000"
CLEAR = [BAD_BORN, pid(90), "司马光明", "13988887777", pid(91), "欧阳娜娜", "13999990000", "13777770000"]


def make_people(folder: Path, *, primary_key: bool = True, max_share: float = 0.3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [HEADER, *(good(n) for n in range(12)), f"{pid(90)},司马光明,13988887777,{BAD_BORN},上海", SHIFTED]
    (folder / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "suite.json").write_text(json.dumps(SUITE, ensure_ascii=False), encoding="utf-8")
    spec = {
        "id": "people",
        "name": "人员",
        "department": {"name": "上海市人力资源和社会保障局", "uscc": "1131000000245310XN"},
        "catalog": {
            "classification": {"axis": "基础", "path": ["人口"]},
            "resource_code": "101030002/000999",
            "abstract": "人员",
            "sharing": {"type": "有条件共享", "condition": "法定职责", "method": "接口"},
            "update_cycle": "每月",
        },
        "source": {"connector": "csv", "options": {"path": "people.csv"}},
        "columns": [
            {
                "name": "pid",
                "title": "公民身份号码",
                "source": "公民身份号码",
                "primary_key": primary_key,
                "sensitive": True,
            },
            {"name": "name", "title": "姓名", "source": "姓名", "sensitive": True},
            {"name": "phone", "title": "手机号码", "source": "手机号码", "sensitive": True},
            {"name": "born", "title": "出生日期", "source": "出生日期", "type": "date", "sensitive": True},
            {"name": "city", "title": "城市", "source": "城市"},
        ],
        "cleanse": {"resident_ids": ["pid"]},
        "quality": {"suite": "suite.json", "max_quarantine_share": max_share},
    }
    path = folder / "people.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def people(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GOVDATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    return tmp_path / "home"


def text_of(folder: Path) -> str:
    """Every file under a folder as text (Parquet cell by cell)."""
    parts = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            parts.append(str(duckdb.sql(f"SELECT * FROM '{path}'").fetchall()))
        else:
            parts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


def test_quarantine_masks_values_reasons_and_unreadable_records(people: Path, tmp_path: Path) -> None:
    report = runner.run(make_people(tmp_path / "ds"), DATE)
    assert report["status"] == "published"
    assert report["rows"]["quarantined_detail"] == {"malformed_at_read": 1, "cast_failed": 1, "failed_expectations": 0}
    folder = people / "quarantine" / "people" / DATE
    rows = {
        r[0]: r
        for r in duckdb.sql(
            f"SELECT _govdata_row, _govdata_stage, _govdata_reasons, _govdata_raw, pid, name, phone, born, city FROM '{folder / 'quarantine.parquet'}' ORDER BY 1"
        ).fetchall()
    }
    cast = next(r for r in rows.values() if r[1] == "cleanse")
    assert cast[4] == pid(90)[:6] + "********" + pid(90)[-4:]
    assert (cast[5], cast[6], cast[7], cast[8]) == ("司马**", "139****7777", "***", "上海")
    assert cast[2] == ["cast_failed:出生日期(born): cannot read the value (sensitive, not shown) as date"]
    read = next(r for r in rows.values() if r[1] == "collect")
    assert read[3] == WITHHELD
    assert read[4:8] == (None, None, None, None)
    assert "expected 5 fields, found 7" in read[2][0]
    for folder_name in ("quarantine", "reports"):
        stored = text_of(people / folder_name)
        assert not [v for v in CLEAR if v in stored], folder_name
    info = json.loads((folder / "quarantine.json").read_text(encoding="utf-8"))
    assert info["masking"] == {"pid": "resident_id", "name": "name", "phone": "mobile", "born": "redact"}
    assert info["by_stage"] == {"collect": 1, "cleanse": 1, "quality": 0}

    shown = govdata_json("quarantine", "show", "people")
    reasons = {r["_govdata_stage"]: r["_govdata_reason"] for r in shown["rows"]}
    assert reasons["cleanse"] == "出生日期不是有效日期（敏感项，原值不显示）"
    assert reasons["collect"].startswith("读取失败") and "应为 5 个，实际 7 个" in reasons["collect"]
    assert not [v for v in CLEAR if v in json.dumps(shown, ensure_ascii=False)]


def test_corrected_rows_of_a_keyless_dataset_are_added(people: Path, tmp_path: Path) -> None:
    runner.run(make_people(tmp_path / "ds", primary_key=False), DATE)
    path = tmp_path / "people.xlsx"
    assert govdata("quarantine", "export", "people", "-o", str(path))[0] == 0
    rows = {r["_govdata_stage"]: r for r in read_sheet(path)}
    assert rows["读取"]["_govdata_raw"] == WITHHELD
    assert rows["清洗"]["born"] == "***"
    fixes = {
        rows["清洗"]["_govdata_row"]: {"born": "1990-02-28"},  # the other masked cells stay as exported
        rows["读取"]["_govdata_row"]: {
            "pid": pid(91),
            "name": "欧阳娜娜",
            "phone": "13999990000",
            "born": "1991-01-01",
            "city": "上海",
        },
    }
    report = govdata_json("quarantine", "resubmit", str(edit(path, tmp_path / "fixed.xlsx", values=fixes)))
    assert report["status"] == "published" and report["resubmission"]["accepted"] == 2
    assert report["version_rows"] == 12 + 2
    data = people / "exchange" / "people" / "v000002" / "data.parquet"
    got = duckdb.sql(
        f"SELECT name, phone, CAST(born AS VARCHAR) FROM '{data}' WHERE pid = ?", params=[pid(90)]
    ).fetchall()
    assert got == [("司马光明", "13988887777", "1990-02-28")]  # restored from the landing copy by row number
    assert duckdb.sql(f"SELECT count(*) FROM '{data}' WHERE pid = ?", params=[pid(91)]).fetchall() == [(1,)]
    for folder_name in ("quarantine", "reports"):
        assert not [v for v in CLEAR if v in text_of(people / folder_name)], folder_name


def test_rows_of_a_held_run_cannot_be_resubmitted(people: Path, tmp_path: Path) -> None:
    report = runner.run(make_people(tmp_path / "ds", max_share=0.01), DATE)
    assert report["status"] == "held"
    path = tmp_path / "held.xlsx"
    assert govdata("quarantine", "export", "people", "-o", str(path))[0] == 0
    code, text = govdata("quarantine", "resubmit", str(path))
    assert code == 1 and "was held" in text and "run the dataset again" in " ".join(text.split())


def test_rerunning_the_original_run_makes_old_exports_stale(people: Path, tmp_path: Path) -> None:
    spec = make_people(tmp_path / "ds")
    runner.run(spec, DATE)
    path = tmp_path / "old.xlsx"
    assert govdata("quarantine", "export", "people", "-o", str(path))[0] == 0
    source = tmp_path / "ds" / "people.csv"
    source.write_text(source.read_text(encoding="utf-8") + good(40) + "\n", encoding="utf-8")
    runner.run(spec, DATE)  # the same run key collects the changed source again
    code, text = govdata("quarantine", "resubmit", str(path))
    assert code == 1 and "collected again" in text


def test_a_new_version_that_fails_the_dataset_checks_is_held(people: Path, tmp_path: Path) -> None:
    spec = make_people(tmp_path / "ds", primary_key=False)
    suite = json.loads((tmp_path / "ds" / "suite.json").read_text(encoding="utf-8"))
    suite["expectations"].append({"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 13}})
    (tmp_path / "ds" / "suite.json").write_text(json.dumps(suite), encoding="utf-8")
    assert runner.run(spec, DATE)["version_rows"] == 12
    path = tmp_path / "people.xlsx"
    assert govdata("quarantine", "export", "people", "-o", str(path))[0] == 0
    rows = {r["_govdata_stage"]: r["_govdata_row"] for r in read_sheet(path)}
    fixes = {
        rows["清洗"]: {"born": "1990-02-28"},
        rows["读取"]: {"pid": pid(91), "name": "欧阳娜娜", "phone": "13999990000", "born": "1991-01-01"},
    }
    code, text = govdata("quarantine", "resubmit", str(edit(path, tmp_path / "fixed.xlsx", values=fixes)))
    assert code == 2, text
    flat = " ".join(text.split())
    assert "held" in flat and "expect_table_row_count_to_be_between#2" in flat
    report = json.loads((people / "reports" / "people" / f"{DATE}-resubmit-1" / "run_report.json").read_text("utf-8"))
    acc = report["resubmission"]
    assert (report["status"], report["version"]) == ("held", None)
    assert (acc["accepted"], acc["held"], acc["quarantined_again"], acc["after"]) == (
        0,
        2,
        0,
        {"accepted": 0, "quarantined": 2},
    )
    assert not (people / "exchange" / "people" / "v000002").exists()
    listed = govdata_json("quarantine", "list", "--dataset", "people")
    original = next(r for r in listed if r["run_id"] == DATE)
    assert (original["outstanding"], original["resubmissions"]) == (2, [f"{DATE}-resubmit-1"])
    # the rows are still open as they were exported, and can be sent again
    again = tmp_path / "again.xlsx"
    assert govdata("quarantine", "export", "people", "-o", str(again))[0] == 0
    assert {r["_govdata_run"] for r in read_sheet(again)} == {DATE}


def test_blank_lines_keep_the_row_numbers_of_messages(people: Path, tmp_path: Path) -> None:
    runner.run(make_people(tmp_path / "ds"), DATE)
    path = tmp_path / "people.xlsx"
    assert govdata("quarantine", "export", "people", "-o", str(path))[0] == 0

    def blank_then_bad(wb: Any) -> None:
        sheet = wb["隔离数据"]
        sheet.insert_rows(2, amount=2)
        sheet.cell(5, 1).value = "not-a-number"

    code, text = govdata("quarantine", "resubmit", str(edit(path, tmp_path / "bad.xlsx", change=blank_then_bad)))
    assert code == 1 and "row 5: 行号 'not-a-number' is not a row number" in text
