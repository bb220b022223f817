"""The bundled departments end to end: the run reports match the defects the generator injected."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import duckdb
import pytest

from catalog.store import CatalogStore
from pipelines import runner
from pipelines.spec import load_spec
from pipelines.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "market_enterprise_registry": "market_regulation/enterprise_registry.yaml",
    "hrss_insured_persons": "hrss/insured_persons.yaml",
    "transport_bus_stops": "transport/bus_stops.yaml",
}


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("govdata_examples_generate", REPO / "datasets" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def copy_example(tmp_path: Path, dataset: str) -> Path:
    """The example's department folder copied to tmp (sources may be changed by a test)."""
    relative = Path(EXAMPLES[dataset])
    target = tmp_path / relative.parent
    shutil.copytree(REPO / "datasets" / relative.parent, target)
    return target / relative.name


@pytest.mark.parametrize("dataset", sorted(EXAMPLES))
def test_example_accounting_matches_the_injected_defects(tmp_path: Path, workspace: Path, dataset: str) -> None:
    spec_path = copy_example(tmp_path, dataset)
    expected = json.loads((spec_path.parent / "sources" / "EXPECTED.json").read_text(encoding="utf-8"))[dataset]
    want = expected["accounting"]
    report = runner.run(spec_path, "2026-11-24")
    rows = report["rows"]
    assert report["status"] == "published"
    assert rows["collected"] == want["collected"]
    assert rows["quarantined_detail"] == {
        "malformed_at_read": want["rejected_at_read"],
        "cast_failed": want["cast_failures"],
        "failed_expectations": want["quarantined_by_expectations"],
    }
    assert rows["filtered"] == want["filtered"]
    assert rows["duplicates_removed"] == want["duplicates_removed"]
    assert rows["published"] == want["published"] == report["version_rows"]

    failed = {f"{f['type']}:{f['column']}": f["unexpected_count"] for f in report["quality"]["failed_expectations"]}
    assert failed == expected["quarantined_by_expectation"]
    spec = load_spec(spec_path)
    titles = {c.name: f"{c.title}({c.name})" for c in spec.columns}
    by_column = {f"{titles[col]}: cast_failed": n for col, n in expected["cast_failures_by_column"].items()}
    assert {k: v for k, v in report["problems"].items() if k.endswith("cast_failed")} == by_column

    # every quarantined row has at least one reason
    q = Path(report["outputs"]["quarantine"]) / "quarantine.parquet"
    reasons = duckdb.sql(f"SELECT count(*), count(*) FILTER (len(_govdata_reasons) > 0) FROM '{q}'").fetchall()[0]
    assert reasons == (rows["quarantined"], rows["quarantined"])

    # the published version and its catalog entry agree
    entry = CatalogStore(Workspace.from_env().catalog_url).entry(dataset)
    assert entry is not None and entry.status == "published" and len(entry.items) == len(spec.columns)
    version = entry.versions[-1]
    data = Path(version.location) / "data.parquet"
    assert version.row_count == duckdb.sql(f"SELECT count(*) FROM '{data}'").fetchall()[0][0] == want["published"]
    assert version.content_sha256 == hashlib.sha256(data.read_bytes()).hexdigest()

    # de-duplication kept the row the generator says it should
    pk = spec.primary_key[0]
    for key, group in expected["dedupe"]["groups"].items():
        kept = duckdb.sql(f"SELECT count(*) FROM '{data}' WHERE {pk} = ?", params=[key]).fetchall()[0][0]
        assert kept == 1, key
        if "kept_updated_at" in group:
            got = duckdb.sql(
                f"SELECT CAST(updated_at AS VARCHAR) FROM '{data}' WHERE {pk} = ?", params=[key]
            ).fetchall()
            assert got[0][0].replace(" ", "T") == group["kept_updated_at"]


def test_bus_stops_second_run_collects_only_new_rows_and_merges(tmp_path: Path, workspace: Path) -> None:
    spec_path = copy_example(tmp_path, "transport_bus_stops")
    first = runner.run(spec_path, "2026-11-24")
    assert first["status"] == "published" and first["version"] == 1
    nothing_new = runner.run(spec_path, "2026-11-25")
    assert (nothing_new["status"], nothing_new["rows"]["collected"]) == ("unchanged", 0)
    increment = generator().append_bus_stop_increment(spec_path.parent / "sources" / "transport.db")
    second = runner.run(spec_path, "2026-11-26")
    assert second["status"] == "published" and second["version"] == 2
    assert second["rows"]["collected"] == increment["collected"] == 5
    assert second["rows"]["published"] == increment["published"]
    assert second["version_rows"] == increment["merged_total"]
    data = Path(second["outputs"]["published"]) / "data.parquet"
    changed = duckdb.sql(
        f"SELECT count(*) FROM '{data}' WHERE stop_id IN ? AND line_names LIKE '%新辟%'",
        params=[increment["changed_stop_ids"]],
    ).fetchall()[0][0]
    assert changed == 3
    assert (Path(first["outputs"]["published"]) / "data.parquet").is_file()  # the previous version stays readable
