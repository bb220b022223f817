"""Catalog search on SQLite: Chinese substrings, short words, ranking, filters, paging, visibility, hostile input.

The oracle for "what matches" is plain Python: an entry matches when every normalised query
word is a substring of its name, abstract or a data item's name or title.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from catalog.access import ANONYMOUS, OPERATOR, Viewer
from catalog.models import DataItem, Entry
from catalog.search import (
    MAX_QUERY_CHARS,
    MAX_ROWS,
    MAX_TERMS,
    SQLITE_TRIGGERS,
    Filters,
    SearchError,
    compose_search_text,
    normalise,
    reindex,
    search,
    terms,
)
from catalog.store import CatalogStore, migrate
from tests.catalog.conftest_search import (
    ENTRIES,
    MARKET,
    POPULATION,
    PUBLISHED,
    TRANSPORT,
    UNPUBLISHED,
    build_catalog,
    spec_of,
)

BY_ID = {e["id"]: e for e in ENTRIES}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    """The shared catalog (read-only tests)."""
    return build_catalog(f"sqlite:///{tmp_path_factory.mktemp('search') / 'catalog.db'}")


@pytest.fixture
def fresh(tmp_path: Path) -> CatalogStore:
    """A catalog of its own, for tests that write."""
    return build_catalog(f"sqlite:///{tmp_path / 'catalog.db'}")


def ids(
    store: CatalogStore, query: str = "", filters: Filters | None = None, viewer: Viewer = ANONYMOUS, **kw
) -> list[str]:
    with store.session() as s:
        return [h.id for h in search(s, query, filters, viewer=viewer, rows=MAX_ROWS, **kw).hits]


def oracle(query: str, visible: list[str] = PUBLISHED) -> set[str]:
    words = normalise(query).split()
    found = set()
    for entry_id in visible:
        e = BY_ID[entry_id]
        haystack = [normalise(e["name"]), normalise(e["abstract"])] + [
            normalise(f"{c['name']} {c['title']}") for c in e["columns"]
        ]
        if all(any(w in part for part in haystack) for w in words):
            found.add(entry_id)
    return found


# --- matching --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("人口", {"population_register", "population_yearbook", "housing_subsidy", "school_enrolment"}),
        ("法人", {"enterprise_registry"}),  # two characters, in an abstract
        ("企业", {"enterprise_registry", "licence_permits"}),  # in a name and in a data item's title
        ("常住人口信息", {"population_register"}),
        ("住人口", {"population_register"}),  # any substring: no word segmentation
        ("口", oracle("口")),  # one character
        ("公交 客流", {f"bus_line_{i:02d}" for i in range(1, 17)} & set(PUBLISHED)),  # every word must occur
        ("人口 公交", set()),
        ("vehicle_count", {"traffic_flow"}),  # an English data-item name
        ("hourly vehicle", {"traffic_flow"}),
        ("不存在的词", set()),
    ],
)
def test_keywords_match_substrings_of_names_abstracts_and_data_items(
    catalog: CatalogStore, query: str, expected: set[str]
) -> None:
    found = ids(catalog, query)
    assert set(found) == expected == oracle(query)
    assert len(found) == len(set(found))


@pytest.mark.parametrize("query", ["abc", "ABC", "ＡＢＣ", "ａｂｃ公司"])
def test_full_width_and_case_do_not_matter(catalog: CatalogStore, query: str) -> None:
    assert ids(catalog, query) == ["fullwidth_catalog"]


@pytest.mark.parametrize("query", ["TRAFFIC", "traffic flow", "Ｔｒａｆｆｉｃ", "  traffic\t\nflow  "])
def test_english_is_case_insensitive_and_whitespace_separates_words(catalog: CatalogStore, query: str) -> None:
    assert ids(catalog, query) == ["traffic_flow"]


def test_an_empty_query_lists_everything_visible(catalog: CatalogStore) -> None:
    assert ids(catalog, "") == ids(catalog, "   ") == ids(catalog, None) == PUBLISHED  # type: ignore[arg-type]


# --- ranking ---------------------------------------------------------------------------------------


def test_a_name_match_ranks_above_an_abstract_match_above_a_data_item_match(catalog: CatalogStore) -> None:
    with catalog.session() as s:
        hits = search(s, "人口").hits
    assert [(h.id, h.section) for h in hits] == [
        ("population_register", "name"),  # 2 characters: no relevance score, the id breaks the tie
        ("population_yearbook", "name"),
        ("housing_subsidy", "abstract"),
        ("school_enrolment", "items"),
    ]
    assert hits[0].score > hits[2].score > hits[3].score


def test_bm25_orders_within_a_section_and_the_order_is_stable(catalog: CatalogStore) -> None:
    with catalog.session() as s:
        first = search(s, "线路编号")
        again = search(s, "线路编号")
    assert [h.id for h in first.hits] == [h.id for h in again.hits]
    assert {h.section for h in first.hits} == {"items"}
    scores = [h.score for h in first.hits]
    assert scores == sorted(scores, reverse=True)
    tied = [h.id for h in first.hits if h.score == scores[0]]
    assert tied == sorted(tied)


def test_several_words_add_up(catalog: CatalogStore) -> None:
    with catalog.session() as s:
        hits = search(s, "公交 线路编号").hits
    # 公交 in the name (2), 线路编号 in a data item (0)
    assert hits and all(h.section == "name" and 2 <= h.score < 3 for h in hits)


def test_other_orders(catalog: CatalogStore) -> None:
    by_name = sorted(PUBLISHED, key=lambda i: (BY_ID[i]["name"], i))
    assert ids(catalog, "", sort=[("name", "asc")]) == by_name
    assert ids(catalog, "", sort=[("name", "desc")]) == sorted(PUBLISHED, key=lambda i: BY_ID[i]["name"], reverse=True)
    assert ids(catalog, "", sort=[("id", "desc")]) == sorted(PUBLISHED, reverse=True)
    assert ids(catalog, "公交", sort=[("score", "desc"), ("id", "desc")]) == sorted(oracle("公交"), reverse=True)


def test_modified_order_follows_the_latest_version(fresh: CatalogStore) -> None:
    fresh.add_version(
        "bus_line_01",
        number=2,
        run_id="2026-12-01",
        row_count=1,
        content_sha256="b" * 64,
        fingerprint="c" * 64,
        schema=[],
        quality={},
        lineage={},
        location="exchange/bus_line_01/v000002",
        watermark=None,
    )
    assert ids(fresh, "", sort=[("modified", "desc")])[0] == "bus_line_01"


def test_a_bad_sort_is_refused(catalog: CatalogStore) -> None:
    with catalog.session() as s, pytest.raises(SearchError, match="unknown sort key 'views'") as info:
        search(s, "人口", sort=[("views", "desc")])
    assert info.value.field == "sort"
    with catalog.session() as s, pytest.raises(SearchError, match="direction"):
        search(s, "人口", sort=[("name", "up")])


# --- paging ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 4, 5, 20])
def test_pages_cover_every_match_once(catalog: CatalogStore, rows: int) -> None:
    everything = ids(catalog, "")
    seen: list[str] = []
    start = 0
    with catalog.session() as s:
        while True:
            page = search(s, "", start=start, rows=rows)
            assert page.total == len(PUBLISHED)
            if not page.hits:
                break
            assert len(page.hits) <= rows
            seen += [h.id for h in page.hits]
            start += rows
    assert seen == everything


def test_rows_zero_counts_and_a_page_past_the_end_is_empty(catalog: CatalogStore) -> None:
    with catalog.session() as s:
        counted = search(s, "公交", rows=0)
        past = search(s, "公交", start=10_000, rows=10)
    assert (counted.total, counted.hits) == (len(oracle("公交")), [])
    assert (past.total, past.hits) == (len(oracle("公交")), [])


@pytest.mark.parametrize(
    ("start", "rows", "field"),
    [(-1, 10, "start"), (0, -1, "rows"), (0, MAX_ROWS + 1, "rows"), (2**63, 10, "start"), (True, 10, "start")],
)
def test_bad_paging_is_refused(catalog: CatalogStore, start: int, rows: int, field: str) -> None:
    with catalog.session() as s, pytest.raises(SearchError) as info:
        search(s, "人口", start=start, rows=rows)
    assert info.value.field == field


# --- visibility ------------------------------------------------------------------------------------


def test_anonymous_sees_published_entries_only(catalog: CatalogStore) -> None:
    assert ids(catalog, "") == PUBLISHED
    assert not set(ids(catalog, "人口")) & set(UNPUBLISHED)
    assert ids(catalog, "普查") == []  # only the draft has it


def test_the_operator_sees_everything_and_a_department_its_own_drafts(catalog: CatalogStore) -> None:
    assert sorted(ids(catalog, "", viewer=OPERATOR)) == sorted(PUBLISHED + UNPUBLISHED)
    population = Viewer(user="u1", department=POPULATION["uscc"])
    market = Viewer(user="u2", department=MARKET["uscc"])
    assert ids(catalog, "普查", viewer=population) == ["population_census_draft"]
    assert ids(catalog, "普查", viewer=market) == []
    assert set(ids(catalog, "人口", viewer=OPERATOR)) == oracle("人口", PUBLISHED + UNPUBLISHED)


# --- filters ---------------------------------------------------------------------------------------


def of(*entry_ids: str) -> list[str]:
    return sorted(i for i in entry_ids if i in PUBLISHED)


BUS_LINES = [f"bus_line_{i:02d}" for i in range(1, 17)]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            Filters(department=[MARKET["uscc"]]),
            of("enterprise_registry", "licence_permits", "hostile_name", "fullwidth_catalog"),
        ),
        (
            Filters(department=[MARKET["uscc"].lower()]),
            of("enterprise_registry", "licence_permits", "hostile_name", "fullwidth_catalog"),
        ),
        (Filters(department=["上海市交通委员会"]), of("traffic_flow", *BUS_LINES)),
        (
            Filters(department=["上海市交通委员会", MARKET["uscc"]]),
            of(
                "traffic_flow",
                *BUS_LINES,
                "enterprise_registry",
                "licence_permits",
                "hostile_name",
                "fullwidth_catalog",
            ),
        ),
        (Filters(classification=["主题"]), of("traffic_flow", *BUS_LINES)),
        (Filters(classification=["theme"]), of("traffic_flow", *BUS_LINES)),
        (Filters(classification=["102"]), of("enterprise_registry", "fullwidth_catalog")),
        (Filters(classification=["3"]), of("licence_permits", "hostile_name")),
        (
            Filters(classification=["户籍"]),
            of("population_register", "population_yearbook", "housing_subsidy", "school_enrolment"),
        ),
        (
            Filters(classification=["法人", "许可"]),
            of("enterprise_registry", "fullwidth_catalog", "licence_permits", "hostile_name"),
        ),
        (Filters(share_type=["授权共享"]), of("population_register", "housing_subsidy", "licence_permits")),
        (Filters(share_type=["conditional"]), of("population_register", "housing_subsidy", "licence_permits")),
        (Filters(share_type=["不予共享"]), []),
        (Filters(update_cycle=["实时"]), of("traffic_flow", "bus_line_08", "bus_line_16")),
        (Filters(update_cycle=["realtime"]), of("traffic_flow", "bus_line_08", "bus_line_16")),
        (
            Filters(update_cycle=["Yearly", "每季度"]),
            of(
                "population_yearbook",
                "school_enrolment",
                "hostile_name",
                "bus_line_06",
                "bus_line_14",
                "bus_line_04",
                "bus_line_12",
            ),
        ),
        (
            Filters(format=["电子表格"]),
            of("population_yearbook", "school_enrolment", "licence_permits", "fullwidth_catalog", *BUS_LINES),
        ),
        (
            Filters(format=["2"]),
            of("population_yearbook", "school_enrolment", "licence_permits", "fullwidth_catalog", *BUS_LINES),
        ),
        (Filters(format=["XLSX"]), of("population_yearbook", "licence_permits", "fullwidth_catalog")),
        (
            Filters(format=["mysql", "service"]),
            of("population_register", "enterprise_registry", "housing_subsidy", "traffic_flow"),
        ),
        (Filters(open=True), of("population_yearbook", "enterprise_registry", "traffic_flow")),
        (
            Filters(open=False, department=[POPULATION["name"]]),
            of("population_register", "housing_subsidy", "school_enrolment"),
        ),
    ],
)
def test_filters(catalog: CatalogStore, filters: Filters, expected: list[str]) -> None:
    assert sorted(ids(catalog, "", filters)) == expected


def test_filters_combine_with_keywords(catalog: CatalogStore) -> None:
    assert ids(catalog, "人口", Filters(share_type=["无条件共享"])) == ["population_yearbook", "school_enrolment"]
    assert ids(catalog, "人口", Filters(format=["服务接口"], open=False)) == ["housing_subsidy"]


@pytest.mark.parametrize(
    ("filters", "field", "named", "valid"),
    [
        (Filters(department=["上海市不存在局"]), "department", "上海市不存在局", "上海市交通委员会"),
        (Filters(department=["11310000MB0000000X"]), "department", "11310000MB0000000X", TRANSPORT["name"]),
        (Filters(classification=["不存在"]), "classification", "不存在", "基础"),
        (Filters(classification=["901"]), "classification", "901", "1 (基础)"),
        (Filters(share_type=["随便共享"]), "share_type", "随便共享", "无条件共享"),
        (Filters(update_cycle=["每小时"]), "update_cycle", "每小时", "每日"),
        (Filters(format=["docx"]), "format", "docx", "电子表格"),
        (Filters(format=["x" * 500]), "format", "x" * 500, "xlsx"),
    ],
)
def test_an_unknown_filter_value_is_named_with_the_valid_ones(
    catalog: CatalogStore, filters: Filters, field: str, named: str, valid: str
) -> None:
    with catalog.session() as s, pytest.raises(SearchError) as info:
        search(s, "", filters)
    assert info.value.field == field
    assert repr(named) in info.value.message or named in info.value.message
    assert valid in f"{info.value.message} {info.value.hint}"


def test_filter_values_are_data_not_sql(catalog: CatalogStore) -> None:
    for value in ("' OR 1=1 --", "%", "_", "1%", "1_"):
        with catalog.session() as s:
            try:
                found = search(s, "", Filters(classification=[value]))
            except SearchError:
                continue
            assert found.total == 0, value


def test_facets_count_every_match(catalog: CatalogStore) -> None:
    with catalog.session() as s:
        found = search(s, "", rows=1, facets=["department", "tags", "axis", "open", "share_type"])
    assert sum(n for _, n in found.facets["department"]) == len(PUBLISHED)
    assert dict(found.facets["department"])[TRANSPORT["uscc"]] == len(of("traffic_flow", *BUS_LINES))
    assert dict(found.facets["tags"])["人口"] == 4
    assert dict(found.facets["axis"]) == {"基础": 6, "主题": len(of("traffic_flow", *BUS_LINES)), "部门": 2}
    assert dict(found.facets["open"]) == {"true": 3, "false": len(PUBLISHED) - 3}
    with catalog.session() as s, pytest.raises(SearchError, match="facet"):
        search(s, "", facets=["colour"])


# --- hostile queries -------------------------------------------------------------------------------


HOSTILE = [
    '"',
    '""',
    "'",
    "*",
    "NEAR",
    "near(人口 公交)",
    "-",
    "-人口",
    "(",
    ")",
    "()",
    "AND",
    "OR",
    "NOT 人口",
    "人口 OR 公交",
    '"人口" AND "公交"',
    "%",
    "_",
    "100%",
    "%人口%",
    "完成率_统计",
    "^",
    ":",
    "{}",
    "search_text:人口",
    "' OR 1=1 --",
    "'; DROP TABLE catalog_entries; --",
    "人口*",
    "\\",
    "\x00",
    "a\x01b",
    "🙂",
    "𠀀𠀁",
    "ﬁ",
    "İstanbul",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_are_literal_text(catalog: CatalogStore, query: str) -> None:
    try:
        found = set(ids(catalog, query))
    except SearchError as exc:
        assert exc.field == "q" and "\x00" in query
        return
    assert found == oracle(query)
    with catalog.session() as s:
        assert s.scalar(select(Entry.id).where(Entry.id == "population_register")) is not None


def test_percent_and_underscore_are_not_wildcards(catalog: CatalogStore) -> None:
    assert ids(catalog, "%") == ["hostile_name"]
    assert ids(catalog, "0%") == ["hostile_name"]  # "100%" is in its name only
    assert ids(catalog, "1%") == []  # no "1%" anywhere: % is not a wildcard
    assert set(ids(catalog, "_")) == oracle("_")  # snake_case item names contain "_": nothing more
    assert "population_yearbook" not in ids(catalog, "_")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="人口公交线路编号企业法 abcAB_%*\"()-:'NEARORT1\\", min_size=0, max_size=12))
def test_any_query_matches_what_the_oracle_says(catalog: CatalogStore, query: str) -> None:
    assert set(ids(catalog, query)) == oracle(query)


def test_the_longest_query_is_accepted_and_a_longer_one_named(catalog: CatalogStore) -> None:
    assert ids(catalog, "人" * MAX_QUERY_CHARS) == []
    with catalog.session() as s, pytest.raises(SearchError, match=f"{MAX_QUERY_CHARS + 1} characters") as info:
        search(s, "人" * (MAX_QUERY_CHARS + 1))
    assert info.value.field == "q"
    with pytest.raises(SearchError, match=f"{MAX_TERMS + 1} words"):
        terms(" ".join(f"w{i}" for i in range(MAX_TERMS + 1)))
    assert terms("人口 人口 公交") == ["人口", "公交"]


@pytest.mark.parametrize("query", ["\ud800", "人口\udfff"])
def test_an_unpaired_surrogate_is_refused(catalog: CatalogStore, query: str) -> None:
    with catalog.session() as s, pytest.raises(SearchError, match="surrogate") as info:
        search(s, query)
    assert info.value.field == "q"


# --- the index follows every write -----------------------------------------------------------------


def fts_ok(store: CatalogStore) -> None:
    with store.session() as s:
        s.execute(text("INSERT INTO catalog_entries_fts(catalog_entries_fts, rank) VALUES ('integrity-check', 1)"))
        stale = [
            e.id
            for e in s.scalars(select(Entry))
            if e.search_text != compose_search_text(e.name, e.abstract, [(i.name, i.title) for i in e.items])
        ]
    assert stale == []


def test_an_edit_through_the_orm_is_searchable_at_once(fresh: CatalogStore) -> None:
    with fresh.session() as s:
        entry = s.get(Entry, "licence_permits")
        assert entry is not None
        entry.abstract = "餐饮服务许可的发证记录。"
    assert ids(fresh, "餐饮服务") == ["licence_permits"]
    assert ids(fresh, "食品经营许可的") == []
    fts_ok(fresh)


def test_data_items_added_changed_and_removed_are_followed(fresh: CatalogStore) -> None:
    with fresh.session() as s:  # added by entry id alone, as bulk code would
        s.add(DataItem(entry_id="traffic_flow", position=9, name="weather", title="天气状况", type_code="C"))
    assert ids(fresh, "天气状况") == ["traffic_flow"]
    with fresh.session() as s:
        item = s.get(DataItem, ("traffic_flow", 9))
        assert item is not None
        item.title = "降雨量"
    assert (ids(fresh, "天气状况"), ids(fresh, "降雨量")) == ([], ["traffic_flow"])
    with fresh.session() as s:
        item = s.get(DataItem, ("traffic_flow", 9))
        s.delete(item)
    assert ids(fresh, "降雨量") == []
    with fresh.session() as s:
        entry = s.get(Entry, "traffic_flow")
        assert entry is not None
        entry.items.append(DataItem(position=10, name="lane", title="车道编号", type_code="C"))
    assert ids(fresh, "车道编号") == ["traffic_flow"]
    fts_ok(fresh)


def test_registering_a_spec_again_reindexes_it(fresh: CatalogStore) -> None:
    e = dict(BY_ID["enterprise_registry"])
    e["columns"] = [*e["columns"], {"name": "scope", "title": "经营范围"}]
    seq = [x["id"] for x in ENTRIES].index("enterprise_registry") + 1
    fresh.register(spec_of(e, seq), source="test")
    assert ids(fresh, "经营范围") == ["enterprise_registry"]
    fts_ok(fresh)


def test_new_and_deleted_entries(fresh: CatalogStore) -> None:
    with fresh.session() as s:  # as an import would: an entry and its items in one add
        s.add(
            Entry(
                id="imported_one",
                resource_code="101030/999999",
                name="导入的人口台账",
                department_uscc=POPULATION["uscc"],
                classification_axis="基础",
                classification_path=["人口", "户籍"],
                classification_code="101030",
                abstract="从表格导入。",
                format_category="电子表格",
                format_type="xlsx",
                share_type="无条件共享",
                share_method="文件",
                update_cycle="每月",
                status="published",
                items=[DataItem(position=1, name="ledger_no", title="台账编号", type_code="C")],
            )
        )
    assert ids(fresh, "台账编号") == ["imported_one"]
    assert ids(fresh, "人口")[:3] == ["imported_one", "population_register", "population_yearbook"]
    with fresh.session() as s:
        s.delete(s.get(Entry, "imported_one"))
    assert ids(fresh, "台账") == []
    fts_ok(fresh)


def test_writes_that_bypass_the_orm_are_repaired_by_reindex(fresh: CatalogStore) -> None:
    with fresh.session() as s:
        s.execute(text("UPDATE catalog_entries SET name = '绕过映射的名称' WHERE id = 'hostile_name'"))
    assert ids(fresh, "绕过映射") == []
    with fresh.session() as s:
        assert reindex(s) == 1
    assert ids(fresh, "绕过映射") == ["hostile_name"]
    fts_ok(fresh)


def test_an_entry_imported_from_the_national_sheet_is_searchable(fresh: CatalogStore, tmp_path: Path) -> None:
    """The spreadsheet import writes through the ORM: its entries are found like registered ones."""
    from catalog.spreadsheet import export_workbook, import_workbook

    sheet = tmp_path / "sheet.xlsx"
    export_workbook(fresh, sheet, department=POPULATION["uscc"], viewer=OPERATOR)
    other = CatalogStore(f"sqlite:///{tmp_path / 'other.db'}")
    report = import_workbook(other, sheet, department=POPULATION["uscc"], department_name=POPULATION["name"])
    assert not report.problems
    with other.session() as s:
        found = search(s, "人口", viewer=OPERATOR, rows=50)
        codes = {e.id: e.resource_code for e in s.scalars(select(Entry))}
    with fresh.session() as s:
        expected = {
            h.resource_code for h in search(s, "人口", Filters(department=[POPULATION["uscc"]]), viewer=OPERATOR).hits
        }
    assert {codes[h.id] for h in found.hits} == expected
    fts_ok(other)


# --- the index and the migrations ------------------------------------------------------------------


def test_the_full_text_index_and_its_triggers_exist_at_head(catalog: CatalogStore) -> None:
    """A migration that makes SQLite copy catalog_entries drops them: it must call install_sqlite_index."""
    path = catalog.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:
        triggers = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(SQLITE_TRIGGERS) <= triggers
    assert "catalog_entries_fts" in tables
    fts_ok(catalog)


def test_entries_made_before_search_existed_are_indexed_by_the_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    build_catalog(url)
    migrate(url, "0002")
    with sqlite3.connect(tmp_path / "catalog.db") as raw:
        columns = {r[1] for r in raw.execute("PRAGMA table_info(catalog_entries)")}
        assert "search_text" not in columns
        assert not raw.execute("SELECT name FROM sqlite_master WHERE name LIKE 'catalog_entries_fts%'").fetchall()
    migrate(url, "head")
    store = CatalogStore(url)
    assert set(ids(store, "人口")) == oracle("人口")
    fts_ok(store)


# --- govdata catalog search ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from catalog.lifecycle import add_user
    from pipelines.workspace import Workspace

    home = tmp_path_factory.mktemp("cli") / "home"
    store = build_catalog(Workspace.from_env(home).catalog_url)
    with store.session() as s:
        add_user(s, "li.market", name="李市场", role="staff", department=MARKET["uscc"])
        add_user(s, "wang.population", name="王人口", role="staff", department=POPULATION["uscc"])
    return home


def cli(home: Path, *args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    from pipelines.cli import app

    result = CliRunner().invoke(app, ["catalog", "search", *args, "--home", str(home)], env={"COLUMNS": "200"})
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def cli_json(home: Path, *args: str) -> dict:
    import json

    code, out, err = cli(home, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_cli_search_prints_a_ranked_table(cli_home: Path) -> None:
    code, out, _ = cli(cli_home, "人口")
    assert code == 0
    lines = [line for line in out.splitlines() if "│" in line]
    order = [next(i for i in UNPUBLISHED + PUBLISHED if i in line) for line in lines if "_" in line]
    assert order == [
        "population_census_draft",
        "population_register",
        "population_yearbook",
        "archive_index",
        "housing_subsidy",
        "school_enrolment",
    ]
    assert "名称" in out and "摘要" in out and "信息项" in out and "草稿" in out
    assert "6 result(s); page 1 of 1" in out


def test_cli_search_json_filters_and_pages(cli_home: Path) -> None:
    found = cli_json(cli_home, "公交", "--update-cycle", "每日", "--share-type", "unconditional")
    assert [r["id"] for r in found["results"]] == ["bus_line_01", "bus_line_09"]
    assert found["results"][0]["matched_in"] == "name"
    opened = cli_json(cli_home, "", "--department", TRANSPORT["name"], "--open")
    assert [r["id"] for r in opened["results"]] == ["traffic_flow"]
    closed = cli_json(cli_home, "", "--classification", "102", "--not-open", "--format", "xlsx")
    assert [r["id"] for r in closed["results"]] == ["fullwidth_catalog"]
    page = cli_json(cli_home, "", "--per-page", "5", "--page", "2")
    assert (page["total"], page["pages"], [r["rank"] for r in page["results"]]) == (28, 6, [6, 7, 8, 9, 10])
    both = cli_json(
        cli_home, "", "--department", TRANSPORT["uscc"], "--department", MARKET["uscc"], "--per-page", "100"
    )
    assert both["total"] == 4 + 16 + 2  # the operator sees every status


def test_cli_search_as_a_user_sees_what_that_user_may(cli_home: Path) -> None:
    market = cli_json(cli_home, "人口", "--as", "li.market")
    assert [r["id"] for r in market["results"]] == [
        "population_register",
        "population_yearbook",
        "housing_subsidy",
        "school_enrolment",
    ]
    own = cli_json(cli_home, "普查", "--as", "wang.population")
    assert [r["id"] for r in own["results"]] == ["population_census_draft"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["", "--share-type", "随便共享"], "unknown share type '随便共享'"),
        (["", "--update-cycle", "hourly"], "unknown update cycle 'hourly'"),
        (["", "--department", "上海市不存在局"], "unknown department '上海市不存在局'"),
        (["", "--format", "docx"], "unknown format 'docx'"),
        (["x" * 201], "201 characters"),
        (["人口", "--as", "nobody"], "no active user 'nobody'"),
    ],
)
def test_cli_search_names_what_is_wrong(cli_home: Path, args: list[str], message: str) -> None:
    code, _, err = cli(cli_home, *args)
    assert code == 1
    assert message in err


def test_cli_search_hostile_query_finds_nothing_and_says_so(cli_home: Path) -> None:
    code, out, _ = cli(cli_home, "' OR 1=1 --")
    assert code == 0 and "no catalog entry matches" in out
    code, out, _ = cli(cli_home, "人口", "--page", "9")
    assert code == 0 and "page 9 is past the end" in out
