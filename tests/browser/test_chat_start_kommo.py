""" "New conversation" in the sandbox Kommo's lead card, in Chromium: a sales rep writes first to their
own client on the default channel and finds the chat in the card's list, quality control is told why
not, and a rep whose only channel is a Telegram bot is told that a bot cannot write first.

Our app on ``http://127.0.0.1:<p>``, the Kommo shell on ``http://localhost:<q>``, third-party cookies
blocked; the card's client is read from the sandbox Kommo over HTTP, and the first message leaves
through the sandbox messaging gateway. Every assertion reads what the frame shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask_babel import force_locale, gettext
from playwright.sync_api import expect
from sqlalchemy import select

from tests.browser.chat_ui import WAIT_MS, ChatPanel, Gateway, gateway_for, set_roles
from tests.support.browser import CrmStack
from tests.support.kommo_sandbox import DEMO_HOST
from widget.db import db
from widget.models import Account, AccountSettings, Channel
from widget.models.accounts import CRM_KOMMO

pytestmark = pytest.mark.browser

FRAME = "#work-area-wazzup iframe"
ADMIN, JOSE, JOAO, ZOE = "Olivia Bennett", "José Núñez", "João Gonçalves", "Zoë Ångström"


@dataclass
class KommoCards:
    stack: CrmStack
    gateway: Gateway
    users: dict[str, int]
    account_id: int
    whatsapp_id: int
    bot_id: int

    def said(self, user: str, msgid: str, **values: Any) -> str:
        """What the page says to ``user``, in the language their Kommo speaks."""
        lang = next(u.lang for u in self.stack.kommo.sandbox.users(DEMO_HOST) if u.name == user)
        with self.stack.app.test_request_context(), force_locale(lang):
            return str(gettext(msgid, **values))

    def lead_card(self, page: Any, user: str, lead_id: int) -> ChatPanel:
        page.goto(self.stack.kommo_shell(f"/leads/{lead_id}", user=self.users[user]))
        return ChatPanel(page.frame_locator(FRAME)).wait()

    def client(self, name: str, phone: str, responsible: str) -> int:
        """A contact and its lead in Kommo, both of ``responsible``; the lead's id."""
        sandbox = self.stack.kommo.sandbox
        contact = sandbox.add_contact(DEMO_HOST, name, phone, responsible_user_id=self.users[responsible])
        return int(
            sandbox.add_lead(
                DEMO_HOST, f"{name}'s order", contact_id=contact, responsible_user_id=self.users[responsible]
            )
        )


@pytest.fixture(scope="module")
def kommo(stack: CrmStack, browser_context: Any) -> Iterator[KommoCards]:
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
        channels = {c.name: c.id for c in s.execute(select(Channel).where(Channel.account_id == account.id)).scalars()}
        account_id = account.id
        if s.get(AccountSettings, account_id) is None:
            s.add(AccountSettings(account_id=account_id))
    whatsapp, bot = channels["Sales WhatsApp"], channels["Support Telegram bot"]
    crm = {name: str(uid) for name, uid in users.items()}
    set_roles(
        account_id,
        whatsapp,
        {crm[ADMIN]: ("head", False), crm[JOSE]: ("seller", True), crm[ZOE]: ("qc", False)},
        distribution="first_reply",
    )
    set_roles(account_id, bot, {crm[JOSE]: ("seller", True), crm[JOAO]: ("seller", True)}, distribution="first_reply")
    with db.transaction() as s:
        settings = s.get(AccountSettings, account_id)
        assert settings is not None
        settings.default_channel_id = whatsapp  # the Advanced tab's default channel
    with stack.app.app_context(), gateway_for(stack) as gateway:
        gateway.link(account_id, whatsapp)
        yield KommoCards(stack, gateway, users, account_id, whatsapp, bot)


def test_a_rep_starts_a_conversation_from_the_lead_card(kommo: KommoCards, page: Any, shot: Any) -> None:
    lead = kommo.client("Ana Lima", "+55 11 91234-5678", JOSE)
    jose = kommo.lead_card(page, JOSE, lead)
    expect(jose.el("chats-empty")).to_be_visible()
    jose.el("start-new").click()
    expect(jose.el("start-form")).to_be_visible(timeout=WAIT_MS)
    expect(jose.el("start-client")).to_contain_text("Ana Lima")
    channel = jose.el("start-channel")
    assert "Sales WhatsApp" in channel.evaluate("s => s.options[s.selectedIndex].text")  # the default channel
    assert jose.el("start-address").evaluate("s => s.options[s.selectedIndex].text") == "+5511912345678"
    # The Telegram bot is not offered; the card says why.
    bot = jose.frame.locator(f"[data-testid=start-reason][data-channel-id='{kommo.bot_id}']")
    expect(bot).to_contain_text(  # José's Kommo speaks Spanish
        kommo.said(
            JOSE, "A Telegram bot cannot write first: the client has to write to the bot before it can answer them."
        )
    )
    shot(page, "form")

    jose.el("start-text").fill("Olá Ana! Your order is ready.")
    jose.el("start-send").click()
    expect(jose.el("conv-title")).to_have_text("Ana Lima", timeout=WAIT_MS)
    expect(jose.message("Your order is ready.")).to_be_visible()
    expect(jose.el("start-panel")).to_be_hidden()
    assert kommo.gateway.sandbox.wait_for(lambda g: any("Your order is ready" in m.text for m in g.outbound))
    (sent,) = [m for m in kommo.gateway.sandbox.outbound if "Your order is ready" in m.text]
    assert sent.chat_id == "5511912345678" and sent.channel_id == kommo.whatsapp_id
    shot(page, "started")

    # Back in the card's list (Kommo's card column shows one pane at a time), the chat is there.
    jose.frame.locator("#conv-back").click()
    expect(jose.item("Ana Lima")).to_be_visible()

    # "New conversation" again on this card offers the existing chat, not a second one.
    jose.el("start-new").click()
    expect(jose.el("start-open")).to_be_visible(timeout=WAIT_MS)
    expect(jose.el("start-send")).to_be_hidden()
    jose.el("start-text").fill("One more thing")
    jose.el("start-open").click()
    expect(jose.el("conv-title")).to_have_text("Ana Lima", timeout=WAIT_MS)
    expect(jose.el("composer-text")).to_have_value("One more thing")  # kept, unsent


def test_quality_control_is_told_why_not(kommo: KommoCards, page: Any, shot: Any) -> None:
    lead = kommo.client("Bea Souza", "+55 11 95555-0000", JOSE)
    zoe = kommo.lead_card(page, ZOE, lead)
    zoe.el("start-new").click()
    expect(zoe.el("start-summary")).to_have_text(
        kommo.said(ZOE, "You cannot start a conversation with this client:"), timeout=WAIT_MS
    )
    expect(zoe.el("start-form")).to_be_hidden()
    reason = zoe.frame.locator(f"[data-testid=start-reason][data-channel-id='{kommo.whatsapp_id}']")
    expect(reason).to_contain_text(
        kommo.said(
            ZOE, "Your role on this channel is Quality control: you can read its chats but not write to clients."
        )
    )
    shot(page, "quality-control")


def test_a_rep_whose_only_channel_is_a_telegram_bot_is_told_it_cannot_write_first(
    kommo: KommoCards, page: Any, shot: Any
) -> None:
    lead = kommo.client("Rui Costa", "+351 912 345 678", JOAO)
    joao = kommo.lead_card(page, JOAO, lead)
    joao.el("start-new").click()
    expect(joao.el("start-summary")).to_be_visible(timeout=WAIT_MS)
    expect(joao.el("start-form")).to_be_hidden()
    reason = joao.frame.locator(f"[data-testid=start-reason][data-channel-id='{kommo.bot_id}']")
    expect(reason).to_contain_text(  # João's Kommo speaks Portuguese
        kommo.said(
            JOAO, "A Telegram bot cannot write first: the client has to write to the bot before it can answer them."
        )
    )
    shot(page, "telegram-bot-only")
