"""A department's pipeline publishing to a remote ``govdata serve`` over real HTTP on loopback.

The exchange is a real ``govdata serve`` subprocess on a free port over a platform made by
:func:`build_platform` (its chunk limit lowered to 1 KiB, so a run's candidate takes dozens of
chunks); the pipeline runs ``govdata run`` in-process in another home, pointed at it by
``GOVDATA_EXCHANGE_URL`` and ``GOVDATA_EXCHANGE_TOKEN`` alone. The server's access log (uvicorn
writes one line per request) tells which chunks were sent.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from catalog.store import CatalogStore
from connectors.exchange_client import ExchangeClient
from exchange import publishing
from exchange.models import Upload
from pipelines import runner
from pipelines.cli import app
from pipelines.files import sha256_file
from pipelines.workspace import Workspace
from tests.exchange.conftest_exchange import MARKET, SPECS, TRANSPORT, Platform, build_platform, private_copy

API = "/exchange/v1"
CHUNK = 1024
DATE = "2026-11-24"
cli = CliRunner()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("GOVDATA_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    platform = build_platform(tmp_path_factory.mktemp("remote-template") / "home", rows=20)
    platform.store.engine.dispose()  # checkpoint the WAL: the folder is copied per test
    return platform


@dataclass
class Exchange:
    """A running ``govdata serve`` over a platform."""

    url: str
    platform: Platform
    log: Path

    def token(self, user: str) -> str:
        return self.platform.tokens[user]

    def get(self, path: str, user: str = "market_staff") -> Any:
        answer = httpx.get(f"{self.url}{API}{path}", headers={"Authorization": f"Bearer {self.token(user)}"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def requests(self, method: str, pattern: str) -> list[tuple[str, ...]]:
        """The groups of ``pattern`` in every access-log line of ``method`` requests under /exchange/v1."""
        found = re.findall(rf'"{method} {re.escape(API)}{pattern} HTTP/1\.1" (\d{{3}})', self.log.read_text("utf-8"))
        return [tuple(m) if isinstance(m, tuple) else (m,) for m in found]

    def chunk_puts(self, upload_id: str) -> list[int]:
        """Offsets of the chunks sent to ``upload_id`` that the server took (200), in order."""
        return [
            int(offset)
            for offset, status in self.requests("PUT", f"/uploads/{upload_id}/chunks/(\\d+)")
            if status == "200"
        ]

    def uploads(self) -> list[Upload]:
        with self.platform.store.session() as s:
            rows = list(s.query(Upload).order_by(Upload.created_at))
            s.expunge_all()
            return rows


def _serve(home: Path, log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    govdata = Path(sys.executable).parent / "govdata"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(govdata), "serve", "--host", "127.0.0.1", "--port", "0", "--home", str(home)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 60
    url = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"govdata platform service on (http://127\.0\.0\.1:\d+)", log.read_text("utf-8", "replace"))
        if found:
            url = found.group(1)
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"govdata serve did not start: {log.read_text('utf-8', 'replace')[-2000:]}")


@pytest.fixture
def exchange(template: Platform, tmp_path: Path) -> Iterator[Exchange]:
    home = tmp_path / "exchange"
    platform = private_copy(template, home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVDATA_")}
    env.update({"GOVDATA_UPLOAD_MAX_CHUNK": str(CHUNK), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
    log = tmp_path / "serve.log"
    proc, url = _serve(home, log, env)
    try:
        yield Exchange(url, platform, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def remote(monkeypatch: pytest.MonkeyPatch, exchange: Exchange, user: str = "market_staff") -> None:
    monkeypatch.setenv(publishing.EXCHANGE_URL_ENV, exchange.url)
    monkeypatch.setenv(publishing.EXCHANGE_TOKEN_ENV, exchange.token(user))


def govdata_run(spec: Path, home: Path, date: str = DATE) -> tuple[int, dict[str, Any] | None, str]:
    """``govdata run SPEC --json`` in-process: exit code, the report (None on an error), everything printed."""
    result = cli.invoke(app, ["run", str(spec), "--date", date, "--home", str(home), "--json"], env={"COLUMNS": "200"})
    text = result.output
    assert "Traceback" not in text, text
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    report = json.loads(result.stdout) if result.exit_code in (0, 2) else None
    return result.exit_code, report, text


# --- publishing ---------------------------------------------------------------------------------


def test_a_remote_run_publishes_what_a_local_run_would(
    exchange: Exchange, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote(monkeypatch, exchange)
    code, report, text = govdata_run(SPECS["market"], tmp_path / "department")
    assert code == 0, text
    assert report is not None and (report["status"], report["version"], report["version_rows"]) == ("published", 2, 401)
    assert report["outputs"]["published"] == f"{exchange.url}{API}/publishing/{MARKET}/versions/2/data"

    latest = exchange.get(f"/publishing/{MARKET}/latest")["version"]
    assert (latest["number"], latest["rows"], latest["run_id"]) == (2, 401, DATE)
    assert latest["content_sha256"] == report["content_sha256"]
    stored = exchange.platform.exchange.read(MARKET, 2)
    assert stored is not None and sha256_file(stored.data_path) == report["content_sha256"]
    assert stored.manifest["quality"]["success"] is True and stored.manifest["lineage"]["run_id"] == DATE
    (upload,) = exchange.uploads()
    assert (upload.status, upload.version, upload.user_id) == ("committed", 2, "market_staff")
    offsets = exchange.chunk_puts(upload.id)
    assert offsets == list(range(0, upload.size, CHUNK)) and len(offsets) > 10  # the server's chunk size
    # The department's own workspace keeps the run, not the version.
    department = Workspace.from_env(tmp_path / "department")
    assert not (department.exchange / MARKET).exists()
    assert CatalogStore(department.catalog_url).latest_version(MARKET) is None

    # The same data published into a local store: the same file, byte for byte.
    monkeypatch.delenv(publishing.EXCHANGE_URL_ENV)
    monkeypatch.delenv(publishing.EXCHANGE_TOKEN_ENV)
    code, local, text = govdata_run(SPECS["market"], tmp_path / "local")
    assert code == 0 and local is not None, text
    assert (local["status"], local["version"]) == ("published", 1)
    assert local["content_sha256"] == report["content_sha256"] and local["version_rows"] == 401

    # An identical second run is unchanged: nothing is uploaded.
    remote(monkeypatch, exchange)
    code, again, text = govdata_run(SPECS["market"], tmp_path / "department")
    assert code == 0 and again is not None, text
    assert (again["status"], again["version"], again["content_sha256"]) == ("unchanged", 2, report["content_sha256"])
    # The token may come from a file instead (a secret mounted by the scheduler).
    token_file = tmp_path / "token"
    token_file.write_text(exchange.token("market_staff") + "\n", encoding="utf-8")
    monkeypatch.delenv(publishing.EXCHANGE_TOKEN_ENV)
    monkeypatch.setenv(publishing.EXCHANGE_TOKEN_FILE_ENV, str(token_file))
    code, later, text = govdata_run(SPECS["market"], tmp_path / "department", date="2026-11-25")
    assert code == 0 and later is not None and (later["status"], later["version"]) == ("unchanged", 2), text
    assert len(exchange.uploads()) == 1 and len(exchange.requests("POST", "/uploads")) == 1
    assert exchange.get(f"/publishing/{MARKET}/latest")["version"]["number"] == 2


def test_an_interrupted_upload_is_resumed_by_the_next_run(
    exchange: Exchange, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote(monkeypatch, exchange)
    home = tmp_path / "department"
    # A run that died while uploading: its steps up to the catalog, then the first chunks only.
    ctx = runner.RunContext.make(SPECS["market"], DATE, home)
    for step in (runner.collect, runner.cleanse, runner.quality, runner.catalog):
        step(SPECS["market"], DATE, home=home)
    candidate = ctx.staging / runner.CANDIDATE_FILE
    prepared = publishing.prepare(
        ctx.spec,
        run_id=ctx.run_id,
        collected=ctx.read_step("collect"),
        checked=ctx.read_step("quality"),
        prepared=ctx.read_step("catalog"),
        data=candidate,
        upstream=[],
    )
    data = candidate.read_bytes()
    with ExchangeClient(exchange.url, exchange.token("market_staff")) as client:
        started = client.start(candidate, manifest=prepared.document(), spec=publishing.spec_document(ctx.spec))
        assert started["chunk_size"] == CHUNK  # the server lowered the 8 MiB the client asked for
        for offset in (0, CHUNK, 2 * CHUNK):
            client.send_chunk(started["id"], offset, data[offset : offset + CHUNK])
        assert client.status(started["id"])["received"] == 3 * CHUNK
    assert exchange.get(f"/publishing/{MARKET}/latest")["version"]["number"] == 1

    code, report, text = govdata_run(SPECS["market"], home)
    assert code == 0 and report is not None, text
    assert (report["status"], report["version"], report["content_sha256"]) == ("published", 2, prepared.content_sha256)
    (upload,) = exchange.uploads()  # the run found the open upload: no second one
    assert (upload.id, upload.status, upload.version) == (started["id"], "committed", 2)
    offsets = exchange.chunk_puts(upload.id)
    assert offsets == list(range(0, upload.size, CHUNK))  # every chunk exactly once: none sent again
    assert Counter(offsets)[0] == 1 and len(offsets) == -(-len(data) // CHUNK)
    stored = exchange.platform.exchange.read(MARKET, 2)
    assert stored is not None and stored.data_path.read_bytes() == data


def test_a_merge_mode_run_merges_with_the_remote_version_and_collects_from_its_watermark(
    exchange: Exchange, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote(monkeypatch, exchange, "transport_staff")
    home = tmp_path / "department"
    v1 = exchange.platform.store.latest_version(TRANSPORT)
    assert v1 is not None and v1.watermark is None
    code, report, text = govdata_run(SPECS["transport"], home)
    assert code == 0 and report is not None and report["status"] == "published", text
    assert report["version_rows"] == v1.row_count + report["rows"]["published"]  # v1's keys are not in the source
    cached = list((home / "state" / "published" / TRANSPORT).glob("*.parquet"))
    assert [p.name for p in cached] == [f"v000001-{v1.content_sha256[:16]}.parquet"]
    assert sha256_file(cached[0]) == v1.content_sha256  # the download was checked
    latest = exchange.get(f"/publishing/{TRANSPORT}/latest", "transport_staff")["version"]
    assert latest["number"] == 2 and latest["watermark"]

    # The next run collects from the exchange's watermark, not from the (empty) local catalog.
    code, again, text = govdata_run(SPECS["transport"], home, date="2026-11-25")
    assert code == 0 and again is not None, text
    collected = json.loads(
        (Workspace.from_env(home).reports(TRANSPORT, "2026-11-25") / "steps" / "collect.json").read_text()
    )
    assert collected["since"] == latest["watermark"]
    assert (again["status"], again["version"]) == ("unchanged", 2)


# --- clear errors ----------------------------------------------------------------------------------


def test_a_wrong_token_is_a_clear_error_naming_the_variable(
    exchange: Exchange, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote(monkeypatch, exchange)
    home = tmp_path / "department"
    monkeypatch.setenv(publishing.EXCHANGE_TOKEN_ENV, exchange.token("market_staff")[:-4] + "AAAA")
    code, _, text = govdata_run(SPECS["market"], home)
    assert code == 1
    assert "refused the API token" in text and "GOVDATA_EXCHANGE_TOKEN" in text
    assert "govdata token create" in text

    monkeypatch.setenv(publishing.EXCHANGE_TOKEN_ENV, "not-a-token")
    code, _, text = govdata_run(SPECS["market"], home)
    assert code == 1 and "GOVDATA_EXCHANGE_TOKEN does not hold an API token" in text

    # A valid token of the wrong department, and one of a user who may not publish.
    monkeypatch.setenv(publishing.EXCHANGE_TOKEN_ENV, exchange.token("hrss_staff"))
    code, _, text = govdata_run(SPECS["market"], home)
    assert code == 1 and "belongs to another department" in text
    monkeypatch.setenv(publishing.EXCHANGE_TOKEN_ENV, exchange.token("auditor"))
    code, _, text = govdata_run(SPECS["market"], home)
    assert code == 1 and "exchange:publish" in text

    assert exchange.uploads() == []
    assert exchange.get(f"/publishing/{MARKET}/latest")["version"]["number"] == 1
    status = json.loads((Workspace.from_env(home).reports(MARKET, DATE) / "run_report.json").read_text())
    assert (status["status"], status["failed_step"]) == ("failed", "catalog")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_exchange_is_a_clear_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "department"
    monkeypatch.setenv(publishing.EXCHANGE_TOKEN_ENV, "gdt_aaaaaaaaaaaa_" + "b" * 43)
    monkeypatch.setenv(publishing.EXCHANGE_URL_ENV, f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv(publishing.EXCHANGE_ATTEMPTS_ENV, "2")
    code, _, text = govdata_run(SPECS["market"], home)
    assert code == 1
    assert "GOVDATA_EXCHANGE_URL" in text and "did not answer after 2 attempt(s)" in text
    assert not (Workspace.from_env(home).exchange / MARKET).exists()

    for url, expected in (("ftp://exchange:21", "not an http(s) address"), ("exchange:8000", "not an http(s) address")):
        monkeypatch.setenv(publishing.EXCHANGE_URL_ENV, url)
        code, _, text = govdata_run(SPECS["market"], home)
        assert code == 1 and "GOVDATA_EXCHANGE_URL" in text and expected in text, text

    monkeypatch.setenv(publishing.EXCHANGE_URL_ENV, "http://127.0.0.1:1")
    for attempts in ("0", "many", "21", "-1"):
        monkeypatch.setenv(publishing.EXCHANGE_ATTEMPTS_ENV, attempts)
        code, _, text = govdata_run(SPECS["market"], home)
        assert code == 1 and f"GOVDATA_EXCHANGE_ATTEMPTS={attempts!r}" in text, text
