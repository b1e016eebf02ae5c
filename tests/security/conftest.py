"""The world the security suite attacks: account A (Kommo) and account B (Bitrix24), each with
employees, pipelines, two channels with roles and settings, chats with inbound and outbound
messages; and C, a Kommo account that uninstalled us. Every text that comes from a CRM or a client
carries the account's tag (to spot a leak across accounts) and one of the markup payloads (to
spot markup that stops being text)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support.chat_panel import RecordingTransport
from tests.support.factories import identity, make_account, seed_crm, session_token
from tests.support.fake_crm import FakeCrm
from tests.support.jobs import use_crm_port
from tests.support.security import csrf_token, label
from widget.db import db
from widget.domain.crm import CrmPipeline, CrmSnapshot, CrmStage, CrmUser, SyncReport
from widget.domain.outreach import CardClient, phone_address
from widget.domain.ports import CONTACT, EntityRef
from widget.domain.responsibility import EntityState
from widget.models import AccountSettings, Channel, ChannelRole, ChannelSettings, Employee
from widget.models.accounts import CRM_BITRIX24, CRM_KOMMO, STATUS_UNINSTALLED
from widget.models.conversations import Chat, Client, Message
from widget.services.channels.signing import get_or_create_gateway_secret, sign

ADMIN, SELLER, QC, INACTIVE = "100", "101", "102", "103"


@dataclass
class Tenant:
    tag: str
    crm: str
    account_id: int
    channel_id: int
    other_channel_id: int
    chat_id: int
    chat_ids: list[int]
    message_id: int  # an outbound reply (the retry route's object)
    secret: str  # the gateway secret
    employees: dict[str, int]  # CRM user id -> employee id
    entity_kind: str
    entity_id: str  # the CRM lead/deal of the first chat (a CRM card)
    phones: tuple[str, ...]
    frame_origin: str  # the CRM origin its sessions may be framed by
    webhook_token: str = "not-issued"
    preset_key: str = "shop_support"
    asset_name: str = "install.js"
    tokens: dict[str, str] = field(default_factory=dict)  # CRM user id -> session token
    csrf: dict[str, str] = field(default_factory=dict)  # CRM user id -> CSRF token of that session

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings only this account's data contains: seeing one elsewhere is a leak (its gateway
        signing secret among them)."""
        return (self.tag, *self.phones, self.secret)


@dataclass
class World:
    app: Flask
    client: FlaskClient
    a: Tenant
    b: Tenant
    c: Tenant  # uninstalled
    transport: RecordingTransport


def _snapshot(tag: str, crm: str) -> CrmSnapshot:
    users = (
        CrmUser(ADMIN, label(tag, "emp", 0), "admin@example.com", True, True, "en"),
        CrmUser(SELLER, label(tag, "emp", 1), "rep@example.com", True, False, "en"),
        CrmUser(QC, label(tag, "emp", 2), "qc@example.com", True, False, "en"),
        CrmUser(INACTIVE, label(tag, "emp", 3), "gone@example.com", False, False, "en"),
    )
    if crm == CRM_KOMMO:
        stages = (
            CrmStage("10", label(tag, "stage", 0), 10, "incoming"),
            CrmStage("11", label(tag, "stage", 1), 20, "open"),
            CrmStage("12", label(tag, "stage", 2), 30, "open"),
            CrmStage("142", label(tag, "stage", 3), 10000, "won"),
        )
        return CrmSnapshot(users, (CrmPipeline("lead", "1", label(tag, "pipeline", 1), 1, True, stages),))
    deal_stages = (
        CrmStage("NEW", label(tag, "stage", 0), 10, "open"),
        CrmStage("WON", label(tag, "stage", 3), 20, "won"),
    )
    pipelines = (
        CrmPipeline("deal", "0", label(tag, "pipeline", 0), 300, True, deal_stages),
        CrmPipeline(
            "deal",
            "3",
            label(tag, "pipeline", 2),
            200,
            False,
            (CrmStage("C3:NEW", label(tag, "stage", 2), 10, "open"),),
        ),
        CrmPipeline(
            "lead", "STATUS", label(tag, "pipeline", 3), 0, True, (CrmStage("NEW", label(tag, "stage", 1), 10, "open"),)
        ),
    )
    return CrmSnapshot(users, pipelines, crm_mode="classic")


def _deliver(client: FlaskClient, secret: str, channel_id: int, tag: str, n: int, phone: str) -> dict[str, Any]:
    body = {
        "message_id": f"{tag}-in-{n}",
        "channel_id": channel_id,
        "chat_type": "whatsapp",
        "chat_id": f"{tag}-chat-{n}",
        "phone": phone,
        "sender_name": label(tag, "client", n),
        "text": label(tag, "msg", n),
        "sent_at": datetime.now(UTC).isoformat(),
    }
    raw = json.dumps(body).encode()
    response = client.post(
        "/gateway/messages",
        data=raw,
        headers={"X-Gateway-Signature": sign(secret, raw), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["status"] == "stored"
    # The acknowledgement names the stored delivery; the chat is made from it by the intake job
    # (inline here: jobs run immediately in the tests).
    with db.transaction() as s:
        chat_id = s.execute(
            select(Chat.id).where(Chat.channel_id == channel_id, Chat.external_chat_id == body["chat_id"])
        ).scalar_one()
    return {**response.get_json(), "chat_id": chat_id}


def build_tenant(app: Flask, client: FlaskClient, *, tag: str, crm: str, external_id: str, number: int) -> Tenant:
    domain = f"{tag.lower()}.kommo.test" if crm == CRM_KOMMO else f"{tag.lower()}.bitrix24.test"
    account_id = make_account(
        crm=crm,
        external_id=external_id,
        domain=domain,
        name=label(tag, "account", 0),
        installed_by_crm_user_id=ADMIN,
    )
    seed_crm(account_id, _snapshot(tag, crm))
    pipeline, stage, entity = ("1", "11", "lead") if crm == CRM_KOMMO else ("0", "NEW", "deal")
    with db.transaction() as s:
        emps = {
            e.crm_user_id: e.id for e in s.execute(select(Employee).where(Employee.account_id == account_id)).scalars()
        }
        channels = []
        for i, (transport, address) in enumerate(
            (("whatsapp", f"+1555{number}000001"), ("telegram", f"@{tag.lower()}_bot"))
        ):
            ch = Channel(account_id=account_id, transport=transport, name=label(tag, "channel", i), address=address)
            s.add(ch)
            s.flush()
            channels.append(ch.id)
            s.add(
                ChannelSettings(
                    channel_id=ch.id,
                    account_id=account_id,
                    new_client_entity=entity,
                    crm_pipeline_id=pipeline,
                    crm_stage_id=stage,
                    distribution="first_reply",
                )
            )
            roles = [(ADMIN, "head", False)] + ([(SELLER, "seller", True), (QC, "qc", False)] if i == 0 else [])
            for user, role, gets in roles:
                s.add(
                    ChannelRole(
                        account_id=account_id,
                        channel_id=ch.id,
                        employee_id=emps[user],
                        role=role,
                        gets_new_clients=gets,
                    )
                )
        s.add(AccountSettings(account_id=account_id, default_channel_id=channels[0], fallback_employee_id=emps[ADMIN]))
        secret = get_or_create_gateway_secret(s, app.extensions["widget"].box, account_id)

    phones = (f"+1555{number}100001", f"+1555{number}100002")
    chat_ids = [_deliver(client, secret, channels[0], tag, n, phone)["chat_id"] for n, phone in enumerate(phones, 1)]
    tenant = Tenant(
        tag=tag,
        crm=crm,
        account_id=account_id,
        channel_id=channels[0],
        other_channel_id=channels[1],
        chat_id=chat_ids[0],
        chat_ids=chat_ids,
        message_id=0,
        secret=secret,
        employees=emps,
        entity_kind=entity,
        entity_id="",
        phones=(*phones, f"+1555{number}000001"),
        frame_origin=f"https://{domain}",
    )
    for user in (ADMIN, SELLER, QC):
        ident = identity(account_id, crm=crm, user=user, admin=user == ADMIN, origin=tenant.frame_origin)
        # The name a session carries is the CRM user's (Kommo / Bitrix24 profile): outside text too.
        ident = replace(ident, name=label(tag, "emp", int(user) - 100))
        tenant.tokens[user] = session_token(app, ident)
        tenant.csrf[user] = csrf_token(app, tenant.tokens[user])

    # The head answers the first chat: an outbound message (the retry route's object).
    reply = client.post(
        f"/api/chats/{tenant.chat_id}/messages",
        json={"text": label(tag, "reply", 1)},
        headers={"X-Session-Token": tenant.tokens[ADMIN], "X-CSRFToken": tenant.csrf[ADMIN]},
    )
    assert reply.status_code == 201, reply.get_data(as_text=True)
    tenant.message_id = reply.get_json()["message"]["id"]
    with db.transaction() as s:
        chat = s.get(Chat, tenant.chat_id)
        assert chat is not None and chat.crm_entity_id, "the fake CRM created the client's lead/deal"
        tenant.entity_kind, tenant.entity_id = chat.crm_entity_kind or entity, chat.crm_entity_id
        assert s.execute(select(Message.id).where(Message.account_id == account_id)).all()
    return tenant


def _webhook_token(app: Flask, account_id: int) -> str | None:
    """The Kommo entity-webhook address token of the account, when that feature is present."""
    try:
        from widget.services.conversations.kommo_webhooks import webhook_token
    except ImportError:
        return None
    with app.app_context(), db.transaction() as s:
        return webhook_token(s, app.extensions["widget"], account_id)


class TenantCards:
    """Each account's CRM cards as that account's own CRM answers for them. (The world's one
    ``FakeCrm`` holds every account's entities, which no real CRM does: a card is read here.)"""

    def __init__(self) -> None:
        self.by_account: dict[int, dict[EntityRef, CardClient]] = {}

    def learn(self, account_id: int) -> None:
        """The cards of the account's chats: each chat's lead/deal and its contact."""
        cards = self.by_account.setdefault(account_id, {})
        with db.transaction() as s:
            rows = s.execute(
                select(Chat, Client.phone)
                .join(Client, Client.id == Chat.client_id)
                .where(Chat.account_id == account_id)
            ).all()
        for chat, phone in rows:
            contact = EntityRef(CONTACT, chat.crm_contact_id) if chat.crm_contact_id else None
            entity = EntityRef(chat.crm_entity_kind, chat.crm_entity_id) if chat.crm_entity_id else None
            states = {ref: EntityState(chat.crm_responsible_user_id) for ref in (contact, entity) if ref is not None}
            found = phone_address(phone, chat.crm_contact_id)
            addresses = (found,) if found else ()
            for card in (contact, entity):
                if card is not None:
                    cards[card] = CardClient(
                        card, chat.crm_contact_id, None if card == contact else entity, chat.title, states, addresses
                    )

    def reader(self, database: Any, services: Any, account_id: int) -> Any:
        cards = self.by_account.get(account_id, {})

        class Reader:
            def read_card(self, card: EntityRef) -> CardClient | None:
                return cards.get(card)

        return Reader()


def fake_refresh(database: Any, services: Any, account_id: int) -> SyncReport:
    """ "Refresh CRM data" without a CRM: reports names the way a real refresh would (CRM text)."""
    with database.transaction() as s:
        names = [e.name for e in s.execute(select(Employee).where(Employee.account_id == account_id)).scalars()]
    return SyncReport(added=names[:2], deactivated=names[3:], pipelines_added=names[1:2])


@pytest.fixture
def world(app: Flask, client: FlaskClient, database_url: str) -> Iterator[World]:
    services = app.extensions["widget"]
    transport = RecordingTransport()
    cards = TenantCards()
    services.transport = transport
    use_crm_port(app, FakeCrm())
    services.refresh_crm_data = fake_refresh
    services.card_reader = cards.reader
    a = build_tenant(app, client, tag="Aardvark", crm=CRM_KOMMO, external_id="31001", number=1)
    b = build_tenant(app, client, tag="Bison", crm=CRM_BITRIX24, external_id="b" * 32, number=2)
    c = build_tenant(app, client, tag="Coyote", crm=CRM_KOMMO, external_id="31003", number=3)
    for tenant in (a, b, c):
        cards.learn(tenant.account_id)
    for tenant in (a, b, c):
        token = _webhook_token(app, tenant.account_id) if tenant.crm == CRM_KOMMO else None
        if token:
            tenant.webhook_token = token
    from widget.models import Account
    from widget.services.accounts.state import mark_uninstalled

    with db.transaction() as s:
        account = s.get(Account, c.account_id)
        assert account is not None
        mark_uninstalled(s, account)  # what the CRM's uninstall callback runs
    assert account.status == STATUS_UNINSTALLED
    yield World(app, client, a, b, c, transport)
