"""Installed CRM accounts (tenants) and their OAuth tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from widget.db import Base
from widget.models._base import UTCDateTime, utcnow

CRM_KOMMO = "kommo"
CRM_BITRIX24 = "bitrix24"

# Account life cycle (product.md §6).
STATUS_PENDING = "pending"  # install seen, tokens not obtained yet
STATUS_ACTIVE = "active"
STATUS_NEEDS_REAUTH = "needs_reauth"  # the CRM rejected our refresh token / stored auth
STATUS_UNINSTALLED = "uninstalled"


class Account(Base):
    """One installed CRM account: a Kommo account or a Bitrix24 portal."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("crm", "external_id", name="uq_accounts_crm_external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    crm: Mapped[str] = mapped_column(String(16))
    # Kommo account_id / Bitrix24 member_id: stable across renames.
    external_id: Mapped[str] = mapped_column(String(64))
    # Kommo account host ("acme.kommo.com") / Bitrix24 portal host ("acme.bitrix24.com").
    domain: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default=STATUS_PENDING)
    status_reason: Mapped[str] = mapped_column(String(500), default="")
    # Bitrix24 only: where REST calls and token refreshes go, as received at install.
    client_endpoint: Mapped[str | None] = mapped_column(String(500))
    server_endpoint: Mapped[str | None] = mapped_column(String(500))
    # Bitrix24 only: the application token that authenticates events and iframe opens (encrypted).
    application_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Bitrix24 only: "classic" or "simple" CRM mode (simple = no leads).
    crm_mode: Mapped[str] = mapped_column(String(16), default="classic")
    installed_by_crm_user_id: Mapped[str | None] = mapped_column(String(64))
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    uninstalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last background read of the CRM's employees and pipelines that failed, and how
    # (``widget.services.crm_data.refresh.FAILURE_KINDS``); cleared by the next read that succeeds. Until
    # the first read, the settings show it instead of an empty list.
    sync_failure: Mapped[str | None] = mapped_column(String(32))
    sync_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # Signed into every page session; raised on uninstall and reinstall, which ends every session
    # issued before (``widget.services.accounts.state.revoke_sessions``).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def is_usable(self) -> bool:
        return self.status in (STATUS_ACTIVE, STATUS_NEEDS_REAUTH)


class AccountToken(Base):
    """The account's OAuth pair, encrypted at rest with Fernet.

    ``generation`` increases with every stored pair, so a process that waited for the refresh lock
    can tell that somebody else already refreshed.
    """

    __tablename__ = "account_tokens"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    access_token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    generation: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
