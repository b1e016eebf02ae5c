"""Inbound client messages from the messaging gateway: storing a message together with the CRM work
it causes, in one transaction. (What deliveries are signed with: ``widget.services.channels.signing``.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from widget.db import Database
from widget.domain.conversations import client_key
from widget.domain.inbound import InboundMessage
from widget.domain.ports import JobQueue
from widget.models._base import utcnow
from widget.models.conversations import DIRECTION_IN, Chat, Client, Message
from widget.services.conversations.distribution.keys import RESOLVE_CLIENT, resolve_key
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.outbox import insert_or_ignore, nudge, record_operation

# --- storing ---------------------------------------------------------------------------------------

STORED = "stored"
DUPLICATE = "duplicate"
CHANNEL_GONE = "channel_gone"


@dataclass(frozen=True)
class InboundResult:
    status: str
    message_id: int | None = None
    chat_id: int | None = None


def store_inbound(
    database: Database, jobs: JobQueue, account_id: int, msg: InboundMessage, now: datetime | None = None
) -> InboundResult:
    """Store a client's message, its chat and client, and the CRM work a new chat needs, in one
    transaction; then nudge the job. No CRM call happens here.

    A redelivered message id (even concurrently, from several processes) hits the unique
    constraint's ON CONFLICT DO NOTHING and changes nothing. Inserts return their ids, so a new
    client's message costs one round trip per row.
    """
    now = now or utcnow()
    key = client_key(msg.phone, msg.chat_type, msg.chat_id)
    op_ids: list[int] = []
    try:
        with database.transaction() as session:
            # First statement is a write: on SQLite it takes the write lock before any read, so this
            # transaction never has to upgrade a stale read snapshot.
            client_id = insert_or_ignore(
                session,
                Client,
                {"account_id": account_id, "key": key, "phone": msg.phone, "name": msg.sender_name, "created_at": now},
                ["account_id", "key"],
            )
            if client_id is None:
                client_id = session.execute(
                    select(Client.id).where(Client.account_id == account_id, Client.key == key)
                ).scalar_one()
            chat_values = {
                "account_id": account_id,
                "channel_id": msg.channel_id,
                "client_id": client_id,
                "chat_type": msg.chat_type,
                "external_chat_id": msg.chat_id,
                "title": msg.sender_name or msg.phone or msg.chat_id,
                "assignment": "resolving",
                "is_new_client": False,
                "last_message_at": msg.sent_at,
                "last_message_preview": msg.text[:200],
                "last_direction": DIRECTION_IN,
                "unanswered": True,
                "unanswered_since": msg.sent_at,
                "created_at": now,
            }
            chat_id = insert_or_ignore(
                session, Chat, chat_values, ["account_id", "channel_id", "chat_type", "external_chat_id"]
            )
            new_chat = chat_id is not None
            if chat_id is None:
                chat_id = session.execute(
                    select(Chat.id).where(
                        Chat.account_id == account_id,
                        Chat.channel_id == msg.channel_id,
                        Chat.chat_type == msg.chat_type,
                        Chat.external_chat_id == msg.chat_id,
                    )
                ).scalar_one()
            message_id = insert_or_ignore(
                session,
                Message,
                {
                    "account_id": account_id,
                    "channel_id": msg.channel_id,
                    "chat_id": chat_id,
                    "gateway_message_id": msg.message_id,
                    "direction": DIRECTION_IN,
                    "sender_name": msg.sender_name,
                    "text": msg.text,
                    "delivery": "",
                    "sent_at": msg.sent_at,
                    "received_at": now,
                },
                ["account_id", "channel_id", "gateway_message_id"],
            )
            if message_id is None:
                session.rollback()  # nothing of this delivery is new, not even the chat or client rows
                return InboundResult(DUPLICATE, chat_id=chat_id)
            note_chat_list_change(session, account_id)  # a new client message: the chat panel shows it
            if new_chat:
                op_id = record_operation(
                    session,
                    account_id,
                    RESOLVE_CLIENT,
                    resolve_key(chat_id),
                    {"phone": msg.phone, "messenger": msg.chat_type, "messenger_id": msg.chat_id},
                    chat_id=chat_id,
                    now=now,
                )
                if op_id is not None:
                    op_ids.append(op_id)
            else:
                # A late delivery of an older message must not make the chat look newer; any
                # client message makes it unanswered until someone replies.
                session.execute(
                    update(Chat)
                    .where(Chat.id == chat_id, Chat.last_message_at <= msg.sent_at)
                    .values(
                        last_message_at=msg.sent_at,
                        last_message_preview=msg.text[:200],
                        last_direction=DIRECTION_IN,
                    )
                )
                session.execute(
                    update(Chat)
                    .where(Chat.id == chat_id, Chat.unanswered.is_(False), Chat.last_direction == DIRECTION_IN)
                    .values(unanswered=True, unanswered_since=msg.sent_at)
                )
            result = InboundResult(STORED, message_id=int(message_id), chat_id=int(chat_id))
    except IntegrityError:
        # The channel (or the account) was deleted while the message was on its way.
        return InboundResult(CHANNEL_GONE)
    nudge(jobs, op_ids)
    return result
