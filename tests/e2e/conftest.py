"""A small CSV dataset (spec, suite, source) written into tmp_path for end-to-end runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.identifiers import is_valid_uscc, org_code_check_char, uscc_check_char
from tests.unit.specfactory import spec_dict


def uscc(n: int, authority: str = "91") -> str:
    org = f"MA{n:06d}"  # positions 9-17: a GB 11714 code with its own check character
    body = f"{authority}310115{org}{org_code_check_char(org)}"
    return body + uscc_check_char(body)


HEADER = "统一社会信用代码,企业名称,成立日期,注册资本"

SUITE = {
    "name": "sample_enterprises",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "uscc"}, "meta": {}},
        {"type": "expect_column_values_to_be_valid_uscc", "kwargs": {"column": "uscc"}, "meta": {}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}, "meta": {}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "uscc"}, "meta": {}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}, "meta": {}},
    ],
    "meta": {},
}


def good_rows(n: int, start: int = 0) -> list[str]:
    return [f"{uscc(i)},企业{i},2020年1月{1 + i % 28}日,{100 + i}" for i in range(start, start + n)]


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Write spec + suite + CSV; return the spec path. Keyword args adjust the spec or the source."""

    def make(
        lines: list[str] | None = None,
        *,
        raw: bytes | None = None,
        encoding: str = "utf-8",
        options: dict[str, Any] | None = None,
        suite: dict[str, Any] | None = None,
        **spec_changes: Any,
    ) -> Path:
        folder = tmp_path / "ds"
        folder.mkdir(exist_ok=True)
        data = (
            raw
            if raw is not None
            else ("\n".join([HEADER, *(lines if lines is not None else good_rows(20))]) + "\n").encode(encoding)
        )
        (folder / "source.csv").write_bytes(data)
        (folder / "suite.json").write_text(json.dumps(suite or SUITE, ensure_ascii=False), encoding="utf-8")
        spec = spec_dict(
            source={"connector": "csv", "options": {"path": "source.csv", **(options or {})}},
            columns=[
                {
                    "name": "uscc",
                    "title": "统一社会信用代码",
                    "source": "统一社会信用代码",
                    "primary_key": True,
                    "nullable": False,
                },
                {"name": "name", "title": "企业名称", "source": "企业名称"},
                {"name": "founded", "title": "成立日期", "source": "成立日期", "type": "date"},
                {"name": "capital", "title": "注册资本", "source": "注册资本", "type": "decimal"},
            ],
            quality={"suite": "suite.json", "max_quarantine_share": 0.3},
        )
        spec.update(spec_changes)
        path = folder / "spec.yaml"
        path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    return make


assert is_valid_uscc(uscc(1))
