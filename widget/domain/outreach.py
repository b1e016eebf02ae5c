"""Starting a conversation from a CRM card (product.md §1 roles, "Advanced" default channel, §5
card scope): who may write first to the card's client, on which channels, to which address, and
why not where they may not. Pure rules over facts the services gather; no Flask, no SQL, no HTTP.

Decisions:

* Rights are §1's write rights applied to a client who has no chat yet: a head may write to anyone
  on their channels, a sales rep only to a client the CRM makes them responsible for (the same
  "responsible" as everywhere: the card's open lead/deal, else the contact — ``crm_responsible``),
  quality control never, and a channel without a role is not offered at all.
* A head who starts a conversation does not become responsible: the CRM stays the source of truth
  for responsibility (product.md "Responsible"), so the chat belongs to the client's CRM responsible
  and the head writes as a head does in any chat. Taking the client over is done in the CRM, and
  the chat follows.
* Messengers that cannot write first are explained, not offered: a Telegram *bot* cannot message a
  user who never wrote to it (Bot API 403 "bot can't initiate conversation"); Instagram only answers
  within its messaging window; the WhatsApp Business API starts a conversation only with an approved
  template, which this integration does not send. A Telegram or WhatsApp *account* can write first.
* A chat the client already has on the channel is opened instead of making a second one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from widget.domain.channels import INSTAGRAM, TELEGRAM, WABA, WHATSAPP
from widget.domain.conversations import normalize_phone
from widget.domain.messenger_ids import parse_messenger_id
from widget.domain.ports import EntityRef
from widget.domain.responsibility import EntityState, crm_responsible
from widget.domain.roles import capabilities
from widget.domain.visibility import Viewer

PHONE = "phone"  # an address kind: a phone number; the others are messenger names (telegram, …)


# --- what the CRM card tells us -----------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """One way to reach the client, as the CRM holds it."""

    kind: str  # PHONE, or the messenger of an IM value ("telegram", "instagram", …)
    value: str  # "+" and digits for a phone; the messenger's chat id otherwise
    contact_id: str | None  # the contact it belongs to (None: a Bitrix24 lead's own field)

    @property
    def key(self) -> str:
        """Stable id of the address in a form ("phone:+5511…", "telegram:123")."""
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class CardClient:
    """The client of one CRM card, read from the CRM."""

    card: EntityRef  # the card itself: a contact, a lead or a deal
    contact_id: str | None  # the main contact (a lead/deal's, or the card itself)
    entity: EntityRef | None  # the lead/deal the chat is tied to (None on a contact card)
    name: str
    states: Mapping[EntityRef, EntityState] = field(default_factory=dict)
    addresses: tuple[Address, ...] = ()

    @property
    def refs(self) -> tuple[EntityRef, ...]:
        refs = [EntityRef("contact", self.contact_id)] if self.contact_id else []
        if self.entity is not None:
            refs.append(self.entity)
        return tuple(refs)

    @property
    def responsible_crm_user_id(self) -> str | None:
        return crm_responsible(self.refs, self.states)


@runtime_checkable
class CardReader(Protocol):
    def read_card(self, card: EntityRef) -> CardClient | None:
        """The card's client with their phones and messenger ids and the responsibles, or None when
        the CRM has no such card (or it is not a kind this CRM shows us in)."""
        ...


def phone_address(raw: str | None, contact_id: str | None) -> Address | None:
    phone = normalize_phone(raw)
    return Address(PHONE, phone, contact_id) if phone else None


def im_address(raw: str | None, contact_id: str | None) -> Address | None:
    """An IM value written the way we write them ("telegram:123"); a value a person typed in
    another shape names no chat we could write to."""
    found = parse_messenger_id(raw)
    return Address(found.messenger, found.chat_id, contact_id) if found else None


def unique(addresses: Sequence[Address | None]) -> tuple[Address, ...]:
    seen: dict[tuple[str, str], Address] = {}
    for a in addresses:
        if a is not None and (a.kind, a.value) not in seen:
            seen[(a.kind, a.value)] = a
    return tuple(seen.values())


# --- channels ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelFacts:
    id: int
    name: str
    transport: str
    address: str  # the channel's own number or handle
    is_enabled: bool = True


def is_telegram_bot(channel: ChannelFacts) -> bool:
    """Telegram requires every bot's username to end in "bot"; a channel with a phone number or
    another username is a person's account, which can write first."""
    return channel.transport == TELEGRAM and channel.address.lower().rstrip("_").endswith("bot")


def reachable(channel: ChannelFacts, addresses: Sequence[Address]) -> tuple[Address, ...]:
    """The client's addresses this channel could write to first."""
    if channel.transport == WHATSAPP:
        return tuple(a for a in addresses if a.kind == PHONE)
    if channel.transport == TELEGRAM and not is_telegram_bot(channel):
        # A Telegram account writes to a user id it learnt before, or finds the user by phone.
        return tuple(a for a in addresses if a.kind == TELEGRAM) + tuple(a for a in addresses if a.kind == PHONE)
    return ()


def chat_target(transport: str, address: Address) -> tuple[str, str]:
    """(chat type, messenger chat id) of a conversation we start: a messenger id as it is; a phone
    as its digits, the chat id WhatsApp gives a number (the gateway resolves a Telegram phone)."""
    if address.kind == PHONE:
        return transport, address.value.lstrip("+")
    return transport, address.value


def client_key_of(address: Address) -> str:
    """Our client identity for this address (``widget.domain.conversations.client_key``)."""
    return f"phone:{address.value}" if address.kind == PHONE else address.key


# --- the rules ----------------------------------------------------------------------------------------


class Why(enum.Enum):
    """Why a channel is not offered for writing first (the web layer words each for people)."""

    QC = "qc"  # quality control reads, never writes
    NOT_RESPONSIBLE = "not_responsible"  # a sales rep, and the client is someone else's
    BOT = "telegram_bot"  # a Telegram bot cannot write to a user who never wrote to it
    INSTAGRAM = "instagram"  # Instagram answers only within its messaging window
    WABA = "waba_template"  # the WhatsApp Business API needs an approved template to write first
    NO_ADDRESS = "no_address"  # the CRM has nothing this messenger can reach the client at
    HIDDEN = "hidden_chat"  # the client has a chat there already, which this employee may not see


class Action(enum.Enum):
    START = "start"  # write the first message here
    OPEN = "open"  # a chat with the client exists on this channel: open it
    NONE = "none"  # not possible; ``why`` says why


@dataclass(frozen=True)
class ExistingChat:
    chat_id: int
    visible: bool  # whether this employee may see it (``visibility.can_see``)


@dataclass(frozen=True)
class ChannelOption:
    channel: ChannelFacts
    action: Action
    why: Why | None = None
    addresses: tuple[Address, ...] = ()  # where START may write (the first is proposed)
    chat_id: int | None = None  # the chat OPEN opens


@dataclass(frozen=True)
class StartPlan:
    options: tuple[ChannelOption, ...]  # the channels the employee has a role on, in channel order
    default_channel_id: int | None  # the one proposed: the default channel when usable, else the first
    responsible_crm_user_id: str | None

    @property
    def can_start(self) -> bool:
        return any(o.action is not Action.NONE for o in self.options)

    def option(self, channel_id: int) -> ChannelOption | None:
        return next((o for o in self.options if o.channel.id == channel_id), None)


def _transport_why(channel: ChannelFacts) -> Why | None:
    if is_telegram_bot(channel):
        return Why.BOT
    if channel.transport == INSTAGRAM:
        return Why.INSTAGRAM
    if channel.transport == WABA:
        return Why.WABA
    return None


def plan_start(
    viewer: Viewer,
    viewer_crm_user_id: str | None,
    client: CardClient,
    channels: Sequence[ChannelFacts],
    existing: Mapping[int, ExistingChat],
    default_channel_id: int | None,
) -> StartPlan:
    """What this employee may do on each channel to write to the card's client.

    ``channels`` in the account's order (oldest first); ``existing`` maps a channel id to the chat
    the client already has there. Disabled channels and channels without a role are left out.
    """
    responsible = client.responsible_crm_user_id
    options: list[ChannelOption] = []
    for ch in channels:
        role = viewer.role_on(ch.id)
        caps = capabilities(role)
        if not ch.is_enabled or not caps.sees_anything:
            continue
        found = existing.get(ch.id)
        if found is not None and found.visible:
            options.append(ChannelOption(ch, Action.OPEN, chat_id=found.chat_id))
            continue
        if not caps.writes_anything:
            options.append(ChannelOption(ch, Action.NONE, Why.QC))
            continue
        if not caps.write_any and (responsible is None or responsible != viewer_crm_user_id):
            options.append(ChannelOption(ch, Action.NONE, Why.NOT_RESPONSIBLE))
            continue
        if found is not None:
            # Theirs by the CRM, but our copy of the chat has not followed yet (it will, at the next
            # responsibility check): say so rather than make a second chat.
            options.append(ChannelOption(ch, Action.NONE, Why.HIDDEN))
            continue
        why = _transport_why(ch)
        if why is not None:
            options.append(ChannelOption(ch, Action.NONE, why))
            continue
        targets = reachable(ch, client.addresses)
        if not targets:
            options.append(ChannelOption(ch, Action.NONE, Why.NO_ADDRESS))
            continue
        options.append(ChannelOption(ch, Action.START, addresses=targets))
    usable = [o for o in options if o.action is Action.START]
    chosen = next((o for o in usable if o.channel.id == default_channel_id), None) or (usable[0] if usable else None)
    if chosen is None:
        chosen = next((o for o in options if o.action is Action.OPEN), None)
    return StartPlan(tuple(options), chosen.channel.id if chosen else None, responsible)


def candidate_chats(channel: ChannelFacts, client: CardClient) -> tuple[set[tuple[str, str]], set[str]]:
    """How to recognise a chat the client already has on this channel: (chat type, chat id) pairs a
    conversation with one of their addresses would have, and our client keys of those addresses."""
    targets = {chat_target(channel.transport, a) for a in client.addresses}
    keys = {client_key_of(a) for a in client.addresses}
    return targets, keys
