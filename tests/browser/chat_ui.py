"""The chat panel as a browser test sees it: a thin layer over its ``data-testid``s, read and driven
through a Playwright ``FrameLocator`` of our iframe inside a CRM shell; plus the setup both CRM
modules share (roles on a channel, the sandbox messaging gateway, clients who write)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select

from sandbox.gateway import GatewaySandbox, create_app
from tests.support.browser import CrmStack
from tests.support.servers import live_server
from widget.db import db
from widget.models import ChannelRole, ChannelSettings, Employee
from widget.models.conversations import Chat
from widget.services.channels.signing import get_or_create_gateway_secret
from widget.services.channels.transports import SandboxGatewayTransport

# Our pages answer in milliseconds on loopback, but opening a chat may first ask the CRM who is
# responsible now; a wait this long fails a broken test without making a correct one flaky.
WAIT_MS = 10_000
POLLS = re.compile(r"/api/chats")


@contextmanager
def polls_held(page: Any) -> Iterator[None]:
    """Within the block, the page's chat-list polls are held back (not failed): it has not heard
    of what others did meanwhile. On leaving, they go through."""
    held: list[Any] = []
    released = False

    def hold(route: Any) -> None:
        if route.request.method == "GET" and not released:
            held.append(route)
        else:
            route.continue_()

    page.route(POLLS, hold)
    try:
        yield
    finally:
        released = True
        for route in held:
            route.continue_()
        page.unroute(POLLS, hold)


def tid(name: str) -> str:
    return f"[data-testid={name}]"


@dataclass
class ChatPanel:
    frame: Any  # playwright FrameLocator of our iframe

    def el(self, testid: str) -> Any:
        return self.frame.locator(tid(testid))

    def wait(self) -> ChatPanel:
        self.el("chat-panel").wait_for()
        return self

    def item(self, title: str) -> Any:
        return self.frame.locator(tid("chat-item"), has=self.frame.locator(tid("chat-title"), has_text=title))

    def titles(self) -> list[str]:
        return [t.strip() for t in self.el("chat-title").all_inner_texts()]

    def counter(self, title: str) -> str | None:
        self.item(title).wait_for()
        badge = self.item(title).locator(tid("chat-counter"))
        return badge.get_attribute("data-counter") if badge.count() else None

    def front(self) -> None:
        """Each employee has their own screen: bring this one's tab to the front before acting in it
        (a background tab of a shared test browser may not get the input)."""
        self.frame.owner.page.bring_to_front()

    def open(self, title: str) -> None:
        self.front()
        self.item(title).locator("button").click()
        expect(self.el("conv-title")).to_have_text(title, timeout=WAIT_MS)

    def type(self, text: str) -> None:
        self.front()
        self.el("composer-text").fill(text)

    def send(self, text: str | None = None) -> None:
        self.front()
        if text is not None:
            self.type(text)
        self.el("send").click()

    def message(self, text: str) -> Any:
        return self.frame.locator(tid("message"), has_text=text)

    def unsent(self) -> str:
        """The reply kept to copy after the server refused it ("" when none is shown)."""
        box = self.el("unsent")
        if not box.is_visible():
            return ""
        assert self.el("unsent-text").get_attribute("readonly") is not None
        return str(self.el("unsent-text").input_value())

    def mark(self) -> None:
        """Leave a marker in the frame's window: it survives only if the page is never reloaded."""
        self.frame.locator("body").evaluate("() => { window.__noReload = 'still here'; }")

    def not_reloaded(self) -> bool:
        return bool(self.frame.locator("body").evaluate("() => window.__noReload === 'still here'"))

    def post_from_frame(self, path: str, body: dict[str, Any]) -> int:
        """A request the page's own script could make (its session and CSRF tokens): what the server
        answers a curious employee who bypasses the missing send box."""
        status: int = self.frame.locator("body").evaluate(
            """async (_body, [path, body]) => {
                const r = await fetch(path, {method: 'POST', credentials: 'omit', headers: {
                    'Content-Type': 'application/json', 'Accept': 'application/json',
                    'X-Session-Token': window.Widget.sessionToken, 'X-CSRFToken': window.Widget.csrfToken},
                    body: JSON.stringify(body)});
                return r.status;
            }""",
            [path, body],
        )
        return status


# --- shared setup -------------------------------------------------------------------------------------


@dataclass
class Gateway:
    """The sandbox messaging gateway on loopback, wired to our app: replies go there, clients write
    from there (signed POSTs to our /gateway/messages)."""

    sandbox: GatewaySandbox
    url: str
    inbound_url: str

    def link(self, account_id: int, channel_id: int, transport: str = "whatsapp") -> None:
        from flask import current_app

        with db.transaction() as s:
            secret = get_or_create_gateway_secret(s, current_app.extensions["widget"].box, account_id)
        self.sandbox.link(channel_id, secret, self.inbound_url, transport)

    def client_writes(self, channel_id: int, name: str, phone: str, text: str) -> None:
        sent = self.sandbox.write(
            channel_id=channel_id, chat_id=re.sub(r"\D", "", phone), phone=phone, sender_name=name, text=text
        )
        assert sent.status == 200, sent.answer


@contextmanager
def gateway_for(stack: CrmStack) -> Iterator[Gateway]:
    sandbox = GatewaySandbox(timeout=5)
    with live_server(create_app(sandbox)) as server:
        inbound = stack.ours + "/gateway/messages"
        services = stack.app.extensions["widget"]
        real = services.transport
        services.transport = SandboxGatewayTransport(server.url, inbound, timeout=5)
        try:
            yield Gateway(sandbox, server.url, inbound)
        finally:
            services.transport = real


def set_roles(account_id: int, channel_id: int, roles: dict[str, tuple[str, bool]], **settings: Any) -> dict[str, int]:
    """What the admin saves on the CRM integration tab for a channel: roles by CRM user id, and the
    channel's settings. Returns {CRM user id: employee id}."""
    with db.transaction() as s:
        employees = {
            e.crm_user_id: e.id for e in s.execute(select(Employee).where(Employee.account_id == account_id)).scalars()
        }
        for crm_user, (role, gets) in roles.items():
            s.add(
                ChannelRole(
                    account_id=account_id,
                    channel_id=channel_id,
                    employee_id=employees[crm_user],
                    role=role,
                    gets_new_clients=gets,
                )
            )
        row = s.get(ChannelSettings, channel_id)
        if row is None:
            s.add(ChannelSettings(channel_id=channel_id, account_id=account_id, **settings))
        else:
            for key, value in settings.items():
                setattr(row, key, value)
    return employees


def chat_of(account_id: int, title: str) -> Chat:
    with db.transaction() as s:
        chat = s.execute(select(Chat).where(Chat.account_id == account_id, Chat.title == title)).scalar_one()
        s.expunge(chat)
        return chat
