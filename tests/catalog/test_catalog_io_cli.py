"""``govdata catalog import`` and ``govdata catalog export`` (xlsx) end to end through the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from catalog.models import Entry
from catalog.spreadsheet import NATIONAL_COLUMNS, PROVIDER_COLUMNS
from catalog.store import CatalogStore
from pipelines.cli import app
from pipelines.spec import load_spec
from pipelines.workspace import Workspace
from tests.catalog.conftest_spreadsheet import (
    BASE,
    BUNDLED,
    DEPT_A,
    DEPT_B,
    add_department,
    add_user,
    cells,
    resource,
    two_resources,
    write_sheet,
)

cli = CliRunner()


@pytest.fixture(autouse=True)
def _no_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOVDATA_USER", raising=False)


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    result = cli.invoke(app, list(args), env={"COLUMNS": "240", **(env or {})})
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def store_of(home: Path) -> CatalogStore:
    return CatalogStore(Workspace.from_env(home).catalog_url)


def test_import_then_export_round_trips_through_the_cli(workspace: Path, tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path / "in.xlsx", two_resources())
    result = invoke("catalog", "import", str(sheet), "--department", DEPT_A, "--department-name", "上海市测试局")
    assert result.exit_code == 0, result.output
    assert "2 created, 0 updated, 0 unchanged" in result.output and "data items written: 5" in result.output
    assert f"departments added: {DEPT_A}" in result.output

    again = invoke("catalog", "import", str(sheet), "--department", DEPT_A, "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.output)
    assert report["entries"]["unchanged"] == ["res_102010002_000001", "res_102010002_000002"]
    assert report["imported"] is True and report["problems"] == []

    out = tmp_path / "out.xlsx"
    exported = invoke("catalog", "export", "--department", DEPT_A, "--output", str(out))
    assert exported.exit_code == 0, exported.output
    assert "wrote 2 entries (5 rows, 1 department(s))" in exported.output
    assert cells(out)[0] == list(NATIONAL_COLUMNS)

    other = tmp_path / "other-home"
    moved = invoke(
        "catalog", "import", str(out), "--department", DEPT_A, "--department-name", "上海市测试局", "--home", str(other)
    )
    assert moved.exit_code == 0, moved.output
    out2 = tmp_path / "out2.xlsx"
    assert invoke("catalog", "export", "--department", DEPT_A, "-o", str(out2), "--home", str(other)).exit_code == 0
    assert cells(out2) == cells(out)


def test_the_whole_catalog_exports_with_provider_columns(workspace: Path, tmp_path: Path) -> None:
    store = store_of(workspace)
    for path in BUNDLED:
        store.register(load_spec(path), source="test")
    out = tmp_path / "all.xlsx"
    result = invoke("catalog", "export", "--output", str(out))
    assert result.exit_code == 0 and "wrote 3 entries" in result.output and "3 department(s)" in result.output
    grid = cells(out)
    assert grid[0] == [*NATIONAL_COLUMNS, *PROVIDER_COLUMNS]
    moved = invoke("catalog", "import", str(out), "--home", str(tmp_path / "fresh"))
    assert moved.exit_code == 0, moved.output
    assert "3 created" in moved.output and "departments added" in moved.output
    assert invoke("catalog", "export", "-o", str(tmp_path / "b.xlsx"), "--home", str(tmp_path / "fresh")).exit_code == 0
    assert cells(tmp_path / "b.xlsx") == grid


def test_an_import_with_problems_prints_every_one_and_imports_nothing(workspace: Path, tmp_path: Path) -> None:
    rows = [
        *resource("102010002/000001", [("a", "C", 1), ("b", "字符形", 1)]),
        *resource("102010002/000002", [("a", "C", 1)], 更新周期="偶尔"),
        *resource("102010002/000003", [("a", "C", 1)]),
    ]
    rows.append({**BASE, "信息资源代码": 102010002000004})
    sheet = write_sheet(tmp_path / "bad.xlsx", rows)
    result = invoke("catalog", "import", str(sheet), "--department", DEPT_A, "--department-name", "上海市测试局")
    assert result.exit_code == 1
    out = result.output
    assert "3 problem(s)" in out and "nothing was imported" in out and "--partial" in out
    for needle in ("O 数据类型", "did you mean '字符型'?", "W 更新周期", "H 信息资源代码", "typed as a number"):
        assert needle in out, f"{needle!r} missing from:\n{out}"
    assert store_of(workspace).entries() == []

    listed = invoke(
        "catalog", "import", str(sheet), "--department", DEPT_A, "--department-name", "上海市测试局", "--json"
    )
    assert listed.exit_code == 1
    report = json.loads(listed.output)
    assert [(p["row"], p["letter"], p["column"]) for p in report["problems"]] == [
        (3, "O", "数据类型"),
        (4, "W", "更新周期"),
        (6, "H", "信息资源代码"),
    ]
    assert report["imported"] is False and all(p["fix"] for p in report["problems"])

    partly = invoke(
        "catalog", "import", str(sheet), "--department", DEPT_A, "--department-name", "上海市测试局", "--partial"
    )
    assert partly.exit_code == 0, partly.output
    assert "1 created" in partly.output and "imported partly" in partly.output
    assert [e.id for e in store_of(workspace).entries()] == ["res_102010002_000003"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("sheet.csv", "序号,信息资源名称\n1,a\n".encode(), "a CSV or text file, not an Excel .xlsx workbook"),
        ("sheet.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64, "Excel 97-2003 .xls"),
    ],
)
def test_files_that_are_not_xlsx_exit_1_with_a_hint(
    workspace: Path, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    add_department(store_of(workspace), DEPT_A, "上海市测试局")
    (tmp_path / name).write_bytes(content)
    result = invoke("catalog", "import", str(tmp_path / name), "--department", DEPT_A)
    assert result.exit_code == 1
    assert message in result.output and "save it as .xlsx" in result.output


def test_the_department_must_be_named_and_exist(workspace: Path, tmp_path: Path) -> None:
    sheet = write_sheet(tmp_path / "in.xlsx", two_resources())
    result = invoke("catalog", "import", str(sheet))
    assert result.exit_code == 1 and "no provider columns" in result.output and "--department USCC" in result.output
    result = invoke("catalog", "import", str(sheet), "--department", DEPT_A)
    assert result.exit_code == 1 and "not in the catalog" in result.output and "--department-name" in result.output
    result = invoke("catalog", "import", str(sheet), "--department", DEPT_A[:-1] + "I")
    assert result.exit_code == 1 and "not a valid USCC" in result.output


def test_import_as_a_user(workspace: Path, tmp_path: Path) -> None:
    store = store_of(workspace)
    add_department(store, DEPT_A, "上海市测试局")
    add_department(store, DEPT_B, "上海市另一局")
    add_user(store, "zhang", "staff", DEPT_A)
    add_user(store, "li", "staff", DEPT_B)
    add_user(store, "audit", "auditor", None)
    sheet = write_sheet(tmp_path / "in.xlsx", two_resources())

    refused = invoke("catalog", "import", str(sheet), "--department", DEPT_A, "--as", "li")
    assert refused.exit_code == 1 and "only the entries of their own department" in refused.output
    auditor = invoke("catalog", "import", str(sheet), "--department", DEPT_A, env={"GOVDATA_USER": "audit"})
    assert auditor.exit_code == 1 and "auditors" in auditor.output
    unknown = invoke("catalog", "import", str(sheet), "--department", DEPT_A, "--as", "zhangg")
    assert unknown.exit_code == 1 and "did you mean 'zhang'?" in unknown.output
    ok = invoke("catalog", "import", str(sheet), "--department", DEPT_A, env={"GOVDATA_USER": "zhang"})
    assert ok.exit_code == 0 and "2 created" in ok.output

    # what each one may export: li sees only the published entry of department A
    with store.session() as s:
        entry = s.get(Entry, "res_102010002_000001")
        assert entry is not None
        entry.status = "published"
    out = tmp_path / "li.xlsx"
    seen = invoke("catalog", "export", "--as", "li", "-o", str(out))
    assert seen.exit_code == 0 and "wrote 1 entries (3 rows" in seen.output
    assert {r[7] for r in cells(out)[1:]} == {"102010002/000001"}
    everything = invoke("catalog", "export", "-o", str(tmp_path / "op.xlsx"))
    assert "wrote 2 entries (5 rows" in everything.output


def test_export_options(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = store_of(workspace)
    store.register(load_spec(BUNDLED[2]), source="test")
    uscc = load_spec(BUNDLED[2]).department.uscc
    monkeypatch.chdir(tmp_path)
    result = invoke("catalog", "export", "--department", uscc.lower())
    assert result.exit_code == 0 and (tmp_path / f"catalog-{uscc}.xlsx").is_file()
    assert invoke("catalog", "export").exit_code == 0 and (tmp_path / "catalog.xlsx").is_file()

    bad = invoke("catalog", "export", "--format", "xlxs")
    assert bad.exit_code == 1 and "did you mean 'xlsx'?" in bad.output
    dcat = invoke("catalog", "export", "--format", "dcat-turtle", "--department", uscc)
    assert dcat.exit_code == 1 and "xlsx sheet only" in dcat.output
    missing = invoke("catalog", "export", "--department", DEPT_B)
    assert missing.exit_code == 1 and "not in the catalog" in missing.output
    csv = invoke("catalog", "export", "-o", str(tmp_path / "x.csv"))
    assert csv.exit_code == 1 and "ending in .xlsx" in csv.output


def test_text_from_the_sheet_is_printed_as_text_not_markup(workspace: Path, tmp_path: Path) -> None:
    rows = resource("102010002/000001", [("[/]", "[bold red]X[/]", 1)])
    sheet = write_sheet(tmp_path / "[bold]markup.xlsx", rows)
    result = invoke("catalog", "import", str(sheet), "--department", DEPT_A, "--department-name", "上海市测试局")
    assert result.exit_code == 1
    assert "'[boldred]X[/]'" in result.output and "[bold]markup.xlsx" in result.output
