"""Paths and a minimal dataset spec (with its CSV source and suite) for the DAG tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pipelines.identifiers import uscc_check_char

REPO = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO / "dags"
REPO_DATASETS = REPO / "datasets"
DAG_FILE = DAGS_DIR / "govdata_datasets.py"
LOGGING_MODULE = DAGS_DIR / "govdata_logging.py"
STEPS = ["collect", "cleanse", "quality", "catalog", "publish"]

DEPT_USCC = "11310000MB2F0000" + "8"  # 8: the GB 11714 check of the organisation code MB2F0000
DEPT_USCC += uscc_check_char(DEPT_USCC)

SOURCE_CSV = "统一社会信用代码,企业名称,成立日期\n" + "".join(
    f"91310000MA1K{n:05d}{uscc_check_char(f'91310000MA1K{n:05d}')},样例企业{n}有限公司,2020-01-{n:02d}\n"
    for n in range(1, 6)
)

SUITE: dict[str, Any] = {
    "name": "sample",
    "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}, "meta": {}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "uscc"}, "meta": {}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "uscc"}, "meta": {}},
    ],
    "meta": {},
}


def spec_dict(dataset_id: str, **changes: Any) -> dict[str, Any]:
    """A minimal valid spec: a five-row CSV of enterprises beside it, its suite beside it."""
    data: dict[str, Any] = {
        "id": dataset_id,
        "name": f"样例企业信息 {dataset_id}",
        "department": {"name": "上海市样例管理局", "uscc": DEPT_USCC},
        "source": {"connector": "csv", "options": {"path": f"{dataset_id}.csv"}},
        "columns": [
            {
                "name": "uscc",
                "title": "统一社会信用代码",
                "source": "统一社会信用代码",
                "primary_key": True,
                "nullable": False,
            },
            {"name": "name", "title": "企业名称", "source": "企业名称"},
            {"name": "founded", "title": "成立日期", "source": "成立日期", "type": "date"},
        ],
        "cleanse": {"upper": ["uscc"]},
        "quality": {"suite": f"{dataset_id}.suite.json"},
        "catalog": {
            "classification": {"axis": "基础", "path": ["法人", "企业"]},
            "resource_code": "101510001/000001",
            "abstract": "测试用的样例企业名录。",
            "sharing": {"type": "无条件共享", "method": "文件"},
            "update_cycle": "每日",
        },
        "tags": ["sample"],
    }
    data.update(changes)
    return data


def write_spec(folder: Path, dataset_id: str, **changes: Any) -> Path:
    """Write a spec, its CSV source and its suite into ``folder``; return the spec path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{dataset_id}.csv").write_text(SOURCE_CSV, encoding="utf-8")
    (folder / f"{dataset_id}.suite.json").write_text(json.dumps({**SUITE, "name": dataset_id}), encoding="utf-8")
    path = folder / f"{dataset_id}.yaml"
    path.write_text(
        yaml.safe_dump(spec_dict(dataset_id, **changes), allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return path
