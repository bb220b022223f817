"""Who sees what in the catalog: roles, entry statuses and the visibility rule.

Only published entries are visible to other departments (and to anonymous readers of the
public read APIs: CKAN, DCAT-AP). A department sees all of its own entries, whatever their
status; the city admin and auditors see everything. The lifecycle that moves entries between
statuses is :mod:`catalog.lifecycle`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import Session

from catalog.models import Entry, User
from pipelines.errors import SpecError

__all__ = ["ANONYMOUS", "OPERATOR", "Role", "Status", "Viewer", "viewer_for", "visibility_filter"]


class Role(StrEnum):
    """The roles of the people acting on the catalog."""

    STAFF = "staff"  # 部门工作人员: edits its department's entries, submits them for registration
    DEPT_ADMIN = "dept_admin"  # 部门管理员: also submits for publication and withdraws
    CITY_ADMIN = "city_admin"  # 市级管理员: reviews registration and publication for the whole city
    AUDITOR = "auditor"  # 审计人员: reads everything, changes nothing

    @property
    def label(self) -> str:
        return {"staff": "部门工作人员", "dept_admin": "部门管理员", "city_admin": "市级管理员", "auditor": "审计人员"}[
            self.value
        ]


class Status(StrEnum):
    """The lifecycle statuses of a catalog entry (DOMAIN.md, "Catalog lifecycle")."""

    DRAFT = "draft"
    REGISTRATION_PENDING = "registration_pending"
    REGISTERED = "registered"
    RETURNED = "returned"
    REJECTED = "rejected"
    PUBLICATION_PENDING = "publication_pending"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return {
            "draft": "草稿",
            "registration_pending": "待注册审核",
            "registered": "已注册",
            "returned": "退回修改",
            "rejected": "审核拒绝",
            "publication_pending": "待发布审核",
            "published": "已发布",
            "withdrawn": "已下架",
        }[self.value]


@dataclass(frozen=True)
class Viewer:
    """Whoever reads the catalog: a user of a department, a city-level user, or nobody in particular."""

    user: str | None = None  # user id; None: an anonymous reader of the public APIs
    role: Role | None = None
    department: str | None = None  # USCC of the viewer's department

    @property
    def sees_everything(self) -> bool:
        return self.role in (Role.CITY_ADMIN, Role.AUDITOR)


#: A reader of the public read APIs: sees published entries only.
ANONYMOUS = Viewer()


def visibility_filter(viewer: Viewer) -> ColumnElement[bool]:
    """A WHERE clause on :class:`catalog.models.Entry` for the entries ``viewer`` may see."""
    if viewer.sees_everything:
        return true()
    published = Entry.status == Status.PUBLISHED.value
    if viewer.department:
        return or_(published, Entry.department_uscc == viewer.department)
    return published


#: The local operator of the command line without ``--as``: whoever can open the database sees it all.
OPERATOR = Viewer(user=None, role=Role.CITY_ADMIN, department=None)


def viewer_for(session: Session, user_id: str | None) -> Viewer:
    """The viewer for user ``user_id`` (``None``: :data:`OPERATOR`); an unknown or inactive user is a SpecError."""
    if user_id is None:
        return OPERATOR
    user = session.get(User, user_id)
    if user is None or not user.active:
        known = sorted(session.scalars(select(User.id).where(User.active.is_(True))))
        near = difflib.get_close_matches(user_id, known, n=1)
        raise SpecError(
            f"no active user {user_id!r} in the catalog",
            hint=(f"did you mean {near[0]!r}? " if near else "")
            + "`govdata catalog users list` shows the users; `govdata catalog users add` creates one",
        )
    return Viewer(user=user.id, role=Role(user.role), department=user.department_uscc)
