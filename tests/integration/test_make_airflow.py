"""``make airflow``: Airflow standalone comes up on a free port with every demo dataset's DAG
listed and unpaused, no import errors and the GX-quiet logging config, then stops on SIGINT with
exit status 0 and no process left behind; a port in use is refused before anything starts.

The launcher runs as a subprocess in a process group of its own, with a throwaway AIRFLOW_HOME
and GOVDATA_HOME. Nothing here imports Airflow (``tests/dags`` configures it in-process). It
needs no server: about a minute on a quiet 2-core machine (standalone answers after ~35 s;
2-3 minutes when the machine is busy) and ~2 GB while the unpaused demo DAGs run their first
runs, which they start at once (stopping mid-task is part of the test).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

from pipelines.spec import find_specs, load_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "tools" / "airflow_standalone.py"
LOGIN = re.compile(r"open (http://127\.0\.0\.1:(\d+)), user (\S+), password (\S+)")
START_TIMEOUT = 420  # the launcher's own limit; the test waits a little longer
STOP_TIMEOUT = 90


def _launcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airflow_standalone", LAUNCHER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    """This process's environment without any Airflow or govdata setting (tests/dags sets some)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GOVDATA_"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        GOVDATA_HOME=str(tmp_path / "govdata"),
        GOVDATA_AIRFLOW_PORT=str(port),
        GOVDATA_AIRFLOW_START_TIMEOUT=str(START_TIMEOUT),
        # Another Airflow on this machine may hold the task-log servers' default ports.
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(_free_port()),
    )
    return env


def _demo_dag_ids() -> set[str]:
    return {f"govdata__{load_spec(path).id}" for path in find_specs(REPO / "datasets")}


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def _api(base: str, path: str, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(f"{base}{path}", method="POST" if body is not None else "GET")
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class Launched:
    """The launcher's process, its output lines as they come, and every process seen under it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(LAUNCHER)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=REPO,
            start_new_session=True,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self.seen: dict[int, psutil.Process] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def track(self) -> None:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, child)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.track()
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.output.append(line)
            if match := pattern.search(line):
                return match
        pytest.fail(f"the launcher never printed {pattern.pattern!r}; its output:\n" + "\n".join(self.output))

    def rest(self) -> str:
        """What the launcher printed after the lines already read (call once it has exited)."""
        while (line := self.lines.get(timeout=5)) is not None:
            self.output.append(line)
        return "\n".join(self.output)

    def survivors(self) -> list[str]:
        left = []
        for proc in self.seen.values():
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"{proc.pid} {' '.join(proc.cmdline()[:4])}")
        return left

    def kill(self) -> None:
        """Last resort after a failed test: nothing may outlive it."""
        self.track()
        for proc in [psutil.Process(self.proc.pid), *self.seen.values()]:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Launched]:
    port = _free_port()
    run = Launched(_env(tmp_path, port))
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            run.kill()


@pytest.mark.timeout(900)
def test_make_airflow_serves_the_demo_dags_unpaused_and_stops_cleanly(launched: Launched, tmp_path: Path) -> None:
    login = launched.wait_for(LOGIN, START_TIMEOUT + 60)
    base, _, user, password = login.groups()
    token = _api(base, "/auth/token", body={"username": user, "password": password})["access_token"]

    expected = _demo_dag_ids()
    assert len(expected) >= 3
    deadline = time.monotonic() + 180  # the dag-processor's first parse may come after "healthy"
    while True:
        launched.track()
        dags = {d["dag_id"]: d for d in _api(base, "/api/v2/dags?limit=1000", token)["dags"]}
        if expected <= dags.keys() or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert expected <= dags.keys(), f"missing DAGs: {sorted(expected - dags.keys())}"
    assert [d for d in expected if dags[d]["is_paused"]] == []
    assert _api(base, "/api/v2/importErrors", token)["import_errors"] == []
    assert not [d for d in dags if d.startswith("example_")], "example DAGs are loaded"

    # Every component runs with the GX-quiet logging config, and that config resolves.
    launched.track()
    scheduler = [p for p in launched.seen.values() if _cmdline(p)[-1:] == ["scheduler"]]
    assert scheduler, "no scheduler under the launcher"
    running = scheduler[0].environ()
    assert running["AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS"] == "dags.govdata_logging.LOGGING_CONFIG"
    assert running["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)
    assert running["AIRFLOW__CORE__PARALLELISM"] == "4"
    env = _launcher().environment(_env(tmp_path, int(login.group(2))), int(login.group(2)))
    probe = (
        "import logging, airflow\n"
        "from airflow.configuration import conf\n"
        "print(conf.get('logging', 'logging_config_class'), logging.getLogger('great_expectations').level)\n"
    )
    checked = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert checked.stdout.split()[-2:] == ["dags.govdata_logging.LOGGING_CONFIG", "30"], checked.stderr[-2000:]

    launched.track()
    assert launched.seen, "no Airflow process was seen under the launcher"
    groups = {launched.proc.pid}
    for proc in launched.seen.values():
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(proc.pid))
    launched.proc.send_signal(signal.SIGINT)
    status = launched.proc.wait(timeout=STOP_TIMEOUT)
    output = launched.rest()
    assert status == 0, output
    assert "Airflow stopped" in output
    assert launched.survivors() == []
    for pgid in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(tmp_path, port)
        result = subprocess.run(
            [sys.executable, str(LAUNCHER)], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 2
    assert f"port {port}" in result.stderr
    assert "GOVDATA_AIRFLOW_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "airflow").exists()


def test_a_bad_port_setting_is_refused(tmp_path: Path) -> None:
    env = {**_env(tmp_path, 8080), "GOVDATA_AIRFLOW_PORT": "eighty"}
    result = subprocess.run([sys.executable, str(LAUNCHER)], env=env, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert "GOVDATA_AIRFLOW_PORT='eighty'" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_environment_fits_a_small_machine_and_yields_to_the_operator() -> None:
    launcher = _launcher()
    env = launcher.environment({"PATH": "/usr/bin", "AIRFLOW__CORE__PARALLELISM": "8"}, 8081)
    assert env["AIRFLOW_HOME"] == str(REPO / "var" / "airflow")
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    assert env["GOVDATA_DATASETS_DIR"] == str(REPO / "datasets")
    assert Path(env["GOVDATA_HOME"]).is_absolute()
    assert env["AIRFLOW__CORE__PARALLELISM"] == "8"  # the operator's choice wins
    assert env["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"] == "2"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS"] == "dags.govdata_logging.LOGGING_CONFIG"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__API__PORT"] == "8081"
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:8081"


def test_make_airflow_runs_the_launcher() -> None:
    result = subprocess.run(["make", "-n", "airflow"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "tools/airflow_standalone.py" in result.stdout
