"""govdata's quality step, run cold in its own process, with the time of each of its parts.

Two forms, each printing one JSON line (the outcome of every expectation in suite order, the
row accounting and the seconds per part):

``python bench/quality_step.py step SPEC --home HOME --date DATE``
    ``pipelines.runner.quality`` — what a run's quality step (and the Airflow task) does — on a
    workspace where collect and cleanse have run: the gate, counting the failing rows, writing
    the quarantine (masked), reference checks, the scorecard (stored in the catalog) and the
    step report. A gate that holds the dataset is an outcome here, not an error.

``python bench/quality_step.py gate STAGED --suite SUITE --report-dir DIR [--sensitive a,b]``
    ``expectations.gate.validate`` alone on a staged Parquet: GX on DuckDB, listing every
    failing row into ``gate_failures.parquet`` and writing the (masked) validation result.

Both import GX inside the measured process (~5-11 s, DESIGN.md), as a fresh Airflow task does:
the gate form first, the step form where the runner does it (the runner starts the gate's DuckDB
prepass in a process of its own first, :mod:`pipelines.quality_prepass`, so the two overlap).
The parts are timed by wrapping the functions that do them (:data:`PARTS`); the wrappers only
read the clock. What the prepass process measured is reported apart (``parts_concurrent``): it
overlaps the parts of this process. A part whose function no longer exists is reported as
missing, never guessed.
"""

from __future__ import annotations

import argparse
import functools
import importlib.abc
import importlib.util
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

#: (module, attribute path, label) of the functions whose time is reported.
PARTS: list[tuple[str, str, str]] = [
    ("pipelines.quality_prepass", "prepare", "gate: staged views + row-key check"),
    ("pipelines.quality_prepass", "materialise", "gate: custom conditions computed once (flags)"),
    ("pipelines.quality_prepass", "Started.wait", "gate: waiting for the prepass process (after the GX import)"),
    ("expectations.gate", "_run_gx", "gate: GX validation (all expectations)"),
    ("expectations.gate", "_collect_rows", "gate: listing failing rows (gate_failures.parquet)"),
    ("expectations.gate", "_write_result", "gate: validation result JSON"),
    ("pipelines.references", "resolve", "step: reference checks"),
    ("pipelines.runner", "_build_quarantine", "step: writing the quarantine (masked)"),
    ("pipelines.scorecard", "compute", "step: scorecard"),
    ("pipelines.scorecard", "write", "step: scorecard files"),
    ("catalog.store", "CatalogStore.save_scorecard", "step: scorecard into the catalog"),
]


#: Parts that the prepass process reports (``Prepared.seconds``): they overlap the GX import.
CONCURRENT_LABELS = {
    "views + key check": "gate: staged views + row-key check",
    "conditions computed once": "gate: custom conditions computed once (flags)",
}
GX_IMPORT = "import GX + custom expectations"


def _instrument(seconds: dict[str, float], concurrent: dict[str, float], modules: set[str] | None = None) -> list[str]:
    """Wrap :data:`PARTS` so each call adds its wall time to ``seconds``; return the parts not found.

    ``modules`` limits it to those modules. What the prepass process measured (it returns from
    ``Started.wait``) goes to ``concurrent``.
    """
    import importlib

    missing = []
    for module_name, path, label in PARTS:
        if modules is not None and module_name not in modules:
            continue
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            missing.append(label)
            continue
        *parents, attr = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        original = getattr(owner, attr, None) if owner is not None else None
        if not callable(original):
            missing.append(label)
            continue

        def timed(*args: Any, __f: Callable[..., Any] = original, __label: str = label, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = __f(*args, **kwargs)
            finally:
                seconds[__label] = seconds.get(__label, 0.0) + time.perf_counter() - started
            if getattr(result, "process", None) == "own process":  # Started.wait: the prepass's own times
                for key, value in result.seconds.items():
                    concurrent[CONCURRENT_LABELS.get(key, key)] = value
            return result

        setattr(owner, attr, functools.wraps(original)(timed))
    return missing


def _gx_import(seconds: dict[str, float]) -> None:
    started = time.perf_counter()
    import expectations.gate  # noqa: F401  GX, the DuckDB patches and the custom expectations

    seconds[GX_IMPORT] = time.perf_counter() - started


class _WhenImported(importlib.abc.MetaPathFinder):
    """Times the import of the ``expectations`` package (GX) where the step does it, and wraps the
    gate's parts once ``expectations.gate`` is loaded; the step is not made to import GX early."""

    def __init__(self, seconds: dict[str, float], concurrent: dict[str, float], missing: list[str]) -> None:
        self.seconds, self.concurrent, self.missing = seconds, concurrent, missing

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in ("expectations", "expectations.gate"):
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            began = time.perf_counter()
            try:
                execute(module)
            finally:
                if fullname == "expectations":
                    self.seconds[GX_IMPORT] = time.perf_counter() - began
            if fullname == "expectations.gate":
                self.missing += _instrument(self.seconds, self.concurrent, {"expectations.gate"})

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _finish(
    payload: dict[str, Any], seconds: dict[str, float], missing: list[str], started: float, concurrent: dict[str, float]
) -> dict[str, Any]:
    total = time.perf_counter() - started
    parts = {k: round(v, 3) for k, v in seconds.items()}
    parts["other (Python start, spec, glue)"] = round(total - sum(seconds.values()), 3)
    payload.update(
        parts=parts,
        parts_concurrent={k: round(v, 3) for k, v in concurrent.items()},
        parts_missing=missing,
        total_in_process_s=round(total, 3),
        maxrss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    return payload


def run_gate(staged: Path, suite: Path, report_dir: Path, sensitive: list[str], started: float) -> dict[str, Any]:
    seconds: dict[str, float] = {}
    concurrent: dict[str, float] = {}
    _gx_import(seconds)
    missing = _instrument(seconds, concurrent)
    from expectations import gate

    began = time.perf_counter()
    result = gate.validate(
        staged,
        suite,
        report_dir=report_dir,
        dataset="bench_residents",
        run_id="bench",
        row_column="_govdata_row",
        sensitive_columns=sensitive,
    )
    seconds_validate = time.perf_counter() - began
    expectations = [
        {
            "index": i,
            "name": o.name,
            "type": o.expectation_type,
            "column": o.column,
            "success": o.success,
            "row_level": o.row_level,
            "unexpected_count": o.unexpected_count,
            "observed_value": o.observed_value,
        }
        for i, o in enumerate(result.outcomes)
    ]
    payload = {
        "system": "expectations.gate.validate",
        "rows": result.row_count,
        "expectations": expectations,
        "failures": str(result.failures_path) if result.failures_path else None,
        "validate_s": round(seconds_validate, 3),
    }
    return _finish(payload, seconds, missing, started, concurrent)


def run_step(spec: Path, home: Path, date: str, started: float) -> dict[str, Any]:
    from pipelines import runner
    from pipelines.errors import QualityGateHeld

    seconds: dict[str, float] = {}
    concurrent: dict[str, float] = {}
    ctx = runner.RunContext.make(spec, date, home)
    # GX is imported by the step itself, as in a fresh Airflow task: while it imports, the gate's
    # DuckDB work runs in a process of its own (pipelines.quality_prepass).
    missing = _instrument(seconds, concurrent, {m for m, _, _ in PARTS if m != "expectations.gate"})
    sys.meta_path.insert(0, _WhenImported(seconds, concurrent, missing))
    began = time.perf_counter()
    try:
        report = runner.quality(ctx)
        status = "passed"
    except QualityGateHeld as held:
        report = held.report if isinstance(held.report, dict) else ctx.read_step("quality")
        status = "held"
    seconds_step = time.perf_counter() - began
    quality = report["quality"]
    expectations = [
        {
            "index": i,
            "name": o["name"],
            "type": o["type"],
            "column": o["column"],
            "success": o["success"],
            "row_level": o["row_level"],
            "unexpected_count": o["unexpected_count"],
            "observed_value": o["observed_value"],
        }
        for i, o in enumerate(quality["expectations"])
    ]
    payload = {
        "system": "pipelines.runner.quality",
        "status": status,
        "held_because": quality.get("held_because", []),
        "rows": {
            "staged": ctx.read_step("cleanse")["staged"],
            "accepted": report["accepted"],
            "quarantined_by_gate": report["quarantined_by_gate"],
            "quarantined": report["quarantined"],
        },
        "expectations": expectations,
        "failures": report.get("failures"),
        "quarantine": str(ctx.quarantine / runner.QUARANTINE_FILE),
        "step_s": round(seconds_step, 3),
    }
    return _finish(payload, seconds, missing, started, concurrent)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="form", required=True)
    step = sub.add_parser("step", help="pipelines.runner.quality on a prepared workspace")
    step.add_argument("spec", type=Path)
    step.add_argument("--home", type=Path, required=True, help="the workspace (collect and cleanse done)")
    step.add_argument("--date", required=True, help="the run's logical date (YYYY-MM-DD)")
    gate = sub.add_parser("gate", help="expectations.gate.validate on a staged Parquet")
    gate.add_argument("staged", type=Path)
    gate.add_argument("--suite", type=Path, required=True)
    gate.add_argument("--report-dir", type=Path, required=True)
    gate.add_argument("--sensitive", default="", help="comma-separated sensitive columns (masked in the result)")
    args = parser.parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.form == "step":
        payload = run_step(args.spec, args.home, args.date, started)
    else:
        sensitive = [c for c in args.sensitive.split(",") if c]
        payload = run_gate(args.staged, args.suite, args.report_dir, sensitive, started)
    print(json.dumps(payload, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
