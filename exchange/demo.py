"""The exchange part of ``govdata demo``: two departments subscribe to a third's data, one request is refused.

After the bundled departments have published, :func:`run` plays one round of the city exchange
through the exchange's own functions (nothing here bypasses a rule):

* 市场监管 (market regulation) applies for 人社's insured persons by **file** (文件交换) to check
  employment-subsidy claims; 人社's reviewer approves and the grant masks every sensitive item
  (姓名 ``张**``, 手机 ``138****5678``, 地址 up to the district, and the resident ID, which is the
  key, hashed with the subscriber's key); the file is downloaded as CSV into
  ``<home>/subscribers/<department>/``.
* 交通 (transport) applies for the same resource by **database** (库表交换) to check who may ride
  free as a senior; the rows are written into ``$GOVDATA_DEMO_DATABASE_URL`` (e.g. the machine's
  PostgreSQL) or, when that is not set, into a SQLite file in its subscriber folder. The grant
  names the subscriber's own variable ``TRANSPORT_FRONT_DB_URL`` (a target is never one of the
  platform's ``GOVDATA_*`` settings); the demo sets it to that URL while it delivers.
* 交通 applies once more, for mobiles and addresses to send travel offers: a purpose outside the
  resource's share condition, so 人社's reviewer refuses it and the reason is recorded.
* The three departments register a webhook each (placeholder ``.invalid`` receivers, so notifications stay
  queued), and 市场监管 raises an objection (纠错) to the data it received, so the dashboard has
  something to show. A fresh token of the city admin is made for the dashboard.

Run again, it changes nothing that is already there: the demo's applications are recognised by
their purpose and reused while their grants are active; a file is downloaded again only when a
newer version exists or the file is gone; the database delivery finds the version already in the
target (its bookkeeping) and writes nothing. Only the dashboard token is replaced (the old one
revoked), because a token is shown once.

The resident ID is hashed with a key (``GOVDATA_MASKING_KEY``). When it is not set, the demo makes
one for this workspace (``state/demo-masking.key``, readable by its owner only) and uses it for
the demo's deliveries only; set the variable to that file's content to deliver the same grants
later from ``govdata serve``. Working-day deadlines count weekends only in a year whose holiday
schedule is not bundled, so the demo also runs in late December.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from catalog.access import Status
from catalog.models import Entry, User, Version, utcnow
from catalog.store import CatalogStore
from exchange import applications, delivery, delivery_db, grants, notify, objections
from exchange.calendar import SHANGHAI, load_calendar
from exchange.identity import Principal, create_token, list_tokens, revoke_token
from exchange.models import Application, Delivery, Grant, Notification, Objection, Webhook
from pipelines.masking import MASKING_KEY_ENV
from pipelines.workspace import Workspace

__all__ = [
    "DEMO_DATABASE_ENV",
    "DashboardToken",
    "DemoDelivery",
    "DemoGrant",
    "DemoRefusal",
    "ExchangeDemo",
    "run",
    "summary_lines",
]

log = logging.getLogger(__name__)

#: SQLAlchemy URL of the database that receives 交通's rows; unset: a SQLite file in the workspace.
DEMO_DATABASE_ENV = "GOVDATA_DEMO_DATABASE_URL"
#: The variable 交通's grant names for its database (a subscriber's own: the platform's ``GOVDATA_*``
#: settings are never a delivery target). The demo sets it from the one above while it delivers.
TARGET_URL_ENV = "TRANSPORT_FRONT_DB_URL"
PROVIDER = "hrss_insured_persons"
SUBSCRIBERS = ("market_enterprise_registry", "transport_bus_stops")  # whose departments subscribe
TARGET_TABLE = "hrss_insured_persons"
TOKEN_NAME = "govdata demo: dashboard"
TOKEN_DAYS = 30
GRANT_DAYS = 365

FILE_ITEMS = ("resident_id", "name", "gender", "mobile", "address", "insured_on", "insured_status")
FILE_MASKING: dict[str, str | None] = {"resident_id": "hash", "name": "name", "mobile": "mobile", "address": "address"}
FILE_PURPOSE = "就业补贴审核：核验申领一次性吸纳就业补贴的企业所报员工的养老保险参保状态"
FILE_SCENARIO = "市场监督管理局会同人社部门审核企业补贴申领材料，按月下载参保人员文件比对"
FILE_OPINION = (
    "同意。用途属于共享条件所列就业补贴审核；姓名、手机号码、联系地址脱敏交付，公民身份号码按订阅方密钥哈希。"
)

DB_ITEMS = ("resident_id", "name", "birth_date", "insured_status")
DB_MASKING: dict[str, str | None] = {"resident_id": "hash", "name": "name"}
DB_PURPOSE = "社会保障待遇资格核验：老年人免费乘车（敬老卡）资格与参保状态核验"
DB_SCENARIO = "交通委公交卡系统每日从前置机库表读取参保状态，核验敬老卡申领人资格"
DB_OPINION = "同意。用途属于社会保障待遇资格核验；姓名脱敏，公民身份号码按订阅方密钥哈希，库表交换至交通委前置机。"

REFUSED_ITEMS = ("name", "mobile", "address")
REFUSED_PURPOSE = "向参保人员推送公共交通出行优惠信息（短信）"
REFUSED_SCENARIO = "交通委出行服务平台按手机号码群发出行优惠短信"
REFUSAL_REASON = (
    "不予同意：申请用途为出行优惠信息推送，不属于本资源共享条件所列的社会保障待遇资格核验、就业补贴审核等法定职责，"
    "手机号码和联系地址不为此类用途提供。如确有法定职责需要，请补充依据后重新申请。"
)

OBJECTION_SUBJECT = "部分人员参保状态与企业申报不一致"
OBJECTION_DETAIL = (
    "比对本月补贴申领材料时发现，若干企业申报为在职参保的员工，交付数据中的参保状态为“暂停参保”。"
    "请核实参保状态是否为最新，必要时发布更正后的版本。"
)
WEBHOOK_EVENTS = {
    "provider": ["application.submitted", "objection.raised", "dataset.stale", "review.overdue", "run.failed"],
    "subscriber": ["application.decided", "version.delivered", "delivery.failed"],
}

_METHOD_LABELS = {"file": "文件交换 file", "database": "库表交换 database"}


# --- what the demo reports -----------------------------------------------------------------------


@dataclass(frozen=True)
class DemoGrant:
    """One of the demo's grants."""

    id: int
    application: int
    entry: str
    subscriber: str  # department name
    applicant: str  # the user who applied (acts for the subscriber)
    method: str  # file or database
    items: tuple[str, ...]
    masking: Mapping[str, str | None]  # the delivered rule of each sensitive item
    reused: bool  # granted by an earlier demo run


@dataclass(frozen=True)
class DemoDelivery:
    """What one delivery of the demo did (or, when nothing was due, the last one it did)."""

    grant: int
    mode: str
    outcome: str  # succeeded, failed, or "current" (nothing new to deliver)
    version: int | None
    kind: str | None
    rows: int
    where: str  # the file, or the database (password hidden) and table
    receipt: int | None
    error: str | None = None


@dataclass(frozen=True)
class DemoRefusal:
    """The refused application and its recorded reason."""

    application: int
    applicant: str  # department name
    entry: str
    reason: str


@dataclass(frozen=True)
class DashboardToken:
    """The city admin's token for the dashboard (shown once)."""

    user: str
    token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class ExchangeDemo:
    """The outcome of :func:`run`; ``skipped`` says why nothing was done (the bundled data is missing)."""

    skipped: str | None = None
    grants: tuple[DemoGrant, ...] = ()
    deliveries: tuple[DemoDelivery, ...] = ()
    refusal: DemoRefusal | None = None
    objection: int | None = None
    notifications: Mapping[str, int] = field(default_factory=dict)
    subscribers: Path | None = None
    database: str | None = None
    database_env: bool = False  # the database came from $GOVDATA_DEMO_DATABASE_URL
    masking_key: str | None = None  # where the hash key came from: the variable, or the demo's key file
    dashboard: DashboardToken | None = None

    @property
    def failed(self) -> bool:
        return any(d.outcome == "failed" for d in self.deliveries)


# --- who acts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cast:
    provider_reviewer: str
    file_subscriber: str
    db_subscriber: str
    provider_folder: str
    file_folder: str
    db_folder: str
    city_admin: str | None


def _pick(users: Sequence[Mapping[str, Any]], role: str, department: str | None) -> str | None:
    ids = sorted(str(u["id"]) for u in users if u.get("role") == role and u.get("department") == department)
    return ids[0] if ids else None


def _folder_name(user_id: str, department: str) -> str:
    """``market_regulation`` for ``market_regulation_staff`` (the dataset folder the demo's users are named after)."""
    for suffix in ("_staff", "_admin", "_reviewer"):
        short = user_id.removesuffix(suffix)
        if short and short != user_id:
            return short
    return department


def _cast(session: Session, users: Sequence[Mapping[str, Any]]) -> _Cast | str:
    """The demo's actors, or why the demo cannot run (its data is not there or not published)."""
    found = {e.id: e for e in session.scalars(select(Entry).where(Entry.id.in_([PROVIDER, *SUBSCRIBERS])))}
    for entry_id in (PROVIDER, *SUBSCRIBERS):
        entry = found.get(entry_id)
        if entry is None:
            return f"the bundled dataset {entry_id} is not in the catalog (run the demo on the bundled datasets)"
        if entry.status != Status.PUBLISHED.value:
            return f"the catalog entry {entry_id} is {entry.status}, not published"
    if session.scalar(select(func.count()).select_from(Version).where(Version.entry_id == PROVIDER)) == 0:
        return f"{PROVIDER} has no published version (its run was held by the quality gate)"
    provider = found[PROVIDER].department_uscc
    file_dept, db_dept = (found[e].department_uscc for e in SUBSCRIBERS)
    reviewer = _pick(users, "dept_admin", provider)
    file_user = _pick(users, "staff", file_dept)
    db_user = _pick(users, "staff", db_dept)
    if reviewer is None or file_user is None or db_user is None:
        return "the demo's department users are missing (seed them first)"
    return _Cast(
        provider_reviewer=reviewer,
        provider_folder=_folder_name(reviewer, provider),
        file_subscriber=file_user,
        db_subscriber=db_user,
        file_folder=_folder_name(file_user, file_dept),
        db_folder=_folder_name(db_user, db_dept),
        city_admin=_pick(users, "city_admin", None),
    )


def _principal(session: Session, user_id: str) -> Principal:
    user = session.get(User, user_id)
    assert user is not None  # picked from the seeded users
    return Principal.of_user(user)


# --- environment for the demo's deliveries ---------------------------------------------------------


@contextmanager
def _temporary_env(name: str, value: str | None) -> Iterator[None]:
    """``$name`` set to ``value`` while the block runs (``None``: left as it is)."""
    if value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _demo_masking_key(workspace: Workspace) -> tuple[str | None, str]:
    """The key to use when ``GOVDATA_MASKING_KEY`` is unset (``None`` when it is set), and where it is from."""
    if os.environ.get(MASKING_KEY_ENV):
        return None, f"${MASKING_KEY_ENV}"
    path = workspace.state / "demo-masking.key"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip(), str(path)


def shown_url(url: str) -> str:
    """``url`` for messages: the password hidden, or a placeholder when it does not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return f"(the value of ${DEMO_DATABASE_ENV}, not a valid SQLAlchemy URL)"


# --- applications and grants --------------------------------------------------------------------------


def _existing_grant(
    session: Session, department: str, purpose: str, method: str, target: Mapping[str, str] | None
) -> Grant | None:
    """The active grant of an earlier demo run for this request (same method and target), if any."""
    rows = session.scalars(
        select(Grant)
        .join(Application, Grant.application_id == Application.id)
        .where(
            Application.entry_id == PROVIDER,
            Application.department_uscc == department,
            Application.purpose == purpose,
            Grant.delivery_method == method,
        )
        .order_by(Grant.id.desc())
    )
    return next((g for g in rows if g.state() == "active" and (g.target or None) == (target or None)), None)


def _grant(
    store: CatalogStore,
    *,
    applicant: str,
    reviewer: str,
    items: Sequence[str],
    purpose: str,
    scenario: str,
    method: str,
    masking: Mapping[str, str | None],
    opinion: str,
    target: Mapping[str, str] | None = None,
) -> DemoGrant:
    today = dt.datetime.now(SHANGHAI).date()
    calendar = load_calendar(fallback="weekends")
    with store.session() as s:
        who = _principal(s, applicant)
        assert who.department is not None
        grant = _existing_grant(s, who.department, purpose, method, target)
        reused = grant is not None
        if grant is None:
            app = applications.submit(
                s,
                who,
                entry=PROVIDER,
                items=items,
                purpose=purpose,
                scenario=scenario,
                delivery_method=method,
                end_date=today + dt.timedelta(days=GRANT_DAYS),
                target=target,
                calendar=calendar,
            )
            _, grant = applications.decide(
                s, _principal(s, reviewer), app.id, approve=True, opinion=opinion, masking=masking
            )
            assert grant is not None
        names = grants.department_names(s)
        return DemoGrant(
            id=grant.id,
            application=grant.application_id,
            entry=grant.entry_id,
            subscriber=names.get(grant.department_uscc, grant.department_uscc),
            applicant=grant.application.applicant,
            method=grant.delivery_method,
            items=tuple(str(i) for i in grant.items),
            masking=dict(grant.masking or {}),
            reused=reused,
        )


def _refusal(store: CatalogStore, *, applicant: str, reviewer: str) -> DemoRefusal:
    today = dt.datetime.now(SHANGHAI).date()
    with store.session() as s:
        who = _principal(s, applicant)
        app = s.scalar(
            select(Application)
            .where(
                Application.entry_id == PROVIDER,
                Application.department_uscc == who.department,
                Application.purpose == REFUSED_PURPOSE,
                Application.status == applications.REFUSED,
            )
            .order_by(Application.id.desc())
            .limit(1)
        )
        if app is None:
            app = applications.submit(
                s,
                who,
                entry=PROVIDER,
                items=REFUSED_ITEMS,
                purpose=REFUSED_PURPOSE,
                scenario=REFUSED_SCENARIO,
                delivery_method="file",
                end_date=today + dt.timedelta(days=GRANT_DAYS),
                calendar=load_calendar(fallback="weekends"),
            )
            app, _ = applications.decide(s, _principal(s, reviewer), app.id, approve=False, opinion=REFUSAL_REASON)
        names = grants.department_names(s)
        return DemoRefusal(
            application=app.id,
            applicant=names.get(app.department_uscc, app.department_uscc),
            entry=app.entry_id,
            reason=app.reason or "",
        )


# --- deliveries --------------------------------------------------------------------------------------


def _latest_receipt(session: Session, grant_id: int) -> Delivery | None:
    return session.scalar(
        select(Delivery)
        .where(Delivery.grant_id == grant_id, Delivery.outcome == "succeeded")
        .order_by(Delivery.id.desc())
        .limit(1)
    )


def _deliver_file(store: CatalogStore, workspace: Workspace, grant_id: int, user: str, folder: Path) -> DemoDelivery:
    """Download the grant's data into ``folder`` unless the latest version is there already."""
    with store.session() as s:
        grant = s.get(Grant, grant_id)
        assert grant is not None
        latest = delivery.latest_number(s, grant.entry_id)
        who = _principal(s, user)
        done = _latest_receipt(s, grant_id)
        last = grant.last_version
    have = sorted(folder.glob(f"{PROVIDER}-v{latest}*.csv")) if latest is not None else []
    if done is not None and last == latest and have:
        return DemoDelivery(
            grant=grant_id,
            mode="file",
            outcome="current",
            version=done.version,
            kind=done.kind,
            rows=done.rows,
            where=str(have[-1]),
            receipt=done.id,
        )
    # The changes since the last delivered version, unless the files are gone: then the whole version.
    full = not have and (last == latest or not any(folder.glob(f"{PROVIDER}-v*.csv")))
    prepared = delivery.download(
        store, grant_id, who, fmt="csv", full=full, work_dir=workspace.root / "tmp" / "delivery"
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / prepared.filename
        shutil.move(str(prepared.file.path), target)
    finally:
        prepared.cleanup()
    f = prepared.file
    return DemoDelivery(
        grant=grant_id,
        mode="file",
        outcome="succeeded",
        version=f.version,
        kind=f.kind,
        rows=f.rows,
        where=str(target),
        receipt=prepared.receipt,
    )


def _deliver_database(store: CatalogStore, workspace: Workspace, grant_id: int, user: str, shown: str) -> DemoDelivery:
    with store.session() as s:
        delivery.grant_for(s, grant_id, _principal(s, user), purpose="deliver")
    # One quick retry: a demo pointed at a database that is down should say so in seconds.
    policy = delivery_db.RetryPolicy(retries=1, backoff=0.5)
    receipt = delivery_db.deliver_to_database(
        store,
        grant_id,
        actor=user,
        policy=policy,
        work_dir=workspace.root / "tmp" / "delivery",
        lineage_home=workspace.root,
    )
    where = f"{shown} · table {receipt.get('target') or TARGET_TABLE}"
    if receipt["outcome"] != "succeeded":
        return DemoDelivery(
            grant=grant_id,
            mode="database",
            outcome="failed",
            version=receipt["version"],
            kind=receipt["kind"],
            rows=0,
            where=where,
            receipt=receipt["id"],
            error=receipt["error"],
        )
    if receipt.get("already_present"):
        with store.session() as s:
            earlier = s.scalar(
                select(Delivery)
                .where(
                    Delivery.grant_id == grant_id,
                    Delivery.outcome == "succeeded",
                    Delivery.version == receipt["version"],
                    Delivery.rows > 0,
                )
                .order_by(Delivery.id.desc())
                .limit(1)
            )
            rows = earlier.rows if earlier is not None else receipt["rows"]
    else:
        rows = receipt["rows"]
    return DemoDelivery(
        grant=grant_id,
        mode="database",
        outcome="current" if receipt.get("already_present") else "succeeded",
        version=receipt["version"],
        kind=receipt["kind"],
        rows=rows,
        where=where,
        receipt=receipt["id"],
    )


# --- webhooks, objection, token -----------------------------------------------------------------------


def _webhook(store: CatalogStore, user: str, folder: str, events: Sequence[str]) -> None:
    url = f"https://receiver.{folder.replace('_', '-').lower()}.invalid/govdata/events"
    with store.session() as s:
        who = _principal(s, user)
        there = s.scalar(
            select(Webhook).where(
                Webhook.department_uscc == who.department, Webhook.url == url, Webhook.active.is_(True)
            )
        )
        if there is None:
            notify.register_webhook(s, who, url=url, events=events)


def _objection(store: CatalogStore, user: str) -> int:
    with store.session() as s:
        who = _principal(s, user)
        there = s.scalar(
            select(Objection.id).where(
                Objection.entry_id == PROVIDER,
                Objection.department_uscc == who.department,
                Objection.subject == OBJECTION_SUBJECT,
            )
        )
        if there is not None:
            return int(there)
        raised = objections.raise_objection(
            s, who, entry=PROVIDER, subject=OBJECTION_SUBJECT, detail=OBJECTION_DETAIL, items=["insured_status"]
        )
        return raised.id


def _dashboard_token(store: CatalogStore, user: str) -> DashboardToken:
    """A new token of ``user`` for the dashboard; the earlier demo tokens are revoked."""
    expires = utcnow() + dt.timedelta(days=TOKEN_DAYS)
    with store.session() as s:
        for old in list_tokens(s, user):
            if old.name == TOKEN_NAME and old.revoked_at is None:
                revoke_token(s, old.id, actor=user)
        _, token = create_token(s, user, name=TOKEN_NAME, expires_at=expires)
    return DashboardToken(user=user, token=token, expires_at=expires)


# --- the demo -------------------------------------------------------------------------------------------


def run(workspace: Workspace, users: Sequence[Mapping[str, Any]]) -> ExchangeDemo:
    """Play the exchange round described in the module doc on ``workspace``; ``users`` as seeded for the demo.

    Each user is a mapping with ``id``, ``role`` and ``department`` (USCC or ``None``), as
    :func:`pipelines.cli_catalog_review.seed_demo_users` returns them. Returns what was granted,
    delivered and refused; ``skipped`` when the bundled data is not published.
    """
    store = CatalogStore(workspace.catalog_url)
    with store.session() as s:
        cast = _cast(s, users)
    if isinstance(cast, str):
        log.info("exchange demo skipped: %s", cast)
        return ExchangeDemo(skipped=cast)
    subscribers = workspace.root / "subscribers"
    configured = os.environ.get(DEMO_DATABASE_ENV, "").strip() or None
    db_url = configured
    if db_url is None:
        sqlite_file = subscribers / cast.db_folder / f"{cast.db_folder}.db"
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        db_url = f"sqlite:///{sqlite_file}"
    shown = shown_url(db_url)
    demo_key, key_source = _demo_masking_key(workspace)

    _webhook(store, cast.provider_reviewer, cast.provider_folder, WEBHOOK_EVENTS["provider"])
    _webhook(store, cast.file_subscriber, cast.file_folder, WEBHOOK_EVENTS["subscriber"])
    _webhook(store, cast.db_subscriber, cast.db_folder, WEBHOOK_EVENTS["subscriber"])
    file_grant = _grant(
        store,
        applicant=cast.file_subscriber,
        reviewer=cast.provider_reviewer,
        items=FILE_ITEMS,
        purpose=FILE_PURPOSE,
        scenario=FILE_SCENARIO,
        method="file",
        masking=FILE_MASKING,
        opinion=FILE_OPINION,
    )
    db_grant = _grant(
        store,
        applicant=cast.db_subscriber,
        reviewer=cast.provider_reviewer,
        items=DB_ITEMS,
        purpose=DB_PURPOSE,
        scenario=DB_SCENARIO,
        method="database",
        masking=DB_MASKING,
        opinion=DB_OPINION,
        target={"url_env": TARGET_URL_ENV, "table": TARGET_TABLE},
    )
    refusal = _refusal(store, applicant=cast.db_subscriber, reviewer=cast.provider_reviewer)
    with _temporary_env(MASKING_KEY_ENV, demo_key), _temporary_env(TARGET_URL_ENV, db_url):
        delivered = (
            _deliver_file(store, workspace, file_grant.id, cast.file_subscriber, subscribers / cast.file_folder),
            _deliver_database(store, workspace, db_grant.id, cast.db_subscriber, shown),
        )
    objection = _objection(store, cast.file_subscriber)
    token = _dashboard_token(store, cast.city_admin) if cast.city_admin else None
    with store.session() as s:
        counts = notify.count_notifications(s)
        counts["total"] = int(s.scalar(select(func.count()).select_from(Notification)) or 0)
    return ExchangeDemo(
        grants=(file_grant, db_grant),
        deliveries=delivered,
        refusal=refusal,
        objection=objection,
        notifications=counts,
        subscribers=subscribers,
        database=shown,
        database_env=configured is not None,
        masking_key=key_source,
        dashboard=token,
    )


# --- the printed summary ---------------------------------------------------------------------------------


def _rules(masking: Mapping[str, str | None]) -> str:
    return ", ".join(f"{item}→{rule or 'clear'}" for item, rule in masking.items()) or "default rules"


def summary_lines(result: ExchangeDemo, *, port: int = 8000) -> list[str]:
    """The demo summary's exchange section (Chinese and English), plain text."""
    lines = ["交换 Exchange (城市共享交换平台)"]
    if result.skipped:
        return [*lines, f"  skipped: {result.skipped}"]
    lines.append("  授权 grants")
    for g in result.grants:
        again = " (from an earlier run)" if g.reused else ""
        lines.append(
            f"    #{g.id} {g.subscriber} ← {g.entry} · {_METHOD_LABELS.get(g.method, g.method)} · "
            f"{len(g.items)} items, 脱敏 masked: {_rules(g.masking)}{again}"
        )
    lines.append("  交付 deliveries")
    for d in result.deliveries:
        label = _METHOD_LABELS.get(d.mode, d.mode)
        if d.outcome == "failed":
            lines.append(f"    ✗ grant #{d.grant} {label}: failed: {d.error}  → {d.where}")
            continue
        state = "already delivered, nothing new" if d.outcome == "current" else f"{d.kind}, receipt {d.receipt}"
        lines.append(f"    ✓ grant #{d.grant} {label}: v{d.version}, {d.rows} rows ({state}) → {d.where}")
    if result.refusal is not None:
        r = result.refusal
        lines.append(f"  拒绝 refused: application #{r.application} of {r.applicant} for {r.entry}")
        lines.append(f"    理由 reason: {r.reason}")
    if result.objection is not None:
        lines.append(f"  异议 objection #{result.objection} raised on {PROVIDER} (`govdata exchange objections`)")
    counts = result.notifications
    lines.append(
        f"  通知 notifications: {counts.get('total', 0)} queued for the departments' webhooks "
        f"({counts.get('pending', 0)} pending; placeholder receivers, `govdata exchange notify` sends them)"
    )
    lines.append(f"  订阅方文件 subscriber files   {result.subscribers}")
    source = f"${DEMO_DATABASE_ENV}" if result.database_env else f"set ${DEMO_DATABASE_ENV} for another database"
    lines.append(f"  订阅方库表 subscriber DB      {result.database}  ({source})")
    lines.append(f"  哈希密钥 masking key          {result.masking_key}")
    db = next((g for g in result.grants if g.method == "database"), None)
    if db is not None:
        lines.append(
            f"  再次交付 deliver again: {TARGET_URL_ENV}=<url> govdata exchange deliver {db.id} --as {db.applicant}"
            + (
                ""
                if result.masking_key == f"${MASKING_KEY_ENV}"
                else f"  (with {MASKING_KEY_ENV} = the key file's text)"
            )
        )
    if result.dashboard is not None:
        t = result.dashboard
        lines.append(
            f"  看板 dashboard: `govdata serve`, then open http://127.0.0.1:{port}/dashboard and paste the "
            f"token of {t.user} (valid until {t.expires_at.astimezone(SHANGHAI):%Y-%m-%d}, shown once):"
        )
        lines.append(f"    {t.token}")
    return lines
