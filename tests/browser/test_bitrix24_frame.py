"""Our pages size their Bitrix24 frame, and a dialog in it stays usable; Kommo's frames are unchanged.

Bitrix24 opens an app's iframe at about 390 px and changes its height only when the app asks
(``BX24.fitWindow`` / ``BX24.resizeWindow``). The sandbox portal's shell starts its iframe at
390 px and answers resizeWindow as Bitrix24's page does. Every page we show there must ask: the
app page, the three settings tabs, the chat panel (left menu and CRM card), a refused page. With
the roles dialog open, the admin must see a useful number of employees inside what the portal
shows of the frame. Kommo frames are sized by our widget script (a fixed-height iframe in which
our page scrolls); they must not change.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from sandbox.bitrix24.portal import User
from tests.browser.chat_ui import WAIT_MS, ChatPanel, gateway_for, set_roles
from tests.browser.settings_ui import SettingsTab, tid
from tests.support.browser import CrmStack
from tests.support.kommo_sandbox import DEMO_HOST
from widget.db import db
from widget.models import Account, Channel
from widget.models.accounts import CRM_BITRIX24
from widget.services.channels.manage import add_channel

pytestmark = pytest.mark.browser

FRAME = "#b24-app-frame"
KOMMO_FRAME = "#work-area-wazzup iframe"
ADMIN, IVAN = 1, 2  # the demo portal's admin and a sales rep (sandbox/bitrix24/seed.py)
INITIAL = 390  # the height Bitrix24 gives an app frame before the app asks
EXTRA_PEOPLE = 18  # with the demo's 12: 30 employees, far more than a short dialog shows
ROWS_WANTED = 8

# The lowest point of what the page lays out (our markers and open modal dialogs aside), in the
# frame's document coordinates: what "the page inside the frame" is.
PAGE_BOTTOM = """() => {
    let bottom = 0;
    for (const el of document.body.querySelectorAll('*')) {
        if (el.closest('[data-frame-probe], dialog')) continue;
        if (el.offsetParent === null && getComputedStyle(el).position !== 'fixed') continue;
        bottom = Math.max(bottom, el.getBoundingClientRect().bottom + window.scrollY);
    }
    return Math.ceil(bottom);
}"""

# Employee rows of the open roles dialog that are whole inside the dialog's list, inside the frame,
# and inside what the portal's window shows of the frame.
ROWS_IN_SIGHT = """([frameTop, windowHeight]) => {
    const list = document.querySelector('#roles-dialog .modal-body').getBoundingClientRect();
    return Array.from(document.querySelectorAll('[data-testid=employee-row]')).filter(row => {
        const r = row.getBoundingClientRect();
        return r.height > 0 && r.top >= list.top - 1 && r.bottom <= list.bottom + 1
            && r.top >= 0 && r.bottom <= window.innerHeight
            && frameTop + r.top >= 0 && frameTop + r.bottom <= windowHeight;
    }).length;
}"""


@dataclass
class Portal:
    stack: CrmStack

    def act_as(self, page: Any, user: int, path: str = "/shell") -> None:
        page.goto(self.stack.bitrix24_shell("/switch") + "?" + urlencode({"as": user, "next": path}))

    def open_app(self, page: Any, user: int = ADMIN) -> Any:
        """Left menu → "Wazzup chats"."""
        self.act_as(page, user)
        page.locator("#menu-app").click()
        return page.frame_locator(FRAME)

    def open_settings(self, page: Any) -> SettingsTab:
        frame = self.open_app(page)
        frame.locator("#open-account").click()
        tab = SettingsTab(frame)
        tab.el("tab-crm").wait_for()
        return tab


@pytest.fixture(scope="module")
def portal(stack: CrmStack, browser_context: Any) -> Iterator[Portal]:
    b24 = stack.bitrix24
    with b24.state.lock:
        for uid in range(101, 101 + EXTRA_PEOPLE):
            b24.portal.users[uid] = User(uid, f"Person{uid}", "Extra", f"p{uid}@acme.test")
    page = browser_context.new_page()
    try:
        page.goto(stack.bitrix24_shell("/switch") + "?" + urlencode({"as": ADMIN, "next": "/shell/market"}))
        page.locator("#install-app").click()
        page.frame_locator(FRAME).locator("#open-account").wait_for()
    finally:
        page.close()
    with db.transaction() as session:
        account_id = session.execute(
            select(Account.id).where(Account.crm == CRM_BITRIX24, Account.external_id == b24.portal.member_id)
        ).scalar_one()
    add_channel(db, account_id, "whatsapp", "Sales WhatsApp", "+12025550143")
    yield Portal(stack)


def frame_height(page: Any, selector: str = FRAME) -> float:
    box = page.locator(selector).bounding_box()
    assert box is not None
    return float(box["height"])


def inner(page: Any, selector: str = FRAME) -> Any:
    """The frame's document (a Playwright ``Frame``)."""
    return page.locator(selector).element_handle().content_frame()


def wait_until_fitted(page: Any, *, at_least: float = 0, exact: bool = True) -> tuple[float, int]:
    """Wait until the frame is at least as tall as the page inside it and the page scrolls nothing
    of its own (``exact``: and no taller, for a document page); return (frame height, page bottom)."""
    deadline = time.monotonic() + 10
    while True:
        doc = inner(page)
        height = frame_height(page)
        bottom = int(doc.evaluate(PAGE_BOTTOM))
        scrolls = bool(doc.evaluate("() => document.documentElement.scrollHeight > window.innerHeight + 1"))
        fits = height + 1 >= bottom and (not exact or height <= bottom + 2)
        if fits and height >= at_least and not scrolls:
            return height, bottom
        if time.monotonic() > deadline:
            pytest.fail(f"the frame is {height}px for a page of {bottom}px (scrolls inside: {scrolls})")
        page.wait_for_timeout(100)


# --- the portal's shell plays Bitrix24's part faithfully ---------------------------------------------


def test_the_shell_starts_the_frame_at_390_px_and_resizes_it_as_bitrix24_does(portal: Portal, page: Any) -> None:
    page.route(re.compile(r"/static/frame\.js"), lambda route: route.fulfill(body="", content_type="text/javascript"))
    frame = portal.open_app(page)
    frame.locator("#open-account").wait_for()
    assert frame_height(page) == INITIAL  # nobody asked yet: Bitrix24's initial height
    doc = inner(page)
    ask = """([w, h]) => new Promise(done => { BX24.init(() => BX24.resizeWindow(w, h, done)); })"""
    answer = doc.evaluate(ask, [300, 720])
    assert answer == {"width": 300, "height": 720}  # the size the frame got
    assert frame_height(page) == 720 and page.locator(FRAME).bounding_box()["width"] == 300
    # A height of 0 is no height: nothing changes (and the library sends nothing for it).
    doc.evaluate("""() => new Promise(done => { BX24.resizeWindow(500, 0); setTimeout(done, 300); })""")
    assert frame_height(page) == 720
    # fitWindow: width 100%, height of the document, which never goes below the frame's.
    doc.evaluate("""() => new Promise(done => BX24.fitWindow(done))""")
    assert frame_height(page) == 720
    assert page.locator(FRAME).bounding_box()["width"] > 300


# --- every page sizes its frame -----------------------------------------------------------------------


def test_every_settings_tab_and_the_app_page_fit_their_frame(portal: Portal, page: Any, shot: Any) -> None:
    frame = portal.open_app(page)
    frame.locator("#open-account").wait_for()
    wait_until_fitted(page)
    tab = SettingsTab(frame)
    frame.locator("#open-account").click()
    tab.el("tab-crm").wait_for()
    _, bottom = wait_until_fitted(page, at_least=INITIAL + 1)
    assert bottom > INITIAL  # the tab is longer than what Bitrix24 shows at first
    shot(page, "crm-tab")
    for name in ("tab-advanced", "tab-channels", "tab-crm"):
        tab.el(name).click()
        expect(tab.el(name)).to_have_attribute("aria-current", "page")
        wait_until_fitted(page)
        shot(page, name)


def test_the_frame_follows_the_page_when_it_changes(portal: Portal, page: Any) -> None:
    tab = portal.open_settings(page)
    before, _ = wait_until_fitted(page)
    # Problems appear next to their fields: the page grows, and so does the frame.
    tab.choose("stage-select", "Choose…")
    tab.save("Some fields need your attention.")
    after, _ = wait_until_fitted(page)
    assert after > before
    # The answer to Save stays where the admin looks, however far down the portal was scrolled.
    expect(tab.el("form-status")).to_be_in_viewport()
    # The examples open: the frame grows; they close: it shrinks back.
    tab.el("presets").locator("summary").click()
    opened, _ = wait_until_fitted(page, at_least=after + 1)
    tab.el("presets").locator("summary").click()
    closed, _ = wait_until_fitted(page)
    assert closed < opened


def test_the_chat_panels_fit_their_frame(portal: Portal, page: Any, shot: Any) -> None:
    frame = portal.open_app(page, IVAN)  # an employee lands on the chat panel
    frame.locator(tid("chat-panel")).wait_for()
    wait_until_fitted(page, at_least=600, exact=False)
    shot(page, "panel")
    # A deal card's tab with our chats.
    portal.act_as(page, ADMIN, "/shell/crm/deal/1")
    page.locator("#card-tabs a[data-tab]").first.click()
    page.frame_locator(FRAME).locator(tid("chat-panel")).wait_for()
    wait_until_fitted(page, at_least=600, exact=False)


def test_a_refused_page_fits_its_frame_too(portal: Portal, page: Any) -> None:
    frame = portal.open_app(page, IVAN)
    frame.locator(tid("chat-panel")).wait_for()
    doc = inner(page)
    # The page took the token out of its address (static/app.js); it keeps it in the page.
    st = doc.evaluate("document.querySelector('meta[name=session-token]').content")
    doc.goto(f"{portal.stack.ours}/app/settings?st={st}")  # settings are for admins
    frame.locator(tid("not-admin")).wait_for()
    height, _ = wait_until_fitted(page)
    assert height < 600  # a short page: the frame shrank to it


def test_the_chat_panel_grows_with_its_list(portal: Portal, page: Any, shot: Any) -> None:
    """Up to about a screen: past that the list scrolls inside and the composer stays in sight."""
    stack = portal.stack
    with db.transaction() as session:
        account, channel = session.execute(
            select(Account.id, Channel.id)
            .join(Channel, Channel.account_id == Account.id)
            .where(Account.external_id == stack.bitrix24.portal.member_id, Channel.name == "Sales WhatsApp")
        ).one()
    set_roles(account, channel, {str(IVAN): ("head", False)}, new_client_entity="deal")
    frame = portal.open_app(page, IVAN)
    panel = ChatPanel(frame).wait()
    alone, _ = wait_until_fitted(page, at_least=600, exact=False)
    with stack.app.app_context(), gateway_for(stack) as gateway:
        gateway.link(account, channel)
        for i in range(12):
            gateway.client_writes(channel, f"Client {i:02d}", f"+34 600 000 {i:03d}", "Hola")
    expect(panel.el("chat-item")).to_have_count(12, timeout=WAIT_MS)
    deadline = time.monotonic() + 10
    while frame_height(page) <= alone and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    grown = frame_height(page)
    assert grown > alone, "the frame did not grow with the chat list"
    doc = inner(page)
    assert doc.evaluate("() => document.documentElement.scrollHeight <= window.innerHeight + 1")
    assert grown <= doc.evaluate("() => screen.availHeight")  # a screen at most: the list scrolls inside
    expect(panel.el("chat-item").last).to_be_attached()
    shot(page, "many-chats")


# --- a dialog in a short frame -------------------------------------------------------------------------


def rows_in_sight(page: Any, selector: str) -> int:
    box = page.locator(selector).bounding_box()
    assert box is not None
    return int(inner(page, selector).evaluate(ROWS_IN_SIGHT, [box["y"], page.viewport_size["height"]]))


def wait_rows_in_sight(page: Any, selector: str, wanted: int) -> int:
    deadline = time.monotonic() + 10
    seen = rows_in_sight(page, selector)
    while seen < wanted and time.monotonic() < deadline:
        page.wait_for_timeout(100)
        seen = rows_in_sight(page, selector)
    return seen


def assert_usable(page: Any, selector: str, tab: SettingsTab) -> None:
    """Apply and Cancel are inside what the portal's window shows."""
    frame_box = page.locator(selector).bounding_box()
    for testid in ("roles-apply", "roles-cancel"):
        box = tab.el(testid).bounding_box()  # Playwright reports it in the page's viewport
        assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= page.viewport_size["height"]
        assert frame_box["y"] <= box["y"] and box["y"] + box["height"] <= frame_box["y"] + frame_box["height"]


def test_the_roles_dialog_shows_many_employees_in_the_frame(portal: Portal, page: Any, shot: Any) -> None:
    tab = portal.open_settings(page)
    wait_until_fitted(page)
    tab.open_roles()
    assert tab.el("employee-row").count() >= 12 + EXTRA_PEOPLE
    seen = wait_rows_in_sight(page, FRAME, ROWS_WANTED)
    shot(page, "roles-dialog")
    assert seen >= ROWS_WANTED, f"only {seen} employees can be seen in the roles dialog"
    assert_usable(page, FRAME, tab)
    # The list scrolls inside the dialog to the last employee.
    last = tab.el("employee-row").last
    last.scroll_into_view_if_needed()
    expect(last).to_be_in_viewport()
    tab.cancel_roles()
    wait_until_fitted(page)


def test_the_roles_dialog_opened_far_down_a_tall_page_is_where_the_admin_looks(portal: Portal, page: Any) -> None:
    tab = portal.open_settings(page)
    wait_until_fitted(page)
    # The admin scrolled the portal down until "Select roles" is near the top of the window: the top
    # of the frame is out of the window, so a dialog at the frame's top would be out of sight.
    button = tab.el("open-roles").bounding_box()
    page.evaluate("y => window.scrollBy(0, y)", button["y"] - 80)
    tab.el("open-roles").click()
    tab.el("roles-dialog").wait_for(state="visible")
    assert page.locator(FRAME).bounding_box()["y"] < 0
    assert wait_rows_in_sight(page, FRAME, ROWS_WANTED) >= ROWS_WANTED
    assert_usable(page, FRAME, tab)


# --- Kommo: our widget script's frame, unchanged ----------------------------------------------------------


@pytest.fixture(scope="module")
def kommo(stack: CrmStack, browser_context: Any) -> dict[str, int]:
    sandbox = stack.kommo.sandbox
    for i in range(EXTRA_PEOPLE):
        sandbox.add_user(DEMO_HOST, f"Person{i} Extra")
    users = {u.name: u.id for u in sandbox.users(DEMO_HOST)}
    admin = next(u.id for u in sandbox.users(DEMO_HOST) if u.is_admin)
    page = browser_context.new_page()
    try:
        page.goto(stack.kommo_shell("/settings/widgets", user=admin))
        page.locator("#install-widget").click()
        page.locator("#hook-result").wait_for()
    finally:
        page.close()
    return {"admin": admin, "users": len(users)}


def test_kommo_frames_keep_their_size_and_the_dialog_its_rows(
    stack: CrmStack, kommo: dict[str, int], page: Any, shot: Any
) -> None:
    page.goto(stack.kommo_shell("/settings/wazzup", user=kommo["admin"]))
    tab = SettingsTab(page.frame_locator(KOMMO_FRAME))
    tab.el("tab-crm").wait_for()
    area = page.locator("#work-area-wazzup").bounding_box()
    before = frame_height(page, KOMMO_FRAME)
    assert before == pytest.approx(area["height"], abs=2)  # the widget area's height (inside its border)
    # Our page scrolls inside Kommo's frame: no BX24 library, no frame script.
    doc = inner(page, KOMMO_FRAME)
    assert doc.evaluate("() => typeof window.BX24 === 'undefined' && typeof window.WidgetFrame === 'undefined'")
    tab.open_roles()
    seen = wait_rows_in_sight(page, KOMMO_FRAME, ROWS_WANTED)
    shot(page, "kommo-roles")
    assert seen >= ROWS_WANTED
    assert_usable(page, KOMMO_FRAME, tab)
    assert frame_height(page, KOMMO_FRAME) == before
