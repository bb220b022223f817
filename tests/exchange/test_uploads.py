"""Publishing a version over HTTP: chunked, resumable uploads, verified at commit, invisible until then.

Everything goes through ``/exchange/v1/uploads`` on :func:`exchange.service.create_app`. The
candidate of each test is a real Parquet file of the department's spec (generated rows) with
the manifest the catalog step would prepare; the server's chunk limit is lowered to 1 KiB so a
few kilobytes make several chunks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from catalog import schema as schema_changes
from catalog.models import utcnow
from exchange import audit, publishing, uploads
from exchange.errors import NotFound
from exchange.identity import create_token
from exchange.models import Upload
from exchange.service import create_app
from pipelines.masking import MASKING_KEY_ENV
from tests.exchange.conftest_exchange import (
    HRSS,
    MARKET,
    TRANSPORT,
    Platform,
    build_platform,
    generated_rows,
    manifest_for,
    private_copy,
)
from tests.exchange.delivery.conftest import make_grant

API = "/exchange/v1"
CHUNK = 1024  # the smallest chunk size the protocol allows (uploads.MIN_CHUNK)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env(monkeypatch)


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No workspace, user or upload limit from the environment; the chunk limit at 1 KiB."""
    for name in ("GOVDATA_CATALOG_URL", "GOVDATA_HOME", "GOVDATA_USER", "GOVDATA_CATALOG_REVIEW"):
        monkeypatch.delenv(name, raising=False)
    for name in ("GOVDATA_UPLOAD_MAX_BYTES", "GOVDATA_UPLOAD_TTL_HOURS", "GOVDATA_UPLOAD_MAX_OPEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOVDATA_UPLOAD_MAX_CHUNK", str(CHUNK))
    monkeypatch.setenv(MASKING_KEY_ENV, "uploads-tests-masking-key")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    platform = build_platform(tmp_path_factory.mktemp("uploads-template") / "home", rows=20)
    platform.store.engine.dispose()  # checkpoint the WAL: the folder is copied per test
    return platform


@pytest.fixture
def platform(template: Platform, tmp_path: Path) -> Platform:
    return private_copy(template, tmp_path / "home")


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform.home)) as c:
        yield c


# --- candidates and the protocol's steps -------------------------------------------------------


@dataclass
class Candidate:
    """A data file ready to upload: its bytes, the manifest the catalog step prepares, the spec document."""

    data: bytes
    manifest: dict[str, Any]
    spec: dict[str, Any]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def entry(self) -> str:
        return str(self.manifest["resource"])

    def body(self, **changes: Any) -> dict[str, Any]:
        """The declaration (``POST /uploads``), with ``changes`` applied."""
        doc = {
            "entry": self.entry,
            "size": len(self.data),
            "sha256": self.sha256,
            "chunk_size": CHUNK,
            "manifest": self.manifest,
            "spec": self.spec,
        }
        doc.update(changes)
        return doc

    def chunks(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        for offset in range(start, len(self.data), CHUNK):
            yield offset, self.data[offset : offset + CHUNK]


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def candidate(
    platform: Platform, dataset: str = MARKET, *, rows: int = 40, seed: int = 11, run_id: str = "2026-12-01"
) -> Candidate:
    spec = platform.specs[dataset]
    table = generated_rows(spec, rows, seed=seed).select([c.name for c in spec.columns])
    data = parquet_bytes(table)
    assert len(data) > 3 * CHUNK  # several chunks
    return Candidate(
        data,
        manifest_for(spec, data, rows=rows, run_id=run_id, source="upload tests", score=0.98),
        publishing.spec_document(spec),
    )


def start(client: TestClient, platform: Platform, cand: Candidate, user: str = "market_staff", **changes: Any) -> Any:
    return client.post(f"{API}/uploads", json=cand.body(**changes), headers=platform.auth(user))


def started(client: TestClient, platform: Platform, cand: Candidate, user: str = "market_staff") -> dict[str, Any]:
    answer = start(client, platform, cand, user)
    assert answer.status_code == 201, answer.text
    upload: dict[str, Any] = answer.json()
    return upload


def put(
    client: TestClient, platform: Platform, upload_id: str, offset: int | str, data: bytes, user: str = "market_staff"
) -> Any:
    return client.put(
        f"{API}/uploads/{upload_id}/chunks/{offset}",
        content=data,
        headers={**platform.auth(user), "Content-Type": "application/octet-stream"},
    )


def send(
    client: TestClient,
    platform: Platform,
    upload_id: str,
    cand: Candidate,
    *,
    start_at: int = 0,
    user: str = "market_staff",
) -> dict[str, Any]:
    answer: dict[str, Any] = {}
    for offset, piece in cand.chunks(start_at):
        response = put(client, platform, upload_id, offset, piece, user)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["received"] == offset + len(piece)
    return answer


def commit(client: TestClient, platform: Platform, upload_id: str, user: str = "market_staff") -> Any:
    return client.post(f"{API}/uploads/{upload_id}/commit", headers=platform.auth(user))


def uploaded(
    client: TestClient, platform: Platform, cand: Candidate, user: str = "market_staff"
) -> tuple[str, dict[str, Any]]:
    """Start, send every chunk and commit; the upload's id and the commit's answer."""
    upload = started(client, platform, cand, user)
    send(client, platform, upload["id"], cand, user=user)
    answer = commit(client, platform, upload["id"], user)
    assert answer.status_code == 200, answer.text
    return upload["id"], answer.json()


def latest_number(platform: Platform, entry: str = MARKET) -> int | None:
    v = platform.store.latest_version(entry)
    return v.number if v is not None else None


def stored_versions(platform: Platform, entry: str = MARKET) -> list[str]:
    folder = platform.exchange.root / entry
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []


def part(platform: Platform, upload_id: str) -> Path:
    return uploads.part_path(platform.workspace, upload_id)


def audited(platform: Platform, subject: str) -> list[tuple[str, str]]:
    with platform.store.session() as s:
        return [(e.action, e.actor) for e in audit.events(s, subject=subject)]


def error(answer: Any) -> str:
    return str(answer.json()["error"])


# --- the protocol --------------------------------------------------------------------------------


def test_chunked_upload_and_commit_publish_the_next_version(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    upload = started(client, platform, cand)
    assert upload["status"] == "open" and upload["received"] == 0 and not upload["complete"]
    assert (upload["entry"], upload["department"], upload["user"]) == (
        MARKET,
        platform.departments["market"],
        "market_staff",
    )
    assert upload["size"] == len(cand.data) and upload["sha256"] == cand.sha256 and upload["chunk_size"] == CHUNK
    assert upload["expires_at"] is not None and upload["version"] is None

    last = send(client, platform, upload["id"], cand)
    assert last["received"] == len(cand.data) and last["complete"] and last["status"] == "open"
    answer = commit(client, platform, upload["id"])
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["id"] == upload["id"] and result["entry"] == MARKET
    assert (result["status"], result["version"], result["rows"]) == ("published", 2, 40)
    assert result["content_sha256"] == cand.sha256
    assert "location" not in result  # a path on the server is of no use to the publisher

    version = platform.store.latest_version(MARKET)
    assert version is not None and version.number == 2
    assert (version.row_count, version.content_sha256, version.run_id) == (40, cand.sha256, "2026-12-01")
    assert version.fingerprint == cand.manifest["fingerprint"]
    stored = platform.exchange.read(MARKET, 2)
    assert stored is not None and stored.data_path.read_bytes() == cand.data
    assert stored.manifest["content_sha256"] == cand.sha256 and stored.manifest["rows"] == 40
    assert stored.manifest["quality"]["score"] == 0.98 and stored.manifest["lineage"]["source"] == "upload tests"
    assert not part(platform, upload["id"]).exists()  # the part was moved, not copied

    shown = client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_staff")).json()
    assert (shown["status"], shown["version"], shown["expires_at"]) == ("committed", 2, None)
    latest = client.get(f"{API}/publishing/{MARKET}/latest", headers=platform.auth("market_staff")).json()
    assert latest["version"]["number"] == 2 and latest["version"]["content_sha256"] == cand.sha256
    data = client.get(f"{API}/publishing/{MARKET}/versions/2/data", headers=platform.auth("market_staff"))
    assert data.status_code == 200 and data.content == cand.data
    assert audited(platform, f"upload:{upload['id']}") == [
        ("upload.start", "market_staff"),
        ("upload.commit", "market_staff"),
    ]
    assert audited(platform, f"version:{MARKET}/2") == [("version.publish", "market_staff")]


def test_the_server_lowers_the_chunk_size_to_its_limit(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVDATA_UPLOAD_MAX_CHUNK", "2048")
    upload = start(client, platform, candidate(platform), chunk_size=64 * 1024 * 1024).json()
    assert upload["chunk_size"] == 2048
    monkeypatch.setenv("GOVDATA_UPLOAD_MAX_CHUNK", str(64 * 1024**2))
    other = candidate(platform, seed=12)
    assert start(client, platform, other, chunk_size=None).json()["chunk_size"] == uploads.DEFAULT_CHUNK


def test_an_interrupted_upload_resumes_where_the_server_says(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    upload = started(client, platform, cand)
    for offset, piece in list(cand.chunks())[:2]:
        assert put(client, platform, upload["id"], offset, piece).status_code == 200

    # The client died: it learns how far it got from GET, or by declaring the same content again.
    shown = client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_staff")).json()
    assert shown["received"] == 2 * CHUNK and not shown["complete"]
    again = start(client, platform, cand)
    assert again.status_code == 200  # not 201: the open upload of this content
    assert again.json()["id"] == upload["id"] and again.json()["received"] == 2 * CHUNK

    # A chunk received before, sent again with the same bytes, is acknowledged and changes nothing.
    repeat = put(client, platform, upload["id"], CHUNK, cand.data[CHUNK : 2 * CHUNK])
    assert repeat.status_code == 200 and repeat.json()["received"] == 2 * CHUNK
    # A gap, an overlap, or other bytes at a received offset: 409 naming the expected offset.
    gap = put(client, platform, upload["id"], 3 * CHUNK, cand.data[3 * CHUNK : 4 * CHUNK])
    assert gap.status_code == 409 and "expected offset 2048" in error(gap)
    assert "GET the upload" in gap.json()["hint"]
    overlap = put(client, platform, upload["id"], CHUNK + 100, cand.data[CHUNK + 100 : 2 * CHUNK + 100])
    assert overlap.status_code == 409 and "expected offset 2048" in error(overlap)
    changed = put(client, platform, upload["id"], 0, b"\x00" * CHUNK)
    assert changed.status_code == 409 and "differs" in error(changed) and "2048" in error(changed)
    assert client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_staff")).json()["received"] == (
        2 * CHUNK
    )

    send(client, platform, upload["id"], cand, start_at=2 * CHUNK)
    answer = commit(client, platform, upload["id"])
    assert answer.status_code == 200 and answer.json()["status"] == "published"
    stored = platform.exchange.read(MARKET, 2)
    assert stored is not None and stored.data_path.read_bytes() == cand.data


def test_a_corrupted_chunk_is_refused_at_commit_and_nothing_is_published(
    client: TestClient, platform: Platform
) -> None:
    cand = candidate(platform)
    upload = started(client, platform, cand)
    corrupted = bytearray(cand.data)
    corrupted[CHUNK + 7] ^= 0xFF  # one bit flipped in transit, in the second chunk
    send(client, platform, upload["id"], Candidate(bytes(corrupted), cand.manifest, cand.spec))
    answer = commit(client, platform, upload["id"])
    assert answer.status_code == 422
    assert "sha256" in error(answer) and cand.sha256 in error(answer) and "a chunk was corrupted" in error(answer)
    assert "nothing was published" in error(answer)
    assert latest_number(platform) == 1 and stored_versions(platform) == ["v000001"]
    assert not part(platform, upload["id"]).exists()
    shown = client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_staff")).json()
    assert shown["status"] == "refused"
    again = commit(client, platform, upload["id"])
    assert again.status_code == 409 and "refused" in error(again)
    assert put(client, platform, upload["id"], 0, cand.data[:CHUNK]).status_code == 409
    assert [a for a, _ in audited(platform, f"upload:{upload['id']}")] == ["upload.start", "upload.refuse"]

    # The same content declared again is a new upload, and this time it arrives whole.
    fresh = started(client, platform, cand)
    assert fresh["id"] != upload["id"]
    send(client, platform, fresh["id"], cand)
    assert commit(client, platform, fresh["id"]).json()["version"] == 2


def wrong_columns(platform: Platform) -> Candidate:
    cand = candidate(platform)
    spec = platform.specs[MARKET]
    table = generated_rows(spec, 40, seed=11).select([c.name for c in spec.columns])
    table = table.rename_columns([*table.column_names[:-1], "surprise"])
    data = parquet_bytes(table)
    return Candidate(
        data, {**cand.manifest, "bytes": len(data), "content_sha256": hashlib.sha256(data).hexdigest()}, cand.spec
    )


def wrong_rows(platform: Platform) -> Candidate:
    cand = candidate(platform)
    return Candidate(cand.data, {**cand.manifest, "rows": 41}, cand.spec)


def not_parquet(platform: Platform) -> Candidate:
    cand = candidate(platform)
    data = b"uscc,enterprise_name\n" * 300
    return Candidate(
        data, {**cand.manifest, "bytes": len(data), "content_sha256": hashlib.sha256(data).hexdigest()}, cand.spec
    )


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (wrong_columns, "the Parquet file has the columns"),
        (wrong_rows, "the Parquet file has 40 rows, the manifest says 41"),
        (not_parquet, "not a readable Parquet file"),
    ],
)
def test_a_file_that_is_not_what_the_manifest_says_is_refused(
    client: TestClient, platform: Platform, make: Any, expected: str
) -> None:
    cand = make(platform)
    upload = started(client, platform, cand)
    send(client, platform, upload["id"], cand)
    answer = commit(client, platform, upload["id"])
    assert answer.status_code == 422 and expected in error(answer) and "nothing was published" in error(answer)
    assert latest_number(platform) == 1 and stored_versions(platform) == ["v000001"]
    assert client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_staff")).json()["status"] == (
        "refused"
    )


def test_commit_before_every_byte_arrived_is_409_and_changes_nothing(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    upload = started(client, platform, cand)
    early = commit(client, platform, upload["id"])
    assert early.status_code == 409 and f"0 of {len(cand.data)} bytes received" in error(early)
    assert put(client, platform, upload["id"], 0, cand.data[:CHUNK]).status_code == 200
    early = commit(client, platform, upload["id"])
    assert early.status_code == 409 and f"{CHUNK} of {len(cand.data)} bytes" in error(early)
    assert f"from offset {CHUNK}" in early.json()["hint"]
    assert latest_number(platform) == 1
    shown = client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_staff")).json()
    assert shown["status"] == "open" and shown["received"] == CHUNK
    send(client, platform, upload["id"], cand, start_at=CHUNK)
    assert commit(client, platform, upload["id"]).json()["status"] == "published"


def test_delete_aborts_the_upload_and_deletes_its_bytes(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    upload = started(client, platform, cand)
    assert put(client, platform, upload["id"], 0, cand.data[:CHUNK]).status_code == 200
    assert part(platform, upload["id"]).stat().st_size == CHUNK
    auth = platform.auth("market_staff")
    aborted = client.delete(f"{API}/uploads/{upload['id']}", headers=auth)
    assert aborted.status_code == 200 and aborted.json()["status"] == "aborted"
    assert not part(platform, upload["id"]).exists()
    assert put(client, platform, upload["id"], CHUNK, cand.data[CHUNK : 2 * CHUNK]).status_code == 409
    refused = commit(client, platform, upload["id"])
    assert refused.status_code == 409 and "aborted" in error(refused)
    assert client.delete(f"{API}/uploads/{upload['id']}", headers=auth).json()["status"] == "aborted"  # again: no-op
    assert client.get(f"{API}/uploads", headers=auth).json() == []
    assert latest_number(platform) == 1
    assert [a for a, _ in audited(platform, f"upload:{upload['id']}")] == ["upload.start", "upload.abort"]

    # A committed upload cannot be aborted.
    done, _ = uploaded(client, platform, cand)
    late = client.delete(f"{API}/uploads/{done}", headers=auth)
    assert late.status_code == 409 and "committed" in error(late)
    assert latest_number(platform) == 2


def test_commit_is_idempotent_and_the_same_content_again_is_unchanged(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    upload_id, first = uploaded(client, platform, cand)
    again = commit(client, platform, upload_id)
    assert again.status_code == 200 and again.json() == first
    assert latest_number(platform) == 2 and stored_versions(platform) == ["v000001", "v000002"]
    assert audited(platform, f"version:{MARKET}/2") == [("version.publish", "market_staff")]

    # The same content uploaded again (a resumed publish of the same run) is no new version.
    _, repeat = uploaded(client, platform, cand)
    assert (repeat["status"], repeat["version"], repeat["same_run"]) == ("unchanged", 2, True)
    # The same rows from a later run are unchanged too, and not "the same run".
    later = Candidate(
        cand.data,
        {**cand.manifest, "run_id": "2026-12-02", "lineage": {"source": "x", "run_id": "2026-12-02"}},
        cand.spec,
    )
    _, other = uploaded(client, platform, later)
    assert (other["status"], other["version"], other["same_run"]) == ("unchanged", 2, False)
    assert latest_number(platform) == 2
    assert list(platform.workspace.root.joinpath("uploads").glob("*.part")) == []  # unchanged leaves no part


def test_an_open_upload_is_never_visible(client: TestClient, platform: Platform) -> None:
    """While an upload is open (even with every byte received) the catalog, CKAN, grants and the store show v1."""
    grant_id, _ = make_grant(platform, entry=HRSS, subscriber="market", method="file")
    cand = candidate(platform, HRSS, rows=40, seed=21)
    upload = started(client, platform, cand, "hrss_staff")
    send(client, platform, upload["id"], cand, user="hrss_staff")

    def visible() -> dict[str, Any]:
        package = client.get("/api/3/action/package_show", params={"id": HRSS}).json()["result"]
        reader = platform.auth("market_staff")
        download = client.get(f"{API}/grants/{grant_id}/download", params={"full": "true"}, headers=reader)
        assert download.status_code == 200, download.text
        versions = client.get(f"{API}/grants/{grant_id}/versions", headers=reader).json()
        latest = client.get(f"{API}/publishing/{HRSS}/latest", headers=platform.auth("hrss_staff")).json()
        return {
            "ckan": (package["version"], [r["version"] for r in package["resources"]]),
            "download": int(download.headers["X-Govdata-Version"]),
            "grant_versions": (versions["latest"], [v["version"] for v in versions["versions"]]),
            "latest": latest["version"]["number"],
            "store": (latest_number(platform, HRSS), stored_versions(platform, HRSS)),
            "v2_data": client.get(
                f"{API}/publishing/{HRSS}/versions/2/data", headers=platform.auth("hrss_staff")
            ).status_code,
        }

    before = visible()
    assert before == {
        "ckan": ("1", [1]),
        "download": 1,
        "grant_versions": (1, [1]),
        "latest": 1,
        "store": (1, ["v000001"]),
        "v2_data": 404,
    }
    assert part(platform, upload["id"]).stat().st_size == len(cand.data)  # every byte is on the server
    assert not any(cand.sha256 in p.read_text(encoding="utf-8") for p in platform.exchange.root.rglob("manifest.json"))

    assert commit(client, platform, upload["id"], "hrss_staff").json()["version"] == 2
    after = visible()
    assert after["ckan"] == ("2", [1, 2]) and after["download"] == 2 and after["grant_versions"] == (2, [1, 2])
    assert after["latest"] == 2 and after["store"] == (2, ["v000001", "v000002"]) and after["v2_data"] == 200


def test_a_breaking_schema_change_holds_the_commit_and_keeps_the_bytes(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    spec = publishing.spec_document(platform.specs[MARKET])
    index = next(i for i, c in enumerate(spec["columns"]) if c.get("length") and not c.get("primary_key"))
    shorter = spec["columns"][index]["length"] - 1  # a shorter 数据长度 is a breaking change
    spec["columns"][index] = {**spec["columns"][index], "length": shorter}
    schema = [dict(c) for c in cand.manifest["schema"]]
    schema[index]["length"] = shorter
    held = Candidate(cand.data, {**cand.manifest, "schema": schema}, spec)
    upload = started(client, platform, held)
    send(client, platform, upload["id"], held)
    answer = commit(client, platform, upload["id"])
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["status"], result["version"]) == ("held", None) and result["held_because"]
    assert latest_number(platform) == 1 and stored_versions(platform) == ["v000001"]
    shown = client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_staff")).json()
    assert shown["status"] == "open" and shown["complete"]  # the bytes stay for after the approval
    assert part(platform, upload["id"]).stat().st_size == len(cand.data)

    with platform.store.session() as s:
        schema_changes.decide(s, MARKET, approve=True, actor="city_admin", opinion="同意")
    again = start(client, platform, held)  # the next run declares the same content: nothing to send
    assert again.status_code == 200 and again.json()["id"] == upload["id"] and again.json()["complete"]
    published = commit(client, platform, upload["id"]).json()
    assert (published["status"], published["version"]) == ("published", 2)
    assert published["schema_change"] is not None


def test_an_idle_upload_expires(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    upload = started(client, platform, cand)
    assert put(client, platform, upload["id"], 0, cand.data[:CHUNK]).status_code == 200
    with platform.store.session() as s:  # a day and a bit without a request (the clock, moved)
        s.execute(update(Upload).where(Upload.id == upload["id"]).values(updated_at=utcnow() - dt.timedelta(hours=25)))
    late = put(client, platform, upload["id"], CHUNK, cand.data[CHUNK : 2 * CHUNK])
    assert late.status_code == 409 and "expired" in error(late)
    assert not part(platform, upload["id"]).exists()
    shown = client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_staff")).json()
    assert shown["status"] == "expired" and shown["expires_at"] is None
    assert [a for a, _ in audited(platform, f"upload:{upload['id']}")] == ["upload.start", "upload.expire"]
    fresh = start(client, platform, cand)
    assert fresh.status_code == 201 and fresh.json()["id"] != upload["id"]


# --- who may --------------------------------------------------------------------------------------


def test_another_department_cannot_see_or_touch_an_upload(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    upload = started(client, platform, cand)
    assert put(client, platform, upload["id"], 0, cand.data[:CHUNK]).status_code == 200
    other = platform.auth("hrss_staff")
    for answer in (
        client.get(f"{API}/uploads/{upload['id']}", headers=other),
        put(client, platform, upload["id"], CHUNK, cand.data[CHUNK : 2 * CHUNK], "hrss_staff"),
        commit(client, platform, upload["id"], "hrss_reviewer"),
        client.delete(f"{API}/uploads/{upload['id']}", headers=other),
    ):
        assert answer.status_code == 404, answer.text  # not 403: ids do not tell what exists
        assert "of your department" in error(answer)
    assert client.get(f"{API}/uploads", headers=other).json() == []
    # The same department (its reviewer) and the city admin see it.
    assert client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_reviewer")).status_code == 200
    assert [u["id"] for u in client.get(f"{API}/uploads", headers=platform.auth("city_admin")).json()] == [upload["id"]]
    # Untouched by all of that: market finishes it.
    shown = client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_staff")).json()
    assert (shown["status"], shown["received"]) == ("open", CHUNK)
    send(client, platform, upload["id"], cand, start_at=CHUNK)
    assert commit(client, platform, upload["id"]).json()["status"] == "published"


def test_only_a_token_with_exchange_publish_may_upload(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    with platform.store.session() as s:
        _, reader = create_token(s, "market_staff", name="read only", scopes=["catalog:read"])
    for headers in (platform.auth("auditor"), {"Authorization": f"Bearer {reader}"}):
        answer = client.post(f"{API}/uploads", json=cand.body(), headers=headers)
        assert answer.status_code == 403 and "exchange:publish" in error(answer)
        assert client.get(f"{API}/uploads", headers=headers).status_code == 403
        assert client.get(f"{API}/publishing/{MARKET}/latest", headers=headers).status_code == 403
    assert client.post(f"{API}/uploads", json=cand.body()).status_code == 401
    bad = {"Authorization": "Bearer gdt_notatoken_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}
    assert client.post(f"{API}/uploads", json=cand.body(), headers=bad).status_code == 401
    upload = started(client, platform, cand)
    assert put(client, platform, upload["id"], 0, cand.data[:CHUNK], "auditor").status_code == 403
    assert client.get(f"{API}/uploads/{upload['id']}", headers={"Authorization": f"Bearer {reader}"}).status_code == 403
    with platform.store.session() as s:
        assert s.query(Upload).count() == 1


def spec_of(platform: Platform, dataset: str, **changes: Any) -> dict[str, Any]:
    return {**publishing.spec_document(platform.specs[dataset]), **changes}


def test_a_department_publishes_only_its_own_entries(client: TestClient, platform: Platform) -> None:
    hrss = candidate(platform, HRSS, seed=21)
    # 人社's own spec, sent by 市场监管's user.
    answer = start(client, platform, hrss, "market_staff")
    assert answer.status_code == 403 and "you may publish only your own department's resources" in error(answer)
    # 人社's entry claimed by a spec of 市场监管 (same id): an entry does not move by publishing.
    market_dept = publishing.spec_document(platform.specs[MARKET])["department"]
    claimed = Candidate(hrss.data, hrss.manifest, spec_of(platform, HRSS, department=market_dept))
    for user in ("market_staff", "city_admin"):
        answer = start(client, platform, claimed, user)
        assert answer.status_code == 403 and "belongs to another department" in error(answer), answer.text
    # A new entry of 市场监管 with 人社's resource code.
    hrss_code = platform.specs[HRSS].catalog.resource_code
    market = candidate(platform)
    spec = spec_of(platform, MARKET, id="market_copy", catalog={**market.spec["catalog"], "resource_code": hrss_code})
    copy = Candidate(market.data, {**market.manifest, "resource": "market_copy", "resource_code": hrss_code}, spec)
    answer = start(client, platform, copy)
    assert answer.status_code == 409 and "resource code" in error(answer)
    # 人社's versions are not 市场监管's to read.
    assert client.get(f"{API}/publishing/{HRSS}/latest", headers=platform.auth("market_staff")).status_code == 403
    assert (
        client.get(f"{API}/publishing/{HRSS}/versions/1/data", headers=platform.auth("market_staff")).status_code == 403
    )
    with platform.store.session() as s:
        assert s.query(Upload).count() == 0
    assert latest_number(platform, HRSS) == 1


def test_the_city_admin_may_publish_for_a_department(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform, TRANSPORT, seed=31)
    upload_id, result = uploaded(client, platform, cand, "city_admin")
    assert (result["status"], result["version"]) == ("published", 2)
    assert audited(platform, f"version:{TRANSPORT}/2") == [("version.publish", "city_admin")]
    entry = platform.store.entry(TRANSPORT)
    assert entry is not None and entry.department_uscc == platform.departments["transport"]
    # It is the department's upload: the department sees it, others do not.
    assert client.get(f"{API}/uploads/{upload_id}", headers=platform.auth("transport_staff")).status_code == 200
    assert client.get(f"{API}/uploads/{upload_id}", headers=platform.auth("market_staff")).status_code == 404


def test_a_new_entry_is_registered_from_the_spec_at_commit(client: TestClient, platform: Platform) -> None:
    market = candidate(platform)
    spec = spec_of(
        platform, MARKET, id="market_copy", catalog={**market.spec["catalog"], "resource_code": "102010001/009999"}
    )
    cand = Candidate(
        market.data, {**market.manifest, "resource": "market_copy", "resource_code": "102010001/009999"}, spec
    )
    upload = started(client, platform, cand)
    assert platform.store.entry("market_copy") is None  # nothing registered before the commit
    send(client, platform, upload["id"], cand)
    result = commit(client, platform, upload["id"]).json()
    assert (result["status"], result["version"], result["entry_status"]) == ("published", 1, "published")
    entry = platform.store.entry("market_copy")
    assert entry is not None and entry.department_uscc == platform.departments["market"]


# --- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "status", "expected"),
    [
        ("-1", 422, "offset"),
        ("-9223372036854775808", 422, "offset"),
        (str(2**62 + 1), 422, "offset"),
        (str(10**40), 422, "offset"),
        (str(2**62), 422, "past the declared size"),
        ("1e3", 422, "offset"),
        ("abc", 422, "offset"),
    ],
)
def test_hostile_offsets_are_refused(
    client: TestClient, platform: Platform, offset: str, status: int, expected: str
) -> None:
    cand = candidate(platform)
    upload = started(client, platform, cand)
    answer = put(client, platform, upload["id"], offset, cand.data[:CHUNK])
    assert answer.status_code == status and expected in error(answer), answer.text
    assert client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_staff")).json()["received"] == 0
    assert part(platform, upload["id"]).stat().st_size == 0


def test_oversize_empty_and_overlong_chunks_are_refused(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    cand = candidate(platform)
    upload = started(client, platform, cand)
    # Larger than the upload's chunk size (the service would take more).
    monkeypatch.setenv("GOVDATA_UPLOAD_MAX_CHUNK", str(4 * CHUNK))
    big = put(client, platform, upload["id"], 0, cand.data[: CHUNK + 1])
    assert big.status_code == 413 and f"larger than the upload's chunk size of {CHUNK}" in error(big)
    monkeypatch.setenv("GOVDATA_UPLOAD_MAX_CHUNK", str(CHUNK))
    # Larger than the service's limit: by Content-Length, and streamed without one.
    huge = put(client, platform, upload["id"], 0, b"x" * (10 * CHUNK))
    assert huge.status_code == 413 and "larger than 1024 bytes" in error(huge)

    def stream() -> Iterator[bytes]:
        for _ in range(50):
            yield b"x" * 1000

    streamed = client.put(
        f"{API}/uploads/{upload['id']}/chunks/0",
        content=stream(),
        headers={**platform.auth("market_staff"), "Content-Type": "application/octet-stream"},
    )
    assert streamed.status_code == 413 and "larger than 1024 bytes" in error(streamed)
    empty = put(client, platform, upload["id"], 0, b"")
    assert empty.status_code == 422, empty.text
    # The last chunk running past the declared size.
    last = (len(cand.data) - 1) // CHUNK * CHUNK
    send(client, platform, upload["id"], Candidate(cand.data[:last], cand.manifest, cand.spec))
    over = put(client, platform, upload["id"], len(cand.data) - 10, cand.data[-10:] + b"0123456789")
    assert over.status_code == 422 and "past the declared size" in error(over)
    shown = client.get(f"{API}/uploads/{upload['id']}", headers=platform.auth("market_staff")).json()
    assert shown["received"] == last and part(platform, upload["id"]).stat().st_size == last


@pytest.mark.parametrize(
    ("size", "status", "expected"),
    [
        (21 * 1024**3, 413, "GOVDATA_UPLOAD_MAX_BYTES"),
        (2**62, 413, "GOVDATA_UPLOAD_MAX_BYTES"),
        (2**63, 422, "size"),
        (0, 422, "size"),
        (-5, 422, "size"),
        ("ten", 422, "size"),
        (1.5, 422, "size"),
    ],
)
def test_an_absurd_declared_size_is_refused(
    client: TestClient, platform: Platform, size: Any, status: int, expected: str
) -> None:
    cand = candidate(platform)
    manifest = {**cand.manifest, "bytes": size if isinstance(size, int) and size > 0 else None}
    answer = start(client, platform, cand, size=size, manifest=manifest)
    if status == 413:
        assert answer.status_code == 413 and expected in answer.json()["hint"], answer.text
    else:
        assert answer.status_code == status and expected in error(answer), answer.text
    with platform.store.session() as s:
        assert s.query(Upload).count() == 0
    assert not platform.workspace.root.joinpath("uploads").exists() or not any(
        platform.workspace.root.joinpath("uploads").iterdir()
    )


def test_a_size_other_than_the_manifests_is_refused(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    answer = start(client, platform, cand, size=len(cand.data) + 1)
    assert answer.status_code == 422 and "is not the manifest's bytes" in error(answer)


@pytest.mark.parametrize(
    ("sha", "field"),
    [
        ("z" * 64, "sha256"),
        ("A" * 64, "sha256"),
        ("ab" * 31, "sha256"),
        ("ab" * 33, "sha256"),
        ("../../etc/passwd", "sha256"),
        (None, "sha256"),
        (12345, "sha256"),
    ],
)
def test_a_sha256_that_is_not_lower_case_hex_is_refused(
    client: TestClient, platform: Platform, sha: Any, field: str
) -> None:
    cand = candidate(platform)
    answer = start(client, platform, cand, sha256=sha)
    assert answer.status_code == 422 and field in error(answer), answer.text


def test_a_sha256_other_than_the_manifests_is_refused(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    answer = start(client, platform, cand, sha256="0" * 64)
    assert answer.status_code == 422 and "sha256 is not the manifest's content_sha256" in error(answer)


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ("garbage", "manifest"),
        ([], "manifest"),
        ({}, "manifest.resource"),
        ({"rows": -1}, "manifest.rows"),
        ({"rows": "many"}, "manifest.rows"),
        ({"rows": 10**14}, "manifest.rows"),
        ({"content_sha256": "nothex"}, "manifest.content_sha256"),
        ({"schema": []}, "manifest.schema"),
        ({"resource": "../../etc"}, "manifest.resource"),
        ({"run_id": "../x"}, "manifest.run_id"),
        ({"unexpected": 1}, "manifest.unexpected"),
    ],
)
def test_a_garbage_manifest_is_refused_naming_the_field(
    client: TestClient, platform: Platform, manifest: Any, expected: str
) -> None:
    cand = candidate(platform)
    document = {**cand.manifest, **manifest} if isinstance(manifest, dict) and manifest else manifest
    answer = start(client, platform, cand, manifest=document)
    assert answer.status_code == 422 and expected in error(answer), answer.text
    with platform.store.session() as s:
        assert s.query(Upload).count() == 0


def test_a_manifest_with_infinite_numbers_is_refused(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    body = json.dumps(cand.body(manifest={**cand.manifest, "quality": {"success": True, "score": 1.0}}))
    for raw in (body.replace('"score": 1.0', '"score": Infinity'), body.replace('"score": 1.0', '"score": NaN')):
        answer = client.post(
            f"{API}/uploads",
            content=raw.encode(),
            headers={**platform.auth("market_staff"), "Content-Type": "application/json"},
        )
        assert answer.status_code == 422 and "manifest.quality.score" in error(answer), answer.text


def test_a_manifest_that_does_not_describe_the_spec_is_refused(client: TestClient, platform: Platform) -> None:
    cand = candidate(platform)
    schema = [dict(c) for c in cand.manifest["schema"]]
    schema[0]["type"] = "integer"
    answer = start(client, platform, cand, manifest={**cand.manifest, "schema": schema})
    assert answer.status_code == 422 and "does not describe the spec's data" in error(answer)
    assert "manifest.schema.0.type" in error(answer)
    wrong_entry = start(client, platform, cand, entry="transport_bus_stops")
    assert wrong_entry.status_code == 422 and "is not the spec's id" in error(wrong_entry)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("garbage", "spec"),
        ([1, 2], "spec"),
        ({}, "spec."),
        ({"id": 5}, "spec."),
        ("department", "spec.department"),
        ("columns", "spec.columns"),
    ],
)
def test_a_garbage_spec_is_refused_naming_the_key(
    client: TestClient, platform: Platform, spec: Any, expected: str
) -> None:
    cand = candidate(platform)
    document = spec
    if spec == "department":
        document = spec_of(platform, MARKET, department={"name": "x", "uscc": "not a uscc"})
    elif spec == "columns":
        document = spec_of(platform, MARKET, columns="none")
    answer = start(client, platform, cand, spec=document)
    assert answer.status_code == 422 and expected in error(answer), answer.text


def test_garbage_bodies_are_refused(client: TestClient, platform: Platform) -> None:
    headers = {**platform.auth("market_staff"), "Content-Type": "application/json"}
    for body in (b"{not json", b"[]", b"null", b'"text"', b"{}"):
        answer = client.post(f"{API}/uploads", content=body, headers=headers)
        assert answer.status_code == 422, (body, answer.text)
    cand = candidate(platform)
    extra = client.post(f"{API}/uploads", json={**cand.body(), "path": "/etc/passwd"}, headers=headers)
    assert extra.status_code == 422 and "path" in error(extra)
    huge = client.post(f"{API}/uploads", content=b"{" + b" " * 1_100_000 + b"}", headers=headers)
    assert huge.status_code == 413
    small = start(client, platform, cand, chunk_size=10)
    assert small.status_code == 422 and "chunk_size" in error(small)


@pytest.mark.parametrize(
    "upload_id",
    [
        "..%2F..%2Fcatalog.db",
        "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "A" * 32,
        "a" * 31,
        "a" * 33,
        "0" * 31 + "g",
        "0" * 32 + "%00",
        "0" * 32 + ".part",
    ],
)
def test_path_like_upload_ids_are_refused(client: TestClient, platform: Platform, upload_id: str) -> None:
    headers = platform.auth("market_staff")
    for answer in (
        client.get(f"{API}/uploads/{upload_id}", headers=headers),
        put(client, platform, upload_id, 0, b"x" * 10),
        client.post(f"{API}/uploads/{upload_id}/commit", headers=headers),
        client.delete(f"{API}/uploads/{upload_id}", headers=headers),
    ):
        assert answer.status_code in (404, 405, 422), answer.text
    assert (platform.home / "catalog.db").is_file()
    assert not platform.workspace.root.joinpath("uploads").exists()


def test_part_paths_are_made_from_upload_ids_only(platform: Platform) -> None:
    for bad in ("../catalog", "../../etc/passwd", "a" * 31 + "/", "", "A" * 32):
        with pytest.raises(NotFound):
            uploads.part_path(platform.workspace, bad)
    good = "0123456789abcdef" * 2
    assert uploads.part_path(platform.workspace, good).parent == platform.workspace.root / "uploads"


def test_a_department_has_a_limited_number_of_open_uploads(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVDATA_UPLOAD_MAX_OPEN", "2")
    first, second = candidate(platform, seed=1), candidate(platform, seed=2)
    started(client, platform, first)
    started(client, platform, second)
    third = start(client, platform, candidate(platform, seed=3))
    assert third.status_code == 409 and "2 open uploads" in error(third)
    assert start(client, platform, first).status_code == 200  # resuming one is always possible
    other = start(client, platform, candidate(platform, TRANSPORT, seed=4), "transport_staff")
    assert other.status_code == 201  # the limit is per department


def test_a_misconfigured_limit_is_named(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVDATA_UPLOAD_MAX_BYTES", "lots")
    answer = start(client, platform, candidate(platform))
    assert "GOVDATA_UPLOAD_MAX_BYTES='lots'" in error(answer)
    with platform.store.session() as s:
        assert s.query(Upload).count() == 0
