"""New clients end to end with the fake CRM port: lookup, creation, distribution, claims, outages,
crashes. Jobs run inline (immediate queue) unless a test records the nudges itself."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.support.conversations import World, add_second_channel, make_world
from tests.support.crm_flows import capture_into
from tests.support.fake_crm import SimulatedCrash
from tests.support.jobs import jobs_of
from widget.db import db
from widget.domain.visibility import ASSIGNED, OFFERED, UNASSIGNED, Counter
from widget.models._base import utcnow
from widget.models.conversations import Chat, ChatOffer, CrmOperation, Message
from widget.services import outbox
from widget.services.conversations.chat_list.page import visible_page
from widget.services.conversations.claims import claim_chat
from widget.services.conversations.replies import SENT, TAKEN, send_reply

SELLERS = {1: ("seller", True), 2: ("seller", True), 3: ("head", False)}


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock(app: Flask) -> Iterator[Clock]:
    c = Clock()
    app.extensions["widget"].clock = c
    yield c


def the_chat(n: int = 1) -> Chat:
    with db.transaction() as s:
        chat = s.execute(select(Chat).where(Chat.external_chat_id == f"chat-{n}")).scalar_one()
        s.expunge(chat)
        return chat


def offers(chat_id: int) -> set[int]:
    with db.transaction() as s:
        return set(s.execute(select(ChatOffer.employee_id).where(ChatOffer.chat_id == chat_id)).scalars())


def ops(status: str | None = None) -> list[CrmOperation]:
    with db.transaction() as s:
        q = select(CrmOperation).order_by(CrmOperation.id)
        if status:
            q = q.where(CrmOperation.status == status)
        rows = list(s.execute(q).scalars())
        s.expunge_all()
        return rows


def visible(w: World, emp: int) -> dict[int, Counter | None]:
    with db.transaction() as s:
        return {i.chat_id: i.counter for i in visible_page(s, w.account_id, emp)}


def drain(app: Flask, clock: Clock, minutes: float = 20) -> None:
    """Let time pass and run the periodic sweep, as the worker would."""
    clock.advance(minutes=minutes)
    outbox.sweep(db, app.extensions["widget"])


# --- first to answer ------------------------------------------------------------------------------


def test_first_reply_offers_the_chat_and_creates_contact_and_lead(app: Flask, client: Any, database_url: str):
    w = make_world(app, roles=SELLERS, distribution="first_reply", pipeline_id="1", stage_id="11")
    assert w.post(client, w.payload(1)).status_code == 200
    chat = the_chat()
    assert chat.assignment == OFFERED and chat.is_new_client
    assert offers(chat.id) == {w.emp(1), w.emp(2)}
    # Until somebody answers, the CRM responsible is the fallback user (the installing admin).
    assert chat.responsible_employee_id == w.emp(0)
    lead = w.crm.entity_for_contact(chat.crm_contact_id or "")
    assert (lead.kind, lead.pipeline_id, lead.stage_id, lead.responsible) == ("lead", "1", "11", "100")
    assert w.crm.contacts[chat.crm_contact_id or ""].phone == "+15550000001"
    assert chat.id in visible(w, w.emp(1)) and chat.id in visible(w, w.emp(2))
    assert visible(w, w.emp(1))[chat.id] is Counter.RED
    assert visible(w, w.emp(3))[chat.id] is Counter.GREY  # the head sees it, someone else's to take
    assert all(o.status == "done" for o in ops())


def test_first_reply_claims_and_the_loser_is_told_who_took_it(app: Flask, client: Any, database_url: str):
    w = make_world(app, roles=SELLERS, distribution="first_reply")
    w.post(client, w.payload(1))
    chat = the_chat()
    won = send_reply(
        db, jobs_of(w), w.account_id, chat.id, w.emp(2), "Hi, I am Bob's colleague User 2", expect_offer=True
    )
    lost = send_reply(db, jobs_of(w), w.account_id, chat.id, w.emp(1), "Hi from User 1", expect_offer=True)
    assert won.status == SENT
    assert lost.status == TAKEN and "already taken by User 2" in lost.detail and lost.taken_by == "User 2"
    with db.transaction() as s:
        texts = list(s.execute(select(Message.text).where(Message.direction == "out")).scalars())
        delivery = s.execute(select(Message.delivery).where(Message.id == won.message_id)).scalar_one()
    assert texts == ["Hi, I am Bob's colleague User 2"]  # the loser's text was not stored
    assert w.transport.texts() == texts and delivery == "sent"  # ... nor sent; the winner's was
    chat = the_chat()
    assert (chat.assignment, chat.responsible_employee_id, chat.unanswered) == (ASSIGNED, w.emp(2), False)
    assert chat.id not in visible(w, w.emp(1)) and chat.id in visible(w, w.emp(2))
    # The CRM follows: contact and lead now belong to the winner.
    assert w.crm.contacts[chat.crm_contact_id or ""].responsible == "102"
    assert w.crm.entity_for_contact(chat.crm_contact_id or "").responsible == "102"


def test_kommo_incoming_lead_is_accepted_by_whoever_answers_first(app: Flask, client: Any, database_url: str):
    w = make_world(app, roles=SELLERS, distribution="first_reply", pipeline_id="1", stage_id="10")
    w.post(client, w.payload(1))
    chat = the_chat()
    assert chat.crm_incoming_uid is not None
    assert "create_incoming_lead" in w.crm.calls
    lead = w.crm.entity_for_contact(chat.crm_contact_id or "")
    assert lead.accepted_by is None
    assert send_reply(db, jobs_of(w), w.account_id, chat.id, w.emp(1), "Hello!").status == SENT
    assert lead.accepted_by == "101" and lead.responsible == "101"


def test_claim_race_twenty_threads_one_winner(app: Flask, client: Any, database_url: str):
    w = make_world(app, n_users=21, roles={i: ("seller", True) for i in range(1, 21)}, distribution="first_reply")
    w.post(client, w.payload(1))
    chat = the_chat()
    assert len(offers(chat.id)) == 20
    barrier = threading.Barrier(20)
    results: dict[int, Any] = {}

    def reply(i: int) -> None:
        barrier.wait()
        results[i] = send_reply(db, jobs_of(w), w.account_id, chat.id, w.emp(i), f"reply from {i}", expect_offer=True)

    threads = [threading.Thread(target=reply, args=(i,)) for i in range(1, 21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in results.items() if r.status == SENT]
    assert len(winners) == 1
    winner = winners[0]
    assert all(r.status == TAKEN and f"taken by User {winner}" in r.detail for i, r in results.items() if i != winner)
    with db.transaction() as s:
        assert s.execute(select(func.count()).select_from(Message).where(Message.direction == "out")).scalar() == 1
    assert w.transport.texts() == [f"reply from {winner}"]
    assert the_chat().responsible_employee_id == w.emp(winner)
    assert w.crm.contacts[the_chat().crm_contact_id or ""].responsible == w.crm_users[w.emp(winner)]


def test_claim_chat_primitive_has_exactly_one_winner(app: Flask, client: Any, database_url: str):
    w = make_world(app, n_users=21, roles={i: ("seller", True) for i in range(1, 21)}, distribution="first_reply")
    w.post(client, w.payload(1))
    chat_id = the_chat().id
    barrier = threading.Barrier(20)
    outcomes: list[Any] = []

    def claim(i: int) -> None:
        barrier.wait()
        with db.transaction() as s:
            outcomes.append(claim_chat(s, w.account_id, chat_id, w.emp(i)))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(1, 21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.won]
    assert len(winners) == 1 and len(outcomes) == 20
    assert {o.owner_employee_id for o in outcomes} == {winners[0].owner_employee_id}


# --- in turn --------------------------------------------------------------------------------------


def test_round_robin_gives_clients_in_turn_and_only_that_rep_sees_them(app: Flask, client: Any, database_url: str):
    w = make_world(app, roles={1: ("seller", True), 2: ("seller", True), 3: ("head", True)}, distribution="round_robin")
    for n in range(1, 7):
        assert w.post(client, w.payload(n)).status_code == 200
    owners = [the_chat(n).responsible_employee_id for n in range(1, 7)]
    assert owners == [w.emp(1), w.emp(2), w.emp(3)] * 2
    first = the_chat(1)
    assert first.assignment == ASSIGNED and not offers(first.id)
    assert w.crm.entity_for_contact(first.crm_contact_id or "").responsible == "101"
    assert set(visible(w, w.emp(1))) == {the_chat(1).id, the_chat(4).id}
    assert visible(w, w.emp(1))[first.id] is Counter.RED


def test_round_robin_skips_a_rep_who_turned_inactive(app: Flask, client: Any, database_url: str):
    from widget.models import Employee

    w = make_world(
        app, roles={1: ("seller", True), 2: ("seller", True), 3: ("seller", True)}, distribution="round_robin"
    )
    for n in range(1, 4):
        w.post(client, w.payload(n))
    with db.transaction() as s:
        emp = s.get(Employee, w.emp(2))
        assert emp is not None
        emp.is_active = False
    for n in range(4, 8):
        w.post(client, w.payload(n))
    owners = [the_chat(n).responsible_employee_id for n in range(4, 8)]
    assert owners == [w.emp(1), w.emp(3), w.emp(1), w.emp(3)]


# --- what gets created ----------------------------------------------------------------------------


def test_bitrix24_contact_and_deal_in_the_chosen_category(app: Flask, client: Any, database_url: str):
    w = make_world(app, crm="bitrix24", roles=SELLERS, entity="deal", pipeline_id="3", stage_id="C3:NEW")
    w.post(client, w.payload(1))
    chat = the_chat()
    deal = w.crm.entity_for_contact(chat.crm_contact_id or "")
    assert (deal.kind, deal.pipeline_id, deal.stage_id) == ("deal", "3", "C3:NEW")
    assert chat.crm_entity_kind == "deal"


def test_bitrix24_lead_without_contact(app: Flask, client: Any, database_url: str):
    w = make_world(app, crm="bitrix24", roles=SELLERS, entity="lead", pipeline_id="STATUS", stage_id="NEW")
    w.post(client, w.payload(1))
    chat = the_chat()
    assert chat.crm_contact_id is None and chat.crm_entity_kind == "lead"
    assert w.crm.created_contacts == 0 and w.crm.created_entities == 1
    assert w.crm.specs[0].phone == "+15550000001" and not w.crm.specs[0].with_contact


def test_vanished_pipeline_falls_back_to_main_first_stage_and_is_logged(
    app: Flask, client: Any, database_url: str, caplog: pytest.LogCaptureFixture
):
    w = make_world(app, roles=SELLERS, pipeline_id="77", stage_id="770")
    with caplog.at_level(logging.WARNING, logger="widget.services.conversations.distribution"):
        w.post(client, w.payload(1))
    lead = w.crm.entity_for_contact(the_chat().crm_contact_id or "")
    assert (lead.pipeline_id, lead.stage_id) == ("1", "11")
    assert any("77" in r.getMessage() for r in caplog.records)


# --- known clients and nobody eligible ------------------------------------------------------------


def test_known_client_goes_to_the_contacts_responsible_and_nothing_is_created(
    app: Flask, client: Any, database_url: str
):
    w = make_world(app, roles=SELLERS, distribution="round_robin")
    contact = w.crm.add_contact("+15550000001", responsible="102")
    w.post(client, w.payload(1))
    chat = the_chat()
    assert (chat.assignment, chat.responsible_employee_id, chat.crm_contact_id) == (ASSIGNED, w.emp(2), contact.id)
    assert not chat.is_new_client
    assert w.crm.created_contacts == 0 and w.crm.created_entities == 0
    assert chat.id in visible(w, w.emp(2)) and chat.id not in visible(w, w.emp(1))


def test_known_client_with_an_open_deal_follows_the_deals_responsible(app: Flask, client: Any, database_url: str):
    w = make_world(app, roles=SELLERS)
    contact = w.crm.add_contact("+15550000001", responsible="102")
    deal = w.crm.add_open_entity(contact.id, "lead", responsible="101")
    w.post(client, w.payload(1))
    chat = the_chat()
    assert (chat.responsible_employee_id, chat.crm_entity_id) == (w.emp(1), deal.id)


@pytest.mark.parametrize("mode", ["first_reply", "round_robin"])
def test_nobody_eligible_goes_to_the_fallback_user_and_the_heads(app: Flask, client: Any, database_url: str, mode: str):
    w = make_world(
        app,
        roles={1: ("seller", False), 2: ("seller", True), 3: ("head", False)},
        inactive=(2,),
        distribution=mode,
        fallback=3,
    )
    w.post(client, w.payload(1))
    chat = the_chat()
    assert (chat.assignment, chat.responsible_employee_id) == (UNASSIGNED, w.emp(3))
    assert w.crm.entity_for_contact(chat.crm_contact_id or "").responsible == "103"
    assert visible(w, w.emp(3))[chat.id] is Counter.RED
    assert chat.id not in visible(w, w.emp(1))
    with db.transaction() as s:
        assert s.execute(select(func.count()).select_from(Message)).scalar() == 1  # nothing lost


def test_notify_heads_about_all_messages(app: Flask, client: Any, database_url: str):
    w = make_world(
        app,
        roles={1: ("seller", True), 3: ("head", False), 2: ("qc", False)},
        distribution="round_robin",
        notify_heads_all=True,
    )
    w.post(client, w.payload(1))
    chat_id = the_chat().id
    assert visible(w, w.emp(3))[chat_id] is Counter.RED
    assert visible(w, w.emp(2))[chat_id] is Counter.GREY
    assert send_reply(db, jobs_of(w), w.account_id, chat_id, w.emp(2), "qc cannot write").status == "forbidden"


# --- outages, rate limits, crashes ----------------------------------------------------------------


def test_crm_outage_queues_the_work_and_it_completes_after_recovery(
    app: Flask, client: Any, database_url: str, clock: Clock
):
    w = make_world(app, roles=SELLERS, distribution="round_robin")
    w.crm.outage = True
    for n in range(1, 4):
        assert w.post(client, w.payload(n)).status_code == 200  # the gateway never waits for the CRM
    assert w.crm.created_contacts == 0
    pending = ops("pending")
    assert len(pending) == 3 and all(o.attempts == 1 and "503" in o.last_error for o in pending)
    drain(app, clock)
    assert len(ops("pending")) == 3 and all(o.attempts == 2 for o in ops("pending"))  # still down: retried
    w.crm.outage = False
    for _ in range(3):
        drain(app, clock)
    assert [o.status for o in ops()] == ["done"] * 6
    assert w.crm.created_contacts == 3 and w.crm.created_entities == 3
    owners = sorted(the_chat(n).responsible_employee_id or 0 for n in range(1, 4))
    assert owners == sorted([w.emp(1), w.emp(2), w.emp(1)])  # in turn, whatever order they resolved in


def test_rate_limit_is_honoured(app: Flask, client: Any, database_url: str, clock: Clock):
    w = make_world(app, roles=SELLERS)
    w.crm.rate_limited = 300.0
    w.post(client, w.payload(1))
    [op] = ops("pending")
    assert op.next_attempt_at == clock.now + timedelta(seconds=300)
    w.crm.rate_limited = None
    clock.advance(seconds=299)
    outbox.sweep(db, app.extensions["widget"])
    assert ops("pending")  # not before the CRM said
    drain(app, clock, minutes=1)
    assert w.crm.created_contacts == 1


def test_worker_killed_after_the_crm_created_the_contact_creates_nothing_new_on_rerun(
    app: Flask, client: Any, database_url: str, clock: Clock
):
    nudged: list[int] = []
    services = app.extensions["widget"]
    services.jobs = capture_into(nudged)
    w = make_world(app, roles=SELLERS)
    w.post(client, w.payload(1))
    assert outbox.run_operation(db, services, nudged.pop(0)) == "done"  # the lookup
    create_id = nudged.pop(0)
    w.crm.crash_after_create = True
    with pytest.raises(SimulatedCrash):
        outbox.run_operation(db, services, create_id)
    assert w.crm.created_entities == 1
    assert the_chat().crm_contact_id is None  # we never recorded it
    w.crm.crash_after_create = False
    assert outbox.run_operation(db, services, create_id) == "skipped"  # the dead worker's lease holds
    clock.advance(minutes=3)
    assert outbox.sweep(db, services) == 1
    assert outbox.run_operation(db, services, nudged.pop(0)) == "done"
    assert w.crm.created_entities == 1 and w.crm.created_contacts == 1
    chat = the_chat()
    assert chat.crm_contact_id == next(iter(w.crm.by_key.values())).contact_id
    [create] = [o for o in ops() if o.kind == "create_entities"]
    assert create.attempts == 2 and create.status == "done"


def test_claim_while_the_crm_is_down_creates_the_lead_for_the_winner(
    app: Flask, client: Any, database_url: str, clock: Clock
):
    w = make_world(app, roles=SELLERS)
    w.crm.outage = True
    w.post(client, w.payload(1))
    # Resolution has not happened: nobody is offered yet, the heads see it.
    chat = the_chat()
    assert visible(w, w.emp(3))[chat.id] is Counter.RED and chat.id not in visible(w, w.emp(1))
    w.crm.outage = False
    drain(app, clock, minutes=1)  # lookup done; the create is recorded and run inline
    assert the_chat().crm_contact_id is not None


def test_reply_claimed_before_the_lead_exists_is_applied_when_it_is_created(
    app: Flask, client: Any, database_url: str, clock: Clock
):
    nudged: list[int] = []
    services = app.extensions["widget"]
    services.jobs = capture_into(nudged)  # only the outbox's nudges are kept
    w = make_world(app, roles=SELLERS)
    w.post(client, w.payload(1))
    outbox.run_operation(db, services, nudged.pop(0))  # lookup: unknown, offered, create recorded
    create_id = nudged.pop(0)
    chat = the_chat()
    reply = send_reply(db, jobs_of(w), w.account_id, chat.id, w.emp(2), "mine", now=clock.now)
    assert reply.status == SENT
    assert not nudged  # nothing to tell the CRM yet: the lead does not exist
    with db.transaction() as s:  # the reply itself waits for its delivery job (dropped here)
        assert s.execute(select(Message.delivery).where(Message.id == reply.message_id)).scalar_one() == "queued"
    outbox.run_operation(db, services, create_id)
    chat = the_chat()
    lead = w.crm.entity_for_contact(chat.crm_contact_id or "")
    assert lead.responsible == "102" and w.crm.contacts[chat.crm_contact_id or ""].responsible == "102"


@pytest.mark.parametrize("mode", ["first_reply", "round_robin"])
def test_one_new_person_on_two_channels_at_once_gets_one_crm_contact(
    app: Flask, client: Any, database_url: str, clock: Clock, mode: str
):
    """Both chats ask the CRM before either has created anything; only one may create the contact,
    the other follows it (never two contacts for one person)."""
    w = make_world(app, roles=SELLERS, distribution=mode)
    other = add_second_channel(w)
    w.crm.outage = True  # both lookups wait, so they run side by side once the CRM is back
    assert w.post(client, w.payload(1)).status_code == 200
    assert w.post(client, w.payload(1, message_id="tg-1", channel_id=other, chat_id="chat-2")).status_code == 200
    w.crm.outage = False
    for _ in range(3):
        drain(app, clock)
    assert w.crm.created_contacts == 1 and w.crm.created_entities == 1
    one, two = the_chat(1), the_chat(2)
    assert one.channel_id != two.channel_id and one.client_id == two.client_id
    # Whichever chat's lookup was recorded first created the contact; the other follows it.
    (creator,) = [c for c in (one, two) if c.is_new_client]
    (follower,) = [c for c in (one, two) if not c.is_new_client]
    assert follower.crm_contact_id == creator.crm_contact_id is not None
    assert follower.assignment == ASSIGNED
    assert follower.crm_responsible_user_id == creator.crm_responsible_user_id
    assert [o.status for o in ops()] == ["done"] * len(ops())
