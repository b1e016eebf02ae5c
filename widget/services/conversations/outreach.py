"""Starting a conversation from a CRM card: read the card's client from the CRM, decide with
``widget.domain.outreach`` what this employee may do on each channel, and start the chat.

The first message goes out exactly as any reply does (``widget.services.conversations.replies.send_reply``:
recorded first, delivered by a job, idempotent by its key, the right to write checked again under
the chat's lock). The chat is made in its own short transaction just before; one unique key per
(channel, messenger chat) makes a second start for the same client — by a colleague at the same
instant, or a retry — land on the same chat, which is then opened rather than doubled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select, tuple_
from sqlalchemy.orm import Session

from widget.db import Database
from widget.domain.outreach import (
    Action,
    Address,
    CardClient,
    CardReader,
    ChannelFacts,
    ExistingChat,
    StartPlan,
    Why,
    candidate_chats,
    chat_target,
    client_key_of,
    plan_start,
)
from widget.domain.ports import EntityRef
from widget.domain.visibility import ASSIGNED, Viewer, can_see
from widget.extensions import AppServices
from widget.models import AccountSettings, Channel, Employee
from widget.models._base import utcnow
from widget.models.conversations import DIRECTION_OUT, Chat, Client, Message
from widget.models.replies import OutboundDelivery
from widget.models.responsibility import ChatCrmCheck
from widget.services.conversations import replies
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.conversations.viewers import chat_facts, viewer_for
from widget.services.outbox import CrmPortMissing, crm_port_for, insert_or_ignore

STARTED = "started"  # the chat was made and the first message recorded
OPENED = "opened"  # the client already has a chat on that channel: open it (nothing was sent)
DUPLICATE = "duplicate"  # this start was done before (same key): its message is the answer
REFUSED = "refused"  # not allowed or not possible: ``why`` says why
INVALID = "invalid"  # the request named something that is not on offer (a channel, an address)


def port_card_reader(database: Database, services: AppServices, account_id: int) -> CardReader:
    """The account's CRM adapter as a ``CardReader`` (the app's ``card_reader`` by default)."""
    port = crm_port_for(database, services, account_id)
    if not isinstance(port, CardReader):
        raise CrmPortMissing(f"the CRM port of account {account_id} cannot read a card's client")
    return port


class CardNotFound(LookupError):
    """The CRM has no such card in this account (another account's id, a deleted record)."""


@dataclass(frozen=True)
class CardStart:
    client: CardClient
    plan: StartPlan
    responsible_name: str  # the CRM responsible as an employee of ours ("" when not synced)


def _channels(session: Session, account_id: int) -> list[ChannelFacts]:
    rows = session.execute(
        select(Channel).where(Channel.account_id == account_id).order_by(Channel.created_at, Channel.id)
    ).scalars()
    return [ChannelFacts(c.id, c.name, c.transport, c.address, c.is_enabled) for c in rows]


def _existing(
    session: Session, account_id: int, viewer: Viewer, channels: list[ChannelFacts], client: CardClient
) -> dict[int, ExistingChat]:
    """The newest chat the client has on each channel the viewer has a role on (one statement):
    tied to the card's contact or lead/deal, or with one of the client's numbers or ids."""
    ids = [c.id for c in channels if viewer.role_on(c.id) is not None]
    if not ids:
        return {}
    targets: set[tuple[str, str]] = set()
    keys: set[str] = set()
    for ch in channels:
        if ch.id in ids:
            t, k = candidate_chats(ch, client)
            targets |= t
            keys |= k
    same: list[object] = []
    if client.contact_id:
        same.append(Chat.crm_contact_id == client.contact_id)
    if client.entity is not None:
        same.append(and_(Chat.crm_entity_kind == client.entity.kind, Chat.crm_entity_id == client.entity.crm_id))
    if targets:
        same.append(tuple_(Chat.chat_type, Chat.external_chat_id).in_(sorted(targets)))
    if keys:
        same.append(
            Chat.client_id.in_(select(Client.id).where(Client.account_id == account_id, Client.key.in_(sorted(keys))))
        )
    if not same:
        return {}
    found: dict[int, ExistingChat] = {}
    chats = session.execute(
        select(Chat)
        .where(Chat.account_id == account_id, Chat.channel_id.in_(ids), or_(*same))  # type: ignore[arg-type]
        .order_by(Chat.last_message_at.desc(), Chat.id.desc())
        .limit(50)
    ).scalars()
    for chat in chats:
        if chat.channel_id not in found:
            found[chat.channel_id] = ExistingChat(chat.id, can_see(viewer, chat_facts(session, chat)))
    return found


def load_card_start(
    database: Database, services: AppServices, account_id: int, employee: Employee, card: EntityRef
) -> CardStart:
    """The card's client as the CRM has it now, and what this employee may do about them. The CRM
    is read before any transaction is opened; ``CrmError`` passes through."""
    client = services.card_reader(database, services, account_id).read_card(card)
    if client is None:
        raise CardNotFound(card)
    with database.transaction() as session:
        viewer = viewer_for(session, account_id, employee.id)
        channels = _channels(session, account_id)
        default = session.execute(
            select(AccountSettings.default_channel_id).where(AccountSettings.account_id == account_id)
        ).scalar_one_or_none()
        existing = _existing(session, account_id, viewer, channels, client)
        plan = plan_start(viewer, employee.crm_user_id, client, channels, existing, default)
        name = ""
        if plan.responsible_crm_user_id:
            name = (
                session.execute(
                    select(Employee.name).where(
                        Employee.account_id == account_id, Employee.crm_user_id == plan.responsible_crm_user_id
                    )
                ).scalar_one_or_none()
                or ""
            )
    return CardStart(client, plan, name)


@dataclass(frozen=True)
class StartOutcome:
    status: str
    chat_id: int | None = None
    message_id: int | None = None
    why: Why | None = None
    start: CardStart | None = None  # what the CRM said, for the caller's wording


def _earlier(database: Database, account_id: int, employee_id: int, key: str) -> StartOutcome | None:
    """A start sent again after a lost answer: the message stored under its key is the answer. A key
    of someone else's message names nothing of theirs to this caller."""
    with database.transaction() as session:
        row = session.execute(
            select(OutboundDelivery.message_id, OutboundDelivery.chat_id, Message.author_employee_id)
            .join(Message, Message.id == OutboundDelivery.message_id)
            .where(OutboundDelivery.account_id == account_id, OutboundDelivery.idempotency_key == key)
        ).first()
    if row is None:
        return None
    if row.author_employee_id != employee_id:
        return StartOutcome(INVALID)
    return StartOutcome(DUPLICATE, chat_id=int(row.chat_id), message_id=int(row.message_id))


def _make_chat(
    database: Database, account_id: int, channel: ChannelFacts, client: CardClient, address: Address, now: datetime
) -> tuple[int, bool]:
    """The chat with this client on this channel: (id, made now). Its responsible is the client's
    CRM responsible (the CRM is the source of truth); we just read the CRM, so it is confirmed."""
    chat_type, external_id = chat_target(channel.transport, address)
    responsible = client.responsible_crm_user_id
    with database.transaction() as session:
        key = client_key_of(address)
        client_id = insert_or_ignore(
            session,
            Client,
            {
                "account_id": account_id,
                "key": key,
                "phone": address.value if address.key.startswith("phone:") else None,
                "name": client.name[:255],
                "crm_contact_id": client.contact_id,
                "created_at": now,
            },
            ["account_id", "key"],
        )
        if client_id is None:
            client_id = session.execute(
                select(Client.id).where(Client.account_id == account_id, Client.key == key)
            ).scalar_one()
        owner = None
        if responsible:
            owner = session.execute(
                select(Employee.id).where(Employee.account_id == account_id, Employee.crm_user_id == responsible)
            ).scalar_one_or_none()
        chat_id = insert_or_ignore(
            session,
            Chat,
            {
                "account_id": account_id,
                "channel_id": channel.id,
                "client_id": client_id,
                "chat_type": chat_type,
                "external_chat_id": external_id,
                "title": (client.name or address.value)[:255],
                "assignment": ASSIGNED,
                "responsible_employee_id": owner,
                "crm_responsible_user_id": responsible,
                "is_new_client": False,
                "crm_contact_id": client.contact_id,
                "crm_entity_kind": client.entity.kind if client.entity else None,
                "crm_entity_id": client.entity.crm_id if client.entity else None,
                "last_message_at": now,
                "last_message_preview": "",
                "last_direction": DIRECTION_OUT,
                "unanswered": False,
                "created_at": now,
            },
            ["account_id", "channel_id", "chat_type", "external_chat_id"],
        )
        if chat_id is None:
            session.rollback()
            existing = session.execute(
                select(Chat.id).where(
                    Chat.account_id == account_id,
                    Chat.channel_id == channel.id,
                    Chat.chat_type == chat_type,
                    Chat.external_chat_id == external_id,
                )
            ).scalar_one()
            return int(existing), False
        insert_or_ignore(
            session, ChatCrmCheck, {"chat_id": chat_id, "account_id": account_id, "confirmed_at": now}, ["chat_id"]
        )
        note_chat_list_change(session, account_id)
        return int(chat_id), True


def start_conversation(
    database: Database,
    services: AppServices,
    account_id: int,
    employee: Employee,
    card: EntityRef | CardStart,
    channel_id: int,
    address_key: str | None,
    text: str,
    *,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> StartOutcome:
    """Write the first message to the card's client on ``channel_id`` (to ``address_key``, or the
    first address the channel can reach), if this employee may: the rules are decided on what the
    CRM says now (``card``: the card, or what ``load_card_start`` just read of it), whatever the
    page showed."""
    now = now or utcnow()
    key = (idempotency_key or "").strip()[:80] or replies.new_key()
    earlier = _earlier(database, account_id, employee.id, key)
    if earlier is not None:
        return earlier
    start = card if isinstance(card, CardStart) else load_card_start(database, services, account_id, employee, card)
    option = start.plan.option(channel_id)
    if option is None:
        return StartOutcome(INVALID, start=start)
    if option.action is Action.OPEN:
        return StartOutcome(OPENED, chat_id=option.chat_id, start=start)
    if option.action is Action.NONE:
        return StartOutcome(REFUSED, why=option.why, start=start)
    address = next((a for a in option.addresses if a.key == address_key), None) if address_key else option.addresses[0]
    if address is None:
        return StartOutcome(INVALID, start=start)
    chat_id, made = _make_chat(database, account_id, option.channel, start.client, address, now)
    if not made:
        return StartOutcome(OPENED, chat_id=chat_id, start=start)
    sent = replies.send_reply(
        database, services.jobs, account_id, chat_id, employee.id, text, idempotency_key=key, now=now
    )
    if sent.status not in (replies.SENT, replies.DUPLICATE):
        # The rights changed between our read and the lock (a role removed this instant): the chat
        # stays, empty, for whoever may write; nothing was sent.
        return StartOutcome(REFUSED, chat_id=chat_id, why=Why.NOT_RESPONSIBLE, start=start)
    return StartOutcome(STARTED, chat_id=chat_id, message_id=sent.message_id, start=start)
