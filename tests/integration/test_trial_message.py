"""The test message end to end (product.md §4): the first save of the CRM integration tab records
it, "Go to chats" makes the test client write through the sandbox messaging gateway (a signed POST
to our /gateway/messages), the whole new-client flow runs — the CRM contact and lead created as
configured, distribution applied — and the chat is in the admin's panel. Once per request."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from sandbox.gateway import GatewaySandbox, create_app
from tests.support.chat_panel import Panel, RecordingTransport, open_panel, panel_for
from tests.support.conversations import World, make_world
from tests.support.servers import LiveServer, live_server
from widget.db import db
from widget.models import Account, Employee
from widget.models.conversations import Chat, Message
from widget.models.trial_messages import TestMessageRequest
from widget.services.channels.transports import SandboxGatewayTransport
from widget.services.settings import trial_message
from widget.services.settings.trial_request import request_test_message

# User 0 (the admin who installed and tests) is a head, as the settings page recommends; users 1
# and 2 are sales reps who get new clients first to answer.
ROLES = {0: ("head", False), 1: ("seller", True), 2: ("seller", True)}


@dataclass
class Setup:
    app: Flask
    world: World
    gateway: GatewaySandbox
    gateway_url: str
    ours: LiveServer
    admin: Panel


@pytest.fixture
def setup(app: Flask, client: Any, database_url: str) -> Iterator[Setup]:
    gateway = GatewaySandbox(answer_delay=0.05, timeout=5)
    w = make_world(app, n_users=3, roles=ROLES, distribution="first_reply", pipeline_id="1", stage_id="11")
    with live_server(create_app(gateway)) as gw, live_server(app) as ours:
        app.extensions["widget"].transport = SandboxGatewayTransport(gw.url, ours.url + "/gateway/messages", timeout=5)
        yield Setup(app, w, gateway, gw.url, ours, open_panel(app, w, 0, admin=True))


def first_save(s: Setup) -> dict[str, Any]:
    """The admin saves the CRM integration tab for the first time (the settings page's XHR)."""
    emp = s.world.employees
    form = {
        "st": s.admin.token,
        "csrf_token": s.admin.csrf,
        "new_client_entity": "lead",
        "pipeline": "1",
        "stage": "11",
        "distribution": "first_reply",
        f"role-{emp['User 0']}": "head",
        f"role-{emp['User 1']}": "seller",
        f"new-{emp['User 1']}": "1",
        f"role-{emp['User 2']}": "seller",
        f"new-{emp['User 2']}": "1",
    }
    response = s.admin.client.post(
        f"/app/settings/channels/{s.world.channel_id}", data=form, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def test_go_to_chats_shows_the_test_clients_chat_after_the_whole_new_client_flow(setup: Setup):
    saved = first_save(setup)
    assert saved["first_save"] is True and saved["test_message"]["channel"]["id"] == setup.world.channel_id
    # "Go to chats" in the dialog opens the chat panel.
    page = setup.admin.client.get("/app", query_string={"view": "chats", "st": setup.admin.token})
    assert page.status_code == 200 and 'data-testid="chat-panel"' in page.get_data(as_text=True)

    (delivered,) = setup.gateway.inbound  # the sandbox gateway played the test client, signed
    assert (delivered.status, delivered.sender_name, delivered.chat_type) == (200, "Wazzup test client", "whatsapp")
    assert delivered.answer["status"] == "stored"
    # The CRM got the contact and the lead as configured (pipeline 1, stage 11).
    (spec,) = setup.world.crm.specs
    assert (spec.name, spec.entity, spec.pipeline_id, spec.stage_id) == ("Wazzup test client", "lead", "1", "11")
    assert setup.world.crm.created_contacts == 1 and setup.world.crm.created_entities == 1
    # Distribution ran: first to answer, offered to both reps; the admin (head) sees it too.
    listing = setup.admin.chats().get_json()
    (chat,) = listing["chats"]
    assert chat["title"] == "Wazzup test client" and chat["offered"] is True and chat["counter"] == "grey"
    for rep in (1, 2):
        offer = open_panel(setup.app, setup.world, rep).chats().get_json()["chats"][0]
        assert offer["id"] == chat["id"] and offer["offered"] and offer["counter"] == "red"
    with db.transaction() as s:
        request = s.get(TestMessageRequest, setup.world.account_id)
        assert request is not None and request.status == "sent" and request.processed_at is not None
    # Sent, and the admin can see its channel: the panel has nothing more to say about it.
    assert 'data-testid="test-message-notice"' not in setup.admin.page().get_data(as_text=True)


def test_the_test_message_is_sent_once_however_often_it_is_triggered(setup: Setup):
    first_save(setup)
    for _ in range(3):
        assert setup.admin.page("/app/chats").status_code == 200
    services = setup.app.extensions["widget"]
    assert trial_message.send_test_message(db, services, setup.world.account_id) == trial_message.NOTHING
    # Even if the request looked pending again (a crash before it was marked), the fixed message id
    # makes the second delivery a duplicate: one message, one chat, one set of CRM entities.
    with db.transaction() as s:
        request = s.get(TestMessageRequest, setup.world.account_id)
        assert request is not None
        request.status = "pending"
    assert trial_message.send_test_message(db, services, setup.world.account_id) == trial_message.SENT
    assert [i.answer["status"] for i in setup.gateway.inbound] == ["stored", "duplicate"]
    with db.transaction() as s:
        assert len(list(s.execute(select(Message.id).where(Message.direction == "in")).scalars())) == 1
        assert len(list(s.execute(select(Chat.id)).scalars())) == 1
    assert setup.world.crm.created_entities == 1


def test_answering_the_test_client_gets_an_answer_back(setup: Setup):
    first_save(setup)
    setup.admin.page("/app/chats")
    (chat,) = setup.admin.chats().get_json()["chats"]
    rep1 = open_panel(setup.app, setup.world, 1)
    assert rep1.send(chat["id"], "Hello test client!", expect_offer=True).status_code == 201
    (out,) = setup.gateway.outbound
    assert out.text == "Hello test client!" and out.author_name == "User 1"
    assert setup.gateway.wait_for(lambda g: len(g.inbound) == 2)
    detail = rep1.chat(chat["id"]).get_json()
    assert detail["messages"][-1]["text"].startswith("Thanks, got your answer")
    assert detail["chat"]["responsible"] == "User 1"  # the rep took the test client


def test_the_periodic_sweep_sends_it_when_nobody_opens_the_chats(setup: Setup):
    request_test_message(db, setup.world.account_id, "100")  # "Send test message" on the settings tab
    assert setup.gateway.inbound == []
    from widget.jobs.reply_jobs import sweep_replies

    with setup.app.app_context():
        sweep_replies()
    assert len(setup.gateway.inbound) == 1


def test_an_unreachable_gateway_leaves_it_pending_for_the_next_sweep(setup: Setup, app: Flask):
    request_test_message(db, setup.world.account_id, "100")
    services = app.extensions["widget"]
    services.transport = SandboxGatewayTransport("http://127.0.0.1:9", setup.ours.url + "/gateway/messages")
    assert trial_message.send_test_message(db, services, setup.world.account_id) == trial_message.PENDING
    page = setup.admin.page("/app/chats").get_data(as_text=True)
    assert 'data-testid="test-message-notice"' in page and "The test client is writing" in page
    assert setup.admin.chat_ids() == []
    services.transport = SandboxGatewayTransport(setup.gateway_url, setup.ours.url + "/gateway/messages")
    from widget.jobs.reply_jobs import sweep_replies

    with app.app_context():
        sweep_replies()
    assert len(setup.gateway.inbound) == 1 and len(setup.admin.chat_ids()) == 1


def test_without_the_sandbox_the_test_client_writes_through_the_inbound_path(
    app: Flask, client: Any, database_url: str
):
    transport = RecordingTransport()  # a production gateway: it cannot play clients
    app.extensions["widget"].transport = transport
    w = make_world(app, n_users=3, roles=ROLES, distribution="round_robin")
    request_test_message(db, w.account_id, "100")
    assert trial_message.send_test_message(db, app.extensions["widget"], w.account_id) == trial_message.SENT
    with db.transaction() as s:
        chat = s.execute(select(Chat)).scalar_one()
        assert (chat.title, chat.external_chat_id) == ("Wazzup test client", f"wazzup-test-{w.account_id}")
        assert chat.assignment == "assigned" and chat.responsible_employee_id == w.emp(1)  # in turn
    assert w.crm.created_entities == 1
    assert open_panel(app, w, 1).chat_ids() == [chat.id]


def test_an_admin_without_a_role_on_the_channel_is_told_where_the_test_message_went(
    app: Flask, client: Any, database_url: str
):
    app.extensions["widget"].transport = RecordingTransport()
    w = make_world(app, n_users=3, roles={1: ("seller", True)})
    request_test_message(db, w.account_id, "100")
    admin = open_panel(app, w, 0, admin=True)
    html = admin.page().get_data(as_text=True)
    assert "where you have no role" in html and "Sales WhatsApp" in html
    assert admin.chat_ids() == []


def test_an_uninstalled_account_gets_no_test_message(app: Flask, client: Any, database_url: str):
    transport = RecordingTransport()
    app.extensions["widget"].transport = transport
    w = make_world(app, n_users=3, roles=ROLES)
    request_test_message(db, w.account_id, "100")
    with db.transaction() as s:
        account = s.get(Account, w.account_id)
        assert account is not None
        account.status = "uninstalled"
    assert trial_message.send_test_message(db, app.extensions["widget"], w.account_id) == trial_message.NOTHING
    with db.transaction() as s:
        assert s.execute(select(Chat.id)).first() is None


def test_a_restarted_sandbox_gateway_still_gets_the_test_client_to_write(setup: Setup):
    setup.admin.page()  # nothing requested yet: links nothing
    request_test_message(db, setup.world.account_id, "100")
    transport = setup.app.extensions["widget"].transport
    transport._link(setup.world.channel_id, "whatsapp", setup.world.secret)  # linked before the restart
    setup.gateway.reset()
    services = setup.app.extensions["widget"]
    assert trial_message.send_test_message(db, services, setup.world.account_id) == trial_message.SENT
    assert len(setup.gateway.inbound) == 1


def test_later_still_gets_the_test_client_writing_without_opening_the_chats(setup: Setup):
    """The dialog's "Later": nobody opens the panel, no sweep runs; the first save already sent it."""
    saved = first_save(setup)
    assert saved["test_message"]["just_requested"] is True
    (delivered,) = setup.gateway.inbound
    assert delivered.status == 200 and delivered.sender_name == "Wazzup test client"
    assert setup.world.crm.created_contacts == 1
    # A second save of the same channel asks for nothing more.
    first_save(setup)
    assert len(setup.gateway.inbound) == 1


@pytest.mark.parametrize(
    ("lang", "words"),
    [("es", "Soy un cliente de prueba"), ("pt", "Sou um cliente de teste"), ("ru", "Я тестовый клиент")],
)
def test_the_test_client_writes_in_the_language_of_the_admin_who_saved(setup: Setup, lang: str, words: str):
    """The admin's page is in their language (Bitrix24's LANG, Kommo's user language); the CRM's
    user list may not say it (Bitrix24's never does), so the page's language is the one kept."""
    setup.admin = panel_for(setup.app, setup.world.account_id, "100", admin=True, lang=lang)
    first_save(setup)
    (delivered,) = setup.gateway.inbound
    assert words in delivered.text
    with db.transaction() as s:
        (text,) = s.execute(select(Message.text).where(Message.direction == "in")).scalars()
    assert words in text


def test_a_request_without_a_page_language_uses_the_admins_crm_language(app: Flask, client: Any, database_url: str):
    """Requests recorded before the page language was kept: the admin's CRM language, as the CRM
    writes it (Bitrix24 says "la" for Latin-American Spanish)."""
    app.extensions["widget"].transport = RecordingTransport()
    w = make_world(app, n_users=3, roles=ROLES)
    with db.transaction() as s:
        admin = s.get(Employee, w.emp(0))
        assert admin is not None
        admin.lang = "la"
    request_test_message(db, w.account_id, "100")
    with app.app_context():  # as the job worker runs it
        assert trial_message.send_test_message(db, app.extensions["widget"], w.account_id) == trial_message.SENT
    with db.transaction() as s:
        (text,) = s.execute(select(Message.text).where(Message.direction == "in")).scalars()
    assert "Soy un cliente de prueba" in text
