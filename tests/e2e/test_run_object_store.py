"""A pipeline run that publishes into an object store (``GOVDATA_STORE_URL``), against a real S3 server."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from catalog.store import CatalogStore
from pipelines import runner
from pipelines.workspace import Workspace
from tests.e2e.conftest import good_rows
from tests.exchange.conftest_exchange import use_object_store

pytestmark = pytest.mark.integration


def test_runs_publish_versions_into_the_bucket_and_a_rerun_changes_nothing(
    make_dataset: Callable[..., Path], workspace: Path, s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = use_object_store(s3_server, monkeypatch, "exchange")
    spec = make_dataset(good_rows(10))
    first = runner.run(spec, "2026-11-24")
    assert (first["status"], first["version"]) == ("published", 1)
    shutil.rmtree(Workspace.from_env().exchange)  # the local cache: a rerun compares with the catalog and the bucket
    again = runner.run(spec, "2026-11-24")
    assert (again["status"], again["version"]) == ("unchanged", 1)
    make_dataset(good_rows(12))
    changed = runner.run(spec, "2026-11-25")
    assert (changed["status"], changed["version"]) == ("published", 2)

    store = CatalogStore(Workspace.from_env().catalog_url)
    entry = store.entry("sample_enterprises")
    assert entry is not None
    assert [v.location for v in entry.versions] == [
        f"s3://{bucket}/exchange/sample_enterprises/v00000{n}" for n in (1, 2)
    ]
    s3 = s3_server.pyarrow_filesystem()
    for version, rows in ((1, 10), (2, 12)):
        with s3.open_input_file(f"{bucket}/exchange/sample_enterprises/v00000{version}/data.parquet") as fh:
            assert pq.read_table(fh).num_rows == rows
    assert first["outputs"]["published"] == f"s3://{bucket}/exchange/sample_enterprises/v000001"
