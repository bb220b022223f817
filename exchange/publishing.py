"""One commit of a published version, shared by the pipeline's publish step and the exchange's upload commit.

The publish step of a run and ``POST /exchange/v1/uploads/{id}/commit`` on a remote ``govdata
serve`` end in the same function, :func:`commit`, so the two paths cannot drift:

1. register (create or update) the catalog entry from the spec;
2. under a per-entry lock, compare the candidate's fingerprint with the latest version: equal
   content is ``unchanged`` (no new version; the same run key again is a resumed publish), and
   so is a run key that published this very content before (a past period run again);
3. judge the schema against the latest version (:mod:`catalog.schema`): a breaking change
   waits for the city admin's approval (``held``, nothing published);
4. move the data and its manifest into the exchange store (one rename, no copy on one file
   system; a copy to another file system is checked against the prepared sha256);
5. record the catalog version row (the commit point), which under
   ``GOVDATA_CATALOG_REVIEW=auto`` also walks a new entry to published;
6. append ``version.publish`` to the audit log, and run the caller's ``on_commit`` (the upload
   marks itself committed) in that same transaction.

What is published is described by a :class:`PreparedVersion` (rows, schema, checksums,
fingerprint, quality, lineage, run id), built from the run's step reports by :func:`prepare`
in both modes; the stored ``manifest.json`` is derived from it by :func:`stored_manifest`.

**The lock.** Commits of one entry are serialised by an exclusive ``flock`` on
``<exchange store>/.locks/<entry>.lock``: two commits must not both take version N+1 (the second
would clear the first one's folder as an interrupted publish). This holds for threads and
processes on the host of the store, which is the shape of the platform (one exchange service,
or one department's pipeline, per store).

**Crash safety.** A crash before step 5 leaves a version folder without a catalog row; the next
commit re-uses it when it holds the same content (the candidate was already moved) or clears it.
A crash between step 5 and step 6 leaves a version without its ``version.publish`` audit entry:
the next commit of the same run finds the fingerprint published by its own run key and writes
the missing entry, so every version is audited exactly once.

**Where a run publishes (configuration alone).** :func:`target` reads the environment:

* ``GOVDATA_EXCHANGE_URL`` unset: :class:`LocalTarget`, the workspace's own catalog database
  and exchange store (the embedded default); the commit runs in-process.
* ``GOVDATA_EXCHANGE_URL=http://host:8000``: :class:`RemoteTarget`, a ``govdata serve`` of the
  city exchange, with an API token holding the scope ``exchange:publish`` in
  ``GOVDATA_EXCHANGE_TOKEN`` (or in the file named by ``GOVDATA_EXCHANGE_TOKEN_FILE``). The
  publish step uploads the candidate Parquet file in chunks with the prepared manifest and the
  spec document (:mod:`connectors.exchange_client`); the server verifies size, sha256 and the
  Parquet footer, then commits through :func:`commit` (:mod:`exchange.uploads`). A request that
  fails transiently (no connection, a timeout, a 5xx answer) is tried ``GOVDATA_EXCHANGE_ATTEMPTS``
  times (default 6, backoff from 0.5 s doubling) before the run fails; the next run resumes the upload.

In remote mode the catalog step learns the latest published version from the server
(``GET /exchange/v1/publishing/{entry}/latest``: number, fingerprint, run id, watermark,
sha256), so "unchanged" detection works as locally. For ``publish.mode: merge`` it downloads
the department's own latest version (``…/versions/{n}/data``) into
``<workspace>/state/published/<entry>/``, checked against the version's sha256 and re-used
while it is the latest. The publish step asks for the latest version again and uploads nothing
when the fingerprint is already published; the server's commit makes the same check under the
entry lock, so a race between two runs is still decided in one place. Whether a new entry is
published at once or waits for people is the *server's* ``GOVDATA_CATALOG_REVIEW``: the city
decides, not the department's pipeline. The workspace's own catalog keeps the run records and
scorecards; versions live on the server only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipelines.errors import GovdataError, SpecError, TerminalError
from pipelines.files import sha256_file
from pipelines.spec import ColumnType, DatasetSpec

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from catalog.store import CatalogStore
    from connectors.exchange_client import ExchangeClient
    from exchange.objectstore import ObjectExchangeStore
    from exchange.store import LocalExchangeStore
    from pipelines.workspace import Workspace

__all__ = [
    "EXCHANGE_ATTEMPTS_ENV",
    "EXCHANGE_TOKEN_ENV",
    "EXCHANGE_TOKEN_FILE_ENV",
    "EXCHANGE_URL_ENV",
    "LocalTarget",
    "Outcome",
    "PreparedVersion",
    "Published",
    "RemoteTarget",
    "check_against",
    "commit",
    "entry_lock",
    "parse_manifest",
    "parse_spec",
    "prepare",
    "spec_document",
    "stored_manifest",
    "target",
]

log = logging.getLogger(__name__)

EXCHANGE_URL_ENV = "GOVDATA_EXCHANGE_URL"
EXCHANGE_TOKEN_ENV = "GOVDATA_EXCHANGE_TOKEN"
EXCHANGE_TOKEN_FILE_ENV = "GOVDATA_EXCHANGE_TOKEN_FILE"
EXCHANGE_ATTEMPTS_ENV = "GOVDATA_EXCHANGE_ATTEMPTS"
#: How often a request to a remote exchange is tried before the run fails (backoff 0.5 s, doubling).
DEFAULT_ATTEMPTS = 6
#: The audit action of a committed version.
PUBLISH_ACTION = "version.publish"
_LOCKS = ".locks"
_IDENT = r"^[a-z][a-z0-9_]*$"
_SHA256 = r"^[0-9a-f]{64}$"


# --- what is published -------------------------------------------------------------------------


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SchemaItem(_Closed):
    """One published column: the spec's data item with its types and declared length."""

    name: str = Field(pattern=_IDENT, max_length=100, description="Column name.")
    title: str = Field(min_length=1, max_length=300, description="信息项名称.")
    type: ColumnType = Field(description="The spec's logical type.")
    type_code: str = Field(min_length=1, max_length=2, description="The national data type code (C, N, D, T, …).")
    duckdb_type: str = Field(min_length=1, max_length=64, description="The type in the Parquet file (DuckDB's name).")
    primary_key: bool = Field(description="Part of the primary key.")
    nullable: bool = Field(description="Whether empty values are allowed.")
    sensitive: bool = Field(description="Personal or sensitive data.")
    length: int | None = Field(default=None, gt=0, le=1_000_000, description="Declared length (数据长度).")


class Quality(_Closed):
    """The quality summary of the run that produced the version (see :mod:`pipelines.scorecard`)."""

    success: bool = Field(description="Whether the quality gate passed.")
    score: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False, description="Overall score, 0..1.")
    dimensions: dict[str, dict[str, Any]] = Field(
        default_factory=dict, max_length=50, description="Score per dimension (规范性, 完整性, …)."
    )
    indicators: list[dict[str, Any]] = Field(
        default_factory=list, max_length=500, description="The DB31/T 1523 indicators measured (code, a, b, x)."
    )

    @model_validator(mode="after")
    def _finite(self) -> Quality:
        try:
            json.dumps([self.dimensions, self.indicators], allow_nan=False)
        except ValueError:
            raise ValueError("numbers must be finite (no NaN or Infinity)") from None
        return self


class Lineage(_Closed):
    """Where the version's rows came from."""

    source: str = Field(min_length=1, max_length=2000, description="The source as the connector describes it.")
    source_sha256: str | None = Field(default=None, max_length=64, description="sha256 of the source, if a file.")
    run_id: str = Field(min_length=1, max_length=40, description="The run that produced the version.")


class PreparedVersion(_Closed):
    """A version ready to commit: what the publish step sends and the commit records."""

    resource: str = Field(pattern=_IDENT, max_length=100, description="The entry (dataset id).")
    resource_code: str = Field(min_length=1, max_length=64, description="信息资源代码 of the entry.")
    run_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+-]*$", max_length=40, description="The run key (logical date)."
    )
    rows: int = Field(ge=0, le=10**13, description="Rows in the data file.")
    bytes: int | None = Field(default=None, gt=0, description="Size of the data file in bytes.")
    schema_: list[SchemaItem] = Field(alias="schema", min_length=1, max_length=2000, description="The columns.")
    primary_key: list[str] = Field(max_length=100, description="The primary key's columns.")
    content_sha256: str = Field(pattern=_SHA256, description="sha256 of the data file (lower-case hex).")
    fingerprint: str = Field(pattern=_SHA256, description="Content identity: rows and schema, order-independent.")
    quality: Quality = Field(description="The run's quality summary.")
    lineage: Lineage = Field(description="Where the rows came from.")
    watermark: str | None = Field(default=None, max_length=64, description="The source's high-water mark (merge).")
    source_system: str | None = Field(default=None, max_length=2000, description="Lineage: the source system.")
    upstream: list[str] = Field(
        default_factory=list, max_length=200, description="Resource codes of published resources the run read."
    )

    @property
    def columns(self) -> list[dict[str, Any]]:
        return [c.model_dump() for c in self.schema_]

    def document(self) -> dict[str, Any]:
        """The JSON document (what an upload sends as ``manifest``): the fields given, by their JSON names."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _problems(exc: ValidationError, prefix: str) -> str:
    parts = []
    for problem in exc.errors()[:20]:
        where = ".".join(str(p) for p in problem.get("loc", ()))
        parts.append(f"{prefix}.{where}: {str(problem.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)


def parse_manifest(document: Any) -> PreparedVersion:
    """A :class:`PreparedVersion` from JSON; a :class:`SpecError` naming every wrong field (``manifest.rows``)."""
    try:
        return PreparedVersion.model_validate(document)
    except ValidationError as exc:
        raise SpecError(
            f"the manifest is not valid: {_problems(exc, 'manifest')}",
            hint="send the manifest the catalog step prepared (see PreparedVersion in /openapi.json)",
        ) from None


def spec_document(spec: DatasetSpec) -> dict[str, Any]:
    """The spec as a JSON document (what an upload sends as ``spec``; the file path is left out)."""
    return spec.model_dump(mode="json")


def parse_spec(document: Any) -> DatasetSpec:
    """A dataset spec from a JSON document; a :class:`SpecError` naming every wrong key (``spec.department.uscc``)."""
    if not isinstance(document, Mapping):
        raise SpecError("spec: must be an object (the dataset spec document)", hint="send the spec as JSON")
    try:
        spec = DatasetSpec.model_validate(dict(document))
    except ValidationError as exc:
        raise SpecError(
            f"the spec is not valid: {_problems(exc, 'spec')}",
            hint="`govdata validate SPEC` checks a spec; send the document it reads",
        ) from None
    return spec.model_copy(update={"path": None})


def check_against(spec: DatasetSpec, prepared: PreparedVersion) -> None:
    """Refuse a manifest that does not describe the spec's data (id, code, columns, types, key)."""
    problems: list[str] = []
    if prepared.resource != spec.id:
        problems.append(f"manifest.resource {prepared.resource!r} is not the spec's id {spec.id!r}")
    if prepared.resource_code != spec.catalog.resource_code:
        problems.append(
            f"manifest.resource_code {prepared.resource_code!r} is not the spec's {spec.catalog.resource_code!r}"
        )
    names = [c.name for c in prepared.schema_]
    declared = [c.name for c in spec.columns]
    if names != declared:
        problems.append(f"manifest.schema names the columns {names}, the spec {declared}")
    else:
        for i, (item, column) in enumerate(zip(prepared.schema_, spec.columns, strict=True)):
            for key, theirs in (
                ("type", column.type),
                ("primary_key", column.primary_key),
                ("length", column.length),
                ("sensitive", column.sensitive),
            ):
                ours = getattr(item, key)
                if ours != theirs:
                    problems.append(
                        f"manifest.schema.{i}.{key} is {ours!r}, the spec's column {column.name} {theirs!r}"
                    )
    if prepared.primary_key != spec.primary_key:
        problems.append(f"manifest.primary_key is {prepared.primary_key}, the spec's {spec.primary_key}")
    if prepared.lineage.run_id != prepared.run_id:
        problems.append(f"manifest.lineage.run_id {prepared.lineage.run_id!r} is not manifest.run_id")
    if problems:
        raise SpecError(
            "the manifest does not describe the spec's data: " + "; ".join(problems[:20]),
            hint="send the manifest and the spec of the same run (run the catalog step again)",
        )


def prepare(
    spec: DatasetSpec,
    *,
    run_id: str,
    collected: Mapping[str, Any],
    checked: Mapping[str, Any],
    prepared: Mapping[str, Any],
    data: Path,
    upstream: list[str],
) -> PreparedVersion:
    """The version the run prepared, from its step reports (collect, quality, catalog) and the candidate file."""
    lengths = {c.name: c.length for c in spec.columns}
    quality = checked["quality"]
    return PreparedVersion.model_validate(
        {
            "resource": spec.id,
            "resource_code": spec.catalog.resource_code,
            "run_id": run_id,
            "rows": prepared["candidate_rows"],
            "bytes": data.stat().st_size if data.is_file() else None,
            # The candidate's schema with the declared lengths (数据长度): a shorter one is a breaking change.
            "schema": [{**c, "length": lengths.get(c["name"])} for c in prepared["schema"]],
            "primary_key": spec.primary_key,
            "content_sha256": prepared["content_sha256"],
            "fingerprint": prepared["fingerprint"],
            "quality": {k: quality[k] for k in ("success", "score", "dimensions", "indicators") if k in quality},
            "lineage": {"source": collected["source"], "source_sha256": collected["source_sha256"], "run_id": run_id},
            "watermark": collected.get("watermark"),
            "source_system": collected["source"],
            "upstream": upstream,
        }
    )


def stored_manifest(prepared: PreparedVersion, *, version: int, schema_change: dict[str, Any] | None) -> dict[str, Any]:
    """The ``manifest.json`` of version ``version`` in the exchange store."""
    return {
        "resource": prepared.resource,
        "resource_code": prepared.resource_code,
        "version": version,
        "run_id": prepared.run_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": prepared.rows,
        "schema": prepared.columns,
        "schema_change": schema_change,
        "primary_key": list(prepared.primary_key),
        "content_sha256": prepared.content_sha256,
        "fingerprint": prepared.fingerprint,
        "files": [
            {
                "path": "data.parquet",
                "rows": prepared.rows,
                "sha256": prepared.content_sha256,
                "bytes": prepared.bytes,
            }
        ],
        "quality": prepared.quality.model_dump(exclude_unset=True),
        "lineage": prepared.lineage.model_dump(),
    }


# --- the commit ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a commit did: ``published`` a new version, found it ``unchanged``, or ``held`` it."""

    status: Literal["published", "unchanged", "held"]
    entry: str
    version: int | None
    rows: int | None = None
    content_sha256: str | None = None
    location: str | None = None  # where the version is: a folder locally, a URL from a remote exchange
    schema_change: dict[str, Any] | None = None
    review: str | None = None
    entry_status: str | None = None
    same_run: bool = False  # unchanged because this run key published it already (a resumed publish)
    held_because: list[str] = field(default_factory=list)
    hint: str | None = None

    def document(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_document(cls, data: Mapping[str, Any], **override: Any) -> Outcome:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in names}, **override})


@contextmanager
def entry_lock(root: Path, entry: str) -> Iterator[None]:
    """Hold the exclusive commit lock of ``entry`` in the exchange store at ``root``."""
    folder = root / _LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{entry}.lock").open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _register(store: CatalogStore, spec: DatasetSpec, source: str) -> None:
    from sqlalchemy.exc import IntegrityError

    from pipelines.errors import TransientError

    try:
        store.register(spec, source=source)
    except IntegrityError:  # another entry of the department registered its department row at this moment
        raise TransientError(f"{spec.id}: the catalog changed while registering the entry", hint="try again") from None


def commit(
    store: CatalogStore,
    exchange: LocalExchangeStore | ObjectExchangeStore,
    spec: DatasetSpec,
    prepared: PreparedVersion,
    data: Path,
    *,
    actor: str,
    review: Literal["auto", "manual"],
    source: str | None = None,
    on_commit: Callable[[Session, Outcome], None] | None = None,
) -> Outcome:
    """Commit ``data`` (a finished Parquet file, moved into the store) as the next version of ``spec``'s entry.

    Returns the :class:`Outcome`; ``held`` is returned, not raised, so each caller reports it its
    own way. ``on_commit(session, outcome)`` runs in the transaction that records the audit entry
    (for ``published`` and ``unchanged``; a held commit changes nothing but the schema-change request).
    """
    from catalog import schema as schema_changes

    check_against(spec, prepared)
    entry = spec.id
    exchange.root.mkdir(parents=True, exist_ok=True)
    with entry_lock(exchange.root, entry):
        _register(store, spec, source or prepared.source_system or prepared.lineage.source)
        latest = store.latest_version(entry)
        if latest is not None and latest.fingerprint != prepared.fingerprint:
            # A period run again (a backfill, a cleared task) with the content it published then
            # changes nothing, even when later periods were published since.
            latest = store.version_of_run(entry, prepared.run_id, prepared.fingerprint) or latest
        if latest is not None and latest.fingerprint == prepared.fingerprint:
            same_run = latest.run_id == prepared.run_id
            outcome = Outcome(
                status="unchanged",
                entry=entry,
                version=latest.number,
                rows=latest.row_count,
                content_sha256=latest.content_sha256,
                location=latest.location,
                schema_change=latest.schema_change,
                same_run=same_run,
            )
            return _finish(store, outcome, actor=actor, record=same_run, on_commit=on_commit)
        schema = prepared.columns
        schema_change = None
        if latest is not None:
            with store.session() as session:  # a breaking change's pending request commits even when held
                decision = schema_changes.check(
                    session, entry, previous_schema=latest.schema, previous_version=latest.number, candidate=schema
                )
            if decision.held:
                return Outcome(
                    status="held",
                    entry=entry,
                    version=None,
                    schema_change=decision.record,
                    held_because=[decision.reason or "a breaking schema change waits for approval"],
                    hint=decision.hint,
                )
            schema_change = decision.record
        number = (latest.number if latest else 0) + 1
        exchange.clear_incoming(entry)
        if not data.is_file():
            # A previous attempt moved the data into the store and died before the catalog row.
            stored = exchange.read(entry, number)
            if stored is None or stored.manifest.get("content_sha256") != prepared.content_sha256:
                raise GovdataError(
                    f"{entry} run {prepared.run_id}: the prepared version is gone",
                    hint="run the catalog step again (or `govdata run`)",
                )
        manifest = stored_manifest(prepared, version=number, schema_change=schema_change)
        copied = data.is_file() and data.stat().st_dev != exchange.root.stat().st_dev
        stored = exchange.write(entry, number, data, manifest)
        # A rename keeps the bytes hashed when the file was made; a copy to another file system is checked.
        if copied and sha256_file(stored.data_path) != prepared.content_sha256:
            raise GovdataError(f"{stored.data_path}: checksum differs from the prepared version", hint="run again")
        store.add_version(
            entry,
            number=number,
            run_id=prepared.run_id,
            row_count=prepared.rows,
            content_sha256=prepared.content_sha256,
            fingerprint=prepared.fingerprint,
            schema=schema,
            quality=manifest["quality"],
            lineage=manifest["lineage"],
            location=stored.where,
            watermark=prepared.watermark,
            schema_change=schema_change,
            review=review,
            source_system=prepared.source_system,
            upstream=list(prepared.upstream),
        )
        outcome = Outcome(
            status="published",
            entry=entry,
            version=number,
            rows=prepared.rows,
            content_sha256=prepared.content_sha256,
            location=stored.where,
            schema_change=schema_change,
            review=review,
        )
        return _finish(store, outcome, actor=actor, record=True, on_commit=on_commit)


def _finish(
    store: CatalogStore,
    outcome: Outcome,
    *,
    actor: str,
    record: bool,
    on_commit: Callable[[Session, Outcome], None] | None,
) -> Outcome:
    """Audit the version (once), read the entry's status, run ``on_commit``: one transaction."""
    from catalog.models import Entry
    from exchange import audit

    subject = f"version:{outcome.entry}/{outcome.version}"
    with store.session() as session:
        if record and not audit.events(session, subject=subject, action=PUBLISH_ACTION, limit=1):
            audit.append(
                session,
                actor=actor,
                action=PUBLISH_ACTION,
                subject=subject,
                detail={
                    "entry": outcome.entry,
                    "version": outcome.version,
                    "rows": outcome.rows,
                    "content_sha256": outcome.content_sha256,
                    "review": outcome.review,
                    "schema_change": (outcome.schema_change or {}).get("kind"),
                },
            )
        row = session.get(Entry, outcome.entry)
        outcome = dataclasses.replace(outcome, entry_status=row.status if row is not None else None)
        if on_commit is not None:
            on_commit(session, outcome)
    return outcome


# --- where a run publishes -------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """The latest published version of an entry, as the catalog step needs it."""

    entry: str
    number: int
    run_id: str
    fingerprint: str
    content_sha256: str
    rows: int
    watermark: str | None
    location: str


class LocalTarget:
    """Publish into the workspace's own catalog database and exchange store (the embedded default)."""

    kind = "local"

    def __init__(self, workspace: Workspace) -> None:
        from catalog.store import CatalogStore
        from exchange.store import open_store

        self.workspace = workspace
        self.store = CatalogStore(workspace.catalog_url)
        self.exchange = open_store(workspace)

    def __enter__(self) -> LocalTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def describe(self) -> str:
        return self.exchange.describe()

    def latest(self, entry: str) -> Published | None:
        v = self.store.latest_version(entry)
        if v is None:
            return None
        return Published(
            entry, v.number, v.run_id, v.fingerprint, v.content_sha256, v.row_count, v.watermark, v.location
        )

    def data(self, published: Published) -> Path | None:
        stored = self.exchange.read(published.entry, published.number)
        return stored.data_path if stored is not None else None

    def publish(self, spec: DatasetSpec, prepared: PreparedVersion, data: Path) -> Outcome:
        from catalog import lifecycle

        return commit(
            self.store,
            self.exchange,
            spec,
            prepared,
            data,
            actor=lifecycle.SYSTEM_ACTOR,
            review=lifecycle.review_mode(),  # GOVDATA_CATALOG_REVIEW: does the pipeline publish a new entry itself?
        )


class RemoteTarget:
    """Publish to a remote exchange (``govdata serve``) over HTTP; see the module docstring."""

    kind = "remote"

    def __init__(self, client: ExchangeClient, cache: Path) -> None:
        self.client = client
        self.cache = cache

    def __enter__(self) -> RemoteTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def describe(self) -> str:
        return f"the exchange at {self.client.base_url}"

    def latest(self, entry: str) -> Published | None:
        v = self.client.latest_version(entry)
        if v is None:
            return None
        return Published(
            entry,
            int(v["number"]),
            str(v["run_id"]),
            str(v["fingerprint"]),
            str(v["content_sha256"]),
            int(v["rows"]),
            v.get("watermark"),
            self.client.data_url(entry, int(v["number"])),
        )

    def data(self, published: Published) -> Path | None:
        """The version's data, downloaded once into the workspace's cache and checked against its sha256."""
        folder = self.cache / published.entry
        target = folder / f"v{published.number:06d}-{published.content_sha256[:16]}.parquet"
        if not target.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            self.client.download(published.entry, published.number, target, sha256=published.content_sha256)
        for old in folder.glob("v*.parquet"):  # only the latest is ever merged with
            if old != target:
                old.unlink(missing_ok=True)
        return target

    def publish(self, spec: DatasetSpec, prepared: PreparedVersion, data: Path) -> Outcome:
        latest = self.latest(spec.id)
        if latest is not None and latest.fingerprint == prepared.fingerprint:
            return Outcome(
                status="unchanged",
                entry=spec.id,
                version=latest.number,
                rows=latest.rows,
                content_sha256=latest.content_sha256,
                location=latest.location,
                same_run=latest.run_id == prepared.run_id,
            )
        if not data.is_file():
            raise GovdataError(
                f"{spec.id} run {prepared.run_id}: the prepared data file {data} is gone",
                hint="run the catalog step again (or `govdata run`)",
            )
        answer = self.client.upload(data, manifest=prepared.document(), spec=spec_document(spec))
        version = answer.get("version")
        location = self.client.data_url(spec.id, int(version)) if version else None
        return Outcome.from_document(answer, location=location)


def _token(environ: Mapping[str, str]) -> str:
    token = environ.get(EXCHANGE_TOKEN_ENV, "").strip()
    token_file = environ.get(EXCHANGE_TOKEN_FILE_ENV, "").strip()
    if token and token_file:
        raise SpecError(
            f"both {EXCHANGE_TOKEN_ENV} and {EXCHANGE_TOKEN_FILE_ENV} are set",
            hint="set only one of them",
        )
    if token_file:
        path = Path(token_file).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(
                f"{EXCHANGE_TOKEN_FILE_ENV}={token_file}: cannot read the token file ({exc})",
                hint="point it at a readable file that holds the API token (gdt_…)",
            ) from None
    where = EXCHANGE_TOKEN_FILE_ENV if token_file else EXCHANGE_TOKEN_ENV
    if not token:
        raise SpecError(
            f"{EXCHANGE_URL_ENV} is set but no API token is given",
            hint=f"set {EXCHANGE_TOKEN_ENV} (or {EXCHANGE_TOKEN_FILE_ENV}) to a token with the scope exchange:publish, "
            "made on the exchange with `govdata token create --name publish --scope exchange:publish`",
        )
    if not token.startswith("gdt_") or any(ch.isspace() for ch in token):
        raise SpecError(
            f"{where} does not hold an API token (tokens look like gdt_…)",
            hint="copy the token `govdata token create` printed, on one line",
        )
    return token


def _attempts(environ: Mapping[str, str]) -> int:
    """How often a request to the exchange is tried (``GOVDATA_EXCHANGE_ATTEMPTS``, 1 to 20, default 6)."""
    raw = environ.get(EXCHANGE_ATTEMPTS_ENV, "").strip()
    if not raw:
        return DEFAULT_ATTEMPTS
    if not raw.isdigit() or not 1 <= int(raw) <= 20:
        raise SpecError(
            f"{EXCHANGE_ATTEMPTS_ENV}={raw[:40]!r} is not a whole number from 1 to 20",
            hint=f"unset it (default {DEFAULT_ATTEMPTS}) or give how often a request to the exchange is tried",
        )
    return int(raw)


def target(workspace: Workspace, environ: Mapping[str, str] | None = None) -> LocalTarget | RemoteTarget:
    """Where runs of ``workspace`` publish: :class:`RemoteTarget` when ``GOVDATA_EXCHANGE_URL`` is set."""
    env = os.environ if environ is None else environ
    url = env.get(EXCHANGE_URL_ENV, "").strip()
    if not url:
        return LocalTarget(workspace)
    from connectors.exchange_client import ExchangeClient

    try:
        client = ExchangeClient(url, _token(env), attempts=_attempts(env))
    except TerminalError as exc:
        raise SpecError(f"{EXCHANGE_URL_ENV}: {exc.message}", hint=exc.hint) from None
    return RemoteTarget(client, workspace.state / "published")
