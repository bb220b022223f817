"""Scorecards and run history as tables, written as an xlsx workbook or UTF-8 (BOM) CSV files.

Five tables (sheet / file): 总体评分 Overall (``overall.csv``: one row per run with the overall
and dimension scores), 维度 Dimensions (``dimensions.csv``), 指标 Indicators (``indicators.csv``:
code, name, formula, A, B, X per run), 运行记录 Run history (``runs.csv``: status, row
accounting, version; failed runs too) and 说明 About (``about.csv``: filters, time, method).
Headers are Chinese with the English beside (``数据集 Dataset``). CSV files carry a UTF-8 BOM so
Excel opens them as UTF-8.

Only counts, codes, names and scores are exported: scorecards and run accounting hold no row
values, and error messages of failed runs (which may quote a source value) are left out; the
run report keeps them.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.errors import GovdataError
from pipelines.scorecard import DIMENSIONS, SCHEMA

CSV_FILES = ("overall", "dimensions", "indicators", "runs", "about")


@dataclass
class Table:
    """One sheet / CSV file: Chinese and English names, headers (中文 English), rows."""

    key: str
    title: str
    headers: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    number_format: dict[int, str] = field(default_factory=dict)  # column index -> xlsx format


def _h(zh: str, en: str) -> str:
    return f"{zh} {en}"


_SCORE = "0.0000"
_PERIOD = (_h("数据集", "Dataset"), _h("运行", "Run"), _h("逻辑日期", "Logical date"))


@dataclass(frozen=True)
class Selection:
    """What to export: the scorecards and runs matching a dataset and/or department filter."""

    cards: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    dataset: str | None
    department: str | None


def _utc_text(value: dt.datetime) -> str:
    """A stored time as ISO text in UTC (SQLite returns the stored UTC time without its zone)."""
    value = value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value.isoformat(timespec="seconds")


def _departments(store: Any, entries: dict[str, Any]) -> dict[str, str]:
    departments = dict(store.scorecard_departments())
    departments.update({e.department_uscc: e.department.name for e in entries.values()})
    return departments


def check_dataset(store: Any, dataset: str) -> None:
    """An error (with the nearest id) unless ``dataset`` has runs or a catalog entry."""
    known = sorted(
        set(store.scorecard_datasets())
        | {e.id for e in store.entries()}
        | {r.dataset for r in store.runs(None, 100000)}
    )
    if not known:
        raise GovdataError(
            "the catalog has no runs yet", hint="run a dataset first (`govdata run SPEC` or `govdata demo`)"
        )
    if dataset not in known:
        near = difflib.get_close_matches(dataset, known, n=1)
        raise GovdataError(
            f"no runs of dataset {dataset!r}",
            hint=(f"did you mean {near[0]!r}? " if near else "") + f"known datasets: {', '.join(known)}",
        )


def resolve_department(store: Any, department: str) -> str:
    """The USCC of a department given by USCC (any case) or exact name; an error with suggestions otherwise."""
    departments = _departments(store, {e.id: e for e in store.entries()})
    value = department.strip()
    if value.upper() in departments:
        return value.upper()
    by_name = {name: uscc for uscc, name in departments.items()}
    if value in by_name:
        return by_name[value]
    near = difflib.get_close_matches(value, [*departments.values(), *departments], n=1)
    raise GovdataError(
        f"no department {department!r} (give its USCC or its exact name)",
        hint=(f"did you mean {near[0]!r}? " if near else "")
        + (
            "known: " + "; ".join(f"{n} ({u})" for u, n in sorted(departments.items()))
            if departments
            else "no runs yet"
        ),
    )


def select(store: Any, *, dataset: str | None = None, department: str | None = None) -> Selection:
    """Scorecards and run history from the catalog; unknown filters are errors with suggestions."""
    entries = {e.id: e for e in store.entries()}
    if dataset is not None:
        check_dataset(store, dataset)
    elif not (entries or store.scorecard_datasets() or store.runs(None, 1)):
        raise GovdataError(
            "the catalog has no runs yet", hint="run a dataset first (`govdata run SPEC` or `govdata demo`)"
        )
    wanted_uscc = resolve_department(store, department) if department is not None else None
    cards = store.scorecards(dataset=dataset, department=wanted_uscc)
    dept_of = {c["dataset"]: c["department"] for c in store.scorecards(dataset=dataset)}
    dept_of.update({i: {"uscc": e.department_uscc, "name": e.department.name} for i, e in entries.items()})
    card_by_key = {(c["dataset"], c["run_id"]): c for c in store.scorecards(dataset=dataset)}
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in store.runs(dataset, 100000):
        report = r.report or {}
        rows = report.get("rows") or {}
        card = card_by_key.get((r.dataset, r.run_id))
        runs[(r.dataset, r.run_id)] = {
            "dataset": r.dataset,
            "run_id": r.run_id,
            "logical_date": report.get("logical_date") or (card or {}).get("logical_date") or r.run_id,
            "status": r.status,
            "failed_step": report.get("failed_step"),
            "version": r.version,
            "collected": rows.get("collected"),
            "published": rows.get("published"),
            "quarantined": rows.get("quarantined"),
            "duplicates_removed": rows.get("duplicates_removed"),
            "filtered": sum((rows.get("filtered") or {}).values()) if rows else None,
            "held": rows.get("held"),
            "score": (card or {}).get("score", (report.get("quality") or {}).get("score")),
            "finished_at": _utc_text(r.finished_at),
        }
    for (ds, run_id), card in card_by_key.items():  # runs outside `govdata run` (Airflow) have a scorecard only
        if (ds, run_id) in runs:
            continue
        rows = card.get("rows") or {}
        status = card["status"]
        accepted = rows.get("accepted")
        runs[(ds, run_id)] = {
            "dataset": ds,
            "run_id": run_id,
            "logical_date": card["logical_date"],
            "status": status,
            "failed_step": None,
            "version": card.get("version"),
            "collected": rows.get("collected"),
            "published": accepted if status in ("published", "unchanged") else 0,
            "quarantined": rows.get("quarantined"),
            "duplicates_removed": rows.get("duplicates_removed"),
            "filtered": rows.get("filtered"),
            "held": accepted if status == "held" else 0,
            "score": card.get("score"),
            "finished_at": card.get("computed_at"),
        }
    history = []
    for item in runs.values():
        dept = dept_of.get(item["dataset"]) or {}
        if wanted_uscc is not None and dept.get("uscc") != wanted_uscc:
            continue
        name = entries[item["dataset"]].name if item["dataset"] in entries else None
        history.append(
            {**item, "dataset_name": name, "department": dept.get("name"), "department_uscc": dept.get("uscc")}
        )
    history.sort(key=lambda r: (str(r["logical_date"]), str(r["finished_at"]), r["dataset"]))
    return Selection(cards, history, dataset, wanted_uscc)


def tables(selection: Selection, *, generated_at: str | None = None) -> list[Table]:
    """The five export tables for a selection."""
    dims = [(d.key, _h(d.name, d.dama)) for d in DIMENSIONS]
    overall = Table(
        "overall",
        "总体评分 Overall",
        [
            _h("数据集", "Dataset"),
            _h("资源名称", "Name"),
            _h("提供方", "Department"),
            _h("提供方代码", "Department USCC"),
            _h("运行", "Run"),
            _h("逻辑日期", "Logical date"),
            _h("状态", "Status"),
            _h("质量门", "Gate"),
            _h("版本", "Version"),
            _h("总体评分", "Overall score"),
            *[label for _, label in dims],
            _h("计算时间", "Computed at"),
        ],
    )
    overall.number_format = dict.fromkeys(range(9, 10 + len(dims)), _SCORE)
    dimension = Table(
        "dimensions",
        "维度 Dimensions",
        [
            *_PERIOD,
            _h("维度代码", "Code"),
            _h("维度", "Dimension"),
            _h("DAMA", "name"),
            _h("评分", "Score"),
            _h("参评指标", "Indicators evaluated"),
        ],
        number_format={6: _SCORE},
    )
    indicator = Table(
        "indicators",
        "指标 Indicators",
        [
            *_PERIOD,
            _h("指标代码", "Code"),
            _h("指标", "Indicator"),
            _h("英文名", "English name"),
            _h("维度", "Dimension"),
            _h("DAMA", "name"),
            _h("公式", "Formula"),
            "A",
            "B",
            _h("指标值", "X"),
        ],
        number_format={11: _SCORE},
    )
    for card in selection.cards:
        period = [card["dataset"], card["run_id"], card["logical_date"]]
        scores = {d["key"]: d["score"] for d in card["dimensions"]}
        overall.rows.append(
            [
                card["dataset"],
                card.get("dataset_name"),
                card["department"]["name"],
                card["department"]["uscc"],
                card["run_id"],
                card["logical_date"],
                card["status"],
                card["gate"],
                card.get("version"),
                card["score"],
                *[scores.get(key) for key, _ in dims],
                card["computed_at"],
            ]
        )
        for d in card["dimensions"]:
            dimension.rows.append([*period, d["code"], d["name"], d["dama"], d["score"], " ".join(d["indicators"])])
        for i in card["indicators"]:
            if i["b"] is None:
                continue  # not evaluated in this run
            indicator.rows.append(
                [
                    *period,
                    i["code"],
                    i["name"],
                    i["name_en"],
                    i["dimension"],
                    i["dama"],
                    i["formula"],
                    i["a"],
                    i["b"],
                    i["x"],
                ]
            )
    runs = Table(
        "runs",
        "运行记录 Run history",
        [
            _h("数据集", "Dataset"),
            _h("资源名称", "Name"),
            _h("提供方", "Department"),
            _h("运行", "Run"),
            _h("逻辑日期", "Logical date"),
            _h("状态", "Status"),
            _h("失败步骤", "Failed step"),
            _h("版本", "Version"),
            _h("采集", "Collected"),
            _h("发布", "Published"),
            _h("隔离", "Quarantined"),
            _h("去重", "Duplicates removed"),
            _h("过滤", "Filtered"),
            _h("暂缓发布", "Held"),
            _h("质量评分", "Score"),
            _h("完成时间", "Finished at"),
        ],
        number_format={14: _SCORE},
    )
    for r in selection.runs:
        runs.rows.append(
            [
                r["dataset"],
                r["dataset_name"],
                r["department"],
                r["run_id"],
                r["logical_date"],
                r["status"],
                r["failed_step"],
                r["version"],
                r["collected"],
                r["published"],
                r["quarantined"],
                r["duplicates_removed"],
                r["filtered"],
                r["held"],
                r["score"],
                r["finished_at"],
            ]
        )
    about = Table(
        "about",
        "说明 About",
        [_h("项目", "Item"), _h("内容", "Value")],
        [
            [_h("生成时间", "Generated at"), generated_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")],
            [_h("数据集", "Dataset"), selection.dataset or "全部 all"],
            [_h("提供方代码", "Department USCC"), selection.department or "全部 all"],
            [_h("评分卡", "Scorecards"), len(selection.cards)],
            [_h("运行", "Runs"), len(selection.runs)],
            [_h("格式", "Schema"), SCHEMA],
            [_h("标准", "Standards"), "GB/T 36344-2018 维度; DB31/T 1523-2024 指标代码"],
            [_h("指标值", "Indicator"), "X = A/B; 030300 重复率, 030500 脏数据出现率: X = 1 − A/B"],
            [_h("维度评分", "Dimension score"), "参评指标 X 的平均值 (mean of the evaluated indicators)"],
            [_h("总体评分", "Overall score"), "参评维度评分的平均值 (mean of the evaluated dimensions)"],
        ],
    )
    return [overall, dimension, indicator, runs, about]


def write_xlsx(target: Path, parts: list[Table]) -> Path:
    """One workbook, one sheet per table (frozen header row, widths fitted, scores as numbers)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    target = Path(target)
    if target.suffix.lower() != ".xlsx":
        raise GovdataError(
            f"{target}: an xlsx export needs a file name ending in .xlsx", hint="e.g. --output scorecards.xlsx"
        )
    if target.is_dir():
        raise GovdataError(f"{target} is a folder", hint="give a file name ending in .xlsx")
    target.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    wb.remove(wb.active)
    for part in parts:
        ws = wb.create_sheet(part.title[:31])
        ws.append(part.headers)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in part.rows:
            ws.append(row)
            for cell in ws[ws.max_row]:
                if isinstance(cell.value, str) and cell.value.startswith(_FORMULA_START):
                    cell.data_type = "s"  # text that looks like a formula stays text
        for col, fmt in part.number_format.items():
            for (cell,) in ws.iter_rows(min_row=2, min_col=col + 1, max_col=col + 1):
                cell.number_format = fmt
        ws.freeze_panes = "A2"
        for index, header in enumerate(part.headers, start=1):
            values = [header, *(row[index - 1] for row in part.rows[:500])]
            width = max(_display_width(v) for v in values)
            ws.column_dimensions[ws.cell(row=1, column=index).column_letter].width = min(max(width + 2, 8), 60)
    tmp = target.with_name(f".{target.name}.tmp")
    wb.save(tmp)
    tmp.replace(target)
    return target


#: A cell starting with one of these is a formula to Excel (CSV injection): exported as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _display_width(value: Any) -> int:
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)  # CJK characters are two columns wide


def write_csv(folder: Path, parts: list[Table]) -> list[Path]:
    """One UTF-8 (with BOM) CSV file per table in ``folder``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GovdataError(f"{folder} is a file", hint="a csv export writes a folder of files: give a folder path")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for part in parts:
        target = folder / f"{part.key}.csv"
        tmp = folder / f".{part.key}.csv.tmp"
        with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(part.headers)
            writer.writerows([[_csv_cell(v) for v in row] for row in part.rows])
        tmp.replace(target)
        written.append(target)
    return written
