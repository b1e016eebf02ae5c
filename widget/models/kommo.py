"""Kommo-only records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from widget.db import Base
from widget.models._base import UTCDateTime, utcnow


class KommoExchangedTokens(Base):
    """The token pair a pending install's code was exchanged for, kept (encrypted) until the
    account row exists.

    A Kommo code works once (reference §1.2-1.4), so its result must be durable before the next
    step (reading the account) can fail: a retry then continues from the stored pair instead of
    sending a spent code again.
    """

    __tablename__ = "kommo_exchanged_tokens"

    pending_install_id: Mapped[int] = mapped_column(
        ForeignKey("pending_installs.id", ondelete="CASCADE"), primary_key=True
    )
    access_token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
