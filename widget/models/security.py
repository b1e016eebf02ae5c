"""Records that make inbound calls safe: one-time nonces and pending Kommo installs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from widget.db import Base
from widget.models._base import UTCDateTime, utcnow


class UsedNonce(Base):
    """A one-time value already accepted (a widget JWT ``jti``, a launch token id).

    The primary key makes "accept once" atomic across processes: the second insert fails.
    """

    __tablename__ = "used_nonces"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


PENDING = "pending"
DONE = "done"
FAILED = "failed"


class PendingInstall(Base):
    """An authorization code received from Kommo, to be exchanged in the background.

    Kommo waits at most 3 s for the install webhook and never retries it, so the code is stored
    first and exchanged by a job that retries within the code's 20-minute life.
    """

    __tablename__ = "pending_installs"
    # The same code for the same host is one install, however often it is sent.
    __table_args__ = (Index("uq_pending_installs_code", "crm", "host", "code_hash", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    crm: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    code_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # SHA-256 of the code (hex): finds a repeated callback without opening every sealed code.
    code_hash: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # "widget" (webhook) or "button"
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(1000), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))


class CrmEvent(Base):
    """An inbound CRM change notification, recorded for the conversation logic to act on
    (Bitrix24 ONCRM*UPDATE events, Kommo responsible-change webhooks)."""

    __tablename__ = "crm_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(16), default="")
    entity_id: Mapped[str] = mapped_column(String(64), default="")
    payload: Mapped[str] = mapped_column(Text, default="{}")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
