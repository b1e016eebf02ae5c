"""Scenario helpers for the conversation tests: an account with employees, a channel with roles
and settings, the fake CRM plugged in as the account's port, a fake transport for our replies, and
signed gateway deliveries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support.factories import make_account, seed_crm, small_snapshot
from tests.support.fake_crm import FakeCrm
from tests.support.jobs import run_jobs_inline, use_crm_port
from widget.config import Settings
from widget.db import db
from widget.domain.crm import CrmPipeline, CrmSnapshot, CrmStage, CrmUser
from widget.models import AccountSettings, Channel, ChannelRole, ChannelSettings, Employee
from widget.models.accounts import CRM_KOMMO
from widget.services.channels.signing import get_or_create_gateway_secret, sign


def bitrix24_snapshot(n_users: int) -> CrmSnapshot:
    users = tuple(CrmUser(str(100 + i), f"User {i}", f"u{i}@example.com", True, i == 0, "en") for i in range(n_users))
    return CrmSnapshot(
        users=users,
        pipelines=(
            CrmPipeline("deal", "0", "General", 300, True, (CrmStage("NEW", "New", 10, "open"),)),
            CrmPipeline("deal", "3", "Wholesale", 200, False, (CrmStage("C3:NEW", "New", 10, "open"),)),
            CrmPipeline("lead", "STATUS", "Leads", 0, True, (CrmStage("NEW", "Unassigned", 10, "open"),)),
        ),
        crm_mode="classic",
    )


@dataclass
class World:
    app: Flask
    account_id: int
    channel_id: int
    secret: str
    crm: FakeCrm
    transport: Any  # what replies leave through (a RecordingTransport unless the test set its own)
    employees: dict[str, int] = field(default_factory=dict)  # "User 0" -> employee id
    crm_users: dict[int, str] = field(default_factory=dict)  # employee id -> CRM user id

    def emp(self, index: int) -> int:
        return self.employees[f"User {index}"]

    def payload(self, n: int = 1, **over: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": f"msg-{n}",
            "channel_id": self.channel_id,
            "chat_type": "whatsapp",
            "chat_id": f"chat-{n}",
            "phone": f"+1555{n:07d}",
            "sender_name": f"Client {n}",
            "text": f"Hello from client {n}",
            "sent_at": datetime.now(UTC).isoformat(),
        }
        body.update(over)
        return body

    def post(self, client: FlaskClient, body: dict[str, Any] | bytes, *, secret: str | None = None) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sig = sign(secret or self.secret, raw)
        return client.post(
            "/gateway/messages",
            data=raw,
            headers={"X-Gateway-Signature": sig, "Content-Type": "application/json"},
        )


def record_replies(app: Flask) -> Any:
    """The transport this app's replies leave through: the one a test set, else a new
    ``RecordingTransport``. Replies go through the product path (``replies.send_reply``), which
    delivers them; without this the sandbox default would send them to the reserved gateway port."""
    from tests.support.chat_panel import RecordingTransport  # it imports this module

    services = app.extensions["widget"]
    if not isinstance(services.transport, RecordingTransport):
        services.transport = RecordingTransport()
    return services.transport


def add_second_channel(w: World) -> int:
    """Another channel of the same account, set up like the first (same roles and settings)."""
    with db.transaction() as s:
        first = s.get(ChannelSettings, w.channel_id)
        assert first is not None
        channel = Channel(account_id=w.account_id, transport="telegram", name="Support Telegram", address="@acme_bot")
        s.add(channel)
        s.flush()
        s.add(
            ChannelSettings(
                channel_id=channel.id,
                account_id=w.account_id,
                new_client_entity=first.new_client_entity,
                crm_pipeline_id=first.crm_pipeline_id,
                crm_stage_id=first.crm_stage_id,
                distribution=first.distribution,
            )
        )
        for role in s.execute(select(ChannelRole).where(ChannelRole.channel_id == w.channel_id)).scalars().all():
            s.add(
                ChannelRole(
                    account_id=w.account_id,
                    channel_id=channel.id,
                    employee_id=role.employee_id,
                    role=role.role,
                    gets_new_clients=role.gets_new_clients,
                )
            )
        return channel.id


def make_world(
    app: Flask,
    *,
    crm: str = CRM_KOMMO,
    n_users: int = 4,
    roles: dict[int, tuple[str | None, bool]] | None = None,
    distribution: str = "first_reply",
    entity: str = "lead",
    pipeline_id: str | None = "1",
    stage_id: str | None = "11",
    inactive: tuple[int, ...] = (),
    fallback: int | None = None,
    notify_heads_all: bool = False,
    external_id: str = "1001",
) -> World:
    """``roles`` maps user index -> (role, gets new clients). User 0 is the admin who installed."""
    fake = FakeCrm()
    use_crm_port(app, fake)
    transport = record_replies(app)
    account_id = make_account(
        crm=crm,
        external_id=external_id,
        domain="acme.kommo.test" if crm == CRM_KOMMO else "acme.bitrix24.test",
        installed_by_crm_user_id="100",
    )
    seed_crm(account_id, small_snapshot(n_users) if crm == CRM_KOMMO else bitrix24_snapshot(n_users))
    with db.transaction() as s:
        emps = {e.name: e for e in s.query(Employee).filter_by(account_id=account_id)}
        for i in inactive:
            emps[f"User {i}"].is_active = False
        channel = Channel(account_id=account_id, transport="whatsapp", name="Sales WhatsApp", address="+15550001")
        s.add(channel)
        s.flush()
        s.add(
            ChannelSettings(
                channel_id=channel.id,
                account_id=account_id,
                new_client_entity=entity,
                crm_pipeline_id=pipeline_id,
                crm_stage_id=stage_id,
                distribution=distribution,
            )
        )
        for idx, (role, gets) in (roles or {}).items():
            s.add(
                ChannelRole(
                    account_id=account_id,
                    channel_id=channel.id,
                    employee_id=emps[f"User {idx}"].id,
                    role=role,
                    gets_new_clients=gets,
                )
            )
        s.add(
            AccountSettings(
                account_id=account_id,
                notify_heads_all=notify_heads_all,
                fallback_employee_id=emps[f"User {fallback}"].id if fallback is not None else None,
            )
        )
        secret = get_or_create_gateway_secret(s, app.extensions["widget"].box, account_id)
        world = World(app, account_id, channel.id, secret, fake, transport)
        world.employees = {name: e.id for name, e in emps.items()}
        world.crm_users = {e.id: e.crm_user_id for e in emps.values()}
    return world


def child_process_app(settings: Settings) -> Flask:
    """The app as a spawned test process builds it: its own engine, jobs run inline, its own
    in-memory CRM stand-in and reply transport (the database is what the processes share)."""
    from widget import create_app

    app = create_app(settings)
    run_jobs_inline(app)
    use_crm_port(app, FakeCrm())
    record_replies(app)
    return app
