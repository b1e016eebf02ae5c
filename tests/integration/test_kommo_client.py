"""The Kommo REST client's operations against the sandbox: what a new client's arrival and a
responsible change need from Kommo (product.md §2-3, reference §5)."""

from __future__ import annotations

import time

import pytest

from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import world_fixture  # noqa: F401  (fixture)
from widget.crm.errors import CrmBadResponse, CrmNotFound
from widget.crm.kommo.creates import NewContact, NewLead, NewUnsortedForm


@pytest.fixture
def demo(world):
    account_id = world.install()
    return world, world.client(account_id, DEMO_HOST)


def test_search_by_phone_finds_the_contact_or_nothing(demo):
    world, client = demo
    owner = world.sandbox.users(DEMO_HOST)[3].id
    contact_id = world.sandbox.add_contact(DEMO_HOST, "Rosa Díaz", "+34 611 222 333", responsible_user_id=owner)
    lead_id = world.sandbox.add_lead(DEMO_HOST, "Order", contact_id=contact_id)

    (found,) = client.find_contacts_by_phone("+34611222333")
    assert (found.id, found.name, found.responsible_user_id) == (contact_id, "Rosa Díaz", owner)
    assert found.lead_ids == (lead_id,)
    assert client.find_contacts_by_phone("+99 000 000 0000") == ()  # Kommo's 204


def test_a_new_client_becomes_a_lead_with_contact_and_responsible_in_one_request(demo):
    world, client = demo
    pipeline = world.sandbox.pipelines(DEMO_HOST)[0]
    stage = next(s for s in pipeline.statuses if s.type == 0 and s.id not in (142, 143))
    rep = world.sandbox.users(DEMO_HOST)[1].id
    world.sandbox.reset_log()

    (result,) = client.create_complex_leads(
        [
            NewLead(
                "WhatsApp: +1 555 0199",
                pipeline_id=pipeline.id,
                status_id=stage.id,
                responsible_user_id=rep,
                contact=NewContact("+1 555 0199", "+15550199", rep),
                request_id="msg-1",
            )
        ]
    )
    assert world.sandbox.count("POST", "/leads/complex") == 1
    lead = world.sandbox.lead(DEMO_HOST, result.id)
    assert (lead.pipeline_id, lead.status_id, lead.responsible_user_id) == (pipeline.id, stage.id, rep)
    assert lead.contact_ids == [result.contact_id]
    contact = world.sandbox.contact(DEMO_HOST, result.contact_id)
    assert contact.responsible_user_id == rep
    assert client.find_contacts_by_phone("+15550199")[0].id == result.contact_id


def test_an_incoming_lead_is_created_and_accepted_by_whoever_answers(demo):
    world, client = demo
    pipeline = world.sandbox.pipelines(DEMO_HOST)[0]
    (created,) = client.create_unsorted_forms(
        [
            NewUnsortedForm(
                source_uid="wazzup-chat-1",
                source_name="Wazzup",
                lead_name="Telegram: @newclient",
                form_id="wazzup",
                form_name="Wazzup chat",
                form_page="https://wazzup.example/chat",
                form_sent_at=int(time.time()),
                contact=NewContact("@newclient"),
                pipeline_id=pipeline.id,
            )
        ]
    )
    assert created.uid and created.lead_ids
    first_stage = next(s for s in pipeline.statuses if s.type == 0 and s.id not in (142, 143))
    answerer = world.sandbox.users(DEMO_HOST)[4].id
    accepted = client.accept_unsorted(created.uid, user_id=answerer, status_id=first_stage.id)
    assert accepted.lead_ids == created.lead_ids
    assert world.sandbox.lead(DEMO_HOST, created.lead_ids[0]).status_id == first_stage.id


def test_the_responsible_of_a_lead_and_a_contact_can_be_changed(demo):
    world, client = demo
    contact_id = world.sandbox.add_contact(DEMO_HOST, "Kim Lee", "+1 555 0111")
    lead_id = world.sandbox.add_lead(DEMO_HOST, "Deal", contact_id=contact_id)
    winner = world.sandbox.users(DEMO_HOST)[5].id
    client.set_lead_responsible(lead_id, winner)
    client.set_contact_responsible(contact_id, winner)
    assert world.sandbox.lead(DEMO_HOST, lead_id).responsible_user_id == winner
    assert world.sandbox.contact(DEMO_HOST, contact_id).responsible_user_id == winner


def test_changing_a_lead_that_does_not_exist_is_a_clear_error(demo):
    _, client = demo
    with pytest.raises((CrmNotFound, CrmBadResponse)) as caught:
        client.set_lead_responsible(999_999_999, 1)
    assert caught.value.status in (400, 404)
    assert isinstance(caught.value.details, dict)


def test_webhook_subscription_for_responsible_changes(demo):
    world, client = demo
    sub = client.subscribe_webhook(f"{world.url}/kommo/events", ["responsible_lead", "responsible_contact"])
    assert sub.destination == f"{world.url}/kommo/events"
    # The install subscribed our own webhook address too; this one is the test's.
    (hook,) = [h for h in world.sandbox.webhooks(DEMO_HOST) if h.destination == sub.destination]
    assert sorted(hook.settings) == ["responsible_contact", "responsible_lead"]
