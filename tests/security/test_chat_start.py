"""Starting a conversation from a CRM card cannot be turned against other clients or accounts: the
card named in the address is read from the caller's own CRM, so a forged id names either another
client of the same account — whose rights are checked as for any other — or nothing at all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from tests.security.conftest import ADMIN, QC, SELLER, Tenant, TenantCards, World
from tests.support.security import account_fingerprint, call, changed_tables
from widget.db import db
from widget.domain.outreach import CardClient, phone_address
from widget.domain.ports import CONTACT, LEAD, EntityRef
from widget.domain.responsibility import EntityState
from widget.models.conversations import Chat, Message


def cards_of(world: World) -> TenantCards:
    reader = world.app.extensions["widget"].card_reader
    return reader.__self__  # type: ignore[no-any-return]


def add_card(world: World, tenant: Tenant, lead_id: str, responsible: str, phone: str) -> EntityRef:
    """A lead of this account's CRM with its contact, whose responsible is ``responsible``."""
    lead, contact = EntityRef(LEAD, lead_id), EntityRef(CONTACT, f"c{lead_id}")
    states = {lead: EntityState(responsible), contact: EntityState(responsible)}
    address = phone_address(phone, contact.crm_id)
    assert address is not None
    client = CardClient(lead, contact.crm_id, lead, f"{tenant.tag}-card{lead_id}", states, (address,))
    cards_of(world).by_account.setdefault(tenant.account_id, {})[lead] = client
    return lead


def start(world: World, tenant: Tenant, user: str, card: EntityRef, *, csrf: str | None = "mine", **body: Any) -> Any:
    headers = {"X-Session-Token": tenant.tokens[user], "Accept": "application/json"}
    if csrf is not None:
        headers["X-CSRFToken"] = tenant.csrf[user] if csrf == "mine" else csrf
    payload = {"channel_id": tenant.channel_id, "text": "Hello from a forged card", **body}
    return world.client.post(f"/api/chats/start/{card.kind}/{card.crm_id}", json=payload, headers=headers)


def chats_and_messages() -> tuple[int, int]:
    with db.transaction() as s:
        return (
            s.execute(select(func.count()).select_from(Chat)).scalar_one(),
            s.execute(select(func.count()).select_from(Message)).scalar_one(),
        )


def test_a_rep_cannot_start_a_chat_with_a_colleagues_client_by_changing_the_card_id(world: World):
    a = world.a
    mine = add_card(world, a, "9002", SELLER, "+15557770002")
    theirs = add_card(world, a, "9001", ADMIN, "+15557770001")
    before, sent = chats_and_messages(), len(world.transport.sent)

    refused = start(world, a, SELLER, theirs)
    assert refused.status_code == 403
    assert "responsible" in refused.get_json()["message"]
    shown = call(world.client, "GET", f"/api/chats/start/lead/{theirs.crm_id}", token=a.tokens[SELLER])
    assert shown.status_code == 200 and shown.get_json()["can_start"] is False
    assert chats_and_messages() == before and len(world.transport.sent) == sent

    # The same rep, on their own client's card, may.
    assert start(world, a, SELLER, mine).status_code == 201
    assert world.transport.texts()[-1] == "Hello from a forged card"


def test_quality_control_never_starts_one(world: World):
    a = world.a
    card = add_card(world, a, "9003", QC, "+15557770003")
    before = chats_and_messages()
    answer = start(world, a, QC, card)
    assert answer.status_code == 403 and "Quality control" in answer.get_json()["message"]
    assert chats_and_messages() == before


def test_another_accounts_card_is_not_found_and_nothing_of_theirs_changes(world: World):
    a, b = world.a, world.b
    theirs = add_card(world, a, "9004", SELLER, "+15557770004")
    before = account_fingerprint(a.account_id)
    for user in (ADMIN, SELLER):
        # B's users name A's lead (Bitrix24 has leads too): B's CRM has no such card.
        assert start(world, b, user, theirs, channel_id=a.channel_id).status_code == 404
        found = call(world.client, "GET", f"/api/chats/start/lead/{theirs.crm_id}", token=b.tokens[user])
        assert found.status_code == 404 and a.tag not in found.get_data(as_text=True)
    # A Kommo account has no deal cards at all: B's deal is not something A's CRM can have.
    b_deal = EntityRef("deal", b.entity_id)
    assert start(world, a, ADMIN, b_deal).status_code == 404
    assert changed_tables(before, account_fingerprint(a.account_id)) == []


def test_without_the_pages_csrf_token_nothing_is_started(world: World):
    a = world.a
    card = add_card(world, a, "9005", SELLER, "+15557770005")
    before = chats_and_messages()
    for csrf in (None, "forged", world.b.csrf[ADMIN], a.csrf[QC]):
        answer = start(world, a, SELLER, card, csrf=csrf)
        assert answer.status_code == 400, csrf
    assert chats_and_messages() == before
