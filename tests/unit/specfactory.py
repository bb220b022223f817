"""A minimal valid spec as a dict, for tests to adjust."""

from __future__ import annotations

import copy
from typing import Any

from pipelines.identifiers import uscc_check_char

DEPT_USCC = "11310000MB2F0000" + "8"  # 8: the GB 11714 check of the organisation code MB2F0000
DEPT_USCC = DEPT_USCC + uscc_check_char(DEPT_USCC)

BASE: dict[str, Any] = {
    "id": "sample_enterprises",
    "name": "样例企业信息",
    "department": {"name": "上海市样例管理局", "uscc": DEPT_USCC},
    "source": {"connector": "csv", "options": {"path": "source.csv"}},
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
    "catalog": {
        "classification": {"axis": "基础", "path": ["法人", "企业"]},
        "resource_code": "101510001/000001",
        "abstract": "样例",
        "sharing": {"type": "无条件共享", "method": "文件"},
        "update_cycle": "每日",
    },
}


def spec_dict(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data
