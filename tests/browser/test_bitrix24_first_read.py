"""Bitrix24 right after the install, when the CRM's employees and pipelines are not read yet.

The install enqueues the first read (a job); here that job is held, as a busy queue or a slow
portal holds it, so the admin opens the app and the settings before it ran. The pages say that
the data is being read, say in words why a failed read failed (with "Refresh CRM data"), and fill
the lists by themselves when the read is done: no reload.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests.browser.settings_ui import SettingsTab, tid
from tests.support.browser import CrmStack
from tests.support.jobs import jobs_replaced
from widget.crm.errors import CrmError
from widget.db import db
from widget.jobs.bitrix24_jobs import bitrix24_refresh_crm_data
from widget.models import Account
from widget.models.accounts import CRM_BITRIX24
from widget.services.channels.manage import add_channel

pytestmark = pytest.mark.browser

FRAME = "#b24-app-frame"
ADMIN = 1
LOADING = "Reading employees and pipelines from Bitrix24…"
WAIT_MS = 15_000


class HeldReads:
    """Our app's queue, except that the first read of a portal's CRM data waits for ``run``."""

    def __init__(self, stack: CrmStack) -> None:
        self.stack = stack
        self.real = stack.app.extensions["widget"].jobs
        self.held: list[int] = []

    def __call__(self, name: str, *args: Any, delay: Any = None) -> None:
        if name == "bitrix24_refresh_crm_data":
            self.held.append(int(args[0]))
            return
        self.real.enqueue(name, *args)

    def run(self) -> None:
        """The queue gets to it (a failure raises, as in the worker, which retries later)."""
        with self.stack.app.app_context():
            for account_id in self.held:
                bitrix24_refresh_crm_data(account_id)


@pytest.fixture(scope="module")
def held(stack: CrmStack) -> Iterator[HeldReads]:
    reads = HeldReads(stack)
    with jobs_replaced(stack.app, reads):
        yield reads


def account_id(stack: CrmStack) -> int:
    with db.transaction() as session:
        return int(
            session.execute(
                select(Account.id).where(
                    Account.crm == CRM_BITRIX24, Account.external_id == stack.bitrix24.portal.member_id
                )
            ).scalar_one()
        )


def test_the_pages_wait_for_the_first_read_and_fill_themselves(
    stack: CrmStack, held: HeldReads, page: Any, shot: Any
) -> None:
    b24 = stack.bitrix24
    # Market → Install: the installer finishes, Bitrix24 opens the app; the read is still queued.
    page.goto(stack.bitrix24_shell("/switch") + "?" + urlencode({"as": ADMIN, "next": "/shell/market"}))
    page.locator("#install-app").click()
    frame = page.frame_locator(FRAME)
    frame.locator("#open-account").wait_for()
    assert held.held == [account_id(stack)]
    notice = frame.locator(tid("crm-read"))
    expect(notice).to_have_attribute("data-state", "loading")
    expect(notice).to_contain_text(LOADING)
    shot(page, "app-page-reading")

    # The settings: no channel yet, nothing read yet. No "0 employees" as if that were the truth.
    frame.locator("#open-account").click()
    tab = SettingsTab(frame)
    tab.el("no-channels").wait_for()
    expect(notice).to_contain_text(LOADING)
    assert tab.el("crm-employees").locator("li").count() == 0
    shot(page, "settings-reading")

    # Bitrix24 does not answer when the queue gets to it: the page says so, in words.
    b24.state.set_outage(True)
    try:
        with pytest.raises(CrmError):
            held.run()
    finally:
        b24.state.set_outage(False)
    expect(notice).to_have_attribute("data-state", "failed", timeout=WAIT_MS)
    expect(notice).to_contain_text("Bitrix24 did not give us its employees and pipelines")
    expect(notice).to_contain_text("The CRM is not reachable at the moment")
    assert tab.el("refresh-crm").is_visible()
    shot(page, "settings-failed")

    # The queue's next try succeeds: the list fills by itself, no reload.
    held.run()
    expect(notice).to_have_attribute("data-state", "ready", timeout=WAIT_MS)
    expect(notice).to_contain_text("Employees and pipelines were read from Bitrix24.")
    expect(tab.el("crm-employees")).to_contain_text("Иван Петров")
    assert tab.el("crm-employees").locator("li").count() == len(b24.portal.users)
    expect(tab.el("crm-counts")).to_contain_text(f"{len(b24.portal.users)} employees")
    shot(page, "settings-read")


def test_the_roles_dialog_fills_when_the_read_arrives(stack: CrmStack, held: HeldReads, page: Any, shot: Any) -> None:
    """The same with a channel: the roles dialog and the pipelines fill in place, unsaved choices
    untouched and nothing marked as changed."""
    b24 = stack.bitrix24
    other = b24.sandbox.add_portal("127.0.0.5", name="Globex (test)")  # another portal, another site
    held.held.clear()
    page.goto(f"{other.origin}/shell/switch?" + urlencode({"as": ADMIN, "next": "/shell/market"}))
    page.locator("#install-app").click()
    frame = page.frame_locator(FRAME)
    frame.locator("#open-account").wait_for()
    with db.transaction() as session:
        acc = session.execute(
            select(Account.id).where(Account.crm == CRM_BITRIX24, Account.external_id == other.member_id)
        ).scalar_one()
    add_channel(db, acc, "whatsapp", "Globex WhatsApp", "+12025550177")
    frame.locator("#open-account").click()
    tab = SettingsTab(frame)
    tab.el("save-button").wait_for()
    expect(tab.el("crm-read")).to_contain_text(LOADING)
    tab.open_roles()
    expect(tab.el("roles-empty")).to_contain_text(LOADING)
    assert tab.el("employee-row").count() == 0
    tab.cancel_roles()

    held.run()
    expect(tab.el("crm-read")).to_have_attribute("data-state", "ready", timeout=WAIT_MS)
    expect(tab.el("employee-row")).to_have_count(len(other.users))
    assert tab.selected_label("pipeline-select") == "General"
    assert tab.selected_label("stage-select") == "New"
    expect(tab.el("unsaved-indicator")).to_be_hidden()
    tab.open_roles()
    tab.set_role("Иван Петров", "seller", gets_new_clients=True)
    tab.apply_roles()
    tab.save("Settings saved.")
    shot(page, "roles-after-read")
