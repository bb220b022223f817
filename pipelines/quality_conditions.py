"""The SQL row conditions of govdata's custom expectations, and the ones the quality gate computes once.

GX-free on purpose (SQLAlchemy, the standard library and govdata's reference tables): the
quality step computes these conditions in a process of their own while this one is still
importing GX (:mod:`pipelines.quality_prepass`). :mod:`expectations.custom` defines the GX
expectations and metrics that use them and re-exports the builders.

Three parts:

- the condition builders: for each custom expectation a portable SQL form (PostgreSQL and any
  other dialect) and a DuckDB form (:mod:`expectations.custom` explains how they are written);
- :data:`METRICS`: each custom expectation's metric, the value kwargs GX hands its condition
  (with the expectation's defaults), its columns, and its DuckDB builder;
- conditions computed once: :func:`plan` turns a suite's custom map expectations into
  :class:`Condition` objects (the SQL, and a flag column named by :func:`flag_column` after the
  metric, its columns, its kwargs and the day); a metric that finds its flag column among the
  batch's columns answers ``flag IS NULL`` instead of building the expression
  (:func:`read_flag`). See :mod:`pipelines.quality_prepass` for why and how.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

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
)

DIGITS = "0123456789"
#: GB 11714's check character by ``Σ mod 11``: 11 − r, where 10 → X and 11 → 0.
ORG_CODE_CHECK = "0X987654321"
#: Code sets up to this size are written as an inline ``IN`` list, larger ones as a VALUES table.
INLINE_CODES = 64

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


def _area_codes(area_table: str | None) -> frozenset[str] | None:
    return None if area_table is None else divisions.codes(area_table)  # type: ignore[arg-type]


def _roles(columns: Sequence[Any], birth_date_column: str | None, sex_column: str | None) -> tuple[Any, Any, Any]:
    """(resident ID, birth date, sex) among ``columns`` (the ID is first; see the expectation)."""

    def name(column: Any) -> str:
        return str(getattr(column, "name", column))

    by_name = {name(c): c for c in columns}
    birth = by_name[birth_date_column] if birth_date_column is not None else None
    sex = by_name[sex_column] if sex_column is not None else None
    return columns[0], birth, sex


# --- the custom metrics' DuckDB conditions ----------------------------------------------------------

#: A metric's DuckDB condition: ``(columns, value kwargs as GX passes them, today) -> expression``.
Builder = Callable[[Sequence[Any], Mapping[str, Any], dt.date], Any]


def _resident_id_condition(columns: Sequence[Any], values: Mapping[str, Any], today: dt.date) -> Any:
    return resident_id_duckdb(
        columns[0],
        allow_15=bool(values.get("allow_15", False)),
        today=today,
        area_codes=_area_codes(values.get("area_table")),
    )


def _uscc_condition(columns: Sequence[Any], values: Mapping[str, Any], today: dt.date) -> Any:
    return uscc_duckdb(columns[0], check_org_code=bool(values.get("check_org_code", True)))


def _org_code_condition(columns: Sequence[Any], values: Mapping[str, Any], today: dt.date) -> Any:
    return org_code_duckdb(columns[0], hyphen=values.get("hyphen") or "optional")


def _admin_division_condition(columns: Sequence[Any], values: Mapping[str, Any], today: dt.date) -> Any:
    codes = divisions.codes(
        values.get("area_table") or "current",
        prefix=values.get("prefix"),
        level=values.get("level"),
    )
    return admin_division_sql(columns[0], codes)


def _mobile_condition(columns: Sequence[Any], values: Mapping[str, Any], today: dt.date) -> Any:
    return mobile_duckdb(columns[0], allow_country_code=bool(values.get("allow_country_code", True)))


def _consistency_condition(columns: Sequence[Any], values: Mapping[str, Any], today: dt.date) -> Any:
    resident_id, birth, sex = _roles(columns, values.get("birth_date_column"), values.get("sex_column"))
    return consistency_sql(
        resident_id,
        birth,
        sex,
        sex_values=values.get("sex_values"),
        allow_15=bool(values.get("allow_15", True)),
        today=today,
        duckdb=True,
    )


@dataclass(frozen=True)
class MetricCondition:
    """A custom expectation's row condition as GX asks for it: metric, value kwargs, columns, DuckDB form."""

    metric: str  # the map metric (its ``.condition`` is what GX resolves)
    defaults: dict[str, Any]  # the value kwargs GX passes the condition, with the expectation's defaults
    build: Builder
    multicolumn: bool = False  # columns: ``column`` then ``birth_date_column``/``sex_column`` when named

    def columns(self, kwargs: Mapping[str, Any]) -> list[str]:
        """The domain columns, in GX's order (the consistency expectation derives its ``column_list``)."""
        names = [kwargs.get("column")]
        if self.multicolumn:
            names += [kwargs.get(k) for k in ("birth_date_column", "sex_column") if kwargs.get(k) is not None]
            if len(names) < 2:  # nothing to compare the ID with: GX rejects the kwargs
                return []
        return [n for n in names if isinstance(n, str)]

    def value_kwargs(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """What GX 1.24.1's ``get_metric_kwargs`` hands the condition: the suite's value, else the default."""
        return {k: kwargs[k] if kwargs.get(k) is not None else default for k, default in self.defaults.items()}


#: Each custom expectation type's condition (tests/expectations/test_engine_pin.py holds the
#: metric names, kwargs and defaults to GX's own registry and to the expectation classes).
METRICS: dict[str, MetricCondition] = {
    "expect_column_values_to_be_valid_cn_resident_id": MetricCondition(
        "column_values.valid_cn_resident_id", {"allow_15": False, "area_table": None}, _resident_id_condition
    ),
    "expect_column_values_to_be_valid_uscc": MetricCondition(
        "column_values.valid_uscc", {"check_org_code": True}, _uscc_condition
    ),
    "expect_column_values_to_be_valid_cn_org_code": MetricCondition(
        "column_values.valid_cn_org_code", {"hyphen": "optional"}, _org_code_condition
    ),
    "expect_column_values_to_be_valid_cn_admin_division": MetricCondition(
        "column_values.valid_cn_admin_division",
        {"area_table": "current", "prefix": None, "level": None},
        _admin_division_condition,
    ),
    "expect_column_values_to_be_valid_cn_mobile": MetricCondition(
        "column_values.valid_cn_mobile", {"allow_country_code": True}, _mobile_condition
    ),
    "expect_cn_resident_id_to_match_birth_date_and_sex": MetricCondition(
        "multicolumn_values.cn_resident_id_matches_birth_date_and_sex",
        {"birth_date_column": None, "sex_column": None, "sex_values": DEFAULT_SEX_VALUES, "allow_15": True},
        _consistency_condition,
        multicolumn=True,
    ),
}

_BY_METRIC: dict[str, MetricCondition] = {m.metric: m for m in METRICS.values()}


def duckdb_builder(metric_name: str) -> Builder:
    """The DuckDB condition builder of one of :data:`METRICS`' metrics."""
    return _BY_METRIC[metric_name].build


# --- conditions computed once ---------------------------------------------------------------------

#: Flag columns are named with this prefix (reserved, like the row key ``_govdata_row``).
FLAG_PREFIX = "_govdata_fails_"


def _column_name(column: Any) -> str:
    return str(getattr(column, "name", column))


def flag_column(metric_name: str, columns: Sequence[Any], value_kwargs: Mapping[str, Any], today: dt.date) -> str:
    """The flag column of one condition: a digest of the metric, its columns, its value kwargs and the day."""
    key = json.dumps(
        [metric_name, [_column_name(c) for c in columns], dict(value_kwargs), today.isoformat()],
        sort_keys=True,
        ensure_ascii=False,
        default=repr,
    )
    return FLAG_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def read_flag(
    metric_name: str,
    columns: Sequence[Any],
    value_kwargs: Mapping[str, Any],
    gx_kwargs: Mapping[str, Any],
    today: dt.date,
) -> Any | None:
    """``flag IS NULL`` (the row passes) when the batch has this condition's flag column, else None.

    ``gx_kwargs`` are the private kwargs GX passes a condition function: ``_metrics`` holds the
    batch's ``table.columns``. The flag's name encodes the metric, columns, kwargs and day, so it
    matches only the condition this metric would build now.
    """
    metrics = gx_kwargs.get("_metrics")
    batch_columns = metrics.get("table.columns") if isinstance(metrics, Mapping) else None
    if not batch_columns:
        return None
    flag = flag_column(metric_name, columns, value_kwargs, today)
    if flag not in {str(c) for c in batch_columns}:
        return None
    return sa.column(flag).is_(None)


@dataclass(frozen=True)
class Condition:
    """One condition to compute once per row: the suite entries that read it, and its DuckDB SQL."""

    column: str  # the flag column: TRUE where the row fails the condition, NULL where it passes
    metric: str
    columns: tuple[str, ...]
    sql: str  # the condition (TRUE: the row passes), with inline literals
    indexes: tuple[int, ...]  # suite entries
    value_kwargs: dict[str, Any] = field(default_factory=dict)


@functools.cache
def _dialect() -> Any:
    """duckdb-engine's dialect as an engine (and so GX) configures it: ``numeric_dollar``, ``%`` unescaped."""
    return sa.create_engine("duckdb://").dialect


def compile_sql(expression: Any) -> str:
    """``expression`` as DuckDB SQL text with its literals inline, as GX's engine renders it."""
    return str(expression.compile(dialect=_dialect(), compile_kwargs={"literal_binds": True}))


def plan(entries: Sequence[tuple[int, Mapping[str, Any]]], today: dt.date) -> list[Condition]:
    """The conditions to compute once for these (suite index, suite entry) pairs: each distinct one once.

    Custom map expectations only (:data:`METRICS`), each condition with the value kwargs GX will
    hand the metric (:meth:`MetricCondition.value_kwargs`). An entry whose condition cannot be
    built (kwargs GX will reject anyway) is left out: GX reports it.
    """
    found: dict[str, Condition] = {}
    for index, entry in entries:
        spec = METRICS.get(str(entry.get("type")))
        kwargs = entry.get("kwargs") or {}
        if spec is None or not isinstance(kwargs, Mapping):
            continue
        names = spec.columns(kwargs)
        if not names:
            continue
        values = spec.value_kwargs(kwargs)
        name = flag_column(spec.metric, names, values, today)
        if name in found:
            found[name] = replace(found[name], indexes=(*found[name].indexes, index))
            continue
        try:
            sql = compile_sql(spec.build([sa.column(n) for n in names], values, today))
        except (ValueError, TypeError, KeyError, AttributeError, sa.exc.SQLAlchemyError):
            continue
        found[name] = Condition(name, spec.metric, tuple(names), sql, (index,), values)
    return list(found.values())


def describe(conditions: Sequence[Condition], names: Sequence[str]) -> dict[str, Any]:
    """For the validation result: each flag column, the expectations that read it and its condition."""
    return {
        c.column: {"expectations": [names[i] for i in c.indexes], "metric": c.metric, "condition": c.sql}
        for c in conditions
    }
