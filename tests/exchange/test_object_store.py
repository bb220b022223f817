"""The exchange store in a real S3-compatible object store (OpenStack Swift's S3 API on loopback).

With ``GOVDATA_STORE_URL`` set, the platform publishes every version into the bucket (files
first, the manifest last), records the version's ``s3://`` location in the catalog, and reads
versions back through its local cache, which may be deleted at any time. These tests run a
platform of three departments against a bucket of their own and check, from outside govdata
(a separate S3 client), what is in the bucket, and through the HTTP API what subscribers get.
"""

from __future__ import annotations

import io
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from exchange import changes
from exchange.objectstore import ObjectExchangeStore
from exchange.service import create_app
from exchange.store import DATA_FILE, MANIFEST_FILE, open_store
from pipelines.errors import TerminalError, TransientError
from pipelines.masking import MASKING_KEY_ENV
from pipelines.workspace import Workspace
from tests.exchange.conftest_exchange import HRSS, MARKET, Platform, build_platform, publish, use_object_store
from tests.exchange.delivery.conftest import make_grant, reference_changes, reference_rows, second_version

pytestmark = pytest.mark.integration

V1 = "/exchange/v1"
PREFIX = "city/exchange"


@pytest.fixture
def bucket(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket, with the platform pointed at it (credentials in the AWS variables, never the URL)."""
    for var in ("GOVDATA_USER", "GOVDATA_CATALOG_URL", "GOVDATA_HOME", "GOVDATA_DELIVERY_RETRIES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(MASKING_KEY_ENV, "object-store-tests")
    monkeypatch.setenv("GOVDATA_DELIVERY_BACKOFF", "0")
    return use_object_store(s3_server, monkeypatch, PREFIX)


@pytest.fixture
def outside(s3_server: Any) -> pafs.S3FileSystem:
    """A client of the object store that is not govdata's: what an operator or an attacker sees."""
    return s3_server.pyarrow_filesystem()


@pytest.fixture
def platform(bucket: str, tmp_path: Path) -> Platform:
    return build_platform(tmp_path / "home", rows=60)


def objects(fs: pafs.S3FileSystem, bucket: str, resource: str) -> dict[str, int]:
    """Every object under the resource's prefix: relative key -> size."""
    base = f"{bucket}/{PREFIX}/{resource}"
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return {i.path[len(base) + 1 :]: i.size for i in infos if i.type == pafs.FileType.File}


def download(client: TestClient, platform: Platform, grant: int, **params: Any) -> Any:
    return client.get(f"{V1}/grants/{grant}/download", params=params, headers=platform.auth("market_staff"))


def test_versions_live_in_the_bucket_and_are_served_after_the_cache_is_gone(
    platform: Platform, bucket: str, outside: pafs.S3FileSystem
) -> None:
    assert isinstance(platform.exchange, ObjectExchangeStore)
    for dataset in (HRSS, MARKET):
        version = platform.store.latest_version(dataset)
        assert version is not None
        assert version.location == f"s3://{bucket}/{PREFIX}/{dataset}/v000001"  # no endpoint, no secret
        stored = objects(outside, bucket, dataset)
        assert set(stored) == {f"v000001/{DATA_FILE}", f"v000001/{MANIFEST_FILE}"}
        with outside.open_input_stream(f"{bucket}/{PREFIX}/{dataset}/v000001/{DATA_FILE}") as fh:
            body = fh.read()
        assert pq.read_table(io.BytesIO(body)).num_rows == version.row_count
        with outside.open_input_stream(f"{bucket}/{PREFIX}/{dataset}/v000001/{MANIFEST_FILE}") as fh:
            assert json.loads(fh.read())["content_sha256"] == version.content_sha256

    grant, _ = make_grant(platform)
    shutil.rmtree(platform.workspace.exchange)  # the cache only: the bucket keeps everything
    with TestClient(create_app(platform.home)) as client:
        first = download(client, platform, grant)
        assert first.status_code == 200, first.text
        got = {(r["resident_id"],): r for r in pq.read_table(io.BytesIO(first.content)).to_pylist()}
        assert got == reference_rows(platform, platform.tables[HRSS])
        # The version was read back into the cache, checked against its manifest.
        assert (platform.workspace.exchange / HRSS / "v000001" / DATA_FILE).is_file()

        table, _ = second_version(platform.tables[HRSS])
        v1 = platform.tables[HRSS]
        shutil.rmtree(platform.workspace.exchange)  # the change index needs v1: fetched from the bucket
        assert publish(platform, HRSS, table) == 2
        assert set(objects(outside, bucket, HRSS)) == {
            f"v000001/{DATA_FILE}",
            f"v000001/{MANIFEST_FILE}",
            f"v000002/{DATA_FILE}",
            f"v000002/{MANIFEST_FILE}",
            f"v000002/{changes.OLD_FILE}",
            f"v000002/{changes.NEW_FILE}",
        }
        shutil.rmtree(platform.workspace.exchange)
        answer = download(client, platform, grant)  # since the last delivered version
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-govdata-kind"] == "changes"
    rows = pq.read_table(io.BytesIO(answer.content)).to_pylist()
    delivered = {(r["resident_id"],): r["_op"] for r in rows}
    expected = reference_changes(reference_rows(platform, v1), reference_rows(platform, table))
    assert delivered == {k: op for k, (op, _) in expected.items()}


def test_a_data_file_changed_in_the_bucket_is_refused_not_delivered(
    platform: Platform, bucket: str, outside: pafs.S3FileSystem
) -> None:
    key = f"{bucket}/{PREFIX}/{MARKET}/v000001/{DATA_FILE}"
    with outside.open_input_stream(key) as fh:
        table = pq.read_table(io.BytesIO(fh.read()))
    with outside.open_output_stream(key) as out:  # one row fewer: a valid Parquet file, other bytes
        pq.write_table(table.slice(1), out)
    shutil.rmtree(platform.workspace.exchange)
    with pytest.raises(TerminalError) as err:
        platform.exchange.read(MARKET, 1)
    assert "differs from the manifest" in err.value.message and DATA_FILE in err.value.message
    assert not (platform.workspace.exchange / MARKET / "v000001").exists()  # nothing half-checked is cached
    assert not list((platform.workspace.exchange / MARKET).glob(".fetch-*"))


def test_a_cached_copy_is_not_trusted_when_the_store_holds_another_version(
    platform: Platform, bucket: str, outside: pafs.S3FileSystem
) -> None:
    cached = platform.workspace.exchange / MARKET / "v000001" / MANIFEST_FILE
    manifest = json.loads(cached.read_text(encoding="utf-8"))
    cached.write_text(json.dumps({**manifest, "rows": 1}), encoding="utf-8")  # a stale or edited cache
    stored = platform.exchange.read(MARKET, 1)
    assert stored is not None and stored.manifest == manifest  # the store's, fetched again
    assert json.loads(cached.read_text(encoding="utf-8")) == manifest


def test_an_interrupted_publish_is_invisible_and_cleared(
    platform: Platform, bucket: str, outside: pafs.S3FileSystem
) -> None:
    # A publish that died after uploading the data file of version 2, before its manifest.
    with outside.open_output_stream(f"{bucket}/{PREFIX}/{MARKET}/v000002/{DATA_FILE}") as out:
        out.write(b"PAR1 half a file")
    store = platform.exchange
    assert store.read(MARKET, 2) is None
    assert store.versions(MARKET) == [1, 2]
    assert store.remove_uncommitted(MARKET, {1}) == [2]
    assert set(objects(outside, bucket, MARKET)) == {f"v000001/{DATA_FILE}", f"v000001/{MANIFEST_FILE}"}
    # The next publish takes number 2 as if nothing had happened.
    table = platform.tables[MARKET]
    assert publish(platform, MARKET, table.slice(0, 10)) == 2
    again = open_store(Workspace.from_env(platform.home)).read(MARKET, 2)
    assert again is not None and pq.read_table(again.data_path).num_rows == 10


def test_store_errors_name_the_store_and_the_fix_and_never_the_secret(
    s3_server: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "not-the-secret-0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    with pytest.raises(TerminalError) as denied:
        ObjectExchangeStore(f"s3://{bucket}/x?endpoint={s3_server.endpoint}", tmp_path / "c1").read("any", 1)
    assert "access denied" in denied.value.message and f"s3://{bucket}/x" in denied.value.message
    assert wrong not in str(denied.value) and "AWS_SECRET_ACCESS_KEY" in (denied.value.hint or "")

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    with pytest.raises(TerminalError) as missing:
        ObjectExchangeStore(
            f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x?endpoint={s3_server.endpoint}", tmp_path
        ).versions("any")
    assert "does not exist" in missing.value.message and "never creates buckets" in (missing.value.hint or "")

    with pytest.raises(TransientError) as down:  # nothing listens there: retried by the scheduler
        ObjectExchangeStore(f"s3://{bucket}/x?endpoint=http://127.0.0.1:9&timeout=2", tmp_path).read("any", 1)
    assert "127.0.0.1:9" in down.value.message and down.value.retryable


def test_readers_filling_the_cache_at_once_all_get_the_whole_version(platform: Platform) -> None:
    from concurrent.futures import ThreadPoolExecutor

    shutil.rmtree(platform.workspace.exchange)
    url = platform.workspace.store_url
    assert url is not None
    stores = [ObjectExchangeStore(url, platform.workspace.exchange) for _ in range(6)]  # as six processes would
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda store: store.read(HRSS, 1), stores))
    expected = platform.store.latest_version(HRSS)
    assert expected is not None
    for stored in got:
        assert stored is not None and stored.manifest["content_sha256"] == expected.content_sha256
        assert pq.read_table(stored.data_path).num_rows == expected.row_count
    assert sorted(p.name for p in (platform.workspace.exchange / HRSS).iterdir()) == ["v000001"]  # no leftovers
