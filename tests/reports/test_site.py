"""The reports site after ``govdata demo``: every run in the Data Docs, offline, masked, deterministic, incremental."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
import shutil
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from pipelines import runner, site
from pipelines.spec import find_specs, load_spec
from tests.reports.conftest import DATES, Demo

REPO = Path(__file__).resolve().parents[2]
DATASETS = ("hrss_insured_persons", "market_enterprise_registry", "transport_bus_stops")
URL = re.compile(r"https?://[^\s\"'<>()\\`]*")
XMLNS = "http://www.w3.org/"
#: License banners (/*! … */, /** … */, or the comment a file starts with) may name their project's web site.
BANNER = re.compile(r"/\*[!*].*?\*/", re.DOTALL)
LEADING_COMMENT = re.compile(r"\s*/\*.*?\*/", re.DOTALL)


def files(root: Path, *suffixes: str) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in suffixes and ".state" not in p.parts)


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".state" not in p.parts
    }


def run_page(site_root: Path, dataset: str, date: str) -> Path:
    pages = sorted((site_root / "datadocs" / "validations" / dataset / date).glob("*/*.html"))
    assert len(pages) == 1, pages
    return pages[0]


class Links(HTMLParser):
    """Every src/href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def inert_urls() -> dict[str, set[str]]:
    manifest = json.loads((site.VENDOR / "manifest.json").read_text(encoding="utf-8"))
    inert: dict[str, set[str]] = {}
    for package in manifest["packages"]:
        for target, urls in package["inert_urls"].items():
            inert.setdefault(target, set()).update(urls)
    return inert


def external_references(path: Path, inert: set[str]) -> list[str]:
    """http(s) references of a file that a browser could follow: not a namespace, a license banner or a listed inert one."""
    text = path.read_text(encoding="utf-8", errors="replace")
    banners = []
    if path.suffix in (".css", ".js"):
        banners = [m.span() for m in BANNER.finditer(text)]
        leading = LEADING_COMMENT.match(text)
        banners += [leading.span()] if leading else []
    found = []
    for match in URL.finditer(text):
        url = match.group(0)
        if url.startswith(XMLNS) or url in inert:
            continue
        if any(start <= match.start() < end for start, end in banners):
            continue
        found.append(f"{path}: {url}")
    return found


# --- what the demo built -----------------------------------------------------------------------


def test_the_demo_builds_the_site_and_says_where(demo: Demo) -> None:
    index = demo.site / "index.html"
    for output in demo.outputs:
        assert "reports site" in output
        assert str(index) in output.replace("\n", "")
    assert index.is_file()
    assert (demo.site / "datadocs" / "index.html").is_file()
    for dataset in DATASETS:
        assert (demo.site / "datasets" / f"{dataset}.html").is_file()
    departments = sorted(p.stem for p in (demo.site / "departments").glob("*.html"))
    specs = [load_spec(p) for p in find_specs(REPO / "datasets")]
    assert departments == sorted({s.department.uscc for s in specs})


def test_the_data_docs_index_lists_every_run_of_every_dataset(demo: Demo) -> None:
    index = (demo.site / "datadocs" / "index.html").read_text(encoding="utf-8")
    linked = re.findall(r"_table_row_link_path': '(validations/[^']+)'", index)
    assert len(linked) == len(DATASETS) * len(DATES)
    for dataset in DATASETS:
        for date in DATES:
            page = run_page(demo.site, dataset, date)
            assert str(page.relative_to(demo.site / "datadocs")) in linked
    # GX's status icon of every run (the runs quarantined rows, so GX counts them as failed)
    assert index.count("fa-times text-danger") + index.count("fa-check-circle text-success") >= len(linked)


def test_every_page_is_utf8_and_shows_the_chinese_names(demo: Demo) -> None:
    for page in files(demo.site, ".html"):
        head = page.read_bytes()[:400].decode("utf-8", errors="replace")
        assert '<meta charset="UTF-8">' in head, page
    docs = run_page(demo.site, "hrss_insured_persons", DATES[-1]).read_text(encoding="utf-8")
    assert "上海市城镇职工基本养老保险参保人员信息" in docs  # 信息资源名称 in the govdata header
    assert "resident_id 公民身份号码" in docs  # the data item of the ID checks
    assert "030600 标准参照准确性" in docs  # the indicator it counts toward
    scorecard = (demo.site / "datasets" / "hrss_insured_persons.html").read_text(encoding="utf-8")
    for text in ("公民身份号码", "规范性", "validity", "数据元素完整性", "X = A/B", "X = 1-A/B"):
        assert text in scorecard


def test_scorecard_pages_hold_the_trend_and_link_each_runs_data_docs(demo: Demo) -> None:
    page = demo.site / "datasets" / "market_enterprise_registry.html"
    html = page.read_text(encoding="utf-8")
    spec = json.loads(re.search(r'data-chart="chart-overall">(.*?)</script>', html, re.DOTALL).group(1))
    assert [d["run"] for d in spec["data"]["values"]] == list(DATES)
    cards = [
        json.loads((demo.home / "reports" / "market_enterprise_registry" / d / "scorecard.json").read_text("utf-8"))
        for d in DATES
    ]
    assert [d["score"] for d in spec["data"]["values"]] == [c["score"] for c in cards]
    for date in DATES:
        target = run_page(demo.site, "market_enterprise_registry", date)
        assert urllib.parse.quote(str(target.relative_to(demo.site))) in html
    dims = json.loads(re.search(r'data-chart="chart-dimensions">(.*?)</script>', html, re.DOTALL).group(1))
    labels = {d["dimension"] for d in dims["data"]["values"]}
    assert "准确性 accuracy" in labels and "完整性 completeness" in labels
    department = (demo.site / "departments" / f"{cards[0]['department']['uscc']}.html").read_text(encoding="utf-8")
    assert "market_enterprise_registry" in department and "data-chart=" in department


def test_no_page_style_or_script_refers_to_the_network(demo: Demo) -> None:
    inert = inert_urls()
    problems = []
    for path in files(demo.site, ".html", ".css", ".js"):
        relative = path.relative_to(demo.site / "assets" / "vendor").as_posix() if "vendor" in path.parts else ""
        problems += external_references(path, inert.get(relative, set()))
        if path.suffix == ".html":
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"""(src|href)=["']//""", text), f"{path}: protocol-relative reference"
    assert problems == []


def test_every_local_reference_resolves(demo: Demo) -> None:
    missing = []
    for page in files(demo.site, ".html"):
        parser = Links()
        text = page.read_text(encoding="utf-8")
        parser.feed(text)
        links = parser.links
        if page.parent.name == "datadocs":  # the run list is data for bootstrap-table
            links += re.findall(r"_table_row_link_path': '([^']+)'", text)
        for link in links:
            if link.startswith(("#", "javascript:", "data:")):
                continue
            target = (page.parent / urllib.parse.unquote(link.split("#")[0].split("?")[0])).resolve()
            if not target.exists():
                missing.append(f"{page.relative_to(demo.site)} -> {link}")
    assert missing == []


def test_sensitive_values_never_reach_the_site(demo: Demo) -> None:
    clear: set[str] = set()
    tokens: set[str] = set()
    for path in find_specs(REPO / "datasets"):
        spec = load_spec(path)
        tokens |= set(spec.cleanse.null_tokens)
        for stage in ("landing", "staging"):
            for data in sorted((demo.home / stage / spec.id).rglob("*.parquet")):
                present = {r[0] for r in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{data}')").fetchall()}
                for column in spec.columns:
                    name = column.source_name if stage == "landing" else column.name
                    if not column.sensitive or name not in present:
                        continue
                    rows = duckdb.sql(f"SELECT DISTINCT CAST(\"{name}\" AS VARCHAR) FROM read_parquet('{data}')")
                    clear |= {str(v).strip() for (v,) in rows.fetchall() if v is not None}
    clear = {v for v in clear if len(v) >= 2 and v not in tokens}
    assert len(clear) > 500  # the scan has something to find
    leaks = [
        f"{p.relative_to(demo.site)}: {value}"
        for p in files(demo.site, ".html", ".js", ".css", ".json", ".txt")
        for value in clear
        if value in p.read_text(encoding="utf-8", errors="replace")
    ]
    assert leaks == []
    docs = run_page(demo.site, "hrss_insured_persons", DATES[-1]).read_text(encoding="utf-8")
    assert "***" in docs  # failing mobile numbers and IDs are shown, masked


# --- determinism, incremental builds, re-runs ----------------------------------------------------


def test_a_full_rebuild_gives_the_same_bytes_as_the_runs_incremental_builds(demo: Demo, demo_copy: Demo) -> None:
    built = site.build(demo_copy.home, full=True)
    assert built.runs == len(DATASETS) * len(DATES)
    assert snapshot(demo_copy.site) == snapshot(demo.site)
    site.build(demo_copy.home, full=True)
    assert snapshot(demo_copy.site) == snapshot(demo.site)


def test_a_build_renders_only_the_run_asked_for_and_missing_pages(demo_copy: Demo) -> None:
    old = run_page(demo_copy.site, "hrss_insured_persons", DATES[0])
    new = run_page(demo_copy.site, "hrss_insured_persons", DATES[-1])
    for page in (old, new):
        page.write_text("<!-- marker -->", encoding="utf-8")
    site.build(demo_copy.home, render={("hrss_insured_persons", DATES[-1])})
    assert "marker" not in new.read_text(encoding="utf-8")
    assert old.read_text(encoding="utf-8") == "<!-- marker -->"  # not rendered again
    old.unlink()
    site.build(demo_copy.home)
    assert "上海市城镇职工基本养老保险参保人员信息" in old.read_text(encoding="utf-8")  # a missing page is rendered


def test_a_rerun_of_a_run_key_replaces_its_page(demo_copy: Demo) -> None:
    before = run_page(demo_copy.site, "transport_bus_stops", DATES[-1])
    spec = next(s for s in map(load_spec, find_specs(REPO / "datasets")) if s.id == "transport_bus_stops")
    runner.run(spec, DATES[-1], home=demo_copy.home)
    after = run_page(demo_copy.site, "transport_bus_stops", DATES[-1])
    assert after != before and not before.exists()
    index = (demo_copy.site / "datadocs" / "index.html").read_text(encoding="utf-8")
    assert len(re.findall(r"_table_row_link_path': 'validations/", index)) == len(DATASETS) * len(DATES)
    assert str(after.relative_to(demo_copy.site / "datadocs")) in index


# --- hostile records ---------------------------------------------------------------------------


def test_unreadable_records_are_shown_with_the_reason_and_the_rest_is_built(demo_copy: Demo) -> None:
    reports = demo_copy.home / "reports"
    (reports / "hrss_insured_persons" / DATES[0] / "run_report.json").write_text("{not json", encoding="utf-8")
    card = reports / "transport_bus_stops" / DATES[0] / "scorecard.json"
    card.write_text(json.dumps({"schema": "someone.else/9"}), encoding="utf-8")
    record = reports / "market_enterprise_registry" / DATES[0] / "gx" / "validation_result.json"
    record.write_bytes(record.read_bytes()[:500])
    (reports / "NotADataset").mkdir()
    (reports / "readme.txt").write_text("not a run", encoding="utf-8")
    (reports / "hrss_insured_persons" / ".incoming-x").mkdir()
    (reports / "hrss_insured_persons" / "empty-run").mkdir()
    built = site.build(demo_copy.home, full=True)
    assert built.runs == len(DATASETS) * len(DATES)
    hrss = (demo_copy.site / "datasets" / "hrss_insured_persons.html").read_text(encoding="utf-8")
    assert f"hrss_insured_persons/{DATES[0]}/run_report.json: unreadable" in hrss
    transport = (demo_copy.site / "datasets" / "transport_bus_stops.html").read_text(encoding="utf-8")
    assert "schema is &#39;someone.else/9&#39;, expected &#39;govdata.scorecard/1&#39;" in transport
    market = (demo_copy.site / "datasets" / "market_enterprise_registry.html").read_text(encoding="utf-8")
    assert (
        f"market_enterprise_registry/{DATES[0]}/gx/validation_result.json: not a readable validation result" in market
    )
    assert str(demo_copy.home) not in market  # the pages name files inside the reports folder only
    assert not list((demo_copy.site / "datadocs" / "validations" / "market_enterprise_registry" / DATES[0]).glob("*/*"))
    assert run_page(demo_copy.site, "market_enterprise_registry", DATES[-1]).is_file()


def test_a_column_marked_sensitive_after_the_run_is_masked_on_the_page(demo_copy: Demo) -> None:
    record = demo_copy.home / "reports" / "hrss_insured_persons" / DATES[0] / "gx" / "validation_result.json"
    document = json.loads(record.read_text(encoding="utf-8"))
    document["meta"]["govdata"]["sensitive_columns_masked"] = []  # as if written before the columns were sensitive
    planted = ["13912345678", "13987654321"]
    for result in document["results"]:
        if result["expectation_config"]["kwargs"].get("column") == "mobile" and not result["success"]:
            result["result"]["partial_unexpected_list"] = planted
            result["result"]["partial_unexpected_counts"] = [{"value": v, "count": 1} for v in planted]
            result["result"]["partial_unexpected_index_list"] = [{"_govdata_row": 1, "mobile": v} for v in planted]
            break
    else:
        pytest.fail("the demo's hrss run has no failed mobile expectation to plant values in")
    record.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    site.build(demo_copy.home, render={("hrss_insured_persons", DATES[0])})
    page = run_page(demo_copy.site, "hrss_insured_persons", DATES[0]).read_text(encoding="utf-8")
    assert "***" in page
    assert not any(v in page for v in planted)


# --- GX's templates and the vendored assets -----------------------------------------------------


def _gx_templates() -> Path:
    found = importlib.util.find_spec("great_expectations")
    assert found is not None and found.submodule_search_locations
    return Path(next(iter(found.submodule_search_locations))) / "render" / "view" / "templates"


def test_every_gx_template_that_loads_from_a_cdn_is_overridden() -> None:
    ours = {p.name for p in (REPO / "expectations" / "docs_templates").glob("*.j2")}
    loading = [
        p.name
        for p in sorted(_gx_templates().glob("*.j2"))
        if not p.name.startswith("markdown_")
        and re.search(r"""(src|href)=["']https?:|url\(['"]?https?:""", p.read_text("utf-8"))
    ]
    assert loading  # the scan sees GX's CDN references
    assert sorted(set(loading) - ours) == []


def test_the_vendored_bootstrap_and_popper_are_the_files_gx_pins() -> None:
    imports = (_gx_templates() / "js_script_imports.j2").read_text(encoding="utf-8")
    pinned = re.findall(r'src="https://[^"]+/([^/"]+)" integrity="sha384-([^"]+)"', imports)
    assert len(pinned) == 2
    vendored = {p.name: p for p in site.VENDOR.rglob("*.js")}
    for name, digest in pinned:
        assert base64.b64encode(hashlib.sha384(vendored[name].read_bytes()).digest()).decode() == digest


def test_font_awesome_is_inlined_for_file_pages() -> None:
    css = site.fontawesome_css()
    assert "../webfonts/" not in css
    assert css.count("data:font/woff2;base64,") >= 3
    for ttf in re.findall(r"url\((vendor/fontawesome-free/webfonts/[^)]+)\)", css):
        assert (site.VENDOR.parent / ttf).is_file() or (site.VENDOR / ttf.removeprefix("vendor/")).is_file()


def test_report_site_command_rebuilds_a_lost_site(demo_copy: Demo) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    shutil.rmtree(demo_copy.site)
    result = CliRunner().invoke(app, ["report", "site", "--home", str(demo_copy.home)])
    assert result.exit_code == 0, result.output
    assert str(demo_copy.site / "index.html") in result.output.replace("\n", "")
    index = (demo_copy.site / "datadocs" / "index.html").read_text(encoding="utf-8")
    for date in DATES:
        assert date in index
    runs = len(list((demo_copy.home / "reports").glob("*/*/run_report.json")))
    assert f"{runs} runs" in result.output
