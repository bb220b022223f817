"""The catalog as a DCAT-AP 3 feed (Turtle or JSON-LD) for the entries a viewer may see.

One ``dcat:Catalog`` published by the city platform; per visible entry one ``dcat:Dataset`` with
its department as a ``foaf:Agent`` (USCC as ``dct:identifier``), its classification as a
``dcat:theme`` from a SKOS concept scheme of the three axes, and one ``dcat:Distribution`` for
its 共享方式 (plus a ``dcat:DataService`` for 接口). Codes map to the EU vocabularies
(``http://publications.europa.eu/resource/authority/…``):

- 更新周期 → ``dct:accrualPeriodicity`` (``frequency/``): 实时 UPDATE_CONT ("continuously
  updated"), 每日 DAILY, 每周 WEEKLY, 每月 MONTHLY, 每季度 QUARTERLY, 半年 ANNUAL_2, 每年 ANNUAL,
  其他 OTHER.
- 共享类型 → ``dct:accessRights`` (``access-right/``): 不予共享 NON_PUBLIC; open to the public
  (开放属性) without an 开放条件 PUBLIC; everything else RESTRICTED, 无条件共享 included: it is
  shared with departments after the platform's check, which is not open data.
- the file delivery → ``dct:format`` ``file-type/PARQUET`` (what the exchange store holds).

The Chinese share type, its condition or legal basis and the 开放属性 stay in a
``dct:RightsStatement`` (``dct:rights`` of the dataset and of each distribution). 不予共享
entries cannot be requested, so they have no distribution. Related resources (关联资源代码)
and the latest version's upstream resources become ``dct:relation`` / ``dct:isReferencedBy``
and ``dct:source`` only when the other entry is in the same feed: a link to an entry the viewer
may not see would reveal it. The EU concepts carry their ``rdf:type`` and ``skos:inScheme`` so
the SHACL range and vocabulary shapes can check them without loading the EU tables.

Addresses, all under ``base_url``: ``/catalog`` (the catalog), ``/catalog/datasets/{id}``
(with ``/rights``, ``/distributions/{database|file|api}``, ``/service``),
``/catalog/departments/{USCC}``, ``/catalog/publisher``, ``/catalog/classification[/{code}]``.
Every distribution's ``dcat:accessURL`` is the entry's CKAN ``package_show``
(``/api/3/action/package_show?id={id}``: its share type and conditions, and how to subscribe);
a DataService's ``dcat:endpointURL`` is ``/exchange/api/{id}``.

The output is deterministic (no blank nodes, sorted, no wall-clock time): the dates are the
entries' 发布日期, their versions' publication times and their status changes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, FOAF, RDF, SKOS, XSD
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from catalog.access import ANONYMOUS, Viewer, visibility_filter
from catalog.classification import ResourceCodeError, parse_resource_code
from catalog.models import ClassificationNode, Entry, Version
from catalog.store import CatalogStore
from pipelines.errors import TerminalError
from pipelines.spec import SHARE_TYPE_ALIASES, ShareMethod, ShareType, UpdateCycle

__all__ = [
    "FORMATS",
    "FREQUENCIES",
    "access_right",
    "dataset_iri",
    "graph",
    "render",
]

LANG = "zh"
CATALOG_TITLE = "政务数据资源目录"
CATALOG_DESCRIPTION = "市级共享交换平台登记并发布的各部门政务数据资源：13 项核心元数据、共享属性、更新周期和共享方式。"
PLATFORM_NAME = "市级共享交换平台"
SCHEME_TITLE = "政务信息资源分类"

EU = "http://publications.europa.eu/resource/authority/"
FREQUENCY = Namespace(EU + "frequency/")
ACCESS_RIGHT = Namespace(EU + "access-right/")
FILE_TYPE = Namespace(EU + "file-type/")
LANGUAGE = Namespace(EU + "language/")
IANA = Namespace("https://www.iana.org/assignments/media-types/")
#: DCAT 3 (rdflib's closed ``DCAT`` namespace is DCAT 2 and lacks ``dcat:version``).
DCAT = Namespace("http://www.w3.org/ns/dcat#")

#: 更新周期 → EU frequency. 实时 is "continuously updated" (UPDATE_CONT); CONT ("continuous")
#: is the other candidate in the table; both are in the EU frequency scheme.
FREQUENCIES: dict[UpdateCycle, URIRef] = {
    UpdateCycle.REALTIME: FREQUENCY.UPDATE_CONT,
    UpdateCycle.DAILY: FREQUENCY.DAILY,
    UpdateCycle.WEEKLY: FREQUENCY.WEEKLY,
    UpdateCycle.MONTHLY: FREQUENCY.MONTHLY,
    UpdateCycle.QUARTERLY: FREQUENCY.QUARTERLY,
    UpdateCycle.HALF_YEARLY: FREQUENCY.ANNUAL_2,
    UpdateCycle.YEARLY: FREQUENCY.ANNUAL,
    UpdateCycle.OTHER: FREQUENCY.OTHER,
}

#: 共享方式 → (path segment of the distribution, its title as DOMAIN.md names the delivery).
METHODS: dict[ShareMethod, tuple[str, str]] = {
    ShareMethod.DATABASE: ("database", "库表交换"),
    ShareMethod.FILE: ("file", "文件交换"),
    ShareMethod.API: ("api", "接口服务"),
}

#: What a file delivery hands over: the exchange store's versioned Parquet (EU file type, IANA media type).
FORMATS: dict[ShareMethod, tuple[URIRef, URIRef]] = {
    ShareMethod.FILE: (FILE_TYPE.PARQUET, IANA["application/vnd.apache.parquet"]),
}

#: Accepted names of the two output formats (the media types too, for content negotiation).
_FORMATS = {
    "turtle": "turtle",
    "ttl": "turtle",
    "text/turtle": "turtle",
    "json-ld": "json-ld",
    "jsonld": "json-ld",
    "application/ld+json": "json-ld",
}

#: Prefixes of the output (Turtle and the JSON-LD context).
PREFIXES: dict[str, str] = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "rdf": str(RDF),
    "skos": str(SKOS),
    "xsd": str(XSD),
}

# Characters Turtle does not allow in an IRI (besides controls and space).
_IRI_FORBIDDEN = re.compile(r'[\x00-\x20<>"{}|^`\\\x7f]')


def graph(store: CatalogStore, base_url: str, viewer: Viewer = ANONYMOUS) -> Graph:
    """The DCAT-AP 3 graph of the entries ``viewer`` may see (anonymous: published entries only)."""
    base = _base(base_url)
    g = Graph(bind_namespaces="none")
    for prefix, ns in PREFIXES.items():
        g.bind(prefix, ns)
    with store.session() as s:
        entries = list(
            s.scalars(
                select(Entry)
                .where(visibility_filter(viewer))
                .options(selectinload(Entry.items), selectinload(Entry.versions), selectinload(Entry.department))
                .order_by(Entry.id)
            )
        )
        nodes = {n.code: n for n in s.scalars(select(ClassificationNode))}
        _Builder(g, base, entries, nodes).build()
    return g


def render(store: CatalogStore, fmt: str, base_url: str, viewer: Viewer = ANONYMOUS) -> str:
    """The feed as text: ``fmt`` is ``turtle`` (``ttl``) or ``json-ld`` (``jsonld``)."""
    kind = _FORMATS.get(str(fmt).strip().lower())
    if kind is None:
        raise TerminalError(
            f"unknown DCAT feed format {fmt!r}",
            hint="use one of: turtle (or ttl), json-ld (or jsonld)",
        )
    g = graph(store, base_url, viewer)
    if kind == "turtle":
        return g.serialize(format="turtle", encoding="utf-8").decode("utf-8")
    return _json_ld(g)


def dataset_iri(base_url: str, dataset: str) -> URIRef:
    """The IRI of an entry's ``dcat:Dataset`` in the feed."""
    return _dataset_iri(_base(base_url), dataset)


def _dataset_iri(base: str, dataset: str) -> URIRef:
    return URIRef(f"{base}/catalog/datasets/{_seg(dataset)}")


def access_right(share_type: str, open_to_public: bool, open_condition: str | None) -> URIRef:
    """The EU access right of a share type and the 开放属性 (see the module docstring)."""
    kind = SHARE_TYPE_ALIASES.get(share_type)
    if kind is None:
        raise ValueError(share_type)
    if kind is ShareType.NOT_SHARED:
        return ACCESS_RIGHT.NON_PUBLIC
    if open_to_public and not (open_condition or "").strip():
        return ACCESS_RIGHT.PUBLIC
    return ACCESS_RIGHT.RESTRICTED


# --- building ----------------------------------------------------------------------------------


class _Builder:
    """Adds the catalog, its datasets, agents, distributions, services and concepts to one graph."""

    def __init__(self, g: Graph, base: str, entries: list[Entry], nodes: dict[str, ClassificationNode]) -> None:
        self.g = g
        self.base = base
        self.entries = entries
        self.nodes = nodes
        self.catalog = URIRef(f"{base}/catalog")
        self.scheme = URIRef(f"{base}/catalog/classification")
        self.by_code = {e.resource_code: e for e in entries}
        self.concepts: set[str] = set()

    def build(self) -> None:
        g, cat = self.g, self.catalog
        platform = URIRef(f"{self.base}/catalog/publisher")
        g.add((cat, RDF.type, DCAT.Catalog))
        g.add((cat, DCTERMS.title, Literal(CATALOG_TITLE, lang=LANG)))
        g.add((cat, DCTERMS.description, Literal(CATALOG_DESCRIPTION, lang=LANG)))
        g.add((cat, DCTERMS.publisher, platform))
        g.add((platform, RDF.type, FOAF.Agent))
        g.add((platform, FOAF.name, Literal(PLATFORM_NAME, lang=LANG)))
        g.add((cat, DCTERMS.language, LANGUAGE.ZHO))
        g.add((LANGUAGE.ZHO, RDF.type, DCTERMS.LinguisticSystem))
        g.add((LANGUAGE.ZHO, SKOS.inScheme, URIRef(EU + "language")))
        issued = [e.publish_date for e in self.entries if e.publish_date is not None]
        if issued:
            g.add((cat, DCTERMS.issued, Literal(min(issued).isoformat(), datatype=XSD.date)))
        changed = [t for e in self.entries for t in (_latest_time(e), e.status_changed_at) if t is not None]
        if changed:
            g.add((cat, DCTERMS.modified, _datetime(max(_utc(t) for t in changed))))
        for entry in self.entries:
            self.dataset(entry)
        if self.concepts:
            g.add((cat, DCAT.themeTaxonomy, self.scheme))
            g.add((self.scheme, RDF.type, SKOS.ConceptScheme))
            g.add((self.scheme, DCTERMS.title, Literal(SCHEME_TITLE, lang=LANG)))
            for code in sorted(self.concepts):
                self.concept(self.nodes[code])

    def dataset(self, e: Entry) -> None:
        g = self.g
        ds = _dataset_iri(self.base, e.id)
        cycle = _enum(UpdateCycle, e.update_cycle, e, "update_cycle (更新周期)")
        method = _enum(ShareMethod, e.share_method, e, "share_method (共享方式)")
        try:
            rights_kind = access_right(e.share_type, e.open_to_public, e.open_condition)
        except ValueError:
            raise _bad(e, "share_type (共享类型)", e.share_type, ShareType) from None
        g.add((self.catalog, DCAT.dataset, ds))
        g.add((ds, RDF.type, DCAT.Dataset))
        g.add((ds, DCTERMS.identifier, Literal(e.resource_code)))
        g.add((ds, DCTERMS.title, Literal(e.name, lang=LANG)))
        g.add((ds, DCTERMS.description, Literal(e.abstract or "", lang=LANG)))
        agent = self.department(e)
        g.add((ds, DCTERMS.publisher, agent))
        g.add((ds, DCTERMS.accrualPeriodicity, FREQUENCIES[cycle]))
        g.add((FREQUENCIES[cycle], RDF.type, DCTERMS.Frequency))
        g.add((FREQUENCIES[cycle], SKOS.inScheme, URIRef(EU + "frequency")))
        g.add((ds, DCTERMS.accessRights, rights_kind))
        g.add((rights_kind, RDF.type, DCTERMS.RightsStatement))
        g.add((rights_kind, SKOS.inScheme, URIRef(EU + "access-right")))
        rights = URIRef(f"{ds}/rights")
        self.rights(rights, e)
        g.add((ds, DCTERMS.rights, rights))
        if e.publish_date is not None:
            g.add((ds, DCTERMS.issued, Literal(e.publish_date.isoformat(), datatype=XSD.date)))
        latest = max(e.versions, key=lambda v: v.number) if e.versions else None
        if latest is not None:
            g.add((ds, DCTERMS.modified, _datetime(_utc(latest.published_at))))
            g.add((ds, DCAT.version, Literal(str(latest.number))))
            for other in self._resolve(latest.upstream or [], e):
                g.add((ds, DCTERMS.source, other))
        for item in e.items:
            if item.title.strip():
                g.add((ds, DCAT.keyword, Literal(item.title.strip(), lang=LANG)))
        for other in self._resolve(e.related_resources or [], e):
            g.add((ds, DCTERMS.relation, other))
            g.add((other, DCTERMS.isReferencedBy, ds))
        theme = self.theme(e)
        if theme is not None:
            g.add((ds, DCAT.theme, theme))
        if rights_kind != ACCESS_RIGHT.NON_PUBLIC:
            self.distribution(ds, e, method, agent, rights, rights_kind)

    def department(self, e: Entry) -> URIRef:
        g = self.g
        agent = URIRef(f"{self.base}/catalog/departments/{_seg(e.department_uscc)}")
        g.add((agent, RDF.type, FOAF.Agent))
        g.add((agent, RDF.type, FOAF.Organization))
        g.add((agent, FOAF.name, Literal(e.department.name, lang=LANG)))
        g.add((agent, DCTERMS.identifier, Literal(e.department_uscc)))
        return agent

    def rights(self, node: URIRef, e: Entry) -> None:
        g = self.g
        share = SHARE_TYPE_ALIASES[e.share_type]
        g.add((node, RDF.type, DCTERMS.RightsStatement))
        g.add((node, SKOS.prefLabel, Literal(share.value, lang=LANG)))
        parts = [share.value]
        condition = (e.share_condition or "").strip().rstrip("。；;. ")
        if condition:
            parts.append(f"{'不予共享依据' if share is ShareType.NOT_SHARED else '共享条件'}：{condition}")
        opening = (e.open_condition or "").strip().rstrip("。；;. ")
        if e.open_to_public:
            parts.append(f"向社会开放，开放条件：{opening}" if opening else "向社会开放")
        else:
            parts.append("不向社会开放")
        g.add((node, DCTERMS.description, Literal("；".join(parts) + "。", lang=LANG)))

    def distribution(
        self, ds: URIRef, e: Entry, method: ShareMethod, agent: URIRef, rights: URIRef, kind: URIRef
    ) -> None:
        g = self.g
        slug, title = METHODS[method]
        dist = URIRef(f"{ds}/distributions/{slug}")
        access = URIRef(f"{self.base}/api/3/action/package_show?id={_seg(e.id)}")
        g.add((ds, DCAT.distribution, dist))
        g.add((dist, RDF.type, DCAT.Distribution))
        g.add((dist, DCTERMS.title, Literal(title, lang=LANG)))
        method_type = (e.share_method_type or "").strip()
        if method_type:
            g.add((dist, DCTERMS.description, Literal(f"共享方式类型：{method_type}", lang=LANG)))
        g.add((dist, DCAT.accessURL, access))
        g.add((dist, DCTERMS.rights, rights))
        if method in FORMATS:
            file_type, media_type = FORMATS[method]
            g.add((dist, DCTERMS.format, file_type))
            g.add((file_type, RDF.type, DCTERMS.MediaTypeOrExtent))
            g.add((file_type, SKOS.inScheme, URIRef(EU + "file-type")))
            g.add((dist, DCAT.mediaType, media_type))
            g.add((media_type, RDF.type, DCTERMS.MediaType))
        if method is ShareMethod.API:
            service = URIRef(f"{ds}/service")
            g.add((self.catalog, DCAT.service, service))
            g.add((dist, DCAT.accessService, service))
            g.add((service, RDF.type, DCAT.DataService))
            g.add((service, DCTERMS.title, Literal(f"{e.name}（{title}）", lang=LANG)))
            g.add((service, DCAT.endpointURL, URIRef(f"{self.base}/exchange/api/{_seg(e.id)}")))
            g.add((service, DCAT.servesDataset, ds))
            g.add((service, DCTERMS.publisher, agent))
            g.add((service, DCTERMS.accessRights, kind))

    def theme(self, e: Entry) -> URIRef | None:
        """The entry's most specific classification node known to the tree (its ancestors join the scheme)."""
        try:
            prefixes = parse_resource_code(e.resource_code).prefixes()
        except ResourceCodeError as exc:
            raise TerminalError(
                f"catalog entry {e.id!r}: resource_code (信息资源代码): {exc}",
                hint=f"correct the entry's resource code (`govdata catalog show {e.id}`), then export again",
            ) from None
        known = [p for p in prefixes if p in self.nodes]
        if not known:
            return None
        self.concepts.update(known)
        return self._concept_iri(known[-1])

    def concept(self, node: ClassificationNode) -> None:
        g, c = self.g, self._concept_iri(node.code)
        g.add((c, RDF.type, SKOS.Concept))
        g.add((c, SKOS.prefLabel, Literal(node.name, lang=LANG)))
        g.add((c, SKOS.notation, Literal(node.code)))
        g.add((c, SKOS.inScheme, self.scheme))
        if node.parent_code is None:
            g.add((c, SKOS.topConceptOf, self.scheme))
            g.add((self.scheme, SKOS.hasTopConcept, c))
        else:
            g.add((c, SKOS.broader, self._concept_iri(node.parent_code)))

    def _concept_iri(self, code: str) -> URIRef:
        return URIRef(f"{self.scheme}/{_seg(code)}")

    def _resolve(self, codes: Iterable[Any], e: Entry) -> list[URIRef]:
        found = {self.by_code[str(c)].id for c in codes if str(c) in self.by_code} - {e.id}
        return [_dataset_iri(self.base, i) for i in sorted(found)]


# --- helpers -----------------------------------------------------------------------------------


def _base(base_url: str) -> str:
    text = str(base_url).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise TerminalError(
            f"base URL {base_url!r} is not an http(s) URL without query or fragment",
            hint="give the address the platform is reached at, e.g. https://data.example.gov.cn",
        )
    if _IRI_FORBIDDEN.search(text):
        raise TerminalError(
            f"base URL {base_url!r} contains a character an IRI may not hold (space, quote, <, >, …)",
            hint="percent-encode it or give the plain address, e.g. https://data.example.gov.cn",
        )
    return text


def _seg(value: str) -> str:
    """One path segment: everything but unreserved characters percent-encoded."""
    return quote(str(value), safe="")


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive values for timezone-aware columns: they were written in UTC.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _datetime(value: dt.datetime) -> Literal:
    return Literal(value.replace(microsecond=0).isoformat(), datatype=XSD.dateTime)


def _latest_time(e: Entry) -> dt.datetime | None:
    versions: list[Version] = list(e.versions)
    return max(versions, key=lambda v: v.number).published_at if versions else None


def _enum(kind: Any, value: str, e: Entry, field: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise _bad(e, field, value, kind) from None


def _bad(e: Entry, field: str, value: object, kind: Any) -> TerminalError:
    valid = ", ".join(m.value for m in kind)
    return TerminalError(
        f"catalog entry {e.id!r}: {field} is {value!r}, which has no DCAT-AP mapping",
        hint=f"set it to one of {valid} (re-register the spec or re-import the spreadsheet), then export again",
    )


def _json_ld(g: Graph) -> str:
    """JSON-LD with the prefixes as context, nodes sorted by ``@id`` and values sorted: the same graph, the same text."""
    raw = json.loads(g.serialize(format="json-ld", context=dict(PREFIXES), auto_compact=True))
    nodes = raw.get("@graph", [raw]) if isinstance(raw, dict) else raw
    body = [{k: v for k, v in n.items() if k != "@context"} for n in nodes]
    for node in body:
        for key, value in node.items():
            if isinstance(value, list):
                node[key] = sorted(value, key=lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False))
    body.sort(key=lambda n: str(n.get("@id", "")))
    doc = {"@context": dict(PREFIXES), "@graph": body}
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
