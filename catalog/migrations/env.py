"""Alembic environment of the platform database (catalog, runs, scorecards, audit log).

Run by :func:`catalog.store.migrate` with an open connection (``config.attributes["connection"]``);
``alembic -c catalog/alembic.ini …`` works too, with ``GOVDATA_CATALOG_URL`` naming the database.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from catalog.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = os.environ.get("GOVDATA_CATALOG_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set GOVDATA_CATALOG_URL to the catalog database URL")
    engine = create_engine(url)
    with engine.begin() as con:
        _run(con)
    engine.dispose()
