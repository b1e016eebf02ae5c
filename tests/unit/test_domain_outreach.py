"""Starting a conversation from a CRM card: who may, on which channels, to which address, and why not
(product.md §1 roles, the Advanced tab's default channel, §5 card scope)."""

from __future__ import annotations

from widget.domain.outreach import (
    PHONE,
    Action,
    Address,
    CardClient,
    ChannelFacts,
    ExistingChat,
    Why,
    chat_target,
    client_key_of,
    im_address,
    is_telegram_bot,
    phone_address,
    plan_start,
    unique,
)
from widget.domain.ports import CONTACT, LEAD, EntityRef
from widget.domain.responsibility import EntityState
from widget.domain.roles import HEAD, QC, SELLER
from widget.domain.visibility import Viewer

ANA, BOB, HEIDI, QUINN = 1, 2, 3, 4
CRM_ID = {ANA: "501", BOB: "502", HEIDI: "503", QUINN: "504"}

WA = ChannelFacts(10, "Sales WhatsApp", "whatsapp", "+15550001")
WA2 = ChannelFacts(11, "Second WhatsApp", "whatsapp", "+15550002")
BOT = ChannelFacts(12, "Support bot", "telegram", "@acme_support_bot")
TG = ChannelFacts(13, "Ana's Telegram", "telegram", "@ana_sells")
IG = ChannelFacts(14, "Shop Instagram", "instagram", "@acme.shop")
WABA = ChannelFacts(15, "Official", "waba", "+15550003")
OFF = ChannelFacts(16, "Old WhatsApp", "whatsapp", "+15550004", is_enabled=False)
ALL = (WA, WA2, BOT, TG, IG, WABA, OFF)

CONTACT_REF = EntityRef(CONTACT, "900")
LEAD_REF = EntityRef(LEAD, "700")


def client(
    responsible: str = "501", *, lead_responsible: str | None = None, lead_closed: bool = False, **kw
) -> CardClient:
    states = {CONTACT_REF: EntityState(responsible)}
    entity = None
    if lead_responsible is not None:
        entity = LEAD_REF
        states[LEAD_REF] = EntityState(lead_responsible, lead_closed)
    addresses = kw.pop("addresses", (Address(PHONE, "+5511987654321", "900"), Address("telegram", "777", "900")))
    return CardClient(entity or CONTACT_REF, "900", entity, "Ana Souza", states, addresses)


def viewer(emp: int, role: str | None, channels=ALL) -> Viewer:
    return Viewer(emp, {c.id: role for c in channels} if role else {})


def plan(
    emp: int, role: str | None, the_client: CardClient | None = None, *, existing=None, default=None, channels=ALL
):
    return plan_start(
        viewer(emp, role, channels), CRM_ID[emp], the_client or client(), channels, existing or {}, default
    )


def actions(p) -> dict[int, tuple[Action, Why | None]]:
    return {o.channel.id: (o.action, o.why) for o in p.options}


def test_a_sales_rep_starts_only_with_their_own_clients():
    mine = plan(ANA, SELLER, client(responsible="501"))
    assert mine.can_start and actions(mine)[WA.id] == (Action.START, None)
    theirs = plan(BOB, SELLER, client(responsible="501"))
    assert not theirs.can_start
    assert {why for _, why in actions(theirs).values()} == {Why.NOT_RESPONSIBLE}


def test_on_a_lead_card_the_open_leads_responsible_decides_and_a_closed_one_gives_way_to_the_contact():
    open_lead = client(responsible="501", lead_responsible="502")
    assert plan(BOB, SELLER, open_lead).can_start
    assert not plan(ANA, SELLER, open_lead).can_start
    closed = client(responsible="501", lead_responsible="502", lead_closed=True)
    assert plan(ANA, SELLER, closed).can_start and not plan(BOB, SELLER, closed).can_start


def test_a_head_starts_with_anyone_and_quality_control_never():
    head = plan(HEIDI, HEAD, client(responsible="502"))
    assert actions(head)[WA.id] == (Action.START, None)
    qc = plan(QUINN, QC)
    assert not qc.can_start and qc.default_channel_id is None
    assert {why for _, why in actions(qc).values()} == {Why.QC}


def test_channels_without_a_role_or_disabled_are_not_offered():
    some = Viewer(HEIDI, {WA.id: HEAD, OFF.id: HEAD})
    p = plan_start(some, CRM_ID[HEIDI], client(), ALL, {}, None)
    assert [o.channel.id for o in p.options] == [WA.id]
    nothing = plan(HEIDI, None)
    assert nothing.options == () and not nothing.can_start


def test_messengers_that_cannot_write_first_say_why():
    p = actions(plan(HEIDI, HEAD))
    assert p[BOT.id] == (Action.NONE, Why.BOT)
    assert p[IG.id] == (Action.NONE, Why.INSTAGRAM)
    assert p[WABA.id] == (Action.NONE, Why.WABA)
    assert p[TG.id] == (Action.START, None)  # a person's Telegram account may write first


def test_a_telegram_account_writes_to_the_telegram_id_first_then_the_phone_and_whatsapp_only_to_phones():
    p = plan(HEIDI, HEAD)
    tg = p.option(TG.id)
    wa = p.option(WA.id)
    assert tg is not None and [a.kind for a in tg.addresses] == ["telegram", PHONE]
    assert wa is not None and [a.kind for a in wa.addresses] == [PHONE]
    no_phone = client(addresses=(Address("telegram", "777", "900"),))
    assert actions(plan(HEIDI, HEAD, no_phone))[WA.id] == (Action.NONE, Why.NO_ADDRESS)
    nothing = client(addresses=())
    assert actions(plan(HEIDI, HEAD, nothing))[TG.id] == (Action.NONE, Why.NO_ADDRESS)


def test_an_existing_chat_is_opened_not_duplicated_even_where_writing_first_is_impossible():
    existing = {WA.id: ExistingChat(55, visible=True), BOT.id: ExistingChat(56, visible=True)}
    p = plan(HEIDI, HEAD, existing=existing)
    assert (p.option(WA.id).action, p.option(WA.id).chat_id) == (Action.OPEN, 55)  # type: ignore[union-attr]
    assert (p.option(BOT.id).action, p.option(BOT.id).chat_id) == (Action.OPEN, 56)  # type: ignore[union-attr]
    hidden = plan(ANA, SELLER, existing={WA.id: ExistingChat(55, visible=False)})
    assert actions(hidden)[WA.id] == (Action.NONE, Why.HIDDEN)
    # Someone else's client: the reason is the right, not that a chat exists.
    not_mine = plan(BOB, SELLER, existing={WA.id: ExistingChat(55, visible=False)})
    assert actions(not_mine)[WA.id] == (Action.NONE, Why.NOT_RESPONSIBLE)


def test_the_default_channel_is_proposed_when_usable_else_the_first_usable_one():
    assert plan(HEIDI, HEAD, default=TG.id).default_channel_id == TG.id
    assert plan(HEIDI, HEAD, default=None).default_channel_id == WA.id
    assert plan(HEIDI, HEAD, default=BOT.id).default_channel_id == WA.id  # the bot cannot start
    assert plan(HEIDI, HEAD, default=OFF.id).default_channel_id == WA.id  # disabled
    only_open = plan(HEIDI, HEAD, channels=(BOT,), existing={BOT.id: ExistingChat(56, True)})
    assert only_open.default_channel_id == BOT.id


def test_addresses_are_read_as_we_write_them():
    assert phone_address("+55 (11) 98765-4321", "1") == Address(PHONE, "+5511987654321", "1")
    assert phone_address("12", "1") is None
    assert im_address("telegram:777", None) == Address("telegram", "777", None)
    assert im_address("@someone", "1") is None  # typed by a person: not a chat id we know
    twice = unique([phone_address("+5511987654321", "1"), phone_address("5511987654321", "2"), None])
    assert len(twice) == 1
    assert is_telegram_bot(BOT) and not is_telegram_bot(TG)
    assert chat_target("whatsapp", Address(PHONE, "+5511987654321", None)) == ("whatsapp", "5511987654321")
    assert chat_target("telegram", Address("telegram", "777", None)) == ("telegram", "777")
    assert client_key_of(Address(PHONE, "+5511987654321", None)) == "phone:+5511987654321"
    assert client_key_of(Address("telegram", "777", None)) == "telegram:777"
