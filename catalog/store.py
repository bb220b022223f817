"""The catalog store: register entries from specs, record versions, runs and scorecards, answer queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from catalog.models import Base, DataItem, Department, Entry, Run, Scorecard, Version
from pipelines.errors import SpecError, TransientError
from pipelines.spec import DatasetSpec

_ENGINES: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    engine = _ENGINES.get(url)
    if engine is None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_con: Any, _record: Any) -> None:
                cur = dbapi_con.cursor()
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=10000")
                cur.close()

        try:
            Base.metadata.create_all(engine)
        except OperationalError as exc:
            raise TransientError(
                f"catalog database {engine.url.render_as_string(hide_password=True)} is not reachable: {exc.orig}",
                hint="check GOVDATA_CATALOG_URL and that the database server is running",
            ) from exc
        _ENGINES[url] = engine
    return engine


class CatalogStore:
    """The government data resource catalog, in SQLite by default or any SQLAlchemy URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # --- entries -------------------------------------------------------------------------------

    def register(self, spec: DatasetSpec, *, source: str) -> Entry:
        """Create or update the entry for ``spec`` (13 core elements and data items)."""
        meta = spec.catalog
        with self.session() as s:
            dept = s.get(Department, spec.department.uscc)
            if dept is None:
                dept = Department(uscc=spec.department.uscc, name=spec.department.name)
                s.add(dept)
            dept.name = spec.department.name
            clash = s.scalar(select(Entry).where(Entry.resource_code == meta.resource_code, Entry.id != spec.id))
            if clash is not None:
                raise SpecError(
                    f"{spec.path}: resource code {meta.resource_code} is already used by dataset {clash.id!r}",
                    hint="give every dataset its own catalog.resource_code",
                )
            entry = s.get(Entry, spec.id, options=[selectinload(Entry.items)])
            if entry is None:
                entry = Entry(id=spec.id, status="draft")
                s.add(entry)
            entry.resource_code = meta.resource_code
            entry.name = spec.name
            entry.department_uscc = spec.department.uscc
            entry.classification_axis = meta.classification.axis.value
            entry.classification_path = list(meta.classification.path)
            entry.abstract = meta.abstract
            entry.format_category = meta.format.category.value
            entry.format_type = meta.format.type
            entry.share_type = meta.sharing.type.value
            entry.share_condition = meta.sharing.condition
            entry.share_method = meta.sharing.method.value
            entry.open_to_public = meta.open.open
            entry.open_condition = meta.open.condition
            entry.update_cycle = meta.update_cycle.value
            if meta.publish_date is not None:
                entry.publish_date = meta.publish_date
            entry.related_resources = list(meta.related_resources)
            entry.source = source
            entry.items = [
                DataItem(
                    position=i,
                    name=c.name,
                    title=c.title,
                    type_code=c.type_code,
                    length=c.length,
                    primary_key=c.primary_key,
                    nullable=c.nullable,
                    sensitive=c.sensitive,
                )
                for i, c in enumerate(spec.columns, start=1)
            ]
            s.flush()
            return entry

    def entries(self) -> list[Entry]:
        with self.session() as s:
            return list(
                s.scalars(
                    select(Entry)
                    .options(selectinload(Entry.department), selectinload(Entry.versions))
                    .order_by(Entry.id)
                )
            )

    def entry(self, dataset: str) -> Entry | None:
        with self.session() as s:
            return s.get(
                Entry,
                dataset,
                options=[selectinload(Entry.items), selectinload(Entry.versions), selectinload(Entry.department)],
            )

    # --- versions ------------------------------------------------------------------------------

    def latest_version(self, dataset: str) -> Version | None:
        with self.session() as s:
            return s.scalar(select(Version).where(Version.entry_id == dataset).order_by(Version.number.desc()).limit(1))

    def next_version_number(self, dataset: str) -> int:
        with self.session() as s:
            current = s.scalar(select(func.max(Version.number)).where(Version.entry_id == dataset))
            return int(current or 0) + 1

    def add_version(
        self,
        dataset: str,
        *,
        number: int,
        run_id: str,
        row_count: int,
        content_sha256: str,
        fingerprint: str,
        schema: list[dict[str, Any]],
        quality: dict[str, Any],
        lineage: dict[str, Any],
        location: str,
        watermark: str | None,
    ) -> Version:
        """Record a published version and mark the entry published (the commit point)."""
        with self.session() as s:
            version = Version(
                entry_id=dataset,
                number=number,
                run_id=run_id,
                row_count=row_count,
                content_sha256=content_sha256,
                fingerprint=fingerprint,
                schema=schema,
                quality=quality,
                lineage=lineage,
                location=location,
                watermark=watermark,
            )
            s.add(version)
            entry = s.get(Entry, dataset)
            assert entry is not None, f"entry {dataset} must be registered before publishing"
            entry.status = "published"
            if entry.publish_date is None:
                entry.publish_date = dt.datetime.now(dt.UTC).date()
            s.flush()
            return version

    # --- runs ----------------------------------------------------------------------------------

    def record_run(self, dataset: str, run_id: str, status: str, version: int | None, report: dict[str, Any]) -> None:
        with self.session() as s:
            run = s.get(Run, (dataset, run_id))
            if run is None:
                run = Run(dataset=dataset, run_id=run_id)
                s.add(run)
            run.status = status
            run.version = version
            run.report = report
            run.finished_at = dt.datetime.now(dt.UTC)

    def runs(self, dataset: str | None = None, limit: int = 50) -> list[Run]:
        with self.session() as s:
            q = select(Run).order_by(Run.finished_at.desc()).limit(limit)
            if dataset:
                q = q.where(Run.dataset == dataset)
            return list(s.scalars(q))

    # --- scorecards ----------------------------------------------------------------------------

    def save_scorecard(self, card: dict[str, Any]) -> None:
        """Store a run's scorecard (``govdata.scorecard/1``); a re-run of the key replaces it."""
        logical = dt.datetime.fromisoformat(str(card["logical_date"]))
        logical = logical.replace(tzinfo=dt.UTC) if logical.tzinfo is None else logical.astimezone(dt.UTC)
        with self.session() as s:
            row = s.get(Scorecard, (card["dataset"], card["run_id"]))
            if row is None:
                row = Scorecard(dataset=card["dataset"], run_id=card["run_id"])
                s.add(row)
            row.department_uscc = card["department"]["uscc"]
            row.department_name = card["department"]["name"]
            row.logical_at = logical
            row.status = card["status"]
            row.version = card.get("version")
            row.score = card.get("score")
            row.card = card
            row.computed_at = dt.datetime.fromisoformat(str(card["computed_at"]))

    def link_scorecard(self, dataset: str, run_id: str, *, version: int, status: str) -> dict[str, Any] | None:
        """Record the version a run published (or found unchanged); returns the updated scorecard."""
        with self.session() as s:
            row = s.get(Scorecard, (dataset, run_id))
            if row is None:
                return None
            row.version = version
            row.status = status
            row.card = {**row.card, "version": version, "status": status}
            return dict(row.card)

    def scorecards(self, dataset: str | None = None, department: str | None = None) -> list[dict[str, Any]]:
        """Scorecards, oldest logical date first; ``department`` is a USCC (any case) or an exact name."""
        with self.session() as s:
            q = select(Scorecard).order_by(Scorecard.logical_at, Scorecard.computed_at, Scorecard.dataset)
            if dataset:
                q = q.where(Scorecard.dataset == dataset)
            if department:
                q = q.where(
                    (Scorecard.department_uscc == department.strip().upper())
                    | (Scorecard.department_name == department.strip())
                )
            return [dict(row.card) for row in s.scalars(q)]

    def scorecard_departments(self) -> list[tuple[str, str]]:
        """(USCC, name) of every department with a scorecard."""
        with self.session() as s:
            q = select(Scorecard.department_uscc, Scorecard.department_name).distinct()
            return sorted((str(u), str(n)) for u, n in s.execute(q))

    def scorecard_datasets(self) -> list[str]:
        """Ids of the datasets with a scorecard."""
        with self.session() as s:
            return sorted(str(d) for d in s.scalars(select(Scorecard.dataset).distinct()))
