"""``govdata catalog submit|review|withdraw|revise|users`` end to end, including hostile input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from catalog.models import Department, Entry, Transition, User
from catalog.store import CatalogStore
from exchange import audit
from pipelines.cli import app
from pipelines.cli_catalog_review import seed_demo_users
from pipelines.spec import DatasetSpec, find_specs, load_spec
from pipelines.workspace import Workspace
from tests.catalog.conftest_spreadsheet import gov_uscc
from tests.unit.specfactory import DEPT_USCC, spec_dict

REPO = Path(__file__).resolve().parents[2]
DATASET = "sample_enterprises"
cli = CliRunner()


def govdata(*args: str, user: str | None = None) -> tuple[int, str]:
    """Run the CLI in-process: exit code and everything printed. Never a traceback."""
    result = cli.invoke(app, list(args), env={"COLUMNS": "250", "GOVDATA_USER": user})
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def ok(*args: str, user: str | None = None) -> str:
    code, output = govdata(*args, user=user)
    assert code == 0, output
    return output


def store() -> CatalogStore:
    return CatalogStore(Workspace.from_env().catalog_url)


def status() -> str:
    with store().session() as s:
        entry = s.get(Entry, DATASET)
        assert entry is not None
        return entry.status


def transitions() -> int:
    with store().session() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(Transition)) or 0)


@pytest.fixture
def catalog(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered draft entry of department A and its people, added through the CLI."""
    monkeypatch.delenv("GOVDATA_USER", raising=False)
    store().register(DatasetSpec.model_validate(spec_dict()), source="test")
    ok("catalog", "users", "add", "zhang", "--name", "张三", "--role", "staff", "--department", DEPT_USCC)
    ok("catalog", "users", "add", "li", "--name", "李四", "--role", "dept_admin", "--department", DEPT_USCC)
    ok("catalog", "users", "add", "wang", "--name", "王五", "--role", "city_admin")
    ok("catalog", "users", "add", "zhao", "--name", "赵六", "--role", "审计人员")


def test_users_are_added_and_listed(catalog: None) -> None:
    output = ok("catalog", "users", "list")
    for text in (
        "zhang",
        "张三",
        "部门工作人员 staff",
        "上海市样例管理局",
        "王五",
        "市级管理员 city_admin",
        "审计人员",
    ):
        assert text in output
    listed = json.loads(ok("catalog", "users", "list", "--json"))
    assert [(u["id"], u["role"], u["department"]) for u in listed] == [
        ("wang", "city_admin", None),
        ("zhao", "auditor", None),
        ("zhang", "staff", DEPT_USCC),
        ("li", "dept_admin", DEPT_USCC),
    ]


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["x1", "--name", "某", "--role", "boss"], "unknown role 'boss'", "staff (部门工作人员)"),
        (["x1", "--name", "某", "--role", "staff"], "needs a department", "--department USCC"),
        (
            ["x1", "--name", "某", "--role", "staff", "--department", "91310000MA1FL0000X"],
            "no department '91310000MA1FL0000X'",
            DEPT_USCC,
        ),
        (["zhang", "--name", "某", "--role", "staff", "--department", DEPT_USCC], "exists already", "users list"),
        (["govdata", "--name", "某", "--role", "city_admin"], "not allowed", "reserved"),
        (["'; DROP TABLE users; --", "--name", "某", "--role", "auditor"], "not allowed", "letters, digits"),
        (["x1", "--name", "   ", "--role", "auditor"], "needs a name", "--name"),
    ],
)
def test_bad_users_are_refused_with_the_fix(catalog: None, args: list[str], message: str, hint: str) -> None:
    code, output = govdata("catalog", "users", "add", *args)
    assert code == 1
    assert message in output and hint in output
    with store().session() as s:
        assert sorted(s.scalars(sa.select(User.id))) == ["li", "wang", "zhang", "zhao"]


def test_a_whole_life_from_the_command_line(catalog: None) -> None:
    out = ok("catalog", "submit", DATASET, "--as", "zhang")
    assert f"{DATASET}: 草稿 draft → 待注册审核 registration_pending" in out and "zhang" in out
    out = ok("catalog", "review", DATASET, "--return", "--opinion", "摘要不完整", "--as", "wang")
    assert "退回修改 returned" in out
    ok("catalog", "submit", DATASET, "--opinion", "已补充", user="zhang")  # GOVDATA_USER
    out = ok("catalog", "review", DATASET, "--approve", "--as", "wang")
    assert "已注册 registered" in out
    out = ok("catalog", "submit", DATASET, "--publication", "--as", "li")
    assert "待发布审核 publication_pending" in out
    out = ok("catalog", "review", DATASET, "--approve", "--opinion", "同意发布", "--as", "wang")
    assert "已发布 published" in out
    out = ok("catalog", "withdraw", DATASET, "--opinion", "口径调整", "--as", "li")
    assert "已下架 withdrawn" in out
    ok("catalog", "submit", DATASET, "--publication", "--as", "li")
    out = ok("catalog", "review", DATASET, "--reject", "--opinion", "共享条件不明", "--as", "wang")
    assert "审核拒绝 rejected" in out
    out = ok("catalog", "revise", DATASET, "--as", "zhang")
    assert "草稿 draft" in out
    assert status() == "draft"

    shown = json.loads(ok("catalog", "show", DATASET, "--json"))
    assert shown["status_label"] == "草稿"
    assert [(t["action"], t["actor"], t["opinion"]) for t in shown["transitions"]] == [
        ("submit_registration", "zhang", None),
        ("return_registration", "wang", "摘要不完整"),
        ("submit_registration", "zhang", "已补充"),
        ("approve_registration", "wang", None),
        ("submit_publication", "li", None),
        ("approve_publication", "wang", "同意发布"),
        ("withdraw", "li", "口径调整"),
        ("resubmit_publication", "li", None),
        ("reject_publication", "wang", "共享条件不明"),
        ("revise", "zhang", None),
    ]
    text = ok("catalog", "show", DATASET)
    assert "lifecycle" in text and "共享条件不明" in text and "wang (市级管理员)" in text
    with store().session() as s:
        assert len([e for e in audit.events(s) if e.subject == f"catalog_entry:{DATASET}"]) == 10
        assert audit.verify(s) is None


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["submit", DATASET, "--as", "nobody"], "no active user 'nobody'", "users list"),
        (["submit", DATASET, "--as", "zhangg"], "no active user 'zhangg'", "did you mean 'zhang'"),
        (["submit", DATASET], "who is acting", "--as USER"),
        (["submit", DATASET, "--as", "  "], "who is acting", "--as USER"),
        (["submit", "sample_enterprise", "--as", "zhang"], "no catalog entry 'sample_enterprise'", DATASET),
        (["submit", "x'; DROP TABLE catalog_entries; --", "--as", "zhang"], "no catalog entry", "catalog list"),
        (["submit", DATASET, "--as", "wang"], "市级管理员 city_admin", "wang can do nothing"),
        (["submit", DATASET, "--as", "zhao"], "auditors read the catalog and change nothing", "can do nothing"),
        (
            ["review", DATASET, "--approve", "--as", "wang"],
            "approve applies to entries that are 待注册审核",
            "wang can do nothing",
        ),
        (["submit", DATASET, "--publication", "--as", "li"], "submit_publication applies to", "li may now: submit"),
        (["withdraw", DATASET, "--opinion", "x", "--as", "li"], "withdraw applies to", "submit"),
        (["review", DATASET, "--as", "wang"], "exactly one decision", "--approve, --return or --reject"),
        (["review", DATASET, "--approve", "--reject", "--as", "wang"], "not --approve and --reject", "one of"),
        (["revise", DATASET, "--as", "zhang"], "revise applies to", "zhang may now: submit"),
    ],
)
def test_hostile_input_on_a_draft(catalog: None, args: list[str], message: str, hint: str) -> None:
    code, output = govdata("catalog", *args)
    assert code == 1, output
    assert message in output and hint in output
    assert status() == "draft" and transitions() == 0


def test_missing_opinions_and_wrong_roles_under_review(catalog: None) -> None:
    ok("catalog", "submit", DATASET, "--as", "zhang")
    code, output = govdata("catalog", "review", DATASET, "--return", "--as", "wang")
    assert code == 1 and "needs an opinion" in output and "--opinion TEXT" in output
    code, output = govdata("catalog", "review", DATASET, "--reject", "--opinion", "   ", "--as", "wang")
    assert code == 1 and "needs an opinion" in output
    code, output = govdata("catalog", "review", DATASET, "--approve", "--as", "li")
    assert code == 1
    assert "部门管理员 dept_admin" in output and "待注册审核 registration_pending" in output
    assert "that is for 市级管理员 city_admin" in output
    code, output = govdata("catalog", "review", DATASET, "--approve", "--opinion", "长" * 2001, "--as", "wang")
    assert code == 1 and "more than 2000" in output
    assert status() == "registration_pending" and transitions() == 1
    ok("catalog", "review", DATASET, "--approve", "--as", "wang")
    ok("catalog", "submit", DATASET, "--publication", "--as", "li")
    ok("catalog", "review", DATASET, "--approve", "--as", "wang")
    code, output = govdata("catalog", "withdraw", DATASET, "--as", "li")
    assert code == 1 and "needs an opinion" in output
    code, output = govdata("catalog", "withdraw", DATASET, "--opinion", "x", "--as", "zhang")
    assert code == 1 and "that is for" in output and "部门工作人员 staff" in output
    assert status() == "published"


def test_demo_users_per_department_plus_city_admin_and_auditor(workspace: Path) -> None:
    folder = REPO / "datasets"
    specs = [load_spec(p) for p in find_specs(folder)]
    first = seed_demo_users(Workspace.from_env(), specs, folder)
    by_id = {u["id"]: u for u in first}
    departments = {s.department.uscc: s.path.parent.name for s in specs if s.path}
    expected = {f"{key}_{kind}" for key in departments.values() for kind in ("staff", "admin")}
    assert {"hrss_staff", "hrss_admin"} <= expected
    assert set(by_id) == expected | {"city_admin", "auditor"}
    for uscc, key in departments.items():
        assert (by_id[f"{key}_staff"]["role"], by_id[f"{key}_staff"]["department"]) == ("staff", uscc)
        assert (by_id[f"{key}_admin"]["role"], by_id[f"{key}_admin"]["department"]) == ("dept_admin", uscc)
    assert (by_id["city_admin"]["role"], by_id["auditor"]["role"]) == ("city_admin", "auditor")
    again = seed_demo_users(Workspace.from_env(), specs, folder)
    assert again == first  # a second demo keeps them
    listed = json.loads(ok("catalog", "users", "list", "--json"))
    assert {u["id"] for u in listed} == set(by_id)


def test_catalog_list_shows_each_user_what_they_may_see(catalog: None) -> None:
    """A draft is listed for its department, the city and the local operator, not for another department."""
    other = gov_uscc(1002)
    with store().session() as s:
        s.add(Department(uscc=other, name="上海市另一个局"))
    ok("catalog", "users", "add", "qian", "--name", "钱七", "--role", "staff", "--department", other)

    def listed(*args: str, user: str | None = None) -> list[str]:
        return [e["id"] for e in json.loads(ok("catalog", "list", "--json", *args, user=user))]

    assert listed() == [DATASET]  # the local operator
    assert listed(user="zhang") == [DATASET] and listed(user="wang") == [DATASET] and listed(user="zhao") == [DATASET]
    assert listed(user="qian") == []
    assert listed("--status", "draft") == [DATASET] and listed("--status", "published") == []
    assert listed("--department", DEPT_USCC.lower()) == [DATASET] and listed("--department", "不存在的局") == []
    assert "草稿" in ok("catalog", "list")
    code, output = govdata("catalog", "list", "--status", "publish")
    assert code == 1 and "unknown status 'publish'" in output and "published (已发布)" in output
    code, output = govdata("catalog", "list", "--as", "nobody")
    assert code == 1 and "no active user 'nobody'" in output


def test_catalog_show_hides_an_unpublished_entry_from_other_departments(catalog: None) -> None:
    other = gov_uscc(1003)
    with store().session() as s:
        s.add(Department(uscc=other, name="上海市第三个局"))
    ok("catalog", "users", "add", "sun", "--name", "孙八", "--role", "staff", "--department", other)
    assert json.loads(ok("catalog", "show", DATASET, "--json", user="zhang"))["status"] == "draft"
    assert json.loads(ok("catalog", "show", DATASET, "--json", user="zhao"))["id"] == DATASET
    code, output = govdata("catalog", "show", DATASET, user="sun")
    assert code == 1 and f"no catalog entry {DATASET!r}" in output
    assert "did you mean" not in output  # nothing about an entry the user may not see
