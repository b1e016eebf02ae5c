"""Keeping chats' responsibles in step with the CRM: Kommo webhook subscriptions, and when each
chat's responsible was last confirmed by the CRM."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from widget.db import Base
from widget.models._base import UTCDateTime, utcnow


class KommoWebhook(Base):
    """The account's entity-webhook subscription (``POST /api/v4/webhooks``).

    Kommo's entity webhooks carry no signature (reference §7 only signs the chats API), so the
    destination URL holds an unguessable per-account token. Only its SHA-256 is looked up; the token
    itself is kept encrypted to rebuild the destination when it has to be subscribed again.
    """

    __tablename__ = "kommo_webhooks"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    # What Kommo last accepted: our public URL it posts to ("" until subscribed) and the events.
    # Never the address itself: that holds the token, which is stored only sealed (above).
    destination_base: Mapped[str] = mapped_column(String(500), default="")
    events: Mapped[str] = mapped_column(String(200), default="")
    subscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ChatCrmCheck(Base):
    """When the CRM last confirmed (or changed) a chat's responsible, so a chat opened with an old
    copy re-reads it. No row: the copy dates from the chat's resolution, right after it was made."""

    __tablename__ = "chat_crm_checks"

    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
