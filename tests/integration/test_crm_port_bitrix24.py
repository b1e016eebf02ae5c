"""New clients in Bitrix24 through the real outbox, our Bitrix24 adapter and the sandbox portal over
HTTP: a contact + deal in the chosen pipeline and stage (or a lone lead), with whom as responsible,
in how many REST requests, and that outages, half-made batches and crashes never make duplicates."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.bitrix24_sandbox import B24World, bitrix24_world
from tests.support.conversations import record_replies
from tests.support.crm_flows import Clock, Flow, SimulatedCrash, add_channel, capture_nudges, crash_after_create
from tests.support.jobs import jobs_of, use_crm_port
from widget.crm.bitrix24.port import ORIGINATOR
from widget.db import db
from widget.domain.ports import DEAL, LEAD, NewClientSpec
from widget.domain.visibility import ASSIGNED, OFFERED
from widget.services import outbox
from widget.services.accounts.crm_clients import crm_port
from widget.services.conversations.replies import SENT, send_reply
from widget.services.crm_data.bitrix24 import refresh_bitrix24_data

__all__ = ["capture_nudges"]

ADMIN, IVAN, JOSE, JOAO, ZOE, MARIA = "1", "2", "3", "4", "5", "6"
SELLERS = {JOSE: ("seller", True), JOAO: ("seller", True), ZOE: ("head", False)}


@pytest.fixture
def b24(make_settings: Any) -> Iterator[B24World]:
    with bitrix24_world(make_settings) as world:
        world.install()
        yield world
        world.state.wait_deliveries()  # our own updates fire ONCRM*UPDATE events back at us


@pytest.fixture
def clock(b24: B24World) -> Clock:
    c = Clock()
    b24.app.extensions["widget"].clock = c
    return c


def b24_flow(
    b24: B24World,
    *,
    entity: str = "deal",
    pipeline: str | None = "1",
    stage: str | None = "C1:PREPARATION",
    distribution: str = "round_robin",
    roles: dict[str, tuple[str | None, bool]] | None = None,
) -> Flow:
    account = b24.account()
    assert account is not None
    record_replies(b24.app)  # replies go through send_reply, which delivers them
    return add_channel(
        b24.app,
        account.id,
        b24.base_url,
        entity=entity,
        pipeline_id=pipeline,
        stage_id=stage,
        distribution=distribution,
        roles=SELLERS if roles is None else roles,
    )


def records(b24: B24World, kind: str, **where: str) -> list[dict[str, Any]]:
    return [r for r in b24.portal.records[kind].values() if all(r.get(k) == v for k, v in where.items())]


def ours(b24: B24World, kind: str) -> list[dict[str, Any]]:
    return records(b24, kind, ORIGINATOR_ID=ORIGINATOR)


def rest_calls(b24: B24World) -> list[str]:
    return [e.rest_method for e in b24.state.log.entries(kind="rest")]


# --- what a new client creates ------------------------------------------------------------------


def test_round_robin_creates_contact_and_deal_in_the_chosen_stage_in_two_requests(b24: B24World):
    flow = b24_flow(b24)
    b24.state.reset_log()

    assert flow.post(flow.payload(1)).status_code == 200

    assert rest_calls(b24) == ["crm.duplicate.findbycomm", "batch"]
    [contact] = ours(b24, "contact")
    [deal] = ours(b24, "deal")
    assert contact["PHONE"][0]["VALUE"] == "+17770000001" and contact["NAME"] == "Client 1"
    assert (deal["CATEGORY_ID"], deal["STAGE_ID"], deal["CONTACT_ID"]) == ("1", "C1:PREPARATION", contact["ID"])
    assert contact["ASSIGNED_BY_ID"] == deal["ASSIGNED_BY_ID"] == JOSE
    chat = flow.chat(1)
    assert (chat.assignment, chat.responsible_employee_id) == (ASSIGNED, flow.emp(JOSE))
    assert (chat.crm_contact_id, chat.crm_entity_kind, chat.crm_entity_id) == (contact["ID"], "deal", deal["ID"])

    flow.post(flow.payload(2))
    assert ours(b24, "deal")[1]["ASSIGNED_BY_ID"] == JOAO


def test_first_reply_deal_goes_to_whoever_answers_first(b24: B24World):
    flow = b24_flow(b24, distribution="first_reply", pipeline="0", stage="NEW")
    flow.post(flow.payload(1))
    chat = flow.chat(1)
    [deal] = ours(b24, "deal")
    assert chat.assignment == OFFERED and deal["ASSIGNED_BY_ID"] == ADMIN  # the fallback user until then
    assert (deal["CATEGORY_ID"], deal["STAGE_ID"]) == ("0", "NEW")
    b24.state.reset_log()

    assert send_reply(db, jobs_of(flow), flow.account_id, chat.id, flow.emp(JOAO), "Hello!").status == SENT

    assert rest_calls(b24)[0] == "batch"  # contact and deal in one request
    [contact] = ours(b24, "contact")
    assert contact["ASSIGNED_BY_ID"] == deal["ASSIGNED_BY_ID"] == JOAO
    b24.state.wait_deliveries()
    assert flow.chat(1).responsible_employee_id == flow.emp(JOAO)
    assert chat.id not in flow.visible(flow.emp(JOSE))


def test_lead_choice_creates_a_lone_lead_with_the_phone(b24: B24World):
    flow = b24_flow(b24, entity="lead", pipeline="STATUS", stage="IN_PROCESS")
    b24.state.reset_log()

    flow.post(flow.payload(1))

    assert rest_calls(b24) == ["crm.duplicate.findbycomm", "crm.lead.add"]
    [lead] = ours(b24, "lead")
    assert (lead["STATUS_ID"], lead["ASSIGNED_BY_ID"]) == ("IN_PROCESS", JOSE)
    assert lead["PHONE"][0]["VALUE"] == "+17770000001" and lead["NAME"] == "Client 1"
    assert not ours(b24, "contact") and not ours(b24, "deal")
    chat = flow.chat(1)
    assert (chat.crm_contact_id, chat.crm_entity_kind, chat.crm_entity_id) == (None, "lead", lead["ID"])


def test_simple_crm_mode_makes_a_deal_where_a_lead_was_chosen(b24: B24World, caplog: pytest.LogCaptureFixture):
    flow = b24_flow(b24, entity="lead", pipeline="STATUS", stage="NEW")
    b24.state.set_crm_mode(b24.portal, "simple")
    refresh_bitrix24_data(db, flow.services, flow.account_id)  # "Refresh CRM data" learns the mode
    leads_before = len(b24.portal.records["lead"])

    with caplog.at_level(logging.WARNING):
        flow.post(flow.payload(1))

    [contact] = ours(b24, "contact")
    [deal] = ours(b24, "deal")
    assert deal["CONTACT_ID"] == contact["ID"] and deal["CATEGORY_ID"] == "0"
    assert len(b24.portal.records["lead"]) == leads_before
    assert any("simple CRM mode" in r.getMessage() for r in caplog.records)


def test_the_port_never_asks_a_simple_crm_for_a_lead(b24: B24World, caplog: pytest.LogCaptureFixture):
    flow = b24_flow(b24)
    b24.state.set_crm_mode(b24.portal, "simple")
    refresh_bitrix24_data(db, flow.services, flow.account_id)
    port = crm_port(db, flow.services, flow.account_id)
    spec = NewClientSpec("Kim", "+17770000009", "whatsapp", "chat-9", LEAD, False, "STATUS", "NEW", JOSE)
    b24.state.reset_log()

    with caplog.at_level(logging.WARNING, logger="widget.crm.bitrix24.port"):
        made = port.create_contact_with_entity(spec, "create:test-9")

    assert made.entity is not None and made.entity.kind == DEAL and made.contact_id is not None
    assert "crm.lead.add" not in rest_calls(b24)
    assert ours(b24, "deal")[0]["ASSIGNED_BY_ID"] == JOSE
    assert any("simple CRM mode" in r.getMessage() for r in caplog.records)


# --- known clients ------------------------------------------------------------------------------


def test_known_client_with_an_open_deal_follows_the_deals_responsible(b24: B24World):
    flow = b24_flow(b24, roles={**SELLERS, MARIA: ("seller", False)})
    b24.portal.records["deal"][1]["ASSIGNED_BY_ID"] = MARIA  # Maria Silva's deal; her contact is José's
    counts = {k: len(v) for k, v in b24.portal.records.items()}
    b24.state.reset_log()

    flow.post(flow.payload(1, phone="+55 11 98765-4321", sender_name="Maria"))

    assert rest_calls(b24) == ["crm.duplicate.findbycomm", "batch"]
    chat = flow.chat(1)
    assert (chat.responsible_employee_id, chat.crm_contact_id, chat.crm_entity_kind, chat.crm_entity_id) == (
        flow.emp(MARIA),
        "1",
        "deal",
        "1",
    )
    assert {k: len(v) for k, v in b24.portal.records.items()} == counts
    assert chat.id in flow.visible(flow.emp(MARIA)) and chat.id not in flow.visible(flow.emp(JOSE))


def test_known_client_whose_deal_is_won_belongs_to_the_contacts_responsible(b24: B24World):
    flow = b24_flow(b24)
    b24.portal.records["deal"][1]["STAGE_ID"] = "WON"
    flow.post(flow.payload(1, phone="+5511987654321"))
    chat = flow.chat(1)
    assert (chat.responsible_employee_id, chat.crm_contact_id, chat.crm_entity_id) == (flow.emp(JOSE), "1", None)


def test_a_lead_on_its_own_is_a_known_client_too(b24: B24World):
    flow = b24_flow(b24)
    flow.post(flow.payload(1, phone="+81 90 1234 5678"))
    chat = flow.chat(1)
    assert (chat.responsible_employee_id, chat.crm_entity_kind, chat.crm_entity_id) == (flow.emp(ZOE), "lead", "1")
    assert not chat.crm_contact_id and not ours(b24, "contact") and not ours(b24, "deal")


# --- outages, half-made batches, crashes ----------------------------------------------------------


def test_portal_outage_then_recovery_creates_the_client_once(b24: B24World, clock: Clock):
    flow = b24_flow(b24)
    b24.state.set_outage(True)
    assert flow.post(flow.payload(1)).status_code == 200
    [resolve] = flow.ops()
    assert resolve.status == "pending"
    flow.drain(clock)
    assert flow.ops()[0].attempts == 2 and not ours(b24, "contact")

    b24.state.set_outage(False)
    flow.drain(clock)

    assert [o.status for o in flow.ops()] == ["done", "done"]
    assert len(ours(b24, "contact")) == 1 and len(ours(b24, "deal")) == 1
    assert flow.chat(1).crm_entity_id == ours(b24, "deal")[0]["ID"]


def test_a_batch_halted_after_the_contact_adds_only_the_deal_next_time(b24: B24World, clock: Clock):
    flow = b24_flow(b24)
    b24.state.limit_method(b24.portal, "crm.deal.add", 3600)  # the deal is refused inside the batch
    flow.post(flow.payload(1))
    [contact] = ours(b24, "contact")
    assert not ours(b24, "deal") and flow.ops()[1].status == "pending"

    b24.state.faults.operation_limits.clear()
    b24.state.reset_log()
    flow.drain(clock)

    assert rest_calls(b24) == ["batch", "crm.deal.add"]  # what exists by ORIGIN_ID, then the deal alone
    assert ours(b24, "contact") == [contact]
    [deal] = ours(b24, "deal")
    assert deal["CONTACT_ID"] == contact["ID"] and deal["ASSIGNED_BY_ID"] == JOSE
    assert (flow.chat(1).crm_contact_id, flow.chat(1).crm_entity_id) == (contact["ID"], deal["ID"])


@pytest.mark.parametrize("entity", ["deal", "lead"])
def test_crash_after_the_portal_created_it_creates_nothing_new(
    b24: B24World, clock: Clock, capture_nudges: Callable[..., list[int]], entity: str
):
    flow = b24_flow(
        b24,
        entity=entity,
        pipeline="1" if entity == "deal" else "STATUS",
        stage="C1:NEW" if entity == "deal" else "NEW",
    )
    nudged = capture_nudges(b24.app)
    flow.post(flow.payload(1))
    assert outbox.run_operation(db, flow.services, nudged.pop(0)) == "done"
    create_id = nudged.pop(0)
    real_ports = flow.services.crm_ports
    use_crm_port(flow.app, crash_after_create(crm_port))
    with pytest.raises(SimulatedCrash):
        outbox.run_operation(db, flow.services, create_id)
    made = ours(b24, entity)
    assert len(made) == 1 and flow.chat(1).crm_entity_id is None

    flow.services.crm_ports = real_ports
    clock.advance(minutes=3)
    assert outbox.sweep(db, flow.services) == 1
    b24.state.reset_log()
    assert outbox.run_operation(db, flow.services, nudged.pop(0)) == "done"

    assert rest_calls(b24) == ["batch"]  # found by ORIGIN_ID, nothing added
    assert ours(b24, entity) == made
    assert len(ours(b24, "contact")) == (1 if entity == "deal" else 0)
    assert flow.chat(1).crm_entity_id == made[0]["ID"]
