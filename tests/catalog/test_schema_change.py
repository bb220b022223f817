"""Schema changes between versions: classified, a breaking one held until approved, both recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from catalog import lifecycle
from catalog import schema as schema_changes
from catalog.models import SchemaChange, Version
from catalog.store import CatalogStore
from exchange import audit
from pipelines import runner
from pipelines.cli import app
from pipelines.workspace import Workspace
from tests.catalog.conftest_lifecycle import COLUMNS, dataset_maker
from tests.unit.specfactory import DEPT_USCC

DATASET = "sample_enterprises"


def col(name: str, title: str, type_: str = "string", **more: Any) -> dict[str, Any]:
    return {"name": name, "title": title, "type": type_, "primary_key": False, "nullable": True} | more


BASE = [
    col("uscc", "统一社会信用代码", primary_key=True, nullable=False, length=18),
    col("name", "企业名称", length=100),
    col("founded", "成立日期", "date"),
    col("capital", "注册资本", "decimal"),
]


def changed(**columns: dict[str, Any] | None) -> list[dict[str, Any]]:
    """BASE with some columns replaced (a dict) or removed (None)."""
    out = []
    for c in BASE:
        if c["name"] in columns:
            if columns[c["name"]] is not None:
                out.append(columns[c["name"]])
        else:
            out.append(c)
    return out


def kinds(diff: schema_changes.SchemaDiff) -> list[tuple[str, str | None, bool]]:
    return [(c["change"], c["column"], c["breaking"]) for c in diff.changes]


# --- classification --------------------------------------------------------------------------------


CASES: list[tuple[str, list[dict[str, Any]], str, list[tuple[str, str | None, bool]]]] = [
    ("unchanged", BASE, "none", []),
    ("added", [*BASE, col("phone", "联系电话")], "compatible", [("added", "phone", False)]),
    ("removed", changed(capital=None), "breaking", [("removed", "capital", True)]),
    (
        "renamed, same title",
        changed(name=col("company", "企业名称", length=100)),
        "breaking",
        [("renamed", "company", True)],
    ),
    (
        "renamed, same position and type",
        changed(founded=col("established", "设立日期", "date")),
        "breaking",
        [("renamed", "established", True)],
    ),
    (
        "removed and added elsewhere",
        [*changed(founded=None), col("phone", "联系电话", "date")],
        "breaking",
        [("removed", "founded", True), ("added", "phone", False)],
    ),
    (
        "renamed and retyped",
        changed(capital=col("reg_capital", "注册资本", "money")),
        "breaking",
        [("renamed", "reg_capital", True), ("retyped", "reg_capital", True)],
    ),
    (
        "narrowed type",
        changed(capital=col("capital", "注册资本", "integer")),
        "breaking",
        [("retyped", "capital", True)],
    ),
    (
        "incompatible type",
        changed(name=col("name", "企业名称", "date", length=100)),
        "breaking",
        [("retyped", "name", True)],
    ),
    (
        "decimal to float",
        changed(capital=col("capital", "注册资本", "float")),
        "breaking",
        [("retyped", "capital", True)],
    ),
    (
        "date to timestamp",
        changed(founded=col("founded", "成立日期", "timestamp")),
        "compatible",
        [("widened", "founded", False)],
    ),
    (
        "text to string",
        changed(name=col("name", "企业名称", "text", length=100)),
        "compatible",
        [("widened", "name", False)],
    ),
    (
        "shorter",
        changed(uscc=col("uscc", "统一社会信用代码", primary_key=True, nullable=False, length=15)),
        "breaking",
        [("length_shortened", "uscc", True)],
    ),
    ("longer", changed(name=col("name", "企业名称", length=200)), "compatible", [("length_extended", "name", False)]),
    ("length unknown before", changed(founded=col("founded", "成立日期", "date", length=10)), "none", []),
    (
        "no longer bounded",
        changed(name=col("name", "企业名称", length=None)),
        "compatible",
        [("length_extended", "name", False)],
    ),
    (
        "now not nullable",
        changed(name=col("name", "企业名称", length=100, nullable=False)),
        "compatible",
        [("now_not_nullable", "name", False)],
    ),
    (
        "now nullable",
        changed(uscc=col("uscc", "统一社会信用代码", primary_key=True, length=18)),
        "breaking",
        [("now_nullable", "uscc", True)],
    ),
    (
        "key",
        changed(name=col("name", "企业名称", length=100, primary_key=True)),
        "breaking",
        [("key_changed", "name", True)],
    ),
    ("retitled", changed(name=col("name", "企业全称", length=100)), "compatible", [("retitled", "name", False)]),
    (
        "sensitive",
        changed(name=col("name", "企业名称", length=100, sensitive=True)),
        "compatible",
        [("sensitivity", "name", False)],
    ),
    ("reordered", [BASE[1], BASE[0], BASE[2], BASE[3]], "compatible", [("reordered", None, False)]),
]


@pytest.mark.parametrize(("candidate", "kind", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_changes_are_classified(
    candidate: list[dict[str, Any]], kind: str, expected: list[tuple[str, str | None, bool]]
) -> None:
    diff = schema_changes.compare(BASE, candidate)
    assert diff.kind == kind
    assert kinds(diff) == expected


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        ("timestamp", "date", "breaking"),
        ("float", "integer", "breaking"),
        ("integer", "float", "compatible"),
        ("integer", "decimal", "compatible"),
        ("money", "decimal", "compatible"),
        ("decimal", "money", "breaking"),
        ("string", "integer", "breaking"),
        ("boolean", "string", "breaking"),
    ],
)
def test_type_changes(before: str, after: str, kind: str) -> None:
    diff = schema_changes.compare([col("x", "某项", before)], [col("x", "某项", after)])
    assert diff.kind == kind
    assert diff.changes[0]["message"] == f"column x (某项): type {before} → {after}"


def test_a_length_unknown_on_one_side_is_not_compared() -> None:
    old = [{k: v for k, v in c.items() if k != "length"} for c in BASE]
    assert schema_changes.compare(old, changed(name=col("name", "企业名称", length=5))).kind == "none"


def test_a_shorter_length_where_there_was_none_is_breaking() -> None:
    old = changed(name=col("name", "企业名称", length=None))
    diff = schema_changes.compare(old, BASE)
    assert kinds(diff) == [("length_shortened", "name", True)]
    assert "length none → 100" in diff.changes[0]["message"]


def test_the_changes_name_the_column_and_its_title() -> None:
    diff = schema_changes.compare(BASE, changed(capital=None, name=col("company", "企业名称", length=100)))
    assert (
        diff.summary(only_breaking=True)
        == "column name (企业名称) renamed to company; column capital (注册资本) removed"
    )


def test_a_schema_has_one_identity() -> None:
    assert schema_changes.schema_sha256(BASE) == schema_changes.schema_sha256([dict(c) for c in BASE])
    assert schema_changes.schema_sha256(BASE) != schema_changes.schema_sha256(changed(capital=None))
    with_derived = [c | {"duckdb_type": "VARCHAR", "type_code": "C"} for c in BASE]
    assert schema_changes.schema_sha256(with_derived) == schema_changes.schema_sha256(BASE)


# --- in the pipeline -------------------------------------------------------------------------------

THREE = COLUMNS[:3]
CAPITAL = COLUMNS[3]


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    return dataset_maker(tmp_path / "ds")


cli = CliRunner()


def store() -> CatalogStore:
    return CatalogStore(Workspace.from_env().catalog_url)


def versions() -> list[Version]:
    with store().session() as s:
        return list(s.scalars(sa.select(Version).where(Version.entry_id == DATASET).order_by(Version.number)))


def change_rows() -> list[SchemaChange]:
    with store().session() as s:
        return list(s.scalars(sa.select(SchemaChange).where(SchemaChange.entry_id == DATASET)))


def run_cli(*args: str) -> tuple[int, str]:
    result = cli.invoke(app, list(args), env={"COLUMNS": "250", "GOVDATA_USER": None})
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def reviewers(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOVDATA_CATALOG_REVIEW", raising=False)
    monkeypatch.delenv("GOVDATA_USER", raising=False)


def add_people() -> None:
    with store().session() as s:
        lifecycle.add_user(s, "city", name="王五", role="city_admin")
        lifecycle.add_user(s, "admin_a", name="李四", role="dept_admin", department=DEPT_USCC)


def test_a_compatible_change_publishes_at_once_and_is_recorded(
    make_dataset: Callable[..., Path], reviewers: None
) -> None:
    spec = make_dataset(10, columns=THREE)
    assert runner.run(spec, "2026-11-24")["version"] == 1
    make_dataset(10, columns=[*THREE, CAPITAL])
    report = runner.run(spec, "2026-11-25")
    assert report["status"] == "published" and report["version"] == 2
    assert report["schema_change"]["kind"] == "compatible"
    v1, v2 = versions()
    assert v1.schema_change is None
    assert v2.schema_change is not None
    assert v2.schema_change["kind"] == "compatible" and v2.schema_change["from_version"] == 1
    assert [(c["change"], c["column"]) for c in v2.schema_change["changes"]] == [("added", "capital")]
    assert v2.schema_change["approval"] is None
    assert change_rows() == []  # nothing to approve
    assert [c.get("length", "missing") for c in v2.schema] == [None, None, None, None]
    with store().session() as s:
        (published,) = audit.events(s, action="catalog.schema_change_publish")
        assert published.detail["version"] == 2 and published.detail["kind"] == "compatible"


def test_a_breaking_change_is_held_until_the_city_admin_approves_it(
    make_dataset: Callable[..., Path], reviewers: None
) -> None:
    spec = make_dataset(10)
    assert runner.run(spec, "2026-11-24")["version"] == 1
    add_people()
    make_dataset(12, columns=THREE)  # 注册资本 is no longer published

    # held: exit 2, the reason names the change and the command that approves it
    result = cli.invoke(app, ["run", str(spec), "--date", "2026-11-25", "--json"], env={"COLUMNS": "250"})
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "held" and report["version"] is None
    reason = report["quality"]["held_because"][-1]
    assert "column capital (注册资本) removed" in reason
    assert f"govdata catalog review {DATASET} --schema-change --approve" in reason
    assert report["schema_change"]["kind"] == "breaking"
    assert [v.number for v in versions()] == [1]
    assert not (Workspace.from_env().exchange / DATASET / "v000002").exists()
    (pending,) = change_rows()
    assert (pending.status, pending.from_version, pending.version) == ("pending", 1, None)
    assert next(r.status for r in store().runs(DATASET)) == "held"
    shown = cli.invoke(app, ["run", str(spec), "--date", "2026-11-25"], env={"COLUMNS": "250"})
    assert shown.exit_code == 2 and "publish: a breaking schema change awaits approval" in shown.output

    # the department may not approve its own breaking change; nobody decides without an opinion
    code, output = run_cli(
        "catalog", "review", DATASET, "--schema-change", "--approve", "--opinion", "好", "--as", "admin_a"
    )
    assert code == 1 and "city admin" in output and "dept_admin" in output
    code, output = run_cli("catalog", "review", DATASET, "--schema-change", "--approve", "--as", "city")
    assert code == 1 and "needs an opinion" in output
    code, output = run_cli(
        "catalog", "review", DATASET, "--schema-change", "--return", "--opinion", "x", "--as", "city"
    )
    assert code == 1 and "approved or rejected, not returned" in output

    # rejected: the run stays held and says so
    code, output = run_cli(
        "catalog", "review", DATASET, "--schema-change", "--reject", "--opinion", "订阅方仍需注册资本", "--as", "city"
    )
    assert code == 0, output
    again = runner.run(spec, "2026-11-25")
    assert again["status"] == "held"
    assert "rejected by city (订阅方仍需注册资本)" in again["quality"]["held_because"][-1]
    code, output = run_cli(
        "catalog", "review", DATASET, "--schema-change", "--reject", "--opinion", "x", "--as", "city"
    )
    assert code == 1 and "rejected already" in output

    # reconsidered and approved: the same run key now publishes, with the change and its approval
    code, output = run_cli(
        "catalog", "review", DATASET, "--schema-change", "--approve", "--opinion", "已通知订阅方", "--as", "city"
    )
    assert code == 0 and "approved by city" in output
    published = runner.run(spec, "2026-11-25")
    assert published["status"] == "published" and published["version"] == 2
    v2 = versions()[-1]
    assert v2.schema_change is not None
    assert v2.schema_change["kind"] == "breaking" and v2.schema_change["from_version"] == 1
    assert [(c["change"], c["column"]) for c in v2.schema_change["changes"]] == [("removed", "capital")]
    approval = v2.schema_change["approval"]
    assert (approval["status"], approval["by"], approval["opinion"]) == ("approved", "city", "已通知订阅方")
    (decided,) = change_rows()
    assert (decided.status, decided.version) == ("approved", 2)

    # subscribers see it in `catalog show`; nothing is left to decide
    code, output = run_cli("catalog", "show", DATASET, "--json")
    shown = json.loads(output)
    assert shown["versions"][-1]["schema_change"]["approval"]["opinion"] == "已通知订阅方"
    assert shown["schema_change_pending"] is None
    code, output = run_cli("catalog", "show", DATASET)
    assert "breaking vs v1: column capital (注册资本) removed (approved by city: 已通知订阅方)" in output
    code, output = run_cli(
        "catalog", "review", DATASET, "--schema-change", "--approve", "--opinion", "x", "--as", "city"
    )
    assert code == 1 and "no schema change" in output

    with store().session() as s:
        assert [e.action for e in audit.events(s, subject=f"catalog_entry:{DATASET}") if "schema" in e.action] == [
            "catalog.schema_change_request",
            "catalog.schema_change_reject",
            "catalog.schema_change_approve",
            "catalog.schema_change_publish",
        ]
        assert audit.verify(s) is None
    assert runner.run(spec, "2026-11-26")["status"] == "unchanged"


def test_a_schema_that_comes_back_after_publication_is_decided_anew(
    make_dataset: Callable[..., Path], reviewers: None
) -> None:
    spec = make_dataset(10, columns=[*THREE, CAPITAL])
    runner.run(spec, "2026-11-24")
    add_people()
    make_dataset(10, columns=THREE)
    assert runner.run(spec, "2026-11-25")["status"] == "held"
    with store().session() as s:
        schema_changes.decide(s, DATASET, approve=True, actor="city", opinion="同意")
    assert runner.run(spec, "2026-11-25")["version"] == 2
    make_dataset(11, columns=[*THREE, CAPITAL])  # capital back: compatible
    assert runner.run(spec, "2026-11-26")["version"] == 3
    make_dataset(12, columns=THREE)  # the schema of v2 again: a new request, not the old approval
    held = runner.run(spec, "2026-11-27")
    assert held["status"] == "held"
    (row,) = change_rows()
    assert (row.status, row.from_version, row.version) == ("pending", 3, None)
