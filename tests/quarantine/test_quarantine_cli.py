"""The quarantine workflow through the CLI on the bundled hrss example (it has sensitive columns):
list, show, export, correct, resubmit, and the row accounting across the runs."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from openpyxl import load_workbook

from catalog.store import CatalogStore
from pipelines.identifiers import resident_id_check_char
from pipelines.masking import BLANKS
from pipelines.workspace import Workspace
from tests.quarantine.conftest import DATE, HRSS, edit, govdata, govdata_json, landing_values, read_sheet

SENSITIVE_SOURCES = ["公民身份号码", "姓名", "手机号码", "联系地址"]
MASKED_ID = re.compile(r"^\d{6}\*{8}[\dX]{4}$")


def export(tmp_path: Path, name: str = "export.xlsx", *args: str) -> Path:
    target = tmp_path / name
    code, text = govdata("quarantine", "export", HRSS, "--output", str(target), *args)
    assert code == 0, text
    return target


def rows_by_reason(path: Path, fragment: str) -> list[dict[str, Any]]:
    return [r for r in read_sheet(path) if str(r["_govdata_reason"]).startswith(fragment)]


def id_birth(home: Path, row_id: object) -> dt.date:
    """The birth date in a row's resident ID (what the officer would look up to correct the row)."""
    landing = home / "landing" / HRSS / DATE / "data.parquet"
    rid = duckdb.sql(f"SELECT \"公民身份号码\" FROM '{landing}' WHERE _govdata_row = {row_id}").fetchall()[0][0]
    rid = rid.strip().upper()
    return dt.date(int(rid[6:10]), int(rid[10:12]), int(rid[12:14]))


def published(home: Path, version: int) -> Path:
    return home / "exchange" / HRSS / f"v{version:06d}" / "data.parquet"


def test_list_and_show_count_by_cause_and_mask(home: Path) -> None:
    code, text = govdata("quarantine", "list")
    assert code == 0 and HRSS in text and DATE in text and "cast_failed:出生日期(birth_date): 2" in text
    runs = govdata_json("quarantine", "list", "--dataset", HRSS)
    assert len(runs) == 1
    run = runs[0]
    assert (run["quarantined"], run["outstanding"], run["accepted_by_resubmission"]) == (14, 14, 0)
    assert run["by_stage"] == {"collect": 0, "cleanse": 3, "quality": 11}
    causes = {c["cause"]: c["rows"] for c in run["causes"]}
    assert causes["expect_column_values_to_be_valid_cn_resident_id(resident_id)"] == 4
    assert causes["expect_column_values_to_match_regex(mobile)"] == 6

    shown = govdata_json("quarantine", "show", HRSS, "--limit", "100")
    assert shown["outstanding"] == len(shown["rows"]) == 14
    ids = [r["resident_id"] for r in shown["rows"] if r["resident_id"] not in (None, "无")]
    assert ids and all(MASKED_ID.match(v) or "*" in v for v in ids)
    assert all(r["name"].endswith("**") for r in shown["rows"])
    reasons = [r["_govdata_reason"] for r in shown["rows"]]
    assert "缺少必填项：公民身份号码" in reasons
    assert any(re.fullmatch(r"出生日期不是有效日期：\d{8}", r) for r in reasons)
    assert any(r == "公民身份号码校验位错误" for r in reasons)
    assert any(r.startswith("手机号码应为 11 位数字（实际 10 位）") for r in reasons)
    clear = landing_values(home, HRSS, DATE, SENSITIVE_SOURCES)
    printed = json.dumps(shown, ensure_ascii=False)
    assert not [v for v in clear if v in printed]

    code, text = govdata("quarantine", "show", HRSS, "--limit", "2")
    assert code == 0 and "14 rows in quarantine, showing 2" in text and "(masked)" in text
    assert not [v for v in clear if len(v) >= 6 and v in text]


def test_unknown_dataset_and_run_are_clear_errors(home: Path) -> None:
    code, text = govdata("quarantine", "show", "hrss_insured_person")
    assert code == 1 and "did you mean 'hrss_insured_persons'" in text
    code, text = govdata("quarantine", "export", HRSS, "--run", "2026-01-01")
    assert code == 1 and "has no quarantine" in text and DATE in text
    code, text = govdata("quarantine", "list", "--dataset", "nothing_here")
    assert code == 0 and "no quarantined rows" in text
    code, text = govdata("quarantine", "export", HRSS, "--output", str(home / "x.txt"))
    assert code == 1 and ".xlsx" in text


def test_export_is_a_workbook_for_the_officer(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, text = govdata("quarantine", "export", HRSS)
    assert code == 0, text
    path = tmp_path / f"quarantine_{HRSS}_{DATE}.xlsx"
    wb = load_workbook(path)
    assert wb.sheetnames == ["隔离数据", "规则说明", "使用说明", "_govdata"]
    assert wb["_govdata"].sheet_state == "hidden" and wb["隔离数据"].sheet_state == "visible"
    header = [c.value for c in wb["隔离数据"][1]]
    assert header[:2] == ["行号（勿修改） (_govdata_row)", "批次（勿修改） (_govdata_run)"]
    assert "公民身份号码（敏感·已脱敏） (resident_id)" in header and "出生日期 (birth_date)" in header
    rows = read_sheet(path)
    assert len(rows) == 14 and {r["_govdata_run"] for r in rows} == {DATE}
    quarantine = home / "quarantine" / HRSS / DATE / "quarantine.parquet"
    ids = sorted(int(r[0]) for r in duckdb.sql(f"SELECT _govdata_row FROM '{quarantine}'").fetchall())
    assert sorted(int(r["_govdata_row"]) for r in rows) == ids
    assert all(isinstance(v, str) or v is None for r in rows for v in r.values())  # text, never numbers
    rules = {r[0]: r for r in wb["规则说明"].iter_rows(min_row=2, values_only=True)}
    rid = rules["expect_column_values_to_be_valid_cn_resident_id(resident_id)"]
    assert rid[1] == "质检" and "GB 11643" in rid[3] and rid[4] == 4
    assert rules["cast_failed:出生日期(birth_date)"][4] == 2
    meta = dict(r for r in wb["_govdata"].iter_rows(values_only=True))
    assert (meta["format"], meta["dataset"], meta["run"]) == ("govdata-quarantine-export", HRSS, DATE)
    # no sensitive value in clear anywhere in the workbook
    cells = "\n".join(str(v) for s in wb.worksheets for row in s.iter_rows(values_only=True) for v in row if v)
    assert not [v for v in landing_values(home, HRSS, DATE, SENSITIVE_SOURCES) if v in cells]
    # the quarantine file itself holds the masked values; the clear ones stay in landing
    stored = duckdb.sql(f"SELECT resident_id, name, mobile, address FROM '{quarantine}'").fetchall()
    assert all(v is None or "*" in v or v == "无" for row in stored for v in row)


def test_resubmit_accepts_corrected_rows_into_a_new_version(home: Path, tmp_path: Path) -> None:
    first = export(tmp_path)
    birth = rows_by_reason(first, "出生日期不是有效日期")
    insured = rows_by_reason(first, "参保日期不是有效日期")
    short_mobile = rows_by_reason(first, "手机号码应为 11 位数字")
    spaced = rows_by_reason(first, "手机号码含有空格")
    assert (len(birth), len(insured), len(short_mobile), len(spaced)) == (2, 1, 2, 3)
    fixes = {
        birth[0]["_govdata_row"]: {"birth_date": id_birth(home, birth[0]["_govdata_row"]).isoformat()},
        insured[0]["_govdata_row"]: {"insured_on": "2023-02-28"},
        short_mobile[0]["_govdata_row"]: {"mobile": "13912345678"},  # a sensitive cell typed anew
    }
    left_out = spaced[0]["_govdata_row"]
    corrected = edit(first, tmp_path / "corrected.xlsx", values=fixes, delete={left_out})

    report = govdata_json("quarantine", "resubmit", str(corrected))
    acc = report["resubmission"]
    assert report["status"] == "published" and report["version"] == 2
    assert report["run_id"] == f"{DATE}-resubmit-1" and acc["of_run"] == DATE
    assert (acc["original_quarantined"], acc["resubmitted"], acc["accepted"]) == (14, 13, 3)
    assert (acc["quarantined_again"], acc["not_resubmitted"], acc["held"]) == (10, 1, 0)
    assert acc["accepted"] + acc["quarantined_again"] + acc["not_resubmitted"] == acc["original_quarantined"]
    assert acc["unchanged_rows"] == 10 and acc["after"] == {"accepted": 3, "quarantined": 11}
    assert acc["restored_masked_cells"]["name"] == 13  # every masked name left as exported was restored
    rows = report["rows"]
    assert rows["collected"] == 13 == rows["published"] + rows["quarantined"]
    assert report["version_rows"] == 341 + 3

    # The new version: the previous one plus the corrected rows, with their clear values.
    data = published(home, 2)
    assert duckdb.sql(f"SELECT count(*), count(DISTINCT resident_id) FROM '{data}'").fetchall() == [(344, 344)]
    landing = home / "landing" / HRSS / DATE / "data.parquet"
    for row_id in (birth[0]["_govdata_row"], insured[0]["_govdata_row"]):
        original = duckdb.sql(
            f'SELECT "公民身份号码", "姓名" FROM \'{landing}\' WHERE _govdata_row = {row_id}'
        ).fetchall()
        rid, name = original[0]
        got = duckdb.sql(f"SELECT name FROM '{data}' WHERE resident_id = ?", params=[rid.strip().upper()]).fetchall()
        assert got == [(name.strip(BLANKS),)]
    assert duckdb.sql(f"SELECT count(*) FROM '{data}' WHERE mobile = '13912345678'").fetchall() == [(1,)]
    born = id_birth(home, birth[0]["_govdata_row"])
    assert duckdb.sql(f"SELECT count(*) FROM '{data}' WHERE birth_date = ?", params=[born]).fetchall()[0][0] >= 1

    # The accounting is visible in list, and the run in the catalog.
    listed = {r["run_id"]: r for r in govdata_json("quarantine", "list", "--dataset", HRSS)}
    assert (listed[DATE]["accepted_by_resubmission"], listed[DATE]["outstanding"]) == (3, 11)
    assert listed[DATE]["resubmissions"] == [f"{DATE}-resubmit-1"]
    assert listed[f"{DATE}-resubmit-1"]["resubmission_of"] == DATE and listed[f"{DATE}-resubmit-1"]["quarantined"] == 10
    runs = {r.run_id: r for r in CatalogStore(Workspace.from_env().catalog_url).runs(HRSS)}
    assert runs[f"{DATE}-resubmit-1"].status == "published" and runs[f"{DATE}-resubmit-1"].version == 2

    # Exporting again shows what is still open: the row left out (from the original run) and the
    # rows quarantined again (from the resubmission).
    second = export(tmp_path, "second.xlsx")
    open_rows = {r["_govdata_row"]: r for r in read_sheet(second)}
    assert len(open_rows) == 11
    assert open_rows[left_out]["_govdata_run"] == DATE
    assert {r["_govdata_run"] for k, r in open_rows.items() if k != left_out} == {f"{DATE}-resubmit-1"}

    # A second resubmission corrects the row left out; the first file cannot be sent again.
    again = edit(
        second,
        tmp_path / "again.xlsx",
        values={left_out: {"mobile": "13800001111"}},
        delete=set(open_rows) - {left_out},
    )
    report2 = govdata_json("quarantine", "resubmit", str(again))
    acc2 = report2["resubmission"]
    assert report2["run_id"] == f"{DATE}-resubmit-2" and report2["version"] == 3
    assert (acc2["resubmitted"], acc2["accepted"], acc2["quarantined_again"], acc2["not_resubmitted"]) == (1, 1, 0, 13)
    assert acc2["not_resubmitted_detail"] == {"accepted_earlier": 3, "still_quarantined": 10}
    assert acc2["after"] == {"accepted": 4, "quarantined": 10}
    code, text = govdata("quarantine", "resubmit", str(corrected))
    assert code == 1 and "already accepted" in text and f"{DATE}-resubmit-1" in text
    code, text = govdata("quarantine", "resubmit", str(again))
    assert code == 1 and "already accepted" in text


def test_a_value_that_still_fails_goes_back_with_its_reason(home: Path, tmp_path: Path) -> None:
    first = export(tmp_path)
    row, other = (r["_govdata_row"] for r in rows_by_reason(first, "出生日期不是有效日期"))
    keep_only = {r["_govdata_row"] for r in read_sheet(first)} - {row, other}
    wrong_day = id_birth(home, other) + dt.timedelta(days=1)  # a real date, but not the one in the ID

    def extra_sheet(wb: Any) -> None:
        wb.create_sheet("我的备注").append(["这一行还要再核对"])

    values = {row: {"birth_date": "2021-02-30"}, other: {"birth_date": wrong_day.isoformat()}}
    bad = edit(first, tmp_path / "bad.xlsx", values=values, delete=keep_only, change=extra_sheet)
    code, text = govdata("quarantine", "resubmit", str(bad))
    assert code == 0, text
    assert "ignored sheet(s) '我的备注'" in text
    report = json.loads(
        (home / "reports" / HRSS / f"{DATE}-resubmit-1" / "run_report.json").read_text(encoding="utf-8")
    )
    acc = report["resubmission"]
    assert report["status"] == "unchanged" and report["version"] == 1  # nothing new to publish
    assert (acc["accepted"], acc["quarantined_again"], acc["not_resubmitted"]) == (0, 2, 12)
    shown = {r["_govdata_row"]: r for r in govdata_json("quarantine", "show", HRSS, "--limit", "100")["rows"]}
    assert shown[int(row)]["_govdata_run"] == f"{DATE}-resubmit-1"
    assert shown[int(row)]["_govdata_reason"] == "出生日期不是有效日期：2021-02-30"
    assert shown[int(other)]["_govdata_reason"] == "出生日期与公民身份号码不一致"
    assert len(shown) == 14


def _valid_id(birth: dt.date, male: bool, seq: int) -> str:
    body = f"310115{birth:%Y%m%d}{seq:02d}{1 if male else 2}"
    return body + resident_id_check_char(body)


def test_corrected_keys_never_replace_published_rows(home: Path, tmp_path: Path) -> None:
    first = export(tmp_path)
    bad_ids = [r["_govdata_row"] for r in rows_by_reason(first, "公民身份号码校验位错误")]
    assert len(bad_ids) >= 3
    a, b, c = sorted(bad_ids, key=int)[:3]
    staged = home / "staging" / HRSS / DATE / "staged.parquet"
    birth, gender = duckdb.sql(f"SELECT birth_date, gender FROM '{staged}' WHERE _govdata_row = {b}").fetchall()[0]
    new_id = _valid_id(birth, gender == "1", 97)
    taken = duckdb.sql(f"SELECT resident_id FROM '{published(home, 1)}' LIMIT 1").fetchall()[0][0]
    values = {a: {"resident_id": taken}, b: {"resident_id": new_id}, c: {"resident_id": new_id}}
    corrected = edit(
        first, tmp_path / "keys.xlsx", values=values, delete={r["_govdata_row"] for r in read_sheet(first)} - {a, b, c}
    )
    report = govdata_json("quarantine", "resubmit", str(corrected))
    acc = report["resubmission"]
    assert (acc["resubmitted"], acc["accepted"], acc["quarantined_again"]) == (3, 1, 2)
    assert report["version"] == 2 and report["version_rows"] == 342
    reasons = {
        r["_govdata_row"]: r["_govdata_reason"]
        for r in govdata_json("quarantine", "show", HRSS, "--limit", "100")["rows"]
    }
    assert reasons[int(a)] == "主键（公民身份号码）与已发布版本 v1 中的记录相同"
    assert reasons[int(c)] == f"主键（公民身份号码）与本次重新提交的第 {b} 行相同"
    assert int(b) not in reasons
    data = published(home, 2)
    assert duckdb.sql(f"SELECT count(*) FROM '{data}' WHERE resident_id = ?", params=[taken]).fetchall() == [(1,)]
    assert duckdb.sql(f"SELECT count(*) FROM '{data}' WHERE resident_id = ?", params=[new_id]).fetchall() == [(1,)]


def test_resubmit_a_csv_saved_from_the_sheet(home: Path, tmp_path: Path) -> None:
    import csv

    path = export(tmp_path, "rows.csv")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        table = list(csv.reader(fh))
    keys = [h.rsplit("(", 1)[-1].rstrip(")") for h in table[0]]
    birth = [r for r in table[1:] if "出生日期不是有效日期" in r[keys.index("_govdata_reason")]]
    born = id_birth(home, birth[0][keys.index("_govdata_row")])
    birth[0][keys.index("birth_date")] = f"{born.year}年{born.month}月{born.day}日"
    saved = tmp_path / "corrected.csv"
    with saved.open("w", encoding="gb18030", newline="") as fh:  # as Excel saves CSV on a Chinese Windows
        csv.writer(fh).writerows([table[0], birth[0]])
    code, text = govdata("quarantine", "resubmit", str(saved))
    assert code == 1 and "--dataset" in text
    code, text = govdata("quarantine", "resubmit", str(saved), "--dataset", "transport_bus_stops")
    assert code == 1 and "no quarantine" in text
    report = govdata_json("quarantine", "resubmit", str(saved), "--dataset", HRSS)
    acc = report["resubmission"]
    assert (acc["resubmitted"], acc["accepted"], acc["not_resubmitted"]) == (1, 1, 13)
    assert report["version"] == 2


# --- hostile files -----------------------------------------------------------------------------


def _header_to(old: str, new: str | None) -> Any:
    def change(wb: Any) -> None:
        sheet = wb["隔离数据"]
        for cell in sheet[1]:
            if cell.value == old:
                if new is None:
                    sheet.delete_cols(cell.column)
                else:
                    cell.value = new
                return
        raise AssertionError(old)

    return change


def _set_meta(key: str, value: str) -> Any:
    def change(wb: Any) -> None:
        for row in wb["_govdata"].iter_rows():
            if row[0].value == key:
                row[1].value = value

    return change


def _first_row_cell(column: int, value: Any) -> Any:
    def change(wb: Any) -> None:
        wb["隔离数据"].cell(2, column).value = value

    return change


def _duplicate_first_row(wb: Any) -> None:
    sheet = wb["隔离数据"]
    sheet.append([c.value for c in sheet[2]])


def _only_header(wb: Any) -> None:
    sheet = wb["隔离数据"]
    sheet.delete_rows(2, sheet.max_row)


HOSTILE: dict[str, tuple[Any, str]] = {
    "unknown row id": (_first_row_cell(1, "99999"), "not quarantined rows of run"),
    "no row id": (_first_row_cell(1, None), "rows cannot be added"),
    "row id not a number": (_first_row_cell(1, "第一行"), "is not a row number"),
    "duplicated row": (_duplicate_first_row, "appear more than once"),
    "renamed column": (_header_to("姓名（敏感·已脱敏） (name)", "姓名 (full_name)"), "unknown full_name"),
    "plain header": (_header_to("姓名（敏感·已脱敏） (name)", "姓名"), "not from a quarantine export"),
    "dropped column": (_header_to("联系地址（敏感·已脱敏） (address)", None), "missing address"),
    "row from another run": (_first_row_cell(2, "2026-11-25"), "from another run"),
    "only the header": (_only_header, "no rows to resubmit"),
    "value right of the header": (_first_row_cell(40, "多出来的值"), "right of the last header column"),
    "run collected again": (_set_meta("landing_sha256", "0" * 64), "collected again"),
    "not our format": (_set_meta("format", "something-else"), "does not describe a quarantine export"),
    "newer format": (_set_meta("version", "9"), "version '9' is not supported"),
    "masked cell half edited": (_first_row_cell(8, "某某**"), "still hold a mask"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_workbooks_are_refused_and_change_nothing(home: Path, tmp_path: Path, case: str) -> None:
    change, message = HOSTILE[case]
    bad = edit(export(tmp_path), tmp_path / "bad.xlsx", change=change)
    code, text = govdata("quarantine", "resubmit", str(bad))
    assert code == 1, text
    assert message in " ".join(text.split()), text
    assert "bad.xlsx" in text
    assert not list((home / "landing" / HRSS).glob("*resubmit*"))
    assert not (home / "quarantine" / HRSS / DATE / "resubmissions.json").exists()


def test_other_files_are_refused(home: Path, tmp_path: Path) -> None:
    from openpyxl import Workbook

    plain = tmp_path / "plain.xlsx"
    wb = Workbook()
    wb.active.title = "隔离数据"
    wb.save(plain)
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    (tmp_path / "notes.txt").write_text("行号,批次\n1,2026-11-24\n", encoding="utf-8")
    (tmp_path / "empty.csv").write_bytes(b"")
    cases = {
        "plain.xlsx": "not a quarantine export",
        "broken.xlsx": "cannot be read as an xlsx workbook",
        "notes.txt": "not an xlsx or csv file",
        "empty.csv": "the file is empty",
        "missing.xlsx": "file not found",
    }
    for name, message in cases.items():
        code, text = govdata("quarantine", "resubmit", str(tmp_path / name), "--dataset", HRSS)
        assert code == 1 and message in " ".join(text.split()), (name, text)
    code, text = govdata("quarantine", "resubmit", str(export(tmp_path)), "--dataset", "transport_bus_stops")
    assert code == 1 and "not 'transport_bus_stops'" in text


def test_a_second_resubmission_at_the_same_time_is_refused(home: Path, tmp_path: Path) -> None:
    path = export(tmp_path)
    lock = home / "quarantine" / HRSS / DATE / ".resubmit.lock"
    lock.write_text("12345\n", encoding="utf-8")
    code, text = govdata("quarantine", "resubmit", str(path))
    assert code == 1 and "in progress" in text and ".resubmit.lock" in text
    assert lock.exists()  # another process's lock is left alone


def test_an_attempt_interrupted_before_its_ledger_is_recovered(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import quarantine

    first = export(tmp_path)
    row = rows_by_reason(first, "出生日期不是有效日期")[0]["_govdata_row"]
    others = {r["_govdata_row"] for r in read_sheet(first)} - {row}
    fix = {row: {"birth_date": id_birth(home, row).isoformat()}}
    corrected = edit(first, tmp_path / "c.xlsx", values=fix, delete=others)

    def power_cut(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(quarantine, "_record_attempt", power_cut)
        with pytest.raises(KeyboardInterrupt):
            quarantine.resubmit(corrected)
    assert published(home, 2).is_file()  # the version was committed, the ledger was not written
    assert not (home / "quarantine" / HRSS / DATE / "resubmissions.json").exists()
    assert not (home / "quarantine" / HRSS / DATE / ".resubmit.lock").exists()

    code, text = govdata("quarantine", "resubmit", str(corrected))
    assert code == 1 and "already accepted" in text and f"{DATE}-resubmit-1" in text
    listed = {r["run_id"]: r for r in govdata_json("quarantine", "list", "--dataset", HRSS)}
    assert (listed[DATE]["accepted_by_resubmission"], listed[DATE]["outstanding"]) == (1, 13)
    ledger = json.loads((home / "quarantine" / HRSS / DATE / "resubmissions.json").read_text(encoding="utf-8"))
    assert ledger["attempts"][0]["status"] == "published" and ledger["attempts"][0]["recovered"] is True
