"""The national cataloguing spreadsheet (政务数据资源目录编制表): import it into the catalog, export the catalog as it.

Layout (DOMAIN.md): one row per data item (信息项), the resource fields repeated on every row of
the resource, in the columns of :data:`NATIONAL_COLUMNS`. What this module decides:

Export
  - A department's export is exactly the national layout (25 columns), header in row 1, one sheet
    named :data:`SHEET_TITLE`. The whole catalog is the same sheet with two columns appended after
    the national ones, :data:`PROVIDER_COLUMNS` (信息资源提供方, 提供方代码): one sheet keeps the rows
    sortable and filterable, and carries the department's USCC, which a sheet name could not.
  - Rows are sorted by resource code (not by entry id, which the sheet does not hold), data items
    by position; 序号 numbers the rows 1…N. Codes are written as text cells, 发布日期 as a date
    cell (``yyyy-mm-dd``), 数据长度 as a number, a text starting with ``=`` as text (never a formula).
  - 部门类信息资源分类 is written as the axis (基础/主题/部门), 信息资源格式分类 as its name, 数据类型 as
    the code letter, 是否向社会开放 as 是/否.
  - With a viewer (``--as``) only the entries it may see are exported (:func:`catalog.access.visibility_filter`).

Import
  - Every worksheet whose first rows hold the national header is read (title rows above the header
    and other sheets, e.g. 填表说明, are skipped and said so). Columns are found by their header
    (``*`` marks of required fields, spaces, line breaks and full-width forms are ignored), so a
    sheet with reordered columns is read (and said so); a missing, misspelt, duplicated or unknown
    column holding values is a problem naming the expected header.
  - The department is ``department`` (``--department USCC``), which must exist or be created from
    ``department_name``; a sheet with the provider columns names it on each row instead (a
    department it names that the catalog does not have is created from 信息资源提供方).
  - Rows are grouped by 信息资源代码; the rows of one resource must repeat the same resource fields
    and be adjacent. Blank rows between data rows (or rows with only a 序号) are ignored and
    counted in the notes. A vertically merged cell counts for every row it covers (as Excel shows
    it); a cell merged across columns is a problem. Formulas are refused (their value is not in the
    file for certain): paste values. Cells are trimmed (also full-width spaces); code columns are
    read half-width (``１０１…`` → ``101…``).
  - A new entry gets the id ``res_<classification code>_<sequence>`` (``101030002/000112`` →
    ``res_101030002_000112``), ``origin="import"``, status draft. An existing entry is found by
    its resource code and updated in place: re-importing the same sheet changes nothing (the report
    says "unchanged"). Its status, related resources (关联资源代码, not in the layout) and the data
    items' attributes the sheet does not hold (English name, key, nullable, sensitivity, masking,
    item-level share type, code set, description) are kept for items matched by 信息项名称. A new
    data item is named ``item_01``… by position, or by its 信息项名称 when that is an ASCII identifier.
  - An entry made from a dataset spec (origin ``spec``) is never changed by an import: the next run
    of its pipeline registers it from the spec again. When the sheet holds it unchanged (an export
    imported back) it counts as unchanged; when the sheet changes it, that is a problem whose fix
    is to edit the spec. An entry of another department with the same resource code is a problem.
  - The classification tree grows as :meth:`catalog.store.CatalogStore.register` grows it
    (:func:`catalog.classification.tree_nodes`); a code the tree (or an earlier row) names
    otherwise is a problem.
  - 共享类型 and 共享条件/不予共享依据 are the resource's (the same on every row); a data item's own,
    narrower share type has no column in the layout.
  - Every problem is collected (row as Excel shows it, column name and letter, what is wrong, the
    fix) and nothing is written while there is one. With ``partial`` the entries whose rows are all
    valid are written and the others reported; problems of a sheet's header keep that whole sheet out.
  - Who may import: the local operator (no ``--as``) and city admins, for any department; staff and
    department admins, for their own department only; auditors never. Only a city admin (or the
    operator) adds a department. Each entry created or changed and each department added is written
    to the audit log (``catalog.import_create``, ``catalog.import_update``, ``catalog.department_add``).
  - There is no ``--force`` over an entry made from a spec: whatever it wrote would be undone,
    silently, by the next run of the pipeline. The spec is where such an entry is changed.

What a dataset spec holds that the layout cannot: the data items' English names and their key,
nullable, sensitivity, masking, item-level share type, code set and description; 关联资源代码; the
department's region and level; the cleansing and quality rules. An export → import round trip
keeps every cell of the sheet, not these.

The workbook is read with openpyxl in read-only mode and written in write-only mode, so a sheet of
tens of thousands of rows streams through in a few tens of megabytes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import logging
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter, range_boundaries
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from catalog.access import OPERATOR, Role, Viewer, visibility_filter
from catalog.classification import AXIS_BY_DIGIT, LEVEL_NAMES, ResourceCodeError, parse_resource_code, tree_nodes
from catalog.models import ClassificationNode, DataItem, Department, Entry
from catalog.store import CatalogStore
from exchange import audit
from pipelines.errors import SpecError, TerminalError
from pipelines.identifiers import uscc_problem
from pipelines.spec import (
    AXIS_DIGITS,
    SHARE_TYPE_ALIASES,
    ClassificationAxis,
    FormatCategory,
    ShareMethod,
    ShareType,
    UpdateCycle,
)

__all__ = [
    "NATIONAL_COLUMNS",
    "PROVIDER_COLUMNS",
    "SHEET_TITLE",
    "ExportReport",
    "ImportReport",
    "Problem",
    "entry_id_for",
    "export_workbook",
    "import_workbook",
]

log = logging.getLogger(__name__)

#: The national layout's columns, in order.
NATIONAL_COLUMNS: tuple[str, ...] = (
    "序号",
    "部门类信息资源分类",
    "项分类",
    "目分类",
    "细目分类",
    "关联业务事项",
    "信息资源名称",
    "信息资源代码",
    "下设机构",
    "信息资源摘要",
    "信息资源格式分类",
    "信息资源格式类型",
    "其他类型资源格式描述",
    "信息项名称",
    "数据类型",
    "数据长度",
    "共享类型",
    "共享条件/不予共享依据",
    "共享方式分类",
    "共享方式类型",
    "是否向社会开放",
    "开放条件",
    "更新周期",
    "发布日期",
    "开放主题分类",
)
#: Appended after the national columns in an export of the whole catalog (several departments).
PROVIDER_COLUMNS: tuple[str, ...] = ("信息资源提供方", "提供方代码")
SHEET_TITLE = "政务数据资源目录"

_ITEM_COLUMNS = ("信息项名称", "数据类型", "数据长度")
_IGNORED = "序号"  # renumbered on export; a pre-numbered empty template row is a blank row
_RESOURCE_COLUMNS = tuple(c for c in (*NATIONAL_COLUMNS, *PROVIDER_COLUMNS) if c not in (*_ITEM_COLUMNS, _IGNORED))
_HEADER_SCAN_ROWS = 20  # the header is looked for in a sheet's first rows
_MAX_CELL = 32_767  # Excel's limit of characters in a cell
_SPACES = " \t\r\n\u3000\u00a0\u2002\u2003\u2009\ufeff"
_INNER_SPACE = re.compile(r"\s+")
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_MERGE_REF = re.compile(rb'<(?:\w+:)?mergeCell\b[^>]*?\bref="([^"]+)"')
_SHEETDATA_END = re.compile(rb"</(?:\w+:)?sheetData>|<(?:\w+:)?sheetData\s*/>")
_ID_PREFIX = "res_"


def entry_id_for(resource_code: str) -> str:
    """The id of an entry created by an import: ``res_`` + the code with ``/`` as ``_``."""
    code = parse_resource_code(resource_code)
    return f"{_ID_PREFIX}{code.classification}_{code.sequence}"


# --- reports -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the sheet: where (sheet, Excel row, column name and letter), what, and the fix."""

    sheet: str | None
    row: int | None
    column: str | None
    letter: str | None
    problem: str
    fix: str
    resource_code: str | None = None

    @property
    def cell(self) -> str:
        """``H5``, ``row 5``, ``column H`` or ``-``."""
        if self.letter and self.row:
            return f"{self.letter}{self.row}"
        if self.row:
            return f"row {self.row}"
        return f"column {self.letter}" if self.letter else "-"

    def as_dict(self) -> dict[str, Any]:
        return {
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "letter": self.letter,
            "problem": self.problem,
            "fix": self.fix,
            "resource_code": self.resource_code,
        }

    def __str__(self) -> str:
        where = f"[{self.sheet}] " if self.sheet else ""
        col = f" {self.column}" if self.column else ""
        return f"{where}{self.cell}{col}: {self.problem} → {self.fix}"


@dataclass
class ImportReport:
    """What an import read, wrote and refused."""

    file: str
    partial: bool
    sheets: list[str] = field(default_factory=list)
    rows: int = 0  # data rows read (one per data item)
    created: list[str] = field(default_factory=list)  # entry ids
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # resource codes (or cells) not imported
    items: int = 0  # data items of the created and updated entries
    departments_created: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def written(self) -> bool:
        """Whether the import changed the catalog."""
        return bool(self.created or self.updated or self.departments_created)

    @property
    def blocked(self) -> bool:
        """Nothing was imported because of problems."""
        return bool(self.problems) and not (self.created or self.updated or self.unchanged)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "partial": self.partial,
            "sheets": self.sheets,
            "rows": self.rows,
            "entries": {
                "created": self.created,
                "updated": self.updated,
                "unchanged": self.unchanged,
                "refused": self.refused,
            },
            "items": self.items,
            "departments_created": self.departments_created,
            "imported": not self.blocked,
            "problems": [p.as_dict() for p in self.problems],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote."""

    path: str
    entries: int
    rows: int
    departments: list[str]
    provider_columns: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "entries": self.entries,
            "rows": self.rows,
            "departments": self.departments,
            "provider_columns": self.provider_columns,
        }


# --- values ------------------------------------------------------------------------------------


class _Bad(Exception):
    """A cell value that cannot be read: what is wrong and how to fix it."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


def _nearest(text: str, choices: Iterable[str], cutoff: float = 0.4) -> str | None:
    found = difflib.get_close_matches(text, list(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def _number_text(value: float) -> str:
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return format(value, ".15g")


def _show(value: object, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _enum_bad(what: str, text: str, valid: Sequence[str], accepted: Iterable[str]) -> _Bad:
    near = _nearest(text, accepted)
    hint = f"did you mean {near!r}? " if near else ""
    return _Bad(f"{_show(text)} is not a valid {what}", f"{hint}write one of: {', '.join(valid)}")


def _no_date(value: object) -> None:
    if isinstance(value, dt.date | dt.time | dt.timedelta):
        raise _Bad(
            f"a date/time cell ({value}) where text is expected",
            "format the cell as Text (文本) and type the value again",
        )
    if isinstance(value, bool):
        raise _Bad("a TRUE/FALSE cell where text is expected", "format the cell as Text (文本) and type the value")


def _text(limit: int | None) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        _no_date(value)
        text = _number_text(float(value)) if isinstance(value, int | float) else str(value)
        if limit is not None and len(text) > limit:
            raise _Bad(f"has {len(text)} characters; the catalog keeps at most {limit}", f"shorten it to {limit}")
        return text

    return parse


def _axis(value: Any) -> ClassificationAxis:
    _no_date(value)
    text = _number_text(float(value)) if isinstance(value, int | float) else str(value)
    core = text.removesuffix("类").removesuffix("信息资源").removesuffix("类")
    if core in AXIS_BY_DIGIT:
        return AXIS_BY_DIGIT[core]
    with contextlib.suppress(ValueError):
        return ClassificationAxis(core)
    both = re.fullmatch(r"([123])[-.、:：]?(基础|主题|部门)", core)
    if both:
        axis = ClassificationAxis(both.group(2))
        if AXIS_DIGITS[axis] != both.group(1):
            raise _Bad(
                f"{_show(text)}: 类 {both.group(1)} is {AXIS_BY_DIGIT[both.group(1)].value}, not {axis.value}",
                "write 1 基础, 2 主题 or 3 部门 (or just the name)",
            )
        return axis
    raise _enum_bad(
        "classification axis (类)", text, ["基础", "主题", "部门", "or the 类 digit 1, 2, 3"], ["基础", "主题", "部门"]
    )


_FORMATS = list(FormatCategory)


def _format_category(value: Any) -> FormatCategory:
    _no_date(value)
    text = _number_text(float(value)) if isinstance(value, int | float) else str(value)
    if text.isdigit() and 1 <= int(text) <= len(_FORMATS):
        return _FORMATS[int(text) - 1]
    with contextlib.suppress(ValueError):
        return FormatCategory(text)
    both = re.fullmatch(r"([1-7])[-.、:：]?(\D+)", text)
    if both and both.group(2) in {f.value for f in _FORMATS}:
        category = FormatCategory(both.group(2))
        if _FORMATS.index(category) + 1 != int(both.group(1)):
            raise _Bad(
                f"{_show(text)}: category {both.group(1)} is {_FORMATS[int(both.group(1)) - 1].value}, "
                f"not {category.value}",
                "write the code (1–7) or the name: " + ", ".join(f"{i} {f.value}" for i, f in enumerate(_FORMATS, 1)),
            )
        return category
    raise _enum_bad(
        "format category (信息资源格式分类)",
        text,
        [f"{i} {f.value}" for i, f in enumerate(_FORMATS, 1)],
        [f.value for f in _FORMATS],
    )


#: 数据类型: the code letters and the names they go by.
DATA_TYPE_NAMES: dict[str, str] = {
    "C": "字符型",
    "N": "数值型",
    "Y": "货币型",
    "D": "日期型",
    "T": "日期时间型",
    "L": "逻辑型",
    "M": "备注型",
    "G": "通用型",
    "B": "双精度型",
    "I": "整型",
    "F": "浮点型",
}
_DATA_TYPES: dict[str, str] = {
    **{code: code for code in DATA_TYPE_NAMES},
    **{name: code for code, name in DATA_TYPE_NAMES.items()},
    **{name.removesuffix("型"): code for code, name in DATA_TYPE_NAMES.items()},
    "整数型": "I",
    "整数": "I",
    "字符串": "C",
}


def _data_type(value: Any) -> str:
    _no_date(value)
    text = str(value)
    code = _DATA_TYPES.get(text.upper() if len(text) == 1 else text)
    if code is None:
        raise _enum_bad(
            "data type (数据类型)",
            text,
            [f"{c} {n}" for c, n in DATA_TYPE_NAMES.items()],
            [*DATA_TYPE_NAMES.values(), *DATA_TYPE_NAMES],
        )
    return code


def _length(value: Any) -> int:
    _no_date(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        match = re.fullmatch(r"(\d+)(?:\.0+)?", value)
        if match:
            value = int(match.group(1))
    if not isinstance(value, int) or value <= 0:
        raise _Bad(
            f"{_show(value)} is not a positive whole number",
            "write the length as a whole number above 0 (e.g. 18), or leave it empty",
        )
    if value > 2_147_483_647:
        raise _Bad(f"{value} is too large", "write a length below 2147483648")
    return value


_SHARE_TYPES = {**SHARE_TYPE_ALIASES}


def _share_type(value: Any) -> ShareType:
    _no_date(value)
    text = str(value)
    found = _SHARE_TYPES.get(text)
    if found is None:
        raise _enum_bad(
            "share type (共享类型)",
            text,
            ["无条件共享", "有条件共享", "不予共享 (or 授权共享, 非共享)"],
            [k for k in _SHARE_TYPES if not k.isascii()],
        )
    return found


_SHARE_METHODS: dict[str, ShareMethod] = {
    **{m.value: m for m in ShareMethod},
    "库表": ShareMethod.DATABASE,
    "库表交换": ShareMethod.DATABASE,
    "数据库交换": ShareMethod.DATABASE,
    "文件交换": ShareMethod.FILE,
    "文件下载": ShareMethod.FILE,
    "接口服务": ShareMethod.API,
    "服务接口": ShareMethod.API,
    "API": ShareMethod.API,
}


def _share_method(value: Any) -> ShareMethod:
    _no_date(value)
    text = str(value)
    found = _SHARE_METHODS.get(text.upper() if text.isascii() else text)
    if found is None:
        raise _enum_bad("share method (共享方式分类)", text, [m.value for m in ShareMethod], list(_SHARE_METHODS))
    return found


_YES = {"是", "Y", "YES", "TRUE", "1"}
_NO = {"否", "N", "NO", "FALSE", "0"}


def _open(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    _no_date(value)
    text = _number_text(float(value)) if isinstance(value, int | float) else str(value).upper()
    if text in _YES:
        return True
    if text in _NO:
        return False
    raise _Bad(f"{_show(value)} is not 是 or 否", "write 是 (open to the public) or 否")


_CYCLES: dict[str, UpdateCycle] = {
    **{c.value: c for c in UpdateCycle},
    "每天": UpdateCycle.DAILY,
    "每星期": UpdateCycle.WEEKLY,
    "每月度": UpdateCycle.MONTHLY,
    "月度": UpdateCycle.MONTHLY,
    "每季": UpdateCycle.QUARTERLY,
    "季度": UpdateCycle.QUARTERLY,
    "每半年": UpdateCycle.HALF_YEARLY,
    "半年度": UpdateCycle.HALF_YEARLY,
    "每年度": UpdateCycle.YEARLY,
    "年度": UpdateCycle.YEARLY,
}


def _cycle(value: Any) -> UpdateCycle:
    _no_date(value)
    text = str(value)
    found = _CYCLES.get(text)
    if found is None:
        raise _enum_bad("update cycle (更新周期)", text, [c.value for c in UpdateCycle], list(_CYCLES))
    return found


_DATE_TEXT = re.compile(r"(\d{4})(?:[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{2})(\d{2}))")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise _Bad(
            f"{_show(value)} is a number, not a date",
            "format the cell as a date, or type the date as text YYYY-MM-DD (e.g. 2024-05-01)",
        )
    match = _DATE_TEXT.fullmatch(value.split("T")[0].split(" ")[0])
    if match:
        year, month, day = match.group(1), match.group(2) or match.group(4), match.group(3) or match.group(5)
        with contextlib.suppress(ValueError):
            return dt.date(int(year), int(month), int(day))
    raise _Bad(f"{_show(value)} is not a date", "write the date as YYYY-MM-DD (e.g. 2024-05-01), or leave it empty")


def _resource_code(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise _Bad(
            f"typed as a number ({_number_text(float(value))}): Excel drops leading zeros and cannot hold the '/'",
            "format the column as Text (文本) and type the code again in full, e.g. 101030002/000112",
        )
    _no_date(value)
    try:
        code = parse_resource_code(str(value))
    except ResourceCodeError as exc:
        raise _Bad(str(exc), "write 类 (1 digit) + 项 (2) + 目 (3) (+ 细目) digits, '/', the sequence number") from None
    if len(code.classification) > 32 or len(str(code)) > 64:
        raise _Bad(
            f"{_show(str(code))} is too long: the catalog keeps classification codes of up to 32 digits and resource "
            "codes of up to 64 characters",
            "shorten the 细目 digits or the sequence number",
        )
    return str(code)


def _uscc(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise _Bad(
            f"typed as a number ({_number_text(float(value))}): Excel keeps only 15 digits",
            "format the column as Text (文本) and type the 18-character code again",
        )
    _no_date(value)
    text = str(value).upper()
    problem = uscc_problem(text)
    if problem:
        raise _Bad(f"{_show(text)} is not a valid USCC: {problem}", "write the department's 统一社会信用代码")
    return text


@dataclass(frozen=True)
class _Col:
    parse: Callable[[Any], Any]
    required: bool = False
    code: bool = False  # read half-width, without inner spaces


_COLUMNS: dict[str, _Col] = {
    "序号": _Col(_text(None)),
    "部门类信息资源分类": _Col(_axis, required=True, code=True),
    "项分类": _Col(_text(200), required=True),
    "目分类": _Col(_text(200)),
    "细目分类": _Col(_text(200)),
    "关联业务事项": _Col(_text(None)),
    "信息资源名称": _Col(_text(300), required=True),
    "信息资源代码": _Col(_resource_code, required=True, code=True),
    "下设机构": _Col(_text(200)),
    "信息资源摘要": _Col(_text(None), required=True),
    "信息资源格式分类": _Col(_format_category, required=True, code=True),
    "信息资源格式类型": _Col(_text(32), required=True),
    "其他类型资源格式描述": _Col(_text(None)),
    "信息项名称": _Col(_text(200), required=True),
    "数据类型": _Col(_data_type, required=True, code=True),
    "数据长度": _Col(_length, code=True),
    "共享类型": _Col(_share_type, required=True, code=True),
    "共享条件/不予共享依据": _Col(_text(None)),
    "共享方式分类": _Col(_share_method, required=True, code=True),
    "共享方式类型": _Col(_text(64)),
    "是否向社会开放": _Col(_open, required=True, code=True),
    "开放条件": _Col(_text(None)),
    "更新周期": _Col(_cycle, required=True, code=True),
    "发布日期": _Col(_date, code=True),
    "开放主题分类": _Col(_text(100)),
    "信息资源提供方": _Col(_text(200), required=True),
    "提供方代码": _Col(_uscc, required=True, code=True),
}
_REQUIRED_FIX = {
    "部门类信息资源分类": "write 基础, 主题 or 部门 (or 1, 2, 3)",
    "项分类": "write the 项 (second level) of the classification, e.g. 人口",
    "信息资源名称": "write the resource's name",
    "信息资源代码": "write the resource code, e.g. 101030002/000112, on every row of the resource",
    "信息资源摘要": "write what the resource holds",
    "信息资源格式分类": "write the format category: " + ", ".join(f"{i} {f.value}" for i, f in enumerate(_FORMATS, 1)),
    "信息资源格式类型": "write the format, e.g. xlsx, MySQL, Parquet",
    "信息项名称": "write the data item's name (every row is one data item)",
    "数据类型": "write the type code: " + ", ".join(f"{c} {n}" for c, n in DATA_TYPE_NAMES.items()),
    "共享类型": "write 无条件共享, 有条件共享 or 不予共享",
    "共享方式分类": "write 数据库, 文件 or 接口",
    "是否向社会开放": "write 是 or 否",
    "更新周期": "write one of: " + ", ".join(c.value for c in UpdateCycle),
    "信息资源提供方": "write the department's name",
    "提供方代码": "write the department's 统一社会信用代码",
}


def _norm_header(value: Any) -> str:
    text = unicodedata.normalize("NFKC", "" if value is None else str(value))
    text = _INNER_SPACE.sub("", text).strip("*")
    for mark in ("(必填)", "(选填)", "(必填项)", "(选填项)"):
        text = text.replace(mark, "")
    return text.strip("*")


_HEADERS: dict[str, str] = {_norm_header(h): h for h in (*NATIONAL_COLUMNS, *PROVIDER_COLUMNS)}
_HEADERS.update(
    {
        "共享条件/不予共享的依据": "共享条件/不予共享依据",
        "共享条件或不予共享依据": "共享条件/不予共享依据",
        "共享条件(不予共享依据)": "共享条件/不予共享依据",
    }
)


# --- reading the workbook ----------------------------------------------------------------------


def _check_file(path: Path) -> None:
    from connectors.xlsx import workbook_kind

    found = workbook_kind(path)
    if found == "missing":
        raise TerminalError(f"{path}: file not found", hint="give the path of the .xlsx workbook to import")
    if found == "directory":
        raise TerminalError(f"{path}: is a directory, not a workbook", hint="give the path of the .xlsx file")
    if found == "empty":
        raise TerminalError(f"{path}: the file is empty (0 bytes)", hint="export the sheet again as .xlsx")
    if found == "ole2":
        raise TerminalError(
            f"{path}: an Excel 97-2003 .xls file (or a password-protected workbook), which cannot be read",
            hint="open it in Excel or WPS and save it as .xlsx (Excel 工作簿) without a password",
        )
    if found == "not_zip":
        with path.open("rb") as fh:
            head = fh.read(8)
        kind = "a CSV or text file" if path.suffix.lower() in (".csv", ".txt") or _looks_textual(head) else "not xlsx"
        raise TerminalError(
            f"{path}: {kind}, not an Excel .xlsx workbook",
            hint="open it in Excel or WPS and save it as .xlsx (Excel 工作簿); the national sheet is imported as xlsx only",
        )


def _looks_textual(head: bytes) -> bool:
    return all(b >= 0x09 for b in head)


def _merged_ranges(ws: Any) -> list[tuple[int, int, int, int]]:
    """The merged ranges of a read-only sheet (min_col, min_row, max_col, max_row), read from its XML.

    Read-only openpyxl does not load them; they follow the cell data, so the XML is scanned
    (without parsing the cells) up to ``</sheetData>`` and the rest read.
    """
    found: list[tuple[int, int, int, int]] = []
    with ws._get_source() as src:  # openpyxl's own accessor of the sheet's XML in the archive
        tail = b""
        rest: bytes | None = None
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            window = tail + chunk
            match = _SHEETDATA_END.search(window)
            if match:
                rest = window[match.end() :] + src.read()
                break
            tail = window[-64:]
    for ref in _MERGE_REF.findall(rest or b""):
        with contextlib.suppress(ValueError, TypeError):
            min_col, min_row, max_col, max_row = range_boundaries(ref.decode("ascii"))
            if None not in (min_col, min_row, max_col, max_row):
                found.append((int(min_col), int(min_row), int(max_col), int(max_row)))  # type: ignore[arg-type]
    return found


def _ref(min_col: int, min_row: int, max_col: int, max_row: int) -> str:
    return f"{get_column_letter(min_col)}{min_row}:{get_column_letter(max_col)}{max_row}"


@dataclass
class _Row:
    """The first row of a resource, parsed: each column's value, its text, and the columns with a problem."""

    sheet: str
    number: int
    values: dict[str, Any]
    raw: dict[str, str]  # the (trimmed) text of each non-empty cell, to show and to compare unreadable values
    bad: set[str]


@dataclass(frozen=True)
class _Item:
    """One data row's data item and where it is."""

    sheet: str
    number: int
    ordinal: int  # position among all data rows read (the adjacency check)
    title: str | None
    type_code: str | None
    length: int | None


@dataclass
class _Group:
    """The rows of one resource code (or of one unreadable code, or one row without a code)."""

    key: str
    code: str | None  # the valid resource code
    first: _Row
    items: list[_Item] = field(default_factory=list)
    titles: dict[str, int] = field(default_factory=dict)
    problems: int = 0


@dataclass
class _Sheet:
    """A worksheet read as a catalog sheet: where its header is and which column is which."""

    name: str
    header_row: int
    columns: dict[int, str]  # column index (0-based) → national column name
    provider: bool  # has the provider columns
    texts: dict[int, str] = field(default_factory=dict)  # column index → its header text, as written
    fatal: bool = False  # its header has problems: none of its rows is imported
    index: dict[str, int] = field(init=False)  # national column name → column index
    repeated: tuple[str, ...] = field(init=False)  # the resource columns the sheet has (repeated on each row)

    def __post_init__(self) -> None:
        self.index = {name: i for i, name in self.columns.items()}
        self.repeated = tuple(c for c in _RESOURCE_COLUMNS if c in self.index)


_Pending = tuple[str | None, int | None, str, str]  # column name, column index (None: by name), problem, fix


class _Reader:
    """Reads the catalog sheets of one workbook into groups of rows, collecting every problem."""

    def __init__(self, path: Path, report: ImportReport) -> None:
        self.path = path
        self.report = report
        self.sheets: dict[str, _Sheet] = {}
        self.groups: dict[str, _Group] = {}
        self.ordinal = 0
        self.trimmed = 0
        self.halfwidth: list[str] = []
        self.first_filled: tuple[str, int, list[Any]] | None = None

    def problem(
        self,
        sheet: str | None,
        row: int | None,
        column: str | None,
        index: int | None,
        problem: str,
        fix: str,
        group: _Group | None = None,
    ) -> None:
        if index is None and column is not None and sheet in self.sheets:
            index = self.sheets[sheet].index.get(column)
        letter = get_column_letter(index + 1) if index is not None else None
        key = (group.code or group.key) if group is not None else None
        self.report.problems.append(Problem(sheet, row, column, letter, problem, fix, key))
        if group is not None:
            group.problems += 1

    # the workbook ----------------------------------------------------------------------------

    def read(self) -> None:
        with self.path.open("rb") as fh:
            try:
                wb = load_workbook(fh, read_only=True, data_only=False)
            except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, OSError) as exc:
                raise TerminalError(
                    f"{self.path}: not an Excel .xlsx workbook ({type(exc).__name__}: {exc})",
                    hint="open it in Excel or WPS and save it as .xlsx (Excel 工作簿)",
                ) from exc
            try:
                for ws in wb.worksheets:
                    if hasattr(ws, "iter_rows"):  # not a chart sheet
                        self._sheet(ws)
            except (zipfile.BadZipFile, zlib.error, EOFError, SyntaxError) as exc:  # XML ParseErrors are SyntaxErrors
                raise TerminalError(
                    f"{self.path}: the workbook is damaged and cannot be read to the end ({type(exc).__name__}: {exc})",
                    hint="open it in Excel or WPS, save it again as .xlsx, and import again",
                ) from exc
            finally:
                wb.close()
        if self.sheets:
            return
        if self.first_filled is None:
            raise TerminalError(
                f"{self.path}: the workbook is empty",
                hint="fill in the national sheet: a header row (" + ", ".join(NATIONAL_COLUMNS[:3]) + ", …) and one "
                "row per data item; `govdata catalog export --department USCC --output FILE` writes one to start from",
            )
        sheet, number, cells = self.first_filled
        seen = ", ".join(_show(_value(c), 20) for c in cells if _value(c) is not None)
        self.problem(
            sheet,
            number,
            None,
            None,
            f"no sheet has the header row of the national layout (the first filled row holds {seen})",
            "put the national headers in one row, in this order: " + ", ".join(NATIONAL_COLUMNS),
        )

    def _sheet(self, ws: Any) -> None:
        name = str(ws.title)
        ws.reset_dimensions()  # the stored dimension can be wrong: read every cell there is
        rows = enumerate(ws.iter_rows(), start=1)
        head: list[tuple[int, list[Any]]] = []
        header_at: int | None = None
        for number, cells_t in rows:
            cells = list(cells_t)
            head.append((number, cells))
            if any(_value(c) is not None for c in cells):
                if self.first_filled is None:
                    self.first_filled = (name, number, cells)
                if sum(1 for c in cells if _norm_header(_value(c)) in _HEADERS) >= 3:
                    header_at = number
                    break
            if len(head) >= _HEADER_SCAN_ROWS:
                break
        if header_at is None:
            if any(any(_value(c) is not None for c in cells) for _, cells in head):
                self.report.notes.append(
                    f"sheet {name!r} was not read: none of its first {_HEADER_SCAN_ROWS} rows holds the national headers"
                )
            return
        self.report.sheets.append(name)
        before = len(self.report.problems)
        above = {number: cells for number, cells in head if number < header_at}
        fill_from, across, from_above = self._merges(name, header_at, _merged_ranges(ws), above)
        sheet, reported = self._header(name, header_at, head[-1][1], from_above)
        self.sheets[name] = sheet
        if len(self.report.problems) > before:
            sheet.fatal = True
        if header_at > 1:
            above_rows = "row 1" if header_at == 2 else f"rows 1–{header_at - 1}"
            self.report.notes.append(f"sheet {name!r}: {above_rows} above the header skipped as titles")
        self._data(sheet, rows, fill_from, across, reported)

    def _merges(
        self,
        sheet: str,
        header_at: int,
        merges: list[tuple[int, int, int, int]],
        above: dict[int, list[Any]],
    ) -> tuple[dict[tuple[int, int], int], dict[int, list[tuple[str, int, int]]], dict[int, Any]]:
        """Vertical merges in the data (fill down), merges across columns (problems), header cells merged down."""
        fill_from: dict[tuple[int, int], int] = {}  # (column index, first row) → last row
        across: dict[int, list[tuple[str, int, int]]] = {}  # row → (range, first row, first column index)
        from_above: dict[int, Any] = {}  # column index → the header text of a header cell merged down from above
        down = 0
        for min_col, min_row, max_col, max_row in merges:
            ref = _ref(min_col, min_row, max_col, max_row)
            if max_row < header_at:
                continue  # a title above the header
            if min_row <= header_at:
                if min_col == max_col and max_row == header_at:
                    top = above.get(min_row, [])
                    if min_col - 1 < len(top):
                        from_above[min_col - 1] = _value(top[min_col - 1])
                    continue  # a two-row header: the name is in the merged cell's first row
                self.problem(
                    sheet,
                    header_at,
                    None,
                    min_col - 1,
                    f"header cells {ref} are merged "
                    + ("into the data rows" if max_row > header_at else "across columns"),
                    "unmerge them: every column needs its own header cell, and the data starts in the row below",
                )
            elif min_col == max_col:
                fill_from[(min_col - 1, min_row)] = max_row
                down += 1
            else:
                for r in range(min_row, max_row + 1):
                    across.setdefault(r, []).append((ref, min_row, min_col - 1))
        if down:
            self.report.notes.append(
                f"sheet {sheet!r}: {down} vertically merged cell range(s) read as their value on every row they cover"
            )
        return fill_from, across, from_above

    def _header(
        self, name: str, header_at: int, cells: list[Any], from_above: dict[int, Any]
    ) -> tuple[_Sheet, set[int]]:
        """Which column is which; report missing, misspelt and duplicated headers."""
        columns: dict[int, str] = {}
        first_at: dict[str, int] = {}
        unknown: list[tuple[int, str]] = []
        reported: set[int] = set()
        texts: dict[int, str] = {}
        for i in range(max(len(cells), max(from_above, default=-1) + 1)):
            value = _value(cells[i]) if i < len(cells) else None
            if value is None:
                value = from_above.get(i)
            if value is None:
                continue
            texts[i] = str(value)
            column = _HEADERS.get(_norm_header(value))
            if column is None:
                unknown.append((i, str(value)))
            elif column in first_at:
                reported.add(i)
                self.problem(
                    name,
                    header_at,
                    column,
                    i,
                    f"header {column!r} appears twice (columns {get_column_letter(first_at[column] + 1)} and "
                    f"{get_column_letter(i + 1)})",
                    "delete one of the two columns, or rename it to the national header it should be",
                )
            else:
                first_at[column] = i
                columns[i] = column
        provider = any(c in first_at for c in PROVIDER_COLUMNS)
        expected = [*NATIONAL_COLUMNS, *(PROVIDER_COLUMNS if provider else ())]
        missing = [c for c in expected if c not in first_at]
        for i, text in unknown:
            near = _nearest(_norm_header(text), [_norm_header(m) for m in missing], cutoff=0.5)
            if near is None:
                continue  # an unknown column is a problem only when it holds values (see _data)
            column = _HEADERS[near]
            missing.remove(column)
            reported.add(i)
            self.problem(
                name,
                header_at,
                text,
                i,
                f"header {_show(text, 30)} is not a national column; expected {column!r}",
                f"rename the header to {column!r}",
            )
        for column in missing:
            position = expected.index(column)
            after = f" after {expected[position - 1]!r}" if position else " as the first column"
            self.problem(
                name,
                header_at,
                column,
                None,
                f"column {column!r} is missing (the national layout has it as column {get_column_letter(position + 1)})",
                f"insert a column headed {column!r}{after}",
            )
        order = [columns[i] for i in sorted(columns)]
        if not missing and order != expected:
            self.report.notes.append(
                f"sheet {name!r}: the columns are not in the national order; read by their headers"
            )
        return _Sheet(name, header_at, columns, provider, texts), reported

    def _data(
        self,
        sheet: _Sheet,
        rows: Iterator[tuple[int, Any]],
        fill_from: dict[tuple[int, int], int],
        across: dict[int, list[tuple[str, int, int]]],
        reported: set[int],
    ) -> None:
        carry: dict[int, tuple[int, Any]] = {}  # column index → (last row, first cell) of a merge being filled down
        blank: list[int] = []
        last = sheet.header_row
        unknown: dict[int, list[int]] = {}
        for number, cells_t in rows:
            cells = list(cells_t)
            own = [i for i, c in enumerate(cells) if _value(c) is not None]
            for i in own:
                end = fill_from.get((i, number))
                if end is not None:
                    carry[i] = (end, cells[i])
            for i, (end, cell) in list(carry.items()):
                if number > end:
                    del carry[i]
                    continue
                if i >= len(cells):
                    cells.extend([None] * (i + 1 - len(cells)))
                if _value(cells[i]) is None:
                    cells[i] = cell
            if all(sheet.columns.get(i) == _IGNORED for i in own):  # nothing, or only a 序号
                blank.append(number)
                continue
            last = number
            for i in own:
                if i not in sheet.columns and i not in reported:
                    unknown.setdefault(i, []).append(number)
            self._row(sheet, number, cells, across.get(number, []))
        inside = [b for b in blank if b < last]
        if inside:
            self.report.notes.append(
                f"sheet {sheet.name!r}: {len(inside)} blank row(s) between the data ignored "
                f"({'row' if len(inside) == 1 else 'rows'} {_row_list(inside)})"
            )
        for i, numbers in sorted(unknown.items()):
            header = sheet.texts.get(i, "")
            what = (
                f"column {get_column_letter(i + 1)} ({_show(header, 30)}) is not a column of the national layout"
                if header
                else f"column {get_column_letter(i + 1)} has no header"
            )
            self.problem(
                sheet.name,
                sheet.header_row,
                header or None,
                i,
                f"{what}, but it holds values in {len(numbers)} row(s) (first: row {numbers[0]}); they would be lost",
                "delete the column, or move its values into the national column they belong to",
            )
            sheet.fatal = True

    # rows ------------------------------------------------------------------------------------

    def _row(self, sheet: _Sheet, number: int, cells: list[Any], across: list[tuple[str, int, int]]) -> None:
        self.report.rows += 1
        self.ordinal += 1
        values: dict[str, Any] = {}
        raw: dict[str, str] = {}
        pending: list[_Pending] = []
        for i, name in sheet.columns.items():
            if name == _IGNORED:
                continue
            cell = cells[i] if i < len(cells) else None
            spec = _COLUMNS[name]
            value = _value(cell)
            kind = getattr(cell, "data_type", None)
            if kind == "f":
                raw[name] = str(value)
                pending.append((name, i, f"a formula ({_show(value)})", "replace it by its value (copy, paste values)"))
                continue
            if kind == "e":
                raw[name] = str(value)
                pending.append((name, i, f"the cell shows the Excel error {value}", "type the value"))
                continue
            if isinstance(value, str):
                text = value.strip(_SPACES)
                if text != value:
                    self.trimmed += 1
                if spec.code:
                    half = unicodedata.normalize("NFKC", text)
                    if half != text:
                        self.halfwidth.append(f"{get_column_letter(i + 1)}{number}")
                    text = _INNER_SPACE.sub("", half)
                value = text or None
            if value is None:
                if spec.required:
                    pending.append((name, i, "is empty", _REQUIRED_FIX[name]))
                continue
            raw[name] = value if isinstance(value, str) else str(value)
            try:
                values[name] = spec.parse(value)
            except _Bad as bad:
                pending.append((name, i, bad.problem, bad.fix))
        share = values.get("共享类型")
        if share in (ShareType.CONDITIONAL, ShareType.NOT_SHARED) and not values.get("共享条件/不予共享依据"):
            what = "共享条件 (its condition)" if share is ShareType.CONDITIONAL else "不予共享依据 (its legal basis)"
            pending.append(
                (
                    "共享条件/不予共享依据",
                    None,
                    f"share type {share.value} needs {what}",
                    f"write {what} in this column, or change the share type",
                )
            )
        if values.get("细目分类") and not values.get("目分类") and "目分类" not in {p[0] for p in pending}:
            pending.append(
                ("目分类", None, "is empty while 细目分类 is filled", "write the 目 label (the third level)")
            )
        for ref, first, index in across:
            pending.append(
                (
                    sheet.columns.get(index),
                    index,
                    f"cells {ref} are merged across columns" + ("" if first == number else f" (from row {first})"),
                    "unmerge them and write each column's own value",
                )
            )
        row = _Row(sheet.name, number, values, raw, {p[0] for p in pending if p[0]})
        group = self._group(sheet, row, pending)
        for column, at, problem, fix in pending:
            self.problem(sheet.name, number, column, at, problem, fix, group)

    def _group(self, sheet: _Sheet, row: _Row, pending: list[_Pending]) -> _Group:
        code = row.values.get("信息资源代码")
        if code is not None:
            key = code
        elif "信息资源代码" in row.raw:
            key = f"?{row.raw['信息资源代码']}"
        else:
            key = f"?{row.sheet}!{row.number}"
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(key=key, code=code, first=row)
        else:
            first = group.first
            for name in sheet.repeated:
                if name in row.bad or name in first.bad:
                    continue
                if row.values.get(name) != first.values.get(name):
                    shown = _show(row.raw[name]) if name in row.raw else "empty"
                    other = _show(first.raw[name]) if name in first.raw else "it empty"
                    pending.append(
                        (
                            name,
                            None,
                            f"{shown}, but row {first.number} of the same resource has {other} (each row of a "
                            "resource repeats the resource's fields)",
                            f"write the same value as row {first.number}, or give this row's resource its own "
                            "信息资源代码",
                        )
                    )
        title = row.values.get("信息项名称")
        if title is not None:
            seen = group.titles.get(title)
            if seen is not None:
                pending.append(
                    (
                        "信息项名称",
                        None,
                        f"data item {_show(title)} is already row {seen} of this resource",
                        "remove the repeated row, or give the data item its own name",
                    )
                )
            else:
                group.titles[title] = row.number
        group.items.append(
            _Item(row.sheet, row.number, self.ordinal, title, row.values.get("数据类型"), row.values.get("数据长度"))
        )
        if group.first is not row:
            row.values.clear()  # only the first row's values are kept (memory: one row per resource)
        return group


def _value(cell: Any) -> Any:
    if cell is None:
        return None
    value = cell.value
    return None if value == "" else value


def _row_list(rows: list[int], limit: int = 12) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


# --- checking against the catalog, and writing -------------------------------------------------


_ENTRY_COLUMN = {
    "name": "信息资源名称",
    "classification_axis": "部门类信息资源分类",
    "classification_path": "项分类",
    "abstract": "信息资源摘要",
    "format_category": "信息资源格式分类",
    "format_type": "信息资源格式类型",
    "format_other": "其他类型资源格式描述",
    "share_type": "共享类型",
    "share_condition": "共享条件/不予共享依据",
    "share_method": "共享方式分类",
    "share_method_type": "共享方式类型",
    "open_to_public": "是否向社会开放",
    "open_condition": "开放条件",
    "update_cycle": "更新周期",
    "publish_date": "发布日期",
    "related_business": "关联业务事项",
    "sub_organisation": "下设机构",
    "open_theme": "开放主题分类",
}


def _entry_fields(values: dict[str, Any], department: str) -> dict[str, Any]:
    """The entry's columns as the sheet gives them."""
    code: str = values["信息资源代码"]
    return {
        "name": values["信息资源名称"],
        "resource_code": code,
        "classification_code": code.split("/", 1)[0],
        "classification_axis": values["部门类信息资源分类"].value,
        "classification_path": _labels(values),
        "abstract": values["信息资源摘要"],
        "format_category": values["信息资源格式分类"].value,
        "format_type": values["信息资源格式类型"],
        "format_other": values.get("其他类型资源格式描述"),
        "share_type": values["共享类型"].value,
        "share_condition": values.get("共享条件/不予共享依据"),
        "share_method": values["共享方式分类"].value,
        "share_method_type": values.get("共享方式类型"),
        "open_to_public": values["是否向社会开放"],
        "open_condition": values.get("开放条件"),
        "update_cycle": values["更新周期"].value,
        "publish_date": values.get("发布日期"),
        "related_business": values.get("关联业务事项"),
        "sub_organisation": values.get("下设机构"),
        "open_theme": values.get("开放主题分类"),
        "department_uscc": department,
    }


def _labels(values: dict[str, Any]) -> list[str]:
    return [v for v in (values.get("项分类"), values.get("目分类"), values.get("细目分类")) if v]


_ItemSpec = tuple[str, str, int | None]  # 信息项名称, 数据类型, 数据长度


def _changes(entry: Entry, fields: dict[str, Any], items: list[_ItemSpec]) -> list[str]:
    """The sheet columns whose values differ from the entry's."""
    changed = [_ENTRY_COLUMN.get(k, k) for k, v in fields.items() if getattr(entry, k) != v]
    if [(i.title, i.type_code, i.length) for i in entry.items] != items:
        changed.append("信息项名称")
    return changed


def _may_import(viewer: Viewer, department: str) -> str | None:
    """Why ``viewer`` may not import entries of ``department`` (None: it may)."""
    if viewer.role is Role.CITY_ADMIN:
        return None
    if viewer.role is Role.AUDITOR:
        return "auditors read the catalog; they do not change it"
    if viewer.role in (Role.STAFF, Role.DEPT_ADMIN):
        if viewer.department == department:
            return None
        return f"user {viewer.user!r} may import only the entries of their own department ({viewer.department})"
    return "an anonymous reader cannot import"


_KEPT_ITEM_FIELDS = (
    "primary_key",
    "nullable",
    "sensitive",
    "sensitive_level",
    "share_type",
    "masking_rule",
    "code_set",
    "description",
)
_NEW_ITEM: dict[str, Any] = dict.fromkeys(_KEPT_ITEM_FIELDS) | {
    "primary_key": False,
    "nullable": True,
    "sensitive": False,
}


def _apply_items(entry: Entry, items: list[_ItemSpec]) -> None:
    """Make the entry's data items those of the sheet, keeping what the sheet does not hold for matched titles."""
    pools: dict[str, list[DataItem]] = {}
    for item in entry.items:
        pools.setdefault(item.title, []).append(item)
    matched: list[dict[str, Any] | None] = []
    for title, _, _ in items:
        pool = pools.get(title)
        old = pool.pop(0) if pool else None
        matched.append({k: getattr(old, k) for k in ("name", *_KEPT_ITEM_FIELDS)} if old is not None else None)
    used = {m["name"] for m in matched if m is not None}
    width = max(2, len(str(len(items))))
    current = {item.position: item for item in entry.items}
    result: list[DataItem] = []
    for position, ((title, type_code, length), kept) in enumerate(zip(items, matched, strict=True), start=1):
        if kept is None:
            name = title.lower() if _IDENTIFIER.match(title) and len(title) <= 100 else f"item_{position:0{width}d}"
            k = position
            while name in used:
                k += 1
                name = f"item_{k:0{width}d}"
            used.add(name)
            kept = {"name": name, **_NEW_ITEM}
        attrs = {**kept, "title": title, "type_code": type_code, "length": length}
        item = current.get(position) or DataItem(position=position)
        for key, value in attrs.items():
            if getattr(item, key, None) != value:
                setattr(item, key, value)
        result.append(item)
    entry.items = result


@dataclass
class _Plan:
    group: _Group
    fields: dict[str, Any]
    items: list[_ItemSpec]
    entry: Entry | None


class _Importer:
    """Checks the groups against the catalog and each other, then writes the valid ones."""

    def __init__(
        self,
        store: CatalogStore,
        path: Path,
        reader: _Reader,
        *,
        department: str | None,
        department_name: str | None,
        viewer: Viewer,
    ) -> None:
        self.store = store
        self.path = path
        self.reader = reader
        self.report = reader.report
        self.department = department
        self.viewer = viewer
        self.actor = viewer.user or "operator"  # the audit log's actor (the local operator without --as)
        # departments the import would add: USCC → (name, row that named it; 0: --department-name)
        self.new_departments: dict[str, tuple[str, int]] = {}
        if department is not None and department_name is not None:
            self.new_departments[department] = (department_name.strip(), 0)

    def run(self, partial: bool) -> None:
        groups = list(self.reader.groups.values())
        with self.store.session() as s:
            plans = self._check(s, groups)
            refused = [g for g in groups if g.problems or self.reader.sheets[g.first.sheet].fatal]
            self.report.refused = [g.code or g.key for g in refused]
            if self.report.problems and not partial:
                self.report.refused = [g.code or g.key for g in groups]
                return
            keys = {g.key for g in refused}
            self._write(s, [p for p in plans if p.group.key not in keys])

    def _check(self, s: Session, groups: list[_Group]) -> list[_Plan]:
        codes = [g.code for g in groups if g.code]
        existing: dict[str, Entry] = {}
        for chunk in _chunks(codes, 500):
            query = select(Entry).where(Entry.resource_code.in_(chunk)).options(selectinload(Entry.items))
            existing.update({e.resource_code: e for e in s.scalars(query)})
        new_ids = [entry_id_for(c) for c in codes if c not in existing]
        taken: dict[str, str] = {}
        for chunk in _chunks(new_ids, 500):
            query_ids = select(Entry.id, Entry.resource_code).where(Entry.id.in_(chunk))
            taken.update((str(i), str(c)) for i, c in s.execute(query_ids))
        classes = sorted({c.split("/", 1)[0] for c in codes})
        by_number: dict[tuple[str, int], str] = {}
        for chunk in _chunks(classes, 500):
            for code in s.scalars(select(Entry.resource_code).where(Entry.classification_code.in_(chunk))):
                cls, seq = code.split("/", 1)
                by_number[(cls, int(seq))] = code
        prefixes = sorted({c[:n] for c in classes for n in range(1, len(c) + 1)})
        tree: dict[str, tuple[str, str]] = {}  # code → (name, where it is named)
        for chunk in _chunks(prefixes, 500):
            for node in s.scalars(select(ClassificationNode).where(ClassificationNode.code.in_(chunk))):
                tree[node.code] = (node.name, "in the catalog")
        departments = {d.uscc: d.name for d in s.scalars(select(Department))}

        plans: list[_Plan] = []
        for g in groups:
            self._adjacent(g)
            if g.code is None or self.reader.sheets[g.first.sheet].fatal:
                continue  # no code to check, or a sheet whose header problems keep all of it out
            values = g.first.values
            if not ({"部门类信息资源分类", "项分类", "目分类", "细目分类"} & g.first.bad):
                self._tree(g, tree)
            department = self._department(g, departments)
            if department is None or g.problems:
                continue
            fields = _entry_fields(values, department)
            items = [(i.title or "", i.type_code or "", i.length) for i in g.items]
            entry = existing.get(g.code)
            if entry is None:
                cls, seq = g.code.split("/", 1)
                near = by_number.get((cls, int(seq)))
                if near is not None:
                    self._problem(
                        g,
                        "信息资源代码",
                        f"resource code {g.code} is not in the catalog, but {near} is: the same sequence number "
                        "with other leading zeros",
                        f"write {near} if it is that resource (format the column as Text so Excel keeps the zeros), "
                        "or give this resource another sequence number",
                    )
                    continue
                if entry_id_for(g.code) in taken:
                    self._problem(
                        g,
                        "信息资源代码",
                        f"the entry id {entry_id_for(g.code)} this code gets is already the id of the entry with "
                        f"resource code {taken[entry_id_for(g.code)]}",
                        "give the resource another code",
                    )
                    continue
            elif entry.department_uscc != department:
                self._problem(
                    g,
                    "信息资源代码",
                    f"resource code {g.code} is already entry {entry.id!r} of another department "
                    f"({entry.department_uscc})",
                    "give this resource its own code (a resource code is unique in the city)",
                )
                continue
            elif entry.origin != "import":
                changed = _changes(entry, fields, items)
                if changed:
                    self._problem(
                        g,
                        changed[0],
                        f"entry {entry.id!r} is made from its dataset spec, and the sheet changes it "
                        f"({', '.join(dict.fromkeys(changed))}); the next run of the dataset would register the "
                        "spec again",
                        "change the dataset spec (its catalog section and columns) and run it, or leave this "
                        "resource's rows as exported",
                    )
                    continue
            plans.append(_Plan(g, fields, items, entry))
        return plans

    def _problem(self, g: _Group, column: str, problem: str, fix: str, row: int | None = None) -> None:
        self.reader.problem(g.first.sheet, row or g.first.number, column, None, problem, fix, g)

    def _adjacent(self, g: _Group) -> None:
        """The rows of one resource must follow each other: a second block is a second resource with the same code."""
        for prev, cur in zip(g.items, g.items[1:], strict=False):
            if cur.ordinal != prev.ordinal + 1 or cur.sheet != prev.sheet:
                self.reader.problem(
                    cur.sheet,
                    cur.number,
                    "信息资源代码",
                    None,
                    f"resource code {g.code or g.key.lstrip('?')} appears again after rows of other resources (it "
                    f"starts in row {g.first.number}"
                    + ("" if cur.sheet == g.first.sheet else f" of sheet {g.first.sheet!r}")
                    + "): two resources with one code, or one resource split up",
                    "keep the rows of a resource together, or give the other resource its own 信息资源代码",
                    g,
                )
                return

    def _department(self, g: _Group, departments: dict[str, str]) -> str | None:
        """The USCC of the group's department (None: a problem was reported or the row could not say)."""
        sheet = self.reader.sheets[g.first.sheet]
        column = "提供方代码" if sheet.provider else "信息资源代码"
        if sheet.provider:
            uscc = g.first.values.get("提供方代码")
            name = g.first.values.get("信息资源提供方")
            if uscc is None or name is None:
                return None
            if self.department is not None and uscc != self.department:
                self._problem(
                    g,
                    "提供方代码",
                    f"department {uscc} is not the one being imported (--department {self.department})",
                    "import without --department to take each row's 提供方代码, or remove the other department's rows",
                )
                return None
            known = departments.get(uscc)
            if known is not None and known != name:
                self._problem(
                    g,
                    "信息资源提供方",
                    f"department {uscc} is {known!r} in the catalog, not {name!r}",
                    f"write {known!r}",
                )
                return None
            if known is None:
                seen = self.new_departments.setdefault(uscc, (name, g.first.number))
                if seen[0] != name:
                    where = f"row {seen[1]}" if seen[1] else "--department-name"
                    self._problem(
                        g,
                        "信息资源提供方",
                        f"department {uscc} is {seen[0]!r} in {where}, not {name!r}",
                        f"write {seen[0]!r}",
                    )
                    return None
        else:
            assert self.department is not None  # import_workbook refuses a sheet without it
            uscc = self.department
        refusal = _may_import(self.viewer, uscc)
        if refusal is None and uscc not in departments and self.viewer.role is not Role.CITY_ADMIN:
            refusal = "only a city admin may add a department to the catalog"
        if refusal is not None:
            self._problem(
                g,
                column,
                f"not allowed: {refusal}",
                "import as a user of that department or as a city admin (--as USER), or remove these rows",
            )
            return None
        return uscc

    def _tree(self, g: _Group, tree: dict[str, tuple[str, str]]) -> None:
        """Check the group's classification against the tree (and earlier rows), as CatalogStore.register does."""
        assert g.code is not None
        axis: ClassificationAxis = g.first.values["部门类信息资源分类"]
        try:
            nodes = tree_nodes(axis, g.code, _labels(g.first.values))
        except ResourceCodeError as exc:
            digit = g.code[0]
            if AXIS_DIGITS[axis] != digit:
                self._problem(
                    g,
                    "部门类信息资源分类",
                    str(exc),
                    f"write {AXIS_BY_DIGIT[digit].value} ({digit}), or correct the resource code's 类 digit",
                )
            else:
                self._problem(
                    g,
                    "细目分类",
                    str(exc),
                    "leave out the levels the code has no digits for, or give the code its 细目 digits",
                )
            return
        for node in nodes[1:]:
            column = ("项分类", "目分类", "细目分类")[node.level - 2]
            found = tree.get(node.code)
            if found is None:
                tree[node.code] = (node.name, f"in row {g.first.number}")
            elif found[0] != node.name:
                self._problem(
                    g,
                    column,
                    f"classification code {node.code} ({LEVEL_NAMES[node.level]}) is {found[0]!r} {found[1]}, "
                    f"not {node.name!r}",
                    f"write {found[0]!r}, or use another code for {node.name!r}",
                )

    def _write(self, s: Session, plans: list[_Plan]) -> None:
        wanted = {p.fields["department_uscc"] for p in plans}
        for uscc, (name, _row) in sorted(self.new_departments.items()):
            if uscc in wanted and s.get(Department, uscc) is None:
                s.add(Department(uscc=uscc, name=name))
                s.flush()
                self.report.departments_created.append(uscc)
                audit.append(
                    s,
                    actor=self.actor,
                    action="catalog.department_add",
                    subject=f"department:{uscc}",
                    detail={"department": uscc, "name": name, "file": self.path.name},
                )
        source = f"national cataloguing spreadsheet {self.path.name}"
        for plan in plans:
            entry = plan.entry
            changed = _changes(entry, plan.fields, plan.items) if entry is not None else []
            if entry is not None and not changed:
                self.report.unchanged.append(entry.id)
                continue
            _grow_tree(s, plan.fields)
            if entry is None:
                assert plan.group.code is not None
                entry = Entry(
                    id=entry_id_for(plan.group.code),
                    status="draft",
                    origin="import",
                    source=source,
                    related_resources=[],
                    **plan.fields,
                )
                _apply_items(entry, plan.items)
                s.add(entry)
                self.report.created.append(entry.id)
            else:
                for key, value in plan.fields.items():
                    if getattr(entry, key) != value:
                        setattr(entry, key, value)
                entry.source = source
                _apply_items(entry, plan.items)
                self.report.updated.append(entry.id)
            self.report.items += len(plan.items)
            s.flush()
            audit.append(
                s,
                actor=self.actor,
                action="catalog.import_update" if changed else "catalog.import_create",
                subject=f"catalog_entry:{entry.id}",
                detail={
                    "entry": entry.id,
                    "resource_code": entry.resource_code,
                    "department": entry.department_uscc,
                    "file": self.path.name,
                    "changed": list(dict.fromkeys(changed)),
                    "items": len(plan.items),
                },
            )


def _grow_tree(s: Session, fields: dict[str, Any]) -> None:
    for node in tree_nodes(fields["classification_axis"], fields["resource_code"], fields["classification_path"]):
        if s.get(ClassificationNode, node.code) is None:
            s.add(
                ClassificationNode(
                    code=node.code, axis=node.axis.value, level=node.level, name=node.name, parent_code=node.parent
                )
            )
            s.flush()


def _chunks(values: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def import_workbook(
    store: CatalogStore,
    path: str | Path,
    *,
    department: str | None = None,
    department_name: str | None = None,
    partial: bool = False,
    viewer: Viewer = OPERATOR,
) -> ImportReport:
    """Import the national sheet ``path`` into ``store`` (the rules are in the module docstring).

    ``department`` (a USCC) is required unless the sheet has the provider columns. A file that is
    not a readable xlsx workbook, an empty workbook and a refused department raise
    :class:`TerminalError`; everything wrong inside the sheet is in the report's ``problems``, and
    then nothing is written (with ``partial``: the entries without a problem are).
    """
    path = Path(path)
    if department is not None:
        department = _department_arg(store, department, department_name, viewer)
    elif department_name is not None:
        raise SpecError("--department-name needs --department USCC", hint="name the department's USCC too")
    if viewer.role is Role.AUDITOR:
        raise TerminalError("auditors read the catalog; they do not import into it", hint="import as another user")
    _check_file(path)
    report = ImportReport(file=str(path), partial=partial)
    reader = _Reader(path, report)
    reader.read()
    without = [name for name, sheet in reader.sheets.items() if not sheet.provider]
    if department is None and without:
        raise SpecError(
            f"{path}: sheet {without[0]!r} has no provider columns ({', '.join(PROVIDER_COLUMNS)}), so it does not "
            "say whose entries these are",
            hint="name the department with --department USCC (and --department-name NAME if the catalog does not "
            "have it yet)",
        )
    if reader.trimmed:
        report.notes.append(f"{reader.trimmed} cell(s) had leading or trailing spaces (full-width too): trimmed")
    if reader.halfwidth:
        shown = ", ".join(reader.halfwidth[:5]) + (", …" if len(reader.halfwidth) > 5 else "")
        report.notes.append(
            f"{len(reader.halfwidth)} code cell(s) in full-width characters read as half-width ({shown})"
        )
    if reader.sheets and report.rows == 0:
        report.notes.append("the sheet has a header but no data rows: nothing to import")
    _Importer(store, path, reader, department=department, department_name=department_name, viewer=viewer).run(partial)
    order = {name: i for i, name in enumerate(report.sheets)}
    report.problems.sort(key=lambda p: (order.get(p.sheet or "", -1), p.row or 0))
    log.info(
        "%s: %d entries created, %d updated, %d unchanged; %d problem(s)",
        path,
        len(report.created),
        len(report.updated),
        len(report.unchanged),
        len(report.problems),
    )
    return report


def _department_arg(store: CatalogStore, department: str, name: str | None, viewer: Viewer) -> str:
    """Check ``--department`` (and ``--department-name``); the USCC, normalised."""
    uscc = unicodedata.normalize("NFKC", department).strip(_SPACES).upper()
    problem = uscc_problem(uscc)
    if problem:
        raise SpecError(
            f"--department {department!r} is not a valid USCC: {problem}",
            hint="give the department's 统一社会信用代码 (18 characters)",
        )
    if name is not None and not 2 <= len(name.strip()) <= 200:
        raise SpecError(f"--department-name {name!r} must be 2 to 200 characters", hint="give the department's name")
    with store.session() as s:
        known = s.get(Department, uscc)
        if known is None:
            if not (name or "").strip():
                others = {d.uscc: d.name for d in s.scalars(select(Department))}
                near = _nearest(uscc, list(others), cutoff=0.7)
                raise SpecError(
                    f"department {uscc} is not in the catalog",
                    hint=(f"did you mean {near} ({others[near]})? " if near else "")
                    + "add --department-name NAME to create it",
                )
            if viewer.role is not Role.CITY_ADMIN:
                raise TerminalError(
                    f"department {uscc} is not in the catalog, and only a city admin may add a department",
                    hint="ask the city admin to import the department's first sheet",
                )
        elif name is not None and name.strip() != known.name:
            raise SpecError(
                f"department {uscc} is {known.name!r} in the catalog, not {name.strip()!r}",
                hint="leave out --department-name: the catalog's name is kept",
            )
    refusal = _may_import(viewer, uscc)
    if refusal is not None:
        raise TerminalError(f"cannot import for department {uscc}: {refusal}", hint="import as a user allowed to")
    return uscc


# --- export ------------------------------------------------------------------------------------


_WIDTHS = {"信息资源名称": 30, "信息资源代码": 20, "信息资源摘要": 40, "信息项名称": 20, "共享条件/不予共享依据": 30}


def _entry_rows(entry: Entry, provider: bool) -> Iterator[list[Any]]:
    path = list(entry.classification_path or [])
    if len(path) > 3:
        raise TerminalError(
            f"entry {entry.id!r}: classification path {'/'.join(path)} has {len(path)} levels below the 类; the sheet "
            "holds 3 (项, 目, 细目)",
            hint="correct the entry's classification before exporting",
        )
    path += [None] * (3 - len(path))
    resource: dict[str, Any] = {
        "部门类信息资源分类": entry.classification_axis,
        "项分类": path[0],
        "目分类": path[1],
        "细目分类": path[2],
        "关联业务事项": entry.related_business,
        "信息资源名称": entry.name,
        "信息资源代码": entry.resource_code,
        "下设机构": entry.sub_organisation,
        "信息资源摘要": entry.abstract,
        "信息资源格式分类": entry.format_category,
        "信息资源格式类型": entry.format_type,
        "其他类型资源格式描述": entry.format_other,
        "共享类型": entry.share_type,
        "共享条件/不予共享依据": entry.share_condition,
        "共享方式分类": entry.share_method,
        "共享方式类型": entry.share_method_type,
        "是否向社会开放": "是" if entry.open_to_public else "否",
        "开放条件": entry.open_condition,
        "更新周期": entry.update_cycle,
        "发布日期": entry.publish_date,
        "开放主题分类": entry.open_theme,
        "信息资源提供方": entry.department.name if provider else None,
        "提供方代码": entry.department_uscc if provider else None,
    }
    columns = (*NATIONAL_COLUMNS, *(PROVIDER_COLUMNS if provider else ()))
    items: list[DataItem | None] = list(entry.items) or [None]
    for item in items:
        row = dict(resource)
        row["信息项名称"] = item.title if item else None
        row["数据类型"] = item.type_code if item else None
        row["数据长度"] = item.length if item else None
        yield [row.get(c) for c in columns]


def _cell(ws: Any, value: Any, column: str, entry: Entry) -> Any:
    if isinstance(value, str):
        if ILLEGAL_CHARACTERS_RE.search(value):
            raise TerminalError(
                f"entry {entry.id!r}: {column} holds a control character that an xlsx cell cannot hold",
                hint="remove it from the entry (or its dataset spec) and export again",
            )
        if len(value) > _MAX_CELL:
            raise TerminalError(
                f"entry {entry.id!r}: {column} has {len(value)} characters; an Excel cell holds {_MAX_CELL}",
                hint="shorten it and export again",
            )
        if value.startswith("=") or column in ("信息资源代码", "提供方代码"):
            cell = WriteOnlyCell(ws, value)
            cell.data_type = "s"  # text, never a formula
            cell.number_format = "@"
            return cell
        return value
    if isinstance(value, dt.date):
        cell = WriteOnlyCell(ws, value)
        cell.number_format = "yyyy-mm-dd"
        return cell
    return value


def _discard(ws: Any) -> None:
    """Finish a write-only sheet that will not be saved and delete its temporary file."""
    with contextlib.suppress(OSError, ValueError):
        ws.close()
        if ws._writer is not None:  # openpyxl's own temporary file of the sheet
            ws._writer.cleanup()


def export_workbook(
    store: CatalogStore,
    path: str | Path,
    *,
    department: str | None = None,
    viewer: Viewer = OPERATOR,
) -> ExportReport:
    """Write the entries ``viewer`` may see (of ``department``, a USCC, or all) as the national sheet at ``path``."""
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise SpecError(f"{path}: the national sheet is written as .xlsx", hint="give an output file ending in .xlsx")
    provider = department is None
    with store.session() as s:
        if department is not None:
            uscc = unicodedata.normalize("NFKC", department).strip().upper()
            if s.get(Department, uscc) is None:
                known = {d.uscc: d.name for d in s.scalars(select(Department))}
                near = _nearest(uscc, list(known), cutoff=0.7)
                raise SpecError(
                    f"department {department!r} is not in the catalog",
                    hint=(f"did you mean {near} ({known[near]})? " if near else "")
                    + "give a USCC from `govdata catalog list`",
                )
            department = uscc
        query = select(Entry.id).where(visibility_filter(viewer)).order_by(Entry.resource_code)
        if department is not None:
            query = query.where(Entry.department_uscc == department)
        ids = list(s.scalars(query))
        wb = Workbook(write_only=True)
        ws = wb.create_sheet(SHEET_TITLE)
        columns = (*NATIONAL_COLUMNS, *(PROVIDER_COLUMNS if provider else ()))
        for i, name in enumerate(columns, start=1):
            ws.column_dimensions[get_column_letter(i)].width = _WIDTHS.get(name, max(10, len(name) * 2 + 2))
        ws.freeze_panes = "A2"
        bold = Font(bold=True)
        header = []
        for name in columns:
            cell = WriteOnlyCell(ws, name)
            cell.font = bold
            header.append(cell)
        ws.append(header)
        number = 0
        departments: set[str] = set()
        try:
            for chunk in _chunks(ids, 200):
                batch = (
                    select(Entry)
                    .where(Entry.id.in_(chunk))
                    .options(selectinload(Entry.items), selectinload(Entry.department))
                )
                entries = {e.id: e for e in s.scalars(batch)}
                for entry_id in chunk:
                    entry = entries[entry_id]
                    departments.add(entry.department_uscc)
                    for values in _entry_rows(entry, provider):
                        number += 1
                        values[0] = number
                        ws.append([_cell(ws, v, c, entry) for v, c in zip(values, columns, strict=True)])
        except BaseException:
            _discard(ws)
            raise
    tmp = path.with_name(f".{path.name}.part")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        wb.save(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("%s: exported %d entries in %d rows", path, len(ids), number)
    return ExportReport(
        path=str(path), entries=len(ids), rows=number, departments=sorted(departments), provider_columns=provider
    )
