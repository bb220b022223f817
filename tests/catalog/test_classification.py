"""Resource codes (classification code + "/" + sequence) and the classification tree nodes of an entry."""

from __future__ import annotations

import pytest

from catalog.classification import (
    ResourceCodeError,
    build_resource_code,
    parse_resource_code,
    tree_nodes,
)
from pipelines.spec import ClassificationAxis


def test_a_code_is_built_from_classification_and_sequence() -> None:
    assert build_resource_code("101030002", 112) == "101030002/000112"
    assert build_resource_code("215020", "45", width=3) == "215020/045"
    assert build_resource_code("3010010009", 1234567) == "3010010009/1234567"  # longer than the width: kept


@pytest.mark.parametrize(
    ("classification", "sequence", "message"),
    [
        ("10103", 1, "not a classification code"),  # 目 needs 3 digits
        ("1O1030", 1, "not a classification code"),  # a letter O
        ("401030", 1, "类 digit must be 1"),  # no fourth axis
        ("101030", "-1", "must be digits"),
        ("101030", "１２", "must be digits"),  # full-width digits
        ("101030", "", "must be digits"),
    ],
)
def test_building_refuses_bad_parts(classification: str, sequence: str | int, message: str) -> None:
    with pytest.raises(ResourceCodeError, match=message):
        build_resource_code(classification, sequence)


def test_parsing_splits_the_levels() -> None:
    code = parse_resource_code(" 101030002/000112 ")
    assert (code.classification, code.sequence, code.axis) == ("101030002", "000112", ClassificationAxis.BASE)
    assert code.prefixes() == ["1", "101", "101030", "101030002"]
    assert parse_resource_code("215020/45").prefixes() == ["2", "215", "215020"]  # no 细目
    assert str(code) == "101030002/000112"


@pytest.mark.parametrize("bad", ["", "101030002", "101030002/", "/000112", "10103/1", "101030002/00a1", "901030/1"])
def test_parsing_refuses_what_is_not_a_code(bad: str) -> None:
    with pytest.raises(ResourceCodeError):
        parse_resource_code(bad)


def test_tree_nodes_name_the_levels_below_the_axis() -> None:
    nodes = tree_nodes("基础", "101030002/000112", ["人口", "社会保障", "养老保险参保"])
    assert [(n.code, n.level, n.name, n.parent) for n in nodes] == [
        ("1", 1, "基础信息资源", None),
        ("101", 2, "人口", "1"),
        ("101030", 3, "社会保障", "101"),
        ("101030002", 4, "养老保险参保", "101030"),
    ]
    assert [n.code for n in tree_nodes("基础", "101030002/000112", ["人口"])] == ["1", "101"]


def test_tree_nodes_refuse_a_wrong_axis_or_too_many_labels() -> None:
    with pytest.raises(ResourceCodeError, match="on the 基础 axis"):
        tree_nodes("主题", "101030002/000112", ["人口"])
    with pytest.raises(ResourceCodeError, match="has codes for 2 below the 类"):
        tree_nodes("主题", "215020/000045", ["交通出行", "公共交通", "公交站点"])
