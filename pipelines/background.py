"""Work started early so that it overlaps the first steps of a run.

Importing Great Expectations costs ~8 s of single-threaded Python (DESIGN.md), and only the
quality step needs it. A whole run (:func:`pipelines.runner.run`) starts that import in a
daemon thread before collecting, so it proceeds while the collect step waits for work that does
not hold this process's GIL: the CSV connector transcodes a large file in a child process
(:mod:`connectors.encoding`) exactly while such an import is under way (:func:`busy`), and
DuckDB releases the GIL in its queries. The quality step's own ``import`` then finds the modules
loaded, or waits for the thread to finish them (Python's per-module import locks).

Nothing depends on the thread: if the import fails, the quality step's import raises the same
error where it always did. Steps run one by one (the Airflow tasks, ``govdata`` step commands)
never start it.
"""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger(__name__)

#: What the quality step imports first (it brings in GX and registers the custom expectations).
QUALITY_MODULE = "expectations.gate"

_lock = threading.Lock()
_thread: threading.Thread | None = None


def _import(module: str) -> None:
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - the quality step imports it again and reports the error there
        log.debug("background import of %s failed: %r", module, exc)


def start_quality_import() -> None:
    """Start importing the quality step's modules in a daemon thread (once per process)."""
    global _thread
    with _lock:
        if _thread is not None:
            return
        _thread = threading.Thread(target=_import, args=(QUALITY_MODULE,), name="govdata-import-gx", daemon=True)
        _thread.start()


def busy() -> bool:
    """Whether a background import is still running (so another core has Python work to do)."""
    thread = _thread
    return thread is not None and thread.is_alive()
