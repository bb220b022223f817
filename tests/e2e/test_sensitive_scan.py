"""Acceptance: after the demo, no sensitive value appears in clear in reports, quarantine, deliveries or logs.

The demo runs as a user would run it (``govdata -v demo`` in a fresh GOVDATA_HOME, INFO logs
captured), followed by what a data officer does with the quarantine: list, show, export (xlsx
and csv) and a resubmission of corrected rows. Then every file under ``reports/`` and
``quarantine/``, the exported files, the catalog database (it keeps the run reports) and the
captured output are scanned for the demo's sensitive values: the values of the columns marked
``sensitive: true`` in the specs, as they are in the landing copies (the source) and in the
staging folders (after cleansing). Parquet and xlsx files are scanned cell by cell (every sheet,
hidden ones too), every other file as UTF-8 text. The exchange's deliveries (the CSV and the
SQLite database under ``subscribers/``) are scanned too. A control test plants values in each kind of
file and checks that the scanner finds them, so a scanner that finds nothing fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from pipelines.masking import BLANKS
from pipelines.quarantine import display
from pipelines.spec import find_specs, load_spec

REPO = Path(__file__).resolve().parents[2]
GOVDATA = Path(sys.executable).parent / "govdata"
DATE = "2026-11-24"
#: Shorter values are matched only as a whole word (a run of letters, digits or CJK characters).
LONG = 6
_WORD = re.compile(r"[\w\u3400-\u4dbf\u4e00-\u9fff\U00020000-\U0003ffff]+")
_HALF = str.maketrans(
    "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000", "".join(chr(c) for c in range(0x21, 0x7F)) + " "
)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Hit:
    file: Path
    secret: str

    def __str__(self) -> str:  # the value itself is not repeated in the failure message
        return f"{self.file}: a sensitive value of {len(self.secret)} characters ({self.secret[:1]}…) in clear"


class Scanner:
    """Finds known values in files: long ones as substrings, short ones as whole words."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.long: dict[str, list[str]] = {}
        self.short: set[str] = set()
        for s in set(secrets):
            if len(s) >= LONG:
                self.long.setdefault(s[:LONG], []).append(s)
            else:
                self.short.add(s)
        assert self.long or self.short, "nothing to look for"

    def text_hits(self, text: str) -> set[str]:
        found = {w for w in _WORD.findall(text) if w in self.short}
        for i in range(len(text) - LONG + 1):
            candidates = self.long.get(text[i : i + LONG])
            if candidates:
                found.update(s for s in candidates if text.startswith(s, i))
        return found

    def file_hits(self, path: Path) -> list[Hit]:
        return [Hit(path, s) for s in sorted(self.text_hits("\n".join(cells(path))))]

    def scan(self, paths: Iterable[Path]) -> list[Hit]:
        hits: list[Hit] = []
        for path in paths:
            hits.extend(self.file_hits(path))
        return hits


def cells(path: Path) -> Iterator[str]:
    """The text of a file: every cell of a Parquet or xlsx file, else the bytes as UTF-8."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        con = duckdb.connect()
        try:
            columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()]
            select = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in columns)
            for row in con.execute(f"SELECT {select} FROM read_parquet('{path}')").fetchall():
                yield from (v for v in row if v is not None)
        finally:
            con.close()
    elif suffix == ".xlsx":
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True)
        try:
            for sheet in wb.worksheets:  # hidden sheets too
                for row in sheet.iter_rows(values_only=True):
                    yield from (str(v) for v in row if v is not None)
        finally:
            wb.close()
    else:
        yield path.read_bytes().decode("utf-8", errors="replace")


def files_under(*roots: Path) -> list[Path]:
    return sorted(
        p for root in roots if root.exists() for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()
    )


def variants(value: str) -> set[str]:
    stripped = value.strip(BLANKS)
    return {value, stripped, stripped.translate(_HALF).strip(), stripped.upper()}


def demo_values(home: Path) -> tuple[set[str], set[str]]:
    """(sensitive, public) values of the demo: from the landing copies and the staging folders."""
    sensitive: set[str] = set()
    public: set[str] = set()
    for spec_path in find_specs(REPO / "datasets"):
        spec = load_spec(spec_path)
        for folder, named_by in ((home / "landing" / spec.id, "source"), (home / "staging" / spec.id, "name")):
            for data in sorted(folder.rglob("*.parquet")) if folder.is_dir() else []:
                con = duckdb.connect()
                try:
                    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{data}')").fetchall()}
                    for column in spec.columns:
                        name = column.source_name if named_by == "source" else column.name
                        if name not in present:
                            continue
                        rows = con.execute(
                            f'SELECT DISTINCT CAST("{name}" AS VARCHAR) FROM read_parquet(\'{data}\') WHERE "{name}" IS NOT NULL'
                        ).fetchall()
                        for (value,) in rows:
                            if column.sensitive:
                                sensitive |= variants(value)
                            else:
                                public |= variants(value)
                finally:
                    con.close()
    return sensitive, public


def secrets_of(home: Path) -> set[str]:
    """The sensitive values worth looking for: not null tokens, not public elsewhere, not what
    their own mask shows anyway (a one-character name, an address that is only a district)."""
    sensitive, public = demo_values(home)
    tokens = {t for p in find_specs(REPO / "datasets") for t in load_spec(p).cleanse.null_tokens}
    found = set()
    for value in sensitive:
        if len(value) < 2 or value in tokens or value in public:
            continue
        if any(display(value, rule, []) == value for rule in ("name", "mobile", "resident_id", "address", "partial")):
            continue
        found.add(value)
    return found


def govdata(home: Path, log: list[str], *args: str, ok: tuple[int, ...] = (0,)) -> str:
    env = {**os.environ, "GOVDATA_HOME": str(home), "COLUMNS": "200"}
    env.pop("GOVDATA_CATALOG_URL", None)
    done = subprocess.run([str(GOVDATA), "-v", *args], capture_output=True, text=True, env=env, timeout=900)
    log.append(f"$ govdata -v {' '.join(args)}\n{done.stdout}\n{done.stderr}")
    assert done.returncode in ok, f"govdata {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The demo and an officer's quarantine work in a fresh home; returns (home, exports, log file)."""
    base = tmp_path_factory.mktemp("scan")
    home, exports = base / "home", base / "exports"
    exports.mkdir()
    log: list[str] = []
    govdata(home, log, "demo", "--date", DATE, ok=(0, 2))  # 2: a dataset held by its gate is fine here
    govdata(home, log, "status")
    govdata(home, log, "quarantine", "list")
    govdata(home, log, "quarantine", "list", "--json")
    for spec_path in find_specs(REPO / "datasets"):
        dataset = load_spec(spec_path).id
        if not (home / "quarantine" / dataset).is_dir():
            continue
        govdata(home, log, "quarantine", "show", dataset, "--limit", "1000")
        govdata(home, log, "quarantine", "show", dataset, "--limit", "1000", "--json")
        govdata(home, log, "quarantine", "export", dataset, "--output", str(exports / f"{dataset}.xlsx"))
        govdata(home, log, "quarantine", "export", dataset, "--output", str(exports / f"{dataset}.csv"))
    # The officer corrects a cast failure and types a new mobile for a quarantined person, keeps the
    # masked cells of the other columns, and resubmits.
    from openpyxl import load_workbook

    export = exports / "hrss_insured_persons.xlsx"
    wb = load_workbook(export)
    sheet = wb["隔离数据"]
    keys = [str(c.value).rsplit("(", 1)[-1].rstrip(")") for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        reason = str(row[keys.index("_govdata_reason")].value)
        if reason.startswith("出生日期不是有效日期"):
            row[keys.index("birth_date")].value = "1987-04-30"
        if reason.startswith("手机号码应为 11 位数字"):
            row[keys.index("mobile")].value = "13912345678"
    corrected = base / "hrss_corrected.xlsx"  # the officer's own file: input, not scanned
    wb.save(corrected)
    govdata(home, log, "quarantine", "resubmit", str(corrected))
    govdata(home, log, "quarantine", "list")
    govdata(home, log, "quarantine", "show", "hrss_insured_persons", "--limit", "1000")
    govdata(home, log, "quarantine", "export", "hrss_insured_persons", "--output", str(exports / "again.xlsx"))
    logs = base / "captured.log"
    logs.write_text("\n".join(log), encoding="utf-8")
    return home, exports, logs


def test_the_scanner_finds_planted_values_in_every_kind_of_file(demo: tuple[Path, Path, Path], tmp_path: Path) -> None:
    home, _, _ = demo
    secrets = secrets_of(home)
    by_kind = {
        "id": next(s for s in secrets if re.fullmatch(r"\d{17}[\dX]", s)),
        "mobile": next(s for s in secrets if re.fullmatch(r"1\d{10}", s)),
        "name": next(s for s in secrets if 2 <= len(s) <= 3 and not s.isascii()),
        "address": next(s for s in secrets if "路" in s and "号" in s),
    }
    scanner = Scanner(secrets)
    (tmp_path / "report.json").write_text(f'{{"sample": ["{by_kind["id"]}"]}}', encoding="utf-8")
    (tmp_path / "page.html").write_text(f"<td>{by_kind['name']}</td>", encoding="utf-8")
    (tmp_path / "run.log").write_text(f"INFO x: value {by_kind['mobile']} read\n", encoding="utf-8")
    duckdb.sql(f"COPY (SELECT 1 AS n, ['{by_kind['address']}'] AS l) TO '{tmp_path / 'rows.parquet'}' (FORMAT parquet)")
    from openpyxl import Workbook

    wb = Workbook()
    hidden = wb.create_sheet("h")
    hidden.sheet_state = "hidden"
    hidden.append(["x", by_kind["name"]])
    wb.save(tmp_path / "book.xlsx")
    found = {(h.file.name, h.secret) for h in scanner.scan(files_under(tmp_path))}
    assert found == {
        ("report.json", by_kind["id"]),
        ("page.html", by_kind["name"]),
        ("run.log", by_kind["mobile"]),
        ("rows.parquet", by_kind["address"]),
        ("book.xlsx", by_kind["name"]),
    }
    # a masked form and a name inside a longer word are not hits
    (tmp_path / "report.json").write_text(f'"{display(by_kind["id"], "resident_id", [])}"', encoding="utf-8")
    (tmp_path / "page.html").write_text(f"<td>上海{by_kind['name']}贸易有限公司</td>", encoding="utf-8")
    assert {h.file.name for h in scanner.scan(files_under(tmp_path))} == {"run.log", "rows.parquet", "book.xlsx"}


def test_no_sensitive_value_in_clear_after_the_demo(demo: tuple[Path, Path, Path]) -> None:
    home, exports, logs = demo
    secrets = secrets_of(home)
    kinds = {
        "resident IDs": sum(bool(re.fullmatch(r"\d{17}[\dX]", s)) for s in secrets),
        "mobiles": sum(bool(re.fullmatch(r"1\d{10}", s)) for s in secrets),
        "names": sum(2 <= len(s) <= 4 and not s.isascii() for s in secrets),
    }
    assert all(n >= 50 for n in kinds.values()), kinds  # the demo's sensitive columns were all read
    scanned = files_under(
        home / "reports", home / "quarantine", home / "subscribers", exports, logs, home / "catalog.db"
    )
    assert any(p.suffix == ".parquet" and "quarantine" in p.parts for p in scanned)
    assert any(p.suffix == ".xlsx" for p in scanned) and any(p.name == "validation_result.json" for p in scanned)
    assert any("resubmit" in p.name or "resubmit" in str(p.parent) for p in scanned)
    assert any(p.suffix == ".csv" and "subscribers" in p.parts for p in scanned)  # the exchange's deliveries
    hits = Scanner(secrets).scan(scanned)
    assert not hits, f"{len(hits)} sensitive value(s) in clear:\n" + "\n".join(str(h) for h in hits[:30])
    # the masked forms are there, so the scan looked at the right places
    assert "*" in logs.read_text(encoding="utf-8") and re.search(
        r"\d{6}\*{8}[\dX]{4}", logs.read_text(encoding="utf-8")
    )
