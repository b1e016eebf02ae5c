"""Channels, their per-channel settings and per-channel employee roles, and account-wide options."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from widget.db import Base
from widget.models._base import UTCDateTime, utcnow

TRANSPORTS = ("whatsapp", "waba", "telegram", "instagram")

DISTRIBUTION_FIRST_REPLY = "first_reply"
DISTRIBUTION_ROUND_ROBIN = "round_robin"

# What a new client creates (product.md §2).
NEW_CLIENT_LEAD = "lead"  # Kommo: contact + lead; Bitrix24: a lead
NEW_CLIENT_DEAL = "deal"  # Bitrix24: contact + deal


class Channel(Base):
    __tablename__ = "channels"
    __table_args__ = (Index("ix_channels_account_created", "account_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    transport: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(120))
    # The phone number or handle of the messenger account.
    address: Mapped[str] = mapped_column(String(120))
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ChannelSettings(Base):
    """What the "CRM integration" tab saves for one channel.

    Pipeline and stage are kept as CRM ids (not our row ids) so a pipeline that vanished from the
    CRM and came back is still recognised, and one that is gone can be flagged.
    """

    __tablename__ = "channel_settings"

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    new_client_entity: Mapped[str] = mapped_column(String(16), default=NEW_CLIENT_LEAD)
    crm_pipeline_id: Mapped[str | None] = mapped_column(String(64))
    crm_stage_id: Mapped[str | None] = mapped_column(String(64))
    distribution: Mapped[str] = mapped_column(String(16), default=DISTRIBUTION_FIRST_REPLY)
    # Round-robin cursor: how many clients this channel has handed out in turn.
    turn_counter: Mapped[int] = mapped_column(Integer, default=0)
    saved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ChannelRole(Base):
    """One employee's role on one channel. Absent row = no role."""

    __tablename__ = "channel_roles"
    __table_args__ = (
        UniqueConstraint("channel_id", "employee_id", name="uq_channel_roles_channel_employee"),
        Index("ix_channel_roles_employee", "employee_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    employee_id: Mapped[int] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"))
    role: Mapped[str | None] = mapped_column(String(16))  # seller / head / qc / None
    gets_new_clients: Mapped[bool] = mapped_column(Boolean, default=False)
    # Round robin: how many new clients this employee has received on this channel.
    assigned_count: Mapped[int] = mapped_column(Integer, default=0)


class AccountSettings(Base):
    """The "Advanced" tab: account-wide options."""

    __tablename__ = "account_settings"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    default_channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))
    notify_heads_all: Mapped[bool] = mapped_column(Boolean, default=False)
    fallback_employee_id: Mapped[int | None] = mapped_column(ForeignKey("employees.id", ondelete="SET NULL"))
    # Set after the first successful save of the CRM integration tab (drives the test-message dialog).
    first_saved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    test_message_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
