"""The test message a new installation asks for after its first save (product.md §4)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from widget.db import Base
from widget.models._base import UTCDateTime, utcnow

TEST_MESSAGE_PENDING = "pending"  # recorded by the settings page; the conversations work sends it
TEST_MESSAGE_SENT = "sent"
TEST_MESSAGE_FAILED = "failed"


class TestMessageRequest(Base):
    """One per account: the account primary key makes "asked once" hold across processes.

    ``AccountSettings.test_message_requested_at`` says *that* it was asked; this row says *where*
    (the first WhatsApp, WABA or Telegram channel at that moment) and how far the sending got.
    """

    __test__ = False  # not a pytest test class, whatever its name says
    __tablename__ = "test_message_requests"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    requested_by_crm_user_id: Mapped[str] = mapped_column(String(64), default="")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=TEST_MESSAGE_PENDING)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The page language of the admin who asked (es/en/pt/ru): the test client writes in it. Empty
    # for requests recorded before it was kept; their admin's CRM language is used instead.
    lang: Mapped[str] = mapped_column(String(8), default="", server_default="")
