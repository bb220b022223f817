"""Reference checks (040200 关联数据一致性): in-set expectations whose values come from another published dataset.

A suite names the reference on an ``expect_column_values_to_be_in_set`` entry, without a
``value_set``::

    {"type": "expect_column_values_to_be_in_set",
     "kwargs": {"column": "district_code"},
     "meta": {"govdata": {"reference": {"dataset": "district_dictionary", "column": "code"}}}}

When the quality step runs, :func:`resolve` reads the distinct non-null values of that column
from the reference dataset's current published version (catalog + exchange store) and writes a
resolved copy of the suite, with ``value_set`` filled in and the version used recorded in the
entry's ``meta.govdata_reference``, into the run's reports folder; the gate validates that copy.
Failing rows are quarantined like any row-level failure (``on_failure: block`` makes the check
hold the dataset instead). The check counts toward 040200 unless the entry says otherwise.

Errors: a reference dataset missing from the catalog (the nearest id is suggested) or without a
published version, a column it does not publish, a column marked sensitive (its values would be
copied into the suite and the validation record), column types that cannot be compared (codes
are strings or integers), and a column with more than :data:`MAX_VALUES` distinct values (a
reference check is for dictionaries, not for joining two large tables).
"""

from __future__ import annotations

import copy
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import SpecError, TerminalError
from pipelines.scorecard import indicator_of
from pipelines.suites import govdata_meta

if TYPE_CHECKING:
    from pipelines.spec import DatasetSpec

RESOLVED_SUITE_FILE = "suite.resolved.json"
MAX_VALUES = 100_000
#: Column types a reference check compares (the reference's logical type, the checked column's).
CODE_TYPES = ("string", "text", "integer")


@dataclass(frozen=True)
class Resolution:
    """The suite the gate should validate, and the reference versions it was resolved against."""

    suite_path: Path
    references: list[dict[str, Any]] = field(default_factory=list)


def has_references(suite: dict[str, Any]) -> bool:
    return any("reference" in govdata_meta(e) for e in suite["expectations"])


def _values(data: Path, column: str, where: str) -> list[Any]:
    from pipelines.sql import connect, ident, path_lit

    con = connect()
    try:
        rows = con.execute(
            f"SELECT DISTINCT {ident(column)} FROM read_parquet({path_lit(data)}) "
            f"WHERE {ident(column)} IS NOT NULL ORDER BY 1 LIMIT {MAX_VALUES + 1}"
        ).fetchall()
    finally:
        con.close()
    if len(rows) > MAX_VALUES:
        raise SpecError(
            f"{where}: the reference column has more than {MAX_VALUES} distinct values",
            hint="a reference check compares with a dictionary; check large joins in the source system",
        )
    return [r[0] for r in rows]


def _convert(values: list[Any], own_type: str) -> list[Any]:
    """The reference values as the checked column holds them (strings or integers)."""
    if own_type == "integer":
        out: list[Any] = []
        for v in values:
            text = str(v).strip()
            if text.lstrip("-").isdigit():  # a non-numeric code can never equal an integer value
                out.append(int(text))
        return sorted(set(out))
    return sorted({str(v) for v in values})


def resolve(
    suite_path: Path, suite: dict[str, Any], *, spec: DatasetSpec, store: Any, exchange: Any, target_dir: Path
) -> Resolution:
    """Fill in every reference's values from the published reference version; write the resolved suite.

    Returns the original path when the suite has no reference.
    """
    if not has_references(suite):
        return Resolution(Path(suite_path))
    resolved = copy.deepcopy(suite)
    records: list[dict[str, Any]] = []
    own_types = {c.name: c.type for c in spec.columns}
    for index, entry in enumerate(resolved["expectations"]):
        block = govdata_meta(entry)
        ref = block.get("reference")
        if not isinstance(ref, dict):
            continue
        where = f"{suite_path}: expectations[{index}] ({entry['type']})"
        dataset, column = str(ref["dataset"]), str(ref["column"])
        latest = store.latest_version(dataset)
        if latest is None:
            if store.entry(dataset) is None:
                known = [e.id for e in store.entries()]
                near = difflib.get_close_matches(dataset, known, n=1)
                raise SpecError(
                    f"{where}: reference dataset {dataset!r} is not in the catalog",
                    hint=(f"did you mean {near[0]!r}? " if near else "")
                    + "publish the reference dataset first (`govdata run` its spec), then run this one",
                )
            raise TerminalError(
                f"{where}: reference dataset {dataset!r} has no published version yet",
                hint="run the reference dataset until it publishes, then run this one again",
            )
        published = {str(c.get("name")): c for c in (latest.schema or [])}
        ref_column = published.get(column)
        if ref_column is None:
            near = difflib.get_close_matches(column, list(published), n=1)
            raise SpecError(
                f"{where}: reference dataset {dataset!r} v{latest.number} has no column {column!r}"
                + (f" (did you mean {near[0]!r}?)" if near else ""),
                hint=f"its columns: {', '.join(published)}",
            )
        if ref_column.get("sensitive"):
            raise SpecError(
                f"{where}: column {column!r} of {dataset!r} is marked sensitive; its values would be copied into "
                "the suite and the validation record",
                hint="reference a non-sensitive dictionary column (codes, not personal data)",
            )
        own_column = (entry.get("kwargs") or {}).get("column")
        own_type = own_types.get(str(own_column), "string")
        ref_type = str(ref_column.get("type") or "string")
        if own_type not in CODE_TYPES or ref_type not in CODE_TYPES:
            raise SpecError(
                f"{where}: cannot compare {own_column!r} ({own_type}) with {dataset}.{column} ({ref_type})",
                hint="reference checks compare code columns: " + ", ".join(CODE_TYPES),
            )
        stored = exchange.read(dataset, latest.number)
        if stored is None or not stored.data_path.is_file():
            raise TerminalError(
                f"{where}: reference dataset {dataset!r} v{latest.number} is in the catalog but its files are "
                f"missing from the exchange store ({latest.location})",
                hint="restore the exchange store or publish the reference dataset again",
            )
        values = _convert(_values(stored.data_path, column, where), own_type)
        record = {
            "index": index,
            "dataset": dataset,
            "column": column,
            "version": latest.number,
            "run_id": latest.run_id,
            "content_sha256": latest.content_sha256,
            "values": len(values),
        }
        records.append(record)
        tag = indicator_of(entry)  # 040200 unless the suite tags it otherwise
        kept = {k: v for k, v in block.items() if k not in ("reference", "dimension")}
        entry["kwargs"] = {**(entry.get("kwargs") or {}), "value_set": values}
        entry["meta"] = {
            **(entry.get("meta") or {}),
            "govdata": {**kept, "indicator": tag},
            "govdata_reference": record,
        }
    resolved.setdefault("meta", {})
    resolved["meta"] = {**(resolved.get("meta") or {}), "govdata_resolved_from": str(suite_path)}
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / RESOLVED_SUITE_FILE
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(resolved, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(target)
    return Resolution(target, records)
