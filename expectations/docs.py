"""Data Docs: GX's own site builder renders the stored, masked validation results into an offline site.

The gate runs GX in an in-memory context without Data Docs sites and writes each run's
validation result (sensitive values masked) to ``reports/<dataset>/<run>/gx/``. :func:`build`
loads those records into a fresh in-memory context and renders them with GX 1.24.1's
``SiteBuilder``, its section and index builders and its page renderers, into
``<site>/datadocs/``: ``index.html`` (the run list, every run of every dataset with its status
icon), ``validations/<suite>/<run>/<time>/<page>.html`` and ``expectations/<suite>.html``.

What is ours, and why:

- **Offline.** GX's templates load Bootstrap, jQuery, bootstrap-table, Vega and Font Awesome
  from CDNs, and its index builds the run list in JavaScript: without network it shows no runs.
  :class:`OfflinePageView` / :class:`OfflineIndexPageView` (GX's page views with our templates
  in front, ``expectations/docs_templates/``) load the copies vendored in
  ``pipelines/site_assets/vendor`` (see ``tools/vendor_assets.py``) by relative paths; the GX
  logo, the newsletter footer and the links to GX's web site are gone, and the one CDN image in
  GX's inline stylesheet is dropped.
- **Deterministic.** GX names collapsible elements with ``uuid4`` and stamps image URLs with the
  time; our views number elements per page and leave URLs alone, so the same records render to
  the same bytes.
- **Chinese names and scorecard tags.** Each page carries a govdata header: 信息资源名称,
  提供方, the run, the data items with their Chinese titles and sensitive flags, and what each
  expectation counts toward (data item ``column 中文名``, dimension, indicator).
- **Masking, again.** Every result is passed through :func:`expectations.gate.mask_result` with
  the union of the spec's sensitive columns and those the record says it masked, so a record
  written before a column was marked sensitive is masked on the page too.
- **Incremental.** Only the pages of the runs asked for (and pages missing on disk) are
  rendered; the index is rebuilt from every record, and pages whose record is gone (a run key
  re-run replaces its record) are removed by GX's index builder.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import logging
import shutil
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from great_expectations.core import ExpectationSuite
from great_expectations.core.expectation_validation_result import expectationSuiteValidationResultSchema
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.exceptions import GreatExpectationsError
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from great_expectations.render import RenderedContent
from great_expectations.render.renderer.site_builder import SiteBuilder
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import ChoiceLoader, FileSystemLoader, FunctionLoader, pass_context
from marshmallow import ValidationError

from expectations import engine
from expectations.gate import mask_result
from pipelines.errors import TerminalError
from pipelines.suites import referenced_columns

logger = logging.getLogger(__name__)

#: The Data Docs folder inside the reports site.
DATADOCS_DIR = "datadocs"
TEMPLATES = Path(__file__).resolve().parent / "docs_templates"
_GX_STYLES = "data_docs_default_styles.css"
#: Header fields that describe one run (a suite page shows the dataset only).
_RUN_HEADER_KEYS = frozenset({"run_id", "status", "status_key", "score", "run_report"})


@dataclass(frozen=True)
class DocsRun:
    """One stored validation result to show, with what the page needs to say about it."""

    dataset: str
    run_id: str
    result_path: Path  # the gate's validation_result.json
    page: str  # the page's name (GX's batch identifier), unique within the run
    sensitive: frozenset[str] = frozenset()  # the spec's sensitive columns (masked again)
    items: Mapping[str, str] = field(default_factory=dict)  # column -> "column 中文名"
    tags: Mapping[int, Mapping[str, str]] = field(default_factory=dict)  # suite index -> {"dimension", "indicator"}
    header: Mapping[str, Any] = field(default_factory=dict)  # the govdata header (see docs_templates)


@dataclass(frozen=True)
class DocsPage:
    """Where a record's page is (relative to the site root) and GX's verdict; or why there is none."""

    path: str | None
    success: bool | None
    suite: str | None
    problem: str | None = None


# --- the views: GX's, with our templates in front ----------------------------------------------


def _gx_styles(name: str) -> str | None:
    """GX's inline stylesheet without its one CDN image (the dark-mode logo behind the navbar brand)."""
    if name != _GX_STYLES:
        return None
    source = (
        resources.files("great_expectations")
        .joinpath("render/view/static/styles", _GX_STYLES)
        .read_text(encoding="utf-8")
    )
    return source.replace(
        "url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png')", "none"
    )


class _Offline:
    """What both views add to GX's: our templates first, numbered element ids, paths to the site root."""

    env: Any
    header: Mapping[str, Any]

    def _offline(self) -> None:
        self.env.loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES)), FunctionLoader(_gx_styles), self.env.loader])
        self.env.filters["add_data_context_id_to_url"] = self.add_data_context_id_to_url
        self.header = {}
        self._ids: Iterator[int] = itertools.count(1)

    @staticmethod
    def site_prefix(document: Mapping[str, Any]) -> str:
        """The relative path from the page to the site root (the folder above ``datadocs/``)."""
        renderer = str(document.get("renderer_type") or "")
        parts = len(str(document.get("expectation_suite_name") or "").split("."))
        if "ValidationResults" in renderer or "ProfilingResults" in renderer:
            depth = parts + 3  # validations/<suite parts>/<run name>/<run time>/<page>.html
        elif "ExpectationSuite" in renderer:
            depth = parts  # expectations/<suite parts>.html
        else:
            depth = 0  # index.html
        return "../" * (depth + 1)

    def render_offline(self, document: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        self._ids = itertools.count(1)
        doc = document.to_json_dict() if isinstance(document, RenderedContent) else dict(document)
        kwargs.setdefault("govdata_site", self.site_prefix(doc))
        kwargs.setdefault("govdata_header", self.header)
        return kwargs

    def generate_html_element_uuid(self, prefix: str | None = None) -> str:
        """Element ids numbered in page order (GX uses uuid4, which changes every build)."""
        return f"{prefix or ''}govdata-{next(self._ids)}"

    @pass_context
    def add_data_context_id_to_url(self, jinja_context: Any, url: str, add_datetime: bool = True) -> str:
        """The URL as it is (GX appends the time and the context id: the page would change every build)."""
        return url


class OfflinePageView(_Offline, DefaultJinjaPageView):
    """GX's page view (validation results, expectation suites) reading only local assets."""

    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self._offline()

    def render(self, document: Any, template: str | None = None, **kwargs: Any) -> Any:
        return super().render(document, template, **self.render_offline(document, kwargs))


class OfflineIndexPageView(_Offline, DefaultJinjaIndexPageView):
    """GX's index view (the run list) reading only local assets."""

    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self._offline()

    def render(self, document: Any, template: str | None = None, **kwargs: Any) -> Any:
        return super().render(document, template, **self.render_offline(document, kwargs))


# --- records -----------------------------------------------------------------------------------


def _load_record(run: DocsRun) -> dict[str, Any]:
    """The stored validation result as JSON, checked to be one (an error names the file)."""
    try:
        document = json.loads(run.result_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TerminalError(
            f"{run.result_path}: not a readable validation result: {exc}",
            hint=f"run {run.dataset} for {run.run_id} again to rewrite it, or delete the file",
        ) from exc
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("results"), list)
        or not document.get("suite_name")
    ):
        raise TerminalError(
            f"{run.result_path}: not a GX validation result (no 'suite_name' and 'results')",
            hint=f"run {run.dataset} for {run.run_id} again to rewrite it, or delete the file",
        )
    return document


def _entry(result: Mapping[str, Any]) -> dict[str, Any]:
    config = result.get("expectation_config") or {}
    return {"type": config.get("type") or "", "kwargs": config.get("kwargs") or {}}


def prepare(run: DocsRun, document: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The record as the page shows it (sensitive values masked again) and its expectations' govdata rows.

    A row: ``{"index", "name", "item" (column 中文名), "dimension", "indicator", "success",
    "unexpected_count", "element_count"}`` — the header's table of what each expectation counts
    toward (GX 1.24.1's own ``meta_properties_to_render`` columns fail to render: GX puts them
    in the expectation's kwargs, which its models then reject).
    """
    document = copy.deepcopy(document)
    meta = document.setdefault("meta", {})
    recorded = (meta.get("govdata") or {}).get("sensitive_columns_masked") or []
    sensitive = set(run.sensitive) | {str(c) for c in recorded}
    rows = []
    for index, result in enumerate(document["results"]):
        if not isinstance(result, dict):
            raise TerminalError(f"{run.result_path}: results[{index}] is not an expectation result")
        entry = _entry(result)
        columns = [c for _, c in referenced_columns(entry)]
        outcome = result.get("result") or {}
        result["result"] = mask_result(outcome, columns, sensitive)
        config = result.get("expectation_config")
        if isinstance(config, dict):
            config["kwargs"] = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        tags = run.tags.get(index) or {}
        rows.append(
            {
                "index": index,
                "name": ((result.get("meta") or {}).get("govdata") or {}).get("name") or entry["type"],
                "item": ", ".join(run.items.get(c, c) for c in dict.fromkeys(columns)) or "表级 table",
                "dimension": tags.get("dimension") or "—",
                "indicator": tags.get("indicator") or "—",
                "success": bool(result.get("success")),
                "unexpected_count": outcome.get("unexpected_count"),
                "element_count": outcome.get("element_count"),
            }
        )
    meta["govdata"] = {**(meta.get("govdata") or {}), "sensitive_columns_masked": sorted(sensitive)}
    return document, rows


def _run_time(run: DocsRun, document: Mapping[str, Any]) -> dt.datetime:
    """The record's run time (UTC); a record without one falls back to its logical date (stable)."""
    run_id = (document.get("meta") or {}).get("run_id") or {}
    text = run_id.get("run_time") if isinstance(run_id, dict) else None
    for candidate in (text, (document.get("meta") or {}).get("validation_time")):
        if isinstance(candidate, str):
            try:
                value = dt.datetime.fromisoformat(candidate)
            except ValueError:
                continue
            return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        return dt.datetime.fromisoformat(run.run_id[:10]).replace(tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def page_path(key: ValidationResultIdentifier) -> str:
    """The page of a validation result, relative to the site root (as GX's index links it)."""
    parts = ["validations", *key.expectation_suite_identifier.name.split("."), *key.run_id.to_tuple()]
    return f"{DATADOCS_DIR}/" + urllib.parse.quote("/".join([*parts, str(key.batch_identifier)]) + ".html")


def _file(site: Path, path: str) -> Path:
    return site / urllib.parse.unquote(path)


def _suite(name: str, document: Mapping[str, Any]) -> ExpectationSuite | None:
    """The suite as the record validated it (its latest form is what the suite page shows)."""
    expectations = []
    for index, result in enumerate(document["results"]):
        config = dict(result.get("expectation_config") or {})
        try:
            expectation = ExpectationConfiguration(
                type=config["type"],
                kwargs=config.get("kwargs") or {},
                meta=config.get("meta") or {},
                notes=config.get("notes"),
                description=config.get("description"),
            ).to_domain_obj()
        except (KeyError, GreatExpectationsError, ValueError, TypeError) as exc:
            logger.warning("suite %s: expectation %d cannot be shown on the suite page: %s", name, index, exc)
            return None
        expectations.append(expectation)
    return ExpectationSuite(name=name, expectations=expectations)


# --- the build ---------------------------------------------------------------------------------


def _site_builder(context: Any, datadocs: Path) -> SiteBuilder:
    view = {"module_name": __name__, "class_name": "OfflinePageView"}
    return SiteBuilder(
        data_context=context,
        store_backend={"class_name": "TupleFilesystemStoreBackend", "base_directory": str(datadocs)},
        site_name="govdata",
        show_how_to_buttons=False,
        site_index_builder={
            "class_name": "DefaultSiteIndexBuilder",
            "view": {"module_name": __name__, "class_name": "OfflineIndexPageView"},
        },
        site_section_builders={
            "expectations": {"view": view},
            "validations": {"view": view},
            "profiling": "None",
        },
    )


def _copy_if_changed(source: bytes, target: Path) -> None:
    if target.is_file() and target.read_bytes() == source:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(source)
    tmp.replace(target)


def _static(datadocs: Path) -> None:
    """The one static file GX's pages still reference: the favicon."""
    icon = resources.files("great_expectations").joinpath("render/view/static/images/favicon.ico").read_bytes()
    _copy_if_changed(icon, datadocs / "static" / "images" / "favicon.ico")


def build(
    site: Path,
    runs: Sequence[DocsRun],
    *,
    render: set[tuple[str, str]] | None = None,
) -> dict[tuple[str, str, str], DocsPage]:
    """Render the Data Docs of ``runs`` into ``site/datadocs``; return each record's page by (dataset, run, page).

    A record that cannot be read, or that GX fails to render, gets a page entry with the reason
    (``problem``) instead of a path; the others are built all the same. ``render`` names the (dataset, run) pairs whose pages are rendered again; ``None`` renders
    all. Pages missing on disk are always rendered. A suite's page shows the suite as its newest
    record validated it, under the header of that record's dataset.
    """
    datadocs = Path(site) / DATADOCS_DIR
    datadocs.mkdir(parents=True, exist_ok=True)
    context = engine.ephemeral_context()
    builder = _site_builder(context, datadocs)
    pages: dict[tuple[str, str, str], DocsPage] = {}
    queued: list[tuple[ValidationResultIdentifier, DocsRun, dict[str, Any]]] = []  # (record, run, page header)
    latest: dict[str, tuple[dt.datetime, dict[str, Any], DocsRun]] = {}  # suite -> the newest record of it
    for run in runs:
        try:
            document, rows = prepare(run, _load_record(run))
            suite = str(document["suite_name"])
            document.pop("id", None)
            result = expectationSuiteValidationResultSchema.load(document)
        except TerminalError as exc:
            pages[(run.dataset, run.run_id, run.page)] = DocsPage(None, None, None, exc.message)
            logger.warning("Data Docs: %s (%s)", exc.message, exc.hint)
            continue
        except ValidationError as exc:
            problem = f"{run.result_path}: GX cannot read this validation result: {exc.messages}"
            pages[(run.dataset, run.run_id, run.page)] = DocsPage(None, None, None, problem)
            logger.warning("Data Docs: %s", problem)
            continue
        when = _run_time(run, document)
        key = ValidationResultIdentifier(
            ExpectationSuiteIdentifier(suite), RunIdentifier(run_name=run.run_id, run_time=when), run.page
        )
        context.validation_results_store.set(key, result)
        path = page_path(key)
        pages[(run.dataset, run.run_id, run.page)] = DocsPage(path, bool(result.success), suite)
        if render is None or (run.dataset, run.run_id) in render or not _file(site, path).is_file():
            queued.append((key, run, {**run.header, "expectations": rows}))
        if suite not in latest or when >= latest[suite][0]:
            latest[suite] = (when, document, run)
    suites_to_render = {key.expectation_suite_identifier.name for key, _, _ in queued}
    for name, (_, document, _run) in sorted(latest.items()):
        shown = _suite(name, document)
        if shown is None:
            continue
        context.suites.add(shown)
        if render is None or not (datadocs / "expectations" / f"{name.replace('.', '/')}.html").is_file():
            suites_to_render.add(name)
    sections = builder.site_section_builders
    for key, run, header in queued:
        sections["validations"].view_class.header = header
        sections["validations"].build(resource_identifiers=[key])
        if not _file(site, page_path(key)).is_file():  # GX logs its rendering errors and goes on
            page = pages[(run.dataset, run.run_id, run.page)]
            problem = f"{run.result_path}: GX could not render its Data Docs page (GX's error is in the log)"
            pages[(run.dataset, run.run_id, run.page)] = DocsPage(None, page.success, page.suite, problem)
            logger.warning("Data Docs: %s", problem)
    for name in sorted(suites_to_render):
        newest = latest[name][2].header
        sections["expectations"].view_class.header = {k: v for k, v in newest.items() if k not in _RUN_HEADER_KEYS}
        sections["expectations"].build(resource_identifiers=[ExpectationSuiteIdentifier(name)])
    _static(datadocs)
    builder.site_index_builder.view_class.header = {}
    builder.site_index_builder.build()
    _remove_empty_dirs(datadocs)
    logger.info("Data Docs: %d records, %d pages rendered, in %s", len(runs), len(queued), datadocs)
    return pages


def _remove_empty_dirs(root: Path) -> None:
    """Folders left empty when GX removed the page of a replaced record."""
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def clean(site: Path) -> None:
    """Remove the Data Docs folder (a full rebuild starts from nothing)."""
    shutil.rmtree(Path(site) / DATADOCS_DIR, ignore_errors=True)
