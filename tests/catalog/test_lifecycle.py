"""The catalog lifecycle: every action × status × role against an explicit table; users; the pipeline.

The table below is written out by hand from DOMAIN.md ("Catalog lifecycle") and the issue; it is
deliberately not computed from ``catalog.lifecycle.STEPS``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from catalog import lifecycle
from catalog.access import Viewer, visibility_filter
from catalog.models import AuditEvent, Department, Entry, Transition, User
from catalog.store import CatalogStore
from exchange import audit
from pipelines import runner
from pipelines.errors import SpecError
from pipelines.spec import DatasetSpec
from pipelines.workspace import Workspace
from tests.catalog.conftest_lifecycle import dataset_maker
from tests.e2e.conftest import uscc
from tests.unit.specfactory import DEPT_USCC, spec_dict

DATASET = "sample_enterprises"
OTHER_USCC = uscc(77, authority="11")

ACTIONS = ["submit", "approve", "return", "reject", "submit_publication", "withdraw", "revise"]
STATUSES = [
    "draft",
    "registration_pending",
    "registered",
    "returned",
    "rejected",
    "publication_pending",
    "published",
    "withdrawn",
]
#: id → (role, department): the entry belongs to department "A" (DEPT_USCC).
USERS = {
    "staff_a": ("staff", "A"),
    "admin_a": ("dept_admin", "A"),
    "staff_b": ("staff", "B"),
    "admin_b": ("dept_admin", "B"),
    "city": ("city_admin", None),
    "city_b": ("city_admin", "B"),
    "auditor": ("auditor", None),
    "auditor_a": ("auditor", "A"),
}
DEPARTMENT = {"staff_a", "admin_a"}
DEPT_ADMIN = {"admin_a"}
CITY = {"city", "city_b"}

#: (action, from) → (to, recorded action name, who may, opinion required)
ALLOWED: dict[tuple[str, str], tuple[str, str, set[str], bool]] = {
    ("submit", "draft"): ("registration_pending", "submit_registration", DEPARTMENT, False),
    ("submit", "returned"): ("registration_pending", "submit_registration", DEPARTMENT, False),
    ("approve", "registration_pending"): ("registered", "approve_registration", CITY, False),
    ("return", "registration_pending"): ("returned", "return_registration", CITY, True),
    ("reject", "registration_pending"): ("rejected", "reject_registration", CITY, True),
    ("submit_publication", "registered"): ("publication_pending", "submit_publication", DEPT_ADMIN, False),
    ("submit_publication", "withdrawn"): ("publication_pending", "resubmit_publication", DEPT_ADMIN, False),
    ("approve", "publication_pending"): ("published", "approve_publication", CITY, False),
    ("return", "publication_pending"): ("registered", "return_publication", CITY, True),
    ("reject", "publication_pending"): ("rejected", "reject_publication", CITY, True),
    ("withdraw", "published"): ("withdrawn", "withdraw", DEPT_ADMIN | CITY, True),
    ("revise", "rejected"): ("draft", "revise", DEPARTMENT, False),
}


def seed(store: CatalogStore) -> None:
    """The entry of department A (a draft), department B, and the users above."""
    store.register(DatasetSpec.model_validate(spec_dict()), source="test")
    with store.session() as s:
        s.add(Department(uscc=OTHER_USCC, name="上海市另一局"))
        s.flush()
        for user_id, (role, dept) in USERS.items():
            code = {"A": DEPT_USCC, "B": OTHER_USCC, None: None}[dept]
            lifecycle.add_user(s, user_id, name=f"{user_id} 姓名", role=role, department=code)


@pytest.fixture(scope="module")
def matrix_store(tmp_path_factory: pytest.TempPathFactory) -> CatalogStore:
    store = CatalogStore(f"sqlite:///{tmp_path_factory.mktemp('lifecycle') / 'catalog.db'}")
    seed(store)
    return store


@pytest.fixture
def store(tmp_path: Path) -> CatalogStore:
    store = CatalogStore(f"sqlite:///{tmp_path / 'catalog.db'}")
    seed(store)
    return store


def set_status(store: CatalogStore, status: str, dataset: str = DATASET) -> None:
    with store.session() as s:
        s.execute(sa.update(Entry).where(Entry.id == dataset).values(status=status))


def status_of(store: CatalogStore, dataset: str = DATASET) -> str:
    with store.session() as s:
        entry = s.get(Entry, dataset)
        assert entry is not None
        return entry.status


def counts(store: CatalogStore) -> tuple[int, int]:
    with store.session() as s:
        return (
            int(s.scalar(sa.select(sa.func.count()).select_from(Transition)) or 0),
            int(s.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) or 0),
        )


def act(store: CatalogStore, action: str, actor: str, opinion: str | None = None, dataset: str = DATASET) -> Any:
    with store.session() as s:
        return lifecycle.transition(s, dataset, action, actor=actor, opinion=opinion)


# --- the matrix --------------------------------------------------------------------------------------


def test_the_table_covers_every_status_and_action() -> None:
    assert {a for a, _ in ALLOWED} == set(ACTIONS)
    assert {s for _, s in ALLOWED} | {"published"} == set(STATUSES)
    assert {a.value for a in lifecycle.Action} == set(ACTIONS)


@pytest.mark.parametrize("user", list(USERS))
@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_in_every_status_for_every_role(
    matrix_store: CatalogStore, action: str, status: str, user: str
) -> None:
    store = matrix_store
    set_status(store, status)
    before = counts(store)
    expected = ALLOWED.get((action, status))
    role = USERS[user][0]
    if expected is not None and user in expected[2]:
        target, name, _, _ = expected
        row = act(store, action, user, opinion="审核意见：同意")
        assert (row.from_status, row.to_status, row.action) == (status, target, name)
        assert (row.actor, row.role, row.opinion) == (user, role, "审核意见：同意")
        assert row.at is not None
        assert status_of(store) == target
        assert counts(store) == (before[0] + 1, before[1] + 1)
        with store.session() as s:
            event = audit.events(s)[-1]
            assert (event.actor, event.action, event.subject) == (user, f"catalog.{name}", f"catalog_entry:{DATASET}")
            assert event.detail["transition"] == row.id
            assert (event.detail["from"], event.detail["to"], event.detail["role"]) == (status, target, role)
            assert event.detail["opinion"] == "审核意见：同意"
            assert audit.verify(s) is None
        return
    with pytest.raises(lifecycle.LifecycleError) as caught:
        act(store, action, user, opinion="审核意见")
    assert status_of(store) == status
    assert counts(store) == before
    message = str(caught.value)
    assert DATASET in message
    own_or_city = USERS[user][1] == "A" or role in ("city_admin", "auditor")
    if own_or_city or status == "published":
        assert status in message and role in message
        mine = sorted(a for (a, s), (_, _, who, _) in ALLOWED.items() if s == status and user in who)
        assert sorted(caught.value.allowed) == mine
        for a in mine:
            assert a in (caught.value.hint or "")
    else:  # another department's unpublished entry is not even visible
        assert "no catalog entry" in message and status not in message


@pytest.mark.parametrize(("action", "status"), [k for k, v in ALLOWED.items() if v[3]])
@pytest.mark.parametrize("opinion", [None, "", "   \n"])
def test_return_reject_and_withdraw_need_an_opinion(
    matrix_store: CatalogStore, action: str, status: str, opinion: str | None
) -> None:
    set_status(matrix_store, status)
    before = counts(matrix_store)
    user = "admin_a" if action == "withdraw" else "city"
    with pytest.raises(lifecycle.LifecycleError, match="needs an opinion"):
        act(matrix_store, action, user, opinion=opinion)
    assert status_of(matrix_store) == status and counts(matrix_store) == before


@pytest.mark.parametrize(("action", "status"), [k for k, v in ALLOWED.items() if not v[3]])
def test_other_steps_may_go_without_an_opinion(matrix_store: CatalogStore, action: str, status: str) -> None:
    set_status(matrix_store, status)
    user = sorted(ALLOWED[action, status][2])[0]
    row = act(matrix_store, action, user)
    assert row.opinion is None and row.to_status == ALLOWED[action, status][0]


def test_an_overlong_opinion_is_refused(matrix_store: CatalogStore) -> None:
    set_status(matrix_store, "registration_pending")
    with pytest.raises(SpecError, match="more than 2000"):
        act(matrix_store, "return", "city", opinion="长" * 2001)
    assert status_of(matrix_store) == "registration_pending"


def test_an_unknown_action_is_refused(matrix_store: CatalogStore) -> None:
    with pytest.raises(SpecError, match="unknown catalog action 'publish'"):
        act(matrix_store, "publish", "city")


def test_an_unknown_or_inactive_user_may_do_nothing(matrix_store: CatalogStore) -> None:
    set_status(matrix_store, "registration_pending")
    with pytest.raises(SpecError, match="no active user 'cty'") as caught:
        act(matrix_store, "approve", "cty")
    assert "did you mean 'city'" in (caught.value.hint or "")
    with matrix_store.session() as s:
        user = s.get(User, "city_b")
        assert user is not None
        user.active = False
    try:
        with pytest.raises(SpecError, match="no active user 'city_b'"):
            act(matrix_store, "approve", "city_b")
    finally:
        with matrix_store.session() as s:
            again = s.get(User, "city_b")
            assert again is not None
            again.active = True
    assert status_of(matrix_store) == "registration_pending"


def test_an_unknown_entry_is_named_with_a_near_miss(matrix_store: CatalogStore) -> None:
    with pytest.raises(lifecycle.LifecycleError, match="no catalog entry 'sample_enterprise'") as caught:
        act(matrix_store, "submit", "staff_a", dataset="sample_enterprise")
    assert f"did you mean '{DATASET}'" in (caught.value.hint or "")


# --- a whole life, recorded ----------------------------------------------------------------------


def test_a_whole_life_is_recorded_step_by_step_and_chained_in_the_audit_log(store: CatalogStore) -> None:
    steps = [
        ("submit", "staff_a", None),
        ("return", "city", "摘要不完整"),
        ("submit", "staff_a", "已补充摘要"),
        ("approve", "city", None),
        ("submit_publication", "admin_a", None),
        ("reject", "city", "共享属性不符"),
        ("revise", "admin_a", None),
        ("submit", "admin_a", None),
        ("approve", "city", "同意注册"),
        ("submit_publication", "admin_a", None),
        ("return", "city", "补充共享条件"),
        ("submit_publication", "admin_a", None),
        ("approve", "city", "同意发布"),
        ("withdraw", "admin_a", "数据口径调整"),
        ("submit_publication", "admin_a", "口径已调整"),
        ("approve", "city_b", None),
        ("withdraw", "city", "停止共享"),
    ]
    for action, user, opinion in steps:
        act(store, action, user, opinion)
    with store.session() as s:
        history = lifecycle.history(s, DATASET)
        events = [e for e in audit.events(s) if e.action.startswith("catalog.") and e.action != "catalog.user_add"]
        assert [(t.actor, t.opinion) for t in history] == [(u, o) for _, u, o in steps]
        assert [t.to_status for t in history][-1] == "withdrawn"
        assert [t.from_status for t in history[1:]] == [t.to_status for t in history[:-1]]
        assert [e.detail["transition"] for e in events] == [t.id for t in history]
        assert [e.action for e in events] == [f"catalog.{t.action}" for t in history]
        assert audit.verify(s) is None
        entry = s.get(Entry, DATASET)
        assert entry is not None and entry.publish_date is not None and entry.status_changed_at is not None


def test_two_reviewers_at_once_cannot_both_decide(store: CatalogStore) -> None:
    act(store, "submit", "staff_a")
    start = threading.Barrier(2)
    results: list[object] = []

    def review(user: str, action: str, opinion: str) -> None:
        start.wait()
        try:
            results.append(act(store, action, user, opinion).to_status)
        except lifecycle.LifecycleError as exc:
            results.append(exc)

    threads = [
        threading.Thread(target=review, args=("city", "approve", "同意")),
        threading.Thread(target=review, args=("city_b", "reject", "不同意")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    decided = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, lifecycle.LifecycleError)]
    assert len(decided) == 1 and len(refused) == 1
    assert status_of(store) == decided[0]
    with store.session() as s:
        assert [t.to_status for t in lifecycle.history(s, DATASET)] == ["registration_pending", decided[0]]
        assert audit.verify(s) is None


def test_only_published_entries_are_visible_to_other_departments(store: CatalogStore) -> None:
    other = Viewer(user="staff_b", department=OTHER_USCC)

    def visible() -> list[str]:
        with store.session() as s:
            return list(s.scalars(sa.select(Entry.id).where(visibility_filter(other))))

    for action, user, opinion in [
        ("submit", "staff_a", None),
        ("approve", "city", None),
        ("submit_publication", "admin_a", None),
    ]:
        assert visible() == []
        act(store, action, user, opinion)
    assert visible() == []
    act(store, "approve", "city")
    assert visible() == [DATASET]
    act(store, "withdraw", "admin_a", "下架")
    assert visible() == []


# --- the system actor under GOVDATA_CATALOG_REVIEW=auto ------------------------------------------------


def test_auto_walks_a_new_draft_to_published_as_the_system(store: CatalogStore) -> None:
    with store.session() as s:
        entry = s.get(Entry, DATASET)
        assert entry is not None
        made = lifecycle.auto_publish(s, entry)
    assert [(t.from_status, t.to_status) for t in made] == [
        ("draft", "registration_pending"),
        ("registration_pending", "registered"),
        ("registered", "publication_pending"),
        ("publication_pending", "published"),
    ]
    assert {(t.actor, t.role, t.opinion) for t in made} == {
        ("govdata", "system", "自动审核（GOVDATA_CATALOG_REVIEW=auto）")
    }
    assert status_of(store) == "published"
    with store.session() as s:
        events = audit.events(s, actor="govdata")
        assert [e.detail["to"] for e in events] == [t.to_status for t in made]
        assert audit.verify(s) is None


@pytest.mark.parametrize("status", [s for s in STATUSES if s != "draft"])
def test_auto_leaves_every_entry_that_is_not_a_new_draft_alone(store: CatalogStore, status: str) -> None:
    set_status(store, status)
    before = counts(store)
    with store.session() as s:
        entry = s.get(Entry, DATASET)
        assert entry is not None
        assert lifecycle.auto_publish(s, entry) == []
    assert status_of(store) == status and counts(store) == before


def test_auto_leaves_a_draft_that_people_have_moved_alone(store: CatalogStore) -> None:
    act(store, "submit", "staff_a")
    act(store, "reject", "city", "不符合")
    act(store, "revise", "staff_a")
    assert status_of(store) == "draft"
    with store.session() as s:
        entry = s.get(Entry, DATASET)
        assert entry is not None
        assert lifecycle.auto_publish(s, entry) == []
    assert status_of(store) == "draft"


@pytest.mark.parametrize("status", ["rejected", "withdrawn", "returned", "registration_pending"])
def test_recording_a_version_never_publishes_an_entry_in_the_hands_of_people(store: CatalogStore, status: str) -> None:
    set_status(store, status)
    store.add_version(
        DATASET,
        number=1,
        run_id="r1",
        row_count=1,
        content_sha256="0" * 64,
        fingerprint="1" * 64,
        schema=[],
        quality={},
        lineage={},
        location="x",
        watermark=None,
        review="auto",
    )
    assert status_of(store) == status


def test_register_keeps_the_status_of_an_existing_entry(store: CatalogStore) -> None:
    act(store, "submit", "staff_a")
    store.register(DatasetSpec.model_validate(spec_dict(name="改名后的样例企业信息")), source="test")
    assert status_of(store) == "registration_pending"


@pytest.mark.parametrize(
    ("environ", "mode"),
    [({}, "auto"), ({"GOVDATA_CATALOG_REVIEW": ""}, "auto"), ({"GOVDATA_CATALOG_REVIEW": " Manual "}, "manual")],
)
def test_review_mode(environ: dict[str, str], mode: str) -> None:
    assert lifecycle.review_mode(environ) == mode


def test_an_unknown_review_mode_is_refused_naming_the_variable() -> None:
    with pytest.raises(SpecError, match="GOVDATA_CATALOG_REVIEW='manuel' is neither auto nor manual"):
        lifecycle.review_mode({"GOVDATA_CATALOG_REVIEW": "manuel"})


# --- users ---------------------------------------------------------------------------------------------


def test_users_are_listed_city_level_first_then_by_department(store: CatalogStore) -> None:
    with store.session() as s:
        listed = [(u.id, u.role, u.department_uscc) for u in lifecycle.list_users(s)]
    assert listed[:2] == [("city", "city_admin", None), ("auditor", "auditor", None)]
    assert {u for u, _, _ in listed} == set(USERS)
    with store.session() as s:
        assert [e.subject for e in audit.events(s, action="catalog.user_add")] == [f"user:{u}" for u in USERS]


def test_a_user_can_be_added_by_department_name_and_chinese_role(store: CatalogStore) -> None:
    with store.session() as s:
        user = lifecycle.add_user(s, "wang.wu", name=" 王五 ", role="部门管理员", department="上海市样例管理局")
        assert (user.role, user.department_uscc, user.name) == ("dept_admin", DEPT_USCC, "王五")
        lower = lifecycle.add_user(s, "zhao", name="赵六", role="STAFF", department=DEPT_USCC.lower())
        assert (lower.role, lower.department_uscc) == ("staff", DEPT_USCC)


@pytest.mark.parametrize(
    ("user_id", "kwargs", "problem"),
    [
        ("li", {"role": "staff"}, "needs a department"),
        ("li", {"role": "dept_admin"}, "needs a department"),
        ("li", {"role": "staff", "department": "91310000XXXXXXXXXX"}, "no department '91310000XXXXXXXXXX'"),
        ("li", {"role": "boss"}, "unknown role 'boss'"),
        ("li", {"role": "staff", "department": DEPT_USCC, "name": ""}, "needs a name"),
        ("city", {"role": "city_admin"}, "exists already"),
        ("govdata", {"role": "city_admin"}, "not allowed"),
        ("Operator", {"role": "city_admin"}, "not allowed"),
        ("1abc", {"role": "auditor"}, "not allowed"),
        ("li si", {"role": "auditor"}, "not allowed"),
        ("x" * 65, {"role": "auditor"}, "not allowed"),
        ("li'; DROP TABLE users; --", {"role": "auditor"}, "not allowed"),
    ],
)
def test_bad_users_are_refused(store: CatalogStore, user_id: str, kwargs: dict[str, str], problem: str) -> None:
    args = {"name": "李四", **kwargs}
    with pytest.raises(SpecError, match=problem), store.session() as s:
        lifecycle.add_user(s, user_id, **args)  # type: ignore[arg-type]
    with store.session() as s:
        assert {u.id for u in lifecycle.list_users(s)} == set(USERS)


def test_an_unknown_department_names_the_known_ones(store: CatalogStore) -> None:
    with pytest.raises(SpecError) as caught, store.session() as s:
        lifecycle.add_user(s, "li", name="李四", role="staff", department="上海市样例管理")
    assert "did you mean '上海市样例管理局'" in (caught.value.hint or "")
    assert DEPT_USCC in (caught.value.hint or "")


def test_city_admins_and_auditors_need_no_department(store: CatalogStore) -> None:
    with store.session() as s:
        assert lifecycle.add_user(s, "ca2", name="市管理员", role="city_admin").department_uscc is None
        assert lifecycle.add_user(s, "au2", name="审计", role="auditor").department_uscc is None


# --- the pipeline ------------------------------------------------------------------------------------


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    return dataset_maker(tmp_path / "ds")


@pytest.fixture
def pipeline(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], CatalogStore]]:
    monkeypatch.delenv("GOVDATA_CATALOG_REVIEW", raising=False)

    def store() -> CatalogStore:
        return CatalogStore(Workspace.from_env().catalog_url)

    yield store


def people(store: CatalogStore) -> None:
    with store.session() as s:
        lifecycle.add_user(s, "staff_a", name="张三", role="staff", department=DEPT_USCC)
        lifecycle.add_user(s, "admin_a", name="李四", role="dept_admin", department=DEPT_USCC)
        lifecycle.add_user(s, "city", name="王五", role="city_admin")


def test_under_auto_the_first_run_publishes_the_entry_step_by_step(
    make_dataset: Callable[..., Path], pipeline: Callable[[], CatalogStore]
) -> None:
    report = runner.run(make_dataset(10), "2026-11-24")
    assert report["status"] == "published" and report["version"] == 1
    store = pipeline()
    assert status_of(store) == "published"
    with store.session() as s:
        history = lifecycle.history(s, DATASET)
        assert [(t.action, t.actor, t.role) for t in history] == [
            ("submit_registration", "govdata", "system"),
            ("approve_registration", "govdata", "system"),
            ("submit_publication", "govdata", "system"),
            ("approve_publication", "govdata", "system"),
        ]
        assert {t.opinion for t in history} == {"自动审核（GOVDATA_CATALOG_REVIEW=auto）"}
        assert [e.detail["transition"] for e in audit.events(s, subject=f"catalog_entry:{DATASET}")] == [
            t.id for t in history
        ]
        assert audit.verify(s) is None
        entry = s.get(Entry, DATASET)
        assert entry is not None and entry.publish_date is not None


def test_under_manual_versions_publish_but_the_entry_waits_for_people_and_withdrawn_stays_withdrawn(
    make_dataset: Callable[..., Path], pipeline: Callable[[], CatalogStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVDATA_CATALOG_REVIEW", "manual")
    spec = make_dataset(10)
    first = runner.run(spec, "2026-11-24")
    assert first["status"] == "published" and first["version"] == 1
    store = pipeline()
    assert status_of(store) == "draft"
    assert (Workspace.from_env().exchange / DATASET / "v000001" / "data.parquet").is_file()
    with store.session() as s:
        assert lifecycle.history(s, DATASET) == []
        entry = s.get(Entry, DATASET)
        assert entry is not None and entry.publish_date is None
        outsider = Viewer(user="x", department=OTHER_USCC)
        assert list(s.scalars(sa.select(Entry.id).where(visibility_filter(outsider)))) == []

    people(store)
    act(store, "submit", "staff_a")
    act(store, "approve", "city", "同意注册")
    act(store, "submit_publication", "admin_a")
    act(store, "approve", "city", "同意发布")
    make_dataset(12)
    second = runner.run(spec, "2026-11-25")
    assert second["status"] == "published" and second["version"] == 2
    assert status_of(store) == "published"

    act(store, "withdraw", "admin_a", "数据口径调整")
    monkeypatch.setenv("GOVDATA_CATALOG_REVIEW", "auto")
    make_dataset(14)
    third = runner.run(spec, "2026-11-26")
    assert third["status"] == "published" and third["version"] == 3
    assert status_of(store) == "withdrawn"  # never auto-published again
    with store.session() as s:
        assert [t.actor for t in lifecycle.history(s, DATASET)] == ["staff_a", "city", "admin_a", "city", "admin_a"]
        assert audit.verify(s) is None


def test_an_unknown_review_mode_fails_the_run_before_anything_is_published(
    make_dataset: Callable[..., Path], pipeline: Callable[[], CatalogStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVDATA_CATALOG_REVIEW", "yes")
    with pytest.raises(SpecError, match="GOVDATA_CATALOG_REVIEW='yes'"):
        runner.run(make_dataset(5), "2026-11-24")
    assert not (Workspace.from_env().exchange / DATASET).exists()
    assert [r.status for r in pipeline().runs(DATASET)] == ["failed"]


# --- PostgreSQL ----------------------------------------------------------------------------------------


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[CatalogStore]:
    schema = f"govdata_lifecycle_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as con:
        con.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    store = CatalogStore(f"{postgres_url}?options=-csearch_path%3D{schema}")
    seed(store)
    yield store
    store.engine.dispose()
    with admin.begin() as con:
        con.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.integration
def test_the_lifecycle_on_postgresql(pg_store: CatalogStore) -> None:
    assert pg_store.engine.dialect.name == "postgresql"
    act(pg_store, "submit", "staff_a")
    with pytest.raises(lifecycle.LifecycleError, match="registration_pending"):
        act(pg_store, "approve", "admin_a")
    act(pg_store, "approve", "city")
    act(pg_store, "submit_publication", "admin_a")
    act(pg_store, "approve", "city", "同意")
    act(pg_store, "withdraw", "city", "停止共享")
    assert status_of(pg_store) == "withdrawn"
    with pg_store.session() as s:
        assert [t.to_status for t in lifecycle.history(s, DATASET)] == [
            "registration_pending",
            "registered",
            "publication_pending",
            "published",
            "withdrawn",
        ]
        assert audit.verify(s) is None
        assert len(audit.events(s, subject=f"catalog_entry:{DATASET}")) == 5
