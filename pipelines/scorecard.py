"""The quality scorecard of a run (GB/T 36344-2018 dimensions, DB31/T 1523-2024 indicators) and its trend.

Tagging
-------
Every expectation of a suite counts toward one indicator (指标), and through it one dimension
(维度). The default comes from the expectation type (:data:`DEFAULT_INDICATOR`); a suite entry
overrides it in ``meta.govdata``::

    "meta": {"govdata": {"indicator": "030100"}}        # an indicator code (a string: "030100")
    "meta": {"govdata": {"dimension": "accuracy"}}      # a dimension: its main indicator
    "meta": {"govdata": {"dimension": "准确性", "indicator": "030600"}}   # both must agree

A dimension is named by its key (``conformity``), its Chinese name (``规范性``) or its DAMA name
(``validity``). An expectation with a ``meta.govdata.reference`` (see :mod:`pipelines.references`)
defaults to 040200 关联数据一致性. Unknown codes or names, a number instead of a code string,
a dimension that does not hold the indicator, or a type without a default are errors naming
the suite file, the expectation index and the nearest valid value (:func:`check_tags`, called
when a suite is loaded).

What A and B are (X = A/B, in [0, 1], higher is better)
------------------------------------------------------
- A value-level (map) expectation: B = the values it judged (rows minus the nulls it skips;
  ``expect_column_values_to_not_be_null`` judges every row), A = B minus its unexpected count.
- A table-level expectation (row count, schema, statistics) judges the table as a whole: all of
  its records meet the rule or none do, so B = the staged rows (at least 1) and A = B or 0. A
  failed table rule therefore pulls its indicator down as hard as the gate treats it.
- 020200 数据记录完整性 (computed): B = the staged records; A = the records in which no
  020100-tagged (element completeness) expectation failed, counted from the gate's failing-row
  file. A completeness failure whose rows the gate does not list (``on_failure: block``)
  counts its unexpected count as a lower bound (``"approximate": true``).
- 030300 重复率 (computed, X = 1 − A/B): A = the duplicate records the cleanse step removed by
  primary key; B = the records compared (landed, minus cast failures and filtered rows). Only
  for specs with a primary key. An expectation tagged 030300 counts its unexpected values as A.
- 030500 脏数据出现率 (computed, X = 1 − A/B): A = the records that could not be read (malformed
  at collection) or typed (a value not castable to its declared type); B = the records collected.
- 050200 时间点及时性 (computed): the data of a period is due by the end of the following period
  of the declared update cycle (更新周期): the period is the calendar day, ISO week (Monday
  first), month, quarter, half-year or year containing the logical date (实时: the hour, or the
  day when the run is keyed by a day), all in UTC like the run keys. B = 1, A = 1 when the data
  arrived (the collect step finished) by then. Not evaluated for 其他 (no declared period).
- 050300 时序性 (computed): B = 1, A = 1 unless this run's logical date is earlier than that of the
  latest published version (a late backfill would publish older data as the newest version).
- For 030300 and 030500 A counts the bad elements and X = 1 − A/B, as DB31/T 1523 defines them;
  for every other indicator A counts the good ones and X = A/B.

An indicator sums A and B over its sources; an indicator with B = 0 is not evaluated (``x``
null). A dimension's score is the mean of its evaluated indicators' X, the overall score the
mean of the evaluated dimensions' scores (equal weights). 010300, 010600, 040300, 050100, 050400
and 060x00 are evaluated only when a suite tags an expectation with them.

``scorecard.json`` (schema ``govdata.scorecard/1``)
---------------------------------------------------
Written to ``reports/<dataset>/<run>/scorecard.json`` by the quality step (for held runs too) and
stored in the catalog's ``scorecards`` table; the publish step fills in ``status`` and
``version``. Keys (new keys may be added; none are removed or change meaning within ``/1``)::

    schema          "govdata.scorecard/1"
    dataset         dataset id                   dataset_name   信息资源名称
    resource_code   信息资源代码                  department     {"name", "uscc"}
    run_id          run key                      logical_date   ISO date or date-time (UTC)
    computed_at     ISO date-time (UTC)          update_cycle   更新周期, e.g. "每日"
    gate            "passed" | "held"            (the quality gate's decision)
    status          "passed" | "held" | "published" | "unchanged"
    version         published version number, or null
    score           overall score in [0, 1], or null when nothing was evaluated
    method          {"indicator", "dimension", "overall"}: how the numbers are aggregated
    dimensions      list, in code order, of {"key", "code" ("01"…"06"), "name" (Chinese),
                    "dama", "score" (null: not evaluated), "indicators" (evaluated codes)}
    indicators      list, in code order, of every DB31/T 1523 indicator: {"code", "name",
                    "name_en", "dimension", "dama", "formula" ("A/B" | "1-A/B"), "a", "b", "x"
                    (null when not evaluated), "sources": [{"kind": "expectation", "index",
                    "name", "type", "column", "success", "a", "b"} | {"kind": "measure",
                    "measure", "a", "b", "basis", …}]}
    timeliness      {"update_cycle", "period_start", "period_end", "due", "arrived_at",
                    "on_time", "previous_logical_date", "in_order"} (null values when not
                    evaluated)
    rows            {"collected", "rejected_at_read", "cast_failed", "filtered",
                    "duplicates_removed", "staged", "quarantined", "accepted"}
    references      list of {"index", "dataset", "column", "version", "run_id", "values"}: the
                    published reference versions the run was checked against

A scorecard carries counts, codes, column names and expectation names, never a row value.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import GovdataError, SpecError
from pipelines.suites import KNOWN_TYPES, MAP_TYPES, govdata_meta

if TYPE_CHECKING:
    from pipelines.spec import DatasetSpec

SCHEMA = "govdata.scorecard/1"
SCORECARD_FILE = "scorecard.json"


@dataclass(frozen=True)
class Dimension:
    """A GB/T 36344-2018 data-quality dimension."""

    key: str
    code: str  # the first two digits of its indicators' codes
    name: str
    dama: str


@dataclass(frozen=True)
class Indicator:
    """A DB31/T 1523-2024 indicator."""

    code: str
    name: str
    name_en: str
    dama: str
    inverse: bool = False  # X = 1 − A/B, A counting the bad elements

    @property
    def dimension(self) -> str:
        return _DIMENSION_BY_CODE[self.code[:2]].key


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("conformity", "01", "规范性", "validity"),
    Dimension("completeness", "02", "完整性", "completeness"),
    Dimension("accuracy", "03", "准确性", "accuracy"),
    Dimension("consistency", "04", "一致性", "consistency"),
    Dimension("timeliness", "05", "时效性", "timeliness"),
    Dimension("accessibility", "06", "可访问性", "accessibility"),
)
_DIMENSION_BY_CODE = {d.code: d for d in DIMENSIONS}
DIMENSION_BY_KEY = {d.key: d for d in DIMENSIONS}

INDICATORS: dict[str, Indicator] = {
    i.code: i
    for i in (
        Indicator("010100", "数据标准", "data standard (type, format, length)", "validity"),
        Indicator("010200", "数据模型", "data model", "validity"),
        Indicator("010300", "元数据", "metadata", "validity"),
        Indicator("010400", "业务规则", "business rules", "validity"),
        Indicator("010500", "权威参考数据", "authoritative reference data", "validity"),
        Indicator("010600", "安全规范", "security rules", "validity"),
        Indicator("020100", "数据元素完整性", "data element completeness", "completeness"),
        Indicator("020200", "数据记录完整性", "data record completeness", "completeness"),
        Indicator("030100", "内容正确性", "content correctness", "accuracy"),
        Indicator("030200", "格式合规性", "format compliance", "accuracy"),
        Indicator("030300", "重复率", "duplication rate", "uniqueness", inverse=True),
        Indicator("030400", "唯一性", "uniqueness", "uniqueness"),
        Indicator("030500", "脏数据出现率", "dirty data rate", "accuracy", inverse=True),
        Indicator("030600", "标准参照准确性", "accuracy against reference standards", "accuracy"),
        Indicator("040100", "相同数据一致性", "same-data consistency", "consistency"),
        Indicator("040200", "关联数据一致性", "related-data consistency", "consistency"),
        Indicator("040300", "记录与元数据一致性", "record-metadata consistency", "consistency"),
        Indicator("050100", "时间段正确性", "time-period correctness", "timeliness"),
        Indicator("050200", "时间点及时性", "point-in-time timeliness", "timeliness"),
        Indicator("050300", "时序性", "time sequence", "timeliness"),
        Indicator("050400", "授权使用时效性", "authorised-use timeliness", "timeliness"),
        Indicator("060100", "可访问", "accessible", "accessibility"),
        Indicator("060200", "可用", "usable", "accessibility"),
    )
}

#: The indicator a dimension-only override (``meta.govdata.dimension``) counts toward.
DIMENSION_DEFAULT_INDICATOR = {
    "conformity": "010400",
    "completeness": "020100",
    "accuracy": "030100",
    "consistency": "040200",
    "timeliness": "050100",
    "accessibility": "060200",
}

#: Names a suite may use for a dimension: key, Chinese name, DAMA name.
DIMENSION_ALIASES: dict[str, str] = {
    **{d.key: d.key for d in DIMENSIONS},
    **{d.name: d.key for d in DIMENSIONS},
    "validity": "conformity",
    "uniqueness": "accuracy",
}


def _types(code: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, code)


#: The default indicator of every expectation type govdata knows (GX 1.24.1 core and govdata's own).
DEFAULT_INDICATOR: dict[str, str] = {
    **_types(
        "010100",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
        "expect_column_type_to_be",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
    ),
    **_types(
        "010200",
        "expect_column_to_exist",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
    ),
    **_types(
        "010400",
        "expect_column_values_to_be_null",
        "expect_column_values_to_not_be_in_set",
        "expect_select_column_values_to_be_unique_within_record",
        "unexpected_rows_expectation",
    ),
    **_types(
        "010500",
        "expect_column_values_to_be_in_set",
        "expect_column_distinct_values_to_be_in_set",
        "expect_column_distinct_values_to_contain_set",
        "expect_column_distinct_values_to_equal_set",
        "expect_column_values_to_be_valid_cn_admin_division",
    ),
    **_types(
        "020100", "expect_column_values_to_not_be_null", "expect_column_proportion_of_non_null_values_to_be_between"
    ),
    **_types(
        "020200",
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_table_row_count_to_equal_other_table",
    ),
    **_types(
        "030100",
        "expect_column_values_to_be_between",
        "expect_column_max_to_be_between",
        "expect_column_min_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_median_to_be_between",
        "expect_column_stdev_to_be_between",
        "expect_column_sum_to_be_between",
        "expect_column_quantile_values_to_be_between",
        "expect_column_kl_divergence_to_be_less_than",
        "expect_column_value_z_scores_to_be_less_than",
        "expect_column_values_to_not_be_outliers",
        "expect_column_most_common_value_to_be_in_set",
    ),
    **_types(
        "030200",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_match_regex_list",
        "expect_column_values_to_not_match_regex",
        "expect_column_values_to_not_match_regex_list",
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_match_like_pattern_list",
        "expect_column_values_to_not_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern_list",
        "expect_column_values_to_match_strftime_format",
        "expect_column_values_to_be_dateutil_parseable",
        "expect_column_values_to_be_json_parseable",
        "expect_column_values_to_match_json_schema",
        "expect_column_values_to_be_valid_cn_mobile",
    ),
    **_types(
        "030400",
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_column_proportion_of_unique_values_to_be_between",
        "expect_column_unique_value_count_to_be_between",
    ),
    **_types(
        "030600",
        "expect_column_values_to_be_valid_cn_resident_id",
        "expect_column_values_to_be_valid_uscc",
        "expect_column_values_to_be_valid_cn_org_code",
    ),
    **_types("040100", "expect_column_pair_values_to_be_equal", "expect_multicolumn_values_to_be_equal"),
    **_types(
        "040200",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_in_set",
        "expect_multicolumn_sum_to_equal",
        "expect_query_results_to_match_comparison",
        "expect_cn_resident_id_to_match_birth_date_and_sex",
    ),
    **_types("050300", "expect_column_values_to_be_increasing", "expect_column_values_to_be_decreasing"),
}

#: The indicator of a reference check (an ``expect_column_values_to_be_in_set`` with a reference).
REFERENCE_INDICATOR = "040200"

#: ``meta.govdata.reference`` keys (the reference dataset's id and column).
REFERENCE_KEYS = ("dataset", "column")
REFERENCE_TYPES = frozenset({"expect_column_values_to_be_in_set"})
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


# --- tagging -----------------------------------------------------------------------------------


def _where(path: Path, index: int, entry: Mapping[str, Any]) -> str:
    return f"{path}: expectations[{index}] ({entry.get('type')})"


def nearest_indicator(value: object) -> str:
    """The valid indicator code closest to ``value`` (same dimension and nearest number for a 6-digit code)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    by_name = {i.name: i.code for i in INDICATORS.values()}
    if text in by_name:
        return by_name[text]
    if text.isdigit() and len(text) < 6:
        text = text.zfill(6)  # 30100 → 030100: a JSON number lost the leading zero
    if text in INDICATORS:
        return text
    if re.fullmatch(r"\d{6}", text):
        same = [c for c in INDICATORS if c[:2] == text[:2]] or list(INDICATORS)
        return min(same, key=lambda c: (abs(int(c) - int(text)), c))
    match = difflib.get_close_matches(text, [*INDICATORS, *by_name], n=1, cutoff=0.0)
    return by_name.get(match[0], match[0]) if match else "010400"


def _describe(code: str) -> str:
    ind = INDICATORS[code]
    return f"{code} {ind.name} ({ind.name_en})"


def check_tags(path: Path, index: int, entry: Mapping[str, Any]) -> None:
    """Raise :class:`SpecError` when a suite entry's quality tags or reference are not valid."""
    where = _where(path, index, entry)
    meta = entry.get("meta") or {}
    for legacy in ("dimension", "indicator"):
        if legacy in meta:
            raise SpecError(
                f"{where}: meta.{legacy} is not read; quality tags live in meta.govdata.{legacy}",
                hint=f'move it: "meta": {{"govdata": {{"{legacy}": {json.dumps(meta[legacy], ensure_ascii=False)}}}}}',
            )
    block = govdata_meta(dict(entry))
    indicator = block.get("indicator")
    if indicator is not None:
        if isinstance(indicator, bool) or not isinstance(indicator, str):
            raise SpecError(
                f"{where}: meta.govdata.indicator must be a string code, not {type(indicator).__name__} "
                f"{json.dumps(indicator, ensure_ascii=False)}",
                hint=f'write it in quotes, e.g. "{nearest_indicator(indicator)}" '
                f"({INDICATORS[nearest_indicator(indicator)].name}); a JSON number loses the leading zero",
            )
        if indicator not in INDICATORS:
            near = nearest_indicator(indicator)
            raise SpecError(
                f"{where}: meta.govdata.indicator {indicator!r} is not a DB31/T 1523-2024 indicator "
                f"(did you mean {near!r}, {INDICATORS[near].name}?)",
                hint="valid codes: " + ", ".join(f"{c} {i.name}" for c, i in INDICATORS.items()),
            )
    dimension = block.get("dimension")
    if dimension is not None:
        if not isinstance(dimension, str):
            raise SpecError(
                f"{where}: meta.govdata.dimension must be a string, not {type(dimension).__name__}",
                hint="one of: " + ", ".join(f"{d.key} ({d.name})" for d in DIMENSIONS),
            )
        if dimension not in DIMENSION_ALIASES:
            match = difflib.get_close_matches(dimension, list(DIMENSION_ALIASES), n=1, cutoff=0.0)
            near = DIMENSION_ALIASES[match[0]] if match else "conformity"
            raise SpecError(
                f"{where}: meta.govdata.dimension {dimension!r} is not a GB/T 36344-2018 dimension "
                f"(did you mean {near!r}, {DIMENSION_BY_KEY[near].name}?)",
                hint="one of: " + ", ".join(f"{d.key} ({d.name}, DAMA {d.dama})" for d in DIMENSIONS),
            )
        key = DIMENSION_ALIASES[dimension]
        if indicator is not None and INDICATORS[indicator].dimension != key:
            actual = DIMENSION_BY_KEY[INDICATORS[indicator].dimension]
            raise SpecError(
                f"{where}: meta.govdata.indicator {indicator} ({INDICATORS[indicator].name}) belongs to "
                f"{actual.key} ({actual.name}), not to dimension {dimension!r}",
                hint="remove meta.govdata.dimension (the indicator decides it) or pick an indicator of "
                f"{key}: " + ", ".join(_describe(c) for c in INDICATORS if INDICATORS[c].dimension == key),
            )
    _check_reference(where, entry, block)
    kind = str(entry.get("type"))
    if indicator is None and dimension is None and "reference" not in block and kind not in DEFAULT_INDICATOR:
        raise SpecError(
            f"{where}: {kind} has no default quality indicator",
            hint='tag it, e.g. "meta": {"govdata": {"indicator": "010400"}} (业务规则); '
            "pipelines/scorecard.py lists the codes",
        )


def _check_reference(where: str, entry: Mapping[str, Any], block: Mapping[str, Any]) -> None:
    if "reference" not in block:
        return
    ref = block["reference"]
    example = '{"dataset": "<reference dataset id>", "column": "<its column>"}'
    if not isinstance(ref, dict):
        raise SpecError(f"{where}: meta.govdata.reference must be an object", hint=f"e.g. {example}")
    unknown = [k for k in ref if k not in REFERENCE_KEYS]
    if unknown:
        near = difflib.get_close_matches(str(unknown[0]), REFERENCE_KEYS, n=1)
        raise SpecError(
            f"{where}: meta.govdata.reference: unknown key {unknown[0]!r}"
            + (f" (did you mean {near[0]!r}?)" if near else ""),
            hint=f"valid keys: {', '.join(REFERENCE_KEYS)}",
        )
    for key in REFERENCE_KEYS:
        value = ref.get(key)
        if not isinstance(value, str) or not value.strip():
            raise SpecError(f"{where}: meta.govdata.reference.{key} is missing or not a string", hint=f"e.g. {example}")
    if not _IDENT.match(ref["dataset"]):
        raise SpecError(
            f"{where}: meta.govdata.reference.dataset {ref['dataset']!r} is not a dataset id",
            hint="dataset ids are snake_case (the `id` in the reference dataset's spec)",
        )
    kind = entry.get("type")
    if kind not in REFERENCE_TYPES:
        raise SpecError(
            f"{where}: meta.govdata.reference works with expect_column_values_to_be_in_set, not {kind}",
            hint="write the reference check as expect_column_values_to_be_in_set with kwargs.column only",
        )
    if "value_set" in (entry.get("kwargs") or {}):
        raise SpecError(
            f"{where}: kwargs.value_set and meta.govdata.reference exclude each other: the values come from "
            f"the published version of {ref['dataset']!r}",
            hint="remove kwargs.value_set",
        )


def indicator_of(entry: Mapping[str, Any]) -> str:
    """The indicator code of a checked suite entry (override, reference, or the type's default)."""
    block = govdata_meta(dict(entry))
    if isinstance(block.get("indicator"), str):
        return str(block["indicator"])
    default = REFERENCE_INDICATOR if "reference" in block else DEFAULT_INDICATOR.get(str(entry.get("type")))
    dimension = block.get("dimension")
    if isinstance(dimension, str):
        key = DIMENSION_ALIASES[dimension]
        if default is not None and INDICATORS[default].dimension == key:
            return default
        return DIMENSION_DEFAULT_INDICATOR[key]
    if default is None:  # check_tags refuses such an entry when the suite is loaded
        raise SpecError(f"{entry.get('type')} has no default quality indicator", hint="set meta.govdata.indicator")
    return default


def dimension_of(entry: Mapping[str, Any]) -> str:
    """The dimension key of a checked suite entry."""
    return INDICATORS[indicator_of(entry)].dimension


def untagged_types(types: Iterable[str] = KNOWN_TYPES) -> list[str]:
    """Known expectation types without a default indicator (the test suite keeps this empty)."""
    return sorted(t for t in types if t not in DEFAULT_INDICATOR)


# --- measures: the A and B of one source -------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """Elements evaluated and elements failing, for one source of one indicator."""

    indicator: str
    evaluated: int
    failed: int
    source: dict[str, Any]

    def __post_init__(self) -> None:
        if self.indicator not in INDICATORS:
            raise ValueError(f"unknown indicator {self.indicator!r}")
        if self.evaluated < 0 or not 0 <= self.failed <= self.evaluated:
            raise ValueError(f"{self.indicator}: need 0 <= failed ({self.failed}) <= evaluated ({self.evaluated})")

    @property
    def a(self) -> int:
        """A as the standard defines it for this indicator (bad elements for 030300/030500)."""
        return self.failed if INDICATORS[self.indicator].inverse else self.evaluated - self.failed


def expectation_measure(index: int, entry: Mapping[str, Any], outcome: Mapping[str, Any], row_count: int) -> Measure:
    """A and B of one expectation result (``outcome``: name, success, element_count, unexpected_count, missing_count)."""
    kind = str(entry.get("type"))
    success = bool(outcome["success"])
    if kind in MAP_TYPES and (success or int(outcome.get("unexpected_count") or 0) > 0):
        element_count = int(outcome.get("element_count") or 0)
        evaluated = max(element_count - int(outcome.get("missing_count") or 0), 0)
        failed = min(int(outcome.get("unexpected_count") or 0), evaluated)
    else:  # the table as a whole: all records meet the rule, or none
        evaluated = max(int(row_count), 1)
        failed = 0 if success else evaluated
    code = indicator_of(entry)
    kwargs = entry.get("kwargs") or {}
    source = {
        "kind": "expectation",
        "index": index,
        "name": outcome.get("name"),
        "type": kind,
        "column": kwargs.get("column") if isinstance(kwargs.get("column"), str) else None,
        "success": success,
    }
    return Measure(code, evaluated, failed, source)


def dirty_records(collected: int, rejected_at_read: int, cast_failed: int) -> Measure:
    """030500: records that could not be read or typed, of the records collected."""
    return Measure(
        "030500",
        collected,
        rejected_at_read + cast_failed,
        {
            "kind": "measure",
            "measure": "dirty_records",
            "rejected_at_read": rejected_at_read,
            "cast_failed": cast_failed,
            "basis": "A = records malformed at collection or with a value not castable to its declared type; "
            "B = records collected",
        },
    )


def duplicate_records(compared: int, duplicates_removed: int) -> Measure:
    """030300: duplicates removed by primary key, of the records compared."""
    return Measure(
        "030300",
        compared,
        duplicates_removed,
        {
            "kind": "measure",
            "measure": "duplicate_records",
            "basis": "A = records removed as duplicates of another record's primary key; B = records compared "
            "(landed, minus cast failures and filtered rows)",
        },
    )


def record_completeness(staged: int, incomplete: int, *, approximate: bool, expectations: Sequence[str]) -> Measure:
    """020200: records in which no element-completeness expectation failed, of the staged records."""
    return Measure(
        "020200",
        staged,
        min(incomplete, staged),
        {
            "kind": "measure",
            "measure": "record_completeness",
            "approximate": approximate,
            "expectations": list(expectations),
            "basis": "A = staged records in which every 020100 (element completeness) expectation held; "
            "B = staged records",
        },
    )


# --- timeliness --------------------------------------------------------------------------------


def _utc(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def _add_months(day: dt.datetime, months: int) -> dt.datetime:
    total = day.year * 12 + day.month - 1 + months
    return day.replace(year=total // 12, month=total % 12 + 1, day=1)


def period_of(cycle: str, when: dt.date | dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The [start, end) period of the update cycle that contains ``when`` (UTC); None for 其他."""
    moment = _utc(when)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if cycle == "实时":
        if isinstance(when, dt.datetime) and moment != day:
            hour = moment.replace(minute=0, second=0, microsecond=0)
            return hour, hour + dt.timedelta(hours=1)
        return day, day + dt.timedelta(days=1)
    if cycle == "每日":
        return day, day + dt.timedelta(days=1)
    if cycle == "每周":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=7)
    months = {"每月": 1, "每季度": 3, "半年": 6, "每年": 12}.get(cycle)
    if months is None:
        return None
    first = day.replace(day=1)
    start = _add_months(first, -((first.month - 1) % months))
    return start, _add_months(start, months)


def parse_run_id(run_id: str) -> dt.datetime | None:
    """The logical date-time (UTC) of a run key (``2026-11-24`` or ``2026-11-24T063000Z``)."""
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H%M%SZ"):
        try:
            return dt.datetime.strptime(run_id, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def timeliness(
    cycle: str,
    logical_date: dt.date | dt.datetime,
    arrived_at: dt.datetime,
    previous_logical_date: dt.datetime | None,
) -> tuple[list[Measure], dict[str, Any]]:
    """050200 (arrival by the end of the period after the logical date's) and 050300 (version order)."""
    logical = _utc(logical_date)
    arrived = _utc(arrived_at)
    measures: list[Measure] = []
    block: dict[str, Any] = {
        "update_cycle": cycle,
        "period_start": None,
        "period_end": None,
        "due": None,
        "arrived_at": arrived.isoformat(),
        "on_time": None,
        "previous_logical_date": previous_logical_date.isoformat() if previous_logical_date else None,
        "in_order": None,
    }
    period = period_of(cycle, logical_date)
    if period is not None:
        start, end = period
        if cycle in ("实时", "每日", "每周"):  # fixed-length periods: the next one is as long
            due = end + (end - start)
        else:
            following = period_of(cycle, end)
            assert following is not None
            due = following[1]
        on_time = arrived <= due
        block.update(period_start=start.isoformat(), period_end=end.isoformat(), due=due.isoformat(), on_time=on_time)
        measures.append(
            Measure(
                "050200",
                1,
                0 if on_time else 1,
                {
                    "kind": "measure",
                    "measure": "arrival",
                    "basis": f"A = 1 when the data arrived by {due.isoformat()} (the end of the {cycle} period "
                    "after the logical date's period); B = 1",
                },
            )
        )
    in_order = previous_logical_date is None or logical >= previous_logical_date
    block["in_order"] = in_order
    measures.append(
        Measure(
            "050300",
            1,
            0 if in_order else 1,
            {
                "kind": "measure",
                "measure": "version_order",
                "basis": "A = 1 unless the logical date is earlier than the latest published version's; B = 1",
            },
        )
    )
    return measures, block


# --- the scorecard -----------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def build(
    spec: DatasetSpec,
    *,
    run_id: str,
    logical_date: dt.date | dt.datetime,
    gate: str,
    measures: Sequence[Measure],
    timeliness_block: Mapping[str, Any] | None = None,
    rows: Mapping[str, int] | None = None,
    references: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The scorecard document (schema :data:`SCHEMA`) from the run's measures."""
    by_code: dict[str, list[Measure]] = {}
    for m in measures:
        by_code.setdefault(m.indicator, []).append(m)
    indicators = []
    scores: dict[str, list[float]] = {}
    evaluated: dict[str, list[str]] = {}
    for code, ind in INDICATORS.items():
        parts = by_code.get(code, [])
        b = sum(m.evaluated for m in parts)
        failed = sum(m.failed for m in parts)
        a = failed if ind.inverse else b - failed
        x = round((b - failed) / b, 6) if b else None
        if x is not None:
            scores.setdefault(ind.dimension, []).append(x)
            evaluated.setdefault(ind.dimension, []).append(code)
        indicators.append(
            {
                "code": code,
                "name": ind.name,
                "name_en": ind.name_en,
                "dimension": ind.dimension,
                "dama": ind.dama,
                "formula": "1-A/B" if ind.inverse else "A/B",
                "a": a if parts else None,
                "b": b if parts else None,
                "x": x,
                "sources": [{**m.source, "a": m.a, "b": m.evaluated} for m in parts],
            }
        )
    dimensions = [
        {
            "key": d.key,
            "code": d.code,
            "name": d.name,
            "dama": d.dama,
            "score": _mean(scores.get(d.key, [])),
            "indicators": evaluated.get(d.key, []),
        }
        for d in DIMENSIONS
    ]
    overall = _mean([score for d in DIMENSIONS if (score := _mean(scores.get(d.key, []))) is not None])
    return {
        "schema": SCHEMA,
        "dataset": spec.id,
        "dataset_name": spec.name,
        "resource_code": spec.catalog.resource_code,
        "department": {"name": spec.department.name, "uscc": spec.department.uscc},
        "run_id": run_id,
        "logical_date": logical_date.isoformat(),
        "computed_at": _now(),
        "update_cycle": spec.catalog.update_cycle.value,
        "gate": gate,
        "status": gate,
        "version": None,
        "score": overall,
        "method": {
            "indicator": "X = A/B (030300, 030500: X = 1 - A/B), A and B summed over the indicator's sources",
            "dimension": "mean of the evaluated indicators' X",
            "overall": "mean of the evaluated dimensions' scores",
        },
        "dimensions": dimensions,
        "indicators": indicators,
        "timeliness": dict(timeliness_block) if timeliness_block is not None else None,
        "rows": dict(rows) if rows is not None else None,
        "references": [dict(r) for r in references],
    }


def _failing_rows(failures: Path, names: Sequence[str], row_column: str) -> int:
    """Distinct rows of the gate's failing-row file that failed any of the expectations ``names``."""
    from pipelines.sql import connect, ident, lit, path_lit

    con = connect()
    try:
        wanted = ", ".join(lit(n) for n in names)
        row = con.execute(
            f"SELECT count(DISTINCT {ident(row_column)}) FROM read_parquet({path_lit(failures)}) "
            f"WHERE expectation IN ({wanted})"
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def compute(
    spec: DatasetSpec,
    *,
    run_id: str,
    logical_date: dt.date | dt.datetime,
    entries: Sequence[Mapping[str, Any]],
    outcomes: Sequence[Mapping[str, Any]],
    row_count: int,
    failures: Path | None,
    collected: Mapping[str, Any],
    cleansed: Mapping[str, Any],
    quarantined: int,
    accepted: int,
    gate: str,
    previous_run_id: str | None,
    references: Sequence[Mapping[str, Any]] = (),
    row_column: str = "_govdata_row",
) -> tuple[dict[str, Any], list[Measure]]:
    """The scorecard of one quality step, and the measure of each expectation (in suite order).

    ``outcomes`` are the gate's results as dicts (name, success, row_level, element_count,
    unexpected_count, missing_count); ``collected``/``cleansed`` the collect and cleanse step reports.
    """
    per_expectation = [
        expectation_measure(i, entry, outcome, row_count)
        for i, (entry, outcome) in enumerate(zip(entries, outcomes, strict=True))
    ]
    measures = list(per_expectation)
    rejected = int(collected.get("rejected") or 0)
    cast_failed = int(cleansed.get("cast_failed") or 0)
    filtered = sum(int(v) for v in (cleansed.get("filtered") or {}).values())
    duplicates = int(cleansed.get("duplicates_removed") or 0)
    measures.append(dirty_records(int(collected["rows"]), rejected, cast_failed))
    if spec.primary_key:
        compared = int(cleansed["rows_in"]) - cast_failed - filtered
        measures.append(duplicate_records(max(compared, duplicates), duplicates))
    completeness = [(m, o) for m, o in zip(per_expectation, outcomes, strict=True) if m.indicator == "020100"]
    if completeness and row_count:
        listed = [str(o["name"]) for m, o in completeness if o.get("row_level") and m.failed]
        unlisted = [m.failed for m, o in completeness if not o.get("row_level") and m.failed]
        incomplete = _failing_rows(failures, listed, row_column) if listed and failures is not None else 0
        measures.append(
            record_completeness(
                row_count,
                max([incomplete, *unlisted]),
                approximate=bool(unlisted),
                expectations=[str(o["name"]) for _, o in completeness],
            )
        )
    arrived = dt.datetime.fromisoformat(str(collected.get("finished_at") or _now()))
    previous = parse_run_id(previous_run_id) if previous_run_id else None
    timed, block = timeliness(spec.catalog.update_cycle.value, logical_date, arrived, previous)
    measures.extend(timed)
    rows = {
        "collected": int(collected["rows"]),
        "rejected_at_read": rejected,
        "cast_failed": cast_failed,
        "filtered": filtered,
        "duplicates_removed": duplicates,
        "staged": int(row_count),
        "quarantined": int(quarantined),
        "accepted": int(accepted),
    }
    card = build(
        spec,
        run_id=run_id,
        logical_date=logical_date,
        gate=gate,
        measures=measures,
        timeliness_block=block,
        rows=rows,
        references=references,
    )
    return card, per_expectation


def summary(card: Mapping[str, Any]) -> dict[str, Any]:
    """The run report's quality numbers: overall score, scored dimensions (keyed), evaluated indicators."""
    checks: dict[str, int] = {}
    for ind in card["indicators"]:
        checks[ind["dimension"]] = checks.get(ind["dimension"], 0) + len(ind["sources"])
    return {
        "score": card["score"],
        "dimensions": {
            d["key"]: {"name": d["name"], "dama": d["dama"], "score": d["score"], "checks": checks.get(d["key"], 0)}
            for d in card["dimensions"]
            if d["score"] is not None
        },
        "indicators": [
            {"code": i["code"], "name": i["name"], "a": i["a"], "b": i["b"], "x": i["x"]}
            for i in card["indicators"]
            if i["x"] is not None
        ],
    }


def write(card: Mapping[str, Any], reports_dir: Path) -> Path:
    """Write ``scorecard.json`` into the run's reports folder (atomically)."""
    target = Path(reports_dir) / SCORECARD_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(target)
    return target


def load(path: Path) -> dict[str, Any]:
    """Read a ``scorecard.json``; a file that is not one is an error naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GovdataError(f"{path}: not a readable scorecard: {exc}", hint="re-run the dataset to rewrite it") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise GovdataError(
            f"{path}: schema is {found!r}, expected {SCHEMA!r}", hint="re-run the dataset to rewrite its scorecard"
        )
    return data


def with_final_scorecard(quality: Mapping[str, Any], reports_dir: Path) -> dict[str, Any]:
    """The quality summary with the scorecard as last written (status and version set by publish)."""
    path = Path(reports_dir) / SCORECARD_FILE
    if "scorecard" not in quality or not path.is_file():
        return dict(quality)
    return {**quality, "scorecard": load(path)}


def record_publication(store: Any, reports_dir: Path, dataset: str, run_id: str, version: int, status: str) -> None:
    """After publishing: the scorecard's status and version, in the catalog and in ``scorecard.json``."""
    card = store.link_scorecard(dataset, run_id, version=version, status=status)
    if card is not None:
        write(card, reports_dir)


# --- trend -------------------------------------------------------------------------------------


def point(card: Mapping[str, Any]) -> dict[str, Any]:
    """One trend point: the scorecard's headline numbers."""
    return {
        "dataset": card["dataset"],
        "dataset_name": card.get("dataset_name"),
        "department": dict(card.get("department") or {}),
        "run_id": card["run_id"],
        "logical_date": card["logical_date"],
        "computed_at": card["computed_at"],
        "status": card["status"],
        "gate": card["gate"],
        "version": card.get("version"),
        "score": card["score"],
        "dimensions": {d["key"]: d["score"] for d in card["dimensions"]},
        "indicators": {i["code"]: i["x"] for i in card["indicators"]},
    }


def trend(
    home: str | Path | None = None,
    dataset: str | None = None,
    department: str | None = None,
    *,
    catalog_url: str | None = None,
) -> list[dict[str, Any]]:
    """Trend points (see :func:`point`) of the runs in the catalog, oldest logical date first.

    ``department`` matches the department's USCC (any case) or its exact name. Held runs are
    included (their ``status`` is ``held``); a re-run of a key replaces its point.
    """
    from catalog.store import CatalogStore
    from pipelines.workspace import Workspace

    url = catalog_url or Workspace.from_env(home).catalog_url
    return [point(card) for card in CatalogStore(url).scorecards(dataset=dataset, department=department)]


def by_period(points: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Points grouped by logical date (e.g. a department's datasets): mean scores per date."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for p in points:
        groups.setdefault(str(p["logical_date"]), []).append(p)
    out = []
    for date, members in sorted(groups.items()):
        dims = {
            d.key: _mean([m["dimensions"][d.key] for m in members if m["dimensions"].get(d.key) is not None])
            for d in DIMENSIONS
        }
        out.append(
            {
                "logical_date": date,
                "datasets": sorted({str(m["dataset"]) for m in members}),
                "runs": len(members),
                "held": sum(m["status"] == "held" for m in members),
                "score": _mean([m["score"] for m in members if m["score"] is not None]),
                "dimensions": dims,
            }
        )
    return out
