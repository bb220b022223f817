"""Checksums of Chinese identifiers (GB 11643, GB 32100, GB 11714), in pure Python.

These are the reference implementations: the quality gate's SQL expressions and the GX
expectations are tested against them. python-stdnum is not used as the gate because its
``cn.ric`` rejects IDs whose district is younger than the birth date and its ``cn.uscc``
rejects letter-prefixed codes (see DOMAIN.md).
"""

from __future__ import annotations

import datetime as dt
import re

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

# ASCII digits only, whole string (``\d`` would admit full-width digits, ``$`` a final newline).
_RESIDENT_ID_18 = re.compile(r"[0-9]{17}[0-9X]")
_RESIDENT_ID_15 = re.compile(r"[0-9]{15}")


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 (ISO 7064 MOD 11-2) check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, RESIDENT_ID_WEIGHTS, strict=True))
    return RESIDENT_ID_CHECK[total % 11]


def resident_id_15_to_18(value: str) -> str:
    """Upgrade a legacy 15-digit resident ID: insert ``19`` before the year, add the check."""
    body = value[:6] + "19" + value[6:]
    return body + resident_id_check_char(body)


def is_valid_resident_id(value: object, *, today: dt.date | None = None, allow_15: bool = False) -> bool:
    """True when ``value`` is a well-formed resident ID with a real, past birth date.

    Never looks at whether the district existed in the birth year: the address code is the
    one in force when the number was issued.
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
    return resident_id_check_char(value[:17]) == value[17]


def org_code_check_char(first8: str) -> str:
    """The GB 11714 check character: 11 − Σ mod 11, where 10 → X and 11 → 0."""
    total = sum(ORG_CODE_ALPHABET.index(c) * w for c, w in zip(first8, ORG_CODE_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def is_valid_org_code(value: object) -> bool:
    """True for a GB 11714 organisation code, with or without the hyphen before the check."""
    if not isinstance(value, str):
        return False
    if len(value) == 10 and value[8] == "-":
        value = value[:8] + value[9]
    if len(value) != 9 or any(c not in ORG_CODE_ALPHABET for c in value[:8]):
        return False
    return org_code_check_char(value[:8]) == value[8]


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def is_valid_uscc(value: object) -> bool:
    """True for a GB 32100 unified social credit code, letter-prefixed authorities included."""
    if not isinstance(value, str) or len(value) != 18:
        return False
    if any(c not in USCC_ALPHABET for c in value):
        return False
    types = USCC_AUTHORITIES.get(value[0])
    if types is None or value[1] not in types:
        return False
    if not value[2:8].isascii() or not value[2:8].isdigit():
        return False
    return uscc_check_char(value[:17]) == value[17]


def uscc_problem(value: str) -> str | None:
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
    expected = uscc_check_char(value[:17])
    if expected != value[17]:
        return f"check character is {value[17]!r}, expected {expected!r}"
    return None
