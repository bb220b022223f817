"""The catalog lifecycle (目录生命周期): who may move an entry from which status to which.

An entry starts as 草稿 ``draft`` when a dataset spec (or a spreadsheet row) registers it.
The department submits it for registration, the city admin reviews it, the department's admin
submits it for publication, the city admin reviews that, and only then do other departments see
it (:func:`catalog.access.visibility_filter`). The whole machine is :data:`STEPS`:

==================  ========================  ========================  ===========================  =======
action              from                      to                        who                          opinion
==================  ========================  ========================  ===========================  =======
submit              草稿 draft                待注册审核                staff, dept_admin (own dept)  —
                                              registration_pending
submit              退回修改 returned         待注册审核                staff, dept_admin (own dept)  —
                                              registration_pending
approve             待注册审核                已注册 registered         city_admin                   —
                    registration_pending
return              待注册审核                退回修改 returned         city_admin                   required
                    registration_pending
reject              待注册审核                审核拒绝 rejected         city_admin                   required
                    registration_pending
submit_publication  已注册 registered         待发布审核                dept_admin (own dept)        —
                                              publication_pending
submit_publication  已下架 withdrawn          待发布审核                dept_admin (own dept)        —
                    (resubmission)            publication_pending
approve             待发布审核                已发布 published          city_admin                   —
                    publication_pending
return              待发布审核                已注册 registered         city_admin                   required
                    publication_pending
reject              待发布审核                审核拒绝 rejected         city_admin                   required
                    publication_pending
withdraw            已发布 published          已下架 withdrawn          dept_admin (own dept),       required
                                                                        city_admin
revise              审核拒绝 rejected         草稿 draft                staff, dept_admin (own dept)  —
==================  ========================  ========================  ===========================  =======

Anything else is refused with a :class:`LifecycleError` that names the entry, its status, the
user's role and what that user may do instead. Auditors (审计人员) read everything and change
nothing. Staff and department admins act only on their own department's entries (an entry of
another department that is not published is, to them, no entry at all). Decisions:

- ``return`` at publication review goes back to 已注册 ``registered``, not to 退回修改: the
  registration stands, so the department fixes what was asked and submits for publication
  again without a second registration review. ``reject`` at either review is final for that
  submission: the department revises (``rejected → draft``) and starts over.
- An opinion (审核意见) is required wherever the other side must know why: return, reject and
  withdraw. An approval may carry one.
- Every transition writes a :class:`catalog.models.Transition` (who, role, when, opinion, from,
  to) and an audit-log entry (:mod:`exchange.audit`) in the caller's transaction, and moves the
  status with a compare-and-set, so two reviewers acting at once cannot both succeed.

The pipeline and the lifecycle (``GOVDATA_CATALOG_REVIEW``, :func:`review_mode`): under ``auto``
(the default) the first publication of a new entry (status draft, no transition yet) walks it
draft → registration_pending → registered → publication_pending → published as the system actor
``govdata`` (:func:`auto_publish`), each step recorded with the opinion :data:`AUTO_OPINION`.
Under ``manual`` the pipeline still publishes versions to the exchange store, but the entry
keeps its status until people review it. Neither mode ever touches an entry that someone has
moved (returned, rejected, withdrawn, pending): those wait for people.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from catalog.access import Role, Status, viewer_for, visibility_filter
from catalog.models import Department, Entry, Transition, User
from exchange import audit
from pipelines.errors import SpecError, TerminalError

__all__ = [
    "AUTO_OPINION",
    "REVIEW_ENV",
    "STEPS",
    "SYSTEM_ACTOR",
    "Action",
    "LifecycleError",
    "Step",
    "acting_user",
    "add_user",
    "allowed_actions",
    "auto_publish",
    "clean_opinion",
    "ensure_user",
    "find_department",
    "history",
    "list_users",
    "parse_role",
    "review_mode",
    "role_text",
    "transition",
    "visible_entry",
]

#: The pipeline's own actor (not a user in the users table).
SYSTEM_ACTOR = "govdata"
SYSTEM_ROLE = "system"
REVIEW_ENV = "GOVDATA_CATALOG_REVIEW"
AUTO_OPINION = "自动审核（GOVDATA_CATALOG_REVIEW=auto）"
#: Ids no person may take: the system actor and the local operator of the command line.
RESERVED_IDS = frozenset({SYSTEM_ACTOR, "operator", "system"})
MAX_OPINION = 2000
_USER_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class Action(StrEnum):
    """What a user asks to do with an entry; the entry's status decides which step it is."""

    SUBMIT = "submit"
    APPROVE = "approve"
    RETURN = "return"
    REJECT = "reject"
    SUBMIT_PUBLICATION = "submit_publication"
    WITHDRAW = "withdraw"
    REVISE = "revise"

    @property
    def label(self) -> str:
        return {
            "submit": "提交注册",
            "approve": "审核通过",
            "return": "退回修改",
            "reject": "审核拒绝",
            "submit_publication": "提交发布",
            "withdraw": "下架",
            "revise": "修订",
        }[self.value]


@dataclass(frozen=True)
class Step:
    """One allowed transition: ``action`` on an entry in ``source`` makes it ``target``."""

    action: Action
    source: Status
    target: Status
    name: str  # recorded as Transition.action and in the audit log (catalog.<name>)
    roles: frozenset[Role]
    opinion_required: bool
    label: str


_DEPT = frozenset({Role.STAFF, Role.DEPT_ADMIN})
_CITY = frozenset({Role.CITY_ADMIN})
_S = Status
_A = Action

#: The state machine (the table in the module docstring).
STEPS: tuple[Step, ...] = (
    Step(_A.SUBMIT, _S.DRAFT, _S.REGISTRATION_PENDING, "submit_registration", _DEPT, False, "提交注册"),
    Step(_A.SUBMIT, _S.RETURNED, _S.REGISTRATION_PENDING, "submit_registration", _DEPT, False, "重新提交注册"),
    Step(_A.APPROVE, _S.REGISTRATION_PENDING, _S.REGISTERED, "approve_registration", _CITY, False, "注册审核通过"),
    Step(_A.RETURN, _S.REGISTRATION_PENDING, _S.RETURNED, "return_registration", _CITY, True, "注册审核退回"),
    Step(_A.REJECT, _S.REGISTRATION_PENDING, _S.REJECTED, "reject_registration", _CITY, True, "注册审核拒绝"),
    Step(
        _A.SUBMIT_PUBLICATION,
        _S.REGISTERED,
        _S.PUBLICATION_PENDING,
        "submit_publication",
        frozenset({Role.DEPT_ADMIN}),
        False,
        "提交发布",
    ),
    Step(
        _A.SUBMIT_PUBLICATION,
        _S.WITHDRAWN,
        _S.PUBLICATION_PENDING,
        "resubmit_publication",
        frozenset({Role.DEPT_ADMIN}),
        False,
        "下架后重新提交发布",
    ),
    Step(_A.APPROVE, _S.PUBLICATION_PENDING, _S.PUBLISHED, "approve_publication", _CITY, False, "发布审核通过"),
    Step(_A.RETURN, _S.PUBLICATION_PENDING, _S.REGISTERED, "return_publication", _CITY, True, "发布审核退回"),
    Step(_A.REJECT, _S.PUBLICATION_PENDING, _S.REJECTED, "reject_publication", _CITY, True, "发布审核拒绝"),
    Step(
        _A.WITHDRAW, _S.PUBLISHED, _S.WITHDRAWN, "withdraw", frozenset({Role.DEPT_ADMIN, Role.CITY_ADMIN}), True, "下架"
    ),
    Step(_A.REVISE, _S.REJECTED, _S.DRAFT, "revise", _DEPT, False, "修订"),
)
_BY_KEY = {(s.action, s.source): s for s in STEPS}
#: The path a new entry takes under GOVDATA_CATALOG_REVIEW=auto.
_AUTO_PATH = (
    _BY_KEY[_A.SUBMIT, _S.DRAFT],
    _BY_KEY[_A.APPROVE, _S.REGISTRATION_PENDING],
    _BY_KEY[_A.SUBMIT_PUBLICATION, _S.REGISTERED],
    _BY_KEY[_A.APPROVE, _S.PUBLICATION_PENDING],
)


class LifecycleError(TerminalError):
    """A lifecycle action that is not allowed: names the entry, its status, the role and what is allowed."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        entry: str | None = None,
        status: str | None = None,
        role: str | None = None,
        action: str | None = None,
        allowed: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, hint=hint)
        self.entry = entry
        self.status = status
        self.role = role
        self.action = action
        self.allowed = allowed


def _status(value: str) -> str:
    try:
        return f"{Status(value).label} {value}"
    except ValueError:
        return value


def role_text(value: str) -> str:
    try:
        return f"{Role(value).label} {value}"
    except ValueError:
        return value


def _parse_action(action: Action | str) -> Action:
    try:
        return Action(action)
    except ValueError:
        raise SpecError(
            f"unknown catalog action {action!r}", hint="use one of: " + ", ".join(a.value for a in Action)
        ) from None


def _member(user: User, entry: Entry) -> bool:
    return user.department_uscc is not None and user.department_uscc == entry.department_uscc


def _may(step: Step, user: User, entry: Entry) -> bool:
    role = Role(user.role)
    if role not in step.roles:
        return False
    return role not in _DEPT or _member(user, entry)


def allowed_actions(session: Session, entry_id: str, user_id: str) -> list[Step]:
    """The steps ``user_id`` may take on entry ``entry_id`` now (empty for auditors and outsiders)."""
    user = acting_user(session, user_id)
    entry = visible_entry(session, entry_id, user)
    return [s for s in STEPS if s.source.value == entry.status and _may(s, user, entry)]


def acting_user(session: Session, user_id: str) -> User:
    viewer_for(session, user_id)  # an unknown or inactive user: a SpecError naming the near misses
    user = session.get(User, user_id)
    assert user is not None
    return user


def visible_entry(session: Session, entry_id: str, user: User) -> Entry:
    viewer = viewer_for(session, user.id)
    entry = session.scalar(select(Entry).where(Entry.id == entry_id, visibility_filter(viewer)))
    if entry is None:
        known = list(session.scalars(select(Entry.id).where(visibility_filter(viewer))))
        near = difflib.get_close_matches(entry_id, known, n=1)
        raise LifecycleError(
            f"no catalog entry {entry_id!r}" + ("" if viewer.sees_everything else f" that user {user.id!r} can see"),
            hint=(f"did you mean {near[0]!r}? " if near else "") + "`govdata catalog list` shows the entries",
            entry=entry_id,
            role=user.role,
        )
    return entry


def clean_opinion(opinion: str | None) -> str | None:
    if opinion is None:
        return None
    opinion = opinion.strip()
    if len(opinion) > MAX_OPINION:
        raise SpecError(
            f"the opinion has {len(opinion)} characters, more than {MAX_OPINION}",
            hint="shorten it; attach long reasoning elsewhere and refer to it",
        )
    return opinion or None


def _refuse(entry: Entry, user: User, action: Action) -> LifecycleError:
    """The error for ``user`` asking ``action`` on ``entry`` when no allowed step matches."""
    role = Role(user.role)
    here = [s for s in STEPS if s.source.value == entry.status and _may(s, user, entry)]
    allowed = tuple(s.action.value for s in here)
    what = f"{action.value} ({action.label})"
    subject = f"catalog entry {entry.id!r} ({_status(entry.status)})"
    who = f"user {user.id!r} ({role_text(user.role)})"
    matching = [s for s in STEPS if s.action is action]
    at_status = [s for s in matching if s.source.value == entry.status]
    if role is Role.AUDITOR:
        message = f"{who} may not {what} {subject}: auditors read the catalog and change nothing"
    elif not at_status:
        sources = ", ".join(_status(s.source.value) for s in matching)
        message = f"{who} may not {what} {subject} now: {action.value} applies to entries that are {sources}"
    elif role in at_status[0].roles and role in _DEPT and not _member(user, entry):
        owner = f"{entry.department.name} ({entry.department_uscc})"
        theirs = f"{user.department.name} ({user.department_uscc})" if user.department else "no department"
        message = (
            f"{who} may not {what} {subject}: it belongs to {owner}, the user to {theirs}; "
            "only its own department acts on it"
        )
    else:
        roles = " or ".join(role_text(r.value) for r in sorted(at_status[0].roles))
        own = " of its department" if at_status[0].roles <= _DEPT else ""
        message = f"{who} may not {what} {subject}: that is for {roles}{own}"
    if here:
        hint = f"{user.id} may now: " + ", ".join(
            f"{s.action.value} ({s.label} → {_status(s.target.value)})" for s in here
        )
    else:
        hint = f"{user.id} can do nothing with this entry in its current status"
    hint += "; `govdata catalog show " + entry.id + "` shows its history"
    return LifecycleError(
        message, hint=hint, entry=entry.id, status=entry.status, role=user.role, action=action.value, allowed=allowed
    )


def transition(
    session: Session, entry_id: str, action: Action | str, *, actor: str, opinion: str | None = None
) -> Transition:
    """Have user ``actor`` take ``action`` on entry ``entry_id``; record it; return the transition.

    Raises :class:`LifecycleError` when the action is not allowed for this user on this entry in
    its status, or when an opinion is required and missing; a SpecError for an unknown user.
    """
    act = _parse_action(action)
    user = acting_user(session, actor)
    entry = visible_entry(session, entry_id, user)
    step = _BY_KEY.get((act, Status(entry.status)))
    if step is None or not _may(step, user, entry):
        raise _refuse(entry, user, act)
    text = clean_opinion(opinion)
    if step.opinion_required and text is None:
        raise LifecycleError(
            f"{step.label} ({act.value}) of catalog entry {entry.id!r} ({_status(entry.status)}) needs an opinion "
            "(审核意见): the department must know why",
            hint="give --opinion TEXT",
            entry=entry.id,
            status=entry.status,
            role=user.role,
            action=act.value,
            allowed=(act.value,),
        )
    return _apply(session, entry, step, actor=user.id, role=user.role, opinion=text)


def _apply(session: Session, entry: Entry, step: Step, *, actor: str, role: str, opinion: str | None) -> Transition:
    now = dt.datetime.now(dt.UTC)
    values: dict[str, Any] = {"status": step.target.value, "status_changed_at": now}
    if step.target is Status.PUBLISHED and entry.publish_date is None:
        values["publish_date"] = now.date()  # 12 发布日期: the first publication, unless the spec gives one
    # Compare-and-set: a reviewer acting at the same time as another finds the status moved.
    result = session.execute(
        update(Entry).where(Entry.id == entry.id, Entry.status == step.source.value).values(**values),
        execution_options={"synchronize_session": "fetch"},
    )
    if not isinstance(result, CursorResult) or result.rowcount != 1:
        session.refresh(entry)
        raise LifecycleError(
            f"catalog entry {entry.id!r} changed while {actor} acted on it: it is now {_status(entry.status)}",
            hint=f"look at it again (`govdata catalog show {entry.id}`) and decide anew",
            entry=entry.id,
            status=entry.status,
            role=role,
            action=step.action.value,
        )
    row = Transition(
        entry_id=entry.id,
        action=step.name,
        from_status=step.source.value,
        to_status=step.target.value,
        actor=actor,
        role=role,
        opinion=opinion,
        at=now,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=actor,
        action=f"catalog.{step.name}",
        subject=f"catalog_entry:{entry.id}",
        detail={
            "transition": row.id,
            "entry": entry.id,
            "resource_code": entry.resource_code,
            "department": entry.department_uscc,
            "from": step.source.value,
            "to": step.target.value,
            "role": role,
            "opinion": opinion,
        },
    )
    return row


def auto_publish(session: Session, entry: Entry) -> list[Transition]:
    """Under ``GOVDATA_CATALOG_REVIEW=auto``: walk a new entry to published as the system actor.

    Only an entry that is a draft and has never moved is walked; any other entry (published
    already, or in the hands of people: pending, returned, rejected, withdrawn) is left alone.
    """
    if entry.status != Status.DRAFT.value:
        return []
    moved = session.scalar(select(func.count()).select_from(Transition).where(Transition.entry_id == entry.id))
    if moved:
        return []
    return [
        _apply(session, entry, step, actor=SYSTEM_ACTOR, role=SYSTEM_ROLE, opinion=AUTO_OPINION) for step in _AUTO_PATH
    ]


def history(session: Session, entry_id: str) -> list[Transition]:
    """The entry's transitions, oldest first."""
    return list(session.scalars(select(Transition).where(Transition.entry_id == entry_id).order_by(Transition.id)))


def review_mode(environ: Mapping[str, str] | None = None) -> Literal["auto", "manual"]:
    """``GOVDATA_CATALOG_REVIEW``: ``auto`` (default) or ``manual``."""
    raw = (os.environ if environ is None else environ).get(REVIEW_ENV, "")
    value = raw.strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value == "manual":
        return "manual"
    raise SpecError(
        f"{REVIEW_ENV}={raw!r} is neither auto nor manual",
        hint=f"set {REVIEW_ENV}=auto (the pipeline publishes new entries itself) or manual (people review them)",
    )


# --- users -------------------------------------------------------------------------------------


def parse_role(value: str) -> Role:
    """A role from its value (``staff``) or its Chinese label (``部门工作人员``)."""
    text = value.strip()
    for role in Role:
        if text.lower() == role.value or text == role.label:
            return role
    raise SpecError(f"unknown role {value!r}", hint="use one of: " + ", ".join(f"{r.value} ({r.label})" for r in Role))


def find_department(session: Session, value: str) -> Department:
    """A department by USCC (any case) or exact name."""
    text = value.strip()
    found = session.get(Department, text.upper()) or session.scalar(select(Department).where(Department.name == text))
    if found is None:
        known = list(session.execute(select(Department.uscc, Department.name).order_by(Department.uscc)))
        near = difflib.get_close_matches(text.upper(), [str(u) for u, _ in known], n=1) or difflib.get_close_matches(
            text, [str(n) for _, n in known], n=1
        )
        listing = "; ".join(f"{u} {n}" for u, n in known) or "none yet"
        raise SpecError(
            f"no department {value!r} in the catalog",
            hint=(f"did you mean {near[0]!r}? " if near else "")
            + f"known departments: {listing}. A department is added when one of its datasets is registered",
        )
    return found


def add_user(
    session: Session,
    user_id: str,
    *,
    name: str,
    role: Role | str,
    department: str | None = None,
    by: str = "operator",
) -> User:
    """Create a catalog user; staff and department admins need a department (USCC or name)."""
    if not _USER_ID.fullmatch(user_id or "") or user_id.lower() in RESERVED_IDS:
        raise SpecError(
            f"user id {user_id!r} is not allowed",
            hint="use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter; "
            + ", ".join(sorted(RESERVED_IDS))
            + " are reserved",
        )
    clean_name = (name or "").strip()
    if not clean_name or len(clean_name) > 200:
        raise SpecError(f"user {user_id!r} needs a name of 1 to 200 characters", hint="give --name, e.g. 张三")
    parsed = role if isinstance(role, Role) else parse_role(role)
    if session.get(User, user_id) is not None:
        raise SpecError(f"user {user_id!r} exists already", hint="`govdata catalog users list` shows the users")
    dept = find_department(session, department) if department and department.strip() else None
    if parsed in _DEPT and dept is None:
        raise SpecError(
            f"user {user_id!r} is {role_text(parsed.value)} and so needs a department",
            hint="give --department USCC (the department's 统一社会信用代码)",
        )
    user = User(
        id=user_id, name=clean_name, role=parsed.value, department_uscc=dept.uscc if dept else None, active=True
    )
    session.add(user)
    session.flush()
    audit.append(
        session,
        actor=by,
        action="catalog.user_add",
        subject=f"user:{user_id}",
        detail={"user": user_id, "name": clean_name, "role": parsed.value, "department": user.department_uscc},
    )
    return user


def ensure_user(
    session: Session, user_id: str, *, name: str, role: Role, department: str | None = None
) -> tuple[User, bool]:
    """The user ``user_id``, created if missing (``True`` then); an existing user is left as it is."""
    found = session.get(User, user_id)
    if found is not None:
        return found, False
    return add_user(session, user_id, name=name, role=role, department=department, by=SYSTEM_ACTOR), True


def list_users(session: Session) -> list[User]:
    """Every user: city-level users first, then by department, role and id."""
    users = list(session.scalars(select(User)))
    order = {r.value: i for i, r in enumerate(Role)}
    return sorted(users, key=lambda u: (u.department_uscc or "", order.get(u.role, 9), u.id))
