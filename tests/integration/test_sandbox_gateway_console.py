"""The sandbox messaging gateway's console, on the embedded default: our server tells the sandbox
(a separate HTTP server, through its control API) about every channel as soon as it exists and
whenever it changes; the console lists the enabled ones by account and channel name; a client can
write on any of them, Telegram and Instagram included, and the chat is made on our side."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from sandbox.gateway import GatewaySandbox, create_app
from tests.integration.test_settings_helpers import Browser
from tests.support.conversations import World, make_world
from tests.support.servers import live_server
from widget.db import db
from widget.models.conversations import Chat
from widget.services.channels.sandbox_gateway import publish_channels
from widget.services.channels.transports import SandboxGatewayTransport


@dataclass
class Console:
    app: Flask
    world: World
    gateway: GatewaySandbox
    url: str
    admin: Browser

    def page(self) -> str:
        return requests.get(self.url + "/", timeout=5).text

    def write(self, channel_id: int, client: str, text: str, **extra: str) -> requests.Response:
        form = {"channel_id": str(channel_id), "client": client, "text": text, "sender_name": "Ana", **extra}
        return requests.post(self.url + "/console/write", data=form, timeout=10)


@pytest.fixture
def console(app: Flask, client: Any) -> Iterator[Console]:
    gateway = GatewaySandbox(timeout=5)
    world = make_world(app, n_users=2, roles={0: ("head", False)})
    with live_server(create_app(gateway)) as gw, live_server(app) as ours:
        app.extensions["widget"].transport = SandboxGatewayTransport(gw.url, ours.url + "/gateway/messages", timeout=5)
        yield Console(app, world, gateway, gw.url, Browser(app, client, world.account_id))


def channel_id(page: str, name: str) -> int:
    found = re.search(rf'<option value="(\d+)"[^>]*>[^<]*· {re.escape(name)} \(', page)
    assert found, f"{name} is not offered in the console"
    return int(found.group(1))


def test_a_channel_is_listed_by_account_and_name_as_soon_as_it_exists(console: Console):
    assert "No channel yet" in console.page()  # nothing sent on the world's channel yet
    added = console.admin.xhr(
        "/app/channels", {"transport": "telegram", "name": "Support bot", "address": "@acme_support_bot"}
    )
    assert added.status_code == 201
    page = console.page()
    assert "acme.kommo.test (Kommo)" in page and "Support bot" in page and "@acme_support_bot" in page
    assert "Sales WhatsApp" in page  # the account's other channel came along
    assert not re.search(r"#\d+ \(", page)  # no bare "#4 (telegram)"
    bot = channel_id(page, "Support bot")

    renamed = console.admin.xhr(f"/app/channels/{bot}/rename", {"name": "Help desk bot"})
    assert renamed.status_code == 200
    assert "Help desk bot" in console.page() and "Support bot" not in console.page()
    assert console.admin.xhr(f"/app/channels/{bot}/disable").status_code == 200
    assert "Help desk bot" not in console.page()  # only enabled channels are listed
    assert console.admin.xhr(f"/app/channels/{bot}/enable").status_code == 200
    assert "Help desk bot" in console.page()


def test_the_server_start_lists_every_account_again(console: Console):
    console.gateway.reset()  # the sandbox forgets everything when it restarts
    with console.app.app_context():
        assert publish_channels(db, console.app.extensions["widget"]) == 1
    assert "Sales WhatsApp" in console.page()


@pytest.mark.parametrize(
    ("transport", "address", "who", "chat_id", "phone"),
    [
        ("whatsapp", "+12025550150", "+34 600 123 456", "34600123456", "+34600123456"),
        ("telegram", "@acme_bot", "5550001", "5550001", None),
        ("telegram", "@acme_bot", "@ana_lima", "@ana_lima", None),
        ("instagram", "@acme.shop", "@ana.lima", "ana.lima", None),
    ],
)
def test_a_client_writes_on_any_messenger(
    console: Console, transport: str, address: str, who: str, chat_id: str, phone: str | None
):
    added = console.admin.xhr("/app/channels", {"transport": transport, "name": "Line", "address": address})
    assert added.status_code == 201, added.get_data(as_text=True)
    line = channel_id(console.page(), "Line")
    answer = console.write(line, who, "Hola, ¿tenéis talla 38?")
    assert answer.status_code == 200 and 'id="console-error"' not in answer.text
    (delivered,) = [m for m in console.gateway.inbound if m.channel_id == line]
    assert (delivered.status, delivered.chat_type, delivered.chat_id, delivered.phone) == (
        200,
        transport,
        chat_id,
        phone,
    )
    with db.transaction() as s:
        chat = s.execute(select(Chat).where(Chat.channel_id == line)).scalar_one()
        assert chat.chat_type == transport and chat.external_chat_id == chat_id


@pytest.mark.parametrize(
    ("transport", "address", "who", "says"),
    [
        ("whatsapp", "+12025550150", "@ana", "A WhatsApp client is their phone number"),
        ("telegram", "@acme_bot", "ana!", "A Telegram client is their chat id"),
        ("instagram", "@acme.shop", "ana lima", "An Instagram client is their @username"),
    ],
)
def test_a_client_the_messenger_would_not_know_is_refused_in_words(
    console: Console, transport: str, address: str, who: str, says: str
):
    console.admin.xhr("/app/channels", {"transport": transport, "name": "Line", "address": address})
    line = channel_id(console.page(), "Line")
    answer = console.write(line, who, "Hello")
    assert says in answer.text
    assert console.gateway.inbound == []
