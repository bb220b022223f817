"""Generate the benchmark's messy GB18030 CSV: an enterprise register of ``rows`` rows, 12 columns.

``python bench/generate.py [--rows N]`` writes ``bench/data/enterprises_5m.gb18030.csv`` (5M
rows, the default) or ``bench/data/enterprises_<N>.gb18030.csv``, and beside it a
``.meta.json`` naming the row count, the seed and the sha256 of this file, so ``bench/run.py``
regenerates the data when the generator changed. The output is byte-identical on every run and
for any number of worker processes: one seed per batch of :data:`BATCH` rows, no wall clock
(every date hangs off :data:`ANCHOR`).

The work is vectorised: numpy draws every random choice for a batch at once, pyarrow builds the
values and the CSV lines, and only the few rows that get a rare defect needing Python string
methods (full-width text, thousands separators) are touched one by one. 5M rows take well
under a minute.

The defects are the ones DOMAIN.md describes, at rates of a few per thousand, and they land
where the pipeline's rules send them:

- cleansed away (the row is published): padding with ASCII and full-width blanks, full-width
  digits/letters/brackets, lower-case letters in the USCC and industry code, district names
  instead of codes (code map), thousands separators and ``¥`` in the capital, dates as
  ``2023年5月1日`` / ``2023.5.1`` / ``20230501`` / ``2023/05/01`` / Excel serials / ISO
  midnight time stamps, time stamps in five formats, null tokens in optional columns;
- cast failures (quarantined by the cleanse step): capital as text (``壹佰万元``), impossible
  dates (``2021-02-30``, ``2021年13月1日``);
- duplicates by USCC (~0.5%, removed: the latest ``更新时间`` wins);
- failed expectations (quarantined by the gate): bad USCC check character, missing USCC,
  missing or too short names, negative or huge capital, founding dates outside 1949-10-01 ..
  the anchor, missing or unknown status, unknown district codes, invalid mobile numbers and
  postcodes.

Rows are independent: a row can carry several defects, so the exact counts are whatever the
pipeline and its peers compute; they must agree with each other.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SEED = 20261124
BATCH = 500_000
DEFAULT_ROWS = 5_000_000
#: "Today" for the data: founding dates and update times lie before it.
ANCHOR = dt.date(2026, 11, 24)
DATA_DIR = Path(__file__).resolve().parent / "data"

HEADER = [
    "统一社会信用代码",
    "企业名称",
    "法定代表人",
    "注册资本(万元)",
    "成立日期",
    "登记状态",
    "所属区",
    "联系电话",
    "地址",
    "行业代码",
    "更新时间",
    "邮编",
]

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
ORG_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)  # GB 11714
USCC_WEIGHTS = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28], dtype=np.int64)
#: (registering authority + entity type, weight): mostly companies (91), some others, letter prefixes too.
USCC_PREFIXES = [
    ("91", 0.86),
    ("92", 0.05),
    ("93", 0.02),
    ("11", 0.01),
    ("12", 0.02),
    ("52", 0.02),
    ("N2", 0.01),
    ("Y1", 0.01),
]

DISTRICTS = [
    ("310101", "黄浦区"),
    ("310104", "徐汇区"),
    ("310105", "长宁区"),
    ("310106", "静安区"),
    ("310107", "普陀区"),
    ("310109", "虹口区"),
    ("310110", "杨浦区"),
    ("310112", "闵行区"),
    ("310113", "宝山区"),
    ("310114", "嘉定区"),
    ("310115", "浦东新区"),
    ("310116", "金山区"),
    ("310117", "松江区"),
    ("310118", "青浦区"),
    ("310120", "奉贤区"),
    ("310151", "崇明区"),
]
#: Pudong is big: weights roughly follow the number of enterprises per district.
DISTRICT_WEIGHTS = np.array([4, 5, 4, 5, 5, 4, 4, 9, 7, 10, 20, 4, 7, 5, 4, 3], dtype=np.float64)
#: Abolished (闸北 310108, 南汇 310119, 卢湾 310103) or made-up codes: not in the dictionary, fail in_set.
BAD_DISTRICTS = ["310108", "310119", "310103", "999999", "3101O5"]

SURNAMES = [
    *"王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔",
    *"钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤",
    *("欧阳", "诸葛", "司马", "上官"),
]
GIVEN = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志文斌辉鹏宇浩凯俊晨欣怡佳琪雪梅晓东海波宁燕琳"
)
RARE_GIVEN = ["𠮷", "𡈼", "䶮", "堃", "喆", "㵘"]  # outside the BMP or GBK: GB18030 encodes them all

BRAND_CHARS = list("华星辰鼎盛泰和嘉信诚达康瑞丰源恒隆宏远兴旺金银海天宇中新创汇通联合安正博锦绣云峰明德")
LATIN_BRANDS = ["ABC", "IBM", "UFO", "GT", "ZX", "KFC", "SAIC", "MK"]
TRADES = [
    "科技",
    "贸易",
    "餐饮管理",
    "建筑工程",
    "物流",
    "文化传媒",
    "信息技术",
    "实业",
    "投资管理",
    "医药",
    "环保科技",
    "电子商务",
    "供应链管理",
    "商务咨询",
    "网络科技",
    "服装",
    "房地产开发",
    "汽车销售",
    "教育科技",
    "生物科技",
]
SUFFIXES = ["有限公司", "股份有限公司", "合伙企业（有限合伙）", "有限责任公司", "商行", "工作室"]
SUFFIX_WEIGHTS = np.array([78, 8, 3, 6, 3, 2], dtype=np.float64)
ROADS = [
    "南京西路",
    "淮海中路",
    "张江路",
    "世纪大道",
    "延安西路",
    "江场路",
    "漕河泾路",
    "虹桥路",
    "四川北路",
    "长阳路",
    "莘庄路",
    "友谊路",
    "曹安公路",
    "陆家嘴环路",
    "人民路",
    "松江大道",
    "华新路",
    "南桥路",
    "城桥镇东门路",
    "金山大道",
]

STATUSES = ["存续", "在业", "吊销", "注销"]
STATUS_WEIGHTS = np.array([55, 25, 8, 12], dtype=np.float64)
NULL_TOKENS = ["", "NULL", "无", "-", "/", "null", "--", "—"]
BAD_STATUS = ["撤销", "停业", "迁入"]
INDUSTRY_LETTERS = list("ABCDEFGHIJKLMNOPQRST")
CAPITAL_TEXT = ["壹佰万元", "人民币伍拾万", "500万元", "待定", "一千万", "USD 200"]
MOBILE_PREFIXES = ["13", "15", "17", "18", "19", "14", "16"]

EPOCH = np.datetime64("1949-10-01")
EXCEL_EPOCH = np.datetime64("1899-12-30")

_FULLWIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)} | {" ": "\u3000"})


def output_path(rows: int) -> Path:
    """Where the generator writes a file of ``rows`` rows."""
    name = "enterprises_5m" if rows == DEFAULT_ROWS else f"enterprises_{rows}"
    return DATA_DIR / f"{name}.gb18030.csv"


# --- small vectorised helpers --------------------------------------------------------------------


def _take(vocab: list[str], idx: np.ndarray) -> pa.Array:
    return pa.array(vocab, pa.string()).take(pa.array(idx))


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*[pa.scalar(p) if isinstance(p, str) else p for p in parts], "")


def _num(values: np.ndarray, width: int = 0) -> pa.Array:
    text = pc.cast(pa.array(values.astype(np.int64)), pa.string())
    return pc.utf8_lpad(text, width=width, padding="0") if width else text


def _where(mask: np.ndarray, yes: pa.Array | str, no: pa.Array | str) -> pa.Array:
    yes_ = pa.scalar(yes, pa.string()) if isinstance(yes, str) else yes
    no_ = pa.scalar(no, pa.string()) if isinstance(no, str) else no
    return pc.if_else(pa.array(mask), yes_, no_)


def _patch(values: pa.Array, mask: np.ndarray, fn: object) -> pa.Array:
    """Apply the Python function ``fn`` to the (few) values where ``mask`` is set."""
    if not mask.any():
        return values
    picked = values.filter(pa.array(mask)).to_pylist()
    replaced = pa.array([fn(v) for v in picked], pa.string())  # type: ignore[operator]
    return pc.replace_with_mask(values, pa.array(mask), replaced)


def _thousands(value: str) -> str:
    """``1234.5`` as ``"1,234.50"`` (quoted: the comma is the delimiter); other values unchanged."""
    try:
        return f'"{float(value.strip()):,.2f}"'
    except ValueError:
        return value


def _fullwidth(value: str) -> str:
    return value.translate(_FULLWIDTH)


def _pad(rng: np.random.Generator, values: pa.Array, share: float) -> pa.Array:
    """Leading/trailing blanks (ASCII and full-width) on ``share`` of the values."""
    n = len(values)
    mask = rng.random(n) < share
    pads = _take([" ", "  ", "\u3000", " \u3000", "\t"], rng.integers(0, 5, n))
    front = rng.random(n) < 0.5
    padded = _where(front, _join(pads, values), _join(values, pads))
    return _where(mask, padded, values)


def _nullify(rng: np.random.Generator, values: pa.Array, share: float) -> pa.Array:
    n = len(values)
    mask = rng.random(n) < share
    return _where(mask, _take(NULL_TOKENS, rng.integers(0, len(NULL_TOKENS), n)), values)


def _date_parts(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dates = EPOCH + days.astype("timedelta64[D]")
    years = dates.astype("datetime64[Y]")
    months = dates.astype("datetime64[M]")
    y = years.astype(np.int64) + 1970
    m = (months - years.astype("datetime64[M]")).astype(np.int64) + 1
    d = (dates - months.astype("datetime64[D]")).astype(np.int64) + 1
    return y, m, d


# --- the columns ---------------------------------------------------------------------------------


def uscc_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` valid USCCs (embedded organisation code included) as an (n, 18) array of indexes into
    :data:`USCC_ALPHABET`."""
    codes = np.empty((n, 18), dtype=np.uint8)
    weights = np.array([w for _, w in USCC_PREFIXES])
    prefix = rng.choice(len(USCC_PREFIXES), n, p=weights / weights.sum())
    first = np.array([USCC_ALPHABET.index(p[0]) for p, _ in USCC_PREFIXES])
    second = np.array([USCC_ALPHABET.index(p[1]) for p, _ in USCC_PREFIXES])
    codes[:, 0] = first[prefix]
    codes[:, 1] = second[prefix]
    district = rng.choice(len(DISTRICTS), n, p=DISTRICT_WEIGHTS / DISTRICT_WEIGHTS.sum())
    area = np.array([[int(c) for c in code] for code, _ in DISTRICTS], dtype=np.uint8)
    codes[:, 2:8] = area[district]
    codes[:, 8:17] = rng.integers(0, 31, (n, 9), dtype=np.uint8)
    # positions 9-17 are a GB 11714 organisation code: its 9th character is its own check
    org_value = np.array([int(c, 36) for c in USCC_ALPHABET], dtype=np.int64)  # 0-9, A=10 … Z=35
    org_total = org_value[codes[:, 8:16]] @ ORG_WEIGHTS
    org_check = 11 - org_total % 11  # 10 → X, 11 → 0
    codes[:, 16] = np.where(org_check == 10, USCC_ALPHABET.index("X"), org_check % 11).astype(np.uint8)
    total = (codes[:, :17].astype(np.float64) @ USCC_WEIGHTS.astype(np.float64)).astype(np.int64)  # exact: < 2**53
    codes[:, 17] = (31 - total % 31) % 31
    return codes


def _uscc_text(codes: np.ndarray) -> pa.Array:
    alphabet = np.frombuffer(USCC_ALPHABET.encode("ascii"), dtype=np.uint8)
    raw = np.ascontiguousarray(alphabet[codes].astype(np.uint8))
    offsets = np.arange(0, 18 * (len(codes) + 1), 18, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), len(codes), [None, pa.py_buffer(offsets), pa.py_buffer(raw)])


def col_uscc(rng: np.random.Generator, codes: np.ndarray) -> pa.Array:
    n = len(codes)
    codes = codes.copy()
    bad = rng.random(n) < 0.003  # wrong check character
    codes[bad, 17] = (codes[bad, 17].astype(np.int64) + rng.integers(1, 31, int(bad.sum()))) % 31
    text = _uscc_text(codes)
    text = _where(rng.random(n) < 0.02, pc.utf8_lower(text), text)
    text = _patch(text, rng.random(n) < 0.002, _fullwidth)
    text = _pad(rng, text, 0.005)
    return _nullify(rng, text, 0.0005)


def col_name(rng: np.random.Generator, n: int, district: np.ndarray) -> pa.Array:
    brand = _join(
        _take(BRAND_CHARS, rng.integers(0, len(BRAND_CHARS), n)),
        _take(BRAND_CHARS, rng.integers(0, len(BRAND_CHARS), n)),
    )
    latin = rng.random(n) < 0.01
    brand = _where(latin, _take(LATIN_BRANDS, rng.integers(0, len(LATIN_BRANDS), n)), brand)
    brand = _patch(brand, latin & (rng.random(n) < 0.5), _fullwidth)  # ＡＢＣ科技有限公司
    trade = _take(TRADES, rng.integers(0, len(TRADES), n))
    suffix = _take(SUFFIXES, rng.choice(len(SUFFIXES), n, p=SUFFIX_WEIGHTS / SUFFIX_WEIGHTS.sum()))
    place = _where(rng.random(n) < 0.85, "上海", _take([d for _, d in DISTRICTS], district))
    name = _join(place, brand, trade, suffix)
    name = _where(rng.random(n) < 0.005, _join(place, " ", brand, trade, suffix), name)  # inner space stays
    name = _where(rng.random(n) < 0.0005, _take(["某", "公司", "A"], rng.integers(0, 3, n)), name)  # too short
    name = _pad(rng, name, 0.01)
    return _nullify(rng, name, 0.0005)


def col_person(rng: np.random.Generator, n: int) -> pa.Array:
    surname = _take(SURNAMES, rng.integers(0, len(SURNAMES), n))
    given = _take(GIVEN, rng.integers(0, len(GIVEN), n))
    two = rng.random(n) < 0.6
    given = _where(two, _join(given, _take(GIVEN, rng.integers(0, len(GIVEN), n))), given)
    rare = rng.random(n) < 0.001
    given = _where(rare, _take(RARE_GIVEN, rng.integers(0, len(RARE_GIVEN), n)), given)
    person = _pad(rng, _join(surname, given), 0.005)
    return _nullify(rng, person, 0.005)


def col_capital(rng: np.random.Generator, n: int) -> pa.Array:
    cents = np.round(np.exp(rng.normal(4.6, 1.6, n)) * 100).astype(np.int64) + 100
    units, frac = cents // 100, cents % 100
    whole = rng.random(n) < 0.35
    frac = np.where(whole, 0, frac)
    text = _join(_num(units), ".", _num(frac, 2))
    style = rng.random(n)
    text = _where(style < 0.30, _num(units), text)  # "500"
    text = _where((style >= 0.30) & (style < 0.40), _join(text, "00"), text)  # "500.0000"
    # one variant per row (mutually exclusive, so a quoted value is never padded or altered)
    variant = rng.random(n)
    text = _where(variant < 0.003, _join("¥", text), text)
    text = _patch(text, (variant >= 0.003) & (variant < 0.006), _fullwidth)
    text = _where((variant >= 0.006) & (variant < 0.0065), _join("-", _num(units)), text)  # negative: fails between
    big = _num(rng.integers(100_000_001, 9_000_000_000, n))
    text = _where((variant >= 0.0065) & (variant < 0.007), big, text)  # above 1e8: fails between
    words = _take(CAPITAL_TEXT, rng.integers(0, len(CAPITAL_TEXT), n))
    text = _where((variant >= 0.007) & (variant < 0.009), words, text)  # text: cast failure
    text = _nullify(rng, text, 0.01)
    text = _pad(rng, text, 0.003)
    thousands = (variant >= 0.01) & (variant < 0.04) & (units >= 1000)
    return _patch(text, thousands, _thousands)


def col_founded(rng: np.random.Generator, n: int) -> pa.Array:
    span = int((np.datetime64(ANCHOR) - EPOCH).astype(np.int64))
    days = (span * rng.beta(3.0, 1.2, n)).astype(np.int64) - 1  # more young enterprises than old ones
    days = np.clip(days, 0, span - 1)
    y, m, d = _date_parts(days)
    ys, ms, ds = _num(y), _num(m), _num(d)
    ms2, ds2 = _num(m, 2), _num(d, 2)
    iso = _join(ys, "-", ms2, "-", ds2)
    style = rng.random(n)
    text = iso
    text = _where((style >= 0.50) & (style < 0.65), _join(ys, "年", ms, "月", ds, "日"), text)
    text = _where((style >= 0.65) & (style < 0.77), _join(ys, ".", ms, ".", ds), text)
    text = _where((style >= 0.77) & (style < 0.89), _join(ys, ms2, ds2), text)
    text = _where((style >= 0.89) & (style < 0.95), _join(ys, "/", ms2, "/", ds2), text)
    serial = (EPOCH - EXCEL_EPOCH).astype(np.int64) + days
    text = _where((style >= 0.95) & (style < 0.98), _num(serial), text)  # Excel serial
    text = _where(style >= 0.98, _join(iso, " 00:00:00"), text)
    # impossible dates: cast failures
    impossible = rng.random(n) < 0.002
    bad = _take(["-02-30", "-13-01", "-04-31", "-00-10", "-06-31", "-02-29"], rng.integers(0, 6, n))
    bad_year = _num(rng.choice([2019, 2021, 2022, 2023, 1999], n))
    kind = rng.random(n)
    bad_text = _join(bad_year, bad)
    bad_text = _where(kind < 0.3, _join(bad_year, "年13月1日"), bad_text)
    bad_text = _where((kind >= 0.3) & (kind < 0.5), _join(bad_year, "0431"), bad_text)
    bad_text = _where((kind >= 0.5) & (kind < 0.6), _join(bad_year, ".6.31"), bad_text)
    text = _where(impossible, bad_text, text)
    # real dates outside 1949-10-01 .. ANCHOR: fail the between expectation
    early = _join(
        _num(rng.integers(1900, 1949, n)), "-", _num(rng.integers(1, 13, n), 2), "-", _num(rng.integers(1, 29, n), 2)
    )
    late = _join(
        _num(rng.integers(2027, 2036, n)), "-", _num(rng.integers(1, 13, n), 2), "-", _num(rng.integers(1, 29, n), 2)
    )
    text = _where(rng.random(n) < 0.0005, early, text)
    text = _where(rng.random(n) < 0.0005, late, text)
    return _pad(rng, text, 0.005)


def col_status(rng: np.random.Generator, n: int) -> pa.Array:
    status = _take(STATUSES, rng.choice(len(STATUSES), n, p=STATUS_WEIGHTS / STATUS_WEIGHTS.sum()))
    status = _where(rng.random(n) < 0.001, _take(BAD_STATUS, rng.integers(0, len(BAD_STATUS), n)), status)
    status = _pad(rng, status, 0.01)
    return _nullify(rng, status, 0.003)


def col_district(rng: np.random.Generator, district: np.ndarray) -> pa.Array:
    n = len(district)
    codes = _take([c for c, _ in DISTRICTS], district)
    names = _take([d for _, d in DISTRICTS], district)
    text = _where(rng.random(n) < 0.097, names, codes)  # names: mapped by the spec's code map
    text = _where(rng.random(n) < 0.003, _take(BAD_DISTRICTS, rng.integers(0, len(BAD_DISTRICTS), n)), text)
    text = _patch(text, rng.random(n) < 0.002, _fullwidth)
    return _pad(rng, text, 0.005)


def col_phone(rng: np.random.Generator, n: int) -> pa.Array:
    prefix = _take(MOBILE_PREFIXES, rng.integers(0, len(MOBILE_PREFIXES), n))
    phone = _join(prefix, _num(rng.integers(0, 1_000_000_000, n), 9))
    kind = rng.random(n)
    invalid = rng.random(n) < 0.003
    short = _join(prefix, _num(rng.integers(0, 100_000_000, n), 8))  # 10 digits
    wrong_prefix = _join("12", _num(rng.integers(0, 1_000_000_000, n), 9))
    landline = _join("021-", _num(rng.integers(0, 100_000_000, n), 8))
    bad = _where(kind < 0.4, short, _where(kind < 0.7, wrong_prefix, landline))
    phone = _where(invalid, bad, phone)
    phone = _patch(phone, rng.random(n) < 0.005, _fullwidth)  # full-width digits: cleansed
    phone = _pad(rng, phone, 0.005)
    return _nullify(rng, phone, 0.02)


def col_address(rng: np.random.Generator, district: np.ndarray) -> pa.Array:
    n = len(district)
    road = _take(ROADS, rng.integers(0, len(ROADS), n))
    number = _num(rng.integers(1, 3000, n))
    room = _where(
        rng.random(n) < 0.3, _join(_num(rng.integers(1, 30, n)), "楼", _num(rng.integers(101, 3000, n)), "室"), ""
    )
    addr = _join("上海市", _take([d for _, d in DISTRICTS], district), road, number, "号", room)
    addr = _where(rng.random(n) < 0.01, _join(addr, "，近", road), addr)  # full-width comma becomes ','
    addr = _patch(addr, rng.random(n) < 0.005, _fullwidth)
    addr = _pad(rng, addr, 0.005)
    return _nullify(rng, addr, 0.005)


def col_industry(rng: np.random.Generator, n: int) -> pa.Array:
    code = _join(
        _take(INDUSTRY_LETTERS, rng.integers(0, len(INDUSTRY_LETTERS), n)), _num(rng.integers(100, 10_000, n), 4)
    )
    code = _where(rng.random(n) < 0.01, pc.utf8_lower(code), code)
    return _nullify(rng, code, 0.003)


def col_updated(rng: np.random.Generator, n: int) -> pa.Array:
    start = np.datetime64("2023-01-01T00:00:00")
    span = int((np.datetime64(ANCHOR) - start).astype("timedelta64[s]").astype(np.int64))
    seconds = rng.integers(0, span, n)
    stamp = start + seconds.astype("timedelta64[s]")
    days = stamp.astype("datetime64[D]")
    y, m, d = _date_parts((days - EPOCH).astype(np.int64))
    secs = (stamp - days).astype(np.int64)
    hh, mi, ss = secs // 3600, secs // 60 % 60, secs % 60
    ys, ms2, ds2 = _num(y), _num(m, 2), _num(d, 2)
    hs, mis, sss = _num(hh, 2), _num(mi, 2), _num(ss, 2)
    style = rng.random(n)
    text = _join(ys, "-", ms2, "-", ds2, " ", hs, ":", mis, ":", sss)
    text = _where((style >= 0.90) & (style < 0.94), _join(ys, "/", ms2, "/", ds2, " ", hs, ":", mis, ":", sss), text)
    text = _where((style >= 0.94) & (style < 0.97), _join(ys, ms2, ds2, hs, mis, sss), text)
    text = _where(
        (style >= 0.97) & (style < 0.99), _join(ys, "年", ms2, "月", ds2, "日 ", hs, "时", mis, "分", sss, "秒"), text
    )
    text = _where(style >= 0.99, _join(ys, "-", ms2, "-", ds2), text)  # date only: midnight
    return _pad(rng, text, 0.003)


def col_postcode(rng: np.random.Generator, n: int) -> pa.Array:
    code = _join("20", _num(rng.integers(0, 10_000, n), 4))
    kind = rng.random(n)
    bad = _where(
        kind < 0.5, _join("20", _num(rng.integers(0, 1000, n), 3)), _join("20", _num(rng.integers(0, 1000, n), 3), "O")
    )
    code = _where(rng.random(n) < 0.002, bad, code)
    return _nullify(rng, code, 0.01)


# --- the file -----------------------------------------------------------------------------------


def batch_lines(index: int, n: int, codes: np.ndarray) -> pa.Array:
    """The CSV lines (with CRLF) of batch ``index``: ``n`` rows, USCCs from ``codes``."""
    rng = np.random.default_rng([SEED, index])
    district = rng.choice(len(DISTRICTS), n, p=DISTRICT_WEIGHTS / DISTRICT_WEIGHTS.sum())
    columns = [
        col_uscc(rng, codes),
        col_name(rng, n, district),
        col_person(rng, n),
        col_capital(rng, n),
        col_founded(rng, n),
        col_status(rng, n),
        col_district(rng, district),
        col_phone(rng, n),
        col_address(rng, district),
        col_industry(rng, n),
        col_updated(rng, n),
        col_postcode(rng, n),
    ]
    line = pc.binary_join_element_wise(*columns, ",")
    return pc.binary_join_element_wise(line, pa.scalar("\r\n"), "")


def all_codes(rows: int) -> np.ndarray:
    """Every row's USCC (as alphabet indexes); ~0.5% of the rows repeat an earlier row's code."""
    rng = np.random.default_rng([SEED, 1_000_000])
    codes = uscc_codes(rng, rows)
    dup = np.flatnonzero(rng.random(rows) < 0.005)
    dup = dup[dup > 0]
    source = (rng.random(len(dup)) * dup).astype(np.int64)  # an earlier row
    codes[dup] = codes[source]
    return codes


def fingerprint(rows: int) -> dict[str, object]:
    """What the output depends on: the row count, the seed and this file's source."""
    source = Path(__file__).read_bytes()
    return {"rows": rows, "seed": SEED, "generator_sha256": hashlib.sha256(source).hexdigest()}


def meta_path(target: Path) -> Path:
    """The sidecar file recording :func:`fingerprint` beside a generated CSV."""
    return target.with_name(target.name + ".meta.json")


def is_current(target: Path, rows: int) -> bool:
    """Whether ``target`` exists and was written by this generator for ``rows`` rows."""
    meta = meta_path(target)
    if not target.is_file() or not meta.is_file():
        return False
    return bool(json.loads(meta.read_text(encoding="utf-8")) == fingerprint(rows))


def _encoded_batch(task: tuple[int, np.ndarray]) -> bytes:
    """Batch ``index`` as GB18030 bytes (run in a worker process)."""
    index, codes = task
    lines = batch_lines(index, len(codes), codes)
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1, offset=lines.offset * 4)
    text = memoryview(lines.buffers()[2])[int(offsets[0]) : int(offsets[-1])]
    return str(text, "utf-8").encode("gb18030")


def generate(rows: int = DEFAULT_ROWS, target: Path | None = None, *, workers: int | None = None) -> Path:
    """Write the CSV (GB18030, CRLF, header) and return its path.

    Batches are built in ``workers`` processes (default: the CPU count) and written in order;
    every batch has its own seed, so the bytes do not depend on the number of workers.
    """
    target = target or output_path(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    codes = all_codes(rows)
    tasks = [(index, codes[start : start + BATCH]) for index, start in enumerate(range(0, rows, BATCH))]
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as out:
        out.write((",".join(HEADER) + "\r\n").encode("gb18030"))
        if workers == 1:
            for task in tasks:
                out.write(_encoded_batch(task))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for chunk in pool.map(_encoded_batch, tasks):
                    out.write(chunk)
    tmp.replace(target)
    meta_path(target).write_text(json.dumps(fingerprint(rows)), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to generate (default 5,000,000)")
    parser.add_argument("--output", type=Path, default=None, help="target file (default bench/data/...)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    path = generate(args.rows, args.output, workers=args.workers)
    size = path.stat().st_size
    print(f"wrote {path} ({args.rows:,} rows, {size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
