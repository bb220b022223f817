"""A dataset spec meets an entry catalogued earlier from the national spreadsheet."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from catalog.spreadsheet import import_workbook
from catalog.store import CatalogStore
from pipelines.errors import SpecError
from pipelines.spec import load_spec
from tests.catalog.conftest_spreadsheet import resource, write_sheet

REPO = Path(__file__).resolve().parents[2]
MARKET = REPO / "datasets/market_regulation/enterprise_registry.yaml"
MARKET_USCC = "113100000024251683"
CODE = "102010001/000031"


def _imported(tmp_path: Path) -> CatalogStore:
    store = CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")
    sheet = write_sheet(
        tmp_path / "sheet.xlsx",
        resource(
            CODE,
            [("统一社会信用代码", "C", 18), ("企业名称", "C", 200)],
            项分类="法人",
            目分类="市场主体",
            细目分类="企业登记",
        ),
    )
    report = import_workbook(store, sheet, department=MARKET_USCC, department_name="上海市市场监督管理局")
    assert not report.problems, [str(p) for p in report.problems]
    return store


def test_a_spec_with_an_imported_code_is_told_which_id_takes_it_over(tmp_path: Path) -> None:
    store = _imported(tmp_path)
    with pytest.raises(SpecError, match=r"102010001/000031 is already used by entry 'res_102010001_000031'") as info:
        store.register(load_spec(MARKET), source="test")
    assert "id: res_102010001_000031" in (info.value.hint or "")


def test_the_spec_takes_the_imported_entry_over_under_its_id(tmp_path: Path) -> None:
    store = _imported(tmp_path)
    data = yaml.safe_load(MARKET.read_text(encoding="utf-8"))
    data["id"] = "res_102010001_000031"
    copy = tmp_path / "spec" / "adopting.yaml"
    copy.parent.mkdir()
    # The spec's relative paths (suite, sources) are not used by register: a copy elsewhere is enough.
    copy.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    store.register(load_spec(copy), source="test")
    entry = store.entry("res_102010001_000031")
    assert entry is not None
    assert entry.origin == "spec"
    assert entry.resource_code == CODE
    assert [i.title for i in entry.items] == [c["title"] for c in data["columns"]]
