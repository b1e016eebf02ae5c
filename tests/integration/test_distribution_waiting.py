"""One unknown person on two channels: the second chat waits for the CRM record the first chat is
creating, but never forever (product.md §3: a new client is never lost, only heads-visible for a
bounded time). Runs on SQLite and on PostgreSQL (``TEST_DATABASE_URL``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select, update

from tests.support.conversations import World, add_second_channel, make_world
from tests.support.jobs import jobs_of, jobs_replaced, run_job
from widget.crm.errors import CrmBadResponse, CrmUnavailable
from widget.db import db
from widget.domain.ports import NewClientSpec
from widget.domain.visibility import ASSIGNED, OFFERED, RESOLVING, UNASSIGNED, Counter
from widget.models._base import utcnow
from widget.models.conversations import Chat, ChatOffer, CrmOperation
from widget.services import outbox
from widget.services.conversations.chat_list.page import visible_page
from widget.services.conversations.distribution.keys import AWAIT_CREATOR, CREATE_ENTITIES, create_key
from widget.services.conversations.distribution.settling import CREATOR_PATIENCE
from widget.services.conversations.replies import SENT, send_reply

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


@pytest.fixture
def nudged(app: Flask) -> Iterator[list[int]]:
    """Outbox rows are not run inline: the test drives each one itself (other jobs run at once)."""
    got: list[int] = []

    def enqueue(name: str, *args: Any, delay: Any = None) -> None:
        if name == outbox.JOB_NAME:
            got.append(args[0])
        else:
            run_job(app, name, *args)  # as the queue runs a job (a reply's delivery needs the app)

    with jobs_replaced(app, enqueue):
        yield got


def chat(n: int) -> Chat:
    with db.transaction() as s:
        row = s.execute(select(Chat).where(Chat.external_chat_id == f"chat-{n}")).scalar_one()
        s.expunge(row)
        return row


def ops(kind: str | None = None) -> list[CrmOperation]:
    with db.transaction() as s:
        q = select(CrmOperation).order_by(CrmOperation.id)
        if kind:
            q = q.where(CrmOperation.kind == kind)
        rows = list(s.execute(q).scalars())
        s.expunge_all()
        return rows


def offers(chat_id: int) -> set[int]:
    with db.transaction() as s:
        return set(s.execute(select(ChatOffer.employee_id).where(ChatOffer.chat_id == chat_id)).scalars())


def visible(w: World, emp: int) -> dict[int, Counter | None]:
    with db.transaction() as s:
        return {i.chat_id: i.counter for i in visible_page(s, w.account_id, emp)}


def refuse_creates(w: World, monkeypatch: pytest.MonkeyPatch, key: str, error: Exception) -> dict[str, bool]:
    """The CRM refuses (or cannot take) one creation; ``state["on"] = False`` lets it through."""
    state = {"on": True}
    real = w.crm._create

    def create(spec: NewClientSpec, idempotency_key: str, incoming: bool) -> Any:
        if state["on"] and idempotency_key == key:
            w.crm.calls.append("refused")
            raise error
        return real(spec, idempotency_key, incoming)

    monkeypatch.setattr(w.crm, "_create", create)
    return state


def run(app: Flask, op_id: int) -> str:
    return outbox.run_operation(db, app.extensions["widget"], op_id)


def two_chats_one_waiting(app: Flask, client: Any, w: World, nudged: list[int]) -> tuple[int, int]:
    """Chat 1 (channel 1) is the creator with its creation recorded, not run; chat 2 (channel 2,
    same phone) has been looked up and waits. Returns (chat 1's create op, chat 2's re-check op)."""
    other = add_second_channel(w)
    assert w.post(client, w.payload(1)).status_code == 200
    assert w.post(client, w.payload(1, message_id="tg-1", channel_id=other, chat_id="chat-2")).status_code == 200
    resolve_1, resolve_2 = nudged[0], nudged[1]
    nudged.clear()
    assert run(app, resolve_1) == "done"
    [create_1] = nudged
    nudged.clear()
    assert run(app, resolve_2) == "done"
    [recheck] = nudged
    nudged.clear()
    assert chat(2).assignment == RESOLVING and chat(1).is_new_client
    [await_op] = ops(AWAIT_CREATOR)
    assert await_op.id == recheck and await_op.next_attempt_at > utcnow() + CREATOR_PATIENCE - timedelta(minutes=1)
    return create_1, recheck


@pytest.mark.parametrize("crm", ["kommo", "bitrix24"])
def test_creator_failing_for_good_lets_the_waiting_chat_create_its_own_at_once(
    app: Flask,
    client: Any,
    database_url: str,
    clock: Clock,
    nudged: list[int],
    monkeypatch: pytest.MonkeyPatch,
    crm: str,
):
    entity = {"kommo": ("lead", "1", "11"), "bitrix24": ("deal", "0", "NEW")}[crm]
    w = make_world(app, crm=crm, roles=SELLERS, entity=entity[0], pipeline_id=entity[1], stage_id=entity[2])
    create_1, _ = two_chats_one_waiting(app, client, w, nudged)
    one = chat(1)
    refuse_creates(w, monkeypatch, create_key(one.id), CrmBadResponse("400: the CRM refused the contact"))
    with db.transaction() as s:  # the last allowed attempt
        s.execute(update(CrmOperation).where(CrmOperation.id == create_1).values(attempts=outbox.MAX_ATTEMPTS - 1))
    assert run(app, create_1) == "failed"
    [wake] = nudged  # the waiting chat is re-checked in the same transaction that kept the failure
    nudged.clear()
    assert run(app, wake) == "done"
    two = chat(2)
    # The waiting chat is now a new client in its own right: offered to the sellers, who see it.
    assert two.is_new_client and two.assignment == OFFERED and offers(two.id) == {w.emp(1), w.emp(2)}
    assert two.id in visible(w, w.emp(1)) and two.id in visible(w, w.emp(2))
    [create_2] = nudged
    nudged.clear()
    assert run(app, create_2) == "done"
    two, one = chat(2), chat(1)
    assert two.crm_contact_id is not None and w.crm.created_contacts == 1
    # The failed creator stays as it was distributed (offered, the fallback user responsible),
    # visible to the sellers and the head, and now shows on the person's contact.
    assert one.assignment == OFFERED and one.responsible_employee_id == w.emp(0)
    assert one.id in visible(w, w.emp(1)) and visible(w, w.emp(3))[one.id] is Counter.GREY
    assert one.crm_contact_id == two.crm_contact_id
    assert send_reply(db, jobs_of(w), w.account_id, one.id, w.emp(1), "hello", now=clock.now).status == SENT
    assert w.transport.texts() == ["hello"]
    # The re-check recorded at first stays harmless when it comes due.
    clock.advance(minutes=30)
    for op_id in outbox.due_operations(db, clock.now):
        run(app, op_id)
    assert w.crm.created_contacts == 1 and len(ops(CREATE_ENTITIES)) == 2
    assert [o.status for o in ops(CREATE_ENTITIES)] == ["failed", "done"]


def test_creator_still_retrying_after_patience_is_abandoned_and_the_waiting_chat_creates(
    app: Flask, client: Any, database_url: str, clock: Clock, nudged: list[int], monkeypatch: pytest.MonkeyPatch
):
    w = make_world(app, roles=SELLERS, distribution="round_robin")
    create_1, recheck = two_chats_one_waiting(app, client, w, nudged)
    one = chat(1)
    stuck = refuse_creates(w, monkeypatch, create_key(one.id), CrmUnavailable("503 for this one"))
    assert run(app, create_1) == "pending"  # retried with backoff, forever for an outage
    clock.advance(minutes=10)
    assert run(app, recheck) == "skipped"  # not due yet
    assert chat(2).assignment == RESOLVING
    clock.advance(minutes=6)
    nudged.clear()
    assert run(app, recheck) == "done"
    two = chat(2)
    # Distributed in its own channel's turn.
    assert two.is_new_client and two.assignment == ASSIGNED and two.responsible_employee_id == w.emp(1)
    [create_1_row] = [o for o in ops(CREATE_ENTITIES) if o.id == create_1]
    assert create_1_row.status == "failed" and "abandoned" in create_1_row.last_error
    stuck["on"] = False  # the CRM would take chat 1's creation now, but it is no longer attempted
    [create_2] = nudged
    assert run(app, create_2) == "done"
    assert run(app, create_1) == "skipped"
    clock.advance(hours=2)
    for op_id in outbox.due_operations(db, clock.now):
        run(app, op_id)
    assert w.crm.created_contacts == 1
    assert chat(1).crm_contact_id == chat(2).crm_contact_id is not None
    assert w.crm.entity_for_contact(chat(2).crm_contact_id or "").responsible == "101"


def test_creation_that_reached_the_crm_before_it_was_abandoned_is_adopted_not_duplicated(
    app: Flask, client: Any, database_url: str, clock: Clock, nudged: list[int]
):
    """Chat 1's worker created the contact and died before recording; its lease ran out and the
    waiting chat's patience too: the waiting chat finds that contact by chat 1's key."""
    w = make_world(app, roles=SELLERS)
    create_1, recheck = two_chats_one_waiting(app, client, w, nudged)
    w.crm.crash_after_create = True
    with pytest.raises(BaseException, match="worker killed"):
        run(app, create_1)
    w.crm.crash_after_create = False
    clock.advance(minutes=16)
    assert run(app, recheck) == "done"
    [create_2] = nudged
    assert run(app, create_2) == "done"
    assert w.crm.created_contacts == 1
    assert chat(2).crm_contact_id is not None and chat(2).crm_contact_id == chat(1).crm_contact_id


def test_deleted_creator_chat_lets_the_waiting_chat_create_after_patience(
    app: Flask, client: Any, database_url: str, clock: Clock, nudged: list[int]
):
    w = make_world(app, roles=SELLERS)
    _, recheck = two_chats_one_waiting(app, client, w, nudged)
    with db.transaction() as s:
        s.execute(delete(Chat).where(Chat.id == chat(1).id))
    clock.advance(minutes=16)
    assert run(app, recheck) == "done"
    [create_2] = nudged
    assert run(app, create_2) == "done"
    assert chat(2).is_new_client and chat(2).crm_contact_id is not None and w.crm.created_contacts == 1


def test_waiting_chat_follows_a_bitrix24_lead_created_without_a_contact(
    app: Flask, client: Any, database_url: str, clock: Clock, nudged: list[int]
):
    """A Bitrix24 lead carries the person itself (no contact): the waiting chat follows the lead."""
    w = make_world(app, crm="bitrix24", roles=SELLERS, distribution="round_robin", entity="lead", pipeline_id="STATUS")
    create_1, recheck = two_chats_one_waiting(app, client, w, nudged)
    assert run(app, create_1) == "done"
    one, two = chat(1), chat(2)
    assert one.crm_contact_id is None and one.crm_entity_kind == "lead"
    assert (two.assignment, two.crm_entity_id, two.responsible_employee_id) == (
        ASSIGNED,
        one.crm_entity_id,
        one.responsible_employee_id,
    )
    clock.advance(minutes=16)
    assert run(app, recheck) == "done"  # settled already: nothing more happens
    assert w.crm.created_entities == 1 and chat(2).crm_entity_id == one.crm_entity_id


def test_lookup_failing_for_good_gives_the_chat_to_the_fallback_and_the_heads(
    app: Flask, client: Any, database_url: str, clock: Clock, nudged: list[int], monkeypatch: pytest.MonkeyPatch
):
    w = make_world(app, roles=SELLERS, fallback=3)

    def refuse(*args: Any, **kw: Any) -> Any:
        raise CrmBadResponse("400: the CRM refused the search")

    monkeypatch.setattr(w.crm, "find_client", refuse)
    w.post(client, w.payload(1))
    [resolve] = nudged
    with db.transaction() as s:
        s.execute(update(CrmOperation).where(CrmOperation.id == resolve).values(attempts=outbox.MAX_ATTEMPTS - 1))
    assert run(app, resolve) == "failed"
    one = chat(1)
    assert (one.assignment, one.responsible_employee_id) == (UNASSIGNED, w.emp(3))
    assert visible(w, w.emp(3))[one.id] is Counter.RED and w.crm.created_contacts == 0


def test_failure_wake_up_and_due_recheck_at_once_create_exactly_once(
    app: Flask, client: Any, database_url: str, clock: Clock, nudged: list[int], monkeypatch: pytest.MonkeyPatch
):
    """The creator fails for good at the moment the waiting chat's patience runs out: two re-checks
    of the same chat race (threads, and processes' worth of connections on PostgreSQL)."""
    w = make_world(app, roles=SELLERS)
    create_1, recheck = two_chats_one_waiting(app, client, w, nudged)
    refuse_creates(w, monkeypatch, create_key(chat(1).id), CrmBadResponse("400"))
    with db.transaction() as s:
        s.execute(update(CrmOperation).where(CrmOperation.id == create_1).values(attempts=outbox.MAX_ATTEMPTS - 1))
    assert run(app, create_1) == "failed"
    [wake] = nudged
    nudged.clear()
    clock.advance(minutes=16)
    go = threading.Barrier(2)
    results: list[str] = []

    def check(op_id: int) -> None:
        with app.app_context():
            go.wait()
            results.append(run(app, op_id))

    threads = [threading.Thread(target=check, args=(i,)) for i in (wake, recheck)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["done", "done"]
    creates = [o for o in ops(CREATE_ENTITIES) if o.chat_id == chat(2).id]
    assert len(creates) == 1 and len(nudged) == 1
    assert run(app, creates[0].id) == "done"
    assert w.crm.created_contacts == 1 and chat(2).assignment == OFFERED
