"""A new client's chat nobody has answered follows who is eligible now (product.md §3): a settings
save or a CRM users refresh re-offers or re-assigns it, atomically with the change. Runs on SQLite
and on PostgreSQL (``TEST_DATABASE_URL``), for both CRMs."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.support.conversations import World, bitrix24_snapshot, make_world
from tests.support.factories import seed_crm, small_snapshot
from tests.support.jobs import jobs_of
from widget.db import db
from widget.domain.settings import ChannelSetup, RoleChoice
from widget.domain.visibility import ASSIGNED, OFFERED, UNASSIGNED, Counter
from widget.models.conversations import Chat, ChatOffer
from widget.services import outbox
from widget.services.conversations.chat_list.page import visible_page
from widget.services.conversations.replies import FORBIDDEN, SENT, send_reply
from widget.services.settings.integration import save_channel_setup

CRMS = {
    "kommo": {"crm": "kommo", "entity": "lead", "pipeline_id": "1", "stage_id": "11"},
    "bitrix24": {"crm": "bitrix24", "entity": "deal", "pipeline_id": "0", "stage_id": "NEW"},
}


def chat(n: int = 1) -> Chat:
    with db.transaction() as s:
        row = s.execute(select(Chat).where(Chat.external_chat_id == f"chat-{n}")).scalar_one()
        s.expunge(row)
        return row


def offers(chat_id: int) -> set[int]:
    with db.transaction() as s:
        return set(s.execute(select(ChatOffer.employee_id).where(ChatOffer.chat_id == chat_id)).scalars())


def visible(w: World, emp: int) -> dict[int, Counter | None]:
    with db.transaction() as s:
        return {i.chat_id: i.counter for i in visible_page(s, w.account_id, emp)}


def save_roles(w: World, mode: str, crm: str, **roles: tuple[str | None, bool]) -> None:
    """The admin saves the channel with these roles (``u1=("seller", False)``: user 1)."""
    cfg = CRMS[crm]
    setup = ChannelSetup(
        cfg["entity"],
        cfg["pipeline_id"],
        cfg["stage_id"],
        mode,
        {w.emp(int(k[1:])): RoleChoice(role, gets) for k, (role, gets) in roles.items()},
    )
    save_channel_setup(db, w.account_id, w.channel_id, setup, "100", jobs=jobs_of(w))


def world(app: Flask, crm: str, mode: str) -> World:
    cfg = CRMS[crm]
    return make_world(
        app,
        crm=crm,
        n_users=5,
        roles={1: ("seller", True), 2: ("seller", True), 3: ("head", False), 4: ("seller", False)},
        distribution=mode,
        entity=cfg["entity"],
        pipeline_id=cfg["pipeline_id"],
        stage_id=cfg["stage_id"],
    )


@pytest.mark.parametrize("crm", ["kommo", "bitrix24"])
def test_offer_whose_reps_all_switched_off_goes_to_those_eligible_now(
    app: Flask, client: Any, database_url: str, crm: str
):
    w = world(app, crm, "first_reply")
    w.post(client, w.payload(1))
    one = chat()
    assert one.assignment == OFFERED and offers(one.id) == {w.emp(1), w.emp(2)}
    save_roles(w, "first_reply", crm, u1=("seller", False), u2=("seller", False), u4=("seller", True))
    assert offers(one.id) == {w.emp(4)} and chat().assignment == OFFERED
    # The chat panel follows: the new rep sees it red, the old ones no longer see it.
    assert visible(w, w.emp(4))[one.id] is Counter.RED
    assert one.id not in visible(w, w.emp(1)) and one.id not in visible(w, w.emp(2))
    assert send_reply(db, jobs_of(w), w.account_id, one.id, w.emp(1), "too late").status == FORBIDDEN
    assert send_reply(db, jobs_of(w), w.account_id, one.id, w.emp(4), "hello").status == SENT
    claimed = chat()
    assert (claimed.assignment, claimed.responsible_employee_id) == (ASSIGNED, w.emp(4))
    entity = w.crm.entity_for_contact(claimed.crm_contact_id or "")
    assert entity.responsible == w.crm_users[w.emp(4)]


def test_a_chat_someone_already_answered_is_left_alone(app: Flask, client: Any, database_url: str):
    w = world(app, "kommo", "first_reply")
    w.post(client, w.payload(1))
    w.post(client, w.payload(2))
    assert send_reply(db, jobs_of(w), w.account_id, chat(1).id, w.emp(1), "mine").status == SENT
    save_roles(w, "first_reply", "kommo", u1=("seller", False), u2=("seller", False), u4=("seller", True))
    assert chat(1).responsible_employee_id == w.emp(1) and chat(1).assignment == ASSIGNED
    assert offers(chat(2).id) == {w.emp(4)}


def test_reps_leaving_the_crm_leave_the_chat_to_the_heads_and_coming_back_gets_it_offered(
    app: Flask, client: Any, database_url: str
):
    w = world(app, "kommo", "first_reply")
    w.post(client, w.payload(1))
    one = chat()
    gone = small_snapshot(5)
    gone = replace(gone, users=tuple(replace(u, is_active=u.crm_user_id not in ("101", "102")) for u in gone.users))
    seed_crm(w.account_id, gone)  # "Refresh CRM data": users 1 and 2 are deactivated
    assert chat().assignment == UNASSIGNED and not offers(one.id)
    assert chat().responsible_employee_id == w.emp(0)  # the fallback: the admin who installed
    assert visible(w, w.emp(3))[one.id] is Counter.RED
    seed_crm(w.account_id, small_snapshot(5))  # they are back
    assert chat().assignment == OFFERED and offers(one.id) == {w.emp(1), w.emp(2)}
    assert one.id in visible(w, w.emp(1))


@pytest.mark.parametrize("crm", ["kommo", "bitrix24"])
def test_in_turn_chat_of_a_rep_who_became_ineligible_goes_to_the_next_in_turn(
    app: Flask, client: Any, database_url: str, crm: str
):
    w = world(app, crm, "round_robin")
    w.post(client, w.payload(1))
    one = chat()
    assert one.responsible_employee_id == w.emp(1)
    contact = one.crm_contact_id or ""
    snap = small_snapshot(5) if crm == "kommo" else bitrix24_snapshot(5)
    snap = replace(snap, users=tuple(replace(u, is_active=u.crm_user_id != "101") for u in snap.users))
    seed_crm(w.account_id, snap)  # user 1 turned inactive in the CRM
    moved = chat()
    assert (moved.assignment, moved.responsible_employee_id) == (ASSIGNED, w.emp(2))
    assert one.id in visible(w, w.emp(2)) and one.id not in visible(w, w.emp(1))
    outbox.sweep(db, app.extensions["widget"])  # the CRM learns the new responsible
    assert w.crm.contacts[contact].responsible == "102"
    assert w.crm.entity_for_contact(contact).responsible == "102"
    # The turn moved on: the next client goes to the rep who has waited longest (user 2 just got one).
    save_roles(w, "round_robin", crm, u4=("seller", True))
    w.post(client, w.payload(2))
    assert chat(2).responsible_employee_id == w.emp(4)


def test_in_turn_chat_given_in_the_crm_to_someone_never_eligible_stays(app: Flask, client: Any, database_url: str):
    w = world(app, "kommo", "round_robin")
    w.post(client, w.payload(1))
    with db.transaction() as s:  # the CRM made the head responsible (responsibility sync)
        row = s.get(Chat, chat().id)
        assert row is not None
        row.responsible_employee_id, row.crm_responsible_user_id = w.emp(3), "103"
    save_roles(w, "round_robin", "kommo", u1=("seller", False))
    assert chat().responsible_employee_id == w.emp(3)


def test_reply_racing_the_save_that_switches_the_rep_off_is_one_or_the_other(
    app: Flask, client: Any, database_url: str
):
    """Rep 1 answers at the instant the admin switches reps 1 and 2 off: either the reply claimed
    the chat first (and it stays rep 1's), or the offer moved first (and the reply is refused)."""
    w = world(app, "kommo", "first_reply")
    for n in range(1, 6):
        save_roles(w, "first_reply", "kommo", u1=("seller", True), u2=("seller", True), u4=("seller", False))
        w.post(client, w.payload(n))
        assert offers(chat(n).id) == {w.emp(1), w.emp(2)}
        chat_id = chat(n).id
        go = threading.Barrier(2)
        outcome: dict[str, Any] = {}

        def reply(chat_id: int = chat_id, go: threading.Barrier = go, outcome: dict[str, Any] = outcome) -> None:
            with app.app_context():
                go.wait()
                outcome["reply"] = send_reply(db, jobs_of(w), w.account_id, chat_id, w.emp(1), "mine").status

        def save(go: threading.Barrier = go) -> None:
            with app.app_context():
                go.wait()
                save_roles(w, "first_reply", "kommo", u1=("seller", False), u2=("seller", False), u4=("seller", True))

        threads = [threading.Thread(target=reply), threading.Thread(target=save)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        row = chat(n)
        if outcome["reply"] == SENT:
            assert (row.assignment, row.responsible_employee_id) == (ASSIGNED, w.emp(1)) and not offers(row.id)
        else:
            assert outcome["reply"] == FORBIDDEN
            assert row.assignment == OFFERED and offers(row.id) == {w.emp(4)}
        with db.transaction() as s:  # put every chat out of the way of the next round
            for c in s.execute(select(Chat)).scalars():
                c.assignment, c.is_new_client = ASSIGNED, False
