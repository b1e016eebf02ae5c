"""New clients in Kommo through the real outbox, our Kommo adapter and the sandbox, over HTTP:
what lands in Kommo (lead + contact, or an incoming lead), with whom as responsible, in how many
requests, and that outages and crashes never make a second lead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sandbox.kommo.records import Lead
from tests.support.conversations import record_replies
from tests.support.crm_flows import Clock, Flow, SimulatedCrash, add_channel, capture_nudges, crash_after_create
from tests.support.jobs import jobs_of, use_crm_port
from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import KommoWorld, world_fixture
from widget.db import db
from widget.domain.visibility import ASSIGNED, OFFERED, UNASSIGNED
from widget.services import outbox
from widget.services.accounts.crm_clients import crm_port
from widget.services.conversations.replies import SENT, TAKEN, send_reply

__all__ = ["capture_nudges", "world_fixture"]

ADMIN, JOSE, MARIA, JOAO, ZOE, LUCIA = "10000001", "10000002", "10000003", "10000004", "10000005", "10000007"
SALES, SALES_INCOMING, SALES_FIRST = "7000001", "60000001", "60000002"
WHOLESALE, WHOLESALE_QUOTE = "7000002", "60000007"
SELLERS = {JOSE: ("seller", True), JOAO: ("seller", True), ZOE: ("head", False)}


def kommo_flow(
    world: KommoWorld,
    *,
    distribution: str = "round_robin",
    pipeline: str = SALES,
    stage: str = SALES_FIRST,
    roles: dict[str, tuple[str | None, bool]] | None = None,
) -> Flow:
    account_id = world.install()
    record_replies(world.app)  # replies go through send_reply, which delivers them
    return add_channel(
        world.app,
        account_id,
        world.url,
        entity="lead",
        pipeline_id=pipeline,
        stage_id=stage,
        distribution=distribution,
        roles=SELLERS if roles is None else roles,
    )


def leads_named(world: KommoWorld, chat_n: int) -> list[Lead]:
    return [ld for ld in world.sandbox.account(DEMO_HOST).leads.values() if f"Client {chat_n} (" in ld.name]


def contacts_with(world: KommoWorld, phone: str) -> list[Any]:
    digits = phone.lstrip("+")
    return [
        c
        for c in world.sandbox.account(DEMO_HOST).contacts.values()
        if any(v["value"].lstrip("+") == digits for f in c.custom_fields for v in f["values"])
    ]


def api_requests(world: KommoWorld) -> list[str]:
    return [f"{e.method} {e.path.split('/api/v4')[-1]}" for e in world.sandbox.log.entries(host=DEMO_HOST)]


@pytest.fixture
def clock(world: KommoWorld) -> Clock:
    c = Clock()
    world.app.extensions["widget"].clock = c
    return c


# --- what a new client creates ------------------------------------------------------------------


def test_round_robin_creates_lead_and_contact_for_the_rep_in_two_requests(world: KommoWorld):
    flow = kommo_flow(world, distribution="round_robin", pipeline=WHOLESALE, stage=WHOLESALE_QUOTE)
    world.sandbox.reset_log()

    assert flow.post(flow.payload(1)).status_code == 200

    assert api_requests(world) == ["GET /contacts", "POST /leads/complex"]
    chat = flow.chat(1)
    assert (chat.assignment, chat.responsible_employee_id) == (ASSIGNED, flow.emp(JOSE))
    [lead] = leads_named(world, 1)
    [contact] = contacts_with(world, "+17770000001")
    assert (lead.pipeline_id, lead.status_id) == (int(WHOLESALE), int(WHOLESALE_QUOTE))
    assert lead.responsible_user_id == int(JOSE)
    assert lead.contact_ids == [contact.id] and contact.responsible_user_id == int(JOSE)
    assert contact.name == "Client 1"
    assert (chat.crm_contact_id, chat.crm_entity_kind, chat.crm_entity_id) == (str(contact.id), "lead", str(lead.id))

    flow.post(flow.payload(2))  # the next client goes to the next rep
    [second] = leads_named(world, 2)
    assert second.responsible_user_id == int(JOAO) and flow.chat(2).responsible_employee_id == flow.emp(JOAO)


def test_first_reply_incoming_lead_is_accepted_for_the_first_replier(world: KommoWorld):
    flow = kommo_flow(world, distribution="first_reply", stage=SALES_INCOMING)
    world.sandbox.reset_log()

    flow.post(flow.payload(1))

    assert api_requests(world) == ["GET /contacts", "POST /leads/unsorted/forms"]
    chat = flow.chat(1)
    assert chat.assignment == OFFERED and flow.offers(chat.id) == {flow.emp(JOSE), flow.emp(JOAO)}
    account = world.sandbox.account(DEMO_HOST)
    [incoming] = [u for u in account.unsorted.values() if u.state == "new"]
    assert chat.crm_incoming_uid == incoming.uid and str(incoming.lead_id) == chat.crm_entity_id
    lead = account.leads[incoming.lead_id]
    assert lead.status_id == int(SALES_INCOMING) and lead.responsible_user_id == int(ADMIN)  # the fallback user

    lost_race = send_reply(db, jobs_of(flow), flow.account_id, chat.id, flow.emp(JOAO), "Hi, João here")
    late = send_reply(db, jobs_of(flow), flow.account_id, chat.id, flow.emp(JOSE), "Hi, José here")

    assert lost_race.status == SENT and late.status == TAKEN and "João" in late.detail
    assert flow.services.transport.texts() == ["Hi, João here"]  # José's text never left
    assert incoming.state == "accepted"
    assert lead.status_id == int(SALES_FIRST)  # accepted into the pipeline's first working stage
    assert lead.created_by == int(JOAO) and lead.responsible_user_id == int(JOAO)
    assert account.contacts[lead.contact_ids[0]].responsible_user_id == int(JOAO)
    assert not account.contacts[lead.contact_ids[0]].is_unsorted
    assert flow.chat(1).responsible_employee_id == flow.emp(JOAO)


def test_first_reply_complex_lead_goes_to_whoever_answers(world: KommoWorld):
    flow = kommo_flow(world, distribution="first_reply")
    flow.post(flow.payload(1))
    chat = flow.chat(1)
    [lead] = leads_named(world, 1)
    assert chat.assignment == OFFERED and lead.responsible_user_id == int(ADMIN)

    assert send_reply(db, jobs_of(flow), flow.account_id, chat.id, flow.emp(JOSE), "Hello!").status == SENT

    contact = world.sandbox.account(DEMO_HOST).contacts[lead.contact_ids[0]]
    assert lead.responsible_user_id == int(JOSE) and contact.responsible_user_id == int(JOSE)
    assert flow.chat(1).id not in flow.visible(flow.emp(JOAO))


def test_nobody_eligible_gives_the_lead_to_the_fallback_user(world: KommoWorld):
    flow = kommo_flow(world, roles={JOSE: ("seller", False), ZOE: ("head", False)})
    flow.post(flow.payload(1))
    [lead] = leads_named(world, 1)
    chat = flow.chat(1)
    assert chat.assignment == UNASSIGNED and lead.responsible_user_id == int(ADMIN)
    assert chat.id in flow.visible(flow.emp(ZOE))


# --- known clients ------------------------------------------------------------------------------


def test_known_client_with_an_open_lead_follows_the_leads_responsible(world: KommoWorld):
    flow = kommo_flow(world)
    world.sandbox.account(DEMO_HOST).leads[40000001].responsible_user_id = int(LUCIA)  # Ana López's open lead
    leads_before = len(world.sandbox.account(DEMO_HOST).leads)
    contacts_before = len(world.sandbox.account(DEMO_HOST).contacts)
    world.sandbox.reset_log()

    flow.post(flow.payload(1, phone="+34 600 123 456", sender_name="Ana"))

    assert api_requests(world) == ["GET /contacts", "GET /leads"]
    chat = flow.chat(1)
    assert (chat.responsible_employee_id, chat.crm_contact_id, chat.crm_entity_id) == (
        flow.emp(LUCIA),
        "20000001",
        "40000001",
    )
    assert not chat.is_new_client
    assert len(world.sandbox.account(DEMO_HOST).leads) == leads_before
    assert len(world.sandbox.account(DEMO_HOST).contacts) == contacts_before


def test_known_client_whose_leads_are_closed_belongs_to_the_contacts_responsible(world: KommoWorld):
    flow = kommo_flow(world)
    world.sandbox.account(DEMO_HOST).leads[40000001].status_id = 143  # closed - lost
    flow.post(flow.payload(1, phone="+34600123456"))
    chat = flow.chat(1)
    assert (chat.responsible_employee_id, chat.crm_entity_id) == (flow.emp(JOSE), None)
    assert chat.id in flow.visible(flow.emp(JOSE)) and chat.id not in flow.visible(flow.emp(JOAO))


def test_a_longer_number_containing_the_phone_is_not_the_client(world: KommoWorld):
    flow = kommo_flow(world)
    world.sandbox.add_contact(DEMO_HOST, "Someone else", phone="+1 777 000 0001 9")
    flow.post(flow.payload(1))
    assert flow.chat(1).is_new_client and len(leads_named(world, 1)) == 1


# --- outages and crashes ------------------------------------------------------------------------


def test_kommo_outage_then_recovery_creates_the_client_once(world: KommoWorld, clock: Clock):
    flow = kommo_flow(world)
    world.sandbox.set_fault("error", status=503, path_contains="/leads/complex")
    assert flow.post(flow.payload(1)).status_code == 200  # the gateway never waits for Kommo
    [_, create] = flow.ops()
    assert create.status == "pending" and "503" in create.last_error
    flow.drain(clock)
    assert flow.ops()[1].status == "pending" and not leads_named(world, 1)

    world.sandbox.clear_faults()
    flow.drain(clock)

    assert [o.status for o in flow.ops()] == ["done", "done"]
    [lead] = leads_named(world, 1)
    assert len(contacts_with(world, "+17770000001")) == 1
    assert flow.chat(1).crm_entity_id == str(lead.id)


@pytest.mark.parametrize("stage", [SALES_FIRST, SALES_INCOMING])
def test_crash_after_kommo_created_the_lead_creates_nothing_new(
    world: KommoWorld, clock: Clock, capture_nudges: Callable[..., list[int]], stage: str
):
    flow = kommo_flow(world, distribution="first_reply", stage=stage)
    nudged = capture_nudges(world.app)
    flow.post(flow.payload(1))
    assert outbox.run_operation(db, flow.services, nudged.pop(0)) == "done"  # the lookup
    create_id = nudged.pop(0)
    real_ports = flow.services.crm_ports
    use_crm_port(flow.app, crash_after_create(crm_port))
    with pytest.raises(SimulatedCrash):
        outbox.run_operation(db, flow.services, create_id)
    [lead] = leads_named(world, 1)
    assert flow.chat(1).crm_entity_id is None  # we never recorded it

    flow.services.crm_ports = real_ports
    clock.advance(minutes=3)  # the dead worker's lease runs out
    assert outbox.sweep(db, flow.services) == 1
    world.sandbox.reset_log()
    assert outbox.run_operation(db, flow.services, nudged.pop(0)) == "done"

    assert leads_named(world, 1) == [lead] and len(contacts_with(world, "+17770000001")) == 1
    assert "POST /leads/complex" not in api_requests(world)
    assert "POST /leads/unsorted/forms" not in api_requests(world)
    chat = flow.chat(1)
    assert chat.crm_entity_id == str(lead.id) and chat.crm_contact_id == str(lead.contact_ids[0])
    if stage == SALES_INCOMING:
        [incoming] = world.sandbox.account(DEMO_HOST).unsorted.values()
        assert chat.crm_incoming_uid == incoming.uid
        send_reply(db, jobs_of(flow), flow.account_id, chat.id, flow.emp(JOSE), "Hi")
        for op_id in list(nudged):
            outbox.run_operation(db, flow.services, op_id)
        assert incoming.state == "accepted" and lead.responsible_user_id == int(JOSE)
