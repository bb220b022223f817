"""The resident-ID and USCC expectations: pandas and SQL (portable and DuckDB) agree with the reference.

Differential tests: a few thousand seeded strings per identifier — valid ones and near misses
(wrong check character, 0229 in a non-leap year, future and pre-1800 birth dates, lower-case
``x``, letters I/O/S/V/Z, A/N/Y authorities, wrong lengths, non-ASCII digits, newlines) — are
judged by ``pipelines.identifiers`` and by every implementation, through GX on pandas, GX on
DuckDB, and the bare SQL expressions; hypothesis adds random strings on top.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from expectations import custom, engine
from pipelines.identifiers import (
    USCC_ALPHABET,
    USCC_AUTHORITIES,
    is_valid_resident_id,
    is_valid_uscc,
    resident_id_check_char,
    uscc_check_char,
)

SEED = 20251124
N_CASES = 3000
TODAY = custom.local_today()
ADDRESSES = ("310115", "310101", "110105", "440305", "650102", "999999")


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
        lambda: "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in _valid_resident_id(rng)),
        lambda: (lambda v: v[:6] + v[8:17])(
            _valid_resident_id(rng, _random_day(rng, dt.date(1900, 1, 1), dt.date(1999, 12, 31)))
        ),
        lambda: f"{rng.randrange(10**15):015d}",
        lambda: None,
    ]
    return [rng.choice(makers)() for _ in range(n)]


def _valid_uscc(rng: random.Random, authority: str | None = None) -> str:
    authority = authority or rng.choice(sorted(USCC_AUTHORITIES))
    first17 = (
        authority
        + rng.choice(USCC_AUTHORITIES[authority])
        + f"{rng.randrange(10**6):06d}"
        + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    )
    return first17 + uscc_check_char(first17)


def uscc_cases(rng: random.Random, n: int = N_CASES) -> list[str | None]:
    makers: list[Callable[[], str | None]] = [
        lambda: _valid_uscc(rng),
        lambda: _valid_uscc(rng, rng.choice("ANY")),
        lambda: _valid_uscc(rng)[:-1] + rng.choice(USCC_ALPHABET),
        lambda: (lambda v, i: v[:i] + rng.choice("IOSVZ") + v[i + 1 :])(_valid_uscc(rng), rng.randrange(18)),
        lambda: _valid_uscc(rng).lower(),
        lambda: (lambda a, t: (lambda f: f + uscc_check_char(f))(a + t + "310115" + "MA1H7Q8R2"))(
            rng.choice("0BCDEFGHJKLMPQRTUWX"), rng.choice("0123456789ANY")
        ),
        lambda: (lambda f: f + uscc_check_char(f))(rng.choice("AY") + rng.choice("2345678") + "310115MA1H7Q8R2"),
        lambda: (lambda f: f + uscc_check_char(f))("91" + "31011" + rng.choice("ABN") + "MA1H7Q8R2"),
        lambda: _valid_uscc(rng)[: rng.choice([0, 8, 17])],
        lambda: _valid_uscc(rng) + rng.choice(["0", "\n", " "]),
        lambda: None,
    ]
    return [rng.choice(makers)() for _ in range(n)]


def reference_resident_id(value: str, *, allow_15: bool) -> bool:
    """The pure-Python reference every implementation is held to."""
    return is_valid_resident_id(value, allow_15=allow_15, today=TODAY)


@pytest.fixture(scope="module")
def cases() -> pd.DataFrame:
    rng = random.Random(SEED)
    frame = pd.DataFrame({"rid": resident_id_cases(rng), "uscc": uscc_cases(rng)})
    frame.insert(0, "id", range(len(frame)))
    return frame


def expected_failures(frame: pd.DataFrame, column: str, *, allow_15: bool = False) -> set[int]:
    failing = set()
    for row_id, value in zip(frame["id"], frame[column], strict=True):
        if not isinstance(value, str):  # NULL (pandas shows it as NaN)
            continue
        ok = reference_resident_id(value, allow_15=allow_15) if column == "rid" else is_valid_uscc(value)
        if not ok:
            failing.add(int(row_id))
    return failing


def test_cases_cover_valid_values_and_near_misses(cases: pd.DataFrame) -> None:
    for column in ("rid", "uscc"):
        failing = expected_failures(cases, column)
        non_null = cases[column].notna().sum()
        assert 0.15 * non_null < len(failing) < 0.85 * non_null, column
    ids = [v for v in cases["rid"] if isinstance(v, str)]
    codes = [v for v in cases["uscc"] if isinstance(v, str)]
    assert any(v.startswith("310115") and v[6:8] < "19" and reference_resident_id(v, allow_15=False) for v in ids)
    assert any(
        v[6:8] == "19" and v[8:10] < "93" and v.startswith("310115") and reference_resident_id(v, allow_15=False)
        for v in ids
    )
    assert any(v[:1] in ("A", "N", "Y") and is_valid_uscc(v) for v in codes)


# --- GX on pandas and on DuckDB ----------------------------------------------------------------


@pytest.fixture(scope="module")
def gx_context() -> Any:
    return engine.ephemeral_context()


@pytest.fixture(scope="module")
def duckdb_batch(gx_context: Any, cases: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    database = tmp_path_factory.mktemp("custom") / "cases.duckdb"
    with duckdb.connect(str(database)) as con:
        con.register("frame", cases)
        con.execute("CREATE TABLE cases AS SELECT CAST(id AS BIGINT) AS id, rid, uscc FROM frame")
    source = gx_context.data_sources.add_sql(name="custom_duckdb", connection_string=engine.duckdb_url(database))
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


EXPECTATIONS = [
    pytest.param(lambda: custom.ExpectColumnValuesToBeValidCnResidentId(column="rid"), "rid", False, id="rid"),
    pytest.param(
        lambda: custom.ExpectColumnValuesToBeValidCnResidentId(column="rid", allow_15=True), "rid", True, id="rid15"
    ),
    pytest.param(lambda: custom.ExpectColumnValuesToBeValidUscc(column="uscc"), "uscc", False, id="uscc"),
]


@pytest.mark.parametrize(("make", "column", "allow_15"), EXPECTATIONS)
@pytest.mark.parametrize("batch_name", ["pandas_batch", "duckdb_batch"])
def test_gx_agrees_with_the_reference(
    request: pytest.FixtureRequest, cases: pd.DataFrame, batch_name: str, make: Any, column: str, allow_15: bool
) -> None:
    batch = request.getfixturevalue(batch_name)
    result = batch.validate(
        make(), result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]}
    )
    expected = expected_failures(cases, column, allow_15=allow_15)
    assert _failing_ids(batch, result) == expected
    assert result.result["unexpected_count"] == len(expected)
    assert result.result["missing_count"] == int(cases[column].isna().sum())  # NULLs are not failures
    assert result.success is False


def test_custom_expectations_are_registered_under_their_snake_case_names() -> None:
    from great_expectations.expectations.registry import get_expectation_impl

    for name, cls in custom.CUSTOM_EXPECTATIONS.items():
        assert get_expectation_impl(name) is cls
        assert cls(column="x").expectation_type == name


def test_mostly_lets_a_few_failures_pass(duckdb_batch: Any, cases: pd.DataFrame) -> None:
    share = len(expected_failures(cases, "uscc")) / cases["uscc"].notna().sum()
    result = duckdb_batch.validate(custom.ExpectColumnValuesToBeValidUscc(column="uscc", mostly=1 - share - 0.01))
    assert bool(result.success) is True  # GX returns numpy.bool_ when `mostly` is set


# --- the bare SQL expressions --------------------------------------------------------------------


BUILDERS = {
    "resident_id_duckdb": lambda c, allow_15: custom.resident_id_duckdb(c, allow_15=allow_15, today=TODAY),
    "resident_id_portable": lambda c, allow_15: custom.resident_id_sql(c, allow_15=allow_15, today=TODAY),
    "uscc_duckdb": lambda c, allow_15: custom.uscc_duckdb(c),
    "uscc_portable": lambda c, allow_15: custom.uscc_sql(c),
}
_DIALECT = sa.create_engine("duckdb:///:memory:").dialect
_COMPILED: dict[tuple[str, bool], str] = {}


def _condition_sql(builder: str, allow_15: bool) -> str:
    """The condition on column ``v`` as DuckDB SQL text, compiled once (the trees are large)."""
    key = (builder, allow_15)
    if key not in _COMPILED:
        condition = BUILDERS[builder](sa.column("v", sa.String()), allow_15)
        _COMPILED[key] = str(condition.compile(dialect=_DIALECT))
    return _COMPILED[key]


@pytest.fixture(scope="module")
def sql_engine() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect() as con:
        yield con


def sql_verdicts(
    con: duckdb.DuckDBPyConnection, values: list[str], builder: str, *, allow_15: bool = False
) -> list[bool]:
    """The SQL condition evaluated by DuckDB for each value (in order)."""
    query = (
        f"SELECT i, {_condition_sql(builder, allow_15)} FROM "
        "(SELECT unnest(range(len($values))) AS i, unnest($values::VARCHAR[]) AS v) ORDER BY i"
    )
    return [bool(ok) for _, ok in con.execute(query, {"values": values}).fetchall()]


@pytest.mark.parametrize("builder", ["resident_id_duckdb", "resident_id_portable"])
@pytest.mark.parametrize("allow_15", [False, True])
def test_resident_id_sql_agrees_with_the_reference(
    sql_engine: duckdb.DuckDBPyConnection, cases: pd.DataFrame, builder: str, allow_15: bool
) -> None:
    values = [v for v in cases["rid"] if isinstance(v, str)]
    verdicts = sql_verdicts(sql_engine, values, builder, allow_15=allow_15)
    wrong = [v for v, ok in zip(values, verdicts, strict=True) if ok != reference_resident_id(v, allow_15=allow_15)]
    assert not wrong


@pytest.mark.parametrize("builder", ["uscc_duckdb", "uscc_portable"])
def test_uscc_sql_agrees_with_the_reference(
    sql_engine: duckdb.DuckDBPyConnection, cases: pd.DataFrame, builder: str
) -> None:
    values = [v for v in cases["uscc"] if isinstance(v, str)]
    verdicts = sql_verdicts(sql_engine, values, builder)
    wrong = [v for v, ok in zip(values, verdicts, strict=True) if ok != is_valid_uscc(v)]
    assert not wrong


def test_non_ascii_and_multiline_ids_are_refused(sql_engine: duckdb.DuckDBPyConnection) -> None:
    good = "11010519491231002X"
    odd = [
        good + "\n",
        "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in good),
        "".join(chr(ord(c) - 48 + 0x660) if c.isdigit() else c for c in good),
        "110105491231002\n",
    ]
    for builder in ("resident_id_duckdb", "resident_id_portable"):
        assert sql_verdicts(sql_engine, odd, builder, allow_15=True) == [False] * len(odd)
    assert [custom.resident_id_ok(v, allow_15=True) for v in odd] == [False] * len(odd)
    assert sql_verdicts(sql_engine, [good], "resident_id_duckdb") == [True]


def test_sql_checks_today_like_the_reference(sql_engine: duckdb.DuckDBPyConnection) -> None:
    born_today = _with_check("310115" + _date_digits(TODAY) + "001")
    born_tomorrow = _with_check("310115" + _date_digits(TODAY + dt.timedelta(days=1)) + "001")
    for builder in ("resident_id_duckdb", "resident_id_portable"):
        assert sql_verdicts(sql_engine, [born_today, born_tomorrow], builder) == [True, False]


def test_sql_carries_no_bound_parameters() -> None:
    """GX renders the condition into ``unexpected_index_query``: literals must be inline."""
    column = sa.column("v", sa.String())
    for build in BUILDERS.values():
        assert not build(column, True).compile(dialect=_DIALECT).params


_SHARED: list[duckdb.DuckDBPyConnection] = []


def all_verdicts(values: list[str], *, allow_15: bool) -> dict[str, list[bool]]:
    """Every builder's verdicts in one query (DuckDB binds each large condition once)."""
    if not _SHARED:
        _SHARED.append(duckdb.connect())
    conditions = ", ".join(f"{_condition_sql(b, allow_15)} AS {b}" for b in BUILDERS)
    query = (
        f"SELECT i, {conditions} FROM "
        "(SELECT unnest(range(len($values))) AS i, unnest($values::VARCHAR[]) AS v) ORDER BY i"
    )
    rows = _SHARED[0].execute(query, {"values": values}).fetchall()
    return {b: [bool(r[k + 1]) for r in rows] for k, b in enumerate(BUILDERS)}


def assert_all_agree(values: list[str], *, allow_15: bool) -> None:
    verdicts = all_verdicts(values, allow_15=allow_15)
    resident = [reference_resident_id(v, allow_15=allow_15) for v in values]
    uscc = [is_valid_uscc(v) for v in values]
    assert verdicts["resident_id_duckdb"] == resident
    assert verdicts["resident_id_portable"] == resident
    assert verdicts["uscc_duckdb"] == uscc
    assert verdicts["uscc_portable"] == uscc


IDENTIFIER_CHARS = st.sampled_from(list("0123456789") * 4 + list("XxAIOSZNY ") + ["１", "\n"])


@settings(max_examples=75, deadline=None)
@given(st.lists(st.text(IDENTIFIER_CHARS, min_size=14, max_size=19), min_size=1, max_size=40), st.booleans())
def test_random_strings(values: list[str], allow_15: bool) -> None:
    assert_all_agree(values, allow_15=allow_15)


@settings(max_examples=75, deadline=None)
@given(
    st.integers(0, 2**32), st.lists(st.tuples(st.integers(0, 17), st.sampled_from(list("0123456789XxAIN"))), max_size=3)
)
def test_random_near_valid_ids(seed: int, edits: list[tuple[int, str]]) -> None:
    """Valid IDs and codes with a few characters changed (hypothesis shrinks to the culprit)."""
    rng = random.Random(seed)
    values = [_valid_resident_id(rng), _valid_uscc(rng)]
    for position, char in edits:
        values = [v[:position] + char + v[position + 1 :] for v in values]
    assert_all_agree(values, allow_15=False)


def test_prescriptive_renderer_describes_the_check() -> None:
    from great_expectations.render.renderer_configuration import RendererConfiguration

    config = custom.ExpectColumnValuesToBeValidUscc(column="uscc", mostly=0.9).configuration
    rendered = custom.ExpectColumnValuesToBeValidUscc._prescriptive_template(
        RendererConfiguration(configuration=config)
    )
    assert "GB 32100" in rendered.template_str
    assert "$mostly_pct" in rendered.template_str
