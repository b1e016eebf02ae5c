"""The chat panel inside the sandbox Bitrix24 portal's shell, in Chromium, as a sales rep, a head and
quality control: the left-menu app page and the deal card's detail tab.

Our app on ``http://127.0.0.1:<p>``, the portal on ``http://localhost:<q>`` (another site),
third-party cookies blocked. Bitrix24 opens us with a hidden form POSTed into a named iframe; our
pages carry the session token, never a cookie. Clients write through the sandbox messaging gateway;
the new-client flow runs against the sandbox portal for real (contact and deal created through the
outbox, first to answer). Every assertion reads what the frame shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from tests.browser.chat_ui import WAIT_MS, ChatPanel, Gateway, chat_of, gateway_for, polls_held, set_roles
from tests.support.browser import CrmStack
from widget.db import db
from widget.services.channels.manage import add_channel

pytestmark = pytest.mark.browser

FRAME = "#b24-app-frame"
# The demo portal's people (sandbox/bitrix24/seed.py), by Bitrix24 user id.
ADMIN, JOSE, JOAO, ZOE, LIAM = 1, 3, 4, 5, 7


@dataclass
class Bitrix24Chats:
    stack: CrmStack
    gateway: Gateway
    account_id: int
    channel_id: int

    def act_as(self, page: Any, user: int, path: str) -> None:
        page.goto(self.stack.bitrix24_shell("/switch") + "?" + urlencode({"as": user, "next": path}))

    def panel(self, page: Any, user: int) -> ChatPanel:
        """Left menu → "Wazzup chats": employees land on the chat panel; an admin lands on the app
        page and opens "Chats" from there."""
        self.act_as(page, user, "/shell")
        page.locator("#menu-app").click()
        frame = page.frame_locator(FRAME)
        if user == ADMIN:
            frame.locator("#open-chats").click()
        return ChatPanel(frame).wait()

    def deal_tab(self, page: Any, user: int, deal_id: str) -> ChatPanel:
        """A deal's card → our detail tab (``CRM_DEAL_DETAIL_TAB``, ``PLACEMENT_OPTIONS.ID``)."""
        self.act_as(page, user, f"/shell/crm/deal/{deal_id}")
        page.locator("#card-tabs a[data-tab]").first.click()
        return ChatPanel(page.frame_locator(FRAME)).wait()

    def client_writes(self, name: str, phone: str, text: str) -> None:
        self.gateway.client_writes(self.channel_id, name, phone, text)


@pytest.fixture(scope="module")
def b24(stack: CrmStack, browser_context: Any) -> Iterator[Bitrix24Chats]:
    pytest.importorskip("widget.crm.bitrix24.port", reason="the Bitrix24 CRM port creates the deals")
    page = browser_context.new_page()
    try:
        page.goto(stack.bitrix24_shell("/switch") + "?" + urlencode({"as": ADMIN, "next": "/shell/market"}))
        page.locator("#install-app").click()
        page.frame_locator(FRAME).locator("#open-account").wait_for()
    finally:
        page.close()
    account = stack.bitrix24.account()
    assert account is not None
    channel = add_channel(db, account.id, "whatsapp", "Support WhatsApp", "+34600123456")
    set_roles(
        account.id,
        channel.id,
        {
            str(ADMIN): ("head", False),
            str(JOSE): ("seller", True),
            str(JOAO): ("seller", True),
            str(ZOE): ("qc", False),
        },
        new_client_entity="deal",
        distribution="first_reply",
    )
    with stack.app.app_context(), gateway_for(stack) as gateway:
        gateway.link(account.id, channel.id)
        yield Bitrix24Chats(stack, gateway, account.id, channel.id)


def test_reps_see_the_offer_heads_and_quality_control_see_it_grey(
    b24: Bitrix24Chats, browser_context: Any, shot: Any
) -> None:
    b24.client_writes("Marta López", "+34 611 222 333", "Hola, ¿tenéis el modelo en azul?")
    chat = chat_of(b24.account_id, "Marta López")
    assert chat.assignment == "offered" and chat.crm_entity_kind == "deal" and chat.crm_entity_id
    portal = b24.stack.bitrix24.portal
    assert int(chat.crm_entity_id) in portal.records["deal"]  # the deal exists in Bitrix24

    rep = browser_context.new_page()
    jose = b24.panel(rep, JOSE)
    expect(jose.item("Marta López")).to_be_visible()
    assert jose.counter("Marta López") == "red"
    jose.open("Marta López")
    expect(jose.el("offer-banner")).to_be_visible()
    expect(jose.el("composer")).to_be_visible()
    assert rep.context.cookies(b24.stack.ours) == []
    shot(rep, "rep-offer")

    watcher = browser_context.new_page()
    zoe = b24.panel(watcher, ZOE)
    assert zoe.counter("Marta López") == "grey"
    zoe.open("Marta López")
    expect(zoe.el("composer")).to_be_hidden()
    expect(zoe.el("offer-banner")).to_have_text("New client: waiting for the first answer from a sales rep or head.")
    expect(zoe.el("composer-off")).to_have_text(
        "A new client: the first sales rep or head to answer takes this chat. "
        "Quality control can read this chat but not write."
    )
    assert zoe.post_from_frame(f"/api/chats/{chat.id}/messages", {"text": "QC writing"}) == 403
    assert zoe.post_from_frame(f"/api/chats/{chat.id}/no-reply", {}) == 403
    shot(watcher, "quality-control")

    admin = browser_context.new_page()
    head = b24.panel(admin, ADMIN)
    assert head.counter("Marta López") == "grey"
    # Liam has no role on the channel: an empty panel, and no way in by id.
    outsider = browser_context.new_page()
    liam = b24.panel(outsider, LIAM)
    expect(liam.el("chats-empty")).to_be_visible()
    # He is told why, and who can change it: the administrators we know of (Bitrix24 says who is one
    # only for the user who opens the app), by name.
    expect(liam.el("chats-empty")).to_have_text(
        "You have no role on any channel, so no chats are shown to you. "
        "Ask an administrator of your CRM to give you one: Alexandra Moreno."
    )
    shot(outsider, "no-role")
    assert liam.post_from_frame(f"/api/chats/{chat.id}/messages", {"text": "hi"}) == 403
    for tab in (rep, watcher, admin, outsider):
        tab.close()


def test_first_to_answer_wins_and_the_other_rep_is_told(b24: Bitrix24Chats, browser_context: Any, shot: Any) -> None:
    b24.client_writes("Pablo Ruiz", "+34 622 333 444", "Quiero un presupuesto")
    first, second = browser_context.new_page(), browser_context.new_page()
    jose, joao = b24.panel(first, JOSE), b24.panel(second, JOAO)
    for panel in (jose, joao):
        panel.open("Pablo Ruiz")
        panel.mark()
    # João's page has not heard of José's reply when he presses "Send".
    with polls_held(second):
        joao.type("Hola Pablo, soy João")
        jose.send("¡Hola Pablo! Soy José, te preparo el presupuesto.")
        expect(jose.message("te preparo el presupuesto").locator("[data-testid=msg-status]")).to_have_attribute(
            "data-status", "sent", timeout=WAIT_MS
        )
        joao.send()
        expect(joao.el("conv-alert")).to_contain_text("José Núñez")
        assert joao.unsent() == "Hola Pablo, soy João"
    expect(joao.item("Pablo Ruiz")).to_have_count(0, timeout=WAIT_MS)
    assert joao.unsent() == "Hola Pablo, soy João"  # the list refresh left it to copy
    joao.el("unsent-copy").click()
    expect(joao.el("unsent-status")).not_to_be_empty()

    watcher = browser_context.new_page()
    zoe = b24.panel(watcher, ZOE)
    zoe.open("Pablo Ruiz")
    expect(zoe.el("composer-off")).to_have_text(
        "José Núñez is answering this client. Quality control can read this chat but not write."
    )
    watcher.close()
    assert [m.text for m in b24.gateway.sandbox.outbound if "Pablo" in m.text] == [
        "¡Hola Pablo! Soy José, te preparo el presupuesto."
    ]
    deal = b24.stack.bitrix24.portal.records["deal"][int(chat_of(b24.account_id, "Pablo Ruiz").crm_entity_id or 0)]
    assert str(deal["ASSIGNED_BY_ID"]) == str(JOSE)  # Bitrix24 follows the winner
    shot(second, "loser")

    b24.client_writes("Lucía Gómez", "+34 633 444 555", "¿Abrís el sábado?")
    for panel in (jose, joao):
        expect(panel.item("Lucía Gómez")).to_be_visible(timeout=WAIT_MS)
        assert panel.not_reloaded()
    shot(first, "winner")
    first.close()
    second.close()


def test_the_deal_tab_shows_only_that_deals_chats(b24: Bitrix24Chats, browser_context: Any, shot: Any) -> None:
    b24.client_writes("Irene Sanz", "+34 644 555 666", "Buenas tardes")
    irene = chat_of(b24.account_id, "Irene Sanz")
    page = browser_context.new_page()
    head = b24.deal_tab(page, ADMIN, irene.crm_entity_id or "")
    expect(head.item("Irene Sanz")).to_be_visible()
    assert head.titles() == ["Irene Sanz"]
    assert head.frame.locator("[data-testid=chat-panel]").get_attribute("data-scope") == "card"
    # The page sized its frame through the BX24 bridge (BX24.fitWindow → resizeWindow to the portal).
    expect(page.locator(FRAME)).to_have_attribute("data-height", re.compile(r"^[1-9][0-9]+"))
    head.open("Irene Sanz")
    head.send("¡Buenas tardes, Irene!")
    expect(head.message("Buenas tardes, Irene").locator("[data-testid=msg-status]")).to_have_attribute(
        "data-status", "sent", timeout=WAIT_MS
    )
    shot(page, "deal-tab")
    page.close()
