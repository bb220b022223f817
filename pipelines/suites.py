"""Load and check a suite JSON file (GX 1.x ExpectationSuite shape) without importing GX.

A suite is ``expectations/<dataset>.json``::

    {"name": "...", "expectations": [{"type": "...", "kwargs": {...}, "meta": {...}}], "meta": {...}}

Every problem raises :class:`pipelines.errors.SpecError` naming the file (and line and column
for bad JSON, the expectation index otherwise) with a hint; unknown names get the nearest
valid one suggested. The gate builds GX objects from the checked dict.

It lives in ``pipelines`` (not ``expectations``, whose import registers the custom expectations
with GX, ~10 s) and imports only the standard library and :mod:`pipelines.errors`, so
``govdata validate`` stays fast; ``tests/expectations/test_gate.py`` checks GX stays unimported.
The type tables below mirror GX 1.24.1's registry; ``tests/expectations/test_engine_pin.py``
compares them with GX's, so an upgrade that changes them fails.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pipelines.errors import SpecError

#: The expectation types GX 1.24.1 registers (``list_registered_expectation_implementations``).
GX_CORE_TYPES: frozenset[str] = frozenset(
    {
        "expect_column_distinct_values_to_be_in_set",
        "expect_column_distinct_values_to_contain_set",
        "expect_column_distinct_values_to_equal_set",
        "expect_column_kl_divergence_to_be_less_than",
        "expect_column_max_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_median_to_be_between",
        "expect_column_min_to_be_between",
        "expect_column_most_common_value_to_be_in_set",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_to_be_in_set",
        "expect_column_proportion_of_non_null_values_to_be_between",
        "expect_column_proportion_of_unique_values_to_be_between",
        "expect_column_quantile_values_to_be_between",
        "expect_column_stdev_to_be_between",
        "expect_column_sum_to_be_between",
        "expect_column_to_exist",
        "expect_column_type_to_be",
        "expect_column_unique_value_count_to_be_between",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_value_z_scores_to_be_less_than",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_dateutil_parseable",
        "expect_column_values_to_be_decreasing",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_be_increasing",
        "expect_column_values_to_be_json_parseable",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_match_json_schema",
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_match_like_pattern_list",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_match_regex_list",
        "expect_column_values_to_match_strftime_format",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_not_be_outliers",
        "expect_column_values_to_not_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern_list",
        "expect_column_values_to_not_match_regex",
        "expect_column_values_to_not_match_regex_list",
        "expect_compound_columns_to_be_unique",
        "expect_multicolumn_sum_to_equal",
        "expect_multicolumn_values_to_be_equal",
        "expect_query_results_to_match_comparison",
        "expect_select_column_values_to_be_unique_within_record",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_table_row_count_to_equal_other_table",
        "unexpected_rows_expectation",
    }
)

#: The govdata custom expectations (``expectations.custom``).
CUSTOM_TYPES: frozenset[str] = frozenset(
    {
        "expect_column_values_to_be_valid_cn_resident_id",
        "expect_column_values_to_be_valid_uscc",
        "expect_column_values_to_be_valid_cn_org_code",
        "expect_column_values_to_be_valid_cn_admin_division",
        "expect_column_values_to_be_valid_cn_mobile",
        "expect_cn_resident_id_to_match_birth_date_and_sex",
    }
)

KNOWN_TYPES: frozenset[str] = GX_CORE_TYPES | CUSTOM_TYPES

#: Map expectations (GX ColumnMap / ColumnPairMap / MulticolumnMap): they judge each row.
MAP_TYPES: frozenset[str] = frozenset(
    {t for t in KNOWN_TYPES if t.startswith(("expect_column_values_", "expect_column_value_"))}
    | {
        "expect_cn_resident_id_to_match_birth_date_and_sex",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_to_be_in_set",
        "expect_compound_columns_to_be_unique",
        "expect_multicolumn_sum_to_equal",
        "expect_multicolumn_values_to_be_equal",
        "expect_select_column_values_to_be_unique_within_record",
    }
)

#: Map expectations that are dataset-level by default: a duplicate is a property of the set.
UNIQUENESS_TYPES: frozenset[str] = frozenset(
    {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}
)

#: Map expectations whose failing rows GX 1.24.1 cannot list correctly (its index query for
#: compound uniqueness cross-joins the table and keeps a bind parameter): never quarantine.
NO_ROW_LIST_TYPES: frozenset[str] = frozenset({"expect_compound_columns_to_be_unique"})

#: Expectations about the dataset's schema: validated against the columns without the row key.
SCHEMA_TYPES: frozenset[str] = frozenset(
    {
        "expect_column_to_exist",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
    }
)

#: Types the gate is tested with on DuckDB (others run, with a warning in the log).
TESTED_TYPES: frozenset[str] = CUSTOM_TYPES | frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_select_column_values_to_be_unique_within_record",
        "expect_table_row_count_to_be_between",
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_column_to_exist",
    }
)

#: kwargs that name one column / a list of columns of the data.
COLUMN_KWARGS = ("column", "column_A", "column_B", "birth_date_column", "sex_column")
COLUMN_LIST_KWARGS = ("column_list",)

SUITE_KEYS = ("name", "id", "expectations", "suite_parameters", "meta", "notes")
EXPECTATION_KEYS = (
    "type",
    "kwargs",
    "meta",
    "notes",
    "description",
    "severity",
    "id",
    "rendered_content",
    "expectation_context",
    "success_on_last_run",
)
#: ``meta.govdata`` keys; dimension, indicator and reference are checked by :mod:`pipelines.scorecard`.
GOVDATA_META_KEYS = ("on_failure", "name", "dimension", "indicator", "reference")
ON_FAILURE = ("quarantine", "block")

_HINT = "fix the suite JSON; the GX expectation gallery lists each type's kwargs"


def _nearest(name: str, candidates: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _where(path: Path, index: int, entry: dict[str, Any]) -> str:
    kind = entry.get("type")
    return f"{path}: expectations[{index}]" + (f" ({kind})" if isinstance(kind, str) else "")


def _unknown_keys(data: dict[str, Any], allowed: Sequence[str]) -> list[str]:
    return [f"unknown key {k!r}{_nearest(k, allowed)}" for k in data if k not in allowed]


def govdata_meta(entry: dict[str, Any]) -> dict[str, Any]:
    """The ``meta.govdata`` block of a (checked) suite entry, ``{}`` when absent."""
    meta = entry.get("meta") or {}
    block = meta.get("govdata") if isinstance(meta, dict) else None
    return block if isinstance(block, dict) else {}


def is_row_level(entry: dict[str, Any]) -> bool:
    """Whether failing rows of this (checked) suite entry are quarantined rather than blocking."""
    on_failure = govdata_meta(entry).get("on_failure")
    if on_failure is not None:
        return bool(on_failure == "quarantine")
    kind = entry["type"]
    return kind in MAP_TYPES and kind not in UNIQUENESS_TYPES


def _check_entry(path: Path, index: int, entry: object) -> None:
    if not isinstance(entry, dict):
        raise SpecError(
            f"{path}: expectations[{index}] is a {type(entry).__name__}, expected an object with type and kwargs",
            hint=_HINT,
        )
    where = _where(path, index, entry)
    problems = _unknown_keys(entry, EXPECTATION_KEYS)
    if "expectation_type" in entry:
        problems = [p for p in problems if "'expectation_type'" not in p]
        problems.append("'expectation_type' is the GX 0.x key; GX 1.x calls it 'type'")
    if problems:
        raise SpecError(f"{where}: " + "; ".join(problems), hint=_HINT)
    kind = entry.get("type")
    if not isinstance(kind, str) or not kind:
        raise SpecError(f"{where}: 'type' is missing or not a string", hint=_HINT)
    if kind not in KNOWN_TYPES:
        raise SpecError(
            f"{where}: unknown expectation type {kind!r}{_nearest(kind, KNOWN_TYPES)}",
            hint="use a GX 1.24 core expectation or a govdata one (expectations/custom.py)",
        )
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise SpecError(f"{where}: 'kwargs' must be an object", hint=_HINT)
    meta = entry.get("meta", {})
    if meta is not None and not isinstance(meta, dict):
        raise SpecError(f"{where}: 'meta' must be an object", hint=_HINT)
    block = (meta or {}).get("govdata", {})
    if not isinstance(block, dict):
        raise SpecError(f"{where}: meta.govdata must be an object", hint='e.g. {"on_failure": "block"}')
    problems = _unknown_keys(block, GOVDATA_META_KEYS)
    if problems:
        raise SpecError(
            f"{where}: meta.govdata: " + "; ".join(problems), hint=f"valid keys: {', '.join(GOVDATA_META_KEYS)}"
        )
    on_failure = block.get("on_failure")
    if on_failure is not None and on_failure not in ON_FAILURE:
        raise SpecError(
            f"{where}: meta.govdata.on_failure is {on_failure!r}{_nearest(str(on_failure), ON_FAILURE)}",
            hint="use 'quarantine' (failing rows are set aside) or 'block' (a failure holds the dataset)",
        )
    if on_failure == "quarantine" and kind not in MAP_TYPES:
        raise SpecError(
            f"{where}: on_failure 'quarantine' needs a row-level (column map) expectation; {kind} judges the "
            "whole dataset",
            hint="remove meta.govdata.on_failure (the failure blocks publishing)",
        )
    if on_failure == "quarantine" and kind in NO_ROW_LIST_TYPES:
        raise SpecError(
            f"{where}: on_failure 'quarantine' is not supported for {kind}: GX 1.24 cannot list its failing rows",
            hint="leave it dataset-level, or quarantine duplicates in the cleanse step (dedupe)",
        )
    name = block.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise SpecError(f"{where}: meta.govdata.name must be a non-empty string", hint="a short quarantine reason")
    from pipelines.scorecard import check_tags  # imports this module: not at the top

    check_tags(path, index, entry)


def load_suite(path: str | Path) -> dict[str, Any]:
    """Read and check a suite JSON file; return it as a dict. Does not import GX."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(
            f"{path}: suite file not found",
            hint="create expectations/<dataset>.json or set quality.suite in the dataset spec",
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})", hint="save the suite as UTF-8"
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}",
            hint="fix the JSON syntax at that line and column",
        ) from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a suite must be a JSON object with name and expectations", hint=_HINT)
    problems = _unknown_keys(data, SUITE_KEYS)
    if problems:
        raise SpecError(f"{path}: " + "; ".join(problems), hint=f"valid top-level keys: {', '.join(SUITE_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"{path}: 'name' is missing or empty", hint='add "name": "<dataset id>"')
    expectations = data.get("expectations")
    if not isinstance(expectations, list):
        raise SpecError(f"{path}: 'expectations' must be a list", hint=_HINT)
    for index, entry in enumerate(expectations):
        _check_entry(path, index, entry)
    return data


def referenced_columns(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """(kwarg, column) pairs naming columns of the data in a suite entry.

    Table expectations (``expect_table_*``) describe the schema rather than read columns: their
    ``column_list`` is the expected schema, not a reference.
    """
    if str(entry.get("type", "")).startswith("expect_table_"):
        return []
    kwargs = entry.get("kwargs") or {}
    found: list[tuple[str, str]] = []
    for key in COLUMN_KWARGS:
        if isinstance(kwargs.get(key), str):
            found.append((key, kwargs[key]))
    for key in COLUMN_LIST_KWARGS:
        values = kwargs.get(key)
        if isinstance(values, list):
            found.extend((key, v) for v in values if isinstance(v, str))
    return found


def check_columns(path: Path, suite: dict[str, Any], columns: Sequence[str]) -> None:
    """Raise SpecError when an expectation names a column the data does not have.

    ``expect_column_to_exist`` is exempt: a missing column is what it reports (as a failure).
    """
    known = set(columns)
    for index, entry in enumerate(suite["expectations"]):
        if entry["type"] == "expect_column_to_exist":
            continue
        for key, column in referenced_columns(entry):
            if column not in known:
                raise SpecError(
                    f"{_where(path, index, entry)}: kwargs.{key} names column {column!r}, which is not in the "
                    f"staged data{_nearest(column, known)}",
                    hint=f"the data has: {', '.join(columns)}",
                )


def check_suite(path: str | Path, columns: Sequence[str]) -> None:
    """Load the suite at ``path`` and check it against the dataset's ``columns``. Does not import GX."""
    path = Path(path)
    check_columns(path, load_suite(path), columns)
