"""The gateway's deliveries as they arrive: the durable acknowledgement of an inbound message.

``POST /gateway/messages`` verifies the signature and the payload, writes one row here in one
statement (the message is now safe), answers 200, and nudges a job. The job turns pending rows into
clients, chats, messages and CRM work (``widget.services.inbound.receipts``). The unique key makes a
redelivery, even a concurrent one, land on the same row; the messages table's own unique key makes
processing a row twice (a crashed or duplicated job) change nothing.

Pending rows are found through the partial index ``ix_inbound_deliveries_pending``, which holds only
the rows not processed yet, so it stays a handful of entries however many messages were received.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from widget.db import Base
from widget.models._base import UTCDateTime, utcnow
from widget.models.conversations import BigId


class InboundDelivery(Base):
    __tablename__ = "inbound_deliveries"
    __table_args__ = (
        UniqueConstraint("channel_id", "gateway_message_id", name="uq_inbound_deliveries_gateway_id"),
        Index(
            "ix_inbound_deliveries_pending",
            "id",
            sqlite_where=text("processed_at IS NULL"),
            postgresql_where=text("processed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key of its own: the channel's cascades from its account, and every index here is
    # paid for on the gateway's hottest insert.
    account_id: Mapped[int] = mapped_column(Integer)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    gateway_message_id: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text)  # the verified JSON exactly as signed
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A processor leases a batch of rows until ``lease_until``; a crashed one's lease runs out.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # stored / duplicate / channel_gone / invalid: what processing made of it.
    outcome: Mapped[str] = mapped_column(String(16), default="")
