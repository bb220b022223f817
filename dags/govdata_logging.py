"""Airflow's default logging config with Great Expectations' import chatter turned down.

Importing ``great_expectations`` 1.24 logs ~214 INFO lines ("Skipping registering function …")
from ``great_expectations._docs_decorators``. Airflow sets the root logger to INFO, so without
this config every quality task log starts with that flood. ``[logging] namespace_levels`` does
not help: it only filters Airflow's structlog loggers, and GX logs through the standard library.

Enable it in every Airflow component (scheduler, dag-processor, api-server, workers, and the
process that calls ``dag.test()``)::

    AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS=dags.govdata_logging.LOGGING_CONFIG

``dags.govdata_logging`` resolves when the repository root is on ``sys.path`` (the editable
install of govdata puts it there; in a container set ``PYTHONPATH`` to the checkout). The module
imports nothing from govdata, so it can also be copied to ``$AIRFLOW_HOME/config/`` (which
Airflow puts on ``sys.path``) and named ``govdata_logging.LOGGING_CONFIG``.

Task processes started by an executor inherit the level from the worker that forks them (the
Task SDK re-applies its own handlers but leaves loggers it does not name alone). The quality
step also sets the GX logger to WARNING itself (``expectations/``), so this is belt and braces.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow.config_templates.airflow_local_settings import (
    DEFAULT_LOGGING_CONFIG,
    DEFAULT_REMOTE_CONN_ID,  # re-exported: Airflow reads both from the module that holds the config
    REMOTE_TASK_LOG,
)

__all__ = ["DEFAULT_REMOTE_CONN_ID", "LOGGING_CONFIG", "QUIET_LOGGERS", "REMOTE_TASK_LOG"]

#: Third-party loggers that are too chatty at INFO, and the level they get.
QUIET_LOGGERS: dict[str, str] = {"great_expectations": "WARNING"}

LOGGING_CONFIG: dict[str, Any] = copy.deepcopy(DEFAULT_LOGGING_CONFIG)
for _name, _level in QUIET_LOGGERS.items():
    # No handlers of its own: records at WARNING and above still propagate to Airflow's handlers.
    LOGGING_CONFIG["loggers"][_name] = {"level": _level, "propagate": True}
