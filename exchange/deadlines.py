"""Review deadlines of subscription applications, in working days, and whether one is overdue.

The defaults are those of DOMAIN.md ("Exchange"):

- 无条件共享: the platform's conformity check, within 2 working days;
- 有条件共享 (授权共享): the providing department decides within 5 working days, or 10 when the data
  must first be published; for 无条件共享 publication does not lengthen the platform's check;
- 不予共享 (非共享): cannot be requested at all; :func:`review_deadline` raises
  :class:`NotRequestableError` naming that basis.

The periods are configurable: a :class:`DeadlineConfig` passed in, or a YAML file named by
``GOVDATA_REVIEW_DEADLINES`` with the same keys, e.g.::

    unconditional: 2            # 无条件共享
    conditional: 5              # 有条件共享
    conditional_publication: 10 # 有条件共享 when the data must first be published
    close: "17:30"              # optional: deadlines end at this local time instead of 24:00

A deadline is counted by :mod:`exchange.calendar`: the day of submission is not counted; it ends
with the n-th working day after it (Asia/Shanghai).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from exchange.calendar import (
    SHANGHAI,
    CalendarError,
    WorkdayCalendar,
    _aware,
    _raise_problems,
    _read_yaml,
    _validation_problems,
    default_calendar,
)
from pipelines.errors import TerminalError
from pipelines.spec import SHARE_TYPE_ALIASES, ShareType

DEADLINES_ENV = "GOVDATA_REVIEW_DEADLINES"
_MAX_DAYS = 250  # about one year of working days; a longer review period is a typo


class DeadlineError(TerminalError):
    """A review deadline cannot be set: an unknown share type or a bad configuration."""


class NotRequestableError(TerminalError):
    """The resource is 不予共享: no application for it may be made, so it has no review deadline."""


class DeadlineConfig(BaseModel):
    """Review periods in working days, per share type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    unconditional: int = Field(
        default=2, ge=1, le=_MAX_DAYS, description="无条件共享: working days for the platform's conformity check."
    )
    conditional: int = Field(
        default=5, ge=1, le=_MAX_DAYS, description="有条件共享: working days for the provider's decision."
    )
    conditional_publication: int = Field(
        default=10,
        ge=1,
        le=_MAX_DAYS,
        description="有条件共享 when the data must first be published: working days for the provider's decision.",
    )
    close: dt.time | None = Field(
        default=None,
        description="Close of business (local time, e.g. 17:30) at which a deadline ends; none means 24:00.",
    )

    @field_validator("close", mode="before")
    @classmethod
    def _close_is_a_time(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted 17:30 as the base-60 number 1050, which would pass as 00:17:30.
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(
                "close is a time of day like '17:30'; in YAML put it in quotes (unquoted 17:30 is a number)"
            )
        return value

    @model_validator(mode="after")
    def _publication_not_shorter(self) -> DeadlineConfig:
        if self.conditional_publication < self.conditional:
            raise ValueError(
                f"conditional_publication ({self.conditional_publication}) is shorter than conditional "
                f"({self.conditional}); publishing first can only add time"
            )
        if self.close is not None and self.close.tzinfo is not None:
            raise ValueError("close is a local time in Asia/Shanghai; give it without a time zone, e.g. 17:30")
        return self


def load_deadline_config(path: str | Path | None = None) -> DeadlineConfig:
    """The periods from ``path`` or the file named by ``GOVDATA_REVIEW_DEADLINES``; the defaults without one."""
    name = path if path is not None else (os.environ.get(DEADLINES_ENV) or None)
    if name is None:
        return DeadlineConfig()
    file = Path(name)
    try:
        node, data = _read_yaml(file, f"review deadline configuration{'' if path else f' (named by {DEADLINES_ENV})'}")
    except CalendarError as exc:
        raise DeadlineError(exc.message, hint=exc.hint) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DeadlineError(
            f"{file}: the review deadline configuration is a mapping (unconditional, conditional, "
            "conditional_publication, close)",
            hint="write e.g. `conditional: 5` on its own line",
        )
    try:
        return DeadlineConfig.model_validate(data)
    except ValidationError as exc:
        try:
            _raise_problems(
                file,
                "review deadline configuration",
                _validation_problems(file, node, exc, DeadlineConfig),
                "fix the keys named above; periods are whole working days, close is a time like 17:30",
            )
        except CalendarError as err:
            raise DeadlineError(err.message, hint=err.hint) from None
        raise  # pragma: no cover - _raise_problems always raises for a non-empty list


class DeadlineState(StrEnum):
    """Where an application stands against its deadline."""

    ON_TIME = "on_time"
    DUE_TODAY = "due_today"
    OVERDUE = "overdue"

    @property
    def chinese(self) -> str:
        return {"on_time": "未到期", "due_today": "今日到期", "overdue": "已逾期"}[self.value]


@dataclass(frozen=True)
class DeadlineStatus:
    """A deadline seen at one moment.

    ``remaining_working_days``: working days after today up to the due date (0 when due today or
    overdue). ``overdue_working_days``: working days after the due date up to today; 0 on the
    day itself or over the weekend right after it, though the state is already overdue.
    """

    state: DeadlineState
    remaining_working_days: int
    overdue_working_days: int


@dataclass(frozen=True)
class Deadline:
    """The review deadline of one application."""

    share_type: ShareType
    submitted_at: dt.datetime
    due_at: dt.datetime
    working_days: int
    needs_publication: bool
    basis: str
    calendar: WorkdayCalendar = field(repr=False, compare=False)

    @property
    def due_date(self) -> dt.date:
        return self.due_at.astimezone(SHANGHAI).date()

    def status(self, now: dt.datetime) -> DeadlineStatus:
        """On time, due today, or overdue (with the working days overdue) at ``now`` (timezone-aware)."""
        if not isinstance(now, dt.datetime):
            raise DeadlineError(
                f"now must be a timezone-aware datetime, not {type(now).__name__} {now!r}",
                hint="pass datetime.now(tz=ZoneInfo('Asia/Shanghai'))",
            )
        now = _aware(now, "now")
        if now > self.due_at:
            overdue = self.calendar.working_days_between(self.due_at, now)
            return DeadlineStatus(DeadlineState.OVERDUE, 0, overdue)
        if now.astimezone(SHANGHAI).date() == self.due_date:
            return DeadlineStatus(DeadlineState.DUE_TODAY, 0, 0)
        return DeadlineStatus(DeadlineState.ON_TIME, self.calendar.working_days_between(now, self.due_at), 0)


def parse_share_type(value: ShareType | str) -> ShareType:
    """A share type from its name or an alias (授权共享, 非共享, unconditional, …)."""
    if isinstance(value, ShareType):
        return value
    if isinstance(value, str):
        text = value.strip()
        found = SHARE_TYPE_ALIASES.get(text) or SHARE_TYPE_ALIASES.get(text.lower())
        if found is not None:
            return found
        if text in {t.value for t in ShareType}:
            return ShareType(text)
    names = ", ".join(sorted(SHARE_TYPE_ALIASES))
    raise DeadlineError(f"unknown share type {value!r}", hint=f"use one of: {names}")


def review_deadline(
    share_type: ShareType | str,
    submitted_at: dt.datetime,
    *,
    needs_publication: bool = False,
    config: DeadlineConfig | None = None,
    calendar: WorkdayCalendar | None = None,
    not_shared_basis: str | None = None,
) -> Deadline:
    """The deadline for reviewing an application submitted at ``submitted_at`` (timezone-aware).

    Raises :class:`NotRequestableError` for 不予共享 (naming ``not_shared_basis``, the resource's
    recorded basis, when given), :class:`DeadlineError` for an unknown share type, and
    :class:`~exchange.calendar.CalendarError` for a naive time or a period reaching a year without
    a working-day table.
    """
    kind = parse_share_type(share_type)
    if kind is ShareType.NOT_SHARED:
        recorded = f"; the resource's recorded basis: {not_shared_basis.strip()}" if not_shared_basis else ""
        raise NotRequestableError(
            f"a {ShareType.NOT_SHARED.value} resource cannot be requested: data classified "
            f"{ShareType.NOT_SHARED.value} (非共享) is not shared with other departments{recorded}",
            hint="refuse the application at once with this basis; the provider may reclassify the resource "
            "in the catalog (共享类型) if the basis no longer holds",
        )
    cfg = config or load_deadline_config()
    cal = calendar or default_calendar()
    if kind is ShareType.UNCONDITIONAL:
        days = cfg.unconditional
        basis = f"{kind.value}: the platform's conformity check within {days} working days"
    elif needs_publication:
        days = cfg.conditional_publication
        basis = f"{kind.value}: the provider decides within {days} working days (the data must first be published)"
    else:
        days = cfg.conditional
        basis = f"{kind.value}: the provider decides within {days} working days"
    due = cal.add_working_days(submitted_at, days, close=cfg.close)
    return Deadline(
        share_type=kind,
        submitted_at=submitted_at.astimezone(SHANGHAI),
        due_at=due,
        working_days=days,
        needs_publication=needs_publication,
        basis=basis,
        calendar=cal,
    )
