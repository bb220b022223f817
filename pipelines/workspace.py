"""Where a run's files live: the workspace layout and the run key."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("var")


@dataclass(frozen=True)
class Workspace:
    """The folders of one govdata installation (embedded default: everything on local disk).

    ``GOVDATA_HOME`` picks the root (default ``./var``); ``GOVDATA_CATALOG_URL`` points the
    catalog at another database (e.g. ``postgresql+psycopg://…``); ``GOVDATA_STORE_URL`` keeps
    the published versions in an object store (``s3://bucket/prefix?endpoint=…``), with
    ``exchange/`` as its local cache (:mod:`exchange.objectstore`).
    """

    root: Path
    catalog_url: str
    store_url: str | None = None

    @classmethod
    def from_env(cls, root: str | Path | None = None) -> Workspace:
        base = Path(root or os.environ.get("GOVDATA_HOME") or DEFAULT_HOME).expanduser().resolve()
        url = os.environ.get("GOVDATA_CATALOG_URL") or f"sqlite:///{base / 'catalog.db'}"
        return cls(root=base, catalog_url=url, store_url=os.environ.get("GOVDATA_STORE_URL", "").strip() or None)

    def landing(self, dataset: str, run_id: str) -> Path:
        return self.root / "landing" / dataset / run_id

    def staging(self, dataset: str, run_id: str) -> Path:
        return self.root / "staging" / dataset / run_id

    def quarantine(self, dataset: str, run_id: str) -> Path:
        return self.root / "quarantine" / dataset / run_id

    def reports(self, dataset: str, run_id: str) -> Path:
        return self.root / "reports" / dataset / run_id

    @property
    def exchange(self) -> Path:
        return self.root / "exchange"

    @property
    def state(self) -> Path:
        return self.root / "state"


def run_id_for(logical_date: dt.date | dt.datetime) -> str:
    """The run key for a logical date: ``2026-11-24`` at midnight, else ``2026-11-24T063000Z``.

    Midnight is read in the datetime's own zone: the daily period that starts at midnight in
    Shanghai is ``2026-11-24``, the same key ``--date 2026-11-24`` gives (the DAG glue hands the
    logical date over in the dataset's time zone, :func:`pipelines.schedule.local_moment`).
    """
    if isinstance(logical_date, dt.datetime):
        if logical_date.tzinfo is not None and logical_date.time() == dt.time():
            return logical_date.date().isoformat()
        utc = logical_date.astimezone(dt.UTC) if logical_date.tzinfo else logical_date
        if (utc.hour, utc.minute, utc.second, utc.microsecond) == (0, 0, 0, 0):
            return utc.date().isoformat()
        return utc.strftime("%Y-%m-%dT%H%M%SZ")
    return logical_date.isoformat()
