"""The bundled example departments: specs, suites, generated sources and their row accounting.

Besides checking that specs load and suites fit them, this module re-derives every dataset's
row accounting from the committed source, spec and suite with a small, independent reference
cleanse (pure Python plus DuckDB for the filter rules) and compares it with EXPECTED.json,
which the end-to-end tests use as their oracle.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import json
import re
import shutil
import sqlite3
import sys
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest
from openpyxl import load_workbook

from pipelines import divisions
from pipelines.identifiers import (
    is_valid_resident_id,
    is_valid_uscc,
    resident_id_birth_and_sex,
    resident_id_check_char,
)
from pipelines.spec import DUCKDB_TYPES, DatasetSpec, find_specs, load_spec

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "datasets"
SUITES = REPO / "expectations"
IDS = {"market_enterprise_registry", "hrss_insured_persons", "transport_bus_stops"}
SPEC_PATHS = find_specs(DATASETS)


def _load_generator() -> ModuleType:
    # By path: tests/datasets is itself a package named ``datasets`` on pytest's sys.path.
    path = DATASETS / "generate.py"
    spec = importlib.util.spec_from_file_location("govdata_example_generator", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    return _load_generator()


@pytest.fixture(scope="module")
def generated(gen: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    gen.generate_all(out)
    return out


@pytest.fixture(scope="module")
def specs() -> dict[str, DatasetSpec]:
    loaded = [load_spec(p) for p in SPEC_PATHS]
    return {s.id: s for s in loaded}


def _suite(spec: DatasetSpec) -> dict[str, Any]:
    return json.loads(spec.suite_path().read_text(encoding="utf-8"))


def _files(root: Path) -> dict[str, Path]:
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and ("sources" in p.parts or "dicts" in p.parts)
    }


def _xlsx_cells(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    wb = load_workbook(path)
    return {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}


def _sqlite_rows(path: Path) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        schema = con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        return schema + con.execute("SELECT * FROM bus_stop ORDER BY rowid").fetchall()
    finally:
        con.close()


# --- specs and suites ------------------------------------------------------------------------


def test_the_three_departments_are_there(specs: dict[str, DatasetSpec]) -> None:
    assert set(specs) >= IDS
    names = {s.department.name for s in specs.values()}
    assert {"上海市市场监督管理局", "上海市人力资源和社会保障局", "上海市交通委员会"} <= names


@pytest.mark.parametrize("path", SPEC_PATHS, ids=lambda p: p.stem)
def test_spec_loads(path: Path) -> None:
    spec = load_spec(path)
    assert spec.primary_key, "every example has a primary key"
    assert spec.quality.max_quarantine_share < 0.5


@pytest.mark.parametrize("path", SPEC_PATHS, ids=lambda p: p.stem)
def test_spec_source_and_dictionaries_exist(path: Path) -> None:
    spec = load_spec(path)
    options = spec.source.options
    if "path" in options:
        assert spec.resolve(options["path"]).is_file()
    else:
        assert options["url"].startswith("sqlite:///")
        assert spec.resolve(options["url"].removeprefix("sqlite:///")).is_file()
    for code_map in spec.cleanse.code_maps:
        if code_map.file:
            with spec.resolve(code_map.file).open(encoding="utf-8", newline="") as fh:
                rows = list(csv.reader(fh))
            assert rows[0] == ["source", "code"] and len(rows) > 1
            assert all(len(r) == 2 for r in rows)


@pytest.mark.parametrize("path", SPEC_PATHS, ids=lambda p: p.stem)
def test_suite_fits_spec(path: Path) -> None:
    spec = load_spec(path)
    suite = _suite(spec)
    assert suite["name"] == spec.id
    declared = [c.name for c in spec.columns]
    not_null = set()
    unique = set()
    for exp in suite["expectations"]:
        assert set(exp) == {"type", "kwargs", "meta"}, exp
        assert exp["type"].startswith("expect_")
        kwargs = exp["kwargs"]
        if "column" in kwargs:
            assert kwargs["column"] in declared, f"{exp['type']} names undeclared column {kwargs['column']!r}"
        if exp["type"] == "expect_table_columns_to_match_set":
            assert kwargs["column_set"] == declared
        if exp["type"] == "expect_column_values_to_not_be_null":
            not_null.add(kwargs["column"])
        if exp["type"] == "expect_column_values_to_be_unique":
            unique.add(kwargs["column"])
        if exp["type"] == "expect_column_values_to_be_between" and isinstance(kwargs.get("min_value"), str):
            # date bounds as ISO date-times (date-only bounds fail on pandas 3)
            dt.datetime.fromisoformat(kwargs["min_value"])
            assert "T" in kwargs["min_value"] and "T" in kwargs["max_value"]
    assert not_null == {c.name for c in spec.columns if not c.nullable}, "nullable: false ⇔ a not-null expectation"
    assert set(spec.primary_key) <= not_null and set(spec.primary_key) <= unique


def test_department_usccs_are_valid(gen: ModuleType, specs: dict[str, DatasetSpec]) -> None:
    for dataset_id, (folder, _) in gen.DATASETS.items():
        uscc = specs[dataset_id].department.uscc
        assert is_valid_uscc(uscc) and uscc.startswith("11"), uscc
        assert uscc == gen.DEPARTMENTS[folder].uscc
        assert specs[dataset_id].department.name == gen.DEPARTMENTS[folder].name
    assert len({d.uscc for d in gen.DEPARTMENTS.values()}) == len(gen.DEPARTMENTS)


def test_share_types_follow_the_brief(specs: dict[str, DatasetSpec]) -> None:
    assert specs["transport_bus_stops"].catalog.sharing.type.value == "无条件共享"
    assert specs["market_enterprise_registry"].catalog.sharing.type.value == "有条件共享"
    assert specs["hrss_insured_persons"].catalog.sharing.type.value == "有条件共享"
    assert specs["transport_bus_stops"].publish.mode == "merge"


# --- the generator ---------------------------------------------------------------------------


def test_generator_is_deterministic(gen: ModuleType, generated: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    written = gen.generate_all(again)
    assert set(written) == IDS
    first, second = _files(generated), _files(again)
    assert set(first) == set(second)
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), f"{name} differs between two runs"


def test_committed_sources_are_what_the_generator_writes(generated: Path) -> None:
    fresh, committed = _files(generated), _files(DATASETS)
    assert set(fresh) <= set(committed), f"missing: {set(fresh) - set(committed)}; run python datasets/generate.py"
    for name, path in fresh.items():
        if name.endswith(".xlsx"):  # zip bytes may differ across openpyxl versions; the cells may not
            assert _xlsx_cells(path) == _xlsx_cells(committed[name]), name
        elif name.endswith(".db"):  # the file format may differ across SQLite versions
            assert _sqlite_rows(path) == _sqlite_rows(committed[name]), name
        else:
            assert path.read_bytes() == committed[name].read_bytes(), (
                f"{name} is stale: run python datasets/generate.py"
            )


def test_expected_json_is_what_the_generator_returns(gen: ModuleType) -> None:
    expected = gen.expected_all()
    assert set(expected) == IDS
    for dataset_id, (folder, _) in gen.DATASETS.items():
        on_disk = json.loads((DATASETS / folder / "sources" / "EXPECTED.json").read_text(encoding="utf-8"))
        assert on_disk[dataset_id] == expected[dataset_id]


def test_accounting_adds_up(gen: ModuleType) -> None:
    for dataset_id, exp in gen.expected_all().items():
        a = exp["accounting"]
        removed = (
            a["rejected_at_read"]
            + a["cast_failures"]
            + sum(a["filtered"].values())
            + a["duplicates_removed"]
            + a["quarantined_by_expectations"]
        )
        assert a["published"] == a["collected"] - removed, dataset_id
        assert 200 <= a["collected"] <= 600
        assert sum(exp["cast_failures_by_column"].values()) == a["cast_failures"]
        assert sum(len(g["records"]) - 1 for g in exp["dedupe"]["groups"].values()) == a["duplicates_removed"]
        assert exp["injected"]["duplicates"] == a["duplicates_removed"]


def test_injected_defects_leave_every_example_publishable(gen: ModuleType, specs: dict[str, DatasetSpec]) -> None:
    for dataset_id, exp in gen.expected_all().items():
        a = exp["accounting"]
        share = (a["cast_failures"] + a["quarantined_by_expectations"]) / a["collected"]
        assert share <= specs[dataset_id].quality.max_quarantine_share / 2, dataset_id


# --- the defects are really in the files ------------------------------------------------------


def test_enterprise_csv_defects(gen: ModuleType) -> None:
    raw = (DATASETS / "market_regulation" / "sources" / "enterprise_registry.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("gb18030")
    with pytest.raises(UnicodeEncodeError):
        text.encode("gbk")  # the rare characters: GBK/CP936 cannot carry them
    assert any(ord(c) > 0xFFFF for c in text)
    records = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(records) == 420
    assert len(text.splitlines()) > len(records) + 1, "a quoted field has an embedded newline"
    assert any("\n" in r["地址"] for r in records)
    codes = [r["统一社会信用代码"] for r in records]
    letter_prefixed = [c for c in codes if c[:1] in ("Y", "N", "A") and is_valid_uscc(c)]
    assert len(letter_prefixed) >= 3
    assert any(c != c.upper() for c in codes), "lower-case USCC letters"
    assert any("\uff10" <= c <= "\uff5e" for code in codes for c in code), "full-width USCC characters"
    assert any(c != c.strip() or c.startswith("\u3000") for c in codes), "padded codes"
    dates = [r["成立日期"] for r in records]
    for pattern in (
        r"^\d{4}年\d{1,2}月\d{1,2}日$",
        r"^\d{4}\.\d{1,2}\.\d{1,2}$",
        r"^\d{4}/\d{2}/\d{2}$",
        r"^\d{8}$",
        r"^\d{4}-\d{2}-\d{2}$",
    ):
        assert any(re.match(pattern, d) for d in dates), pattern
    assert "2023年13月1日" in dates
    assert {"浦东新区", "浦东"} & {r["所属区"] for r in records}
    assert sum(r["企业名称"].startswith("测试企业") for r in records) == 2
    capitals = {r["注册资本(万元)"] for r in records}
    assert {"1,200.00", "伍佰", "约500"} <= capitals


def test_insured_persons_xlsx_defects(gen: ModuleType, specs: dict[str, DatasetSpec]) -> None:
    spec = specs["hrss_insured_persons"]
    wb = load_workbook(spec.resolve(spec.source.options["path"]))
    sheet = spec.source.options["sheet"]
    assert wb.sheetnames[0] != sheet and sheet in wb.sheetnames, "the data is on a named sheet, not the first"
    ws = wb[sheet]
    rows = list(ws.iter_rows(values_only=True))
    title = [v for v in rows[0] if v is not None]
    assert len(title) == 1 and "参保人员" in title[0], "a title row above the header"
    assert ws.merged_cells.ranges, "the title is merged across the columns"
    assert list(rows[1]) == [c.source_name for c in spec.columns] and spec.source.options["header_row"] == 2
    data = rows[2:]
    assert len(data) == 360
    ids = [r[0] for r in data]
    joined = [r[6] for r in data]
    assert any(isinstance(v, dt.datetime) for v in joined), "real Excel date cells"
    assert any(isinstance(v, int) and 20000 < v < 60000 for v in joined), "Excel serial numbers in plain cells"
    assert any(isinstance(v, str) and re.match(r"^\d{4}年\d{1,2}月\d{1,2}日$", v) for v in joined)
    assert any(isinstance(v, str) and v.endswith("x") for v in ids), "lower-case x"
    assert sum(isinstance(v, str) and re.fullmatch(r"\d{15}", v) is not None for v in ids) == 4
    pudong = gen.expected_all()["hrss_insured_persons"]["valid_pudong_ids_born_before_1993"]
    assert len(pudong) >= 10
    for code in pudong:
        assert code in ids and code.startswith("310115") and int(code[6:10]) < 1993
        assert is_valid_resident_id(code, today=gen.ANCHOR)
    mobiles = [r[4] for r in data]
    assert any(isinstance(m, str) and m.startswith("+86") for m in mobiles)


def test_bus_stop_table_defects(gen: ModuleType, specs: dict[str, DatasetSpec]) -> None:
    spec = specs["transport_bus_stops"]
    con = sqlite3.connect(spec.resolve(spec.source.options["url"].removeprefix("sqlite:///")))
    try:
        info = con.execute("PRAGMA table_info(bus_stop)").fetchall()
        assert [(r[1], r[2]) for r in info] == list(gen.TRANSPORT_COLUMNS)
        assert con.execute("SELECT count(*) FROM bus_stop").fetchone() == (320,)
        codes = {r[0] for r in con.execute("SELECT DISTINCT district_code FROM bus_stop")}
        assert {"310108", "999999"} <= codes
        outside = con.execute(
            "SELECT count(*) FROM bus_stop WHERE longitude NOT BETWEEN 120.85 AND 122.2 OR latitude NOT BETWEEN 30.66 AND 31.9"
        ).fetchone()
        assert outside == (3,)
        assert con.execute("SELECT count(*) FROM bus_stop WHERE stop_name IS NULL").fetchone() == (1,)
        dup = con.execute("SELECT count(*) - count(DISTINCT stop_id) FROM bus_stop").fetchone()
        assert dup == (6,)
        watermark = con.execute("SELECT max(updated_at) FROM bus_stop").fetchone()[0]
    finally:
        con.close()
    assert watermark == gen.expected_all()["transport_bus_stops"]["watermark"]["max"]


def test_bus_stop_increment(gen: ModuleType, tmp_path: Path) -> None:
    db = tmp_path / "transport.db"
    shutil.copyfile(DATASETS / "transport" / "sources" / "transport.db", db)
    increment = gen.append_bus_stop_increment(db)
    con = sqlite3.connect(db)
    try:
        later = con.execute("SELECT stop_id FROM bus_stop WHERE updated_at > ?", (increment["since"],)).fetchall()
    finally:
        con.close()
    assert len(later) == increment["collected"] == 5
    assert {r[0] for r in later} == set(increment["changed_stop_ids"]) | set(increment["new_stop_ids"])
    assert increment["merged_total"] == gen.expected_all()["transport_bus_stops"]["accounting"]["published"] + 2


# --- an independent reference cleanse: does spec + suite + source give EXPECTED.json? ----------

_ZH_DATE = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$")
_SEP_DATE = re.compile(r"^(\d{4})[-./](\d{1,2})[-./](\d{1,2})$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


class CastError(ValueError):
    """A value that the typed cast cannot convert."""


def _halfwidth(text: str) -> str:
    return "".join(" " if c == "\u3000" else chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else c for c in text)


def _serial(n: float) -> dt.date:
    if not 1 <= n <= 2958465:
        raise CastError(n)
    return dt.date(1899, 12, 30) + dt.timedelta(days=int(n))


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int | float):
        return _serial(value)
    match = _ZH_DATE.match(value) or _SEP_DATE.match(value)
    try:
        if match:
            return dt.date(*(int(g) for g in match.groups()))
        if value.isdigit():
            if len(value) == 8:
                return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))
            return _serial(int(value))
    except ValueError as exc:
        raise CastError(value) from exc
    raise CastError(value)


def _cast(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind in ("string", "text"):
        return str(value)
    if kind in ("integer", "float", "decimal", "money"):
        if isinstance(value, str):
            value = value.replace(",", "").replace("¥", "")  # thousands separators and ¥ are dropped
            if not _NUMBER.match(value):
                raise CastError(value)
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise CastError(value) from exc
        return float(number) if kind == "float" else int(number) if kind == "integer" else number
    if kind == "date":
        return _to_date(value)
    if kind == "timestamp":
        if isinstance(value, dt.datetime):
            return value
        try:
            return dt.datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise CastError(value) from exc
    raise AssertionError(kind)


def _read_source(spec: DatasetSpec) -> list[dict[str, Any]]:
    options = spec.source.options
    if spec.source.connector == "csv":
        text = spec.resolve(options["path"]).read_bytes().decode(options["encoding"])
        return list(csv.DictReader(io.StringIO(text, newline="")))
    if spec.source.connector == "xlsx":
        ws = load_workbook(spec.resolve(options["path"]), data_only=True)[options["sheet"]]
        rows = list(ws.iter_rows(min_row=options["header_row"], values_only=True))
        return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    con = sqlite3.connect(spec.resolve(options["url"].removeprefix("sqlite:///")))
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM {options['table']} ORDER BY rowid")]
    finally:
        con.close()


def _code_map(spec: DatasetSpec, column: str) -> dict[str, str] | None:
    for code_map in spec.cleanse.code_maps:
        if code_map.column == column:
            if code_map.mapping is not None:
                return dict(code_map.mapping)
            with spec.resolve(code_map.file or "").open(encoding="utf-8", newline="") as fh:
                return {r["source"]: r["code"] for r in csv.DictReader(fh)}
    return None


def _record_agrees(row: dict[str, Any], kw: dict[str, Any], today: dt.date) -> bool:
    """The birth date and sex in a valid resident ID agree with the row (invalid or NULL IDs: not judged)."""
    facts = resident_id_birth_and_sex(row[kw["column"]], today=today, allow_15=kw.get("allow_15", True))
    if facts is None:
        return True
    born, male = facts
    birth = row.get(kw["birth_date_column"]) if kw.get("birth_date_column") else None
    if birth is not None and birth.isoformat()[:10] != born:
        return False
    sex = row.get(kw["sex_column"]) if kw.get("sex_column") else None
    values = kw.get("sex_values") or {"male": ["男", "1", "M"], "female": ["女", "2", "F"]}
    return sex is None or (sex in values["male"]) == male or (sex not in values["male"] + values["female"])


def _row_failures(spec: DatasetSpec, suite: dict[str, Any], row: dict[str, Any], today: dt.date) -> list[str]:
    failed = []
    for exp in suite["expectations"]:
        kind, kw = exp["type"], exp["kwargs"]
        if kind == "expect_cn_resident_id_to_match_birth_date_and_sex":
            if not _record_agrees(row, kw, today):
                failed.append(f"{kind}:{kw['column']}")
            continue
        if not kind.startswith("expect_column_value") or kind == "expect_column_values_to_be_unique":
            continue
        value = row[kw["column"]]
        if kind == "expect_column_values_to_not_be_null":
            bad = value is None
        elif value is None:  # GX map expectations do not count missing values as unexpected
            bad = False
        elif kind == "expect_column_values_to_be_valid_uscc":
            bad = not is_valid_uscc(value)
        elif kind == "expect_column_values_to_be_valid_cn_resident_id":
            areas = divisions.codes(kw["area_table"]) if kw.get("area_table") else None
            bad = not is_valid_resident_id(value, today=today, allow_15=kw.get("allow_15", False), area_codes=areas)
        elif kind == "expect_column_values_to_match_regex":
            bad = re.search(kw["regex"], value) is None
        elif kind == "expect_column_values_to_be_in_set":
            bad = value not in kw["value_set"]
        elif kind == "expect_column_value_lengths_to_be_between":
            bad = not kw["min_value"] <= len(value) <= kw["max_value"]
        elif kind == "expect_column_values_to_be_between":
            low, high = kw["min_value"], kw["max_value"]
            if isinstance(low, str):
                low, high = dt.datetime.fromisoformat(low), dt.datetime.fromisoformat(high)
                if not isinstance(value, dt.datetime):
                    value = dt.datetime.combine(value, dt.time())
            bad = not low <= value <= high
        else:
            raise AssertionError(f"reference cleanse does not know {kind}")
        if bad:
            failed.append(f"{kind}:{kw['column']}")
    return failed


def reference_run(spec: DatasetSpec, today: dt.date) -> dict[str, Any]:
    """Collect → cleanse → cast → filter → dedupe → row-level expectations, counting every row."""
    suite = _suite(spec)
    records = _read_source(spec)
    tokens = set(spec.cleanse.null_tokens)
    maps = {c.name: _code_map(spec, c.name) for c in spec.columns}
    cast_failures: Counter[str] = Counter()
    cast_rows = 0
    typed: list[dict[str, Any]] = []
    for ordinal, record in enumerate(records, start=1):
        row: dict[str, Any] = {"_row": ordinal}
        failed = []
        for column in spec.columns:
            value = record[column.source_name]
            if isinstance(value, str):
                value = _halfwidth(value).strip() if spec.cleanse.halfwidth else value.strip()
                value = None if value in tokens else value
            if value is not None and column.name in spec.cleanse.upper:
                value = value.upper()
            if value is not None and column.name in spec.cleanse.resident_ids:
                value = value.upper()
                if re.fullmatch(r"\d{15}", value):
                    body = value[:6] + "19" + value[6:]
                    value = body + resident_id_check_char(body)
            mapping = maps[column.name]
            if value is not None and mapping is not None:
                value = mapping.get(value, value)
            try:
                row[column.name] = _cast(value, column.type)
            except CastError:
                failed.append(column.name)
        if failed:
            cast_failures.update(failed)
            cast_rows += 1
        else:
            typed.append(row)

    filtered: dict[str, int] = {}
    if spec.cleanse.filters:
        con = duckdb.connect()
        cols = ", ".join(f'"{c.name}" {DUCKDB_TYPES[c.type]}' for c in spec.columns)
        con.execute(f"CREATE TABLE t (_row BIGINT, {cols})")
        names = ["_row", *(c.name for c in spec.columns)]
        con.executemany(
            f"INSERT INTO t VALUES ({', '.join('?' for _ in names)})", [[r[n] for n in names] for r in typed]
        )
        removed: set[int] = set()
        for rule in spec.cleanse.filters:
            hits = {r[0] for r in con.execute(f"SELECT _row FROM t WHERE {rule.where}").fetchall()} - removed
            filtered[rule.name] = len(hits)
            removed |= hits
        typed = [r for r in typed if r["_row"] not in removed]

    key = spec.primary_key
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in typed:
        k = tuple(r[c] for c in key)
        if None not in k:
            groups.setdefault(k, []).append(r)
    dedupe = spec.cleanse.dedupe
    dropped: set[int] = set()
    dup_groups = {}
    for k, members in groups.items():
        if len(members) < 2:
            continue
        if dedupe.keep == "latest":
            stamps = [m[dedupe.order_by] for m in members]
            assert len(set(stamps)) == len(stamps), (
                f"tie in {dedupe.order_by} for {k}: the example must not be ambiguous"
            )
            kept = max(members, key=lambda m: m[dedupe.order_by])
        else:
            kept = members[0]
        dropped |= {m["_row"] for m in members if m is not kept}
        group = {"records": [m["_row"] for m in members], "kept": kept["_row"]}
        if dedupe.keep == "latest":
            group["kept_updated_at"] = kept[dedupe.order_by].isoformat()
        dup_groups["|".join(map(str, k))] = group
    deduped = [r for r in typed if r["_row"] not in dropped]

    by_expectation: Counter[str] = Counter()
    quarantined = 0
    for r in deduped:
        failures = _row_failures(spec, suite, r, today)
        by_expectation.update(failures)
        quarantined += bool(failures)

    # Dataset-level expectations must pass, or the example would never publish.
    for exp in suite["expectations"]:
        kind, kw = exp["type"], exp["kwargs"]
        if kind == "expect_column_values_to_be_unique":
            values = [r[kw["column"]] for r in deduped if r[kw["column"]] is not None]
            assert len(values) == len(set(values)), kind
        elif kind == "expect_table_row_count_to_be_between":
            assert kw["min_value"] <= len(deduped) <= kw["max_value"], kind
        elif kind == "expect_table_columns_to_match_set":
            assert kw["column_set"] == [c.name for c in spec.columns]

    return {
        "accounting": {
            "collected": len(records),
            "rejected_at_read": 0,
            "cast_failures": cast_rows,
            "filtered": filtered,
            "duplicates_removed": len(dropped),
            "quarantined_by_expectations": quarantined,
            "published": len(deduped) - quarantined,
        },
        "cast_failures_by_column": dict(cast_failures),
        "quarantined_by_expectation": dict(by_expectation),
        "dedupe_groups": dup_groups,
    }


@pytest.mark.parametrize("dataset_id", sorted(IDS))
def test_reference_cleanse_reproduces_expected(gen: ModuleType, specs: dict[str, DatasetSpec], dataset_id: str) -> None:
    spec = specs[dataset_id]
    expected = gen.expected_all()[dataset_id]
    got = reference_run(spec, today=gen.ANCHOR)
    assert got["accounting"] == expected["accounting"]
    assert got["cast_failures_by_column"] == expected["cast_failures_by_column"]
    assert got["quarantined_by_expectation"] == expected["quarantined_by_expectation"]
    assert got["dedupe_groups"] == expected["dedupe"]["groups"]


def test_generator_self_check(gen: ModuleType) -> None:
    gen.self_check()  # department USCCs valid; each resident ID valid unless injected as invalid
