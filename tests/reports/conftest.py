"""A workspace with the bundled departments run on two logical dates (the site's trend), built once."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

DATES = ("2026-11-20", "2026-11-24")


@dataclass(frozen=True)
class Demo:
    home: Path
    site: Path
    outputs: list[str]  # the demo's output, one per date


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """``govdata demo`` for two dates in one workspace (read-only for the tests: copy it to change it)."""
    home = tmp_path_factory.mktemp("reports-site") / "home"
    outputs = []
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("GOVDATA_CATALOG_URL", raising=False)
        patch.delenv("GOVDATA_HOME", raising=False)
        for date in DATES:
            result = CliRunner().invoke(app, ["demo", "--date", date, "--home", str(home)])
            assert result.exit_code in (0, 2), result.output  # 2: a demo department is held by its gate
            outputs.append(result.output)
    return Demo(home=home, site=home / "reports" / "_site", outputs=outputs)


@pytest.fixture
def demo_copy(demo: Demo, tmp_path: Path) -> Demo:
    """A private copy of the demo workspace, to change."""
    home = tmp_path / "home"
    shutil.copytree(demo.home, home)
    return Demo(home=home, site=home / "reports" / "_site", outputs=demo.outputs)
