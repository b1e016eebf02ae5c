"""Outbound replies on their way to the messaging gateway.

The message itself is a ``messages`` row (``direction="out"``); its delivery is a row here, written
in the same transaction, so a reply is never stored without the work of sending it. The row's
``idempotency_key`` is unique per account: the page sends one key per typed reply (a double click
or a retried request stores it once), and the gateway receives it as the message id, so a resend
after a lost answer is recognised there too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from widget.db import Base
from widget.models._base import UTCDateTime, utcnow
from widget.models.conversations import BigId

# Delivery states. ``messages.delivery`` mirrors the user-visible part: queued / sent / failed.
DELIVERY_QUEUED = "queued"  # waiting for its (next) attempt
DELIVERY_SENDING = "sending"  # a worker holds it until ``next_attempt_at`` (its lease)
DELIVERY_SENT = "sent"
DELIVERY_FAILED = "failed"


class OutboundDelivery(Base):
    __tablename__ = "outbound_deliveries"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", name="uq_outbound_deliveries_key"),
        # Only unfinished deliveries: what the sweep looks at stays small however many were sent.
        Index(
            "ix_outbound_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("status IN ('queued', 'sending')"),
            postgresql_where=text("status IN ('queued', 'sending')"),
        ),
    )

    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), default=DELIVERY_QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    # Why the last attempt did not get through, in words for the employee who wrote the reply.
    last_error: Mapped[str] = mapped_column(String(500), default="")
    gateway_message_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
