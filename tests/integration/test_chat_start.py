"""Starting a conversation from a CRM card, against the sandbox CRMs over real HTTP: the card's
client read in as few requests as each CRM allows, the chat made once (a second start opens it),
tied to the card and its CRM responsible, shown in the card's list and the global panel to those who
may see it, and the first message recorded and delivered to the sandbox messaging gateway."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from sandbox.gateway import GatewaySandbox
from sandbox.gateway import create_app as gateway_app
from tests.integration.test_chat_panel_openapi import conforms
from tests.support.bitrix24_sandbox import B24World, bitrix24_world
from tests.support.chat_panel import Panel, panel_for
from tests.support.crm_flows import Flow, add_channel
from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import KommoWorld, world_fixture
from tests.support.servers import live_server
from widget.db import db
from widget.models import AccountSettings, Channel, ChannelRole
from widget.models.conversations import Chat, Message
from widget.services.channels.transports import SandboxGatewayTransport

__all__ = ["world_fixture"]

K_ADMIN, JOSE, MARIA, JOAO, LUCIA = "10000001", "10000002", "10000003", "10000004", "10000007"
DOC_PATH = "/api/chats/start/{entity_type}/{entity_id}"  # in widget/openapi.yaml
PHONE = "+5511987654321"


@contextmanager
def sandbox_gateway(app: Flask, our_url: str) -> Iterator[GatewaySandbox]:
    """Replies leave through the sandbox messaging gateway, over HTTP, as on the embedded default."""
    gateway = GatewaySandbox(answer_delay=0.05, timeout=5)
    with live_server(gateway_app(gateway)) as gw:
        services = app.extensions["widget"]
        real = services.transport
        services.transport = SandboxGatewayTransport(gw.url, our_url + "/gateway/messages", timeout=5)
        try:
            yield gateway
        finally:
            services.transport = real


def start(panel: Panel, card: tuple[str, str], text: str, **extra: Any) -> Any:
    kind, crm_id = card
    return panel.post(f"/api/chats/start/{kind}/{crm_id}", {"text": text, **extra})


def options(panel: Panel, card: tuple[str, str]) -> Any:
    return panel.get(f"/api/chats/start/{card[0]}/{card[1]}")


def chats_of(account_id: int) -> list[Chat]:
    with db.transaction() as s:
        found = list(s.execute(select(Chat).where(Chat.account_id == account_id).order_by(Chat.id)).scalars())
        s.expunge_all()
        return found


def add_role(flow: Flow, crm_user: str, role: str) -> None:
    with db.transaction() as s:
        s.add(
            ChannelRole(
                account_id=flow.account_id, channel_id=flow.channel_id, employee_id=flow.emp(crm_user), role=role
            )
        )


# --- Kommo ----------------------------------------------------------------------------------------------


@pytest.fixture
def kommo(world: KommoWorld) -> Flow:
    flow = add_channel(
        world.app,
        world.install(),
        world.url,
        entity="lead",
        pipeline_id="7000001",
        stage_id="60000002",
        distribution="round_robin",
        roles={JOSE: ("seller", True), JOAO: ("seller", True), MARIA: ("head", True), LUCIA: ("qc", False)},
    )
    with db.transaction() as s:
        channel = s.get(Channel, flow.channel_id)
        assert channel is not None
        channel.address = "+15550001"
    return flow


def kommo_requests(world: KommoWorld) -> list[str]:
    return [f"{e.method} {e.path.split('/api/v4')[-1]}" for e in world.sandbox.log.entries(host=DEMO_HOST)]


def test_kommo_lead_card_a_rep_starts_a_chat_with_their_client_and_it_is_delivered(world: KommoWorld, kommo: Flow):
    contact = world.sandbox.add_contact(DEMO_HOST, "Ana Souza", PHONE, responsible_user_id=int(JOSE))
    lead = world.sandbox.add_lead(DEMO_HOST, "Ana's order", contact_id=contact, responsible_user_id=int(JOSE))
    card = ("lead", str(lead))
    jose = panel_for(world.app, kommo.account_id, JOSE)
    world.sandbox.reset_log()

    offered = options(jose, card)
    assert offered.status_code == 200, offered.get_json()
    conforms(offered, DOC_PATH, "get")
    body = offered.get_json()
    # The lead with its contacts, then the contacts: two requests, nothing else.
    assert kommo_requests(world) == ["GET /leads", "GET /contacts"]
    assert body["client"]["name"] == "Ana Souza" and body["can_start"]
    (option,) = body["options"]
    assert option["action"] == "start" and option["channel"]["id"] == kommo.channel_id
    assert [a["label"] for a in option["addresses"]] == [PHONE]
    assert body["default_channel_id"] == kommo.channel_id

    with sandbox_gateway(world.app, world.url) as gateway:
        answer = start(
            jose, card, "Hello Ana, your order is ready", channel_id=kommo.channel_id, idempotency_key="start-key-0001"
        )
        assert answer.status_code == 201, answer.get_json()
        conforms(answer, DOC_PATH, "post")
        chat_id = answer.get_json()["chat_id"]
        assert gateway.wait_for(lambda g: len(g.outbound) == 1, timeout=10)
        (sent,) = gateway.outbound
        assert (sent.text, sent.chat_id, sent.channel_id, sent.chat_type) == (
            "Hello Ana, your order is ready",
            PHONE.lstrip("+"),
            kommo.channel_id,
            "whatsapp",
        )

        # The same start again (a lost answer) is the same message; another start opens the chat.
        again = start(
            jose, card, "Hello Ana, your order is ready", channel_id=kommo.channel_id, idempotency_key="start-key-0001"
        )
        assert again.status_code == 200 and again.get_json()["chat_id"] == chat_id
        conforms(again, DOC_PATH, "post")
        other = start(jose, card, "A second hello", channel_id=kommo.channel_id)
        conforms(other, DOC_PATH, "post")
        assert other.status_code == 200 and other.get_json() == {
            **other.get_json(),
            "status": "open",
            "chat_id": chat_id,
        }
        assert len(gateway.outbound) == 1

    (chat,) = chats_of(kommo.account_id)
    assert (chat.crm_contact_id, chat.crm_entity_kind, chat.crm_entity_id) == (str(contact), "lead", str(lead))
    assert (chat.responsible_employee_id, chat.crm_responsible_user_id, chat.assignment) == (
        kommo.emp(JOSE),
        JOSE,
        "assigned",
    )
    with db.transaction() as s:
        texts = s.execute(select(Message.text, Message.delivery).where(Message.chat_id == chat.id)).all()
    assert [tuple(t) for t in texts] == [("Hello Ana, your order is ready", "sent")]

    # In the card's list and the global panel of who may see it; not for another rep.
    assert jose.chat_ids(entity_type="lead", entity_id=str(lead)) == [chat.id]
    assert jose.chat_ids() == [chat.id]
    assert panel_for(world.app, kommo.account_id, MARIA).chat_ids() == [chat.id]
    assert panel_for(world.app, kommo.account_id, JOAO).chat_ids() == []
    assert options(jose, card).get_json()["options"][0] == {
        **options(jose, card).get_json()["options"][0],
        "action": "open",
        "chat_id": chat.id,
    }


def test_kommo_contact_card_costs_one_request_and_rights_follow_the_crm(world: KommoWorld, kommo: Flow):
    contact = world.sandbox.add_contact(DEMO_HOST, "Bruno Lima", "+5511900001111", responsible_user_id=int(JOAO))
    card = ("contact", str(contact))
    world.sandbox.reset_log()

    jose = options(panel_for(world.app, kommo.account_id, JOSE), card).get_json()
    assert kommo_requests(world) == ["GET /contacts"]
    assert not jose["can_start"] and jose["summary"]
    assert "head can start" in jose["options"][0]["reason"]

    qc = options(panel_for(world.app, kommo.account_id, LUCIA), card).get_json()
    assert not qc["can_start"] and "Quality control" in qc["options"][0]["reason"]
    refused = start(panel_for(world.app, kommo.account_id, LUCIA), card, "hi", channel_id=kommo.channel_id)
    assert refused.status_code == 403 and "Quality control" in refused.get_json()["message"]
    conforms(refused, DOC_PATH, "post")
    maria_panel = panel_for(world.app, kommo.account_id, MARIA)
    conforms(start(maria_panel, card, "", channel_id=kommo.channel_id), DOC_PATH, "post")  # 422
    conforms(start(maria_panel, card, "hi", channel_id="one"), DOC_PATH, "post")  # 400
    conforms(options(maria_panel, ("deal", "1")), DOC_PATH, "get")  # 404: Kommo has no deal cards

    # A head writes to anyone; the chat stays the CRM responsible's, who sees it too.
    maria = panel_for(world.app, kommo.account_id, MARIA)
    with sandbox_gateway(world.app, world.url) as gateway:
        made = start(maria, card, "Hello Bruno", channel_id=kommo.channel_id)
        assert made.status_code == 201, made.get_json()
        assert gateway.wait_for(lambda g: len(g.outbound) == 1, timeout=10)
    (chat,) = chats_of(kommo.account_id)
    assert (chat.responsible_employee_id, chat.crm_contact_id, chat.crm_entity_id) == (
        kommo.emp(JOAO),
        str(contact),
        None,
    )
    assert panel_for(world.app, kommo.account_id, JOAO).chat_ids(entity_type="contact", entity_id=str(contact)) == [
        chat.id
    ]
    # Kommo still names JOAO responsible: a head writing first does not take the client over.
    assert world.sandbox.contact(DEMO_HOST, contact).responsible_user_id == int(JOAO)


def test_kommo_telegram_bot_and_no_role(world: KommoWorld, kommo: Flow):
    with db.transaction() as s:
        bot = Channel(
            account_id=kommo.account_id, transport="telegram", name="Support bot", address="@acme_support_bot"
        )
        s.add(bot)
        s.flush()
        s.add(ChannelRole(account_id=kommo.account_id, channel_id=bot.id, employee_id=kommo.emp(MARIA), role="head"))
        settings = s.get(AccountSettings, kommo.account_id)
        assert settings is not None
        settings.default_channel_id = bot.id
        bot_id = bot.id
    contact = world.sandbox.add_contact(DEMO_HOST, "Tg only", im="telegram:5123", responsible_user_id=int(MARIA))
    card = ("contact", str(contact))
    body = options(panel_for(world.app, kommo.account_id, MARIA), card).get_json()
    by_channel = {o["channel"]["id"]: o for o in body["options"]}
    assert by_channel[bot_id]["action"] == "none" and "bot cannot write first" in by_channel[bot_id]["reason"]
    # WhatsApp needs a phone this client does not have.
    assert by_channel[kommo.channel_id]["action"] == "none" and "phone number" in by_channel[kommo.channel_id]["reason"]
    assert not body["can_start"] and body["default_channel_id"] is None

    nobody = options(panel_for(world.app, kommo.account_id, K_ADMIN), card).get_json()
    assert nobody["options"] == [] and "no role on any channel" in nobody["summary"]


# --- Bitrix24 -------------------------------------------------------------------------------------------

ADMIN, IVAN, JOSE_B, JOAO_B = "1", "2", "3", "4"


@pytest.fixture
def b24(make_settings: Any) -> Iterator[B24World]:
    with bitrix24_world(make_settings) as world:
        world.install()
        yield world
        world.state.wait_deliveries()


def b24_flow(b24: B24World) -> Flow:
    account = b24.account()
    assert account is not None
    return add_channel(
        b24.app,
        account.id,
        b24.base_url,
        entity="deal",
        pipeline_id="1",
        stage_id="C1:NEW",
        distribution="round_robin",
        roles={JOSE_B: ("seller", True), JOAO_B: ("seller", True), IVAN: ("head", True)},
    )


def add_record(b24: B24World, kind: str, fields: dict[str, Any]) -> str:
    record = b24.state.add_record(b24.portal, kind, fields)
    b24.state.wait_deliveries()
    return str(record["ID"])


def rest_calls(b24: B24World) -> list[str]:
    return [e.rest_method for e in b24.state.log.entries(kind="rest")]


def test_bitrix24_deal_tab_reads_the_client_in_one_batch_and_starts_the_chat(b24: B24World):
    flow = b24_flow(b24)
    contact = add_record(
        b24,
        "contact",
        {
            "NAME": "Olga",
            "LAST_NAME": "Petrova",
            "PHONE": [{"VALUE": "+7 900 123-45-67", "VALUE_TYPE": "MOBILE"}],
            "ASSIGNED_BY_ID": JOSE_B,
        },
    )
    deal = add_record(
        b24, "deal", {"TITLE": "Olga's deal", "CONTACT_ID": contact, "CATEGORY_ID": "0", "ASSIGNED_BY_ID": JOSE_B}
    )
    card = ("deal", deal)
    jose = panel_for(b24.app, flow.account_id, JOSE_B)
    b24.state.reset_log()

    body = options(jose, card).get_json()
    assert rest_calls(b24) == ["batch"]  # the deal and its contact in one request
    assert body["client"]["name"] == "Olga Petrova" and body["can_start"]
    assert [a["label"] for a in body["options"][0]["addresses"]] == ["+79001234567"]
    assert not options(panel_for(b24.app, flow.account_id, JOAO_B), card).get_json()["can_start"]

    with sandbox_gateway(b24.app, b24.base_url) as gateway:
        made = start(jose, card, "Добрый день, Ольга!", channel_id=flow.channel_id)
        assert made.status_code == 201, made.get_json()
        assert gateway.wait_for(lambda g: len(g.outbound) == 1, timeout=10)
        assert gateway.outbound[0].chat_id == "79001234567"
        assert start(jose, card, "again", channel_id=flow.channel_id).get_json()["status"] == "open"
    (chat,) = chats_of(flow.account_id)
    assert (chat.crm_contact_id, chat.crm_entity_kind, chat.crm_entity_id, chat.responsible_employee_id) == (
        contact,
        "deal",
        deal,
        flow.emp(JOSE_B),
    )
    assert jose.chat_ids(entity_type="deal", entity_id=deal) == [chat.id]
    assert jose.chat_ids(entity_type="contact", entity_id=contact) == [chat.id]
    assert panel_for(b24.app, flow.account_id, IVAN).chat_ids() == [chat.id]
    assert panel_for(b24.app, flow.account_id, JOAO_B).chat_ids() == []


def test_bitrix24_lead_without_contact_carries_the_phone_itself(b24: B24World):
    flow = b24_flow(b24)
    lead = add_record(
        b24,
        "lead",
        {
            "TITLE": "Web form",
            "NAME": "Pavel",
            "PHONE": [{"VALUE": "+79005550000", "VALUE_TYPE": "WORK"}],
            "ASSIGNED_BY_ID": IVAN,
        },
    )
    ivan = panel_for(b24.app, flow.account_id, IVAN)
    b24.state.reset_log()
    body = options(ivan, ("lead", lead)).get_json()
    assert rest_calls(b24) == ["batch"]
    assert body["client"]["name"] == "Pavel" and body["can_start"]
    with sandbox_gateway(b24.app, b24.base_url):
        assert start(ivan, ("lead", lead), "Hello Pavel", channel_id=flow.channel_id).status_code == 201
    (chat,) = chats_of(flow.account_id)
    assert (chat.crm_contact_id, chat.crm_entity_kind, chat.crm_entity_id) == (None, "lead", lead)
    assert ivan.chat_ids(entity_type="lead", entity_id=lead) == [chat.id]


def test_a_card_the_crm_does_not_have_is_not_found_and_nothing_is_made(b24: B24World):
    flow = b24_flow(b24)
    ivan = panel_for(b24.app, flow.account_id, IVAN)
    assert options(ivan, ("deal", "999999")).status_code == 404
    conforms(options(ivan, ("deal", "999999")), DOC_PATH, "get")
    assert start(ivan, ("deal", "999999"), "hi", channel_id=flow.channel_id).status_code == 404
    with db.transaction() as s:
        assert s.execute(select(func.count()).select_from(Chat)).scalar_one() == 0
