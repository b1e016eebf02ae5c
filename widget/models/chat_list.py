"""The chat list's change stamp: what lets the chat panel's two-second poll answer "nothing changed"
with one primary-key read instead of the list query."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from widget.db import Base


class ChatListStamp(Base):
    """A per-account counter, raised in the same transaction as every write that can change what
    some employee's chat list shows (``widget.services.conversations.list_stamps``). No row: nothing changed yet."""

    __tablename__ = "chat_list_stamps"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    stamp: Mapped[int] = mapped_column(BigInteger, default=0)
