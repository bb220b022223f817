"""The reports site with nothing to show, with a failed run, and from the command line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines import runner, site
from pipelines.errors import GovdataError

REPO = Path(__file__).resolve().parents[2]


def test_an_empty_workspace_gets_a_landing_page_without_data_docs(tmp_path: Path) -> None:
    built = site.build(tmp_path / "home")
    assert built.runs == 0 and built.datadocs_index is None
    html = built.index.read_text(encoding="utf-8")
    assert "No runs yet" in html
    assert "datadocs/index.html" not in html  # nothing to link to
    assert not (built.root / "datadocs").exists()


def test_a_run_that_failed_before_the_gate_is_listed_with_its_reason(tmp_path: Path) -> None:
    folder = tmp_path / "transport"
    shutil.copytree(REPO / "datasets" / "transport", folder)
    (folder / "sources" / "transport.db").unlink()  # the department's database is gone
    home = tmp_path / "home"
    with pytest.raises(GovdataError):
        runner.run(folder / "bus_stops.yaml", "2026-11-24", home=home)
    built = site.build(home)
    assert built.runs == 1 and built.datadocs_index is None
    page = (built.root / "datasets" / "transport_bus_stops.html").read_text(encoding="utf-8")
    assert "失败 failed" in page
    assert "stopped in the collect step" in page
    landing = built.index.read_text(encoding="utf-8")
    assert "departments/unknown.html" in landing  # no scorecard and no spec remembered: department unknown
    assert (built.root / "departments" / "unknown.html").is_file()


def test_the_module_entry_point_builds_and_reports_a_bad_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert site.main(["--home", str(tmp_path / "home")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "home" / "reports" / "_site" / "index.html")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x", encoding="utf-8")
    assert site.main(["--home", str(not_a_folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot build the reports site") and "Traceback" not in err
