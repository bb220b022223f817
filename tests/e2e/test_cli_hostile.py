"""Hostile input through the CLI: a clear error (exit 1, nothing published) or quarantined rows."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.workspace import Workspace
from tests.e2e.conftest import HEADER, good_rows

cli = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    """Run the CLI in-process; return the exit code and everything it printed (stdout + stderr)."""
    result = cli.invoke(app, list(args), env={"COLUMNS": "200"})
    text = result.output
    assert "Traceback" not in text, text
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, text


def run_json(*args: str) -> tuple[int, dict]:
    """Run with --json and parse the report from stdout alone."""
    result = cli.invoke(app, [*args, "--json"], env={"COLUMNS": "200"})
    assert "Traceback" not in result.output, result.output
    return result.exit_code, json.loads(result.stdout)


def nothing_published() -> bool:
    return not (Workspace.from_env().exchange / "sample_enterprises").exists()


def test_help_is_fast_and_imports_neither_gx_nor_airflow() -> None:
    code = (
        "import sys; from pipelines.cli import app\n"
        "assert 'great_expectations' not in sys.modules and 'airflow' not in sys.modules and 'duckdb' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run(
        [Path(sys.executable).parent / "govdata", "--help"], capture_output=True, text=True, check=True
    )
    assert "run" in out.stdout and "demo" in out.stdout


def test_unknown_spec_key_exits_1_naming_file_line_and_key(make_dataset: Callable[..., Path], workspace: Path) -> None:
    spec = make_dataset()
    spec.write_text(spec.read_text(encoding="utf-8").replace("cleanse:", "cleanze:"), encoding="utf-8")
    proc = subprocess.run([Path(sys.executable).parent / "govdata", "run", str(spec)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "unknown key 'cleanze' (did you mean 'cleanse'?)" in proc.stderr
    assert f"{spec}:" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_source_file(make_dataset: Callable[..., Path], workspace: Path) -> None:
    spec = make_dataset()
    (spec.parent / "source.csv").unlink()
    code, text = invoke("run", str(spec))
    assert code == 1 and "source.csv" in text and nothing_published()


def test_wrongly_declared_encoding(make_dataset: Callable[..., Path], workspace: Path) -> None:
    spec = make_dataset(encoding="gb18030", options={"encoding": "utf-8"})
    code, text = invoke("run", str(spec))
    assert code == 1 and "source.csv" in text and "gb18030" in text.lower() and nothing_published()


def test_gb18030_source_is_read_when_detected(make_dataset: Callable[..., Path], workspace: Path) -> None:
    spec = make_dataset(encoding="gb18030")
    code, report = run_json("run", str(spec))
    assert code == 0 and report["rows"]["published"] == 20


def test_empty_file(make_dataset: Callable[..., Path], workspace: Path) -> None:
    code, text = invoke("run", str(make_dataset(raw=b"")))
    assert code == 1 and "source.csv" in text and nothing_published()


def test_header_only_file(make_dataset: Callable[..., Path], workspace: Path) -> None:
    code, text = invoke("run", str(make_dataset(lines=[])))
    assert code == 1 and "no data rows" in text and nothing_published()


def test_required_column_missing(make_dataset: Callable[..., Path], workspace: Path) -> None:
    raw = ("统一社会信用代码,企业名,成立日期,注册资本\n" + "\n".join(good_rows(3)) + "\n").encode()
    code, text = invoke("run", str(make_dataset(raw=raw)))
    assert code == 1 and "企业名称" in text and "企业名" in text and nothing_published()


def test_malformed_rows_are_quarantined_with_reasons(make_dataset: Callable[..., Path], workspace: Path) -> None:
    lines = [*good_rows(20), "a,b,c,d,e,f", "only_one_field"]
    code, report = run_json("run", str(make_dataset(lines)))
    assert code == 0
    assert report["rows"]["quarantined_detail"]["malformed_at_read"] == 2
    assert report["rows"]["collected"] == 22 and report["rows"]["published"] == 20


def test_one_percent_undecodable_bytes(make_dataset: Callable[..., Path], workspace: Path) -> None:
    rows = good_rows(300)
    data = bytearray()
    data += (HEADER + "\n").encode("gb18030")
    for i, line in enumerate(rows):
        encoded = line.encode("gb18030")
        if i % 100 == 7:  # 1% of rows carry a byte that is not GB18030
            encoded = encoded.replace("企业".encode("gb18030"), b"\xff\xfe", 1)
        data += encoded + b"\n"
    code, report = run_json("run", str(make_dataset(raw=bytes(data))))
    assert code == 0
    assert report["rows"]["collected"] == 300
    assert report["rows"]["quarantined_detail"]["malformed_at_read"] == 3
    assert report["rows"]["published"] == 297


def test_held_run_exits_2(make_dataset: Callable[..., Path], workspace: Path) -> None:
    suite = {
        "name": "s",
        "expectations": [{"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 1}, "meta": {}}],
    }
    code, text = invoke("run", str(make_dataset(suite=suite)))
    assert code == 2 and "held" in text and nothing_published()


def test_bad_date_option(make_dataset: Callable[..., Path], workspace: Path) -> None:
    code, text = invoke("run", str(make_dataset()), "--date", "24/11/2026")
    assert code == 1 and "YYYY-MM-DD" in text


def test_validate_and_catalog_commands(make_dataset: Callable[..., Path], workspace: Path) -> None:
    spec = make_dataset()
    code, text = invoke("validate", str(spec))
    assert code == 0 and "sample_enterprises" in text
    assert invoke("run", str(spec))[0] == 0
    code, text = invoke("catalog", "list")
    assert code == 0 and "101510001/000001" in text
    code, shown = run_json("catalog", "show", "sample_enterprises")
    assert (
        code == 0 and shown["elements"]["3 信息资源代码"] == "101510001/000001" and shown["versions"][0]["rows"] == 20
    )
    assert len(shown["elements"]) == 13
    code, text = invoke("catalog", "show", "sample_enterprise")
    assert code == 1 and "did you mean 'sample_enterprises'" in text
    code, text = invoke("status")
    assert code == 0 and "published" in text


@pytest.mark.parametrize("connector", ["csvv"])
def test_unknown_connector_suggests_the_right_one(
    make_dataset: Callable[..., Path], workspace: Path, connector: str
) -> None:
    spec = make_dataset()
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("connector: csv", f"connector: {connector}"), encoding="utf-8"
    )
    code, text = invoke("run", str(spec))
    assert code == 1 and "did you mean 'csv'" in text


def test_real_process_exit_code_2_when_held_and_no_teardown_noise(
    make_dataset: Callable[..., Path], workspace: Path
) -> None:
    suite = {
        "name": "s",
        "expectations": [{"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 1}, "meta": {}}],
    }
    spec = make_dataset(suite=suite)
    proc = subprocess.run([Path(sys.executable).parent / "govdata", "run", str(spec)], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "held" in proc.stdout
    assert "leaked" not in proc.stderr and "Traceback" not in proc.stderr
