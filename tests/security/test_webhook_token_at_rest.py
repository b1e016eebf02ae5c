"""Kommo's webhook address holds the account's webhook token: it is kept only as a hash and sealed,
never in clear in any table (finding 3), and rows written before are converted by the migration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from alembic import command
from flask import Flask
from sqlalchemy import create_engine, text

from tests.support.jobs import run_jobs_inline
from tests.support.kommo_sandbox import DEMO_HOST, running_kommo, serving_ours
from tests.support.kommo_world import KommoWorld
from tests.support.security import tables
from widget import create_app
from widget.db import db
from widget.migrate import alembic_config


@pytest.fixture
def kommo_live(make_settings: Any) -> Iterator[KommoWorld]:
    """Our server and the sandbox Kommo on loopback, as in ``tests/support/kommo_world.py``."""

    with running_kommo() as kommo:
        holder: dict[str, Any] = {}

        def build(url: str) -> Flask:
            settings = make_settings(PUBLIC_URL=url, **kommo.env())
            app = create_app(settings)
            app.config["TESTING"] = True
            run_jobs_inline(app)
            holder.update(app=app, settings=settings)
            return app

        with serving_ours(build) as ours:
            kommo.point_at(ours.url)
            yield KommoWorld(kommo=kommo, ours=ours, app=holder["app"], settings=holder["settings"])


def _tables_holding(needle: str) -> list[str]:
    found = []
    with db.engine.connect() as conn:
        for table in tables():
            for row in conn.execute(table.select()):
                for value in row:
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    if needle.encode() in raw:
                        found.append(table.name)
    return sorted(set(found))


def webhook_token_of(world: KommoWorld) -> str:
    [hook] = [h for h in world.sandbox.webhooks(DEMO_HOST) if "/kommo/webhooks/" in h.destination]
    return str(hook.destination).rsplit("/", 1)[1]


def test_no_table_keeps_the_webhook_token_in_clear(kommo_live: KommoWorld):
    kommo_live.install()
    token = webhook_token_of(kommo_live)
    assert len(token) >= 40
    assert _tables_holding(token) == []

    # ... and the address still works: a delivery to it is accepted.
    form = {
        "account[id]": str(kommo_live.sandbox.account(DEMO_HOST).id),
        "leads[responsible][0][id]": "1",
        "leads[responsible][0][responsible_user_id]": str(kommo_live.sandbox.admin_id(DEMO_HOST)),
    }
    delivered = requests.post(f"{kommo_live.url}/kommo/webhooks/{token}", data=form, timeout=10)
    assert delivered.status_code == 200, delivered.text


def test_the_migration_takes_the_token_out_of_stored_addresses(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'webhooks.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0012")
    token = "tok-" + "x" * 40
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, crm, external_id, domain, name, status, status_reason, crm_mode,"
                " installed_at, updated_at) VALUES (1, 'kommo', '1', 'acme.kommo.test', 'Acme', 'active', '',"
                " 'classic', '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO kommo_webhooks (account_id, token_hash, token_enc, destination, events, attempts,"
                " last_error, created_at) VALUES (1, 'h', :sealed, :destination, 'responsible_lead', 0, '',"
                " '2026-01-01')"
            ),
            {"sealed": b"sealed", "destination": f"https://chats.example.com/kommo/webhooks/{token}"},
        )
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM kommo_webhooks")).mappings().one()
    engine.dispose()
    assert row["destination_base"] == "https://chats.example.com"
    assert not any(token in str(value) for value in row.values())
