"""``/exchange/v1/applications`` and ``/exchange/v1/reviews``: apply for data, review, withdraw, the queue.

=========================================  ===========================================================
``POST /applications``                     apply (staff or reviewer of a department); 201 with the
                                           record, also when it is refused at once (不予共享)
``GET /applications``                      the applications the caller may see (status, role, entry;
                                           limit/offset)
``GET /applications/{id}``                 one application, with its deadline state when pending
``POST /applications/{id}/decision``       approve (with the grant's terms) or refuse (with a reason)
``POST /applications/{id}/withdraw``       the applying department withdraws its pending application
``GET /reviews/pending``                   the caller's review queue with deadline states
=========================================  ===========================================================

The rules are those of :mod:`exchange.applications`; this module only maps HTTP to them. A record
the caller may not see answers 404, whatever the reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from exchange import applications as core
from exchange.api import DB, ERRORS, Caller
from exchange.grants import MAX_TEXT, MAX_USES, department_names
from exchange.routes_grants import GrantOut, grant_out

router = APIRouter(tags=["applications"], responses=ERRORS)

Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
AppId = Annotated[int, PathParam(ge=1, le=2**31 - 1, description="the application's id")]
Method = Literal["file", "database", "api"]
ApplicationStatus = Literal["pending", "approved", "refused", "withdrawn"]
DeadlineStateName = Literal["on_time", "due_today", "overdue"]


class Target(BaseModel):
    """Where a database delivery writes: no secrets, only the name of the variable holding the URL."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url_env: str = Field(
        max_length=100,
        description="name of the environment variable holding the receiving database's SQLAlchemy URL",
    )
    table: str = Field(max_length=63, description="the table rows are written into")
    schema_: str | None = Field(
        default=None, alias="schema", max_length=63, description="the schema, if not the default"
    )


class ApplicationIn(BaseModel):
    """An application for data items of another department's published resource."""

    model_config = ConfigDict(extra="forbid")

    entry: str = Field(min_length=1, max_length=100, description="the catalog entry (resource) id")
    items: list[Name] = Field(min_length=1, max_length=core.MAX_ITEMS, description="names of the data items needed")
    purpose: Text = Field(description="事由: why the data is needed")
    scenario: Text = Field(description="应用场景: where and how it will be used")
    delivery_method: Method = Field(description="file (文件交换), database (库表交换) or api (接口服务)")
    end_date: dt.date = Field(description="the use ends at the end of this day (Asia/Shanghai); at most 5 years ahead")
    target: Target | None = Field(default=None, description="database delivery only: where to write")


class DeadlineOut(BaseModel):
    """Where a pending application stands against its review deadline."""

    state: DeadlineStateName
    state_label: str
    remaining_working_days: int | None
    overdue_working_days: int | None
    age_working_days: int | None


class ApplicationOut(BaseModel):
    """An application and its review."""

    id: int
    entry: str
    entry_name: str
    provider: str
    provider_name: str | None
    applicant_department: str
    applicant_department_name: str | None
    applicant: str
    items: list[str]
    purpose: str
    scenario: str
    delivery_method: str
    end_date: dt.date
    target: dict[str, str] | None
    share_type: str
    reviewer: str = Field(description="city (conformity check), provider, or system (refused at once)")
    reviewer_label: str
    status: ApplicationStatus
    status_label: str
    submitted_at: dt.datetime
    due_at: dt.datetime | None
    decided_at: dt.datetime | None
    decided_by: str | None
    reason: str | None = Field(description="the basis of a refusal, or the opinion of an approval")
    grant_id: int | None
    deadline: DeadlineOut | None


class ApplicationPage(BaseModel):
    """One page of applications, newest first."""

    total: int
    limit: int
    offset: int
    items: list[ApplicationOut]


class DecisionIn(BaseModel):
    """A reviewer's decision; the grant's terms apply to an approval only."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "refuse"]
    opinion: Text | None = Field(default=None, description="required to refuse: the reason")
    items: list[Name] | None = Field(
        default=None, min_length=1, max_length=core.MAX_ITEMS, description="approve only these (default: all)"
    )
    masking: dict[Name, Name | None] | None = Field(
        default=None,
        max_length=core.MAX_ITEMS,
        description="item → masking rule (name, mobile, resident_id, address, partial, redact, hash) or null "
        "to deliver it in clear; items not named get the default rule at delivery",
    )
    join_keys: list[Name] | None = Field(
        default=None, max_length=core.MAX_ITEMS, description="granted items used as join keys (hashed, never masked)"
    )
    expires_at: dt.datetime | None = Field(
        default=None, description="end the grant before the application's end date (with a time zone)"
    )
    max_uses: int | None = Field(default=None, ge=1, le=MAX_USES, description="cap on deliveries/calls")


class DecisionOut(BaseModel):
    """The decided application and, for an approval, its grant."""

    application: ApplicationOut
    grant: GrantOut | None


class WithdrawIn(BaseModel):
    """Why the application is withdrawn (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: Text | None = None


class PendingOut(BaseModel):
    """A pending application in a review queue, with its deadline state."""

    id: int
    entry: str
    entry_name: str
    provider: str
    provider_name: str | None
    applicant_department: str
    applicant_department_name: str | None
    applicant: str
    reviewer: str
    share_type: str
    items: list[str]
    delivery_method: str
    submitted_at: dt.datetime
    due_at: dt.datetime | None
    state: DeadlineStateName
    state_label: str
    remaining_working_days: int | None
    overdue_working_days: int | None
    age_working_days: int | None


def _out(db: DB, app: Any, names: dict[str, str] | None = None) -> dict[str, Any]:
    grant = core.grants_of(db, [app]).get(app.id)
    return core.application_dict(app, grant_id=grant, names=names or department_names(db))


@router.post(
    "/applications",
    response_model=ApplicationOut,
    status_code=201,
    summary="Apply for data items of another department's resource (不予共享: recorded as refused at once)",
)
def apply(body: ApplicationIn, caller: Caller, db: DB) -> dict[str, Any]:
    app = core.submit(
        db,
        caller,
        entry=body.entry,
        items=body.items,
        purpose=body.purpose,
        scenario=body.scenario,
        delivery_method=body.delivery_method,
        end_date=body.end_date,
        target=None if body.target is None else body.target.model_dump(by_alias=True, exclude_none=True),
    )
    return _out(db, app)


@router.get("/applications", response_model=ApplicationPage, summary="The applications the caller may see")
def applications(
    caller: Caller,
    db: DB,
    status: Annotated[ApplicationStatus | None, Query(description="only this status")] = None,
    role: Annotated[
        Literal["incoming", "outgoing"] | None,
        Query(description="incoming: for the caller's resources; outgoing: the caller's department's own"),
    ] = None,
    entry: Annotated[str | None, Query(max_length=100, description="only for this resource")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> dict[str, Any]:
    rows, total = core.list_applications(db, caller, status=status, role=role, entry=entry, limit=limit, offset=offset)
    grants = core.grants_of(db, rows)
    names = department_names(db)
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "items": [core.application_dict(a, grant_id=grants.get(a.id), names=names) for a in rows],
    }


@router.get("/applications/{application_id}", response_model=ApplicationOut, summary="One application")
def application(application_id: AppId, caller: Caller, db: DB) -> dict[str, Any]:
    return _out(db, core.get_application(db, caller, application_id))


@router.post(
    "/applications/{application_id}/decision",
    response_model=DecisionOut,
    summary="Approve (creating the grant) or refuse (with a reason) a pending application",
)
def decision(application_id: AppId, body: DecisionIn, caller: Caller, db: DB) -> dict[str, Any]:
    app, grant = core.decide(
        db,
        caller,
        application_id,
        approve=body.decision == "approve",
        opinion=body.opinion,
        items=body.items,
        masking=body.masking,
        join_keys=body.join_keys,
        expires_at=body.expires_at,
        max_uses=body.max_uses,
    )
    names = department_names(db)
    return {
        "application": core.application_dict(app, grant_id=None if grant is None else grant.id, names=names),
        "grant": None if grant is None else grant_out(grant, names),
    }


@router.post(
    "/applications/{application_id}/withdraw",
    response_model=ApplicationOut,
    summary="Withdraw the caller's department's pending application",
)
def withdraw(application_id: AppId, caller: Caller, db: DB, body: WithdrawIn | None = None) -> dict[str, Any]:
    app = core.withdraw(db, caller, application_id, reason=None if body is None else body.reason)
    return _out(db, app)


@router.get(
    "/reviews/pending",
    response_model=list[PendingOut],
    summary="The caller's review queue: pending applications it may decide, most urgent first",
)
def pending(caller: Caller, db: DB) -> list[dict[str, Any]]:
    return core.review_queue(db, caller)
