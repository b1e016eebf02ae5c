"""The migrations are one linear history that builds exactly the models' schema, and can be undone."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import widget.models  # noqa: F401  (registers every table)
from widget.config import Settings
from widget.db import Base, make_engine
from widget.migrate import alembic_config


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind the suite runs on."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    target = make_url(
        Settings.from_env({"SANDBOX": "1", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)}).database_url
    )
    name = f"{target.database}_migrations"
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield target.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_history_is_linear():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    for rev in script.walk_revisions():
        assert not isinstance(rev.down_revision, tuple | list), f"{rev.revision} merges branches"


def _differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))
    finally:
        engine.dispose()


def test_upgrade_builds_the_models_schema_and_downgrade_undoes_it(scratch_url: str):
    cfg = alembic_config(scratch_url)
    command.upgrade(cfg, "head")
    assert _differences(scratch_url) == []

    command.downgrade(cfg, "base")
    engine = make_engine(scratch_url)
    with engine.connect() as conn:
        tables = set(Base.metadata.tables) & set(engine.dialect.get_table_names(conn))
    engine.dispose()
    assert tables == set()

    command.upgrade(cfg, "head")  # and again, from nothing
    assert _differences(scratch_url) == []
