"""The quality gate: GX suites (``<dataset>.json`` beside this file), custom expectations, DuckDB adapter.

Importing this package imports GX (~10 s, ~270 MB), applies the DuckDB patches and registers
the custom expectations with GX (resident ID, USCC, organisation code, administrative division,
mobile number, and the resident ID's consistency with the record's birth date and sex). Only
the quality step imports it; the CLI, the DAG files and ``govdata validate`` (which checks
suites with :mod:`pipelines.suites`) never do.

Modules, one job each:
- :mod:`expectations.engine` — the DuckDB patches for GX 1.24.1 and the GX context factory;
- :mod:`expectations.custom` — the Chinese identifier expectations (see its table);
- :mod:`expectations.gate` — :func:`~expectations.gate.validate`, the gate the pipeline calls.

Before GX is imported, it is quieted: the ``great_expectations`` logger is set to WARNING
(under Airflow's logging config GX logs ~200 INFO lines on import), GX's own
DeprecationWarnings are ignored, and analytics are off (``GX_ANALYTICS_ENABLED=false`` unless
set). The gate's GX contexts have progress bars off (:func:`expectations.engine.ephemeral_context`).
"""

from __future__ import annotations

import logging
import os
import warnings

logging.getLogger("great_expectations").setLevel(logging.WARNING)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# GX 1.24 imports the deprecated sre_constants/sre_parse: under a "default" warnings filter
# (Airflow, ``python -W default``) every import of the gate would print two warnings.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"great_expectations(\.|$)")

from expectations import custom  # noqa: E402  (after the quieting above; registers with GX)


def register() -> list[str]:
    """The names of the custom expectations (registered when this package was imported)."""
    return sorted(custom.CUSTOM_EXPECTATIONS)


__all__ = ["register"]
