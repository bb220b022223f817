"""Schema changes between versions (信息项变更): classify them, hold the breaking ones for approval.

The publish step compares the candidate version's schema (the runner's list of columns: name,
title, type, length, primary key, nullable, sensitive) with the latest version's and classifies
each difference from the point of view of a subscriber whose code, table or mapping was built
for the latest version:

=================  =========================================================  ==========
change             when                                                        kind
=================  =========================================================  ==========
added              a column that was not there                                 compatible
removed            a column that is gone                                       breaking
renamed            a removed and an added column with the same Chinese title,  breaking
                   or else at the same position with the same type
retyped            the type changed to a narrower or an unrelated one          breaking
                   (e.g. float → integer, timestamp → date, string → date)
widened            the type changed to one that holds every old value:         compatible
                   string ↔ text (both VARCHAR), integer → float/decimal/money,
                   money → decimal, date → timestamp
length_shortened   a shorter declared length, or a length where there was none breaking
length_extended    a longer declared length, or none where there was one       compatible
now_nullable       not nullable → nullable: readers relying on "never empty"   breaking
                   (a NOT NULL column in the subscriber's table) get NULLs
now_not_nullable   nullable → not nullable: readers already cope with NULLs,   compatible
                   and simply see none
key_changed        a column joins or leaves the primary key: the identity of   breaking
                   a row changes, and so does every keyed delivery (upserts)
retitled           another Chinese title (信息项名称), same column              compatible
sensitivity        the sensitive flag changed (masking follows it)             compatible
reordered          the common columns come in another order (readers go by     compatible
                   name; the published files are Parquet)
=================  =========================================================  ==========

A version's kind is ``breaking`` if any change is, ``compatible`` if there are changes and none
is breaking, ``none`` otherwise. A length unknown on one side (versions published before lengths
were recorded) is not compared. Only a new version is classified: a run whose rows and column
names and types are identical to the latest version publishes nothing ("unchanged"), so a change
of declarations alone is classified with the next version that carries it.

A breaking change needs an explicit approval before it is published: the publish step records a
pending :class:`catalog.models.SchemaChange` (keyed by the entry and the new schema's sha256) and
holds the run (:class:`SchemaChangeHeld`, run status ``held``, exit 2). The city admin decides
(:func:`decide`, ``govdata catalog review DATASET --schema-change --approve|--reject``), not the
providing department: the people a breaking change hurts are the subscribers in other
departments, whose grants the city platform keeps, and a department approving its own change
would be no review at all (the same reason the city admin reviews publication). The decision
needs an opinion, because subscribers read it. Running the same run key again then publishes;
the version's ``schema_change`` keeps the change and its approval (``govdata catalog show``).
A compatible change publishes at once and is recorded the same way, without an approval.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.access import Role, Status
from catalog.models import SchemaChange
from exchange import audit
from pipelines.errors import QualityGateHeld

__all__ = [
    "BREAKING",
    "WIDENINGS",
    "Review",
    "SchemaChangeHeld",
    "SchemaDiff",
    "check",
    "compare",
    "decide",
    "mark_published",
    "pending",
    "schema_sha256",
]

Kind = Literal["none", "compatible", "breaking"]

#: Type changes that keep every old value representable (compatible); any other type change is breaking.
WIDENINGS: frozenset[tuple[str, str]] = frozenset(
    {
        ("string", "text"),
        ("text", "string"),
        ("integer", "float"),
        ("integer", "decimal"),
        ("integer", "money"),
        ("money", "decimal"),
        ("date", "timestamp"),
    }
)
#: The changes that break a subscriber built for the previous version.
BREAKING: frozenset[str] = frozenset(
    {"removed", "renamed", "retyped", "length_shortened", "now_nullable", "key_changed"}
)
#: The fields that identify a schema (derived ones such as the DuckDB type follow from ``type``).
_IDENTITY = ("name", "title", "type", "length", "primary_key", "nullable", "sensitive")


def _label(col: Mapping[str, Any]) -> str:
    title = col.get("title")
    return f"{col['name']} ({title})" if title and title != col["name"] else str(col["name"])


def _change(kind: str, col: Mapping[str, Any], message: str, **values: Any) -> dict[str, Any]:
    return {"change": kind, "column": col["name"], "breaking": kind in BREAKING, "message": message, **values}


def _column_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What changed in one column kept under the same name (or renamed: ``new`` under its new name)."""
    found: list[dict[str, Any]] = []
    label = _label(new)
    a, b = old.get("type"), new.get("type")
    if a != b:
        kind = "widened" if (a, b) in WIDENINGS else "retyped"
        found.append(_change(kind, new, f"column {label}: type {a} → {b}", **{"from": a, "to": b}))
    if "length" in old and "length" in new and old["length"] != new["length"]:
        la, lb = old["length"], new["length"]
        shorter = lb is not None and (la is None or lb < la)
        kind = "length_shortened" if shorter else "length_extended"
        show = {None: "none"}
        found.append(
            _change(
                kind, new, f"column {label}: length {show.get(la, la)} → {show.get(lb, lb)}", **{"from": la, "to": lb}
            )
        )
    na, nb = bool(old.get("nullable", True)), bool(new.get("nullable", True))
    if na != nb:
        kind = "now_nullable" if nb else "now_not_nullable"
        found.append(_change(kind, new, f"column {label}: " + ("may now be empty" if nb else "is now never empty")))
    ka, kb = bool(old.get("primary_key")), bool(new.get("primary_key"))
    if ka != kb:
        found.append(
            _change(
                "key_changed", new, f"column {label}: " + ("joins the primary key" if kb else "leaves the primary key")
            )
        )
    if old.get("title") != new.get("title") and old["name"] == new["name"]:
        found.append(
            _change(
                "retitled",
                new,
                f"column {new['name']}: title {old.get('title')} → {new.get('title')}",
                **{"from": old.get("title"), "to": new.get("title")},
            )
        )
    sa, sb = bool(old.get("sensitive")), bool(new.get("sensitive"))
    if sa != sb:
        found.append(
            _change(
                "sensitivity", new, f"column {label}: " + ("now sensitive (masked)" if sb else "no longer sensitive")
            )
        )
    return found


@dataclass(frozen=True)
class SchemaDiff:
    """The classified differences between two schemas."""

    kind: Kind
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def breaking(self) -> list[dict[str, Any]]:
        return [c for c in self.changes if c["breaking"]]

    def summary(self, *, only_breaking: bool = False) -> str:
        shown = self.breaking if only_breaking else self.changes
        return "; ".join(c["message"] for c in shown)


def compare(previous: Sequence[Mapping[str, Any]], candidate: Sequence[Mapping[str, Any]]) -> SchemaDiff:
    """Classify ``candidate`` against ``previous`` (lists of columns with at least name, title, type)."""
    old = {c["name"]: (i, c) for i, c in enumerate(previous)}
    new = {c["name"]: (i, c) for i, c in enumerate(candidate)}
    removed = [n for n in old if n not in new]
    added = [n for n in new if n not in old]
    renames: dict[str, str] = {}  # old name → new name
    # A removed and an added column with the same Chinese title are one column renamed ...
    for r in removed:
        title = old[r][1].get("title")
        match = [a for a in added if a not in renames.values() and title and new[a][1].get("title") == title]
        if len(match) == 1:
            renames[r] = match[0]
    # ... and so are a removed and an added column at the same position with the same type.
    for r in removed:
        if r in renames:
            continue
        pos, col = old[r]
        match = [
            a
            for a in added
            if a not in renames.values() and new[a][0] == pos and new[a][1].get("type") == col.get("type")
        ]
        if len(match) == 1:
            renames[r] = match[0]

    changes: list[dict[str, Any]] = []
    for r in removed:
        col = old[r][1]
        if r in renames:
            target = new[renames[r]][1]
            changes.append(
                _change(
                    "renamed",
                    target,
                    f"column {_label(col)} renamed to {target['name']}",
                    **{"from": r, "to": target["name"]},
                )
            )
            changes.extend(c for c in _column_changes(col, target) if c["change"] != "retitled")
        else:
            changes.append(_change("removed", col, f"column {_label(col)} removed"))
    for a in added:
        if a not in renames.values():
            col = new[a][1]
            changes.append(_change("added", col, f"column {_label(col)} added ({col.get('type')})"))
    for name, (_, col) in old.items():
        if name in new:
            changes.extend(_column_changes(col, new[name][1]))
    common_old = [renames.get(n, n) for n in old if n in new or n in renames]
    common_new = [n for n in new if n in old or n in renames.values()]
    if common_old != common_new:
        changes.append(
            {
                "change": "reordered",
                "column": None,
                "breaking": False,
                "message": "columns reordered: " + ", ".join(common_new),
                "from": common_old,
                "to": common_new,
            }
        )
    kind: Kind = "breaking" if any(c["breaking"] for c in changes) else ("compatible" if changes else "none")
    return SchemaDiff(kind, changes)


def schema_sha256(schema: Sequence[Mapping[str, Any]]) -> str:
    """The identity of a schema: its columns' names, titles, types, lengths and flags, in order."""
    doc = [{k: c.get(k) for k in _IDENTITY if k in c} for c in schema]
    return hashlib.sha256(json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


# --- the gate in the publish step --------------------------------------------------------------


class SchemaChangeHeld(QualityGateHeld):
    """A breaking schema change waits for (or was refused) its approval: nothing was published (exit 2)."""


@dataclass(frozen=True)
class Review:
    """What the publish step does about the candidate's schema."""

    status: Literal["none", "compatible", "approved", "pending", "rejected"]
    diff: SchemaDiff
    record: dict[str, Any] | None = None  # the version's schema_change (and the run report's)
    reason: str | None = None  # why the publish is held
    hint: str | None = None

    @property
    def held(self) -> bool:
        return self.status in ("pending", "rejected")


def _approval(row: SchemaChange) -> dict[str, Any] | None:
    if row.status == "pending":
        return None
    return {
        "status": row.status,
        "by": row.decided_by,
        "role": Role.CITY_ADMIN.value,
        "at": row.decided_at.isoformat() if row.decided_at else None,
        "opinion": row.opinion,
    }


def _record(row: SchemaChange | None, diff: SchemaDiff, from_version: int) -> dict[str, Any]:
    return {
        "id": row.id if row is not None else None,
        "kind": diff.kind,
        "from_version": from_version,
        "changes": diff.changes,
        "approval": _approval(row) if row is not None else None,
    }


def _command(dataset: str) -> str:
    return f"govdata catalog review {dataset} --schema-change --approve --opinion TEXT --as CITY_ADMIN"


def check(
    session: Session,
    dataset: str,
    *,
    previous_schema: Sequence[Mapping[str, Any]],
    previous_version: int,
    candidate: Sequence[Mapping[str, Any]],
) -> Review:
    """Classify the candidate; for a breaking change, find or open its SchemaChange and say whether to hold."""
    diff = compare(previous_schema, candidate)
    if diff.kind == "none":
        return Review("none", diff)
    if diff.kind == "compatible":
        return Review("compatible", diff, _record(None, diff, previous_version))
    digest = schema_sha256(candidate)
    row = session.scalar(
        select(SchemaChange).where(SchemaChange.entry_id == dataset, SchemaChange.schema_sha256 == digest)
    )
    opened = False
    if row is None:
        row = SchemaChange(entry_id=dataset, schema_sha256=digest)
        try:
            with session.begin_nested():
                _open(row, diff, previous_version)
                session.add(row)
        except IntegrityError:  # a concurrent run of the same dataset opened it first
            found = session.scalar(
                select(SchemaChange).where(SchemaChange.entry_id == dataset, SchemaChange.schema_sha256 == digest)
            )
            assert found is not None
            row = found
        else:
            opened = True
    elif row.version is not None or row.from_version != previous_version:
        # The same schema again after it was published (and changed since), or against another
        # version than the one it was decided for: a new request, decided anew.
        _open(row, diff, previous_version)
        opened = True
    if opened:
        session.flush()
        audit.append(
            session,
            actor="govdata",
            action="catalog.schema_change_request",
            subject=f"catalog_entry:{dataset}",
            detail={"schema_change": row.id, "from_version": previous_version, "changes": diff.breaking},
        )
    record = _record(row, diff, previous_version)
    if row.status == "approved":
        return Review("approved", diff, record)
    what = diff.summary(only_breaking=True)
    if row.status == "rejected":
        return Review(
            "rejected",
            diff,
            record,
            reason=f"breaking schema change against v{previous_version} was rejected by {row.decided_by} "
            f"({row.opinion}): {what}",
            hint="restore the published columns in the spec, or ask the city admin to reconsider: " + _command(dataset),
        )
    return Review(
        "pending",
        diff,
        record,
        reason=f"breaking schema change against v{previous_version} needs approval: {what}; "
        f"approve it with `{_command(dataset)}`",
        hint=f"a city admin (市级管理员) approves or rejects it with `{_command(dataset)}` (or --reject); "
        "then run the same date again",
    )


def _open(row: SchemaChange, diff: SchemaDiff, previous_version: int) -> None:
    row.from_version = previous_version
    row.kind = diff.kind
    row.changes = diff.changes
    row.status = "pending"
    row.requested_at = dt.datetime.now(dt.UTC)
    row.decided_by = None
    row.decided_at = None
    row.opinion = None
    row.version = None


def pending(session: Session, dataset: str) -> SchemaChange | None:
    """The entry's schema change that has not been published yet (pending, approved or rejected), if any."""
    return session.scalar(
        select(SchemaChange)
        .where(SchemaChange.entry_id == dataset, SchemaChange.version.is_(None))
        .order_by(SchemaChange.id.desc())
        .limit(1)
    )


def decide(session: Session, dataset: str, *, approve: bool, actor: str, opinion: str | None) -> SchemaChange:
    """A city admin approves or rejects the entry's schema change waiting to be published."""
    from catalog import lifecycle

    user = lifecycle.acting_user(session, actor)
    entry = lifecycle.visible_entry(session, dataset, user)
    verb = "approve" if approve else "reject"
    row = pending(session, dataset)
    if user.role != Role.CITY_ADMIN.value:
        raise lifecycle.LifecycleError(
            f"user {user.id!r} ({lifecycle.role_text(user.role)}) may not {verb} a schema change of catalog entry "
            f"{entry.id!r}: breaking schema changes are decided by the city admin (市级管理员 city_admin)",
            hint="the subscribers it affects are in other departments; ask a city admin to review it",
            entry=entry.id,
            status=entry.status,
            role=user.role,
            action=f"schema_change.{verb}",
        )
    if row is None:
        raise lifecycle.LifecycleError(
            f"catalog entry {entry.id!r} ({Status(entry.status).label} {entry.status}) has no schema change "
            "waiting for a decision",
            hint="a run that finds a breaking schema change holds and records it; "
            f"`govdata catalog show {entry.id}` shows the versions and their changes",
            entry=entry.id,
            status=entry.status,
            role=user.role,
            action=f"schema_change.{verb}",
        )
    target = "approved" if approve else "rejected"
    if row.status == target:
        raise lifecycle.LifecycleError(
            f"the schema change of catalog entry {entry.id!r} is {target} already (by {row.decided_by})",
            hint="run the dataset again to publish it" if approve else "nothing to do",
            entry=entry.id,
            status=entry.status,
            role=user.role,
            action=f"schema_change.{verb}",
        )
    text = lifecycle.clean_opinion(opinion)
    if text is None:
        raise lifecycle.LifecycleError(
            f"deciding the schema change of catalog entry {entry.id!r} needs an opinion (审核意见): "
            "its subscribers read it",
            hint="give --opinion TEXT",
            entry=entry.id,
            status=entry.status,
            role=user.role,
            action=f"schema_change.{verb}",
        )
    row.status = target
    row.decided_by = user.id
    row.decided_at = dt.datetime.now(dt.UTC)
    row.opinion = text
    session.flush()
    audit.append(
        session,
        actor=user.id,
        action=f"catalog.schema_change_{verb}",
        subject=f"catalog_entry:{entry.id}",
        detail={
            "schema_change": row.id,
            "from_version": row.from_version,
            "role": user.role,
            "opinion": text,
            "changes": [c for c in row.changes if c.get("breaking")],
        },
    )
    return row


def mark_published(session: Session, dataset: str, record: Mapping[str, Any] | None, number: int) -> None:
    """In the transaction that records version ``number``: tie its schema change to it and log it."""
    if not record:
        return
    change_id = record.get("id")
    if change_id is not None:
        row = session.get(SchemaChange, change_id)
        if row is not None:
            row.version = number
    audit.append(
        session,
        actor="govdata",
        action="catalog.schema_change_publish",
        subject=f"catalog_entry:{dataset}",
        detail={
            "schema_change": change_id,
            "version": number,
            "kind": record.get("kind"),
            "from_version": record.get("from_version"),
            "approval": record.get("approval"),
        },
    )
