"""The messaging gateway's secret on the Channels page, inside the sandbox Kommo's shell, in Chromium:
masked until "Show", copied with "Copy" (pasted back to prove what the clipboard holds), rotated after
a confirmation with the end of the grace period shown — and never shown to an employee who is not
an admin."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.settings_ui import SettingsTab
from tests.support.browser import CrmStack
from tests.support.kommo_sandbox import DEMO_HOST
from widget.db import db
from widget.services.channels.signing import get_or_create_gateway_secret

pytestmark = pytest.mark.browser

FRAME = "#work-area-wazzup iframe"
ADMIN = "Olivia Bennett"


@dataclass
class Shell:
    stack: CrmStack
    users: dict[str, int]
    account_id: int

    def secret(self) -> str:
        with db.transaction() as s:
            return get_or_create_gateway_secret(s, self.stack.app.extensions["widget"].box, self.account_id)

    def open_channels(self, page: Any, user: str = ADMIN) -> SettingsTab:
        page.goto(self.stack.kommo_shell("/settings/wazzup", user=self.users[user]))
        tab = SettingsTab(page.frame_locator(FRAME))
        tab.el("tab-channels").click()
        tab.el("gateway-section").wait_for()
        return tab


@pytest.fixture(scope="module")
def shell(stack: CrmStack, browser_context: Any) -> Iterator[Shell]:
    sandbox = stack.kommo.sandbox
    users = {u.name: u.id for u in sandbox.users(DEMO_HOST)}
    page = browser_context.new_page()
    try:
        page.goto(stack.kommo_shell("/settings/widgets", user=users[ADMIN]))
        page.locator("#install-widget").click()
        assert "Answer: 200" in page.locator("#hook-result").inner_text()
    finally:
        page.close()
    from sqlalchemy import select

    from widget.models import Account

    with db.transaction() as s:
        account_id = s.execute(select(Account.id)).scalar_one()
    yield Shell(stack, users, account_id)


def pasted_in_top_page(page: Any) -> str:
    """What the clipboard holds: pasted into a field of the CRM page around our frame."""
    page.evaluate(
        """() => { const t = document.createElement('textarea'); t.id = 'paste-probe';
                   document.body.appendChild(t); t.focus(); }"""
    )
    page.keyboard.press("ControlOrMeta+V")
    return str(page.locator("#paste-probe").input_value())


def test_admin_shows_copies_and_rotates_the_secret(shell: Shell, page: Any, shot: Any) -> None:
    tab = shell.open_channels(page)
    field = tab.el("gateway-secret")
    secret = shell.secret()
    # Masked: no value in the page until asked; the placeholder ends with the last characters.
    assert field.get_attribute("type") == "password" and field.input_value() == ""
    assert field.get_attribute("placeholder").endswith(secret[-4:])
    assert tab.el("gateway-url").input_value() == shell.stack.ours + "/gateway/messages"
    shot(page, "masked")

    tab.el("gateway-secret-show").click()
    expect(field).to_have_attribute("type", "text")
    assert field.input_value() == secret
    shot(page, "shown")
    tab.el("gateway-secret-show").click()
    expect(field).to_have_attribute("type", "password")

    tab.el("gateway-secret-copy").click()
    expect(tab.el("gateway-secret-status")).to_have_text("Copied to the clipboard.")
    expect(field).to_have_attribute("type", "password")  # copying does not leave it on screen
    assert pasted_in_top_page(page) == secret

    page.once("dialog", lambda dialog: dialog.accept())
    tab.el("gateway-rotate").click()
    grace = tab.el("gateway-grace")
    grace.wait_for()
    assert "UTC" in grace.inner_text()
    expect(tab.el("form-status")).to_contain_text("New gateway secret created")
    new = shell.secret()
    assert new != secret
    tab.el("gateway-secret-show").click()
    expect(field).to_have_value(new)
    shot(page, "rotated")


def test_rotation_is_not_done_when_the_admin_cancels(shell: Shell, page: Any) -> None:
    tab = shell.open_channels(page)
    before = shell.secret()
    page.once("dialog", lambda dialog: dialog.dismiss())
    tab.el("gateway-rotate").click()
    tab.el("gateway-section").wait_for()
    assert shell.secret() == before


def test_an_employee_who_is_not_an_admin_does_not_get_the_page(shell: Shell, page: Any) -> None:
    sandbox = shell.stack.kommo.sandbox
    employee = next(u for u in sandbox.users(DEMO_HOST) if not u.is_admin and u.is_active)
    page.goto(shell.stack.kommo_shell("/settings/wazzup", user=employee.id))
    frame = page.frame_locator(FRAME)
    # Kommo opens the settings page for them too; we give them their chats instead.
    frame.locator("[data-testid=chat-panel]").wait_for()
    assert frame.locator("[data-testid=gateway-section]").count() == 0
    assert frame.locator("[data-testid=tab-channels]").count() == 0
    assert shell.secret() not in frame.locator("body").inner_text()
