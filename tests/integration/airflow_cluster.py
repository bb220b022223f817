"""A throwaway Airflow deployment of separate processes, for integration tests and benchmarks.

:class:`AirflowCluster` starts Airflow 3 in the shape production runs it (``docker-compose.yml``,
here on one host): ``airflow db migrate``, then ``api-server``, ``scheduler``, ``dag-processor``
and, for the CeleryExecutor, N ``celery worker`` processes. Each component is a separate process
in its own process group; all share a fresh ``AIRFLOW_HOME`` and ``GOVDATA_HOME`` in a temporary
folder. The metadata database is a new database on the given PostgreSQL server (dropped on stop);
the Celery broker is an unused database number of the given Redis (flushed on stop); the Celery
result backend is the metadata database.

    with AirflowCluster(executor="CeleryExecutor", postgres_url=..., redis_url=..., workers=2) as af:
        runs = af.trigger_all(af.wait_for_dags(dag_ids), logical_date="2026-01-05T00:00:00+00:00")
        af.wait_for_runs(runs)
        rows = af.task_instances(dag_ids)

Choices that keep runs comparable and the deployment quiet:

- ``[scheduler] use_job_schedule = False``: the scheduler creates no runs of its own (cron or
  asset-triggered); only the runs triggered here happen, each at the logical date given.
- Workers tell themselves apart: every worker process gets ``GOVDATA_WORKER_NAME=w<n>`` and
  ``[core] hostname_callable`` points at :func:`tests.integration.worker_identity.hostname`, so
  ``task_instance.hostname`` reads ``w1@<host>`` or ``w2@<host>``.
- Log serving is off in the scheduler and the workers (``--skip-serve-logs``: two workers on one
  host would contend for port 8793); task logs are files under the shared ``AIRFLOW_HOME``.
- The REST API uses the simple auth manager with every user an admin; it listens on 127.0.0.1.

Nothing here imports Airflow, because the pytest process must not (``tests/dags`` configures
Airflow in-process before its first import): runs are triggered through the REST API and
observed in the metadata database with SQLAlchemy. The environment of the components is built
from scratch for Airflow's and govdata's variables (``AIRFLOW*`` and ``GOVDATA_*`` of the calling
process are dropped), so a test session's own Airflow settings never leak into the deployment.

Every failure raises :class:`ClusterError`, whose message ends with the tail of each component's
log and of the logs of the task instances that did not succeed. :meth:`AirflowCluster.stop` is
idempotent and always runs (context manager, and ``atexit`` as a last resort): it stops every
process group and any process left behind, drops the database and flushes the Redis database.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.integration import logs

REPO = Path(__file__).resolve().parents[2]
EXECUTORS = ("LocalExecutor", "CeleryExecutor")
HOSTNAME_CALLABLE = "tests.integration.worker_identity.hostname"
WORKER_NAME_ENV = "GOVDATA_WORKER_NAME"
FINISHED = ("success", "failed")
#: Task instance states a failure message need not show (done, or never started because of another).
QUIET_STATES = ("success", "upstream_failed", "skipped", None)
#: Lines of each log shown in a failure message.
TAIL_LINES = 40
#: The Redis key that marks a database number as taken by a deployment.
REDIS_CLAIM_KEY = "govdata:airflow-cluster:claim"


class ClusterError(RuntimeError):
    """The deployment did not start, a component died, or runs did not finish in time."""


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    run_id: str
    state: str | None
    start_date: dt.datetime | None = None
    end_date: dt.datetime | None = None


@dataclass(frozen=True)
class TaskInstance:
    dag_id: str
    run_id: str
    task_id: str
    state: str | None
    hostname: str | None
    try_number: int
    queued_dttm: dt.datetime | None
    start_date: dt.datetime | None
    end_date: dt.datetime | None


@dataclass
class _Component:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None


def tree_processes(pids: Iterable[int]) -> Iterator[psutil.Process]:
    """Each live process of the trees under ``pids`` once (a process that has gone is left out)."""
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            if proc.pid not in seen:
                seen.add(proc.pid)
                yield proc


@dataclass
class _MemorySampler:
    """Samples the memory of every process of the deployment (components and their descendants).

    The summed RSS every ``interval`` seconds (cheap: one read of ``/proc/<pid>/statm`` each) counts
    pages that forked processes share once per process, so it overstates what the deployment
    uses; the summed PSS (shared pages divided among their users, from ``smaps_rollup``, ~2 ms a
    process) every ``pss_every`` samples is the honest figure.
    """

    pids: Sequence[int]
    interval: float = 0.5
    pss_every: int = 4
    peak_rss: int = 0
    peak_pss: int = 0
    _count: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="airflow-cluster-memory", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def reset(self) -> None:
        self.peak_rss = self.peak_pss = self._count = 0
        self.sample()

    def sample(self) -> None:
        with_pss = self._count % self.pss_every == 0
        self._count += 1
        rss = pss = 0
        for proc in tree_processes(self.pids):
            with contextlib.suppress(psutil.Error):
                if with_pss:
                    info = proc.memory_full_info()
                    rss += info.rss
                    pss += info.pss
                else:
                    rss += proc.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        if with_pss:
            self.peak_pss = max(self.peak_pss, pss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    return logs.tail(path, lines)


class AirflowCluster:
    """An Airflow deployment of separate processes in a temporary folder (see the module docstring)."""

    def __init__(
        self,
        *,
        executor: str,
        postgres_url: str,
        redis_url: str | None = None,
        workers: int = 2,
        worker_concurrency: int = 1,
        parallelism: int = 4,
        dags_folder: Path = REPO / "dags",
        datasets_dir: Path = REPO / "datasets",
        extra_env: Mapping[str, str] | None = None,
        name: str = "govdata",
        keep: bool = False,
        sample_memory: bool = False,
        start_timeout: float = 240.0,
    ) -> None:
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, not {executor!r}")
        if executor == "CeleryExecutor" and not redis_url:
            raise ValueError("the CeleryExecutor needs redis_url (the broker)")
        self.executor = executor
        self.admin_url = make_url(postgres_url)
        self.redis_url = redis_url
        self.workers = workers if executor == "CeleryExecutor" else 0
        self.worker_concurrency = worker_concurrency
        self.parallelism = parallelism
        self.dags_folder = Path(dags_folder).resolve()
        self.datasets_dir = Path(datasets_dir).resolve()
        self.extra_env = dict(extra_env or {})
        self.keep = keep
        self.sample_memory = sample_memory
        self.start_timeout = start_timeout

        self.base = Path(tempfile.mkdtemp(prefix=f"{name}-cluster-{executor[:-8].lower()}-"))
        self.airflow_home = self.base / "airflow"
        self.govdata_home = self.base / "govdata"
        self.logs = self.base / "components"
        self.db_name = f"govdata_af_{secrets.token_hex(5)}"
        self.db_url = self.admin_url.set(database=self.db_name)
        self.redis_db: int | None = None
        self.api_port = 0
        self.components: list[_Component] = []
        self._engine: sa.Engine | None = None
        self._token: str | None = None
        self._db_created = False
        self._stopped = False
        self._sampler: _MemorySampler | None = None
        self.bin = Path(sys.executable).parent

    # --- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> AirflowCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float | None = None) -> None:
        """Create the database and broker, migrate, start the components and wait until they are ready."""
        timeout = self.start_timeout if timeout is None else timeout
        atexit.register(self.stop)
        for folder in (self.airflow_home, self.govdata_home, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self._create_database()
        if self.executor == "CeleryExecutor":
            self.redis_db = self._claim_redis_db()
        self.api_port = free_port()
        env = self.environment()

        migrate_log = self.logs / "db-migrate.log"
        with migrate_log.open("wb") as out:
            done = subprocess.run(
                [str(self.bin / "airflow"), "db", "migrate"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if done.returncode != 0:
            raise ClusterError(f"airflow db migrate failed (exit {done.returncode}):\n{tail(migrate_log)}")

        airflow = str(self.bin / "airflow")
        self.components = [
            _Component(
                "api-server",
                [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"],
                env,
                self.logs / "api-server.log",
            ),
            _Component("scheduler", [airflow, "scheduler", "--skip-serve-logs"], env, self.logs / "scheduler.log"),
            _Component("dag-processor", [airflow, "dag-processor"], env, self.logs / "dag-processor.log"),
        ]
        for n in range(1, self.workers + 1):
            name = f"w{n}"
            argv = [
                airflow,
                "celery",
                "worker",
                "--concurrency",
                str(self.worker_concurrency),
                "--celery-hostname",
                f"{name}@%h",
                "--skip-serve-logs",
            ]
            self.components.append(
                _Component(f"worker-{name}", argv, {**env, WORKER_NAME_ENV: name}, self.logs / f"worker-{name}.log")
            )
        for component in self.components:
            component.log_file = component.log_path.open("wb")
            component.process = subprocess.Popen(
                component.argv,
                env=component.env,
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=component.log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as one
            )
        if self.sample_memory:
            self._sampler = _MemorySampler([c.process.pid for c in self.components if c.process is not None])
            self._sampler.start()
        self._wait_ready(timeout)

    def stop(self, grace: float = 20.0) -> None:
        """Stop every process, drop the database, flush the broker, remove the folder (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self._sampler is not None:
            self._sampler.stop()
        problems: list[str] = []
        self._stop_processes(grace)
        for component in self.components:
            if component.log_file is not None:
                component.log_file.close()
        if self._engine is not None:
            self._engine.dispose()
        if self._db_created:
            try:
                admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
                with admin.connect() as con:
                    con.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
                admin.dispose()
            except sa.exc.SQLAlchemyError as exc:
                problems.append(f"could not drop database {self.db_name}: {exc}")
        if self.redis_db is not None:
            try:
                self._redis(self.redis_db).flushdb()
            except OSError as exc:  # redis' ConnectionError is an OSError
                problems.append(f"could not flush Redis database {self.redis_db}: {exc}")
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)
        if problems:
            raise ClusterError("; ".join(problems))

    def _stop_processes(self, grace: float) -> None:
        # Task processes run in process groups of their own (the Task SDK's supervisor calls
        # setpgid), so collect every descendant before the components go away.
        leftovers: dict[int, psutil.Process] = {}
        for component in self.components:
            if component.process is None:
                continue
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(component.process.pid).children(recursive=True):
                    leftovers[child.pid] = child
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(component.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for component in self.components:
            if component.process is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(component.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.process.wait(timeout=10)
        for proc in leftovers.values():
            with contextlib.suppress(psutil.Error):
                if proc.is_running():
                    proc.kill()
        psutil.wait_procs(list(leftovers.values()), timeout=5)

    # --- configuration ----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def broker_url(self) -> str:
        if self.redis_url is None or self.redis_db is None:
            raise ClusterError("this deployment has no Celery broker")
        parts = urllib.parse.urlsplit(self.redis_url)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"/{self.redis_db}", "", ""))

    def environment(self) -> dict[str, str]:
        """The environment every component runs with (a worker adds its name)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GOVDATA_"))}
        metadata = self.db_url.render_as_string(hide_password=False)
        env.update(
            {
                "PATH": f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONPATH": str(REPO),
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
                # Airflow derives its async URL as postgresql+asyncpg, which is not installed;
                # psycopg 3 serves both.
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": self.db_url.set(
                    drivername="postgresql+psycopg_async"
                ).render_as_string(hide_password=False),
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__LOGGING__LOGGING_CONFIG_CLASS": "dags.govdata_logging.LOGGING_CONFIG",
                "GOVDATA_HOME": str(self.govdata_home),
                "GOVDATA_DATASETS_DIR": str(self.datasets_dir),
            }
        )
        if self.executor == "CeleryExecutor":
            env.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata}",
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                    # Airflow's default (24 h), stated so that every component stops warning about it.
                    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
                }
            )
        env.update(self.extra_env)
        return env

    def _create_database(self) -> None:
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with admin.connect() as con:
                con.execute(sa.text(f'CREATE DATABASE "{self.db_name}"'))
            self._db_created = True
        finally:
            admin.dispose()

    def _redis(self, db: int) -> Any:
        import redis  # the client is installed with Airflow's Celery extra

        assert self.redis_url is not None
        parts = urllib.parse.urlsplit(self.redis_url)
        return redis.Redis(host=parts.hostname or "127.0.0.1", port=parts.port or 6379, db=db, socket_timeout=5)

    def _claim_redis_db(self) -> int:
        """An empty Redis database number (not 0, which other tests use), marked as taken."""
        count = int(self._redis(0).config_get("databases").get("databases", 16))
        token = f"{os.getpid()}:{self.db_name}"
        for number in range(count - 1, 0, -1):
            client = self._redis(number)
            if client.dbsize() == 0 and client.set(REDIS_CLAIM_KEY, token, nx=True):
                return number
        raise ClusterError(f"no empty Redis database among 1..{count - 1} for the Celery broker")

    # --- readiness --------------------------------------------------------------------------

    def _check_alive(self) -> None:
        for component in self.components:
            if component.process is not None and component.process.poll() is not None:
                raise ClusterError(
                    f"{component.name} exited with status {component.process.returncode}\n{self.diagnostics()}"
                )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting_for = "the API server"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = self._request("GET", "/api/v2/monitor/health", auth=False)
            except (OSError, ClusterError):
                health = None
            if health is not None:
                unhealthy = [
                    part
                    for part in ("metadatabase", "scheduler", "dag_processor")
                    if (health.get(part) or {}).get("status") != "healthy"
                ]
                waiting_for = ", ".join(unhealthy)
                if not unhealthy:
                    missing = self._workers_missing()
                    if not missing:
                        return
                    waiting_for = "Celery workers " + ", ".join(missing)
            time.sleep(1.0)
        raise ClusterError(
            f"the deployment was not ready after {timeout:.0f} s (waiting for {waiting_for})\n{self.diagnostics()}"
        )

    def _workers_missing(self) -> list[str]:
        """The worker names that do not answer a Celery ping yet."""
        if not self.workers:
            return []
        from celery import Celery  # Celery itself, not Airflow: a bare app on the same broker

        app = Celery("govdata-airflow-cluster", broker=self.broker_url)
        try:
            replies = app.control.ping(timeout=1.0)
        except OSError:
            replies = []
        finally:
            app.close()
        answered = {name.split("@", 1)[0] for reply in replies for name in reply}
        return [f"w{n}" for n in range(1, self.workers + 1) if f"w{n}" not in answered]

    # --- the REST API -----------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self._api_token()}"
        request = urllib.request.Request(f"{self.api_url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", errors="replace")[:2000]
            raise ClusterError(f"{method} {path} answered {exc.code}: {detail}") from None
        return json.loads(payload) if payload else None

    def _api_token(self) -> str:
        if self._token is None:
            answer = self._request("GET", "/auth/token", auth=False)
            self._token = str(answer["access_token"])
        return self._token

    def trigger(self, dag_id: str, *, logical_date: str, run_id: str | None = None) -> DagRun:
        """Trigger one DAG run at ``logical_date`` (ISO 8601 with a time zone)."""
        body = {"logical_date": logical_date, "dag_run_id": run_id or f"govdata__{logical_date[:10]}", "conf": {}}
        answer = self._request("POST", f"/api/v2/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns", body)
        return DagRun(dag_id=answer["dag_id"], run_id=answer["dag_run_id"], state=answer.get("state"))

    def trigger_all(self, dag_ids: Iterable[str], *, logical_date: str) -> list[DagRun]:
        """Trigger one run of each DAG, one request after the other (a few ms each)."""
        return [self.trigger(dag_id, logical_date=logical_date) for dag_id in dag_ids]

    # --- the metadata database --------------------------------------------------------------

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(self.db_url, poolclass=NullPool)
        return self._engine

    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float = 180.0) -> list[str]:
        """Wait until the DAG processor has stored every DAG in ``dag_ids``; return them."""
        deadline = time.monotonic() + timeout
        query = sa.text(
            "SELECT d.dag_id FROM dag d JOIN serialized_dag s ON s.dag_id = d.dag_id"
            " WHERE NOT d.is_stale AND d.dag_id IN :ids"
        ).bindparams(sa.bindparam("ids", expanding=True))
        missing = set(dag_ids)
        while time.monotonic() < deadline:
            self._check_alive()
            with self.engine.connect() as con:
                missing = set(dag_ids) - {row[0] for row in con.execute(query, {"ids": list(dag_ids)})}
            if not missing:
                return list(dag_ids)
            time.sleep(1.0)
        raise ClusterError(
            f"DAGs not parsed after {timeout:.0f} s: {sorted(missing)}\n"
            f"import errors: {self.import_errors()}\n{self.diagnostics()}"
        )

    def import_errors(self) -> dict[str, str]:
        with self.engine.connect() as con:
            rows = con.execute(sa.text("SELECT filename, stacktrace FROM import_error"))
            return {str(f): str(s)[-1000:] for f, s in rows}

    def dag_runs(self, runs: Sequence[DagRun]) -> list[DagRun]:
        keys = {(r.dag_id, r.run_id) for r in runs}
        query = sa.text(
            "SELECT dag_id, run_id, state, start_date, end_date FROM dag_run WHERE dag_id IN :ids"
        ).bindparams(sa.bindparam("ids", expanding=True))
        with self.engine.connect() as con:
            rows = con.execute(query, {"ids": sorted({d for d, _ in keys})})
            found = [DagRun(*row) for row in rows if (row[0], row[1]) in keys]
        return sorted(found, key=lambda r: (r.dag_id, r.run_id))

    def wait_for_runs(self, runs: Sequence[DagRun], timeout: float = 600.0, poll: float = 1.0) -> list[DagRun]:
        """Wait until every run in ``runs`` has finished (success or failed); return their final rows."""
        deadline = time.monotonic() + timeout
        current: list[DagRun] = []
        while time.monotonic() < deadline:
            self._check_alive()
            current = self.dag_runs(runs)
            if len(current) == len(runs) and all(r.state in FINISHED for r in current):
                return current
            time.sleep(poll)
        states = {f"{r.dag_id}/{r.run_id}": r.state for r in current}
        raise ClusterError(f"runs not finished after {timeout:.0f} s: {states}\n{self.diagnostics()}")

    def task_instances(self, dag_ids: Sequence[str] | None = None) -> list[TaskInstance]:
        """Every task instance (of ``dag_ids``, if given), as the metadata database has it."""
        sql = (
            "SELECT dag_id, run_id, task_id, state, hostname, try_number, queued_dttm, start_date, end_date"
            " FROM task_instance"
        )
        params: dict[str, Any] = {}
        query = sa.text(sql)
        if dag_ids is not None:
            query = sa.text(sql + " WHERE dag_id IN :ids").bindparams(sa.bindparam("ids", expanding=True))
            params["ids"] = list(dag_ids)
        with self.engine.connect() as con:
            rows = [TaskInstance(*row) for row in con.execute(query, params)]
        return sorted(rows, key=lambda t: (t.dag_id, t.run_id, t.start_date or dt.datetime.max.replace(tzinfo=dt.UTC)))

    # --- diagnostics ------------------------------------------------------------------------

    @property
    def component_pids(self) -> list[int]:
        """The process ids of the running components (each the leader of its process group)."""
        return [c.process.pid for c in self.components if c.process is not None and c.process.poll() is None]

    def reset_memory_peaks(self) -> None:
        """Start the peaks over from the current sample (e.g. once the deployment is idle)."""
        if self._sampler is not None:
            self._sampler.reset()

    @property
    def peak_memory(self) -> dict[str, int] | None:
        """The largest summed RSS and PSS (bytes) of all processes sampled so far (``sample_memory=True``)."""
        if self._sampler is None:
            return None
        return {"rss": self._sampler.peak_rss, "pss": self._sampler.peak_pss}

    def task_log(self, ti: TaskInstance) -> Path | None:
        """The log file of the latest attempt of ``ti`` under ``AIRFLOW_HOME/logs``, if any."""
        folder = self.airflow_home / "logs" / f"dag_id={ti.dag_id}" / f"run_id={ti.run_id}" / f"task_id={ti.task_id}"
        attempts = sorted(folder.glob("attempt=*.log"), key=lambda p: p.stat().st_mtime)
        return attempts[-1] if attempts else None

    def diagnostics(self, lines: int = TAIL_LINES) -> str:
        """The tail of every component's log and of the logs of task instances that did not succeed."""
        parts = []
        for component in self.components or []:
            status = logs.process_status(component.process)
            parts.append(
                f"----- {component.name} ({status}): last {lines} lines -----\n{tail(component.log_path, lines)}"
            )
        if self._engine is not None or self._db_created:
            try:
                unfinished = [t for t in self.task_instances() if t.state not in QUIET_STATES]
            except sa.exc.SQLAlchemyError as exc:
                unfinished = []
                parts.append(f"----- task instances: not readable ({exc}) -----")
            for ti in unfinished[:10]:
                log = self.task_log(ti)
                text = tail(log, lines) if log else "(no log file)"
                parts.append(f"----- task {ti.dag_id}.{ti.task_id} ({ti.state}, host {ti.hostname}) -----\n{text}")
        return "\n".join(parts)
