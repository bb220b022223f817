"""The logging config class keeps Great Expectations' import flood out of Airflow's logs.

Under Airflow's default logging config, ``import great_expectations`` prints ~214 INFO lines
from ``great_expectations._docs_decorators``. Each case runs in a fresh interpreter (Airflow
configures logging once, when it is imported): under our config the real import must print
none of them. Under the default config the same logger's INFO records do reach the output, which
shows the check could see the flood (probed with one record: a second GX import costs ~10 s).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import AIRFLOW_ENV

FLOOD_LOGGER = "great_expectations._docs_decorators"

IMPORT_GX = """
import logging
import airflow.settings  # configures logging from [logging] logging_config_class
import great_expectations
print("GX_LEVEL", logging.getLogger("great_expectations").getEffectiveLevel())
"""

PROBE_ONE_RECORD = f"""
import logging
import airflow.settings
logging.getLogger("{FLOOD_LOGGER}").info("Skipping registering function probe")
"""


def _start(code: str, *, our_config: bool) -> subprocess.Popen[str]:
    env = {**os.environ, **AIRFLOW_ENV}
    if not our_config:
        env.pop("AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS")
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


@pytest.fixture(scope="module")
def outputs() -> dict[str, str]:
    """Both interpreters run side by side (the GX import takes ~10 s)."""
    runs = {"govdata": _start(IMPORT_GX, our_config=True), "default": _start(PROBE_ONE_RECORD, our_config=False)}
    result = {}
    for name, proc in runs.items():
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out
        result[name] = out
    return result


def test_our_config_silences_the_gx_import(outputs: dict[str, str]) -> None:
    assert outputs["govdata"].count(FLOOD_LOGGER) == 0
    assert "GX_LEVEL 30" in outputs["govdata"]  # WARNING


def test_the_default_config_lets_the_flood_through(outputs: dict[str, str]) -> None:
    assert outputs["default"].count(FLOOD_LOGGER) == 1
