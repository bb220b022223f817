"""OpenLineage run events for the five steps and database deliveries: START, then COMPLETE, FAIL or ABORT.

Each step of a run (:func:`observe`, called by the step functions of :mod:`pipelines.runner`, so
``govdata run``, ``govdata demo`` and the Airflow tasks all emit the same events) is one
OpenLineage run of the job ``<dataset>.<step>`` in the namespace ``OPENLINEAGE_NAMESPACE``
(default ``govdata``), with a fresh run id (UUIDv7). Every step of one govdata run carries a
ParentRunFacet naming the job ``<dataset>`` and a run id derived from (namespace, dataset, run
key), so the five steps of a run share one parent; the Airflow glue may pass the DAG run instead
(``lineage_parent=Parent.of(dag_id, dag_run.run_id)``).

The datasets are the ones the step really reads and writes:

======== ================================================ ==============================================
step     inputs                                           outputs
======== ================================================ ==============================================
collect  the source: ``file`` + absolute path, or the     ``file`` + the landing folder (schema, rows,
         database per the OpenLineage naming spec          sha256 of the landed file)
         (``postgres://host:port`` + ``db.schema.table``)
cleanse  the landing folder                               the staging folder (the spec's schema, rows)
quality  the staging folder, with the suite's assertions  the quarantine folder, when rows were quarantined
         and row/null counts as input facets
catalog  the staging folder (and the published version    the catalog entry (``govdata-catalog`` +
         a merge starts from)                             resource code) and the candidate file
publish  the candidate file                               the exchange version (``govdata-exchange`` or
                                                          the remote exchange's ``scheme://host:port``,
                                                          name ``<dataset>/<version>``, sha256, rows)
======== ================================================ ==============================================

**Database deliveries.** :func:`observe_delivery`, called by
:func:`exchange.delivery_db.deliver_to_database` (so ``govdata exchange deliver``, the exchange
API and the Airflow delivery DAG all emit it), makes each started delivery one run of the job
``<entry>.deliver``: one job per resource, the grant, receipt, subscriber and kind of delivery
being run tags. Its input is the exchange version, named as the publish step names its output
(and, for a change set, the version the table held); its output the subscriber's table per the
naming spec, from the target URL's backend, host, port and database only: ``postgres://host:port``
and ``db.schema.table``, ``mysql://host:port`` and ``db.table``, ``sqlite://<file>`` and ``table``;
with the delivered columns as its schema (a masked column is ``VARCHAR``), a column lineage that
says which columns are masked and by which rule (also tagged ``masked``: rule names, no values)
and the rows written. A delivery that fails for good is a FAIL with the receipt's error, or only
the exception's type when that is not a :class:`~pipelines.errors.GovdataError` (a database's
message may quote a value). No parent by default (the exchange version links a delivery to the
run that published it); the Airflow glue passes the DAG run (``lineage_parent``). The default
file is ``$GOVDATA_HOME/lineage/<entry>/deliveries/<receipt id>.jsonl``.

Sensitive columns appear by name (in schema facets, and tagged ``sensitive``), never a value:
no facet carries a row, an observed value or an expectation's arguments, and a FAIL event's
error message is the message of a :class:`~pipelines.errors.GovdataError` (written without data)
or, for any other exception, only its type.

**Where events go.** Nothing configured: the client's FileTransport appends JSON lines to
``$GOVDATA_HOME/lineage/<dataset>/<run key>.jsonl`` (one file per run, so runs never write the
same file at once). The client's own configuration replaces that default: ``OPENLINEAGE_URL``
(+ ``OPENLINEAGE_ENDPOINT``, ``OPENLINEAGE_API_KEY``) for HTTP, ``OPENLINEAGE__TRANSPORT__*``
variables, or an ``openlineage.yml`` (``OPENLINEAGE_CONFIG``, the working folder,
``~/.openlineage/``) with a ``transport``. ``GOVDATA_LINEAGE=off`` (or the client's
``OPENLINEAGE_DISABLED=true``) turns lineage off.

**Lineage is not a gate.** Events are built and sent by a daemon thread of the run, so a step never
waits for the network while it works; at its end a step waits at most ``GOVDATA_LINEAGE_TIMEOUT``
seconds (default 5) for its events. A transport error is logged once per run at WARNING with its
cause, and so is a delivery slower than the timeout; either turns lineage off for the rest of that
run in this process, so a dead endpoint costs at most one timeout per step process (and per
delivery: a delivery is a run of its own, whose thread ends a second after each event). A bad
configuration (``OPENLINEAGE_URL`` that is not an http(s) URL, an unknown transport type, a
missing ``OPENLINEAGE_CONFIG`` file) is logged at WARNING naming the variable and the fix, and
the run goes on without lineage. See docs/adr/0013-lineage.md.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import os
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pipelines.errors import GovdataError

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import InputDataset, OutputDataset, RunEvent
    from openlineage.client.generated.base import DatasetFacet, InputDatasetFacet, JobFacet, OutputDatasetFacet
    from sqlalchemy.engine import URL

    from exchange.delivery import GrantInfo, VersionData
    from pipelines.runner import RunContext
    from pipelines.spec import DatasetSpec

__all__ = [
    "CATALOG_NAMESPACE",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TIMEOUT",
    "EXCHANGE_NAMESPACE",
    "NAMESPACE_ENV",
    "SWITCH_ENV",
    "TIMEOUT_ENV",
    "DeliveryLineage",
    "Parent",
    "delivery_event_file",
    "enabled",
    "event_file",
    "job_namespace",
    "observe",
    "observe_delivery",
]

log = logging.getLogger(__name__)

SWITCH_ENV = "GOVDATA_LINEAGE"
TIMEOUT_ENV = "GOVDATA_LINEAGE_TIMEOUT"
NAMESPACE_ENV = "OPENLINEAGE_NAMESPACE"
DEFAULT_NAMESPACE = "govdata"
#: Seconds a step waits at its end for its events to be delivered.
DEFAULT_TIMEOUT = 5.0
#: The folder under GOVDATA_HOME of the default file transport.
LINEAGE_DIR = "lineage"
CATALOG_NAMESPACE = "govdata-catalog"
EXCHANGE_NAMESPACE = "govdata-exchange"
INTEGRATION = "GOVDATA"

_ON = {"", "on", "true", "1", "yes"}
_OFF = {"off", "false", "0", "no"}
_THREAD_NAME = "govdata-lineage"
#: A run's lineage thread ends after this long without events.
_IDLE_SECONDS = 30.0
#: uuid5 namespace of the parent run ids (fixed: the same run key gives the same parent everywhere).
_PARENT_IDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:govdata:lineage")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")

_STEP_DOCS = {
    "collect": "Read the source into an immutable landing copy (Parquet, row count, sha256).",
    "cleanse": "Standardise, cast and de-duplicate the landed rows into the staging folder.",
    "quality": "Run the expectation suite on the staged rows; quarantine failing rows; hold or pass.",
    "catalog": "Register the catalog entry and prepare the candidate version (canonical file, checksum).",
    "publish": "Commit the candidate as the next version of the dataset in the exchange.",
}

T = TypeVar("T")


def job_namespace() -> str:
    """The namespace of govdata's jobs: ``OPENLINEAGE_NAMESPACE``, else ``govdata``."""
    return os.environ.get(NAMESPACE_ENV, "").strip() or DEFAULT_NAMESPACE


@dataclass(frozen=True)
class Parent:
    """The run a step belongs to, sent as its ParentRunFacet (and as the root of the hierarchy).

    Without one a step's parent is ``Parent.of(<dataset>, <run key>)``: the job ``<dataset>`` with
    a run id derived from the run key, the same for the five steps of a run however they are run.
    The Airflow glue passes the DAG run instead, e.g. ``Parent.of(dag_id, dag_run.run_id)``, or
    ``Parent(name=dag_id, run_id=<the DAG run's OpenLineage run id>)`` when another integration
    already emits events for the DAG run.
    """

    name: str
    run_id: str
    namespace: str = field(default_factory=job_namespace)
    #: The top of the hierarchy when it is not this parent (e.g. the DAG run above a task group).
    root: Parent | None = None

    def __post_init__(self) -> None:
        if not self.name.strip() or not self.namespace.strip():
            raise ValueError("a lineage parent needs a job name and a namespace")
        try:
            canonical = str(uuid.UUID(str(self.run_id)))
        except ValueError:
            raise ValueError(f"lineage parent {self.name!r}: run_id {self.run_id!r} is not a UUID") from None
        object.__setattr__(self, "run_id", canonical)

    @classmethod
    def of(cls, name: str, key: str, *, namespace: str | None = None) -> Parent:
        """A parent whose run id is derived from ``key``: the same (namespace, name, key), the same id."""
        ns = namespace or job_namespace()
        return cls(name=name, run_id=str(uuid.uuid5(_PARENT_IDS, f"{ns}\n{name}\n{key}")), namespace=ns)


def enabled() -> bool:
    """Whether lineage is on: ``GOVDATA_LINEAGE`` is not ``off`` and ``OPENLINEAGE_DISABLED`` is not true."""
    value = os.environ.get(SWITCH_ENV, "").strip().lower()
    if value in _OFF:
        return False
    if value not in _ON:
        _warn_once(
            f"switch:{value}",
            "lineage is off: %s=%r is neither on nor off\n  → set %s=on (the default) or %s=off",
            SWITCH_ENV,
            value,
            SWITCH_ENV,
            SWITCH_ENV,
        )
        return False
    return os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() != "true"


def event_file(home: Path, dataset: str, run_id: str) -> Path:
    """Where the default file transport appends a run's events (JSON lines)."""
    return home / LINEAGE_DIR / dataset / f"{run_id}.jsonl"


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
        if value >= 0:
            return value
    except ValueError:
        pass
    _warn_once(
        f"timeout:{raw}",
        "%s=%r is not a number of seconds; using %.0f\n  → set %s to a number such as 5",
        TIMEOUT_ENV,
        raw,
        DEFAULT_TIMEOUT,
        TIMEOUT_ENV,
    )
    return DEFAULT_TIMEOUT


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(key: str, message: str, *args: Any) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(message, *args)


def _redact(text: str) -> str:
    """``text`` without URL credentials (a transport's message may quote its URL)."""
    return _USERINFO.sub("***@", text)


# --- per-run state and the emitting thread -------------------------------------------------------


class _Quiet(logging.Filter):
    """Drops urllib3's per-retry warnings raised on a lineage thread: the run logs one warning instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").startswith(_THREAD_NAME)


_QUIET = _Quiet()


class _Worker:
    """A daemon thread that builds and emits one run's events in order; it ends when idle.

    One per run, so a run whose endpoint hangs never holds back the events of another run.
    """

    def __init__(self, name: str, on_idle: Callable[[], None], idle: float = _IDLE_SECONDS) -> None:
        self._name = name
        self._on_idle = on_idle
        self._idle = idle
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> threading.Event:
        done = threading.Event()
        with self._lock:
            self._jobs.put((job, done))
            if self._thread is None:
                logging.getLogger("urllib3.connectionpool").addFilter(_QUIET)  # once: filters are a set
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
        return done

    def _loop(self) -> None:
        while True:
            try:
                job, done = self._jobs.get(timeout=self._idle)
            except queue.Empty:
                with self._lock:  # submit() puts under this lock: nothing can slip in unseen
                    if self._jobs.empty():
                        self._thread = None
                        self._on_idle()
                        return
                continue
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - jobs report their own errors; this keeps the thread alive
                log.debug("lineage job failed: %r", exc)
            finally:
                done.set()


class _RunState:
    """What this process knows about the lineage of one run: its thread, its client, its troubles."""

    def __init__(self, name: str, idle: float = _IDLE_SECONDS) -> None:
        self.worker = _Worker(name, on_idle=self.close, idle=idle)
        #: A transport error or a slow delivery: further events of the run are dropped.
        self.off = False
        self.warned: set[str] = set()
        self.client: OpenLineageClient | None = None
        self.client_key: tuple[Any, ...] | None = None

    def close(self) -> None:
        """Close the run's transport (an HTTP session) when its thread has nothing more to send."""
        client, self.client, self.client_key = self.client, None, None
        if client is not None:
            try:
                client.close(0)
            except Exception as exc:  # noqa: BLE001 - closing a transport must never reach a step
                log.debug("closing the lineage transport failed: %r", exc)

    def warn(self, kind: str, message: str, *args: Any) -> None:
        """Log ``message`` once per run for each ``kind`` of problem."""
        if kind in self.warned:
            log.debug(message, *args)
            return
        self.warned.add(kind)
        log.warning(message, *args)


_runs: dict[tuple[str, str, str], _RunState] = {}
_runs_lock = threading.Lock()


def _run_state(key: tuple[str, str, str]) -> _RunState:
    with _runs_lock:
        state = _runs.get(key)
        if state is None:
            state = _runs[key] = _RunState(f"{_THREAD_NAME}-{key[1]}-{key[2]}")
        return state


# --- the client: the user's configuration, else a file under the workspace -----------------------


class _BadConfig(GovdataError):
    """The OpenLineage configuration cannot be used (lineage is off; the run goes on)."""


def _config_file() -> Path | None:
    """The OpenLineage YAML the client reads, in its own order (OPENLINEAGE_CONFIG, ./, ~/.openlineage/)."""
    named = os.environ.get("OPENLINEAGE_CONFIG", "").strip()
    if named:
        path = Path(named).expanduser()
        if not (path.is_file() and os.access(path, os.R_OK)):
            raise _BadConfig(
                "OPENLINEAGE_CONFIG names a file that does not exist or cannot be read",
                hint="point OPENLINEAGE_CONFIG at a readable openlineage.yml, or unset it to write events to "
                f"$GOVDATA_HOME/{LINEAGE_DIR}",
            )
        return path
    for path in (Path.cwd() / "openlineage.yml", Path.home() / ".openlineage" / "openlineage.yml"):
        if path.is_file():
            return path
    return None


def _names_a_transport(config: Path) -> bool:
    """Whether an openlineage.yml chooses a transport (it may configure only facets or filters)."""
    import yaml

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # the client logs an unreadable config itself; the default place applies
    transport = data.get("transport") if isinstance(data, dict) else None
    return isinstance(transport, dict) and bool(transport.get("type"))


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:  # the value is not repeated: it may hold credentials
        raise _BadConfig(
            "OPENLINEAGE_URL is not an http(s) URL with a host",
            hint="set it to the base URL of the lineage endpoint, e.g. http://marquez:5000 (the path goes in "
            f"OPENLINEAGE_ENDPOINT, default api/v1/lineage), or unset it to write events to $GOVDATA_HOME/{LINEAGE_DIR}",
        )


def _make_client(default: Path) -> OpenLineageClient:
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport import get_default_factory
    from openlineage.client.transport.file import FileConfig, FileTransport

    def file_transport() -> FileTransport:
        default.parent.mkdir(parents=True, exist_ok=True)
        return FileTransport(FileConfig(log_file_path=str(default), append=True))

    url = os.environ.get("OPENLINEAGE_URL", "").strip()
    if url:
        _check_url(url)
    config = _config_file()
    typed = os.environ.get("OPENLINEAGE__TRANSPORT__TYPE", "").strip()
    if not (url or typed or (config is not None and _names_a_transport(config))):
        # Nothing chose a transport: the default, with the rest of the client's configuration.
        return OpenLineageClient(transport=file_transport())
    where = (
        "OPENLINEAGE__TRANSPORT__TYPE" if typed else f"the OpenLineage config {config}" if config else "OPENLINEAGE_URL"
    )
    try:
        client = OpenLineageClient()
    except Exception as exc:  # noqa: BLE001 - the client raises ValueError, TypeError, KeyError, ImportError… for a bad config
        known = ", ".join(sorted(get_default_factory().transports))
        raise _BadConfig(
            f"the OpenLineage configuration ({where}) cannot be used: {type(exc).__name__}: {_redact(str(exc))}",
            hint=f"fix it (transport types: {known}, or a dotted Transport class), unset it to write events to "
            f"$GOVDATA_HOME/{LINEAGE_DIR}, or set {SWITCH_ENV}=off",
        ) from None
    if client.transport.kind == "console" and not (client.config.transport or {}).get("type"):
        client.transport = file_transport()  # a config file without a transport: the default place
    return client


def _client_for(state: _RunState, default: Path) -> OpenLineageClient | None:
    """The run's client, built again only when the configuration changed (None: a bad one, logged once)."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("OPENLINEAGE")))
    key = (env, str(Path.cwd()), str(default))
    if state.client_key == key:
        return state.client
    state.close()
    try:
        state.client = _make_client(default)
    except _BadConfig as exc:
        state.warn("config", "lineage is off for this run: %s\n  → %s", exc.message, exc.hint)
        state.client = None
    state.client_key = key
    return state.client


# --- one step execution --------------------------------------------------------------------------


def observe(ctx: RunContext, step: str, work: Callable[[RunContext], T], *, parent: Parent | None = None) -> T:
    """Run ``work(ctx)`` as the step ``step`` of the run, emitting START then COMPLETE, FAIL or ABORT.

    Lineage never changes what the step does: its errors are logged (see the module docstring),
    the step's own result or exception passes through unchanged.
    """
    if not enabled():
        return work(ctx)
    observed = _Step(ctx, step, parent or Parent.of(ctx.dataset, ctx.run_id))
    observed.send("START")
    try:
        report = work(ctx)
    except Exception as exc:
        held = getattr(exc, "report", None)
        observed.send("FAIL", report=held if isinstance(held, dict) else None, error=_error_message(step, exc))
        raise
    except BaseException:
        observed.send("ABORT")
        raise
    observed.send("COMPLETE", report=report if isinstance(report, dict) else None)
    return report


def _error_message(step: str, exc: BaseException) -> str:
    if isinstance(exc, GovdataError):
        return str(exc)  # govdata's messages name files, rows and fields, never values
    # Anything else may quote data (a database driver's message can hold a value): only its type.
    return f"{type(exc).__name__} in the {step} step (the message is in the step's log)"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Observed:
    """One OpenLineage run whose events are built and sent on its lineage thread (a step, a delivery).

    Subclasses say what the run is (:meth:`_event`, :attr:`what`, :attr:`subject`, :attr:`noun`)
    and where the default file transport writes (:attr:`default_file`).
    """

    #: For messages: what sends (``collect``, ``deliver``), the run's name, and what goes on without lineage.
    what = ""
    subject = ""
    noun = "run"

    def __init__(self, state: _RunState, default_file: Path) -> None:
        self.state = state
        self.default_file = default_file
        self.run_id: str | None = None

    def send(self, kind: str, *, at: dt.datetime | None = None, **details: Any) -> None:
        """Queue the ``kind`` event; a terminal one waits (at most the timeout) for the run's events."""
        if self.state.off:
            return
        when = at or _now()
        done = self.state.worker.submit(lambda: self._emit(kind, when, details))
        if kind != "START":
            self._wait(done)

    def _wait(self, done: threading.Event) -> None:
        timeout = _timeout()
        if done.wait(timeout):
            return
        self.state.off = True
        self.state.warn(
            "slow",
            "lineage: the %s events of %s were not delivered within %.1f s (%s); the %s goes on, "
            "without lineage for the rest of this %s",
            self.what,
            self.subject,
            timeout,
            TIMEOUT_ENV,
            self.noun,
            self.noun,
        )

    def _emit(self, kind: str, at: dt.datetime, details: dict[str, Any]) -> None:
        if self.state.off:
            return
        try:
            if self.run_id is None:
                from openlineage.client.uuid import generate_new_uuid

                self.run_id = str(generate_new_uuid(at))  # UUIDv7: ordered by the run's start
            client = _client_for(self.state, self.default_file)
            if client is None:
                return
            event = self._event(kind, at, details)
        except Exception as exc:  # noqa: BLE001 - describing a run must never fail it
            self.state.off = True
            self.state.warn(
                "build",
                "lineage: the %s event of %s could not be built (%s: %s); the %s goes on without lineage",
                self.what,
                self.subject,
                type(exc).__name__,
                _redact(str(exc)),
                self.noun,
            )
            return
        try:
            client.emit(event)
        except Exception as exc:  # noqa: BLE001 - a transport may raise anything; lineage is not a gate
            self.state.off = True
            self.state.warn(
                "transport",
                "lineage: the %s %s event of %s was not delivered by the %s transport (%s: %s); the %s "
                "goes on, without lineage for the rest of this %s",
                self.what,
                kind,
                self.subject,
                getattr(client.transport, "kind", "?"),
                type(exc).__name__,
                _redact(str(exc)),
                self.noun,
                self.noun,
            )

    def _event(self, kind: str, at: dt.datetime, details: dict[str, Any]) -> RunEvent:
        raise NotImplementedError


def _run_facets(parent: Parent | None, error: str | None) -> dict[str, Any]:
    """The run facets of every govdata event: the parent (if any), the engine, and a FAIL's message."""
    from openlineage.client.facet_v2 import error_message_run, parent_run, processing_engine_run

    facets: dict[str, Any] = {}
    if parent is not None:
        root = parent.root or parent
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent.run_id),
            job=parent_run.Job(namespace=parent.namespace, name=parent.name),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=root.run_id),
                job=parent_run.RootJob(namespace=root.namespace, name=root.name),
            ),
            producer=_producer(),
        )
    facets["processing_engine"] = processing_engine_run.ProcessingEngineRunFacet(
        version=_version("govdata"),
        name="govdata",
        openlineageAdapterVersion=_version("openlineage-python"),
        producer=_producer(),
    )
    if error is not None:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="python", producer=_producer()
        )
    return facets


def _job_facets(description: str) -> dict[str, JobFacet]:
    from openlineage.client.facet_v2 import documentation_job, job_type_job

    return {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration=INTEGRATION, jobType="TASK", producer=_producer()
        ),
        "documentation": documentation_job.DocumentationJobFacet(
            description=description, contentType="text/plain", producer=_producer()
        ),
    }


class _Step(_Observed):
    """The lineage of one execution of one step."""

    def __init__(self, ctx: RunContext, step: str, parent: Parent) -> None:
        key = (str(ctx.workspace.root), ctx.dataset, ctx.run_id)
        super().__init__(_run_state(key), event_file(ctx.workspace.root, ctx.dataset, ctx.run_id))
        self.ctx = ctx
        self.step = step
        self.parent = parent
        self.what = step
        self.subject = f"{ctx.dataset} run {ctx.run_id}"

    def _event(self, kind: str, at: dt.datetime, details: dict[str, Any]) -> RunEvent:
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import nominal_time_run

        ctx = self.ctx
        inputs, outputs, job_facets = _DATASETS[self.step](ctx, details.get("report"))
        run_facets = _run_facets(self.parent, details.get("error"))
        run_facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=_nominal(ctx.logical_date), producer=_producer()
        )
        description = f"{_STEP_DOCS.get(self.step, self.step)} Dataset: {ctx.spec.name} ({ctx.spec.department.name})."
        return RunEvent(
            eventType=RunState(kind),
            eventTime=at.isoformat(),
            run=Run(runId=str(self.run_id), facets=run_facets),
            job=Job(
                namespace=job_namespace(),
                name=f"{ctx.dataset}.{self.step}",
                facets=_job_facets(description) | job_facets,
            ),
            inputs=inputs,
            outputs=outputs,
            producer=_producer(),
        )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _producer() -> str:
    return f"urn:govdata:{_version('govdata')}"


def _nominal(logical: dt.date | dt.datetime) -> str:
    """The logical date as a date-time: naive times and plain dates are UTC, as in the run key."""
    if isinstance(logical, dt.datetime):
        return (logical if logical.tzinfo else logical.replace(tzinfo=dt.UTC)).isoformat()
    return dt.datetime(logical.year, logical.month, logical.day, tzinfo=dt.UTC).isoformat()


# --- datasets ------------------------------------------------------------------------------------

_Datasets = tuple[list["InputDataset"], list["OutputDataset"], dict[str, "JobFacet"]]


def _size(*paths: Path) -> int | None:
    try:
        return sum(p.stat().st_size for p in paths if p.is_file()) or None
    except OSError:
        return None


def _input(
    namespace: str,
    name: str,
    facets: dict[str, DatasetFacet] | None = None,
    input_facets: dict[str, InputDatasetFacet] | None = None,
) -> InputDataset:
    from openlineage.client.event_v2 import InputDataset

    return InputDataset(namespace, name, facets=facets or {}, inputFacets=input_facets or {})


def _output(
    namespace: str,
    name: str,
    facets: dict[str, DatasetFacet] | None = None,
    output_facets: dict[str, OutputDatasetFacet] | None = None,
) -> OutputDataset:
    from openlineage.client.event_v2 import OutputDataset

    return OutputDataset(namespace, name, facets=facets or {}, outputFacets=output_facets or {})


def _spec_facets(spec: DatasetSpec) -> dict[str, DatasetFacet]:
    """The spec's schema (names, DuckDB types, titles) and its sensitive columns as tags: names only."""
    from openlineage.client.facet_v2 import schema_dataset, tags_dataset

    from pipelines.spec import DUCKDB_TYPES

    facets: dict[str, DatasetFacet] = {
        "schema": schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(
                    name=c.name, type=DUCKDB_TYPES[c.type], description=c.title, ordinal_position=i
                )
                for i, c in enumerate(spec.columns, start=1)
            ],
            producer=_producer(),
        )
    }
    sensitive = [
        tags_dataset.TagsDatasetFacetFields(
            key="sensitive", value=c.sensitive_level or "true", source=INTEGRATION, field=c.name
        )
        for c in spec.columns
        if c.sensitive
    ]
    if sensitive:
        facets["tags"] = tags_dataset.TagsDatasetFacet(tags=sensitive, producer=_producer())
    return facets


def _output_stats(rows: Any, size: int | None, files: int | None = 1) -> dict[str, OutputDatasetFacet]:
    from openlineage.client.facet_v2 import output_statistics_output_dataset as stats

    return {
        "outputStatistics": stats.OutputStatisticsOutputDatasetFacet(
            rowCount=int(rows) if rows is not None else None, size=size, fileCount=files, producer=_producer()
        )
    }


def _version_facet(version: str, **extra: Any) -> DatasetFacet:
    from openlineage.client.facet_v2 import dataset_version_dataset

    facet = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version, producer=_producer())
    return facet.with_additional_properties(**extra) if extra else facet  # type: ignore[return-value]


@dataclass(frozen=True)
class _Source:
    namespace: str
    name: str
    files: tuple[Path, ...] = ()
    query: str | None = None
    dialect: str | None = None


_FILE_CONNECTORS = ("csv", "xlsx", "parquet")
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}


def _source(ctx: RunContext) -> _Source:
    """The source's dataset identity per the OpenLineage naming spec: never a password.

    A source that cannot be resolved (a URL variable not set, a bad path template: the collect
    step fails on it with its own error) is named by its connector and the dataset id.
    """
    from pipelines.schedule import render_source_options

    spec = ctx.spec
    connector = spec.source.connector
    try:
        options = render_source_options(spec, ctx.logical_date)  # the run's own file for a path with {ds}
        if connector in _FILE_CONNECTORS and isinstance(options.get("path"), str):
            from pipelines.files import resolve_path

            path = resolve_path(spec.base_dir, options["path"]).absolute()
            files = (path,) if path.is_file() else ()
            return _Source("file", str(path), files)
        if connector == "sql":
            return _sql_source(spec, options)
    except GovdataError as exc:
        log.debug("lineage: the source of %s is not resolved: %s", spec.id, exc.message)
    return _Source(connector, spec.id)


def _sql_source(spec: DatasetSpec, options: dict[str, Any]) -> _Source:
    from connectors import make_connector

    table = options.get("table")
    schema = options.get("schema") or options.get("db_schema")
    query = options.get("query")
    connector = make_connector("sql", options, base_dir=spec.base_dir, where=f"{spec.path} source")
    # The connector resolves url / url_env / conn_id (an Airflow connection) the same way for collect.
    url = getattr(connector, "_url")()  # noqa: B009 - the connector's own resolution, not a second copy of it
    backend = str(url.get_backend_name())
    namespace, name = _table_dataset(url, schema, table)
    if backend == "sqlite":
        database = namespace.removeprefix("sqlite://")
        files = (Path(database),) if Path(database).is_file() else ()
        return _Source(namespace, name, files, query, backend)
    return _Source(namespace, name, (), query, backend)


def _table_dataset(url: URL, schema: str | None, table: str | None) -> tuple[str, str]:
    """(namespace, name) of a database table per the OpenLineage naming spec: never a user or password.

    Only the URL's backend, host, port and database are read: ``postgres://host:port`` +
    ``db.schema.table``, ``mysql://host:port`` + ``db.table`` (the schema is MySQL's database),
    ``sqlite://<absolute file>`` + ``table``.
    """
    backend = str(url.get_backend_name())
    if backend == "sqlite":
        database = str(Path(url.database or ":memory:").absolute()) if url.database != ":memory:" else ":memory:"
        return f"sqlite://{database}", ".".join(str(p) for p in (schema, table or "main") if p)
    host = _bracketed(url.host or "localhost")
    port = url.port or _DEFAULT_PORTS.get(backend)
    namespace = f"{'postgres' if backend == 'postgresql' else backend}://{host}" + (f":{port}" if port else "")
    database = url.database or ""
    parts: list[str | None]
    if backend == "postgresql":
        parts = [database, schema or "public", table] if table else [database]
    elif backend in ("mysql", "mariadb"):
        parts = [schema or database, table] if table else [schema or database]
    else:
        parts = [database, schema, table] if table else [database]
    return namespace, ".".join(str(p) for p in parts if p) or backend


def _collect(ctx: RunContext, report: dict[str, Any] | None) -> _Datasets:
    from openlineage.client.facet_v2 import datasource_dataset, input_statistics_input_dataset, sql_job

    source = _source(ctx)
    job: dict[str, JobFacet] = {}
    if source.query:
        job["sql"] = sql_job.SQLJobFacet(query=source.query, dialect=source.dialect, producer=_producer())
    in_facets: dict[str, DatasetFacet] = {}
    if source.namespace != "file":
        in_facets["dataSource"] = datasource_dataset.DatasourceDatasetFacet(
            name=source.namespace, uri=source.namespace, producer=_producer()
        )
    if report is None:
        return [_input(source.namespace, source.name, in_facets)], [_output("file", str(ctx.landing))], job
    if report.get("source_sha256"):
        in_facets["version"] = _version_facet(str(report["source_sha256"]))
    stats = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
        rowCount=report.get("rows"),
        size=_size(*source.files),
        fileCount=len(source.files) or None,
        producer=_producer(),
    )
    from connectors.base import DATA_FILE, REJECTS_FILE

    data = ctx.landing / DATA_FILE
    out_facets: dict[str, DatasetFacet] = {}
    schema = _parquet_schema(data)
    if schema is not None:
        out_facets["schema"] = schema
    landing_sha = _manifest(ctx.landing).get("landing_sha256")
    if landing_sha:
        out_facets["version"] = _version_facet(str(landing_sha))
    files = [p for p in (data, ctx.landing / REJECTS_FILE) if p.is_file()]
    return (
        [_input(source.namespace, source.name, in_facets, {"inputStatistics": stats})],
        [_output("file", str(ctx.landing), out_facets, _output_stats(report.get("landed"), _size(*files), len(files)))],
        job,
    )


def _manifest(folder: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _parquet_schema(path: Path) -> DatasetFacet | None:
    """The columns of a landed file as read from its footer (names and types, no values)."""
    import pyarrow.parquet as pq
    from openlineage.client.facet_v2 import schema_dataset

    from connectors.base import ROW_COLUMN

    try:
        arrow = pq.read_schema(path)
    except (OSError, ValueError):
        return None
    fields = [
        schema_dataset.SchemaDatasetFacetFields(name=f.name, type=str(f.type), ordinal_position=i)
        for i, f in enumerate((f for f in arrow if f.name != ROW_COLUMN), start=1)
    ]
    return schema_dataset.SchemaDatasetFacet(fields=fields, producer=_producer())


def _cleanse(ctx: RunContext, report: dict[str, Any] | None) -> _Datasets:
    from openlineage.client.facet_v2 import input_statistics_input_dataset

    from pipelines.cleanse import STAGED_FILE

    if report is None:
        return [_input("file", str(ctx.landing))], [_output("file", str(ctx.staging))], {}
    stats = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
        rowCount=report.get("rows_in"), producer=_producer()
    )
    return (
        [_input("file", str(ctx.landing), input_facets={"inputStatistics": stats})],
        [
            _output(
                "file",
                str(ctx.staging),
                _spec_facets(ctx.spec),
                _output_stats(report.get("staged"), _size(ctx.staging / STAGED_FILE)),
            )
        ],
        {},
    )


def _quality(ctx: RunContext, report: dict[str, Any] | None) -> _Datasets:
    from openlineage.client.facet_v2 import data_quality_assertions_dataset as dqa
    from openlineage.client.facet_v2 import data_quality_metrics_input_dataset as dqm

    from pipelines.cleanse import STAGED_FILE

    if report is None:
        return [_input("file", str(ctx.staging))], [], {}
    summary = report.get("quality") or {}
    outcomes: Iterable[dict[str, Any]] = summary.get("expectations") or []
    assertions = []
    nulls: dict[str, dqm.ColumnMetrics] = {}
    for o in outcomes:
        # Counts only: an expectation's arguments and observed value may be data.
        params = {k: o[k] for k in ("element_count", "unexpected_count", "missing_count") if o.get(k) is not None}
        params.update({k: o[k] for k in ("indicator", "dimension", "pass_rate") if o.get(k) is not None})
        assertions.append(
            dqa.Assertion(
                assertion=str(o.get("type") or o.get("name")),
                success=bool(o.get("success")),
                column=o.get("column") or None,
                severity="warn" if o.get("row_level") else "error",
                name=str(o.get("name")) if o.get("name") else None,
                params=params,
            )
        )
        if o.get("type") == "expect_column_values_to_not_be_null" and o.get("column"):
            nulls[str(o["column"])] = dqm.ColumnMetrics(nullCount=int(o.get("unexpected_count") or 0))
    share = summary.get("quarantined_share")
    limit = ctx.spec.quality.max_quarantine_share
    if share is not None:
        assertions.append(
            dqa.Assertion(
                assertion="max_quarantine_share",
                success=float(share) <= limit,
                severity="error",
                name="max_quarantine_share",
                expected=f"<= {limit}",
                actual=str(share),
            )
        )
    staged = ctx.staging / STAGED_FILE
    rows = report.get("accepted", 0) + report.get("quarantined_by_gate", 0)
    input_facets: dict[str, InputDatasetFacet] = {
        "dataQualityAssertions": dqa.DataQualityAssertionsDatasetFacet(assertions=assertions, producer=_producer()),
        "dataQualityMetrics": dqm.DataQualityMetricsInputDatasetFacet(
            columnMetrics=nulls, rowCount=rows, bytes=_size(staged), fileCount=1, producer=_producer()
        ),
    }
    outputs = []
    if report.get("quarantined"):
        outputs.append(_output("file", str(ctx.quarantine), output_facets=_output_stats(report["quarantined"], None)))
    return [_input("file", str(ctx.staging), input_facets=input_facets)], outputs, {}


def _catalog_dataset(ctx: RunContext) -> tuple[str, str, dict[str, DatasetFacet]]:
    from openlineage.client.facet_v2 import catalog_dataset, documentation_dataset
    from sqlalchemy.engine import make_url

    url = make_url(ctx.workspace.catalog_url)
    clean = url.set(username=None, password=None, query={})
    facets: dict[str, DatasetFacet] = {
        **_spec_facets(ctx.spec),
        "documentation": documentation_dataset.DocumentationDatasetFacet(
            description=f"{ctx.spec.name}: {ctx.spec.catalog.abstract}", contentType="text/plain", producer=_producer()
        ),
        "catalog": catalog_dataset.CatalogDatasetFacet(
            framework="govdata",
            type=str(url.get_backend_name()),
            name=CATALOG_NAMESPACE,
            metadataUri=clean.render_as_string(hide_password=True),
            source="govdata",
            producer=_producer(),
        ),
    }
    return CATALOG_NAMESPACE, ctx.spec.catalog.resource_code, facets


def _exchange_namespace() -> str:
    from exchange.publishing import EXCHANGE_URL_ENV

    remote = os.environ.get(EXCHANGE_URL_ENV, "").strip()
    if not remote:
        return EXCHANGE_NAMESPACE
    parts = urlsplit(remote)  # scheme, host and port: never the credentials or the path
    return f"{parts.scheme}://{_bracketed(parts.hostname or '')}" + (f":{parts.port}" if parts.port else "")


def _bracketed(host: str) -> str:
    """An IPv6 address in brackets, as in a URL."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _catalog(ctx: RunContext, report: dict[str, Any] | None) -> _Datasets:
    from pipelines.runner import CANDIDATE_FILE

    inputs = [_input("file", str(ctx.staging))]
    candidate = ctx.staging / CANDIDATE_FILE
    namespace, name, facets = _catalog_dataset(ctx)
    if report is None:
        return inputs, [_output(namespace, name, facets), _output("file", str(candidate))], {}
    merged = ctx.spec.publish.mode == "merge" or ctx.merge_with_published
    if merged and report.get("current_version"):
        inputs.append(_input(_exchange_namespace(), f"{ctx.dataset}/{report['current_version']}"))
    candidate_facets = {**_spec_facets(ctx.spec)}
    if report.get("content_sha256"):
        candidate_facets["version"] = _version_facet(str(report["content_sha256"]))
    return (
        inputs,
        [
            _output(namespace, name, facets),
            _output(
                "file", str(candidate), candidate_facets, _output_stats(report.get("candidate_rows"), _size(candidate))
            ),
        ],
        {},
    )


def _publish(ctx: RunContext, report: dict[str, Any] | None) -> _Datasets:
    from openlineage.client.facet_v2 import documentation_dataset, storage_dataset

    from pipelines.runner import CANDIDATE_FILE

    inputs = [_input("file", str(ctx.staging / CANDIDATE_FILE))]
    if report is None or report.get("version") is None or report.get("status") not in ("published", "unchanged"):
        return inputs, [], {}
    version = str(report["version"])
    sha = report.get("content_sha256")
    facets: dict[str, DatasetFacet] = {
        **_spec_facets(ctx.spec),
        "version": _version_facet(version, **({"contentSha256": str(sha)} if sha else {})),
        "storage": storage_dataset.StorageDatasetFacet(
            storageLayer=EXCHANGE_NAMESPACE, fileFormat="parquet", producer=_producer()
        ),
        "documentation": documentation_dataset.DocumentationDatasetFacet(
            description=f"{ctx.spec.name}: {ctx.spec.catalog.abstract}", contentType="text/plain", producer=_producer()
        ),
    }
    # An unchanged run wrote nothing: the version is named (it holds the run's rows) without statistics.
    stats = _output_stats(report.get("rows"), None) if report["status"] == "published" else None
    return inputs, [_output(_exchange_namespace(), f"{ctx.dataset}/{version}", facets, stats)], {}


_DATASETS: dict[str, Callable[[RunContext, dict[str, Any] | None], _Datasets]] = {
    "collect": _collect,
    "cleanse": _cleanse,
    "quality": _quality,
    "catalog": _catalog,
    "publish": _publish,
}


# --- one database delivery -----------------------------------------------------------------------

#: The folder, under a resource's lineage folder, of the default file transport's delivery files.
DELIVERIES_DIR = "deliveries"
#: A delivery sends two events, minutes apart at most: its thread ends soon after each.
_DELIVERY_IDLE_SECONDS = 1.0
_DELIVER_DOC = (
    "Deliver the granted items of a published version, masked by each grant's rules, into the subscriber's "
    "own database (库表交换): the full version, or the changes since the version the table holds, upserted "
    "by the primary key in one transaction."
)


def delivery_event_file(home: Path, entry: str, receipt: int) -> Path:
    """Where the default file transport appends the events of the delivery with receipt ``receipt``."""
    return home / LINEAGE_DIR / entry / DELIVERIES_DIR / f"{receipt}.jsonl"


def observe_delivery(
    grant: GrantInfo,
    version: VersionData,
    *,
    receipt: int,
    parent: Parent | None = None,
    home: Path | None = None,
) -> DeliveryLineage:
    """The lineage of one database delivery of ``version`` to ``grant`` (receipt ``receipt``).

    Call :meth:`DeliveryLineage.start` when the target is known, then :meth:`~DeliveryLineage.complete`
    or :meth:`~DeliveryLineage.fail`. ``parent``: the run the delivery belongs to (the Airflow DAG
    run, ``Parent.of(dag_id, dag_run.run_id)``); by default none, since a delivery asked for by a
    subscriber belongs to no run (the exchange version, its input, links it to the run that
    published it). ``home``: the workspace of the default file transport (default ``$GOVDATA_HOME``).
    Lineage off: an object that does nothing.
    """
    try:
        if not enabled():
            return DeliveryLineage(None)
        if home is None:
            from pipelines.workspace import Workspace

            home = Workspace.from_env().root
        return DeliveryLineage(_Delivery(grant, version, receipt, parent, home))
    except Exception as exc:  # noqa: BLE001 - lineage never fails a delivery
        log.warning("lineage is off for delivery %s: %s: %s", receipt, type(exc).__name__, _redact(str(exc)))
        return DeliveryLineage(None)


class DeliveryLineage:
    """START, then COMPLETE or FAIL, of one database delivery; no method raises, only the last one waits.

    The job is ``<entry>.deliver`` (one per resource; the grant and the receipt are run tags), the
    input the exchange version (``<entry>/<version>``, as the publish step names it, and the base
    version of a change set), the output the subscriber's table, named per the OpenLineage naming
    spec from the target URL's backend, host, port and database only.
    """

    def __init__(self, observed: _Delivery | None) -> None:
        self._observed = observed

    def start(self, url: URL, *, table: str, schema: str | None = None) -> None:
        """The delivery writes into ``table`` (in ``schema``) of the database at ``url`` (its credentials are not read)."""
        observed = self._observed
        if observed is None or observed.started:
            return
        try:
            observed.target = _table_dataset(url, schema, table)
        except Exception as exc:  # noqa: BLE001 - an odd URL leaves the output unnamed, nothing more
            log.debug("lineage: the delivery target is not named: %s", type(exc).__name__)
        self._started(observed)

    def complete(self, receipt: Mapping[str, Any]) -> None:
        """The delivery succeeded; ``receipt`` is its receipt (rows, kind, base version, already present)."""
        observed = self._observed
        if observed is None:
            return
        self._started(observed)
        self._send(observed, "COMPLETE", receipt=dict(receipt))

    def fail(self, error: str, exc: BaseException | None = None) -> None:
        """The delivery failed for good with the receipt's ``error`` (free of secrets).

        When ``exc`` is not a :class:`~pipelines.errors.GovdataError` (written without values), only
        its type is sent: a database's message may quote a value (``Duplicate entry '…'``).
        """
        observed = self._observed
        if observed is None:
            return
        self._started(observed)
        if exc is not None and not isinstance(exc, GovdataError):
            orig = getattr(exc, "orig", None)
            error = (
                f"{type(orig if orig is not None else exc).__name__} during the delivery (the database's "
                f"message is in receipt {observed.receipt})"
            )
        self._send(observed, "FAIL", error=_redact(error))

    def _started(self, observed: _Delivery) -> None:
        if not observed.started:
            observed.started = True
            self._send(observed, "START", at=observed.created)

    @staticmethod
    def _send(observed: _Delivery, kind: str, **details: Any) -> None:
        try:
            observed.send(kind, **details)
        except Exception as exc:  # noqa: BLE001 - lineage never fails a delivery
            log.debug("lineage: the %s event of delivery %s was not queued: %r", kind, observed.receipt, exc)


class _Delivery(_Observed):
    """The events of one database delivery (see :class:`DeliveryLineage`)."""

    what = "deliver"
    noun = "delivery"

    def __init__(self, grant: GrantInfo, version: VersionData, receipt: int, parent: Parent | None, home: Path) -> None:
        name = f"{_THREAD_NAME}-{grant.entry_id}-delivery-{receipt}"
        super().__init__(
            _RunState(name, idle=_DELIVERY_IDLE_SECONDS), delivery_event_file(home, grant.entry_id, receipt)
        )
        self.grant = grant
        self.version = version
        self.receipt = receipt
        self.parent = parent
        self.subject = f"{grant.entry_id} delivery {receipt} (grant {grant.id}, version {version.number})"
        self.created = _now()
        self.started = False
        #: (namespace, name) of the subscriber's table, once known.
        self.target: tuple[str, str] | None = None

    def _event(self, kind: str, at: dt.datetime, details: dict[str, Any]) -> RunEvent:
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import tags_run

        receipt: dict[str, Any] | None = details.get("receipt")
        grant, version = self.grant, self.version
        tags = {
            "grant": grant.id,
            "receipt": self.receipt,
            "subscriber": grant.department,
            "mode": "database",
            "version": version.number,
        }
        if receipt is not None:
            tags |= {
                "kind": receipt.get("kind"),
                "base_version": receipt.get("base_version"),
                "already_present": str(bool(receipt.get("already_present"))).lower(),
            }
        run_facets = _run_facets(self.parent, details.get("error"))
        run_facets["tags"] = tags_run.TagsRunFacet(
            tags=[
                tags_run.TagsRunFacetFields(key=k, value=str(v), source=INTEGRATION)
                for k, v in tags.items()
                if v is not None
            ],
            producer=_producer(),
        )
        entry = grant.entry_id
        return RunEvent(
            eventType=RunState(kind),
            eventTime=at.isoformat(),
            run=Run(runId=str(self.run_id), facets=run_facets),
            job=Job(
                namespace=job_namespace(),
                name=f"{entry}.deliver",
                facets=_job_facets(f"{_DELIVER_DOC} Resource: {entry}."),
            ),
            inputs=self._inputs(receipt),
            outputs=self._outputs(kind, receipt),
            producer=_producer(),
        )

    def _inputs(self, receipt: dict[str, Any] | None) -> list[InputDataset]:
        from openlineage.client.facet_v2 import input_statistics_input_dataset

        version, namespace = self.version, _exchange_namespace()
        stats: dict[str, InputDatasetFacet] = {}
        if receipt is not None and not receipt.get("already_present"):
            stats["inputStatistics"] = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                rowCount=version.rows, producer=_producer()
            )
        facets = {"version": _version_facet(str(version.number), contentSha256=version.content_sha256)}
        inputs = [_input(namespace, f"{version.entry_id}/{version.number}", facets, stats)]
        base = receipt.get("base_version") if receipt is not None else None
        if receipt is not None and receipt.get("kind") == "changes" and base is not None:
            # A change set is computed from the version the table holds and this one.
            inputs.append(_input(namespace, f"{version.entry_id}/{base}", {"version": _version_facet(str(base))}))
        return inputs

    def _outputs(self, kind: str, receipt: dict[str, Any] | None) -> list[OutputDataset]:
        from openlineage.client.facet_v2 import datasource_dataset

        if self.target is None:
            return []
        namespace, name = self.target
        facets: dict[str, DatasetFacet] = {
            "dataSource": datasource_dataset.DatasourceDatasetFacet(
                name=namespace, uri=namespace, producer=_producer()
            ),
            **self._delivered_facets(),
        }
        if kind != "COMPLETE" or receipt is None:
            return [_output(namespace, name, facets)]
        facets["version"] = _version_facet(str(self.version.number))  # the table now holds this version
        return [_output(namespace, name, facets, _output_stats(receipt.get("rows") or 0, None, None))]

    def _delivered_facets(self) -> dict[str, DatasetFacet]:
        """The delivered columns (schema), each from its input column, clear or masked by a rule: names only."""
        from openlineage.client.facet_v2 import column_lineage_dataset as cl
        from openlineage.client.facet_v2 import schema_dataset, tags_dataset

        from exchange.delivery_masking import plan_rules
        from pipelines.spec import DUCKDB_TYPES

        grant, version = self.grant, self.version
        try:
            delivered, plan, _ = plan_rules(version.schema, grant.items, grant.masking, join_keys=grant.join_keys)
        except GovdataError:
            return {}  # the delivery refuses the grant itself, with its own error
        columns = {str(c["name"]): c for c in version.schema}
        source = (_exchange_namespace(), f"{version.entry_id}/{version.number}")
        fields, lineage, masked = [], {}, []
        for i, name in enumerate(delivered, start=1):
            chosen = plan[name]
            rule = chosen.value if chosen is not None else None
            column = columns[name]
            kind = "VARCHAR" if rule else DUCKDB_TYPES.get(str(column.get("type") or "string"), "VARCHAR")
            fields.append(
                schema_dataset.SchemaDatasetFacetFields(
                    name=name, type=kind, description=column.get("title") or None, ordinal_position=i
                )
            )
            how = (
                cl.Transformation(type="DIRECT", subtype="TRANSFORMATION", description=f"masked: {rule}", masking=True)
                if rule
                else cl.Transformation(type="DIRECT", subtype="IDENTITY", masking=False)
            )
            lineage[name] = cl.Fields(inputFields=[cl.InputField(*source, field=name, transformations=[how])])
            if rule:
                masked.append(
                    tags_dataset.TagsDatasetFacetFields(key="masked", value=rule, source=INTEGRATION, field=name)
                )
        facets: dict[str, DatasetFacet] = {
            "schema": schema_dataset.SchemaDatasetFacet(fields=fields, producer=_producer()),
            "columnLineage": cl.ColumnLineageDatasetFacet(fields=lineage, producer=_producer()),
        }
        if masked:
            facets["tags"] = tags_dataset.TagsDatasetFacet(tags=masked, producer=_producer())
        return facets
