"""Generate the bundled example departments' source files and the row accounting they imply.

``python datasets/generate.py`` rewrites every file under ``datasets/*/sources`` and
``datasets/*/dicts``. The output is byte-identical on every run: one seed, no wall clock (all
dates hang off :data:`ANCHOR`), fixed zip timestamps in the xlsx, a freshly built SQLite file.

Each source carries deliberate defects. Every defective row carries exactly one defect that
decides its fate (cast failure, filter rule, duplicate, failed expectation), so the row
accounting in ``sources/EXPECTED.json`` is unambiguous; cosmetic defects (full-width
characters, padding, null tokens in optional columns, mixed date formats…) are cleansed away
and the row is published. Tests load this file by path and call :func:`generate_all` and
:func:`expected_all`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import random
import re
import sqlite3
import string
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from pipelines.identifiers import (
        USCC_ALPHABET,
        is_valid_resident_id,
        is_valid_uscc,
        org_code_check_char,
        resident_id_15_to_18,
        resident_id_check_char,
        uscc_check_char,
    )
except ImportError:  # pragma: no cover - run as a script without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pipelines.identifiers import (
        USCC_ALPHABET,
        is_valid_resident_id,
        is_valid_uscc,
        org_code_check_char,
        resident_id_15_to_18,
        resident_id_check_char,
        uscc_check_char,
    )

log = logging.getLogger(__name__)

SEED = 20261124
#: "Today" for every example: all dates are placed relative to it, never to the wall clock.
ANCHOR = dt.date(2026, 11, 24)
SHANGHAI_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
DATASETS_DIR = Path(__file__).resolve().parent

#: GB/T 2260 codes of Shanghai's 16 districts.
DISTRICTS: dict[str, str] = {
    "310101": "黄浦区",
    "310104": "徐汇区",
    "310105": "长宁区",
    "310106": "静安区",
    "310107": "普陀区",
    "310109": "虹口区",
    "310110": "杨浦区",
    "310112": "闵行区",
    "310113": "宝山区",
    "310114": "嘉定区",
    "310115": "浦东新区",
    "310116": "金山区",
    "310117": "松江区",
    "310118": "青浦区",
    "310120": "奉贤区",
    "310151": "崇明区",
}
PUDONG = "310115"

# Fates a source row can have in the pipeline, in the order the steps decide them.
PUBLISH, CAST, FILTER, DUPLICATE, QUARANTINE = "publish", "cast", "filter", "duplicate", "quarantine"


# --- departments -------------------------------------------------------------------------------


def department_uscc(org8: str) -> str:
    """A government body's USCC: authority 1 (机构编制), type 1 (机关), Shanghai, org code + check."""
    first17 = "11" + "310000" + org8 + org_code_check_char(org8)
    return first17 + uscc_check_char(first17)


@dataclass(frozen=True)
class Department:
    """One example department: its folder under ``datasets/``, name and USCC."""

    folder: str
    name: str
    uscc: str


DEPARTMENTS: dict[str, Department] = {
    "market_regulation": Department("market_regulation", "上海市市场监督管理局", department_uscc("00242516")),
    "hrss": Department("hrss", "上海市人力资源和社会保障局", department_uscc("00245310")),
    "transport": Department("transport", "上海市交通委员会", department_uscc("00241877")),
}

#: dataset id -> (department folder, source file name relative to ``<folder>/sources``).
DATASETS: dict[str, tuple[str, str]] = {
    "market_enterprise_registry": ("market_regulation", "enterprise_registry.csv"),
    "hrss_insured_persons": ("hrss", "insured_persons.xlsx"),
    "transport_bus_stops": ("transport", "transport.db"),
}


# --- small helpers -----------------------------------------------------------------------------

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜"
    "崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英霞平刚桂华建国文辉玲红梅鑫波斌宇浩凯健俊帆帅旭宁晨琳欣怡佳雪婷颖倩慧晶"
    "轩睿泽博诺涵豪"
)
#: Characters outside the BMP that occur in real names (GBK cannot encode them, GB18030 can).
NON_BMP = ("𠮷", "𪚥")
BRAND = "华新东方金鼎瑞丰宏泰海纳明德安信嘉禾恒盛锦程博远永康天翼星辰云帆兴隆中联宝诚源达启元弘毅"
# fmt: off
INDUSTRIES = (
    "科技", "贸易", "餐饮管理", "物流", "建筑工程", "文化传播", "医药", "电子", "机械设备", "信息技术", "投资管理", "广告", "环保科技", "物业管理", "供应链管理",
)
ROADS = (
    "张江路", "世纪大道", "淮海中路", "南京西路", "漕溪北路", "长寿路", "四平路", "沪闵路", "牡丹江路", "嘉松北路", "龙华路", "延安西路", "中山北路", "曹杨路", "武宁路",
    "金山大道", "荣乐东路", "公园路", "南桥路", "人民路", "城中路", "华夏西路", "川沙路", "浦东南路", "杨高中路", "天目西路", "四川北路", "虹桥路", "仙霞路", "江场路",
    "宜山路", "吴中路", "七莘路", "共和新路", "真北路", "平凉路", "黄兴路", "军工路", "同济路", "友谊路",
)
# fmt: on
SCOPES = (
    "软件开发",
    "技术服务、技术开发、技术咨询",
    "货物进出口",
    "餐饮服务",
    "道路货物运输",
    "建设工程施工",
    "广告设计、代理",
    "医疗器械经营",
    "日用百货销售",
    "企业管理咨询",
)
#: Towns of the districts that still have villages (for rural collective organisations).
TOWNS = {"310115": "川沙新镇", "310117": "泗泾镇", "310118": "朱家角镇", "310120": "庄行镇", "310151": "堡镇"}
VILLAGES = ("新丰村", "长元村", "联一村", "民建村", "革新村", "永乐村")
#: Area codes of resident IDs issued outside Shanghai (insured persons come from everywhere).
OTHER_AREAS = ("320102", "320583", "330106", "340104", "360102", "410105", "420106", "430104", "510107", "370202")
#: Former Shanghai districts whose codes stay on IDs issued before they were merged.
FORMER_AREAS = ("310103", "310108", "310225", "310230")


def fullwidth(text: str) -> str:
    """ASCII to its full-width form (ＡＢＣ１２３), space to the ideographic space."""
    return "".join("\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def rand_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def rand_timestamp(rng: random.Random, start: dt.date, end: dt.date) -> dt.datetime:
    """A second-precision Shanghai-local time between two dates (inclusive)."""
    base = dt.datetime.combine(start, dt.time(), tzinfo=SHANGHAI_TZ)
    span = ((end - start).days + 1) * 86400
    return base + dt.timedelta(seconds=rng.randrange(span))


def person_name(rng: random.Random) -> str:
    given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
    return rng.choice(SURNAMES) + given


def zh_date(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def excel_serial(day: dt.date) -> int:
    """Excel's 1900 date system serial (valid for dates after 1900-02-28)."""
    return (day - dt.date(1899, 12, 30)).days


def expectation_key(kind: str, column: str | None = None) -> str:
    """How EXPECTED.json names a failed expectation: ``type:column``."""
    return f"{kind}:{column}" if column else kind


@dataclass
class Row:
    """One source record and what the pipeline must do with it."""

    values: dict[str, Any]
    fate: str = PUBLISH
    #: cast: the failing columns; filter: the rule; quarantine: the failed expectation keys.
    detail: tuple[str, ...] = ()
    #: Defects injected into this row (cosmetic ones included), for the ``injected`` summary.
    kinds: list[str] = field(default_factory=list)
    group: int | None = None


def _inject(
    rng: random.Random,
    rows: list[Row],
    plan: list[tuple[str, int, Callable[[Row, int], None]]],
) -> None:
    """Apply each defect of ``plan`` to its own distinct, still clean rows."""
    clean = [i for i, r in enumerate(rows) if not r.kinds]
    total = sum(n for _, n, _ in plan)
    chosen = rng.sample(clean, total)
    at = 0
    for kind, count, apply in plan:
        for nth in range(count):
            row = rows[chosen[at]]
            at += 1
            row.kinds.append(kind)
            apply(row, nth)


def _place_duplicates(rng: random.Random, rows: list[Row], groups: list[int]) -> list[list[Row]]:
    """Shuffle, then add copies of clean rows: ``groups[i]`` extra copies for group ``i``.

    Returns each group's members in file order.
    """
    clean = [r for r in rows if not r.kinds]
    originals = rng.sample(clean, len(groups))
    rng.shuffle(rows)
    for g, (original, extra) in enumerate(zip(originals, groups, strict=True)):
        original.group = g
        for _ in range(extra):
            copy = Row(values=dict(original.values), group=g)
            rows.insert(rng.randrange(len(rows) + 1), copy)
    members: list[list[Row]] = [[] for _ in groups]
    for r in rows:
        if r.group is not None:
            members[r.group].append(r)
    return members


@dataclass
class Build:
    """A generated dataset: rows in source order plus what the accounting needs."""

    dataset_id: str
    source_name: str
    rows: list[Row]
    #: Source header of the primary key and how the cleanse step normalises it.
    key_header: str
    key_norm: Callable[[Any], str | None]
    dedupe: str
    #: Source header of ``dedupe.order_by`` (keep latest), reported for each kept row.
    order_header: str | None = None
    filters: tuple[str, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict)


def expected_for(build: Build) -> dict[str, Any]:
    """The exact row accounting implied by the injected defects."""
    rows = build.rows
    fates = Counter(r.fate for r in rows)
    filtered = dict.fromkeys(build.filters, 0)
    filtered.update(Counter(r.detail[0] for r in rows if r.fate == FILTER))
    cast_by_column = Counter(c for r in rows if r.fate == CAST for c in r.detail)
    by_expectation = Counter(k for r in rows if r.fate == QUARANTINE for k in r.detail)
    duplicates: dict[str, dict[str, Any]] = {}
    for ordinal, r in enumerate(rows, start=1):
        if r.group is None:
            continue
        key = build.key_norm(r.values[build.key_header])
        assert key is not None
        entry = duplicates.setdefault(key, {"records": [], "kept": None})
        entry["records"].append(ordinal)
        if r.fate == PUBLISH:
            entry["kept"] = ordinal
            if build.order_header:
                entry["kept_updated_at"] = dt.datetime.fromisoformat(r.values[build.order_header]).isoformat()
    injected = Counter(k for r in rows for k in r.kinds)
    injected["duplicates"] = fates[DUPLICATE]
    accounting = {
        "collected": len(rows),
        "rejected_at_read": 0,
        "cast_failures": fates[CAST],
        "filtered": dict(sorted(filtered.items())),
        "duplicates_removed": fates[DUPLICATE],
        "quarantined_by_expectations": fates[QUARANTINE],
        "published": fates[PUBLISH],
    }
    removed = sum(v for k, v in accounting.items() if k not in ("collected", "published", "filtered"))
    assert accounting["published"] == len(rows) - removed - sum(filtered.values())
    return {
        "dataset": build.dataset_id,
        "source": build.source_name,
        "injected": dict(sorted(injected.items())),
        "accounting": accounting,
        "quarantine_share": round((fates[CAST] + fates[QUARANTINE]) / len(rows), 4),
        "cast_failures_by_column": dict(sorted(cast_by_column.items())),
        "quarantined_by_expectation": dict(sorted(by_expectation.items())),
        "dedupe": {"keep": build.dedupe, "groups": dict(sorted(duplicates.items()))},
        **build.notes,
    }


# --- 1. 上海市市场监督管理局: enterprise registry (GB18030 CSV) -----------------------------------

MARKET_HEADERS = (
    "统一社会信用代码",
    "企业名称",
    "法定代表人",
    "注册资本(万元)",
    "成立日期",
    "登记状态",
    "所属区",
    "地址",
    "经营范围",
    "更新时间",
)
#: Source header → published column name (the spec's ``source`` → ``name``).
MARKET_NAMES = dict(
    zip(
        MARKET_HEADERS,
        (
            "uscc",
            "enterprise_name",
            "legal_representative",
            "registered_capital",
            "established_on",
            "status",
            "district_code",
            "address",
            "business_scope",
            "updated_at",
        ),
        strict=True,
    )
)
MARKET_STATUSES = ("存续", "在业", "注销", "吊销", "迁出")
MARKET_ROWS = 414  # before the duplicate copies are added
MARKET_DUP_GROUPS = (1, 1, 1, 1, 2)  # extra copies per key: four pairs and one triple


def _ma_org(drawn: str) -> str:
    """A market regulator's organisation code: ``MA`` + six drawn characters + the GB 11714 check.

    Seven characters are drawn (the seventh is dropped) so the random stream, and with it every
    other generated value, stays as it was before positions 9-17 were checked as GB 11714 codes.
    """
    body = "MA" + drawn[:6]
    return body + org_code_check_char(body)


def _enterprise_uscc(rng: random.Random, prefix: str, area: str, used: set[str]) -> str:
    while True:
        if prefix == "91" and rng.random() < 0.6:
            org = _ma_org("".join(rng.choice(USCC_ALPHABET) for _ in range(7)))
        else:
            body = "".join(rng.choice(string.digits) for _ in range(8))
            org = body + org_code_check_char(body)
        first17 = prefix + area + org
        code = first17 + uscc_check_char(first17)
        if code not in used and is_valid_uscc(code):
            used.add(code)
            return code


def _market_name(rng: random.Random, used: set[str]) -> str:
    while True:
        name = f"上海{rng.choice(BRAND)}{rng.choice(BRAND)}{rng.choice(INDUSTRIES)}有限公司"
        if name not in used:
            used.add(name)
            return name


def _market_date_text(rng: random.Random, day: dt.date) -> str:
    style = rng.choices(("iso", "zh", "dot", "slash", "compact"), weights=(40, 20, 15, 15, 10))[0]
    if style == "zh":
        return zh_date(day)
    if style == "dot":
        return f"{day.year}.{day.month}.{day.day}"
    if style == "slash":
        return day.strftime("%Y/%m/%d")
    if style == "compact":
        return day.strftime("%Y%m%d")
    return day.isoformat()


def build_market() -> Build:
    rng = random.Random(SEED)
    used_codes: set[str] = set()
    used_names: set[str] = set()
    used_times: set[str] = set()

    def timestamp() -> str:
        while True:
            text = rand_timestamp(rng, dt.date(2026, 1, 1), ANCHOR - dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
            if text not in used_times:
                used_times.add(text)
                return text

    district_codes = list(DISTRICTS)
    weights = [3, 3, 2, 3, 2, 2, 2, 3, 2, 2, 6, 1, 2, 2, 2, 1]
    rows: list[Row] = []
    for _ in range(MARKET_ROWS):
        district = rng.choices(district_codes, weights=weights)[0]
        capital = rng.choice((10, 50, 100, 200, 300, 500, 1000, 2000, 5000)) * rng.choice((1, 1, 1, 1.5))
        capital_text = rng.choice((f"{capital:g}", f"{capital:.2f}", f"{capital:.4f}"))
        established = rand_date(rng, dt.date(1992, 1, 1), dt.date(2025, 12, 31))
        scope = "；".join(rng.sample(SCOPES, rng.randint(1, 3)))
        rows.append(
            Row(
                values={
                    "统一社会信用代码": _enterprise_uscc(rng, "91", district, used_codes),
                    "企业名称": _market_name(rng, used_names),
                    "法定代表人": person_name(rng),
                    "注册资本(万元)": capital_text,
                    "成立日期": _market_date_text(rng, established),
                    "登记状态": rng.choices(MARKET_STATUSES, weights=(70, 10, 10, 7, 3))[0],
                    "所属区": district,
                    "地址": f"上海市{DISTRICTS[district]}{rng.choice(ROADS)}{rng.randint(1, 2999)}号",
                    "经营范围": scope,
                    "更新时间": timestamp(),
                }
            )
        )

    def set_value(column: str, values: list[str]) -> Callable[[Row, int], None]:
        def apply(row: Row, nth: int) -> None:
            row.values[column] = values[nth]

        return apply

    def cast_fail(column: str, values: list[str]) -> Callable[[Row, int], None]:
        def apply(row: Row, nth: int) -> None:
            row.values[column] = values[nth]
            row.fate, row.detail = CAST, (MARKET_NAMES[column],)

        return apply

    def test_record(row: Row, nth: int) -> None:
        row.values["企业名称"] = ("测试企业001", "测试企业（勿删）")[nth]
        row.fate, row.detail = FILTER, ("test_records",)

    def bad_check(row: Row, nth: int) -> None:
        code = row.values["统一社会信用代码"]
        wrong = USCC_ALPHABET[(USCC_ALPHABET.index(code[-1]) + 1 + nth) % len(USCC_ALPHABET)]
        row.values["统一社会信用代码"] = code[:-1] + wrong
        row.fate, row.detail = QUARANTINE, (expectation_key("expect_column_values_to_be_valid_uscc", "uscc"),)

    def null_key(row: Row, nth: int) -> None:
        row.values["统一社会信用代码"] = "无"
        row.fate, row.detail = QUARANTINE, (expectation_key("expect_column_values_to_not_be_null", "uscc"),)

    def null_name(row: Row, nth: int) -> None:
        row.values["企业名称"] = "NULL"
        row.fate = QUARANTINE
        row.detail = (expectation_key("expect_column_values_to_not_be_null", "enterprise_name"),)

    def fullwidth_uscc(row: Row, nth: int) -> None:
        row.values["统一社会信用代码"] = fullwidth(row.values["统一社会信用代码"])

    def lowercase_uscc(row: Row, nth: int) -> None:
        district = row.values["所属区"]
        code = "91" + district + _ma_org("".join(rng.choice("ABCDEFGHJKLMNPQRTUWXY") for _ in range(7)))
        code += uscc_check_char(code)
        used_codes.add(code)
        row.values["统一社会信用代码"] = code.lower()

    def padded_uscc(row: Row, nth: int) -> None:
        row.values["统一社会信用代码"] = ("  {} ", "\u3000{}\u3000")[nth].format(row.values["统一社会信用代码"])

    def padded_name(row: Row, nth: int) -> None:
        pattern = (" {}", "{}  ", "\u3000{}", "{}\u3000\u3000")[nth]
        row.values["企业名称"] = pattern.format(row.values["企业名称"])

    def fullwidth_name(row: Row, nth: int) -> None:
        letters = ("ABC", "JK", "XYZ")[nth]
        name = f"上海{fullwidth(letters)}{rng.choice(INDUSTRIES)}有限公司"
        used_names.add(name)
        row.values["企业名称"] = name

    def non_bmp(row: Row, nth: int) -> None:
        if nth == 0:
            row.values["企业名称"] = f"上海{NON_BMP[0]}祥餐饮管理有限公司"
        elif nth == 1:
            row.values["企业名称"] = f"上海{NON_BMP[1]}源贸易有限公司"
        else:
            row.values["法定代表人"] = f"{NON_BMP[0]}{rng.choice(GIVEN)}{rng.choice(GIVEN)}"

    def letter_authority(row: Row, nth: int) -> None:
        prefix = ("Y1", "N2", "N3")[nth]
        district = row.values["所属区"] if prefix == "Y1" else rng.choice(sorted(TOWNS))
        town = TOWNS.get(district, "")
        row.values["所属区"] = district
        row.values["地址"] = f"上海市{DISTRICTS[district]}{town}{rng.choice(ROADS)}{rng.randint(1, 2999)}号"
        row.values["统一社会信用代码"] = _enterprise_uscc(rng, prefix, district, used_codes)
        row.values["企业名称"] = (
            f"上海{rng.choice(BRAND)}{rng.choice(BRAND)}商会",
            f"上海市{DISTRICTS[district]}{town}{rng.choice(VILLAGES)}股份经济合作社",
            f"上海市{DISTRICTS[district]}{town}经济联合社",
        )[nth]

    def district_name(row: Row, nth: int) -> None:
        if nth < 2:  # 浦东新区 and 浦东 always among them
            row.values["所属区"] = PUDONG
            row.values["统一社会信用代码"] = _enterprise_uscc(rng, "91", PUDONG, used_codes)
            row.values["地址"] = f"上海市浦东新区{rng.choice(ROADS)}{rng.randint(1, 2999)}号"
        name = DISTRICTS[row.values["所属区"]]
        row.values["所属区"] = name if nth % 2 == 0 else name.removesuffix("区").removesuffix("新")

    def fullwidth_district(row: Row, nth: int) -> None:
        row.values["所属区"] = fullwidth(row.values["所属区"])

    def embedded_newline(row: Row, nth: int) -> None:
        row.values["地址"] = row.values["地址"].replace("号", "号\n(近地铁站)", 1)

    market_null_tokens = ["NULL", "无", "-", "/", "", "\u3000"]
    plan: list[tuple[str, int, Callable[[Row, int], None]]] = [
        ("bad_date", 3, cast_fail("成立日期", ["2023年13月1日", "2022/02/30", "2021.2.29"])),
        ("bad_capital", 3, cast_fail("注册资本(万元)", ["约500", "伍佰", "300万元"])),
        ("test_record", 2, test_record),
        ("bad_uscc_check", 3, bad_check),
        ("missing_uscc", 1, null_key),
        ("missing_name", 1, null_name),
        ("fullwidth_uscc", 3, fullwidth_uscc),
        ("lowercase_uscc", 3, lowercase_uscc),
        ("padded_uscc", 2, padded_uscc),
        ("padded_name", 4, padded_name),
        ("fullwidth_name", 3, fullwidth_name),
        ("non_bmp_name", 3, non_bmp),
        ("letter_authority_uscc", 3, letter_authority),
        ("district_as_name", 8, district_name),
        ("fullwidth_district", 1, fullwidth_district),
        ("embedded_newline", 1, embedded_newline),
        ("null_token_address", 5, set_value("地址", market_null_tokens)),
        ("null_token_scope", 6, set_value("经营范围", market_null_tokens)),
        ("null_token_capital", 2, set_value("注册资本(万元)", ["-", "无"])),
        ("fullwidth_capital", 1, set_value("注册资本(万元)", [fullwidth("500")])),
        # The numeric cast drops thousands separators, so these are cleansed, not quarantined.
        ("thousands_separator_capital", 2, set_value("注册资本(万元)", ["1,200.00", "2,000"])),
    ]
    _inject(rng, rows, plan)
    groups = _place_duplicates(rng, rows, list(MARKET_DUP_GROUPS))
    for g, members in enumerate(groups):
        # Latest version first in the file for even groups, last for odd ones: keep-first is wrong.
        times = sorted(timestamp() for _ in members)
        ordered = members if g % 2 else list(reversed(members))
        current = dict(ordered[-1].values)
        if g == 0:  # an older copy will differ only by case: give the key letters to differ in
            first17 = "91" + current["所属区"] + _ma_org("".join(rng.choice("ABCDEFGHJKLMNPQRTUWXY") for _ in range(7)))
            current["统一社会信用代码"] = first17 + uscc_check_char(first17)
            used_codes.add(current["统一社会信用代码"])
        for r, when in zip(ordered, times, strict=True):
            r.values = dict(current)
            r.values["更新时间"] = when
            if r is not ordered[-1]:
                r.fate = DUPLICATE
                r.values["地址"] = f"上海市{DISTRICTS[current['所属区']]}{rng.choice(ROADS)}{rng.randint(1, 2999)}号"
                r.values["登记状态"] = "存续"
        if g == 0:  # an older copy whose key only matches after upper-casing
            ordered[0].values["统一社会信用代码"] = ordered[0].values["统一社会信用代码"].lower()
            ordered[0].kinds.append("lowercase_uscc")

    return Build(
        dataset_id="market_enterprise_registry",
        source_name="enterprise_registry.csv",
        rows=rows,
        key_header="统一社会信用代码",
        key_norm=lambda v: _clean_text(v).upper() or None,
        dedupe="latest by updated_at",
        order_header="更新时间",
        filters=("test_records",),
    )


def _clean_text(value: Any) -> str:
    """Trim and half-width one value the way the cleanse step does (null tokens aside)."""
    text = "" if value is None else str(value)
    text = "".join(" " if c == "\u3000" else chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else c for c in text)
    return text.strip()


def write_market(build: Build, path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(MARKET_HEADERS)
    for r in build.rows:
        writer.writerow([r.values[h] for h in MARKET_HEADERS])
    path.write_bytes(buffer.getvalue().encode("gb18030"))


# --- 2. 上海市人力资源和社会保障局: insured persons (XLSX, title row, named sheet) --------------------

HRSS_SHEET = "参保人员"
HRSS_TITLE = "上海市城镇职工基本养老保险参保人员信息（数据截至2026年10月31日）"
HRSS_HEADERS = ("公民身份号码", "姓名", "性别", "出生日期", "手机号码", "联系地址", "参保日期", "缴费基数", "参保状态")
HRSS_STATUSES = ("正常参保", "暂停参保", "终止参保", "正常", "暂停", "终止")
HRSS_ROWS = 355
HRSS_DUP_GROUPS = (1, 1, 1, 1, 1)
#: 2024 Shanghai contribution base: lower and upper limit (yuan per month).
HRSS_BASE_RANGE = (7310, 36549)


@dataclass
class _Cell:
    """A typed xlsx cell: ``kind`` is text, date (a real date cell), serial, number or money."""

    value: Any
    kind: str = "text"


def _resident_id(
    rng: random.Random,
    used: set[str],
    *,
    area: str | None = None,
    born: tuple[dt.date, dt.date] = (dt.date(1960, 1, 1), dt.date(2005, 12, 31)),
    check: str | None = None,
) -> tuple[str, dt.date]:
    """A valid, unused 18-digit ID (optionally with a given check character)."""
    while True:
        place = (
            area
            or rng.choices(
                (rng.choice(list(DISTRICTS)), rng.choice(OTHER_AREAS), rng.choice(FORMER_AREAS)), weights=(60, 30, 10)
            )[0]
        )
        birth = rand_date(rng, *born)
        body = f"{place}{birth:%Y%m%d}{rng.randrange(1000):03d}"
        code = body + resident_id_check_char(body)
        if code in used or (check is not None and code[-1] != check):
            continue
        used.add(code)
        return code, birth


def _mobile(rng: random.Random) -> str:
    return "1" + rng.choice("3456789") + "".join(rng.choice(string.digits) for _ in range(9))


def build_hrss() -> Build:
    rng = random.Random(SEED)
    used: set[str] = set()
    rows: list[Row] = []

    def address() -> str:
        district = rng.choice(list(DISTRICTS))
        return (
            f"上海市{DISTRICTS[district]}{rng.choice(ROADS)}{rng.randint(1, 1800)}弄"
            f"{rng.randint(1, 60)}号{rng.randint(1, 24)}{rng.randint(1, 4):02d}室"
        )

    def fill(row: Row, code: str, birth: dt.date) -> None:
        """Set the person columns that follow from the ID."""
        row.values["公民身份号码"] = _Cell(code)
        row.values["性别"] = _Cell("男" if int(code[16]) % 2 else "女")
        kind = rng.choices(("date", "compact", "iso"), weights=(50, 25, 25))[0]
        row.values["出生日期"] = (
            _Cell(birth, "date")
            if kind == "date"
            else _Cell(f"{birth:%Y%m%d}" if kind == "compact" else birth.isoformat())
        )
        joined = rand_date(
            rng, max(dt.date(1993, 1, 1), birth.replace(year=birth.year + 18, day=1)), dt.date(2026, 10, 31)
        )
        kind = rng.choices(("date", "serial", "zh"), weights=(40, 35, 25))[0]
        row.values["参保日期"] = (
            _Cell(joined, "date")
            if kind == "date"
            else _Cell(excel_serial(joined), "serial")
            if kind == "serial"
            else _Cell(zh_date(joined))
        )

    for _ in range(HRSS_ROWS):
        code, birth = _resident_id(rng, used)
        row = Row(values={})
        fill(row, code, birth)
        base = round(rng.uniform(*HRSS_BASE_RANGE), rng.choice((0, 2)))
        row.values.update(
            {
                "姓名": _Cell(person_name(rng)),
                "手机号码": _Cell(_mobile(rng)),
                "联系地址": _Cell(address()),
                "缴费基数": _Cell(int(base) if base == int(base) else base, "money"),
                "参保状态": _Cell(rng.choices(HRSS_STATUSES, weights=(60, 8, 8, 14, 5, 5))[0]),
            }
        )
        rows.append(row)

    def quarantine(key: str) -> Callable[[Row], None]:
        def mark(row: Row) -> None:
            row.fate, row.detail = QUARANTINE, (key,)

        return mark

    invalid_id = quarantine(expectation_key("expect_column_values_to_be_valid_cn_resident_id", "resident_id"))
    bad_mobile = quarantine(expectation_key("expect_column_values_to_match_regex", "mobile"))

    def pudong_before_1993(row: Row, nth: int) -> None:
        code, birth = _resident_id(rng, used, area=PUDONG, born=(dt.date(1955, 1, 1), dt.date(1992, 12, 31)))
        fill(row, code, birth)

    def lowercase_x(row: Row, nth: int) -> None:
        code, birth = _resident_id(rng, used, check="X")
        fill(row, code, birth)
        row.values["公民身份号码"] = _Cell(code.lower())

    def legacy_15(row: Row, nth: int) -> None:
        while True:
            code, birth = _resident_id(rng, used, born=(dt.date(1940, 1, 1), dt.date(1979, 12, 31)))
            short = code[:6] + code[8:17]
            if resident_id_15_to_18(short) == code:
                break
        fill(row, code, birth)
        row.values["公民身份号码"] = _Cell(short)

    def padded_id(row: Row, nth: int) -> None:
        cell = row.values["公民身份号码"]
        cell.value = (" {}", "{}\u3000")[nth].format(cell.value)

    def fullwidth_id(row: Row, nth: int) -> None:
        cell = row.values["公民身份号码"]
        cell.value = fullwidth(cell.value)

    def bad_check(row: Row, nth: int) -> None:
        code = row.values["公民身份号码"].value
        wrong = "0123456789X"[("0123456789X".index(code[-1]) + 1 + nth) % 11]
        row.values["公民身份号码"] = _Cell(code[:-1] + wrong)
        invalid_id(row)

    def impossible_birth_in_id(row: Row, nth: int) -> None:
        body = f"310104{19990230}{rng.randrange(1000):03d}"
        row.values["公民身份号码"] = _Cell(body + resident_id_check_char(body))
        invalid_id(row)

    def missing_id(row: Row, nth: int) -> None:
        row.values["公民身份号码"] = _Cell("无")
        quarantine(expectation_key("expect_column_values_to_not_be_null", "resident_id"))(row)

    def impossible_birth_date(row: Row, nth: int) -> None:
        row.values["出生日期"] = _Cell(("19990230", "19870431")[nth])
        row.fate, row.detail = CAST, ("birth_date",)

    def impossible_insured_on(row: Row, nth: int) -> None:
        row.values["参保日期"] = _Cell("2023年2月29日")
        row.fate, row.detail = CAST, ("insured_on",)

    def mobile(values: list[str], bad: bool) -> Callable[[Row, int], None]:
        def apply(row: Row, nth: int) -> None:
            row.values["手机号码"] = _Cell(values[nth])
            if bad:
                bad_mobile(row)

        return apply

    m = [_mobile(rng) for _ in range(8)]
    plan: list[tuple[str, int, Callable[[Row, int], None]]] = [
        ("impossible_birth_date", 2, impossible_birth_date),
        ("impossible_insured_on", 1, impossible_insured_on),
        ("bad_id_check", 3, bad_check),
        ("impossible_birth_in_id", 1, impossible_birth_in_id),
        ("missing_id", 1, missing_id),
        ("mobile_plus86", 2, mobile([f"+86{m[0]}", f"+86 {m[1]}"], bad=True)),
        ("mobile_spaces", 2, mobile([f"{m[2][:3]} {m[2][3:7]} {m[2][7:]}", f"{m[3][:7]} {m[3][7:]}"], bad=True)),
        ("mobile_10_digits", 2, mobile([m[4][:10], m[5][1:]], bad=True)),
        ("pudong_id_born_before_1993", 10, pudong_before_1993),
        ("lowercase_x_id", 4, lowercase_x),
        ("legacy_15_digit_id", 4, legacy_15),
        ("padded_id", 2, padded_id),
        ("fullwidth_id", 1, fullwidth_id),
        ("fullwidth_mobile", 1, mobile([fullwidth(m[6])], bad=False)),
        ("null_token_mobile", 2, mobile(["无", ""], bad=False)),
        (
            "null_token_address",
            4,
            lambda row, nth: row.values.update({"联系地址": _Cell(("NULL", "-", "/", None)[nth])}),
        ),
        ("non_bmp_name", 1, lambda row, nth: row.values.update({"姓名": _Cell(f"{NON_BMP[0]}{rng.choice(GIVEN)}")})),
        ("padded_name", 2, lambda row, nth: row.values.update({"姓名": _Cell(f" {row.values['姓名'].value}\u3000")})),
    ]
    _inject(rng, rows, plan)
    for members in _place_duplicates(rng, rows, list(HRSS_DUP_GROUPS)):
        first, *later = members  # keep first: the first record in the file wins
        for r in later:  # a later copy with other contact details: still removed
            r.values = dict(first.values)
            r.values["联系地址"] = _Cell(address())
            r.values["手机号码"] = _Cell(_mobile(rng))
            r.fate = DUPLICATE

    return Build(
        dataset_id="hrss_insured_persons",
        source_name="insured_persons.xlsx",
        rows=rows,
        key_header="公民身份号码",
        key_norm=lambda c: _norm_resident_id(c.value),
        dedupe="first",
        notes={
            "sheet": HRSS_SHEET,
            "header_row": 2,
            "valid_pudong_ids_born_before_1993": sorted(
                _norm_resident_id(r.values["公民身份号码"].value) or ""
                for r in rows
                if "pudong_id_born_before_1993" in r.kinds
            ),
        },
    )


def _norm_resident_id(value: Any) -> str | None:
    text = _clean_text(value).upper()
    if text in ("", "无"):
        return None
    return resident_id_15_to_18(text) if len(text) == 15 and text.isdigit() else text


def write_hrss(build: Build, path: Path) -> None:
    from openpyxl import Workbook  # the generator's only third-party import
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    notes = wb.active
    notes.title = "说明"
    notes["A1"] = "导出说明"
    notes["A2"] = "本表由社会保险业务系统导出，数据截至2026年10月31日。"
    notes["A3"] = "参保状态：正常参保、暂停参保、终止参保（部分历史记录为简称）。"
    ws = wb.create_sheet(HRSS_SHEET)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(HRSS_HEADERS))
    ws.cell(row=1, column=1, value=HRSS_TITLE).font = Font(bold=True, size=14)
    ws.cell(row=1, column=1).alignment = Alignment(horizontal="center")
    for col, header in enumerate(HRSS_HEADERS, start=1):
        ws.cell(row=2, column=col, value=header).font = Font(bold=True)
    for i, r in enumerate(build.rows, start=3):
        for col, header in enumerate(HRSS_HEADERS, start=1):
            cell_value: _Cell = r.values[header]
            cell = ws.cell(row=i, column=col, value=cell_value.value)
            if cell_value.kind == "date":
                cell.number_format = "yyyy-mm-dd"
            elif cell_value.kind == "money":
                cell.number_format = "0.00"
    for letter, width in zip("ABCDEFGHI", (22, 10, 6, 12, 16, 44, 14, 12, 10), strict=True):
        ws.column_dimensions[letter].width = width
    fixed = dt.datetime.combine(ANCHOR, dt.time(), tzinfo=dt.UTC).replace(tzinfo=None)
    wb.properties.creator = "govdata example generator"
    wb.properties.created = fixed
    wb.properties.modified = fixed
    buffer = io.BytesIO()
    wb.save(buffer)
    path.write_bytes(_reproducible_zip(buffer.getvalue()))


def _reproducible_zip(data: bytes) -> bytes:
    """Rewrite an xlsx with fixed entry timestamps and a fixed modified time (openpyxl uses now)."""
    stamp = f"{ANCHOR.isoformat()}T00:00:00Z".encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            payload = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                payload = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)", rb"\g<1>" + stamp + rb"\g<2>", payload
                )
            entry = zipfile.ZipInfo(info.filename, date_time=(ANCHOR.year, ANCHOR.month, ANCHOR.day, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, payload)
    return out.getvalue()


# --- 3. 上海市交通委员会: bus stops (SQLite table, incremental by updated_at) --------------------------

TRANSPORT_COLUMNS = (
    ("stop_id", "TEXT"),
    ("stop_name", "TEXT"),
    ("line_names", "TEXT"),
    ("district_code", "TEXT"),
    ("longitude", "REAL"),
    ("latitude", "REAL"),
    ("opened_on", "TEXT"),
    ("updated_at", "TEXT"),
)
TRANSPORT_ROWS = 314
TRANSPORT_DUP_GROUPS = (1, 1, 1, 1, 2)
#: Approximate centre of each district, for plausible stop coordinates.
CENTRES: dict[str, tuple[float, float]] = {
    "310101": (121.490, 31.232),
    "310104": (121.437, 31.188),
    "310105": (121.424, 31.220),
    "310106": (121.446, 31.245),
    "310107": (121.397, 31.249),
    "310109": (121.505, 31.265),
    "310110": (121.526, 31.270),
    "310112": (121.382, 31.113),
    "310113": (121.489, 31.405),
    "310114": (121.265, 31.375),
    "310115": (121.567, 31.205),
    "310116": (121.342, 30.742),
    "310117": (121.227, 31.032),
    "310118": (121.124, 31.150),
    "310120": (121.474, 30.918),
    "310151": (121.398, 31.623),
}
LINE_NAMES = (
    "71路",
    "925路",
    "隧道三线",
    "浦东1路",
    "沪朱高速快线",
    "松江12路",
    "闵行18路",
    "嘉定6路",
    "崇明1路",
    "夜宵303路",
)


def build_transport() -> Build:
    rng = random.Random(SEED)
    used_times: set[str] = set()

    def timestamp() -> str:
        while True:
            text = rand_timestamp(rng, dt.date(2026, 1, 1), ANCHOR - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
            if text not in used_times:
                used_times.add(text)
                return text

    codes = list(DISTRICTS)
    rows: list[Row] = []
    for n in range(TRANSPORT_ROWS):
        district = rng.choice(codes)
        lon, lat = CENTRES[district]
        a, b = rng.sample(ROADS, 2)
        rows.append(
            Row(
                values={
                    "stop_id": f"BS{100001 + n * 7:06d}",
                    "stop_name": f"{a}{b}",
                    "line_names": ";".join(rng.sample(LINE_NAMES, rng.randint(1, 4))),
                    "district_code": district,
                    "longitude": round(lon + rng.uniform(-0.03, 0.03), 6),
                    "latitude": round(lat + rng.uniform(-0.03, 0.03), 6),
                    "opened_on": rand_date(rng, dt.date(1985, 1, 1), dt.date(2026, 10, 31)).isoformat(),
                    "updated_at": timestamp(),
                }
            )
        )

    def quarantine(*keys: str) -> Callable[[Row], None]:
        def mark(row: Row) -> None:
            row.fate, row.detail = QUARANTINE, keys

        return mark

    in_set = expectation_key("expect_column_values_to_be_in_set", "district_code")
    lon_key = expectation_key("expect_column_values_to_be_between", "longitude")
    lat_key = expectation_key("expect_column_values_to_be_between", "latitude")

    def bad_district(row: Row, nth: int) -> None:
        row.values["district_code"] = ("310108", "310108", "999999")[nth]
        quarantine(in_set)(row)

    def bad_coordinates(row: Row, nth: int) -> None:
        lon, lat = row.values["longitude"], row.values["latitude"]
        if nth == 0:  # Beijing's longitude
            row.values["longitude"] = 116.397128
            quarantine(lon_key)(row)
        elif nth == 1:  # Beijing's latitude
            row.values["latitude"] = 39.916527
            quarantine(lat_key)(row)
        else:  # swapped
            row.values["longitude"], row.values["latitude"] = lat, lon
            quarantine(lon_key, lat_key)(row)

    def null_name(row: Row, nth: int) -> None:
        row.values["stop_name"] = (None, "", "\u3000")[nth]
        quarantine(expectation_key("expect_column_values_to_not_be_null", "stop_name"))(row)

    def bad_opened_on(row: Row, nth: int) -> None:
        row.values["opened_on"] = "2021-02-29"
        row.fate, row.detail = CAST, ("opened_on",)

    plan: list[tuple[str, int, Callable[[Row, int], None]]] = [
        ("bad_opened_on", 1, bad_opened_on),
        ("district_not_in_shanghai", 3, bad_district),
        ("coordinates_outside_shanghai", 3, bad_coordinates),
        ("null_stop_name", 3, null_name),
        ("padded_stop_name", 3, lambda row, nth: row.values.update({"stop_name": f"{row.values['stop_name']}  "})),
        (
            "fullwidth_stop_name",
            2,
            lambda row, nth: row.values.update(
                {"stop_name": f"{row.values['stop_name']}{fullwidth('(')}地铁站{fullwidth(')')}"}
            ),
        ),
        (
            "fullwidth_district",
            1,
            lambda row, nth: row.values.update({"district_code": fullwidth(row.values["district_code"])}),
        ),
        ("null_line_names", 3, lambda row, nth: row.values.update({"line_names": (None, "", "无")[nth]})),
    ]
    _inject(rng, rows, plan)
    for members in _place_duplicates(rng, rows, list(TRANSPORT_DUP_GROUPS)):
        times = sorted(timestamp() for _ in members)
        current = dict(members[-1].values)
        for r, when in zip(members, times, strict=True):
            r.values = dict(current)
            r.values["updated_at"] = when
            if r is not members[-1]:
                r.fate = DUPLICATE
                r.values["line_names"] = ";".join(rng.sample(LINE_NAMES, 2))
    # A change-log table: rows are appended as they change, so rowid order is updated_at order
    # (and a connector reading in watermark order sees the same record ordinals).
    rows.sort(key=lambda r: r.values["updated_at"])

    return Build(
        dataset_id="transport_bus_stops",
        source_name="transport.db",
        rows=rows,
        key_header="stop_id",
        key_norm=lambda v: _clean_text(v) or None,
        dedupe="latest by updated_at",
        order_header="updated_at",
        notes={
            "table": "bus_stop",
            "watermark": {"column": "updated_at", "max": max(str(r.values["updated_at"]) for r in rows)},
        },
    )


def write_transport(build: Build, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        columns = ", ".join(f"{name} {kind}" for name, kind in TRANSPORT_COLUMNS)
        con.execute(f"CREATE TABLE bus_stop ({columns})")
        con.execute("CREATE INDEX ix_bus_stop_updated_at ON bus_stop (updated_at)")
        names = [name for name, _ in TRANSPORT_COLUMNS]
        con.executemany(
            f"INSERT INTO bus_stop VALUES ({', '.join('?' for _ in names)})",
            [tuple(r.values[n] for n in names) for r in build.rows],
        )
        con.commit()
    finally:
        con.close()
    tmp.replace(path)


def append_bus_stop_increment(db_path: Path) -> dict[str, Any]:
    """Add a later batch to a copy of ``transport.db``: 3 changed stops and 2 new ones, all clean.

    For tests of incremental collection and ``publish.mode: merge``. Returns what a run with
    the first run's watermark must collect and publish.
    """
    build = build_transport()
    since = max(str(r.values["updated_at"]) for r in build.rows)
    rng = random.Random(SEED + 1)
    kept = [r for r in build.rows if r.fate == PUBLISH and not r.kinds and r.group is None]
    changed = rng.sample(kept, 3)
    start = dt.datetime.fromisoformat(since).replace(tzinfo=SHANGHAI_TZ)
    batch = []
    for n, r in enumerate(changed, start=1):
        values = dict(r.values)
        values["line_names"] = f"{values['line_names']};新辟{n}路"
        values["updated_at"] = (start + dt.timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%S")
        batch.append(values)
    for n in range(2):
        lon, lat = CENTRES[PUDONG]
        batch.append(
            {
                "stop_id": f"BS{900001 + n:06d}",
                "stop_name": ("川沙路妙境路", "张江路晨晖路")[n],
                "line_names": "浦东1路",
                "district_code": PUDONG,
                "longitude": round(lon + 0.01 * n, 6),
                "latitude": round(lat - 0.01 * n, 6),
                "opened_on": (ANCHOR - dt.timedelta(days=4)).isoformat(),
                "updated_at": (start + dt.timedelta(hours=4 + n)).strftime("%Y-%m-%dT%H:%M:%S"),
            }
        )
    names = [name for name, _ in TRANSPORT_COLUMNS]
    con = sqlite3.connect(db_path)
    try:
        con.executemany(
            f"INSERT INTO bus_stop VALUES ({', '.join('?' for _ in names)})",
            [tuple(v[n] for n in names) for v in batch],
        )
        con.commit()
    finally:
        con.close()
    base = expected_for(build)["accounting"]["published"]
    return {
        "since": since,
        "collected": len(batch),
        "published": len(batch),
        "changed_stop_ids": [v["stop_id"] for v in batch[:3]],
        "new_stop_ids": [v["stop_id"] for v in batch[3:]],
        "merged_total": base + 2,
    }


# --- code-map dictionaries ---------------------------------------------------------------------


def district_dictionary() -> list[tuple[str, str]]:
    """Source label → GB/T 2260 code, full and short names (浦东新区, 浦东; 黄浦区, 黄浦)."""
    pairs = []
    for code, name in DISTRICTS.items():
        pairs.append((name, code))
        pairs.append((name.removesuffix("区").removesuffix("新"), code))
    return pairs


INSURED_STATUS_DICTIONARY = (
    ("正常参保", "1"),
    ("正常", "1"),
    ("暂停参保", "2"),
    ("暂停", "2"),
    ("终止参保", "3"),
    ("终止", "3"),
)


def _write_dictionary(path: Path, pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("source", "code"))
    writer.writerows(pairs)
    path.write_text(buffer.getvalue(), encoding="utf-8")


# --- entry points ------------------------------------------------------------------------------

BUILDERS: dict[str, tuple[Callable[[], Build], Callable[[Build, Path], None]]] = {
    "market_enterprise_registry": (build_market, write_market),
    "hrss_insured_persons": (build_hrss, write_hrss),
    "transport_bus_stops": (build_transport, write_transport),
}


def expected_all() -> dict[str, dict[str, Any]]:
    """Dataset id → the accounting its source implies (what EXPECTED.json holds)."""
    return {dataset_id: expected_for(build()) for dataset_id, (build, _) in BUILDERS.items()}


def generate_all(out_dir: Path | None = None) -> dict[str, Path]:
    """Write every source, dictionary and EXPECTED.json under ``out_dir`` (default: this folder).

    Returns dataset id → the source file written.
    """
    root = Path(out_dir) if out_dir is not None else DATASETS_DIR
    written: dict[str, Path] = {}
    expected: dict[str, dict[str, dict[str, Any]]] = {}
    for dataset_id, (build, write) in BUILDERS.items():
        folder, source = DATASETS[dataset_id]
        sources = root / folder / "sources"
        sources.mkdir(parents=True, exist_ok=True)
        result = build()
        write(result, sources / source)
        written[dataset_id] = sources / source
        expected.setdefault(folder, {})[dataset_id] = expected_for(result)
    for folder, per_dataset in expected.items():
        text = json.dumps(per_dataset, ensure_ascii=False, indent=2) + "\n"
        (root / folder / "sources" / "EXPECTED.json").write_text(text, encoding="utf-8")
    dicts = root / "market_regulation" / "dicts"
    dicts.mkdir(parents=True, exist_ok=True)
    _write_dictionary(dicts / "district.csv", district_dictionary())
    dicts = root / "hrss" / "dicts"
    dicts.mkdir(parents=True, exist_ok=True)
    _write_dictionary(dicts / "insured_status.csv", INSURED_STATUS_DICTIONARY)
    return written


def self_check() -> None:
    """Identifiers the examples promise are what they claim (guards against generator bugs)."""
    for dept in DEPARTMENTS.values():
        assert is_valid_uscc(dept.uscc) and dept.uscc.startswith("11"), dept
    hrss = build_hrss()
    for r in hrss.rows:
        key = _norm_resident_id(r.values["公民身份号码"].value)
        valid = key is not None and is_valid_resident_id(key, today=ANCHOR)
        assert valid == (r.fate != QUARANTINE or "mobile" in r.detail[0]), (key, r.fate, r.detail)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    self_check()
    written = generate_all()
    for dataset_id, counts in expected_all().items():
        log.info("%s → %s: %s", dataset_id, written[dataset_id].relative_to(DATASETS_DIR), counts["accounting"])


if __name__ == "__main__":
    main()
