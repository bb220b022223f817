"""The platform database is made by its Alembic migrations, and they match the models.

The PostgreSQL side (up, down, up again on the real server) is in
``tests/integration/test_catalog_pg.py``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from catalog.models import Base
from catalog.store import MIGRATIONS, CatalogStore, current_revision, migrate
from pipelines.spec import load_spec

REPO = Path(__file__).resolve().parents[2]


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _revisions() -> list[str]:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return [r.revision for r in reversed(list(ScriptDirectory.from_config(config).walk_revisions()))]


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Objects the models do not declare on purpose: the full-text index SQLite keeps beside them."""
    return not (type_ == "table" and name is not None and ("_fts" in name or name == "alembic_version"))


def test_a_new_database_is_migrated_to_head_and_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    CatalogStore(url)
    assert current_revision(url) == _head()
    engine = sa.create_engine(url)
    with engine.connect() as con:
        diff = compare_metadata(
            MigrationContext.configure(con, opts={"compare_type": True, "include_object": _ours}), Base.metadata
        )
    engine.dispose()
    assert diff == [], f"catalog/models.py and catalog/migrations disagree; add a migration: {diff}"


def test_every_revision_goes_down_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    store = CatalogStore(url)
    store.register(load_spec(REPO / "datasets/hrss/insured_persons.yaml"), source="test")
    revisions = _revisions()
    assert revisions[0] == "0001" and len(revisions) >= 2
    for down in reversed(revisions[:-1]):
        migrate(url, down)
        assert current_revision(url) == down
    migrate(url, "base")
    assert current_revision(url) is None
    names = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert names <= {"alembic_version"}, f"tables left after downgrading to base: {names}"
    migrate(url, "head")
    assert current_revision(url) == _head()


def test_data_survives_a_downgrade_to_the_first_tables_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    store = CatalogStore(url)
    store.register(load_spec(REPO / "datasets/hrss/insured_persons.yaml"), source="test")
    migrate(url, "0001")
    migrate(url, "head")
    entry = CatalogStore(url).entry("hrss_insured_persons")
    assert entry is not None
    assert entry.classification_code == "101030002"  # refilled from the resource code by 0002
    assert entry.department.level == "市"


def test_a_database_made_before_migrations_is_stamped_and_upgraded(tmp_path: Path) -> None:
    """The first tables, as ``create_all`` made them before Alembic: no ``alembic_version``."""
    path = tmp_path / "catalog.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as con:
        MigrationContext.configure(con)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = con
        from alembic import command

        command.upgrade(config, "0001")
        con.exec_driver_sql("DROP TABLE alembic_version")
        con.exec_driver_sql("INSERT INTO departments VALUES ('11310000MB2F45678X', '测试局')")
    engine.dispose()
    store = CatalogStore(f"sqlite:///{path}")
    assert current_revision(store.url) == _head()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT name, level FROM departments").fetchall() == [("测试局", "市")]


def test_an_unreachable_database_is_a_clear_error() -> None:
    from pipelines.errors import TransientError

    with pytest.raises(TransientError, match="not reachable") as info:
        CatalogStore("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert "GOVDATA_CATALOG_URL" in (info.value.hint or "")
