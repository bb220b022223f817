"""The catalog store: register entries from specs, record versions, runs and scorecards, answer queries."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from catalog.classification import ResourceCodeError, tree_nodes
from catalog.models import ClassificationNode, DataItem, Department, Entry, Run, Scorecard, Version
from pipelines.errors import SpecError, TerminalError, TransientError
from pipelines.spec import DatasetSpec

_ENGINES: dict[str, Engine] = {}
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The revision the platform database had before Alembic managed it (tables made by ``create_all``).
_BASELINE = "0001"
_LOCK_KEY = 7_106_712  # PostgreSQL advisory lock held while migrating
#: SQLite's busy timeout (ms): how long a writer waits for the database's write lock.
_BUSY_TIMEOUT_MS = 10_000
_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_WRITER = "govdata_sqlite_writer"  # key in a pooled connection's info: it holds the process's write turn
#: The write turn of each SQLite database (by URL) in this process; see :func:`_queue_sqlite_writers`.
WRITE_TURNS: dict[str, threading.Lock] = {}


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(target: Engine | str, revision: str = "head") -> None:
    """Upgrade (or, with an older ``revision``, downgrade) the platform database to ``revision``.

    A database made before migrations existed (the first tables, no ``alembic_version``) is
    stamped with the baseline first. On PostgreSQL an advisory lock makes concurrent starts wait
    for one another.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    engine = _engine(target, migrate_to=None) if isinstance(target, str) else target
    try:
        with engine.connect() as outer:
            sqlite = outer.dialect.name == "sqlite"
            if sqlite:  # batch mode copies tables: foreign keys are checked after, not during
                outer.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            try:
                with outer.begin():
                    if outer.dialect.name == "postgresql":
                        outer.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
                    current = MigrationContext.configure(outer).get_current_revision()
                    if current is None and inspect(outer).has_table("catalog_entries"):
                        command.stamp(_alembic_config(outer), _BASELINE)
                        current = _BASELINE
                    config = _alembic_config(outer)
                    script = ScriptDirectory.from_config(config)
                    if revision == "head" and current == script.get_current_head():
                        return
                    below = set()
                    if current is not None:
                        below = {r.revision for r in script.iterate_revisions(current, "base")} - {current}
                    step = (
                        command.downgrade if revision in below or (revision == "base" and current) else command.upgrade
                    )
                    step(config, revision)
                    if sqlite and outer.exec_driver_sql("PRAGMA foreign_key_check").first() is not None:
                        raise TerminalError(
                            f"migrating the catalog database to {revision} broke a foreign key",
                            hint="restore the database from its backup and report this as a govdata bug",
                        )
            finally:
                if sqlite:
                    outer.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    finally:
        if isinstance(target, str):
            engine.dispose()


def current_revision(target: Engine | str) -> str | None:
    """The database's migration revision (None: empty database)."""
    from alembic.runtime.migration import MigrationContext

    engine = _engine(target, migrate_to=None) if isinstance(target, str) else target
    try:
        with engine.connect() as con:
            return MigrationContext.configure(con).get_current_revision()
    finally:
        if isinstance(target, str):
            engine.dispose()


def _queue_sqlite_writers(engine: Engine) -> None:
    """Let this process's writers take SQLite's write lock one after the other, in the order they come.

    SQLite's busy timeout does not queue: a writer that finds the database locked sleeps and
    polls again, at 1, 2, 5 … ms at first but every 100 ms after a while, so under a steady
    stream of writes (the service's threads delivering files) the newest writers keep winning
    and an early one can wait seconds, up to the timeout (measured: p50 36 ms, p99 2.3 s for the
    write lock of 16 concurrent downloads). Here a connection takes a process-wide turn before
    its first write statement of a transaction and gives it back when the transaction ends, so
    the waiting is done on a lock that wakes the next waiter at once. Reads never wait (WAL).
    A writer that cannot get the turn within the busy timeout goes ahead and lets SQLite decide,
    as it would without the queue (no new way to fail, no deadlock). Other processes (an
    Airflow worker, the CLI) still meet at SQLite's own lock.
    """
    # Not an RLock: FastAPI may commit in another thread than the one that wrote.
    turn = WRITE_TURNS.setdefault(engine.url.render_as_string(hide_password=False), threading.Lock())

    def give_back(info: dict[Any, Any]) -> None:
        if info.pop(_WRITER, False):
            turn.release()

    @event.listens_for(engine, "before_cursor_execute")
    def _take_turn(conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        waiting = _WRITER not in conn.info and _WRITE.match(statement)
        if waiting and turn.acquire(timeout=_BUSY_TIMEOUT_MS / 1000):
            conn.info[_WRITER] = True

    @event.listens_for(engine, "commit")
    def _committing(conn: Connection) -> None:
        give_back(conn.info)

    @event.listens_for(engine, "rollback")
    def _rolling_back(conn: Connection) -> None:
        give_back(conn.info)

    # A connection that leaves without a commit or rollback gives its turn back too.
    def _returned(_dbapi_con: Any, record: Any) -> None:
        if record is not None:
            give_back(record.info)

    def _reset(_dbapi_con: Any, record: Any, _state: Any) -> None:
        _returned(_dbapi_con, record)

    def _invalidated(_dbapi_con: Any, record: Any, _exc: Any) -> None:
        _returned(_dbapi_con, record)

    for name in ("checkin", "close", "detach"):
        event.listen(engine.pool, name, _returned)
    event.listen(engine.pool, "reset", _reset)
    event.listen(engine.pool, "invalidate", _invalidated)


def _engine(url: str, *, migrate_to: str | None = "head") -> Engine:
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
                cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
                cur.close()

            _queue_sqlite_writers(engine)

        if migrate_to is not None:
            try:
                migrate(engine, migrate_to)
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
            dept.level = spec.department.level
            if spec.department.region:
                dept.region = spec.department.region
            self._grow_tree(s, spec, meta.classification.axis.value, list(meta.classification.path))
            clash = s.scalar(select(Entry).where(Entry.resource_code == meta.resource_code, Entry.id != spec.id))
            if clash is not None:
                if clash.origin == "import" and clash.department_uscc == spec.department.uscc:
                    hint = (
                        f"the code was catalogued from a spreadsheet as entry {clash.id!r}: set the spec's "
                        f"`id: {clash.id}` so this dataset feeds that entry"
                    )
                else:
                    hint = "give every dataset its own catalog.resource_code"
                raise SpecError(
                    f"{spec.path}: resource code {meta.resource_code} is already used by entry {clash.id!r}", hint=hint
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
            entry.classification_code = meta.resource_code.split("/", 1)[0]
            entry.format_other = meta.format.other
            entry.share_method_type = meta.sharing.method_type
            entry.open_theme = meta.open.theme
            entry.related_business = meta.related_business
            entry.sub_organisation = meta.sub_organisation
            entry.origin = "spec"
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
                    sensitive_level=c.sensitive_level,
                    share_type=c.share_type.value if c.share_type else None,
                    masking_rule=c.masking,
                    code_set=c.code_set,
                    description=c.description,
                )
                for i, c in enumerate(spec.columns, start=1)
            ]
            s.flush()
            return entry

    @staticmethod
    def _grow_tree(s: Session, spec: DatasetSpec, axis: str, labels: list[str]) -> None:
        """Add the entry's classification nodes; refuse a code that the tree already names otherwise."""
        try:
            nodes = tree_nodes(axis, spec.catalog.resource_code, labels)
        except ResourceCodeError as exc:
            raise SpecError(
                f"{spec.path or spec.id}: catalog.classification: {exc}",
                hint="make catalog.classification.path name the 项/目/细目 of catalog.resource_code",
            ) from None
        for node in nodes:
            found = s.get(ClassificationNode, node.code)
            if found is None:
                s.add(
                    ClassificationNode(
                        code=node.code, axis=node.axis.value, level=node.level, name=node.name, parent_code=node.parent
                    )
                )
                s.flush()
            elif found.name != node.name and node.level > 1:
                raise SpecError(
                    f"{spec.path or spec.id}: classification code {node.code} is {found.name!r} in the catalog, "
                    f"not {node.name!r}",
                    hint=f"use {found.name!r} in catalog.classification.path, or another code",
                )

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

    def version_of_run(self, dataset: str, run_id: str, fingerprint: str) -> Version | None:
        """The latest version that run ``run_id`` published with exactly this content, if any."""
        with self.session() as s:
            return s.scalar(
                select(Version)
                .where(Version.entry_id == dataset, Version.run_id == run_id, Version.fingerprint == fingerprint)
                .order_by(Version.number.desc())
                .limit(1)
            )

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
        schema_change: dict[str, Any] | None = None,
        review: str = "auto",
        source_system: str | None = None,
        upstream: list[str] | None = None,
    ) -> Version:
        """Record a published version (the commit point), with its schema change against the previous one.

        The entry's status is the lifecycle's (:mod:`catalog.lifecycle`): under ``review="auto"``
        a new entry is walked to published by the system actor in this same transaction; under
        ``"manual"`` it keeps its status until people review it. Lineage: ``source_system``
        describes where the rows came from, ``upstream`` lists the resource codes of the
        published resources the run read (reference checks).
        """
        from catalog import lifecycle
        from catalog import schema as schema_changes

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
                schema_change=schema_change,
                source_system=source_system,
                upstream=list(upstream or []),
            )
            s.add(version)
            entry = s.get(Entry, dataset)
            assert entry is not None, f"entry {dataset} must be registered before publishing"
            s.flush()
            schema_changes.mark_published(s, dataset, schema_change, number)
            if review == "auto":
                lifecycle.auto_publish(s, entry)
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
