"""The catalog on the machine's real PostgreSQL: migrations up, down and up again; search with pg_trgm.

Each test works in a schema of its own. pg_trgm is installed once in ``public`` (where a
database administrator would put it), so that dropping a test's schema never drops the
extension under another test.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from catalog.access import OPERATOR, Viewer
from catalog.models import Base
from catalog.search import Filters, Hit, SearchError, search
from catalog.store import MIGRATIONS, CatalogStore, current_revision, migrate
from pipelines.errors import TerminalError
from tests.catalog.conftest_search import MARKET, POPULATION, PUBLISHED, build_catalog

pytestmark = pytest.mark.integration

PG_INDEX = "ix_catalog_entries_search_trgm"


def _revisions() -> list[str]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return [r.revision for r in reversed(list(ScriptDirectory.from_config(config).walk_revisions()))]


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    """A catalog URL whose search_path is a fresh schema, dropped afterwards."""
    schema = f"govdata_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as con:
        con.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
        con.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        from catalog.store import _ENGINES

        for key in [k for k in _ENGINES if schema in k]:
            _ENGINES.pop(key).dispose()
        with admin.begin() as con:
            con.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Objects the models do not declare on purpose: Alembic's table and the trigram index."""
    return not ((type_ == "table" and name == "alembic_version") or (type_ == "index" and name == PG_INDEX))


def _indexes(engine: sa.Engine) -> set[str]:
    return {i["name"] for i in sa.inspect(engine).get_indexes("catalog_entries") if i["name"]}


def test_migrations_go_up_down_and_up_again(pg_url: str) -> None:
    store = build_catalog(pg_url)
    engine = store.engine
    assert engine.dialect.name == "postgresql"
    revisions = _revisions()
    assert current_revision(engine) == revisions[-1]
    with engine.connect() as con:
        diff = compare_metadata(
            MigrationContext.configure(con, opts={"compare_type": True, "include_object": _ours}), Base.metadata
        )
    assert diff == [], f"catalog/models.py and catalog/migrations disagree on PostgreSQL: {diff}"
    assert PG_INDEX in _indexes(engine)

    migrate(engine, "0002")  # before search: no column, no index
    assert current_revision(engine) == "0002"
    columns = {c["name"] for c in sa.inspect(engine).get_columns("catalog_entries")}
    assert "search_text" not in columns and PG_INDEX not in _indexes(engine)
    migrate(engine, "head")  # the text is computed again for the entries already there
    with store.session() as s:
        assert {h.id for h in search(s, "人口", rows=100).hits} == {
            "population_register",
            "population_yearbook",
            "housing_subsidy",
            "school_enrolment",
        }

    for down in reversed(revisions[:-1]):
        migrate(engine, down)
        assert current_revision(engine) == down
    migrate(engine, "base")
    assert current_revision(engine) is None
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate(engine, "head")
    assert current_revision(engine) == revisions[-1]
    assert PG_INDEX in _indexes(engine)
    with store.session() as s:
        assert search(s, "", rows=0).total == 0


def test_long_terms_are_looked_up_in_the_trigram_index(pg_url: str) -> None:
    store = build_catalog(pg_url)
    with store.engine.connect() as con:
        con.execute(sa.text("SET enable_seqscan = off"))
        plan = "\n".join(
            r[0]
            for r in con.execute(
                sa.text("EXPLAIN SELECT id FROM catalog_entries WHERE search_text LIKE '%' || :t || '%' ESCAPE '/'"),
                {"t": "公交线路"},
            )
        )
    assert PG_INDEX in plan, plan


# --- the same answers as SQLite ------------------------------------------------------------------


def _tiers(hits: list[Hit]) -> list[tuple[int, list[str]]]:
    """The hits grouped by their whole score (where the words matched), each group's ids sorted.

    Within a group the engines' relevance differs (bm25 against word_similarity), so only the
    groups and their order are compared.
    """
    groups: list[tuple[int, list[str]]] = []
    for hit in hits:
        tier = math.floor(hit.score)
        if groups and groups[-1][0] == tier:
            groups[-1][1].append(hit.id)
        else:
            groups.append((tier, [hit.id]))
    return [(tier, sorted(found)) for tier, found in groups]


QUERIES = [
    "",
    "人口",
    "法人",
    "企业",
    "口",
    "住人口",
    "常住人口信息",
    "公交 客流",
    "公交 线路编号",
    "线路编号",
    "traffic",
    "TRAFFIC flow",
    "ＡＢＣ",
    "vehicle_count",
    "%",
    "_",
    "100%",
    '"',
    "NEAR",
    "' OR 1=1 --",
    "人口 不存在",
    "不存在的词",
]
FILTERS = [
    Filters(),
    Filters(department=[MARKET["uscc"]]),
    Filters(department=[POPULATION["name"]], open=False),
    Filters(classification=["主题"]),
    Filters(classification=["户籍"]),
    Filters(share_type=["授权共享"]),
    Filters(update_cycle=["实时", "每日"]),
    Filters(format=["电子表格"]),
    Filters(format=["mysql"]),
    Filters(open=True),
]


@pytest.fixture
def both(pg_url: str, tmp_path: Path) -> tuple[CatalogStore, CatalogStore]:
    return build_catalog(f"sqlite:///{tmp_path / 'catalog.db'}"), build_catalog(pg_url)


@pytest.mark.parametrize(
    "viewer",
    [None, OPERATOR, Viewer(user="u", department=POPULATION["uscc"])],
    ids=["anonymous", "operator", "department"],
)
def test_search_gives_the_same_results_as_on_sqlite(
    both: tuple[CatalogStore, CatalogStore], viewer: Viewer | None
) -> None:
    sqlite, postgres = both
    with sqlite.session() as a, postgres.session() as b:
        for query in QUERIES:
            for filters in FILTERS:
                left = search(a, query, filters, viewer=viewer, rows=1000)
                right = search(b, query, filters, viewer=viewer, rows=1000)
                where = (query, filters)
                assert left.total == right.total == len(left.hits), where
                assert _tiers(left.hits) == _tiers(right.hits), where
                assert {h.id: h.section for h in left.hits} == {h.id: h.section for h in right.hits}, where


def test_pages_and_orders_are_the_same_as_on_sqlite(both: tuple[CatalogStore, CatalogStore]) -> None:
    sqlite, postgres = both
    with sqlite.session() as a, postgres.session() as b:
        for sort in ([("id", "asc")], [("name", "desc")], [("score", "desc"), ("id", "desc")]):
            for query in ("", "公交", "人口"):
                for start in (0, 3, 7, 50):
                    left = search(a, query, start=start, rows=4, sort=sort)
                    right = search(b, query, start=start, rows=4, sort=sort)
                    if sort[0][0] != "score" or not query or query == "公交":  # 公交: one tier, ties by id
                        assert [h.id for h in left.hits] == [h.id for h in right.hits], (sort, query, start)
                    assert left.total == right.total
        facets = ["department", "tags", "axis", "share_type", "update_cycle", "format_type", "format_category", "open"]
        assert search(a, "", facets=facets, rows=0).facets == search(b, "", facets=facets, rows=0).facets
        assert [h.id for h in search(b, "", rows=1000).hits] == sorted(PUBLISHED)


def test_hostile_input_is_refused_the_same_way(both: tuple[CatalogStore, CatalogStore]) -> None:
    _, postgres = both
    with postgres.session() as s:
        for query in ("\x00", "人口\x00", "\ud800"):
            with pytest.raises(SearchError) as info:
                search(s, query)
            assert info.value.field == "q"
        with pytest.raises(SearchError, match="unknown department"):
            search(s, "", Filters(department=["' OR 1=1 --"]))
        with pytest.raises(SearchError):
            search(s, "", Filters(department=["bad\x00value"]))


# --- the extension cannot be created --------------------------------------------------------------


@pytest.fixture
def database_without_rights(postgres_url: str) -> Iterator[str]:
    """A new database, without pg_trgm, and a role that may create tables but not extensions."""
    name = f"govdata_noext_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text(f'CREATE ROLE "{name}" LOGIN'))
        con.execute(sa.text(f'CREATE DATABASE "{name}"'))
    inside = sa.create_engine(postgres_url.rsplit("/", 1)[0] + f"/{name}", isolation_level="AUTOCOMMIT")
    with inside.connect() as con:
        con.execute(sa.text(f'GRANT CREATE ON SCHEMA public TO "{name}"'))
    inside.dispose()
    url = postgres_url.rsplit("/", 1)[0].replace("//postgres@", f"//{name}@") + f"/{name}"
    try:
        yield url
    finally:
        from catalog.store import _ENGINES

        for key in [k for k in _ENGINES if name in k]:
            _ENGINES.pop(key).dispose()
        with admin.connect() as con:
            con.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            con.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def test_a_missing_extension_that_cannot_be_created_is_a_clear_error(database_without_rights: str) -> None:
    if "//postgres@" in database_without_rights:
        pytest.skip("the test database URL does not name the postgres user")
    with pytest.raises(TerminalError) as info:
        CatalogStore(database_without_rights)
    assert "pg_trgm" in info.value.message and "cannot be created" in info.value.message
    assert "CREATE EXTENSION pg_trgm" in (info.value.hint or "")
