"""The first tables: departments, catalog entries with their data items, versions, runs, scorecards.

Revision ID: 0001
Revises: None
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "departments",
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("uscc"),
    )
    op.create_table(
        "runs",
        sa.Column("dataset", sa.String(length=100), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dataset", "run_id"),
    )
    op.create_table(
        "scorecards",
        sa.Column("dataset", sa.String(length=100), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("department_uscc", sa.String(length=18), nullable=False),
        sa.Column("department_name", sa.String(length=200), nullable=False),
        sa.Column("logical_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dataset", "run_id"),
    )
    with op.batch_alter_table("scorecards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scorecards_department_uscc"), ["department_uscc"], unique=False)
        batch_op.create_index(batch_op.f("ix_scorecards_logical_at"), ["logical_at"], unique=False)

    op.create_table(
        "catalog_entries",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("resource_code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("department_uscc", sa.String(length=18), nullable=False),
        sa.Column("classification_axis", sa.String(length=8), nullable=False),
        sa.Column("classification_path", sa.JSON(), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("format_category", sa.String(length=16), nullable=False),
        sa.Column("format_type", sa.String(length=32), nullable=False),
        sa.Column("share_type", sa.String(length=16), nullable=False),
        sa.Column("share_condition", sa.Text(), nullable=True),
        sa.Column("share_method", sa.String(length=16), nullable=False),
        sa.Column("open_to_public", sa.Boolean(), nullable=False),
        sa.Column("open_condition", sa.Text(), nullable=True),
        sa.Column("update_cycle", sa.String(length=8), nullable=False),
        sa.Column("publish_date", sa.Date(), nullable=True),
        sa.Column("related_resources", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_uscc"],
            ["departments.uscc"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("resource_code"),
    )
    op.create_table(
        "data_items",
        sa.Column("entry_id", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("type_code", sa.String(length=1), nullable=False),
        sa.Column("length", sa.Integer(), nullable=True),
        sa.Column("primary_key", sa.Boolean(), nullable=False),
        sa.Column("nullable", sa.Boolean(), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["catalog_entries.id"],
        ),
        sa.PrimaryKeyConstraint("entry_id", "position"),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(length=100), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("quality", sa.JSON(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("watermark", sa.String(length=64), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["catalog_entries.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entry_id", "number"),
    )
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_versions_entry_id"), ["entry_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_versions_fingerprint"), ["fingerprint"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_versions_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_versions_entry_id"))

    op.drop_table("versions")
    op.drop_table("data_items")
    op.drop_table("catalog_entries")
    with op.batch_alter_table("scorecards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scorecards_logical_at"))
        batch_op.drop_index(batch_op.f("ix_scorecards_department_uscc"))

    op.drop_table("scorecards")
    op.drop_table("runs")
    op.drop_table("departments")
