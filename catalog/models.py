"""The catalog's tables: departments, entries (13 core elements), data items, versions, runs, scorecards."""

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
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Department(Base):
    """A department (委办局) that provides data; keyed by its USCC (提供方代码)."""

    __tablename__ = "departments"

    uscc: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


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
    status: Mapped[str] = mapped_column(String(16), default="draft")
    source: Mapped[str] = mapped_column(Text, default="")  # lineage: the source system, described
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    department: Mapped[Department] = relationship()
    items: Mapped[list[DataItem]] = relationship(
        back_populates="entry", cascade="all, delete-orphan", order_by="DataItem.position"
    )
    versions: Mapped[list[Version]] = relationship(back_populates="entry", order_by="Version.number")


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
    published_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    entry: Mapped[Entry] = relationship(back_populates="versions")


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
