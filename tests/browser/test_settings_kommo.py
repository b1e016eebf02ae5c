"""The "CRM integration" settings inside the sandbox Kommo's shell, in Chromium.

Our app on ``http://127.0.0.1:<p>``, the Kommo shell on ``http://localhost:<q>`` (another site),
third-party cookies blocked in the profile (probed by the ``browser_context`` fixture). Kommo frames
us as its widget script does: a one-time JWT, ``POST /kommo/session``, an ``<iframe src=...>``.
Every assertion reads what the frame shows. The install is done once, through the shell, for the
module; tests that save use different channels so they do not depend on each other's saves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.settings_ui import SettingsTab, assert_in_sight, tid
from tests.support.browser import CrmStack
from tests.support.kommo_sandbox import DEMO_HOST

pytestmark = pytest.mark.browser

FRAME = "#work-area-wazzup iframe"
ADMIN = "Olivia Bennett"
# Admins whose Kommo speaks another language; "de" is one we have no translation for.
LANG_ADMINS = {"es": "Elena Ruiz", "pt": "Paulo Ferreira", "ru": "Пётр Орлов", "de": "Jonas Becker"}


@dataclass
class KommoShell:
    stack: CrmStack
    install_answer: str
    users: dict[str, int]  # name -> Kommo user id

    @property
    def sandbox(self) -> Any:
        return self.stack.kommo.sandbox

    def open_settings(self, page: Any, user: str = ADMIN, **query: Any) -> SettingsTab:
        """Kommo → Settings → "Wazzup: CRM integration" (the widget's advanced_settings page)."""
        page.goto(self.stack.kommo_shell("/settings/wazzup", user=self.users[user], **query))
        tab = SettingsTab(page.frame_locator(FRAME))
        tab.el("tab-crm").wait_for()
        return tab


@pytest.fixture(scope="module")
def shell(stack: CrmStack, browser_context: Any) -> Iterator[KommoShell]:
    sandbox = stack.kommo.sandbox
    for lang, name in LANG_ADMINS.items():
        sandbox.add_user(DEMO_HOST, name, lang=lang, is_admin=True)
    users = {u.name: u.id for u in sandbox.users(DEMO_HOST)}
    page = browser_context.new_page()
    try:
        # Settings → Integrations → Install, as the account's admin.
        page.goto(stack.kommo_shell("/settings/widgets", user=users[ADMIN]))
        page.locator("#install-widget").click()
        answer = page.locator("#hook-result").inner_text()
    finally:
        page.close()
    yield KommoShell(stack, answer, users)


def close_test_message_dialog_if_open(tab: SettingsTab) -> None:
    """Only the account's first save opens it; a test run alone may be the first."""
    if tab.el("test-message-dialog").is_visible():
        tab.el("test-message-later").click()
        tab.el("test-message-dialog").wait_for(state="hidden")


# --- install, the tab, the whole setup saved and persisted ---------------------------------------


def test_installing_from_the_shell_opens_the_crm_integration_tab(shell: KommoShell, page: Any, shot: Any) -> None:
    assert "Installed." in shell.install_answer and "Answer: 200" in shell.install_answer
    tab = shell.open_settings(page)
    assert tab.el("tab-crm").get_attribute("aria-current") == "page"
    # The sandbox install gives the demo account its channels; the first one is open.
    assert "Sales WhatsApp" in tab.selected_label("channel-select")
    assert tab.el("admin-head-hint").is_visible()
    assert tab.el("kommo-caveat").is_visible()
    assert tab.el("unsaved-indicator").is_hidden()
    # Kommo creates a lead: no deal/lead choice, and the pipeline and stage come from Kommo.
    assert tab.el("entity-deal").count() == 0 and tab.el("entity-lead").count() == 0
    assert tab.selected_label("pipeline-select") == "Sales"
    assert tab.selected_label("stage-select") == "Incoming leads"
    assert tab.distribution() == "first_reply"
    # The page is framed cross-site and works without any cookie of ours.
    frame = page.frame_locator(FRAME).owner
    assert frame.get_attribute("src").startswith(shell.stack.ours + "/app/launch?lt=")
    assert page.context.cookies(shell.stack.ours) == []
    shot(page, "tab")


def test_an_admin_sets_up_a_channel_saves_and_finds_it_after_reopening(shell: KommoShell, page: Any, shot: Any) -> None:
    tab = shell.open_settings(page)
    tab.pick_channel("Sales WhatsApp")
    dialog = tab.open_roles()
    assert tab.el("employee-row").count() == len(shell.users)  # every Kommo user is listed

    # Inactive in Kommo: shown, marked, and not assignable.
    assert tab.row("Sofía Ramírez").get_attribute("data-inactive") == "1"
    assert tab.row("Sofía Ramírez").locator(tid("inactive-badge")).is_visible()
    assert tab.role_select("Sofía Ramírez").is_disabled()
    assert tab.toggle("Sofía Ramírez").is_disabled()
    # Without a role "Gets new clients" means nothing.
    assert tab.toggle("Noah Kim").is_disabled()

    tab.set_role(ADMIN, "head", gets_new_clients=True)
    tab.set_role("José Núñez", "seller", gets_new_clients=True)
    tab.set_role("João Gonçalves", "seller", gets_new_clients=False)
    tab.set_role("Zoë Ångström", "seller", gets_new_clients=True)
    # Quality control cannot write, so the switch turns off and locks when the role is chosen.
    tab.set_role("Zoë Ångström", "qc")
    assert tab.toggle("Zoë Ångström").is_disabled()
    assert not tab.toggle("Zoë Ångström").is_checked()
    # The filter finds people by any part of their name, non-ASCII included.
    tab.el("roles-filter").fill("ñ")
    visible = dialog.locator("[data-testid=employee-row]:visible .emp-name").all_inner_texts()
    assert sorted(visible) == ["José Núñez"]
    tab.el("roles-filter").fill("")
    shot(page, "roles-dialog")
    tab.apply_roles()

    # Who has which role, by name (the inactive Sofía is not counted, whatever she had).
    sellers = tab.roster("seller")
    assert sellers.startswith("Sales reps:") and "José Núñez" in sellers and "João Gonçalves" in sellers
    assert tab.roster("head") == f"Heads: {ADMIN}"
    assert tab.roster("qc") == "Quality control: Zoë Ångström"
    getting = tab.roster("new")
    assert ADMIN in getting and "José Núñez" in getting and "João" not in getting
    assert tab.el("unsaved-indicator").is_visible()

    tab.choose("pipeline-select", "Wholesale")
    stages = tab.option_labels("stage-select")
    assert stages[1:] == ["Incoming leads", "Request received", "Quote sent", "Contract"]  # no won/lost
    tab.choose("stage-select", "Quote sent")
    tab.el("distribution-round_robin").check()
    shot(page, "filled")

    status = tab.save("Settings saved.")
    assert "Some fields" not in status
    assert tab.el("unsaved-indicator").is_hidden()
    # The account's first save offers the test message on its first WhatsApp channel.
    dialog = tab.el("test-message-dialog")
    dialog.wait_for(state="visible")
    assert "Sales WhatsApp" in dialog.inner_text() and "+12025550143" in dialog.inner_text()
    assert tab.el("go-to-chats").is_visible()
    assert tab.el("test-message-no-channel").is_hidden()
    assert tab.el("add-channel-link").is_hidden()  # there is a channel: no "Add a channel" button
    shot(page, "test-message")
    tab.el("test-message-later").click()
    dialog.wait_for(state="hidden")

    # Saving again without a change is not a second "first save".
    tab.save("Nothing to save")
    assert tab.el("test-message-dialog").is_hidden()

    # Reopen Kommo's page: a new frame, a new session, everything read back from our server.
    page.reload()
    tab = SettingsTab(page.frame_locator(FRAME))
    tab.el("tab-crm").wait_for()
    tab.pick_channel("Sales WhatsApp")
    roles = tab.roles()
    assert roles[ADMIN] == ("head", True)
    assert roles["José Núñez"] == ("seller", True)
    assert roles["João Gonçalves"] == ("seller", False)
    assert roles["Zoë Ångström"] == ("qc", False)
    assert roles["Noah Kim"] == ("", False)
    assert tab.toggle("Zoë Ångström").is_disabled()
    assert tab.selected_label("pipeline-select") == "Wholesale"
    assert tab.selected_label("stage-select") == "Quote sent"
    assert tab.distribution() == "round_robin"
    assert tab.el("unsaved-indicator").is_hidden()
    assert tab.el("test-message-dialog").is_hidden()
    shot(page, "reopened")


def test_cancel_or_esc_in_the_roles_dialog_puts_back_what_was_there(shell: KommoShell, page: Any) -> None:
    tab = shell.open_settings(page)
    tab.pick_channel("Shop Instagram")
    before = tab.roles()
    tab.open_roles()
    tab.set_role("Liam O'Connor", "head", gets_new_clients=True)
    tab.set_role("Noah Kim", "qc")
    tab.cancel_roles()
    assert tab.roles() == before
    tab.open_roles()
    tab.set_role("Noah Kim", "seller")
    page.keyboard.press("Escape")
    tab.el("roles-dialog").wait_for(state="hidden")
    assert tab.roles() == before
    assert tab.el("unsaved-indicator").is_hidden()


def test_a_refresh_while_kommo_is_down_says_so_and_keeps_the_form(shell: KommoShell, page: Any, shot: Any) -> None:
    tab = shell.open_settings(page)
    tab.pick_channel("Shop Instagram")
    tab.el("distribution-round_robin").check()
    shell.sandbox.set_fault("outage")
    try:
        tab.refresh_crm()
    finally:
        shell.sandbox.clear_faults()
    error = tab.el("refresh-error")
    assert "The CRM is not reachable at the moment" in error.inner_text()
    assert tab.distribution() == "round_robin"
    assert tab.el("unsaved-indicator").is_visible()
    shot(page, "refresh-error")


def test_an_example_setup_fills_the_form_and_leaves_saving_to_the_admin(
    shell: KommoShell, page: Any, shot: Any
) -> None:
    tab = shell.open_settings(page)
    tab.pick_channel("Shop Instagram")
    tab.open_roles()
    tab.set_role("Noah Kim", "qc")  # a choice of the admin's, not saved yet
    tab.apply_roles()

    # The example says whom it moves from which role to which before it touches the form.
    dialog = tab.apply_example("classic_sales")
    assert "Classic sales department" in tab.el("preset-dialog-title").inner_text()
    assert "Nothing is saved until you press Save" in dialog.inner_text()
    moves = tab.example_moves()
    assert "Quality control → Sales rep, gets new clients: Noah Kim" in moves
    assert f"No role → Head: {ADMIN}" in moves  # "you get the Head role to test"
    assert not any("Sofía Ramírez" in m for m in moves)  # inactive: left alone
    assert tab.el("preset-distribution").inner_text() == "Distribution: First to answer → In turn"
    shot(page, "asks")

    # Cancel: nothing changed.
    tab.el("preset-cancel").click()
    tab.el("preset-dialog").wait_for(state="hidden")
    assert tab.roles()["Noah Kim"] == ("qc", False)
    assert tab.distribution() == "first_reply"

    tab.apply_example("classic_sales")
    tab.el("preset-confirm").click()
    tab.el("preset-dialog").wait_for(state="hidden")
    status = tab.el("form-status")
    status.filter(has_text="not saved yet").wait_for()
    assert "Check the roles, then press Save." in status.inner_text()
    roles = tab.roles()
    assert roles[ADMIN][0] == "head"
    assert roles["Noah Kim"] == ("seller", True)
    assert roles["Sofía Ramírez"] == ("", False)
    assert tab.distribution() == "round_robin"
    assert tab.el("unsaved-indicator").is_visible()
    # Every active employee but the admin is a rep now: five names, the rest behind "+N more".
    sellers = tab.roster("seller")
    hidden = len(shell.users) - 2 - 5  # all but the admin and the inactive Sofía, minus five shown
    assert sellers.endswith(f"+{hidden} more")
    tab.el("roster-seller").locator(tid("roster-more")).locator("summary").click()
    expanded = tab.roster("seller")
    assert "more" not in expanded and all(
        name in expanded for name in shell.users if name not in (ADMIN, "Sofía Ramírez")
    )
    shot(page, "classic-sales")

    # Nothing is saved yet, so leaving asks first; staying keeps the example.
    asked: list[str] = []

    def stay(dialog: Any) -> None:
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", stay)
    other = tab.el("channel-select").locator("option", has_text="Sales WhatsApp").get_attribute("value")
    tab.el("channel-select").select_option(value=other)
    assert asked == ["confirm"]
    assert "Shop Instagram" in tab.selected_label("channel-select")
    tab.el("tab-advanced").click()
    expect(tab.el("tab-crm")).to_have_attribute("aria-current", "page")
    assert asked == ["confirm", "beforeunload"]
    assert tab.roles()["Noah Kim"] == ("seller", True)
    page.remove_listener("dialog", stay)


def test_the_advanced_tab_saves_account_wide_options(shell: KommoShell, page: Any, shot: Any) -> None:
    tab = shell.open_settings(page)
    tab.el("tab-advanced").click()
    tab.el("advanced-form").wait_for()
    tab.choose("default-channel-select", "Support Telegram bot · @acme_support_bot")
    tab.el("notify-heads-toggle").check()
    tab.choose("fallback-select", "Noah Kim")
    assert tab.el("unsaved-indicator").is_visible()
    tab.el("advanced-save").click()
    tab.el("form-status").filter(has_text="Settings saved.").wait_for()
    assert_in_sight(tab.el("form-status"))
    assert tab.el("unsaved-indicator").is_hidden()

    tab = shell.open_settings(page)
    tab.el("tab-advanced").click()
    tab.el("advanced-form").wait_for()
    assert tab.selected_label("default-channel-select") == "Support Telegram bot · @acme_support_bot"
    assert tab.el("notify-heads-toggle").is_checked()
    assert tab.selected_label("fallback-select") == "Noah Kim"
    shot(page, "saved")


# --- problems shown next to their fields ------------------------------------------------------------


def test_problems_are_shown_next_to_their_fields(shell: KommoShell, page: Any, browser_context: Any, shot: Any) -> None:
    sandbox = shell.sandbox
    tab = shell.open_settings(page)
    tab.pick_channel("Support Telegram bot")

    # A pipeline added in Kommo appears after "Refresh CRM data", without losing unsaved choices.
    # So does someone who joined Kommo: a new row in the dialog, ready for a role.
    events = sandbox.add_pipeline(DEMO_HOST, "Events", ["Registered", "Confirmed"])
    sandbox.add_user(DEMO_HOST, "Mila Novak")
    tab.open_roles()
    tab.set_role("Liam O'Connor", "qc")
    tab.apply_roles()
    tab.el("refresh-crm").click()
    changes = tab.el("refresh-changes")
    changes.filter(has_text="New pipeline: Events").wait_for()
    assert "1 new employee: Mila Novak" in changes.inner_text()
    assert tab.roles()["Liam O'Connor"] == ("qc", False)
    tab.open_roles()
    assert tab.toggle("Mila Novak").is_disabled()
    tab.set_role("Mila Novak", "qc")
    tab.apply_roles()

    # In turn, with nobody who gets new clients: saved, and the page says what will happen.
    tab.choose("pipeline-select", "Events")
    tab.choose("stage-select", "Confirmed")
    tab.el("distribution-round_robin").check()
    status = tab.save("Settings saved.")
    close_test_message_dialog_if_open(tab)
    assert "Nobody gets new clients on this channel" in status
    # Saved, but worth a second look: the line reads as a warning, not as a success.
    warning = tab.el("form-status").locator(".warn", has_text="Nobody gets new clients on this channel")
    assert warning.is_visible()
    assert warning.evaluate("el => getComputedStyle(el).color") != tab.el("form-status").locator(
        ".ok", has_text="Settings saved."
    ).evaluate("el => getComputedStyle(el).color")
    shot(page, "nobody-eligible")

    # The chosen pipeline disappears from Kommo: the refresh says so and the select marks it.
    sandbox.remove_pipeline(DEMO_HOST, events)
    tab.el("refresh-crm").click()
    tab.el("refresh-changes").filter(has_text="Pipeline removed from the CRM: Events").wait_for()
    assert tab.selected_label("pipeline-select") == "Events (removed from the CRM)"
    tab.save("Some fields need your attention.")
    error = tab.el("error-pipeline")
    assert error.is_visible()
    assert "This pipeline was removed from your CRM" in error.inner_text()
    assert tab.el("pipeline-select").get_attribute("aria-invalid") == "true"
    expect(tab.el("pipeline-select")).to_be_focused()
    assert_in_sight(tab.el("error-pipeline"))
    shot(page, "vanished-pipeline")

    # Reopened later, the server-rendered page flags it next to the field too.
    page.reload()
    tab = SettingsTab(page.frame_locator(FRAME))
    tab.pick_channel("Support Telegram bot")
    assert "main pipeline's first stage" in tab.el("flag-pipeline").inner_text()
    assert tab.roles()["Mila Novak"] == ("qc", False)

    # A role given to someone who has since left Kommo (another admin's refresh saw it first).
    tab.open_roles()
    tab.set_role("Carlos Méndez", "seller", gets_new_clients=True)
    tab.apply_roles()
    tab.choose("pipeline-select", "Support")
    sandbox.set_user(DEMO_HOST, shell.users["Carlos Méndez"], is_active=False)
    other = browser_context.new_page()
    try:
        other_tab = shell.open_settings(other)
        other_tab.el("refresh-crm").click()
        other_tab.el("refresh-changes").filter(has_text="Carlos Méndez").wait_for()
    finally:
        other.close()
    tab.el("distribution-first_reply").check()  # the page is scrolled down to the bottom
    status = tab.save("Some fields need your attention.")
    assert tab.el("error-pipeline").is_hidden()  # the pipeline problem is solved
    # The row is inside the closed dialog: the top panel names the problem, and "Select roles",
    # marked, takes the focus (scrolled into view).
    assert "Carlos Méndez is inactive in the CRM and cannot be given a role." in status
    expect(tab.el("open-roles")).to_be_focused()
    assert_in_sight(tab.el("open-roles"))
    assert "has-error" in (tab.el("open-roles").get_attribute("class") or "")
    shot(page, "inactive-role-saved")
    carlos_id = tab.row("Carlos Méndez").get_attribute("data-employee-id")
    slot = tab.frame.locator(f'[data-error-for="roles.{carlos_id}"]')
    tab.open_roles()
    assert slot.is_visible()
    assert "Carlos Méndez is inactive in the CRM" in slot.inner_text()
    shot(page, "inactive-role")
    tab.cancel_roles()


# --- who may open it, and in which language ------------------------------------------------------------


def test_a_user_who_is_not_an_admin_never_gets_the_settings(shell: KommoShell, page: Any, shot: Any) -> None:
    page.goto(shell.stack.kommo_shell("/settings", user=shell.users[ADMIN]))
    # Kommo's "You are" switcher: the same browser, now José, who is not an admin.
    page.locator("#user-switcher").select_option(value=str(shell.users["José Núñez"]))
    page.locator("#current-user").filter(has_text="José Núñez").wait_for()
    assert page.locator("#current-user").get_attribute("data-is-admin") == "false"
    page.locator("#settings-wazzup").click()
    frame = page.frame_locator(FRAME)
    frame.locator(tid("chat-panel")).wait_for()
    assert frame.locator(tid("tab-crm")).count() == 0
    assert frame.locator(tid("save-button")).count() == 0
    assert frame.locator(tid("back-to-settings")).count() == 0
    # Typing the settings address into the frame with José's session is refused, kindly.
    inner = SettingsTab(frame).document()
    # The token left the frame's address once the page loaded; the page itself still holds it.
    assert "st=" not in inner.url
    st = frame.locator('meta[name="session-token"]').get_attribute("content")
    for path in ("/app/settings", "/app/settings/advanced", "/app/channels"):
        inner.goto(f"{shell.stack.ours}{path}?st={st}")
        refused = frame.locator(tid("not-admin"))
        refused.wait_for()
        assert "Estos ajustes son para los administradores del CRM" in refused.inner_text()  # José reads Spanish
        assert frame.locator(tid("roles-dialog")).count() == 0
    shot(page, "not-admin")


LABELS = {
    "es": (
        "Integración con CRM",
        "Guardar",
        "Seleccionar roles",
        "Representantes de ventas",
        "El primero que responda",
    ),
    "pt": ("Integração com CRM", "Salvar", "Selecionar funções", "Vendedor", "Quem responder primeiro"),
    "ru": ("Интеграция с CRM", "Сохранить", "Выбрать роли", "Менеджер", "Кто первый ответит"),  # noqa: RUF001
    "de": ("CRM integration", "Save", "Select roles", "Sales rep", "First to answer"),  # English fallback
}


@pytest.mark.parametrize("lang", ["es", "pt", "ru", "de"])
def test_the_page_speaks_the_kommo_users_language(shell: KommoShell, page: Any, shot: Any, lang: str) -> None:
    tab = shell.open_settings(page, LANG_ADMINS[lang])
    crm, save, select_roles, seller, first_reply = LABELS[lang]
    assert tab.frame.locator("html").get_attribute("lang") == ("en" if lang == "de" else lang)
    assert tab.el("tab-crm").inner_text() == crm
    assert tab.el("save-button").inner_text() == save
    assert tab.el("open-roles").inner_text() == select_roles
    assert first_reply in tab.frame.locator("label.choice", has=tab.el("distribution-first_reply")).inner_text()
    tab.open_roles()
    options = tab.role_select(ADMIN).locator("option").all_inner_texts()
    assert seller in options
    shot(page, "tab")
