"""Checks of Chinese identifiers (GB 11643, GB 32100, GB 11714, mobile numbers), in pure Python.

These are the reference implementations: the quality gate's SQL expressions and the GX
expectations are tested against them. python-stdnum is not used as the gate because its
``cn.ric`` rejects IDs whose district is younger than the birth date and its ``cn.uscc``
rejects letter-prefixed codes (see DOMAIN.md). Every check takes the value exactly as
stored: ASCII only, no surrounding spaces, no lower-case letters (cleansing normalises
those first). The GB/T 2260 area tables are in :mod:`pipelines.divisions`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from typing import Literal

RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RESIDENT_ID_CHECK = "10X98765432"

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# Registering authority (position 1) -> the entity-type codes (position 2) it may issue.
USCC_AUTHORITIES: dict[str, str] = {
    "1": "1239",  # 机构编制
    "2": "19",  # 外交
    "3": "1239",  # 司法行政
    "4": "19",  # 文化
    "5": "1239",  # 民政
    "6": "129",  # 旅游
    "7": "129",  # 宗教
    "8": "129",  # 工会
    "9": "123",  # 工商 (市场监管)
    "A": "19",  # 中央军委改革和编制办公室
    "N": "1239",  # 农业
    "Y": "1",  # 其他
}

ORG_CODE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

#: What the 17th digit of an 18-digit ID (the 15th of a 15-digit one) says: odd is male.
MALE_DIGITS = "13579"

# ASCII digits only, whole string (``\d`` would admit full-width digits, ``$`` a final newline).
_RESIDENT_ID_18 = re.compile(r"[0-9]{17}[0-9X]")
_RESIDENT_ID_15 = re.compile(r"[0-9]{15}")
_ORG_CODE = re.compile(r"([0-9A-Z]{8})(-?)([0-9X])")
#: 11 digits starting 1[3-9], optionally after the country code +86 or 86.
_MOBILE = re.compile(r"(\+?86)?(1[3-9][0-9]{9})")
#: An ISO 8601 date, optionally followed by a time ("1990-05-01", "1990-05-01T08:00:00").
_ISO_DATE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[T ].*)?", re.DOTALL)

HyphenRule = Literal["optional", "required", "forbidden"]
HYPHEN_RULES: tuple[HyphenRule, ...] = ("optional", "required", "forbidden")


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 (ISO 7064 MOD 11-2) check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, RESIDENT_ID_WEIGHTS, strict=True))
    return RESIDENT_ID_CHECK[total % 11]


def resident_id_15_to_18(value: str) -> str:
    """Upgrade a legacy 15-digit resident ID: insert ``19`` before the year, add the check."""
    body = value[:6] + "19" + value[6:]
    return body + resident_id_check_char(body)


def is_valid_resident_id(
    value: object,
    *,
    today: dt.date | None = None,
    allow_15: bool = False,
    area_codes: Collection[str] | None = None,
) -> bool:
    """True when ``value`` is a well-formed resident ID with a real, past birth date.

    ``area_codes``, when given, is the set of known GB/T 2260 codes the first six digits must
    be in (see :func:`pipelines.divisions.codes`). Never looks at whether the district existed
    in the birth year: the address code is the one in force when the number was issued.
    """
    if not isinstance(value, str):
        return False
    if allow_15 and _RESIDENT_ID_15.fullmatch(value):
        value = resident_id_15_to_18(value)
    if not _RESIDENT_ID_18.fullmatch(value):
        return False
    try:
        born = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if born > (today or dt.datetime.now(dt.UTC).date()) or born.year < 1800:
        return False
    if area_codes is not None and value[:6] not in area_codes:
        return False
    return resident_id_check_char(value[:17]) == value[17]


def resident_id_birth_and_sex(
    value: object, *, today: dt.date | None = None, allow_15: bool = True
) -> tuple[str, bool] | None:
    """The birth date (``YYYY-MM-DD``) and sex (True: male) a valid resident ID carries.

    None when ``value`` is not a valid ID (:func:`is_valid_resident_id`). The sex is the
    parity of the 17th digit of an 18-digit ID, of the 15th of a legacy 15-digit one.
    """
    if not is_valid_resident_id(value, today=today, allow_15=allow_15):
        return None
    assert isinstance(value, str)  # checked above
    if len(value) == 15:
        return f"19{value[6:8]}-{value[8:10]}-{value[10:12]}", value[14] in MALE_DIGITS
    return f"{value[6:10]}-{value[10:12]}-{value[12:14]}", value[16] in MALE_DIGITS


def iso_date_text(value: str) -> str | None:
    """The ``YYYY-MM-DD`` part of an ISO 8601 date or date-time text, None for any other text."""
    match = _ISO_DATE.fullmatch(value)
    return match.group(1) if match else None


def org_code_check_char(first8: str) -> str:
    """The GB 11714 check character: 11 − Σ mod 11, where 10 → X and 11 → 0."""
    total = sum(ORG_CODE_ALPHABET.index(c) * w for c, w in zip(first8, ORG_CODE_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def is_valid_org_code(value: object, *, hyphen: HyphenRule = "optional") -> bool:
    """True for a GB 11714 organisation code: 8 characters over ``0-9A-Z`` and the check character.

    ``hyphen``: ``optional`` accepts ``XXXXXXXXX`` and ``XXXXXXXX-X``, ``required`` only the
    hyphenated form, ``forbidden`` only the 9-character one.
    """
    if not isinstance(value, str):
        return False
    match = _ORG_CODE.fullmatch(value)
    if match is None:
        return False
    body, dash, check = match.groups()
    if (hyphen == "required" and not dash) or (hyphen == "forbidden" and dash):
        return False
    return org_code_check_char(body) == check


def org_code_problem(value: str, *, hyphen: HyphenRule = "optional") -> str | None:
    """A sentence saying what is wrong with an organisation code, or None when it is valid."""
    match = _ORG_CODE.fullmatch(value)
    if match is None:
        return "is not 8 characters over 0-9 and A-Z followed by a check character (0-9 or X), optionally after '-'"
    body, dash, check = match.groups()
    if hyphen == "required" and not dash:
        return "has no hyphen before the check character (XXXXXXXX-X is required)"
    if hyphen == "forbidden" and dash:
        return "has a hyphen before the check character (XXXXXXXXX without it is required)"
    expected = org_code_check_char(body)
    if expected != check:
        return f"check character is {check!r}, expected {expected!r}"
    return None


def is_valid_cn_mobile(value: object, *, allow_country_code: bool = True) -> bool:
    """True for a mainland mobile number: 11 digits starting ``1[3-9]``, optionally after ``+86``/``86``."""
    if not isinstance(value, str):
        return False
    match = _MOBILE.fullmatch(value)
    return match is not None and (allow_country_code or match.group(1) is None)


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def is_valid_uscc(value: object, *, check_org_code: bool = True) -> bool:
    """True for a GB 32100 unified social credit code, letter-prefixed authorities included.

    Checks the alphabet, the registering authority and the entity types it issues, the
    6-digit area code, the organisation code in positions 9-17 (its own GB 11714 check
    character; ``check_org_code=False`` skips that for registries with non-conforming legacy
    codes) and the MOD 31 check character.
    """
    if not isinstance(value, str) or len(value) != 18:
        return False
    if any(c not in USCC_ALPHABET for c in value):
        return False
    types = USCC_AUTHORITIES.get(value[0])
    if types is None or value[1] not in types:
        return False
    if not value[2:8].isascii() or not value[2:8].isdigit():
        return False
    if check_org_code and org_code_check_char(value[8:16]) != value[16]:
        return False
    return uscc_check_char(value[:17]) == value[17]


def uscc_problem(value: str, *, check_org_code: bool = True) -> str | None:
    """A sentence saying what is wrong with a USCC, or None when it is valid."""
    if len(value) != 18:
        return f"has {len(value)} characters, a USCC has 18"
    bad = [c for c in value if c not in USCC_ALPHABET]
    if bad:
        return f"contains {''.join(bad)!r}, not in the USCC alphabet (I, O, S, V, Z are never used)"
    types = USCC_AUTHORITIES.get(value[0])
    if types is None:
        return f"registering-authority code {value[0]!r} does not exist"
    if value[1] not in types:
        return f"entity-type code {value[1]!r} is not issued by authority {value[0]!r}"
    if not value[2:8].isdigit():
        return f"area code {value[2:8]!r} is not six digits"
    if check_org_code:
        org_check = org_code_check_char(value[8:16])
        if org_check != value[16]:
            return (
                f"organisation code {value[8:17]!r} (positions 9-17) fails its GB 11714 check: "
                f"position 17 is {value[16]!r}, expected {org_check!r}"
            )
    expected = uscc_check_char(value[:17])
    if expected != value[17]:
        return f"check character is {value[17]!r}, expected {expected!r}"
    return None
