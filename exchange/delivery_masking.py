"""Mask one published version for one grant: only the granted items, each by the grant's rule.

The rules themselves live in :mod:`pipelines.masking`; this module chooses one per delivered
column, refuses choices that would break keys, and writes the masked copy in one DuckDB query
(no Python per row).

Rule per granted item (``rules``): a :class:`~pipelines.masking.MaskRule` value, ``None`` for the
value in clear, or absent for the default: :func:`pipelines.masking.rule_for` for a sensitive
column, clear for any other. Items not granted are not delivered at all.

Keys (DOMAIN.md, "Masking"): identifiers used as keys (primary-key columns, and the columns the
grant names as ``join_keys``) are never masked into collisions. A key is delivered in clear or
hashed (keyed HMAC: equal values give equal hashes); any other rule on a key is refused, and a
sensitive key without an explicit rule is hashed. After hashing, each key's number of distinct
values is compared with the source's: any difference (two values sharing a hash, or equal values
whose text differs, such as ``0.0`` and ``-0.0``) is an error and nothing is written.
"""

from __future__ import annotations

import difflib
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import duckdb

from pipelines.errors import SchemaDriftError, SourceError, SpecError, TerminalError
from pipelines.files import sha256_file
from pipelines.masking import MaskRule, mask_sql, rule_for
from pipelines.spec import Column, ColumnType
from pipelines.sql import connect, copy_to_parquet, ident, path_lit

log = logging.getLogger(__name__)

_RULES = ", ".join(r.value for r in MaskRule)
#: Long hex runs in a DuckDB error may be the hash rule's key pads (the SQL embeds them).
_HEX_RUN = re.compile(r"[0-9a-fA-F]{32,}")


@dataclass(frozen=True)
class MaskReport:
    """What one masked delivery file holds."""

    target: Path
    rows: int
    columns: tuple[str, ...]
    #: Rule per delivered column; ``None`` means delivered in clear.
    rules: Mapping[str, str | None] = field(default_factory=dict)
    #: Columns treated as keys (primary key or join key) among the delivered ones.
    keys: tuple[str, ...] = ()
    sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "rows": self.rows,
            "columns": list(self.columns),
            "rules": dict(self.rules),
            "keys": list(self.keys),
            "sha256": self.sha256,
        }


def _nearest(name: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1, cutoff=0.0)
    return f"did you mean {match[0]!r}? " if match else ""


def _default_rule(col: Mapping[str, Any]) -> MaskRule:
    # model_construct: a published column name need not match the spec's snake_case pattern here,
    # and only name, title, type and a declared masking choice matter to rule_for.
    column = Column.model_construct(
        name=str(col["name"]),
        title=str(col.get("title") or ""),
        type=cast(ColumnType, str(col.get("type") or "string")),
        sensitive=True,
        masking=col.get("masking"),
    )
    return rule_for(column)


def _parse_rule(item: str, value: object) -> MaskRule | None:
    if value is None:
        return None
    try:
        return MaskRule(str(value))
    except ValueError:
        raise SpecError(
            f"grant: unknown masking rule {value!r} for data item {item!r}",
            hint=f"use one of: {_RULES}, or null to deliver the item in clear",
        ) from None


def plan_rules(
    columns: Sequence[Mapping[str, Any]],
    items: Sequence[str],
    rules: Mapping[str, str | None],
    *,
    join_keys: Sequence[str] = (),
) -> tuple[list[str], dict[str, MaskRule | None], list[str]]:
    """The delivered columns (schema order), the rule of each (``None`` = clear) and the keys.

    Checks everything that does not need the data: unknown items, rules for items not granted,
    unknown rules, and rules other than clear or ``hash`` on a key.
    """
    names = [str(c["name"]) for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(
            f"version schema: column(s) listed twice: {', '.join(map(repr, dupes))}",
            hint="republish the version with one entry per column in its manifest's schema",
        )
    if not items:
        raise SpecError("grant: no data items granted, so there is nothing to deliver", hint="grant at least one item")
    for item in [*items, *rules, *join_keys]:
        if item not in names:
            raise SpecError(
                f"grant: data item {item!r} does not exist in this version",
                hint=f"{_nearest(item, names)}the version's items are: {', '.join(names)}",
            )
    granted = set(items)
    for item in rules:
        if item not in granted:
            raise SpecError(
                f"grant: a masking rule is given for {item!r}, which the grant does not include",
                hint=f"add {item!r} to the granted items, or remove its rule",
            )
    for item in join_keys:
        if item not in granted:
            raise SpecError(
                f"grant: join key {item!r} is not among the granted items",
                hint=f"add {item!r} to the granted items, or remove it from the join keys",
            )
    by_name = {str(c["name"]): c for c in columns}
    delivered = [n for n in names if n in granted]
    keys = [n for n in delivered if by_name[n].get("primary_key") or n in join_keys]
    plan: dict[str, MaskRule | None] = {}
    for name in delivered:
        col = by_name[name]
        if name in rules:
            rule = _parse_rule(name, rules[name])
        elif name in keys:
            rule = MaskRule.HASH if col.get("sensitive") else None
        else:
            rule = _default_rule(col) if col.get("sensitive") else None
        if name in keys and rule not in (None, MaskRule.HASH):
            kind = "primary-key" if col.get("primary_key") else "join-key"
            raise SpecError(
                f"grant: {kind} column {name!r} cannot be masked with rule {rule}: "
                "a masked key collides (different values become equal)",
                hint=f"deliver {name!r} in clear (rule null) or hashed (rule 'hash', keyed by GOVDATA_MASKING_KEY)",
            )
        plan[name] = rule
    return delivered, plan, keys


def _expr(name: str, rule: MaskRule | None, key: str | None) -> str:
    return ident(name) if rule is None else mask_sql(ident(name), rule, key=key)


def _duck_error(source: Path, exc: duckdb.Error) -> TerminalError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return TerminalError(
        f"{source}: masking for delivery failed: {_HEX_RUN.sub('…', first)}",
        hint="check that the file is the version's Parquet data and matches its manifest's schema",
    )


def mask_for_grant(
    source_parquet: Path,
    target_parquet: Path,
    *,
    columns: list[dict[str, Any]],
    items: list[str],
    rules: Mapping[str, str | None],
    key: str | None,
    join_keys: Sequence[str] = (),
) -> MaskReport:
    """Write ``target_parquet``: the granted ``items`` of ``source_parquet``, masked per ``rules``.

    ``columns`` is the version's schema (name, title, type, primary_key, sensitive), ``key`` the
    ``hash`` rule's key (``None``: ``$GOVDATA_MASKING_KEY``). The target is replaced atomically;
    on any error nothing is written and no temporary file is left.
    """
    source = Path(source_parquet)
    target = Path(target_parquet)
    delivered, plan, keys = plan_rules(columns, items, rules, join_keys=join_keys)
    if not source.is_file():
        raise SourceError(f"{source}: the version's data file does not exist", hint="check the version's location")
    if target.resolve() == source.resolve():
        raise TerminalError(
            f"{target}: the masked delivery would overwrite the version's own data",
            hint="write the delivery to a different file",
        )
    select = ", ".join(f"{_expr(n, plan[n], key)} AS {ident(n)}" for n in delivered)
    src = f"read_parquet({path_lit(source)})"
    hashed = [n for n in keys if plan[n] is MaskRule.HASH]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.incoming")
    con = connect()
    try:
        try:
            present = {str(r[0]) for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
            missing = [n for n in delivered if n not in present]
            if missing:
                raise SchemaDriftError(
                    f"{source}: granted column(s) missing from the data file: {', '.join(map(repr, missing))}",
                    hint="the file does not match the version's schema; republish the version",
                )
            copy_to_parquet(con, f"SELECT {select} FROM {src}", tmp)
            stats = ", ".join(["count(*)", *(f"count(DISTINCT {ident(n)})" for n in hashed)])
            before = con.execute(f"SELECT {stats} FROM {src}").fetchone() or ()
            after = con.execute(f"SELECT {stats} FROM read_parquet({path_lit(tmp)})").fetchone() or ()
        except duckdb.Error as exc:
            raise _duck_error(source, exc) from None
        if before[0] != after[0]:
            raise TerminalError(
                f"{source}: the masked delivery has {after[0]} rows, the version {before[0]}",
                hint="report this as a bug; nothing was delivered",
            )
        for name, b, a in zip(hashed, before[1:], after[1:], strict=True):
            if a != b:
                raise TerminalError(
                    f"{source}: hashing key column {name!r} changed its number of distinct values "
                    f"from {b} to {a}, so keys would no longer match one to one",
                    hint=f"deliver {name!r} in clear, or cast it to a type whose text form is unique "
                    "(e.g. normalise -0.0 to 0.0) before publishing",
                )
        digest = sha256_file(tmp)
        tmp.replace(target)
    finally:
        con.close()
        for leftover in (tmp, tmp.with_name(tmp.name + ".tmp")):
            leftover.unlink(missing_ok=True)
    report = MaskReport(
        target=target,
        rows=int(after[0]),
        columns=tuple(delivered),
        rules={n: (r.value if r is not None else None) for n, r in plan.items()},
        keys=tuple(keys),
        sha256=digest,
    )
    log.info(
        "masked delivery %s: %d rows, %d columns (%d masked)",
        target,
        report.rows,
        len(report.columns),
        sum(r is not None for r in plan.values()),
    )
    return report
