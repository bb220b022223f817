"""A workspace where the bundled hrss example (sensitive columns) has run once, copied per test."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from pipelines import runner
from pipelines.cli import app

REPO = Path(__file__).resolve().parents[2]
DATE = "2026-11-24"
HRSS = "hrss_insured_persons"
DATA_SHEET = "隔离数据"


@pytest.fixture(scope="session")
def hrss_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(home, spec) after one run of the hrss example: published v1 with 14 quarantined rows."""
    base = tmp_path_factory.mktemp("hrss")
    shutil.copytree(REPO / "datasets" / "hrss", base / "hrss")
    spec = base / "hrss" / "insured_persons.yaml"
    report = runner.run(spec, DATE, home=base / "home")
    assert report["status"] == "published" and report["rows"]["quarantined"] == 14, report["rows"]
    return base / "home", spec


@pytest.fixture
def home(hrss_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of the hrss workspace, as GOVDATA_HOME."""
    target = tmp_path / "home"
    shutil.copytree(hrss_run[0], target)
    monkeypatch.setenv("GOVDATA_HOME", str(target))
    monkeypatch.delenv("GOVDATA_CATALOG_URL", raising=False)
    yield target


def govdata(*args: str) -> tuple[int, str]:
    """Run the CLI in-process; return the exit code and everything it printed."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def govdata_json(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"], env={"COLUMNS": "200"})
    assert result.exit_code in (0, 2), result.output
    return json.loads(result.stdout)


def key_of(header: object) -> str:
    return str(header).rsplit("(", 1)[-1].rstrip(")").strip()


def read_sheet(path: Path) -> list[dict[str, Any]]:
    """The data sheet of an export as dicts keyed by column name."""
    wb = load_workbook(path)
    rows = list(wb[DATA_SHEET].iter_rows(values_only=True))
    keys = [key_of(h) for h in rows[0]]
    return [dict(zip(keys, r, strict=False)) for r in rows[1:]]


def edit(
    src: Path,
    dst: Path,
    *,
    values: dict[str, dict[str, Any]] | None = None,
    delete: set[str] = frozenset(),  # type: ignore[assignment]
    change: Callable[[Any], None] | None = None,
) -> Path:
    """Copy an export with cells changed (row id → {column: value}), rows deleted, or anything else."""
    wb = load_workbook(src)
    sheet = wb[DATA_SHEET]
    keys = [key_of(c.value) for c in sheet[1]]
    doomed = []
    for number, row in enumerate(sheet.iter_rows(min_row=2), start=2):
        row_id = str(row[0].value)
        for key, value in (values or {}).get(row_id, {}).items():
            row[keys.index(key)].value = value
        if row_id in delete:
            doomed.append(number)
    for number in reversed(doomed):
        sheet.delete_rows(number)
    if change is not None:
        change(wb)
    wb.save(dst)
    return dst


def landing_values(home: Path, dataset: str, run: str, columns: list[str]) -> set[str]:
    """Every non-empty value of the given source columns in a run's landing copy."""
    data = home / "landing" / dataset / run / "data.parquet"
    found: set[str] = set()
    for column in columns:
        rows = duckdb.sql(f'SELECT DISTINCT CAST("{column}" AS VARCHAR) FROM \'{data}\' WHERE "{column}" IS NOT NULL')
        found |= {str(r[0]).strip() for r in rows.fetchall() if len(str(r[0]).strip()) >= 2}
    return found
