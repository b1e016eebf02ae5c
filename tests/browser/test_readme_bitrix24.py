"""The README's "Trying it as a user" walk-through for Bitrix24, step by step as written, in Chromium:
the portal's shell, our app in its frame, and the sandbox messaging gateway's console.

Each step clicks what the README names (Market, Install, Open Wazzup account, Add a channel, Select
roles, Apply, Save, Go to chats) and the console then lists the channel by account and name, and a
client written there reaches the admin's chats.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.chat_ui import WAIT_MS, ChatPanel, Gateway, gateway_for
from tests.browser.settings_ui import click_until
from tests.support.browser import CrmStack

pytestmark = pytest.mark.browser

FRAME = "#b24-app-frame"


@pytest.fixture(scope="module")
def gateway(stack: CrmStack) -> Iterator[Gateway]:
    with gateway_for(stack) as gw:
        yield gw


def add_channel(frame: Any, messenger: str, name: str, address: str) -> None:
    frame.get_by_label("Messenger").select_option(label=messenger)
    frame.get_by_label("Name", exact=True).fill(name)
    frame.get_by_label("Number or username").fill(address)
    frame.get_by_role("button", name="Add channel").click()
    frame.get_by_text("Channel added.").wait_for()


def test_the_bitrix24_walk_through_works_as_written(
    stack: CrmStack, gateway: Gateway, browser_context: Any, page: Any, shot: Any
) -> None:
    # 2. Bitrix24 — the shell; Market → Install; the app opens.
    page.goto(stack.bitrix24_shell())
    page.get_by_role("link", name="Market").click()
    page.get_by_role("link", name="Install").click()
    frame = page.frame_locator(FRAME)
    frame.get_by_role("link", name="Open Wazzup account").click()
    # A new portal has no channel: Add a channel, WhatsApp "Sales WhatsApp" +1 202 555 0143.
    frame.get_by_role("link", name="Add a channel").click()
    add_channel(frame, "WhatsApp", "Sales WhatsApp", "+1 202 555 0143")
    # Back on CRM integration: Select roles, yourself Head with new clients, Apply, Save.
    frame.get_by_role("link", name="CRM integration").click()
    frame.get_by_role("button", name="Select roles").click()
    me = frame.locator("[data-testid=employee-row]", has_text="Alexandra Moreno")
    me.locator("select").select_option(label="Head")
    me.locator("input[type=checkbox]").check()
    frame.get_by_role("button", name="Apply", exact=True).click()
    frame.get_by_role("button", name="Save", exact=True).click()
    frame.get_by_text("Settings saved. Try your chats!").wait_for()
    shot(page, "saved")
    # The saved page and its dialog resized the frame: click until the panel opens.
    chats = ChatPanel(frame)
    click_until(frame, frame.get_by_role("link", name="Go to chats"), chats.el("chat-panel"))
    expect(chats.item("Wazzup test client")).to_be_visible(timeout=WAIT_MS)

    # 3. Messages — the console lists the channel by account and name, at once.
    console = browser_context.new_page()
    try:
        console.goto(gateway.url)
        channels = console.locator("#channel_id")
        expect(channels).to_contain_text("Sales WhatsApp")
        expect(channels).to_contain_text(f"{stack.bitrix24.portal.domain} (Bitrix24)")
        console.get_by_label("Client", exact=True).fill("+34 600 123 456")
        console.get_by_label("Name").fill("Ana Lima")
        console.get_by_label("Message").fill("Hola, ¿tenéis talla 38?")
        console.get_by_role("button", name="Send").click()
        expect(console.locator("#console-error")).to_have_count(0)
        shot(console, "console")
    finally:
        console.close()
    expect(chats.item("Ana Lima")).to_be_visible(timeout=WAIT_MS)
    shot(page, "chats")


def test_the_console_lists_every_messenger_channel_as_soon_as_it_is_added(
    stack: CrmStack, gateway: Gateway, browser_context: Any, page: Any
) -> None:
    page.goto(stack.bitrix24_shell())
    page.locator("#menu-app").click()
    frame = page.frame_locator(FRAME)
    frame.get_by_role("link", name="Open Wazzup account").click()
    frame.get_by_role("link", name="Channels").click()
    add_channel(frame, "Telegram", "Support bot", "@acme_support_bot")
    add_channel(frame, "Instagram", "Shop Instagram", "@acme.shop")
    console = browser_context.new_page()
    try:
        console.goto(gateway.url)
        channels = console.locator("#channel_id")
        expect(channels).to_contain_text("Support bot (Telegram @acme_support_bot)")
        expect(channels).to_contain_text("Shop Instagram (Instagram @acme.shop)")
        # A Telegram client is their chat id or @username, not a phone.
        channels.select_option(
            label=next(o for o in channels.locator("option").all_inner_texts() if "Support bot" in o)
        )
        console.get_by_label("Client", exact=True).fill("@ana_lima")
        console.get_by_role("button", name="Send").click()
        expect(console.locator("#console-error")).to_have_count(0)
        chat = console.locator(".chat", has=console.get_by_role("heading", name="Support bot · @ana_lima"))
        expect(chat).to_contain_text("→ backend (HTTP 200)")
    finally:
        console.close()
