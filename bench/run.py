"""Benchmark: ``govdata run`` against the DuckDB floor and the naive pandas + GX peer, in one run.

``make bench`` (or ``.venv/bin/python bench/run.py [--rows N] [--skip-peer]``) does this:

1. generates ``bench/data/enterprises_5m.gb18030.csv`` (or the ``--rows`` variant) unless it
   exists and was written by the current ``bench/generate.py`` (deterministic), then reads it
   once so every system starts with the file in the page cache;
2. measures, one after the other and each in its own process:

   (b) ``floor``: ``bench/floor_duckdb.py`` — transcode to UTF-8, DuckDB ``COPY`` to Parquet;
   (a) ``govdata``: ``govdata run bench/spec.yaml --home <fresh dir> --date 2026-11-24``;
   (c) ``peer``: ``bench/peer_pandas.py`` — pandas read + pandas cleansing + GX on pandas +
       ``to_parquet`` (skipped with ``--skip-peer``);

3. checks the targets: (a) ≤ 4 × (b) wall time; (a) at least 3 × faster than (c) with the same
   number of quarantined rows (and the same quarantined row ids); peak RSS of (a) under 2 GB;
4. times (a)'s five steps once more in-process (``--no-profile`` skips it): wall time and peak
   RSS per step, the GX import separately;
5. writes ``bench/results/<UTC timestamp>.json`` and ``.md`` (the table) and prints the table.

How a measurement is taken: ``run.py`` starts a fresh meter process (``run.py --meter``) per
measurement; the meter starts the command, waits for it and reads
``getrusage(RUSAGE_CHILDREN)``: ``ru_maxrss`` is the kernel's high-water mark of the largest
process it waited for (all three systems are single processes), so no short peak is missed
(the same number ``/usr/bin/time -v`` prints). The meter also samples the RSS of the whole
process tree every 0.1 s with psutil, as a cross-check, and counts the CPU time other
processes used on the machine meanwhile (``/proc/stat`` minus the command's own CPU time):
the machine is shared, so each result says how quiet it was. Before each measurement the
runner waits (up to ``--max-wait`` s) until the machine has been idle for a few seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = BENCH / "data"
RESULTS = BENCH / "results"
SPEC = BENCH / "spec.yaml"
SUITE = BENCH / "suite.json"
LOGICAL_DATE = "2026-11-24"
DATASET = "bench_enterprises"
DEFAULT_ROWS = 5_000_000

TARGET_FLOOR_RATIO = 4.0  # (a) <= 4 x (b)
TARGET_PEER_SPEEDUP = 3.0  # (c) >= 3 x (a)
TARGET_RSS_MIB = 2048.0  # (a) peak RSS < 2 GiB

if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


# --- the meter (runs in its own fresh process) --------------------------------------------------


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    with Path("/proc/stat").open(encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return total - idle, total


def meter(out: Path, command: list[str], stdout: Path, stderr: Path) -> int:
    """Run ``command``; write wall time, peak RSS and CPU figures to ``out`` (JSON)."""
    import psutil

    hz = os.sysconf("SC_CLK_TCK")
    busy0, _ = _cpu_jiffies()
    with stdout.open("wb") as fout, stderr.open("wb") as ferr:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=fout, stderr=ferr, cwd=REPO)
        tree_peak = 0
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
                tree_peak = max(tree_peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            time.sleep(0.1)
        wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, _ = _cpu_jiffies()
    own_cpu = usage.ru_utime + usage.ru_stime
    machine_cpu = (busy1 - busy0) / hz
    result = {
        "command": command,
        "returncode": proc.returncode,
        "wall_s": round(wall, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        "sampled_tree_rss_mib": round(tree_peak / 2**20, 1),
        "cpu_s": round(own_cpu, 2),
        "other_processes_cpu_s": round(max(0.0, machine_cpu - own_cpu), 2),
    }
    out.write_text(json.dumps(result), encoding="utf-8")
    return 0


# --- the runner ---------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"[bench {dt.datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_until_quiet(max_wait: float, threshold: float = 0.15, window: float = 3.0) -> dict[str, Any]:
    """Wait until the machine's CPUs were busy less than ``threshold`` over ``window`` seconds."""
    cpus = os.cpu_count() or 1
    started = time.monotonic()
    while True:
        busy0, total0 = _cpu_jiffies()
        time.sleep(window)
        busy1, total1 = _cpu_jiffies()
        share = (busy1 - busy0) / max(1, total1 - total0)
        waited = time.monotonic() - started
        if share < threshold or waited >= max_wait:
            return {
                "busy_share_before": round(share, 3),
                "waited_s": round(waited, 1),
                "cpus": cpus,
                "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            }
        _log(f"machine busy ({share:.0%} of {cpus} CPUs); waiting")


def measure(name: str, command: list[str], work: Path, max_wait: float) -> dict[str, Any]:
    """One measurement in a fresh meter process; returns the meter's figures and the command's stdout."""
    quiet = wait_until_quiet(max_wait)
    out, stdout, stderr = work / f"{name}.meter.json", work / f"{name}.stdout", work / f"{name}.stderr"
    _log(f"{name}: {' '.join(str(c) for c in command)}")
    meter_cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--meter",
        str(out),
        str(stdout),
        str(stderr),
        "--",
        *command,
    ]
    done = subprocess.run(meter_cmd, check=False, cwd=REPO)
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(
            f"{name}: the meter process ended with {done.returncode} (a negative number is the signal that "
            f"killed it: something outside the benchmark stopped it); the command's stderr is in {stderr}"
        )
    result = json.loads(out.read_text(encoding="utf-8"))
    result.update(quiet)
    result["stdout"] = stdout.read_text(encoding="utf-8", errors="replace")
    result["stderr_tail"] = _stderr_tail(stderr)
    _log(f"{name}: {result['wall_s']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB, exit {result['returncode']}")
    return result


def _stderr_tail(path: Path, lines: int = 15) -> str:
    """The end of a command's stderr, without nanobind's leak report at interpreter exit (DuckDB 2.0 noise)."""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    kept = [ln for ln in text if not ln.startswith(("nanobind:", " - leaked", " - ... skipped"))]
    return "\n".join(kept[-lines:])


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    raise ValueError("no JSON line in the output")


def prepare_data(rows: int) -> tuple[Path, dict[str, Any]]:
    import generate

    path = generate.output_path(rows)
    info: dict[str, Any] = {"path": str(path.relative_to(REPO)), "rows": rows, "generated_now": False}
    if not generate.is_current(path, rows):
        _log(f"generating {path.name} ({rows:,} rows)")
        started = time.perf_counter()
        generate.generate(rows, path)
        info.update(generated_now=True, generate_s=round(time.perf_counter() - started, 1))
    info["bytes"] = path.stat().st_size
    with path.open("rb") as f:  # warm the page cache: every system reads a cached file
        while f.read(64 * 2**20):
            pass
    return path, info


def spec_for(rows: int, csv_path: Path, work: Path) -> Path:
    """bench/spec.yaml itself for the 5M file, else a copy pointing at the smaller file."""
    if rows == DEFAULT_ROWS:
        return SPEC
    text = SPEC.read_text(encoding="utf-8")
    text = text.replace("path: data/enterprises_5m.gb18030.csv", f"path: {json.dumps(str(csv_path))}")
    text = text.replace("suite: suite.json", f"suite: {json.dumps(str(SUITE))}")
    derived = work / "spec.yaml"
    derived.write_text(text, encoding="utf-8")
    return derived


def _iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def govdata_details(home: Path) -> dict[str, Any]:
    """Row accounting and step durations of the (a) run, from its run report and step files."""
    reports = home / "reports" / DATASET / LOGICAL_DATE
    report = json.loads((reports / "run_report.json").read_text(encoding="utf-8"))
    previous = _iso(report["started_at"])
    steps = {}
    for step in ("collect", "cleanse", "quality", "catalog", "publish"):
        path = reports / "steps" / f"{step}.json"
        if not path.is_file():
            break
        finished = _iso(json.loads(path.read_text(encoding="utf-8"))["finished_at"])
        steps[step] = (finished - previous).total_seconds()
        previous = finished
    return {
        "status": report["status"],
        "rows": report["rows"],
        "expectations": [
            {
                "name": e["name"],
                "success": e["success"],
                "row_level": e["row_level"],
                "unexpected_count": e["unexpected_count"],
            }
            for e in report["quality"]["expectations"]
        ],
        "step_seconds_from_step_files": steps,  # 1 s resolution (finished_at is ISO seconds)
        "run_seconds_in_process": (_iso(report["finished_at"]) - _iso(report["started_at"])).total_seconds(),
    }


def compare_quarantine(home: Path, peer_out: Path) -> dict[str, Any]:
    """Compare the quarantined row ids of (a) and (c)."""
    import duckdb

    ours = home / "quarantine" / DATASET / LOGICAL_DATE / "quarantine.parquet"
    theirs = peer_out / "quarantine.parquet"
    if not ours.is_file() or not theirs.is_file():
        return {"compared": False}
    with duckdb.connect() as con:
        a = f"(SELECT DISTINCT _govdata_row AS r FROM read_parquet('{ours}'))"
        c = f"(SELECT DISTINCT _govdata_row AS r FROM read_parquet('{theirs}'))"
        only_a = con.execute(f"SELECT r FROM {a} EXCEPT SELECT r FROM {c} ORDER BY 1 LIMIT 20").fetchall()
        only_c = con.execute(f"SELECT r FROM {c} EXCEPT SELECT r FROM {a} ORDER BY 1 LIMIT 20").fetchall()
        counts = con.execute(
            f"SELECT (SELECT count(*) FROM ({a} EXCEPT {c})), (SELECT count(*) FROM ({c} EXCEPT {a}))"
        ).fetchone()
    assert counts is not None
    return {
        "compared": True,
        "only_govdata": int(counts[0]),
        "only_peer": int(counts[1]),
        "examples_only_govdata": [r[0] for r in only_a],
        "examples_only_peer": [r[0] for r in only_c],
    }


def profile_steps(spec: Path, home: Path) -> dict[str, Any]:
    """(a)'s five steps called one by one in this process: seconds and peak RSS (VmHWM) per step."""
    from pipelines import runner

    def hwm_reset() -> None:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5", encoding="ascii")  # resets VmHWM (Linux)

    def hwm_mb() -> float:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        return float("nan")

    ctx = runner.RunContext.make(spec, LOGICAL_DATE, home)
    result: dict[str, Any] = {}
    phases: list[tuple[str, Any]] = [
        ("collect", lambda: runner.collect(ctx)),
        ("cleanse", lambda: runner.cleanse(ctx)),
        ("import GX (expectations.gate)", lambda: __import__("expectations.gate")),
        ("quality", lambda: runner.quality(ctx)),
        ("catalog", lambda: runner.catalog(ctx)),
        ("publish", lambda: runner.publish(ctx)),
    ]
    for name, fn in phases:
        hwm_reset()
        started = time.perf_counter()
        fn()
        result[name] = {"seconds": round(time.perf_counter() - started, 2), "peak_rss_mib": hwm_mb()}
    return result


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    systems = results["systems"]
    floor = systems.get("floor", {}).get("wall_s")
    lines = [
        f"Benchmark {results['timestamp']}: {results['data']['rows']:,} rows, "
        f"{results['data']['bytes'] / 1e6:,.0f} MB GB18030 CSV; {results['machine']['cpus']} CPUs, "
        f"{results['machine']['memory_gb']} GiB RAM; commit {results['code']['commit']}"
        + (" with uncommitted changes" if results["code"]["uncommitted_changes"] else ""),
        "",
        "| system | wall s | peak RSS MiB | × floor | quarantined | published | duplicates removed | other processes' CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "floor": "(b) DuckDB floor: transcode + COPY to Parquet",
        "govdata": "(a) `govdata run`",
        "peer": "(c) pandas + GX on pandas",
    }
    for key in ("govdata", "floor", "peer"):
        s = systems.get(key)
        if not s:
            continue
        rows = s.get("rows") or {}
        ratio = s["wall_s"] / floor if floor else None
        lines.append(
            f"| {labels[key]} | {_fmt(s['wall_s'])} | {_fmt(s['peak_rss_mib'], 0)} | {_fmt(ratio, 2)} | "
            f"{rows.get('quarantined', '–') if key != 'floor' else '–'} | "
            f"{rows.get('published', '–') if key != 'floor' else '–'} | "
            f"{rows.get('duplicates_removed', '–') if key != 'floor' else '–'} | {_fmt(s.get('other_processes_cpu_s'))} |"
        )
    lines += ["", "| target | measured | met |", "|---|---|:-:|"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    profile = results.get("govdata_profile")
    if profile:
        lines += [
            "",
            "(a) step by step (in-process, a separate run):",
            "",
            "| step | s | peak RSS MiB |",
            "|---|---:|---:|",
        ]
        for name, p in profile.items():
            lines.append(f"| {name} | {_fmt(p['seconds'], 2)} | {_fmt(p['peak_rss_mib'], 0)} |")
    return "\n".join(lines) + "\n"


def check_targets(systems: dict[str, Any], quarantine_diff: dict[str, Any] | None) -> list[dict[str, Any]]:
    a, b, c = systems.get("govdata"), systems.get("floor"), systems.get("peer")
    targets = []
    if a and b:
        ratio = a["wall_s"] / b["wall_s"]
        targets.append(
            {"target": "(a) ≤ 4 × (b) wall time", "measured": f"{ratio:.2f} ×", "met": ratio <= TARGET_FLOOR_RATIO}
        )
    if a and c:
        speedup = c["wall_s"] / a["wall_s"]
        targets.append(
            {
                "target": "(a) ≥ 3 × faster than (c)",
                "measured": f"{speedup:.2f} ×",
                "met": speedup >= TARGET_PEER_SPEEDUP,
            }
        )
        qa, qc = a["rows"]["quarantined"], c["rows"]["quarantined"]
        same_ids = (
            quarantine_diff is None
            or not quarantine_diff.get("compared")
            or (quarantine_diff["only_govdata"] == 0 and quarantine_diff["only_peer"] == 0)
        )
        targets.append(
            {
                "target": "identical quarantined-row counts (a) = (c)",
                "measured": f"{qa:,} vs {qc:,}" + ("" if same_ids else f" (row ids differ: {quarantine_diff})"),
                "met": qa == qc and same_ids,
            }
        )
    if a:
        targets.append(
            {
                "target": "(a) peak RSS < 2 GiB",
                "measured": f"{a['peak_rss_mib']:,.0f} MiB",
                "met": a["peak_rss_mib"] < TARGET_RSS_MIB,
            }
        )
    return targets


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the measured packages had uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "pipelines", "connectors", "expectations", "catalog", "exchange")
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "uncommitted_changes": changed.splitlines()}


def machine() -> dict[str, Any]:
    import duckdb
    import pandas
    import pyarrow

    memory_kb = 0
    model = platform.processor()
    for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(memory_kb / 2**20, 1),  # GiB
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "great_expectations": "1.24.1 (pinned)",
        "kernel": platform.release(),
        "duckdb_memory_limit_govdata": os.environ.get("GOVDATA_DUCKDB_MEMORY", "1GB"),
    }


def run(args: argparse.Namespace) -> int:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    code = code_version()  # before measuring: the code may change while the benchmark runs
    work = DATA / f"work-{stamp}"
    work.mkdir(parents=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    csv_path, data_info = prepare_data(args.rows)
    spec = spec_for(args.rows, csv_path, work)
    python = sys.executable
    govdata = str(Path(python).parent / "govdata")
    systems: dict[str, Any] = {}
    quarantine_diff = None
    try:
        for repeat in range(args.repeat):
            tag = f"#{repeat + 1}" if args.repeat > 1 else ""
            plan = [
                ("floor", [python, str(BENCH / "floor_duckdb.py"), str(csv_path), "--out", str(work / "floor")]),
                (
                    "govdata",
                    [govdata, "run", str(spec), "--home", str(work / "home"), "--date", LOGICAL_DATE, "--json"],
                ),
            ]
            if not args.skip_peer:
                plan.append(
                    (
                        "peer",
                        [
                            python,
                            str(BENCH / "peer_pandas.py"),
                            str(spec),
                            "--out",
                            str(work / "peer"),
                            "--source",
                            str(csv_path),
                        ],
                    )
                )
            outputs = {"floor": work / "floor", "govdata": work / "home", "peer": work / "peer"}
            for name, command in plan:
                shutil.rmtree(outputs[name], ignore_errors=True)  # (a)'s home stays until (c) is compared with it
                result = measure(name + tag, command, work, args.max_wait)
                if result["returncode"] != 0:
                    raise SystemExit(f"{name} failed (exit {result['returncode']}):\n{result['stderr_tail']}")
                if name == "floor":
                    result.update(_last_json(result["stdout"]))
                elif name == "govdata":
                    result.update(govdata_details(work / "home"))
                else:
                    result.update(_last_json(result["stdout"]))
                    quarantine_diff = compare_quarantine(work / "home", work / "peer")
                result.pop("stdout")
                systems.setdefault(name, {"runs": []})["runs"].append(result)
        for s in systems.values():
            runs = s["runs"]
            median_run = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
            s.update({k: v for k, v in median_run.items() if k != "runs"})
            s["wall_s_all"] = [r["wall_s"] for r in runs]
            s["wall_s_median"] = statistics.median(s["wall_s_all"])
            if len(runs) == 1:
                del s["runs"]
        profile = None
        if not args.no_profile:
            shutil.rmtree(work / "home", ignore_errors=True)
            wait_until_quiet(args.max_wait)
            _log("profiling (a)'s steps in-process")
            profile_out = work / "profile.json"
            subprocess.run(
                [
                    python,
                    str(Path(__file__).resolve()),
                    "--profile-steps",
                    str(spec),
                    str(work / "home"),
                    str(profile_out),
                ],
                check=True,
                cwd=REPO,
                stderr=subprocess.DEVNULL,
            )
            profile = json.loads(profile_out.read_text(encoding="utf-8"))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results = {
        "timestamp": stamp,
        "machine": machine(),
        "code": code,
        "data": data_info,
        "spec": str(spec.relative_to(REPO)) if spec.is_relative_to(REPO) else str(spec),
        "systems": systems,
        "quarantine_row_ids": quarantine_diff,
        "govdata_profile": profile,
    }
    results["targets"] = check_targets(systems, quarantine_diff)
    (RESULTS / f"{stamp}.json").write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")
    table = markdown(results)
    (RESULTS / f"{stamp}.md").write_text(table, encoding="utf-8")
    print(table)
    _log(f"wrote {RESULTS / stamp}.json and .md")
    return 0 if all(t["met"] for t in results["targets"]) else 3


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--meter"]:  # internal: run.py --meter OUT STDOUT STDERR -- COMMAND...
        out, stdout, stderr, sep, *command = argv[1:]
        assert sep == "--"
        return meter(Path(out), command, Path(stdout), Path(stderr))
    if argv[:1] == ["--profile-steps"]:  # internal: run.py --profile-steps SPEC HOME OUT
        spec, home, out = argv[1:4]
        Path(out).write_text(json.dumps(profile_steps(Path(spec), Path(home))), encoding="utf-8")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows of generated data (default 5,000,000)")
    parser.add_argument("--skip-peer", action="store_true", help="do not run the pandas peer (c) (it takes minutes)")
    parser.add_argument("--no-profile", action="store_true", help="do not time (a)'s steps in a separate run")
    parser.add_argument("--repeat", type=int, default=1, help="measure each system N times; report the median")
    parser.add_argument(
        "--max-wait", type=float, default=300, help="seconds to wait for an idle machine per measurement"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (bench/data/work-*)")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
