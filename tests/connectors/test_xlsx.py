"""The xlsx connector: cell values as text, row numbers, sheets and hostile workbooks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook
from openpyxl.utils.datetime import CALENDAR_MAC_1904

import connectors.xlsx as xlsx_mod
from connectors import make_connector
from connectors.base import ROW_COLUMN, CollectResult
from connectors.xlsx import cell_text
from pipelines.errors import SourceError, SpecError


def workbook(path: Path, rows: list[list[Any]], *, title: str = "数据", extra_sheets: tuple[str, ...] = ()) -> Path:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = title
    for row in rows:
        ws.append(row)
    for name in extra_sheets:
        wb.create_sheet(name)
    wb.save(path)
    return path


def collect(tmp_path: Path, name: str = "src.xlsx", **options: Any) -> CollectResult:
    landing = tmp_path / "landing"
    landing.mkdir(exist_ok=True)
    for old in landing.iterdir():
        old.unlink()
    return make_connector("xlsx", {"path": name, **options}, base_dir=tmp_path, env={}).collect(landing)


def data(result: CollectResult) -> list[dict[str, Any]]:
    return pq.read_table(result.data_path).to_pylist()


# --- values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "number_format", "text"),
    [
        (None, None, None),
        ("", None, None),
        ("  张三 ", None, "  张三 "),
        (123, None, "123"),
        (123.0, None, "123"),
        (0.5, None, "0.5"),
        (0.1 + 0.2, None, "0.3"),
        (-7.25, None, "-7.25"),
        (1e20, None, "1e+20"),
        (True, None, "true"),
        (False, None, "false"),
        (dt.date(2023, 5, 1), None, "2023-05-01"),
        (dt.datetime(2023, 5, 1), "yyyy-mm-dd", "2023-05-01"),
        (dt.datetime(2023, 5, 1), "yyyy-mm-dd hh:mm", "2023-05-01 00:00:00"),
        (dt.datetime(2023, 5, 1, 8, 30), "yyyy-mm-dd", "2023-05-01 08:30:00"),
        (dt.datetime(2023, 5, 1, 8, 29, 59, 999_800), "yyyy-mm-dd h:mm:ss", "2023-05-01 08:30:00"),
        (dt.datetime(2023, 5, 1, 8, 30, 0, 250_000), "General", "2023-05-01 08:30:00.250"),
        (dt.datetime(2023, 5, 1), '[$-804]yyyy"年"m"月"d"日"', "2023-05-01"),
        (dt.time(8, 30), None, "08:30:00"),
        (dt.timedelta(hours=26, minutes=5), None, "26:05:00"),
        ("#N/A", None, "#N/A"),
    ],
)
def test_cell_text(value: Any, number_format: str | None, text: str | None) -> None:
    assert cell_text(value, number_format) == text


def test_values_land_as_text(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["姓名", "登记日期", "时间", "金额", "序列号", "日期格式的数字", "空"])
    ws.append(["张三", dt.date(2023, 5, 1), dt.datetime(2023, 5, 1, 8, 30), 123.0, 45047, 45047, None])
    ws["F2"].number_format = "yyyy-mm-dd"  # a plain number with a date format: openpyxl converts it
    ws.append(["李四", dt.date(2023, 5, 2), dt.datetime(2023, 5, 2, 17, 0, 5), 99.5, 45048.5, 45048, ""])
    ws["F3"].number_format = "yyyy/m/d h:mm"
    wb.save(tmp_path / "src.xlsx")
    result = collect(tmp_path)
    assert data(result) == [
        {
            ROW_COLUMN: 2,
            "姓名": "张三",
            "登记日期": "2023-05-01",
            "时间": "2023-05-01 08:30:00",
            "金额": "123",
            "序列号": "45047",  # a plain number stays a number: the cleanse step converts serials
            "日期格式的数字": "2023-05-01",
            "空": None,
        },
        {
            ROW_COLUMN: 3,
            "姓名": "李四",
            "登记日期": "2023-05-02",
            "时间": "2023-05-02 17:00:05",
            "金额": "99.5",
            "序列号": "45048.5",
            "日期格式的数字": "2023-05-02 00:00:00",
            "空": None,
        },
    ]
    assert pq.read_table(result.data_path).schema.field("金额").type == "string"


def test_date_columns_convert_serials_with_the_workbook_epoch(tmp_path: Path) -> None:
    workbook(tmp_path / "src.xlsx", [["编号", "日期"], [1, 45047], [2, 45047.75], [3, "2023年5月1日"], [4, None]])
    result = collect(tmp_path, date_columns=["日期"])
    assert [r["日期"] for r in data(result)] == ["2023-05-01", "2023-05-01 18:00:00", "2023年5月1日", None]
    assert result.details["date_serials_converted"] == 2

    wb = Workbook()
    wb.epoch = CALENDAR_MAC_1904
    ws = wb.active
    assert ws is not None
    ws.append(["编号", "日期"])
    ws.append([1, 1])
    ws.append([2, 43585])
    wb.save(tmp_path / "mac.xlsx")
    result = collect(tmp_path, "mac.xlsx", date_columns=["日期"])
    assert [r["日期"] for r in data(result)] == ["1904-01-02", "2023-05-01"]
    assert result.details["epoch"] == "1904"


def test_date_columns_must_exist(tmp_path: Path) -> None:
    workbook(tmp_path / "src.xlsx", [["编号", "日期"], [1, 45047]])
    with pytest.raises(SourceError, match="'登记日期'"):
        collect(tmp_path, date_columns=["登记日期"])


# --- rows ----------------------------------------------------------------------------------------


def test_row_numbers_header_row_and_blank_rows(tmp_path: Path) -> None:
    rows: list[list[Any]] = [
        ["2023年上海市企业登记表"],  # 1: a title
        [],  # 2
        ["姓名", "电话"],  # 3: the header
        ["张三", "1380000"],  # 4
        [None, None],  # 5: empty
        [],  # 6: empty
        ["李四", None],  # 7
        ["", ""],  # 8: empty strings are empty
    ]
    workbook(tmp_path / "src.xlsx", rows)
    result = collect(tmp_path, header_row=3)
    assert result.columns == ["姓名", "电话"]
    assert data(result) == [
        {ROW_COLUMN: 4, "姓名": "张三", "电话": "1380000"},
        {ROW_COLUMN: 7, "姓名": "李四", "电话": None},
    ]
    assert result.details["blank_rows_skipped"] == 3
    assert result.details["rows_above_header"] == 2


def test_value_right_of_the_header_is_rejected(tmp_path: Path) -> None:
    workbook(tmp_path / "src.xlsx", [["姓名", "电话"], ["张三", "1", None, "多余"], ["李四", "2"]])
    result = collect(tmp_path)
    assert (result.rows, result.rejected) == (1, 1)
    assert result.rejects_path is not None
    (rej,) = pq.read_table(result.rejects_path).to_pylist()
    assert rej[ROW_COLUMN] == 2
    assert "column D" in rej["reason"]
    assert "多余" in rej["raw"]


def test_header_gaps_and_duplicates(tmp_path: Path) -> None:
    workbook(tmp_path / "src.xlsx", [["姓名", None, "姓名", 2023, None], ["张三", "x", "y", "z"]])
    result = collect(tmp_path)
    assert result.columns == ["姓名", "column2", "姓名_2", "2023"]
    assert data(result)[0] == {ROW_COLUMN: 2, "姓名": "张三", "column2": "x", "姓名_2": "y", "2023": "z"}


def test_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlsx_mod, "BATCH_ROWS", 2)
    workbook(tmp_path / "src.xlsx", [["n"], *[[i] for i in range(7)]])
    result = collect(tmp_path)
    assert [r["n"] for r in data(result)] == [str(i) for i in range(7)]
    assert [r[ROW_COLUMN] for r in data(result)] == list(range(2, 9))


def test_header_only_sheet(tmp_path: Path) -> None:
    workbook(tmp_path / "src.xlsx", [["姓名", "电话"]])
    result = collect(tmp_path)
    assert (result.rows, result.columns) == (0, ["姓名", "电话"])


# --- sheets --------------------------------------------------------------------------------------


def test_sheet_by_name_and_index(tmp_path: Path) -> None:
    wb = Workbook()
    first = wb.active
    assert first is not None
    first.title = "说明"
    first.append(["本表说明"])
    second = wb.create_sheet("数据")
    second.append(["姓名"])
    second.append(["张三"])
    wb.save(tmp_path / "src.xlsx")
    assert data(collect(tmp_path, sheet="数据"))[0]["姓名"] == "张三"
    assert data(collect(tmp_path, sheet=1))[0]["姓名"] == "张三"
    assert collect(tmp_path).columns == ["本表说明"]


def test_unknown_sheet_lists_the_sheets(tmp_path: Path) -> None:
    workbook(tmp_path / "src.xlsx", [["a"]], extra_sheets=("第二页",))
    with pytest.raises(SourceError) as err:
        collect(tmp_path, sheet="Sheet1")
    assert "'数据'" in str(err.value)
    assert "'第二页'" in str(err.value)
    with pytest.raises(SourceError, match="no sheet at index 5"):
        collect(tmp_path, sheet=5)


def test_header_row_empty_or_beyond_the_sheet(tmp_path: Path) -> None:
    workbook(tmp_path / "src.xlsx", [["a"], [], ["1"]])
    with pytest.raises(SourceError, match=r"row 2 .*is empty"):
        collect(tmp_path, header_row=2)
    with pytest.raises(SourceError, match="beyond the sheet's last row"):
        collect(tmp_path, header_row=10)


# --- files ---------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        collect(tmp_path, "nope.xlsx")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.xlsx").mkdir()
    with pytest.raises(SourceError, match="directory"):
        collect(tmp_path, "dir.xlsx")


def test_csv_renamed_to_xlsx(tmp_path: Path) -> None:
    (tmp_path / "fake.xlsx").write_bytes("姓名,电话\n张三,1\n".encode("gb18030"))
    with pytest.raises(SourceError) as err:
        collect(tmp_path, "fake.xlsx")
    assert "not an Excel .xlsx workbook" in str(err.value)
    assert "csv connector" in (err.value.hint or "")


def test_old_xls_or_encrypted(tmp_path: Path) -> None:
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    with pytest.raises(SourceError, match="97-2003"):
        collect(tmp_path, "old.xls")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.xlsx").write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        collect(tmp_path, "empty.xlsx")


def test_xlsx_with_another_extension(tmp_path: Path) -> None:
    workbook(tmp_path / "export.dat", [["a"], ["1"]])
    assert collect(tmp_path, "export.dat").rows == 1


def test_options(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="header_row"):
        make_connector("xlsx", {"path": "a.xlsx", "header_row": 0}, base_dir=tmp_path, env={})


def test_damaged_workbook(tmp_path: Path) -> None:
    workbook(tmp_path / "src.xlsx", [["n", "姓名"], *[[i, f"名字{i}"] for i in range(3000)]])
    damaged = bytearray((tmp_path / "src.xlsx").read_bytes())
    middle = len(damaged) // 3
    damaged[middle : middle + 200] = bytes(b ^ 0x55 for b in damaged[middle : middle + 200])
    (tmp_path / "src.xlsx").write_bytes(bytes(damaged))
    with pytest.raises(SourceError) as err:
        collect(tmp_path)
    assert "src.xlsx" in str(err.value)
    assert err.value.hint
    assert not (tmp_path / "landing" / "data.parquet").exists()
