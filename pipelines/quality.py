"""Turning the gate's outcomes into the quality summary: pass rates and dimension scores.

Each expectation counts toward one data-quality dimension (GB/T 36344-2018, with the DAMA name
beside it). A suite may set ``meta.dimension`` on an expectation to override the default.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

#: dimension key -> (Chinese name, DAMA name)
DIMENSIONS: dict[str, tuple[str, str]] = {
    "conformity": ("规范性", "validity"),
    "completeness": ("完整性", "completeness"),
    "accuracy": ("准确性", "accuracy"),
    "consistency": ("一致性", "consistency"),
    "timeliness": ("时效性", "timeliness"),
}

_DEFAULT_DIMENSION = {
    "expect_column_values_to_not_be_null": "completeness",
    "expect_column_to_exist": "conformity",
    "expect_table_columns_to_match_set": "conformity",
    "expect_table_columns_to_match_ordered_list": "conformity",
    "expect_table_row_count_to_be_between": "completeness",
    "expect_column_values_to_be_unique": "accuracy",
    "expect_compound_columns_to_be_unique": "accuracy",
    "expect_column_values_to_be_in_set": "accuracy",
    "expect_column_values_to_be_between": "accuracy",
    "expect_column_values_to_be_valid_cn_resident_id": "accuracy",
    "expect_column_values_to_be_valid_uscc": "accuracy",
}


def dimension_of(expectation_type: str, meta: dict[str, Any] | None = None) -> str:
    chosen = (meta or {}).get("dimension")
    if isinstance(chosen, str) and chosen in DIMENSIONS:
        return chosen
    return _DEFAULT_DIMENSION.get(expectation_type, "conformity")


def pass_rate(element_count: int, unexpected_count: int, success: bool, row_level: bool) -> float:
    """X = A/B for a row-level expectation; 1 or 0 for a dataset-level one."""
    if not row_level or element_count <= 0:
        return 1.0 if success else 0.0
    return max(0.0, 1.0 - unexpected_count / element_count)


def summarise(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """Scores per dimension and overall (the mean of the dimensions evaluated), in [0, 1]."""
    by_dim: dict[str, list[float]] = defaultdict(list)  # dimension -> pass rates
    for o in outcomes:
        by_dim[o["dimension"]].append(o["pass_rate"])
    scores = {key: round(sum(v) / len(v), 6) for key, v in by_dim.items()}
    dims = {
        key: {"name": DIMENSIONS[key][0], "dama": DIMENSIONS[key][1], "score": scores[key], "checks": len(by_dim[key])}
        for key in by_dim
    }
    overall = round(sum(scores.values()) / len(scores), 6) if scores else 1.0
    return {"score": overall, "dimensions": dims}
