"""Channels of an account: list, add, rename, disable and re-enable, and the demo account's seed.

Every function names the account; a channel id of another account is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from widget.db import Database, lock_for_update
from widget.domain.channels import (
    DEFAULT_MAX_CHANNELS,
    INSTAGRAM,
    TELEGRAM,
    WHATSAPP,
    check_channel_count,
    check_channel_name,
    check_new_channel,
    clean_name,
)
from widget.domain.problems import Invalid, Problem
from widget.models import AccountSettings, Channel
from widget.services.conversations.list_stamps import note_chat_list_change


class ChannelNotFound(LookupError):
    """No such channel in this account (it may exist in another one: that is nobody's business)."""


@dataclass(frozen=True)
class ChannelView:
    id: int
    transport: str
    name: str
    address: str
    is_enabled: bool
    created_at: datetime


def _view(ch: Channel) -> ChannelView:
    return ChannelView(ch.id, ch.transport, ch.name, ch.address, ch.is_enabled, ch.created_at)


def list_channels(session: Session, account_id: int) -> list[ChannelView]:
    """In the order they were added: the test message and the defaults rely on it."""
    rows = session.execute(
        select(Channel).where(Channel.account_id == account_id).order_by(Channel.created_at, Channel.id)
    ).scalars()
    return [_view(ch) for ch in rows]


def lock_account_settings(session: Session, account_id: int) -> AccountSettings:
    """Serialise changes to one account's channels and settings across processes.

    The account's settings row is the lock: it is created if missing (insert-or-nothing, which on
    SQLite also takes the write lock first, as ``lock_for_update`` requires) and then locked.
    Locking the account row itself would bump its ``updated_at`` on SQLite."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(AccountSettings).values(account_id=account_id, notify_heads_all=False).on_conflict_do_nothing()
    )
    row = lock_for_update(session, AccountSettings, account_id=account_id)
    assert row is not None
    return row


def add_channel(
    database: Database,
    account_id: int,
    transport: str,
    name: str,
    address: str,
    *,
    limit: int = DEFAULT_MAX_CHANNELS,
) -> ChannelView:
    """Add a channel, unless the account already has ``limit`` of them (``Invalid``)."""
    with database.transaction() as session:
        lock_account_settings(session, account_id)  # also serialises the count below
        existing = session.execute(select(Channel).where(Channel.account_id == account_id)).scalars().all()
        full = check_channel_count(len(existing), limit)
        if full:
            raise Invalid(full)
        new, problems = check_new_channel(transport, name, address, existing)
        if new is None:
            raise Invalid(problems)
        ch = Channel(account_id=account_id, transport=new.transport, name=new.name, address=new.address)
        session.add(ch)
        session.flush()
        return _view(ch)


def _own_channel(session: Session, account_id: int, channel_id: int) -> Channel:
    ch = session.execute(
        select(Channel).where(Channel.id == channel_id, Channel.account_id == account_id)
    ).scalar_one_or_none()
    if ch is None:
        raise ChannelNotFound(channel_id)
    return ch


def rename_channel(database: Database, account_id: int, channel_id: int, name: str) -> ChannelView:
    problems: list[Problem] = check_channel_name(name)
    if problems:
        raise Invalid(problems)
    with database.transaction() as session:
        ch = _own_channel(session, account_id, channel_id)
        cleaned = clean_name(name)
        if ch.name != cleaned:
            ch.name = cleaned
            note_chat_list_change(session, account_id)
        return _view(ch)


def set_channel_enabled(database: Database, account_id: int, channel_id: int, enabled: bool) -> ChannelView:
    """A disabled channel keeps its settings and roles, so enabling it again restores everything."""
    with database.transaction() as session:
        ch = _own_channel(session, account_id, channel_id)
        if ch.is_enabled != enabled:
            ch.is_enabled = enabled
        return _view(ch)


# Fictional numbers and handles (555-01xx is reserved for fiction), one per transport kind, in the
# order the test message expects: the WhatsApp number first.
DEMO_CHANNELS = (
    (WHATSAPP, "Sales WhatsApp", "+12025550143"),
    (TELEGRAM, "Support Telegram bot", "@acme_support_bot"),
    (INSTAGRAM, "Shop Instagram", "@acme.shop"),
)


def seed_demo_channels(session: Session, account_id: int) -> list[int]:
    """Give a sandbox demo account three channels of different transports; returns the ids added.

    Idempotent: a channel whose transport and address are already there (enabled or not, renamed
    or not) is not added again. Runs in the caller's transaction (the install flow's)."""
    have = {
        (t, a)
        for t, a in session.execute(
            select(Channel.transport, Channel.address).where(Channel.account_id == account_id)
        ).all()
    }
    added: list[int] = []
    for transport, name, address in DEMO_CHANNELS:
        if (transport, address) in have:
            continue
        ch = Channel(account_id=account_id, transport=transport, name=name, address=address)
        session.add(ch)
        session.flush()  # one at a time, so created_at and id keep the intended order
        added.append(ch.id)
    return added
