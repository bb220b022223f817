"""The quarantine: masked rows with their reasons, and the data officer's correct-and-resubmit loop.

Layout of ``quarantine/<dataset>/<run>/``:

- ``quarantine.parquet``: every quarantined row of the run: ``_govdata_row`` (the row's number
  in the source), ``_govdata_stage`` (``collect``, ``cleanse`` or ``quality``),
  ``_govdata_reasons`` (list), ``_govdata_raw`` (the unparsed record of a read reject; withheld
  when the dataset has sensitive columns) and one text column per spec column holding the value
  as it came from the source. Sensitive columns hold the value *masked*
  (:mod:`pipelines.masking`); the clear value stays only in the run's landing and staging folders,
  which are the data's home.
- ``quarantine.json``: what the folder is: dataset, run, logical date, counts by stage and by
  cause, the columns (with their Chinese titles) and the masking rule of each sensitive column.
- ``resubmissions.json`` (after a resubmission): the ledger of the corrected rows sent back:
  which resubmission run accepted a row, or quarantined it again.

A resubmission (:func:`resubmit`) is a run of its own, ``<run>-resubmit-<n>``: its landing holds
the corrected rows (masked cells the officer left alone are restored from the data's home by
row number), it goes through cleanse and the row-level expectations, then into a new version
made of the current published version plus the accepted rows, which must pass the suite's
dataset-level expectations. A corrected row whose key is already published, or that repeats
another corrected row's key, goes back to quarantine with that reason; nothing replaces a
published row. The exported workbook (:func:`export`) is the officer's form for this.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import logging
import os
import re
import shutil
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.base import DATA_FILE, REJECTS_FILE, ROW_COLUMN, landing_sql
from pipelines import cleanse as cleanse_mod
from pipelines.errors import GovdataError, QualityGateHeld, TerminalError
from pipelines.files import sha256_file
from pipelines.identifiers import is_valid_resident_id, uscc_problem
from pipelines.masking import BLANKS, MaskRule, mask, mask_sql, masking_plan
from pipelines.spec import DatasetSpec, load_spec
from pipelines.sql import connect, copy_to_parquet, ident, lit, path_lit
from pipelines.workspace import Workspace

log = logging.getLogger(__name__)

QUARANTINE_FILE = "quarantine.parquet"
INFO_FILE = "quarantine.json"
LEDGER_FILE = "resubmissions.json"
LOCK_FILE = ".resubmit.lock"
ROW = ROW_COLUMN
STAGE = "_govdata_stage"
REASONS = "_govdata_reasons"
RAW = "_govdata_raw"
RUN = "_govdata_run"
REASON_TEXT = "_govdata_reason"
RULES = "_govdata_rules"
#: The file format marker of an exported workbook (in its hidden ``_govdata`` sheet).
EXPORT_FORMAT = "govdata-quarantine-export"
EXPORT_VERSION = 1
DATA_SHEET = "隔离数据"
RULES_SHEET = "规则说明"
HELP_SHEET = "使用说明"
META_SHEET = "_govdata"
EXCEL_ROWS = 1_048_576
STAGE_ZH = {"collect": "读取", "cleanse": "清洗", "quality": "质检"}
RESUBMIT_RE = re.compile(r"^(?P<root>.+)-resubmit-(?P<n>\d+)$")
#: Shown instead of an unreadable record of a dataset with sensitive columns (it may hold them in clear).
WITHHELD = "（含敏感项，原始记录不显示）withheld: the record may hold sensitive values"
_QUOTED = "'[^']*'|\"[^\"]*\""


class ResubmissionError(TerminalError):
    """A resubmitted file cannot be used as it is: names the file, sheet, row or column."""


# --- building the quarantine of a run ----------------------------------------------------------


def display(value: str | None, rule: MaskRule | str, null_tokens: Sequence[str]) -> str | None:
    """How a sensitive source value is shown in the quarantine: null tokens as they are, else masked."""
    if value is None:
        return None
    stripped = value.strip(BLANKS)
    if stripped in null_tokens:
        return stripped
    return mask(value, rule)


def display_sql(expr: str, rule: MaskRule | str, null_tokens: Sequence[str]) -> str:
    """:func:`display` as DuckDB SQL over a VARCHAR expression."""
    stripped = f"trim({expr}, {lit(BLANKS)})"
    tokens = "(" + ", ".join(lit(t) for t in null_tokens) + ")" if null_tokens else "(NULL)"
    return f"(CASE WHEN {stripped} IN {tokens} THEN {stripped} ELSE {mask_sql(expr, rule)} END)"


def root_run(run_id: str) -> str:
    """The original run of a resubmission run id (``R-resubmit-2`` → ``R``); other ids unchanged."""
    match = RESUBMIT_RE.match(run_id)
    return match.group("root") if match else run_id


def build(
    spec: DatasetSpec,
    *,
    landing: Path,
    staging: Path,
    target: Path,
    failures: Path | None,
    run_id: str,
    logical_date: str,
) -> int:
    """Write ``target/quarantine.parquet`` and ``quarantine.json`` for one run; return the row count.

    Sensitive columns are masked in SQL (never pulled through Python). Reasons never quote a
    sensitive value: the cleanse step already withholds them, and as a second guard any
    occurrence of the row's own sensitive values in its reasons is replaced by ``***``.
    """
    target.mkdir(parents=True, exist_ok=True)
    plan = masking_plan(spec)
    tokens = list(spec.cleanse.null_tokens)
    con = connect(target / ".spill")
    try:
        con.execute(f"CREATE VIEW landing AS {landing_sql(landing / DATA_FILE)}")
        present = {r[0] for r in con.execute("DESCRIBE landing").fetchall()}
        values, nulls, guard, clears = [], [], "r", []
        for c in spec.columns:
            nulls.append(f"NULL::VARCHAR AS {ident(c.name)}")
            if c.source_name not in present:
                values.append(f"NULL::VARCHAR AS {ident(c.name)}")
                continue
            text = f"CAST(l.{ident(c.source_name)} AS VARCHAR)"
            if c.sensitive:
                values.append(f"{display_sql(text, plan[c.name], tokens)} AS {ident(c.name)}")
                clear = f"trim({text}, {lit(BLANKS)})"
                guard = f"CASE WHEN length({clear}) >= 2 THEN replace({guard}, {clear}, '***') ELSE {guard} END"
                clears.append(clear)
            else:
                values.append(f"{text} AS {ident(c.name)}")

        def guarded(reasons: str) -> str:
            if not clears:
                return reasons
            # The guard (a lambda per reason) only for the rows whose reasons contain one of
            # their own sensitive values: the others are left as they are either way.
            found = " OR ".join(f"contains(array_to_string({reasons}, chr(0)), {clear})" for clear in clears)
            return f"CASE WHEN {found} THEN list_transform({reasons}, lambda r: {guard}) ELSE {reasons} END"

        parts = []
        rejects = landing / REJECTS_FILE
        if rejects.is_file():
            reason, raw = "reason", "raw"
            if plan:
                reason = f"regexp_replace(reason, {lit(_QUOTED)}, '***', 'g')"
                raw = f"CASE WHEN raw IS NULL THEN NULL ELSE {lit(WITHHELD)} END"
            parts.append(
                f"SELECT {ident(ROW_COLUMN)}, 'collect' AS {STAGE}, [{reason}] AS {REASONS}, {raw} AS {RAW}, "
                f"{', '.join(nulls)} FROM read_parquet({path_lit(rejects)})"
            )
        # The rows quarantined after collection (cast failures, gate failures) are joined with the
        # landing once, whatever their cause: one scan of the landed rows, not one per cause.
        keyed = []
        cast_failed = staging / cleanse_mod.CAST_FAILED_FILE
        if cast_failed.is_file():
            keyed.append(
                f"SELECT {ident(ROW_COLUMN)}, 'cleanse' AS {STAGE}, {cleanse_mod.REASONS} AS _reasons "
                f"FROM read_parquet({path_lit(cast_failed)})"
            )
        if failures is not None:
            keyed.append(
                f"SELECT {ident(ROW_COLUMN)}, 'quality' AS {STAGE}, list(expectation ORDER BY expectation) AS _reasons "
                f"FROM read_parquet({path_lit(failures)}) GROUP BY 1"
            )
        if keyed:
            parts.append(
                f"SELECT l.{ident(ROW_COLUMN)}, k.{STAGE}, {guarded('k._reasons')} AS {REASONS}, "
                f"NULL::VARCHAR AS {RAW}, {', '.join(values)} FROM ({' UNION ALL '.join(keyed)}) k "
                f"JOIN landing l USING ({ident(ROW_COLUMN)})"
            )
        out = target / QUARANTINE_FILE
        info = target / INFO_FILE
        if not parts:
            out.unlink(missing_ok=True)
            info.unlink(missing_ok=True)
            return 0
        copy_to_parquet(con, " UNION ALL ".join(parts) + " ORDER BY 1", out)
        by_stage = dict(
            con.execute(f"SELECT {STAGE}, count(*) FROM read_parquet({path_lit(out)}) GROUP BY 1").fetchall()
        )
        causes = con.execute(
            f"SELECT {STAGE}, CASE WHEN {STAGE} = 'cleanse' THEN split_part(r, ':', 1) || ':' || split_part(r, ':', 2) "
            f"WHEN {STAGE} = 'collect' THEN 'collect' ELSE r END AS cause, count(DISTINCT {ident(ROW_COLUMN)}) "
            f"FROM (SELECT {ident(ROW_COLUMN)}, {STAGE}, unnest({REASONS}) AS r FROM read_parquet({path_lit(out)})) "
            "GROUP BY 1, 2 ORDER BY 3 DESC, 2"
        ).fetchall()
    finally:
        con.close()
        shutil.rmtree(target / ".spill", ignore_errors=True)
    rows = sum(int(n) for n in by_stage.values())
    manifest = landing / "manifest.json"
    landing_sha = json.loads(manifest.read_text(encoding="utf-8")).get("landing_sha256") if manifest.is_file() else None
    document = {
        "dataset": spec.id,
        "run_id": run_id,
        "logical_date": logical_date,
        "resubmission_of": root_run(run_id) if RESUBMIT_RE.match(run_id) else None,
        "rows": rows,
        "by_stage": {k: int(by_stage.get(k, 0)) for k in STAGE_ZH},
        "causes": [{"stage": s, "cause": c, "rows": int(n)} for s, c, n in causes],
        "columns": [
            {"name": c.name, "title": c.title, "type": c.type, "source": c.source_name, "sensitive": c.sensitive}
            for c in spec.columns
        ],
        "primary_key": spec.primary_key,
        "masking": {k: v.value for k, v in plan.items()},
        "null_tokens": tokens,
        "spec_path": str(spec.path) if spec.path else None,
        "landing_sha256": landing_sha,
        "created_at": _now(),
    }
    _write_json(info, document)
    ledger = target / LEDGER_FILE
    if ledger.is_file():
        old = json.loads(ledger.read_text(encoding="utf-8"))
        if old.get("landing_sha256") != landing_sha:
            # The run was collected again: the old ledger speaks of other rows. Keep it, out of the way.
            ledger.rename(target / f"resubmissions.superseded-{uuid.uuid4().hex[:8]}.json")
    log.info(
        "quarantine %s/%s: %d rows (%s)", spec.id, run_id, rows, ", ".join(f"{k} {v}" for k, v in by_stage.items())
    )
    return rows


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write_json(path: Path, document: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


# --- reading the quarantine --------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineRun:
    """One run's quarantine folder, as ``quarantine.json`` describes it (plus the ledger)."""

    folder: Path
    info: dict[str, Any]
    ledger: dict[str, Any] | None = None

    @property
    def dataset(self) -> str:
        return str(self.info["dataset"])

    @property
    def run_id(self) -> str:
        return str(self.info["run_id"])

    @property
    def rows(self) -> int:
        return int(self.info["rows"])

    @property
    def columns(self) -> list[dict[str, Any]]:
        return list(self.info["columns"])

    @property
    def is_resubmission(self) -> bool:
        return bool(self.info.get("resubmission_of"))

    @property
    def accepted(self) -> int:
        """Rows of this (original) run accepted by resubmissions so far."""
        states = (self.ledger or {}).get("rows", {})
        return sum(1 for s in states.values() if s.get("state") == "accepted")

    @property
    def outstanding(self) -> int:
        return 0 if self.is_resubmission else self.rows - self.accepted


def _load_run(folder: Path) -> QuarantineRun | None:
    info_path = folder / INFO_FILE
    if not info_path.is_file() or not (folder / QUARANTINE_FILE).is_file():
        return None
    info = json.loads(info_path.read_text(encoding="utf-8"))
    ledger_path = folder / LEDGER_FILE
    ledger = json.loads(ledger_path.read_text(encoding="utf-8")) if ledger_path.is_file() else None
    return QuarantineRun(folder, info, ledger)


def list_runs(workspace: Workspace, dataset: str | None = None) -> list[QuarantineRun]:
    """Every run with quarantined rows (newest logical date first), optionally of one dataset."""
    base = workspace.root / "quarantine"
    if not base.is_dir():
        return []
    folders = [base / dataset] if dataset else sorted(p for p in base.iterdir() if p.is_dir())
    found = []
    for ds in folders:
        if not ds.is_dir():
            continue
        for folder in ds.iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                run = _load_run(folder)
                if run is not None:
                    found.append(run)
    # dataset, then newest original run first, each followed by its resubmissions in order
    found.sort(key=lambda r: _attempt_number(r.run_id))
    found.sort(key=lambda r: (str(r.info.get("logical_date")), root_run(r.run_id)), reverse=True)
    found.sort(key=lambda r: r.dataset)
    return found


def _attempt_number(run_id: str) -> int:
    match = RESUBMIT_RE.match(run_id)
    return int(match.group("n")) if match else 0


def _known_datasets(workspace: Workspace) -> list[str]:
    base = workspace.root / "quarantine"
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def find_run(workspace: Workspace, dataset: str, run_id: str | None = None) -> QuarantineRun:
    """The original run to work on: ``run_id`` (a resubmission id means its original run), else the
    newest run of ``dataset`` that still has rows to correct."""
    runs = list_runs(workspace, dataset)
    if not runs:
        import difflib

        near = difflib.get_close_matches(dataset, _known_datasets(workspace), n=1)
        raise GovdataError(
            f"no quarantined rows for dataset {dataset!r} in {workspace.root}",
            hint=(f"did you mean {near[0]!r}? " if near else "") + "`govdata quarantine list` shows the runs",
        )
    if run_id is not None:
        wanted = root_run(run_id)
        for run in runs:
            if run.run_id == wanted:
                return run
        raise GovdataError(
            f"dataset {dataset}: run {run_id!r} has no quarantine",
            hint="runs with quarantined rows: " + ", ".join(r.run_id for r in runs if not r.is_resubmission),
        )
    for run in runs:
        if not run.is_resubmission and run.outstanding > 0:
            return run
    raise GovdataError(
        f"dataset {dataset}: every quarantined row has been accepted by a resubmission",
        hint="give --run to look at an earlier run; `govdata quarantine list` shows them",
    )


def _ledger_states(run: QuarantineRun) -> dict[int, dict[str, Any]]:
    return {int(k): v for k, v in ((run.ledger or {}).get("rows") or {}).items()}


def _read_rows(
    folder: Path,
    *,
    include: Sequence[int] | None = None,
    exclude: Sequence[int] = (),
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rows of a quarantine file by row number (only ``include``, never ``exclude``), lowest first."""
    con = connect()
    try:
        where = []
        for name, ids in (("include", include), ("exclude", exclude)):
            if ids is None:
                continue
            con.execute(f"CREATE TEMP TABLE {name} (id BIGINT)")
            if ids:
                con.executemany(f"INSERT INTO {name} VALUES (?)", [(int(i),) for i in ids])
            where.append(f"{ident(ROW_COLUMN)} {'' if name == 'include' else 'NOT '}IN (SELECT id FROM {name})")
        query = f"SELECT * FROM read_parquet({path_lit(folder / QUARANTINE_FILE)})"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += f" ORDER BY {ident(ROW_COLUMN)}" + (f" LIMIT {int(limit)}" if limit is not None else "")
        cursor = con.execute(query)
        names = [d[0] for d in cursor.description or []]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    finally:
        con.close()


def outstanding_rows(workspace: Workspace, run: QuarantineRun, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of an original run still in quarantine (the first ``limit``), each as its latest
    attempt shows it.

    A row quarantined again by a resubmission is shown with that resubmission's values and
    reasons (``_govdata_run`` names the run the values come from); rows a resubmission accepted
    are left out.
    """
    states = _ledger_states(run)
    rows = [{**r, RUN: run.run_id} for r in _read_rows(run.folder, exclude=list(states), limit=limit)]
    latest: dict[str, list[int]] = {}
    for key, state in states.items():
        if state.get("state") == "quarantined":
            latest.setdefault(str(state["run"]), []).append(key)
    for attempt, ids in sorted(latest.items()):
        folder = workspace.quarantine(run.dataset, attempt)
        if not (folder / QUARANTINE_FILE).is_file():
            raise GovdataError(
                f"{folder}: the quarantine of resubmission {attempt} is missing",
                hint="the workspace was changed by hand; restore the folder from a backup",
            )
        rows += [{**r, RUN: attempt} for r in _read_rows(folder, include=ids, limit=limit)]
    rows.sort(key=lambda r: int(r[ROW_COLUMN]))
    return rows if limit is None else rows[:limit]


# --- reasons in plain Chinese ------------------------------------------------------------------


_LABEL = r"(?P<label>.*?)\((?P<col>[a-z][a-z0-9_]*)\)"
_CAST_RE = re.compile(
    rf"^cast_failed:{_LABEL}: cannot read (?:\"(?P<value>.*)\"|the value \(sensitive, not shown\)) as (?P<type>\w+)$",
    re.S,
)
_UNMAPPED_RE = re.compile(
    rf"^unmapped_code:{_LABEL}: (?:\"(?P<value>.*)\"|the value \(sensitive, not shown\)) is not in the code dictionary$",
    re.S,
)
_KEY_RE = re.compile(r"^(?P<kind>duplicate_key|published_duplicate):(?P<label>[^:]*): (?P<rest>.*)$", re.S)
_FILTERED_RE = re.compile(r"^filtered:(?P<rule>[^:]*): (?P<rest>.*)$", re.S)
_READ_RE = re.compile(r"^(?P<unit>line|record|row) (?P<n>\d+): (?P<rest>.*)$", re.S)
_FIELDS_RE = re.compile(r"expected (\d+) fields, found (\d+)")
_TYPE_ZH = {
    "date": "不是有效日期",
    "timestamp": "不是有效的日期时间",
    "integer": "不是整数",
    "float": "不是有效数字",
    "decimal": "不是有效数字",
    "money": "不是有效金额",
    "boolean": "不是有效的是/否值",
}


def _titles_of(label: str) -> str:
    found = re.findall(r"([^()+]+)\(([a-z][a-z0-9_]*)\)", label)
    return "、".join(t for t, _ in found) if found else label


def _bound(value: Any) -> str:
    text = str(value)
    return text.removesuffix("T00:00:00") if re.match(r"^\d{4}-\d{2}-\d{2}T00:00:00$", text) else text


def _resident_id_problem(value: str | None) -> str:
    if value is None or value == "":
        return "为空"
    if not re.fullmatch(r"[0-9]{17}[0-9X]", value):
        return "应为 18 位（前 17 位为数字，末位为数字或 X）"
    try:
        born = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "中的出生日期不是有效日期"
    if born > dt.datetime.now(dt.UTC).date():
        return "中的出生日期晚于今天"
    if not is_valid_resident_id(value):
        return "校验位错误"
    return "不符合规则"


def _mobile_problem(value: str | None) -> str:
    """What is wrong with a mobile number, without quoting it."""
    if value is None or value == "":
        return "为空"
    if re.search(r"\s", value):
        return "含有空格，请只填写 11 位数字"
    if re.fullmatch(r"\+?86[0-9]{11}", value):
        return "带有 +86 前缀，请只填写 11 位数字"
    if not value.isascii() or not value.isdigit():
        return "含有数字以外的字符"
    if len(value) != 11:
        return f"应为 11 位数字（实际 {len(value)} 位）"
    if not re.fullmatch(r"1[3-9][0-9]{9}", value):
        return "应以 13–19 开头"
    return "格式不正确"


def _consistency_problem(values: Mapping[str, Any], kwargs: Mapping[str, Any], titles: Mapping[str, str]) -> str:
    """Which of birth date and sex disagrees with the resident ID, without quoting either."""
    rid = str(values.get(str(kwargs.get("column"))) or "")
    id_title = titles.get(str(kwargs.get("column")), "公民身份号码")
    if len(rid) == 15 and rid.isdigit():
        rid = rid[:6] + "19" + rid[6:] + "0"  # the check digit does not matter here
    wrong = []
    birth_col = kwargs.get("birth_date_column")
    birth = values.get(str(birth_col)) if birth_col else None
    if birth is not None and len(rid) == 18 and str(birth)[:10].replace("-", "") != rid[6:14]:
        wrong.append(titles.get(str(birth_col), str(birth_col)))
    sex_col = kwargs.get("sex_column")
    sex = values.get(str(sex_col)) if sex_col else None
    sexes = kwargs.get("sex_values") or {"male": ["1", "男"], "female": ["2", "女"]}
    if sex is not None and len(rid) == 18 and rid[16].isdigit():
        male = str(sex) in [str(v) for v in sexes.get("male", [])]
        female = str(sex) in [str(v) for v in sexes.get("female", [])]
        if (male or female) and male != (int(rid[16]) % 2 == 1):
            wrong.append(titles.get(str(sex_col), str(sex_col)))
    named = [titles.get(str(c), str(c)) for c in (birth_col, sex_col) if c]
    return f"{'、'.join(wrong or named)}与{id_title}不一致"


def _uscc_problem(value: str | None) -> str:
    if value is None or value == "":
        return "为空"
    problem = uscc_problem(value) or ""
    if "characters, a USCC has 18" in problem:
        return f"应为 18 位（实际 {len(value)} 位）"
    if "alphabet" in problem:
        return "含有不允许的字符（不使用 I、O、S、V、Z）"
    if "registering-authority" in problem:
        return "登记管理部门代码（第 1 位）无效"
    if "entity-type" in problem:
        return "机构类别代码（第 2 位）无效"
    if "area code" in problem:
        return "行政区划码（第 3–8 位）不是 6 位数字"
    if "check character" in problem:
        return "校验位错误"
    return "不符合规则"


@dataclass
class _Explainer:
    """Turns reasons into sentences for one run's rows (expectations from its validation result)."""

    titles: dict[str, str]
    sensitive: set[str]
    expectations: dict[str, tuple[str, dict[str, Any]]]
    masking: dict[str, str] = field(default_factory=dict)
    clear: dict[int, dict[str, Any]] = field(default_factory=dict)  # row → staged values of checked IDs
    clear_columns: set[str] = field(default_factory=set)

    def title(self, column: Any) -> str:
        return self.titles.get(str(column), str(column))

    def shown(self, column: str, row: Mapping[str, Any]) -> str:
        """``：value`` for a non-sensitive column's value, nothing for a sensitive one."""
        if column in self.sensitive:
            return ""
        value = row.get(column)
        return "：（空）" if value is None or str(value).strip(BLANKS) == "" else f"：{value}"

    def explain(self, reason: str, stage: str, row: Mapping[str, Any]) -> str:
        if stage == "collect":
            return self._read(reason)
        if stage == "cleanse":
            return self._cleanse(reason)
        return self._expectation(reason, row)

    def _read(self, reason: str) -> str:
        match = _READ_RE.match(reason)
        where, rest = "", reason
        if match:
            unit = {"line": "第 {} 行", "record": "第 {} 条记录", "row": "第 {} 行"}[match.group("unit")]
            where, rest = unit.format(match.group("n")) + "：", match.group("rest")
        fields = _FIELDS_RE.search(rest)
        if fields:
            return f"读取失败，{where}字段数不对：应为 {fields.group(1)} 个，实际 {fields.group(2)} 个"
        if "quot" in rest:
            return f"读取失败，{where}引号不配对"
        if "undecodable" in rest or "U+FFFD" in rest:
            return f"读取失败，{where}含有无法识别的字符（文件编码有误）"
        if "right of the last header column" in rest:
            return f"读取失败，{where}表头以外的列中有值"
        return f"读取失败，{where}{rest}"

    def _cleanse(self, reason: str) -> str:
        cast = _CAST_RE.match(reason)
        if cast:
            title = cast.group("label") or self.title(cast.group("col"))
            what = _TYPE_ZH.get(cast.group("type"), f"不能转换为 {cast.group('type')}")
            value = cast.group("value")
            shown = f"：{value}" if value is not None else "（敏感项，原值不显示）"
            return f"{title}{what}{shown}"
        unmapped = _UNMAPPED_RE.match(reason)
        if unmapped:
            title = unmapped.group("label") or self.title(unmapped.group("col"))
            value = unmapped.group("value")
            return f"{title}的代码不在代码字典中" + (f"：{value}" if value is not None else "")
        key = _KEY_RE.match(reason)
        if key:
            titles = _titles_of(key.group("label"))
            if key.group("kind") == "duplicate_key":
                other = re.search(r"row (\d+)", key.group("rest"))
                return f"主键（{titles}）与本次重新提交的第 {other.group(1) if other else '?'} 行相同"
            version = re.search(r"version v?(\d+)", key.group("rest"))
            return f"主键（{titles}）与已发布版本 v{version.group(1) if version else '?'} 中的记录相同"
        filtered = _FILTERED_RE.match(reason)
        if filtered:
            return f"符合过滤规则「{filtered.group('rule')}」，不予发布：{filtered.group('rest')}"
        return f"清洗失败：{reason}"

    def _expectation(self, name: str, row: Mapping[str, Any]) -> str:
        found = self.expectations.get(name)
        if found is None:
            return f"未通过质量规则：{name}"
        kind, kwargs = found
        col = kwargs.get("column")
        title = self.title(col) if col else ""
        column = str(col) if col else ""
        short = kind.removeprefix("expect_column_values_to_").removeprefix("expect_")
        if short == "not_be_null":
            return f"缺少必填项：{title}"
        if short == "be_valid_uscc":
            value = self.clear.get(int(row[ROW_COLUMN]), {}).get(column)
            return f"{title}{_uscc_problem(value)}"
        if short == "be_valid_cn_resident_id":
            value = self.clear.get(int(row[ROW_COLUMN]), {}).get(column)
            return f"{title}{_resident_id_problem(value)}"
        if short == "be_valid_cn_mobile" or (short == "match_regex" and self.masking.get(column) == MaskRule.MOBILE):
            value = self.clear.get(int(row[ROW_COLUMN]), {}).get(column)
            return f"{title}{_mobile_problem(value if column in self.clear_columns else row.get(column))}"
        if short == "be_valid_cn_org_code":
            return f"{title}不是有效的组织机构代码（格式或校验位错误）{self.shown(column, row)}"
        if short == "be_valid_cn_admin_division":
            return f"{title}不是有效的行政区划代码{self.shown(column, row)}"
        if short == "be_in_set":
            return f"{title}的取值不在允许的范围内{self.shown(column, row)}"
        if short == "not_be_in_set":
            return f"{title}的取值属于不允许的值{self.shown(column, row)}"
        if short == "be_between":
            low, high = kwargs.get("min_value"), kwargs.get("max_value")
            span = (
                f"{_bound(low)} 至 {_bound(high)}"
                if low is not None and high is not None
                else (f"不小于 {_bound(low)}" if low is not None else f"不大于 {_bound(high)}")
            )
            return f"{title}超出允许范围（{span}）{self.shown(column, row)}"
        if kind == "expect_column_value_lengths_to_be_between":
            return f"{title}的长度应在 {kwargs.get('min_value', 0)} 到 {kwargs.get('max_value', '不限')} 个字符之间"
        if kind == "expect_column_value_lengths_to_equal":
            return f"{title}的长度应为 {kwargs.get('value')} 个字符"
        if short in ("match_regex", "match_regex_list", "match_like_pattern", "match_like_pattern_list"):
            return f"{title}格式不正确{self.shown(column, row)}"
        if short in ("not_match_regex", "not_match_regex_list", "not_match_like_pattern"):
            return f"{title}含有不允许的内容{self.shown(column, row)}"
        if short in ("match_strftime_format", "be_dateutil_parseable"):
            return f"{title}不是规定格式的日期{self.shown(column, row)}"
        if kind == "expect_cn_resident_id_to_match_birth_date_and_sex":
            return _consistency_problem(self.clear.get(int(row[ROW_COLUMN]), {}), kwargs, self.titles)
        if short == "be_unique":
            return f"{title}重复"
        if short == "be_null":
            return f"{title}应为空"
        if kind == "expect_column_pair_values_to_be_equal":
            return f"{self.title(kwargs.get('column_A'))}与{self.title(kwargs.get('column_B'))}不一致"
        if kind == "expect_column_pair_values_a_to_be_greater_than_b":
            return f"{self.title(kwargs.get('column_A'))}应大于{self.title(kwargs.get('column_B'))}"
        return f"未通过质量规则：{name}"


def describe_expectation(kind: str, kwargs: Mapping[str, Any], titles: Mapping[str, str]) -> str:
    """One sentence saying what an expectation requires (the second sheet of an export)."""

    def t(key: str) -> str:
        value = kwargs.get(key)
        return titles.get(str(value), str(value))

    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    texts = {
        "expect_column_values_to_not_be_null": f"{t('column')}为必填项，不能为空",
        "expect_column_values_to_be_valid_uscc": f"{t('column')}须为有效的统一社会信用代码（GB 32100-2015：18 位，校验位正确）",
        "expect_column_values_to_be_valid_cn_resident_id": f"{t('column')}须为有效的公民身份号码（GB 11643-1999：18 位，出生日期真实且不晚于今天，校验位正确）",
        "expect_column_values_to_be_valid_cn_mobile": f"{t('column')}须为有效的手机号码（11 位数字，以 13–19 开头，可带 +86）",
        "expect_column_values_to_be_valid_cn_org_code": f"{t('column')}须为有效的组织机构代码（GB 11714-1997）",
        "expect_column_values_to_be_valid_cn_admin_division": f"{t('column')}须为有效的行政区划代码（GB/T 2260）",
        "expect_column_values_to_be_in_set": f"{t('column')}须为以下取值之一：{'、'.join(str(v) for v in kwargs.get('value_set') or [])}",
        "expect_column_values_to_not_be_in_set": f"{t('column')}不能为以下取值：{'、'.join(str(v) for v in kwargs.get('value_set') or [])}",
        "expect_column_values_to_be_between": f"{t('column')}须在 {_bound(low)} 至 {_bound(high)} 之间"
        if low is not None and high is not None
        else f"{t('column')}须{'不小于 ' + _bound(low) if low is not None else '不大于 ' + _bound(high)}",
        "expect_column_value_lengths_to_be_between": f"{t('column')}的长度须在 {low if low is not None else 0} 到 {high if high is not None else '不限'} 个字符之间",
        "expect_column_value_lengths_to_equal": f"{t('column')}的长度须为 {kwargs.get('value')} 个字符",
        "expect_column_values_to_match_regex": f"{t('column')}须符合格式（正则表达式）{kwargs.get('regex')}",
        "expect_column_values_to_not_match_regex": f"{t('column')}不能含有匹配 {kwargs.get('regex')} 的内容",
        "expect_column_values_to_match_strftime_format": f"{t('column')}须为 {kwargs.get('strftime_format')} 格式的日期",
        "expect_column_values_to_be_unique": f"{t('column')}不能重复",
        "expect_column_pair_values_to_be_equal": f"{t('column_A')}须与{t('column_B')}一致",
        "expect_column_pair_values_a_to_be_greater_than_b": f"{t('column_A')}须大于{t('column_B')}",
        "expect_cn_resident_id_to_match_birth_date_and_sex": "、".join(
            t(k) for k in ("birth_date_column", "sex_column") if kwargs.get(k)
        )
        + f"须与{t('column')}一致（第 7–14 位为出生日期，第 17 位奇数为男、偶数为女）",
    }
    return texts.get(kind, f"{kind}（参数：{json.dumps(dict(kwargs), ensure_ascii=False, default=str)}）")


def _expectations_of(workspace: Workspace, dataset: str, run_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Expectation name → (type, kwargs), from the run's saved validation result (no GX import)."""
    path = workspace.reports(dataset, run_id) / "gx" / "validation_result.json"
    if not path.is_file():
        return {}
    document = json.loads(path.read_text(encoding="utf-8"))
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for result in document.get("results") or []:
        name = ((result.get("meta") or {}).get("govdata") or {}).get("name")
        config = result.get("expectation_config") or {}
        if name:
            found[str(name)] = (str(config.get("type")), dict(config.get("kwargs") or {}))
    return found


def _clear_identifiers(
    workspace: Workspace, run: QuarantineRun, attempt: str, rows: Sequence[Mapping[str, Any]], columns: set[str]
) -> dict[int, dict[str, Any]]:
    """Staged (cleansed) values of identifier columns for the rows, to say what is wrong with them.

    They come from the data's home and never leave this process: only the kind of problem is shown.
    """
    ids = [int(r[ROW_COLUMN]) for r in rows if r.get(STAGE) == "quality"]
    staged = workspace.staging(run.dataset, attempt) / cleanse_mod.STAGED_FILE
    if not ids or not columns or not staged.is_file():
        return {}
    con = connect()
    try:
        present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({path_lit(staged)})").fetchall()}
        wanted = [c for c in sorted(columns) if c in present]
        if not wanted:
            return {}
        con.execute("CREATE TEMP TABLE ids (id BIGINT)")
        con.executemany("INSERT INTO ids VALUES (?)", [(i,) for i in ids])
        cursor = con.execute(
            f"SELECT {ident(ROW_COLUMN)}, {', '.join(ident(c) for c in wanted)} FROM read_parquet({path_lit(staged)}) "
            f"WHERE {ident(ROW_COLUMN)} IN (SELECT id FROM ids)"
        )
        return {int(r[0]): dict(zip(wanted, r[1:], strict=True)) for r in cursor.fetchall()}
    finally:
        con.close()


#: Expectations whose failure is explained from the staged value (what is wrong, never the value).
_EXPLAINED_FROM_VALUE = (
    "expect_column_values_to_be_valid_uscc",
    "expect_column_values_to_be_valid_cn_resident_id",
    "expect_column_values_to_be_valid_cn_mobile",
    "expect_cn_resident_id_to_match_birth_date_and_sex",
)


def explained_rows(workspace: Workspace, run: QuarantineRun, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with ``_govdata_reason`` (plain Chinese, one sentence per reason) added."""
    titles = {c["name"]: c["title"] for c in run.columns}
    sensitive = {c["name"] for c in run.columns if c["sensitive"]}
    by_attempt: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_attempt.setdefault(str(row.get(RUN) or run.run_id), []).append(row)
    out: list[dict[str, Any]] = []
    for attempt, group in by_attempt.items():
        expectations = _expectations_of(workspace, run.dataset, attempt)
        masking = dict(run.info.get("masking") or {})
        checked = {
            str(kw.get(key))
            for kind, kw in expectations.values()
            if kind in _EXPLAINED_FROM_VALUE
            or (kind == "expect_column_values_to_match_regex" and masking.get(str(kw.get("column"))) == MaskRule.MOBILE)
            for key in ("column", "birth_date_column", "sex_column")
            if kw.get(key)
        }
        explainer = _Explainer(titles, sensitive, expectations, masking)
        explainer.clear = _clear_identifiers(workspace, run, attempt, group, checked)
        explainer.clear_columns = checked
        for row in group:
            sentences = [explainer.explain(str(r), str(row[STAGE]), row) for r in row[REASONS] or []]
            out.append({**row, REASON_TEXT: "；".join(dict.fromkeys(sentences))})
    out.sort(key=lambda r: int(r[ROW_COLUMN]))
    return out


# --- export ------------------------------------------------------------------------------------


def _header(label: str, name: str) -> str:
    return f"{label} ({name})"


def export_headers(columns: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(header, key) of every column of an export's data sheet, in order."""
    fixed = [
        ("行号（勿修改）", ROW_COLUMN),
        ("批次（勿修改）", RUN),
        ("处理环节", STAGE),
        ("问题说明", REASON_TEXT),
        ("未通过的规则", RULES),
        ("原始记录", RAW),
    ]
    items = [(_header(label, key), key) for label, key in fixed]
    for c in columns:
        label = f"{c['title']}（敏感·已脱敏）" if c["sensitive"] else str(c["title"])
        items.append((_header(label, str(c["name"])), str(c["name"])))
    return items


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote."""

    path: Path
    dataset: str
    run_id: str
    rows: int
    expectations: int


def export(workspace: Workspace, dataset: str, run_id: str | None = None, output: Path | None = None) -> ExportResult:
    """Write the rows still in quarantine for the officer to correct: xlsx (default) or csv."""
    run = find_run(workspace, dataset, run_id)
    rows = explained_rows(workspace, run, outstanding_rows(workspace, run))
    if not rows:
        raise GovdataError(
            f"{dataset} run {run.run_id}: every quarantined row has been accepted by a resubmission",
            hint="nothing to export; `govdata quarantine list` shows the accounting",
        )
    output = output or Path(f"quarantine_{dataset}_{run.run_id}.xlsx")
    suffix = output.suffix.lower()
    if suffix not in (".xlsx", ".csv"):
        raise GovdataError(f"{output}: export to .xlsx (or .csv)", hint="give --output FILE.xlsx")
    if suffix == ".xlsx" and len(rows) >= EXCEL_ROWS:
        raise GovdataError(
            f"{dataset} run {run.run_id}: {len(rows)} rows do not fit in one xlsx sheet ({EXCEL_ROWS - 1} at most)",
            hint="export to .csv instead (--output FILE.csv), or fix the source and run again",
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    headers = export_headers(run.columns)
    table = [[_cell(row, key) for _, key in headers] for row in rows]
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if suffix == ".csv":
            with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow([h for h, _ in headers])
                writer.writerows(table)
            used = len({r for row in rows for r in row[REASONS] or []})
        else:
            used = _write_workbook(tmp, workspace, run, rows, headers, table)
        tmp.replace(output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("exported %d quarantined rows of %s/%s to %s", len(rows), dataset, run.run_id, output.name)
    return ExportResult(output, dataset, run.run_id, len(rows), used)


def _cell(row: Mapping[str, Any], key: str) -> str | None:
    if key == STAGE:
        return STAGE_ZH.get(str(row[STAGE]), str(row[STAGE]))
    if key == RULES:
        return "\n".join(str(r) for r in row[REASONS] or [])
    value = row.get(key)
    return None if value is None else str(value)


def _write_workbook(
    path: Path,
    workspace: Workspace,
    run: QuarantineRun,
    rows: Sequence[Mapping[str, Any]],
    headers: Sequence[tuple[str, str]],
    table: Sequence[Sequence[str | None]],
) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    sheet = wb.create_sheet(DATA_SHEET)
    sheet.freeze_panes = "C2"
    bold = Font(bold=True)
    locked = PatternFill("solid", fgColor="D9D9D9")
    masked = PatternFill("solid", fgColor="FFF2CC")
    wrap = Alignment(wrap_text=True, vertical="top")
    sensitive = {c["name"] for c in run.columns if c["sensitive"]}
    widths = {ROW_COLUMN: 14, RUN: 24, STAGE: 10, REASON_TEXT: 48, RULES: 40, RAW: 24}
    for i, (_, key) in enumerate(headers, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = widths.get(key, 22)

    def styled(value: str | None, key: str, head: bool = False) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = "@"  # text: an edited ID or mobile stays text
        if head:
            cell.font = bold
        if key in (ROW_COLUMN, RUN):
            cell.fill = locked
        elif key in sensitive:
            cell.fill = masked
        if key in (REASON_TEXT, RULES):
            cell.alignment = wrap
        return cell

    sheet.append([styled(h, key, head=True) for h, key in headers])
    for values in table:
        sheet.append([styled(v, key) for v, (_, key) in zip(values, headers, strict=True)])

    titles = {c["name"]: c["title"] for c in run.columns}
    used: Counter[str] = Counter()
    stage_of: dict[str, str] = {}
    for row in rows:
        for reason in row[REASONS] or []:
            cause = _cause(str(row[STAGE]), str(reason))
            used[cause] += 1
            stage_of[cause] = str(row[STAGE])
    expectations: dict[str, tuple[str, dict[str, Any]]] = {}
    for attempt in {str(r.get(RUN)) for r in rows}:
        expectations.update(_expectations_of(workspace, run.dataset, attempt))
    rules = wb.create_sheet(RULES_SHEET)
    for i, width in enumerate((44, 10, 40, 60, 14), start=1):
        rules.column_dimensions[get_column_letter(i)].width = width
    rules.append([styled(h, "", head=True) for h in ("规则 (rule)", "环节", "类型 (type)", "说明", "本文件中的行数")])
    for cause, count in sorted(used.items(), key=lambda kv: (-kv[1], kv[0])):
        stage = stage_of[cause]
        kind, text = _describe_cause(stage, cause, expectations, titles)
        rules.append([cause, STAGE_ZH.get(stage, stage), kind, styled(text, REASON_TEXT), count])

    help_sheet = wb.create_sheet(HELP_SHEET)
    help_sheet.column_dimensions["A"].width = 110
    for line in _help_lines(run):
        help_sheet.append([line])

    meta = wb.create_sheet(META_SHEET)
    meta.sheet_state = "hidden"
    for key, value in (
        ("format", EXPORT_FORMAT),
        ("version", EXPORT_VERSION),
        ("dataset", run.dataset),
        ("run", run.run_id),
        ("logical_date", run.info.get("logical_date")),
        ("landing_sha256", run.info.get("landing_sha256")),
        ("rows", len(rows)),
        ("columns", json.dumps([c["name"] for c in run.columns])),
        ("exported_at", _now()),
    ):
        meta.append([key, value])
    wb.save(path)
    return len(used)


def _cause(stage: str, reason: str) -> str:
    if stage == "collect":
        return "collect"
    if stage == "cleanse":
        return ":".join(reason.split(":")[:2])
    return reason


def _describe_cause(
    stage: str, cause: str, expectations: Mapping[str, tuple[str, dict[str, Any]]], titles: Mapping[str, str]
) -> tuple[str, str]:
    if stage == "collect":
        return "read", "源文件中的这条记录无法读取（字段数不对、引号不配对或编码错误）；请在右侧各列中填写该记录的内容"
    if stage == "cleanse":
        kind, _, label = cause.partition(":")
        match = re.match(_LABEL + r"$", label)
        title = (match.group("label") or titles.get(match.group("col"), "")) if match else _titles_of(label)
        texts = {
            "cast_failed": f"{title}的值无法转换为声明的数据类型（日期、数字等）",
            "unmapped_code": f"{title}的值不在代码字典中",
            "duplicate_key": f"主键（{_titles_of(label)}）与本次重新提交的另一行相同",
            "published_duplicate": f"主键（{_titles_of(label)}）已在已发布的版本中；已发布的记录不会被覆盖",
            "filtered": f"符合过滤规则「{label}」，该行不予发布",
        }
        return kind, texts.get(kind, cause)
    found = expectations.get(cause)
    if found is None:
        return "", f"质量规则 {cause}"
    return found[0], describe_expectation(found[0], found[1], titles)


def _help_lines(run: QuarantineRun) -> list[str]:
    sensitive = [f"{c['title']} ({c['name']})" for c in run.columns if c["sensitive"]]
    return [
        f"数据集 {run.dataset}，批次 {run.run_id}（业务日期 {run.info.get('logical_date')}）的隔离数据",
        "",
        "1. 在「隔离数据」表中更正各行的值，「问题说明」列说明每行未通过的原因，「规则说明」表解释每条规则。",
        "2. 不要修改「行号」和「批次」两列，也不要增加行：重新提交按行号找到原始记录。",
        "3. 暂不处理的行可以删除：它们留在隔离区，可以以后再导出、再提交。",
        "4. 敏感项（" + ("、".join(sensitive) or "无") + "）已脱敏显示：保留掩码不变即按原值提交；"
        "如需更正，请填写完整的新值。",
        "5. 保存后执行：govdata quarantine resubmit 文件名.xlsx",
        "   更正后的行重新经过清洗和质量检查，通过的行与当前已发布版本合并为新版本，仍不通过的行重新进入隔离区。",
        "6. 另存为 CSV（UTF-8）也可以提交，需加 --dataset 指明数据集。",
    ]


# --- reading a resubmitted file ----------------------------------------------------------------


@dataclass(frozen=True)
class SubmittedRow:
    """One row of a resubmitted file."""

    line: int  # the row's number in the sheet or CSV file (header = 1)
    row_id: int
    run_id: str
    values: dict[str, str | None]  # spec column → text as submitted


@dataclass(frozen=True)
class Submission:
    """A resubmitted file, read and checked against its export's shape."""

    path: Path
    dataset: str
    run_id: str  # the original run
    rows: list[SubmittedRow]
    landing_sha256: str | None = None
    notes: list[str] = field(default_factory=list)


def _text(value: Any) -> str | None:
    """A cell as text: numbers Excel made of digits are written back without a decimal point."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value)
    return None if text == "" else text


def _read_table(path: Path) -> tuple[list[list[Any]], dict[str, str], list[str], str]:
    """Header + rows of the data sheet (or the CSV), the export's metadata, notes, and the sheet name."""
    if not path.is_file():
        raise ResubmissionError(f"{path}: file not found", hint="give the path of the corrected export")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return _read_workbook(path)
    if suffix == ".csv":
        return _read_csv(path), {}, [], "CSV"
    raise ResubmissionError(
        f"{path}: not an xlsx or csv file",
        hint="resubmit the workbook from `govdata quarantine export` (or that sheet saved as CSV)",
    )


def _read_workbook(path: Path) -> tuple[list[list[Any]], dict[str, str], list[str], str]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise ResubmissionError(
            f"{path}: cannot be read as an xlsx workbook ({type(exc).__name__}: {exc})",
            hint="resubmit the workbook from `govdata quarantine export`, saved by Excel or WPS as .xlsx",
        ) from None
    try:
        if META_SHEET not in wb.sheetnames:
            raise ResubmissionError(
                f"{path}: not a quarantine export (it has no {META_SHEET} sheet)",
                hint="export the rows with `govdata quarantine export DATASET`, correct that file and resubmit it",
            )
        meta: dict[str, str] = {}
        for row in wb[META_SHEET].iter_rows(values_only=True):
            if row and row[0] is not None:
                meta[str(row[0])] = "" if len(row) < 2 or row[1] is None else str(row[1])
        if meta.get("format") != EXPORT_FORMAT:
            raise ResubmissionError(
                f"{path}: the {META_SHEET} sheet does not describe a quarantine export",
                hint="export the rows again with `govdata quarantine export DATASET`",
            )
        if meta.get("version") != str(EXPORT_VERSION):
            raise ResubmissionError(
                f"{path}: export format version {meta.get('version')!r} is not supported (this govdata reads {EXPORT_VERSION})",
                hint="export the rows again with this version of govdata",
            )
        if DATA_SHEET not in wb.sheetnames:
            raise ResubmissionError(
                f"{path}: the sheet {DATA_SHEET!r} with the rows is missing (sheets: {', '.join(wb.sheetnames)})",
                hint=f"keep the rows in the sheet {DATA_SHEET!r}; do not rename it",
            )
        extra = [s for s in wb.sheetnames if s not in (DATA_SHEET, RULES_SHEET, HELP_SHEET, META_SHEET)]
        notes = [f"ignored sheet(s) {', '.join(repr(s) for s in extra)}: only {DATA_SHEET!r} is read"] if extra else []
        rows = [list(r) for r in wb[DATA_SHEET].iter_rows(values_only=True)]
    finally:
        wb.close()
    return rows, meta, notes, DATA_SHEET


def _read_csv(path: Path) -> list[list[Any]]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte sequence except a few invalid ones
        raise ResubmissionError(f"{path}: neither UTF-8 nor GB18030 text", hint="save the CSV as UTF-8")
    try:
        return [list(r) for r in csv.reader(io.StringIO(text, newline=""), strict=True)]
    except csv.Error as exc:
        raise ResubmissionError(
            f"{path}: not a readable CSV file: {exc}", hint="save the sheet as CSV (UTF-8)"
        ) from None


_HEADER_RE = re.compile(r"^(?P<label>.*?)\s*[(（]\s*(?P<key>_govdata_[a-z_]+|[a-z][a-z0-9_]*)\s*[)）]\s*$", re.S)


def read_submission(path: Path, *, dataset: str | None, workspace: Workspace) -> Submission:
    """Read and check a corrected export (xlsx, or its data sheet saved as CSV)."""
    table, meta, notes, sheet = _read_table(path)
    where = f"{path}" + (f", sheet {sheet}" if sheet != "CSV" else "")
    # blank lines are not rows (spreadsheets keep them); the others keep their line numbers
    numbered = [(n, row) for n, row in enumerate(table, start=1) if any(_text(v) is not None for v in row)]
    if not numbered:
        raise ResubmissionError(f"{where}: the file is empty", hint="resubmit the exported file with corrected rows")
    header = [(_text(v) or "").strip() for v in numbered[0][1]]
    while header and header[-1] == "":
        header.pop()
    keys: list[str | None] = []
    bad = []
    for i, text in enumerate(header, start=1):
        match = _HEADER_RE.match(text)
        if text == "":
            keys.append(None)
        elif match is None:
            bad.append(f"column {i}: {text!r}")
            keys.append(None)
        else:
            keys.append(match.group("key"))
    if bad:
        raise ResubmissionError(
            f"{where}: header(s) not from a quarantine export: {'; '.join(bad)}",
            hint="keep the header row as exported: every header ends with the column name in brackets, e.g. 企业名称 (enterprise_name)",
        )
    repeated = sorted({k for k in keys if k is not None and keys.count(k) > 1})
    if repeated:
        raise ResubmissionError(f"{where}: column(s) appear twice: {', '.join(repeated)}", hint="delete the copies")
    if ROW_COLUMN not in keys or RUN not in keys:
        raise ResubmissionError(
            f"{where}: the columns 行号 ({ROW_COLUMN}) and 批次 ({RUN}) are missing",
            hint="they tie each row to its original record; export again and keep them",
        )
    if meta:
        if dataset is not None and dataset != meta.get("dataset"):
            raise ResubmissionError(
                f"{where}: the file is an export of dataset {meta.get('dataset')!r}, not {dataset!r}",
                hint="resubmit it without --dataset, or give the file exported for that dataset",
            )
        dataset = meta.get("dataset") or None
    if dataset is None:
        raise ResubmissionError(
            f"{where}: a CSV file does not say which dataset it belongs to",
            hint="add --dataset DATASET (the id in `govdata quarantine list`)",
        )
    rows: list[SubmittedRow] = []
    problems: list[str] = []
    positions = {k: i for i, k in enumerate(keys) if k is not None}
    for line, raw in numbered[1:]:
        cells = {k: _text(raw[i]) if i < len(raw) else None for k, i in positions.items()}
        beyond = [v for v in raw[len(keys) :] if _text(v) is not None]
        if beyond:
            problems.append(f"row {line}: values right of the last header column")
            continue
        row_text = cells.get(ROW_COLUMN)
        if row_text is None:
            problems.append(f"row {line}: no 行号 ({ROW_COLUMN}); rows cannot be added in a resubmission")
            continue
        try:
            row_id = int(row_text.strip())
        except ValueError:
            problems.append(f"row {line}: 行号 {row_text!r} is not a row number")
            continue
        run_text = (cells.get(RUN) or "").strip()
        if not run_text:
            problems.append(f"row {line}: no 批次 ({RUN})")
            continue
        values = {k: v for k, v in cells.items() if not k.startswith("_govdata_")}
        rows.append(SubmittedRow(line, row_id, run_text, values))
    if problems:
        raise ResubmissionError(
            f"{where}: {len(problems)} row(s) cannot be used:\n"
            + "\n".join(f"  - {p}" for p in problems[:20])
            + ("\n  …" if len(problems) > 20 else ""),
            hint="rows keep the 行号 and 批次 they were exported with; new records belong in the source system",
        )
    if not rows:
        raise ResubmissionError(f"{where}: no rows to resubmit (only the header)", hint="nothing was changed")
    roots = Counter(root_run(r.run_id) for r in rows)
    run_id = meta.get("run") or roots.most_common(1)[0][0]
    foreign = [r for r in rows if root_run(r.run_id) != run_id]
    if foreign:
        shown = ", ".join(f"row {r.line} ({r.run_id})" for r in foreign[:10])
        raise ResubmissionError(
            f"{where}: {len(foreign)} row(s) come from another run than {run_id}: {shown}",
            hint="resubmit the rows of each run in the file exported for that run",
        )
    info = workspace.quarantine(dataset, run_id) / INFO_FILE
    if not info.is_file():
        raise ResubmissionError(
            f"{where}: dataset {dataset} has no quarantine for run {run_id}",
            hint="check --dataset, and that GOVDATA_HOME is the workspace the file was exported from",
        )
    columns = [c["name"] for c in json.loads(info.read_text(encoding="utf-8"))["columns"]]
    present = {k for k in keys if k is not None and not k.startswith("_govdata_")}
    missing = [c for c in columns if c not in present]
    unknown = sorted(present - set(columns)) + sorted(
        k
        for k in keys
        if k is not None and k.startswith("_govdata_") and k not in {key for _, key in export_headers([])}
    )
    if missing or unknown:
        raise ResubmissionError(
            f"{where}: the headers differ from the export of {dataset}: "
            + "; ".join(
                p
                for p in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(unknown)}" if unknown else "",
                )
                if p
            ),
            hint=f"the data columns are: {', '.join(columns)}; keep the headers as exported",
        )
    duplicated = [k for k, n in Counter(r.row_id for r in rows).items() if n > 1]
    if duplicated:
        lines = {k: [r.line for r in rows if r.row_id == k] for k in sorted(duplicated)[:10]}
        raise ResubmissionError(
            f"{where}: row number(s) appear more than once: "
            + "; ".join(f"行号 {k} in rows {', '.join(map(str, v))}" for k, v in lines.items()),
            hint="keep one corrected copy of each row",
        )
    return Submission(path, dataset, run_id, rows, meta.get("landing_sha256") or None, notes)


# --- resubmission ------------------------------------------------------------------------------


@contextlib.contextmanager
def _lock(folder: Path, run_id: str) -> Iterator[None]:
    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        raise GovdataError(
            f"another resubmission of run {run_id} is in progress ({path})",
            hint="wait for it to finish; if none is running (it was interrupted), delete that lock file",
        ) from None
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        yield
    finally:
        path.unlink(missing_ok=True)


def _next_attempt(workspace: Workspace, dataset: str, root: str) -> int:
    used = [0]
    for base in ("landing", "staging", "quarantine", "reports"):
        folder = workspace.root / base / dataset
        if folder.is_dir():
            for p in folder.iterdir():
                match = RESUBMIT_RE.match(p.name)
                if match and match.group("root") == root:
                    used.append(int(match.group("n")))
    return max(used) + 1


def _clear_values(landing: Path, spec: DatasetSpec, ids: Sequence[int]) -> dict[int, dict[str, str | None]]:
    """The source values (as text, by spec column) of the rows ``ids`` in a landing folder."""
    if not ids or not (landing / DATA_FILE).is_file():
        return {}
    con = connect()
    try:
        con.execute(f"CREATE VIEW landing AS {landing_sql(landing / DATA_FILE)}")
        present = {r[0] for r in con.execute("DESCRIBE landing").fetchall()}
        cols = [c for c in spec.columns if c.source_name in present]
        con.execute("CREATE TEMP TABLE ids (id BIGINT)")
        con.executemany("INSERT INTO ids VALUES (?)", [(i,) for i in ids])
        select = ", ".join(f"CAST({ident(c.source_name)} AS VARCHAR)" for c in cols)
        cursor = con.execute(
            f"SELECT {ident(ROW_COLUMN)}, {select} FROM landing WHERE {ident(ROW_COLUMN)} IN (SELECT id FROM ids)"
        )
        return {int(r[0]): dict(zip([c.name for c in cols], r[1:], strict=True)) for r in cursor.fetchall()}
    finally:
        con.close()


def _write_landing(
    folder: Path, spec: DatasetSpec, rows: Sequence[tuple[int, Mapping[str, str | None]]], manifest: dict[str, Any]
) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if folder.exists():
        for f in folder.rglob("*"):
            f.chmod(0o644)
        shutil.rmtree(folder)
    tmp = folder.parent / f".{folder.name}.incoming-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    arrays = [pa.array([r for r, _ in rows], pa.int64())]
    arrays += [pa.array([values.get(c.name) for _, values in rows], pa.string()) for c in spec.columns]
    names = [ROW_COLUMN, *(c.source_name for c in spec.columns)]
    pq.write_table(pa.table(arrays, names=names), tmp / DATA_FILE, compression="zstd")
    digest = sha256_file(tmp / DATA_FILE)
    (tmp / "manifest.json").write_text(
        json.dumps({**manifest, "landing_sha256": digest}, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    for f in tmp.iterdir():
        f.chmod(0o444)
    tmp.rename(folder)
    return digest


def _cleanse_resubmission(ctx: Any, previous: Path | None, version: int | None) -> dict[str, Any]:
    """The cleanse step of a resubmission: as for any run, then every row not staged goes back to
    quarantine with its reason (duplicates of another corrected row, rows a filter rule matches,
    rows whose key is already published), so each resubmitted row ends accepted or quarantined."""
    spec: DatasetSpec = ctx.spec
    collected = ctx.read_step("collect")
    if ctx.staging.exists():
        shutil.rmtree(ctx.staging)
    res = cleanse_mod.cleanse(spec, ctx.landing / DATA_FILE, ctx.staging, where=collected["source"])
    staging: Path = ctx.staging
    staged = staging / cleanse_mod.STAGED_FILE
    names = ", ".join([ident(ROW_COLUMN), *(ident(c.name) for c in spec.columns)])
    pk = spec.primary_key
    titles = {c.name: c.title for c in spec.columns}
    label = "+".join(f"{titles[k]}({k})" for k in pk)
    rules = {f.name: f.reason or f.where for f in spec.cleanse.filters}
    con = connect(staging / ".spill")
    try:
        parts = []
        if res.cast_failed_path is not None:
            parts.append(f"SELECT {names}, {cleanse_mod.REASONS} FROM read_parquet({path_lit(res.cast_failed_path)})")
        if res.duplicates_path is not None:
            parts.append(
                f"SELECT {names}, [{lit('duplicate_key:' + label + ': same key as resubmitted row ')} || "
                f"{cleanse_mod.KEPT_ROW}] AS {cleanse_mod.REASONS} FROM read_parquet({path_lit(res.duplicates_path)})"
            )
        if res.filtered_path is not None:
            why = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in rules.items())
            parts.append(
                f"SELECT {names}, ['filtered:' || {cleanse_mod.FILTER} || ': ' || CASE {cleanse_mod.FILTER} {why} END] AS {cleanse_mod.REASONS} "
                f"FROM read_parquet({path_lit(res.filtered_path)})"
            )
        conflicts = 0
        if previous is not None and pk:
            keys = ", ".join(ident(k) for k in pk)
            con.execute(
                f"CREATE TEMP TABLE conflicts AS SELECT {ident(ROW_COLUMN)} FROM read_parquet({path_lit(staged)}) "
                f"SEMI JOIN (SELECT {keys} FROM read_parquet({path_lit(previous)})) p USING ({keys})"
            )
            row = con.execute("SELECT count(*) FROM conflicts").fetchone()
            conflicts = int(row[0]) if row else 0
            if conflicts:
                reason = f"published_duplicate:{label}: the key is already in published version v{version}"
                parts.append(
                    f"SELECT {names}, [{lit(reason)}] AS {cleanse_mod.REASONS} FROM read_parquet({path_lit(staged)}) "
                    f"WHERE {ident(ROW_COLUMN)} IN (SELECT {ident(ROW_COLUMN)} FROM conflicts)"
                )
                kept = staging / "staged.kept.parquet"
                copy_to_parquet(
                    con,
                    f"SELECT * FROM read_parquet({path_lit(staged)}) "
                    f"WHERE {ident(ROW_COLUMN)} NOT IN (SELECT {ident(ROW_COLUMN)} FROM conflicts)",
                    kept,
                )
        target = staging / cleanse_mod.CAST_FAILED_FILE
        if parts:
            merged = staging / "cast_failed.merged.parquet"
            copy_to_parquet(con, " UNION ALL ".join(parts) + " ORDER BY 1", merged)
            merged.replace(target)
        if conflicts:
            (staging / "staged.kept.parquet").replace(staged)
        for leftover in (res.duplicates_path, res.filtered_path):
            if leftover is not None:
                leftover.unlink(missing_ok=True)
        counted = con.execute(f"SELECT count(*) FROM read_parquet({path_lit(staged)})").fetchone()
        staged_rows = int(counted[0]) if counted else 0
        failed_rows, problems = 0, {}
        if target.is_file():
            counted = con.execute(f"SELECT count(*) FROM read_parquet({path_lit(target)})").fetchone()
            failed_rows = int(counted[0]) if counted else 0
            problems = dict(
                con.execute(
                    f"SELECT split_part(r, ':', 2) || ': ' || split_part(r, ':', 1), count(*) FROM "
                    f"(SELECT unnest({cleanse_mod.REASONS}) AS r FROM read_parquet({path_lit(target)})) "
                    "GROUP BY 1 ORDER BY 2 DESC"
                ).fetchall()
            )
    finally:
        con.close()
        shutil.rmtree(staging / ".spill", ignore_errors=True)
    if staged_rows + failed_rows != res.rows_in:  # pragma: no cover - a bug, never the user's input
        raise GovdataError(
            f"{spec.id} run {ctx.run_id}: {res.rows_in} rows resubmitted but {staged_rows} staged + {failed_rows} quarantined",
            hint="this is a bug in govdata; please report it with the run folder",
        )
    step: dict[str, Any] = ctx.write_step(
        "cleanse",
        {
            "rows_in": res.rows_in,
            "staged": staged_rows,
            "cast_failed": failed_rows,
            "duplicates_removed": 0,
            "filtered": {},
            "problems": {str(k): int(v) for k, v in problems.items()},
            "outputs": {"staging": str(staging)},
        },
    )
    return step


def _split_suite(spec: DatasetSpec, folder: Path) -> tuple[Path, Path | None]:
    """The spec's suite as two files: the row-level expectations (for the corrected rows) and the
    dataset-level ones (for the merged version; None when there are none). Each entry keeps the
    name the full suite gives it, so reasons read the same as in the original run."""
    from expectations.gate import expectation_names
    from pipelines.suites import is_row_level, load_suite

    suite = load_suite(spec.suite_path())
    entries = suite["expectations"]
    named = []
    for entry, name in zip(entries, expectation_names(entries), strict=True):
        meta = dict(entry.get("meta") or {})
        meta["govdata"] = {**(meta.get("govdata") or {}), "name": name}
        named.append({**entry, "meta": meta})
    folder.mkdir(parents=True, exist_ok=True)
    rows = folder / "suite.row_level.json"
    _write_json(rows, {**suite, "expectations": [e for e in named if is_row_level(e)]})
    dataset_level = [e for e in named if not is_row_level(e)]
    if not dataset_level:
        return rows, None
    whole = folder / "suite.dataset_level.json"
    _write_json(whole, {**suite, "expectations": dataset_level})
    return rows, whole


def _check_merged(ctx: Any, suite: Path | None) -> dict[str, Any]:
    """Run the dataset-level expectations on the candidate version (previous + accepted rows)."""
    if suite is None:
        return {"checked": False, "success": True, "failed": []}
    from pipelines.runner import CANDIDATE_FILE

    candidate = ctx.staging / CANDIDATE_FILE
    if not candidate.is_file():
        return {"checked": False, "success": True, "failed": []}
    from expectations import gate

    numbered = ctx.staging / "merged_check.parquet"
    con = connect(ctx.staging / ".spill")
    try:
        copy_to_parquet(
            con,
            f"SELECT row_number() OVER () AS {ident(ROW_COLUMN)}, * FROM read_parquet({path_lit(candidate)})",
            numbered,
            compression="lz4_raw",
        )
    finally:
        con.close()
        shutil.rmtree(ctx.staging / ".spill", ignore_errors=True)
    try:
        result = gate.validate(
            numbered,
            suite,
            report_dir=ctx.reports / "gx-merged",
            dataset=ctx.spec.id,
            run_id=ctx.run_id,
            row_column=ROW_COLUMN,
            sensitive_columns=ctx.spec.sensitive_columns,
        )
    finally:
        numbered.unlink(missing_ok=True)
    failed = [o.name for o in result.blocking_failures]
    return {"checked": True, "success": not failed, "failed": failed, "rows": result.row_count}


Progress = Callable[[str, str], None]


def resubmit(
    path: Path,
    *,
    dataset: str | None = None,
    spec_path: Path | None = None,
    home: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Send the corrected rows of an exported file back through cleanse and the gate into a new
    version; return the resubmission's run report (with its ``resubmission`` accounting)."""
    workspace = Workspace.from_env(home)
    sub = read_submission(Path(path), dataset=dataset, workspace=workspace)
    original = _load_run(workspace.quarantine(sub.dataset, sub.run_id))
    if original is None:
        raise ResubmissionError(f"dataset {sub.dataset} run {sub.run_id} has no quarantine", hint="check GOVDATA_HOME")
    where = str(path)
    spec = _spec_for(original, spec_path)
    root_landing = workspace.landing(sub.dataset, sub.run_id)
    landing_now = sha256_file(root_landing / DATA_FILE) if (root_landing / DATA_FILE).is_file() else None
    for expected, what in (
        (sub.landing_sha256, "this file was exported"),
        (original.info.get("landing_sha256"), "the quarantine was built"),
    ):
        if expected is not None and expected != landing_now:
            raise ResubmissionError(
                f"{where}: run {sub.run_id} of {sub.dataset} was collected again since {what}; the row numbers "
                "now point at other records",
                hint="export the quarantine again and correct the new file",
            )
    report_path = workspace.reports(sub.dataset, sub.run_id) / "run_report.json"
    status = json.loads(report_path.read_text(encoding="utf-8")).get("status") if report_path.is_file() else None
    if status not in ("published", "unchanged"):
        raise ResubmissionError(
            f"{where}: run {sub.run_id} of {sub.dataset} was {status or 'not finished'}, so it published nothing "
            "that corrected rows could join",
            hint="fix the source and run the dataset again (`govdata run SPEC --date …`)",
        )
    with _lock(original.folder, sub.run_id):
        original = _load_run(original.folder) or original  # the ledger as it is now, under the lock
        return _resubmit_locked(workspace, spec, original, sub, progress)


def _spec_for(original: QuarantineRun, spec_path: Path | None) -> DatasetSpec:
    recorded = original.info.get("spec_path")
    chosen = spec_path or (Path(recorded) if recorded else None)
    if chosen is None or not chosen.is_file():
        raise ResubmissionError(
            f"the spec of {original.dataset} ({chosen or 'unknown'}) is not there any more",
            hint="give --spec PATH, the dataset's spec file",
        )
    spec = load_spec(chosen)
    if spec.id != original.dataset:
        raise ResubmissionError(
            f"{chosen}: is the spec of {spec.id}, not {original.dataset}", hint="give --spec PATH of that dataset"
        )
    then = [c["name"] for c in original.columns]
    now = [c.name for c in spec.columns]
    if then != now:
        raise ResubmissionError(
            f"{chosen}: the columns of {spec.id} changed since run {original.run_id} ({', '.join(then)} → {', '.join(now)})",
            hint="corrected rows can only go back under the spec they were quarantined with; fix the source and run again",
        )
    return spec


def _check_rows(original: QuarantineRun, sub: Submission, states: Mapping[int, Mapping[str, Any]]) -> None:
    """Every row must be an open quarantined row of the run, exported from its latest attempt."""
    where = str(sub.path)
    quarantined = {int(r[ROW_COLUMN]) for r in _read_rows(original.folder)}
    unknown = [r for r in sub.rows if r.row_id not in quarantined]
    if unknown:
        shown = ", ".join(f"行号 {r.row_id} (row {r.line})" for r in unknown[:10])
        raise ResubmissionError(
            f"{where}: {len(unknown)} row number(s) are not quarantined rows of run {sub.run_id}: {shown}",
            hint="rows keep the 行号 they were exported with; new records belong in the source system",
        )
    accepted = [r for r in sub.rows if states.get(r.row_id, {}).get("state") == "accepted"]
    if accepted:
        shown = ", ".join(f"行号 {r.row_id} (by {states[r.row_id]['run']})" for r in accepted[:10])
        raise ResubmissionError(
            f"{where}: {len(accepted)} row(s) were already accepted by a resubmission: {shown}",
            hint="a row is accepted once; delete these rows from the file, or export the quarantine again",
        )
    stale = [r for r in sub.rows if r.run_id != str(states.get(r.row_id, {}).get("run", original.run_id))]
    if stale:
        shown = ", ".join(
            f"行号 {r.row_id} (file: {r.run_id}, now: {states.get(r.row_id, {}).get('run', original.run_id)})"
            for r in stale[:10]
        )
        raise ResubmissionError(
            f"{where}: {len(stale)} row(s) were resubmitted again after this file was exported: {shown}",
            hint="export the quarantine again and correct the new file",
        )


@dataclass
class _Landed:
    """The rows to land for a resubmission, with what was done to their cells."""

    rows: list[tuple[int, dict[str, str | None]]]
    restored: Counter[str]
    unchanged: int


def _values_to_land(workspace: Workspace, spec: DatasetSpec, original: QuarantineRun, sub: Submission) -> _Landed:
    """The submitted values, each masked cell left as exported replaced by the clear value from
    the landing copy of the run it was shown from (matched by row number)."""
    restored: Counter[str] = Counter()
    plan_by_run: dict[str, dict[str, str]] = {}
    clear_by_run: dict[str, dict[int, dict[str, str | None]]] = {}
    for run_id in {r.run_id for r in sub.rows}:
        shown_run = _load_run(workspace.quarantine(spec.id, run_id))
        plan_by_run[run_id] = dict((shown_run.info if shown_run else original.info).get("masking") or {})
        ids = [r.row_id for r in sub.rows if r.run_id == run_id]
        clear_by_run[run_id] = _clear_values(workspace.landing(spec.id, run_id), spec, ids)
    shown_rows = {int(r[ROW_COLUMN]): r for r in outstanding_rows(workspace, original)}
    tokens = list(original.info.get("null_tokens") or spec.cleanse.null_tokens)
    landed: list[tuple[int, dict[str, str | None]]] = []
    half_masked: list[str] = []
    unchanged = 0
    for r in sorted(sub.rows, key=lambda x: x.row_id):
        plan = plan_by_run[r.run_id]
        clear = clear_by_run[r.run_id].get(r.row_id, {})
        values: dict[str, str | None] = {}
        for c in spec.columns:
            given = r.values.get(c.name)
            rule = plan.get(c.name)
            if rule is not None and c.name in clear and given == display(clear[c.name], rule, tokens):
                values[c.name] = clear[c.name]
                restored[c.name] += given is not None
                continue
            if rule is not None and given is not None and "**" in given:
                half_masked.append(f"row {r.line} (行号 {r.row_id}): {c.title} ({c.name})")
            values[c.name] = given
        before = shown_rows.get(r.row_id, {})
        unchanged += all(r.values.get(c.name) == _text(before.get(c.name)) for c in spec.columns)
        landed.append((r.row_id, values))
    if half_masked:
        raise ResubmissionError(
            f"{sub.path}: {len(half_masked)} masked cell(s) were changed but still hold a mask (*): "
            + "; ".join(half_masked[:10]),
            hint="type the full corrected value, or put the cell back as it was exported to keep the original",
        )
    return _Landed(landed, restored, unchanged)


def _attempt_outcome(workspace: Workspace, dataset: str, attempt: str) -> tuple[set[int], set[int]]:
    """(resubmitted, quarantined again) row numbers of an attempt, from its own folders."""
    import pyarrow.parquet as pq

    landing = workspace.landing(dataset, attempt) / DATA_FILE
    resubmitted = {int(v) for v in pq.read_table(landing, columns=[ROW_COLUMN])[ROW_COLUMN].to_pylist()}
    folder = workspace.quarantine(dataset, attempt)
    again = {int(r[ROW_COLUMN]) for r in _read_rows(folder)} if (folder / QUARANTINE_FILE).is_file() else set()
    return resubmitted, again


def _reconcile(workspace: Workspace, original: QuarantineRun) -> QuarantineRun:
    """Bring the ledger up to date with attempts that stopped before writing it (a crash or an
    error): one whose version reached the catalog counts as published, any other changed nothing."""
    from catalog.store import CatalogStore

    ledger = dict(original.ledger or {})
    recorded = {a["run_id"] for a in ledger.get("attempts") or []}
    found = []
    for base in ("landing", "reports"):
        folder = workspace.root / base / original.dataset
        if folder.is_dir():
            found += [
                p.name for p in folder.iterdir() if root_run(p.name) == original.run_id and p.name != original.run_id
            ]
    missing = sorted(set(found) - recorded, key=_attempt_number)
    if not missing:
        return original
    entry = CatalogStore(workspace.catalog_url).entry(original.dataset)
    versions = {v.run_id: v.number for v in (entry.versions if entry else [])}
    states = _ledger_states(original)
    attempts = list(ledger.get("attempts") or [])
    for attempt in missing:
        record: dict[str, Any] = {"run_id": attempt, "status": "failed", "version": None, "recovered": True}
        landing = workspace.landing(original.dataset, attempt) / DATA_FILE
        if attempt in versions and landing.is_file():
            resubmitted, again = _attempt_outcome(workspace, original.dataset, attempt)
            accepted = sorted(resubmitted - again)
            states.update({k: {"state": "accepted", "run": attempt} for k in accepted})
            states.update({k: {"state": "quarantined", "run": attempt} for k in again})
            record.update(status="published", version=versions[attempt], resubmitted=len(resubmitted))
            record.update(accepted=accepted, quarantined_again=sorted(again))
        log.warning(
            "resubmission %s of %s/%s was not recorded; recorded now as %s",
            attempt,
            original.dataset,
            original.run_id,
            record["status"],
        )
        attempts.append(record)
    ledger.update(
        {
            "dataset": original.dataset,
            "run_id": original.run_id,
            "landing_sha256": original.info.get("landing_sha256"),
            "original_quarantined": original.rows,
            "attempts": attempts,
            "rows": {str(k): v for k, v in sorted(states.items())},
        }
    )
    _write_json(original.folder / LEDGER_FILE, ledger)
    return _load_run(original.folder) or original


def _resubmit_locked(
    workspace: Workspace, spec: DatasetSpec, original: QuarantineRun, sub: Submission, progress: Progress | None
) -> dict[str, Any]:
    from pipelines import runner

    original = _reconcile(workspace, original)
    states = _ledger_states(original)
    _check_rows(original, sub, states)
    logical = str(original.info["logical_date"])
    logical_date: dt.date | dt.datetime = (
        dt.datetime.fromisoformat(logical) if "T" in logical else dt.date.fromisoformat(logical)
    )
    number = _next_attempt(workspace, spec.id, original.run_id)
    attempt = f"{original.run_id}-resubmit-{number}"

    def context(suite: Path | None = None) -> Any:
        quality = {"max_quarantine_share": 1.0, **({"suite": str(suite)} if suite else {})}
        changed = spec.model_copy(update={"quality": spec.quality.model_copy(update=quality)})
        return runner.RunContext(changed, workspace, logical_date, attempt, merge_with_published=True)

    ctx = context()
    latest = ctx.catalog().latest_version(spec.id)
    previous = ctx.exchange().read(spec.id, latest.number) if latest else None
    if latest is None or previous is None:
        raise ResubmissionError(
            f"{sub.path}: dataset {spec.id} has no published version to add corrected rows to",
            hint="run the dataset until a version is published, then resubmit",
        )
    landed = _values_to_land(workspace, spec, original, sub)

    started = _now()
    file_sha = sha256_file(sub.path)
    source = f"resubmission of {spec.id} run {original.run_id} ({sub.path.name})"
    status = "published"
    merged: dict[str, Any] = {"checked": False, "success": True, "failed": []}
    step = "collect"
    try:
        if progress:
            progress(step, "start")
        manifest: dict[str, Any] = {"dataset": spec.id, "run_id": attempt, "source": source}
        manifest["resubmission_of"] = original.run_id
        manifest |= {"rows": len(landed.rows), "source_sha256": file_sha, "collected_at": started}
        _write_landing(ctx.landing, spec, landed.rows, manifest)
        ctx.write_step(
            "collect",
            {
                "rows": len(landed.rows),
                "landed": len(landed.rows),
                "rejected": 0,
                "source": source,
                "source_sha256": file_sha,
                "watermark": None,
                "since": None,
                "ignored_columns": [],
                "details": {"resubmission_of": original.run_id, "file": sub.path.name},
                "outputs": {"landing": str(ctx.landing)},
            },
        )
        if progress:
            progress(step, "done")
            progress("cleanse", "start")
        step = "cleanse"
        _cleanse_resubmission(ctx, previous.data_path, latest.number)
        if progress:
            progress(step, "done")
        row_suite, whole_suite = _split_suite(spec, ctx.reports)
        ctx = context(row_suite)
        try:
            for step in ("quality", "catalog", "check", "publish"):
                if progress:
                    progress(step, "start")
                if step == "check":  # the new version as a whole: the dataset-level expectations
                    merged = _check_merged(ctx, whole_suite)
                    if not merged["success"]:
                        raise QualityGateHeld(
                            f"{spec.id} {attempt}: the new version would fail " + ", ".join(merged["failed"])
                        )
                else:
                    getattr(runner, step)(ctx)
                if progress:
                    progress(step, "done")
        except QualityGateHeld:
            status = "held"
            if progress:
                progress(step, "held")
        report: dict[str, Any] = runner.build_report(ctx, started=started, status=status)
        from pipelines import site  # the resubmission's Data Docs and scorecard pages (best effort)

        site.after_run(ctx.workspace, ctx.spec, ctx.run_id)
    except GovdataError as exc:
        runner._record_failure(ctx, step, started, exc)
        raise
    return _record_attempt(ctx, original, sub, report, landed, merged, started, file_sha)


def _record_attempt(
    ctx: Any,
    original: QuarantineRun,
    sub: Submission,
    report: dict[str, Any],
    landed: _Landed,
    merged: dict[str, Any],
    started: str,
    file_sha: str,
) -> dict[str, Any]:
    """The accounting across the original run and this attempt: in the ledger and the run report."""
    attempt = str(ctx.run_id)
    states = _ledger_states(original)
    resubmitted, again = _attempt_outcome(ctx.workspace, original.dataset, attempt)
    done = report["status"] in ("published", "unchanged")
    accepted_now = sorted(resubmitted - again) if done else []
    total = original.rows
    accepted_earlier = sum(1 for s in states.values() if s.get("state") == "accepted")
    accounting: dict[str, Any] = {
        "of_run": original.run_id,
        "attempt": _attempt_number(attempt),
        "file": sub.path.name,
        "file_sha256": file_sha,
        "original_quarantined": total,
        "resubmitted": len(resubmitted),
        "accepted": len(accepted_now),
        "quarantined_again": len(again),
        "held": 0 if done else len(resubmitted) - len(again),
        "not_resubmitted": total - len(resubmitted),
        "not_resubmitted_detail": {
            "accepted_earlier": accepted_earlier,
            "still_quarantined": total - len(resubmitted) - accepted_earlier,
        },
        "unchanged_rows": landed.unchanged,
        "restored_masked_cells": dict(landed.restored),
        "merged_version_check": merged,
        "notes": sub.notes,
    }
    balance = sum(accounting[k] for k in ("accepted", "quarantined_again", "held", "not_resubmitted"))
    if balance != total:  # pragma: no cover - a bug, never the user's input
        raise GovdataError(
            f"{original.dataset} {attempt}: resubmission accounting does not balance ({balance} of {total})",
            hint="this is a bug in govdata; please report it with the run folders",
        )
    if done:  # a held attempt changes nothing: its rows stay as they were
        states.update({k: {"state": "accepted", "run": attempt} for k in accepted_now})
        states.update({k: {"state": "quarantined", "run": attempt} for k in again})
    now_accepted = sum(1 for s in states.values() if s.get("state") == "accepted")
    accounting["after"] = {"accepted": now_accepted, "quarantined": total - now_accepted}
    ledger = dict(original.ledger or {})
    ledger.update(
        {
            "dataset": original.dataset,
            "run_id": original.run_id,
            "landing_sha256": original.info.get("landing_sha256"),
            "original_quarantined": total,
            "attempts": [
                *(ledger.get("attempts") or []),
                {
                    "run_id": attempt,
                    "status": report["status"],
                    "version": report.get("version"),
                    "submitted_at": started,
                    "file": sub.path.name,
                    "file_sha256": file_sha,
                    "resubmitted": len(resubmitted),
                    "accepted": accepted_now,
                    "quarantined_again": sorted(again),
                },
            ],
            "rows": {str(k): v for k, v in sorted(states.items())},
        }
    )
    _write_json(original.folder / LEDGER_FILE, ledger)
    report["resubmission"] = accounting
    report["resubmission_of"] = original.run_id
    _write_json(ctx.reports / "run_report.json", report)
    stored = json.loads(json.dumps(report, default=str))
    ctx.catalog().record_run(original.dataset, attempt, report["status"], report.get("version"), stored)
    log.info(
        "resubmission %s/%s: %d resubmitted, %d accepted, %d quarantined again, %d not resubmitted",
        original.dataset,
        attempt,
        accounting["resubmitted"],
        accounting["accepted"],
        accounting["quarantined_again"],
        accounting["not_resubmitted"],
    )
    return report
