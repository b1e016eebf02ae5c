"""First to answer, raced over real HTTP: twenty sales reps press "Send" on the same new client at
the same instant. Exactly one reply is stored and sent; the nineteen others get 409 with the
winner's name, and their texts go nowhere (product.md §3)."""

from __future__ import annotations

import threading
from typing import Any

import requests
from flask import Flask

from tests.support.chat_panel import RecordingTransport, chat_by_external, open_panel, outbound_texts
from tests.support.conversations import make_world
from tests.support.servers import live_server

REPS = 20


def test_twenty_reps_answer_at_once_one_wins_the_others_are_told_who(app: Flask, client: Any, database_url: str):
    transport = RecordingTransport()
    w = make_world(app, n_users=REPS + 1, roles={i: ("seller", True) for i in range(1, REPS + 1)})
    app.extensions["widget"].transport = transport
    assert w.post(client, w.payload(1)).status_code == 200
    chat_id = chat_by_external(w, 1).id
    panels = {i: open_panel(app, w, i) for i in range(1, REPS + 1)}
    assert all(chat_id in p.chat_ids() for p in panels.values())  # offered to all twenty

    barrier = threading.Barrier(REPS)
    answers: dict[int, requests.Response] = {}

    with live_server(app) as server:

        def answer(i: int) -> None:
            panel = panels[i]
            with requests.Session() as http:
                barrier.wait()
                answers[i] = http.post(
                    f"{server.url}/api/chats/{chat_id}/messages",
                    json={"text": f"Hello, this is User {i}", "expect_offer": True},
                    headers=panel.headers(),
                    timeout=60,
                )

        threads = [threading.Thread(target=answer, args=(i,)) for i in panels]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    winners = [i for i, r in answers.items() if r.status_code == 201]
    assert len(winners) == 1, {i: r.status_code for i, r in answers.items()}
    (winner,) = winners
    losers = [r for i, r in answers.items() if i != winner]
    assert {r.status_code for r in losers} == {409}
    assert {r.json()["message"] for r in losers} == {
        f"This chat was already taken by User {winner}. Your reply was not sent."
    }
    assert outbound_texts() == [f"Hello, this is User {winner}"]
    assert transport.texts() == [f"Hello, this is User {winner}"]
    # From now on only the winner sees the chat (and the CRM follows: they are responsible).
    assert [i for i, p in panels.items() if chat_id in p.chat_ids()] == [winner]
    assert w.crm.contacts[chat_by_external(w, 1).crm_contact_id or ""].responsible == str(100 + winner)
