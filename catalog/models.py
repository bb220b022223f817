"""The platform database's tables.

Catalog: departments, users, classification trees, entries (13 core elements), data items,
versions with their lineage and schema changes, lifecycle transitions; the pipeline's runs and
scorecards; the append-only audit log. Alembic migrations in ``catalog/migrations`` create
them (never ``create_all``): a change here needs a new migration (see CONTRIBUTING).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC date-time on every database: SQLite hands back naive values, this attaches UTC.

    Values are stored in UTC; a naive value given to it is refused (it would be ambiguous).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive date-time {value.isoformat()} given for a UTC column: attach a time zone")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Department(Base):
    """A department (委办局) that provides data; keyed by its USCC (提供方代码)."""

    __tablename__ = "departments"

    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(6))  # GB/T 2260 code
    level: Mapped[str] = mapped_column(String(4), default="市")  # 市 or 区


class User(Base):
    """A person acting on the catalog: department staff, department admin, city admin or auditor."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # login name
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # see catalog.lifecycle.Role
    department_uscc: Mapped[str | None] = mapped_column(ForeignKey("departments.uscc"))  # None: city-level
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    department: Mapped[Department | None] = relationship()


class ClassificationNode(Base):
    """One node of a classification tree: 类 (the axis), 项, 目 or 细目, keyed by its code prefix."""

    __tablename__ = "classification_nodes"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)  # e.g. "1", "101", "101030"
    axis: Mapped[str] = mapped_column(String(8), index=True)  # 基础 主题 部门
    level: Mapped[int] = mapped_column(Integer)  # 1 类, 2 项, 3 目, 4 细目
    name: Mapped[str] = mapped_column(String(200))
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("classification_nodes.code"))


class Entry(Base):
    """A catalog entry: one data resource with the 13 core metadata elements."""

    __tablename__ = "catalog_entries"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # dataset id
    resource_code: Mapped[str] = mapped_column(String(64), unique=True)  # 3 信息资源代码
    name: Mapped[str] = mapped_column(String(300))  # 2 信息资源名称
    department_uscc: Mapped[str] = mapped_column(ForeignKey("departments.uscc"))  # 4, 5 提供方 / 代码
    classification_axis: Mapped[str] = mapped_column(String(8))  # 1 信息资源分类
    classification_path: Mapped[list[Any]] = mapped_column()
    abstract: Mapped[str] = mapped_column(Text)  # 6 信息资源摘要
    format_category: Mapped[str] = mapped_column(String(16))  # 7 信息资源格式
    format_type: Mapped[str] = mapped_column(String(32))
    share_type: Mapped[str] = mapped_column(String(16))  # 9 共享属性
    share_condition: Mapped[str | None] = mapped_column(Text)
    share_method: Mapped[str] = mapped_column(String(16))
    open_to_public: Mapped[bool] = mapped_column(Boolean, default=False)  # 10 开放属性
    open_condition: Mapped[str | None] = mapped_column(Text)
    update_cycle: Mapped[str] = mapped_column(String(8))  # 11 更新周期
    publish_date: Mapped[dt.date | None] = mapped_column(Date)  # 12 发布日期
    related_resources: Mapped[list[Any]] = mapped_column(default=list)  # 13 关联资源代码
    classification_code: Mapped[str] = mapped_column(String(32), index=True)  # the code before the "/"
    format_other: Mapped[str | None] = mapped_column(Text)  # 其他类型资源格式描述
    share_method_type: Mapped[str | None] = mapped_column(String(64))  # 共享方式类型
    open_theme: Mapped[str | None] = mapped_column(String(100))  # 开放主题分类
    related_business: Mapped[str | None] = mapped_column(Text)  # 关联业务事项
    sub_organisation: Mapped[str | None] = mapped_column(String(200))  # 下设机构
    status: Mapped[str] = mapped_column(String(24), default="draft", index=True)  # see catalog.lifecycle.Status
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    origin: Mapped[str] = mapped_column(String(16), default="spec")  # spec (a pipeline) or import (a spreadsheet)
    source: Mapped[str] = mapped_column(Text, default="")  # lineage: the source system, described
    # What search matches: name, abstract and data items, normalised; kept current on every flush (catalog.search).
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    department: Mapped[Department] = relationship()
    items: Mapped[list[DataItem]] = relationship(
        back_populates="entry", cascade="all, delete-orphan", order_by="DataItem.position"
    )
    versions: Mapped[list[Version]] = relationship(back_populates="entry", order_by="Version.number")
    transitions: Mapped[list[Transition]] = relationship(
        back_populates="entry", order_by="Transition.id", cascade="all, delete-orphan"
    )


class DataItem(Base):
    """8 信息项: one column of the resource."""

    __tablename__ = "data_items"

    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entries.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    type_code: Mapped[str] = mapped_column(String(1))  # C N Y D T L M G B I F
    length: Mapped[int | None] = mapped_column(Integer)
    primary_key: Mapped[bool] = mapped_column(Boolean, default=False)
    nullable: Mapped[bool] = mapped_column(Boolean, default=True)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    sensitive_level: Mapped[str | None] = mapped_column(String(4))  # L1 … L4
    share_type: Mapped[str | None] = mapped_column(String(16))  # item-level; None: the resource's
    masking_rule: Mapped[str | None] = mapped_column(String(16))  # pipelines.masking.MaskRule
    code_set: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)

    entry: Mapped[Entry] = relationship(back_populates="items")


class Version(Base):
    """One published version of a resource: what was published, from which run, how good."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("entry_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str] = mapped_column(String(40))
    row_count: Mapped[int] = mapped_column(BigInteger)
    content_sha256: Mapped[str] = mapped_column(String(64))  # sha256 of the published file
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)  # content identity (see runner)
    schema: Mapped[list[Any]] = mapped_column()
    quality: Mapped[dict[str, Any]] = mapped_column()
    lineage: Mapped[dict[str, Any]] = mapped_column()
    location: Mapped[str] = mapped_column(Text)
    watermark: Mapped[str | None] = mapped_column(String(64))
    source_system: Mapped[str | None] = mapped_column(Text)  # lineage: where the rows came from
    upstream: Mapped[list[Any]] = mapped_column(default=list)  # lineage: resource codes read by the run
    schema_change: Mapped[dict[str, Any] | None] = mapped_column()  # vs the previous version; see catalog.schema
    published_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    entry: Mapped[Entry] = relationship(back_populates="versions")


class Transition(Base):
    """One lifecycle step of an entry: who did what, when, from which status to which, and why."""

    __tablename__ = "catalog_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))  # user id
    role: Mapped[str] = mapped_column(String(16))
    opinion: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    entry: Mapped[Entry] = relationship(back_populates="transitions")


class SchemaChange(Base):
    """A breaking schema change waiting for (or given) its approval before it may be published."""

    __tablename__ = "schema_changes"
    __table_args__ = (UniqueConstraint("entry_id", "schema_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("catalog_entries.id"), index=True)
    from_version: Mapped[int] = mapped_column(Integer)
    schema_sha256: Mapped[str] = mapped_column(String(64))  # the new schema's identity
    kind: Mapped[str] = mapped_column(String(16))  # compatible or breaking
    changes: Mapped[list[Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending approved rejected
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    opinion: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int | None] = mapped_column(Integer)  # the version that published it


class AuditEvent(Base):
    """The append-only audit log; each entry's hash covers its content and the previous hash."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(200), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column()
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Run(Base):
    """The last report of each run key (dataset, run id); a re-run replaces it."""

    __tablename__ = "runs"

    dataset: Mapped[str] = mapped_column(String(100), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int | None] = mapped_column(Integer)
    report: Mapped[dict[str, Any]] = mapped_column()
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Scorecard(Base):
    """The quality scorecard of each run key (held runs too); see :mod:`pipelines.scorecard`.

    No foreign key to the entry: a run held before its first publication has no entry yet.
    The department is kept as it was at the run, for the per-department trend.
    """

    __tablename__ = "scorecards"

    dataset: Mapped[str] = mapped_column(String(100), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    department_uscc: Mapped[str] = mapped_column(String(18), index=True)
    department_name: Mapped[str] = mapped_column(String(200))
    logical_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)  # the logical date, UTC
    status: Mapped[str] = mapped_column(String(16))  # passed, held, published, unchanged
    version: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    card: Mapped[dict[str, Any]] = mapped_column()  # the scorecard document (govdata.scorecard/1)
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Registers the flush listener that keeps Entry.search_text current, whichever code writes an entry.
import catalog.search  # noqa: E402, F401

# The exchange's tables share this metadata (one database, one migration history).
import exchange.models  # noqa: E402, F401
