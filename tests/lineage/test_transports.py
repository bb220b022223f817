"""Where events go: the file by default, HTTP or a config file by configuration, nowhere when off or misconfigured.

Lineage is not a gate: an unreachable endpoint or a bad configuration is one warning (naming the
cause, or the variable and the fix) and the run publishes as it would without lineage.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import lineage, runner
from tests.lineage.conftest import DATASET, DATE, STEPS, Received, read_events

Validate = Callable[[list[dict[str, Any]]], None]


def lineage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == lineage.__name__ and r.levelno >= logging.WARNING]


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (it was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_transport_by_configuration_receives_every_event(
    spec_path: Path,
    workspace: Path,
    endpoint: tuple[str, Received],
    monkeypatch: pytest.MonkeyPatch,
    assert_valid: Validate,
) -> None:
    url, received = endpoint
    monkeypatch.setenv("OPENLINEAGE_URL", url)
    monkeypatch.setenv("OPENLINEAGE_ENDPOINT", "api/v1/lineage")
    monkeypatch.setenv("OPENLINEAGE_API_KEY", "department-key")
    report = runner.run(spec_path, DATE)
    assert report["status"] == "published"

    events = received.events()  # each body parsed as JSON
    assert_valid(events)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        (f"{DATASET}.{step}", kind) for step in STEPS for kind in ("START", "COMPLETE")
    ]
    paths = {path for path, _, _ in received.requests}
    assert paths == {"/api/v1/lineage"}
    assert {headers.get("authorization") for _, headers, _ in received.requests} == {"Bearer department-key"}
    assert {headers.get("content-type") for _, headers, _ in received.requests} == {"application/json"}
    # configured: the default file is not written as well
    assert not (workspace / lineage.LINEAGE_DIR).exists()


def test_a_config_file_in_the_working_folder_replaces_the_default(
    spec_path: Path, workspace: Path, tmp_path: Path, assert_valid: Validate
) -> None:
    target = tmp_path / "elsewhere" / "events.jsonl"
    target.parent.mkdir()
    config = {"transport": {"type": "file", "log_file_path": str(target), "append": True}}
    (Path.cwd() / "openlineage.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    runner.collect(spec_path, DATE)
    events = read_events(target)
    assert_valid(events)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    assert not (workspace / lineage.LINEAGE_DIR).exists()


def test_an_unreachable_endpoint_is_one_warning_with_its_cause_and_the_run_publishes(
    spec_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The client's own variables, with retries off so that the failure is immediate.
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__RETRY", '{"total": 0, "connect": 0, "read": 0}')
    caplog.set_level(logging.WARNING)
    report = runner.run(spec_path, DATE)
    assert report["status"] == "published" and report["version"] == 1

    warnings = lineage_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "ConnectionError" in warnings[0] and "http transport" in warnings[0]
    assert f"{DATASET} run {DATE}" in warnings[0] and "the run goes on" in warnings[0]
    assert not [r for r in caplog.records if r.name.startswith("urllib3")]  # no per-retry noise
    assert not (workspace / lineage.LINEAGE_DIR).exists()


def test_a_slow_endpoint_costs_each_step_at_most_the_timeout(
    spec_path: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # OPENLINEAGE_URL alone keeps the client's retries (seconds of back-off): longer than the timeout.
    monkeypatch.setenv("OPENLINEAGE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv(lineage.TIMEOUT_ENV, "0.2")
    caplog.set_level(logging.WARNING)
    runner.collect(spec_path, DATE)
    runner.cleanse(spec_path, DATE)
    warnings = lineage_warnings(caplog)
    slow = [w for w in warnings if "not delivered within 0.2 s" in w]
    assert len(slow) == 1, warnings
    assert lineage.TIMEOUT_ENV in slow[0]
    # The event still being retried in the background ends with its cause, once (and then nothing is left running).
    deadline = time.monotonic() + 60
    while not any("ConnectionError" in w for w in lineage_warnings(caplog)) and time.monotonic() < deadline:
        time.sleep(0.2)
    causes = [w for w in lineage_warnings(caplog) if "ConnectionError" in w]
    assert len(causes) == 1 and "collect START event" in causes[0], lineage_warnings(caplog)
    assert not [r for r in caplog.records if r.name.startswith("urllib3")]  # its per-retry warnings are dropped


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("OPENLINEAGE_URL", "not a url", "OPENLINEAGE_URL is not an http(s) URL with a host"),
        ("OPENLINEAGE_URL", "ftp://lineage.example", "OPENLINEAGE_URL is not an http(s) URL with a host"),
        ("OPENLINEAGE__TRANSPORT__TYPE", "carrier-pigeon", "(OPENLINEAGE__TRANSPORT__TYPE) cannot be used"),
        ("OPENLINEAGE_CONFIG", "missing.yml", "OPENLINEAGE_CONFIG names a file that does not exist"),
        (lineage.SWITCH_ENV, "maybe", "GOVDATA_LINEAGE='maybe' is neither on nor off"),
    ],
)
def test_a_bad_configuration_is_one_clear_warning_and_no_lineage(
    spec_path: Path,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variable: str,
    value: str,
    says: str,
) -> None:
    monkeypatch.setenv(variable, value)
    lineage._warned.clear()  # the switch's warning is once per process
    caplog.set_level(logging.WARNING)
    assert runner.collect(spec_path, DATE)["landed"] == 5
    assert runner.cleanse(spec_path, DATE)["staged"] == 5
    warnings = lineage_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert says in warnings[0] and "lineage is off" in warnings[0]
    assert "→" in warnings[0]  # the fix
    if variable == "OPENLINEAGE__TRANSPORT__TYPE":
        assert "http" in warnings[0] and "file" in warnings[0]  # the transport types there are
    if variable == "OPENLINEAGE_URL":
        assert "e.g. http://" in warnings[0] and value not in warnings[0]  # the value may hold credentials
    assert not (workspace / lineage.LINEAGE_DIR).exists()


@pytest.mark.parametrize(("variable", "value"), [(lineage.SWITCH_ENV, "off"), ("OPENLINEAGE_DISABLED", "true")])
def test_lineage_off_writes_nothing(
    spec_path: Path,
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    caplog.set_level(logging.DEBUG)
    runner.collect(spec_path, DATE)
    assert not (workspace / lineage.LINEAGE_DIR).exists()
    assert not lineage_warnings(caplog)


def test_a_config_file_without_a_transport_keeps_the_default_file(
    spec_path: Path, workspace: Path, assert_valid: Validate
) -> None:
    (Path.cwd() / "openlineage.yml").write_text(yaml.safe_dump({"facets": {"environment_variables": []}}), "utf-8")
    runner.collect(spec_path, DATE)
    events = read_events(lineage.event_file(workspace.resolve(), DATASET, DATE))
    assert_valid(events)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
