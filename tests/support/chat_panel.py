"""Driving the chat panel as a given CRM user: their session token, the CSRF token from the page,
and the JSON API with the headers our page sends (``X-Session-Token``, ``X-CSRFToken``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support.conversations import World
from tests.support.factories import identity, session_token
from widget.db import db
from widget.models.conversations import Chat, Message
from widget.models.replies import OutboundDelivery

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass
class Panel:
    """One employee's chat panel, over Flask's test client (or any client with the same API)."""

    client: FlaskClient
    token: str
    csrf: str = ""

    def headers(self, **extra: str) -> dict[str, str]:
        h = {"X-Session-Token": self.token, "Accept": "application/json"}
        if self.csrf:
            h["X-CSRFToken"] = self.csrf
        h.update(extra)
        return h

    def page(self, path: str = "/app/chats", **params: Any) -> Any:
        response = self.client.get(path, query_string={"st": self.token, **params})
        match = _CSRF.search(response.get_data(as_text=True))
        if match:
            self.csrf = match.group(1)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, query_string=params, headers=self.headers())

    def post(self, path: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
        return self.client.post(path, json=body or {}, headers=self.headers(**headers))

    # --- the API, by name ---------------------------------------------------------------------------

    def chats(self, **params: Any) -> Any:
        return self.get("/api/chats", **params)

    def chat_ids(self, **params: Any) -> list[int]:
        response = self.chats(**params)
        assert response.status_code == 200, response.get_json()
        return [c["id"] for c in response.get_json()["chats"]]

    def chat(self, chat_id: int, **params: Any) -> Any:
        return self.get(f"/api/chats/{chat_id}", **params)

    def send(self, chat_id: int, text: str, **extra: Any) -> Any:
        return self.post(f"/api/chats/{chat_id}/messages", {"text": text, **extra})

    def no_reply(self, chat_id: int) -> Any:
        return self.post(f"/api/chats/{chat_id}/no-reply")


def open_panel(app: Flask, w: World, index: int, *, admin: bool = False, client: FlaskClient | None = None) -> Panel:
    """User ``index`` of the world (CRM user ``100 + index``) with the chat panel open."""
    return panel_for(app, w.account_id, str(100 + index), admin=admin, client=client)


def panel_for(
    app: Flask, account_id: int, crm_user_id: str, *, admin: bool = False, client: FlaskClient | None = None, **kw: Any
) -> Panel:
    """This CRM user of the account with the chat panel open (``kw``: more identity fields)."""
    ident = identity(account_id, crm=_crm(account_id), user=crm_user_id, admin=admin, **kw)
    panel = Panel(client or app.test_client(), session_token(app, ident))
    page = panel.page()
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    assert panel.csrf, "the chat page carries a CSRF token"
    return panel


def _crm(account_id: int) -> str:
    from widget.models import Account

    with db.transaction() as s:
        account = s.get(Account, account_id)
        assert account is not None
        return account.crm


def chat_by_external(w: World, n: int) -> Chat:
    with db.transaction() as s:
        chat = s.execute(
            select(Chat).where(Chat.account_id == w.account_id, Chat.external_chat_id == f"chat-{n}")
        ).scalar_one()
        s.expunge(chat)
        return chat


def outbound_texts(chat_id: int | None = None) -> list[str]:
    with db.transaction() as s:
        q = select(Message.text).where(Message.direction == "out").order_by(Message.id)
        if chat_id is not None:
            q = q.where(Message.chat_id == chat_id)
        return list(s.execute(q).scalars())


def deliveries() -> list[OutboundDelivery]:
    with db.transaction() as s:
        rows = list(s.execute(select(OutboundDelivery).order_by(OutboundDelivery.message_id)).scalars())
        s.expunge_all()
        return rows


class RecordingTransport:
    """A hand-written fake of our ``Transport``: records what would have left, or fails on demand."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.fail_with: Any = None  # a TransportError to raise on the next sends

    def send(self, message: Any, secret: str, previous: str | None = None) -> Any:
        from widget.services.channels.transports import Delivered

        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message)
        return Delivered(f"fake-{len(self.sent)}")

    def texts(self) -> list[str]:
        return [m.text for m in self.sent]
