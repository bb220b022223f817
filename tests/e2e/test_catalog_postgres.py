"""The same run with the catalog on the machine's real PostgreSQL (GOVDATA_CATALOG_URL)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from catalog.store import CatalogStore
from pipelines import runner
from tests.e2e.conftest import good_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_catalog_url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    schema = f"govdata_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as con:
        con.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{postgres_url}?options=-csearch_path%3D{schema}"
    monkeypatch.setenv("GOVDATA_CATALOG_URL", url)
    yield url
    with admin.begin() as con:
        con.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_run_with_the_catalog_on_postgresql(
    make_dataset: Callable[..., Path], workspace: Path, pg_catalog_url: str
) -> None:
    spec = make_dataset(good_rows(15))
    first = runner.run(spec, "2026-11-24")
    again = runner.run(spec, "2026-11-24")
    assert (first["status"], first["version"], again["status"]) == ("published", 1, "unchanged")
    store = CatalogStore(pg_catalog_url)
    assert store.engine.dialect.name == "postgresql"
    entry = store.entry("sample_enterprises")
    assert entry is not None and entry.status == "published"
    assert [(v.number, v.row_count) for v in entry.versions] == [(1, 15)]
    assert [i.name for i in entry.items] == ["uscc", "name", "founded", "capital"]
    assert [r.status for r in store.runs("sample_enterprises")] == ["unchanged"]
