"""Catalog lifecycle: users, classification trees, transitions, schema changes, audit log; more elements.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("hash"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_subject"), ["subject"], unique=False)

    op.create_table(
        "classification_nodes",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("axis", sa.String(length=8), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_code", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_code"],
            ["classification_nodes.code"],
        ),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("classification_nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_classification_nodes_axis"), ["axis"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("department_uscc", sa.String(length=18), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_uscc"],
            ["departments.uscc"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "catalog_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=False),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("opinion", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["catalog_entries.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("catalog_transitions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_transitions_entry_id"), ["entry_id"], unique=False)

    op.create_table(
        "schema_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(length=100), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=False),
        sa.Column("schema_sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opinion", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["catalog_entries.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entry_id", "schema_sha256"),
    )
    with op.batch_alter_table("schema_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_schema_changes_entry_id"), ["entry_id"], unique=False)

    with op.batch_alter_table("catalog_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("classification_code", sa.String(length=32), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("format_other", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("share_method_type", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("open_theme", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("related_business", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("sub_organisation", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("origin", sa.String(length=16), nullable=False, server_default="spec"))
        batch_op.alter_column(
            "status", existing_type=sa.VARCHAR(length=16), type_=sa.String(length=24), existing_nullable=False
        )
        batch_op.create_index(
            batch_op.f("ix_catalog_entries_classification_code"), ["classification_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_catalog_entries_status"), ["status"], unique=False)

    with op.batch_alter_table("data_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sensitive_level", sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column("share_type", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("masking_rule", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("code_set", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=True))

    with op.batch_alter_table("departments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("region", sa.String(length=6), nullable=True))
        batch_op.add_column(sa.Column("level", sa.String(length=4), nullable=False, server_default="市"))

    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_system", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("upstream", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("schema_change", sa.JSON(), nullable=True))
    # Entries registered before this revision: the classification code is the resource code's first part.
    entries = sa.table(
        "catalog_entries", sa.column("resource_code", sa.String), sa.column("classification_code", sa.String)
    )
    bind = op.get_bind()
    for (code,) in bind.execute(sa.select(entries.c.resource_code)).all():
        bind.execute(
            entries.update().where(entries.c.resource_code == code).values(classification_code=code.split("/")[0])
        )


def downgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_column("schema_change")
        batch_op.drop_column("upstream")
        batch_op.drop_column("source_system")

    with op.batch_alter_table("departments", schema=None) as batch_op:
        batch_op.drop_column("level")
        batch_op.drop_column("region")

    with op.batch_alter_table("data_items", schema=None) as batch_op:
        batch_op.drop_column("description")
        batch_op.drop_column("code_set")
        batch_op.drop_column("masking_rule")
        batch_op.drop_column("share_type")
        batch_op.drop_column("sensitive_level")

    with op.batch_alter_table("catalog_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_entries_status"))
        batch_op.drop_index(batch_op.f("ix_catalog_entries_classification_code"))
        batch_op.alter_column(
            "status", existing_type=sa.String(length=24), type_=sa.VARCHAR(length=16), existing_nullable=False
        )
        batch_op.drop_column("origin")
        batch_op.drop_column("status_changed_at")
        batch_op.drop_column("sub_organisation")
        batch_op.drop_column("related_business")
        batch_op.drop_column("open_theme")
        batch_op.drop_column("share_method_type")
        batch_op.drop_column("format_other")
        batch_op.drop_column("classification_code")

    with op.batch_alter_table("schema_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schema_changes_entry_id"))

    op.drop_table("schema_changes")
    with op.batch_alter_table("catalog_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_transitions_entry_id"))

    op.drop_table("catalog_transitions")
    op.drop_table("users")
    with op.batch_alter_table("classification_nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_classification_nodes_axis"))

    op.drop_table("classification_nodes")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_subject"))
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))

    op.drop_table("audit_log")
