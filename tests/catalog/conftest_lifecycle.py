"""A small CSV dataset written into a folder, for the lifecycle and schema-change runs (plain helpers)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.conftest import HEADER, SUITE, good_rows
from tests.unit.specfactory import spec_dict

#: The columns of the sample enterprises' CSV (统一社会信用代码, 企业名称, 成立日期, 注册资本).
COLUMNS: list[dict[str, Any]] = [
    {"name": "uscc", "title": "统一社会信用代码", "source": "统一社会信用代码", "primary_key": True, "nullable": False},
    {"name": "name", "title": "企业名称", "source": "企业名称"},
    {"name": "founded", "title": "成立日期", "source": "成立日期", "type": "date"},
    {"name": "capital", "title": "注册资本", "source": "注册资本", "type": "decimal"},
]


def dataset_maker(folder: Path) -> Callable[..., Path]:
    """``make(rows=10, columns=COLUMNS)`` writes spec, suite and CSV under ``folder``; returns the spec path."""

    def make(rows: int = 10, columns: list[dict[str, Any]] | None = None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "source.csv").write_text("\n".join([HEADER, *good_rows(rows)]) + "\n", encoding="utf-8")
        (folder / "suite.json").write_text(json.dumps(SUITE, ensure_ascii=False), encoding="utf-8")
        spec = spec_dict(
            source={"connector": "csv", "options": {"path": "source.csv"}},
            columns=columns or COLUMNS,
            quality={"suite": "suite.json", "max_quarantine_share": 0.3},
        )
        path = folder / "spec.yaml"
        path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    return make
