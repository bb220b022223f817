"""The reports site: Data Docs for every run and the quality scorecards, readable offline from file://.

Built under ``<home>/reports/_site/`` (a dataset id cannot start with ``_``, so the folder never
meets ``reports/<dataset>/``) from what the runs left in ``reports/<dataset>/<run>/``: the gate's
masked validation results (``gx/validation_result.json``), the scorecards (``scorecard.json``,
schema ``govdata.scorecard/1``; or the quality summary of ``run_report.json`` /
``steps/quality.json`` for runs without one) and the run reports. Nothing is read from a network
and nothing is loaded from one: every page opens from a folder, a share or a USB stick.

``index.html``
    the landing page: departments, datasets with their latest run and score, recent runs, and
    the way into the Data Docs.
``datadocs/``
    GX's Data Docs (:mod:`expectations.docs`): ``index.html`` lists every run of every dataset
    with its status icon; one page per run and per suite.
``datasets/<dataset>.html``
    a dataset's scorecard: the overall score and each dimension's over its runs (charts), the
    latest run's dimensions and indicators (code, 中文名, DAMA name, X = A/B), the indicators
    across runs, the run history with each run's Data Docs page, and the data items.
``departments/<USCC>.html``
    a department's scorecard: each dataset's overall score over time, the department's mean per
    dimension over time, its datasets' latest runs.
``assets/``
    the vendored CSS/JS/fonts (``pipelines/site_assets/vendor``, fetched and checked by
    ``tools/vendor_assets.py``), Font Awesome with its fonts inlined (``fontawesome.css``: browsers
    refuse web fonts from a parent folder of a ``file://`` page), govdata's stylesheets and script.
``.state/``
    what the site remembers about each dataset from its spec (names, department, data items and
    their Chinese titles and sensitive flags), and the build lock.

Builds are incremental (the Data Docs pages of the run just finished, and of runs whose page is
missing; govdata's pages are rewritten only when their content changed) and deterministic: the
same records give the same bytes, so a page carries no build time, only the runs' own times.
A record that cannot be read is shown on the pages with the reason, never skipped silently.
Sensitive values never reach the site: the validation results are masked by the gate and again
by :mod:`expectations.docs`; scorecards and run reports carry counts, codes and names only.

Rebuild by hand: ``python -m pipelines.site [--home DIR] [--full]``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.errors import GovdataError, TerminalError
from pipelines.scorecard import DIMENSIONS, INDICATORS, SCHEMA, SCORECARD_FILE
from pipelines.workspace import Workspace

if TYPE_CHECKING:
    import jinja2

    from pipelines.spec import DatasetSpec

logger = logging.getLogger(__name__)

SITE_FOLDER = "_site"
ASSETS = Path(__file__).resolve().parent / "site_assets"
VENDOR = ASSETS / "vendor"
RUN_REPORT = "run_report.json"
VALIDATION_RESULT = "validation_result.json"
#: Recent runs listed on the landing page; indicator columns in a dataset's indicators-over-runs table.
RECENT_RUNS = 20
TREND_COLUMNS = 12
_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
_USCC = re.compile(r"^[0-9A-Z]{18}$")

#: status -> (label, Font Awesome icon, css modifier)
STATUS: dict[str, tuple[str, str, str]] = {
    "published": ("已发布 published", "fas fa-check-circle", "ok"),
    "unchanged": ("未变化 unchanged", "fas fa-check-circle", "ok"),
    "passed": ("已通过 passed", "fas fa-check", "ok"),
    "held": ("已拦截 held", "fas fa-times-circle", "held"),
    "failed": ("失败 failed", "fas fa-exclamation-triangle", "failed"),
    "skipped": ("未发布 not published", "fas fa-minus-circle", "other"),
    "incomplete": ("未完成 incomplete", "fas fa-hourglass-half", "other"),
}
DIMENSION_LABELS = {d.key: f"{d.name} {d.dama}" for d in DIMENSIONS}
DIMENSION_ORDER = [d.key for d in DIMENSIONS]


# --- what the runs left behind -----------------------------------------------------------------


@dataclass
class RunRecord:
    """One run as the site shows it (everything optional: a run may have stopped at any step)."""

    dataset: str
    run_id: str
    folder: Path
    status: str = "incomplete"
    logical_date: str = ""
    finished_at: str | None = None
    version: int | None = None
    rows: dict[str, Any] | None = None
    card: dict[str, Any] | None = None  # normalised scorecard (see _normalise_card)
    tags: dict[int, dict[str, str]] = field(default_factory=dict)  # suite index -> dimension / indicator labels
    results: list[tuple[str, Path]] = field(default_factory=list)  # (page name, validation_result.json)
    pages: list[dict[str, Any]] = field(default_factory=list)  # Data Docs pages: {"path", "success", "page"}
    department: dict[str, str] | None = None
    dataset_name: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def order(self) -> tuple[str, str]:
        return (self.logical_date, self.run_id)

    @property
    def score(self) -> float | None:
        return None if self.card is None else self.card.get("score")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TerminalError(f"{path}: unreadable: {exc}") from exc


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _normalise_card(data: Mapping[str, Any]) -> dict[str, Any]:
    """A scorecard (schema ``govdata.scorecard/1``) or a run report's quality summary, in one shape.

    ``{"score", "dimensions": [{"key", "name", "dama", "score"}] (canonical order),
    "indicators": [{"code", "name", "name_en", "dama", "dimension", "formula", "a", "b", "x"}]
    (evaluated ones, code order), "source": "scorecard" | "summary"}``.
    """
    raw_dims = data.get("dimensions")
    by_key: dict[str, Mapping[str, Any]] = {}
    if isinstance(raw_dims, list):
        by_key = {str(d.get("key")): d for d in raw_dims if isinstance(d, Mapping)}
    elif isinstance(raw_dims, Mapping):
        by_key = {str(k): v for k, v in raw_dims.items() if isinstance(v, Mapping)}
    dimensions = []
    for d in DIMENSIONS:
        found = by_key.get(d.key, {})
        dimensions.append({"key": d.key, "name": d.name, "dama": d.dama, "score": _number(found.get("score"))})
    indicators: list[dict[str, Any]] = []
    for raw in data.get("indicators") or []:
        if not isinstance(raw, Mapping) or _number(raw.get("x")) is None:
            continue
        code = str(raw.get("code"))
        known = INDICATORS.get(code)
        indicators.append(
            {
                "code": code,
                "name": raw.get("name") or (known.name if known else code),
                "name_en": raw.get("name_en") or (known.name_en if known else ""),
                "dama": raw.get("dama") or (known.dama if known else ""),
                "dimension": raw.get("dimension") or (known.dimension if known else ""),
                "formula": raw.get("formula") or ("1-A/B" if known and known.inverse else "A/B"),
                "a": raw.get("a"),
                "b": raw.get("b"),
                "x": _number(raw.get("x")),
            }
        )
    indicators.sort(key=lambda i: str(i["code"]))
    return {
        "score": _number(data.get("score")),
        "dimensions": dimensions,
        "indicators": indicators,
        "source": "scorecard" if data.get("schema") == SCHEMA else "summary",
    }


def _tag_label(indicator: str | None, dimension: str | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    if indicator and indicator in INDICATORS:
        tags["indicator"] = f"{indicator} {INDICATORS[indicator].name}"
        dimension = dimension or INDICATORS[indicator].dimension
    if dimension and dimension in DIMENSION_LABELS:
        tags["dimension"] = DIMENSION_LABELS[dimension]
    return tags


def _card_tags(card: Mapping[str, Any]) -> dict[int, dict[str, str]]:
    """Suite index -> dimension/indicator labels, from a full scorecard's sources."""
    tags: dict[int, dict[str, str]] = {}
    for ind in card.get("indicators") or []:
        for source in (ind.get("sources") or []) if isinstance(ind, Mapping) else []:
            if (
                isinstance(source, Mapping)
                and source.get("kind") == "expectation"
                and isinstance(source.get("index"), int)
            ):
                tags[int(source["index"])] = _tag_label(str(ind.get("code")), str(ind.get("dimension") or ""))
    return tags


def _summary_tags(quality: Mapping[str, Any]) -> dict[int, dict[str, str]]:
    """Suite index -> labels, from a quality summary's ``expectations`` (in suite order)."""
    tags: dict[int, dict[str, str]] = {}
    for index, outcome in enumerate(quality.get("expectations") or []):
        if isinstance(outcome, Mapping):
            label = _tag_label(outcome.get("indicator"), outcome.get("dimension"))
            if label:
                tags[index] = label
    return tags


def _logical_date(run_id: str) -> str:
    match = re.match(r"^(\d{4}-\d{2}-\d{2})", run_id)
    return match.group(1) if match else run_id


def read_run(dataset: str, folder: Path) -> RunRecord | None:
    """What a run folder says about the run; None when it holds no record of a run at all."""
    run = RunRecord(dataset=dataset, run_id=folder.name, folder=folder)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and (p.name == "gx" or p.name.startswith("gx-"))):
        if (sub / VALIDATION_RESULT).is_file():
            page = dataset if sub.name == "gx" else f"{dataset}-{sub.name[3:]}"
            run.results.append((page, sub / VALIDATION_RESULT))
    report: Mapping[str, Any] = {}
    card: Mapping[str, Any] | None = None
    quality: Mapping[str, Any] = {}
    steps: dict[str, Mapping[str, Any]] = {}
    found = bool(run.results)
    for name, target in ((RUN_REPORT, "report"), (SCORECARD_FILE, "card")):
        path = folder / name
        if not path.is_file():
            continue
        found = True
        try:
            data = _read_json(path)
        except TerminalError as exc:
            run.problems.append(exc.message)
            continue
        if not isinstance(data, dict):
            run.problems.append(f"{path}: not a JSON object")
        elif target == "report":
            report = data
        elif data.get("schema") != SCHEMA:
            run.problems.append(f"{path}: schema is {data.get('schema')!r}, expected {SCHEMA!r}")
        else:
            card = data
    for step in ("quality", "publish"):
        path = folder / "steps" / f"{step}.json"
        if path.is_file():
            found = True
            with contextlib.suppress(TerminalError):
                data = _read_json(path)
                if isinstance(data, dict):
                    steps[step] = data
    if not found:
        return None
    for holder in (report, steps.get("quality", {})):
        if isinstance(holder.get("quality"), Mapping):
            quality = holder["quality"]
            break
    if card is None and isinstance(quality.get("scorecard"), Mapping) and quality["scorecard"].get("schema") == SCHEMA:
        card = quality["scorecard"]
    if card is not None:
        run.card = _normalise_card(card)
        run.tags = _card_tags(card)
        department = card.get("department")
        if isinstance(department, Mapping) and department.get("name"):
            run.department = {"name": str(department["name"]), "uscc": str(department.get("uscc") or "")}
        run.dataset_name = card.get("dataset_name") or None
    elif quality.get("score") is not None or quality.get("dimensions"):
        run.card = _normalise_card(quality)
    if not run.tags and quality:
        run.tags = _summary_tags(quality)
    run.status = _status(report, card, steps)
    run.logical_date = str(report.get("logical_date") or (card or {}).get("logical_date") or _logical_date(run.run_id))
    if re.match(r"^\d{4}-\d{2}-\d{2}T00:00:00", run.logical_date):  # a date-time logical date at midnight
        run.logical_date = run.logical_date[:10]
    run.finished_at = report.get("finished_at")
    version = report.get("version") if report else (card or {}).get("version")
    if version is None and steps.get("publish", {}).get("version") is not None:
        version = steps["publish"]["version"]
    run.version = int(version) if isinstance(version, int) else None
    rows = report.get("rows") or (card or {}).get("rows")
    run.rows = dict(rows) if isinstance(rows, Mapping) else None
    if report.get("status") == "failed" and report.get("failed_step"):
        run.problems.append(f"stopped in the {report['failed_step']} step (see {RUN_REPORT})")
    return run


def _status(report: Mapping[str, Any], card: Mapping[str, Any] | None, steps: Mapping[str, Mapping[str, Any]]) -> str:
    for candidate in (
        report.get("status"),
        (card or {}).get("status"),
        steps.get("publish", {}).get("status"),
        steps.get("quality", {}).get("status"),
    ):
        if isinstance(candidate, str) and candidate in STATUS:
            return candidate
    return "incomplete"


def read_runs(reports: Path) -> list[RunRecord]:
    """Every run under ``reports/<dataset>/<run>/``, by dataset, oldest logical date first."""
    runs: list[RunRecord] = []
    if not reports.is_dir():
        return runs
    for dataset_dir in sorted(p for p in reports.iterdir() if p.is_dir() and _IDENT.match(p.name)):
        for folder in sorted(p for p in dataset_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            run = read_run(dataset_dir.name, folder)
            if run is not None:
                run.problems = [_relative(reports, p) for p in run.problems]
                runs.append(run)
    runs.sort(key=lambda r: (r.dataset, *r.order))
    return runs


def _relative(reports: Path, message: str) -> str:
    """A message with the reports folder's path left out (the pages name files as ``<dataset>/<run>/…``)."""
    return message.replace(f"{reports.resolve()}/", "").replace(f"{reports}/", "")


# --- what the site remembers about a dataset (from its spec) ------------------------------------


def describe(spec: DatasetSpec) -> dict[str, Any]:
    """The descriptor of a dataset: names, department, data items (no values)."""
    return {
        "dataset": spec.id,
        "name": spec.name,
        "department": {"name": spec.department.name, "uscc": spec.department.uscc},
        "resource_code": spec.catalog.resource_code,
        "update_cycle": spec.catalog.update_cycle.value,
        "items": [
            {"name": c.name, "title": c.title, "type": f"{c.type} ({c.type_code})", "sensitive": c.sensitive}
            for c in spec.columns
        ],
    }


def _write_if_changed(target: Path, data: bytes) -> bool:
    """Write ``data`` atomically unless the file already holds it; True when written."""
    if target.is_file() and target.read_bytes() == data:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return True


def remember(site: Path, spec: DatasetSpec) -> None:
    """Keep the spec's descriptor for the site (the spec itself may live elsewhere)."""
    data = json.dumps(describe(spec), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    _write_if_changed(site / ".state" / "datasets" / f"{spec.id}.json", data.encode("utf-8"))


def _descriptors(site: Path, runs: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    """Each dataset's descriptor: remembered from its spec, else pieced together from its runs."""
    found: dict[str, dict[str, Any]] = {}
    for dataset in sorted({r.dataset for r in runs}):
        path = site / ".state" / "datasets" / f"{dataset}.json"
        data: Any = None
        if path.is_file():
            try:
                data = _read_json(path)
            except TerminalError as exc:
                logger.warning("%s (the site shows the dataset without its names)", exc.message)
        blank = {"dataset": dataset, "name": None, "department": None, "resource_code": None, "update_cycle": None}
        data = {**blank, "items": [], **(data if isinstance(data, dict) else {})}
        mine = [r for r in runs if r.dataset == dataset]
        for run in reversed(mine):  # newest first: a department or a name from a scorecard
            if not data.get("name") and run.dataset_name:
                data["name"] = run.dataset_name
            if not data.get("department") and run.department:
                data["department"] = run.department
            if not data.get("items"):
                data["items"] = _items_from_catalog_step(run.folder)
        found[dataset] = data
    return found


def _items_from_catalog_step(folder: Path) -> list[dict[str, Any]]:
    path = folder / "steps" / "catalog.json"
    if not path.is_file():
        return []
    try:
        data = _read_json(path)
    except TerminalError:
        return []
    schema = data.get("schema") if isinstance(data, dict) else None
    if not isinstance(schema, list):
        return []
    return [
        {
            "name": str(c.get("name")),
            "title": str(c.get("title") or ""),
            "type": f"{c.get('type')} ({c.get('type_code')})",
            "sensitive": bool(c.get("sensitive")),
        }
        for c in schema
        if isinstance(c, Mapping)
    ]


def _department_key(department: Mapping[str, str] | None) -> str:
    if not department:
        return "unknown"
    uscc = str(department.get("uscc") or "")
    if _USCC.match(uscc):
        return uscc
    return "dept-" + hashlib.sha256(str(department.get("name")).encode("utf-8")).hexdigest()[:12]


# --- assets ------------------------------------------------------------------------------------


def _vendor_manifest() -> dict[str, Any]:
    data = _read_json(VENDOR / "manifest.json")
    if not isinstance(data, dict) or not isinstance(data.get("packages"), list):
        raise TerminalError(f"{VENDOR / 'manifest.json'}: not a vendor manifest", hint="run tools/vendor_assets.py")
    return data


def fontawesome_css(vendor: Path = VENDOR) -> str:
    """Font Awesome's stylesheet with its woff2 fonts inlined and the ttf fallbacks pointing at the copies."""
    css = (vendor / "fontawesome-free" / "css" / "all.min.css").read_text(encoding="utf-8")

    def inline(match: re.Match[str]) -> str:
        name = match.group(1)
        font = vendor / "fontawesome-free" / "webfonts" / name
        if name.endswith(".woff2"):
            return f"url(data:font/woff2;base64,{base64.b64encode(font.read_bytes()).decode()})"
        return f"url(vendor/fontawesome-free/webfonts/{name})"

    return re.sub(r"url\(\.\./webfonts/([A-Za-z0-9_.-]+)\)", inline, css)


def _assets(site: Path) -> None:
    """Copy the vendored files (as the manifest lists them) and govdata's own assets into ``assets/``."""
    target = site / "assets"
    manifest = _vendor_manifest()
    versions = []
    for package in manifest["packages"]:
        versions.append(f"{package['name']} {package['version']} ({package['license']})")
        for entry in package["files"]:
            source = VENDOR / entry["target"]
            if not source.is_file():
                raise TerminalError(f"{source}: a vendored asset is missing", hint="run tools/vendor_assets.py")
            _write_if_changed(target / "vendor" / entry["target"], source.read_bytes())
    notice = "Third-party browser assets of this site (from the npm registry):\n" + "\n".join(versions) + "\n"
    _write_if_changed(target / "vendor" / "VERSIONS.txt", notice.encode("utf-8"))
    _write_if_changed(target / "fontawesome.css", fontawesome_css().encode("utf-8"))
    for name in ("govdata.css", "govdata-docs.css", "govdata.js"):
        _write_if_changed(target / name, (ASSETS / name).read_bytes())


# --- pages -------------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ASSETS / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["score"] = lambda v: "—" if v is None else f"{v:.4f}"
    env.filters["count"] = lambda v: "—" if v is None else str(v)
    env.globals["STATUS"] = STATUS
    env.globals["DIMENSIONS"] = DIMENSIONS
    env.globals["DIMENSION_LABELS"] = DIMENSION_LABELS
    return env


def _chart(
    data: list[dict[str, Any]], *, x: str, x_title: str, series: str | None, series_title: str
) -> dict[str, Any]:
    """A vega-lite line chart of scores in [0, 1] over ``x`` (ordinal, in data order), one line per series."""
    color: dict[str, Any] = {"value": "#2c6fbb"}
    if series:
        domain = list(dict.fromkeys(str(d[series]) for d in data))
        color = {"field": series, "type": "nominal", "title": series_title, "scale": {"domain": domain}}
    tooltip = [{"field": k, "type": "nominal" if k != "score" else "quantitative"} for k in data[0]] if data else []
    encoding = {
        "x": {"field": x, "type": "ordinal", "sort": None, "title": x_title, "axis": {"labelAngle": -30}},
        "y": {"field": "score", "type": "quantitative", "title": "评分 Score", "scale": {"domain": [0, 1]}},
        "color": color,
    }
    if series:
        encoding["detail"] = {"field": series, "type": "nominal"}
    return {
        "width": "container",
        "height": 240,
        "data": {"values": data},
        "config": {
            "font": "'Noto Sans CJK SC', 'Source Han Sans SC', 'Microsoft YaHei', 'PingFang SC', sans-serif",
            "legend": {"orient": "bottom", "columns": 2, "labelLimit": 480},
        },
        "layer": [
            {"mark": {"type": "line", "strokeWidth": 2}, "encoding": encoding},
            {"mark": {"type": "point", "filled": True, "size": 70}, "encoding": {**encoding, "tooltip": tooltip}},
        ],
    }


def _run_view(run: RunRecord, root: str) -> dict[str, Any]:
    """What a page shows about a run (paths relative to the page: ``root`` leads to the site root)."""
    label, icon, css = STATUS.get(run.status, STATUS["incomplete"])
    folder = f"{root}../{run.dataset}/{run.run_id}/"
    return {
        "dataset": run.dataset,
        "run_id": run.run_id,
        "logical_date": run.logical_date,
        "status": run.status,
        "status_label": label,
        "status_icon": icon,
        "status_css": css,
        "version": run.version,
        "rows": run.rows or {},
        "score": run.score,
        "dimensions": {d["key"]: d["score"] for d in (run.card or {}).get("dimensions", [])},
        "pages": [{**p, "href": root + p["path"]} for p in run.pages],
        "run_report": folder + RUN_REPORT if (run.folder / RUN_REPORT).is_file() else None,
        "scorecard": folder + SCORECARD_FILE if (run.folder / SCORECARD_FILE).is_file() else None,
        "problems": run.problems,
    }


def _dataset_context(dataset: str, runs: list[RunRecord], info: Mapping[str, Any], root: str) -> dict[str, Any]:
    latest = runs[-1]
    scored = [r for r in runs if r.score is not None]
    overall = [
        {"run": r.run_id, "score": r.score, "status": STATUS.get(r.status, STATUS["incomplete"])[0]} for r in scored
    ]
    per_dimension = [
        {"run": r.run_id, "dimension": DIMENSION_LABELS[d["key"]], "score": d["score"]}
        for r in scored
        for d in (r.card or {}).get("dimensions", [])
        if d["score"] is not None
    ]
    trend_runs = scored[-TREND_COLUMNS:]
    codes = sorted({i["code"] for r in trend_runs for i in (r.card or {}).get("indicators", [])})
    matrix = [
        {
            "code": code,
            "name": INDICATORS[code].name if code in INDICATORS else code,
            "values": [
                next((i["x"] for i in (r.card or {}).get("indicators", []) if i["code"] == code), None)
                for r in trend_runs
            ],
        }
        for code in codes
    ]
    card = next((r.card for r in reversed(runs) if r.card is not None), None)
    return {
        "root": root,
        "dataset": dataset,
        "info": info,
        "department_key": _department_key(info.get("department")),
        "latest": _run_view(latest, root),
        "card_run": next((r.run_id for r in reversed(runs) if r.card is not None), None),
        "card": card,
        "runs": [_run_view(r, root) for r in reversed(runs)],
        "charts": {
            "overall": _chart(overall, x="run", x_title="运行 Run", series=None, series_title=""),
            "dimensions": _chart(
                per_dimension, x="run", x_title="运行 Run", series="dimension", series_title="维度 Dimension"
            ),
        }
        if scored
        else None,
        "trend_runs": [r.run_id for r in trend_runs],
        "matrix": matrix,
    }


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 6) if present else None


def _department_context(
    key: str,
    department: Mapping[str, str] | None,
    datasets: list[str],
    by_dataset: Mapping[str, list[RunRecord]],
    infos: Mapping[str, Mapping[str, Any]],
    root: str,
) -> dict[str, Any]:
    names = {d: str(infos[d].get("name") or d) for d in datasets}
    # One point per dataset and logical date: the last run of that date (a resubmission replaces its run).
    last: dict[tuple[str, str], RunRecord] = {}
    for dataset in datasets:
        for run in by_dataset[dataset]:
            last[(dataset, run.logical_date)] = run
    dates = sorted({date for _, date in last})
    per_dataset = [
        {"date": date, "dataset": f"{names[dataset]} ({dataset})", "score": run.score, "run": run.run_id}
        for (dataset, date), run in sorted(last.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        if run.score is not None
    ]
    periods: list[dict[str, Any]] = []
    for date in dates:
        members = [run for (_, d), run in sorted(last.items()) if d == date]
        dims = {
            key_: _mean(
                [
                    next((d["score"] for d in (r.card or {}).get("dimensions", []) if d["key"] == key_), None)
                    for r in members
                ]
            )
            for key_ in DIMENSION_ORDER
        }
        periods.append(
            {
                "date": date,
                "datasets": sorted({r.dataset for r in members}),
                "runs": len(members),
                "held": sum(r.status == "held" for r in members),
                "score": _mean([r.score for r in members]),
                "dimensions": dims,
            }
        )
    per_dimension = [
        {"date": p["date"], "dimension": DIMENSION_LABELS[k], "score": v}
        for p in periods
        for k, v in p["dimensions"].items()
        if v is not None
    ]
    latest = [(d, by_dataset[d][-1]) for d in datasets]
    return {
        "root": root,
        "key": key,
        "department": department or {"name": "未知部门 Unknown department", "uscc": ""},
        "datasets": [
            {"dataset": d, "name": names[d], "latest": _run_view(run, root), "runs": len(by_dataset[d])}
            for d, run in latest
        ],
        "score": _mean([run.score for _, run in latest]),
        "periods": list(reversed(periods)),
        "charts": {
            "datasets": _chart(
                per_dataset, x="date", x_title="逻辑日期 Logical date", series="dataset", series_title="数据集 Dataset"
            ),
            "dimensions": _chart(
                per_dimension,
                x="date",
                x_title="逻辑日期 Logical date",
                series="dimension",
                series_title="维度 Dimension",
            ),
        }
        if per_dataset
        else None,
    }


def _docs_header(run: RunRecord, info: Mapping[str, Any], masked: Sequence[str]) -> dict[str, Any]:
    department = info.get("department") or {}
    label, _, css = STATUS.get(run.status, STATUS["incomplete"])
    folder = f"../{run.dataset}/{run.run_id}/"
    return {
        "dataset": run.dataset,
        "dataset_name": info.get("name"),
        "department": department.get("name"),
        "department_code": department.get("uscc"),
        "resource_code": info.get("resource_code"),
        "run_id": run.run_id,
        "status": label,
        "status_key": css,
        "score": run.score,
        "scorecard": f"datasets/{run.dataset}.html",
        "run_report": folder + RUN_REPORT if (run.folder / RUN_REPORT).is_file() else None,
        "items": info.get("items") or [],
        "masked": list(masked),
    }


@dataclass(frozen=True)
class SiteBuild:
    """What a build produced."""

    root: Path
    index: Path
    datadocs_index: Path | None
    runs: int
    pages_written: int


@contextlib.contextmanager
def _locked(site: Path) -> Iterator[None]:
    """One build at a time per site (Airflow may finish two datasets at once)."""
    lock = site / ".state" / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a+") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: builds are not serialised
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def site_root(workspace: Workspace) -> Path:
    return workspace.root / "reports" / SITE_FOLDER


def build(
    home: str | Path | None = None,
    *,
    spec: DatasetSpec | None = None,
    render: set[tuple[str, str]] | None = None,
    full: bool = False,
) -> SiteBuild:
    """Build (or bring up to date) the reports site of a workspace.

    ``spec`` is remembered for its dataset's pages (names, department, data items). ``render``
    names the (dataset, run) pairs whose Data Docs pages are rendered again (pages missing on
    disk always are); ``full`` renders every page from scratch.
    """
    workspace = Workspace.from_env(home)
    site = site_root(workspace)
    site.mkdir(parents=True, exist_ok=True)
    with _locked(site):
        if spec is not None:
            remember(site, spec)
        runs = read_runs(workspace.root / "reports")
        infos = _descriptors(site, runs)
        _assets(site)
        datadocs_index = _data_docs(site, runs, infos, None if full else (render or set()), full=full)
        written = _pages(site, runs, infos)
    logger.info("reports site: %d runs, %d pages written, %s", len(runs), written, site / "index.html")
    return SiteBuild(site, site / "index.html", datadocs_index, len(runs), written)


def _data_docs(
    site: Path,
    runs: list[RunRecord],
    infos: Mapping[str, Mapping[str, Any]],
    render: set[tuple[str, str]] | None,
    *,
    full: bool,
) -> Path | None:
    with_results = [r for r in runs if r.results]
    if not with_results:
        return None
    from expectations import docs  # GX: only when there is something to render

    if full:
        docs.clean(site)
    docs_runs = []
    for run in with_results:
        info = infos.get(run.dataset, {})
        items = {i["name"]: f"{i['name']} {i['title']}".strip() for i in info.get("items") or []}
        sensitive = frozenset(i["name"] for i in info.get("items") or [] if i.get("sensitive"))
        for page, path in run.results:
            docs_runs.append(
                docs.DocsRun(
                    dataset=run.dataset,
                    run_id=run.run_id,
                    result_path=path,
                    page=page,
                    sensitive=sensitive,
                    items=items,
                    tags=run.tags,
                    header=_docs_header(run, info, sorted(sensitive)),
                )
            )
    pages = docs.build(site, docs_runs, render=render)
    by_run = {(r.dataset, r.run_id): r for r in with_results}
    for (dataset, run_id, page), found in sorted(pages.items()):
        run = by_run[(dataset, run_id)]
        if found.path is not None:
            run.pages.append({"path": found.path, "success": found.success, "page": page})
        if found.problem is not None:
            run.problems.append(_relative(site.parent, found.problem))
    return site / docs.DATADOCS_DIR / "index.html"


def _pages(site: Path, runs: list[RunRecord], infos: Mapping[str, Mapping[str, Any]]) -> int:
    env = _environment()
    env.globals["has_docs"] = any(r.pages for r in runs)
    by_dataset: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_dataset.setdefault(run.dataset, []).append(run)
    departments: dict[str, tuple[Mapping[str, str] | None, list[str]]] = {}
    for dataset in sorted(by_dataset):
        department = infos.get(dataset, {}).get("department")
        key = _department_key(department)
        departments.setdefault(key, (department, []))[1].append(dataset)
    written = 0
    wanted: set[Path] = set()

    def page(path: str, template: str, context: dict[str, Any]) -> None:
        nonlocal written
        target = site / path
        wanted.add(target)
        html = env.get_template(template).render(**context)
        written += _write_if_changed(target, html.encode("utf-8"))

    dataset_rows = []
    for dataset, mine in sorted(by_dataset.items()):
        context = _dataset_context(dataset, mine, infos.get(dataset, {}), "../")
        page(f"datasets/{dataset}.html", "dataset.html.j2", context)
        dataset_rows.append(
            {
                "dataset": dataset,
                "name": infos.get(dataset, {}).get("name") or dataset,
                "department": (infos.get(dataset, {}).get("department") or {}).get("name"),
                "department_key": _department_key(infos.get(dataset, {}).get("department")),
                "runs": len(mine),
                "latest": _run_view(mine[-1], ""),
            }
        )
    department_rows = []
    for key, (department, datasets) in sorted(departments.items(), key=lambda kv: str((kv[1][0] or {}).get("name"))):
        context = _department_context(key, department, datasets, by_dataset, infos, "../")
        page(f"departments/{key}.html", "department.html.j2", context)
        department_rows.append(
            {"key": key, **context["department"], "datasets": len(datasets), "score": context["score"]}
        )
    recent = sorted(runs, key=lambda r: (*r.order, r.dataset), reverse=True)[:RECENT_RUNS]
    latest_date = max((r.logical_date for r in runs), default=None)
    page(
        "index.html",
        "index.html.j2",
        {
            "root": "",
            "departments": department_rows,
            "datasets": dataset_rows,
            "recent": [_run_view(r, "") for r in recent],
            "total_runs": len(runs),
            "latest_date": latest_date,
        },
    )
    for folder in ("datasets", "departments"):  # pages of datasets whose runs are all gone
        for stale in sorted((site / folder).glob("*.html")) if (site / folder).is_dir() else []:
            if stale not in wanted:
                stale.unlink()
                written += 1
    return written


# --- after a run -------------------------------------------------------------------------------


def after_run(workspace: Workspace, spec: DatasetSpec, run_id: str) -> Path | None:
    """Bring the site up to date with a finished run; a failure is logged, never raised over the run."""
    try:
        built = build(workspace.root, spec=spec, render={(spec.id, run_id)})
    except (GovdataError, OSError, ValueError) as exc:
        logger.warning(
            "the reports site was not updated for %s run %s: %s (rebuild it with `python -m pipelines.site`)",
            spec.id,
            run_id,
            exc,
        )
        return None
    return built.index


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.site``: rebuild the reports site of a workspace."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.site", description="Build the offline reports site.")
    parser.add_argument("--home", help="workspace folder (default: $GOVDATA_HOME or ./var)")
    parser.add_argument("--full", action="store_true", help="render every Data Docs page again")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        built = build(args.home, full=args.full)
    except GovdataError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(
            f"error: cannot build the reports site: {exc}\n  → check that --home is a folder you can write to\n"
        )
        return 1
    sys.stdout.write(f"{built.index}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
