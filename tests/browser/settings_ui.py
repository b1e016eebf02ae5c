"""The "CRM integration" tab as a browser test sees it: a thin layer over its ``data-testid``s.

Everything goes through a Playwright ``FrameLocator`` of our iframe inside the CRM shell, so each
step is what an admin does in the frame, and each read is what the frame shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

ROLE_VALUES = ("", "seller", "head", "qc")


def tid(name: str) -> str:
    return f"[data-testid={name}]"


def assert_in_sight(locator: Any) -> None:
    """The element is in the frame's viewport and not covered (e.g. by the sticky top panel):
    what is at its centre is the element itself. ``to_be_in_viewport`` alone passes for an element
    hidden under a sticky header."""
    expect(locator).to_be_in_viewport()
    seen = locator.evaluate(
        """el => {
            const r = el.getBoundingClientRect();
            const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
            return hit !== null && (hit === el || el.contains(hit));
        }"""
    )
    assert seen, "the element is covered by something else"


def frame_settled(frame: Any) -> None:
    """Wait until our frame (a ``FrameLocator``) has kept its place and size for a moment. Chromium
    routes a click into a cross-site frame by where the frame was drawn last: right after the CRM
    resized it (Bitrix24 does, whenever our page asks), a click can land on the old picture and
    reach nobody."""
    owner = frame.owner
    page = owner.page
    last, steady = None, 0
    for _ in range(100):
        box = owner.bounding_box()
        size = None if box is None else (round(box["y"]), round(box["height"]))
        steady = steady + 1 if size == last else 0
        if steady >= 3:
            return
        last = size
        page.wait_for_timeout(50)
    raise AssertionError("the frame keeps changing size")


def click_until(frame: Any, target: Any, shown: Any, tries: int = 3, wait_ms: int = 4000) -> None:
    """Click ``target`` in our frame until ``shown`` appears, as a person would click again when
    nothing happened. Right after a save the frame grows, the portal's page scrolls and its dialog is
    moved to what shows; Chromium can route a click by a picture of the frame from before that and
    the click reaches nobody (no request leaves the page). Anything the click did is checked through
    ``shown``; a click that did reach the page is never repeated, because ``shown`` then appears."""
    for attempt in range(tries):
        frame_settled(frame)
        target.click()
        try:
            shown.wait_for(timeout=wait_ms)
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise


@dataclass
class SettingsTab:
    frame: Any  # playwright FrameLocator of our iframe

    def el(self, testid: str) -> Any:
        return self.frame.locator(tid(testid))

    def document(self) -> Any:
        """The frame itself (a Playwright ``Frame``): its URL, ``goto``, ``wait_for_url``."""
        return self.frame.owner.element_handle().content_frame()

    def ready(self) -> None:
        """Wait until the page's script has wired its controls (``static/settings.js`` marks it),
        and until the frame has stopped changing size (``frame_settled``): a button clicked before
        either does nothing."""
        self.frame.locator("html[data-settings-ready]").wait_for(state="attached")
        frame_settled(self.frame)

    def pick_channel(self, name: str) -> None:
        """Choose a channel in the picker; the page reopens on it."""
        select = self.el("channel-select")
        if name in self.selected_label("channel-select"):
            self.ready()
            return
        value = select.locator("option", has_text=name).get_attribute("value")
        select.select_option(value=value)
        self.document().wait_for_url(re.compile(rf"[?&]channel={value}(&|$)"))
        self.el("save-button").wait_for()
        self.ready()

    # --- roles dialog ---------------------------------------------------------------------------

    def open_roles(self) -> Any:
        self.ready()
        self.el("open-roles").click()
        dialog = self.el("roles-dialog")
        dialog.wait_for(state="visible")
        return dialog

    def row(self, name: str) -> Any:
        return self.frame.locator(f'[data-testid=employee-row][data-name="{name.lower()}"]')

    def role_select(self, name: str) -> Any:
        return self.row(name).locator(tid("role-select"))

    def toggle(self, name: str) -> Any:
        return self.row(name).locator(tid("new-clients-toggle"))

    def set_role(self, name: str, role: str, *, gets_new_clients: bool | None = None) -> None:
        assert role in ROLE_VALUES
        self.role_select(name).select_option(value=role)
        if gets_new_clients is not None:
            self.toggle(name).set_checked(gets_new_clients)

    def apply_roles(self) -> None:
        self.el("roles-apply").click()
        self.el("roles-dialog").wait_for(state="hidden")

    def cancel_roles(self) -> None:
        self.el("roles-cancel").click()
        self.el("roles-dialog").wait_for(state="hidden")

    def roles(self) -> dict[str, tuple[str, bool]]:
        """{employee name: (role, gets new clients)} as the dialog's controls hold them."""
        found = self.frame.locator(tid("employee-row")).evaluate_all(
            """rows => Object.fromEntries(rows.map(r => [
                r.querySelector('.emp-name').textContent.trim(),
                [r.querySelector('select').value, r.querySelector('input[type=checkbox]').checked]]))"""
        )
        return {name: (role, gets) for name, (role, gets) in found.items()}

    def roster(self, group: str) -> str:
        """One group of the roles summary as shown ("Sales reps: Ana, José +3 more"); "" when
        nobody is in it. ``group``: seller, head, qc or new."""
        found = self.el(f"roster-{group}")
        return str(found.inner_text()).strip() if found.count() else ""

    # --- example setups -------------------------------------------------------------------------

    def apply_example(self, key: str) -> Any:
        """Press an example's "Apply example"; return the dialog that asks first."""
        self.ready()
        presets = self.el("presets")
        if presets.get_attribute("open") is None:
            presets.locator("summary").click()
        self.el(f"preset-{key}").click()
        dialog = self.el("preset-dialog")
        try:
            dialog.wait_for(state="visible")
        except Exception as exc:  # say what the page said instead of only "timeout"
            raise AssertionError(f"no example dialog; the page says {self.el('form-status').inner_text()!r}") from exc
        return dialog

    def example_moves(self) -> list[str]:
        """The lines of the asking dialog: "Quality control → Sales rep, gets new clients: Noah Kim"."""
        return [str(t).strip() for t in self.el("preset-dialog").locator(tid("preset-move")).all_inner_texts()]

    # --- new client, distribution ----------------------------------------------------------------

    def selected_label(self, testid: str) -> str:
        return str(self.el(testid).evaluate("s => s.selectedIndex < 0 ? '' : s.options[s.selectedIndex].text"))

    def option_labels(self, testid: str) -> list[str]:
        return list(self.el(testid).evaluate("s => Array.from(s.options).map(o => o.text)"))

    def choose(self, testid: str, label: str) -> None:
        self.el(testid).select_option(label=label)

    def distribution(self) -> str:
        for mode in ("first_reply", "round_robin"):
            if self.el(f"distribution-{mode}").is_checked():
                return mode
        return ""

    # --- Refresh CRM data ----------------------------------------------------------------------------

    def refresh_crm(self) -> str:
        """Press "Refresh CRM data", wait for the answer, return what the page says changed."""
        self.el("refresh-crm").click()  # its handler disables the button at once
        expect(self.el("refresh-crm")).to_be_enabled()
        return str(self.el("refresh-status").inner_text())

    # --- save ---------------------------------------------------------------------------------------

    def save(self, outcome: str | re.Pattern[str]) -> str:
        """Press Save (in the top panel) and wait until the status line says ``outcome``; return its
        whole text. The answer must be where the admin is looking, wherever the page is scrolled."""
        self.el("save-button").click()
        status = self.el("form-status")
        status.filter(has_text=outcome).wait_for()
        expect(status).to_be_in_viewport()
        return str(status.inner_text())
