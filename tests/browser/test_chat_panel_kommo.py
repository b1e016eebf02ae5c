"""The chat panel inside the sandbox Kommo's shell, in Chromium, as a sales rep, a head and quality
control: the left-menu "Wazzup chats" page and the lead card panel.

Our app on ``http://127.0.0.1:<p>``, the Kommo shell on ``http://localhost:<q>`` (another site),
third-party cookies blocked. Clients write through the sandbox messaging gateway (signed POSTs to
our /gateway/messages); the new-client flow runs against the sandbox Kommo for real (contact and
lead created through the outbox, first to answer). Every assertion reads what the frame shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.browser.chat_ui import POLLS, WAIT_MS, ChatPanel, Gateway, chat_of, gateway_for, polls_held, set_roles
from tests.support.browser import CrmStack
from tests.support.kommo_sandbox import DEMO_HOST
from widget.db import db
from widget.models import Account, Channel, Pipeline, Stage
from widget.models.accounts import CRM_KOMMO

pytestmark = pytest.mark.browser

FRAME = "#work-area-wazzup iframe"
ADMIN, JOSE, JOAO, ZOE = "Olivia Bennett", "José Núñez", "João Gonçalves", "Zoë Ångström"


@dataclass
class KommoChats:
    stack: CrmStack
    gateway: Gateway
    users: dict[str, int]  # name -> Kommo user id
    account_id: int
    channel_id: int

    def panel(self, page: Any, user: str) -> ChatPanel:
        """Kommo's left menu → "Wazzup chats" (the widget_page location), as ``user``."""
        page.goto(self.stack.kommo_shell("/wazzup", user=self.users[user]))
        return ChatPanel(page.frame_locator(FRAME)).wait()

    def lead_card(self, page: Any, user: str, lead_id: str) -> ChatPanel:
        """A lead's card: our panel in Kommo's right column (the lcard location)."""
        page.goto(self.stack.kommo_shell(f"/leads/{lead_id}", user=self.users[user]))
        return ChatPanel(page.frame_locator(FRAME)).wait()

    def client_writes(self, name: str, phone: str, text: str) -> None:
        self.gateway.client_writes(self.channel_id, name, phone, text)


@pytest.fixture(scope="module")
def kommo(stack: CrmStack, browser_context: Any) -> Iterator[KommoChats]:
    sandbox = stack.kommo.sandbox
    users = {u.name: u.id for u in sandbox.users(DEMO_HOST)}
    page = browser_context.new_page()
    try:
        page.goto(stack.kommo_shell("/settings/widgets", user=users[ADMIN]))
        page.locator("#install-widget").click()
        assert "Installed." in page.locator("#hook-result").inner_text()
    finally:
        page.close()
    with db.transaction() as s:
        account = s.execute(
            select(Account).where(Account.crm == CRM_KOMMO, Account.external_id == str(sandbox.account(DEMO_HOST).id))
        ).scalar_one()
        channel = s.execute(
            select(Channel).where(Channel.account_id == account.id, Channel.name == "Sales WhatsApp")
        ).scalar_one()
        pipeline = s.execute(
            select(Pipeline).where(Pipeline.account_id == account.id, Pipeline.is_main, Pipeline.entity == "lead")
        ).scalar_one()
        stage = s.execute(
            select(Stage).where(Stage.pipeline_id == pipeline.id, Stage.kind == "open").order_by(Stage.sort).limit(1)
        ).scalar_one()
        ids = (account.id, channel.id, pipeline.crm_pipeline_id, stage.crm_stage_id)
    account_id, channel_id, pipeline_id, stage_id = ids
    set_roles(
        account_id,
        channel_id,
        {
            str(users[ADMIN]): ("head", False),
            str(users[JOSE]): ("seller", True),
            str(users[JOAO]): ("seller", True),
            str(users[ZOE]): ("qc", False),
        },
        new_client_entity="lead",
        crm_pipeline_id=pipeline_id,
        crm_stage_id=stage_id,
        distribution="first_reply",
    )
    with stack.app.app_context(), gateway_for(stack) as gateway:
        gateway.link(account_id, channel_id)
        yield KommoChats(stack, gateway, users, account_id, channel_id)


def test_reps_see_the_new_client_offered_quality_control_only_watches(
    kommo: KommoChats, browser_context: Any, shot: Any
) -> None:
    kommo.client_writes("Ana Souza", "+55 11 98765-4321", "Olá! Do you deliver to Campinas?")
    chat = chat_of(kommo.account_id, "Ana Souza")
    assert chat.assignment == "offered" and chat.crm_entity_id  # the lead exists in Kommo
    lead = kommo.stack.kommo.sandbox.account(DEMO_HOST).leads[int(chat.crm_entity_id)]
    assert lead.pipeline_id and "Ana Souza" in (lead.name or "")

    rep = browser_context.new_page()
    jose = kommo.panel(rep, JOSE)
    expect(jose.item("Ana Souza")).to_be_visible()
    assert jose.counter("Ana Souza") == "red"
    expect(jose.item("Ana Souza").locator("[data-testid=offer-tag]")).to_be_visible()
    expect(jose.el("total-red")).to_have_text("1")
    jose.open("Ana Souza")
    expect(jose.el("offer-banner")).to_be_visible()
    expect(jose.message("Do you deliver to Campinas?")).to_be_visible()
    expect(jose.el("composer")).to_be_visible()
    assert kommo.stack.app and rep.context.cookies(kommo.stack.ours) == []
    shot(rep, "rep-offer")

    watcher = browser_context.new_page()
    zoe = kommo.panel(watcher, ZOE)
    expect(zoe.item("Ana Souza")).to_be_visible()
    assert zoe.counter("Ana Souza") == "grey"
    zoe.open("Ana Souza")
    expect(zoe.el("composer")).to_be_hidden()
    # Nobody took the new client yet, and quality control is not told it could.
    expect(zoe.el("offer-banner")).to_have_text("New client: waiting for the first answer from a sales rep or head.")
    expect(zoe.el("composer-off")).to_have_text(
        "A new client: the first sales rep or head to answer takes this chat. "
        "Quality control can read this chat but not write."
    )
    # Even from the page's own script the server refuses quality control's reply.
    assert zoe.post_from_frame(f"/api/chats/{chat.id}/messages", {"text": "QC writing"}) == 403
    shot(watcher, "quality-control")

    head = browser_context.new_page()
    olivia = kommo.panel(head, ADMIN)
    expect(olivia.item("Ana Souza")).to_be_visible()
    assert olivia.counter("Ana Souza") == "grey"  # offered to the reps, not hers to take
    for tab in (rep, watcher, head):
        tab.close()


def test_first_to_answer_wins_the_other_rep_is_told_and_the_lists_update_without_reload(
    kommo: KommoChats, browser_context: Any, shot: Any
) -> None:
    kommo.client_writes("Bruno Lima", "+55 21 99876-5432", "Hi, I need a quote for 40 chairs")
    first, second = browser_context.new_page(), browser_context.new_page()
    jose, joao = kommo.panel(first, JOSE), kommo.panel(second, JOAO)
    for panel in (jose, joao):
        panel.open("Bruno Lima")
        panel.mark()
    # Both press "Send" at the same moment: João's page has not heard of José's reply when he
    # presses it, so its polls are held back (not failed) until his send is answered.
    with polls_held(second):
        jose.type("Hello Bruno! I am José, happy to help.")
        joao.type("Hi Bruno, João here.")
        jose.send()
        sent = jose.message("Hello Bruno! I am José, happy to help.")
        expect(sent.locator("[data-testid=msg-status]")).to_have_attribute("data-status", "sent")
        joao.send()
        # João's Kommo speaks Portuguese: "José Núñez already took this chat. Your reply was not sent."
        expect(joao.el("conv-alert")).to_have_text("José Núñez já ficou com este chat. Sua resposta não foi enviada.")
    expect(joao.message("Hi Bruno, João here.")).to_have_count(0)
    # His text is not lost: it waits, read-only, to be copied.
    assert joao.unsent() == "Hi Bruno, João here."
    expect(joao.el("unsent-title")).to_contain_text("Bruno Lima")
    shot(second, "loser")
    # The loser's list drops the chat by itself; the winner's shows it as theirs, answered.
    expect(joao.item("Bruno Lima")).to_have_count(0)
    expect(joao.el("conv-alert")).to_be_visible()
    assert joao.unsent() == "Hi Bruno, João here."  # the refresh that dropped the chat left it
    joao.el("unsent-copy").click()
    expect(joao.el("unsent-status")).not_to_be_empty()
    joao.el("unsent-dismiss").click()
    expect(joao.el("unsent")).to_be_hidden()

    # Quality control sees who answers the client, and that it only reads.
    watcher = browser_context.new_page()
    zoe = kommo.panel(watcher, ZOE)
    zoe.open("Bruno Lima")
    expect(zoe.el("composer-off")).to_have_text(
        f"{JOSE} is answering this client. Quality control can read this chat but not write."
    )
    expect(zoe.el("offer-banner")).to_be_hidden()
    watcher.close()
    expect(jose.item("Bruno Lima").locator("[data-testid=chat-counter]")).to_have_count(0)
    assert [m.text for m in kommo.gateway.sandbox.outbound if "Bruno" in m.text] == [
        "Hello Bruno! I am José, happy to help."
    ]
    lead = kommo.stack.kommo.sandbox.account(DEMO_HOST).leads[
        int(chat_of(kommo.account_id, "Bruno Lima").crm_entity_id or 0)
    ]
    assert lead.responsible_user_id == kommo.users[JOSE]  # Kommo follows the winner

    # A new client writes while both panels are open: it appears in both lists, no reload.
    kommo.client_writes("Carla Dias", "+55 31 91234-0000", "Bom dia!")
    for panel in (jose, joao):
        expect(panel.item("Carla Dias")).to_be_visible()
        assert panel.counter("Carla Dias") == "red"
        assert panel.not_reloaded()
    shot(first, "winner")
    first.close()
    second.close()


def test_the_lead_card_shows_only_that_clients_chats(kommo: KommoChats, browser_context: Any, shot: Any) -> None:
    kommo.client_writes("Diego Alves", "+55 41 90000-1111", "Is the sofa still available?")
    diego = chat_of(kommo.account_id, "Diego Alves")
    page = browser_context.new_page()
    head = kommo.lead_card(page, ADMIN, diego.crm_entity_id or "")
    expect(head.item("Diego Alves")).to_be_visible()
    assert head.titles() == ["Diego Alves"]  # not Ana, Bruno or Carla
    assert head.frame.locator("[data-testid=chat-panel]").get_attribute("data-scope") == "card"
    head.open("Diego Alves")
    head.send("Yes, it is! Shall I reserve it?")
    expect(head.message("Shall I reserve it?").locator("[data-testid=msg-status]")).to_have_attribute(
        "data-status", "sent"
    )
    shot(page, "lead-card")
    # A rep who is not offered or responsible sees nothing on this card.
    other = browser_context.new_page()
    zoe_card = kommo.lead_card(other, ZOE, diego.crm_entity_id or "")
    expect(zoe_card.item("Diego Alves")).to_be_visible()  # quality control reads every chat
    noah = kommo.lead_card(other, "Noah Kim", diego.crm_entity_id or "")
    expect(noah.el("chats-empty")).to_be_visible()
    assert noah.titles() == []
    # Noah has no role on any channel: he is told so, and who can give him one, not "no chats yet".
    expect(noah.el("chats-empty")).to_have_text(
        "You have no role on any channel, so no chats are shown to you. "
        f"Ask an administrator of your CRM to give you one: {ADMIN}."
    )
    noah = kommo.panel(other, "Noah Kim")
    expect(noah.el("chats-empty")).to_have_attribute("data-reason", "no-role")
    expect(noah.el("chats-empty")).to_contain_text(f"give you one: {ADMIN}.")
    shot(other, "no-role")
    page.close()
    other.close()


def test_after_the_first_save_go_to_chats_shows_the_test_clients_chat(
    kommo: KommoChats, browser_context: Any, shot: Any
) -> None:
    page = browser_context.new_page()
    page.goto(kommo.stack.kommo_shell("/settings/wazzup", user=kommo.users[ADMIN]))
    frame = page.frame_locator(FRAME)
    frame.locator("[data-testid=save-button]").click()  # the roles and choices stored for this channel
    dialog = frame.locator("[data-testid=test-message-dialog]")
    expect(dialog).to_be_visible(timeout=WAIT_MS)
    expect(dialog.locator("[data-field=channel-name]")).to_have_text("Sales WhatsApp")
    dialog.locator("[data-testid=go-to-chats]").click()
    panel = ChatPanel(frame).wait()
    # The test client wrote through the sandbox gateway; Kommo got its lead; the admin (a head) sees it.
    expect(panel.item("Wazzup test client")).to_be_visible(timeout=WAIT_MS)
    assert any(m.sender_name == "Wazzup test client" for m in kommo.gateway.sandbox.inbound)
    chat = chat_of(kommo.account_id, "Wazzup test client")
    lead = kommo.stack.kommo.sandbox.account(DEMO_HOST).leads[int(chat.crm_entity_id or 0)]
    assert "Wazzup test client" in lead.name
    expect(panel.el("test-message-notice")).to_be_hidden(timeout=WAIT_MS)
    panel.open("Wazzup test client")
    expect(panel.message("I am a test client")).to_be_visible()
    shot(page, "test-message")
    page.close()


def test_the_session_token_leaves_the_address_and_the_page_follows_its_renewals(
    kommo: KommoChats, page: Any, shot: Any
) -> None:
    """The token is taken out of the frame's address once the panel is loaded; a renewed token sent
    by the server (X-Session-Renewed) is what the next polls, forms and links carry; and when the
    session finally ends the panel says so, with the way back."""
    from tests.support.factories import identity, session_token
    from widget.web.identity import RENEWED_HEADER

    panel = kommo.panel(page, JOSE)
    [ours] = [f for f in page.frames if "/app/chats" in f.url]
    ours.wait_for_url(lambda url: "st=" not in url)  # once the page's script has run
    first = panel.frame.locator('meta[name="session-token"]').get_attribute("content")
    assert first

    ident = identity(kommo.account_id, user=str(kommo.users[JOSE]), admin=False, origin=kommo.stack.kommo_origin)
    renewed = session_token(kommo.stack.app, ident)
    sent: list[str] = []

    def renew_once(route: Any) -> None:
        sent.append(route.request.headers.get("x-session-token", ""))
        if len(sent) == 1:
            answer = route.fetch()
            route.fulfill(response=answer, headers={**answer.headers, RENEWED_HEADER: renewed})
        else:
            route.continue_()

    page.route(POLLS, renew_once)
    try:
        for _ in range(WAIT_MS // 250):  # the panel polls every two seconds
            if len(sent) > 2:
                break
            page.wait_for_timeout(250)
    finally:
        page.unroute(POLLS, renew_once)
    assert sent[0] == first and set(sent[1:]) == {renewed}, sent
    held = panel.frame.locator("body").evaluate(
        "() => [window.Widget.sessionToken, history.state && history.state.st,"
        " Array.from(document.querySelectorAll('a[href*=\"st=\"]')).map(a => a.href)]"
    )
    assert held[0] == held[1] == renewed
    assert all(f"st={first}" not in href for href in held[2]), held[2]

    # The session ends (the account is reinstalled elsewhere, say): the next poll is refused and
    # the panel says what to do instead of going quiet.
    with db.transaction() as s:
        account = s.get(Account, kommo.account_id)
        assert account is not None
        account.session_epoch += 1
    try:
        # José reads Spanish: "reopen the integration from your CRM".
        expect(panel.el("chats-status")).to_contain_text("Vuelve a abrir la integración desde tu CRM", timeout=WAIT_MS)
        shot(page, "session-ended")
    finally:
        with db.transaction() as s:
            account = s.get(Account, kommo.account_id)
            assert account is not None
            account.session_epoch -= 1
