"""The custom expectations: pandas and SQL (portable and DuckDB) agree with the reference, and the gate runs them.

Differential tests: a few thousand seeded values per identifier — valid ones and near misses
(wrong check characters, 0229 in a non-leap year, future and pre-1800 birth dates, lower-case
``x``, letters I/O/S/V/Z, A/N/Y authorities, an embedded organisation code with a wrong check,
GB 11714's 10 → X and 11 → 0, hyphens, merged districts, ``+86`` prefixes, wrong lengths,
full-width and other non-ASCII digits, spaces, newlines) — and records whose ID disagrees with
their birth date or sex are judged by the reference (``pipelines.identifiers``,
``pipelines.divisions``, :func:`expectations.custom.record_agrees`) and by every
implementation: GX on pandas, GX on DuckDB, the bare SQL expressions (DuckDB and portable
forms) on DuckDB and, with the integration marker, the portable forms on PostgreSQL;
hypothesis adds random strings on top. The gate (``expectations.gate.validate``) runs a suite
of all the new types end to end, with a sensitive ID column.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from great_expectations.core import ExpectationSuite
from hypothesis import given, settings
from hypothesis import strategies as st

from expectations import custom, engine, gate
from pipelines import divisions
from pipelines.errors import SpecError
from pipelines.identifiers import (
    ORG_CODE_ALPHABET,
    USCC_ALPHABET,
    USCC_AUTHORITIES,
    is_valid_cn_mobile,
    is_valid_org_code,
    is_valid_resident_id,
    is_valid_uscc,
    org_code_check_char,
    resident_id_check_char,
    uscc_check_char,
)

SEED = 20251124
N_CASES = 3000
TODAY = custom.local_today()
ADDRESSES = ("310115", "310101", "110105", "440305", "650102", "999999", "310108", "500157")
CURRENT = divisions.codes("current")
HISTORICAL = divisions.codes("historical")


# --- seeded cases ------------------------------------------------------------------------------


def _date_digits(day: dt.date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _random_day(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def _valid_resident_id(rng: random.Random, born: dt.date | None = None) -> str:
    born = born or _random_day(rng, dt.date(1800, 1, 1), TODAY)
    body = rng.choice(ADDRESSES) + _date_digits(born) + f"{rng.randrange(1000):03d}"
    return body + resident_id_check_char(body)


def _lower_case_x(rng: random.Random) -> str:
    """A valid ID whose check character is X, written with a lower-case x (invalid)."""
    while not (value := _valid_resident_id(rng)).endswith("X"):
        pass
    return value[:-1] + "x"


def _with_check(body: str) -> str:
    return body + resident_id_check_char(body)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def resident_id_cases(rng: random.Random, n: int = N_CASES) -> list[str | None]:
    """Valid IDs and near misses, in roughly equal shares."""
    makers: list[Callable[[], str | None]] = [
        lambda: _valid_resident_id(rng),
        lambda: _valid_resident_id(rng, dt.date(1980, rng.randint(1, 12), rng.randint(1, 28))).replace(
            "110105", "310115", 1
        ),
        lambda: _valid_resident_id(rng)[:-1] + rng.choice("0123456789X"),  # maybe-wrong check character
        lambda: _lower_case_x(rng),
        lambda: _with_check(rng.choice(ADDRESSES) + f"{rng.choice([1900, 1999, 2001, 2023, 2100])}0229" + "001"),
        lambda: _with_check(rng.choice(ADDRESSES) + f"{rng.choice([1904, 2000, 2024])}0229" + "002"),
        lambda: _with_check("110105" + _date_digits(TODAY + dt.timedelta(days=rng.randint(1, 4000))) + "003"),
        lambda: _with_check("110105" + _date_digits(TODAY) + "004"),
        lambda: _with_check(
            "110105" + f"{rng.randint(0, 1799):04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}" + "005"
        ),
        lambda: _with_check("110105" + f"{rng.randint(1800, 2020):04d}{rng.choice(['00', '13', '99'])}15" + "006"),
        lambda: _with_check(
            "110105" + f"{rng.randint(1800, 2020):04d}{rng.choice(['04', '06', '09', '11'])}31" + "007"
        ),
        lambda: _valid_resident_id(rng)[: rng.choice([0, 1, 15, 16, 17])],
        lambda: _valid_resident_id(rng) + rng.choice(["0", "X", " ", "\n"]),
        lambda: (lambda v, i: v[:i] + rng.choice("AZ x-/") + v[i + 1 :])(_valid_resident_id(rng), rng.randrange(17)),
        lambda: _fullwidth(_valid_resident_id(rng)),
        lambda: (lambda v: v[:6] + v[8:17])(
            _valid_resident_id(rng, _random_day(rng, dt.date(1900, 1, 1), dt.date(1999, 12, 31)))
        ),
        lambda: f"{rng.randrange(10**15):015d}",
        lambda: None,
    ]
    return [rng.choice(makers)() for _ in range(n)]


def _org(rng: random.Random, remainder: int | None = None) -> str:
    """A valid 9-character organisation code (optionally one whose weighted sum has ``remainder``)."""
    while True:
        body = "".join(rng.choice(ORG_CODE_ALPHABET) for _ in range(8))
        total = sum(ORG_CODE_ALPHABET.index(c) * w for c, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
        if remainder is None or total % 11 == remainder:
            return body + org_code_check_char(body)


def _uscc_org(rng: random.Random) -> str:
    """An organisation code whose characters are in the USCC alphabet (as inside a USCC)."""
    body = "".join(rng.choice(USCC_ALPHABET) for _ in range(8))
    return body + org_code_check_char(body)


def _valid_uscc(rng: random.Random, authority: str | None = None) -> str:
    authority = authority or rng.choice(sorted(USCC_AUTHORITIES))
    first17 = authority + rng.choice(USCC_AUTHORITIES[authority]) + f"{rng.randrange(10**6):06d}" + _uscc_org(rng)
    return first17 + uscc_check_char(first17)


def _sealed(first17: str) -> str:
    return first17 + uscc_check_char(first17)


def uscc_cases(rng: random.Random, n: int = N_CASES) -> list[str | None]:
    makers: list[Callable[[], str | None]] = [
        lambda: _valid_uscc(rng),
        lambda: _valid_uscc(rng, rng.choice("ANY")),
        lambda: _valid_uscc(rng)[:-1] + rng.choice(USCC_ALPHABET),
        lambda: _sealed(_valid_uscc(rng)[:16] + rng.choice("0123456789X")),  # maybe-wrong organisation check
        lambda: _sealed("91310115" + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))),  # random org part
        lambda: (lambda v, i: v[:i] + rng.choice("IOSVZ") + v[i + 1 :])(_valid_uscc(rng), rng.randrange(18)),
        lambda: _valid_uscc(rng).lower(),
        lambda: _sealed(rng.choice("0BCDEFGHJKLMPQRTUWX") + rng.choice("0123456789ANY") + "310115" + _uscc_org(rng)),
        lambda: _sealed(rng.choice("AY") + rng.choice("2345678") + "310115" + _uscc_org(rng)),
        lambda: _sealed("91" + "31011" + rng.choice("ABN") + _uscc_org(rng)),
        lambda: _valid_uscc(rng)[: rng.choice([0, 8, 17])],
        lambda: _valid_uscc(rng) + rng.choice(["0", "\n", " "]),
        lambda: _fullwidth(_valid_uscc(rng)),
        lambda: None,
    ]
    return [rng.choice(makers)() for _ in range(n)]


def org_code_cases(rng: random.Random, n: int = N_CASES) -> list[str | None]:
    def hyphenated(code: str) -> str:
        return code[:8] + "-" + code[8]

    makers: list[Callable[[], str | None]] = [
        lambda: _org(rng),
        lambda: hyphenated(_org(rng)),
        lambda: _org(rng, 0),  # check 11 -> "0"
        lambda: hyphenated(_org(rng, 1)),  # check 10 -> "X"
        lambda: _org(rng)[:8] + rng.choice("0123456789X"),
        lambda: (lambda c: c[:8] + {"0": "X", "X": "0"}.get(c[8], "0"))(_org(rng, rng.choice([0, 1]))),
        lambda: _org(rng, 1)[:8] + "10",  # "10" written out
        lambda: _org(rng, 0)[:8] + "11",
        lambda: _org(rng).lower(),
        lambda: _org(rng, 1)[:8] + "x",
        lambda: (lambda c: c[:8] + rng.choice([" ", "--", "_", "/"]) + c[8])(_org(rng)),
        lambda: (lambda c: c[:4] + "-" + c[4:])(_org(rng)),
        lambda: _fullwidth(_org(rng)),
        lambda: rng.choice([" ", "\n", ""]) + _org(rng) + rng.choice(["", " ", "\n"]),
        lambda: _org(rng)[: rng.choice([0, 7, 8])],
        lambda: None,
    ]
    return [rng.choice(makers)() for _ in range(n)]


def division_cases(rng: random.Random, n: int = N_CASES) -> list[str | None]:
    current = sorted(CURRENT)
    only_historical = sorted(HISTORICAL - CURRENT)
    shanghai = sorted(c for c in CURRENT if c.startswith("31"))
    makers: list[Callable[[], str | None]] = [
        lambda: rng.choice(current),
        lambda: rng.choice(shanghai),
        lambda: rng.choice(only_historical),
        lambda: rng.choice(["310108", "310103", "310100", "999999", "000000", "310199"]),
        lambda: f"{rng.randrange(10**6):06d}",
        lambda: _fullwidth(rng.choice(shanghai)),
        lambda: rng.choice(shanghai) + rng.choice([" ", "0", "\n"]),
        lambda: rng.choice(shanghai)[:5],
        lambda: None,
    ]
    return [rng.choice(makers)() for _ in range(n)]


def mobile_cases(rng: random.Random, n: int = N_CASES) -> list[str | None]:
    def number() -> str:
        return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))

    makers: list[Callable[[], str | None]] = [
        number,
        lambda: "+86" + number(),
        lambda: "86" + number(),
        lambda: rng.choice(["+86 ", "86-", "0086", "+85"]) + number(),
        lambda: "1" + rng.choice("012") + number()[2:],
        lambda: number()[: rng.choice([9, 10])],
        lambda: number() + rng.choice(["0", " ", "\n"]),
        lambda: (lambda m: f"{m[:3]} {m[3:7]} {m[7:]}")(number()),
        lambda: _fullwidth(number()),
        lambda: rng.choice(["", "无", "+86"]),
        lambda: None,
    ]
    return [rng.choice(makers)() for _ in range(n)]


SEX_TEXT = ("男", "女", "1", "2", "M", "F", "未知", "9", "m", "")


def record_cases(rng: random.Random, n: int = N_CASES) -> dict[str, list[Any]]:
    """Records (resident ID, birth date as DATE and as text, sex as text and as a code)."""
    rids: list[Any] = []
    dates: list[Any] = []
    texts: list[Any] = []
    sexes: list[Any] = []
    codes: list[Any] = []
    for _ in range(n):
        born = _random_day(rng, dt.date(1930, 1, 1), TODAY)
        body = rng.choice(ADDRESSES) + _date_digits(born) + f"{rng.randrange(1000):03d}"
        rid: str | None = body + resident_id_check_char(body)
        male = int(body[16]) % 2 == 1
        kind = rng.randrange(12)
        if kind == 0 and born.year < 2000:
            rid = body[:6] + body[8:17]  # legacy 15 digits
        elif kind == 1:
            rid = rid[:-1] + rng.choice("0123456789X")  # maybe invalid: then not judged
        elif kind == 2:
            rid = rid.lower()
        elif kind == 3:
            rid = None
        recorded = born
        if rng.random() < 0.2:
            recorded = born + dt.timedelta(days=rng.choice([-366, -1, 1, 31, 365]))
        said_male = male if rng.random() < 0.8 else not male
        rids.append(rid)
        dates.append(None if rng.random() < 0.05 else recorded)
        texts.append(
            rng.choice(
                [
                    recorded.isoformat(),
                    recorded.isoformat(),
                    f"{recorded.isoformat()}T08:30:00",
                    f"{recorded.isoformat()} 00:00:00",
                    _date_digits(recorded),
                    f"{recorded.year}年{recorded.month}月{recorded.day}日",
                    _fullwidth(recorded.isoformat()),
                    recorded.isoformat() + "x",
                    None,
                ]
            )
        )
        sexes.append(
            rng.choice((*SEX_TEXT, None))
            if rng.random() < 0.25
            else rng.choice(["男", "1", "M"] if said_male else ["女", "2", "F"])
        )
        codes.append(None if rng.random() < 0.05 else (1 if said_male else 2))
    return {"rid": rids, "birth_date": dates, "birth_text": texts, "sex": sexes, "sex_code": codes}


@pytest.fixture(scope="module")
def cases() -> pd.DataFrame:
    rng = random.Random(SEED)
    records = record_cases(rng)
    frame = pd.DataFrame(
        {
            "rid": resident_id_cases(rng),
            "uscc": uscc_cases(rng),
            "org": org_code_cases(rng),
            "division": division_cases(rng),
            "mobile": mobile_cases(rng),
            "r_id": pd.Series(records["rid"], dtype=object),
            "birth_date": pd.to_datetime(pd.Series(records["birth_date"], dtype=object)),
            "birth_text": pd.Series(records["birth_text"], dtype=object),
            "sex": pd.Series(records["sex"], dtype=object),
            "sex_code": pd.Series(records["sex_code"], dtype="Int64"),
        }
    )
    frame.insert(0, "id", range(len(frame)))
    return frame


# --- what each expectation must fail -----------------------------------------------------------


def _column_failures(check: Callable[[str], bool], column: str) -> Callable[[pd.DataFrame], set[int]]:
    def failing(frame: pd.DataFrame) -> set[int]:
        return {
            int(row_id)
            for row_id, value in zip(frame["id"], frame[column], strict=True)
            if isinstance(value, str) and not check(value)  # NULLs are not failures
        }

    return failing


def _record_failures(
    birth: str | None, sex: str | None, sex_values: dict[str, list[str]] | None = None, allow_15: bool = True
) -> Callable[[pd.DataFrame], set[int]]:
    def failing(frame: pd.DataFrame) -> set[int]:
        found = set()
        for row in frame.to_dict("records"):
            agrees = custom.record_agrees(
                row["r_id"],
                row[birth] if birth else None,
                row[sex] if sex else None,
                sex_values=sex_values,
                allow_15=allow_15,
                today=TODAY,
            )
            if not agrees:
                found.add(int(row["id"]))
        return found

    return failing


@dataclass(frozen=True)
class Case:
    """One configured expectation and the rows the reference says it must fail."""

    name: str
    type: str
    kwargs: dict[str, Any]
    failing: Callable[[pd.DataFrame], set[int]]

    def expectation(self) -> Any:
        return custom.CUSTOM_EXPECTATIONS[self.type](**self.kwargs, meta={"case": self.name})


RID = "expect_column_values_to_be_valid_cn_resident_id"
USCC = "expect_column_values_to_be_valid_uscc"
ORG = "expect_column_values_to_be_valid_cn_org_code"
DIVISION = "expect_column_values_to_be_valid_cn_admin_division"
MOBILE = "expect_column_values_to_be_valid_cn_mobile"
RECORD = "expect_cn_resident_id_to_match_birth_date_and_sex"
MALE_FEMALE_CODES = {"male": ["1"], "female": ["2"]}


def _rid(allow_15: bool = False, codes: frozenset[str] | None = None) -> Callable[[str], bool]:
    return lambda v: custom.resident_id_ok(v, allow_15=allow_15, today=TODAY, area_codes=codes)


CASES = [
    Case("rid", RID, {"column": "rid"}, _column_failures(_rid(), "rid")),
    Case("rid15", RID, {"column": "rid", "allow_15": True}, _column_failures(_rid(True), "rid")),
    Case(
        "rid_current_area",
        RID,
        {"column": "rid", "allow_15": True, "area_table": "current"},
        _column_failures(_rid(True, CURRENT), "rid"),
    ),
    Case(
        "rid_historical_area",
        RID,
        {"column": "rid", "area_table": "historical"},
        _column_failures(_rid(False, HISTORICAL), "rid"),
    ),
    Case("uscc", USCC, {"column": "uscc"}, _column_failures(is_valid_uscc, "uscc")),
    Case(
        "uscc_no_org_check",
        USCC,
        {"column": "uscc", "check_org_code": False},
        _column_failures(lambda v: is_valid_uscc(v, check_org_code=False), "uscc"),
    ),
    Case("org", ORG, {"column": "org"}, _column_failures(is_valid_org_code, "org")),
    Case(
        "org_hyphen_required",
        ORG,
        {"column": "org", "hyphen": "required"},
        _column_failures(lambda v: is_valid_org_code(v, hyphen="required"), "org"),
    ),
    Case(
        "org_hyphen_forbidden",
        ORG,
        {"column": "org", "hyphen": "forbidden"},
        _column_failures(lambda v: is_valid_org_code(v, hyphen="forbidden"), "org"),
    ),
    Case("division", DIVISION, {"column": "division"}, _column_failures(lambda v: v in CURRENT, "division")),
    Case(
        "division_historical",
        DIVISION,
        {"column": "division", "area_table": "historical"},
        _column_failures(lambda v: v in HISTORICAL, "division"),
    ),
    Case(
        "division_shanghai_districts",
        DIVISION,
        {"column": "division", "prefix": "31", "level": "county"},
        _column_failures(lambda v: divisions.is_valid_admin_division(v, prefix="31", level="county"), "division"),
    ),
    Case(
        "division_cities_historical",
        DIVISION,
        {"column": "division", "prefix": ["3101", "3201"], "area_table": "historical"},
        _column_failures(
            lambda v: divisions.is_valid_admin_division(v, table="historical", prefix=["3101", "3201"]), "division"
        ),
    ),
    Case("mobile", MOBILE, {"column": "mobile"}, _column_failures(is_valid_cn_mobile, "mobile")),
    Case(
        "mobile_national",
        MOBILE,
        {"column": "mobile", "allow_country_code": False},
        _column_failures(lambda v: is_valid_cn_mobile(v, allow_country_code=False), "mobile"),
    ),
    Case(
        "record_date_and_sex",
        RECORD,
        {"column": "r_id", "birth_date_column": "birth_date", "sex_column": "sex"},
        _record_failures("birth_date", "sex"),
    ),
    Case(
        "record_text_date",
        RECORD,
        {"column": "r_id", "birth_date_column": "birth_text", "allow_15": False},
        _record_failures("birth_text", None, allow_15=False),
    ),
    Case(
        "record_sex_code",
        RECORD,
        {"column": "r_id", "sex_column": "sex_code", "sex_values": MALE_FEMALE_CODES},
        _record_failures(None, "sex_code", MALE_FEMALE_CODES),
    ),
]
CASE_IDS = [c.name for c in CASES]


def test_cases_cover_valid_values_and_near_misses(cases: pd.DataFrame) -> None:
    for case in CASES:
        failing = case.failing(cases)
        assert 0.05 * len(cases) < len(failing) < 0.9 * len(cases), case.name
    ids = [v for v in cases["rid"] if isinstance(v, str)]
    codes = [v for v in cases["uscc"] if isinstance(v, str)]
    assert any(v.startswith("310115") and v[6:8] < "19" and is_valid_resident_id(v, today=TODAY) for v in ids)
    assert any(v.startswith("310108") and is_valid_resident_id(v, today=TODAY) for v in ids)  # merged district
    assert any(v[:1] in ("A", "N", "Y") and is_valid_uscc(v) for v in codes)
    assert any(is_valid_uscc(v, check_org_code=False) and not is_valid_uscc(v) for v in codes)
    orgs = [v for v in cases["org"] if isinstance(v, str) and is_valid_org_code(v)]
    assert {v[-1] for v in orgs} >= {"0", "X"} and any("-" in v for v in orgs)


# --- GX on pandas and on DuckDB ----------------------------------------------------------------


@pytest.fixture(scope="module")
def gx_context() -> Any:
    return engine.ephemeral_context()


@pytest.fixture(scope="module")
def duckdb_path(cases: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    database = tmp_path_factory.mktemp("custom") / "cases.duckdb"
    with duckdb.connect(str(database)) as con:
        con.register("frame", cases)
        con.execute(
            "CREATE TABLE cases AS SELECT CAST(id AS BIGINT) AS id, rid, uscc, org, division, mobile, r_id, "
            "CAST(birth_date AS DATE) AS birth_date, birth_text, sex, CAST(sex_code AS INTEGER) AS sex_code FROM frame"
        )
    return database


@pytest.fixture(scope="module")
def duckdb_batch(gx_context: Any, duckdb_path: Path) -> Iterator[Any]:
    source = gx_context.data_sources.add_sql(name="custom_duckdb", connection_string=engine.duckdb_url(duckdb_path))
    yield source.add_table_asset(name="cases", table_name="cases").add_batch_definition_whole_table("all").get_batch()
    source.get_execution_engine().engine.dispose()
    source.get_engine().dispose()


@pytest.fixture(scope="module")
def pandas_batch(gx_context: Any, cases: pd.DataFrame) -> Any:
    source = gx_context.data_sources.add_pandas(name="custom_pandas")
    definition = source.add_dataframe_asset(name="cases").add_batch_definition_whole_dataframe("all")
    return definition.get_batch(batch_parameters={"dataframe": cases})


def _failing_ids(batch: Any, result: Any) -> set[int]:
    """Every failing row: pandas lists them all; on SQL, GX lists at most 20 even in COMPLETE,
    so its ``unexpected_index_query`` is run instead (as the gate does)."""
    assert result.exception_info.get("raised_exception") is False, result.exception_info
    execution_engine = batch.data.execution_engine
    if hasattr(execution_engine, "execute_query"):  # SqlAlchemyExecutionEngine
        query = result.result["unexpected_index_query"].rstrip(";")
        with execution_engine.engine.connect() as conn:
            return {int(row[0]) for row in conn.exec_driver_sql(query).fetchall()}
    return {int(item["id"]) for item in result.result["unexpected_index_list"]}


@pytest.fixture(scope="module")
def suite_results(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    """Every case validated as one suite per engine: {engine: {case: (batch, result)}}."""
    results: dict[str, dict[str, Any]] = {}
    for name in ("pandas_batch", "duckdb_batch"):
        batch = request.getfixturevalue(name)
        suite = ExpectationSuite(name="custom_cases", expectations=[c.expectation() for c in CASES])
        assert len(suite.expectations) == len(CASES)
        validated = batch.validate(
            suite,
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": ["id"],
                "return_unexpected_index_query": True,
            },
        )
        results[name] = {evr.expectation_config.meta["case"]: (batch, evr) for evr in validated.results}
    return results


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("batch_name", ["pandas_batch", "duckdb_batch"])
def test_gx_agrees_with_the_reference(
    suite_results: dict[str, dict[str, Any]], cases: pd.DataFrame, batch_name: str, case: Case
) -> None:
    batch, result = suite_results[batch_name][case.name]
    expected = case.failing(cases)
    assert _failing_ids(batch, result) == expected
    assert result.result["unexpected_count"] == len(expected)
    assert result.success is False


@pytest.mark.parametrize("case", [c for c in CASES if c.type != RECORD], ids=lambda c: c.name)
def test_nulls_are_missing_not_failures(
    suite_results: dict[str, dict[str, Any]], cases: pd.DataFrame, case: Case
) -> None:
    for batch_name in ("pandas_batch", "duckdb_batch"):
        _, result = suite_results[batch_name][case.name]
        assert result.result["missing_count"] == int(cases[case.kwargs["column"]].isna().sum())


def test_the_duckdb_forms_are_chosen_on_duckdb(suite_results: dict[str, dict[str, Any]]) -> None:
    """GX 1.24.1 passes the SQLAlchemy engine to the metric (``_sqlalchemy_engine``): if an upgrade
    stops, the portable forms would run silently (right, but ~3x slower on DuckDB)."""
    queries = {name: evr.result["unexpected_index_query"] for name, (_, evr) in suite_results["duckdb_batch"].items()}
    for name in ("rid", "uscc", "org", "mobile", "record_date_and_sex"):
        assert "regexp_full_match" in queries[name], name
    assert "translate" not in queries["rid"]
    assert "FROM (VALUES ('" in queries["division_historical"]  # the code table as a semi-join


def test_a_record_with_a_null_or_invalid_id_is_not_a_consistency_failure() -> None:
    good = "11010519491231002X"  # born 1949-12-31, female
    assert not custom.record_agrees(good, dt.date(1949, 12, 30), "女", today=TODAY)
    assert not custom.record_agrees(good, "1949-12-31", "男", today=TODAY)
    assert custom.record_agrees(good, pd.Timestamp("1949-12-31 08:00"), "F", today=TODAY)
    for invalid in (None, good.lower(), good[:-1] + "1", "110105194912310"):
        assert custom.record_agrees(invalid, dt.date(2000, 1, 1), "男", today=TODAY), invalid
    assert custom.record_agrees(good, pd.NaT, None, today=TODAY)
    assert custom.record_agrees(good, "31/12/1949", "未知", today=TODAY)  # not ISO, unknown sex: not judged


def test_custom_expectations_are_registered_under_their_snake_case_names() -> None:
    from great_expectations.expectations.registry import get_expectation_impl

    assert len(custom.CUSTOM_EXPECTATIONS) == 6
    for name, cls in custom.CUSTOM_EXPECTATIONS.items():
        assert get_expectation_impl(name) is cls
    for case in CASES:
        assert case.expectation().expectation_type == case.type


def test_mostly_lets_a_few_failures_pass(duckdb_batch: Any, cases: pd.DataFrame) -> None:
    share = len(CASES[4].failing(cases)) / cases["uscc"].notna().sum()
    result = duckdb_batch.validate(custom.ExpectColumnValuesToBeValidUscc(column="uscc", mostly=1 - share - 0.01))
    assert bool(result.success) is True  # GX returns numpy.bool_ when `mostly` is set


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        (DIVISION, {"column": "d", "prefix": "99"}, "matches no code"),
        (DIVISION, {"column": "d", "prefix": "310115"}, "2-digit province or 4-digit city"),
        (DIVISION, {"column": "d", "area_table": "2019"}, "area_table"),
        (DIVISION, {"column": "d", "level": "town"}, "level"),
        (RID, {"column": "r", "area_table": "old"}, "area_table"),
        (ORG, {"column": "o", "hyphen": "sometimes"}, "hyphen"),
        (RECORD, {"column": "r"}, "nothing to compare"),
        (RECORD, {"column": "r", "sex_column": "r"}, "distinct"),
        (RECORD, {"column": "r", "sex_column": "s", "sex_values": {"male": ["1"], "female": ["1"]}}, "both"),
        (RECORD, {"column": "r", "sex_column": "s", "sex_values": {"male": ["1"]}}, "exactly the keys"),
        (RECORD, {"column": "r", "sex_column": "s", "column_list": ["s", "r"]}, "derived"),
    ],
)
def test_bad_kwargs_are_refused_when_the_expectation_is_built(kind: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        custom.CUSTOM_EXPECTATIONS[kind](**kwargs)


def test_the_record_expectation_derives_its_column_list() -> None:
    expectation = custom.ExpectCnResidentIdToMatchBirthDateAndSex(column="r", birth_date_column="b", sex_column="s")
    assert expectation.column_list == ["r", "b", "s"]
    again = custom.ExpectCnResidentIdToMatchBirthDateAndSex(**expectation.configuration.kwargs)
    assert again.column_list == ["r", "b", "s"]  # a stored configuration (with column_list) rebuilds


# --- the bare SQL expressions --------------------------------------------------------------------

#: Each SQL builder's condition for a case, on the columns of the ``cases`` table.
PORTABLE = "portable"
DUCKDB = "duckdb"


def _condition(case: Case, form: str) -> Any:
    """The case's condition as a SQLAlchemy expression, built as the metric builds it."""
    kw = case.kwargs
    duck = form == DUCKDB
    column = sa.column(kw["column"], sa.String())
    if case.type == RID:
        build = custom.resident_id_duckdb if duck else custom.resident_id_sql
        area = kw.get("area_table")
        codes = divisions.codes(area) if area else None
        return build(column, allow_15=kw.get("allow_15", False), today=TODAY, area_codes=codes)
    if case.type == USCC:
        return (custom.uscc_duckdb if duck else custom.uscc_sql)(column, check_org_code=kw.get("check_org_code", True))
    if case.type == ORG:
        return (custom.org_code_duckdb if duck else custom.org_code_sql)(column, hyphen=kw.get("hyphen", "optional"))
    if case.type == DIVISION:
        codes = divisions.codes(kw.get("area_table", "current"), prefix=kw.get("prefix"), level=kw.get("level"))
        return custom.admin_division_sql(column, codes)
    if case.type == MOBILE:
        build = custom.mobile_duckdb if duck else custom.mobile_sql
        return build(column, allow_country_code=kw.get("allow_country_code", True))
    birth = sa.column(kw["birth_date_column"]) if kw.get("birth_date_column") else None
    sex = sa.column(kw["sex_column"]) if kw.get("sex_column") else None
    return custom.consistency_sql(
        column,
        birth,
        sex,
        sex_values=kw.get("sex_values"),
        allow_15=kw.get("allow_15", True),
        today=TODAY,
        duckdb=duck,
    )


_DIALECTS = {"duckdb": sa.create_engine("duckdb:///:memory:").dialect}


def _compiled(case: Case, form: str, dialect: str = "duckdb") -> str:
    return str(_condition(case, form).compile(dialect=_DIALECTS[dialect]))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("form", [DUCKDB, PORTABLE])
def test_sql_forms_agree_with_the_reference(duckdb_batch: Any, cases: pd.DataFrame, case: Case, form: str) -> None:
    """The bare condition on every row (GX's NULL filter aside: a column check is FALSE on NULL)."""
    with duckdb_batch.data.execution_engine.engine.connect() as conn:  # the database GX reads
        rows = conn.exec_driver_sql(f"SELECT id, {_compiled(case, form)} FROM cases ORDER BY id").fetchall()
    failing = {int(i) for i, ok in rows if not ok}
    if case.type != RECORD:  # a column condition is FALSE for NULL; GX counts NULLs as missing instead
        failing -= {int(i) for i in cases.loc[cases[case.kwargs["column"]].isna(), "id"]}
    assert failing == case.failing(cases)
    assert all(ok is not None for _, ok in rows)  # never NULL: COALESCE


def test_non_ascii_and_multiline_ids_are_refused() -> None:
    good = "11010519491231002X"
    odd = [
        good + "\n",
        _fullwidth(good),
        "".join(chr(ord(c) - 48 + 0x660) if c.isdigit() else c for c in good),
        "110105491231002\n",
    ]
    with duckdb.connect() as con:
        for build in (custom.resident_id_duckdb, custom.resident_id_sql):
            condition = build(sa.column("v", sa.String()), allow_15=True, today=TODAY)
            sql = str(condition.compile(dialect=_DIALECTS["duckdb"]))
            verdicts = [
                r[0] for r in con.execute(f"SELECT {sql} FROM unnest($v::VARCHAR[]) AS t(v)", {"v": odd}).fetchall()
            ]
            assert verdicts == [False] * len(odd)
    assert [custom.resident_id_ok(v, allow_15=True) for v in odd] == [False] * len(odd)


def test_sql_checks_today_like_the_reference() -> None:
    born_today = _with_check("310115" + _date_digits(TODAY) + "001")
    born_tomorrow = _with_check("310115" + _date_digits(TODAY + dt.timedelta(days=1)) + "001")
    with duckdb.connect() as con:
        for build in (custom.resident_id_duckdb, custom.resident_id_sql):
            sql = str(build(sa.column("v", sa.String()), today=TODAY).compile(dialect=_DIALECTS["duckdb"]))
            got = [
                r[0]
                for r in con.execute(
                    f"SELECT {sql} FROM unnest($v::VARCHAR[]) AS t(v)", {"v": [born_today, born_tomorrow]}
                ).fetchall()
            ]
            assert got == [True, False]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("form", [DUCKDB, PORTABLE])
def test_sql_carries_no_bound_parameters(case: Case, form: str) -> None:
    """GX renders the condition into ``unexpected_index_query``: literals must be inline."""
    assert not _condition(case, form).compile(dialect=_DIALECTS["duckdb"]).params


def test_large_code_sets_are_a_values_table_small_ones_an_inline_list() -> None:
    value = sa.column("v", sa.String())
    large = str(custom.in_codes(value, divisions.codes("historical")).compile(dialect=_DIALECTS["duckdb"]))
    assert "IN (SELECT govdata_codes.code" in large and "FROM (VALUES ('110000')" in large
    small = str(custom.in_codes(value, divisions.codes("current", prefix="31")).compile(dialect=_DIALECTS["duckdb"]))
    assert "VALUES" not in small and "'310115'" in small
    with duckdb.connect() as con:
        none = str(custom.admin_division_sql(value, frozenset()).compile(dialect=_DIALECTS["duckdb"]))
        assert con.execute(f"SELECT {none} FROM (SELECT '310115' AS v)").fetchone() == (False,)


def _verdicts(con: duckdb.DuckDBPyConnection, values: list[str], conditions: dict[str, str]) -> dict[str, list[bool]]:
    columns = ", ".join(f"{sql} AS {name}" for name, sql in conditions.items())
    query = (
        f"SELECT i, {columns} FROM "
        "(SELECT unnest(range(len($values))) AS i, unnest($values::VARCHAR[]) AS v) ORDER BY i"
    )
    rows = con.execute(query, {"values": values}).fetchall()
    return {name: [bool(r[k + 1]) for r in rows] for k, name in enumerate(conditions)}


#: The string checks the hypothesis tests run, with their reference.
_STRING_CHECKS: dict[str, Callable[[str], bool]] = {
    "rid": _rid(),
    "rid15": _rid(True),
    "uscc": is_valid_uscc,
    "org": is_valid_org_code,
    "org_hyphen_required": lambda v: is_valid_org_code(v, hyphen="required"),
    "mobile": is_valid_cn_mobile,
}
_SHARED: list[duckdb.DuckDBPyConnection] = []
_TEXT: dict[str, str] = {}


def _string_conditions() -> dict[str, str]:
    """Every string check, in both forms, on column ``v`` (compiled once: the trees are large)."""
    if not _TEXT:
        for case in CASES:
            if case.name in _STRING_CHECKS:
                renamed = Case(case.name, case.type, {**case.kwargs, "column": "v"}, case.failing)
                for form in (DUCKDB, PORTABLE):
                    _TEXT[f"{case.name}_{form}"] = _compiled(renamed, form)
    return _TEXT


def assert_all_agree(values: list[str]) -> None:
    if not _SHARED:
        _SHARED.append(duckdb.connect())
    verdicts = _verdicts(_SHARED[0], values, _string_conditions())
    for name, check in _STRING_CHECKS.items():
        expected = [check(v) for v in values]
        assert verdicts[f"{name}_{DUCKDB}"] == expected, name
        assert verdicts[f"{name}_{PORTABLE}"] == expected, name


IDENTIFIER_CHARS = st.sampled_from(list("0123456789") * 4 + list("XxAIOSZNY -+") + ["１", "\n", "é", "\u0301"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(IDENTIFIER_CHARS, min_size=8, max_size=19), min_size=1, max_size=40))
def test_random_strings(values: list[str]) -> None:
    assert_all_agree(values)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32),
    st.lists(st.tuples(st.integers(0, 17), st.sampled_from(list("0123456789XxAIN-+ "))), max_size=3),
)
def test_random_near_valid_values(seed: int, edits: list[tuple[int, str]]) -> None:
    """Valid values with a few characters changed (hypothesis shrinks to the culprit)."""
    rng = random.Random(seed)
    values = [_valid_resident_id(rng), _valid_uscc(rng), _org(rng), "+86" + "139" + f"{rng.randrange(10**8):08d}"]
    for position, char in edits:
        values = [v[:position] + char + v[position + 1 :] for v in values]
    assert_all_agree(values)


# --- PostgreSQL: the portable forms on the database they are written for ---------------------------


@pytest.mark.integration
def test_portable_forms_on_postgresql(postgres_url: str, unique_name: str, cases: pd.DataFrame) -> None:
    pg = sa.create_engine(postgres_url)
    table = sa.Table(
        unique_name,
        sa.MetaData(),
        sa.Column("id", sa.BigInteger),
        *(sa.Column(c, sa.Text) for c in ("rid", "uscc", "org", "division", "mobile", "r_id", "birth_text", "sex")),
        sa.Column("birth_date", sa.Date),
        sa.Column("sex_code", sa.Integer),
    )
    # PostgreSQL text cannot hold NUL; none of the cases has one.
    rows = [
        {k: (None if pd.isna(v) else v.date() if isinstance(v, pd.Timestamp) else v) for k, v in row.items()}
        for row in cases[[c.name for c in table.columns]].astype(object).to_dict("records")
    ]
    try:
        with pg.begin() as conn:
            table.create(conn)
            conn.execute(table.insert(), rows)
        with pg.connect() as conn:
            for case in CASES:
                condition = _condition(case, PORTABLE)
                got = conn.execute(sa.select(table.c.id, condition).select_from(table)).fetchall()
                failing = {int(i) for i, ok in got if not ok}
                if case.type != RECORD:
                    failing -= {int(i) for i in cases.loc[cases[case.kwargs["column"]].isna(), "id"]}
                assert failing == case.failing(cases), case.name
    finally:
        with pg.begin() as conn:
            table.drop(conn, checkfirst=True)
        pg.dispose()


# --- the gate, end to end -------------------------------------------------------------------------


GATE_SUITE = [
    {"type": RID, "kwargs": {"column": "rid", "area_table": "historical"}},
    {"type": USCC, "kwargs": {"column": "uscc"}},
    {"type": ORG, "kwargs": {"column": "org"}},
    {"type": DIVISION, "kwargs": {"column": "division", "prefix": "31", "level": "county"}},
    {"type": MOBILE, "kwargs": {"column": "mobile", "allow_country_code": False}},
    {"type": RECORD, "kwargs": {"column": "r_id", "birth_date_column": "birth_date", "sex_column": "sex"}},
]


def _write_gate_inputs(root: Path, cases: pd.DataFrame, suite: list[dict[str, Any]]) -> tuple[Path, Path]:
    staged = root / "staged.parquet"
    frame = cases.rename(columns={"id": "_govdata_row"})
    frame["birth_date"] = pd.Series([None if pd.isna(d) else d.date() for d in frame["birth_date"]], dtype=object)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), staged)
    suite_path = root / "suite.json"
    suite_path.write_text(json.dumps({"name": "custom", "expectations": suite}, ensure_ascii=False), encoding="utf-8")
    return staged, suite_path


def test_gate_quarantines_the_failing_rows_of_every_new_expectation(tmp_path: Path, cases: pd.DataFrame) -> None:
    staged, suite_path = _write_gate_inputs(tmp_path, cases, GATE_SUITE)
    result = gate.validate(
        staged,
        suite_path,
        report_dir=tmp_path / "report",
        dataset="custom",
        run_id="r1",
        sensitive_columns=["rid", "r_id", "mobile"],
    )
    named = {c.name: c for c in CASES}
    expected_cases = [
        Case("gate_rid", RID, GATE_SUITE[0]["kwargs"], _column_failures(_rid(False, HISTORICAL), "rid")),
        named["uscc"],
        named["org"],
        named["division_shanghai_districts"],
        named["mobile_national"],
        named["record_date_and_sex"],
    ]
    failures = pq.read_table(result.failures_path).to_pandas() if result.failures_path else pd.DataFrame()
    for outcome, case in zip(result.outcomes, expected_cases, strict=True):
        expected = case.failing(cases)
        assert outcome.row_level and not outcome.success, outcome.name
        assert outcome.unexpected_count == len(expected), outcome.name
        listed = set(failures.loc[failures["expectation"] == outcome.name, "_govdata_row"].astype(int))
        assert listed == expected, outcome.name
    record = result.outcomes[-1]
    assert record.name == f"{RECORD}(r_id)" and record.column == "r_id"

    document = result.validation_result_path.read_text(encoding="utf-8")
    clear_ids = {v for v in cases["r_id"].dropna() if len(v) >= 15} | {v for v in cases["rid"].dropna() if len(v) >= 15}
    assert not [v for v in clear_ids if v in document]  # sensitive IDs never appear in the record
    samples = json.loads(document)["results"][-1]["result"]["partial_unexpected_list"]
    assert samples and all(s["r_id"] == gate.MASK for s in samples)
    assert all(s["sex"] in ("男", "女", "1", "2", "M", "F") for s in samples)  # not sensitive: shown


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": DIVISION, "kwargs": {"column": "division", "prefix": "3199"}}, "matches no code"),
        ({"type": RECORD, "kwargs": {"column": "r_id", "birth_date_column": "born"}}, "birth_date_column"),
        ({"type": RECORD, "kwargs": {"column": "r_id"}}, "nothing to compare"),
        ({"type": RID, "kwargs": {"column": "rid", "area_table": "2015"}}, "area_table"),
    ],
)
def test_gate_reports_bad_kwargs_as_a_spec_error(
    tmp_path: Path, cases: pd.DataFrame, entry: dict[str, Any], message: str
) -> None:
    staged, suite_path = _write_gate_inputs(tmp_path, cases.head(20), [entry])
    with pytest.raises(SpecError, match=message) as caught:
        gate.validate(staged, suite_path, report_dir=tmp_path / "report", dataset="custom", run_id="r1")
    assert str(suite_path) in str(caught.value)


# --- rendering (Data Docs) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "words"),
    [
        (CASES[2], ["resident ID", "GB 11643", "15-digit", "$area_table"]),
        (CASES[5], ["GB 32100", "organisation code"]),
        (CASES[7], ["GB 11714", "XXXXXXXX-X"]),
        (CASES[12], ["GB/T 2260", "$area_table", "$prefix"]),
        (CASES[14], ["mobile", "13-19"]),
        (CASES[15], ["$column", "$birth_date_column", "$sex_column"]),
    ],
    ids=lambda v: v.name if isinstance(v, Case) else "",
)
def test_prescriptive_renderers_describe_the_check(case: Case, words: list[str]) -> None:
    from great_expectations.render.renderer.inline_renderer import InlineRenderer

    configuration = custom.CUSTOM_EXPECTATIONS[case.type](**case.kwargs, mostly=0.9).configuration
    atomic = InlineRenderer(render_object=configuration).get_rendered_content()
    legacy = custom.CUSTOM_EXPECTATIONS[case.type]._prescriptive_renderer(configuration=configuration)
    for template in (atomic[0].value.template, legacy[0].string_template["template"]):
        assert all(word in template for word in words), template
        assert "$mostly_pct" in template and "**$kwargs" not in template
    params = legacy[0].string_template["params"]
    assert params["mostly_pct"] == "90"
    assert all(params.get(name.strip("$")) is not None for name in words if name.startswith("$"))
