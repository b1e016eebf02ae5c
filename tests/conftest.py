"""Shared fixtures: a real database (SQLite file, or PostgreSQL when TEST_DATABASE_URL is set),
the app built on it, and a clean slate between tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from tests.support.jobs import run_jobs_inline
from widget import create_app
from widget.config import Settings
from widget.db import Base, db
from widget.migrate import upgrade

TOKEN_KEY = Fernet.generate_key().decode()


def _database_url(tmp_root: Path) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_root / 'test.db'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres_only(reason=…)`` are skipped unless TEST_DATABASE_URL is PostgreSQL."""
    if os.environ.get("TEST_DATABASE_URL", "").startswith("postgres"):
        return
    for item in items:
        mark = item.get_closest_marker("postgres_only")
        if mark is not None:
            why = mark.kwargs.get("reason", "needs PostgreSQL")
            item.add_marker(pytest.mark.skip(reason=f"{why} (set TEST_DATABASE_URL to a PostgreSQL database)"))


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("instance")


@pytest.fixture(scope="session")
def database_url(instance_dir: Path) -> Iterator[str]:
    url = _database_url(instance_dir)
    settings = Settings.from_env({"SANDBOX": "1", "DATABASE_URL": url, "INSTANCE_PATH": str(instance_dir)})
    upgrade(settings.database_url)
    yield settings.database_url
    if db.url is not None:
        db.engine.dispose()  # no connection outlives the run (ResourceWarning on PostgreSQL)


def base_env(instance_dir: Path, database_url: str, **extra: Any) -> dict[str, str]:
    env = {
        "SANDBOX": "1",
        "INSTANCE_PATH": str(instance_dir),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key-0123456789abcdef",
        "TOKEN_ENCRYPTION_KEY": TOKEN_KEY,
        "PUBLIC_URL": "http://127.0.0.1:5000",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def make_settings(instance_dir: Path, database_url: str) -> Any:
    def factory(**extra: Any) -> Settings:
        return Settings.from_env(base_env(instance_dir, database_url, **extra))

    return factory


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    application.config["TESTING"] = True

    run_jobs_inline(application)
    yield application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(autouse=True)
def _clean_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts from empty tables (the schema comes from the migrations, once)."""
    yield
    if "database_url" not in request.fixturenames:
        return
    if db.url is None:
        return
    # Ids restart with the tables: a channel id cached by the gateway intake could name another
    # account's channel in the next test (never in production, where ids are not reused).
    from widget.services.channels.signing import forget_keys

    forget_keys()
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    """The one ``sync_playwright()`` of the run: Playwright allows only one per process, so every
    browser test (in ``tests/browser`` or beside a sandbox's tests) shares it."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p
