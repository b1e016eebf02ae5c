""" "No reply needed" on a new client still on offer (first to answer), through the services the chat
panel calls: only a head may press it, and it takes nobody's client — the offer stays open, and the
first rep who answers still becomes the responsible (product.md §3, §5)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select

from tests.support.conversations import make_world
from tests.support.jobs import jobs_of
from widget.db import db
from widget.domain.visibility import ASSIGNED, OFFERED
from widget.models.conversations import Chat, ChatOffer
from widget.services.conversations import replies
from widget.services.conversations.chat_list.page import visible_page

REPS_AND_HEAD = {1: ("seller", True), 2: ("seller", True), 3: ("head", False)}


def chat_state(chat_id: int) -> tuple[str, bool, int | None, set[int]]:
    with db.transaction() as s:
        chat = s.get(Chat, chat_id)
        assert chat is not None
        offered = set(s.execute(select(ChatOffer.employee_id).where(ChatOffer.chat_id == chat_id)).scalars())
        return chat.assignment, chat.unanswered, chat.claimed_by_employee_id, offered


def red_for(account_id: int, employee_id: int) -> set[int]:
    with db.transaction() as s:
        return {i.chat_id for i in visible_page(s, account_id, employee_id) if i.counter and i.counter.value == "red"}


def test_a_rep_on_offer_is_refused_and_nothing_changes(app: Flask, client: Any, database_url: str):
    w = make_world(app, roles=REPS_AND_HEAD)
    w.post(client, w.payload(1))
    [chat_id] = red_for(w.account_id, w.emp(1))
    before = chat_state(chat_id)

    refused = replies.mark_no_reply(db, w.account_id, chat_id, w.emp(1))

    assert (refused.status, refused.detail) == (replies.FORBIDDEN, replies.OFFER_DISMISS_TEXT)
    assert chat_state(chat_id) == before == (OFFERED, True, None, {w.emp(1), w.emp(2)})
    assert chat_id in red_for(w.account_id, w.emp(2))  # still waiting for every rep it was offered to


def test_a_heads_dismissal_takes_nobodys_client_and_the_first_reply_still_claims_it(
    app: Flask, client: Any, database_url: str
):
    w = make_world(app, roles=REPS_AND_HEAD)
    w.post(client, w.payload(1))
    [chat_id] = red_for(w.account_id, w.emp(1))

    assert replies.mark_no_reply(db, w.account_id, chat_id, w.emp(3)).status == replies.DONE

    assert chat_state(chat_id) == (OFFERED, False, None, {w.emp(1), w.emp(2)})  # dismissed, not taken
    assert not red_for(w.account_id, w.emp(1)) and not red_for(w.account_id, w.emp(2))
    assert w.crm.contacts[next(iter(w.crm.contacts))].responsible == "100"  # still the fallback admin

    w.post(client, w.payload(1, message_id="msg-1-again", text="Anyone there?"))
    assert chat_id in red_for(w.account_id, w.emp(1)) and chat_id in red_for(w.account_id, w.emp(2))

    won = replies.send_reply(db, jobs_of(w), w.account_id, chat_id, w.emp(2), "Hello, I'm User 2", expect_offer=True)
    lost = replies.send_reply(db, jobs_of(w), w.account_id, chat_id, w.emp(1), "Hello from User 1", expect_offer=True)
    assert (won.status, lost.status, lost.taken_by) == (replies.SENT, replies.TAKEN, "User 2")
    assert chat_state(chat_id) == (ASSIGNED, False, w.emp(2), set())
    assert w.transport.texts() == ["Hello, I'm User 2"]
    assert w.crm.contacts[next(iter(w.crm.contacts))].responsible == "102"
