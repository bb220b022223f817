"""A throwaway Airflow for the DAG tests: its own AIRFLOW_HOME, SQLite DB and sample datasets.

The environment is set when this conftest is imported, before any test here imports Airflow
(Airflow reads its configuration once, at import). The metadata DB is migrated only for the
tests that need it (``dag.test()``), once per session.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .helpers import DAGS_DIR, LOGGING_MODULE, spec_dict, write_spec

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="govdata-airflow-"))
# atexit rather than a session fixture: also cleans up after --collect-only and aborted sessions.
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)

#: What every Airflow process started by these tests sees (this one and subprocesses).
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    # The way production enables the GX-quiet logging config: the module in $AIRFLOW_HOME/config.
    "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS": "govdata_logging.LOGGING_CONFIG",
}

if "airflow" in sys.modules:  # pragma: no cover - another test imported Airflow first
    pytest.exit("tests/dags must configure Airflow before it is imported; run them first or alone", 3)
(AIRFLOW_HOME / "config").mkdir()
shutil.copy(LOGGING_MODULE, AIRFLOW_HOME / "config" / LOGGING_MODULE.name)
os.environ.update(AIRFLOW_ENV)


@pytest.fixture
def sample_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A datasets folder with two departments' specs, selected through GOVDATA_DATASETS_DIR."""
    root = tmp_path / "datasets"
    write_spec(root / "sample", "sample_enterprises")
    write_spec(
        root / "other",
        "other_enterprises",
        catalog={**spec_dict("x")["catalog"], "update_cycle": "每季度"},
        tags=["sample", "quarterly"],
    )
    monkeypatch.setenv("GOVDATA_DATASETS_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The session's SQLite metadata DB, migrated once (only for tests that run DAGs)."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return AIRFLOW_HOME / "airflow.db"
