"""The limit: the quality suite's counts in one hand-written DuckDB SQL statement over the staged Parquet.

``python bench/quality_onepass.py STAGED [--suite bench/quality_suite.json]`` runs one ``SELECT``
with a ``count(*) FILTER (WHERE …)`` per expectation of ``bench/quality_suite.json``, the
checksums (GB 11643 ISO 7064 MOD 11-2, GB 32100 MOD 31 and the embedded GB 11714 check)
written out by hand, and prints one JSON line with every expectation's count in suite order
and the times. It is what any tool must at least do to know these counts: read the columns
once and evaluate each condition once per row. It lists no failing rows, writes no report
and imports no GX.

The row conditions are evaluated once per row in a projection (``flags``) and counted in one
aggregate. The uniqueness count needs the resident IDs that occur more than once: a hash
aggregate over that one column in the same statement (DuckDB reads the column a second
time; there is no cheaper way to count duplicates). The column-set expectation is answered
from the Parquet schema.

The SQL is tied to the suite's exact kwargs: when the suite changes, this script stops with
the entry that no longer matches instead of computing other counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

BENCH = Path(__file__).resolve().parent
SUITE = BENCH / "quality_suite.json"
ROW = "_govdata_row"

DISTRICTS = [
    "310101",
    "310104",
    "310105",
    "310106",
    "310107",
    "310109",
    "310110",
    "310112",
    "310113",
    "310114",
    "310115",
    "310116",
    "310117",
    "310118",
    "310120",
    "310151",
]
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
#: (authority, entity type) pairs GB 32100 issues (letters A, N, Y included).
USCC_PREFIXES = [
    "11",
    "12",
    "13",
    "19",
    "21",
    "29",
    "31",
    "32",
    "33",
    "39",
    "41",
    "49",
    "51",
    "52",
    "53",
    "59",
    "61",
    "62",
    "69",
    "71",
    "72",
    "79",
    "81",
    "82",
    "89",
    "91",
    "92",
    "93",
    "A1",
    "A9",
    "N1",
    "N2",
    "N3",
    "N9",
    "Y1",
]
MALE = "('男', '1', 'M')"
FEMALE = "('女', '2', 'F')"


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _real_date(y: str, m: str, d: str, today: dt.date) -> str:
    """Integers ``y``, ``m``, ``d`` make a real Gregorian date from 1800-01-01 up to ``today``."""
    leap = f"(({y}) % 4 = 0 AND (({y}) % 100 <> 0 OR ({y}) % 400 = 0))"
    days = f"CASE WHEN {m} IN (4, 6, 9, 11) THEN 30 WHEN {m} = 2 THEN CASE WHEN {leap} THEN 29 ELSE 28 END ELSE 31 END"
    number = today.year * 10000 + today.month * 100 + today.day
    return (
        f"({m} BETWEEN 1 AND 12 AND {d} >= 1 AND {d} <= {days} "
        f"AND ({y}) * 10000 + {m} * 100 + {d} BETWEEN 18000101 AND {number})"
    )


def _digit(n: str, position: int, width: int) -> str:
    """The decimal digit at ``position`` (1-based) of the ``width``-digit integer ``n``."""
    return f"(({n} // {10 ** (width - position)}) % 10)"


def _resident_id_18(today: dt.date) -> str:
    """Over ``n18`` (the first 17 digits as BIGINT, NULL unless the ID is 17 digits + [0-9X]): valid."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = " + ".join(f"{_digit('n18', i, 17)} * {w}" for i, w in enumerate(weights, start=1))
    y, m, d = "(n18 // 10000000 % 10000)", "(n18 // 100000 % 100)", "(n18 // 1000 % 100)"
    return (
        f"({_real_date(y, m, d, today)} AND substr(resident_id, 18, 1) = substr('10X98765432', ({total}) % 11 + 1, 1))"
    )


def _resident_id_15(today: dt.date) -> str:
    """Over ``n15`` (the ID as BIGINT, NULL unless it is 15 digits): a real 19yy birth date."""
    y, m, d = "(1900 + n15 // 10000000 % 100)", "(n15 // 100000 % 100)", "(n15 // 1000 % 100)"
    return _real_date(y, m, d, today)


def _uscc_valid() -> str:
    """Over ``u1`` … ``u17`` (each character's index in the USCC alphabet): both check characters agree.

    The embedded organisation code (positions 9-16) is weighed by the GB 11714 alphabet
    (0-9, A-Z), in which the letters the USCC alphabet leaves out (I O S V) shift the values:
    ``u + (u >= 18) + (u >= 23) + (u >= 26) + (u >= 28)``.
    """

    def org(i: int) -> str:
        u = f"u{i}"
        return f"({u} + ({u} >= 18)::INT + ({u} >= 23)::INT + ({u} >= 26)::INT + ({u} >= 28)::INT)"

    uscc_weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    uscc_sum = " + ".join(f"u{i} * {w}" for i, w in enumerate(uscc_weights, start=1))
    org_sum = " + ".join(f"{org(i)} * {w}" for i, w in enumerate((3, 7, 9, 10, 5, 8, 4, 2), start=9))
    return (
        f"(substr(employer_uscc, 17, 1) = substr('0X987654321', ({org_sum}) % 11 + 1, 1) "
        f"AND substr(employer_uscc, 18, 1) = substr('{USCC_ALPHABET}', (31 - ({uscc_sum}) % 31) % 31 + 1, 1))"
    )


def _id_agrees() -> str:
    """The record's birth date and sex agree with a valid (18- or 15-digit) resident ID, or cannot be judged."""
    born = "CASE WHEN id18 THEN n18 // 1000 % 100000000 ELSE 19000000 + n15 // 1000 % 1000000 END"
    male = "(CASE WHEN id18 THEN n18 % 10 ELSE n15 % 10 END) % 2 = 1"
    birth_ok = f"(birth_date IS NULL OR year(birth_date) * 10000 + month(birth_date) * 100 + day(birth_date) = {born})"
    sex_ok = f"(sex IS NULL OR sex NOT IN ('男', '1', 'M', '女', '2', 'F') OR ((sex IN {MALE}) = ({male})))"
    return f"(NOT (id18 OR id15) OR ({birth_ok} AND {sex_ok}))"


#: The suite entries this SQL implements (type, kwargs), in suite order; the flag names the failing-row condition.
def checks(today: dt.date) -> list[tuple[str, dict[str, Any], str | None]]:
    districts = ", ".join(_lit(c) for c in DISTRICTS)
    return [
        ("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 100000000}, None),
        (
            "expect_table_columns_to_match_set",
            {
                "column_set": [
                    "resident_id",
                    "name",
                    "sex",
                    "birth_date",
                    "mobile",
                    "employer",
                    "employer_uscc",
                    "district_code",
                    "address",
                    "amount",
                    "status",
                    "registered_on",
                    "postal_code",
                ],
                "exact_match": True,
            },
            None,
        ),
        ("expect_column_values_to_not_be_null", {"column": "resident_id"}, "resident_id IS NULL"),
        (
            "expect_column_values_to_be_valid_cn_resident_id",
            {"column": "resident_id"},
            "resident_id IS NOT NULL AND NOT id18",
        ),
        ("expect_column_values_to_be_unique", {"column": "resident_id"}, None),
        (
            "expect_cn_resident_id_to_match_birth_date_and_sex",
            {"column": "resident_id", "birth_date_column": "birth_date", "sex_column": "sex"},
            f"NOT coalesce({_id_agrees()}, false) AND NOT (resident_id IS NULL AND birth_date IS NULL AND sex IS NULL)",
        ),
        ("expect_column_values_to_not_be_null", {"column": "name"}, "name IS NULL"),
        (
            "expect_column_values_to_be_in_set",
            {"column": "sex", "value_set": ["男", "女"]},
            "sex IS NOT NULL AND sex NOT IN ('男', '女')",
        ),
        (
            "expect_column_values_to_be_between",
            {"column": "birth_date", "min_value": "1900-01-01T00:00:00", "max_value": "2026-11-24T00:00:00"},
            "birth_date IS NOT NULL AND NOT (birth_date BETWEEN DATE '1900-01-01' AND DATE '2026-11-24')",
        ),
        (
            "expect_column_values_to_be_valid_cn_mobile",
            {"column": "mobile"},
            r"mobile IS NOT NULL AND NOT regexp_full_match(mobile, '(?:\+?86)?1[3-9][0-9]{9}')",
        ),
        (
            "expect_column_values_to_be_valid_uscc",
            {"column": "employer_uscc"},
            "employer_uscc IS NOT NULL AND NOT uscc_ok",
        ),
        (
            "expect_column_values_to_be_valid_cn_admin_division",
            {"column": "district_code", "prefix": "3101", "level": "county"},
            f"district_code IS NOT NULL AND district_code NOT IN ({districts})",
        ),
        (
            "expect_column_values_to_be_between",
            {"column": "amount", "min_value": 0, "max_value": 1000000},
            "amount IS NOT NULL AND NOT (amount BETWEEN 0 AND 1000000)",
        ),
        (
            "expect_column_values_to_be_in_set",
            {"column": "status", "value_set": ["在职", "离职", "退休", "待业"]},
            "status IS NOT NULL AND status NOT IN ('在职', '离职', '退休', '待业')",
        ),
        (
            "expect_column_values_to_match_regex",
            {"column": "postal_code", "regex": "^[0-9]{6}$"},
            "postal_code IS NOT NULL AND NOT regexp_full_match(postal_code, '[0-9]{6}')",
        ),
    ]


def check_suite(suite_path: Path, implemented: list[tuple[str, dict[str, Any], str | None]]) -> None:
    """Stop when the suite is not exactly what the SQL implements."""
    entries = json.loads(suite_path.read_text(encoding="utf-8"))["expectations"]
    if len(entries) != len(implemented):
        raise SystemExit(f"{suite_path}: {len(entries)} expectations, the one-pass SQL implements {len(implemented)}")
    for index, (entry, (kind, kwargs, _)) in enumerate(zip(entries, implemented, strict=True)):
        if entry["type"] != kind or (entry.get("kwargs") or {}) != kwargs:
            raise SystemExit(
                f"{suite_path}: expectations[{index}] is {entry['type']} {entry.get('kwargs')}, but the one-pass SQL "
                f"implements {kind} {kwargs}: update bench/quality_onepass.py with the suite"
            )


def statement(source: str, today: dt.date) -> tuple[str, list[int]]:
    """The one SELECT, and the suite indexes of its flag columns (in order).

    Layers, each value computed once per row: the identifiers' digits and character codes
    (``n18``, ``n15``, ``u1``..``u17``), their validity (``id18``, ``id15``, ``uscc_ok``), one
    boolean per expectation, the counts.
    """
    implemented = checks(today)
    flagged = [(i, cond) for i, (_, _, cond) in enumerate(implemented) if cond is not None]
    uscc_shape = "(?:" + "|".join(USCC_PREFIXES) + ")[0-9]{6}[0-9A-HJ-NP-RTUWXY]{10}"
    codes = ", ".join(f"strpos('{USCC_ALPHABET}', substr(employer_uscc, {i}, 1)) - 1 AS u{i}" for i in range(1, 18))
    flags = ",\n    ".join(f"({cond}) AS f{i}" for i, cond in flagged)
    counts = ",\n  ".join(f"count(*) FILTER (WHERE f{i})" for i, _ in flagged)
    sql = f"""
SELECT
  count(*),
  {counts},
  (SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM read_parquet({_lit(source)})
     WHERE resident_id IS NOT NULL GROUP BY resident_id HAVING count(*) > 1))
FROM (
  SELECT
    {flags}
  FROM (
    SELECT *,
      coalesce({_resident_id_18(today)}, false) AS id18,
      coalesce({_resident_id_15(today)}, false) AS id15,
      coalesce(uscc_shape AND {_uscc_valid()}, false) AS uscc_ok
    FROM (
      SELECT *,
        CASE WHEN regexp_full_match(resident_id, '[0-9]{{17}}[0-9X]')
          THEN CAST(substr(resident_id, 1, 17) AS BIGINT) END AS n18,
        CASE WHEN regexp_full_match(resident_id, '[0-9]{{15}}') THEN CAST(resident_id AS BIGINT) END AS n15,
        regexp_full_match(employer_uscc, {_lit(uscc_shape)}) AS uscc_shape,
        {codes}
      FROM read_parquet({_lit(source)})
    )
  )
)
"""
    return sql, [i for i, _ in flagged]


def run(staged: Path, suite_path: Path) -> dict[str, Any]:
    today = dt.datetime.now().astimezone().date()  # "not in the future", as the expectations use it
    implemented = checks(today)
    check_suite(suite_path, implemented)
    times: dict[str, float] = {}
    started = time.perf_counter()
    sql, flagged = statement(str(staged), today)
    con = duckdb.connect(config={"preserve_insertion_order": False})
    con.execute("SET enable_progress_bar = false")
    columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(str(staged))})").fetchall()]
    row = con.execute(sql).fetchone()
    con.close()
    times["query"] = time.perf_counter() - started
    assert row is not None
    row_count, *counts, duplicates = (int(v) for v in row)
    by_index = dict(zip(flagged, counts, strict=True))
    data_columns = sorted(c for c in columns if c != ROW)
    results: list[dict[str, Any]] = []
    for index, (kind, kwargs, _) in enumerate(implemented):
        column = kwargs.get("column")
        if kind == "expect_table_row_count_to_be_between":
            ok = kwargs["min_value"] <= row_count <= kwargs["max_value"]
            results.append({"index": index, "type": kind, "column": None, "success": ok, "observed_value": row_count})
            continue
        if kind == "expect_table_columns_to_match_set":
            ok = data_columns == sorted(kwargs["column_set"])
            results.append({"index": index, "type": kind, "column": None, "success": ok, "observed_value": columns})
            continue
        count = duplicates if kind == "expect_column_values_to_be_unique" else by_index[index]
        results.append(
            {"index": index, "type": kind, "column": column, "success": count == 0, "unexpected_count": count}
        )
    return {
        "system": "one-pass DuckDB SQL",
        "rows": row_count,
        "expectations": results,
        "times": {k: round(v, 3) for k, v in times.items()},
        "maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "duckdb": duckdb.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("staged", type=Path, help="the staged Parquet (bench/quality_generate.py)")
    parser.add_argument("--suite", type=Path, default=SUITE, help="the suite the SQL must match")
    parser.add_argument("--print-sql", action="store_true", help="print the statement and exit")
    args = parser.parse_args(argv)
    if args.print_sql:
        print(statement(str(args.staged), dt.datetime.now().astimezone().date())[0])
        return 0
    if not args.staged.is_file():
        raise SystemExit(f"{args.staged}: not found (generate it with bench/quality_generate.py)")
    print(json.dumps(run(args.staged, args.suite), ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
