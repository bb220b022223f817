r"""Special cases of the reference identifier checks in ``pipelines.identifiers`` (pure Python).

These functions are what the custom expectations are held to, so their edge cases are pinned
here: leap days, future and pre-1800 birth dates, districts younger than the holder, legacy
15-digit IDs, letter-prefixed USCCs, the 11 → ``0`` rule of GB 11714, and hostile strings
(a trailing newline, full-width digits) that a careless ``\d``/``$`` regex would let through.
"""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.identifiers import (
    USCC_ALPHABET,
    USCC_AUTHORITIES,
    is_valid_org_code,
    is_valid_resident_id,
    is_valid_uscc,
    org_code_check_char,
    resident_id_15_to_18,
    resident_id_check_char,
    uscc_check_char,
    uscc_problem,
)

TODAY = dt.date(2025, 6, 30)


def rid(address: str, born: str, sequence: str = "123") -> str:
    """A resident ID with the right check character."""
    body = address + born + sequence
    return body + resident_id_check_char(body)


def uscc(first17: str) -> str:
    return first17 + uscc_check_char(first17)


# --- resident ID (GB 11643) ----------------------------------------------------------------------


def test_the_standard_example_is_valid() -> None:
    assert is_valid_resident_id("11010519491231002X", today=TODAY)
    assert resident_id_check_char("11010519491231002") == "X"


def test_pudong_id_of_someone_born_before_pudong_existed_is_valid() -> None:
    # 310115 (浦东新区) dates from 1993; the code in force at issue is what the ID carries.
    assert is_valid_resident_id(rid("310115", "19800101"), today=TODAY)


@pytest.mark.parametrize(
    ("born", "valid"),
    [
        ("20000229", True),  # divisible by 400: leap
        ("19000229", False),  # divisible by 100 only: not leap
        ("20240229", True),
        ("20230229", False),
        ("19990431", False),  # April has 30 days
        ("19991301", False),
        ("19990001", False),
        ("19990100", False),
        ("18000101", True),  # the earliest accepted year
        ("17991231", False),
        ("00000101", False),
    ],
)
def test_birth_date_must_be_a_real_calendar_date(born: str, valid: bool) -> None:
    assert is_valid_resident_id(rid("110105", born), today=TODAY) is valid


def test_birth_date_may_be_today_but_not_tomorrow() -> None:
    assert is_valid_resident_id(rid("110105", TODAY.strftime("%Y%m%d")), today=TODAY)
    tomorrow = TODAY + dt.timedelta(days=1)
    assert not is_valid_resident_id(rid("110105", tomorrow.strftime("%Y%m%d")), today=TODAY)


def test_wrong_check_character_and_lower_case_x_are_refused() -> None:
    good = "11010519491231002X"
    assert not is_valid_resident_id(good[:-1] + "1", today=TODAY)
    assert not is_valid_resident_id(good[:-1] + "x", today=TODAY)


@pytest.mark.parametrize("value", ["", "1101051949123100", "11010519491231002X1", "1101051949123100 X", None, 110105])
def test_malformed_values_are_refused(value: object) -> None:
    assert not is_valid_resident_id(value, today=TODAY)


def test_legacy_15_digit_ids_only_with_allow_15() -> None:
    legacy = "110105491231002"
    assert resident_id_15_to_18(legacy) == "11010519491231002X"
    assert not is_valid_resident_id(legacy, today=TODAY)
    assert is_valid_resident_id(legacy, today=TODAY, allow_15=True)
    assert not is_valid_resident_id("110105490231002", today=TODAY, allow_15=True)  # 1949-02-31


def test_reference_refuses_a_trailing_newline() -> None:
    assert not is_valid_resident_id("11010519491231002X\n", today=TODAY)


def test_reference_refuses_full_width_digits() -> None:
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in "11010519491231002X")
    assert not is_valid_resident_id(full_width, today=TODAY)


def test_reference_refuses_a_15_digit_id_with_a_newline() -> None:
    assert not is_valid_resident_id("110105491231002\n", today=TODAY, allow_15=True)


# --- USCC (GB 32100) -----------------------------------------------------------------------------


def test_a_market_regulation_uscc_is_valid() -> None:
    code = uscc("91310115MA1H7Q8R2")
    assert is_valid_uscc(code)
    assert uscc_problem(code) is None


@pytest.mark.parametrize(("authority", "kind"), [("A", "1"), ("A", "9"), ("N", "2"), ("N", "9"), ("Y", "1")])
def test_letter_prefixed_authorities_are_valid(authority: str, kind: str) -> None:
    code = uscc(authority + kind + "310115" + "MA1H7Q8R2")
    assert is_valid_uscc(code), uscc_problem(code)


@pytest.mark.parametrize(("authority", "kind"), [("A", "2"), ("Y", "2"), ("9", "9"), ("B", "1"), ("0", "1")])
def test_unknown_authority_or_entity_type_is_refused(authority: str, kind: str) -> None:
    code = uscc(authority + kind + "310115" + "MA1H7Q8R2")
    assert not is_valid_uscc(code)
    assert uscc_problem(code) is not None


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_letters_outside_the_alphabet_are_refused(letter: str) -> None:
    first17 = "91310115MA1H7Q8R2"
    code = first17 + uscc_check_char(first17)
    bad = code[:10] + letter + code[11:]
    assert not is_valid_uscc(bad)
    assert "not in the USCC alphabet" in (uscc_problem(bad) or "")


def test_uscc_area_must_be_digits_and_check_must_match() -> None:
    code = uscc("91310115MA1H7Q8R2")
    assert not is_valid_uscc(code[:5] + "A" + code[6:])
    wrong = USCC_ALPHABET[(USCC_ALPHABET.index(code[-1]) + 1) % 31]
    assert not is_valid_uscc(code[:-1] + wrong)
    assert "check character" in (uscc_problem(code[:-1] + wrong) or "")
    assert not is_valid_uscc(code.lower())


def test_every_authority_has_entity_types() -> None:
    assert set(USCC_AUTHORITIES) == set("123456789ANY")
    assert all(types for types in USCC_AUTHORITIES.values())


# --- organisation code (GB 11714) ----------------------------------------------------------------


def _org_with_remainder(target: int) -> str:
    """Eight characters whose weighted sum is ``target`` mod 11."""
    for n in range(100_000):
        body = f"{n:08d}"
        if sum(int(c) * w for c, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11 == target:
            return body
    raise AssertionError(target)


def test_org_code_check_11_is_zero_and_10_is_x() -> None:
    assert org_code_check_char(_org_with_remainder(0)) == "0"  # 11 - 0 = 11 -> 0
    assert org_code_check_char(_org_with_remainder(1)) == "X"  # 11 - 1 = 10 -> X
    assert org_code_check_char(_org_with_remainder(2)) == "9"


def test_org_code_with_and_without_hyphen() -> None:
    body = _org_with_remainder(5)
    code = body + org_code_check_char(body)
    assert is_valid_org_code(code)
    assert is_valid_org_code(body + "-" + code[-1])
    assert not is_valid_org_code(body + "-" + ("0" if code[-1] != "0" else "1"))
    assert not is_valid_org_code(body[:7])
