"""The folders are the architecture: the core never imports Airflow, and the CLI starts light.

``pipelines/ connectors/ expectations/ catalog/ exchange/`` must run as a plain Python program
(``govdata run``); only ``dags/`` may import Airflow. Checked on the source (every import
statement, including ones inside functions) and by importing the CLI in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORE_PACKAGES = ("pipelines", "connectors", "expectations", "catalog", "exchange")
FORBIDDEN_IN_CORE = ("airflow",)
#: What ``govdata --help`` must not pay for (GX costs ~11 s and 270 MB to import).
HEAVY_FOR_CLI = ("airflow", "great_expectations")


def _core_sources() -> list[Path]:
    return sorted(p for pkg in CORE_PACKAGES if (REPO / pkg).is_dir() for p in (REPO / pkg).rglob("*.py"))


def _imported_modules(source: Path) -> list[tuple[int, str]]:
    """Every module an ``import`` or ``from … import`` statement in ``source`` names, with its line."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _is_under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == root or module.startswith(f"{root}.") for root in roots)


def test_there_is_core_code_to_check() -> None:
    assert len(_core_sources()) > 5  # guards against the glob silently finding nothing


@pytest.mark.parametrize("source", _core_sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_core_module_does_not_import_airflow(source: Path) -> None:
    offending = [
        f"{source.relative_to(REPO)}:{line}: imports {module}"
        for line, module in _imported_modules(source)
        if _is_under(module, FORBIDDEN_IN_CORE)
    ]
    assert not offending, "the core must not import Airflow (put Airflow glue in dags/):\n" + "\n".join(offending)


def test_the_ast_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from airflow.sdk import task\n    import airflow\n", encoding="utf-8")
    assert [m for _, m in _imported_modules(sample)] == ["airflow.sdk", "airflow"]


def test_cli_import_is_light() -> None:
    code = (
        "import json, sys\n"
        "import pipelines.cli\n"
        f"print(json.dumps([m for m in {HEAVY_FOR_CLI!r} if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
