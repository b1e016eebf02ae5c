"""The chat list's change stamp: an unchanged poll is a 304 that never runs the list query, and
every write that can change what some employee's list shows raises the stamp in its own
transaction — so a poll never keeps a stale list (product.md §5)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from tests.support.chat_panel import RecordingTransport, chat_by_external, open_panel
from tests.support.conversations import World, make_world
from tests.support.factories import seed_crm, small_snapshot
from tests.support.jobs import jobs_of
from widget.db import db
from widget.domain.ports import CONTACT
from widget.domain.responsibility import EntityState
from widget.domain.settings import AdvancedSetup, ChannelSetup, RoleChoice
from widget.models import AccountSettings, Channel, ChannelRole, Employee
from widget.models._base import utcnow
from widget.models.conversations import Chat, ChatOffer, Client, Message
from widget.services.channels.manage import rename_channel
from widget.services.conversations.list_stamps import chat_list_stamp, note_chat_list_change
from widget.services.conversations.responsibility import follow_crm, linked_chats
from widget.services.settings.advanced import save_advanced
from widget.services.settings.integration import save_channel_setup

# User 0 installed (fallback); 1 and 2 sales reps getting new clients (first to answer); 3 head;
# 4 quality control; 5 has no role.
ROLES = {1: ("seller", True), 2: ("seller", True), 3: ("head", False), 4: ("qc", False)}
# What a chat list shows is read from these tables (chat_list.rows.build_rows, viewer_for, chat_list.counters.totals).
LIST_TABLES = (Chat, ChatOffer, Message, Client, Channel, Employee, ChannelRole, AccountSettings)


@pytest.fixture
def world(app: Flask, client: Any, database_url: str) -> World:
    app.extensions["widget"].transport = RecordingTransport()
    return make_world(app, n_users=6, roles=ROLES, distribution="first_reply")


def stamp(w: World) -> int:
    with db.session() as s:
        return chat_list_stamp(s, w.account_id)


@pytest.fixture
def unannounced() -> Iterator[list[str]]:
    """Every committed transaction that wrote a table the chat list reads without noting the
    change: the writes a poll would never learn about. Filled while the test runs."""
    found: list[str] = []
    wrote_key = "test_wrote_list_tables"

    def on_execute(state: Any) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            table = getattr(state.statement, "table", None)
            if table is not None and table.name in {m.__tablename__ for m in LIST_TABLES}:
                if table.name == "messages" and state.is_update:
                    return  # a reply's delivery status: the open chat shows it, the list does not
                state.session.info.setdefault(wrote_key, set()).add(table.name)

    def before_commit(session: Session) -> None:
        pending = [o for o in (*session.new, *session.dirty, *session.deleted) if isinstance(o, LIST_TABLES)]
        touched = set(session.info.pop(wrote_key, set()))
        touched |= {
            type(o).__tablename__
            for o in pending
            if o in session.new or (session.is_modified(o) and not isinstance(o, Message))
        }
        if touched and not session.info.get("chat_list_changed"):
            found.append(", ".join(sorted(touched)))

    def forget(session: Session, transaction: Any) -> None:
        if transaction.parent is None:
            session.info.pop(wrote_key, None)

    event.listen(Session, "do_orm_execute", on_execute)
    event.listen(Session, "before_commit", before_commit, insert=True)  # before the stamp's own hook
    event.listen(Session, "after_transaction_end", forget)
    try:
        yield found
    finally:
        event.remove(Session, "do_orm_execute", on_execute)
        event.remove(Session, "before_commit", before_commit)
        event.remove(Session, "after_transaction_end", forget)


def poll(panel: Any, etag: str, **params: Any) -> Any:
    return panel.client.get("/api/chats", query_string=params, headers=panel.headers(**{"If-None-Match": etag}))


def test_an_unchanged_poll_is_a_304_without_the_list_query(app: Flask, client: Any, world: World):
    w = world
    for n in (1, 2, 3):
        assert w.post(client, w.payload(n)).status_code == 200
    head = open_panel(app, w, 3)
    first = head.chats()
    assert first.status_code == 200 and len(first.get_json()["chats"]) == 3
    statements: list[str] = []
    record = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        again = poll(head, first.headers["ETag"])
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert again.status_code == 304 and again.get_data() == b""
    assert not [s for s in statements if "FROM chats" in s or "chat_offers" in s], statements
    assert any("chat_list_stamps" in s for s in statements)

    # The same ETag is no good for another page, another filter, or another employee.
    assert poll(head, first.headers["ETag"], limit=2).status_code == 200
    assert poll(head, first.headers["ETag"], filter="unanswered").status_code == 200
    rep = open_panel(app, w, 1)
    assert poll(rep, first.headers["ETag"]).status_code == 200


def test_an_empty_or_malformed_etag_gets_the_list(app: Flask, client: Any, world: World):
    world.post(client, world.payload(1))
    head = open_panel(app, world, 3)
    for etag in ('W/""', '""', "*", "garbage"):
        answer = poll(head, etag)
        assert answer.status_code == 200 and len(answer.get_json()["chats"]) == 1, etag


def test_the_page_starts_from_the_apis_etag(app: Flask, client: Any, world: World):
    w = world
    w.post(client, w.payload(1))
    head = open_panel(app, w, 3)
    page = head.page().get_data(as_text=True)
    assert head.chats().headers["ETag"].strip('"') in page  # so the first poll is a 304


def test_a_change_that_leaves_the_list_as_it_was_is_still_a_304_with_a_fresh_etag(
    app: Flask, client: Any, world: World
):
    w = world
    w.post(client, w.payload(1))
    nobody = open_panel(app, w, 5)  # no role: an empty list whatever the channel does
    first = nobody.chats()
    w.post(client, w.payload(2))
    again = poll(nobody, first.headers["ETag"])
    assert again.status_code == 304
    assert again.headers["ETag"] != first.headers["ETag"]  # the client keeps this one: cheap again
    assert poll(nobody, again.headers["ETag"]).status_code == 304


def test_every_write_path_raises_the_stamp_and_the_poll_reloads(
    app: Flask, client: Any, world: World, unannounced: list[str]
):
    """Each step is a write the chat panel must see; after each, a poll with the previous ETag
    reloads (stamp raised) and the guard saw no write to the list's tables left unannounced."""
    w = world
    head, rep1 = open_panel(app, w, 3), open_panel(app, w, 1)
    etags = {"head": head.chats().headers["ETag"], "rep": rep1.chats().headers["ETag"]}

    def step(name: str, write: Any) -> None:
        before = stamp(w)
        write()
        assert stamp(w) > before, f"{name}: the stamp did not move"
        for who, panel in (("head", head), ("rep", rep1)):
            answer = poll(panel, etags[who])
            assert answer.status_code in (200, 304), name
            etags[who] = answer.headers["ETag"]
        assert unannounced == [], f"{name}: {unannounced}"

    step("a new client writes (chat, message, offers)", lambda: w.post(client, w.payload(1)))
    chat_id = chat_by_external(w, 1).id
    step("the same client writes again", lambda: w.post(client, w.payload(1, message_id="msg-1b")))
    step("a rep's first answer claims the chat", lambda: rep1.send(chat_id, "Hi, I am yours"))
    step("the client writes back", lambda: w.post(client, w.payload(1, message_id="msg-1c")))
    step("the head marks it as not needing a reply", lambda: head.no_reply(chat_id))
    step("the channel is renamed", lambda: rename_channel(db, w.account_id, w.channel_id, "Support WhatsApp"))
    step(
        "'notify heads about all messages' is turned on",
        lambda: save_advanced(db, w.account_id, AdvancedSetup(None, True, None)),
    )

    def roles() -> None:
        setup = ChannelSetup("lead", "1", "11", "first_reply", {w.emp(5): RoleChoice("head", False)})
        save_channel_setup(db, w.account_id, w.channel_id, setup, w.crm_users[w.emp(0)], jobs=jobs_of(w))

    step("an employee gets a role", roles)

    def rename_user() -> None:
        snap = small_snapshot(6)
        users = tuple(replace(u, name="Renamed") if u.name == "User 1" else u for u in snap.users)
        seed_crm(w.account_id, replace(snap, users=users))

    step("'Refresh CRM data' renames an employee", rename_user)

    def crm_moves_the_client() -> None:
        with db.session() as s:
            chat = s.get(Chat, chat_id)
            assert chat is not None and chat.crm_contact_id
            (link,) = linked_chats(s, w.account_id, {CONTACT: {chat.crm_contact_id}})
        states = {ref: EntityState(w.crm_users[w.emp(2)], False) for ref in link.refs}
        assert follow_crm(db, w.account_id, link, states, utcnow())

    step("the CRM names another responsible", crm_moves_the_client)

    rows = head.chats().get_json()["chats"]
    assert rows[0]["channel"]["name"] == "Support WhatsApp"


def test_a_rolled_back_write_does_not_raise_the_stamp(world: World):
    before = stamp(world)
    with pytest.raises(RuntimeError):
        with db.transaction() as s:
            note_chat_list_change(s, world.account_id)
            s.get(Chat, 1)
            raise RuntimeError("the write failed")
    assert stamp(world) == before
    with db.transaction() as s:
        note_chat_list_change(s, world.account_id)
    assert stamp(world) == before + 1


def test_concurrent_writers_never_lose_a_raise(world: World):
    """``stamp = stamp + 1`` under the account row's lock: N writers at once, N raises."""
    writers, each = 4, 10
    before = stamp(world)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(each):
                with db.transaction() as s:
                    note_chat_list_change(s, world.account_id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stamp(world) == before + writers * each


def test_stamps_are_per_account(app: Flask, client: Any, world: World):
    other = make_world(app, n_users=6, roles=ROLES, external_id="2002")
    before = stamp(other)
    world.post(client, world.payload(1))
    assert stamp(other) == before
    with db.session() as s:
        assert s.execute(select(Chat.id).where(Chat.account_id == other.account_id)).first() is None
