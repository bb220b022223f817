"""The DCAT-AP 3 feed: it conforms to SEMIC's SHACL shapes, shows only what the viewer may see, keeps
Chinese and hostile text intact in Turtle and JSON-LD, and is pinned by golden files.

The shapes are vendored in ``standards/dcat-ap/`` (see its README): data graph = the export,
shapes graph = ``shapes.ttl`` + ``range.ttl`` with every ``sh:shape`` read as ``sh:node``.

Golden files: ``golden/demo_catalog.ttl`` and ``golden/demo_catalog.jsonld`` are the feed of the
three bundled departments with fixed dates. After an intended change of the feed, regenerate
them and review the diff like code::

    GOVDATA_UPDATE_GOLDEN=1 .venv/bin/pytest tests/catalog/test_dcat.py -k golden
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pyshacl import validate
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, FOAF, RDF, SH, SKOS
from sqlalchemy import select

from catalog import dcat
from catalog.access import ANONYMOUS, OPERATOR, Role, Viewer
from catalog.models import Entry, Version
from catalog.store import CatalogStore
from pipelines.errors import GovdataError
from pipelines.identifiers import org_code_check_char, uscc_check_char
from pipelines.spec import DatasetSpec, UpdateCycle, load_spec

# rdflib's own JSON-LD parser still uses its deprecated ConjunctiveGraph.
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SHAPES = HERE / "standards" / "dcat-ap"
GOLDEN = HERE / "golden"
BASE = "https://data.example.gov.cn"
DCAT = Namespace("http://www.w3.org/ns/dcat#")
XSD = Namespace("http://www.w3.org/2001/XMLSchema#")
SH_SHAPE = URIRef("http://www.w3.org/ns/shacl#shape")  # not a SHACL term: rdflib's SH refuses it
EU = "http://publications.europa.eu/resource/authority/"
DEMO_SPECS = sorted((REPO / "datasets").rglob("*.yaml"))

#: Fixed times of the demo catalog (the feed has no wall-clock time of its own).
ISSUED = {
    "hrss_insured_persons": dt.date(2025, 3, 1),
    "market_enterprise_registry": dt.date(2024, 11, 15),
    "transport_bus_stops": dt.date(2025, 1, 20),
}
VERSION_AT = dt.datetime(2025, 6, 30, 8, 0, 0, tzinfo=dt.UTC)
STATUS_AT = dt.datetime(2025, 6, 1, 9, 30, 0, tzinfo=dt.UTC)


# --- helpers -------------------------------------------------------------------------------------


def shapes_graph(*, substitute: bool = True, vocabularies: bool = False) -> Graph:
    """shapes.ttl + range.ttl (+ the vocabulary shapes), with ``sh:shape`` read as ``sh:node``."""
    g = Graph()
    names = ["shapes.ttl", "range.ttl"] + (["mdr-vocabularies.shape.ttl"] if vocabularies else [])
    for name in names:
        g.parse(SHAPES / name, format="turtle")
    if substitute:
        for s, o in list(g.subject_objects(SH_SHAPE)):
            g.remove((s, SH_SHAPE, o))
            g.add((s, SH.node, o))
    return g


def shacl_results(data: Graph, shapes: Graph) -> list[dict[str, str]]:
    """Every SHACL result (violations and warnings) as focus node, path, severity, message.

    Only the report's own results: the ``sh:detail`` results nested in them (why an ``sh:node``
    failed) carry the inner shape's default severity, not the one the shapes give the check.
    """
    _conforms, report, _text = validate(data, shacl_graph=shapes, inference="none", allow_warnings=False)
    assert isinstance(report, Graph)
    found = []
    (top,) = report.subjects(RDF.type, SH.ValidationReport)
    for result in report.objects(top, SH.result):
        found.append(
            {
                "focus": str(report.value(result, SH.focusNode)),
                "path": str(report.value(result, SH.resultPath)),
                "severity": str(report.value(result, SH.resultSeverity)).rsplit("#", 1)[-1],
                "message": str(report.value(result, SH.resultMessage)),
            }
        )
    return sorted(found, key=lambda r: (r["focus"], r["path"], r["message"]))


def violations(data: Graph, shapes: Graph) -> list[dict[str, str]]:
    return [r for r in shacl_results(data, shapes) if r["severity"] == "Violation"]


def parsed(text: str, fmt: str) -> Graph:
    return Graph().parse(data=text, format="json-ld" if fmt == "json-ld" else "turtle")


def uscc(n: int) -> str:
    org = f"MA{n:06d}"
    body = f"11310115{org}{org_code_check_char(org)}"
    return body + uscc_check_char(body)


def make_spec(dataset: str, code: str, path: list[str], **changes: Any) -> DatasetSpec:
    """A valid spec on the 基础 axis under 项 109 (not used by the bundled departments)."""
    data: dict[str, Any] = {
        "id": dataset,
        "name": f"{dataset} 名称",
        "department": {"name": "上海市样例管理局", "uscc": uscc(1)},
        "source": {"connector": "csv", "options": {"path": "source.csv"}},
        "columns": [
            {"name": "code", "title": "编码", "primary_key": True, "nullable": False},
            {"name": "label", "title": "名称"},
        ],
        "catalog": {
            "classification": {"axis": "基础", "path": path},
            "resource_code": code,
            "abstract": "样例摘要",
            "sharing": {"type": "无条件共享", "method": "文件"},
            "update_cycle": "每日",
        },
    }
    for key, value in changes.items():
        target = data
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    return DatasetSpec.model_validate(data)


def publish(
    store: CatalogStore,
    dataset: str,
    *,
    number: int = 1,
    upstream: list[str] | None = None,
    issued: dt.date | None = None,
) -> None:
    """Record version ``number`` of ``dataset`` and pin its times."""
    store.add_version(
        dataset,
        number=number,
        run_id=f"run{number}",
        row_count=100 * number,
        content_sha256=f"{number:064x}",
        fingerprint=f"{number + 1:064x}",
        schema=[],
        quality={},
        lineage={},
        location=f"exchange/{dataset}/v{number:06d}",
        watermark=None,
    )
    with store.session() as s:
        entry = s.get(Entry, dataset)
        assert entry is not None
        entry.publish_date = issued or ISSUED.get(dataset, dt.date(2025, 5, 5))
        entry.status_changed_at = STATUS_AT
        version = s.scalar(select(Version).where(Version.entry_id == dataset, Version.number == number))
        assert version is not None
        version.published_at = VERSION_AT + dt.timedelta(days=number - 1)
        version.upstream = upstream or []


def set_entry(store: CatalogStore, dataset: str, **values: Any) -> None:
    with store.session() as s:
        entry = s.get(Entry, dataset)
        assert entry is not None
        for key, value in values.items():
            setattr(entry, key, value)


def demo_store(url: str) -> CatalogStore:
    """The three bundled departments, published, with fixed dates (market registry at version 2)."""
    store = CatalogStore(url)
    for path in DEMO_SPECS:
        spec = load_spec(path)
        store.register(spec, source=f"datasets/{path.parent.name}/{path.name}")
        publish(store, spec.id)
    publish(store, "market_enterprise_registry", number=2)
    return store


@pytest.fixture
def demo(tmp_path: Path) -> CatalogStore:
    return demo_store(f"sqlite:///{tmp_path / 'catalog.db'}")


def ds(dataset: str) -> URIRef:
    return URIRef(f"{BASE}/catalog/datasets/{dataset}")


# --- conformance -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["turtle", "json-ld"])
def test_the_demo_feed_conforms_to_the_dcat_ap_shapes(demo: CatalogStore, fmt: str) -> None:
    text = dcat.render(demo, fmt, BASE)
    g = parsed(text, fmt)
    assert set(g) == set(dcat.graph(demo, BASE)), "the text does not parse back to the same graph"
    assert len(list(g.subjects(RDF.type, DCAT.Dataset))) == 3
    assert shacl_results(g, shapes_graph()) == []


def test_the_feed_uses_the_controlled_vocabularies(demo: CatalogStore) -> None:
    """The vocabulary shapes find no violation; their warnings are only the ones we accept."""
    results = shacl_results(dcat.graph(demo, BASE), shapes_graph(vocabularies=True))
    assert [r for r in results if r["severity"] == "Violation"] == []
    # Our departments are no EU corporate bodies and our themes no EU data themes: warnings by design.
    assert {r["path"] for r in results} <= {str(DCTERMS.publisher), str(DCAT.theme), str(DCAT.themeTaxonomy)}


def test_the_date_checks_work_only_with_the_sh_node_substitution(demo: CatalogStore) -> None:
    published = (SHAPES / "shapes.ttl").read_text(encoding="utf-8")
    assert published.count("sh:shape ") == 5, "the vendored shapes changed: re-read the README of standards/dcat-ap"
    g = dcat.graph(demo, BASE)
    target = ds("transport_bus_stops")
    g.remove((target, DCTERMS.issued, None))
    g.add((target, DCTERMS.issued, Literal("2025年1月20日")))
    g.remove((target, DCTERMS.modified, None))
    g.add((target, DCTERMS.modified, Literal("2025-06-30", datatype=XSD.string)))

    found = violations(g, shapes_graph(substitute=True))
    assert {(r["focus"], r["path"]) for r in found} == {
        (str(target), str(DCTERMS.issued)),
        (str(target), str(DCTERMS.modified)),
    }
    assert violations(g, shapes_graph(substitute=False)) == [], "without the substitution the dates go unchecked"


def test_a_feed_without_entries_still_conforms(tmp_path: Path) -> None:
    store = CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")
    g = parsed(dcat.render(store, "turtle", BASE), "turtle")
    catalog = URIRef(f"{BASE}/catalog")
    assert (catalog, RDF.type, DCAT.Catalog) in g
    assert g.value(catalog, DCTERMS.issued) is None
    assert shacl_results(g, shapes_graph()) == []


# --- the mapping -----------------------------------------------------------------------------------


def test_the_thirteen_elements_map_to_dcat(demo: CatalogStore) -> None:
    g = parsed(dcat.render(demo, "turtle", BASE), "turtle")
    hrss, market, bus = ds("hrss_insured_persons"), ds("market_enterprise_registry"), ds("transport_bus_stops")
    catalog = URIRef(f"{BASE}/catalog")
    assert set(g.objects(catalog, DCAT.dataset)) == {hrss, market, bus}
    assert g.value(catalog, DCTERMS.issued) == Literal("2024-11-15", datatype=XSD.date)  # the earliest 发布日期
    assert g.value(catalog, DCTERMS.modified) == Literal("2025-07-01T08:00:00+00:00", datatype=XSD.dateTime)
    platform = g.value(catalog, DCTERMS.publisher)
    assert g.value(platform, FOAF.name) == Literal("市级共享交换平台", lang="zh")

    assert g.value(hrss, DCTERMS.identifier) == Literal("101030002/000112")
    assert g.value(hrss, DCTERMS.title) == Literal("上海市城镇职工基本养老保险参保人员信息", lang="zh")
    assert str(g.value(hrss, DCTERMS.description)).startswith("本市城镇职工基本养老保险参保人员")
    assert g.value(hrss, DCTERMS.issued) == Literal("2025-03-01", datatype=XSD.date)
    assert g.value(hrss, DCTERMS.modified) == Literal("2025-06-30T08:00:00+00:00", datatype=XSD.dateTime)
    assert g.value(market, DCAT.version) == Literal("2")
    assert g.value(market, DCTERMS.modified) == Literal("2025-07-01T08:00:00+00:00", datatype=XSD.dateTime)
    assert {str(k) for k in g.objects(hrss, DCAT.keyword)} >= {"公民身份号码", "姓名", "参保状态"}

    agent = g.value(hrss, DCTERMS.publisher)
    assert (agent, RDF.type, FOAF.Agent) in g
    assert g.value(agent, FOAF.name) == Literal("上海市人力资源和社会保障局", lang="zh")
    assert g.value(agent, DCTERMS.identifier) == Literal("1131000000245310XN")

    frequency = {d: str(g.value(d, DCTERMS.accrualPeriodicity)) for d in (hrss, market, bus)}
    assert frequency == {
        hrss: EU + "frequency/MONTHLY",
        market: EU + "frequency/DAILY",
        bus: EU + "frequency/UPDATE_CONT",
    }
    rights = {d: str(g.value(d, DCTERMS.accessRights)) for d in (hrss, market, bus)}
    assert rights == {
        hrss: EU + "access-right/RESTRICTED",  # 有条件共享
        market: EU + "access-right/RESTRICTED",  # 有条件共享
        bus: EU + "access-right/PUBLIC",  # 无条件共享, open to the public
    }
    statement = g.value(hrss, DCTERMS.rights)
    assert g.value(statement, SKOS.prefLabel) == Literal("有条件共享", lang="zh")
    assert "共享条件：仅向经审核的政府部门提供" in str(g.value(statement, DCTERMS.description))

    theme = g.value(bus, DCAT.theme)
    assert g.value(theme, SKOS.prefLabel) == Literal("公交站点", lang="zh")
    assert g.value(theme, SKOS.notation) == Literal("215020001")
    chain = [theme]
    while (parent := g.value(chain[-1], SKOS.broader)) is not None:
        chain.append(parent)
    assert [str(g.value(c, SKOS.prefLabel)) for c in chain] == ["公交站点", "公共交通", "交通出行", "主题信息资源"]
    assert (g.value(catalog, DCAT.themeTaxonomy), SKOS.hasTopConcept, chain[-1]) in g


def test_each_share_method_has_its_distribution(demo: CatalogStore) -> None:
    g = dcat.graph(demo, BASE)
    titles = {}
    for d in ("hrss_insured_persons", "market_enterprise_registry", "transport_bus_stops"):
        (dist,) = g.objects(ds(d), DCAT.distribution)
        titles[d] = str(g.value(dist, DCTERMS.title))
        assert str(g.value(dist, DCAT.accessURL)) == f"{BASE}/api/3/action/package_show?id={d}"
        assert g.value(dist, DCTERMS.rights) == g.value(ds(d), DCTERMS.rights)
    assert titles == {
        "hrss_insured_persons": "接口服务",  # 接口
        "market_enterprise_registry": "库表交换",  # 数据库
        "transport_bus_stops": "文件交换",  # 文件
    }
    (file_dist,) = g.objects(ds("transport_bus_stops"), DCAT.distribution)
    assert str(g.value(file_dist, DCTERMS.format)) == EU + "file-type/PARQUET"
    (api_dist,) = g.objects(ds("hrss_insured_persons"), DCAT.distribution)
    service = g.value(api_dist, DCAT.accessService)
    assert (service, RDF.type, DCAT.DataService) in g
    assert (URIRef(f"{BASE}/catalog"), DCAT.service, service) in g
    assert g.value(service, DCAT.servesDataset) == ds("hrss_insured_persons")
    assert str(g.value(service, DCAT.endpointURL)).startswith(BASE + "/")
    assert str(g.value(service, DCTERMS.title)).startswith("上海市城镇职工基本养老保险参保人员信息")


@pytest.mark.parametrize(
    ("cycle", "code"),
    [
        ("实时", "UPDATE_CONT"),
        ("每日", "DAILY"),
        ("每周", "WEEKLY"),
        ("每月", "MONTHLY"),
        ("每季度", "QUARTERLY"),
        ("半年", "ANNUAL_2"),
        ("每年", "ANNUAL"),
        ("其他", "OTHER"),
    ],
)
def test_every_update_cycle_maps_to_the_eu_frequencies(tmp_path: Path, cycle: str, code: str) -> None:
    store = CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")
    store.register(
        make_spec("cycle_x", "109010001/000001", ["样例", "周期"], **{"catalog.update_cycle": cycle}), source=""
    )
    publish(store, "cycle_x")
    g = dcat.graph(store, BASE)
    assert str(g.value(ds("cycle_x"), DCTERMS.accrualPeriodicity)) == EU + "frequency/" + code
    assert set(dcat.FREQUENCIES) == set(UpdateCycle)
    assert violations(g, shapes_graph()) == []


@pytest.mark.parametrize(
    ("sharing", "opening", "right", "distributions"),
    [
        ({"type": "无条件共享"}, {"open": True}, "PUBLIC", 1),
        ({"type": "无条件共享"}, {"open": True, "condition": "实名注册后下载"}, "RESTRICTED", 1),
        ({"type": "无条件共享"}, {"open": False}, "RESTRICTED", 1),
        ({"type": "有条件共享", "condition": "限于法定职责"}, {"open": False}, "RESTRICTED", 1),
        ({"type": "授权共享", "condition": "限于法定职责"}, {"open": False}, "RESTRICTED", 1),
        ({"type": "不予共享", "condition": "《样例条例》第十条"}, {"open": False}, "NON_PUBLIC", 0),
    ],
)
def test_share_types_map_to_eu_access_rights(
    tmp_path: Path, sharing: dict[str, str], opening: dict[str, Any], right: str, distributions: int
) -> None:
    store = CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")
    spec = make_spec(
        "share_x",
        "109010001/000001",
        ["样例", "共享"],
        **{"catalog.sharing": {**sharing, "method": "接口"}, "catalog.open": opening},
    )
    store.register(spec, source="")
    publish(store, "share_x")
    g = dcat.graph(store, BASE)
    assert str(g.value(ds("share_x"), DCTERMS.accessRights)) == EU + "access-right/" + right
    assert len(list(g.objects(ds("share_x"), DCAT.distribution))) == distributions
    assert len(list(g.subjects(RDF.type, DCAT.DataService))) == distributions
    text = str(g.value(g.value(ds("share_x"), DCTERMS.rights), DCTERMS.description))
    if right == "NON_PUBLIC":
        assert "不予共享依据：《样例条例》第十条" in text
    assert ("向社会开放" in text) and (("不向社会开放" in text) != bool(opening["open"]))
    assert violations(g, shapes_graph()) == []


def test_related_and_upstream_resources_link_datasets_in_the_feed(tmp_path: Path) -> None:
    store = CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")
    store.register(make_spec("ref_a", "109010001/000001", ["样例", "关联", "甲"]), source="")
    store.register(make_spec("ref_hidden", "109010002/000002", ["样例", "关联", "隐"]), source="")
    store.register(
        make_spec(
            "ref_b",
            "109010003/000003",
            ["样例", "关联", "乙"],
            **{
                "catalog.related_resources": [
                    "109010001/000001",
                    "109010002/000002",
                    "109999999/000009",
                    "109010003/000003",
                ]
            },
        ),
        source="",
    )
    publish(store, "ref_a")
    publish(store, "ref_b", upstream=["109010001/000001", "109010002/000002"])
    g = dcat.graph(store, BASE)
    # Only the published entry is linked; the draft, an unknown code and the entry itself are not.
    assert set(g.objects(ds("ref_b"), DCTERMS.relation)) == {ds("ref_a")}
    assert set(g.objects(ds("ref_a"), DCTERMS.isReferencedBy)) == {ds("ref_b")}
    assert set(g.objects(ds("ref_b"), DCTERMS.source)) == {ds("ref_a")}
    assert not any(ds("ref_hidden") in t for t in g)
    assert violations(g, shapes_graph()) == []
    everything = dcat.graph(store, BASE, OPERATOR)
    assert set(everything.objects(ds("ref_b"), DCTERMS.relation)) == {ds("ref_a"), ds("ref_hidden")}


# --- who sees what ---------------------------------------------------------------------------------


def test_unpublished_entries_are_not_in_the_public_feed(demo: CatalogStore) -> None:
    dept = uscc(7)
    draft = make_spec(
        "secret_draft",
        "109020001/000001",
        ["未发布", "草稿细目"],
        **{"department.uscc": dept, "name": "未发布的草稿资源"},
    )
    demo.register(draft, source="")
    set_entry(demo, "transport_bus_stops", status="withdrawn")

    for fmt in ("turtle", "json-ld"):
        text = dcat.render(demo, fmt, BASE)  # anonymous by default
        for hidden in (
            "secret_draft",
            "未发布的草稿资源",
            "草稿细目",
            "109020001",
            dept,
            "transport_bus_stops",
            "公交站点",
        ):
            assert hidden not in text, f"{hidden!r} leaked into the anonymous {fmt} feed"
        g = parsed(text, fmt)
        assert set(g.subjects(RDF.type, DCAT.Dataset)) == {ds("hrss_insured_persons"), ds("market_enterprise_registry")}
        assert shacl_results(g, shapes_graph()) == []
    assert dcat.render(demo, "turtle", BASE) == dcat.render(demo, "turtle", BASE, ANONYMOUS)

    own = dcat.graph(demo, BASE, Viewer(user="u1", role=Role.STAFF, department=dept))
    assert set(own.subjects(RDF.type, DCAT.Dataset)) == {
        ds("hrss_insured_persons"),
        ds("market_enterprise_registry"),
        ds("secret_draft"),
    }
    other = dcat.graph(demo, BASE, Viewer(user="u2", role=Role.DEPT_ADMIN, department=uscc(8)))
    assert ds("secret_draft") not in set(other.subjects(RDF.type, DCAT.Dataset))
    admin = dcat.graph(demo, BASE, Viewer(user="a", role=Role.CITY_ADMIN))
    assert len(set(admin.subjects(RDF.type, DCAT.Dataset))) == 4
    # The draft has no version and no 发布日期: no dct:issued, no dct:modified, still conformant.
    assert admin.value(ds("secret_draft"), DCTERMS.issued) is None
    assert violations(admin, shapes_graph()) == []


# --- text -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["turtle", "json-ld"])
def test_chinese_literals_survive_both_formats(demo: CatalogStore, fmt: str) -> None:
    text = dcat.render(demo, fmt, BASE)
    assert "上海市市场监督管理局" in text, "Chinese must be written as UTF-8 text, not escaped"
    g = parsed(text, fmt)
    for path in DEMO_SPECS:
        spec = load_spec(path)
        assert g.value(ds(spec.id), DCTERMS.title) == Literal(spec.name, lang="zh")
        assert g.value(ds(spec.id), DCTERMS.description) == Literal(spec.catalog.abstract, lang="zh")
        assert {str(k) for k in g.objects(ds(spec.id), DCAT.keyword)} == {c.title for c in spec.columns}
        agent = g.value(ds(spec.id), DCTERMS.publisher)
        assert g.value(agent, FOAF.name) == Literal(spec.department.name, lang="zh")


HOSTILE = [
    "say \"hi\" and 'bye'",
    'triple """ quotes """" and \\"escaped\\" \\',
    "line one\nline two\r\nline three\ttabbed",
    "<script>alert(1)</script> & <http://evil> > .",
    "@prefix x: <http://x/> . } ] ) ; , #comment",
    "emoji 😀🏛️ and non-BMP 𠀀𡈽𪚥 (rare surnames)",
    "control \x01\x08\x0b\x0c\x1f\x7f characters",
    '{"@context": "http://evil/", "@id": "x"}',
]


@pytest.mark.parametrize("fmt", ["turtle", "json-ld"])
def test_hostile_text_yields_valid_feeds(tmp_path: Path, fmt: str) -> None:
    store = CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")
    long_abstract = ("很长的摘要，含“引号”与\n换行。" * 8000) + "结束😀"
    for i, hostile in enumerate(HOSTILE):
        spec = make_spec(
            f"hostile_{i}",
            f"109{100 + i:03d}/{i:06d}",
            ["恶意", f"细目{hostile}"],
            **{
                "name": f"名称 {hostile}",
                "department.name": f"部门 {hostile}",
                "department.uscc": uscc(100 + i),
                "catalog.abstract": long_abstract if i == 0 else f"摘要 {hostile}",
                "catalog.sharing": {"type": "有条件共享", "condition": f"条件 {hostile}", "method": "接口"},
                "catalog.sharing.method_type": f"类型 {hostile}",
                "columns": [
                    {"name": "code", "title": f"信息项 {hostile}", "primary_key": True},
                    {"name": "other", "title": "  "},
                ],
            },
        )
        store.register(spec, source="")
        publish(store, spec.id)
    text = dcat.render(store, fmt, BASE)
    g = parsed(text, fmt)
    assert set(g) == set(dcat.graph(store, BASE))
    for i, hostile in enumerate(HOSTILE):
        d = ds(f"hostile_{i}")
        assert g.value(d, DCTERMS.title) == Literal(f"名称 {hostile}", lang="zh")
        assert {str(k) for k in g.objects(d, DCAT.keyword)} == {f"信息项 {hostile}"}  # the blank title is left out
        assert g.value(g.value(d, DCTERMS.publisher), FOAF.name) == Literal(f"部门 {hostile}", lang="zh")
        assert g.value(g.value(d, DCAT.theme), SKOS.prefLabel) == Literal(f"细目{hostile}", lang="zh")
    assert g.value(ds("hostile_0"), DCTERMS.description) == Literal(long_abstract, lang="zh")
    assert shacl_results(g, shapes_graph()) == []


def test_odd_dataset_ids_are_percent_encoded(tmp_path: Path) -> None:
    """Entries imported from a spreadsheet may have ids the spec pattern would refuse."""
    store = CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")
    store.register(make_spec("plain", "109040001/000001", ["样例", "编码"]), source="")
    publish(store, "plain")
    odd = 'a b/"c"<d>#?%'
    with store.session() as s:
        plain = s.get(Entry, "plain")
        assert plain is not None
        columns = [c.key for c in Entry.__table__.columns if c.key not in ("id", "resource_code")]  # type: ignore[attr-defined]
        s.add(Entry(id=odd, resource_code="109040001/000002", **{c: getattr(plain, c) for c in columns}))
    for fmt in ("turtle", "json-ld"):
        g = parsed(dcat.render(store, fmt, BASE), fmt)
        found = {str(d) for d in g.subjects(RDF.type, DCAT.Dataset)}
        assert found == {str(ds("plain")), f"{BASE}/catalog/datasets/a%20b%2F%22c%22%3Cd%3E%23%3F%25"}
        assert f"{BASE}/api/3/action/package_show?id=a%20b%2F%22c%22%3Cd%3E%23%3F%25" in {
            str(u) for u in g.objects(None, DCAT.accessURL)
        }
        assert shacl_results(g, shapes_graph()) == []


# --- bad arguments and bad stored values -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["ttl", "TURTLE", " jsonld ", "JSON-LD", "text/turtle", "application/ld+json"])
def test_format_aliases(demo: CatalogStore, fmt: str) -> None:
    text = dcat.render(demo, fmt, BASE + "/")
    kind = "json-ld" if "j" in fmt.lower() else "turtle"
    assert text == dcat.render(demo, kind, BASE)


@pytest.mark.parametrize("fmt", ["xml", "rdf", "", "n3", "turtle; drop table"])
def test_an_unknown_format_names_the_valid_ones(demo: CatalogStore, fmt: str) -> None:
    with pytest.raises(GovdataError) as err:
        dcat.render(demo, fmt, BASE)
    assert repr(fmt) in str(err.value)
    assert "turtle" in str(err.value) and "json-ld" in str(err.value)


@pytest.mark.parametrize(
    "base",
    ["", "data.example.gov.cn", "ftp://data.example.gov.cn", "https://", "https://x.cn/a b", "https://x.cn/<x>",
     'https://x.cn/"', "https://x.cn/?q=1", "https://x.cn/#top", "javascript:alert(1)"],
)  # fmt: skip
def test_a_bad_base_url_is_refused(demo: CatalogStore, base: str) -> None:
    with pytest.raises(GovdataError, match="base URL") as err:
        dcat.render(demo, "turtle", base)
    assert err.value.hint and "https://" in err.value.hint


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("update_cycle", "每两周", "update_cycle (更新周期)"),
        ("share_method", "FTP", "share_method (共享方式)"),
        ("share_type", "看情况", "share_type (共享类型)"),
        ("resource_code", "12-34", "resource_code (信息资源代码)"),
    ],
)
def test_a_stored_value_without_a_mapping_names_entry_and_field(
    demo: CatalogStore, field: str, value: str, named: str
) -> None:
    set_entry(demo, "transport_bus_stops", **{field: value})
    with pytest.raises(GovdataError) as err:
        dcat.render(demo, "turtle", BASE)
    assert "'transport_bus_stops'" in str(err.value) and named in str(err.value) and value in str(err.value)
    assert err.value.hint


def test_a_stored_shanghai_share_type_alias_is_understood(demo: CatalogStore) -> None:
    set_entry(demo, "transport_bus_stops", share_type="非共享", share_condition="依法不予共享")
    g = dcat.graph(demo, BASE)
    assert str(g.value(ds("transport_bus_stops"), DCTERMS.accessRights)) == EU + "access-right/NON_PUBLIC"
    assert g.value(g.value(ds("transport_bus_stops"), DCTERMS.rights), SKOS.prefLabel) == Literal("不予共享", lang="zh")


# --- golden files and determinism ------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "name"), [("turtle", "demo_catalog.ttl"), ("json-ld", "demo_catalog.jsonld")])
def test_golden_demo_catalog(demo: CatalogStore, fmt: str, name: str) -> None:
    text = dcat.render(demo, fmt, BASE)
    golden = GOLDEN / name
    if os.environ.get("GOVDATA_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8", newline="\n")
    assert golden.is_file(), f"{golden} is missing: run with GOVDATA_UPDATE_GOLDEN=1 to write it"
    assert text == golden.read_text(encoding="utf-8"), (
        f"the {fmt} feed of the demo catalog differs from {golden.name}; if the change is intended, "
        "regenerate it with GOVDATA_UPDATE_GOLDEN=1 and review the diff"
    )
    if fmt == "json-ld":
        json.loads(text)


def test_the_feed_does_not_depend_on_the_order_of_registration(demo: CatalogStore, tmp_path: Path) -> None:
    store = CatalogStore(f"sqlite:///{tmp_path / 'other.db'}")
    for path in reversed(DEMO_SPECS):
        spec = load_spec(path)
        store.register(spec, source="elsewhere")
        publish(store, spec.id)
    publish(store, "market_enterprise_registry", number=2)
    for fmt in ("turtle", "json-ld"):
        assert dcat.render(store, fmt, BASE) == dcat.render(demo, fmt, BASE)


@pytest.mark.integration
def test_the_demo_feed_from_postgresql_matches_the_golden_file(postgres_url: str) -> None:
    """PostgreSQL hands back time-zone-aware times where SQLite does not: the feed is the same."""
    schema = f"govdata_dcat_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as con:
        con.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        store = demo_store(f"{postgres_url}?options=-csearch_path%3D{schema}")
        assert store.engine.dialect.name == "postgresql"
        assert dcat.render(store, "turtle", BASE) == (GOLDEN / "demo_catalog.ttl").read_text(encoding="utf-8")
        store.engine.dispose()
    finally:
        with admin.begin() as con:
            con.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
