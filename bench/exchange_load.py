"""Load benchmark of the exchange service on loopback: wrk against ``govdata serve``, on SQLite and on PostgreSQL.

``make bench-exchange`` (or ``.venv/bin/python bench/exchange_load.py [--duration 60]``) does this:

1. builds a workspace with ``govdata demo`` (the bundled departments, their published versions,
   the exchange round: grants, deliveries, a refusal), once with the embedded SQLite catalog and
   once with the catalog in a fresh database of the machine's PostgreSQL
   (``GOVDATA_CATALOG_URL``; ``--postgres-url`` names the server, ``--skip-postgres`` leaves it out);
2. starts ``govdata serve`` on 127.0.0.1 (uvicorn, one process, access log on, as an operator
   runs it) over that workspace, with a token of 市场监管's staff (the demo's file subscriber);
3. runs wrk (``--duration`` s each, after ``--warmup`` s not counted) against three endpoints:

   ``catalog search``   ``GET /api/3/action/package_search?q=参保&rows=10`` (anonymous, CKAN);
   ``applications``     ``GET /exchange/v1/applications`` (the department's applications);
   ``file delivery``    ``GET /exchange/v1/grants/{id}/download?full=true``: the whole masked
                        version (341 rows, Parquet) of the demo's file grant; every request is a
                        delivery: masking in DuckDB, a receipt, an audit entry, one use;

4. collects requests/s, latency p50/p90/p99/max (wrk ``--latency``), non-2xx answers by status
   and socket errors (connect, read, write, timeout; the request timeout is 10 s), the server's
   CPU time, and the CPU other processes used meanwhile (the machine is shared);
5. writes ``bench/results/exchange_load-<UTC>.json`` and ``.md`` (the table) and prints the
   table. Exit status 3 when any request failed (a non-2xx answer or a socket error).

wrk must be installed (``apt-get install wrk``); its Lua script, written per endpoint into the
work folder, adds the ``Authorization`` header and counts the non-2xx statuses.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
GOVDATA = Path(sys.executable).parent / "govdata"
DEMO_DATE = "2026-11-24"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SUBSCRIBER = "market_regulation_staff"  # the demo's file subscriber
SEARCH_QUERY = "参保"

if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from run import _cpu_jiffies, wait_until_quiet  # noqa: E402  (bench/run.py: the shared machine's meter)

LUA = """-- written by bench/exchange_load.py: the bearer token, and a count of non-2xx answers per status
local token = %(token)s
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  statuses = {}
end
function response(status, headers, body)
  if status < 200 or status > 299 then
    statuses[status] = (statuses[status] or 0) + 1
  end
end
function done(summary, latency, requests)
  local codes = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses") or {}) do
      codes[code] = (codes[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(codes) do
    table.insert(parts, string.format('"%%d": %%d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'GOVDATA_RESULT {"requests": %%d, "duration_us": %%d, "bytes": %%d, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"latency_us": {"mean": %%.1f, "p50": %%d, "p90": %%d, "p99": %%d, "max": %%d}, "statuses": {%%s}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(parts, ", ")))
end
"""


def _log(message: str) -> None:
    print(f"[exchange-load {dt.datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- the workspace -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """A workspace built by the demo, and what the load needs from it."""

    backend: str  # sqlite or postgresql
    home: Path
    env: dict[str, str]  # for `govdata serve`
    token: str
    grant: int
    rows: int  # of the delivered version


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "GOVDATA_HOME",
        "GOVDATA_CATALOG_URL",
        "GOVDATA_DEMO_DATABASE_URL",
        "GOVDATA_MASKING_KEY",
        "GOVDATA_USER",
    ):
        env.pop(name, None)
    return env


def build(backend: str, home: Path, catalog_url: str | None) -> Setup:
    """Run ``govdata demo`` into ``home`` and make a token of the file subscriber."""
    env = _clean_env()
    if catalog_url:
        env["GOVDATA_CATALOG_URL"] = catalog_url
    log = home.parent / f"demo-{backend}.log"
    home.parent.mkdir(parents=True, exist_ok=True)
    _log(f"{backend}: govdata demo into {home}")
    with log.open("wb") as fh:
        done = subprocess.run(
            [str(GOVDATA), "demo", "--date", DEMO_DATE, "--home", str(home)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**env, "COLUMNS": "200"},
            cwd=REPO,
            check=False,
        )
    if done.returncode not in (0, 2):
        raise SystemExit(f"govdata demo failed ({done.returncode}); see {log}")
    from sqlalchemy import select

    from catalog.models import Version
    from catalog.store import CatalogStore
    from exchange.identity import create_token
    from exchange.models import Grant
    from pipelines.workspace import Workspace

    url = catalog_url or Workspace.from_env(home).catalog_url
    store = CatalogStore(url)
    try:
        with store.session() as s:
            grant = s.scalar(select(Grant.id).where(Grant.delivery_method == "file").order_by(Grant.id).limit(1))
            if grant is None:
                raise SystemExit(f"the demo made no file grant; see {log}")
            found = s.get(Grant, grant)
            assert found is not None
            rows = s.scalar(
                select(Version.row_count).where(Version.entry_id == found.entry_id).order_by(Version.number.desc())
            )
            _, token = create_token(s, SUBSCRIBER, name=f"exchange load bench {uuid.uuid4().hex[:6]}")
    finally:
        store.engine.dispose()
    key = home / "state" / "demo-masking.key"
    serve_env = {**env, "GOVDATA_HOME": str(home)}
    if key.is_file():  # the demo's hash key: the file grant hashes the resident ID
        serve_env["GOVDATA_MASKING_KEY"] = key.read_text(encoding="utf-8").strip()
    return Setup(backend, home, serve_env, token, int(grant), int(rows or 0))


@contextlib.contextmanager
def postgres_database(admin_url: str, keep: bool) -> Iterator[str]:
    """A fresh database on the server of ``admin_url``; dropped afterwards unless ``keep``."""
    import sqlalchemy as sa

    name = f"govdata_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        if keep:
            _log(f"kept the database {name}")
        else:
            with admin.connect() as conn:
                conn.execute(
                    sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
                )
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


# --- the server ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


@contextlib.contextmanager
def serve(setup: Setup, work: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``govdata serve`` on a free loopback port over ``setup``'s workspace; yields its base URL and process."""
    port = _free_port()
    log = work / f"serve-{setup.backend}.log"
    fh = log.open("wb")
    proc = subprocess.Popen(
        [str(GOVDATA), "serve", "--host", "127.0.0.1", "--port", str(port), "--home", str(setup.home)],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env=setup.env,
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"govdata serve ended ({proc.returncode}); see {log}")
            with contextlib.suppress(OSError):
                if _get(base + "/healthz", timeout=2)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"govdata serve did not answer /healthz within 60 s; see {log}")
            time.sleep(0.3)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        fh.close()


# --- one load run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    auth: bool


def endpoints(grant: int) -> list[Endpoint]:
    query = urllib.parse.urlencode({"q": SEARCH_QUERY, "rows": 10})
    return [
        Endpoint("catalog search", f"/api/3/action/package_search?{query}", auth=False),
        Endpoint("applications", "/exchange/v1/applications", auth=True),
        Endpoint("file delivery", f"/exchange/v1/grants/{grant}/download?full=true", auth=True),
    ]


def _wrk(args: argparse.Namespace, lua: Path, url: str, duration: float, out: Path) -> tuple[dict[str, Any], float]:
    """Run wrk; its GOVDATA_RESULT and its own CPU seconds."""
    command = [
        args.wrk,
        "-t",
        str(args.threads),
        "-c",
        str(args.connections),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",
        f"{args.timeout}s",
        "--latency",
        "-s",
        str(lua),
        url,
    ]
    with out.open("wb") as fh:
        proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = out.read_text(encoding="utf-8", errors="replace")
    found = re.search(r"^GOVDATA_RESULT (\{.*\})$", text, re.MULTILINE)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{text[-2000:]}")
    return json.loads(found.group(1)), usage.ru_utime + usage.ru_stime


def measure(
    args: argparse.Namespace, setup: Setup, base: str, server: subprocess.Popen[bytes], ep: Endpoint, work: Path
) -> dict[str, Any]:
    import psutil

    headers = {"Authorization": f"Bearer {setup.token}"} if ep.auth else {}
    status, body = _get(base + ep.path, headers, timeout=30)
    if status != 200:
        raise SystemExit(f"{setup.backend} {ep.name}: {ep.path} answered {status}: {body[:500]!r}")
    slug = ep.name.replace(" ", "_")
    lua = work / f"{setup.backend}-{slug}.lua"
    lua.write_text(LUA % {"token": _lua_string(setup.token if ep.auth else "")}, encoding="utf-8")
    lua.chmod(0o600)
    if args.warmup > 0:
        _wrk(args, lua, base + ep.path, args.warmup, work / f"{setup.backend}-{slug}-warmup.txt")
    quiet = wait_until_quiet(args.max_wait)
    hz = os.sysconf("SC_CLK_TCK")
    proc = psutil.Process(server.pid)
    cpu0 = proc.cpu_times()
    busy0, _ = _cpu_jiffies()
    started = time.perf_counter()
    _log(f"{setup.backend}: {ep.name} for {args.duration:g} s ({args.connections} connections)")
    result, wrk_cpu = _wrk(args, lua, base + ep.path, args.duration, work / f"{setup.backend}-{slug}.txt")
    wall = time.perf_counter() - started
    busy1, _ = _cpu_jiffies()
    cpu1 = proc.cpu_times()
    server_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    machine = (busy1 - busy0) / hz
    seconds = result["duration_us"] / 1e6
    errors = result["errors"]
    non_2xx = sum(int(n) for n in result["statuses"].values())
    lat = result["latency_us"]
    return {
        "backend": setup.backend,
        "endpoint": ep.name,
        "path": ep.path,
        "requests": result["requests"],
        "seconds": round(seconds, 2),
        "rps": round(result["requests"] / seconds, 1) if seconds else 0.0,
        "mb_per_s": round(result["bytes"] / seconds / 1e6, 2) if seconds else 0.0,
        "p50_ms": round(lat["p50"] / 1000, 2),
        "p90_ms": round(lat["p90"] / 1000, 2),
        "p99_ms": round(lat["p99"] / 1000, 2),
        "max_ms": round(lat["max"] / 1000, 2),
        "mean_ms": round(lat["mean"] / 1000, 2),
        "non_2xx": non_2xx,
        "statuses": {str(k): int(v) for k, v in result["statuses"].items()},
        "socket_errors": {k: int(errors[k]) for k in ("connect", "read", "write", "timeout")},
        "server_cpu_s": round(server_cpu, 2),
        "server_cpu_share": round(server_cpu / wall, 3) if wall else 0.0,
        "server_rss_mib": round(proc.memory_info().rss / 2**20, 1),
        "wrk_cpu_s": round(wrk_cpu, 2),
        "other_processes_cpu_s": round(max(0.0, machine - server_cpu - wrk_cpu), 2),
        "quiet_before": quiet,
    }


# --- the report ----------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("uvicorn", "fastapi", "starlette", "sqlalchemy", "psycopg", "duckdb", "pyarrow"):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def _machine(args: argparse.Namespace) -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory = int(Path("/proc/meminfo").read_text(encoding="ascii").split()[1]) / 2**20
    wrk_version = subprocess.run([args.wrk, "--version"], capture_output=True, text=True, check=False)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk_version.stdout or wrk_version.stderr).splitlines()[0] if wrk_version else "",
        "packages": _versions(),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Exchange load on loopback ({report['started'][:10]}, {report['duration_s']:g} s per endpoint, "
        f"{report['connections']} connections, {report['threads']} wrk thread(s))",
        "",
        "| catalog DB | endpoint | req/s | p50 ms | p90 ms | p99 ms | max ms | requests | non-2xx | socket errors "
        "| server CPU | other CPU s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in report["results"]:
        socket_errors = ", ".join(f"{k} {v}" for k, v in r["socket_errors"].items() if v) or "0"
        lines.append(
            f"| {r['backend']} | {r['endpoint']} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['max_ms']:.0f} | {r['requests']:,} | {r['non_2xx']} | {socket_errors} | "
            f"{r['server_cpu_share']:.0%} | {r['other_processes_cpu_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load per endpoint (default 60)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before each, not counted")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (wrk -c)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (the server has the other CPU)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds before wrk counts a request as timed out")
    parser.add_argument("--postgres-url", default=os.environ.get("GOVDATA_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--only", choices=["catalog search", "applications", "file delivery"], action="append")
    parser.add_argument("--max-wait", type=float, default=120, help="seconds to wait for a quiet machine each time")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and the PostgreSQL database")
    args = parser.parse_args(argv)
    if shutil.which(args.wrk) is None:
        print("wrk is not installed: install it with `apt-get install wrk` (Debian/Ubuntu)", file=sys.stderr)
        return 2
    if not GOVDATA.is_file():
        print(f"{GOVDATA} is missing: run `make test` (uv sync) first", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="govdata-exchange-load-"))
    started = dt.datetime.now(dt.UTC)
    results: list[dict[str, Any]] = []
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if not args.skip_postgres:
        backends.append(("postgresql", args.postgres_url))
    try:
        for backend, admin_url in backends:
            with contextlib.ExitStack() as stack:
                catalog_url = stack.enter_context(postgres_database(admin_url, args.keep)) if admin_url else None
                setup = build(backend, work / backend / "home", catalog_url)
                base, server = stack.enter_context(serve(setup, work))
                for ep in endpoints(setup.grant):
                    if args.only and ep.name not in args.only:
                        continue
                    results.append(measure(args, setup, base, server, ep, work))
                    r = results[-1]
                    _log(
                        f"  {r['rps']:,.0f} req/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
                        f"non-2xx {r['non_2xx']}, socket errors {sum(r['socket_errors'].values())}"
                    )
    finally:
        if args.keep:
            _log(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report = {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "threads": args.threads,
        "machine": _machine(args),
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"exchange_load-{stamp}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), "utf-8")
    table = markdown(report)
    (RESULTS / f"exchange_load-{stamp}.md").write_text(table, encoding="utf-8")
    print(table)
    failed = [r for r in results if r["non_2xx"] or any(r["socket_errors"].values())]
    for r in failed:
        print(
            f"FAILED requests: {r['backend']} {r['endpoint']}: statuses {r['statuses']}, socket errors {r['socket_errors']}",
            file=sys.stderr,
        )
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
