"""Generate the quality benchmark's staged data: an employment register of ``rows`` residents, typed Parquet.

``python bench/quality_generate.py [--rows N]`` writes ``bench/data/quality_10m.staged.parquet``
(10M rows, the default) or ``bench/data/quality_<N>.staged.parquet``, and beside it a
``.meta.json`` naming the row count, the seed and the sha256 of the generator's source, so
``bench/quality_run.py`` regenerates the data when the generator changed. The file is what the
cleanse step stages: ``_govdata_row`` (BIGINT, 1..N in file order) first, then typed columns
(VARCHAR, DATE, DECIMAL(18,4)); zstd, one row group per batch. It is byte-identical on every
run and for any number of worker processes: one seed per batch of :data:`BATCH` rows, no wall
clock (every date is fixed; "future" dates lie in 2031-2039).

Vectorised like ``bench/generate.py`` (whose vocabularies and helpers it reuses): numpy draws
every random choice of a batch at once, identifiers are built as digit matrices with their
check characters computed by matrix products, and pyarrow turns them into columns.

The defects, at rates of a few per thousand, each hit one expectation of
``bench/quality_suite.json`` (a row can carry several):

- ``resident_id``: NULL; wrong check digit; impossible birth dates (``0230``, month 13, day 0,
  ``0431``) and birth dates in the future, with a correct check digit; 17 digits or a letter
  inside; the same person registered twice (ID, name, sex and birth date repeated: the
  uniqueness check; otherwise IDs never collide by chance, up to 14.4M rows);
- ``birth_date`` / ``sex`` against the ID: another date, the other sex (the cross-field
  consistency check), a birth date in the future (the range check), sex values out of the set;
- ``name``: NULL;
- ``mobile``: 10 digits, ``12…``, landlines (valid: ``+86``/``86`` prefixes, NULLs);
- ``employer_uscc``: wrong check character; an embedded organisation code with a wrong GB 11714
  check (the USCC check recomputed, so only that check fails); an authority/type pair that is
  not issued (``94``, ``A3``); NULLs pass;
- ``district_code``: abolished (闸北 310108, 南汇 310119, 卢湾 310103) or made-up codes;
- ``amount``: negative or above 1,000,000; ``status``: values out of the set; ``postal_code``:
  five digits or a letter O for a zero.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import generate as base  # noqa: E402  (bench/generate.py: vocabularies and vectorised helpers)
from generate import _join, _num, _take, _where  # noqa: E402

SEED = 20261125
BATCH = 500_000
DEFAULT_ROWS = 10_000_000
DATA_DIR = BENCH / "data"

#: The staged columns, as the cleanse step types them (``bench/quality_spec.yaml``).
SCHEMA = pa.schema(
    [
        ("_govdata_row", pa.int64()),
        ("resident_id", pa.string()),
        ("name", pa.string()),
        ("sex", pa.string()),
        ("birth_date", pa.date32()),
        ("mobile", pa.string()),
        ("employer", pa.string()),
        ("employer_uscc", pa.string()),
        ("district_code", pa.string()),
        ("address", pa.string()),
        ("amount", pa.decimal128(18, 4)),
        ("status", pa.string()),
        ("registered_on", pa.date32()),
        ("postal_code", pa.string()),
    ]
)

RESIDENT_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
#: check character by Σ mod 11, as an index into "0123456789X"
RESIDENT_ID_CHECK = np.array([1, 0, 10, 9, 8, 7, 6, 5, 4, 3, 2], dtype=np.uint8)
ID_CHARS = np.frombuffer(b"0123456789X", dtype=np.uint8)
#: Address codes of IDs issued outside the city's districts (闸北 310108 was merged in 2015: still valid in IDs).
OTHER_ID_AREAS = ["310108", "110105", "320102", "330106", "340104", "410105", "510107", "420106", "370102"]

ORG_CODE_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
ORG_CODE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: GB 11714 check character by Σ mod 11 (11 − r, 10 → X, 11 → 0), as an index into the USCC alphabet.
ORG_CHECK_BY_REMAINDER = np.array([base.USCC_ALPHABET.index(c) for c in "0X987654321"], dtype=np.uint8)
#: A USCC alphabet index's value in the organisation-code alphabet (A=10 … Y=34).
ORG_VALUE = np.array([ORG_CODE_ALPHABET.index(c) for c in base.USCC_ALPHABET], dtype=np.int64)
USCC_WEIGHTS = base.USCC_WEIGHTS.astype(np.int64)
USCC_CHARS = np.frombuffer(base.USCC_ALPHABET.encode("ascii"), dtype=np.uint8)
#: (authority, entity type) pairs no authority issues; "A3": A issues 1 and 9 only.
BAD_USCC_PREFIXES = ["94", "A3", "24", "Y2"]

STATUSES = ["在职", "离职", "退休", "待业"]
STATUS_WEIGHTS = np.array([70, 12, 10, 8], dtype=np.float64)
BAD_STATUSES = ["离职中", "停保", "unknown", "在岗"]
BAD_SEX = ["未知", "9", "男性"]

#: Spreads consecutive rows over the birth dates (coprime with their number, 28,855).
SPREAD = 7919
BIRTH_FIRST = np.datetime64("1930-01-01")
BIRTH_LAST = np.datetime64("2008-12-31")
REGISTERED_FIRST = np.datetime64("2000-01-01")
REGISTERED_LAST = np.datetime64("2026-10-31")
UNIX = np.datetime64("1970-01-01")


def output_path(rows: int, data_dir: Path = DATA_DIR) -> Path:
    """Where the generator writes a file of ``rows`` rows."""
    name = "quality_10m" if rows == DEFAULT_ROWS else f"quality_{rows}"
    return data_dir / f"{name}.staged.parquet"


def meta_path(target: Path) -> Path:
    """The sidecar recording :func:`fingerprint` beside a generated file."""
    return target.with_name(target.name + ".meta.json")


def fingerprint(rows: int) -> dict[str, object]:
    """What the output depends on: the row count, the seed and the generators' sources."""
    source = Path(__file__).read_bytes() + Path(base.__file__).read_bytes()
    return {"rows": rows, "seed": SEED, "generator_sha256": hashlib.sha256(source).hexdigest()}


def is_current(target: Path, rows: int) -> bool:
    """Whether ``target`` exists and was written by this generator for ``rows`` rows."""
    meta = meta_path(target)
    if not target.is_file() or not meta.is_file():
        return False
    return bool(json.loads(meta.read_text(encoding="utf-8")) == fingerprint(rows))


# --- helpers --------------------------------------------------------------------------------------


def _fixed_text(chars: np.ndarray) -> pa.Array:
    """An (n, w) uint8 matrix of ASCII bytes as a string array of width ``w``."""
    n, width = chars.shape
    raw = np.ascontiguousarray(chars, dtype=np.uint8)
    offsets = np.arange(0, width * (n + 1), width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(raw)])


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers as an (n, width) matrix of their decimal digits."""
    out = np.empty((len(values), width), dtype=np.int64)
    rest = values.astype(np.int64)
    for position in range(width - 1, -1, -1):
        out[:, position] = rest % 10
        rest //= 10
    return out


def _null(values: pa.Array, mask: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.scalar(None, values.type), values)


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), pa.int32()).cast(pa.date32())


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dates = UNIX + days.astype("timedelta64[D]")
    years = dates.astype("datetime64[Y]")
    months = dates.astype("datetime64[M]")
    y = years.astype(np.int64) + 1970
    m = (months - years.astype("datetime64[M]")).astype(np.int64) + 1
    d = (dates - months.astype("datetime64[D]")).astype(np.int64) + 1
    return y, m, d


def _day_range(first: np.datetime64, last: np.datetime64) -> tuple[int, int]:
    return int((first - UNIX).astype(np.int64)), int((last - UNIX).astype(np.int64))


# --- identifiers ----------------------------------------------------------------------------------


def resident_id_check(body: np.ndarray) -> np.ndarray:
    """Check characters (0-10, 10 = X) of an (n, 17) digit matrix."""
    return RESIDENT_ID_CHECK[(body @ RESIDENT_ID_WEIGHTS) % 11]


def uscc_matrix(rng: np.random.Generator, n: int, district: np.ndarray) -> np.ndarray:
    """``n`` valid USCCs (embedded organisation code checked) as an (n, 18) matrix of alphabet indexes."""
    codes = np.empty((n, 18), dtype=np.int64)
    weights = np.array([w for _, w in base.USCC_PREFIXES])
    prefix = rng.choice(len(base.USCC_PREFIXES), n, p=weights / weights.sum())
    codes[:, 0] = np.array([base.USCC_ALPHABET.index(p[0]) for p, _ in base.USCC_PREFIXES])[prefix]
    codes[:, 1] = np.array([base.USCC_ALPHABET.index(p[1]) for p, _ in base.USCC_PREFIXES])[prefix]
    area = np.array([[int(c) for c in code] for code, _ in base.DISTRICTS], dtype=np.int64)
    codes[:, 2:8] = area[district]
    body = rng.integers(0, 10, (n, 8))
    letters = rng.random(n) < 0.05  # some organisation codes start with a letter
    body[letters, 0] = rng.integers(10, 31, int(letters.sum()))
    codes[:, 8:16] = body
    codes[:, 16] = ORG_CHECK_BY_REMAINDER[(ORG_VALUE[body] @ ORG_CODE_WEIGHTS) % 11]
    codes[:, 17] = uscc_check(codes)
    return codes


def uscc_check(codes: np.ndarray) -> np.ndarray:
    """The MOD 31 check indexes of an (n, ≥17) matrix of alphabet indexes."""
    return (31 - (codes[:, :17] @ USCC_WEIGHTS) % 31) % 31


# --- one batch -----------------------------------------------------------------------------------


def batch_table(index: int, start: int, n: int) -> pa.Table:
    """Rows ``start + 1 .. start + n`` (batch ``index``, its own seed) as a table of :data:`SCHEMA`."""
    rng = np.random.default_rng([SEED, index])
    row = np.arange(start + 1, start + n + 1, dtype=np.int64)
    district = rng.choice(len(base.DISTRICTS), n, p=base.DISTRICT_WEIGHTS / base.DISTRICT_WEIGHTS.sum())

    # the person: birth date, sex, name
    lo, hi = _day_range(BIRTH_FIRST, BIRTH_LAST)
    # (birth date, sequence) is a function of the row number, so no two people share an ID by chance
    # (up to 500 x 28,855 = 14.4M rows): the uniqueness check sees only the planted repeats.
    ordinal = np.arange(start, start + n, dtype=np.int64)
    days = hi - lo + 1
    born = lo + (ordinal * SPREAD) % days
    male = rng.random(n) < 0.5
    surname = _take(base.SURNAMES, rng.integers(0, len(base.SURNAMES), n))
    given = _take(base.GIVEN, rng.integers(0, len(base.GIVEN), n))
    two = rng.random(n) < 0.6
    given = _where(two, _join(given, _take(base.GIVEN, rng.integers(0, len(base.GIVEN), n))), given)
    name = _join(surname, given)

    # the resident ID: area + YYYYMMDD + sequence (parity = sex) + check
    ids = np.empty((n, 18), dtype=np.int64)
    own = np.array([[int(c) for c in code] for code, _ in base.DISTRICTS], dtype=np.int64)[district]
    elsewhere = np.array([[int(c) for c in code] for code in OTHER_ID_AREAS], dtype=np.int64)
    moved = rng.random(n) < 0.25
    ids[:, 0:6] = np.where(moved[:, None], elsewhere[rng.integers(0, len(elsewhere), n)], own)
    y, m, d = _ymd(born)
    ids[:, 6:10] = _digits(y, 4)
    ids[:, 10:12] = _digits(m, 2)
    ids[:, 12:14] = _digits(d, 2)
    ids[:, 14:17] = _digits((ordinal // days) * 2 + male, 3)  # the sequence; odd: male
    kind = rng.random(n)
    impossible = (kind >= 0.003) & (kind < 0.005)
    bad_md = np.array([[0, 2, 3, 0], [1, 3, 0, 1], [0, 4, 3, 1], [0, 0, 1, 0], [0, 6, 0, 0]], dtype=np.int64)
    ids[impossible, 10:14] = bad_md[rng.integers(0, len(bad_md), n)][impossible]
    future = (kind >= 0.005) & (kind < 0.0055)
    ids[future, 6:10] = _digits(rng.integers(2031, 2040, n), 4)[future]
    ids[:, 17] = resident_id_check(ids[:, :17])
    wrong_check = kind < 0.003
    ids[wrong_check, 17] = (ids[wrong_check, 17] + rng.integers(1, 11, n)[wrong_check]) % 11
    resident_id = _fixed_text(ID_CHARS[ids])
    short = (kind >= 0.0055) & (kind < 0.0058)
    resident_id = _where(short, pc.utf8_slice_codeunits(resident_id, 0, 17), resident_id)
    lettered = (kind >= 0.0058) & (kind < 0.006)
    resident_id = _where(
        lettered,
        _join(pc.utf8_slice_codeunits(resident_id, 0, 9), "A", pc.utf8_slice_codeunits(resident_id, 10, 18)),
        resident_id,
    )

    # the record's birth date and sex: as the ID says, but for the defects
    birth = born.copy()
    other = rng.random(n)
    shifted = other < 0.002
    birth[shifted] += rng.choice(np.array([-366, -31, -1, 1, 30, 365 * 10]), n)[shifted]
    lo_f, hi_f = _day_range(np.datetime64("2031-01-01"), np.datetime64("2039-12-31"))
    future_birth = (other >= 0.002) & (other < 0.003)
    birth[future_birth] = rng.integers(lo_f, hi_f + 1, n)[future_birth]
    sex = _where(male, "男", "女")
    flip = (other >= 0.003) & (other < 0.005)
    sex = _where(flip, _where(male, "女", "男"), sex)
    odd_sex = (other >= 0.005) & (other < 0.006)
    sex = _where(odd_sex, _take(BAD_SEX, rng.integers(0, len(BAD_SEX), n)), sex)

    # the same person registered twice: ~0.2% of the rows repeat an earlier row of the batch
    twice = np.flatnonzero(rng.random(n) < 0.002)
    twice = twice[twice > 0]
    first = (rng.random(len(twice)) * twice).astype(np.int64)
    if len(twice):
        pick = np.arange(n)
        pick[twice] = first
        taken = pa.array(pick)
        resident_id, name, sex = resident_id.take(taken), name.take(taken), sex.take(taken)
        birth = birth[pick]
    birth_date = _dates(birth)

    resident_id = _null(resident_id, rng.random(n) < 0.001)
    name = _null(name, rng.random(n) < 0.002)
    sex = _null(sex, rng.random(n) < 0.0005)
    birth_date = _null(birth_date, rng.random(n) < 0.001)

    # mobile
    mobile = _join(_take(base.MOBILE_PREFIXES, rng.integers(0, len(base.MOBILE_PREFIXES), n)),
                   _num(rng.integers(0, 1_000_000_000, n), 9))  # fmt: skip
    style = rng.random(n)
    mobile = _where(style < 0.01, _join("+86", mobile), mobile)
    mobile = _where((style >= 0.01) & (style < 0.015), _join("86", mobile), mobile)
    bad = rng.random(n)
    mobile = _where(bad < 0.001, pc.utf8_slice_codeunits(mobile, 0, 10), mobile)  # 10 digits
    mobile = _where((bad >= 0.001) & (bad < 0.002), _join("12", _num(rng.integers(0, 10**9, n), 9)), mobile)
    mobile = _where((bad >= 0.002) & (bad < 0.003), _join("021-", _num(rng.integers(0, 10**8, n), 8)), mobile)
    mobile = _null(mobile, rng.random(n) < 0.01)

    # employer and its USCC
    brand = _join(
        _take(base.BRAND_CHARS, rng.integers(0, len(base.BRAND_CHARS), n)),
        _take(base.BRAND_CHARS, rng.integers(0, len(base.BRAND_CHARS), n)),
    )
    employer = _join("上海", brand, _take(base.TRADES, rng.integers(0, len(base.TRADES), n)), "有限公司")
    codes = uscc_matrix(rng, n, district)
    kind = rng.random(n)
    wrong = kind < 0.002
    codes[wrong, 17] = (codes[wrong, 17] + rng.integers(1, 31, n)[wrong]) % 31
    org = (kind >= 0.002) & (kind < 0.004)
    org_digits = np.array([base.USCC_ALPHABET.index(c) for c in "0123456789X"])
    codes[org, 16] = org_digits[(np.searchsorted(org_digits, codes[org, 16]) + rng.integers(1, 11, n)[org]) % 11]
    prefix = (kind >= 0.004) & (kind < 0.0045)
    bad_prefix = np.array([[base.USCC_ALPHABET.index(c) for c in p] for p in BAD_USCC_PREFIXES])
    codes[prefix, 0:2] = bad_prefix[rng.integers(0, len(bad_prefix), n)][prefix]
    recheck = org | prefix
    codes[recheck, 17] = uscc_check(codes[recheck])
    employer_uscc = _null(_fixed_text(USCC_CHARS[codes]), rng.random(n) < 0.003)
    employer = _null(employer, rng.random(n) < 0.003)

    # where they live
    district_code = _take([c for c, _ in base.DISTRICTS], district)
    district_code = _where(
        rng.random(n) < 0.003, _take(base.BAD_DISTRICTS, rng.integers(0, len(base.BAD_DISTRICTS), n)), district_code
    )
    district_code = _null(district_code, rng.random(n) < 0.001)
    address = _join(
        "上海市",
        _take([label for _, label in base.DISTRICTS], district),
        _take(base.ROADS, rng.integers(0, len(base.ROADS), n)),
        _num(rng.integers(1, 3000, n)),
        "号",
    )

    # amount (monthly contribution base, yuan): DECIMAL(18,4)
    cents = np.round(np.exp(rng.normal(8.9, 0.5, n)) * 100).astype(np.int64)
    cents = np.clip(cents, 100, 99_999_999)
    kind = rng.random(n)
    cents = np.where(kind < 0.002, -cents, cents)
    cents = np.where((kind >= 0.002) & (kind < 0.003), rng.integers(100_000_001, 10_000_000_000, n), cents)
    sign = _where(cents < 0, "-", "")
    text = _join(sign, _num(np.abs(cents) // 100), ".", _num(np.abs(cents) % 100, 2), "00")
    amount = _null(pc.cast(text, pa.decimal128(18, 4)), rng.random(n) < 0.005)

    status = _take(STATUSES, rng.choice(len(STATUSES), n, p=STATUS_WEIGHTS / STATUS_WEIGHTS.sum()))
    status = _where(rng.random(n) < 0.002, _take(BAD_STATUSES, rng.integers(0, len(BAD_STATUSES), n)), status)
    status = _null(status, rng.random(n) < 0.001)

    lo_r, hi_r = _day_range(REGISTERED_FIRST, REGISTERED_LAST)
    registered_on = _dates(rng.integers(lo_r, hi_r + 1, n))

    postal_code = _join("20", _num(rng.integers(0, 10_000, n), 4))
    kind = rng.random(n)
    postal_code = _where(kind < 0.001, _join("20", _num(rng.integers(0, 1000, n), 3)), postal_code)
    postal_code = _where(
        (kind >= 0.001) & (kind < 0.002), _join("20", _num(rng.integers(0, 1000, n), 3), "O"), postal_code
    )
    postal_code = _null(postal_code, rng.random(n) < 0.005)

    columns = [
        pa.array(row),
        resident_id,
        name,
        sex,
        birth_date,
        mobile,
        employer,
        employer_uscc,
        district_code,
        address,
        amount,
        status,
        registered_on,
        postal_code,
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _batch_ipc(task: tuple[int, int, int]) -> bytes:
    """Batch ``task`` as Arrow IPC bytes (built in a worker process)."""
    table = batch_table(*task)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def generate(rows: int = DEFAULT_ROWS, target: Path | None = None, *, workers: int | None = None) -> Path:
    """Write the staged Parquet and its ``.meta.json``; return the Parquet's path."""
    if rows < 1:
        raise ValueError(f"--rows must be at least 1, got {rows}")
    target = target or output_path(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    tasks = [(index, start, min(BATCH, rows - start)) for index, start in enumerate(range(0, rows, BATCH))]
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    tmp = target.with_name(target.name + ".tmp")
    with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:
        if workers == 1:
            for task in tasks:
                writer.write_table(batch_table(*task), row_group_size=BATCH)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for chunk in pool.map(_batch_ipc, tasks):
                    writer.write_table(pa.ipc.open_stream(chunk).read_all(), row_group_size=BATCH)
    tmp.replace(target)
    meta_path(target).write_text(json.dumps(fingerprint(rows)), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows to generate (default 10,000,000)")
    parser.add_argument("--output", type=Path, default=None, help="target file (default bench/data/...)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows must be at least 1, got {args.rows}")
    started = time.perf_counter()
    path = generate(args.rows, args.output, workers=args.workers)
    size = path.stat().st_size
    print(f"wrote {path} ({args.rows:,} rows, {size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
