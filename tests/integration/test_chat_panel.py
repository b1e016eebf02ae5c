"""The chat panel's JSON API as each role uses it: what a sales rep, a head, quality control and an
employee without a role see, read, send and dismiss — and that the server refuses whatever the
role does not allow, whatever the page shows (product.md §1, §3, §5)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.support.chat_panel import (
    Panel,
    RecordingTransport,
    chat_by_external,
    deliveries,
    open_panel,
    outbound_texts,
)
from tests.support.conversations import World, make_world
from tests.support.factories import identity, session_token
from widget.db import db
from widget.models.conversations import Chat, Message

# User 0 installed (fallback); 1 and 2 sales reps getting new clients; 3 head; 4 quality control;
# 5 has no role on the channel.
ROLES = {1: ("seller", True), 2: ("seller", True), 3: ("head", False), 4: ("qc", False)}


@pytest.fixture
def transport(app: Flask) -> Iterator[RecordingTransport]:
    fake = RecordingTransport()
    app.extensions["widget"].transport = fake
    yield fake


@pytest.fixture
def world(app: Flask, client: Any, database_url: str, transport: RecordingTransport) -> World:
    return make_world(app, n_users=6, roles=ROLES, distribution="round_robin")


def unchanged(chat_id: int) -> tuple[Any, ...]:
    with db.transaction() as s:
        chat = s.get(Chat, chat_id)
        assert chat is not None
        n = len(list(s.execute(select(Message.id).where(Message.chat_id == chat_id)).scalars()))
        return (chat.assignment, chat.responsible_employee_id, chat.unanswered, chat.last_message_preview, n)


def test_each_role_sees_the_chats_its_role_allows(app: Flask, client: Any, world: World):
    w = world
    for n in (1, 2, 3, 4):  # round robin: 1 → rep 1, 2 → rep 2, 3 → rep 1, 4 → rep 2
        assert w.post(client, w.payload(n)).status_code == 200
    ids = {n: chat_by_external(w, n).id for n in (1, 2, 3, 4)}
    rep1, rep2 = open_panel(app, w, 1), open_panel(app, w, 2)
    head, qc, nobody = open_panel(app, w, 3), open_panel(app, w, 4), open_panel(app, w, 5)

    assert set(rep1.chat_ids()) == {ids[1], ids[3]}
    assert set(rep2.chat_ids()) == {ids[2], ids[4]}
    assert head.chat_ids() == [ids[4], ids[3], ids[2], ids[1]]  # most recent first
    assert set(qc.chat_ids()) == set(ids.values())
    assert nobody.chat_ids() == []

    listing = rep1.chats().get_json()
    first = next(c for c in listing["chats"] if c["id"] == ids[1])
    assert first["title"] == "Client 1" and first["channel"]["name"] == "Sales WhatsApp"
    assert first["counter"] == "red" and first["unanswered_count"] == 1 and first["write"]["allowed"] is True
    assert first["responsible"] == "User 1" and first["offered"] is False
    assert listing["totals"] == {"red": 2, "grey": 0, "capped": False}
    qc_row = qc.chats().get_json()["chats"][0]
    assert qc_row["counter"] == "grey" and qc_row["write"]["allowed"] is False


def test_history_opens_only_for_those_who_may_see_it(app: Flask, client: Any, world: World):
    w = world
    w.post(client, w.payload(1))
    w.post(client, w.payload(1, message_id="msg-1b", text="Are you there?"))
    chat_id = chat_by_external(w, 1).id  # rep 1's client
    rep1, rep2, head, qc, nobody = (open_panel(app, w, i) for i in (1, 2, 3, 4, 5))

    detail = rep1.chat(chat_id).get_json()
    assert [m["text"] for m in detail["messages"]] == ["Hello from client 1", "Are you there?"]
    assert detail["chat"]["unanswered_count"] == 2
    assert head.chat(chat_id).status_code == 200 and qc.chat(chat_id).status_code == 200
    for outsider in (rep2, nobody):
        refused = outsider.chat(chat_id)
        assert refused.status_code == 403 and "Client 1" not in refused.get_data(as_text=True)
        assert outsider.get(f"/api/chats/{chat_id}/messages").status_code == 403
    assert rep1.chat(999_999).status_code == 404


def test_a_rep_cannot_write_to_or_dismiss_another_reps_chat_by_id(app: Flask, client: Any, world: World):
    w = world
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id  # rep 1's
    before = unchanged(chat_id)
    rep2 = open_panel(app, w, 2)
    sent = rep2.send(chat_id, "Let me steal this client")
    assert sent.status_code == 403 and sent.get_json()["error"] == "forbidden"
    assert rep2.no_reply(chat_id).status_code == 403
    assert unchanged(chat_id) == before
    assert outbound_texts() == [] and deliveries() == []


def test_quality_control_reads_everything_and_can_send_nothing(app: Flask, client: Any, world: World):
    w = world
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id
    before = unchanged(chat_id)
    qc = open_panel(app, w, 4)
    detail = qc.chat(chat_id).get_json()
    assert detail["chat"]["write"] == {
        "allowed": False,
        "claims": False,
        "no_reply": False,
        "reason": "User 1 is responsible for this client. Quality control can read this chat but not write.",
    }
    assert qc.send(chat_id, "I am quality control").status_code == 403
    assert qc.no_reply(chat_id).status_code == 403
    assert unchanged(chat_id) == before and outbound_texts() == []


def test_no_role_gets_nothing_and_cannot_send(app: Flask, client: Any, world: World):
    w = world
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id
    nobody = open_panel(app, w, 5)
    assert nobody.chats().get_json()["totals"] == {"red": 0, "grey": 0, "capped": False}
    assert nobody.send(chat_id, "hello").status_code == 403
    assert nobody.no_reply(chat_id).status_code == 403
    assert outbound_texts() == []


def test_the_rep_answers_their_client_and_the_reply_is_delivered(
    app: Flask, client: Any, world: World, transport: RecordingTransport
):
    w = world
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id
    rep1 = open_panel(app, w, 1)
    sent = rep1.send(chat_id, "  Hello Client 1, how can I help?  ", idempotency_key="k-0000000001")
    assert sent.status_code == 201
    body = sent.get_json()
    assert body["message"]["text"] == "Hello Client 1, how can I help?"
    assert body["message"]["mine"] is True and body["message"]["author"] == "User 1"
    assert body["message"]["status"] == "sent"  # the job ran inline in tests
    assert body["chat"]["unanswered"] is False and body["chat"]["counter"] is None
    (out,) = transport.sent
    assert (out.chat_id, out.chat_type, out.message_id, out.author_name) == (
        "chat-1",
        "whatsapp",
        "k-0000000001",
        "User 1",
    )
    # The same key again (a double click, a retried request) stores nothing new.
    again = rep1.send(chat_id, "Hello Client 1, how can I help?", idempotency_key="k-0000000001")
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert outbound_texts() == ["Hello Client 1, how can I help?"] and len(transport.sent) == 1
    # The head may answer anyone's client.
    head = open_panel(app, w, 3)
    assert head.send(chat_id, "Head here, all good?").status_code == 201
    history = rep1.chat(chat_id).get_json()["messages"]
    assert [(m["author"], m["mine"]) for m in history[1:]] == [("User 1", True), ("User 3", False)]


def test_empty_or_too_long_replies_are_refused_and_nothing_is_stored(app: Flask, client: Any, world: World):
    w = world
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id
    rep1 = open_panel(app, w, 1)
    assert rep1.send(chat_id, "   ").status_code == 422
    assert rep1.send(chat_id, "x" * 4097).status_code == 422
    assert rep1.post(f"/api/chats/{chat_id}/messages", {"text": 5}).status_code == 400
    assert rep1.post(f"/api/chats/{chat_id}/messages", {"text": "hi", "idempotency_key": "bad key!"}).status_code == 400
    assert outbound_texts() == []


def test_no_reply_needed_clears_the_counter_until_the_client_writes_again(app: Flask, client: Any, world: World):
    w = world
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id
    rep1 = open_panel(app, w, 1)
    assert rep1.chats().get_json()["totals"]["red"] == 1
    done = rep1.no_reply(chat_id)
    assert done.status_code == 200 and done.get_json()["chat"]["counter"] is None
    assert rep1.chats().get_json()["totals"]["red"] == 0
    assert rep1.chat_ids(filter="unanswered") == []
    w.post(client, w.payload(1, message_id="msg-1c", text="One more thing"))
    row = rep1.chats().get_json()["chats"][0]
    assert (row["counter"], row["unanswered_count"]) == ("red", 1)
    assert rep1.chat_ids(filter="unanswered") == [chat_id]


def test_counters_red_for_own_grey_for_others_and_notify_heads_makes_all_red(
    app: Flask, client: Any, database_url: str, transport: RecordingTransport
):
    # Rep 1 gets every client in turn (the only eligible one); User 2 is a head.
    w = make_world(
        app, n_users=4, roles={1: ("seller", True), 2: ("head", False), 3: ("qc", False)}, distribution="round_robin"
    )
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id
    head = open_panel(app, w, 2)
    row = head.chats().get_json()
    assert row["chats"][0]["counter"] == "grey" and row["totals"] == {"red": 0, "grey": 1, "capped": False}
    assert open_panel(app, w, 1).chats().get_json()["totals"]["red"] == 1
    assert open_panel(app, w, 3).chats().get_json()["totals"] == {"red": 0, "grey": 1, "capped": False}

    from widget.models import AccountSettings

    with db.transaction() as s:
        settings = s.get(AccountSettings, w.account_id)
        assert settings is not None
        settings.notify_heads_all = True
    row = head.chats().get_json()
    assert row["chats"][0]["counter"] == "red" and row["totals"]["red"] == 1
    # Quality control stays grey: it cannot answer anyway.
    assert open_panel(app, w, 3).chat(chat_id).get_json()["chat"]["counter"] == "grey"


def test_first_to_answer_offers_new_clients_to_reps_and_the_loser_is_told(
    app: Flask, client: Any, database_url: str, transport: RecordingTransport
):
    w = make_world(
        app, n_users=5, roles={1: ("seller", True), 2: ("seller", True), 3: ("seller", False), 4: ("head", True)}
    )
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id
    rep1, rep2, rep3, head = (open_panel(app, w, i) for i in (1, 2, 3, 4))
    offer = rep1.chats().get_json()["chats"][0]
    assert offer["offered"] is True and offer["counter"] == "red" and offer["write"]["claims"] is True
    assert offer["responsible"] is None  # nobody's yet
    assert rep3.chat_ids() == []  # "Gets new clients" off: not offered

    assert rep2.send(chat_id, "Hi! I'm User 2.", expect_offer=True).status_code == 201
    lost = rep1.send(chat_id, "Hello from User 1", expect_offer=True)
    assert lost.status_code == 409
    assert lost.get_json()["message"] == "This chat was already taken by User 2. Your reply was not sent."
    assert lost.get_json()["taken_by"] == "User 2"
    # A head who answered the offer at the same moment is told too, although heads may write anywhere.
    late_head = head.send(chat_id, "Head answering the new client", expect_offer=True)
    assert late_head.status_code == 409 and late_head.get_json()["taken_by"] == "User 2"
    assert outbound_texts() == ["Hi! I'm User 2."] and transport.texts() == ["Hi! I'm User 2."]
    assert rep1.chat_ids() == []
    gone = rep1.chat(chat_id)
    assert gone.status_code == 403 and gone.get_json()["taken_by"] == "User 2"
    mine = rep2.chats().get_json()["chats"][0]
    assert (mine["offered"], mine["responsible"], mine["write"]["claims"]) == (False, "User 2", False)


def test_card_scope_shows_only_that_cards_chats(app: Flask, client: Any, world: World):
    w = world
    for n in (1, 2, 3):
        w.post(client, w.payload(n))
    one, two = chat_by_external(w, 1), chat_by_external(w, 2)
    # The same person writes on Telegram too: the lead card shows both of their chats.
    w.post(client, w.payload(9, chat_type="telegram", chat_id="tg-1", phone="+15550000001"))
    tg = next(c for c in _all_chats(w) if c.external_chat_id == "tg-1")
    assert one.crm_entity_id and one.crm_contact_id and tg.crm_contact_id == one.crm_contact_id
    head = open_panel(app, w, 3)
    lead_card = head.chat_ids(entity_type="lead", entity_id=one.crm_entity_id)
    assert set(lead_card) == {one.id, tg.id}
    assert set(head.chat_ids(entity_type="contact", entity_id=one.crm_contact_id)) == {one.id, tg.id}
    assert head.chat_ids(entity_type="deal", entity_id=one.crm_entity_id) == []  # a Kommo lead is not a deal
    # A rep sees only their own clients' chats, on a card as anywhere.
    rep2 = open_panel(app, w, 2)
    assert rep2.chat_ids(entity_type="lead", entity_id=one.crm_entity_id) == []
    assert rep2.chat_ids(entity_type="lead", entity_id=two.crm_entity_id) == [two.id]
    assert head.chats(entity_type="lead").status_code == 400
    assert head.chats(entity_type="company", entity_id="1").status_code == 400
    assert head.chats(entity_type="lead", entity_id="1; drop").status_code == 400
    page = head.page("/app/chats", entity_type="lead", entity_id=one.crm_entity_id)
    assert page.status_code == 200 and 'data-scope="card"' in page.get_data(as_text=True)


def _all_chats(w: World) -> list[Chat]:
    with db.transaction() as s:
        rows = list(s.execute(select(Chat).where(Chat.account_id == w.account_id)).scalars())
        s.expunge_all()
        return rows


def test_list_pages_with_a_cursor_and_unchanged_polls_cost_a_304(app: Flask, client: Any, world: World):
    w = world
    for n in range(1, 8):
        w.post(client, w.payload(n))
    head = open_panel(app, w, 3)
    first = head.chats(limit=3)
    body = first.get_json()
    assert len(body["chats"]) == 3 and body["next_cursor"]
    second = head.chats(limit=3, before=body["next_cursor"]).get_json()
    third = head.chats(limit=3, before=second["next_cursor"]).get_json()
    ids = [c["id"] for c in body["chats"] + second["chats"] + third["chats"]]
    assert len(ids) == len(set(ids)) == 7 and third["next_cursor"] is None
    assert head.chats(before="yesterday").status_code == 400
    assert head.chats(limit=0).status_code == 400

    etag = first.headers["ETag"]
    again = head.client.get("/api/chats", query_string={"limit": 3}, headers=head.headers(**{"If-None-Match": etag}))
    assert again.status_code == 304 and again.get_data() == b""
    w.post(client, w.payload(8))
    changed = head.client.get("/api/chats", query_string={"limit": 3}, headers=head.headers(**{"If-None-Match": etag}))
    assert changed.status_code == 200 and changed.get_json()["chats"][0]["title"] == "Client 8"
    # An empty tag (werkzeug reads W/"" as no tag at all) matches nothing: the list, not a 500.
    empty = head.client.get("/api/chats", query_string={"limit": 3}, headers=head.headers(**{"If-None-Match": 'W/""'}))
    assert empty.status_code == 200 and empty.get_json()["chats"]


def test_a_poll_with_empty_or_odd_etags_gets_the_list(app: Flask, client: Any, world: World):
    """Browsers and proxies send ETags we never made (``W/""``, ``*``-less garbage); the list answers."""
    w = world
    w.post(client, w.payload(1))
    head = open_panel(app, w, 3)
    for odd in ('W/""', '""', 'W/"", "x"', '"nope"'):
        answer = head.client.get("/api/chats", headers=head.headers(**{"If-None-Match": odd}))
        assert answer.status_code == 200, odd
        assert [c["title"] for c in answer.get_json()["chats"]] == ["Client 1"]


def test_every_route_is_closed_to_another_account_and_without_a_session(
    app: Flask, client: Any, world: World, transport: RecordingTransport
):
    w = world
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id
    other = make_world(app, n_users=6, roles=ROLES, external_id="2002")
    app.extensions["widget"].transport = transport
    other_head = open_panel(app, other, 3)
    before = unchanged(chat_id)
    assert other_head.chat_ids() == []
    assert other_head.chat(chat_id).status_code == 404
    assert other_head.get(f"/api/chats/{chat_id}/messages").status_code == 404
    assert other_head.send(chat_id, "cross-account").status_code == 404
    assert other_head.no_reply(chat_id).status_code == 404
    page = other_head.page(f"/app/chats/{chat_id}")
    assert page.status_code == 200 and "Client 1" not in page.get_data(as_text=True)
    assert unchanged(chat_id) == before and outbound_texts() == []

    rep1 = open_panel(app, w, 1)
    assert rep1.send(chat_id, "mine").status_code == 201
    (delivery,) = deliveries()
    assert other_head.post(f"/api/messages/{delivery.message_id}/retry").status_code == 404

    anonymous = Panel(app.test_client(), token="")
    assert anonymous.chats().status_code == 401
    assert anonymous.chat(chat_id).status_code == 401
    assert client.post(f"/api/chats/{chat_id}/messages", json={"text": "x"}).status_code in (400, 401)
    # Without the CSRF token a POST is refused even with a valid session.
    no_csrf = Panel(rep1.client, rep1.token)
    assert no_csrf.send(chat_id, "forged").status_code == 400
    assert outbound_texts() == ["mine"]


def test_an_uninstalled_account_refuses_the_panel(app: Flask, client: Any, world: World):
    w = world
    w.post(client, w.payload(1))
    rep1 = open_panel(app, w, 1)
    from widget.models import Account

    with db.transaction() as s:
        account = s.get(Account, w.account_id)
        assert account is not None
        account.status = "uninstalled"
    assert rep1.chats().status_code == 403
    assert rep1.send(chat_by_external(w, 1).id, "hello").status_code == 403
    assert outbound_texts() == []


def test_a_user_not_synced_yet_sees_a_hint_and_nothing_else(app: Flask, client: Any, world: World):
    w = world
    w.post(client, w.payload(1))
    stranger = Panel(app.test_client(), session_token(app, identity(w.account_id, user="999", admin=False)))
    page = stranger.page()
    assert page.status_code == 200 and 'data-testid="not-set-up"' in page.get_data(as_text=True)
    assert stranger.chat_ids() == []
    assert stranger.send(chat_by_external(w, 1).id, "hi").status_code == 403
    assert stranger.chat(chat_by_external(w, 1).id).status_code == 403


def test_the_page_embeds_the_first_data_and_opens_a_chat_by_link(app: Flask, client: Any, world: World):
    w = world
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id
    rep1 = open_panel(app, w, 1)
    page = rep1.page(f"/app/chats/{chat_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Hello from client 1" in html
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors http://localhost:5001" in csp and "script-src 'self'" in csp
    assert "<script>" not in html  # no inline script (CSP)
    rep2 = open_panel(app, w, 2)
    hidden = rep2.page(f"/app/chats/{chat_id}").get_data(as_text=True)
    assert "Hello from client 1" not in hidden and "You cannot see this chat" in hidden


def test_the_kommo_card_launch_lands_on_that_cards_chats(app: Flask, client: Any, world: World):
    from urllib.parse import parse_qs, urlsplit

    from tests.support.factories import launch_token

    lt = launch_token(app, identity(world.account_id, user="101", admin=False))
    hop = client.get("/app/launch", query_string={"lt": lt, "next": "chats", "entity_type": "lead", "entity_id": "77"})
    assert hop.status_code == 302
    target = urlsplit(hop.headers["Location"])
    query = parse_qs(target.query)
    assert target.path == "/app/chats" and query["entity_type"] == ["lead"] and query["entity_id"] == ["77"]
    page = client.get(hop.headers["Location"])
    assert page.status_code == 200 and 'data-scope="card"' in page.get_data(as_text=True)
    # An admin opening the left-menu page (Kommo widget_page) gets the global panel.
    lt = launch_token(app, identity(world.account_id, user="100", admin=True))
    hop = client.get("/app/launch", query_string={"lt": lt, "next": "chats"})
    assert urlsplit(hop.headers["Location"]).path == "/app/chats"


@pytest.mark.parametrize("notify_heads", [False, True])
def test_the_header_counters_agree_with_every_chats_own_counter(
    app: Flask, client: Any, database_url: str, transport: RecordingTransport, notify_heads: bool
):
    w = make_world(
        app,
        n_users=6,
        roles={1: ("seller", True), 2: ("seller", True), 3: ("head", True), 4: ("qc", False)},
        notify_heads_all=notify_heads,
    )
    for n in range(1, 8):
        w.post(client, w.payload(n))
    ids = {n: chat_by_external(w, n).id for n in range(1, 8)}
    # Every state a chat can be in: offered (1), a rep's (2), the head's own (3), nobody eligible
    # (4), not resolved by the CRM yet (5), the fallback user's (6), answered (7).
    states = {
        2: {"assignment": "assigned", "responsible_employee_id": w.emp(1)},
        3: {"assignment": "assigned", "responsible_employee_id": w.emp(3)},
        4: {"assignment": "unassigned", "responsible_employee_id": w.emp(0)},
        5: {"assignment": "resolving", "responsible_employee_id": None},
        6: {"assignment": "assigned", "responsible_employee_id": w.emp(0)},
        7: {"assignment": "assigned", "responsible_employee_id": w.emp(2), "unanswered": False},
    }
    from sqlalchemy import delete, update

    from widget.models.conversations import ChatOffer

    with db.transaction() as s:
        for n, values in states.items():
            s.execute(delete(ChatOffer).where(ChatOffer.chat_id == ids[n]))
            s.execute(update(Chat).where(Chat.id == ids[n]).values(**values))
    seen: dict[int, tuple[int, int]] = {}
    for index in range(6):
        body = open_panel(app, w, index).chats().get_json()
        marks = [c["counter"] for c in body["chats"]]
        assert body["totals"] == {"red": marks.count("red"), "grey": marks.count("grey"), "capped": False}
        seen[index] = (marks.count("red"), marks.count("grey"))
    # What each should see: reps their offer and own chats; the head red for their own, the offer
    # made to them, and what nobody else answers (all red with "notify heads"); QC only grey.
    assert seen[1] == (2, 0) and seen[2] == (1, 0)
    assert seen[3] == ((6, 0) if notify_heads else (4, 2))
    assert seen[4] == (0, 6) and seen[5] == (0, 0) and seen[0] == (0, 0)


def test_only_a_head_may_dismiss_a_new_client_offered_to_the_first_who_answers(
    app: Flask, client: Any, database_url: str, transport: RecordingTransport
):
    w = make_world(app, n_users=4, roles={1: ("seller", True), 2: ("seller", True), 3: ("head", False)})
    w.post(client, w.payload(1))
    chat_id = chat_by_external(w, 1).id
    rep1, head = open_panel(app, w, 1), open_panel(app, w, 3)
    assert rep1.chat(chat_id).get_json()["chat"]["write"]["no_reply"] is False
    refused = rep1.no_reply(chat_id)
    assert refused.status_code == 403 and "only a head" in refused.get_json()["message"]
    assert open_panel(app, w, 2).chats().get_json()["totals"]["red"] == 1  # still waiting for everyone
    assert head.chat(chat_id).get_json()["chat"]["write"]["no_reply"] is True
    assert head.no_reply(chat_id).status_code == 200
    after = chat_by_external(w, 1)
    assert (after.unanswered, after.assignment) == (False, "offered")  # dismissed, not taken
