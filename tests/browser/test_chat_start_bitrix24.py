""" "New conversation" in the sandbox Bitrix24 portal's deal tab, in Chromium: a sales rep writes first
to their own client and finds the chat in the tab's list, quality control is told why not, and a rep
whose only channel is a Telegram bot is told that a bot cannot write first.

Our app on ``http://127.0.0.1:<p>``, the portal on ``http://localhost:<q>``, third-party cookies
blocked; Bitrix24 opens the tab with a hidden form POSTed into its iframe. The deal and its contact
are read from the sandbox portal over HTTP (one batch); the first message leaves through the sandbox
messaging gateway. Every assertion reads what the frame shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from flask_babel import force_locale, gettext
from playwright.sync_api import expect

from tests.browser.chat_ui import WAIT_MS, ChatPanel, Gateway, gateway_for, set_roles
from tests.support.browser import CrmStack
from widget.db import db
from widget.services.channels.manage import add_channel

pytestmark = pytest.mark.browser

FRAME = "#b24-app-frame"
# The demo portal's people (sandbox/bitrix24/seed.py), by Bitrix24 user id, and their language.
ADMIN, JOSE, JOAO, ZOE = 1, 3, 4, 5
LANG = {ADMIN: "en", JOSE: "es", JOAO: "pt", ZOE: "en"}


@dataclass
class Bitrix24Cards:
    stack: CrmStack
    gateway: Gateway
    account_id: int
    whatsapp_id: int
    bot_id: int

    def said(self, user: int, msgid: str) -> str:
        with self.stack.app.test_request_context(), force_locale(LANG[user]):
            return str(gettext(msgid))

    def deal_tab(self, page: Any, user: int, deal_id: str) -> ChatPanel:
        page.goto(
            self.stack.bitrix24_shell("/switch") + "?" + urlencode({"as": user, "next": f"/shell/crm/deal/{deal_id}"})
        )
        page.locator("#card-tabs a[data-tab]").first.click()
        return ChatPanel(page.frame_locator(FRAME)).wait()

    def client(self, name: str, phone: str, responsible: int) -> str:
        """A contact and its deal in the portal, both of ``responsible``; the deal's id."""
        b24 = self.stack.bitrix24
        contact = b24.state.add_record(
            b24.portal,
            "contact",
            {"NAME": name, "PHONE": [{"VALUE": phone, "VALUE_TYPE": "MOBILE"}], "ASSIGNED_BY_ID": str(responsible)},
        )
        deal = b24.state.add_record(
            b24.portal,
            "deal",
            {
                "TITLE": f"{name}'s deal",
                "CONTACT_ID": contact["ID"],
                "CATEGORY_ID": "0",
                "ASSIGNED_BY_ID": str(responsible),
            },
        )
        b24.state.wait_deliveries()
        return str(deal["ID"])


@pytest.fixture(scope="module")
def b24(stack: CrmStack, browser_context: Any) -> Iterator[Bitrix24Cards]:
    page = browser_context.new_page()
    try:
        page.goto(stack.bitrix24_shell("/switch") + "?" + urlencode({"as": ADMIN, "next": "/shell/market"}))
        page.locator("#install-app").click()
        page.frame_locator(FRAME).locator("#open-account").wait_for()
    finally:
        page.close()
    account = stack.bitrix24.account()
    assert account is not None
    whatsapp = add_channel(db, account.id, "whatsapp", "Support WhatsApp", "+34600123456")
    bot = add_channel(db, account.id, "telegram", "Help bot", "@acme_help_bot")
    set_roles(
        account.id,
        whatsapp.id,
        {str(ADMIN): ("head", False), str(JOSE): ("seller", True), str(ZOE): ("qc", False)},
        new_client_entity="deal",
        distribution="first_reply",
    )
    set_roles(account.id, bot.id, {str(JOAO): ("seller", True)}, new_client_entity="deal", distribution="first_reply")
    with stack.app.app_context(), gateway_for(stack) as gateway:
        gateway.link(account.id, whatsapp.id)
        yield Bitrix24Cards(stack, gateway, account.id, whatsapp.id, bot.id)


def test_a_rep_starts_a_conversation_from_the_deal_tab(b24: Bitrix24Cards, page: Any, shot: Any) -> None:
    deal = b24.client("Lucía Gómez", "+34 622 333 444", JOSE)
    jose = b24.deal_tab(page, JOSE, deal)
    jose.el("start-new").click()
    expect(jose.el("start-form")).to_be_visible(timeout=WAIT_MS)
    expect(jose.el("start-client")).to_contain_text("Lucía Gómez")
    assert jose.el("start-address").evaluate("s => s.options[s.selectedIndex].text") == "+34622333444"
    shot(page, "form")

    jose.el("start-text").fill("¡Hola Lucía! Tu pedido está listo.")
    jose.el("start-send").click()
    expect(jose.el("conv-title")).to_have_text("Lucía Gómez", timeout=WAIT_MS)
    expect(jose.message("Tu pedido está listo.")).to_be_visible()
    expect(jose.item("Lucía Gómez")).to_be_visible()  # in the deal tab's list
    assert b24.gateway.sandbox.wait_for(lambda g: any("Tu pedido" in m.text for m in g.outbound))
    (sent,) = [m for m in b24.gateway.sandbox.outbound if "Tu pedido" in m.text]
    assert sent.chat_id == "34622333444" and sent.channel_id == b24.whatsapp_id
    assert page.context.cookies(b24.stack.ours) == []
    shot(page, "started")


def test_quality_control_is_told_why_not(b24: Bitrix24Cards, page: Any, shot: Any) -> None:
    deal = b24.client("Pedro Ruiz", "+34 633 444 555", JOSE)
    zoe = b24.deal_tab(page, ZOE, deal)
    zoe.el("start-new").click()
    expect(zoe.el("start-summary")).to_have_text(
        b24.said(ZOE, "You cannot start a conversation with this client:"), timeout=WAIT_MS
    )
    expect(zoe.el("start-form")).to_be_hidden()
    reason = zoe.frame.locator(f"[data-testid=start-reason][data-channel-id='{b24.whatsapp_id}']")
    expect(reason).to_contain_text(
        b24.said(ZOE, "Your role on this channel is Quality control: you can read its chats but not write to clients.")
    )
    shot(page, "quality-control")


def test_a_rep_whose_only_channel_is_a_telegram_bot_is_told_it_cannot_write_first(
    b24: Bitrix24Cards, page: Any, shot: Any
) -> None:
    deal = b24.client("Rita Alves", "+351 913 000 111", JOAO)
    joao = b24.deal_tab(page, JOAO, deal)
    joao.el("start-new").click()
    expect(joao.el("start-summary")).to_be_visible(timeout=WAIT_MS)
    expect(joao.el("start-form")).to_be_hidden()
    reason = joao.frame.locator(f"[data-testid=start-reason][data-channel-id='{b24.bot_id}']")
    expect(reason).to_contain_text(
        b24.said(
            JOAO, "A Telegram bot cannot write first: the client has to write to the bot before it can answer them."
        )
    )
    shot(page, "telegram-bot-only")
