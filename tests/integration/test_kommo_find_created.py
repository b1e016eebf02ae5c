"""Kommo: a new client's lead is named as a person would name it, and a create whose answer was
lost is found again without any token in that name — through the real outbox, our adapter and the
sandbox over HTTP.

A complex lead's earlier attempt is recognised by its new contact (the client's exact phone, or the
messenger identity in the IM field, created since the work was recorded); an incoming lead's by
its Unsorted ``source_uid``, or by its contact once someone accepted it in Kommo meanwhile."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.kommo import unsorted
from sandbox.kommo.records import Lead
from tests.support.conversations import record_replies
from tests.support.crm_flows import (
    Clock,
    Flow,
    SimulatedCrash,
    add_channel,
    capture_nudges,
    chat_on,
    crash_after_create,
    telegram_message,
)
from tests.support.jobs import use_crm_port
from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import KommoWorld, kommo_world, world_fixture
from widget.db import db
from widget.services import outbox
from widget.services.accounts.crm_clients import crm_port

__all__ = ["capture_nudges", "world_fixture"]

ADMIN, JOSE, JOAO = "10000001", "10000002", "10000004"
SALES, SALES_INCOMING, SALES_FIRST = "7000001", "60000001", "60000002"
SELLERS = {JOSE: ("seller", True), JOAO: ("seller", True)}
PHONE = "+17770000001"
TELEGRAM_ID = "880011"


def flow_on(world: KommoWorld, stage: str, transport: str = "whatsapp") -> Flow:
    record_replies(world.app)
    return add_channel(
        world.app,
        world.install(),
        world.url,
        entity="lead",
        pipeline_id=SALES,
        stage_id=stage,
        distribution="first_reply",
        roles=SELLERS,
        transport=transport,
    )


def account(world: KommoWorld) -> Any:
    return world.sandbox.account(DEMO_HOST)


def leads_of(world: KommoWorld, client: str) -> list[Lead]:
    return [ld for ld in account(world).leads.values() if ld.name.startswith(f"{client} (") and not ld.is_deleted]


def contacts_holding(world: KommoWorld, value: str) -> list[Any]:
    """Contacts with this phone or IM value, hidden (Unsorted) ones included."""
    return [
        c
        for c in account(world).contacts.values()
        if not c.is_deleted and any(v["value"] == value for f in c.custom_fields for v in f["values"])
    ]


def creates(world: KommoWorld) -> list[str]:
    return [
        e.path.split("/api/v4")[-1]
        for e in world.sandbox.log.entries(host=DEMO_HOST)
        if e.method == "POST" and e.path.endswith(("/leads/complex", "/leads/unsorted/forms"))
    ]


def crash_then_retry(world: KommoWorld, flow: Flow, clock: Clock, nudged: list[int], body: dict[str, Any]) -> None:
    """The client writes; the create reaches Kommo and the worker dies before recording the answer;
    after the lease the sweep hands the work out again and it runs to the end."""
    flow.post(body)
    assert outbox.run_operation(db, flow.services, nudged.pop(0)) == "done"  # the lookup: nobody
    create_id = nudged.pop(0)
    real_ports = flow.services.crm_ports
    use_crm_port(flow.app, crash_after_create(crm_port))
    with pytest.raises(SimulatedCrash):
        outbox.run_operation(db, flow.services, create_id)
    flow.services.crm_ports = real_ports
    clock.advance(minutes=3)  # the dead worker's lease runs out
    assert outbox.sweep(db, flow.services) == 1
    world.sandbox.reset_log()
    assert outbox.run_operation(db, flow.services, nudged.pop(0)) == "done"


@pytest.fixture
def clock(world: KommoWorld) -> Clock:
    c = Clock()
    world.app.extensions["widget"].clock = c
    return c


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", [SALES_FIRST, SALES_INCOMING], ids=["complex", "incoming"])
def test_a_new_clients_lead_is_named_as_a_person_would_name_it(world: KommoWorld, stage: str):
    flow = flow_on(world, stage)
    flow.post(flow.payload(1, sender_name="Ana Torres", phone=PHONE))

    [lead] = leads_of(world, "Ana Torres")
    assert lead.name == "Ana Torres (Sales WhatsApp)"
    assert flow.chat(1).crm_entity_id == str(lead.id)


# --- an earlier attempt whose answer was lost ------------------------------------------------------


@pytest.mark.parametrize("stage", [SALES_FIRST, SALES_INCOMING], ids=["complex", "incoming"])
def test_a_phoneless_clients_lead_created_before_a_crash_is_adopted(
    world: KommoWorld, clock: Clock, capture_nudges: Callable[..., list[int]], stage: str
):
    flow = flow_on(world, stage, transport="telegram")
    nudged = capture_nudges(world.app)

    crash_then_retry(world, flow, clock, nudged, telegram_message(flow, 1, TELEGRAM_ID))

    assert creates(world) == []  # nothing was sent to Kommo a second time
    [lead] = leads_of(world, "Tg 1")
    [contact] = contacts_holding(world, f"telegram:{TELEGRAM_ID}")
    assert lead.contact_ids == [contact.id] and "#" not in lead.name
    chat = chat_on(flow, TELEGRAM_ID)
    assert (chat.crm_contact_id, chat.crm_entity_id) == (str(contact.id), str(lead.id))
    if stage == SALES_INCOMING:
        [incoming] = account(world).unsorted.values()
        assert incoming.state == "new" and chat.crm_incoming_uid == incoming.uid


def test_an_incoming_lead_accepted_in_kommo_meanwhile_is_adopted_by_its_contact(
    world: KommoWorld, clock: Clock, capture_nudges: Callable[..., list[int]]
):
    flow = flow_on(world, SALES_INCOMING)
    nudged = capture_nudges(world.app)
    flow.post(flow.payload(1, phone=PHONE))
    assert outbox.run_operation(db, flow.services, nudged.pop(0)) == "done"
    create_id = nudged.pop(0)
    real_ports = flow.services.crm_ports
    use_crm_port(flow.app, crash_after_create(crm_port))
    with pytest.raises(SimulatedCrash):
        outbox.run_operation(db, flow.services, create_id)
    flow.services.crm_ports = real_ports
    # Somebody accepts the incoming lead in Kommo before our worker comes back: it leaves Unsorted
    # and its contact becomes visible.
    [incoming] = account(world).unsorted.values()
    with world.sandbox.lock:
        unsorted.accept(account(world), int(time.time()), int(ADMIN), incoming.uid, {})

    clock.advance(minutes=3)
    assert outbox.sweep(db, flow.services) == 1
    world.sandbox.reset_log()
    assert outbox.run_operation(db, flow.services, nudged.pop(0)) == "done"

    assert creates(world) == []
    [lead] = leads_of(world, "Client 1")
    [contact] = contacts_holding(world, PHONE)
    chat = flow.chat(1)
    assert (chat.crm_contact_id, chat.crm_entity_id) == (str(contact.id), str(lead.id))
    assert chat.crm_incoming_uid is None  # accepted already: nothing left for a reply to accept


def test_a_retry_that_finds_nothing_of_its_own_creates_once(world: KommoWorld, clock: Clock):
    """Another client's contact, or an old card someone typed the number into long ago, is not the
    earlier attempt's work: the retry still creates the client's own lead."""
    flow = flow_on(world, SALES_FIRST)
    world.sandbox.set_fault("error", status=503, path_contains="/leads/complex", count=1)
    flow.post(flow.payload(1, phone=PHONE))
    assert [o.status for o in flow.ops()] == ["done", "pending"]  # Kommo said 503
    old = world.sandbox.add_contact(DEMO_HOST, "Old card", phone=PHONE)
    account(world).contacts[old].created_at -= 3 * 86400
    world.sandbox.add_contact(DEMO_HOST, "Longer number", phone=PHONE + "9")

    flow.drain(clock)

    [lead] = leads_of(world, "Client 1")
    assert creates(world)[-1] == "/leads/complex"
    assert flow.chat(1).crm_entity_id == str(lead.id) and lead.contact_ids != [old]


# --- the answer lost on the wire ---------------------------------------------------------------------


@pytest.fixture
def impatient_world(make_settings: Any) -> Iterator[KommoWorld]:
    """Our HTTP timeout at one second, so a slow Kommo does the work after we gave up on it."""
    with kommo_world(make_settings, HTTP_TIMEOUT="1") as world:
        yield world


def test_a_create_answered_after_our_timeout_is_adopted_not_duplicated(impatient_world: KommoWorld):
    world = impatient_world
    clock = Clock()
    world.app.extensions["widget"].clock = clock
    flow = flow_on(world, SALES_FIRST)
    world.sandbox.set_fault("latency", seconds=2.5, path_contains="/leads/complex", count=1)

    assert flow.post(flow.payload(1, phone=PHONE)).status_code == 200
    create = flow.ops()[1]
    assert create.status == "pending" and create.attempts == 1  # we gave up waiting
    deadline = time.monotonic() + 10
    while not leads_of(world, "Client 1") and time.monotonic() < deadline:
        time.sleep(0.1)  # Kommo finishes the create we no longer wait for
    [lead] = leads_of(world, "Client 1")
    world.sandbox.reset_log()

    flow.drain(clock)

    assert {o.status for o in flow.ops()} == {"done"}
    assert creates(world) == [] and leads_of(world, "Client 1") == [lead]
    [contact] = contacts_holding(world, PHONE)
    chat = flow.chat(1)
    assert (chat.crm_contact_id, chat.crm_entity_id) == (str(contact.id), str(lead.id))
