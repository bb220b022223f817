"""Custom GX expectations for Chinese identifiers: resident ID (GB 11643) and USCC (GB 32100).

Importing this module registers both expectations with GX (GX registers an expectation class
when it is defined) and applies the DuckDB patches (:mod:`expectations.engine`).

Each expectation is a column map expectation backed by one metric with three implementations:

- pandas: the reference functions in :mod:`pipelines.identifiers` (behind an ASCII guard, see
  :func:`resident_id_ok`);
- SQL, portable (PostgreSQL and any other dialect): one SQLAlchemy expression computed by the
  database — no UDF, nothing fetched to Python — from ``length``, ``substr``, ``ascii``,
  ``strpos``, ``translate``, ``mod``, integer arithmetic and ``CASE``. Digit values and
  alphabet indexes are ``strpos(alphabet, c) - 1``, −1 for any other character (never a cast
  error, never an overflow);
  the weighted sums are written out term by term; the birth date is checked arithmetically
  (month, days in month with the Gregorian leap rule, year ≥ 1800, not after today) because a
  failed cast aborts the whole query on PostgreSQL;
- SQL, DuckDB: the same conditions with a RE2 shape check (``regexp_full_match``) and
  ``try_strptime`` for the date, ~3x cheaper than the portable form on DuckDB (whose
  ``translate`` is slow). DuckDB does not share repeated subexpressions inside a WHERE clause
  (where GX's row queries put the condition), so every term reads the string itself once.

All three are held to each other by the differential tests in
``tests/expectations/test_custom_expectations.py``. Like every GX map expectation, a NULL is
not a failure (add ``expect_column_values_to_not_be_null`` for that). The SQL forms are
wrapped in ``COALESCE(…, FALSE)``: a NULL condition would silently count a row as passing.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from great_expectations.execution_engine import PandasExecutionEngine, SqlAlchemyExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)
from great_expectations.render.renderer_configuration import RendererValueType

from expectations import engine
from pipelines.identifiers import (
    RESIDENT_ID_CHECK,
    RESIDENT_ID_WEIGHTS,
    USCC_ALPHABET,
    USCC_AUTHORITIES,
    USCC_WEIGHTS,
    is_valid_resident_id,
    is_valid_uscc,
)

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.render.renderer_configuration import RendererConfiguration

DIGITS = "0123456789"

engine.apply_patches()

#: The (authority, entity type) pairs a USCC may start with, e.g. ``11``, ``91``, ``N1``, ``Y1``.
USCC_PREFIXES: tuple[str, ...] = tuple(a + t for a, types in USCC_AUTHORITIES.items() for t in types)


# --- SQL expressions -------------------------------------------------------------------------


def local_today() -> dt.date:
    """Today in the machine's time zone: the "not in the future" bound, as the reference uses it."""
    return dt.datetime.now().astimezone().date()


def _str(value: str) -> sa.ColumnElement[str]:
    """An inline SQL string literal (keeps GX's ``unexpected_index_query`` free of parameters)."""
    return sa.literal_column("'" + value.replace("'", "''") + "'", sa.String())


def _int(value: int) -> sa.ColumnElement[int]:
    """An inline SQL integer literal."""
    return sa.literal_column(str(int(value)), sa.Integer())


def _mod(value: Any, divisor: int) -> Any:
    """``mod(value, divisor)``: the function, not ``%``, which drivers with pyformat escape."""
    return sa.func.mod(value, _int(divisor))


def _char(column: Any, position: int) -> Any:
    return sa.func.substr(column, _int(position), _int(1))


def _index_in(alphabet: str, column: Any, position: int) -> Any:
    """0-based index of the character at ``position`` (1-based) in ``alphabet``; −1 if absent."""
    return sa.func.strpos(_str(alphabet), _char(column, position)) - _int(1)


def _digit(column: Any, position: int) -> Any:
    """The value of the digit at ``position`` (1-based); −1 for any other character."""
    return _index_in(DIGITS, column, position)


def _ascii_digit(column: Any, position: int) -> Any:
    """``ascii(c) - 48``: the digit's value, cheaper than :func:`_digit` on DuckDB.

    Meaningless for a non-digit (up to 1 114 063) but never an error where it is used: in a
    sum of 17 terms with weights ≤ 10 (< 2^31), ANDed with a shape check.
    """
    return sa.func.ascii(_char(column, position)) - _int(48)


def _only(column: Any, alphabet: str) -> Any:
    """True when every character of ``column`` is in ``alphabet`` (true for '')."""
    return sa.func.translate(column, _str(alphabet), _str("")) == _str("")


def _number(column: Any, first: int, digits: int) -> Any:
    """The integer written by ``digits`` decimal digits from ``first`` (1-based)."""
    total: Any = None
    for offset in range(digits):
        term = _digit(column, first + offset)
        weight = 10 ** (digits - 1 - offset)
        term = term * _int(weight) if weight != 1 else term
        total = term if total is None else total + term
    return total


def _real_past_date(year: Any, month: Any, day: Any, today: dt.date) -> Any:
    """A real Gregorian date, year ≥ 1800, not after ``today`` (integer arithmetic only)."""
    leap = sa.or_(
        sa.and_(_mod(year, 4) == _int(0), _mod(year, 100) != _int(0)),
        _mod(year, 400) == _int(0),
    )
    days_in_month = sa.case(
        (month.in_([_int(m) for m in (1, 3, 5, 7, 8, 10, 12)]), _int(31)),
        (month.in_([_int(m) for m in (4, 6, 9, 11)]), _int(30)),
        (leap, _int(29)),
        else_=_int(28),
    )
    today_number = today.year * 10000 + today.month * 100 + today.day
    return sa.and_(
        month >= _int(1),
        month <= _int(12),
        day >= _int(1),
        day <= days_in_month,
        year >= _int(1800),
        year * _int(10000) + month * _int(100) + day <= _int(today_number),
    )


def resident_id_sql(column: Any, *, allow_15: bool = False, today: dt.date | None = None) -> Any:
    """SQL condition: ``column`` is a valid GB 11643 resident ID (see :func:`is_valid_resident_id`).

    18 characters, 17 ASCII digits, a real birth date from 1800 up to ``today`` (default: the
    date the expression is built, so SQL and Python agree on "today"), and the ISO 7064
    MOD 11-2 check character (upper-case ``X``). The address code is never checked against
    the birth year. ``allow_15`` also accepts legacy 15-digit IDs with a real 19yy date.
    """
    today = today or local_today()
    weighted: Any = None
    for position, weight in enumerate(RESIDENT_ID_WEIGHTS, start=1):
        term = _digit(column, position) * _int(weight)
        weighted = term if weighted is None else weighted + term
    check = sa.func.substr(_str(RESIDENT_ID_CHECK), _mod(weighted, 11) + _int(1), _int(1))
    valid_18 = sa.and_(
        sa.func.length(column) == _int(18),
        _only(sa.func.substr(column, _int(1), _int(17)), DIGITS),
        _char(column, 18) == check,
        _real_past_date(_number(column, 7, 4), _number(column, 11, 2), _number(column, 13, 2), today),
    )
    if not allow_15:
        return sa.func.coalesce(valid_18, sa.false())
    valid_15 = sa.and_(
        sa.func.length(column) == _int(15),
        _only(column, DIGITS),
        _real_past_date(_int(1900) + _number(column, 7, 2), _number(column, 9, 2), _number(column, 11, 2), today),
    )
    return sa.func.coalesce(sa.or_(valid_18, valid_15), sa.false())


def uscc_sql(column: Any) -> Any:
    """SQL condition: ``column`` is a valid GB 32100 USCC (see :func:`is_valid_uscc`).

    18 characters over ``0123456789ABCDEFGHJKLMNPQRTUWXY``, a known registering authority and
    entity type (letters A, N, Y included), a 6-digit area code and the MOD 31 check character.
    """
    weighted: Any = None
    for position, weight in enumerate(USCC_WEIGHTS, start=1):
        term = _index_in(USCC_ALPHABET, column, position) * _int(weight)
        weighted = term if weighted is None else weighted + term
    check_index = _mod(_int(31) - _mod(weighted, 31), 31)
    check = sa.func.substr(_str(USCC_ALPHABET), check_index + _int(1), _int(1))
    valid = sa.and_(
        sa.func.length(column) == _int(18),
        _only(column, USCC_ALPHABET),
        sa.func.substr(column, _int(1), _int(2)).in_([_str(p) for p in USCC_PREFIXES]),
        _only(sa.func.substr(column, _int(3), _int(6)), DIGITS),
        _char(column, 18) == check,
    )
    return sa.func.coalesce(valid, sa.false())


# --- DuckDB -----------------------------------------------------------------------------------

# A RE2 full match checks the shape first (ASCII only, no trailing-newline leniency); the other
# terms are only meaningful after it. try_strptime yields NULL for an impossible date, which
# the BETWEEN turns into NULL and COALESCE into FALSE.

_RESIDENT_ID_18_RE2 = "[0-9]{17}[0-9X]"
_RESIDENT_ID_15_RE2 = "[0-9]{15}"
_USCC_CHAR_RE2 = "[0-9A-HJ-NP-RTUWXY]"


def _timestamp(day: dt.date) -> Any:
    return sa.literal_column(f"TIMESTAMP '{day.isoformat()}'", sa.DateTime())


def _duckdb_birth_date_ok(yyyymmdd: Any, today: dt.date) -> Any:
    born = sa.func.try_strptime(yyyymmdd, _str("%Y%m%d"))
    return born.between(_timestamp(dt.date(1800, 1, 1)), _timestamp(today))


def resident_id_duckdb(column: Any, *, allow_15: bool = False, today: dt.date | None = None) -> Any:
    """DuckDB form of :func:`resident_id_sql` (same result, vectorised)."""
    today = today or local_today()
    weighted: Any = None
    for position, weight in enumerate(RESIDENT_ID_WEIGHTS, start=1):
        term = _ascii_digit(column, position) * _int(weight)
        weighted = term if weighted is None else weighted + term
    check = sa.func.substr(_str(RESIDENT_ID_CHECK), _mod(weighted, 11) + _int(1), _int(1))
    valid: Any = sa.and_(
        sa.func.regexp_full_match(column, _str(_RESIDENT_ID_18_RE2)),
        _duckdb_birth_date_ok(sa.func.substr(column, _int(7), _int(8)), today),
        _char(column, 18) == check,
    )
    if allow_15:
        valid = sa.or_(
            valid,
            sa.and_(
                sa.func.regexp_full_match(column, _str(_RESIDENT_ID_15_RE2)),
                _duckdb_birth_date_ok(sa.func.concat(_str("19"), sa.func.substr(column, _int(7), _int(6))), today),
            ),
        )
    return sa.func.coalesce(valid, sa.false())


def uscc_duckdb(column: Any) -> Any:
    """DuckDB form of :func:`uscc_sql` (same result, vectorised)."""
    shape = "(?:" + "|".join(USCC_PREFIXES) + ")[0-9]{6}" + _USCC_CHAR_RE2 + "{10}"
    weighted: Any = None
    for position, weight in enumerate(USCC_WEIGHTS, start=1):
        # substr per character: DuckDB does not share a repeated string_split() inside a WHERE.
        term = _index_in(USCC_ALPHABET, column, position) * _int(weight)
        weighted = term if weighted is None else weighted + term
    check = sa.func.substr(_str(USCC_ALPHABET), _mod(_int(31) - _mod(weighted, 31), 31) + _int(1), _int(1))
    valid = sa.and_(sa.func.regexp_full_match(column, _str(shape)), _char(column, 18) == check)
    return sa.func.coalesce(valid, sa.false())


def _is_duckdb(kwargs: dict[str, Any]) -> bool:
    engine_ = kwargs.get("_sqlalchemy_engine")
    return getattr(getattr(engine_, "dialect", None), "name", None) == "duckdb"


# --- pandas ------------------------------------------------------------------------------------


def resident_id_ok(value: object, *, allow_15: bool = False, today: dt.date | None = None) -> bool:
    """:func:`pipelines.identifiers.is_valid_resident_id`, for ASCII single-line strings only.

    The guard keeps pandas and SQL in agreement where the reference's ``\\d``/``$`` regex is
    wider than the standard: it accepts non-ASCII digits (``１``, ``١``) and a trailing newline,
    and raises on a 15-digit ID followed by a newline.
    """
    if not isinstance(value, str) or not value.isascii() or "\n" in value:
        return False
    return is_valid_resident_id(value, allow_15=allow_15, today=today)


def _map_bool(column: pd.Series, check: Any) -> pd.Series:
    return column.map(check).astype(bool)


# --- metrics -----------------------------------------------------------------------------------


class ColumnValuesValidCnResidentId(ColumnMapMetricProvider):
    """Row condition: the value is a valid 公民身份号码 (GB 11643)."""

    condition_metric_name = "column_values.valid_cn_resident_id"
    condition_value_keys = ("allow_15",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, allow_15: bool = False, **kwargs: Any) -> pd.Series:
        today = local_today()
        return _map_bool(column, lambda v: resident_id_ok(v, allow_15=bool(allow_15), today=today))

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, allow_15: bool = False, **kwargs: Any) -> Any:
        build = resident_id_duckdb if _is_duckdb(kwargs) else resident_id_sql
        return build(column, allow_15=bool(allow_15))


class ColumnValuesValidUscc(ColumnMapMetricProvider):
    """Row condition: the value is a valid 统一社会信用代码 (GB 32100)."""

    condition_metric_name = "column_values.valid_uscc"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:
        return _map_bool(column, is_valid_uscc)

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, **kwargs: Any) -> Any:
        return uscc_duckdb(column) if _is_duckdb(kwargs) else uscc_sql(column)


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


class ExpectColumnValuesToBeValidCnResidentId(ColumnMapExpectation):
    """Expect column values to be valid Chinese resident ID numbers (公民身份号码, GB 11643-1999).

    18 characters: 6-digit address code, birth date YYYYMMDD (a real date, not in the future),
    3-digit sequence, and the ISO 7064 MOD 11-2 check character (``0``-``9`` or upper-case
    ``X``). An address code younger than the birth date is valid (it is the code in force when
    the number was issued). ``allow_15`` also accepts legacy 15-digit numbers. NULLs pass.
    """

    allow_15: bool = False

    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "production",
        "tags": ["govdata", "identifiers", "GB 11643"],
        "contributors": ["govdata"],
        "requirements": [],
        "has_full_test_suite": True,
        "manually_reviewed_code": True,
    }
    map_metric = "column_values.valid_cn_resident_id"
    success_keys = ("allow_15", "mostly")
    args_keys = ("column",)

    @classmethod
    def _prescriptive_template(cls, renderer_configuration: RendererConfiguration) -> RendererConfiguration:
        return _template(
            renderer_configuration,
            "values must be valid resident ID numbers (GB 11643)",
            (("allow_15", RendererValueType.BOOLEAN),),
        )


class ExpectColumnValuesToBeValidUscc(ColumnMapExpectation):
    """Expect column values to be valid unified social credit codes (统一社会信用代码, GB 32100-2015).

    18 characters over ``0123456789ABCDEFGHJKLMNPQRTUWXY``: registering authority (1-9, A, N,
    Y) and an entity type it issues, 6-digit area code, 9-character organisation code and the
    MOD 31 check character. NULLs pass.
    """

    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "production",
        "tags": ["govdata", "identifiers", "GB 32100"],
        "contributors": ["govdata"],
        "requirements": [],
        "has_full_test_suite": True,
        "manually_reviewed_code": True,
    }
    map_metric = "column_values.valid_uscc"
    success_keys = ("mostly",)
    args_keys = ("column",)

    @classmethod
    def _prescriptive_template(cls, renderer_configuration: RendererConfiguration) -> RendererConfiguration:
        return _template(renderer_configuration, "values must be valid unified social credit codes (GB 32100)")


#: The custom expectation types this module registers, by snake-case name.
CUSTOM_EXPECTATIONS: dict[str, type[ColumnMapExpectation]] = {
    "expect_column_values_to_be_valid_cn_resident_id": ExpectColumnValuesToBeValidCnResidentId,
    "expect_column_values_to_be_valid_uscc": ExpectColumnValuesToBeValidUscc,
}
