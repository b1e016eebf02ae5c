"""Conversations: clients, their chats and messages, first-to-answer offers, the gateway secret,
the round-robin turns, and the outbox of CRM work.

Indexes follow the queries that must stay fast at a million chats per account:

* a sales rep's list: ``ix_chats_responsible_recent`` (their own clients, newest first) plus their
  open offers through ``ix_chat_offers_employee`` (a handful of rows, deleted once claimed);
* a head's or quality control's list: ``ix_chats_channel_recent`` (one channel) or
  ``ix_chats_account_recent`` (many channels), newest first;
* unanswered counters: the partial ``ix_chats_unanswered`` holds only unanswered chats;
* the card scope (chats of one CRM contact / lead / deal): ``ix_chats_crm_contact``, ``ix_chats_crm_entity``;
* the outbox sweep: the partial ``ix_crm_operations_due`` holds only unfinished work.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from widget.db import Base
from widget.models._base import UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids for the big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")

DIRECTION_IN = "in"  # from the client
DIRECTION_OUT = "out"  # from an employee

# Outbox states (see widget.services.outbox for the machine).
OP_PENDING = "pending"
OP_RUNNING = "running"
OP_DONE = "done"
OP_FAILED = "failed"


class GatewaySecret(Base):
    """The per-account key the messaging gateway signs its deliveries with (encrypted at rest).

    After a rotation the previous key stays valid until ``previous_valid_until``, so the gateway can
    be switched over without losing messages.
    """

    __tablename__ = "gateway_secrets"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Client(Base):
    """A person writing from a messenger, one per phone (or per messenger chat without a phone)."""

    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("account_id", "key", name="uq_clients_account_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(255), default="")
    crm_contact_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Chat(Base):
    """One messenger conversation on one channel, and where it stands in distribution."""

    __tablename__ = "chats"
    __table_args__ = (
        UniqueConstraint("account_id", "channel_id", "chat_type", "external_chat_id", name="uq_chats_channel_chat"),
        Index("ix_chats_responsible_recent", "account_id", "responsible_employee_id", "last_message_at", "id"),
        Index("ix_chats_channel_recent", "account_id", "channel_id", "last_message_at", "id"),
        Index("ix_chats_account_recent", "account_id", "last_message_at", "id"),
        Index(
            "ix_chats_unanswered",
            "account_id",
            "channel_id",
            "responsible_employee_id",
            sqlite_where=text("unanswered"),
            postgresql_where=text("unanswered"),
        ),
        Index("ix_chats_crm_contact", "account_id", "crm_contact_id"),
        Index("ix_chats_crm_entity", "account_id", "crm_entity_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    chat_type: Mapped[str] = mapped_column(String(16))
    external_chat_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(255), default="")
    # widget.domain.visibility: resolving / assigned / offered / unassigned
    assignment: Mapped[str] = mapped_column(String(16), default="resolving")
    responsible_employee_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id", ondelete="SET NULL"))
    # The CRM user id as the CRM told us, kept even when that user is not synced locally yet.
    crm_responsible_user_id: Mapped[str | None] = mapped_column(String(64))
    claimed_by_employee_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id", ondelete="SET NULL"))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    is_new_client: Mapped[bool] = mapped_column(Boolean, default=False)
    crm_contact_id: Mapped[str | None] = mapped_column(String(64))
    crm_entity_kind: Mapped[str | None] = mapped_column(String(16))  # lead / deal
    crm_entity_id: Mapped[str | None] = mapped_column(String(64))
    crm_incoming_uid: Mapped[str | None] = mapped_column(String(64))
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_message_preview: Mapped[str] = mapped_column(String(200), default="")
    last_direction: Mapped[str] = mapped_column(String(4), default=DIRECTION_IN)
    # Unanswered: the last message is the client's and nobody replied or pressed "No reply needed".
    unanswered: Mapped[bool] = mapped_column(Boolean, default=False)
    unanswered_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ChatOffer(Base):
    """First to answer: the chat is offered to this employee until somebody claims it."""

    __tablename__ = "chat_offers"
    __table_args__ = (Index("ix_chat_offers_employee", "account_id", "employee_id", "chat_id"),)

    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # The gateway's id makes a redelivery land on the same row: stored once, processed once.
        UniqueConstraint("account_id", "channel_id", "gateway_message_id", name="uq_messages_gateway_id"),
        Index("ix_messages_chat_sent", "chat_id", "sent_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    gateway_message_id: Mapped[str | None] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(4))
    author_employee_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id", ondelete="SET NULL"))
    sender_name: Mapped[str] = mapped_column(String(255), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    # Outbound delivery through the gateway: queued / sent / failed ("" for inbound).
    delivery: Mapped[str] = mapped_column(String(16), default="")
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DistributionTurn(Base):
    """Round robin: the channel's turn number when this employee last received a new client."""

    __tablename__ = "distribution_turns"

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    last_turn: Mapped[int] = mapped_column(Integer, default=0)


class CrmOperation(Base):
    """One CRM side effect, recorded before it is attempted (the outbox).

    ``idempotency_key`` is unique per account, so recording the same work twice is a no-op, and it
    is handed to the CRM port so a re-run after a crash finds what the first run created.
    """

    __tablename__ = "crm_operations"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_crm_operations_key"),
        Index(
            "ix_crm_operations_due",
            "next_attempt_at",
            sqlite_where=text("status IN ('pending', 'running')"),
            postgresql_where=text("status IN ('pending', 'running')"),
        ),
        Index("ix_crm_operations_chat", "chat_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    chat_id: Mapped[int | None] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=OP_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A worker owns a running operation until its lease ends; after that the sweep takes it back.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    result: Mapped[str] = mapped_column(Text, default="")
    last_error: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
