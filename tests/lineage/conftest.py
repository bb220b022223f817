"""Lineage tests: a clean OpenLineage environment, a small dataset, and the run events read back and validated.

Every event is validated against the OpenLineage run-event schema and every facet against its own
schema, the JSON Schemas published by OpenLineage, vendored unchanged in ``standards/openlineage/``
(see its README; each schema's ``$id`` URL mapped to its local file, so nothing is fetched).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipelines import lineage
from tests.dags.helpers import write_spec

REPO = Path(__file__).resolve().parents[2]
STANDARDS = Path(__file__).resolve().parent / "standards" / "openlineage"
STEPS = ("collect", "cleanse", "quality", "catalog", "publish")
DATE = "2026-11-24"
DATASET = "lineage_sample"
#: Environment variables the OpenLineage client or govdata's lineage reads.
_OURS = (lineage.SWITCH_ENV, lineage.TIMEOUT_ENV, "GOVDATA_EXCHANGE_URL")


@pytest.fixture(autouse=True)
def clean_lineage_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No OpenLineage configuration from the machine: no variables, no ./openlineage.yml."""
    for key in list(os.environ):
        if key.startswith("OPENLINEAGE") or key in _OURS:
            monkeypatch.delenv(key)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = set(os.environ)
    yield
    # The client copies OPENLINEAGE_URL into OPENLINEAGE__TRANSPORT__TRANSPORTS__* variables.
    for key in set(os.environ) - before:
        if key.startswith("OPENLINEAGE"):
            del os.environ[key]


@pytest.fixture
def no_user_config() -> None:
    """The default file transport applies only when the machine has no ~/.openlineage/openlineage.yml."""
    if (Path.home() / ".openlineage" / "openlineage.yml").is_file():
        pytest.skip("~/.openlineage/openlineage.yml configures OpenLineage on this machine; the default does not apply")


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    """A five-row CSV dataset with its suite (tests/dags/helpers.py)."""
    return write_spec(tmp_path / "datasets", DATASET)


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event of a JSON-lines file, each line parsed on its own."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def events_of(home: Path, dataset: str = DATASET, run: str = DATE) -> list[dict[str, Any]]:
    path = lineage.event_file(home, dataset, run)
    assert path.is_file(), f"no lineage file at {path}"
    return read_events(path)


# --- validation against the published schemas ---------------------------------------------------


class Validator:
    """Validates run events and each of their facets against the OpenLineage JSON Schemas."""

    def __init__(self, folder: Path) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource

        schemas = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.rglob("*.json"))]
        self.registry: Registry = Registry().with_resources(
            (schema["$id"], Resource.from_contents(schema)) for schema in schemas
        )
        self.ids = {schema["$id"] for schema in schemas}
        self._cls = Draft202012Validator
        event_schema = next(s for s in schemas if s["$id"].endswith("/OpenLineage.json"))
        self.event = Draft202012Validator(
            event_schema, registry=self.registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def errors(self, event: dict[str, Any]) -> list[str]:
        problems = [f"event: {e.json_path}: {e.message}" for e in self.event.iter_errors(event)]
        for where, facet in facets_of(event):
            url = facet.get("_schemaURL", "")
            base = url.split("#", 1)[0]
            if base not in self.ids:
                problems.append(f"{where}: no local schema for {url!r}")
                continue
            check = self._cls({"$ref": url}, registry=self.registry, format_checker=self._cls.FORMAT_CHECKER)
            problems += [f"{where}: {e.json_path}: {e.message}" for e in check.iter_errors(facet)]
        return problems


def facets_of(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, facet) for every facet of the event: run, job, datasets, input and output facets."""
    for name, facet in (event.get("run", {}).get("facets") or {}).items():
        yield f"run.facets.{name}", facet
    for name, facet in (event.get("job", {}).get("facets") or {}).items():
        yield f"job.facets.{name}", facet
    for side in ("inputs", "outputs"):
        for i, dataset in enumerate(event.get(side) or []):
            for group in ("facets", "inputFacets", "outputFacets"):
                for name, facet in (dataset.get(group) or {}).items():
                    yield f"{side}[{i}].{group}.{name}", facet


@pytest.fixture(scope="session")
def validator() -> Validator:
    return Validator(STANDARDS)


@pytest.fixture
def assert_valid(validator: Validator) -> Callable[[list[dict[str, Any]]], None]:
    def check(events: list[dict[str, Any]]) -> None:
        assert events, "no events to validate"
        problems = [
            f"event {i} ({e.get('eventType')} {e.get('job', {}).get('name')}): {p}"
            for i, e in enumerate(events)
            for p in validator.errors(e)
        ]
        assert not problems, "\n".join(problems)

    return check


# --- a lineage endpoint -----------------------------------------------------------------------------


class Received:
    """What the local lineage endpoint received: (path, headers, body) per request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, _, body in self.requests]


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Received]]:
    """A real HTTP server on 127.0.0.1 that accepts lineage events (201) and keeps them."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with received.lock:
                received.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
