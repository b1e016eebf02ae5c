"""Responsibility changed in the CRM flows back into our chats: Kommo webhooks (subscribed at
install, verified by the address token and the account id), Bitrix24 ONCRM*UPDATE events, and a
chat opened with an old copy re-reading the CRM. Real HTTP both ways, real outbox, real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select

from tests.support.bitrix24_sandbox import B24World, bitrix24_world
from tests.support.conversations import record_replies
from tests.support.crm_flows import Clock, Flow, add_channel, capture_nudges
from tests.support.jobs import jobs_of
from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import KommoWorld, world_fixture
from widget.crm.kommo.webhooks import EVENTS
from widget.db import db
from widget.domain.visibility import ASSIGNED, OFFERED
from widget.models.responsibility import KommoWebhook
from widget.services import outbox
from widget.services.conversations.kommo_webhooks import destination_url, webhook_token
from widget.services.conversations.replies import SENT, TAKEN, send_reply
from widget.services.conversations.responsibility import process_crm_events, refresh_chat_responsible, sweep_crm_events

__all__ = ["capture_nudges", "world_fixture"]

K_ADMIN, K_JOSE, K_JOAO, K_ZOE, K_LUCIA = "10000001", "10000002", "10000004", "10000005", "10000007"
K_ROLES = {K_JOSE: ("seller", True), K_JOAO: ("seller", True), K_ZOE: ("head", False), K_LUCIA: ("seller", False)}
KOMMO_ACCOUNT_ID = "30000001"


def kommo_flow(world: KommoWorld, distribution: str = "round_robin") -> Flow:
    account_id = world.install()
    record_replies(world.app)  # replies go through send_reply, which delivers them
    return add_channel(
        world.app,
        account_id,
        world.url,
        entity="lead",
        pipeline_id="7000001",
        stage_id="60000002",
        distribution=distribution,
        roles=K_ROLES,
    )


def our_hook(world: KommoWorld) -> Any:
    [hook] = [h for h in world.sandbox.webhooks(DEMO_HOST) if "/kommo/webhooks/" in h.destination]
    return hook


@pytest.fixture
def clock(world: KommoWorld) -> Clock:
    c = Clock()
    world.app.extensions["widget"].clock = c
    return c


# --- Kommo ----------------------------------------------------------------------------------------


def test_install_subscribes_our_webhook_address_for_responsible_changes(world: KommoWorld):
    account_id = world.install()
    hook = our_hook(world)
    assert hook.destination.startswith(f"{world.url}/kommo/webhooks/")
    assert sorted(hook.settings) == sorted(EVENTS)
    with db.transaction() as s:
        row = s.get(KommoWebhook, account_id)
        assert row is not None and row.subscribed_at is not None
        assert destination_url(row.destination_base, webhook_token(s, world.app.extensions["widget"], account_id)) == (
            hook.destination
        )
        token = hook.destination.rsplit("/", 1)[1]
        assert len(token) >= 40 and token not in row.token_hash  # only its hash is looked up

    world.install()  # a reinstall keeps one subscription, not two
    assert len([h for h in world.sandbox.webhooks(DEMO_HOST) if "/kommo/webhooks/" in h.destination]) == 1


def test_lead_reassigned_in_kommo_moves_the_chat_to_the_new_rep(world: KommoWorld):
    flow = kommo_flow(world)
    flow.post(flow.payload(1))
    chat = flow.chat(1)
    assert chat.responsible_employee_id == flow.emp(K_JOSE)

    [delivery] = world.sandbox.fire_responsible_changed(DEMO_HOST, "leads", int(chat.crm_entity_id or 0), int(K_LUCIA))

    assert delivery.status == 200
    chat = flow.chat(1)
    assert (chat.responsible_employee_id, chat.crm_responsible_user_id) == (flow.emp(K_LUCIA), K_LUCIA)
    assert chat.id in flow.visible(flow.emp(K_LUCIA)) and chat.id not in flow.visible(flow.emp(K_JOSE))
    assert (
        send_reply(db, jobs_of(flow), flow.account_id, chat.id, flow.emp(K_JOSE), "still mine?").status == "forbidden"
    )
    [event] = flow.events()
    assert (event.event, event.entity_type, event.processed_at is not None) == ("responsible_lead", "lead", True)


def test_contact_reassigned_in_kommo_moves_a_chat_without_an_open_lead(world: KommoWorld):
    flow = kommo_flow(world)
    world.sandbox.account(DEMO_HOST).leads[40000001].status_id = 142  # Ana López's lead is won
    flow.post(flow.payload(1, phone="+34600123456"))
    assert flow.chat(1).responsible_employee_id == flow.emp(K_JOSE)

    world.sandbox.fire_responsible_changed(DEMO_HOST, "contacts", 20000001, int(K_JOAO))

    assert flow.chat(1).responsible_employee_id == flow.emp(K_JOAO)


def test_an_offered_chat_assigned_in_kommo_is_taken_by_that_rep(world: KommoWorld):
    flow = kommo_flow(world, distribution="first_reply")
    flow.post(flow.payload(1))
    chat = flow.chat(1)
    assert chat.assignment == OFFERED

    world.sandbox.fire_responsible_changed(DEMO_HOST, "leads", int(chat.crm_entity_id or 0), int(K_JOAO))

    chat = flow.chat(1)
    assert (chat.assignment, chat.responsible_employee_id) == (ASSIGNED, flow.emp(K_JOAO))
    assert flow.offers(chat.id) == set() and chat.id not in flow.visible(flow.emp(K_JOSE))
    late = send_reply(db, jobs_of(flow), flow.account_id, chat.id, flow.emp(K_JOSE), "Hi!")
    assert late.status == TAKEN and "João" in late.detail


def test_webhook_with_a_wrong_token_or_another_account_is_refused(world: KommoWorld):
    flow = kommo_flow(world)
    flow.post(flow.payload(1))
    chat = flow.chat(1)
    destination = our_hook(world).destination
    form = {
        "leads[responsible][0][id]": chat.crm_entity_id,
        "leads[responsible][0][responsible_user_id]": K_LUCIA,
        "account[id]": KOMMO_ACCOUNT_ID,
        "account[subdomain]": "demo",
    }
    forged = destination[:-4] + ("AAAA" if not destination.endswith("AAAA") else "BBBB")

    wrong_token = requests.post(forged, data=form, timeout=10)
    no_token = requests.post(f"{world.url}/kommo/webhooks/x", data=form, timeout=10)
    other_account = requests.post(destination, data={**form, "account[id]": "30000999"}, timeout=10)

    assert (wrong_token.status_code, no_token.status_code, other_account.status_code) == (401, 401, 401)
    assert flow.events() == []
    assert flow.chat(1).responsible_employee_id == flow.emp(K_JOSE)
    assert requests.post(destination, data=form, timeout=10).status_code == 200  # the real one works


def test_a_claim_not_yet_written_to_kommo_is_not_undone_by_a_webhook(
    world: KommoWorld, capture_nudges: Callable[..., list[int]]
):
    flow = kommo_flow(world, distribution="first_reply")
    flow.post(flow.payload(1))
    chat = flow.chat(1)
    nudged = capture_nudges(world.app)
    assert send_reply(db, jobs_of(flow), flow.account_id, chat.id, flow.emp(K_JOSE), "mine").status == SENT
    # Kommo still says the fallback admin: our change is queued, not sent yet.
    world.sandbox.fire_responsible_changed(DEMO_HOST, "leads", int(chat.crm_entity_id or 0), int(K_ADMIN))
    process_crm_events(db, flow.services, flow.account_id)
    assert flow.chat(1).responsible_employee_id == flow.emp(K_JOSE)

    for op_id in nudged:
        outbox.run_operation(db, flow.services, op_id)
    assert world.sandbox.account(DEMO_HOST).leads[int(chat.crm_entity_id or 0)].responsible_user_id == int(K_JOSE)


def test_notifications_wait_out_a_kommo_outage(world: KommoWorld, clock: Clock):
    flow = kommo_flow(world)
    flow.post(flow.payload(1))
    lead_id = int(flow.chat(1).crm_entity_id or 0)
    world.sandbox.set_fault("outage", path_contains="/api/v4/leads")

    world.sandbox.fire_responsible_changed(DEMO_HOST, "leads", lead_id, int(K_LUCIA))

    [event] = flow.events()
    assert event.processed_at is None  # recorded, waiting
    assert flow.chat(1).responsible_employee_id == flow.emp(K_JOSE)
    world.sandbox.clear_faults()
    assert sweep_crm_events(db, flow.services) == [flow.account_id]
    assert flow.chat(1).responsible_employee_id == flow.emp(K_LUCIA)
    assert all(e.processed_at is not None for e in flow.events())


def test_a_stale_chat_rereads_kommo_when_opened(world: KommoWorld, clock: Clock):
    flow = kommo_flow(world)
    flow.post(flow.payload(1))
    chat = flow.chat(1)
    # Changed in Kommo without a webhook reaching us (e.g. one was lost).
    world.sandbox.account(DEMO_HOST).leads[int(chat.crm_entity_id or 0)].responsible_user_id = int(K_JOAO)
    world.sandbox.reset_log()

    fresh = refresh_chat_responsible(db, flow.services, flow.account_id, chat.id, timedelta(minutes=10))
    assert not fresh.reread and fresh.responsible_employee_id == flow.emp(K_JOSE)
    assert world.sandbox.log.entries(host=DEMO_HOST) == []

    clock.advance(minutes=11)
    stale = refresh_chat_responsible(db, flow.services, flow.account_id, chat.id, timedelta(minutes=10))

    assert stale.reread and stale.changed and stale.responsible_employee_id == flow.emp(K_JOAO)
    assert stale.confirmed_at == clock.now
    # Its open lead decides, so the contact is not even read.
    assert [e.path.split("/api/v4")[-1] for e in world.sandbox.log.entries(host=DEMO_HOST)] == ["/leads"]
    again = refresh_chat_responsible(db, flow.services, flow.account_id, chat.id, timedelta(minutes=10))
    assert not again.reread


# --- Bitrix24 -------------------------------------------------------------------------------------

B_JOSE, B_JOAO, B_ZOE, B_MARIA = "3", "4", "5", "6"
B_ROLES = {B_JOSE: ("seller", True), B_JOAO: ("seller", True), B_ZOE: ("head", False), B_MARIA: ("seller", False)}


@pytest.fixture
def b24(make_settings: Any) -> Iterator[B24World]:
    with bitrix24_world(make_settings) as world:
        world.install()
        yield world
        world.state.wait_deliveries()


def b24_flow(b24: B24World, distribution: str = "round_robin") -> Flow:
    account = b24.account()
    assert account is not None
    record_replies(b24.app)  # replies go through send_reply, which delivers them
    return add_channel(
        b24.app,
        account.id,
        b24.base_url,
        entity="deal",
        pipeline_id="1",
        stage_id="C1:NEW",
        distribution=distribution,
        roles=B_ROLES,
    )


def test_deal_reassigned_in_bitrix24_moves_the_chat(b24: B24World):
    flow = b24_flow(b24)
    flow.post(flow.payload(1))
    chat = flow.chat(1)
    assert chat.responsible_employee_id == flow.emp(B_JOSE)

    b24.state.update_record(b24.portal, "deal", int(chat.crm_entity_id or 0), {"ASSIGNED_BY_ID": B_MARIA})
    assert b24.state.wait_deliveries()

    chat = flow.chat(1)
    assert (chat.responsible_employee_id, chat.crm_responsible_user_id) == (flow.emp(B_MARIA), B_MARIA)
    assert chat.id in flow.visible(flow.emp(B_MARIA)) and chat.id not in flow.visible(flow.emp(B_JOSE))
    [event] = [e for e in flow.events() if e.entity_type == "deal"]
    assert event.processed_at is not None


def test_contact_reassigned_in_bitrix24_moves_a_chat_without_an_open_deal(b24: B24World):
    flow = b24_flow(b24)
    b24.portal.records["deal"][1]["STAGE_ID"] = "LOSE"  # Maria Silva's only deal is lost
    flow.post(flow.payload(1, phone="+55 11 98765-4321"))
    assert flow.chat(1).responsible_employee_id == flow.emp(B_JOSE)

    b24.state.update_record(b24.portal, "contact", 1, {"ASSIGNED_BY_ID": B_JOAO})
    assert b24.state.wait_deliveries()

    assert flow.chat(1).responsible_employee_id == flow.emp(B_JOAO)


def test_an_offered_chat_assigned_in_bitrix24_is_taken_by_that_rep(b24: B24World):
    flow = b24_flow(b24, distribution="first_reply")
    flow.post(flow.payload(1))
    chat = flow.chat(1)
    assert chat.assignment == OFFERED

    b24.state.update_record(b24.portal, "deal", int(chat.crm_entity_id or 0), {"ASSIGNED_BY_ID": B_JOAO})
    assert b24.state.wait_deliveries()

    chat = flow.chat(1)
    assert (chat.assignment, chat.responsible_employee_id) == (ASSIGNED, flow.emp(B_JOAO))
    assert send_reply(db, jobs_of(flow), flow.account_id, chat.id, flow.emp(B_JOSE), "Hi").status == TAKEN


def test_changes_to_records_we_have_no_chat_for_cost_no_requests(b24: B24World):
    flow = b24_flow(b24)
    b24.state.reset_log()

    b24.state.update_record(b24.portal, "deal", 2, {"ASSIGNED_BY_ID": B_MARIA})  # Omar's deal: no chat of ours
    assert b24.state.wait_deliveries()

    assert b24.state.log.entries(kind="rest") == []
    [event] = flow.events()
    assert event.processed_at is not None


def test_a_stale_chat_rereads_bitrix24_when_opened(b24: B24World):
    flow = b24_flow(b24)
    clock = Clock()
    flow.services.clock = clock
    flow.post(flow.payload(1))
    chat = flow.chat(1)
    b24.portal.records["deal"][int(chat.crm_entity_id or 0)]["ASSIGNED_BY_ID"] = B_MARIA  # no event reached us
    clock.advance(hours=1)
    b24.state.reset_log()

    result = refresh_chat_responsible(db, flow.services, flow.account_id, chat.id, timedelta(minutes=5))

    assert result.reread and result.changed and result.responsible_employee_id == flow.emp(B_MARIA)
    assert [e.rest_method for e in b24.state.log.entries(kind="rest")] == ["batch"]  # contact + deal, one batch
    with db.transaction() as s:
        assert s.execute(select(KommoWebhook)).first() is None  # nothing Kommo-specific for a portal
