"""Telegram clients without a phone in Kommo, through the real outbox, our adapter and the sandbox
over HTTP: the chat id is written into the contact's IM field ("telegram:<id>") and the contact
search (``query=``) finds it again, so a client Kommo already knows never gets a second contact."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from tests.support.conversations import record_replies
from tests.support.crm_flows import Flow, add_channel, chat_on, telegram_message
from tests.support.jobs import jobs_of
from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import KommoWorld, world_fixture
from widget.db import db
from widget.domain.ports import LEAD, EntityRef
from widget.domain.visibility import ASSIGNED
from widget.models.conversations import Client
from widget.services.accounts.crm_clients import crm_port
from widget.services.conversations.replies import SENT, send_reply

__all__ = ["world_fixture"]

ADMIN, JOSE, MARIA, JOAO, LUCIA = "10000001", "10000002", "10000003", "10000004", "10000007"
SALES, SALES_INCOMING, SALES_FIRST = "7000001", "60000001", "60000002"
SELLERS = {JOSE: ("seller", True), JOAO: ("seller", True)}


def telegram_flow(world: KommoWorld, *, distribution: str = "round_robin", stage: str = SALES_FIRST) -> Flow:
    record_replies(world.app)  # replies go through send_reply, which delivers them
    return add_channel(
        world.app,
        world.install(),
        world.url,
        entity="lead",
        pipeline_id=SALES,
        stage_id=stage,
        distribution=distribution,
        roles=SELLERS,
        transport="telegram",
    )


def contacts_with_im(world: KommoWorld, value: str) -> list[Any]:
    return [
        c
        for c in world.sandbox.account(DEMO_HOST).contacts.values()
        if any(f["field_code"] == "IM" and v["value"] == value for f in c.custom_fields for v in f["values"])
    ]


def searches(world: KommoWorld) -> list[str]:
    """The ``query=`` of every contact search our server sent."""
    return [
        e.query["query"][0]
        for e in world.sandbox.log.entries(host=DEMO_HOST)
        if e.method == "GET" and e.path.endswith("/api/v4/contacts") and "query" in e.query
    ]


def api_requests(world: KommoWorld) -> list[str]:
    return [f"{e.method} {e.path.split('/api/v4')[-1]}" for e in world.sandbox.log.entries(host=DEMO_HOST)]


def forget_locally(flow: Flow, chat_id: str) -> None:
    """Our own record of the person stops matching (as after a data loss or for a client first seen
    elsewhere): only the CRM can still tell who they are."""
    with db.transaction() as s:
        s.execute(
            update(Client)
            .where(Client.account_id == flow.account_id, Client.key == f"telegram:{chat_id}")
            .values(key=f"forgotten:{chat_id}")
        )


def test_known_telegram_client_without_phone_gets_no_new_contact_and_goes_to_its_responsible(world: KommoWorld):
    flow = telegram_flow(world)
    known = world.sandbox.add_contact(DEMO_HOST, "Tg regular", im="telegram:5123", responsible_user_id=int(MARIA))
    account = world.sandbox.account(DEMO_HOST)
    contacts_before, leads_before = len(account.contacts), len(account.leads)
    world.sandbox.reset_log()

    assert flow.post(telegram_message(flow, 1, "5123")).status_code == 200

    assert api_requests(world) == ["GET /contacts"]  # one search; the contact has no lead to read
    assert searches(world) == ["telegram:5123"]
    chat = chat_on(flow, "5123")
    assert (chat.assignment, chat.responsible_employee_id, chat.crm_contact_id) == (
        ASSIGNED,
        flow.emp(MARIA),
        str(known),
    )
    assert not chat.is_new_client and chat.crm_entity_id is None
    assert (len(account.contacts), len(account.leads)) == (contacts_before, leads_before)


def test_known_telegram_client_with_an_open_lead_follows_the_leads_responsible(world: KommoWorld):
    flow = telegram_flow(world)
    known = world.sandbox.add_contact(DEMO_HOST, "Tg regular", im="telegram:5123", responsible_user_id=int(MARIA))
    lead = world.sandbox.add_lead(DEMO_HOST, "Open deal", contact_id=known, responsible_user_id=int(LUCIA))
    world.sandbox.reset_log()

    flow.post(telegram_message(flow, 1, "5123"))

    assert api_requests(world) == ["GET /contacts", "GET /leads"]
    chat = chat_on(flow, "5123")
    assert (chat.responsible_employee_id, chat.crm_contact_id, chat.crm_entity_kind, chat.crm_entity_id) == (
        flow.emp(LUCIA),
        str(known),
        "lead",
        str(lead),
    )


def test_other_messengers_and_longer_ids_are_other_people(world: KommoWorld):
    flow = telegram_flow(world)
    world.sandbox.add_contact(DEMO_HOST, "Instagram namesake", im="instagram:5123", responsible_user_id=int(MARIA))
    world.sandbox.add_contact(DEMO_HOST, "Longer id", im="telegram:51234", responsible_user_id=int(MARIA))
    world.sandbox.add_contact(DEMO_HOST, "Bare id", im="5123", responsible_user_id=int(MARIA))
    world.sandbox.reset_log()

    flow.post(telegram_message(flow, 1, "5123"))

    # Kommo's search is full text: it hands back the longer id too, and we drop it.
    assert api_requests(world) == ["GET /contacts", "POST /leads/complex"]
    chat = chat_on(flow, "5123")
    assert chat.is_new_client and chat.responsible_employee_id == flow.emp(JOSE)
    [created] = contacts_with_im(world, "telegram:5123")
    assert str(created.id) == chat.crm_contact_id


def test_new_telegram_client_gets_a_contact_with_its_chat_id_which_finds_it_again(world: KommoWorld):
    flow = telegram_flow(world)
    world.sandbox.reset_log()

    flow.post(telegram_message(flow, 1, "5123"))

    assert api_requests(world) == ["GET /contacts", "POST /leads/complex"]  # issue 6: two per new client
    first = chat_on(flow, "5123")
    [contact] = contacts_with_im(world, "telegram:5123")
    im = next(f for f in contact.custom_fields if f["field_code"] == "IM")
    assert im["values"][0]["enum_code"] == "OTHER"
    assert str(contact.id) == first.crm_contact_id and contact.responsible_user_id == int(JOSE)
    assert not any(f["field_code"] == "PHONE" for f in contact.custom_fields)

    # The same person writes on another Telegram channel while our own records no longer match.
    forget_locally(flow, "5123")
    second_channel = telegram_flow(world)
    world.sandbox.reset_log()
    second_channel.post(telegram_message(second_channel, 2, "5123"))

    assert searches(world) == ["telegram:5123"]
    assert api_requests(world) == ["GET /contacts", "GET /leads"]  # found: no lead, no contact created
    again = chat_on(second_channel, "5123")
    assert not again.is_new_client and again.client_id != first.client_id
    assert (again.crm_contact_id, again.crm_entity_id) == (first.crm_contact_id, first.crm_entity_id)
    assert again.responsible_employee_id == flow.emp(JOSE)
    assert len(contacts_with_im(world, "telegram:5123")) == 1


def test_incoming_lead_contact_carries_the_chat_id_and_is_found_once_accepted(world: KommoWorld):
    flow = telegram_flow(world, distribution="first_reply", stage=SALES_INCOMING)
    flow.post(telegram_message(flow, 1, "5123"))
    chat = chat_on(flow, "5123")
    [contact] = contacts_with_im(world, "telegram:5123")
    assert contact.is_unsorted and str(contact.id) == chat.crm_contact_id

    assert send_reply(db, jobs_of(flow), flow.account_id, chat.id, flow.emp(JOAO), "Hi, João here").status == SENT

    port = crm_port(db, world.app.extensions["widget"], flow.account_id)
    found = port.find_client(None, "5123", messenger="telegram")
    assert found is not None
    assert (found.contact_id, found.responsible_crm_user_id, found.open_entity) == (
        str(contact.id),
        JOAO,
        EntityRef(LEAD, chat.crm_entity_id or ""),
    )
    assert port.find_client(None, "5123", messenger="instagram") is None
    assert port.find_client(None, "5123") is None  # without the messenger type the chat id means nothing


def test_telegram_client_with_an_unknown_phone_is_still_found_by_its_chat_id(world: KommoWorld):
    account_id = world.install()
    known = world.sandbox.add_contact(DEMO_HOST, "Tg regular", im="telegram:5123", responsible_user_id=int(MARIA))
    port = crm_port(db, world.app.extensions["widget"], account_id)
    world.sandbox.reset_log()

    found = port.find_client("+34 600 999 888", "5123", messenger="telegram")

    # ``query=`` takes one text: the phone first, then the IM value when the phone found nobody.
    assert found is not None and (found.contact_id, found.responsible_crm_user_id) == (str(known), MARIA)
    assert searches(world) == ["+34 600 999 888", "telegram:5123"]

    # A WhatsApp client's chat id is its number: the phone search alone, as before.
    world.sandbox.reset_log()
    assert port.find_client("+34 600 999 888", "34600999888", messenger="whatsapp") is None
    assert searches(world) == ["+34 600 999 888"]
