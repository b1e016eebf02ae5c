"""The "CRM integration" settings inside the sandbox Bitrix24 portal's shell, in Chromium.

Our app on ``http://127.0.0.1:<p>``, the portal on ``http://localhost:<q>`` (another site),
third-party cookies blocked in the profile (probed by the ``browser_context`` fixture). Bitrix24
opens us as it does for real: a hidden form POSTed into a named iframe, the installer page in that
iframe until ``installFinish``, then left menu "Wazzup chats" → our app page → "Open Wazzup
account". The install is done once, through the shell, for the module; every assertion reads what
the frame shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.browser.settings_ui import SettingsTab, tid
from tests.support.browser import CrmStack

pytestmark = pytest.mark.browser

FRAME = "#b24-app-frame"
# The demo portal's people (sandbox/bitrix24/seed.py), by Bitrix24 user id.
ADMIN, IVAN, JOSE, JOAO, ZOE, MARIA, LIAM, FATIMA, OLGA, ANA, DMITRI = 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12
NAMES = {
    ADMIN: "Alexandra Moreno",
    IVAN: "Иван Петров",
    JOSE: "José Núñez",
    JOAO: "João Gonçalves",
    ZOE: "Zoë Ångström",
    LIAM: "Liam O'Connor",
    FATIMA: "Fatima Zahra",
    OLGA: "Olga Kowalska",
    DMITRI: "Dmitri Sokolov",
}


@dataclass
class Bitrix24Shell:
    stack: CrmStack

    @property
    def portal(self) -> Any:
        return self.stack.bitrix24.portal

    @property
    def state(self) -> Any:
        return self.stack.bitrix24.state

    def open_app(self, page: Any, user: int = ADMIN) -> Any:
        """Act as ``user`` (the shell's user switcher) and click "Wazzup chats" in the left menu."""
        page.goto(self.stack.bitrix24_shell("/switch") + "?" + urlencode({"as": user, "next": "/shell"}))
        page.locator("#menu-app").click()
        return page.frame_locator(FRAME)

    def open_settings(self, page: Any, user: int = ADMIN) -> SettingsTab:
        frame = self.open_app(page, user)
        frame.locator("#open-account").click()
        tab = SettingsTab(frame)
        tab.el("tab-crm").wait_for()
        return tab

    def change_user(self, user_id: int, **fields: Any) -> None:
        """What an admin changes in Bitrix24's own user settings."""
        with self.state.lock:
            user = self.portal.users[user_id]
            for key, value in fields.items():
                setattr(user, key, value)

    def add_pipeline(self, cat_id: int, name: str, stages: list[str]) -> None:
        with self.state.lock:
            self.portal.add_category(cat_id, name, 900 + cat_id, [(f"S{i}", s, None) for i, s in enumerate(stages)])

    def remove_pipeline(self, cat_id: int) -> None:
        """The deal pipeline (category) and its stages are deleted in Bitrix24."""
        with self.state.lock:
            del self.portal.categories[cat_id]
            entity = f"DEAL_STAGE_{cat_id}"
            self.portal.statuses = [s for s in self.portal.statuses if s.entity_id != entity]


@pytest.fixture(scope="module")
def shell(stack: CrmStack, browser_context: Any) -> Iterator[Bitrix24Shell]:
    b24 = Bitrix24Shell(stack)
    page = browser_context.new_page()
    try:
        # Market → Install, as the portal's admin: our installer runs in the iframe until installFinish,
        # then the portal opens the app.
        page.goto(stack.bitrix24_shell("/switch") + "?" + urlencode({"as": ADMIN, "next": "/shell/market"}))
        page.locator("#install-app").click()
        page.frame_locator(FRAME).locator("#open-account").wait_for()
    finally:
        page.close()
    yield b24


def add_channel(tab: SettingsTab, transport: str, name: str, address: str) -> None:
    tab.el("tab-channels").click()
    tab.el("add-transport").select_option(value=transport)
    tab.el("add-name").fill(name)
    tab.el("add-address").fill(address)
    tab.el("add-button").click()
    tab.frame.locator(tid("channel-row"), has_text=name).wait_for()


def close_test_message_dialog_if_open(tab: SettingsTab) -> None:
    """Only the account's first save opens it; a test run alone may be the first."""
    if tab.el("test-message-dialog").is_visible():
        tab.el("test-message-later").click()
        tab.el("test-message-dialog").wait_for(state="hidden")


@pytest.fixture(scope="module")
def instagram(shell: Bitrix24Shell, browser_context: Any) -> str:
    """The portal's first channel, added on the Channels tab: an Instagram account, which the test
    message cannot use."""
    page = browser_context.new_page()
    try:
        tab = shell.open_settings(page)
        if tab.el("no-channels").count():
            add_channel(tab, "instagram", "Shop Instagram", "@acme.shop")
    finally:
        page.close()
    return "Shop Instagram"


# --- install, the tab, the whole setup saved and persisted ---------------------------------------


def test_installing_from_the_market_leads_to_the_settings(shell: Bitrix24Shell, page: Any, shot: Any) -> None:
    frame = shell.open_app(page)
    assert page.locator("#menu-app").inner_text().strip() == "Wazzup chats"  # installed: no "finish installing"
    frame.locator("#open-account").wait_for()
    shot(page, "app-page")
    frame.locator("#open-account").click()
    tab = SettingsTab(frame)
    assert tab.el("tab-crm").get_attribute("aria-current") == "page"
    # The page is framed cross-site and works without any cookie of ours.
    assert page.context.cookies(shell.stack.ours) == []
    if tab.el("no-channels").count():
        # The portal has no channel yet: the tab says so and shows what we read from Bitrix24.
        employees = tab.el("crm-employees").inner_text()
        assert "Alexandra Moreno" in employees and "Иван Петров" in employees
        shot(page, "no-channels")


def test_an_admin_sets_up_a_channel_saves_and_finds_it_after_reopening(
    shell: Bitrix24Shell, instagram: str, page: Any, shot: Any
) -> None:
    tab = shell.open_settings(page)
    tab.pick_channel(instagram)
    assert tab.el("kommo-caveat").count() == 0 and tab.el("incoming-hint").count() == 0
    dialog = tab.open_roles()
    assert tab.el("employee-row").count() == len(shell.portal.users)

    olga = NAMES[OLGA]
    assert tab.row(olga).get_attribute("data-inactive") == "1"
    assert tab.row(olga).locator(tid("inactive-badge")).is_visible()
    assert tab.role_select(olga).is_disabled() and tab.toggle(olga).is_disabled()

    tab.set_role(NAMES[ADMIN], "head", gets_new_clients=True)
    tab.set_role(NAMES[IVAN], "seller", gets_new_clients=True)
    tab.set_role(NAMES[JOAO], "seller", gets_new_clients=True)
    tab.set_role(NAMES[LIAM], "qc")
    assert tab.toggle(NAMES[LIAM]).is_disabled() and not tab.toggle(NAMES[LIAM]).is_checked()
    tab.set_role(NAMES[JOAO], "qc")  # the switch he had turns off with the role
    assert tab.toggle(NAMES[JOAO]).is_disabled() and not tab.toggle(NAMES[JOAO]).is_checked()
    shot(page, "roles-dialog")
    assert dialog.is_visible()
    tab.apply_roles()
    assert tab.roster("seller") == f"Sales reps: {NAMES[IVAN]}"
    assert tab.roster("head") == f"Heads: {NAMES[ADMIN]}"
    qc = tab.roster("qc")
    assert qc.startswith("Quality control: ") and NAMES[JOAO] in qc and NAMES[LIAM] in qc
    assert tab.roster("new") == f"Get new clients: {NAMES[ADMIN]}, {NAMES[IVAN]}"
    assert tab.el("unsaved-indicator").is_visible()

    # A contact and a deal, or a lead: the lists follow the choice.
    tab.el("entity-lead").check()
    assert tab.selected_label("pipeline-select") == "Leads"
    assert tab.option_labels("stage-select")[1:] == ["Unassigned", "In progress", "Processed"]  # no junk/converted
    tab.el("entity-deal").check()
    assert tab.option_labels("pipeline-select")[1:] == ["General", "Wholesale", "Partners"]
    assert tab.selected_label("pipeline-select") == "General"
    tab.choose("pipeline-select", "Wholesale")
    assert tab.option_labels("stage-select")[1:] == ["New order", "Quote sent", "Shipping"]  # no paid/cancelled
    tab.choose("stage-select", "Quote sent")
    tab.el("distribution-round_robin").check()
    shot(page, "filled")

    tab.save("Settings saved.")
    assert tab.el("unsaved-indicator").is_hidden()
    # The first save offers the test message, but an Instagram channel cannot get one: say how.
    dialog = tab.el("test-message-dialog")
    dialog.wait_for(state="visible")
    assert tab.el("test-message-no-channel").is_visible()
    assert tab.el("go-to-chats").is_hidden()
    assert tab.el("add-channel-link").is_visible()
    shot(page, "test-message-no-channel")
    tab.el("test-message-later").click()
    dialog.wait_for(state="hidden")

    # Reopen from the left menu: a new frame POST, a new session, everything read back.
    tab = shell.open_settings(page)
    tab.pick_channel(instagram)
    roles = tab.roles()
    assert roles[NAMES[ADMIN]] == ("head", True)
    assert roles[NAMES[IVAN]] == ("seller", True)
    assert roles[NAMES[JOAO]] == ("qc", False)
    assert roles[NAMES[LIAM]] == ("qc", False)
    assert roles[NAMES[FATIMA]] == ("", False)
    assert tab.el("entity-deal").is_checked()
    assert tab.selected_label("pipeline-select") == "Wholesale"
    assert tab.selected_label("stage-select") == "Quote sent"
    assert tab.distribution() == "round_robin"
    assert tab.el("unsaved-indicator").is_hidden()
    assert tab.el("test-message-dialog").is_hidden()
    shot(page, "reopened")

    # With a WhatsApp number added, the tab offers the test message it could not send before.
    add_channel(tab, "whatsapp", "Sales WhatsApp", "+1 202 555 0143")
    tab.el("tab-crm").click()
    offer = tab.el("test-message-offer")
    assert "Sales WhatsApp" in offer.inner_text()
    tab.el("send-test-message").click()
    tab.el("form-status").filter(has_text="The test message is on its way.").wait_for()
    assert tab.el("test-message-offer").count() == 0
    shot(page, "test-message-sent")


def test_an_example_asks_before_it_changes_roles_and_stays_unsaved(
    shell: Bitrix24Shell, instagram: str, page: Any, shot: Any
) -> None:
    tab = shell.open_settings(page)
    tab.pick_channel(instagram)
    stored = tab.roles()
    tab.open_roles()
    tab.set_role(NAMES[FATIMA], "qc")  # the admin's own choice, not saved
    tab.apply_roles()

    tab.apply_example("single_person")
    moves = tab.example_moves()
    assert any(m.startswith("Quality control → No role:") and NAMES[FATIMA] in m for m in moves), moves
    assert not any(NAMES[OLGA] in m for m in moves)  # inactive: left alone
    shot(page, "asks")
    page.keyboard.press("Escape")  # as Cancel
    tab.el("preset-dialog").wait_for(state="hidden")
    assert tab.roles()[NAMES[FATIMA]] == ("qc", False)

    tab.apply_example("single_person")
    tab.el("preset-confirm").click()
    tab.el("form-status").filter(has_text="not saved yet").wait_for()
    assert tab.roles()[NAMES[FATIMA]] == ("", False)
    assert tab.roster("head") == f"Heads: {NAMES[ADMIN]}"
    assert tab.roster("seller") == "" and tab.roster("qc") == ""
    assert tab.el("unsaved-indicator").is_visible()
    shot(page, "applied")

    # Not saved: the portal's page opened again shows what was stored.
    tab = shell.open_settings(page)
    tab.pick_channel(instagram)
    assert tab.roles() == stored


# --- problems shown next to their fields ------------------------------------------------------------


def test_problems_are_shown_next_to_their_fields(shell: Bitrix24Shell, instagram: str, page: Any, shot: Any) -> None:
    tab = shell.open_settings(page)
    tab.pick_channel(instagram)
    # A stage must be chosen.
    tab.choose("pipeline-select", "General")
    tab.choose("stage-select", "Choose…")
    tab.save("Some fields need your attention.")
    assert tab.el("error-stage").inner_text() == "Choose a stage."
    assert tab.el("stage-select").get_attribute("aria-invalid") == "true"
    assert tab.el("error-pipeline").is_hidden()

    # A deal pipeline created in Bitrix24 shows up after "Refresh CRM data"; then it is deleted there.
    shell.add_pipeline(7, "Events", ["Registered", "Confirmed"])
    tab.el("refresh-crm").click()
    tab.el("refresh-changes").filter(has_text="New pipeline: Events").wait_for()
    tab.choose("pipeline-select", "Events")
    tab.choose("stage-select", "Confirmed")
    tab.save("Settings saved.")
    close_test_message_dialog_if_open(tab)
    assert tab.el("error-stage").is_hidden()

    shell.remove_pipeline(7)
    tab.el("refresh-crm").click()
    tab.el("refresh-changes").filter(has_text="Pipeline removed from the CRM: Events").wait_for()
    assert tab.selected_label("pipeline-select") == "Events (removed from the CRM)"
    tab.save("Some fields need your attention.")
    assert "This pipeline was removed from your CRM" in tab.el("error-pipeline").inner_text()
    assert tab.el("pipeline-select").get_attribute("aria-invalid") == "true"
    shot(page, "vanished-pipeline")

    # Reopened, the server-rendered page flags it next to the field; choosing another clears it.
    tab = shell.open_settings(page)
    tab.pick_channel(instagram)
    assert "main pipeline's first stage" in tab.el("flag-pipeline").inner_text()
    tab.choose("pipeline-select", "Wholesale")
    tab.save("Settings saved.")
    assert tab.el("error-pipeline").is_hidden()
    assert tab.el("flag-pipeline").is_hidden()  # solved and saved: no stale warning beside the field


# --- simple CRM mode ----------------------------------------------------------------------------------


def test_a_portal_in_simple_crm_mode_is_offered_deals_only(
    shell: Bitrix24Shell, instagram: str, page: Any, shot: Any
) -> None:
    tab = shell.open_settings(page)
    tab.pick_channel(instagram)
    tab.el("entity-lead").check()
    tab.save("Settings saved.")
    close_test_message_dialog_if_open(tab)
    try:
        shell.state.set_crm_mode(shell.portal, "simple")
        # The refresh learns the portal has no leads: the lead choice goes, a deal is proposed.
        tab.refresh_crm()
        assert tab.el("entity-lead").is_hidden()
        # Switched back to classic while the page is open: the next refresh brings leads back.
        shell.state.set_crm_mode(shell.portal, "classic")
        tab.refresh_crm()
        assert tab.el("entity-lead").is_visible()
        shell.state.set_crm_mode(shell.portal, "simple")
        tab.refresh_crm()
        assert tab.el("entity-lead").is_hidden()
        assert tab.el("entity-deal").is_checked()
        assert tab.selected_label("pipeline-select") == "General"
        assert tab.selected_label("stage-select") == "New"
        assert tab.el("unsaved-indicator").is_visible()
        tab.save("Settings saved.")

        tab = shell.open_settings(page)
        tab.pick_channel(instagram)
        assert tab.el("entity-lead").count() == 0
        assert "simple CRM mode" in tab.el("simple-crm-note").inner_text()
        assert tab.el("entity-deal").is_checked()
        assert tab.selected_label("pipeline-select") == "General"
        shot(page, "simple-crm")
    finally:
        shell.state.set_crm_mode(shell.portal, "classic")
        tab.refresh_crm()


# --- who may open it, and in which language ------------------------------------------------------------


def test_an_employee_who_is_not_an_admin_gets_the_chat_panel(shell: Bitrix24Shell, page: Any, shot: Any) -> None:
    page.goto(shell.stack.bitrix24_shell())
    page.locator("#as").select_option(value=str(IVAN))  # "Acting as": Иван, a sales rep
    page.locator("#as").filter(has=page.locator(f'option[value="{IVAN}"]:checked')).wait_for()
    page.locator("#menu-app").click()
    frame = page.frame_locator(FRAME)
    frame.locator(tid("chat-panel")).wait_for()
    assert frame.locator("#open-account").count() == 0
    assert frame.locator(tid("tab-crm")).count() == 0
    assert frame.locator(tid("back-to-settings")).count() == 0
    # The settings addresses, typed into the frame with Иван's session, are refused.
    inner = SettingsTab(frame).document()
    # The token left the frame's address once the page loaded; the page itself still holds it.
    assert "st=" not in inner.url
    st = frame.locator('meta[name="session-token"]').get_attribute("content")
    for path in ("/app", "/app/settings", "/app/settings/advanced", "/app/channels"):
        inner.goto(f"{shell.stack.ours}{path}?st={st}")
        assert frame.locator(tid("save-button")).count() == 0
        assert frame.locator(tid("roles-dialog")).count() == 0
        if path != "/app":
            assert "Эти настройки доступны администраторам CRM" in frame.locator(tid("not-admin")).inner_text()
    shot(page, "not-admin")


LABELS = {
    "es": ("Integración con CRM", "Guardar", "Seleccionar roles", "Representantes de ventas", "Un contacto y una"),
    "pt": ("Integração com CRM", "Salvar", "Selecionar funções", "Vendedor", "Um contato e um"),
    "ru": ("Интеграция с CRM", "Сохранить", "Выбрать роли", "Менеджер", "Контакт и сделку"),  # noqa: RUF001
    "de": ("CRM integration", "Save", "Select roles", "Sales rep", "A contact and a deal"),  # English fallback
}
# Bitrix24 users whose portal language is each of these, made admins for the test.
LANG_USERS = {"es": JOSE, "pt": JOAO, "ru": DMITRI, "de": FATIMA}


@pytest.mark.parametrize("lang", ["es", "pt", "ru", "de"])
def test_the_page_speaks_the_bitrix24_users_language(
    shell: Bitrix24Shell, instagram: str, page: Any, shot: Any, lang: str
) -> None:
    user = LANG_USERS[lang]
    shell.change_user(user, admin=True, lang=lang)
    tab = shell.open_settings(page, user)
    crm, save, select_roles, seller, deal = LABELS[lang]
    assert tab.frame.locator("html").get_attribute("lang") == ("en" if lang == "de" else lang)
    assert tab.el("tab-crm").inner_text() == crm
    assert tab.el("save-button").inner_text() == save
    assert tab.el("open-roles").inner_text() == select_roles
    assert deal in tab.frame.locator("label", has=tab.el("entity-deal")).inner_text()
    tab.open_roles()
    assert seller in tab.role_select(NAMES[ADMIN]).locator("option").all_inner_texts()
    shot(page, "tab")
