"""Run ``airflow standalone`` for govdata on one small machine: ``make airflow``.

Airflow's standalone mode starts every component under one parent (scheduler, dag-processor,
triggerer, api-server); its defaults do not fit a 2-core laptop or a department's small server
(32 executor workers, example DAGs, new DAGs paused, the UI on every interface). This launcher
sets what govdata needs in the environment of every component, starts it, waits until the API
reports every component healthy, prints how to log in, and stops the whole tree on Ctrl-C or
SIGTERM::

    make airflow                               # = .venv/bin/python tools/airflow_standalone.py
    GOVDATA_AIRFLOW_PORT=8081 make airflow     # another port
    AIRFLOW_HOME=/srv/airflow make airflow     # another Airflow home (default var/airflow)

What it sets (an ``AIRFLOW__*`` variable already in the environment wins, except the DAG folder,
the API port and the API's base URL, which follow from the choices here):

- ``AIRFLOW_HOME`` (default ``var/airflow`` in the checkout): metadata DB (SQLite), logs,
  ``airflow.cfg``, the generated admin password; ``PATH`` with this interpreter's ``bin`` first
  (standalone starts its components as ``airflow …`` from ``PATH``); ``PYTHONPATH`` with the
  checkout first, so every process can import ``dags.govdata_logging``;
- ``GOVDATA_DATASETS_DIR`` (default ``datasets/``) and ``GOVDATA_HOME`` (default ``var``, the
  CLI's workspace), both made absolute: task processes do not share this working directory;
- the DAG folder ``dags/``, no example DAGs, new DAGs not paused, LocalExecutor with
  parallelism 4 and 2 tasks per DAG (a quality task imports GX: ~270 MB and a core for ~10 s),
  the GX-quiet logging config, the DAG folder listed and its files parsed every 10 s (a new spec
  shows up within ~10 s), the simple auth manager with one user ``admin``;
- the API on 127.0.0.1, port ``GOVDATA_AIRFLOW_PORT`` or 8080, and the base URL the task
  processes reach the execution API at. A port in use stops the launcher before anything
  starts. The task-log servers of the scheduler and triggerer (8793, 8794) move to a free port
  when theirs is taken.

Stopping (Ctrl-C, SIGTERM, SIGHUP) goes in order, see :func:`stop`: tasks still running after
15 s are interrupted (Airflow retries them), and nothing started under the launcher outlives it.
A second Ctrl-C skips the waiting.

Airflow's own output goes to ``$AIRFLOW_HOME/standalone.log``; its last lines are printed if
Airflow does not come up or stops by itself. Exit status: 0 after a requested stop, 1 when
Airflow could not start or stopped on its own, 2 for a usage error (port taken, Airflow not
installed).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PORT_ENV = "GOVDATA_AIRFLOW_PORT"
DEFAULT_PORT = 8080
TIMEOUT_ENV = "GOVDATA_AIRFLOW_START_TIMEOUT"
DEFAULT_TIMEOUT = 300.0  # first start migrates the SQLite DB; ~30-60 s on a quiet 2-core machine
ADMIN = "admin"
LOG_NAME = "standalone.log"
HEALTH_PATH = "/api/v2/monitor/health"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Seconds to wait while stopping: for the scheduler's warm stop, for it and the other components
#: after running tasks were interrupted, for standalone to stop the rest, for stragglers.
WARM_GRACE = 15.0
TASK_GRACE = 10.0
STOP_GRACE = 20.0
KILL_GRACE = 5.0

#: Defaults for a small machine; a variable already set in the environment wins.
SETTINGS: dict[str, str] = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__CORE__PARALLELISM": "4",
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "2",
    "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
    "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS": "dags.govdata_logging.LOGGING_CONFIG",
    "AIRFLOW__API__HOST": HOST,
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
}

#: The task-log servers: (setting, Airflow's default port).
LOG_SERVERS: tuple[tuple[str, int], ...] = (
    ("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", 8793),
    ("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT", 8794),
)


class LaunchError(Exception):
    """Airflow cannot be started as asked; the message says what to do."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def say(message: str, stream: TextIO | None = None) -> None:
    """Write a line; a closed terminal or pipe must not keep the launcher from stopping Airflow."""
    stream = stream or sys.stdout
    with contextlib.suppress(OSError, ValueError, RuntimeError):  # RuntimeError: reentrant, from a handler
        stream.write(f"{message}\n")
        stream.flush()


def warn(message: str) -> None:
    say(message, sys.stderr)


# --- the environment ---------------------------------------------------------------------------


def _absolute(value: str) -> str:
    return str(Path(value).expanduser().resolve())


def _prepend(entry: str, current: str | None) -> str:
    rest = [p for p in (current or "").split(os.pathsep) if p and p != entry]
    return os.pathsep.join([entry, *rest])


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``host:port`` now (as uvicorn does: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        port: int = sock.getsockname()[1]
        return port


def configured_port(env: Mapping[str, str]) -> int:
    raw = env.get(PORT_ENV, "").strip() or str(DEFAULT_PORT)
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise LaunchError(f"{PORT_ENV}={raw!r} is not a port number: set it to a free TCP port such as 8081")
    return port


def environment(base: Mapping[str, str], port: int) -> dict[str, str]:
    """The environment of ``airflow standalone`` and so of every component and task it starts."""
    env = dict(base)
    env["AIRFLOW_HOME"] = _absolute(env.get("AIRFLOW_HOME") or str(REPO / "var" / "airflow"))
    env["PATH"] = _prepend(str(Path(sys.executable).parent), env.get("PATH"))
    env["PYTHONPATH"] = _prepend(str(REPO), env.get("PYTHONPATH"))
    env["GOVDATA_DATASETS_DIR"] = _absolute(env.get("GOVDATA_DATASETS_DIR") or str(REPO / "datasets"))
    env["GOVDATA_HOME"] = _absolute(env.get("GOVDATA_HOME") or "var")  # the CLI's default, relative to here
    for key, value in SETTINGS.items():
        env.setdefault(key, value)
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    env["AIRFLOW__API__PORT"] = str(port)
    # Task processes reach the execution API at {base_url}/execution/ (else localhost:8080).
    env["AIRFLOW__API__BASE_URL"] = f"http://{HOST}:{port}"
    return env


def claim_log_server_ports(env: dict[str, str]) -> list[str]:
    """Move a task-log server whose port is taken to a free one; say which moved."""
    moved = []
    for key, default in LOG_SERVERS:
        raw = env.get(key) or str(default)
        if not raw.isdigit():
            raise LaunchError(f"{key}={raw!r} is not a port number: set a free TCP port, or unset it")
        port = int(raw)
        if not port_free(port, ""):
            env[key] = str(free_port())
            moved.append(f"{key}: {port} is in use, using {env[key]}")
        else:
            env[key] = str(port)
    return moved


# --- the process tree --------------------------------------------------------------------------


def become_subreaper() -> None:
    """Adopt orphaned descendants (Linux), so a task process whose parent died is still found."""
    pr_set_child_subreaper = 36
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)


class Stop:
    """Set by SIGINT/SIGTERM/SIGHUP; a second signal asks to skip the grace periods."""

    def __init__(self) -> None:
        self.requested = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested += 1
        if self.requested > 1:
            warn("stopping at once (second signal)")


class Tree:
    """Every process started under this launcher, remembered even after its parent is gone.

    Airflow's task processes put themselves in process groups of their own, so killing
    standalone's group would miss them; they are found by descent instead.
    """

    def __init__(self, stopping: Stop) -> None:
        import psutil

        self._psutil = psutil
        self._stopping = stopping
        self._me = psutil.Process()
        self.seen: dict[int, Any] = {}
        self.popen_pid = 0  # standalone itself: reaped by its Popen, which keeps the exit status

    def refresh(self) -> None:
        with contextlib.suppress(self._psutil.Error):
            for proc in self._me.children(recursive=True):
                self.seen.setdefault(proc.pid, proc)
        self.reap()

    def reap(self) -> None:
        """Collect adopted descendants that exited (zombies), so none is left behind."""
        for proc in list(self.seen.values()):
            if proc.pid == self.popen_pid:
                continue
            with contextlib.suppress(self._psutil.Error, ChildProcessError):
                if proc.status() == self._psutil.STATUS_ZOMBIE:
                    os.waitpid(proc.pid, os.WNOHANG)

    def alive(self) -> list[Any]:
        """The descendants still running, standalone itself excepted."""
        return [p for p in self.seen.values() if p.pid != self.popen_pid and self._running(p)]

    def wait(self, procs: Iterable[Any], timeout: float) -> list[Any]:
        """Wait up to ``timeout`` s for ``procs`` to end (noticing new descendants); the ones left."""
        alive = list(procs)
        deadline = time.monotonic() + timeout
        while alive:
            _, still = self._psutil.wait_procs(alive, timeout=max(0.0, min(0.5, deadline - time.monotonic())))
            alive = [p for p in still if self._running(p)]
            self.refresh()
            if time.monotonic() >= deadline or self._stopping.requested > 1:
                break
        return alive

    def _running(self, proc: Any) -> bool:
        try:
            return bool(proc.is_running() and proc.status() != self._psutil.STATUS_ZOMBIE)
        except self._psutil.Error:
            return False

    def signal(self, procs: Iterable[Any], signum: int) -> None:
        for proc in procs:
            with contextlib.suppress(self._psutil.Error):
                proc.send_signal(signum)

    def component(self, parent: int, name: str) -> Any | None:
        """The child of ``parent`` that runs ``airflow <name>`` (standalone starts one of each)."""
        with contextlib.suppress(self._psutil.Error):
            for proc in self._psutil.Process(parent).children():
                with contextlib.suppress(self._psutil.Error):
                    if name in proc.cmdline():
                        return proc
        return None

    def task_groups(self, parent: int) -> set[int]:
        """Process groups under ``parent`` other than its own: Airflow starts each task in one."""
        groups = set()
        for proc in self.alive():
            with contextlib.suppress(OSError):
                pgid = os.getpgid(proc.pid)
                if pgid not in (parent, os.getpgrp()):
                    groups.add(pgid)
        return groups

    def describe(self, procs: Iterable[Any]) -> str:
        names = []
        for proc in procs:
            try:
                names.append(f"{proc.pid} {' '.join(proc.cmdline()[:3])}")
            except self._psutil.Error:  # gone or unreadable: the pid is enough
                names.append(str(proc.pid))
        return "; ".join(names)


# --- start, watch, stop ------------------------------------------------------------------------


def tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as f:
            return b"".join(deque(f, maxlen=lines)).decode("utf-8", "replace").rstrip()
    except OSError:
        return f"(no log at {path})"


def health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{HEALTH_PATH}", timeout=3) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except (OSError, ValueError, urllib.error.URLError):
        return None


def unhealthy(report: dict[str, Any] | None) -> list[str]:
    """The components that are not healthy yet (all of them while the API does not answer)."""
    if report is None:
        return ["api-server"]
    return [
        name
        for name, info in report.items()
        if info is not None and (not isinstance(info, dict) or info.get("status") != "healthy")
    ]


def login_line(env: Mapping[str, str], port: int) -> str:
    url = f"http://{HOST}:{port}"
    if env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "").lower() == "true":
        return f"open {url} (no login: every visitor is admin)"
    password_file = Path(
        env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
        or Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    )
    try:
        passwords = json.loads(password_file.read_text(encoding="utf-8"))
        return f"open {url}, user {ADMIN}, password {passwords[ADMIN]}"
    except (OSError, ValueError, KeyError, TypeError):
        return f"open {url}; the users' passwords are in {password_file}"


def stop(proc: subprocess.Popen[bytes], tree: Tree, stopping: Stop) -> list[str]:
    """Stop standalone and everything under it, in order; return what had to be killed.

    Standalone's own shutdown (SIGINT) terminates its components all at once. The scheduler's
    LocalExecutor then waits for the running tasks, whose supervisors can no longer report to
    the api-server that stopped meanwhile, and hangs. So the scheduler (with the triggerer and
    dag-processor, which take a while too) is stopped first, while the API still answers: its
    stop is warm (no new tasks; the running ones finish). Tasks that keep it waiting get
    Airflow's own first signal (SIGINT, as its task supervisor sends; they fail and are retried
    at the next start). Then standalone stops the api-server and itself. Whatever is left is
    terminated, then killed. A second Ctrl-C skips the waiting.
    """

    def grace(seconds: float) -> float:
        return 0.0 if stopping.requested > 1 else seconds

    tree.refresh()
    scheduler = tree.component(proc.pid, "scheduler")
    others = [tree.component(proc.pid, name) for name in ("triggerer", "dag-processor")]
    first = [c for c in (scheduler, *others) if c is not None]
    if first and proc.poll() is None:
        tree.signal(first, signal.SIGTERM)
        if scheduler is not None and tree.wait([scheduler], grace(WARM_GRACE)):
            for pgid in tree.task_groups(proc.pid):
                with contextlib.suppress(OSError):
                    os.killpg(pgid, signal.SIGINT)
        tree.wait(first, grace(TASK_GRACE))
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # standalone's own shutdown: SIGTERM to each component left, then join
    deadline = time.monotonic() + grace(STOP_GRACE)
    while proc.poll() is None and time.monotonic() < deadline and stopping.requested < 2:
        tree.refresh()
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # its group: components that outlived it
    tree.refresh()
    left = tree.wait(tree.alive(), grace(KILL_GRACE))
    killed = []
    if left:
        tree.signal(left, signal.SIGTERM)
        left = tree.wait(left, grace(KILL_GRACE))
        killed.append(tree.describe(left))
        tree.signal(left, signal.SIGKILL)
        tree.wait(left, 5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything of the group that was never seen
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    tree.reap()
    return [k for k in killed if k]


def run(port: int, timeout: float) -> int:
    env = environment(os.environ, port)
    airflow = Path(sys.executable).parent / "airflow"
    if not airflow.is_file():
        raise LaunchError(
            f"Airflow is not installed beside {sys.executable}: run `make airflow` (it installs the "
            "locked environment with Airflow into .venv/)"
        )
    if not port_free(port):
        raise LaunchError(
            f"port {port} on {HOST} is already in use (another Airflow, or a `make airflow` still running?): "
            f"stop that process, or choose another port, e.g. `{PORT_ENV}={port + 1} make airflow`"
        )
    moved = claim_log_server_ports(env)
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    for note in moved:
        say(f"note: {note}")
    log_path = home / LOG_NAME

    stopping = Stop()
    for signum in STOP_SIGNALS:
        signal.signal(signum, stopping)
    become_subreaper()
    tree = Tree(stopping)

    say(f"starting Airflow {HOST}:{port} (AIRFLOW_HOME {home}, GOVDATA_HOME {env['GOVDATA_HOME']})")
    say(f"datasets: {env['GOVDATA_DATASETS_DIR']}; Airflow's output: {log_path}")
    with log_path.open("wb") as log:
        # A process group of its own: the terminal's Ctrl-C reaches this launcher only, which
        # then stops Airflow in order instead of every component at once.
        proc = subprocess.Popen(
            [str(airflow), "standalone"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            process_group=0,
        )
    tree.popen_pid = proc.pid
    try:
        outcome = wait_until_healthy(proc, port, timeout, tree, stopping, log_path)
        if outcome != "up":
            return 0 if outcome == "stopped" else 1
        say(login_line(env, port))
        say("the dataset DAGs are unpaused and run on their schedules; stop with Ctrl-C")
        while not stopping.requested:
            tree.refresh()
            if proc.poll() is not None:
                warn(f"airflow standalone stopped by itself (status {proc.returncode}); the last lines of {log_path}:")
                warn(tail(log_path))
                return 1
            time.sleep(0.5)
        return 0
    finally:
        say("stopping Airflow …")
        killed = stop(proc, tree, stopping)
        if killed:
            warn(f"killed processes that did not stop in time: {'; '.join(killed)}")
        say("Airflow stopped")


def wait_until_healthy(
    proc: subprocess.Popen[bytes], port: int, timeout: float, tree: Tree, stopping: Stop, log_path: Path
) -> str:
    """``up`` when every component reports healthy; ``stopped`` on a signal; ``failed`` (said why)."""
    started = time.monotonic()
    while not stopping.requested:
        tree.refresh()
        if proc.poll() is not None:
            warn(
                f"airflow standalone exited with status {proc.returncode} while starting; the last lines of {log_path}:"
            )
            warn(tail(log_path))
            return "failed"
        waiting = unhealthy(health(port))
        if not waiting:
            say(f"Airflow is up after {time.monotonic() - started:.0f} s")
            return "up"
        if time.monotonic() - started > timeout:
            warn(
                f"Airflow did not become healthy within {timeout:.0f} s (still waiting for: {', '.join(waiting)}); "
                f"on a busy machine allow longer with {TIMEOUT_ENV}=600 or --timeout 600. The last lines of {log_path}:"
            )
            warn(tail(log_path))
            return "failed"
        time.sleep(1)
    return "stopped"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help=f"the API's port on {HOST} (default: ${PORT_ENV} or {DEFAULT_PORT})")
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT),
        help=f"seconds to wait for every component to be healthy (default: ${TIMEOUT_ENV} or {DEFAULT_TIMEOUT:.0f})",
    )
    args = parser.parse_args(argv)
    try:
        port = configured_port({PORT_ENV: str(args.port)} if args.port is not None else os.environ)
        return run(port, args.timeout)
    except LaunchError as exc:
        warn(f"error: {exc}")
        return exc.status


if __name__ == "__main__":
    sys.exit(main())
