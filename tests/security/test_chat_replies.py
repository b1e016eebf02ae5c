"""Replies to a chat tell nothing to someone who may not see it: neither who took it (finding 6)
nor, through a re-sent idempotency key, another employee's message (finding 5)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from tests.security.conftest import ADMIN, SELLER, Tenant, World
from tests.support.factories import identity, session_token
from tests.support.security import csrf_token, label
from widget.db import db
from widget.models import ChannelRole, Employee
from widget.models.replies import OutboundDelivery

OUTSIDER = "104"  # an active employee of the account with no role on any channel
SECOND_HEAD = "105"  # another head on the chat's channel: may write to the chat


def _employee(app: Flask, tenant: Tenant, crm_user_id: str, role: str | None) -> dict[str, str]:
    """A new active employee of the tenant (with ``role`` on its first channel) and its headers."""
    with db.transaction() as s:
        emp = Employee(account_id=tenant.account_id, crm_user_id=crm_user_id, name=f"Employee {crm_user_id}")
        s.add(emp)
        s.flush()
        if role is not None:
            s.add(
                ChannelRole(account_id=tenant.account_id, channel_id=tenant.channel_id, employee_id=emp.id, role=role)
            )
    ident = identity(tenant.account_id, crm=tenant.crm, user=crm_user_id, admin=False, origin=tenant.frame_origin)
    token = session_token(app, ident)
    return {"X-Session-Token": token, "X-CSRFToken": csrf_token(app, token)}


def _headers(tenant: Tenant, user: str) -> dict[str, str]:
    return {"X-Session-Token": tenant.tokens[user], "X-CSRFToken": tenant.csrf[user]}


def _names_the_taker(response: Any, tenant: Tenant) -> bool:
    body = response.get_data(as_text=True)
    return "taken_by" in (response.get_json() or {}) or label(tenant.tag, "emp", 0).split(" ")[0] in body


def test_a_user_who_cannot_see_a_chat_is_not_told_who_took_it(world: World, app: Flask):
    a = world.a  # its first chat was claimed by the head (ADMIN) in the fixture
    outsider = _employee(app, a, OUTSIDER, None)

    read = world.client.get(f"/api/chats/{a.chat_id}", headers=outsider)
    reply = world.client.post(f"/api/chats/{a.chat_id}/messages", json={"text": "mine?"}, headers=outsider)
    dismiss = world.client.post(f"/api/chats/{a.chat_id}/no-reply", headers=outsider)
    for response in (read, reply, dismiss):
        assert response.status_code == 403, response.get_data(as_text=True)
        assert not _names_the_taker(response, a), response.get_json()
    # Refused exactly as reading it is: nothing tells a claimed chat from any other hidden one.
    assert reply.get_json() == read.get_json() == dismiss.get_json()

    # A colleague on the chat's channel (the sales rep the new client was offered to) still hears
    # who was faster, in the words of the reply box.
    lost = world.client.post(f"/api/chats/{a.chat_id}/messages", json={"text": "me too"}, headers=_headers(a, SELLER))
    assert lost.status_code == 409
    assert lost.get_json()["taken_by"].startswith(f"{a.tag}-emp0")


def _key_of(message_id: int) -> str:
    with db.transaction() as s:
        return s.execute(
            select(OutboundDelivery.idempotency_key).where(OutboundDelivery.message_id == message_id)
        ).scalar_one()


def test_another_employees_idempotency_key_returns_nothing_of_theirs(world: World, app: Flask):
    a = world.a
    key = _key_of(a.message_id)  # the head's reply on the first chat
    secret_text = label(a.tag, "reply", 1)
    outsider = _employee(app, a, OUTSIDER, None)
    head = _employee(app, a, SECOND_HEAD, "head")

    for headers, status in ((outsider, 403), (head, 422), (_headers(a, SELLER), 409)):
        again = world.client.post(
            f"/api/chats/{a.chat_id}/messages", json={"text": "anything", "idempotency_key": key}, headers=headers
        )
        assert again.status_code == status, again.get_data(as_text=True)
        assert secret_text.split(" ")[0] not in again.get_data(as_text=True)
        assert "message" not in (again.get_json() or {}) or isinstance(again.get_json()["message"], str)

    # The author's own retry is still recognised as the same reply, once.
    mine = world.client.post(
        f"/api/chats/{a.chat_id}/messages",
        json={"text": secret_text, "idempotency_key": key},
        headers=_headers(a, ADMIN),
    )
    assert mine.status_code == 200 and mine.get_json()["duplicate"] is True
    assert mine.get_json()["message"]["id"] == a.message_id
    with db.transaction() as s:
        assert len(s.execute(select(OutboundDelivery).where(OutboundDelivery.idempotency_key == key)).all()) == 1
