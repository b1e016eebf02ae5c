"""The test message against the sandbox Kommo over real HTTP (the Kommo CRM port): the admin
installs, saves the CRM integration tab for the first time, presses "Go to chats" — and Kommo now
has the test client's contact and lead in the pipeline and stage the admin chose, the rep who
answers first becomes its responsible, and the test client answers back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from sandbox.gateway import GatewaySandbox, create_app
from tests.support.chat_panel import panel_for
from tests.support.fake_crm import FakeCrm
from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import KommoWorld, world_fixture
from tests.support.servers import live_server
from widget.db import db
from widget.models import Channel, Employee
from widget.services.channels.transports import SandboxGatewayTransport

__all__ = ["world_fixture"]

ADMIN, JOSE, JOAO = "10000001", "10000002", "10000004"
SALES, SALES_FIRST = "7000001", "60000002"


@pytest.fixture
def gateway(world: KommoWorld) -> Iterator[GatewaySandbox]:
    sandbox = GatewaySandbox(answer_delay=0.05, timeout=5)
    with live_server(create_app(sandbox)) as gw:
        world.app.extensions["widget"].transport = SandboxGatewayTransport(
            gw.url, world.url + "/gateway/messages", timeout=5
        )
        yield sandbox


def test_go_to_chats_runs_the_new_client_flow_in_kommo(world: KommoWorld, gateway: GatewaySandbox):
    assert not any(isinstance(port, FakeCrm) for port in world.app.extensions["widget"].crm_ports.values())
    account_id = world.install()
    with db.transaction() as s:
        employees = {
            e.crm_user_id: e.id for e in s.execute(select(Employee).where(Employee.account_id == account_id)).scalars()
        }
        channel = s.execute(
            select(Channel).where(Channel.account_id == account_id, Channel.name == "Sales WhatsApp")
        ).scalar_one()
        channel_id = channel.id
    admin = panel_for(world.app, account_id, ADMIN, admin=True, origin=world.kommo_origin())
    saved = admin.client.post(
        f"/app/settings/channels/{channel_id}",
        data={
            "st": admin.token,
            "csrf_token": admin.csrf,
            "new_client_entity": "lead",
            "pipeline": SALES,
            "stage": SALES_FIRST,
            "distribution": "first_reply",
            f"role-{employees[ADMIN]}": "head",
            f"role-{employees[JOSE]}": "seller",
            f"new-{employees[JOSE]}": "1",
            f"role-{employees[JOAO]}": "seller",
            f"new-{employees[JOAO]}": "1",
        },
        headers={"Accept": "application/json"},
    )
    assert saved.status_code == 200 and saved.get_json()["first_save"] is True
    # The first save records the request and sends it at once: the admin may press "Later".
    (played,) = gateway.inbound

    go = admin.client.get("/app", query_string={"view": "chats", "st": admin.token})
    assert go.status_code == 200
    assert len(gateway.inbound) == 1  # "Go to chats" does not make the test client write again
    assert played.status == 200 and played.sender_name == "Wazzup test client"

    kommo = world.sandbox.account(DEMO_HOST)
    (lead,) = [ld for ld in kommo.leads.values() if "Wazzup test client" in ld.name]
    assert (str(lead.pipeline_id), str(lead.status_id)) == (SALES, SALES_FIRST)
    (contact,) = [c for c in kommo.contacts.values() if c.name == "Wazzup test client"]
    (chat,) = admin.chats().get_json()["chats"]
    assert chat["title"] == "Wazzup test client" and chat["offered"] is True
    assert chat["crm"]["entity_id"] == str(lead.id) and chat["crm"]["contact_id"] == str(contact.id)

    # José answers first: Kommo makes him responsible, and the test client answers back.
    jose = panel_for(world.app, account_id, JOSE, origin=world.kommo_origin())
    assert jose.send(chat["id"], "Hello! How can I help you?", expect_offer=True).status_code == 201
    assert [m.text for m in gateway.outbound] == ["Hello! How can I help you?"]
    assert lead.responsible_user_id == int(JOSE)
    assert gateway.wait_for(lambda g: len(g.inbound) == 2)
    detail = jose.chat(chat["id"]).get_json()
    assert detail["messages"][-1]["text"].startswith("Thanks, got your answer")
