"""Telegram clients without a phone in Bitrix24, through the real outbox, our adapter and the sandbox
portal over HTTP: the chat id goes into the ``IM`` multifield of the contact (or lone lead) as
"telegram:<id>", ``crm.contact.list``/``crm.lead.list`` filtered on ``IM`` find it again (findbycomm
knows only phones and e-mails), and a client the portal knows never gets a second contact."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from tests.support.bitrix24_sandbox import B24World, bitrix24_world
from tests.support.crm_flows import Flow, add_channel, chat_on, telegram_message
from widget.db import db
from widget.domain.ports import LEAD, EntityRef
from widget.domain.visibility import ASSIGNED
from widget.models.conversations import Client
from widget.services.accounts.crm_clients import crm_port

ADMIN, IVAN, JOSE, JOAO, ZOE, MARIA = "1", "2", "3", "4", "5", "6"
SELLERS = {JOSE: ("seller", True), JOAO: ("seller", True)}


@pytest.fixture
def b24(make_settings: Any) -> Iterator[B24World]:
    with bitrix24_world(make_settings) as world:
        world.install()
        yield world
        world.state.wait_deliveries()  # our own updates fire ONCRM*UPDATE events back at us


def telegram_flow(b24: B24World, *, entity: str = "deal", pipeline: str = "1", stage: str = "C1:NEW") -> Flow:
    account = b24.account()
    assert account is not None
    return add_channel(
        b24.app,
        account.id,
        b24.base_url,
        entity=entity,
        pipeline_id=pipeline,
        stage_id=stage,
        distribution="round_robin",
        roles=SELLERS,
        transport="telegram",
    )


def with_im(b24: B24World, kind: str, value: str) -> list[dict[str, Any]]:
    return [r for r in b24.portal.records[kind].values() if any(i["VALUE"] == value for i in r.get("IM") or [])]


def rest_calls(b24: B24World) -> list[str]:
    return [e.rest_method for e in b24.state.log.entries(kind="rest")]


def forget_locally(flow: Flow, chat_id: str) -> None:
    """Our own record of the person stops matching: only the CRM can still tell who they are."""
    with db.transaction() as s:
        s.execute(
            update(Client)
            .where(Client.account_id == flow.account_id, Client.key == f"telegram:{chat_id}")
            .values(key=f"forgotten:{chat_id}")
        )


def add_telegram_contact(b24: B24World, value: str, responsible: str, value_type: str = "TELEGRAM") -> str:
    """A contact a sales rep made in the portal, with the client's messenger in its IM field."""
    record = b24.state.add_record(
        b24.portal,
        "contact",
        {"NAME": "Tg regular", "IM": [{"VALUE": value, "VALUE_TYPE": value_type}], "ASSIGNED_BY_ID": responsible},
    )
    b24.state.wait_deliveries()
    return str(record["ID"])


def test_known_telegram_client_without_phone_gets_no_new_contact_and_goes_to_its_responsible(b24: B24World):
    flow = telegram_flow(b24)
    known = add_telegram_contact(b24, "telegram:5123", MARIA)
    contacts_before, deals_before = len(b24.portal.records["contact"]), len(b24.portal.records["deal"])
    b24.state.reset_log()

    assert flow.post(telegram_message(flow, 1, "5123")).status_code == 200

    # One request finds the contact (and leads) by IM; one batch reads the contact and its deals.
    assert rest_calls(b24) == ["batch", "batch"]
    chat = chat_on(flow, "5123")
    assert (chat.assignment, chat.responsible_employee_id, chat.crm_contact_id) == (ASSIGNED, flow.emp(MARIA), known)
    assert not chat.is_new_client and chat.crm_entity_id is None
    assert (len(b24.portal.records["contact"]), len(b24.portal.records["deal"])) == (contacts_before, deals_before)


def test_other_messengers_are_other_people(b24: B24World):
    flow = telegram_flow(b24)
    add_telegram_contact(b24, "instagram:5123", MARIA, value_type="INSTAGRAM")
    add_telegram_contact(b24, "5123", MARIA)  # typed by hand, without the messenger
    b24.state.reset_log()

    flow.post(telegram_message(flow, 1, "5123"))

    assert rest_calls(b24) == ["batch", "batch"]  # the lookup, then contact + deal in one batch
    chat = chat_on(flow, "5123")
    assert chat.is_new_client and chat.responsible_employee_id == flow.emp(JOSE)
    [created] = with_im(b24, "contact", "telegram:5123")
    assert created["ID"] == chat.crm_contact_id


def test_new_telegram_client_gets_a_contact_with_its_chat_id_which_finds_it_again(b24: B24World):
    flow = telegram_flow(b24)
    b24.state.reset_log()

    flow.post(telegram_message(flow, 1, "5123"))

    assert rest_calls(b24) == ["batch", "batch"]  # issue 6: two per new client
    first = chat_on(flow, "5123")
    [contact] = with_im(b24, "contact", "telegram:5123")
    assert [(i["VALUE"], i["VALUE_TYPE"]) for i in contact["IM"]] == [("telegram:5123", "TELEGRAM")]
    assert contact["ID"] == first.crm_contact_id and contact["ASSIGNED_BY_ID"] == JOSE
    assert not contact.get("PHONE")
    assert not with_im(b24, "deal", "telegram:5123")  # deals have no communications of their own

    forget_locally(flow, "5123")
    second_channel = telegram_flow(b24)
    b24.state.reset_log()
    second_channel.post(telegram_message(second_channel, 2, "5123"))

    assert rest_calls(b24) == ["batch", "batch"]  # found by IM, then read: nothing created
    again = chat_on(second_channel, "5123")
    assert not again.is_new_client and again.client_id != first.client_id
    assert (again.crm_contact_id, again.crm_entity_kind, again.crm_entity_id) == (
        first.crm_contact_id,
        "deal",
        first.crm_entity_id,
    )
    assert again.responsible_employee_id == flow.emp(JOSE)
    assert len(with_im(b24, "contact", "telegram:5123")) == 1


def test_lone_lead_carries_the_chat_id_and_is_found_by_it(b24: B24World):
    flow = telegram_flow(b24, entity="lead", pipeline="STATUS", stage="NEW")
    flow.post(telegram_message(flow, 1, "5123"))
    chat = chat_on(flow, "5123")
    [lead] = with_im(b24, "lead", "telegram:5123")
    assert not with_im(b24, "contact", "telegram:5123")  # a lead without a contact carries it itself
    assert (chat.crm_entity_kind, chat.crm_entity_id) == ("lead", lead["ID"])

    port = crm_port(db, b24.app.extensions["widget"], flow.account_id)
    found = port.find_client(None, "5123", messenger="telegram")
    assert found is not None
    assert (found.contact_id, found.responsible_crm_user_id, found.open_entity) == (
        "",
        lead["ASSIGNED_BY_ID"],
        EntityRef(LEAD, lead["ID"]),
    )
    assert port.find_client(None, "5123", messenger="instagram") is None
    assert port.find_client(None, "5123") is None  # without the messenger type the chat id means nothing


def test_telegram_client_with_a_phone_is_looked_up_by_both_in_one_request(b24: B24World):
    account = b24.account()
    assert account is not None
    known = add_telegram_contact(b24, "telegram:5123", MARIA)
    port = crm_port(db, b24.app.extensions["widget"], account.id)
    b24.state.reset_log()

    # The phone is nobody's; the Telegram id is the contact's.
    found = port.find_client("+34 600 999 888", "5123", messenger="telegram")

    assert found is not None and (found.contact_id, found.responsible_crm_user_id) == (known, MARIA)
    assert rest_calls(b24) == ["batch", "batch"]
    lookup = b24.state.log.entries(kind="rest")[0]
    assert "crm.duplicate.findbycomm" in str(lookup.params) and "crm.contact.list" in str(lookup.params)

    # A WhatsApp client's chat id is its number: the phone search alone, as before.
    b24.state.reset_log()
    assert port.find_client("+34 600 999 888", "34600999888", messenger="whatsapp") is None
    assert rest_calls(b24) == ["crm.duplicate.findbycomm"]
