"""Catalog search: entries keep their searchable text; SQLite indexes it with FTS5 trigram, PostgreSQL with pg_trgm.

``catalog_entries.search_text`` holds the entry's name, abstract and data-item names, normalised
(see :mod:`catalog.search`). On SQLite an external-content FTS5 table (``trigram`` tokenizer)
indexes it, kept in step by triggers; on PostgreSQL a GIN index with ``gin_trgm_ops`` does, after
``CREATE EXTENSION IF NOT EXISTS pg_trgm`` (a clear error when the extension cannot be created).

A later migration that makes SQLite copy ``catalog_entries`` (batch mode) drops the triggers:
it must call :func:`catalog.search.install_sqlite_index` at its end.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

from catalog.search import compose_search_text, drop_sqlite_index, install_sqlite_index, pg_trgm_schema
from pipelines.errors import TerminalError

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_INDEX = "ix_catalog_entries_search_trgm"


def _backfill(bind: sa.Connection) -> None:
    entries = sa.table(
        "catalog_entries", sa.column("id"), sa.column("name"), sa.column("abstract"), sa.column("search_text")
    )
    items = sa.table("data_items", sa.column("entry_id"), sa.column("position"), sa.column("name"), sa.column("title"))
    by_entry: dict[str, list[tuple[str, str]]] = {}
    for entry_id, name, title in bind.execute(
        sa.select(items.c.entry_id, items.c.name, items.c.title).order_by(items.c.entry_id, items.c.position)
    ):
        by_entry.setdefault(str(entry_id), []).append((name, title))
    for entry_id, name, abstract in bind.execute(sa.select(entries.c.id, entries.c.name, entries.c.abstract)).all():
        value = compose_search_text(name, abstract, by_entry.get(str(entry_id), []))
        bind.execute(entries.update().where(entries.c.id == entry_id).values(search_text=value))


def _pg_trgm(bind: sa.Connection) -> str:
    schema = pg_trgm_schema(bind)
    if schema is None:
        database = bind.execute(sa.text("SELECT current_database()")).scalar()
        try:
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DBAPIError as exc:
            raise TerminalError(
                f"catalog search needs the PostgreSQL extension pg_trgm, and it cannot be created in database "
                f"{database!r}: {str(exc.orig).strip()}",
                hint=f"ask the database administrator to run `CREATE EXTENSION pg_trgm;` in {database!r} "
                "(PostgreSQL's contrib package must be installed), then open the catalog again",
            ) from None
        schema = pg_trgm_schema(bind)
        assert schema is not None
    return schema


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("catalog_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    _backfill(bind)
    if bind.dialect.name == "sqlite":
        install_sqlite_index(bind)
    elif bind.dialect.name == "postgresql":
        schema = _pg_trgm(bind)
        quoted = bind.dialect.identifier_preparer.quote(schema)
        op.execute(f"CREATE INDEX {PG_INDEX} ON catalog_entries USING gin (search_text {quoted}.gin_trgm_ops)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        drop_sqlite_index(bind)
    elif bind.dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")
    with op.batch_alter_table("catalog_entries", schema=None) as batch_op:
        batch_op.drop_column("search_text")
