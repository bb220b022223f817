"""Masking (脱敏) of sensitive values: one set of rules, as DuckDB SQL and in Python.

The rules follow the common conventions of DOMAIN.md ("Masking"); no national rule fixes them,
so each column's rule can be chosen. Every rule has two forms that give the same text for the
same input (``tests/quarantine/test_masking.py`` compares them on generated values):

- :func:`mask_sql` returns a self-contained DuckDB expression, so millions of rows are masked
  inside one query (no Python per row, nothing to register on the connection);
- :func:`mask` masks one value in Python (small outputs, messages, checks).

=============  ===================================  ==========================================
rule           example                              kept
=============  ===================================  ==========================================
``name``       ``张三丰`` → ``张**``                  the surname (two characters for compound
                                                    surnames such as 欧阳, 司马, 诸葛)
``mobile``     ``13812345678`` → ``138****5678``    first 3 and last 4 digits (``+86``/``86``,
                                                    spaces, dashes and full-width digits are
                                                    normalised first)
``resident_id`` ``310115198501010012`` →             first 6 and last 4 (18 digits); first 6 and
               ``310115********0012``               last 3 (legacy 15 digits)
``address``    ``上海市浦东新区张江路88号`` →        up to and including the first 区/县/市/旗
               ``上海市浦东新区***``                  after the province and city
``partial``    ``abcdef`` → ``a**f``                first and last character (first only for
                                                    2–3 characters, nothing for 1)
``redact``     anything → ``***``                   nothing
``hash``       HMAC-SHA256, 64 hex digits           nothing, but equal values give equal hashes
                                                    (join keys); keyed by ``GOVDATA_MASKING_KEY``
=============  ===================================  ==========================================

Common to all rules: NULL stays NULL; blanks around the value (also the ideographic space) are
ignored; a value that is empty after that stays empty (an empty cell is not personal data, and
the data officer must see that it is empty). A value that does not have the shape its rule
expects (a mobile of 10 digits, an ID of 17) is masked with ``partial``. ``hash`` alone works on
the value exactly as given, so that equal keys give equal hashes.

Which rule a column gets (:func:`rule_for`, :func:`masking_plan`): an explicit choice (the
``overrides`` argument, or a ``masking`` option on the spec's column when the spec has one),
else what the spec's checks say (``cleanse.resident_ids``, resident-ID and mobile expectations in
the suite), else the column's name and Chinese title (姓名/法定代表人, 手机/电话, 地址/住所,
身份证), else ``redact`` for non-text types and ``partial`` for text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pipelines.errors import SpecError, TerminalError
from pipelines.spec import Column, DatasetSpec

log = logging.getLogger(__name__)

#: The environment variable holding the key of the ``hash`` rule (any string; keep it secret).
MASKING_KEY_ENV = "GOVDATA_MASKING_KEY"


class MaskRule(StrEnum):
    """How a sensitive value is shown outside its home (landing, staging, the published data)."""

    NAME = "name"
    MOBILE = "mobile"
    RESIDENT_ID = "resident_id"
    ADDRESS = "address"
    PARTIAL = "partial"
    REDACT = "redact"
    HASH = "hash"


class MaskingKeyMissing(TerminalError):
    """The ``hash`` rule was asked for but no key is configured."""


#: Two-character (复姓) surnames: a name starting with one keeps both characters.
COMPOUND_SURNAMES: tuple[str, ...] = (
    "欧阳", "太史", "端木", "上官", "司马", "东方", "独孤", "南宫", "万俟", "闻人", "夏侯", "诸葛",
    "尉迟", "公羊", "赫连", "澹台", "皇甫", "宗政", "濮阳", "公冶", "太叔", "申屠", "公孙", "慕容",
    "仲孙", "钟离", "长孙", "宇文", "司徒", "鲜于", "司空", "闾丘", "子车", "亓官", "司寇", "巫马",
    "公西", "颛孙", "壤驷", "公良", "漆雕", "乐正", "宰父", "谷梁", "拓跋", "夹谷", "轩辕", "令狐",
    "段干", "百里", "呼延", "东郭", "南门", "羊舌", "微生", "公户", "公玉", "公仪", "梁丘", "公仲",
    "公上", "公门", "公山", "公坚", "左丘", "公伯", "西门", "公祖", "第五", "公乘", "贯丘", "公皙",
    "南荣", "东里", "东宫", "仲长", "子书", "子桑", "即墨", "达奚", "褚师",
)  # fmt: skip

#: Characters ignored around a value (as the cleanse step trims them).
BLANKS = " \t\r\n\u3000\u00a0\ufeff"
_FULL = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
_HALF = "".join(chr(c) for c in range(0x21, 0x7F)) + " "
_TO_HALF = str.maketrans(_FULL, _HALF)
#: Removed inside mobiles and IDs before their shape is checked (``138 1234 5678``, ``138-…``).
_SEPARATORS = "[ \t\r\n\u3000\u00a0\ufeff-]"
_SEPARATORS_RE2 = "[ \\t\\r\\n\\x{3000}\\x{a0}\\x{feff}-]"
_MOBILE_PREFIX = r"^(?:\+?86|0086)(1[0-9]{10})$"
_MOBILE = r"^[0-9]{11}$"
_ID18 = r"^[0-9]{17}[0-9X]$"
_ID15 = r"^[0-9]{15}$"
#: Province (…省, …自治区), then city (…市, …自治州, …地区, …盟), both optional, then the first
#: 区/县/市/旗. Lazy and bounded, so it stops at the first marker; the same text for Python's re
#: and DuckDB's RE2 (both leftmost-first).
ADDRESS_PATTERN = r"^((?:.{2,8}?省|.{2,12}?自治区)?(?:.{1,10}?(?:市|自治州|地区|盟))?.{1,10}?(?:区|县|市|旗))"
MASK = "***"

_PY_ADDRESS = re.compile(ADDRESS_PATTERN)
_PY_SEPARATORS = re.compile(_SEPARATORS)
_PY_MOBILE_PREFIX = re.compile(_MOBILE_PREFIX)


def _sql_lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- Python ------------------------------------------------------------------------------------


def as_text(value: Any) -> str | None:
    """The text DuckDB's ``CAST(value AS VARCHAR)`` gives for the common Python types."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _partial(t: str) -> str:
    if t == "":
        return ""
    if len(t) == 1:
        return "*"
    if len(t) <= 3:
        return t[0] + "**"
    return t[0] + "**" + t[-1]


def _name(t: str) -> str:
    if t == "":
        return ""
    if len(t) >= 3 and t[:2] in COMPOUND_SURNAMES:
        return t[:2] + "**"
    return t[0] + "**"


def _compact(t: str) -> str:
    return _PY_SEPARATORS.sub("", t.translate(_TO_HALF))


def _mobile(t: str) -> str:
    n = _PY_MOBILE_PREFIX.sub(r"\1", _compact(t))
    if re.fullmatch(r"[0-9]{11}", n):
        return n[:3] + "****" + n[7:]
    return _partial(t)


def _resident_id(t: str) -> str:
    n = _compact(t).upper()
    if re.fullmatch(r"[0-9]{17}[0-9X]", n):
        return n[:6] + "********" + n[14:]
    if re.fullmatch(r"[0-9]{15}", n):
        return n[:6] + "******" + n[12:]
    return _partial(t)


def _address(t: str) -> str:
    if t == "":
        return ""
    match = _PY_ADDRESS.match(t)
    kept = match.group(1) if match else ""
    if kept == "":
        return MASK
    return t if kept == t else kept + MASK


def masking_key(key: str | bytes | None = None) -> bytes:
    """The ``hash`` rule's key: ``key`` if given, else ``$GOVDATA_MASKING_KEY``."""
    if key is None:
        key = os.environ.get(MASKING_KEY_ENV) or None
    if key is None:
        raise MaskingKeyMissing(
            f"the hash masking rule needs a key, and {MASKING_KEY_ENV} is not set",
            hint=f"set {MASKING_KEY_ENV} to a long random secret (the same one wherever hashes must match)",
        )
    return key.encode("utf-8") if isinstance(key, str) else key


def mask(value: Any, rule: MaskRule | str, *, key: str | bytes | None = None) -> str | None:
    """``value`` masked by ``rule`` (text; other types are masked in their text form)."""
    rule = MaskRule(rule)
    text = as_text(value)
    if text is None:
        return None
    if rule is MaskRule.HASH:
        return hmac.new(masking_key(key), text.encode("utf-8"), hashlib.sha256).hexdigest()
    t = text.strip(BLANKS)
    if rule is MaskRule.NAME:
        return _name(t)
    if rule is MaskRule.MOBILE:
        return _mobile(t)
    if rule is MaskRule.RESIDENT_ID:
        return _resident_id(t)
    if rule is MaskRule.ADDRESS:
        return _address(t)
    if rule is MaskRule.PARTIAL:
        return _partial(t)
    return "" if t == "" else MASK


# --- DuckDB SQL --------------------------------------------------------------------------------


def _sql_partial(t: str) -> str:
    return (
        f"CASE WHEN {t} = '' THEN '' WHEN length({t}) = 1 THEN '*' "
        f"WHEN length({t}) <= 3 THEN substr({t}, 1, 1) || '**' "
        f"ELSE substr({t}, 1, 1) || '**' || substr({t}, length({t}), 1) END"
    )


def _sql_let(value: str, name: str, body: str) -> str:
    """``body`` with the lambda parameter ``name`` bound to ``value``: ``value`` is computed once per row.

    DuckDB shares no repeated subexpression inside a CASE, and the normalised text is used
    up to six times (``translate`` is DuckDB's slowest string function).
    """
    return f"list_transform([{value}], lambda {name}: {body})[1]"


def _sql_compact(t: str) -> str:
    # translate only text with a non-ASCII character (bytes > characters): it is slow, and
    # ASCII text has no full-width character to map.
    halfwidth = (
        f"CASE WHEN strlen({t}) = length({t}) THEN {t} ELSE translate({t}, {_sql_lit(_FULL)}, {_sql_lit(_HALF)}) END"
    )
    return f"regexp_replace({halfwidth}, {_sql_lit(_SEPARATORS_RE2)}, '', 'g')"


def _sql_hmac(v: str, key: bytes) -> str:
    """HMAC-SHA256 (RFC 2104) from DuckDB's sha256, the key's pads as BLOB literals."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = bytes(b ^ 0x36 for b in key).hex()
    outer = bytes(b ^ 0x5C for b in key).hex()
    return f"sha256(unhex('{outer}') || unhex(sha256(unhex('{inner}') || encode({v}))))"


def mask_sql(expr: str, rule: MaskRule | str, *, key: str | bytes | None = None) -> str:
    """A DuckDB expression masking the SQL expression ``expr`` (any type) by ``rule``.

    ``expr`` is usually a quoted column name; it is repeated inside the result, so pass a
    column or a cheap expression. The ``hash`` rule embeds the key's HMAC pads in the SQL:
    never log the returned text.
    """
    rule = MaskRule(rule)
    v = f"CAST({expr} AS VARCHAR)"
    if rule is MaskRule.HASH:
        return f"CASE WHEN {v} IS NULL THEN NULL ELSE {_sql_hmac(v, masking_key(key))} END"
    t = f"trim({v}, {_sql_lit(BLANKS)})"
    if rule is MaskRule.NAME:
        compound = "(" + ", ".join(_sql_lit(s) for s in COMPOUND_SURNAMES) + ")"
        body = (
            f"CASE WHEN {t} = '' THEN '' WHEN length({t}) >= 3 AND substr({t}, 1, 2) IN {compound} "
            f"THEN substr({t}, 1, 2) || '**' ELSE substr({t}, 1, 1) || '**' END"
        )
    elif rule is MaskRule.MOBILE:
        n, tt = "govdata_n", "govdata_t"
        body = _sql_let(
            t,
            tt,
            _sql_let(
                f"regexp_replace({_sql_compact(tt)}, {_sql_lit(_MOBILE_PREFIX)}, '\\1')",
                n,
                f"CASE WHEN regexp_matches({n}, {_sql_lit(_MOBILE)}) "
                f"THEN substr({n}, 1, 3) || '****' || substr({n}, 8, 4) ELSE {_sql_partial(tt)} END",
            ),
        )
    elif rule is MaskRule.RESIDENT_ID:
        n, tt = "govdata_n", "govdata_t"
        body = _sql_let(
            t,
            tt,
            _sql_let(
                f"upper({_sql_compact(tt)})",
                n,
                f"CASE WHEN regexp_matches({n}, {_sql_lit(_ID18)}) "
                f"THEN substr({n}, 1, 6) || '********' || substr({n}, 15, 4) "
                f"WHEN regexp_matches({n}, {_sql_lit(_ID15)}) THEN substr({n}, 1, 6) || '******' || substr({n}, 13, 3) "
                f"ELSE {_sql_partial(tt)} END",
            ),
        )
    elif rule is MaskRule.ADDRESS:
        kept = f"regexp_extract({t}, {_sql_lit(ADDRESS_PATTERN)}, 1)"
        body = (
            f"CASE WHEN {t} = '' THEN '' WHEN {kept} = '' THEN '{MASK}' "
            f"WHEN {kept} = {t} THEN {t} ELSE {kept} || '{MASK}' END"
        )
    elif rule is MaskRule.PARTIAL:
        body = _sql_partial(t)
    else:
        body = f"CASE WHEN {t} = '' THEN '' ELSE '{MASK}' END"
    return f"(CASE WHEN {v} IS NULL THEN NULL ELSE ({body}) END)"


# --- choosing a rule per column ----------------------------------------------------------------

_NAME_WORDS = re.compile(r"(^|_)(name|full_name|person_name|legal_representative|legal_person|contact|contact_person)$")
_NAME_TITLES = ("姓名", "法定代表人", "法人代表", "联系人", "负责人", "经办人", "监护人")
_MOBILE_WORDS = re.compile(r"(^|_)(mobile|cellphone|phone|tel|telephone)(_|$)")
_MOBILE_TITLES = ("手机", "电话", "联系方式")
_ID_WORDS = re.compile(r"(^|_)(resident_id|id_card|idcard|id_no|id_number|sfzh|identity_no|citizen_id)(_|$)")
_ID_TITLES = ("公民身份号码", "身份证")
_ADDRESS_WORDS = re.compile(r"(^|_)(address|addr|residence|domicile)(_|$)")
_ADDRESS_TITLES = ("地址", "住址", "住所", "居住地", "户籍地")
_TEXT_TYPES = ("string", "text")
_CHECK_RULES = {
    "expect_column_values_to_be_valid_cn_resident_id": MaskRule.RESIDENT_ID,
    "expect_column_values_to_be_valid_cn_mobile": MaskRule.MOBILE,
}


def _explicit(value: object, where: str) -> MaskRule:
    try:
        return MaskRule(str(value))
    except ValueError:
        raise SpecError(
            f"{where}: unknown masking rule {value!r}",
            hint=f"use one of: {', '.join(r.value for r in MaskRule)}",
        ) from None


def _checked_rules(spec: DatasetSpec) -> dict[str, MaskRule]:
    """Rules implied by the spec's checks: resident-ID cleansing and identifier expectations."""
    rules = dict.fromkeys(spec.cleanse.resident_ids, MaskRule.RESIDENT_ID)
    try:
        suite_path = spec.suite_path()
    except SpecError:
        return rules
    if not suite_path.is_file():
        return rules
    from pipelines.suites import load_suite

    try:
        entries = load_suite(suite_path)["expectations"]
    except SpecError as exc:  # the quality step reports a broken suite; masking still works without it
        log.debug("masking: suite %s not read: %s", suite_path, exc.message)
        return rules
    for entry in entries:
        rule = _CHECK_RULES.get(str(entry.get("type")))
        column = (entry.get("kwargs") or {}).get("column")
        if rule is not None and isinstance(column, str):
            rules.setdefault(column, rule)
    return rules


def _choose(column: Column, where: str, override: object, checked: Mapping[str, MaskRule]) -> MaskRule:
    if override is not None:
        return _explicit(override, where)
    declared = getattr(column, "masking", None)  # a spec-level choice, when the spec model has one
    if declared:
        return _explicit(declared, where)
    if column.name in checked:
        return checked[column.name]
    return _inferred(column.name, column.title or "", column.type)


def rule_for(column: Column, *, spec: DatasetSpec | None = None, override: MaskRule | str | None = None) -> MaskRule:
    """The masking rule for one column (a :class:`pipelines.spec.Column`), see the module doc."""
    where = f"{(spec.path or spec.id) if spec is not None else 'spec'}: column {column.name}"
    return _choose(column, where, override, _checked_rules(spec) if spec is not None else {})


def _inferred(name: str, title: str, type_: str) -> MaskRule:
    if _ID_WORDS.search(name) or any(t in title for t in _ID_TITLES):
        return MaskRule.RESIDENT_ID
    if _MOBILE_WORDS.search(name) or any(t in title for t in _MOBILE_TITLES):
        return MaskRule.MOBILE
    if _ADDRESS_WORDS.search(name) or any(t in title for t in _ADDRESS_TITLES):
        return MaskRule.ADDRESS
    if _NAME_WORDS.search(name) or any(t in title for t in _NAME_TITLES):
        return MaskRule.NAME
    return MaskRule.PARTIAL if type_ in _TEXT_TYPES else MaskRule.REDACT


def masking_plan(spec: DatasetSpec, overrides: Mapping[str, MaskRule | str] | None = None) -> dict[str, MaskRule]:
    """The rule of every sensitive column of ``spec`` (a :class:`pipelines.spec.DatasetSpec`).

    ``overrides`` (column → rule) wins over everything else, e.g. a grant's own choice at
    delivery. An override for a column the spec does not declare is an error.
    """
    overrides = dict(overrides or {})
    known = {c.name for c in spec.columns}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SpecError(
            f"masking rules given for unknown column(s): {', '.join(unknown)}",
            hint=f"the columns of {spec.id} are: {', '.join(c.name for c in spec.columns)}",
        )
    checked = _checked_rules(spec)
    return {
        c.name: _choose(c, f"{spec.path or spec.id}: column {c.name}", overrides.get(c.name), checked)
        for c in spec.columns
        if c.sensitive
    }
