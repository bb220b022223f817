"""Classification trees and resource codes (信息资源分类, 信息资源代码).

The 2017 national cataloguing guide builds a resource code from the classification code — 类
(1 digit: 1 基础, 2 主题, 3 部门, the three axes), 项 (2 digits), 目 (3 digits), 细目 (any
number of digits) — then ``/`` and a sequence number, e.g. ``101030002/000112``. Only the fixed
1 + 2 + 3 prefix has a fixed shape; the 细目 and the sequence are free-length digits.

A dataset spec names its classification by axis and the labels below it (``path``: 项, 目,
细目); the codes come from the resource code. Registered entries build one city-wide tree per
axis (:class:`catalog.models.ClassificationNode`), in which a code means one thing: a second
entry naming the same code differently is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.spec import AXIS_DIGITS, ClassificationAxis

__all__ = [
    "AXIS_BY_DIGIT",
    "LEVEL_NAMES",
    "NodeSpec",
    "ResourceCode",
    "build_resource_code",
    "parse_resource_code",
    "tree_nodes",
]

#: The axis of each 类 digit.
AXIS_BY_DIGIT: dict[str, ClassificationAxis] = {digit: axis for axis, digit in AXIS_DIGITS.items()}
#: Level number → its name in the guide.
LEVEL_NAMES = {1: "类", 2: "项", 3: "目", 4: "细目"}
#: Prefix length of each level's code (细目 takes the rest).
_PREFIX = {1: 1, 2: 3, 3: 6}
_CODE = re.compile(r"^(\d)(\d{2})(\d{3})(\d*)/(\d+)$")
_CLASSIFICATION = re.compile(r"^(\d)(\d{2})(\d{3})(\d*)$")


class ResourceCodeError(ValueError):
    """A resource or classification code that does not have the guide's shape."""


@dataclass(frozen=True)
class ResourceCode:
    """A parsed resource code."""

    classification: str  # the part before "/"
    sequence: str  # the part after "/"

    @property
    def axis(self) -> ClassificationAxis:
        return AXIS_BY_DIGIT[self.classification[0]]

    def prefixes(self) -> list[str]:
        """The code of each level present: 类, 项, 目 and (when given) 细目."""
        found = [self.classification[: _PREFIX[level]] for level in (1, 2, 3)]
        if len(self.classification) > _PREFIX[3]:
            found.append(self.classification)
        return found

    def __str__(self) -> str:
        return f"{self.classification}/{self.sequence}"


def parse_resource_code(value: str) -> ResourceCode:
    """Parse and check ``value``; :class:`ResourceCodeError` says what is wrong."""
    text = str(value).strip()
    match = _CODE.match(text)
    if match is None:
        raise ResourceCodeError(
            f"{value!r} is not a resource code: expected classification digits (类 1 + 项 2 + 目 3 + 细目), "
            "'/', a sequence number, e.g. 101030002/000112"
        )
    if match.group(1) not in AXIS_BY_DIGIT:
        raise ResourceCodeError(f"{value!r}: the 类 digit must be 1 (基础), 2 (主题) or 3 (部门), not {match.group(1)}")
    return ResourceCode(text.split("/", 1)[0], match.group(5))


def build_resource_code(classification: str, sequence: int | str, *, width: int = 6) -> str:
    """The resource code of ``classification`` + ``/`` + the sequence number (zero-padded to ``width``)."""
    code = str(classification).strip()
    if not _CLASSIFICATION.match(code):
        raise ResourceCodeError(
            f"{classification!r} is not a classification code: 类 1 digit + 项 2 + 目 3 (+ 细目 digits), e.g. 101030002"
        )
    seq = str(sequence).strip()
    if not seq.isdigit() or not seq.isascii():
        raise ResourceCodeError(f"sequence number {sequence!r} must be digits")
    return str(parse_resource_code(f"{code}/{seq.zfill(width)}"))


@dataclass(frozen=True)
class NodeSpec:
    """A node the tree must contain for an entry."""

    code: str
    axis: ClassificationAxis
    level: int
    name: str
    parent: str | None


def tree_nodes(axis: ClassificationAxis | str, resource_code: str, labels: list[str]) -> list[NodeSpec]:
    """The nodes from the axis root down to the entry's classification, named by ``labels`` (项, 目, 细目).

    Levels without a label are left out (their code is still part of the resource code). Raises
    :class:`ResourceCodeError` when the axis and the 类 digit disagree or there are more labels
    than levels in the code.
    """
    axis = ClassificationAxis(axis)
    code = parse_resource_code(resource_code)
    if code.axis is not axis:
        raise ResourceCodeError(
            f"resource code {resource_code} is on the {code.axis.value} axis (类 {code.classification[0]}), "
            f"but the classification says {axis.value}"
        )
    prefixes = code.prefixes()
    if len(labels) > len(prefixes) - 1:
        raise ResourceCodeError(
            f"classification {'/'.join(labels)} has {len(labels)} levels, but resource code {resource_code} "
            f"has codes for {len(prefixes) - 1} below the 类 ({', '.join(LEVEL_NAMES[i + 2] for i in range(len(prefixes) - 1))})"
        )
    nodes = [NodeSpec(prefixes[0], axis, 1, f"{axis.value}信息资源", None)]
    for i, label in enumerate(labels):
        nodes.append(NodeSpec(prefixes[i + 1], axis, i + 2, label.strip(), prefixes[i]))
    return nodes
