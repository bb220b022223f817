"""Benchmark: govdata's quality step against one hand-written DuckDB SQL pass and GX on pandas, in one run.

``make bench-quality`` (or ``.venv/bin/python bench/quality_run.py [--rows N] [--skip-peer]``):

1. generates ``bench/data/quality_10m.staged.parquet`` (or the ``--rows`` variant) unless it
   exists and was written by the current ``bench/quality_generate.py``, and reads it once so
   every system starts with the file in the page cache;
2. prepares a workspace as a run leaves it before its quality step (not measured): the file
   without its row key as the source, ``collect`` (parquet connector) and ``cleanse`` of
   ``bench/quality_spec.yaml``; the staged file the cleanse step writes is checked to hold
   exactly the generated rows;
3. measures, one after the other, each in its own process (``bench/run.py``'s meter: wall
   time, ``ru_maxrss`` of the process, other processes' CPU time, an idle-machine wait first):

   ``onepass``  ``bench/quality_onepass.py``: the limit, one hand-written SQL statement;
   ``gate``     ``bench/quality_step.py gate``: ``expectations.gate.validate`` on the staged Parquet;
   ``step``     ``bench/quality_step.py step``: ``pipelines.runner.quality``, the quality step of a run
                (the gate, the quarantine, the scorecard);
   ``peer``     ``bench/quality_peer.py``: GX on a pandas frame (skipped with ``--skip-peer``);

4. checks that every expectation's count is identical in all systems (unexpected rows of map
   expectations, the observed row count, the outcome of the column-set check) and that the
   failing rows are the same rows in ``gate``, ``step`` and ``peer``; then the targets: the
   quality step ≤ 2.5 × the one-pass SQL, ≥ 8 × faster than GX on pandas, peak RSS under
   1.5 GiB (``step`` and ``gate`` are each held to them);
5. writes ``bench/results/quality-<UTC timestamp>.json`` and ``.md`` and prints the table.

Exit status: 0 all targets met; 3 a performance target missed; 4 the counts or the failing rows
differ between systems (the table says which expectation); 1 a system failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import quality_generate  # noqa: E402
import run as bench  # noqa: E402  (bench/run.py: the meter, the idle wait, machine and commit facts)

SPEC = BENCH / "quality_spec.yaml"
SUITE = BENCH / "quality_suite.json"
LOGICAL_DATE = "2026-11-24"
DATASET = "bench_residents"
ROW = "_govdata_row"
SYSTEMS = ("onepass", "gate", "step", "peer")
LABELS = {
    "onepass": "one-pass DuckDB SQL (the limit)",
    "gate": "`expectations.gate.validate`",
    "step": "quality step (`pipelines.runner.quality`)",
    "peer": "GX on pandas",
}

TARGET_LIMIT_RATIO = 2.5  # quality step <= 2.5 x the one-pass SQL
TARGET_PEER_SPEEDUP = 8.0  # GX on pandas >= 8 x the quality step
TARGET_RSS_MIB = 1536.0  # 1.5 GiB
EXIT_TARGET_MISSED = 3
EXIT_MISMATCH = 4


def _log(message: str) -> None:
    bench._log(message)


def _no_wait(max_wait: float, threshold: float = 0.0, window: float = 0.0) -> dict[str, Any]:
    """``--max-wait 0``: measure at once; record the load only (the results say the machine was not checked)."""
    return {"busy_share_before": None, "waited_s": 0.0, "cpus": os.cpu_count(), "loadavg_before": list(os.getloadavg())}


# --- data and workspace ----------------------------------------------------------------------------


def prepare_data(rows: int, data_dir: Path) -> tuple[Path, dict[str, Any]]:
    path = quality_generate.output_path(rows, data_dir)
    info: dict[str, Any] = {"path": _shown(path), "rows": rows, "generated_now": False}
    if not quality_generate.is_current(path, rows):
        _log(f"generating {path.name} ({rows:,} rows)")
        started = time.perf_counter()
        quality_generate.generate(rows, path)
        info.update(generated_now=True, generate_s=round(time.perf_counter() - started, 1))
    info["bytes"] = path.stat().st_size
    _warm(path)
    return path, info


def _warm(path: Path) -> None:
    with path.open("rb") as f:  # every system reads a cached file
        while f.read(64 * 2**20):
            pass


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _lit(path: Path) -> str:
    return _sql_str(str(path))


def derived_spec(source: Path, work: Path) -> Path:
    """bench/quality_spec.yaml pointing at ``source`` and at bench/quality_suite.json by absolute paths."""
    text = SPEC.read_text(encoding="utf-8")
    for old, new in (
        ("path: data/quality_10m.source.parquet", f"path: {json.dumps(str(source))}"),
        ("suite: quality_suite.json", f"suite: {json.dumps(str(SUITE))}"),
    ):
        if old not in text:
            raise SystemExit(f"{SPEC}: expected the line {old!r}; update bench/quality_run.py with the spec")
        text = text.replace(old, new)
    target = work / "quality_spec.yaml"
    target.write_text(text, encoding="utf-8")
    return target


def prepare_workspace(staged: Path, spec: Path, home: Path) -> dict[str, Any]:
    """Collect and cleanse ``spec`` into ``home`` (in this process); compare the staged rows with ``staged``."""
    import duckdb

    from pipelines import runner

    source = spec.parent / "source.parquet"
    times: dict[str, float] = {}
    started = time.perf_counter()
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(
            f"COPY (SELECT * EXCLUDE ({ROW}) FROM read_parquet({_lit(staged)})) TO {_lit(source)} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
    times["source"] = time.perf_counter() - started
    ctx = runner.RunContext.make(spec, LOGICAL_DATE, home)
    for step in (runner.collect, runner.cleanse):
        started = time.perf_counter()
        step(spec, LOGICAL_DATE, home=home)
        times[step.__name__] = time.perf_counter() - started
    source.unlink()
    cleansed = ctx.read_step("cleanse")
    staged_by_cleanse = ctx.staging / "staged.parquet"
    started = time.perf_counter()
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        fingerprint = "SELECT count(*), sum(hash(t)) FROM read_parquet({}) AS t"  # t: the whole row
        ours = con.execute(fingerprint.format(_lit(staged_by_cleanse))).fetchone()
        generated = con.execute(fingerprint.format(_lit(staged))).fetchone()
    times["compare"] = time.perf_counter() - started
    return {
        "seconds": {k: round(v, 1) for k, v in times.items()},
        "collected": ctx.read_step("collect")["rows"],
        "staged": cleansed["staged"],
        "cast_failed": cleansed["cast_failed"],
        "duplicates_removed": cleansed["duplicates_removed"],
        "staged_matches_generated": ours == generated,
    }


# --- comparison --------------------------------------------------------------------------------------


def _label(entry: dict[str, Any]) -> str:
    kwargs = entry.get("kwargs") or {}
    return str(entry["type"]) + (f"({kwargs['column']})" if isinstance(kwargs.get("column"), str) else "")


def _value(outcome: dict[str, Any]) -> Any:
    """What is compared: the observed row count, the column-set outcome, or the unexpected-row count."""
    if outcome["type"] == "expect_table_row_count_to_be_between":
        return outcome.get("observed_value")
    if outcome["type"] == "expect_table_columns_to_match_set":
        return "pass" if outcome["success"] else "fail"
    return outcome.get("unexpected_count")


def compare_counts(entries: list[dict[str, Any]], systems: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for index, entry in enumerate(entries):
        values = {}
        for name, s in systems.items():
            outcomes = s.get("expectations") or []
            values[name] = _value(outcomes[index]) if index < len(outcomes) else None
        rows.append(
            {
                "index": index,
                "expectation": _label(entry),
                "counts": values,
                "identical": len({json.dumps(v) for v in values.values()}) == 1,
            }
        )
    return rows


def compare_rows(systems: dict[str, Any]) -> dict[str, Any]:
    """Failing rows per expectation: gate and step (gate_failures.parquet by name) against the peer (by index)."""
    import duckdb

    sources = {}
    for name in ("gate", "step"):
        s = systems.get(name)
        if s and s.get("failures"):
            mapping = ", ".join(f"({o['index']}, {_sql_str(o['name'])})" for o in s["expectations"])
            sources[name] = (
                f"SELECT f.{ROW} AS r, m.i FROM read_parquet({_lit(Path(s['failures']))}) f "
                f"JOIN (VALUES {mapping}) m(i, n) ON f.expectation = m.n"
            )
    peer = systems.get("peer")
    if peer and peer.get("failures"):
        sources["peer"] = f"SELECT {ROW} AS r, expectation_index AS i FROM read_parquet({_lit(Path(peer['failures']))})"
    if len(sources) < 2:
        return {"compared": sorted(sources)}
    names = sorted(sources)
    result: dict[str, Any] = {"compared": names, "pairs": {}}
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        base = names[0]
        for other in names[1:]:
            a, b = sources[base], sources[other]
            counts = con.execute(
                f"SELECT (SELECT count(*) FROM ({a} EXCEPT {b})), (SELECT count(*) FROM ({b} EXCEPT {a})), "
                f"(SELECT count(DISTINCT r) FROM ({a})), (SELECT count(DISTINCT r) FROM ({b}))"
            ).fetchone()
            assert counts is not None
            result["pairs"][f"{base}~{other}"] = {
                f"only_{base}": int(counts[0]),
                f"only_{other}": int(counts[1]),
                f"failing_rows_{base}": int(counts[2]),
                f"failing_rows_{other}": int(counts[3]),
            }
    result["identical"] = all(v[f"only_{k.split('~')[0]}"] == 0 and v[f"only_{k.split('~')[1]}"] == 0
                              for k, v in result["pairs"].items())  # fmt: skip
    return result


def check_targets(systems: dict[str, Any], counts: list[dict[str, Any]], rows: dict[str, Any]) -> list[dict[str, Any]]:
    targets = []
    limit = systems.get("onepass", {}).get("wall_s")
    peer = systems.get("peer", {}).get("wall_s")
    for name in ("step", "gate"):
        s = systems.get(name)
        if not s:
            continue
        what = "quality step" if name == "step" else "gate alone"
        if limit:
            ratio = s["wall_s"] / limit
            targets.append(
                {
                    "target": f"{what} ≤ 2.5 × the one-pass SQL",
                    "measured": f"{ratio:.2f} × ({s['wall_s']:.1f} s vs {limit:.1f} s)",
                    "met": ratio <= TARGET_LIMIT_RATIO,
                }
            )
        if peer:
            speedup = peer / s["wall_s"]
            targets.append(
                {
                    "target": f"{what} ≥ 8 × faster than GX on pandas",
                    "measured": f"{speedup:.1f} × ({peer:.1f} s vs {s['wall_s']:.1f} s)",
                    "met": speedup >= TARGET_PEER_SPEEDUP,
                }
            )
        targets.append(
            {
                "target": f"{what}: peak RSS < 1.5 GiB",
                "measured": f"{s['peak_rss_mib']:,.0f} MiB",
                "met": s["peak_rss_mib"] < TARGET_RSS_MIB,
            }
        )
    differing = [c["expectation"] for c in counts if not c["identical"]]
    targets.append(
        {
            "target": f"identical counts across {', '.join(systems)} ({len(counts)} expectations)",
            "measured": "identical" if not differing else "differ: " + "; ".join(differing),
            "met": not differing,
            "kind": "counts",
        }
    )
    if rows.get("pairs"):
        targets.append(
            {
                "target": f"the same failing rows in {', '.join(rows['compared'])}",
                "measured": "identical" if rows["identical"] else json.dumps(rows["pairs"]),
                "met": bool(rows["identical"]),
                "kind": "counts",
            }
        )
    return targets


# --- report -----------------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    systems = results["systems"]
    limit = systems.get("onepass", {}).get("wall_s")
    data = results["data"]
    code = results["code"]
    lines = [
        f"Quality benchmark {results['timestamp']}: {data['rows']:,} rows, {data['bytes'] / 1e6:,.0f} MB staged "
        f"Parquet, {results['suite']['expectations']} expectations; {results['machine']['cpus']} CPUs, "
        f"{results['machine']['memory_gb']} GiB RAM; commit {code['commit']}"
        + (" with uncommitted changes" if code["uncommitted_changes"] else ""),
        "",
        "| system | wall s | peak RSS MiB | × limit | failing rows | other processes' CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in SYSTEMS:
        s = systems.get(key)
        if not s:
            continue
        ratio = s["wall_s"] / limit if limit else None
        failing = s.get("failing_rows")
        lines.append(
            f"| {LABELS[key]} | {bench._fmt(s['wall_s'])} | {bench._fmt(s['peak_rss_mib'], 0)} | "
            f"{bench._fmt(ratio, 2)} | {'–' if failing is None else f'{failing:,}'} | "
            f"{bench._fmt(s.get('other_processes_cpu_s'))} |"
        )
    names = [k for k in SYSTEMS if k in systems]
    lines += ["", "| # | expectation | " + " | ".join(names) + " | same |", "|---|---|" + "---:|" * len(names) + ":-:|"]
    for c in results["counts"]:
        cells = " | ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in c["counts"].values())
        lines.append(f"| {c['index']} | `{c['expectation']}` | {cells} | {'yes' if c['identical'] else '**no**'} |")
    lines += ["", "| target | measured | met |", "|---|---|:-:|"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    for key in ("step", "gate"):
        parts = (systems.get(key) or {}).get("parts")
        if parts:
            lines += ["", f"Where the time of {LABELS[key]} goes (in-process):", "", "| part | s |", "|---|---:|"]
            lines += [f"| {part} | {bench._fmt(sec, 2)} |" for part, sec in parts.items()]
        concurrent = (systems.get(key) or {}).get("parts_concurrent")
        if concurrent:
            lines += [
                "",
                "In the gate's prepass process, while the step imported GX (overlapping the parts above):",
                "",
            ]
            lines += ["| part | s |", "|---|---:|"] + [
                f"| {p} | {bench._fmt(sec, 2)} |" for p, sec in concurrent.items()
            ]
    for key in ("onepass", "peer"):
        times = (systems.get(key) or {}).get("times")
        if times:
            lines.append("")
            lines.append(f"{LABELS[key]} (in-process): " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
    return "\n".join(lines) + "\n"


# --- the run ----------------------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    chosen = dict(sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2])
    chosen["wall_s_all"] = [r["wall_s"] for r in runs]
    chosen["wall_s_median"] = statistics.median(chosen["wall_s_all"])
    chosen["peak_rss_mib_all"] = [r["peak_rss_mib"] for r in runs]
    return chosen


def plan(python: str, staged: Path, spec: Path, work: Path, systems: list[str]) -> list[tuple[str, list[str]]]:
    sensitive = "resident_id,name,mobile"
    commands = {
        "onepass": [python, str(BENCH / "quality_onepass.py"), str(staged), "--suite", str(SUITE)],
        "gate": [
            python,
            str(BENCH / "quality_step.py"),
            "gate",
            str(staged),
            "--suite",
            str(SUITE),
            "--report-dir",
            str(work / "gate"),
            "--sensitive",
            sensitive,
        ],
        "step": [
            python,
            str(BENCH / "quality_step.py"),
            "step",
            str(spec),
            "--home",
            str(work / "home"),
            "--date",
            LOGICAL_DATE,
        ],
        "peer": [
            python,
            str(BENCH / "quality_peer.py"),
            str(staged),
            "--suite",
            str(SUITE),
            "--out",
            str(work / "peer"),
        ],
    }
    return [(name, commands[name]) for name in SYSTEMS if name in systems]


def run(args: argparse.Namespace) -> int:
    os.environ.pop("GOVDATA_CATALOG_URL", None)  # the step's catalog is the workspace's own SQLite file
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    code = bench.code_version()
    data_dir, results_dir = args.data_dir.resolve(), args.results_dir.resolve()
    work = data_dir / f"work-quality-{stamp}"
    work.mkdir(parents=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    systems_wanted = [s for s in SYSTEMS if s not in set(args.skip)]
    if args.max_wait <= 0:
        bench.wait_until_quiet = _no_wait  # this process's binding only: bench.measure() waits through it
    entries = json.loads(SUITE.read_text(encoding="utf-8"))["expectations"]
    systems: dict[str, Any] = {}
    try:
        staged, data_info = prepare_data(args.rows, data_dir)
        spec = derived_spec(work / "source.parquet", work)
        workspace: dict[str, Any] = {}
        if "step" in systems_wanted:
            _log("preparing the workspace (collect + cleanse, not measured)")
            done = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--prepare",
                    str(staged),
                    str(spec),
                    str(work / "home"),
                ],
                check=False,
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise SystemExit(f"preparing the workspace failed:\n{bench._stderr_tail(_text(work, done.stderr))}")
            workspace = bench._last_json(done.stdout)
            if not workspace["staged_matches_generated"]:
                raise SystemExit(
                    f"the cleanse step staged other rows than {staged.name} ({workspace}): the generator must write "
                    "what cleanse stages; see bench/quality_generate.py"
                )
            _warm(staged)
        runs: dict[str, list[dict[str, Any]]] = {}
        for repeat in range(args.repeat):
            tag = f"#{repeat + 1}" if args.repeat > 1 else ""
            for name, command in plan(sys.executable, staged, spec, work, systems_wanted):
                result = bench.measure(name + tag, command, work, args.max_wait)
                if result["returncode"] != 0:
                    raise SystemExit(f"{name} failed (exit {result['returncode']}):\n{result['stderr_tail']}")
                result.update(bench._last_json(result.pop("stdout")))
                runs.setdefault(name, []).append(result)
        systems = {name: _median(r) for name, r in runs.items()}
        for name in ("gate", "step"):
            s = systems.get(name)
            if s and s.get("failures"):
                s["failing_rows"] = _distinct_rows(Path(s["failures"]))
        counts = compare_counts(entries, systems)
        rows = compare_rows(systems)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results: dict[str, Any] = {
        "timestamp": stamp,
        "machine": bench.machine(),
        "code": code,
        "data": data_info,
        "suite": {"path": _shown(SUITE), "expectations": len(entries)},
        "workspace": workspace,
        "systems": systems,
        "counts": counts,
        "failing_rows": rows,
    }
    results["targets"] = check_targets(systems, counts, rows)
    results["counts_identical"] = all(t["met"] for t in results["targets"] if t.get("kind") == "counts")
    (results_dir / f"quality-{stamp}.json").write_text(
        json.dumps(results, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    table = markdown(results)
    (results_dir / f"quality-{stamp}.md").write_text(table, encoding="utf-8")
    print(table)
    _log(f"wrote {results_dir / ('quality-' + stamp)}.json and .md")
    missed = [t["target"] for t in results["targets"] if not t["met"]]
    if not results["counts_identical"]:
        _log("the systems disagree: " + "; ".join(t["measured"] for t in results["targets"] if not t["met"]))
        return EXIT_MISMATCH
    if missed:
        _log("targets missed: " + "; ".join(missed))
        return EXIT_TARGET_MISSED
    return 0


def _text(work: Path, stderr: str) -> Path:
    path = work / "prepare.stderr"
    path.write_text(stderr, encoding="utf-8")
    return path


def _distinct_rows(failures: Path) -> int:
    import duckdb

    with duckdb.connect() as con:
        found = con.execute(f"SELECT count(DISTINCT {ROW}) FROM read_parquet({_lit(failures)})").fetchone()
    return int(found[0]) if found else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--prepare"]:  # internal: quality_run.py --prepare STAGED SPEC HOME
        staged, spec, home = (Path(a) for a in argv[1:4])
        print(json.dumps(prepare_workspace(staged, spec, home)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=quality_generate.DEFAULT_ROWS, help="rows (default 10,000,000)")
    parser.add_argument("--skip-peer", action="store_true", help="do not run GX on pandas (minutes, several GiB)")
    parser.add_argument("--skip", action="append", default=[], choices=SYSTEMS, help="leave a system out (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each system N times; report the median")
    parser.add_argument(
        "--max-wait",
        type=float,
        default=300,
        help="seconds to wait for an idle machine per measurement (0: measure at once, no idle check)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (bench/data/work-quality-*)")
    parser.add_argument("--data-dir", type=Path, default=quality_generate.DATA_DIR, help="data and work folders")
    parser.add_argument("--results-dir", type=Path, default=bench.RESULTS, help="where results are written")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows must be at least 1, got {args.rows}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.skip_peer:
        args.skip.append("peer")
    if "onepass" in args.skip:
        parser.error("the one-pass SQL is the limit every target is measured against; it cannot be skipped")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
