"""Spec loading: valid specs load; every mistake names the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.errors import SpecError
from pipelines.spec import ShareType, load_spec
from tests.unit.specfactory import DEPT_USCC, spec_dict


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(
        data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return path


def test_valid_spec_loads(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, spec_dict()))
    assert spec.id == "sample_enterprises"
    assert spec.primary_key == ["uscc"]
    assert spec.department.uscc == DEPT_USCC
    assert spec.path == (tmp_path / "spec.yaml").resolve()
    assert spec.columns[2].type_code == "D"


def test_unknown_key_names_file_line_and_nearest_key(tmp_path: Path) -> None:
    text = yaml.safe_dump(spec_dict(), allow_unicode=True, sort_keys=False).replace(
        "primary_key: true", "primray_key: true"
    )
    path = write(tmp_path, text)
    line = next(i for i, ln in enumerate(text.splitlines(), start=1) if "primray_key" in ln)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert f"{path}:{line}" in message
    assert "columns.0.primray_key" in message
    assert "did you mean 'primary_key'" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"unknown key 'sorce' \(did you mean 'source'\?\)"):
        load_spec(write(tmp_path, spec_dict(sorce={"connector": "csv"})))


def test_bad_department_uscc_is_refused_with_the_reason(tmp_path: Path) -> None:
    bad = DEPT_USCC[:-1] + ("0" if DEPT_USCC[-1] != "0" else "1")
    data = spec_dict()
    data["department"]["uscc"] = bad
    with pytest.raises(SpecError, match="check character"):
        load_spec(write(tmp_path, data))


def test_letter_prefixed_department_uscc_is_accepted(tmp_path: Path) -> None:
    from pipelines.identifiers import uscc_check_char

    body = "Y1310000MA1K3X7Q0"
    data = spec_dict()
    data["department"]["uscc"] = body + uscc_check_char(body)
    assert load_spec(write(tmp_path, data)).department.uscc.startswith("Y1")


def test_conditional_share_needs_a_condition(tmp_path: Path) -> None:
    data = spec_dict()
    data["catalog"]["sharing"] = {"type": "有条件共享"}
    with pytest.raises(SpecError, match="共享条件"):
        load_spec(write(tmp_path, data))


def test_shanghai_share_type_aliases(tmp_path: Path) -> None:
    data = spec_dict()
    data["catalog"]["sharing"] = {"type": "授权共享", "condition": "仅用于行政审批"}
    assert load_spec(write(tmp_path, data)).catalog.sharing.type is ShareType.CONDITIONAL


def test_resource_code_format(tmp_path: Path) -> None:
    data = spec_dict()
    data["catalog"]["resource_code"] = "ABC/12"
    with pytest.raises(SpecError, match="resource code"):
        load_spec(write(tmp_path, data))


def test_resource_code_digit_must_match_the_axis(tmp_path: Path) -> None:
    data = spec_dict()
    data["catalog"]["classification"] = {"axis": "主题", "path": ["交通出行"]}
    data["catalog"]["resource_code"] = "101510001/000001"
    with pytest.raises(SpecError, match=r"类 digit must be 2 for the 主题 axis"):
        load_spec(write(tmp_path, data))


@pytest.mark.parametrize(("region", "ok"), [("310000", True), ("310115", True), ("310199", False), ("31011", False)])
def test_department_region_is_a_current_division_code(tmp_path: Path, region: str, ok: bool) -> None:
    data = spec_dict()
    data["department"] = {**data["department"], "region": region, "level": "区"}
    if ok:
        spec = load_spec(write(tmp_path, data))
        assert (spec.department.region, spec.department.level) == (region, "区")
    else:
        with pytest.raises(SpecError, match=r"department.region"):
            load_spec(write(tmp_path, data))


def test_cleanse_rule_naming_an_undeclared_column(tmp_path: Path) -> None:
    data = spec_dict(cleanse={"upper": ["usc"]})
    with pytest.raises(SpecError, match=r"cleanse.upper names column 'usc'.*did you mean 'uscc'"):
        load_spec(write(tmp_path, data))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "id: x\nname: [unclosed\n")
    with pytest.raises(SpecError, match=r"spec.yaml:\d+: invalid YAML"):
        load_spec(path)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_spec_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(write(tmp_path, "- just\n- a list\n"))


def test_missing_required_keys_are_all_listed(tmp_path: Path) -> None:
    data = spec_dict()
    del data["catalog"]
    del data["source"]
    with pytest.raises(SpecError) as err:
        load_spec(write(tmp_path, data))
    assert "required key 'catalog' is missing" in str(err.value)
    assert "required key 'source' is missing" in str(err.value)


def test_latest_dedupe_needs_order_by(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="order_by"):
        load_spec(write(tmp_path, spec_dict(cleanse={"dedupe": {"keep": "latest"}})))
