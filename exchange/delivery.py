"""Delivery (交付) of granted data: file downloads, the data API, and the receipts of every delivery.

The database mode (库表交换) is in :mod:`exchange.delivery_db`; it builds its rows with
:func:`build_delivery` below, so the three modes deliver the same masked content.

Grants and uses
    Only an active grant (:meth:`exchange.models.Grant.state`) delivers. Each delivery — a file
    download, a database delivery, one page of the data API — consumes one use with one
    conditional ``UPDATE`` (:func:`consume_use`), so a cap on uses holds under concurrent
    requests. A refused request (revoked, expired, exhausted) answers 409 naming the state and
    delivers nothing.

Masking
    Every mode delivers the output of :func:`exchange.delivery_masking.mask_for_grant` (or the
    same expressions, :func:`pipelines.masking.mask_sql`, for a change set): only the granted
    items, each by the grant's rule. The ``hash`` rule (keys) is keyed per subscriber department:
    ``HMAC-SHA256($GOVDATA_MASKING_KEY, "govdata-delivery:" + subscriber USCC)``
    (:func:`subscriber_key`). One subscriber gets equal hashes for equal values across all its
    grants (it can join its deliveries), while two subscribers get unrelated hashes for the same
    resident ID, so they cannot link their copies with each other or with the provider's data.
    Without ``$GOVDATA_MASKING_KEY`` no key can be derived: a grant that needs the ``hash`` rule
    is refused with :class:`pipelines.masking.MaskingKeyMissing`, as :mod:`pipelines.masking`
    does; grants without hashed items deliver as usual.

Files (文件交换)
    A full version, or the changes since a version (``since``; by default the grant's
    ``last_version``, the last version delivered to it), as Parquet or CSV. The changes are two
    DuckDB statements over the two versions' Parquet files (:func:`changes_sql`): a FULL OUTER
    JOIN on the primary key (from the version's manifest) of ``(key, hash(granted columns))``
    finds the inserted, deleted and candidate updated keys; the second joins only those back to
    the rows, masks them and drops candidates whose masked values did not change (a new mobile
    that masks to the same ``138****5678`` is no update to this subscriber). The file holds the
    granted columns plus ``_op`` (``insert``, ``update``, ``delete``; a delete carries only the
    key), ordered by the key. No Python runs per row. A change set needs the same key and column
    types in both versions; otherwise ask for a full version.

    CSV is UTF-8 **with** a byte-order mark: the offices that receive these files open them in
    Excel, which reads UTF-8 without a BOM as the local code page and garbles every Chinese
    character; Python (``encoding="utf-8-sig"``), pandas, DuckDB and Arrow skip the BOM. An
    empty text is written ``""`` and a null as nothing, so both survive the round trip. Values
    are written as they are (no neutralising of ``=`` or ``+`` at the start of a cell): the data
    must arrive unchanged.

Data API (接口服务)
    ``GET /exchange/v1/data/{grant}`` with the grant's key (``X-Grant-Key: gdk_…``; only its
    sha256 is stored). Pages follow the primary key as delivered (hashed keys stay hashed, so a
    cursor never carries a resident ID in clear): each version is masked once per grant into a
    sorted Parquet file (the cache), and a page is a range scan of it. The cursor pins the
    version and the last key, base64url JSON with an HMAC tag: a changed cursor answers 422.
    Every call, refused ones included, is one :class:`~exchange.models.ApiCall` row.

Receipts and the audit log
    Every delivery writes a :class:`~exchange.models.Delivery` receipt and an audit entry
    (``delivery.file``, ``delivery.database``, ``delivery.api``) in the same transaction. The
    data API would flood both with one row per page, so it keeps one receipt (and one audit
    entry) per grant, version and UTC day, whose ``rows`` and ``attempts`` (page requests) grow
    with each page; each page is in ``api_calls``. After a successful delivery of a version newer
    than the grant's ``last_version``, ``version.delivered`` is queued for the subscriber's
    webhooks (for the API: once the last page of the version was served); a delivery that fails
    for good queues ``delivery.failed``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from catalog.models import Entry, Version, utcnow
from exchange import audit, changes, notify
from exchange.delivery_masking import mask_for_grant, plan_rules
from exchange.errors import AuthError, Conflict, Forbidden, NotFound, http_status
from exchange.identity import KEY_PREFIX, Principal, hash_token, split_token
from exchange.models import ApiCall, Delivery, Grant
from exchange.store import DATA_FILE, MANIFEST_FILE, version_folder
from pipelines.errors import GovdataError, SourceError, SpecError, TerminalError
from pipelines.files import sha256_file
from pipelines.masking import MASKING_KEY_ENV, MaskRule, mask_sql
from pipelines.sql import connect, ident, path_lit

__all__ = [
    "CSV_BOM",
    "FORMATS",
    "MAX_PAGE_SIZE",
    "OP_COLUMN",
    "DeliveryFile",
    "Download",
    "GrantInfo",
    "VersionData",
    "api_page",
    "build_delivery",
    "changes_sql",
    "consume_use",
    "download",
    "grant_for",
    "grant_versions",
    "list_deliveries",
    "receipt_dict",
    "refund_use",
    "subscriber_key",
    "version_data",
]

log = logging.getLogger(__name__)

FORMATS = ("parquet", "csv")
MEDIA_TYPES = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv; charset=utf-8"}
OP_COLUMN = "_op"
CSV_BOM = b"\xef\xbb\xbf"
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 5000
#: Largest value accepted for ids and version numbers (32-bit columns).
MAX_INT = 2**31 - 1
_MAX_CURSOR = 4096
_CACHE_ROW_GROUP = 10_000
_KEY_CONTEXT = b"govdata-delivery:"


# --- grants: state, uses, who may see them ---------------------------------------------------------


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def state_error(grant: Grant, now: dt.datetime) -> Conflict:
    """The refusal for a grant that is not active: which state, since when, what to do."""
    state = grant.state(now)
    if state == "revoked":
        when = _aware(grant.revoked_at).isoformat(timespec="seconds") if grant.revoked_at else "?"
        reason = f": {grant.revoke_reason}" if grant.revoke_reason else ""
        return Conflict(
            f"grant {grant.id} was revoked at {when} by {grant.revoked_by or 'the provider'}{reason}; "
            "it delivers nothing more",
            hint="apply again for the data if it is still needed",
        )
    if state == "expired":
        return Conflict(
            f"grant {grant.id} expired at {_aware(grant.expires_at).isoformat(timespec='seconds')}; "
            "it delivers nothing more",
            hint="apply again with a later end date",
        )
    if state == "exhausted":
        return Conflict(
            f"grant {grant.id} is exhausted: all {grant.max_uses} of its uses are consumed",
            hint="ask the provider for a new grant (apply again)",
        )
    return Conflict(f"grant {grant.id} is {state}", hint="only an active grant delivers")


def ensure_active(grant: Grant, now: dt.datetime) -> None:
    """Raise :class:`Conflict` naming the state unless ``grant`` is active at ``now``."""
    if grant.state(now) != "active":
        raise state_error(grant, now)


def ensure_method(grant: Grant, method: str) -> None:
    """Raise :class:`Conflict` unless the grant delivers by ``method`` (file, database, api)."""
    if grant.delivery_method != method:
        names = {"file": "file download", "database": "database delivery", "api": "the data API"}
        raise Conflict(
            f"grant {grant.id} delivers by {names.get(grant.delivery_method, grant.delivery_method)}, "
            f"not by {names.get(method, method)}",
            hint="use the delivery method the grant names, or apply again for another one",
        )


def consume_use(session: Session, grant_id: int, now: dt.datetime) -> None:
    """Consume one use of grant ``grant_id`` atomically, or raise :class:`Conflict` naming its state.

    One conditional ``UPDATE``: two concurrent deliveries can never both take the last use.
    """
    result = session.execute(
        update(Grant)
        .where(
            Grant.id == grant_id,
            Grant.revoked_at.is_(None),
            Grant.expires_at > now,
            or_(Grant.max_uses.is_(None), Grant.uses < Grant.max_uses),
        )
        .values(uses=Grant.uses + 1)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        grant = session.get(Grant, grant_id, populate_existing=True)
        if grant is None:
            raise NotFound(f"no grant {grant_id}", hint="list the department's grants")
        raise state_error(grant, now)
    cached = session.get(Grant, grant_id)
    if cached is not None:
        session.expire(cached)


def refund_use(session: Session, grant_id: int) -> None:
    """Give back a use taken by a delivery that then delivered nothing."""
    session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.uses > 0)
        .values(uses=Grant.uses - 1)
        .execution_options(synchronize_session=False)
    )


def _can(principal: Principal, *scopes: str) -> bool:
    return any(s in principal.scopes for s in scopes)


def grant_for(session: Session, grant_id: int, principal: Principal, *, purpose: str) -> Grant:
    """Grant ``grant_id`` if ``principal`` may use it for ``purpose``; else 404 (or 403 for a missing scope).

    ``receive`` (download): the subscriber department with ``exchange:deliver``. ``deliver``
    (run a database delivery): that, or the city admin (``exchange:admin``). ``view`` (versions,
    receipts): both sides of the grant, the subscriber and the providing department (which sees
    the grant and its receipts anyway), and city-level users. Another department never learns
    that the grant exists.
    """
    grant = session.get(Grant, grant_id) if 0 < grant_id <= MAX_INT else None
    own = grant is not None and principal.department is not None and principal.department == grant.department_uscc
    admin = purpose == "deliver" and "exchange:admin" in principal.scopes
    city_view = purpose == "view" and principal.city
    provider_view = (
        purpose == "view"
        and grant is not None
        and principal.department is not None
        and principal.department == grant.entry.department_uscc
    )
    if grant is None or not (own or admin or city_view or provider_view):
        raise NotFound(
            f"no grant {grant_id} of your department",
            hint="list your department's grants; a grant is used by the department it was granted to",
        )
    if admin and not own:
        return grant
    if purpose == "view":
        if not _can(principal, "exchange:deliver", "monitor:read", "exchange:admin", "audit:read"):
            principal.require("exchange:deliver")
        return grant
    principal.require("exchange:deliver")
    return grant


# --- keys and versions -------------------------------------------------------------------------


def subscriber_key(uscc: str) -> str | None:
    """The ``hash`` rule's key for subscriber department ``uscc`` (see the module doc); None without a masking key."""
    base = os.environ.get(MASKING_KEY_ENV) or None
    if base is None:
        return None
    return hmac.new(base.encode("utf-8"), _KEY_CONTEXT + uscc.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class GrantInfo:
    """What delivery needs of a grant, read once (the ORM row stays in its session)."""

    id: int
    entry_id: str
    department: str
    items: tuple[str, ...]
    masking: Mapping[str, str | None]
    join_keys: tuple[str, ...]
    method: str
    target: Mapping[str, Any] | None
    last_version: int | None
    api_key_sha256: str | None

    @classmethod
    def of(cls, grant: Grant) -> GrantInfo:
        return cls(
            id=grant.id,
            entry_id=grant.entry_id,
            department=grant.department_uscc,
            items=tuple(str(i) for i in grant.items or ()),
            masking=dict(grant.masking or {}),
            join_keys=tuple(str(k) for k in grant.join_keys or ()),
            method=grant.delivery_method,
            target=dict(grant.target) if grant.target else None,
            last_version=grant.last_version,
            api_key_sha256=grant.api_key_sha256,
        )

    @property
    def key(self) -> str | None:
        return subscriber_key(self.department)


@dataclass(frozen=True)
class VersionData:
    """One published version: its data file, schema and primary key."""

    entry_id: str
    number: int
    data_path: Path
    schema: list[dict[str, Any]]
    primary_key: tuple[str, ...]
    content_sha256: str
    rows: int


def latest_number(session: Session, entry_id: str) -> int | None:
    value = session.scalar(select(func.max(Version.number)).where(Version.entry_id == entry_id))
    return int(value) if value is not None else None


def version_data(session: Session, entry_id: str, number: int) -> VersionData:
    """Version ``number`` of ``entry_id``; :class:`SpecError` (422) naming the versions there are."""
    row = session.scalar(select(Version).where(Version.entry_id == entry_id, Version.number == number))
    if row is None:
        numbers = list(session.scalars(select(Version.number).where(Version.entry_id == entry_id)))
        there = ", ".join(map(str, sorted(numbers))) or "none yet"
        raise SpecError(f"{entry_id} has no version {number}", hint=f"its versions are: {there}")
    folder = version_folder(row.location, entry_id, number)
    if folder is None:
        raise SourceError(
            f"{entry_id} v{number} is in the catalog but gone from the exchange store ({row.location})",
            hint="restore the exchange store from its backup, or publish the dataset again",
        )
    manifest_path = folder / MANIFEST_FILE
    manifest: dict[str, Any] = {}
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise SourceError(f"{manifest_path}: not valid JSON ({exc})", hint="republish the version") from None
    schema = list(row.schema or manifest.get("schema") or [])
    pk = manifest.get("primary_key")
    if not isinstance(pk, list):
        pk = [str(c["name"]) for c in schema if c.get("primary_key")]
    return VersionData(
        entry_id=entry_id,
        number=row.number,
        data_path=folder / DATA_FILE,
        schema=schema,
        primary_key=tuple(str(k) for k in pk),
        content_sha256=row.content_sha256,
        rows=int(row.row_count),
    )


def incompatible(base: VersionData, new: VersionData, items: Sequence[str]) -> str | None:
    """Why the changes from ``base`` to ``new`` cannot be computed for ``items``, or None."""
    if base.primary_key != new.primary_key:
        return f"the primary key changed from {list(base.primary_key)} to {list(new.primary_key)}"
    old = {str(c["name"]): str(c.get("type") or "string") for c in base.schema}
    now = {str(c["name"]): str(c.get("type") or "string") for c in new.schema}
    for item in items:
        if item not in old:
            return f"data item {item!r} is not in version {base.number}"
        if item in now and old[item] != now[item]:
            return f"data item {item!r} changed its type from {old[item]} to {now[item]}"
    return None


def _require_key(grant: GrantInfo, version: VersionData, what: str) -> None:
    if not version.primary_key:
        raise SpecError(
            f"{version.entry_id} version {version.number} declares no primary key, so {what} is not possible",
            hint="declare the primary key in the dataset spec (primary_key: true) and publish again",
        )
    missing = [k for k in version.primary_key if k not in grant.items]
    if missing:
        raise SpecError(
            f"grant {grant.id} does not include the primary-key item(s) {', '.join(map(repr, missing))}, "
            f"so {what} is not possible",
            hint="the grant must include the key (it may be delivered hashed); ask for a full version instead",
        )


# --- building what is delivered ------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryFile:
    """A file built for one delivery: a full version or the changes between two versions."""

    path: Path
    format: str
    kind: str  # full or changes
    version: int
    base_version: int | None
    rows: int
    inserted: int
    updated: int
    deleted: int
    sha256: str
    columns: tuple[str, ...]
    keys: tuple[str, ...]
    rules: Mapping[str, str | None] = field(default_factory=dict)


def _masked(expr: str, rule: MaskRule | None, key: str | None) -> str:
    return expr if rule is None else mask_sql(expr, rule, key=key)


def changes_sql(
    old_src: str,
    new_src: str,
    *,
    delivered: Sequence[str],
    plan: Mapping[str, MaskRule | None],
    primary_key: Sequence[str],
    key: str | None,
    old_types: Mapping[str, str],
    new_types: Mapping[str, str],
    same: bool = False,
) -> tuple[str, str]:
    """The two DuckDB statements of a change set: candidates into ``govdata_changes``, then the rows.

    ``old_src``/``new_src`` are table expressions (``read_parquet('…')``). The first statement
    compares ``hash()`` of the granted columns per key (old columns cast to the new types); the
    second returns the masked rows with ``_op``, dropping updates whose masked values are equal.
    ``same``: both are one version, so there are no changes (skips reading the data).
    """

    def old(c: str) -> str:
        return f"CAST({ident(c)} AS {new_types[c]})" if old_types[c] != new_types[c] else ident(c)

    pk = list(primary_key)
    keys_new = ", ".join(ident(k) for k in pk)
    keys_old = ", ".join(f"{old(k)} AS {ident(k)}" for k in pk)
    hash_new = "hash(" + ", ".join(ident(c) for c in delivered) + ")"
    hash_old = "hash(" + ", ".join(old(c) for c in delivered) + ")"
    join = " AND ".join(f"o.{ident(k)} = n.{ident(k)}" for k in pk)
    stage1 = (
        "CREATE OR REPLACE TEMP TABLE govdata_changes AS SELECT "
        + ", ".join(f"coalesce(n.{ident(k)}, o.{ident(k)}) AS {ident(k)}" for k in pk)
        + ", CASE WHEN o.govdata_h IS NULL THEN 'insert' WHEN n.govdata_h IS NULL THEN 'delete' ELSE 'update' END"
        f" AS {ident(OP_COLUMN)}"
        f" FROM (SELECT {keys_old}, {hash_old} AS govdata_h FROM {old_src}) o"
        f" FULL OUTER JOIN (SELECT {keys_new}, {hash_new} AS govdata_h FROM {new_src}) n ON {join}"
        " WHERE " + ("false" if same else "o.govdata_h IS DISTINCT FROM n.govdata_h")
    )

    def compared(alias: str, c: str) -> str:
        # Equal raw values mask equally; a hash differs exactly when the value does.
        rule = plan[c]
        return f"{alias}.{ident(c)}" if rule in (None, MaskRule.HASH) else mask_sql(f"{alias}.{ident(c)}", rule)

    nonkey = [c for c in delivered if c not in pk]
    differ = " OR ".join(f"{compared('n', c)} IS DISTINCT FROM {compared('o', c)}" for c in nonkey) or "false"
    on_new = " AND ".join(f"n.{ident(k)} = d.{ident(k)}" for k in pk)
    on_old = " AND ".join(f"o.{ident(k)} = d.{ident(k)}" for k in pk)
    old_rows = "SELECT " + ", ".join(f"{old(c)} AS {ident(c)}" for c in delivered) + f" FROM {old_src}"
    op = ident(OP_COLUMN)
    upserts = (
        "SELECT "
        + ", ".join(f"{_masked(f'n.{ident(c)}', plan[c], key)} AS {ident(c)}" for c in delivered)
        + f", d.{op} AS {op} FROM govdata_changes d JOIN {new_src} n ON {on_new}"
        f" LEFT JOIN ({old_rows}) o ON d.{op} = 'update' AND {on_old}"
        f" WHERE d.{op} = 'insert' OR (d.{op} = 'update' AND ({differ}))"
    )
    deletes = (
        "SELECT "
        + ", ".join(
            (_masked(f"d.{ident(c)}", plan[c], key) if c in pk else "NULL") + f" AS {ident(c)}" for c in delivered
        )
        + f", d.{op} AS {op} FROM govdata_changes d WHERE d.{op} = 'delete'"
    )
    order = ", ".join(ident(k) for k in pk)
    return stage1, f"SELECT * FROM ({upserts} UNION ALL {deletes}) ORDER BY {order}"


def _describe(con: duckdb.DuckDBPyConnection, src: str) -> dict[str, str]:
    return {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}


def _duck_failure(what: str, exc: duckdb.Error) -> TerminalError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return TerminalError(f"{what} failed: {first[:300]}", hint="check that the versions' data files are intact")


def _build_changes(
    grant: GrantInfo, new: VersionData, base: VersionData, target: Path, work_dir: Path
) -> tuple[int, int, int, int, tuple[str, ...], dict[str, MaskRule | None]]:
    """Write the change set as Parquet to ``target``; returns rows, inserted, updated, deleted, columns, plan."""
    _require_key(grant, new, "a change set")
    reason = incompatible(base, new, grant.items)
    if reason:
        raise Conflict(
            f"the changes from version {base.number} to {new.number} of {new.entry_id} cannot be computed: {reason}",
            hint="download the full version (full=true / --full)",
        )
    delivered, plan, keys = plan_rules(new.schema, list(grant.items), grant.masking, join_keys=grant.join_keys)
    if OP_COLUMN in delivered:
        raise SpecError(
            f"{new.entry_id} has a column named {OP_COLUMN!r}, the name of the change-set column",
            hint="rename the column in the dataset spec, or download full versions",
        )
    for path in (base.data_path, new.data_path):
        if not path.is_file():
            raise SourceError(f"{path}: the version's data file does not exist", hint="check the exchange store")
    key = grant.key
    old_src, new_src = f"read_parquet({path_lit(base.data_path)})", f"read_parquet({path_lit(new.data_path)})"
    index = changes.index_of(new.data_path.parent) if new.number == base.number + 1 else None
    if index is not None:
        # Only the rows that differ between the two versions, found once when the version was stored.
        old_src, new_src = (f"read_parquet({path_lit(p)})" for p in index)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.incoming")
    con = connect(work_dir / ".duckdb")
    try:
        try:
            new_types, old_types = _describe(con, new_src), _describe(con, old_src)
            absent = [c for c in delivered if c not in new_types or c not in old_types]
            if absent:
                raise SourceError(
                    f"{new.entry_id}: granted column(s) {', '.join(map(repr, absent))} missing from a data file",
                    hint="the data files do not match their schemas; republish the versions",
                )
            stage1, stage2 = changes_sql(
                old_src,
                new_src,
                delivered=delivered,
                plan=plan,
                primary_key=new.primary_key,
                key=key,
                old_types=old_types,
                new_types=new_types,
                same=base.number == new.number,
            )
            con.execute(stage1)
            con.execute(f"COPY ({stage2}) TO {path_lit(tmp)} (FORMAT parquet, COMPRESSION zstd)")
            counts = dict(
                con.execute(
                    f"SELECT {ident(OP_COLUMN)}, count(*) FROM read_parquet({path_lit(tmp)}) GROUP BY 1"
                ).fetchall()
            )
            hashed = [k for k in keys if plan[k] is MaskRule.HASH]
            if hashed:
                cols = ", ".join(ident(k) for k in new.primary_key)
                row = con.execute(
                    f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT {cols} FROM read_parquet({path_lit(tmp)})))"
                    f" FROM read_parquet({path_lit(tmp)})"
                ).fetchone()
                if row is not None and row[0] != row[1]:
                    raise TerminalError(
                        f"{new.entry_id}: hashing the key made {row[0] - row[1]} key(s) equal in the change set",
                        hint="deliver the key in clear, or normalise its text form before publishing",
                    )
        except duckdb.Error as exc:
            raise _duck_failure(
                f"{new.entry_id}: the changes from version {base.number} to {new.number}", exc
            ) from None
        tmp.replace(target)
    finally:
        con.close()
        tmp.unlink(missing_ok=True)
    inserted, updated, deleted = (int(counts.get(op, 0)) for op in ("insert", "update", "delete"))
    return inserted + updated + deleted, inserted, updated, deleted, (*delivered, OP_COLUMN), plan


def parquet_to_csv(source: Path, target: Path, *, batch_rows: int = 65_536) -> None:
    """Write ``source`` (Parquet) as CSV: UTF-8 with a BOM, a header line, ``""`` for empty text, nothing for null."""
    parquet = pq.ParquetFile(source)
    with target.open("wb") as fh:
        fh.write(CSV_BOM)
        writer = pa_csv.CSVWriter(fh, parquet.schema_arrow)
        try:
            for batch in parquet.iter_batches(batch_size=batch_rows):
                writer.write_batch(batch)
        finally:
            writer.close()


def build_delivery(
    grant: GrantInfo,
    new: VersionData,
    base: VersionData | None,
    target: Path,
    *,
    fmt: str = "parquet",
    work_dir: Path,
) -> DeliveryFile:
    """Write what ``grant`` receives of version ``new`` to ``target``: the full version (``base`` None) or the changes.

    ``fmt`` is ``parquet`` or ``csv``. Raises govdata errors only (masking, missing files, keys).
    """
    if fmt not in FORMATS:
        raise SpecError(f"unknown format {fmt!r}", hint="use parquet or csv")
    work_dir.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    parquet_out = target if fmt == "parquet" else work_dir / f".{target.name}.{uuid.uuid4().hex[:8]}.parquet"
    try:
        if base is None:
            report = mask_for_grant(
                new.data_path,
                parquet_out,
                columns=new.schema,
                items=list(grant.items),
                rules=grant.masking,
                key=grant.key,
                join_keys=grant.join_keys,
            )
            rows, inserted, updated, deleted = report.rows, 0, 0, 0
            columns, keys, rules = report.columns, report.keys, dict(report.rules)
        else:
            rows, inserted, updated, deleted, columns, plan = _build_changes(grant, new, base, parquet_out, work_dir)
            keys = tuple(new.primary_key)
            rules = {c: (r.value if r is not None else None) for c, r in plan.items()}
        if fmt == "csv":
            parquet_to_csv(parquet_out, target)
    finally:
        if parquet_out != target:
            parquet_out.unlink(missing_ok=True)
    return DeliveryFile(
        path=target,
        format=fmt,
        kind="full" if base is None else "changes",
        version=new.number,
        base_version=None if base is None else base.number,
        rows=rows,
        inserted=inserted,
        updated=updated,
        deleted=deleted,
        sha256=sha256_file(target),
        columns=tuple(columns),
        keys=tuple(keys),
        rules=rules,
    )


# --- receipts ----------------------------------------------------------------------------------------


def receipt_dict(row: Delivery) -> dict[str, Any]:
    """A receipt as plain data (what the API and the CLI show)."""
    return {
        "id": row.id,
        "grant": row.grant_id,
        "entry": row.entry_id,
        "department": row.department_uscc,
        "mode": row.mode,
        "kind": row.kind,
        "version": row.version,
        "base_version": row.base_version,
        "format": row.format,
        "rows": row.rows,
        "inserted": row.inserted,
        "updated": row.updated,
        "deleted": row.deleted,
        "sha256": row.sha256,
        "outcome": row.outcome,
        "attempts": row.attempts,
        "error": row.error,
        "actor": row.actor,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "latency_ms": row.latency_ms,
    }


def _audit_detail(row: Delivery, **extra: Any) -> dict[str, Any]:
    detail = {
        "receipt": row.id,
        "entry": row.entry_id,
        "subscriber": row.department_uscc,
        "kind": row.kind,
        "version": row.version,
        "base_version": row.base_version,
        "format": row.format,
        "rows": row.rows,
        "inserted": row.inserted,
        "updated": row.updated,
        "deleted": row.deleted,
        "sha256": row.sha256,
        "outcome": row.outcome,
        "attempts": row.attempts,
    }
    if row.error:
        detail["error"] = row.error
    detail.update(extra)
    return detail


def mark_delivered(session: Session, grant_id: int, version: int) -> bool:
    """Record ``version`` as the grant's last delivered one if it is newer; True when it was new."""
    result = session.execute(
        update(Grant)
        .where(Grant.id == grant_id, or_(Grant.last_version.is_(None), Grant.last_version < version))
        .values(last_version=version)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def succeeded(session: Session, row: Delivery, *, new_version: bool, **audit_extra: Any) -> None:
    """Audit a successful delivery and, for a new version, queue ``version.delivered``."""
    audit.append(
        session,
        actor=row.actor,
        action=f"delivery.{row.mode}",
        subject=f"grant:{row.grant_id}",
        detail=_audit_detail(row, **audit_extra),
    )
    if new_version:
        notify.emit(
            session,
            department=row.department_uscc,
            event="version.delivered",
            payload={
                "grant": row.grant_id,
                "entry": row.entry_id,
                "version": row.version,
                "mode": row.mode,
                "kind": row.kind,
                "rows": row.rows,
                "sha256": row.sha256,
                "receipt": row.id,
            },
        )


def failed(session: Session, row: Delivery, **audit_extra: Any) -> None:
    """Audit a delivery that failed for good and queue ``delivery.failed``."""
    audit.append(
        session,
        actor=row.actor,
        action=f"delivery.{row.mode}",
        subject=f"grant:{row.grant_id}",
        detail=_audit_detail(row, **audit_extra),
    )
    notify.emit(
        session,
        department=row.department_uscc,
        event="delivery.failed",
        payload={
            "grant": row.grant_id,
            "entry": row.entry_id,
            "version": row.version,
            "mode": row.mode,
            "attempts": row.attempts,
            "error": row.error,
            "receipt": row.id,
        },
    )


def error_text(exc: BaseException) -> str:
    """A short description of ``exc`` for a receipt (no SQL, no parameters, no URL)."""
    if isinstance(exc, GovdataError):
        return exc.message[:2000]
    orig = getattr(exc, "orig", None)
    source = orig if orig is not None else exc
    first = (str(source).strip().splitlines() or [""])[0]
    return f"{type(source).__name__}: {first}"[:2000]


# --- file download -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    """A prepared download: the file (in its own folder, removed by :meth:`cleanup`) and its receipt."""

    file: DeliveryFile
    receipt: int
    folder: Path
    filename: str

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.file.format]

    def headers(self) -> dict[str, str]:
        return {
            "X-Govdata-Version": str(self.file.version),
            "X-Govdata-Rows": str(self.file.rows),
            "X-Govdata-Sha256": self.file.sha256,
            "X-Govdata-Receipt": str(self.receipt),
            "X-Govdata-Kind": self.file.kind,
        }

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _record_failure(
    store: Any,
    grant: GrantInfo,
    *,
    mode: str,
    kind: str,
    version: int,
    base_version: int | None,
    fmt: str | None,
    actor: str,
    started: dt.datetime,
    elapsed_ms: float,
    error: str,
) -> int:
    with store.session() as s:
        row = Delivery(
            grant_id=grant.id,
            entry_id=grant.entry_id,
            department_uscc=grant.department,
            mode=mode,
            kind=kind,
            version=version,
            base_version=base_version,
            format=fmt,
            outcome="failed",
            attempts=1,
            error=error,
            actor=actor,
            started_at=started,
            finished_at=utcnow(),
            latency_ms=elapsed_ms,
        )
        s.add(row)
        s.flush()
        failed(s, row)
        return row.id


def download(
    store: Any,
    grant_id: int,
    principal: Principal,
    *,
    fmt: str = "parquet",
    since: int | None = None,
    full: bool = False,
    version: int | None = None,
    work_dir: Path,
    now: dt.datetime | None = None,
) -> Download:
    """Prepare a file download for ``principal`` (the subscriber) and write its receipt.

    ``version``: which version (default the latest); ``since``: the changes since that version
    (default the grant's last delivered version; none yet: the full version); ``full``: the full
    version. The use is consumed and the receipt written only once the file is ready; the caller
    streams :attr:`Download.file` and then calls :meth:`Download.cleanup`.
    """
    if fmt not in FORMATS:
        raise SpecError(f"unknown format {fmt!r}", hint="use format=parquet or format=csv")
    if full and since is not None:
        raise SpecError("give either since (the changes) or full (the whole version), not both", hint="drop one")
    for name, value in (("since", since), ("version", version)):
        if value is not None and not 0 <= value <= MAX_INT:
            raise SpecError(f"{name} must be a version number, not {value}", hint="see the grant's versions")
    now = now or utcnow()
    started, t0 = utcnow(), time.perf_counter()
    with store.session() as s:
        grant = grant_for(s, grant_id, principal, purpose="receive")
        ensure_method(grant, "file")
        ensure_active(grant, now)
        info = GrantInfo.of(grant)
        number = version if version is not None else latest_number(s, info.entry_id)
        if number is None:
            raise Conflict(f"{info.entry_id} has no published version yet", hint="wait for the provider to publish")
        new = version_data(s, info.entry_id, number)
        base: VersionData | None = None
        if not full:
            if since is not None:
                if since > number:
                    raise SpecError(
                        f"since={since} is after the version delivered ({number})",
                        hint="give an earlier version, or full=true",
                    )
                base = version_data(s, info.entry_id, since)
            elif info.last_version is not None and info.last_version <= number:
                try:
                    base = version_data(s, info.entry_id, info.last_version)
                except SpecError:
                    base = None  # the last delivered version is gone: deliver in full
    kind = "full" if base is None else "changes"
    folder = work_dir / f"download-{uuid.uuid4().hex}"
    suffix = f"-since-v{base.number}" if base is not None else ""
    filename = f"{info.entry_id}-v{number}{suffix}.{fmt}"
    try:
        built = build_delivery(info, new, base, folder / filename, fmt=fmt, work_dir=folder)
    except GovdataError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if not isinstance(exc, Conflict):
            _record_failure(
                store,
                info,
                mode="file",
                kind=kind,
                version=number,
                base_version=base.number if base else None,
                fmt=fmt,
                actor=principal.user,
                started=started,
                elapsed_ms=(time.perf_counter() - t0) * 1000,
                error=exc.message,
            )
        raise
    try:
        with store.session() as s:
            consume_use(s, grant_id, now)
            row = Delivery(
                grant_id=info.id,
                entry_id=info.entry_id,
                department_uscc=info.department,
                mode="file",
                kind=built.kind,
                version=built.version,
                base_version=built.base_version,
                format=fmt,
                rows=built.rows,
                inserted=built.inserted,
                updated=built.updated,
                deleted=built.deleted,
                sha256=built.sha256,
                outcome="succeeded",
                attempts=1,
                actor=principal.user,
                started_at=started,
                finished_at=utcnow(),
                latency_ms=(time.perf_counter() - t0) * 1000,
            )
            s.add(row)
            s.flush()
            new_version = mark_delivered(s, info.id, built.version)
            succeeded(s, row, new_version=new_version)
            receipt = row.id
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    log.info("delivery: grant %d file %s (%s, %d rows), receipt %d", info.id, filename, built.kind, built.rows, receipt)
    return Download(file=built, receipt=receipt, folder=folder, filename=filename)


def grant_versions(session: Session, grant_id: int, principal: Principal) -> dict[str, Any]:
    """The versions of a grant's resource, the latest, and which the grant last received."""
    grant = grant_for(session, grant_id, principal, purpose="view")
    delivered = set(
        session.scalars(
            select(Delivery.version).where(Delivery.grant_id == grant.id, Delivery.outcome == "succeeded").distinct()
        )
    )
    versions = session.scalars(select(Version).where(Version.entry_id == grant.entry_id).order_by(Version.number)).all()
    return {
        "grant": grant.id,
        "entry": grant.entry_id,
        "state": grant.state(),
        "delivery_method": grant.delivery_method,
        "latest": versions[-1].number if versions else None,
        "last_delivered": grant.last_version,
        "versions": [
            {
                "version": v.number,
                "rows": v.row_count,
                "published_at": v.published_at,
                "content_sha256": v.content_sha256,
                "delivered": v.number in delivered,
            }
            for v in versions
        ],
    }


# --- the data API -------------------------------------------------------------------------------------


def _int_param(name: str, value: Any, low: int, high: int, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise SpecError(
            f"{name} must be a whole number, not {str(value)[:40]!r}", hint=f"give {low} to {high}"
        ) from None
    if not low <= number <= high:
        raise SpecError(f"{name} must be between {low} and {high}, not {number}", hint=f"give {low} to {high}")
    return number


def grant_by_key(session: Session, key: str | None) -> Grant:
    """The grant whose data key ``key`` is; :class:`AuthError` (401) for a missing, malformed, unknown or replaced key."""
    if not key:
        raise AuthError("the data API needs the grant's key", hint="send the header `X-Grant-Key: gdk_…`")
    ident_ = split_token(key.strip(), KEY_PREFIX)
    grant = session.scalar(select(Grant).where(Grant.api_key_id == ident_)) if ident_ else None
    if (
        grant is None
        or grant.api_key_sha256 is None
        or not hmac.compare_digest(grant.api_key_sha256, hash_token(key.strip()))
    ):
        raise AuthError(
            "the data key is not valid (malformed, unknown, or replaced by a newer key)",
            hint="use the grant's current key; the provider can issue a new one",
        )
    return grant


def _cursor_tag(grant: GrantInfo, body: str) -> str:
    secret = (grant.api_key_sha256 or "").encode("ascii")
    return hmac.new(secret, f"{grant.id}.{body}".encode("ascii"), hashlib.sha256).hexdigest()[:20]


def _json_key(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def encode_cursor(grant: GrantInfo, version: int, key: Sequence[Any]) -> str:
    """The opaque cursor after ``key`` in ``version``: base64url JSON and an HMAC tag."""
    payload = json.dumps({"v": version, "k": [_json_key(v) for v in key]}, ensure_ascii=False, separators=(",", ":"))
    body = base64.urlsafe_b64encode(payload.encode("utf-8")).rstrip(b"=").decode("ascii")
    return f"{body}.{_cursor_tag(grant, body)}"


def _bad_cursor() -> SpecError:
    return SpecError(
        "the cursor is not valid: it was changed, cut short, or made for another grant or key",
        hint="start again without a cursor, then pass each page's next_cursor unchanged",
    )


def decode_cursor(grant: GrantInfo, cursor: str) -> tuple[int, list[Any]]:
    """``(version, last key)`` of a cursor made by :func:`encode_cursor`; :class:`SpecError` (422) if it was changed."""
    bad = _bad_cursor()
    if len(cursor) > _MAX_CURSOR or not cursor.isascii() or cursor.count(".") != 1:
        raise bad
    body, tag = cursor.split(".")
    if not hmac.compare_digest(tag.encode("ascii", "replace"), _cursor_tag(grant, body).encode("ascii")):
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    if not isinstance(data, dict) or set(data) != {"v", "k"}:
        raise bad
    version, values = data["v"], data["k"]
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_INT:
        raise bad
    if not isinstance(values, list) or not values:
        raise bad
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
        raise bad
    return version, values


def _cache_path(grant: GrantInfo, version: VersionData, cache_dir: Path) -> Path:
    key = grant.key
    fingerprint = hashlib.sha256(
        json.dumps(
            {
                "items": list(grant.items),
                "masking": dict(grant.masking),
                "join_keys": list(grant.join_keys),
                "key": hashlib.sha256(key.encode()).hexdigest() if key else None,
                "content": version.content_sha256,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    return cache_dir / f"grant-{grant.id}" / f"v{version.number:06d}-{fingerprint}.parquet"


def api_cache(grant: GrantInfo, version: VersionData, cache_dir: Path) -> Path:
    """The grant's masked copy of ``version``, sorted by the delivered key (built once, atomically)."""
    path = _cache_path(grant, version, cache_dir)
    if path.is_file():
        return path
    _require_key(grant, version, "paging by key")
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    masked = folder / f".{path.stem}.{uuid.uuid4().hex[:8]}.masked.parquet"
    tmp = folder / f".{path.stem}.{uuid.uuid4().hex[:8]}.incoming"
    try:
        mask_for_grant(
            version.data_path,
            masked,
            columns=version.schema,
            items=list(grant.items),
            rules=grant.masking,
            key=grant.key,
            join_keys=grant.join_keys,
        )
        order = ", ".join(ident(k) for k in version.primary_key)
        con = connect(folder / ".duckdb")
        try:
            con.execute(
                f"COPY (SELECT * FROM read_parquet({path_lit(masked)}) ORDER BY {order}) TO {path_lit(tmp)} "
                f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {_CACHE_ROW_GROUP})"
            )
        except duckdb.Error as exc:
            raise _duck_failure(f"{version.entry_id}: sorting version {version.number} for the data API", exc) from None
        finally:
            con.close()
        tmp.replace(path)
    finally:
        masked.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
        shutil.rmtree(folder / ".duckdb", ignore_errors=True)
    for other in folder.glob("v*.parquet"):  # older versions and copies masked under other settings
        number = int(other.name[1:7]) if other.name[1:7].isdigit() else 0
        if other != path and (number < version.number - 1 or number == version.number):
            other.unlink(missing_ok=True)
    return path


def _plain(value: Any) -> Any:
    """A value JSON can carry: non-finite numbers become null, bytes base64."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def read_page(
    cache: Path, primary_key: Sequence[str], after: Sequence[Any] | None, size: int
) -> tuple[list[str], list[dict[str, Any]], bool]:
    """Up to ``size`` rows of ``cache`` after key ``after``: the columns, the rows, and whether more follow."""
    src = f"read_parquet({path_lit(cache)})"
    con = connect()
    try:
        types = _describe(con, src)
        params: list[Any] = []
        where = ""
        if after is not None:
            terms = []
            for i, k in enumerate(primary_key):
                equal = [f"{ident(p)} = CAST(? AS {types[p]})" for p in primary_key[:i]]
                terms.append("(" + " AND ".join([*equal, f"{ident(k)} > CAST(? AS {types[k]})"]) + ")")
                params.extend([*after[:i], after[i]])
            where = "WHERE " + " OR ".join(terms)
        order = ", ".join(ident(k) for k in primary_key)
        try:
            table = con.sql(
                f"SELECT * FROM {src} {where} ORDER BY {order} LIMIT {size + 1}", params=params
            ).to_arrow_table()
        except duckdb.Error:
            raise SpecError(
                "the cursor does not fit this version's key",
                hint="start again without a cursor, then pass each page's next_cursor unchanged",
            ) from None
    finally:
        con.close()
    rows = [{k: _plain(v) for k, v in row.items()} for row in table.slice(0, size).to_pylist()]
    return list(table.column_names), rows, table.num_rows > size


def _api_receipt(
    session: Session, grant: GrantInfo, version: VersionData, *, rows: int, sha256: str, now: dt.datetime, ms: float
) -> Delivery:
    """Today's API receipt of ``grant`` for ``version``, created (and audited) on the day's first page."""
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    row = session.scalar(
        select(Delivery)
        .where(
            Delivery.grant_id == grant.id,
            Delivery.mode == "api",
            Delivery.version == version.number,
            Delivery.started_at >= day,
        )
        .order_by(Delivery.id.desc())
        .limit(1)
    )
    if row is None:
        row = Delivery(
            grant_id=grant.id,
            entry_id=grant.entry_id,
            department_uscc=grant.department,
            mode="api",
            kind="full",
            version=version.number,
            format="json",
            rows=rows,
            sha256=sha256,
            outcome="succeeded",
            attempts=1,
            actor=f"key:{grant.id}",
            started_at=now,
            finished_at=now,
            latency_ms=ms,
        )
        session.add(row)
        session.flush()
        audit.append(
            session,
            actor=row.actor,
            action="delivery.api",
            subject=f"grant:{grant.id}",
            detail={**_audit_detail(row), "note": "first data API page of this version today"},
        )
        return row
    session.execute(
        update(Delivery)
        .where(Delivery.id == row.id)
        .values(
            rows=Delivery.rows + rows,
            attempts=Delivery.attempts + 1,
            finished_at=now,
            latency_ms=func.coalesce(Delivery.latency_ms, 0.0) + ms,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(row)
    return row


def api_page(
    store: Any,
    grant_id: int,
    key: str | None,
    *,
    page_size: Any = None,
    cursor: str | None = None,
    version: Any = None,
    cache_dir: Path,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """One page of the data API for the holder of ``key``; every call (refused ones too) is an :class:`ApiCall`.

    ``page_size`` and ``version`` are taken as given in the query (text or numbers) and checked
    here, so a malformed request is recorded like any other.
    """
    t0 = time.perf_counter()
    now = now or utcnow()
    status, rows_out = 500, 0
    department: str | None = None
    entry: str | None = None
    try:
        size = _int_param("page_size", page_size, 1, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE)
        wanted = _int_param("version", version, 1, MAX_INT, None)
        assert size is not None
        with store.session() as s:
            grant = grant_by_key(s, key)
            department = grant.department_uscc  # the caller, known from its key
            if grant.id != grant_id:
                raise Forbidden(
                    f"this data key is not the key of grant {grant_id}",
                    hint=f"use the key issued for grant {grant_id}",
                )
            entry = grant.entry_id
            ensure_method(grant, "api")
            ensure_active(grant, now)
            info = GrantInfo.of(grant)
            pinned = decode_cursor(info, cursor) if cursor else None
            if pinned is not None and wanted is not None and pinned[0] != wanted:
                raise SpecError(
                    f"the cursor belongs to version {pinned[0]}, not version {wanted}",
                    hint="drop the version parameter when passing a cursor",
                )
            number = pinned[0] if pinned else wanted if wanted is not None else latest_number(s, info.entry_id)
            if number is None:
                raise Conflict(f"{info.entry_id} has no published version yet", hint="wait for the provider to publish")
            data = version_data(s, info.entry_id, number)
        if pinned is not None and len(pinned[1]) != len(data.primary_key):
            raise _bad_cursor()
        cache = api_cache(info, data, cache_dir)
        columns, rows, more = read_page(cache, data.primary_key, pinned[1] if pinned else None, size)
        next_cursor = encode_cursor(info, number, [rows[-1][k] for k in data.primary_key]) if more and rows else None
        elapsed = (time.perf_counter() - t0) * 1000
        with store.session() as s:
            consume_use(s, info.id, now)
            receipt = _api_receipt(s, info, data, rows=len(rows), sha256=sha256_file(cache), now=now, ms=elapsed)
            if next_cursor is None and mark_delivered(s, info.id, number):
                notify.emit(
                    s,
                    department=info.department,
                    event="version.delivered",
                    payload={
                        "grant": info.id,
                        "entry": info.entry_id,
                        "version": number,
                        "mode": "api",
                        "kind": "full",
                        "receipt": receipt.id,
                    },
                )
            receipt_id = receipt.id
        status, rows_out = 200, len(rows)
        return {
            "grant": info.id,
            "entry": info.entry_id,
            "version": number,
            "columns": columns,
            "rows": rows,
            "count": len(rows),
            "next_cursor": next_cursor,
            "receipt": receipt_id,
        }
    except GovdataError as exc:
        status = http_status(exc)
        raise
    finally:
        with store.session() as s:
            s.add(
                ApiCall(
                    at=now,
                    grant_id=grant_id if 0 < grant_id <= MAX_INT else None,
                    entry_id=entry,
                    department_uscc=department,
                    status=status,
                    latency_ms=(time.perf_counter() - t0) * 1000,
                    rows=rows_out,
                )
            )


# --- listing receipts ---------------------------------------------------------------------------------


def list_deliveries(
    session: Session,
    principal: Principal | None,
    *,
    grant: int | None = None,
    outcome: str | None = None,
    mode: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Delivery], int]:
    """Receipts, newest first, and how many match: a department sees those of its grants and of its data.

    City-level users (and the local operator, ``principal`` None) see every receipt.
    """
    query = select(Delivery)
    if principal is not None and not principal.city:
        if not _can(principal, "exchange:deliver", "monitor:read"):
            principal.require("exchange:deliver")
        own_entries = select(Entry.id).where(Entry.department_uscc == principal.department)
        query = query.where(or_(Delivery.department_uscc == principal.department, Delivery.entry_id.in_(own_entries)))
    elif principal is not None and not _can(principal, "monitor:read", "exchange:admin", "audit:read"):
        principal.require("monitor:read")
    if grant is not None:
        query = query.where(Delivery.grant_id == grant)
    if outcome is not None:
        query = query.where(Delivery.outcome == outcome)
    if mode is not None:
        query = query.where(Delivery.mode == mode)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = session.scalars(query.order_by(Delivery.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def iter_batches(path: Path, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of a delivery file in record batches of at most ``batch_rows``."""
    yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
