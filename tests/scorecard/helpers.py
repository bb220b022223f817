"""Specs, suites and source files for the scorecard tests (written into a temporary folder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pipelines.spec import DatasetSpec
from tests.unit.specfactory import spec_dict

#: Two departments whose USCCs pass every check (the codes of two bundled example departments).
DEPT_A = {"name": "上海市样例管理局", "uscc": "113100000024187771"}
DEPT_B = {"name": "上海市样例规划局", "uscc": "113100000024251683"}


def spec(**changes: Any) -> DatasetSpec:
    """A valid in-memory spec (the factory's, with a department that passes the USCC checks)."""
    return DatasetSpec.model_validate(spec_dict(**{"department": DEPT_A, **changes}))


def write_dataset(
    folder: Path,
    *,
    dataset: str,
    resource_code: str,
    columns: list[dict[str, Any]],
    header: list[str],
    rows: list[list[str]],
    expectations: list[dict[str, Any]],
    department: dict[str, str] = DEPT_A,
    **spec_changes: Any,
) -> Path:
    """Spec + suite + UTF-8 CSV for one dataset in ``folder/<dataset>``; returns the spec path."""
    target = folder / dataset
    target.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header), *(",".join(r) for r in rows)]
    (target / "source.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    suite = {"name": dataset, "expectations": expectations, "meta": {}}
    (target / "suite.json").write_text(json.dumps(suite, ensure_ascii=False, indent=2), encoding="utf-8")
    base = spec_dict()
    data = spec_dict(
        id=dataset,
        department=department,
        source={"connector": "csv", "options": {"path": "source.csv"}},
        columns=columns,
        cleanse={},
        quality={"suite": "suite.json", "max_quarantine_share": 0.5},
        catalog={**base["catalog"], "resource_code": resource_code},
    )
    data.update(spec_changes)
    path = target / "spec.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
