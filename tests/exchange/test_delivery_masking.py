"""Masking at delivery: per grant and data item, keys never masked into collisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from exchange.delivery_masking import mask_for_grant
from pipelines.errors import SchemaDriftError, SpecError, TerminalError
from pipelines.files import sha256_file
from pipelines.masking import MASKING_KEY_ENV, MaskingKeyMissing, MaskRule, mask

KEY = "delivery-test-key"

NAMES = ["张三丰", "欧阳娜娜", "诸葛亮", "覃小明", "亓官", "", None, " 王五 ", "司马懿", "巫马"]
MOBILES = [
    "+86 13812345678",
    "8613812345678",
    "138 1234 5678",
    "１３８１２３４５６７８",
    "1381234567",
    "",
    None,
    "0086-139-0000-1111",
    "13900001111",
    "+8613900001111",
]
IDS = [
    "310115198501010012",
    "31011519850101001x",
    "310115850101001",
    "31011519850101001",
    "",
    None,
    " 110105194912310021 ",
    "440524188001010014",
    "310115 19850101 0012",
    "11010519491231002X",
]
ADDRESSES = [
    "上海市浦东新区张江路88号",
    "北京市海淀区中关村大街1号",
    "内蒙古自治区呼和浩特市新城区新华大街1号",
    "",
    None,
    "浙江省杭州市西湖区文三路",
    "上海市浦东新区",
    "某地某处",
    "广东省深圳市南山区科技园",
    "新疆维吾尔自治区乌鲁木齐市天山区",
]
PIDS = [f"P{i:03d}" for i in range(10)]
SCHEMA: list[dict[str, Any]] = [
    {"name": "pid", "title": "编号", "type": "string", "primary_key": True, "sensitive": False},
    {"name": "person_name", "title": "姓名", "type": "string", "primary_key": False, "sensitive": True},
    {"name": "mobile", "title": "手机号码", "type": "string", "primary_key": False, "sensitive": True},
    {"name": "resident_id", "title": "公民身份号码", "type": "string", "primary_key": False, "sensitive": True},
    {"name": "address", "title": "住址", "type": "string", "primary_key": False, "sensitive": True},
    {"name": "score", "title": "评分", "type": "integer", "primary_key": False, "sensitive": False},
]


def _write(path: Path, data: dict[str, list[Any]], types: dict[str, pa.DataType] | None = None) -> Path:
    types = types or {}
    table = pa.table({k: pa.array(v, type=types.get(k, pa.string())) for k, v in data.items()})
    pq.write_table(table, path)
    return path


@pytest.fixture
def people(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "version.parquet",
        {
            "pid": PIDS,
            "person_name": NAMES,
            "mobile": MOBILES,
            "resident_id": IDS,
            "address": ADDRESSES,
            "score": list(range(10)),
        },
        {"score": pa.int64()},
    )


def _read(path: Path) -> dict[str, list[Any]]:
    data: dict[str, list[Any]] = pq.read_table(path).to_pydict()
    return data


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


ALL = [c["name"] for c in SCHEMA]


@pytest.mark.parametrize("rule", list(MaskRule))
@pytest.mark.parametrize("column", ["person_name", "mobile", "resident_id", "address"])
def test_each_rule_equals_python_mask(people: Path, tmp_path: Path, rule: MaskRule, column: str) -> None:
    out = tmp_path / "out.parquet"
    report = mask_for_grant(people, out, columns=SCHEMA, items=["pid", column], rules={column: rule.value}, key=KEY)
    got = _read(out)[column]
    source = pq.read_table(people).to_pydict()[column]
    assert got == [mask(v, rule, key=KEY) for v in source]
    assert report.rules == {"pid": None, column: rule.value}
    assert report.rows == 10


def test_defaults_mask_sensitive_items_and_keep_others_in_clear(people: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    report = mask_for_grant(people, out, columns=SCHEMA, items=ALL, rules={}, key=None)
    got = _read(out)
    assert report.rules == {
        "pid": None,
        "person_name": "name",
        "mobile": "mobile",
        "resident_id": "resident_id",
        "address": "address",
        "score": None,
    }
    assert got["person_name"][:4] == ["张**", "欧阳**", "诸葛**", "覃**"]
    assert got["person_name"][5:7] == ["", None]
    assert got["mobile"][0] == "138****5678"
    assert got["resident_id"][:3] == ["310115********0012", "310115********001X", "310115******001"]
    assert got["address"][0] == "上海市浦东新区***"
    assert got["pid"] == PIDS
    assert got["score"] == list(range(10))
    assert pq.read_schema(out).field("score").type == pa.int64()  # clear items keep their type
    assert report.sha256 == sha256_file(out)
    # nothing sensitive in clear: no source value of a masked column survives (an address that
    # is only a district is all the address rule keeps, so it is its own mask)
    for column in ("person_name", "mobile", "resident_id", "address"):
        for value in pq.read_table(people).to_pydict()[column]:
            if value and value.strip() and mask(value, report.rules[column] or "redact") != value:
                assert value not in got[column]


def test_explicit_clear_and_ungranted_items(people: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    report = mask_for_grant(
        people, out, columns=SCHEMA, items=["address", "person_name"], rules={"person_name": None}, key=None
    )
    got = _read(out)
    assert list(got) == ["person_name", "address"]  # schema order; pid, mobile, id and score not delivered
    assert report.columns == ("person_name", "address")
    assert got["person_name"] == NAMES
    assert got["address"] == [mask(v, "address") for v in ADDRESSES]


def test_key_columns_in_clear_or_hashed(tmp_path: Path) -> None:
    ids = ["310115198501010012", "310115198501010012", "11010519491231002X", None, "", "440524188001010014"]
    src = _write(tmp_path / "v.parquet", {"resident_id": ids, "amount": ["1", "2", "3", "4", "5", "6"]})
    schema = [
        {"name": "resident_id", "title": "公民身份号码", "type": "string", "primary_key": False, "sensitive": True},
        {"name": "amount", "title": "金额", "type": "string", "primary_key": False, "sensitive": False},
    ]
    out = tmp_path / "hashed.parquet"
    # a sensitive join key without a rule is hashed, not masked
    report = mask_for_grant(
        src, out, columns=schema, items=["resident_id", "amount"], rules={}, key=KEY, join_keys=["resident_id"]
    )
    assert report.rules["resident_id"] == "hash"
    assert report.keys == ("resident_id",)
    got = _read(out)["resident_id"]
    assert got == [mask(v, "hash", key=KEY) for v in ids]
    assert got[0] == got[1] and got[0] != got[2]  # equal values, equal hashes
    assert got[3] is None and got[4] not in ("", None)
    assert len({g for g in got if g is not None}) == len({i for i in ids if i is not None})
    clear = tmp_path / "clear.parquet"
    mask_for_grant(
        src,
        clear,
        columns=schema,
        items=["resident_id"],
        rules={"resident_id": None},
        key=None,
        join_keys=["resident_id"],
    )
    assert _read(clear)["resident_id"] == ids


@pytest.mark.parametrize("rule", ["partial", "name", "resident_id", "redact", "mobile", "address"])
def test_non_hash_rule_on_primary_key_refused(people: Path, tmp_path: Path, rule: str) -> None:
    out = tmp_path / "out.parquet"
    with pytest.raises(SpecError) as err:
        mask_for_grant(people, out, columns=SCHEMA, items=["pid", "score"], rules={"pid": rule}, key=KEY)
    assert "'pid'" in err.value.message and "primary-key" in err.value.message
    assert err.value.hint is not None and "hash" in err.value.hint
    assert not out.exists() and _files(tmp_path) == {"version.parquet"}


def test_partial_rule_on_declared_join_key_refused(people: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    with pytest.raises(SpecError) as err:
        mask_for_grant(
            people,
            out,
            columns=SCHEMA,
            items=["mobile", "score"],
            rules={"mobile": "partial"},
            key=KEY,
            join_keys=["mobile"],
        )
    assert "join-key column 'mobile'" in err.value.message
    assert not out.exists()


def test_hash_that_changes_distinct_count_is_refused(tmp_path: Path) -> None:
    # 0.0 and -0.0 are one value to DuckDB but two texts, so two hashes: keys no longer one to one
    src = _write(tmp_path / "v.parquet", {"k": [0.0, -0.0, 1.5], "v": ["a", "b", "c"]}, {"k": pa.float64()})
    schema = [
        {"name": "k", "title": "键", "type": "float", "primary_key": True, "sensitive": True},
        {"name": "v", "title": "值", "type": "string", "primary_key": False, "sensitive": False},
    ]
    out = tmp_path / "out.parquet"
    out.write_bytes(b"previous delivery")
    with pytest.raises(TerminalError) as err:
        mask_for_grant(src, out, columns=schema, items=["k", "v"], rules={"k": "hash"}, key=KEY)
    assert "'k'" in err.value.message and "distinct values from 2 to 3" in err.value.message
    assert out.read_bytes() == b"previous delivery"  # the previous target is untouched
    assert _files(tmp_path) == {"v.parquet", "out.parquet"}  # no temporary file left


def test_unknown_item_refused_with_suggestion(people: Path, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        mask_for_grant(people, tmp_path / "o.parquet", columns=SCHEMA, items=["pid", "mobil"], rules={}, key=None)
    assert "'mobil'" in err.value.message
    assert err.value.hint is not None and "did you mean 'mobile'" in err.value.hint


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"items": ["pid"], "rules": {"mobile": "name"}}, "does not include"),
        ({"items": ["pid", "mobile"], "rules": {"mobile": "blur"}}, "unknown masking rule 'blur'"),
        ({"items": ["pid"], "rules": {}, "join_keys": ["mobile"]}, "join key 'mobile' is not among"),
        ({"items": [], "rules": {}}, "no data items"),
        ({"items": ["pid"], "rules": {"nme": None}}, "'nme' does not exist"),
    ],
)
def test_bad_grant_refused(people: Path, tmp_path: Path, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError) as err:
        mask_for_grant(people, tmp_path / "o.parquet", columns=SCHEMA, key=None, **kwargs)
    assert words in err.value.message
    assert _files(tmp_path) == {"version.parquet"}


def test_hash_without_key_is_masking_key_missing(people: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MASKING_KEY_ENV, raising=False)
    with pytest.raises(MaskingKeyMissing):
        mask_for_grant(people, tmp_path / "o.parquet", columns=SCHEMA, items=["pid"], rules={"pid": "hash"}, key=None)
    assert _files(tmp_path) == {"version.parquet"}


def test_hash_key_from_environment(people: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MASKING_KEY_ENV, "env-key")
    out = tmp_path / "o.parquet"
    mask_for_grant(people, out, columns=SCHEMA, items=["pid"], rules={"pid": "hash"}, key=None)
    assert _read(out)["pid"] == [mask(p, "hash", key="env-key") for p in PIDS]


def test_hostile_column_names(tmp_path: Path) -> None:
    names = ['a "quoted" col', "it's", "with space", "select", "from", "姓名"]
    values = ["张三丰", "13812345678", "ab'cd", 'x"y', "", None]
    src = _write(tmp_path / "v.parquet", dict.fromkeys(names, values))
    schema = [
        {
            "name": n,
            "title": n if n == "姓名" else "字段",
            "type": "string",
            "primary_key": n == "select",
            "sensitive": True,
        }
        for n in names
    ]
    rules = {'a "quoted" col': "name", "it's": "mobile", "with space": "partial", "select": "hash", "from": "redact"}
    out = tmp_path / "o.parquet"
    report = mask_for_grant(src, out, columns=schema, items=names, rules=rules, key=KEY)
    got = _read(out)
    assert list(got) == names
    for n, rule in rules.items():
        assert got[n] == [mask(v, rule, key=KEY) for v in values], n
    assert report.rules["姓名"] == "name"  # default from the Chinese title
    assert got["姓名"] == [mask(v, "name") for v in values]


def test_empty_version(tmp_path: Path) -> None:
    src = _write(tmp_path / "v.parquet", {n: [] for n in ALL}, {"score": pa.int64()})
    out = tmp_path / "o.parquet"
    report = mask_for_grant(src, out, columns=SCHEMA, items=ALL, rules={"pid": "hash"}, key=KEY)
    assert report.rows == 0
    assert pq.read_table(out).num_rows == 0
    assert pq.read_schema(out).names == ALL


def test_granted_column_missing_from_file(tmp_path: Path) -> None:
    src = _write(tmp_path / "v.parquet", {"pid": PIDS})
    out = tmp_path / "o.parquet"
    with pytest.raises(SchemaDriftError) as err:
        mask_for_grant(src, out, columns=SCHEMA, items=["pid", "mobile"], rules={}, key=None)
    assert "'mobile'" in err.value.message
    assert _files(tmp_path) == {"v.parquet"}


def test_corrupt_source_leaves_nothing_behind(tmp_path: Path) -> None:
    src = tmp_path / "v.parquet"
    src.write_bytes(b"PAR1 not really parquet")
    out = tmp_path / "o.parquet"
    with pytest.raises(TerminalError) as err:
        mask_for_grant(src, out, columns=SCHEMA, items=["pid"], rules={}, key=None)
    assert str(src) in err.value.message
    assert _files(tmp_path) == {"v.parquet"}


def test_target_may_not_be_the_source(people: Path) -> None:
    before = sha256_file(people)
    with pytest.raises(TerminalError, match="overwrite"):
        mask_for_grant(people, people, columns=SCHEMA, items=["pid"], rules={}, key=None)
    assert sha256_file(people) == before


def test_replaces_previous_delivery(people: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"
    out.write_bytes(b"old")
    report = mask_for_grant(people, out, columns=SCHEMA, items=["score"], rules={}, key=None)
    assert _read(out) == {"score": list(range(10))}
    assert report.sha256 == sha256_file(out)
    assert _files(tmp_path) == {"version.parquet", "o.parquet"}
