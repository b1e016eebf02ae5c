"""What the chat panel says to whom: quality control is told it reads but never writes (not that
someone "took" a chat it could have taken), in every state it can see; an employee with no role
on any channel is told so, and who can give them one, instead of "no chats yet"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.support.chat_panel import RecordingTransport, chat_by_external, open_panel
from tests.support.conversations import make_world
from widget.db import db
from widget.models import Employee
from widget.models.conversations import Chat

WATCH = "Quality control can read this chat but not write."


@pytest.fixture
def transport(app: Flask) -> Iterator[RecordingTransport]:
    fake = RecordingTransport()
    app.extensions["widget"].transport = fake
    yield fake


def reason(panel: Any, chat_id: int) -> str:
    write = panel.chat(chat_id).get_json()["chat"]["write"]
    assert write["allowed"] is False
    return str(write["reason"])


def test_quality_control_is_told_who_answers_and_that_it_only_reads(
    app: Flask, client: Any, database_url: str, transport: RecordingTransport
):
    # First to answer between reps 1 and 2; 3 is a head, 4 quality control.
    w = make_world(
        app, n_users=5, roles={1: ("seller", True), 2: ("seller", True), 3: ("head", False), 4: ("qc", False)}
    )
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id
    qc, rep1, rep2, head = (open_panel(app, w, i) for i in (4, 1, 2, 3))

    # A new client nobody answered yet: nobody took it, and it is not quality control's to take.
    offered = reason(qc, chat_id)
    assert offered == (
        "A new client: the first sales rep or head to answer takes this chat. Quality control can read this "
        "chat but not write."
    )
    # Those who may take it are offered it, as before.
    assert rep1.chat(chat_id).get_json()["chat"]["write"]["claims"] is True
    assert head.chat(chat_id).get_json()["chat"]["write"]["allowed"] is True

    assert rep2.send(chat_id, "Hi, User 2 here", expect_offer=True).status_code == 201

    assert reason(qc, chat_id) == f"User 2 is answering this client. {WATCH}"
    assert "took" not in reason(qc, chat_id)
    assert head.chat(chat_id).get_json()["chat"]["write"]["allowed"] is True  # heads still write
    assert rep2.chat(chat_id).get_json()["chat"]["write"]["allowed"] is True
    assert rep1.chat(chat_id).status_code == 403  # the loser no longer sees it

    # The CRM then makes someone else responsible: quality control is told who is, now.
    with db.transaction() as s:
        chat = s.get(Chat, chat_id)
        assert chat is not None
        chat.responsible_employee_id = w.emp(3)
    assert reason(qc, chat_id) == f"User 3 is responsible for this client. {WATCH}"

    # The quality control employee is the client's responsible in the CRM: still read-only, and why.
    with db.transaction() as s:
        chat = s.get(Chat, chat_id)
        assert chat is not None
        chat.responsible_employee_id = w.emp(4)
    assert reason(qc, chat_id) == (
        "You are this client's responsible in the CRM, but your role on this channel is Quality control: you "
        "can read this chat but not write. A head can answer it."
    )
    assert qc.send(chat_id, "QC writing").status_code in (403, 409)  # refused either way
    assert transport.texts() == ["Hi, User 2 here"]


def test_quality_control_on_a_client_given_in_turn(
    app: Flask, client: Any, database_url: str, transport: RecordingTransport
):
    w = make_world(app, n_users=5, roles={1: ("seller", True), 4: ("qc", False)}, distribution="round_robin")
    w.post(client, w.payload(1))
    qc = open_panel(app, w, 4)
    assert reason(qc, chat_by_external(w, 1).id) == f"User 1 is responsible for this client. {WATCH}"


def test_an_employee_without_a_role_is_told_so_and_who_can_give_one(
    app: Flask, client: Any, database_url: str, transport: RecordingTransport
):
    w = make_world(app, n_users=6, roles={1: ("seller", True)})
    with db.transaction() as s:
        extra_admin = s.get(Employee, w.emp(3))
        assert extra_admin is not None
        extra_admin.is_admin = True
        gone_admin = s.get(Employee, w.emp(4))
        assert gone_admin is not None
        gone_admin.is_admin, gone_admin.is_active = True, False  # an inactive admin cannot help
    w.post(client, w.payload(1))

    nobody = open_panel(app, w, 5).chats().get_json()
    assert nobody["chats"] == []
    assert nobody["access"] == {
        "has_role": False,
        "message": "You have no role on any channel, so no chats are shown to you. Ask an administrator of "
        "your CRM to give you one: User 0, User 3.",
    }
    # An administrator without a role can give themselves one.
    admin = open_panel(app, w, 0, admin=True).chats().get_json()["access"]
    assert admin["has_role"] is False and "As an administrator, you can give yourself one" in admin["message"]
    # With a role, nothing to say.
    assert open_panel(app, w, 1).chats().get_json()["access"] == {"has_role": True, "message": None}
