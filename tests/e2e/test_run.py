"""End to end through the runner: row accounting, versions, idempotence, holds and crashes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from catalog.store import CatalogStore
from pipelines import runner
from pipelines.workspace import Workspace
from tests.e2e.conftest import good_rows, uscc


def balanced(report: dict) -> None:
    rows = report["rows"]
    assert rows["collected"] == (
        rows["published"]
        + rows["held"]
        + rows["quarantined"]
        + rows["duplicates_removed"]
        + sum(rows["filtered"].values())
    )


def test_run_publishes_with_exact_accounting_and_catalog_agrees(
    make_dataset: Callable[..., Path], workspace: Path
) -> None:
    bad_check = uscc(900)[:-1] + ("0" if uscc(900)[-1] != "0" else "1")
    lines = [
        *good_rows(20),
        good_rows(1, start=3)[0],  # duplicate of row 4 (keep first)
        f"{bad_check},坏代码企业,2020-01-01,1",  # fails the USCC checksum
        f"{uscc(901)},坏日期企业,2020年13月1日,1",  # cannot be read as a date
        f"{uscc(902)},,2020-01-01,1",  # name missing
    ]
    spec = make_dataset(lines)
    report = runner.run(spec, "2026-11-24")
    assert report["status"] == "published"
    rows = report["rows"]
    assert rows["collected"] == 24
    assert rows["duplicates_removed"] == 1
    assert rows["quarantined_detail"] == {"malformed_at_read": 0, "cast_failed": 1, "failed_expectations": 2}
    assert rows["published"] == 20
    balanced(report)

    # quarantined rows carry their reasons
    q = Path(report["outputs"]["quarantine"]) / "quarantine.parquet"
    reasons = dict(duckdb.sql(f"SELECT _govdata_row, _govdata_reasons FROM '{q}'").fetchall())
    assert any("expect_column_values_to_be_valid_uscc" in r for r in reasons[22])
    assert any("cannot read" in r and "date" in r for r in reasons[23])
    assert any("expect_column_values_to_not_be_null" in r for r in reasons[24])

    # the published version and its catalog entry agree
    store = CatalogStore(Workspace.from_env().catalog_url)
    entry = store.entry("sample_enterprises")
    assert entry is not None and entry.status == "published"
    version = entry.versions[-1]
    manifest = json.loads((Path(version.location) / "manifest.json").read_text(encoding="utf-8"))
    published = Path(version.location) / "data.parquet"
    count = duckdb.sql(f"SELECT count(*) FROM '{published}'").fetchall()[0]
    assert version.row_count == manifest["rows"] == report["version_rows"] == 20 == (count[0] if count else -1)
    import hashlib

    assert version.content_sha256 == manifest["content_sha256"] == hashlib.sha256(published.read_bytes()).hexdigest()
    assert [c["name"] for c in manifest["schema"]] == ["uscc", "name", "founded", "capital"]


def test_rerun_is_a_no_op_and_new_content_is_a_new_version(make_dataset: Callable[..., Path], workspace: Path) -> None:
    spec = make_dataset(good_rows(10))
    first = runner.run(spec, "2026-11-24")
    again = runner.run(spec, "2026-11-24")
    later = runner.run(spec, "2026-11-25")
    assert (first["status"], again["status"], later["status"]) == ("published", "unchanged", "unchanged")
    assert first["version"] == again["version"] == later["version"] == 1
    make_dataset(good_rows(12))
    changed = runner.run(spec, "2026-11-26")
    assert changed["status"] == "published" and changed["version"] == 2
    store = CatalogStore(Workspace.from_env().catalog_url)
    entry = store.entry("sample_enterprises")
    assert entry is not None and [v.number for v in entry.versions] == [1, 2]
    assert (
        Workspace.from_env().exchange / "sample_enterprises" / "v000001" / "data.parquet"
    ).is_file()  # previous stays readable


def test_gate_holds_on_dataset_level_failure(make_dataset: Callable[..., Path], workspace: Path) -> None:
    suite = {
        "name": "s",
        "expectations": [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1000}, "meta": {}}],
    }
    report = runner.run(make_dataset(good_rows(5), suite=suite), "2026-11-24")
    assert report["status"] == "held" and report["version"] is None
    assert report["rows"]["held"] == 5
    balanced(report)
    assert not (Workspace.from_env().exchange / "sample_enterprises").exists()
    assert "expect_table_row_count_to_be_between" in report["quality"]["held_because"][0]


def test_gate_holds_when_quarantine_share_is_over_the_limit(make_dataset: Callable[..., Path], workspace: Path) -> None:
    lines = [*good_rows(5), *[f"{uscc(800 + i)[:-1]}?,x,2020-01-01,1" for i in range(5)]]
    report = runner.run(make_dataset(lines), "2026-11-24")
    assert report["status"] == "held"
    assert "above the limit" in report["quality"]["held_because"][0]
    balanced(report)


class Killed(BaseException):
    """Stands in for the process being killed."""


@pytest.mark.parametrize("after", ["catalog", "exchange-write"])
def test_run_killed_between_steps_yields_exactly_one_version(
    make_dataset: Callable[..., Path], workspace: Path, monkeypatch: pytest.MonkeyPatch, after: str
) -> None:
    spec = make_dataset(good_rows(10))
    if after == "catalog":
        for step in ("collect", "cleanse", "quality", "catalog"):
            getattr(runner, step)(spec, "2026-11-24")
    else:
        original = CatalogStore.add_version

        def die(*args: object, **kwargs: object) -> None:
            raise Killed

        monkeypatch.setattr(CatalogStore, "add_version", die)
        with pytest.raises(Killed):
            runner.run(spec, "2026-11-24")
        monkeypatch.setattr(CatalogStore, "add_version", original)
        assert (Workspace.from_env().exchange / "sample_enterprises" / "v000001").is_dir()  # written, not committed
    report = runner.run(spec, "2026-11-24")
    assert report["status"] == "published" and report["version"] == 1
    store = CatalogStore(Workspace.from_env().catalog_url)
    entry = store.entry("sample_enterprises")
    assert entry is not None and [v.number for v in entry.versions] == [1]
    assert sorted(p.name for p in (Workspace.from_env().exchange / "sample_enterprises").iterdir()) == ["v000001"]
