"""Both CRMs end to end in the production shape of "Deploying at scale", in Chromium.

``tests/support/production.py`` runs it: gunicorn (gthread) with ``SANDBOX=0`` and every production
setting spelled out, PostgreSQL, ``python -m widget.jobs.worker`` processes on Redis, the sandbox
Kommo, Bitrix24 and messaging gateway as processes of their own, each behind a TLS front. Our
pages are on ``https://widget.app.test:<p>``, framed by the CRM shells on ``https://*.crm.test``
(another site), with third-party cookies blocked and proven blocked in that same https shape.
Server-side calls between them go through a CONNECT proxy and verify the test certificate.

HTTPS switches on what plain-HTTP loopback never sees (Flask-WTF's referrer check, HSTS, mixed
content, proxy headers), so here an admin installs, adds a channel, saves the CRM integration,
refreshes the CRM data and gets the test message; a client writes through the gateway and a sales
rep answers; the reply must reach the gateway. Every assertion reads what the page or our frame shows.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.browser.chat_ui import WAIT_MS, ChatPanel
from tests.browser.settings_ui import SettingsTab, click_until, tid
from tests.support.browser import chromium, third_party_cookies_blocked
from tests.support.production import CHROMIUM_ARGS, ProductionShape, production_shape, route_bitrix24_library
from tests.support.tls import openssl_missing_reason

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.postgres_only(
        reason="the production shape is PostgreSQL, Redis, gunicorn and job worker processes, as the README deploys it"
    ),
]

KOMMO_FRAME = "#work-area-wazzup iframe"
BITRIX24_FRAME = "#b24-app-frame"
KOMMO_ADMIN, KOMMO_REP = "Olivia Bennett", "José Núñez"
BITRIX24_ADMIN, BITRIX24_REP = 1, 3  # sandbox/bitrix24/seed.py
BITRIX24_NAMES = {BITRIX24_ADMIN: "Alexandra Moreno", BITRIX24_REP: "José Núñez"}
TEST_CLIENT = "Wazzup test client"
# Work done by job worker processes (the install's code exchange, the CRM data, the test message, a
# reply) lands within a second or two; a page that polls shows it by itself.
JOBS_MS = 20_000


# --- the running shape and the browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shape() -> Iterator[ProductionShape]:
    missing = openssl_missing_reason()
    if missing:
        pytest.fail(f"the production-shape suite makes its certificate with openssl: {missing}")
    import redis

    try:
        redis.Redis(host="127.0.0.1", socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.fail("the production shape needs Redis on 127.0.0.1:6379 (the job workers' queue)")
    from faults.stack import drop_database, recreate_database, with_database

    # Its own database: several processes hold connections to it for the whole module.
    url = with_database(os.environ["TEST_DATABASE_URL"], f"prodshape_{uuid.uuid4().hex[:8]}")
    recreate_database(url)
    try:
        with production_shape(url) as running:
            yield running
    finally:
        drop_database(url)


@dataclass
class OurResponses:
    """Every HTML page of ours the browser received, with its headers, as the browser saw them."""

    origin: str
    pages: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def record(self, response: Any) -> None:
        if response.url.startswith(self.origin) and "text/html" in (response.headers.get("content-type") or ""):
            self.pages.append((response.url, dict(response.headers)))


@pytest.fixture(scope="module")
def browser(playwright: Any, shape: ProductionShape) -> Iterator[Any]:
    with chromium(playwright, block_third_party_cookies=True, extra_args=CHROMIUM_ARGS) as context:
        assert third_party_cookies_blocked(context, shape.certificate), "the profile lets third-party cookies through"
        route_bitrix24_library(context)
        yield context


@pytest.fixture
def ours(browser: Any, shape: ProductionShape) -> Iterator[OurResponses]:
    seen = OurResponses(shape.ours)
    browser.on("response", seen.record)
    yield seen
    browser.remove_listener("response", seen.record)


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    """A new tab; an uncaught script error in it (our frame included), or anything blocked as mixed
    content (an http:// address inside an https page), fails the test."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if "Mixed Content" in msg.text else None)
    yield page
    page.close()
    assert not errors, f"script errors or mixed content in the page: {errors}"


def retry_until(what: str, attempt: Callable[[], None], timeout_s: float = JOBS_MS / 1000) -> None:
    """Repeat ``attempt`` (which reloads something and asserts) until it passes: for what a job
    worker process finishes a moment later, when the page does not poll for it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            attempt()
            return
        except (AssertionError, PlaywrightTimeout):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still not there after {timeout_s:.0f} s") from None


def visible(locator: Any, frame: Any, timeout: float = WAIT_MS) -> None:
    """``locator`` shows up in our frame; if not, the failure says what the frame shows instead
    (e.g. "This form has expired or did not come from our page")."""
    try:
        expect(locator).to_be_visible(timeout=timeout)
    except AssertionError:
        shown = frame.locator("body").inner_text(timeout=2_000)
        raise AssertionError(f"expected {locator}; the frame shows:\n{shown[:600]}") from None


def check_https_headers(ours: OurResponses) -> None:
    """What the browser got with each of our pages: HSTS (PUBLIC_URL is https) and no caching (the
    pages carry session tokens)."""
    assert ours.pages, "no page of ours was seen"
    for url, headers in ours.pages:
        path = urlsplit(url).path
        assert "max-age=" in headers.get("strict-transport-security", ""), f"no HSTS on {path}"
        assert "no-store" in headers.get("cache-control", ""), f"{path} may be cached: {headers.get('cache-control')}"


# --- the steps both CRMs share, in our frame ---------------------------------------------------------------


def add_first_channel(tab_: SettingsTab, name: str, address: str) -> int:
    """A fresh production account has no channel: the settings say so and lead to the Channels page,
    where the admin adds one (a form POST)."""
    tab_.el("no-channels").wait_for()
    tab_.el("add-first-channel").click()
    tab_.el("add-channel-form").wait_for()
    tab_.el("add-transport").select_option(value="whatsapp")
    tab_.el("add-name").fill(name)
    tab_.el("add-address").fill(address)
    tab_.el("add-button").click()
    row = tab_.frame.locator(tid("channel-row"), has_text=name)
    visible(row, tab_.frame)
    expect(row.locator(tid("channel-status"))).to_contain_text("enabled")
    return int(row.get_attribute("data-channel-id") or 0)


def save_roles_and_get_the_test_message(tab_: SettingsTab, channel: str, head: str, rep: str) -> None:
    """The CRM integration tab: roles, Save; the first save offers the test message and sends it."""
    tab_.el("tab-crm").click()
    tab_.el("save-button").wait_for()
    assert channel in tab_.selected_label("channel-select")
    tab_.open_roles()
    tab_.set_role(head, "head", gets_new_clients=True)
    tab_.set_role(rep, "seller", gets_new_clients=True)
    tab_.apply_roles()
    expect(tab_.el("roles-summary")).to_contain_text(f"Heads: {head}")
    tab_.el("save-button").click()
    visible(tab_.el("form-status").filter(has_text="Settings saved."), tab_.frame)
    dialog = tab_.el("test-message-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-field=channel-name]")).to_have_text(channel)
    # The dialog resized the frame (in Bitrix24): click until the panel opens.
    click_until(tab_.frame, tab_.el("go-to-chats"), tab_.el("chat-panel"))


def the_test_client_is_in_the_chats(panel: ChatPanel) -> None:
    panel.wait()
    expect(panel.item(TEST_CLIENT)).to_be_visible(timeout=JOBS_MS)
    panel.open(TEST_CLIENT)
    expect(panel.message("I am a test client")).to_be_visible()


def refresh_shows_what_changed(tab_: SettingsTab) -> None:
    """ "Refresh CRM data" on the CRM integration tab (an XHR POST): it answers with what it read."""
    tab_.el("tab-crm").click()
    tab_.el("refresh-crm").wait_for()
    tab_.el("refresh-crm").click()
    visible(tab_.el("refresh-changes"), tab_.frame)
    expect(tab_.el("refresh-error")).to_have_count(0)


def a_client_writes_and_the_rep_answers(
    page: Any, shape: ProductionShape, panel: ChatPanel, channel_id: int, client: tuple[str, str], reply: str
) -> None:
    """The operator links the channel in the gateway's console; a client writes through it (a signed
    POST to our https address); the sales rep, offered the new client, answers in their chat panel;
    the reply is signed, sent to GATEWAY_URL by a job worker and shown as sent; the gateway's console
    shows it."""
    name, phone = client
    shape.link_channel(channel_id)
    shape.client_writes(channel_id, name, phone, f"Hello, this is {name}. Do you deliver?")
    expect(panel.item(name)).to_be_visible(timeout=JOBS_MS)
    panel.open(name)
    expect(panel.message("Do you deliver?")).to_be_visible()
    panel.send(reply)
    sent = panel.message(reply)
    expect(sent).to_be_visible()
    expect(sent.locator(tid("msg-status"))).to_have_attribute("data-status", "sent", timeout=JOBS_MS)
    console = page.context.new_page()
    try:
        console.goto(shape.gateway_console)
        expect(console.locator("body")).to_contain_text(reply)
    finally:
        console.close()


# --- Kommo ---------------------------------------------------------------------------------------------------


def test_kommo_admin_sets_up_and_a_rep_answers_a_client_over_https(
    shape: ProductionShape, tab: Any, ours: OurResponses, shot: Any
) -> None:
    users = shape.kommo_users()
    admin = users[KOMMO_ADMIN]
    tab.goto(shape.kommo_shell("/settings/widgets", user=admin))
    tab.locator("#install-widget").click()
    expect(tab.locator("#hook-result")).to_contain_text("Answer: 200")

    settings = SettingsTab(tab.frame_locator(KOMMO_FRAME))

    def settings_open() -> None:
        # The code exchange runs in a job worker; until it has, the widget cannot open the page.
        tab.goto(shape.kommo_shell("/settings/wazzup", user=admin))
        settings.el("tab-crm").wait_for(timeout=3_000)

    retry_until("the settings after the install", settings_open)
    frame_src = tab.locator(KOMMO_FRAME).get_attribute("src") or ""
    assert frame_src.startswith(shape.ours + "/app/launch?"), frame_src  # PUBLIC_URL, never a proxy's idea
    assert tab.context.cookies(shape.ours) == []
    shot(tab, "no-channel")

    channel_id = add_first_channel(settings, "Sales WhatsApp", "+15550100001")
    shot(tab, "channel-added")
    save_roles_and_get_the_test_message(settings, "Sales WhatsApp", KOMMO_ADMIN, KOMMO_REP)
    panel = ChatPanel(tab.frame_locator(KOMMO_FRAME))
    the_test_client_is_in_the_chats(panel)
    shot(tab, "test-message")

    tab.goto(shape.kommo_shell("/settings/wazzup", user=admin))
    refresh_shows_what_changed(settings)
    shot(tab, "refreshed")

    tab.goto(shape.kommo_shell("/wazzup", user=users[KOMMO_REP]))  # the rep: left menu → Wazzup chats
    panel.wait()
    a_client_writes_and_the_rep_answers(
        tab, shape, panel, channel_id, ("Ana Souza", "+55 11 98765-4321"), "Yes, to Campinas tomorrow."
    )
    shot(tab, "replied")
    check_https_headers(ours)


# --- Bitrix24 ----------------------------------------------------------------------------------------------


def act_as(page: Any, shape: ProductionShape, user: int, path: str) -> None:
    page.goto(shape.bitrix24_shell("/switch") + "?" + urlencode({"as": user, "next": path}))


def test_bitrix24_admin_sets_up_and_a_rep_answers_a_client_over_https(
    shape: ProductionShape, tab: Any, ours: OurResponses, shot: Any
) -> None:
    # Market → Install: our installer runs in the portal's iframe until installFinish.
    act_as(tab, shape, BITRIX24_ADMIN, "/shell/market")
    tab.locator("#install-app").click()
    frame = tab.frame_locator(BITRIX24_FRAME)
    frame.locator("#open-account").wait_for()
    assert (tab.locator(BITRIX24_FRAME).get_attribute("name") or "").startswith(urlsplit(shape.names.bitrix24).netloc)
    # The portal POSTed into the handler our installer bound (built from PUBLIC_URL), and our
    # redirect after it kept the browser on our https name.
    opened = tab.locator(BITRIX24_FRAME).element_handle().content_frame()
    # (the page then took its session token out of the address: no query is left to compare)
    assert opened is not None and opened.url.startswith(shape.ours + "/bitrix24/home"), opened and opened.url

    # The app page's own "Refresh CRM data" (a form POST of ours inside the portal's frame).
    frame.locator("#refresh-crm").click()
    visible(frame.locator("#refresh-report", has_text="Done."), frame)
    expect(frame.locator("#refresh-error")).to_have_count(0)
    shot(tab, "app-page-refreshed")

    frame.locator("#open-account").click()
    settings = SettingsTab(frame)
    channel_id = add_first_channel(settings, "Support WhatsApp", "+34600123456")
    save_roles_and_get_the_test_message(
        settings, "Support WhatsApp", BITRIX24_NAMES[BITRIX24_ADMIN], BITRIX24_NAMES[BITRIX24_REP]
    )
    panel = ChatPanel(frame)
    the_test_client_is_in_the_chats(panel)
    shot(tab, "test-message")

    # The chat panel grew the frame: click until the settings are back.
    click_until(frame, panel.el("back-to-settings"), settings.el("tab-crm"))
    refresh_shows_what_changed(settings)

    act_as(tab, shape, BITRIX24_REP, "/shell")  # the rep: left menu → Wazzup chats, straight to the chats
    tab.locator("#menu-app").click()
    panel.wait()
    a_client_writes_and_the_rep_answers(
        tab, shape, panel, channel_id, ("Marta Gómez", "+34 611 222 333"), "Sí, mañana por la mañana."
    )
    shot(tab, "replied")
    check_https_headers(ours)


def test_the_https_probe_can_tell_allowed_cookies_from_blocked(playwright: Any, shape: ProductionShape) -> None:
    """The control of the probe the ``browser`` fixture runs: in a profile that allows third-party
    cookies, the same https probe sees its cookie come back, so "blocked" above is not blindness
    (say, of the TLS fronts to ``Set-Cookie``)."""
    with chromium(playwright, block_third_party_cookies=False, extra_args=CHROMIUM_ARGS) as context:
        assert not third_party_cookies_blocked(context, shape.certificate)
