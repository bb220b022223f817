"""Helpers for the national cataloguing sheet tests: valid rows, sheets written with openpyxl, users."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook

from catalog.models import Department, User
from catalog.spreadsheet import NATIONAL_COLUMNS, PROVIDER_COLUMNS
from catalog.store import CatalogStore
from pipelines.identifiers import org_code_check_char, uscc_check_char

REPO = Path(__file__).resolve().parents[2]
BUNDLED = (
    REPO / "datasets/hrss/insured_persons.yaml",
    REPO / "datasets/market_regulation/enterprise_registry.yaml",
    REPO / "datasets/transport/bus_stops.yaml",
)


def gov_uscc(n: int) -> str:
    """A valid USCC of a government body (authority 1, type 1) in Shanghai."""
    org = f"{n:08d}"
    body = f"11310000{org}{org_code_check_char(org)}"
    return body + uscc_check_char(body)


DEPT_A = gov_uscc(1001)
DEPT_B = gov_uscc(1002)

#: One valid row (a data item of a conditional-share base resource).
BASE: dict[str, Any] = {
    "序号": 1,
    "部门类信息资源分类": "基础",
    "项分类": "法人",
    "目分类": "市场主体",
    "细目分类": "企业年报",
    "关联业务事项": "企业年度报告公示",
    "信息资源名称": "企业年度报告信息",
    "信息资源代码": "102010002/000001",
    "下设机构": "信用监管处",
    "信息资源摘要": "本市企业年度报告的基本信息",
    "信息资源格式分类": "电子表格",
    "信息资源格式类型": "xlsx",
    "其他类型资源格式描述": None,
    "信息项名称": "统一社会信用代码",
    "数据类型": "C",
    "数据长度": 18,
    "共享类型": "有条件共享",
    "共享条件/不予共享依据": "限于政府部门履行法定职责使用",
    "共享方式分类": "接口",
    "共享方式类型": "RESTful",
    "是否向社会开放": "否",
    "开放条件": None,
    "更新周期": "每年",
    "发布日期": "2024-05-01",
    "开放主题分类": None,
}


def resource(
    code: str, items: Sequence[tuple[str, str, int | None]] = (("统一社会信用代码", "C", 18),), **fields: Any
) -> list[dict[str, Any]]:
    """The rows of one resource: ``BASE`` with ``fields`` and the code, one row per item."""
    rows = []
    for title, type_code, length in items:
        row = {**BASE, **fields, "信息资源代码": code, "信息项名称": title, "数据类型": type_code, "数据长度": length}
        rows.append(row)
    return rows


def two_resources() -> list[dict[str, Any]]:
    """Two valid resources of three and two items."""
    return [
        *resource("102010002/000001", [("统一社会信用代码", "C", 18), ("企业名称", "C", 200), ("年报年度", "N", 4)]),
        *resource(
            "102010002/000002",
            [("统一社会信用代码", "C", 18), ("抽查日期", "D", None)],
            信息资源名称="企业抽查检查结果",
            共享类型="无条件共享",
            **{"共享条件/不予共享依据": None},
        ),
    ]


def write_sheet(
    path: Path,
    rows: Iterable[dict[str, Any] | Sequence[Any] | None],
    *,
    header: Sequence[Any] | None = None,
    above: Sequence[Sequence[Any]] = (),
    merges: Sequence[str] = (),
    title: str = "目录",
    extra_sheets: dict[str, list[list[Any]]] | None = None,
    provider: bool = False,
) -> Path:
    """Write a sheet (full openpyxl, so merges and formulas work): ``above`` rows, the header, the rows.

    A dict row is laid out by ``header`` (default: the national columns, plus the provider
    columns with ``provider``); ``None`` is a blank row.
    """
    columns = list(header) if header is not None else [*NATIONAL_COLUMNS, *(PROVIDER_COLUMNS if provider else ())]
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for values in above:
        ws.append(list(values))
    ws.append(columns)
    for row in rows:
        if row is None:
            ws.append([])
        elif isinstance(row, dict):
            ws.append([row.get(c) for c in columns])
        else:
            ws.append(list(row))
    for ref in merges:
        ws.merge_cells(ref)
    for name, sheet_rows in (extra_sheets or {}).items():
        other = wb.create_sheet(name)
        for values in sheet_rows:
            other.append(values)
    wb.save(path)
    return path


def cells(path: Path) -> list[list[Any]]:
    """Every cell value of the first sheet, row by row, each row as wide as the widest."""
    wb = load_workbook(path, read_only=True)
    try:
        rows = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
    finally:
        wb.close()
    width = max((len(r) for r in rows), default=0)
    return [r + [None] * (width - len(r)) for r in rows]


def add_department(store: CatalogStore, uscc: str, name: str) -> None:
    with store.session() as s:
        s.add(Department(uscc=uscc, name=name))


def add_user(store: CatalogStore, user_id: str, role: str, department: str | None) -> None:
    with store.session() as s:
        s.add(User(id=user_id, name=user_id, role=role, department_uscc=department))
