"""Masking rules: the documented examples, and the SQL form agrees with the Python form."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.errors import SpecError
from pipelines.masking import (
    COMPOUND_SURNAMES,
    MASKING_KEY_ENV,
    MaskingKeyMissing,
    MaskRule,
    mask,
    mask_sql,
    masking_plan,
    rule_for,
)
from pipelines.spec import Column, load_spec

REPO = Path(__file__).resolve().parents[2]
_CON = duckdb.connect()


def sql(value: object, rule: MaskRule | str, key: str | None = None) -> str | None:
    """The SQL form, applied to one value."""
    row = _CON.execute(f"SELECT {mask_sql('v', rule, key=key)} FROM (SELECT ?::VARCHAR AS v)", [value]).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def both(value: str | None, rule: MaskRule | str) -> str | None:
    py, db = mask(value, rule), sql(value, rule)
    assert py == db, (value, rule, py, db)
    return py


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("张三丰", "张**"),
        ("张三", "张**"),
        ("欧阳娜娜", "欧阳**"),
        ("司马光", "司马**"),
        ("诸葛亮", "诸葛**"),
        ("欧阳", "欧**"),  # two characters: surname 欧, given name 阳
        (" 王芳\u3000", "王**"),  # padding (also the ideographic space) is ignored
        ("𠮷伟", "𠮷**"),  # a surname outside the BMP is one character
        ("", ""),
        (None, None),
    ],
)
def test_name_keeps_the_surname(value: str | None, expected: str | None) -> None:
    assert both(value, "name") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("13812345678", "138****5678"),
        ("+8613812345678", "138****5678"),
        ("+86 138 1234 5678", "138****5678"),
        ("138-1234-5678", "138****5678"),
        ("１３８１２３４５６７８", "138****5678"),  # full-width digits
        ("1381234567", "1**7"),  # not a mobile: only its first and last character
        ("无", "*"),
    ],
)
def test_mobile_keeps_three_and_four(value: str, expected: str) -> None:
    assert both(value, "mobile") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("310115198501010012", "310115********0012"),
        ("31011519850101001x", "310115********001X"),
        ("310115 19850101 0012", "310115********0012"),
        ("３１０１１５１９８５０１０１００１２", "310115********0012"),
        ("310115850101001", "310115******001"),  # legacy 15 digits
        ("31011519850101001", "3**1"),  # 17 digits: not an ID
    ],
)
def test_resident_id_keeps_six_and_four(value: str, expected: str) -> None:
    assert both(value, "resident_id") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("上海市浦东新区张江路88号", "上海市浦东新区***"),
        ("上海市崇明区堡镇人民路1号", "上海市崇明区***"),
        ("浦东新区张江路88号", "浦东新区***"),  # no city
        ("上海市张江路88号", "上海市***"),  # no district: the city is the first 市
        ("江苏省苏州市昆山市玉山镇同丰路1号", "江苏省苏州市昆山市***"),
        ("新疆维吾尔自治区乌鲁木齐市天山区解放路1号", "新疆维吾尔自治区乌鲁木齐市天山区***"),
        ("内蒙古自治区呼和浩特市新城区", "内蒙古自治区呼和浩特市新城区"),  # only down to the district: nothing hidden
        ("张江路88号", "***"),
        ("", ""),
    ],
)
def test_address_keeps_the_district(value: str, expected: str) -> None:
    assert both(value, "address") == expected


@pytest.mark.parametrize(
    ("value", "partial", "redact"),
    [("a", "*", "***"), ("ab", "a**", "***"), ("abc", "a**", "***"), ("abcdef", "a**f", "***"), (" ", "", "")],
)
def test_generic_rules(value: str, partial: str, redact: str) -> None:
    assert both(value, "partial") == partial
    assert both(value, "redact") == redact


def test_non_text_values_are_masked_in_their_text_form() -> None:
    import datetime as dt

    assert mask(dt.date(1990, 5, 1), "redact") == "***"
    assert mask(dt.date(1990, 5, 1), "partial") == "1**1"
    row = _CON.execute(f"SELECT {mask_sql('d', 'partial')} FROM (SELECT DATE '1990-05-01' AS d)").fetchone()
    assert row == ("1**1",)


def test_hash_is_keyed_hmac_sha256_in_both_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = hmac.new(b"city-secret", b"310115198501010012", hashlib.sha256).hexdigest()
    assert mask("310115198501010012", "hash", key="city-secret") == expected
    assert sql("310115198501010012", "hash", key="city-secret") == expected
    long_key = "k" * 100  # longer than the block: hashed first, as RFC 2104 says
    assert sql("张三", "hash", key=long_key) == hmac.new(long_key.encode(), "张三".encode(), hashlib.sha256).hexdigest()
    monkeypatch.setenv(MASKING_KEY_ENV, "from-env")
    assert mask("a", "hash") == sql("a", "hash") == hmac.new(b"from-env", b"a", hashlib.sha256).hexdigest()
    assert mask("a", "hash") != mask("a", "hash", key="other")
    assert mask(None, "hash") is None and sql(None, "hash") is None


def test_hash_without_a_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASKING_KEY_ENV, raising=False)
    with pytest.raises(MaskingKeyMissing, match=MASKING_KEY_ENV):
        mask("a", "hash")
    with pytest.raises(MaskingKeyMissing, match=MASKING_KEY_ENV):
        mask_sql("v", "hash")


def test_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError):
        mask("a", "scramble")


_ALPHABET = st.sampled_from(
    list("0123456789Xx+-  \u3000\t８６")
    + list("张王欧阳司马上海市浦东新区县省自治州路号镇")
    + ["𠮷", "a", "Z", "'", "\\", "%"]
)
_VALUES = st.one_of(
    st.text(_ALPHABET, max_size=40),
    st.text(max_size=30),
    st.builds(lambda a, b: a + b, st.sampled_from(COMPOUND_SURNAMES), st.text(_ALPHABET, max_size=4)),
    st.from_regex(r"\+?(86)? ?1[3-9]\d{9}", fullmatch=True),
    st.from_regex(r"[1-6]\d{16}[0-9Xx]|\d{15}", fullmatch=True),
)


@pytest.mark.parametrize("rule", [r for r in MaskRule if r is not MaskRule.HASH])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_VALUES)
def test_sql_and_python_agree(rule: MaskRule, value: str) -> None:
    if "\x00" in value:  # DuckDB strings cannot hold NUL
        return
    assert mask(value, rule) == sql(value, rule)


@settings(max_examples=100, deadline=None)
@given(value=st.text(max_size=30))
def test_hash_forms_agree(value: str) -> None:
    if "\x00" in value:
        return
    assert mask(value, "hash", key="k") == sql(value, "hash", key="k")


def test_sql_masks_a_column_in_one_query() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT '1' || lpad(CAST(i AS VARCHAR), 10, '0') AS m FROM range(200000) r(i)")
    rows = con.execute(f"SELECT count(*), count(DISTINCT {mask_sql('m', 'mobile')}) FROM t").fetchone()
    assert rows == (200000, 10000)  # 3 + 4 digits kept: the middle four vary


# --- choosing the rule -------------------------------------------------------------------------


def test_demo_specs_get_the_conventional_rules() -> None:
    hrss = load_spec(REPO / "datasets/hrss/insured_persons.yaml")
    assert masking_plan(hrss) == {
        "resident_id": MaskRule.RESIDENT_ID,
        "name": MaskRule.NAME,
        "mobile": MaskRule.MOBILE,
        "address": MaskRule.ADDRESS,
    }
    market = load_spec(REPO / "datasets/market_regulation/enterprise_registry.yaml")
    assert masking_plan(market) == {"legal_representative": MaskRule.NAME}
    bus = load_spec(REPO / "datasets/transport/bus_stops.yaml")
    assert masking_plan(bus) == {}


@pytest.mark.parametrize(
    ("name", "title", "type_", "expected"),
    [
        ("id_no", "证件号码", "string", MaskRule.RESIDENT_ID),
        ("holder", "持证人身份证号", "string", MaskRule.RESIDENT_ID),
        ("contact_phone", "联系电话", "string", MaskRule.MOBILE),
        ("legal_person", "法人", "string", MaskRule.NAME),
        ("person", "姓名", "string", MaskRule.NAME),
        ("residence", "户籍地", "string", MaskRule.ADDRESS),
        ("income", "年收入", "money", MaskRule.REDACT),
        ("born", "出生日期", "date", MaskRule.REDACT),
        ("remark", "备注", "text", MaskRule.PARTIAL),
    ],
)
def test_rule_inferred_from_name_title_and_type(name: str, title: str, type_: str, expected: MaskRule) -> None:
    column = Column(name=name, title=title, type=type_, sensitive=True)  # type: ignore[arg-type]
    assert rule_for(column) == expected


def test_checks_and_overrides_win_over_names() -> None:
    hrss = load_spec(REPO / "datasets/hrss/insured_persons.yaml")
    # the suite checks `mobile` with a regex only, the name decides; an override wins over everything
    assert masking_plan(hrss, {"name": "redact", "mobile": "hash"})["name"] is MaskRule.REDACT
    assert masking_plan(hrss, {"mobile": "hash"})["mobile"] is MaskRule.HASH
    renamed = hrss.model_copy(
        update={
            "columns": [c.model_copy(update={"name": "pid"}) if c.name == "resident_id" else c for c in hrss.columns]
        }
    )
    # `pid` says nothing by its name; cleanse.resident_ids still names resident_id, so only the title decides
    assert masking_plan(renamed)["pid"] is MaskRule.RESIDENT_ID
    assert rule_for(hrss.columns[0], spec=hrss, override="partial") is MaskRule.PARTIAL


def test_bad_overrides_are_spec_errors() -> None:
    hrss = load_spec(REPO / "datasets/hrss/insured_persons.yaml")
    with pytest.raises(SpecError, match="unknown column"):
        masking_plan(hrss, {"nmae": "name"})
    with pytest.raises(SpecError, match="unknown masking rule 'scramble'"):
        masking_plan(hrss, {"name": "scramble"})
