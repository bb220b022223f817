"""The five steps of one run (collect → cleanse → quality → catalog → publish) and the run report.

Each step is a plain function keyed by (spec, logical date). It reads what the previous step
wrote (by path, under the workspace) and writes a small JSON step report, so the steps can run in
one process (``govdata run``) or as separate Airflow tasks. Re-running a key replaces that run's
outputs; publishing identical content again is a no-op recognised by checksum.

Each step emits OpenLineage events, START then COMPLETE or FAIL (:mod:`pipelines.lineage`);
``lineage_parent`` names the run they belong to (the Airflow DAG run), by default the run key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors import make_connector
from connectors.base import DATA_FILE, ROW_COLUMN
from pipelines import background, lineage, references, scorecard
from pipelines import cleanse as cleanse_mod
from pipelines.errors import GovdataError, QualityGateHeld, SourceError, SpecError
from pipelines.files import sha256_file
from pipelines.schedule import render_source_options
from pipelines.spec import DUCKDB_TYPES, DatasetSpec, load_spec
from pipelines.sql import connect, copy_to_parquet, ident, path_lit
from pipelines.suites import load_suite
from pipelines.workspace import Workspace, run_id_for

log = logging.getLogger(__name__)

STEPS = ("collect", "cleanse", "quality", "catalog", "publish")
QUARANTINE_FILE = "quarantine.parquet"
CANDIDATE_FILE = "candidate.parquet"

Progress = Callable[[str, str], None]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunContext:
    """Everything a step needs to find its inputs and outputs."""

    spec: DatasetSpec
    workspace: Workspace
    logical_date: dt.date | dt.datetime
    run_id: str
    #: A quarantine resubmission: its accepted rows join the current published version (keys
    #: already published were sent back to quarantine, see pipelines.quarantine).
    merge_with_published: bool = False

    @classmethod
    def make(
        cls, spec: str | Path | DatasetSpec, logical_date: dt.date | dt.datetime | str | None, home: str | Path | None
    ) -> RunContext:
        spec = spec if isinstance(spec, DatasetSpec) else load_spec(spec)
        if logical_date is None:
            logical_date = dt.datetime.now(dt.UTC).date()
        elif isinstance(logical_date, str):
            try:
                logical_date = dt.date.fromisoformat(logical_date)
            except ValueError:
                raise SpecError(f"--date {logical_date!r} is not a date", hint="use YYYY-MM-DD") from None
        return cls(spec, Workspace.from_env(home), logical_date, run_id_for(logical_date))

    @property
    def dataset(self) -> str:
        return self.spec.id

    @property
    def landing(self) -> Path:
        return self.workspace.landing(self.dataset, self.run_id)

    @property
    def staging(self) -> Path:
        return self.workspace.staging(self.dataset, self.run_id)

    @property
    def quarantine(self) -> Path:
        return self.workspace.quarantine(self.dataset, self.run_id)

    @property
    def reports(self) -> Path:
        return self.workspace.reports(self.dataset, self.run_id)

    def step_file(self, step: str) -> Path:
        return self.reports / "steps" / f"{step}.json"

    def write_step(self, step: str, payload: dict[str, Any]) -> dict[str, Any]:
        payload = {"dataset": self.dataset, "run_id": self.run_id, "step": step, "finished_at": _now(), **payload}
        target = self.step_file(step)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        tmp.replace(target)
        return payload

    def read_step(self, step: str) -> dict[str, Any]:
        path = self.step_file(step)
        if not path.is_file():
            raise GovdataError(
                f"{self.dataset} run {self.run_id}: the {step} step has not run yet",
                hint=f"run the steps in order, or `govdata run {self.spec.path}` for all five",
            )
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def catalog(self) -> Any:
        from catalog.store import CatalogStore

        return CatalogStore(self.workspace.catalog_url)

    def exchange(self) -> Any:
        from exchange.store import open_store

        return open_store(self.workspace)


def _fresh_dir(target: Path) -> Path:
    """An empty sibling folder to build ``target`` in (renamed over it when done)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.incoming-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    return tmp


def _replace_dir(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


# --- 1 collect ---------------------------------------------------------------------------------


def collect(
    spec: str | Path | DatasetSpec,
    logical_date: Any = None,
    *,
    home: str | Path | None = None,
    lineage_parent: lineage.Parent | None = None,
) -> dict[str, Any]:
    """Read the source into an immutable landing copy (Parquet, row count, sha256)."""
    ctx = spec if isinstance(spec, RunContext) else RunContext.make(spec, logical_date, home)
    return lineage.observe(ctx, "collect", _collect, parent=lineage_parent)


def _collect(ctx: RunContext) -> dict[str, Any]:
    s = ctx.spec
    where = f"{s.path} source"
    options = render_source_options(s, ctx.logical_date)  # e.g. path: exports/{ds}.csv
    connector = make_connector(s.source.connector, options, base_dir=s.base_dir, where=where)
    since = None
    if s.publish.mode == "merge":
        from exchange import publishing

        # The high-water mark of the latest version where this workspace publishes (its own store
        # or a remote exchange): the local catalog has no versions when the exchange is remote.
        with publishing.target(ctx.workspace) as target:
            latest = target.latest(s.id)
        since = latest.watermark if latest is not None else None
    tmp = _fresh_dir(ctx.landing)
    try:
        result = connector.collect(tmp, since=since)
        total = result.rows + result.rejected
        if total == 0 and since is None:
            raise SourceError(
                f"{connector.describe()}: the source has no data rows (columns: {', '.join(result.columns) or 'none'})",
                hint="check that the export is complete; nothing was published",
            )
        ignored = cleanse_mod.check_schema(s, result.columns, connector.describe())
        manifest = {
            "dataset": s.id,
            "run_id": ctx.run_id,
            "source": connector.describe(),
            "connector": s.source.connector,
            "rows": result.rows,
            "rejected": result.rejected,
            "source_sha256": result.source_sha256,
            "landing_sha256": sha256_file(tmp / DATA_FILE),
            "columns": result.columns,
            "ignored_columns": ignored,
            "since": since,
            "watermark": result.watermark,
            "details": result.details,
            "collected_at": _now(),
        }
        (tmp / "manifest.json").write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
        )
        for f in tmp.iterdir():
            f.chmod(0o444)  # the landing copy is immutable
        _replace_dir(tmp, ctx.landing)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ctx.write_step(
        "collect",
        {
            "rows": result.rows + result.rejected,
            "landed": result.rows,
            "rejected": result.rejected,
            "source": connector.describe(),
            "source_sha256": result.source_sha256,
            "watermark": result.watermark,
            "since": since,
            "ignored_columns": ignored,
            "details": result.details,
            "outputs": {"landing": str(ctx.landing)},
        },
    )


# --- 2 cleanse ---------------------------------------------------------------------------------


def cleanse(
    spec: Any, logical_date: Any = None, *, home: str | Path | None = None, lineage_parent: lineage.Parent | None = None
) -> dict[str, Any]:
    """Standardise, cast and de-duplicate the landed rows into the staging folder."""
    ctx = spec if isinstance(spec, RunContext) else RunContext.make(spec, logical_date, home)
    return lineage.observe(ctx, "cleanse", _cleanse, parent=lineage_parent)


def _cleanse(ctx: RunContext) -> dict[str, Any]:
    collected = ctx.read_step("collect")
    tmp = _fresh_dir(ctx.staging)
    try:
        res = cleanse_mod.cleanse(ctx.spec, ctx.landing / DATA_FILE, tmp, where=collected["source"])
        shutil.rmtree(tmp / ".spill", ignore_errors=True)
        _replace_dir(tmp, ctx.staging)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ctx.write_step(
        "cleanse",
        {
            "rows_in": res.rows_in,
            "staged": res.staged,
            "cast_failed": res.cast_failed,
            "duplicates_removed": res.duplicates,
            "filtered": res.filtered,
            "problems": res.problems,
            "outputs": {"staging": str(ctx.staging)},
        },
    )


# --- 3 quality ---------------------------------------------------------------------------------


def _build_quarantine(ctx: RunContext, failures: Path | None) -> int:
    """Write every quarantined row (read rejects, cast failures, gate failures) with its reasons, masked."""
    from pipelines import quarantine

    return quarantine.build(
        ctx.spec,
        landing=ctx.landing,
        staging=ctx.staging,
        target=ctx.quarantine,
        failures=failures,
        run_id=ctx.run_id,
        logical_date=ctx.logical_date.isoformat(),
    )


def _gx_imported() -> bool:
    """Whether the gate (and so GX) is imported already: then the gate prepares in this process."""
    return background.QUALITY_MODULE in sys.modules and not background.busy()


def quality(
    spec: Any, logical_date: Any = None, *, home: str | Path | None = None, lineage_parent: lineage.Parent | None = None
) -> dict[str, Any]:
    """Run the expectation suite on the staged rows; quarantine failing rows; hold or pass."""
    ctx = spec if isinstance(spec, RunContext) else RunContext.make(spec, logical_date, home)
    return lineage.observe(ctx, "quality", _quality, parent=lineage_parent)


def _quality(ctx: RunContext) -> dict[str, Any]:
    collected = ctx.read_step("collect")
    cleansed = ctx.read_step("cleanse")
    s = ctx.spec
    suite = s.suite_path()

    ctx.quarantine.mkdir(parents=True, exist_ok=True)
    gx_dir = ctx.reports / "gx"
    suite_doc = load_suite(suite)
    staged = ctx.staging / cleanse_mod.STAGED_FILE
    from pipelines import quality_prepass

    # The gate's DuckDB work (views, row-key check, the custom conditions computed once) needs no
    # GX: it runs in a process of its own while this one opens the catalog and imports GX (~5 s of
    # one core) — from here when the suite is final, after resolving its references otherwise.
    overlap = not _gx_imported()
    prepass = None
    if overlap and not references.has_references(suite_doc):
        prepass = quality_prepass.start(staged, suite, gx_dir, row_column=ROW_COLUMN)
    try:
        store = ctx.catalog()
        # Reference checks (040200) get their values from the reference dataset's published version.
        resolution = references.resolve(
            suite, suite_doc, spec=s, store=store, exchange=ctx.exchange(), target_dir=ctx.reports
        )
        if overlap and prepass is None:
            prepass = quality_prepass.start(staged, resolution.suite_path, gx_dir, row_column=ROW_COLUMN)
        from expectations import gate
    except BaseException:
        if prepass is not None:
            prepass.close()
        raise
    result = gate.validate(
        staged,
        resolution.suite_path,
        report_dir=gx_dir,
        dataset=s.id,
        run_id=ctx.run_id,
        row_column=ROW_COLUMN,
        sensitive_columns=s.sensitive_columns,
        prepass=prepass,
    )
    failures = result.failures_path
    gate_failed_rows = 0
    if failures is not None:
        con = connect()
        try:
            row = con.execute(
                f"SELECT count(DISTINCT {ident(ROW_COLUMN)}) FROM read_parquet({path_lit(failures)})"
            ).fetchone()
            gate_failed_rows = int(row[0]) if row else 0
        finally:
            con.close()
    accepted = cleansed["staged"] - gate_failed_rows
    quarantined = _build_quarantine(ctx, failures)
    outcomes = [
        {
            "name": o.name,
            "type": o.expectation_type,
            "column": o.column,
            "success": o.success,
            "row_level": o.row_level,
            "element_count": o.element_count,
            "unexpected_count": o.unexpected_count,
            "missing_count": o.missing_count,
            "observed_value": o.observed_value,
        }
        for o in result.outcomes
    ]
    total = collected["rows"]
    share = quarantined / total if total else 0.0
    blocking = [o["name"] for o in outcomes if not o["success"] and not o["row_level"]]
    reasons = [f"dataset-level expectation failed: {name}" for name in blocking]
    if share > s.quality.max_quarantine_share:
        reasons.append(
            f"{quarantined} of {total} rows quarantined ({share:.1%}), above the limit of {s.quality.max_quarantine_share:.1%}"
        )
    latest = store.latest_version(s.id)
    card, measured = scorecard.compute(
        s,
        run_id=ctx.run_id,
        logical_date=ctx.logical_date,
        entries=suite_doc["expectations"],
        outcomes=outcomes,
        row_count=result.row_count,
        failures=failures,
        collected=collected,
        cleansed=cleansed,
        quarantined=quarantined,
        accepted=accepted,
        gate="held" if reasons else "passed",
        previous_run_id=latest.run_id if latest is not None else None,
        references=resolution.references,
        row_column=ROW_COLUMN,
    )
    for o, m in zip(outcomes, measured, strict=True):
        rate = (m.evaluated - m.failed) / m.evaluated if m.evaluated else 1.0
        o.update(indicator=m.indicator, dimension=scorecard.INDICATORS[m.indicator].dimension, pass_rate=round(rate, 6))
    scorecard.write(card, ctx.reports)
    store.save_scorecard(card)  # held runs too: the trend shows them
    summary = {
        "success": not reasons,
        "held_because": reasons,
        "quarantined_share": round(share, 6),
        "expectations": outcomes,
        "failed_expectations": [o for o in outcomes if not o["success"]],
        "validation_result": str(result.validation_result_path),
        **scorecard.summary(card),
        "scorecard": card,
    }
    report = ctx.write_step(
        "quality",
        {
            "status": "passed" if not reasons else "held",
            "accepted": accepted,
            "quarantined_by_gate": gate_failed_rows,
            "quarantined": quarantined,
            "quality": summary,
            "failures": str(failures) if failures is not None else None,
            "outputs": {"quarantine": str(ctx.quarantine), "reports": str(ctx.reports)},
        },
    )
    if reasons:
        raise QualityGateHeld(
            f"{s.id} run {ctx.run_id} held by the quality gate: " + "; ".join(reasons),
            report=report,
            hint=f"look at the quarantined rows in {ctx.quarantine} and the validation result in {gx_dir}; "
            "fix the source and run again",
        )
    return report


# --- 4 catalog ---------------------------------------------------------------------------------


def _upstream(store: Any, checked: dict[str, Any]) -> list[str]:
    """Resource codes of the published datasets the run read: the references of its quality checks."""
    codes: list[str] = []
    for ref in (checked.get("quality") or {}).get("scorecard", {}).get("references", []):
        entry = store.entry(ref["dataset"])
        if entry is not None and entry.resource_code not in codes:
            codes.append(entry.resource_code)
    return codes


def _schema(spec: DatasetSpec) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "title": c.title,
            "type": c.type,
            "type_code": c.type_code,
            "duckdb_type": DUCKDB_TYPES[c.type],
            "primary_key": c.primary_key,
            "nullable": c.nullable,
            "sensitive": c.sensitive,
        }
        for c in spec.columns
    ]


def _fingerprint(con: Any, data: Path, spec: DatasetSpec) -> tuple[int, str]:
    """Row count and an order-independent fingerprint of the rows and the schema.

    Identical content is recognised by this, not by the file's bytes: sorting 5M wide rows only
    to make the file byte-identical would cost more than the rest of the publish. The count, the
    XOR and the sum of the 64-bit row hashes together make an accidental match between different
    contents vanishingly unlikely (it detects change; it is not a security checksum — the file's
    sha256 in the manifest is). DuckDB's hash may change between DuckDB versions, which at worst
    republishes identical data once after an upgrade.
    """
    cols = ", ".join(ident(c.name) for c in spec.columns)
    row = con.execute(
        f"SELECT count(*), coalesce(bit_xor(hash({cols})), 0), coalesce(sum(hash({cols})::HUGEINT), 0) "
        f"FROM read_parquet({path_lit(data)})"
    ).fetchone()
    count, xor, total = (int(x) for x in row) if row else (0, 0, 0)
    schema = json.dumps([(c.name, c.type) for c in spec.columns])
    digest = hashlib.sha256(f"{count}:{xor}:{total}:{schema}".encode()).hexdigest()
    return count, digest


def catalog(
    spec: Any, logical_date: Any = None, *, home: str | Path | None = None, lineage_parent: lineage.Parent | None = None
) -> dict[str, Any]:
    """Register the catalog entry and prepare the candidate version (canonical file + checksum)."""
    ctx = spec if isinstance(spec, RunContext) else RunContext.make(spec, logical_date, home)
    return lineage.observe(ctx, "catalog", _catalog, parent=lineage_parent)


def _catalog(ctx: RunContext) -> dict[str, Any]:
    collected = ctx.read_step("collect")
    checked = ctx.read_step("quality")
    if checked.get("status") != "passed":
        raise QualityGateHeld(f"{ctx.dataset} run {ctx.run_id} was held by the quality gate; nothing to catalog")
    s = ctx.spec
    store = ctx.catalog()
    store.register(s, source=collected["source"])
    from exchange import publishing

    # The latest version where this workspace publishes: its own store, or a remote exchange.
    with publishing.target(ctx.workspace) as published:
        latest = published.latest(s.id)
        previous = None
        if (s.publish.mode == "merge" or ctx.merge_with_published) and latest is not None:
            previous = published.data(latest)
    names = ", ".join(ident(c.name) for c in s.columns)
    # The accepted rows: staged rows the gate did not quarantine (never copied to a file of their own).
    accepted = f"read_parquet({path_lit(ctx.staging / cleanse_mod.STAGED_FILE)})"
    if checked.get("failures"):
        accepted = (
            f"(SELECT * FROM {accepted} ANTI JOIN (SELECT DISTINCT {ident(ROW_COLUMN)} FROM "
            f"read_parquet({path_lit(Path(checked['failures']))})) USING ({ident(ROW_COLUMN)}))"
        )
    query = f"SELECT {names} FROM {accepted}"
    if previous is not None:
        keys = ", ".join(ident(k) for k in s.primary_key)
        kept = ", ".join(f"p.{ident(c.name)}" for c in s.columns)
        replaced = f"ANTI JOIN {accepted} a USING ({keys}) " if keys else ""  # no key: the rows are added
        query = f"SELECT {kept} FROM read_parquet({path_lit(previous)}) p {replaced}UNION ALL {query}"
    candidate = ctx.staging / CANDIDATE_FILE
    con = connect(ctx.staging / ".spill")
    try:
        # The published schema is the spec's, not the source's: DuckDB carries a source's NOT NULL
        # into the Parquet file (as "required"), so identical data would checksum differently
        # depending on where it came from. This form is the one DuckDB does not fold away.
        canonical = ", ".join(
            f"CASE WHEN {ident(c.name)} IS NULL THEN NULL ELSE {ident(c.name)} END AS {ident(c.name)}"
            for c in s.columns
        )
        copy_to_parquet(con, f"SELECT {canonical} FROM ({query})", candidate)
        # The file's sha256 (hashlib releases the GIL) while DuckDB computes the fingerprint.
        with ThreadPoolExecutor(max_workers=1) as pool:
            hashing = pool.submit(sha256_file, candidate)
            rows, fingerprint = _fingerprint(con, candidate, s)
            digest = hashing.result()
    finally:
        con.close()
        shutil.rmtree(ctx.staging / ".spill", ignore_errors=True)
    unchanged = latest is not None and latest.fingerprint == fingerprint
    return ctx.write_step(
        "catalog",
        {
            "entry": s.id,
            "resource_code": s.catalog.resource_code,
            "candidate_rows": rows,
            "content_sha256": digest,
            "fingerprint": fingerprint,
            "unchanged": unchanged,
            "current_version": latest.number if latest else None,
            "schema": _schema(s),
            "outputs": {"candidate": str(candidate)},
        },
    )


# --- 5 publish ---------------------------------------------------------------------------------


def publish(
    spec: Any, logical_date: Any = None, *, home: str | Path | None = None, lineage_parent: lineage.Parent | None = None
) -> dict[str, Any]:
    """Commit the candidate as the next version: into the workspace's exchange store, or to a remote exchange.

    The commit itself (unchanged check, schema-change gate, store, catalog row, audit) is
    :func:`exchange.publishing.commit`, the same on both paths; ``GOVDATA_EXCHANGE_URL`` picks the path.
    """
    ctx = spec if isinstance(spec, RunContext) else RunContext.make(spec, logical_date, home)
    return lineage.observe(ctx, "publish", _publish, parent=lineage_parent)


def _publish(ctx: RunContext) -> dict[str, Any]:
    collected = ctx.read_step("collect")
    checked = ctx.read_step("quality")
    prepared = ctx.read_step("catalog")
    s = ctx.spec
    store = ctx.catalog()
    from catalog import schema as schema_changes
    from exchange import publishing

    candidate = ctx.staging / CANDIDATE_FILE
    with publishing.target(ctx.workspace) as target:
        if not s.publish.enabled:
            latest = target.latest(s.id)
            if latest is None or latest.fingerprint != prepared["fingerprint"]:
                return ctx.write_step("publish", {"status": "skipped", "version": None, "uri": None, "outputs": {}})
        version = publishing.prepare(
            s,
            run_id=ctx.run_id,
            collected=collected,
            checked=checked,
            prepared=prepared,
            data=candidate,
            upstream=_upstream(store, checked),
        )
        outcome = target.publish(s, version, candidate)
    if outcome.status == "unchanged":
        # The same run key may have published it already (a resumed publish): that is not "unchanged".
        again = "published" if outcome.same_run else "unchanged"
        scorecard.record_publication(store, ctx.reports, s.id, ctx.run_id, outcome.version or 0, again)
        return ctx.write_step(
            "publish",
            {
                "status": "unchanged",
                "version": outcome.version,
                "uri": outcome.location,
                "rows": outcome.rows,
                "content_sha256": outcome.content_sha256,
                "outputs": {"published": outcome.location},
            },
        )
    if outcome.status == "held":
        held = ctx.write_step(
            "publish",
            {
                "status": "held",
                "version": None,
                "uri": None,
                "held_because": outcome.held_because,
                "schema_change": outcome.schema_change,
                "outputs": {},
            },
        )
        raise schema_changes.SchemaChangeHeld(
            f"{s.id} run {ctx.run_id} held: {'; '.join(outcome.held_because)}", report=held, hint=outcome.hint
        )
    scorecard.record_publication(store, ctx.reports, s.id, ctx.run_id, outcome.version or 0, "published")
    return ctx.write_step(
        "publish",
        {
            "status": "published",
            "version": outcome.version,
            "uri": outcome.location,
            "rows": outcome.rows,
            "content_sha256": outcome.content_sha256,
            "schema_change": outcome.schema_change,
            "review": outcome.review,
            "entry_status": outcome.entry_status,
            "outputs": {"published": outcome.location},
        },
    )


# --- the whole run -----------------------------------------------------------------------------


def run(
    spec: str | Path | DatasetSpec,
    logical_date: Any = None,
    *,
    home: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run all five steps and return the run report (also written as ``run_report.json``).

    A quality hold returns a report with status ``held`` (it does not raise); other errors raise.
    """
    ctx = RunContext.make(spec, logical_date, home)
    started = _now()
    background.start_quality_import()  # ~8 s of imports, overlapped with collect and cleanse
    steps = {"collect": collect, "cleanse": cleanse, "quality": quality, "catalog": catalog, "publish": publish}
    for name in STEPS:
        ctx.step_file(name).unlink(missing_ok=True)
    status = "published"
    for name, fn in steps.items():
        if progress:
            progress(name, "start")
        try:
            fn(ctx)  # type: ignore[arg-type]
        except QualityGateHeld:
            status = "held"
            if progress:
                progress(name, "held")
            break
        except GovdataError as exc:
            _record_failure(ctx, name, started, exc)
            raise
        if progress:
            progress(name, "done")
    report = build_report(ctx, started=started, status=status)
    from pipelines import site  # the reports site: this run's Data Docs, the scorecard pages (best effort)

    site.after_run(ctx.workspace, ctx.spec, ctx.run_id)
    return report


def _record_failure(ctx: RunContext, step: str, started: str, exc: GovdataError) -> None:
    """Keep a failed run visible in `govdata status` (best effort: the catalog may be the problem)."""
    report = {
        "dataset": ctx.dataset,
        "run_id": ctx.run_id,
        "status": "failed",
        "failed_step": step,
        "error": exc.message,
        "hint": exc.hint,
        "started_at": started,
        "finished_at": _now(),
    }
    try:
        ctx.reports.mkdir(parents=True, exist_ok=True)
        (ctx.reports / "run_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
        ctx.catalog().record_run(ctx.dataset, ctx.run_id, "failed", None, report)
    except (GovdataError, OSError) as again:
        log.warning("could not record the failed run %s/%s: %s", ctx.dataset, ctx.run_id, again)


def build_report(ctx: RunContext, *, started: str, status: str) -> dict[str, Any]:
    """The run report: exact row accounting, version, quality summary, output locations."""
    collected = ctx.read_step("collect")
    cleansed = ctx.read_step("cleanse")
    checked = ctx.read_step("quality")
    published = ctx.read_step("publish") if status == "published" else None
    # Held at publish (a breaking schema change waiting for approval): the reason joins the report.
    held = ctx.read_step("publish") if status == "held" and ctx.step_file("publish").is_file() else None
    if held is not None and held.get("finished_at", "") < checked.get("finished_at", ""):
        held = None  # left by an earlier attempt of the steps
    if published is not None and published["status"] == "unchanged":
        status = "unchanged"
    rows_published = checked["accepted"] if status in ("published", "unchanged") else 0
    rows = {
        "collected": collected["rows"],
        "published": rows_published,
        "quarantined": checked["quarantined"],
        "quarantined_detail": {
            "malformed_at_read": collected["rejected"],
            "cast_failed": cleansed["cast_failed"],
            "failed_expectations": checked["quarantined_by_gate"],
        },
        "duplicates_removed": cleansed["duplicates_removed"],
        "filtered": cleansed["filtered"],
        "held": checked["accepted"] if status == "held" else 0,
    }
    accounted = (
        rows["published"]
        + rows["held"]
        + rows["quarantined"]
        + rows["duplicates_removed"]
        + sum(rows["filtered"].values())
    )
    if accounted != rows["collected"]:
        raise GovdataError(
            f"{ctx.dataset} run {ctx.run_id}: row accounting does not balance ({accounted} accounted of {rows['collected']})",
            hint="this is a bug in govdata; please report it with the run folder",
        )
    report = {
        "dataset": ctx.dataset,
        "run_id": ctx.run_id,
        "logical_date": ctx.logical_date.isoformat(),
        "status": status,
        "started_at": started,
        "finished_at": _now(),
        "source": collected["source"],
        "rows": rows,
        "version": published["version"] if published else None,
        "version_rows": published.get("rows") if published else None,
        "content_sha256": published.get("content_sha256") if published else None,
        "quality": scorecard.with_final_scorecard(checked["quality"], ctx.reports),
        "problems": cleansed["problems"],
        "outputs": {
            "landing": str(ctx.landing),
            "staging": str(ctx.staging),
            "quarantine": str(ctx.quarantine) if rows["quarantined"] else None,
            "reports": str(ctx.reports),
            "published": published["uri"] if published else None,
        },
    }
    if held is not None and held.get("held_because"):
        report["quality"]["held_because"] = [*report["quality"].get("held_because", []), *held["held_because"]]
    report["schema_change"] = (published or held or {}).get("schema_change")
    path = ctx.reports / "run_report.json"
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    ctx.catalog().record_run(
        ctx.dataset, ctx.run_id, status, report["version"], json.loads(json.dumps(report, default=str))
    )
    return report
