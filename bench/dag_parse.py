"""Benchmark: parsing ``dags/govdata_datasets.py`` with 500 dataset specs, against an empty datasets folder.

``make bench-dag-parse`` (or ``.venv/bin/python bench/dag_parse.py [--sizes 0,50,500] [--repeat 5]``)
does this:

1. writes, for each size N, N valid dataset specs into a work folder: copies of the example
   departments' specs (``datasets/*/*.yaml``) in turn, each with its own id, name and resource
   code (the template's classification digits and a sequence number of its own), in ten
   department folders; every spec is loaded with :func:`pipelines.spec.load_spec` and the
   resource codes are checked to be unique before anything is measured. N = 0 is an empty
   folder: the fixed cost;
2. measures each size ``--repeat`` times, each in a fresh process under ``bench/run.py``'s meter
   (wall time, peak RSS, other processes' CPU meanwhile; it first waits up to ``--max-wait`` s
   for an idle machine) with ``GOVDATA_DATASETS_DIR`` pointing at that folder. The process
   (``bench/dag_parse.py --parse``) times, in order: importing Airflow's DagBag (then
   ``gc.freeze()``, as the dag-processor does before it forks a parser); the dag-processor's own
   parse of the one file, ``BundleDagBag(dag_folder=dags/govdata_datasets.py, bundle_path=dags/,
   bundle_name="dags-folder", load_op_links=False)``; the file's entry in
   ``dagbag_stats`` (the duration Airflow itself records for the file); serialising every DAG,
   which the dag-processor does next (``airflow.dag_processing.processor._serialize_dags``; its
   ``dag_file_processor_timeout``, 50 s by default, covers parse and serialisation);
3. once more for the largest size (``--no-breakdown`` skips it), in one process with Airflow
   loaded first: the time of each phase over all specs (YAML, validation, building each kind of
   DAG, serialising it), the median of three passes;
4. reports per size the median, min and max over the repeats, the DAG count, import errors
   (must be 0) and skipped specs (must be 0), the peak RSS, and the cost per spec above the
   empty folder; checks the target: the file's parse (``dagbag_stats``) with 500 specs ≤ 2 s,
   median. A cold process also pays for importing Airflow (the empty folder's figure); the
   dag-processor does not: it forks its parsing processes with Airflow loaded;
5. writes ``bench/results/dag_parse-<UTC timestamp>.json`` and ``.md`` and prints the tables.

Exit status: 0, 1 when a parse failed or a spec did not load, 3 when the target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for _path in (BENCH, REPO):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import run as bench  # noqa: E402  (bench/run.py: the meter, the idle wait, machine and commit facts)

RESULTS = BENCH / "results"
DAG_FILE = REPO / "dags" / "govdata_datasets.py"
TEMPLATES = sorted((REPO / "datasets").glob("*/*.yaml"))
DEPARTMENTS = 10
DEFAULT_SIZES = (0, 50, 500)
TARGET_SPECS = 500
TARGET_SECONDS = 2.0
EXIT_FAILED = 1
EXIT_TARGET_MISSED = 3
PIPELINE_PREFIX = "govdata__"  # one pipeline DAG per spec (the file may add others per spec)
#: Modules a parse must not import (the parse-budget test holds the same line).
HEAVY = ("great_expectations", "pandas", "duckdb", "pipelines.runner", "expectations")


# --- the parse (runs in its own fresh process) --------------------------------------------------


def parse(out: Path) -> int:
    """Parse the DAG file once as Airflow does; write the timings to ``out`` (JSON)."""
    started = time.perf_counter()
    from airflow.dag_processing.dagbag import BundleDagBag

    imported = time.perf_counter()
    gc.freeze()  # as the dag-processor does before it forks a parsing process: GC skips what is loaded
    # As the dag-processor's parse of one file does (airflow.dag_processing.processor._parse_file).
    bag = BundleDagBag(
        dag_folder=str(DAG_FILE), bundle_path=DAG_FILE.parent, bundle_name="dags-folder", load_op_links=False
    )
    parsed = time.perf_counter()
    serialize_s = None
    try:
        import structlog
        from airflow.dag_processing.processor import _serialize_dags
    except ImportError:  # a private function: report what can be measured if Airflow moves it
        pass
    else:
        serialize_started = time.perf_counter()
        _, serialization_errors = _serialize_dags(bag, structlog.get_logger())
        serialize_s = time.perf_counter() - serialize_started
        bag.import_errors.update(serialization_errors)
    stats = bag.dagbag_stats  # one file parsed: one entry (its ``file`` is "." relative to itself)
    result = {
        "import_airflow_s": imported - started,
        "dagbag_s": parsed - imported,
        "dagbag_stats_s": stats[0].duration.total_seconds() if stats else None,
        "serialize_s": serialize_s,
        "dags": len(bag.dags),
        "pipeline_dags": sum(1 for dag_id in bag.dags if dag_id.startswith(PIPELINE_PREFIX)),
        "tasks": sum(len(d.tasks) for d in bag.dags.values()),
        "import_errors": {str(k): str(v)[-500:] for k, v in bag.import_errors.items()},
        "warnings": sum(len(w) for w in bag.captured_warnings.values()),
        "heavy_modules": [m for m in HEAVY if m in sys.modules],
        "modules": len(sys.modules),
    }
    out.write_text(json.dumps(result), encoding="utf-8")
    return 0


def breakdown(out: Path) -> int:
    """Where a parse's time goes, phase by phase, over the specs in ``GOVDATA_DATASETS_DIR``.

    Airflow is imported first (the dag-processor has it loaded), then the DAG file is imported
    with an empty datasets folder (its own imports: pipelines.spec, pydantic, YAML), then each
    phase runs over every spec three times; the median is reported.
    """
    import importlib.util

    import yaml
    from airflow.dag_processing.dagbag import BundleDagBag  # noqa: F401 - loaded first, as in the dag-processor
    from airflow.serialization.serialized_objects import DagSerialization

    gc.freeze()
    root = Path(os.environ["GOVDATA_DATASETS_DIR"])
    empty = out.with_suffix(".empty")
    empty.mkdir()
    os.environ["GOVDATA_DATASETS_DIR"] = str(empty)
    timings: dict[str, Any] = {}
    started = time.perf_counter()
    module_spec = importlib.util.spec_from_file_location("govdata_datasets_breakdown", DAG_FILE)
    assert module_spec is not None and module_spec.loader is not None
    dags = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(dags)
    timings["import the DAG file (no specs)"] = [time.perf_counter() - started]

    from pipelines.spec import DatasetSpec, _Loader, find_specs, load_spec

    def timed(name: str, fn: Any) -> Any:
        result = None
        for _ in range(3):
            phase_started = time.perf_counter()
            result = fn()
            timings.setdefault(name, []).append(time.perf_counter() - phase_started)
        return result

    paths = timed("find_specs", lambda: find_specs(root))
    texts = timed("read the files", lambda: [p.read_text(encoding="utf-8") for p in paths])
    # Each node tree is dropped at once, as load_spec drops it (keeping 500 of them costs GC time).
    timed(
        "yaml.compose (positions for error messages)", lambda: [yaml.compose(t, Loader=_Loader) and None for t in texts]
    )
    data = timed("yaml.load", lambda: [yaml.load(t, Loader=_Loader) for t in texts])
    timed("DatasetSpec.model_validate", lambda: [DatasetSpec.model_validate(d) for d in data])
    specs = timed("load_spec (all of the above)", lambda: [load_spec(p) for p in paths])
    pipelines = timed("pipeline DAGs (_build)", lambda: [dags._build(spec, root) for spec in specs])
    serialized = {"pipeline": pipelines}
    build_deliveries = getattr(dags, "_build_deliveries", None)
    if build_deliveries is not None:
        serialized["delivery"] = timed(
            "delivery DAGs (_build_deliveries)", lambda: [build_deliveries(spec, root) for spec in specs]
        )
    for kind, built in serialized.items():
        timed(f"serialise the {kind} DAGs", lambda built=built: [DagSerialization.to_dict(d) for d in built])
    result = {"specs": len(paths), "phases": {k: statistics.median(v) for k, v in timings.items()}}
    out.write_text(json.dumps(result), encoding="utf-8")
    return 0


# --- the specs ------------------------------------------------------------------------------------


def write_specs(root: Path, count: int) -> list[Path]:
    """``count`` valid specs under ``root``: the example specs in turn, each with its own id and code."""
    import yaml

    from pipelines.errors import GovdataError
    from pipelines.spec import load_spec

    templates = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in TEMPLATES]
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for n in range(count):
        spec = dict(templates[n % len(templates)])
        catalog = dict(spec["catalog"])
        classification_digits = catalog["resource_code"].split("/")[0]
        catalog["resource_code"] = f"{classification_digits}/{n + 1:06d}"
        spec.update(id=f"{spec['id']}_{n:03d}", name=f"{spec['name']}（{n:03d}）", catalog=catalog)
        folder = root / f"department_{n % DEPARTMENTS:02d}"
        folder.mkdir(exist_ok=True)
        path = folder / f"{spec['id']}.yaml"
        path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
        written.append(path)
    codes: dict[str, Path] = {}
    for path in written:
        try:
            loaded = load_spec(path)
        except GovdataError as exc:
            raise SystemExit(f"a generated spec does not load: {exc}") from exc
        code = loaded.catalog.resource_code
        if code in codes:
            raise SystemExit(f"{path}: resource code {code} is already used by {codes[code]}")
        codes[code] = path
    return written


# --- the runner ---------------------------------------------------------------------------------


def _median_min_max(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("wall_s", "import_airflow_s", "dagbag_s", "dagbag_stats_s", "serialize_s", "peak_rss_mib")
    summary: dict[str, Any] = {
        k: _median_min_max([r[k] for r in runs]) for k in keys if all(r.get(k) is not None for r in runs)
    }
    summary["dags"] = sorted({r["dags"] for r in runs})
    summary["pipeline_dags"] = sorted({r["pipeline_dags"] for r in runs})
    summary["tasks"] = sorted({r["tasks"] for r in runs})
    summary["import_errors"] = max(len(r["import_errors"]) for r in runs)
    summary["warnings"] = max(r["warnings"] for r in runs)
    summary["heavy_modules"] = sorted({m for r in runs for m in r["heavy_modules"]})
    summary["modules"] = statistics.median(r["modules"] for r in runs)
    summary["other_processes_cpu_s"] = _median_min_max([r["other_processes_cpu_s"] for r in runs])
    return summary


def _fmt(stat: dict[str, float] | None, digits: int = 2) -> str:
    if not stat:
        return "–"
    return f"{stat['median']:.{digits}f} ({stat['min']:.{digits}f}–{stat['max']:.{digits}f})"


def markdown(results: dict[str, Any]) -> str:
    rows = [
        "| specs | DAGs | import errors | file parse s (`dagbag_stats`) | `DagBag()` s | serialise s "
        "| import Airflow s | process wall s | peak RSS MiB | other CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, s in results["sizes"].items():
        rows.append(
            f"| {size} | {','.join(map(str, s['dags']))} | {s['import_errors']} | {_fmt(s.get('dagbag_stats_s'))} "
            f"| {_fmt(s.get('dagbag_s'))} | {_fmt(s.get('serialize_s'))} | {_fmt(s.get('import_airflow_s'))} "
            f"| {_fmt(s.get('wall_s'))} | {_fmt(s.get('peak_rss_mib'), 0)} | {_fmt(s.get('other_processes_cpu_s'), 1)} |"
        )
    lines = [
        f"Median (min–max) of {results['repeat']} fresh processes per size.",
        "",
        *rows,
        "",
    ]
    per_spec = results.get("per_spec")
    if per_spec:
        lines.append(
            f"Per spec above the empty folder: file parse {per_spec['dagbag_stats_ms']:.2f} ms, serialise "
            f"{per_spec['serialize_ms']:.2f} ms, process wall {per_spec['wall_ms']:.2f} ms, peak RSS "
            f"{per_spec['rss_kib']:.0f} KiB."
        )
        lines.append("")
    parts = results.get("breakdown")
    if parts:
        lines.append(
            f"Where the file's parse goes with {parts['specs']} specs (one process with Airflow loaded first, "
            "median of three passes over all specs):"
        )
        lines.append("")
        lines.append("| phase | s | ms per spec |")
        lines.append("|---|---:|---:|")
        for phase, seconds in parts["phases"].items():
            per = "" if phase.startswith("import") else f"{seconds / max(1, parts['specs']) * 1000:.2f}"
            lines.append(f"| {phase} | {seconds:.3f} | {per} |")
        lines.append("")
    target = results.get("target")
    if target:
        met = "yes" if target["met"] else "**no**"
        lines.append("| target | measured | met |")
        lines.append("|---|---|:-:|")
        lines.append(
            f"| file parse of {TARGET_SPECS} specs ≤ {TARGET_SECONDS:g} s (median) | {target['measured_s']:.2f} s | {met} |"
        )
    return "\n".join(lines) + "\n"


def per_spec_cost(sizes: dict[str, Any]) -> dict[str, float] | None:
    counts = sorted(int(k) for k in sizes)
    if len(counts) < 2 or counts[0] != 0:
        return None
    empty, full = sizes[str(counts[0])], sizes[str(counts[-1])]
    n = counts[-1]

    def delta(key: str, scale: float) -> float:
        if key not in empty or key not in full:
            return float("nan")
        return (full[key]["median"] - empty[key]["median"]) / n * scale

    return {
        "specs": n,
        "dagbag_stats_ms": delta("dagbag_stats_s", 1000),
        "serialize_ms": delta("serialize_s", 1000),
        "wall_ms": delta("wall_s", 1000),
        "rss_kib": delta("peak_rss_mib", 1024),
    }


def _parse_env(folder: Path, home: Path) -> dict[str, str]:
    """What the parse process sees besides this environment: the specs, a throwaway Airflow home."""
    return {
        "GOVDATA_DATASETS_DIR": str(folder),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
    }


def run(args: argparse.Namespace) -> int:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    code = bench.code_version()
    work = Path(tempfile.mkdtemp(prefix="govdata-dag-parse-"))
    home = work / "airflow-home"  # a throwaway AIRFLOW_HOME: the parse writes airflow.cfg there
    home.mkdir()
    results: dict[str, Any] = {
        "benchmark": "dag_parse",
        "started": stamp,
        "repeat": args.repeat,
        "dag_file": str(DAG_FILE.relative_to(REPO)),
        "templates": [str(p.relative_to(REPO)) for p in TEMPLATES],
        "code": code,
        "sizes": {},
        "runs": {},
    }
    failed = False
    try:
        for size in args.sizes:
            folder = work / f"datasets-{size}"
            write_specs(folder, size)
            bench._log(f"{size} specs written to {folder}")
            runs = []
            for i in range(args.repeat):
                out = work / f"parse-{size}-{i}.json"
                env = _parse_env(folder, home)
                command = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, __file__, "--parse", str(out)]
                metered = bench.measure(f"parse-{size}-{i}", command, work, args.max_wait)
                if metered["returncode"] != 0 or not out.is_file():
                    bench._log(f"the parse of {size} specs failed:\n{metered['stderr_tail']}")
                    return EXIT_FAILED
                parsed = json.loads(out.read_text(encoding="utf-8"))
                runs.append({**metered, **parsed})
            summary = summarise(runs)
            results["runs"][str(size)] = runs
            results["sizes"][str(size)] = summary
            if summary["pipeline_dags"] != [size] or summary["import_errors"] or summary["warnings"]:
                failed = True
                bench._log(
                    f"{size} specs: pipeline DAGs {summary['pipeline_dags']}, {summary['import_errors']} import "
                    f"errors, {summary['warnings']} skipped specs"
                )
            bench._log(
                f"{size} specs: file parse {_fmt(summary.get('dagbag_stats_s'))} s, "
                f"process {_fmt(summary.get('wall_s'))} s"
            )
        largest = max(args.sizes)
        if args.breakdown and largest > 0:
            out = work / f"breakdown-{largest}.json"
            env = _parse_env(work / f"datasets-{largest}", home)
            command = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, __file__, "--breakdown", str(out)]
            metered = bench.measure(f"breakdown-{largest}", command, work, args.max_wait)
            if metered["returncode"] == 0 and out.is_file():
                results["breakdown"] = {**json.loads(out.read_text(encoding="utf-8")), "meter": metered}
            else:
                bench._log(f"the breakdown failed (the measurements stand):\n{metered['stderr_tail']}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    results["per_spec"] = per_spec_cost(results["sizes"])
    if str(TARGET_SPECS) in results["sizes"]:
        measured = results["sizes"][str(TARGET_SPECS)]["dagbag_stats_s"]["median"]
        results["target"] = {"measured_s": measured, "limit_s": TARGET_SECONDS, "met": measured <= TARGET_SECONDS}
    results["machine"] = bench.machine()
    results["airflow"] = _airflow_version()
    RESULTS.mkdir(parents=True, exist_ok=True)
    base = RESULTS / f"dag_parse-{stamp}"
    base.with_suffix(".json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    table = markdown(results)
    base.with_suffix(".md").write_text(table, encoding="utf-8")
    print(table)
    bench._log(f"results: {base}.json, .md")
    if failed:
        return EXIT_FAILED
    if results.get("target") and not results["target"]["met"]:
        return EXIT_TARGET_MISSED
    return 0


def _airflow_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow")
    except PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--parse"]:
        return parse(Path(argv[1]))
    if argv[:1] == ["--breakdown"]:
        return breakdown(Path(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=list(DEFAULT_SIZES),
        help="numbers of specs to measure, comma-separated (default 0,50,500; 0 = the empty folder)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per size (default 5)")
    parser.add_argument(
        "--max-wait", type=float, default=60.0, help="seconds to wait for an idle machine before each measurement"
    )
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false", help="skip the phase-by-phase timing")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (generated specs, raw figures)")
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
