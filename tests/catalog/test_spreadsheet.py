"""The national cataloguing sheet: export, import, the round trip, and every kind of bad sheet."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import Workbook
from sqlalchemy import select

from catalog.access import ANONYMOUS, OPERATOR, Role, Viewer
from catalog.models import AuditEvent, ClassificationNode, DataItem, Department, Entry
from catalog.spreadsheet import (
    NATIONAL_COLUMNS,
    PROVIDER_COLUMNS,
    ImportReport,
    Problem,
    entry_id_for,
    export_workbook,
    import_workbook,
)
from catalog.store import CatalogStore
from pipelines.errors import SpecError, TerminalError
from pipelines.spec import load_spec
from tests.catalog.conftest_spreadsheet import (
    BASE,
    BUNDLED,
    DEPT_A,
    DEPT_B,
    REPO,
    add_department,
    cells,
    gov_uscc,
    resource,
    two_resources,
    write_sheet,
)


@pytest.fixture
def store(tmp_path: Path) -> CatalogStore:
    return CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")


@pytest.fixture
def other(tmp_path: Path) -> CatalogStore:
    """A second, empty catalog."""
    return CatalogStore(f"sqlite:///{tmp_path / 'other.db'}")


def letter(name: str) -> str:
    return chr(ord("A") + NATIONAL_COLUMNS.index(name))


def imported(store: CatalogStore, path: Path, **kwargs: Any) -> ImportReport:
    """Import as department A (created on first use); fail the test on any problem."""
    kwargs.setdefault("department", DEPT_A)
    kwargs.setdefault("department_name", "上海市测试局")
    report = import_workbook(store, path, **kwargs)
    assert report.problems == [], "\n".join(map(str, report.problems))
    return report


def problems_of(store: CatalogStore, path: Path, **kwargs: Any) -> list[Problem]:
    """Import a bad sheet: it must report problems and write nothing."""
    kwargs.setdefault("department", DEPT_A)
    kwargs.setdefault("department_name", "上海市测试局")
    before = _snapshot(store)
    report = import_workbook(store, path, **kwargs)
    assert report.problems, "the sheet was expected to have problems"
    if not kwargs.get("partial"):
        assert report.blocked and not report.created and not report.updated
        assert _snapshot(store) == before, "an import with problems changed the catalog"
    return report.problems


def _snapshot(store: CatalogStore) -> tuple[Any, ...]:
    with store.session() as s:
        entries = [(e.id, e.resource_code, e.name) for e in s.scalars(select(Entry).order_by(Entry.id))]
        items = list(
            s.execute(select(DataItem.entry_id, DataItem.position, DataItem.title).order_by(DataItem.entry_id))
        )
        nodes = list(s.scalars(select(ClassificationNode.code).order_by(ClassificationNode.code)))
        depts = list(s.scalars(select(Department.uscc).order_by(Department.uscc)))
    return entries, [tuple(i) for i in items], nodes, depts


def one(problems: list[Problem], text: str) -> Problem:
    found = [p for p in problems if text in p.problem]
    assert len(found) == 1, f"expected one problem with {text!r}, got:\n" + "\n".join(map(str, problems))
    return found[0]


# --- round trip --------------------------------------------------------------------------------


def test_the_bundled_datasets_round_trip_through_the_sheet_without_loss(
    store: CatalogStore, other: CatalogStore, tmp_path: Path
) -> None:
    specs = [load_spec(p) for p in BUNDLED]
    for spec in specs:
        store.register(spec, source="test")
    first = export_workbook(store, tmp_path / "first.xlsx")
    assert first.entries == 3 and first.rows == sum(len(s.columns) for s in specs) and first.provider_columns
    grid = cells(tmp_path / "first.xlsx")
    assert grid[0] == [*NATIONAL_COLUMNS, *PROVIDER_COLUMNS]
    assert [r[0] for r in grid[1:]] == list(range(1, first.rows + 1))  # 序号 numbers the rows

    report = import_workbook(other, tmp_path / "first.xlsx")  # the provider columns name the departments
    assert report.problems == [] and len(report.created) == 3 and not report.blocked
    assert sorted(report.departments_created) == sorted(s.department.uscc for s in specs)
    export_workbook(other, tmp_path / "second.xlsx")
    assert cells(tmp_path / "second.xlsx") == grid

    # each department's sheet (the plain national layout) round-trips too
    for spec in specs:
        uscc = spec.department.uscc
        sheet = tmp_path / f"{uscc}.xlsx"
        export_workbook(store, sheet, department=uscc)
        assert cells(sheet)[0] == list(NATIONAL_COLUMNS)
        fresh = CatalogStore(f"sqlite:///{tmp_path / f'{uscc}.db'}")
        imported(fresh, sheet, department=uscc, department_name=spec.department.name)
        export_workbook(fresh, tmp_path / f"{uscc}-again.xlsx", department=uscc)
        assert cells(tmp_path / f"{uscc}-again.xlsx") == cells(sheet)

    # What the sheet cannot hold (kept out of the comparison above, on purpose): the items'
    # English names and their key / nullable / sensitivity / masking; the department's level.
    hrss = next(e for e in other.entries() if e.resource_code == specs[0].catalog.resource_code)
    copy = other.entry(hrss.id)
    original = store.entry(specs[0].id)
    assert copy is not None and original is not None
    assert copy.id == "res_101030002_000112" and copy.origin == "import" and copy.status == "draft"
    assert [i.title for i in copy.items] == [i.title for i in original.items]
    assert [i.name for i in copy.items][:2] == ["item_01", "item_02"]
    assert [i.name for i in original.items][:2] == ["resident_id", "name"]
    assert original.items[0].primary_key and original.items[0].sensitive
    assert not copy.items[0].primary_key and not copy.items[0].sensitive


def test_every_column_round_trips(store: CatalogStore, other: CatalogStore, tmp_path: Path) -> None:
    rows = [
        *resource(
            "315001001001/1",
            [("stop_id", "C", 16), ("经度", "B", None), ("备注", "M", 2000)],
            部门类信息资源分类="3",  # the 类 digit
            项分类="交通",
            目分类="公交",
            细目分类="站点",
            信息资源名称="公交站点",
            信息资源摘要="第一行\n第二行",
            信息资源格式分类=7,  # the format code
            信息资源格式类型="API",
            其他类型资源格式描述="JSON over HTTPS",
            共享类型="非共享",  # Shanghai's alias of 不予共享
            **{"共享条件/不予共享依据": "《数据安全法》第二十一条"},
            共享方式分类="文件",
            是否向社会开放="是",
            开放条件="注册后下载",
            更新周期="实时",
            发布日期=dt.datetime(2023, 12, 31),
            开放主题分类="交通出行",
        ),
        *resource(
            "102010002/000009",
            [("金额", "货币型", 18)],
            目分类=None,
            细目分类=None,
            发布日期=None,
            共享类型="授权共享",
        ),
    ]
    write_sheet(tmp_path / "in.xlsx", rows)
    imported(store, tmp_path / "in.xlsx")
    with store.session() as s:  # a text that looks like a formula is written as text
        entry = s.get(Entry, entry_id_for("315001001001/1"))
        assert entry is not None
        entry.name = "=公交站点 (not a formula)"
    export_workbook(store, tmp_path / "out.xlsx", department=DEPT_A)
    grid = cells(tmp_path / "out.xlsx")
    by_item = {r[NATIONAL_COLUMNS.index("信息项名称")]: dict(zip(NATIONAL_COLUMNS, r, strict=True)) for r in grid[1:]}
    assert by_item["金额"]["数据类型"] == "Y" and by_item["金额"]["共享类型"] == "有条件共享"
    assert by_item["金额"]["目分类"] is None and by_item["金额"]["发布日期"] is None
    stop = by_item["stop_id"]
    assert stop["部门类信息资源分类"] == "部门" and stop["信息资源格式分类"] == "服务接口"
    assert stop["信息资源名称"] == "=公交站点 (not a formula)" and stop["信息资源摘要"] == "第一行\n第二行"
    assert stop["共享类型"] == "不予共享" and stop["是否向社会开放"] == "是"
    assert stop["发布日期"] == dt.datetime(2023, 12, 31) and stop["数据长度"] == 16
    assert [r[0] for r in grid[1:]] == [1, 2, 3, 4]
    entry = store.entry(entry_id_for("315001001001/1"))
    assert entry is not None and [i.name for i in entry.items] == ["stop_id", "item_02", "item_03"]

    imported(other, tmp_path / "out.xlsx")
    export_workbook(other, tmp_path / "again.xlsx", department=DEPT_A)
    assert cells(tmp_path / "again.xlsx") == grid


def test_the_entry_id_comes_from_the_resource_code() -> None:
    assert entry_id_for("101030002/000112") == "res_101030002_000112"
    assert entry_id_for(" 3150010010/7 ") == "res_3150010010_7"


# --- re-import, specs, other departments, the tree ---------------------------------------------


def test_importing_the_same_sheet_again_changes_nothing_and_a_changed_sheet_updates_in_place(
    store: CatalogStore, tmp_path: Path
) -> None:
    write_sheet(tmp_path / "a.xlsx", two_resources())
    first = imported(store, tmp_path / "a.xlsx")
    assert first.created == ["res_102010002_000001", "res_102010002_000002"] and first.items == 5
    with store.session() as s:
        entry = s.get(Entry, "res_102010002_000001")
        assert entry is not None
        entry.status = "registered"  # the import keeps the status
        entry.related_resources = ["102010002/000002"]
        entry.items[1].sensitive = True  # an attribute the sheet does not hold
        entry.items[1].masking_rule = "partial"
    again = imported(store, tmp_path / "a.xlsx")
    assert again.created == [] and again.updated == [] and len(again.unchanged) == 2

    rows = two_resources()
    rows[0]["信息资源名称"] = rows[1]["信息资源名称"] = rows[2]["信息资源名称"] = "企业年度报告（新）"
    rows[1], rows[2] = rows[2], rows[1]  # reorder two items
    rows.insert(3, {**rows[0], "信息项名称": "从业人数", "数据类型": "I", "数据长度": None})
    write_sheet(tmp_path / "b.xlsx", rows)
    changed = imported(store, tmp_path / "b.xlsx")
    assert changed.updated == ["res_102010002_000001"] and changed.unchanged == ["res_102010002_000002"]
    entry = store.entry("res_102010002_000001")
    assert entry is not None and entry.name == "企业年度报告（新）" and entry.status == "registered"
    assert entry.related_resources == ["102010002/000002"]
    assert [(i.title, i.name) for i in entry.items] == [
        ("统一社会信用代码", "item_01"),
        ("年报年度", "item_03"),
        ("企业名称", "item_02"),
        ("从业人数", "item_04"),
    ]
    moved = entry.items[2]
    assert moved.sensitive and moved.masking_rule == "partial"  # kept with the item, not the position
    with store.session() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
    assert actions.count("catalog.import_create") == 2 and actions.count("catalog.import_update") == 1
    assert "catalog.department_add" in actions


def test_an_entry_from_a_dataset_spec_is_not_changed_by_an_import(store: CatalogStore, tmp_path: Path) -> None:
    spec = load_spec(BUNDLED[0])
    store.register(spec, source="test")
    uscc = spec.department.uscc
    export_workbook(store, tmp_path / "hrss.xlsx", department=uscc)
    same = import_workbook(store, tmp_path / "hrss.xlsx", department=uscc)
    assert same.problems == [] and same.unchanged == [spec.id]

    grid = cells(tmp_path / "hrss.xlsx")
    for r in grid[1:]:
        r[NATIONAL_COLUMNS.index("更新周期")] = "每日"
    write_sheet(tmp_path / "changed.xlsx", grid[1:])
    problems = problems_of(store, tmp_path / "changed.xlsx", department=uscc, department_name=None)
    p = one(problems, "made from its dataset spec")
    assert (
        p.row == 2 and p.column == "更新周期" and p.letter == letter("更新周期") and "change the dataset spec" in p.fix
    )
    entry = store.entry(spec.id)
    assert entry is not None and entry.update_cycle == "每月" and entry.origin == "spec"


def test_a_resource_code_of_another_department_is_refused(store: CatalogStore, tmp_path: Path) -> None:
    write_sheet(tmp_path / "a.xlsx", two_resources())
    imported(store, tmp_path / "a.xlsx")
    problems = problems_of(store, tmp_path / "a.xlsx", department=DEPT_B, department_name="上海市另一局")
    assert len(problems) == 2
    p = problems[0]
    assert "another department" in p.problem and DEPT_A in p.problem and p.column == "信息资源代码" and p.row == 2


def test_the_classification_tree_grows_and_a_code_means_one_thing(store: CatalogStore, tmp_path: Path) -> None:
    store.register(load_spec(BUNDLED[1]), source="test")  # 102 法人 / 102010 市场主体 / 102010001 企业登记
    write_sheet(tmp_path / "a.xlsx", two_resources())
    imported(store, tmp_path / "a.xlsx")
    with store.session() as s:
        nodes = {n.code: (n.name, n.level, n.parent_code) for n in s.scalars(select(ClassificationNode))}
    assert nodes["102010002"] == ("企业年报", 4, "102010")
    assert nodes["102010"] == ("市场主体", 3, "102")

    rows = resource("102010003/000001", 目分类="市场主体信息")  # 102010 is 市场主体
    rows += resource("102011001/000001", 目分类="甲", 细目分类="乙")
    rows += resource("102011001/000002", 目分类="丙", 细目分类="乙")  # 102011 was 甲 two rows up
    write_sheet(tmp_path / "b.xlsx", rows)
    problems = problems_of(store, tmp_path / "b.xlsx")
    first = one(problems, "'市场主体' in the catalog")
    assert first.row == 2 and first.column == "目分类" and "write '市场主体'" in first.fix
    second = one(problems, "'甲' in row 3")
    assert second.row == 4 and second.column == "目分类"


# --- hostile sheets: headers -------------------------------------------------------------------


def test_a_misspelt_header_names_the_expected_one(store: CatalogStore, tmp_path: Path) -> None:
    header = list(NATIONAL_COLUMNS)
    header[6] = "信息资源名"
    write_sheet(tmp_path / "h.xlsx", [[BASE[c] for c in NATIONAL_COLUMNS]], header=header)
    (p,) = problems_of(store, tmp_path / "h.xlsx")
    assert p.row == 1 and p.letter == "G" and "expected '信息资源名称'" in p.problem
    assert p.fix == "rename the header to '信息资源名称'"


def test_a_missing_column_says_where_it_belongs(store: CatalogStore, tmp_path: Path) -> None:
    header = [c for c in NATIONAL_COLUMNS if c != "数据长度"]
    write_sheet(tmp_path / "h.xlsx", [BASE], header=header)
    (p,) = problems_of(store, tmp_path / "h.xlsx")
    assert p.column == "数据长度" and "column P" in p.problem and "after '数据类型'" in p.fix


def test_a_duplicated_header_is_a_problem(store: CatalogStore, tmp_path: Path) -> None:
    header = [*NATIONAL_COLUMNS, "信息项名称"]
    write_sheet(tmp_path / "h.xlsx", [[*[BASE[c] for c in NATIONAL_COLUMNS], "x"]], header=header)
    (p,) = problems_of(store, tmp_path / "h.xlsx")
    assert p.letter == "Z" and "appears twice (columns N and Z)" in p.problem


def test_reordered_columns_are_read_by_their_headers(store: CatalogStore, tmp_path: Path) -> None:
    header = list(reversed(NATIONAL_COLUMNS))
    header = [f"*{h}" if h == "信息资源名称" else h for h in header]  # the template's mark of a required field
    header[0] = " 开放主题\n分类 "  # spaces and a line break in a header cell
    order = list(reversed(NATIONAL_COLUMNS))
    rows = [[row[c] for c in order] for row in two_resources()]
    write_sheet(tmp_path / "r.xlsx", rows, header=header)
    report = imported(store, tmp_path / "r.xlsx")
    assert len(report.created) == 2 and any("not in the national order" in n for n in report.notes)


def test_an_unknown_column_with_values_is_refused_and_an_empty_one_is_not(store: CatalogStore, tmp_path: Path) -> None:
    header = [*NATIONAL_COLUMNS, "备注"]
    rows = [[*[r[c] for c in NATIONAL_COLUMNS], None] for r in two_resources()]
    write_sheet(tmp_path / "empty.xlsx", rows, header=header)
    imported(store, tmp_path / "empty.xlsx")
    rows[1][-1] = "待核实"
    rows[3][-1] = "待核实"
    write_sheet(tmp_path / "full.xlsx", rows, header=header)
    (p,) = problems_of(store, tmp_path / "full.xlsx")
    assert p.letter == "Z" and "'备注'" in p.problem and "2 row(s) (first: row 3)" in p.problem
    (q,) = problems_of(store, tmp_path / "full.xlsx", partial=True)  # the sheet's header problem keeps it all out
    assert q == p


def test_title_rows_and_a_two_row_header_are_read(store: CatalogStore, tmp_path: Path) -> None:
    header = list(NATIONAL_COLUMNS)
    header[0] = None  # 序号 is merged down from the group row above
    group = ["序号", "信息资源分类"] + [None] * (len(NATIONAL_COLUMNS) - 2)
    rows = [[r[c] for c in NATIONAL_COLUMNS] for r in two_resources()]
    rows[4][NATIONAL_COLUMNS.index("数据长度")] = -3
    write_sheet(
        tmp_path / "t.xlsx",
        rows,
        header=header,
        above=[["政务数据资源目录编制表"], group],
        merges=["A1:Y1", "A2:A3", "B2:E2"],
    )
    problems = problems_of(store, tmp_path / "t.xlsx")
    (p,) = problems
    assert p.row == 8 and p.letter == "P", "the row number is the sheet's, as Excel shows it"


def test_a_sheet_without_the_national_header(store: CatalogStore, tmp_path: Path) -> None:
    write_sheet(tmp_path / "x.xlsx", [["a", "b"]], header=["姓名", "电话"])
    (p,) = problems_of(store, tmp_path / "x.xlsx")
    assert p.row == 1 and "no sheet has the header row" in p.problem and "序号, 部门类信息资源分类" in p.fix


def test_other_sheets_are_skipped_and_said_so(store: CatalogStore, tmp_path: Path) -> None:
    write_sheet(tmp_path / "s.xlsx", two_resources(), extra_sheets={"填表说明": [["请按国家目录编制要求填写"]]})
    report = imported(store, tmp_path / "s.xlsx")
    assert report.sheets == ["目录"] and any("'填表说明' was not read" in n for n in report.notes)


# --- hostile sheets: cells ---------------------------------------------------------------------


def test_rows_of_one_resource_must_repeat_its_fields(store: CatalogStore, tmp_path: Path) -> None:
    rows = two_resources()
    rows[1]["信息资源摘要"] = "另一份摘要"
    rows[2]["下设机构"] = None
    rows[2]["部门类信息资源分类"] = "1"  # the same axis written as its digit: no problem
    write_sheet(tmp_path / "d.xlsx", rows)
    problems = problems_of(store, tmp_path / "d.xlsx")
    assert [(p.row, p.column) for p in problems] == [(3, "信息资源摘要"), (4, "下设机构")]
    assert "row 2 of the same resource has '本市企业年度报告的基本信息'" in problems[0].problem
    assert problems[1].problem.startswith("empty, but row 2")


def test_bad_resource_codes(store: CatalogStore, tmp_path: Path) -> None:
    rows = [
        *resource("10201/1"),  # 目 too short
        *resource("402010002/000001"),  # no 类 4
        *resource("102010002-000001"),
        *resource("201010002/000001"),  # 类 2 主题, but the row says 基础
        *resource("102010002" + "1" * 30 + "/1"),  # longer than the catalog keeps
    ]
    rows.append({**BASE, "信息资源代码": 102010002000001})  # typed as a number
    write_sheet(tmp_path / "c.xlsx", rows)
    problems = problems_of(store, tmp_path / "c.xlsx")
    by_row = {p.row: p for p in problems}
    assert set(by_row) == {2, 3, 4, 5, 6, 7}
    assert all(p.column == "信息资源代码" for r, p in by_row.items() if r != 5)
    assert "not a resource code" in by_row[2].problem
    assert "类 digit must be 1 (基础), 2 (主题) or 3 (部门)" in by_row[3].problem
    assert by_row[5].column == "部门类信息资源分类" and "write 主题 (2)" in by_row[5].fix
    assert "too long" in by_row[6].problem
    assert "typed as a number" in by_row[7].problem and "Text" in by_row[7].fix


def test_unknown_values_get_the_nearest_valid_one(store: CatalogStore, tmp_path: Path) -> None:
    rows = [
        {**BASE, "数据类型": "字符形"},
        {**BASE, "信息项名称": "b", "共享类型": "有条件分享"},
        {**BASE, "信息项名称": "c", "更新周期": "每日更新"},
        {**BASE, "信息项名称": "d", "信息资源格式分类": "电子表"},
        {**BASE, "信息项名称": "e", "部门类信息资源分类": "基础类"},  # accepted
        {**BASE, "信息项名称": "f", "数据类型": "日期时间型", "数据长度": None},  # accepted: T
        {**BASE, "信息项名称": "g", "共享方式分类": "FTP"},
        {**BASE, "信息项名称": "h", "是否向社会开放": "可以"},
    ]
    write_sheet(tmp_path / "v.xlsx", rows)
    problems = problems_of(store, tmp_path / "v.xlsx")
    got = {p.column: p for p in problems}
    assert "did you mean '字符型'?" in got["数据类型"].fix and "I 整型" in got["数据类型"].fix
    assert "did you mean '有条件共享'?" in got["共享类型"].fix
    assert "did you mean '每日'?" in got["更新周期"].fix
    assert "did you mean '电子表格'?" in got["信息资源格式分类"].fix
    assert "数据库, 文件, 接口" in got["共享方式分类"].fix
    assert "是" in got["是否向社会开放"].fix
    assert len(problems) == 6


def test_conditional_and_not_shared_need_their_condition(store: CatalogStore, tmp_path: Path) -> None:
    rows = [
        *resource("102010002/000001", **{"共享条件/不予共享依据": None}),
        *resource("102010002/000002", 共享类型="不予共享", **{"共享条件/不予共享依据": "  "}),
        *resource("102010002/000003", 共享类型="无条件共享", **{"共享条件/不予共享依据": None}),
    ]
    write_sheet(tmp_path / "s.xlsx", rows)
    problems = problems_of(store, tmp_path / "s.xlsx")
    assert [(p.row, p.column) for p in problems] == [(2, "共享条件/不予共享依据"), (3, "共享条件/不予共享依据")]
    assert "共享条件" in problems[0].problem and "legal basis" in problems[1].problem


def test_bad_dates_and_lengths(store: CatalogStore, tmp_path: Path) -> None:
    rows = [
        {**BASE, "发布日期": "2024-13-01"},
        {**BASE, "信息项名称": "b", "发布日期": "明年"},
        {**BASE, "信息项名称": "c", "发布日期": 45413},  # a serial without a date format
        {**BASE, "信息项名称": "d", "数据长度": 0},
        {**BASE, "信息项名称": "e", "数据长度": -1},
        {**BASE, "信息项名称": "f", "数据长度": 1.5},
        {**BASE, "信息项名称": "g", "数据长度": "18,2"},
        {**BASE, "信息项名称": "h", "数据长度": "十八"},
    ]
    write_sheet(tmp_path / "d.xlsx", rows)
    problems = problems_of(store, tmp_path / "d.xlsx")
    dates = [p for p in problems if p.column == "发布日期"]
    lengths = [p for p in problems if p.column == "数据长度"]
    assert [p.row for p in dates] == [2, 3, 4] and all("YYYY-MM-DD" in p.fix for p in dates)
    assert "a number, not a date" in dates[2].problem
    assert [p.row for p in lengths] == [5, 6, 7, 8, 9] and all("whole number" in p.fix for p in lengths)
    # rows 2-4 also disagree with row 2's date; those are reported as well
    assert {p.row for p in problems if p.column == "发布日期"} == {2, 3, 4}


def test_accepted_spellings(store: CatalogStore, tmp_path: Path) -> None:
    rows = [
        {**BASE, "发布日期": "2024年5月1日", "数据长度": "18", "数据类型": "c"},
        {**BASE, "信息项名称": "b", "发布日期": "2024/5/1", "数据长度": 18.0},
        {**BASE, "信息项名称": "c", "发布日期": dt.datetime(2024, 5, 1, 0, 0)},
    ]
    write_sheet(tmp_path / "a.xlsx", rows)
    imported(store, tmp_path / "a.xlsx")
    entry = store.entry("res_102010002_000001")
    assert entry is not None and entry.publish_date == dt.date(2024, 5, 1)
    assert [(i.type_code, i.length) for i in entry.items] == [("C", 18), ("C", 18), ("C", 18)]


def test_blank_rows_between_the_data_are_ignored_and_said(store: CatalogStore, tmp_path: Path) -> None:
    rows: list[Any] = two_resources()
    rows.insert(2, None)
    rows.insert(4, [7])  # a pre-numbered template row: only 序号
    rows += [None, [99]]  # after the data: not worth a note
    write_sheet(tmp_path / "b.xlsx", rows)
    report = imported(store, tmp_path / "b.xlsx")
    assert len(report.created) == 2 and report.rows == 5
    assert any("2 blank row(s) between the data ignored (rows 4, 6)" in n for n in report.notes)


def test_formulas_are_refused_except_in_the_row_number(store: CatalogStore, tmp_path: Path) -> None:
    rows = two_resources()
    for i, row in enumerate(rows):
        row["序号"] = f"=ROW()-{1 + 0 * i}"
    rows[1]["信息资源名称"] = '="企业"&"年报"'
    write_sheet(tmp_path / "f.xlsx", rows)
    problems = problems_of(store, tmp_path / "f.xlsx")
    p = one(problems, "a formula")
    assert (p.row, p.column) == (3, "信息资源名称") and "paste values" in p.fix


def test_vertically_merged_resource_cells_count_for_every_row(store: CatalogStore, tmp_path: Path) -> None:
    rows = two_resources()
    for row in rows[1:3]:
        for column in ("信息资源名称", "信息资源摘要", "信息资源代码"):
            row[column] = None
    g, j, h = letter("信息资源名称"), letter("信息资源摘要"), letter("信息资源代码")
    write_sheet(tmp_path / "m.xlsx", rows, merges=[f"{g}2:{g}4", f"{j}2:{j}4", f"{h}2:{h}4"])
    report = imported(store, tmp_path / "m.xlsx")
    assert len(report.created) == 2 and report.items == 5
    assert any("3 vertically merged" in n for n in report.notes)


def test_cells_merged_across_columns_are_a_problem(store: CatalogStore, tmp_path: Path) -> None:
    rows = two_resources()
    rows[0]["目分类"] = None
    write_sheet(tmp_path / "m.xlsx", rows, merges=["C2:D2"])
    problems = problems_of(store, tmp_path / "m.xlsx")
    p = one(problems, "merged across columns")
    assert (p.row, p.letter) == (2, "C") and "unmerge" in p.fix


def test_spaces_and_full_width_characters_are_cleaned_and_said(store: CatalogStore, tmp_path: Path) -> None:
    rows = two_resources()
    for row in rows[:3]:
        row["信息资源名称"] = "\u3000企业年度报告信息 "
        row["信息资源代码"] = "１０２０１０００２／０００００１"
        row["数据类型"] = " Ｃ"
    write_sheet(tmp_path / "w.xlsx", rows)
    report = imported(store, tmp_path / "w.xlsx")
    entry = store.entry("res_102010002_000001")
    assert entry is not None and entry.name == "企业年度报告信息" and entry.resource_code == "102010002/000001"
    assert any("trimmed" in n for n in report.notes) and any("full-width" in n for n in report.notes)


def test_a_uscc_typed_as_a_number_or_with_a_wrong_check_character(store: CatalogStore, tmp_path: Path) -> None:
    rows = [
        {**r, "信息资源提供方": "上海市测试局", "提供方代码": DEPT_A}
        for r in resource("102010002/000001", [("a", "C", 1), ("b", "C", 1), ("c", "C", 1)])
    ]
    rows[1]["提供方代码"] = 113100000000000000
    rows[2]["提供方代码"] = DEPT_A[:-1] + ("0" if DEPT_A[-1] != "0" else "1")
    write_sheet(tmp_path / "u.xlsx", rows, provider=True)
    problems = problems_of(store, tmp_path / "u.xlsx", department=None, department_name=None)
    assert [(p.row, p.column) for p in problems] == [(3, "提供方代码"), (4, "提供方代码")]
    assert "typed as a number" in problems[0].problem and "check character" in problems[1].problem


def test_rows_of_one_code_apart_are_two_resources_with_one_code(store: CatalogStore, tmp_path: Path) -> None:
    rows = [
        *resource("102010002/000001"),
        *resource("102010002/000002"),
        *resource("102010002/000001", [("x", "C", 1)]),
    ]
    write_sheet(tmp_path / "a.xlsx", rows)
    (p,) = problems_of(store, tmp_path / "a.xlsx")
    assert (p.row, p.column) == (4, "信息资源代码") and "appears again" in p.problem and "starts in row 2" in p.problem


def test_a_data_item_twice_in_one_resource(store: CatalogStore, tmp_path: Path) -> None:
    write_sheet(tmp_path / "a.xlsx", resource("102010002/000001", [("名称", "C", 10), ("名称", "C", 10)]))
    (p,) = problems_of(store, tmp_path / "a.xlsx")
    assert (p.row, p.column) == (3, "信息项名称") and "already row 2" in p.problem


def test_leading_zeros_lost_against_the_catalog(store: CatalogStore, tmp_path: Path) -> None:
    write_sheet(tmp_path / "a.xlsx", resource("102010002/000112"))
    imported(store, tmp_path / "a.xlsx")
    write_sheet(tmp_path / "b.xlsx", resource("102010002/112"))
    (p,) = problems_of(store, tmp_path / "b.xlsx")
    assert "102010002/000112 is" in p.problem and "leading zeros" in p.problem


def test_every_problem_is_reported_and_partial_imports_only_whole_valid_entries(
    store: CatalogStore, tmp_path: Path
) -> None:
    rows = [
        *resource("102010002/000001", [("a", "C", 1), ("b", "C", 1)]),
        *resource("102010002/000002", [("a", "C", 1), ("b", "Q", 1)]),  # one bad row spoils the entry
        *resource("102010002/000003", [("a", "C", 0)], 更新周期="偶尔"),
        *resource("102010002/000004", [("a", "C", 1)]),
    ]
    rows.append({**BASE, "信息资源代码": None, "信息项名称": "孤儿"})
    write_sheet(tmp_path / "p.xlsx", rows)
    problems = problems_of(store, tmp_path / "p.xlsx")
    assert [(p.row, p.column) for p in problems] == [
        (5, "数据类型"),
        (6, "数据长度"),
        (6, "更新周期"),
        (8, "信息资源代码"),
    ]
    assert problems[3].problem == "is empty" and "every row" in problems[3].fix

    report = import_workbook(
        store, tmp_path / "p.xlsx", department=DEPT_A, department_name="上海市测试局", partial=True
    )
    assert report.created == ["res_102010002_000001", "res_102010002_000004"] and not report.blocked
    assert report.refused == ["102010002/000002", "102010002/000003", "?目录!8"]
    assert len(report.problems) == 4
    assert store.entry("res_102010002_000002") is None


# --- hostile files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "97-2003 .xls"),
        ("sheet.csv", "序号,部门类信息资源分类\n1,基础\n".encode(), "a CSV or text file"),
        ("sheet.xlsx", b"\x00\x01\x02\x03garbage", "not xlsx"),
        ("empty.xlsx", b"", "empty (0 bytes)"),
        ("broken.xlsx", b"PK\x03\x04 not really a zip", "not an Excel .xlsx workbook"),
    ],
)
def test_files_that_are_not_xlsx(store: CatalogStore, tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(TerminalError, match=r"xls|empty|xlsx") as caught:
        import_workbook(store, tmp_path / name, department=DEPT_A, department_name="上海市测试局")
    assert message in caught.value.message and name in caught.value.message and caught.value.hint


def test_missing_file_and_a_directory(store: CatalogStore, tmp_path: Path) -> None:
    with pytest.raises(TerminalError, match="file not found"):
        import_workbook(store, tmp_path / "nope.xlsx", department=DEPT_A, department_name="测试局")
    with pytest.raises(TerminalError, match="is a directory"):
        import_workbook(store, tmp_path, department=DEPT_A, department_name="测试局")


def test_an_empty_workbook_and_a_header_without_rows(store: CatalogStore, tmp_path: Path) -> None:
    Workbook().save(tmp_path / "empty.xlsx")
    with pytest.raises(TerminalError, match="the workbook is empty") as caught:
        import_workbook(store, tmp_path / "empty.xlsx", department=DEPT_A, department_name="测试局")
    assert "export" in (caught.value.hint or "")
    write_sheet(tmp_path / "header.xlsx", [])
    report = imported(store, tmp_path / "header.xlsx")
    assert report.rows == 0 and not report.created and any("no data rows" in n for n in report.notes)


def test_the_department_argument(store: CatalogStore, tmp_path: Path) -> None:
    write_sheet(tmp_path / "a.xlsx", two_resources())
    with pytest.raises(SpecError, match="not a valid USCC") as bad:
        import_workbook(store, tmp_path / "a.xlsx", department="11310000123")
    assert "18" in bad.value.message
    with pytest.raises(SpecError, match="not in the catalog") as missing:
        import_workbook(store, tmp_path / "a.xlsx", department=DEPT_A)
    assert "--department-name" in (missing.value.hint or "")
    with pytest.raises(SpecError, match="no provider columns") as none:
        import_workbook(store, tmp_path / "a.xlsx")
    assert "--department USCC" in (none.value.hint or "")
    add_department(store, DEPT_A, "上海市测试局")
    with pytest.raises(SpecError, match="not '别的名字'"):
        import_workbook(store, tmp_path / "a.xlsx", department=DEPT_A, department_name="别的名字")
    assert import_workbook(store, tmp_path / "a.xlsx", department=DEPT_A.lower()).created


# --- who may import, who sees what -------------------------------------------------------------


def test_who_may_import(store: CatalogStore, tmp_path: Path) -> None:
    add_department(store, DEPT_A, "上海市测试局")
    add_department(store, DEPT_B, "上海市另一局")
    write_sheet(tmp_path / "a.xlsx", two_resources())
    staff_b = Viewer(user="li", role=Role.STAFF, department=DEPT_B)
    with pytest.raises(TerminalError, match="only the entries of their own department"):
        import_workbook(store, tmp_path / "a.xlsx", department=DEPT_A, viewer=staff_b)
    with pytest.raises(TerminalError, match="auditors"):
        import_workbook(store, tmp_path / "a.xlsx", department=DEPT_A, viewer=Viewer("au", Role.AUDITOR))
    with pytest.raises(TerminalError, match="only a city admin may add a department"):
        import_workbook(
            store,
            tmp_path / "a.xlsx",
            department=gov_uscc(1999),
            department_name="新局",
            viewer=Viewer("s", Role.STAFF),
        )
    admin_a = Viewer(user="wang", role=Role.DEPT_ADMIN, department=DEPT_A)
    assert len(import_workbook(store, tmp_path / "a.xlsx", department=DEPT_A, viewer=admin_a).created) == 2

    # a sheet with the provider columns: a staff member imports their own department's rows only
    rows = [{**r, "信息资源提供方": "上海市测试局", "提供方代码": DEPT_A} for r in resource("102010002/000007")]
    rows += [{**r, "信息资源提供方": "上海市另一局", "提供方代码": DEPT_B} for r in resource("102010002/000008")]
    write_sheet(tmp_path / "p.xlsx", rows, provider=True)
    report = import_workbook(store, tmp_path / "p.xlsx", viewer=admin_a, partial=True)
    assert report.created == ["res_102010002_000007"]
    (p,) = report.problems
    assert p.row == 3 and p.column == "提供方代码" and "not allowed" in p.problem


def test_export_shows_only_what_the_viewer_may_see(store: CatalogStore, tmp_path: Path) -> None:
    write_sheet(tmp_path / "a.xlsx", two_resources())
    imported(store, tmp_path / "a.xlsx")
    with store.session() as s:
        entry = s.get(Entry, "res_102010002_000002")
        assert entry is not None
        entry.status = "published"
    assert export_workbook(store, tmp_path / "all.xlsx", viewer=OPERATOR).entries == 2
    outsider = Viewer(user="li", role=Role.STAFF, department=DEPT_B)
    seen = export_workbook(store, tmp_path / "b.xlsx", viewer=outsider)
    assert seen.entries == 1 and seen.rows == 2
    assert {r[7] for r in cells(tmp_path / "b.xlsx")[1:]} == {"102010002/000002"}
    assert export_workbook(store, tmp_path / "anon.xlsx", viewer=ANONYMOUS).entries == 1
    own = Viewer(user="zhang", role=Role.STAFF, department=DEPT_A)
    assert export_workbook(store, tmp_path / "a2.xlsx", department=DEPT_A, viewer=own).entries == 2


def test_export_refuses_what_it_cannot_write(store: CatalogStore, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"\.xlsx"):
        export_workbook(store, tmp_path / "catalog.csv")
    with pytest.raises(SpecError, match="not in the catalog"):
        export_workbook(store, tmp_path / "x.xlsx", department=DEPT_B)
    write_sheet(tmp_path / "a.xlsx", two_resources())
    imported(store, tmp_path / "a.xlsx")
    with store.session() as s:
        entry = s.get(Entry, "res_102010002_000001")
        assert entry is not None
        entry.abstract = "bad \x07 bell"
    with pytest.raises(TerminalError, match="control character") as caught:
        export_workbook(store, tmp_path / "x.xlsx")
    assert "res_102010002_000001" in caught.value.message and not (tmp_path / "x.xlsx").exists()


# --- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[CatalogStore]:
    schema = f"govdata_sheet_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as con:
        con.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    store = CatalogStore(f"{postgres_url}?options=-csearch_path%3D{schema}")
    yield store
    store.engine.dispose()
    with admin.begin() as con:
        con.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.integration
def test_the_round_trip_on_postgresql(pg_store: CatalogStore, store: CatalogStore, tmp_path: Path) -> None:
    assert pg_store.engine.dialect.name == "postgresql"
    for path in BUNDLED:
        store.register(load_spec(path), source="test")
    export_workbook(store, tmp_path / "sqlite.xlsx")
    report = import_workbook(pg_store, tmp_path / "sqlite.xlsx")
    assert report.problems == [] and len(report.created) == 3
    export_workbook(pg_store, tmp_path / "pg.xlsx")
    assert cells(tmp_path / "pg.xlsx") == cells(tmp_path / "sqlite.xlsx")
    assert len(import_workbook(pg_store, tmp_path / "pg.xlsx").unchanged) == 3

    rows = [*two_resources(), *resource("102010002/000003", 信息资源格式类型="x" * 33)]  # longer than the column
    write_sheet(tmp_path / "bad.xlsx", rows)
    before = _snapshot(pg_store)
    bad = import_workbook(pg_store, tmp_path / "bad.xlsx", department=DEPT_A, department_name="上海市测试局")
    (p,) = bad.problems
    assert p.column == "信息资源格式类型" and "at most 32" in p.problem and _snapshot(pg_store) == before


# --- a big sheet -------------------------------------------------------------------------------

_BIG = r"""
import json, re, resource, sys, time
from pathlib import Path
from catalog.spreadsheet import export_workbook, import_workbook
from catalog.store import CatalogStore

def peak_mb():
    # VmHWM is this process image's own peak; ru_maxrss keeps the parent's (pytest's) peak across fork + exec.
    status = Path("/proc/self/status")
    if status.exists():
        return int(re.search(r"VmHWM:\s+(\d+)", status.read_text()).group(1)) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

store = CatalogStore(sys.argv[1])
started = time.perf_counter()
report = import_workbook(store, sys.argv[2], department=sys.argv[3], department_name="上海市测试局")
seconds = time.perf_counter() - started
exported = export_workbook(store, sys.argv[4])
again = import_workbook(store, sys.argv[4])
print(json.dumps({
    "created": len(report.created), "items": report.items, "problems": len(report.problems),
    "exported_rows": exported.rows, "unchanged": len(again.unchanged), "again_problems": len(again.problems),
    "peak_mb": peak_mb(), "import_seconds": seconds,
}))
"""


@pytest.mark.slow
def test_a_sheet_of_ten_thousand_rows_round_trips(tmp_path: Path) -> None:
    """10,000 rows (500 resources × 20 items), in a fresh process so its peak memory is its own."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("目录")
    ws.append(list(NATIONAL_COLUMNS))
    number = 0
    for r in range(500):
        for i in range(20):
            number += 1
            row = {
                **BASE,
                "序号": number,
                "信息资源代码": f"102010002/{r:06d}",
                "信息资源名称": f"资源{r}",
                "信息资源摘要": "本市企业年度报告的基本信息，" * 10,
                "信息项名称": f"信息项{i:02d}",
            }
            ws.append([row[c] for c in NATIONAL_COLUMNS])
    wb.save(tmp_path / "big.xlsx")
    url = f"sqlite:///{tmp_path / 'big.db'}"
    done = subprocess.run(
        [sys.executable, "-c", _BIG, url, str(tmp_path / "big.xlsx"), DEPT_A, str(tmp_path / "out.xlsx")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"10,000-row sheet: {result}")
    assert result["created"] == 500 and result["items"] == 10_000 and result["problems"] == 0
    assert result["exported_rows"] == 10_000 and result["unchanged"] == 500 and result["again_problems"] == 0
    # Memory is measured, not asserted (docs/benchmarks.md): ~120 MB peak, of which ~75 MB is the
    # interpreter with its imports; openpyxl's full (not read-only) model of this sheet alone peaks at ~175 MB.
