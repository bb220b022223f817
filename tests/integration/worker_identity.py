"""Which worker ran a task: a ``[core] hostname_callable`` that tells workers on one host apart.

Airflow records the host that ran a task instance in ``task_instance.hostname``; the Task SDK
takes it from ``[core] hostname_callable`` in the process that supervises the task, which is
forked by the worker and inherits its environment. Several workers on one machine all report
the same host name, so a test deployment gives each worker process its own
``GOVDATA_WORKER_NAME`` and points every component at this function::

    AIRFLOW__CORE__HOSTNAME_CALLABLE=tests.integration.worker_identity.hostname

Processes without the variable (scheduler, API server) report the plain host name. The module
imports nothing from Airflow or govdata, so it is cheap in every component.
"""

from __future__ import annotations

import os
import socket

WORKER_NAME_ENV = "GOVDATA_WORKER_NAME"


def hostname() -> str:
    """``<worker name>@<host>`` in a named worker process, else the host's fully qualified name."""
    host = socket.getfqdn()
    name = os.environ.get(WORKER_NAME_ENV)
    return f"{name}@{host}" if name else host


def worker_name(recorded_hostname: str | None) -> str | None:
    """The worker name in a ``task_instance.hostname`` written by :func:`hostname` (None if unnamed)."""
    if not recorded_hostname or "@" not in recorded_hostname:
        return None
    return recorded_hostname.split("@", 1)[0]
