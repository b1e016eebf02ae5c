"""Inbound client messages from the messaging gateway: the per-account signing secret, signature
checks, and storing a message together with the CRM work it causes, in one transaction."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from widget.crypto import TokenBox
from widget.db import Database
from widget.domain.conversations import client_key
from widget.domain.inbound import InboundMessage
from widget.domain.ports import JobQueue
from widget.models import Account, Channel
from widget.models._base import utcnow
from widget.models.accounts import STATUS_ACTIVE, STATUS_NEEDS_REAUTH
from widget.models.conversations import DIRECTION_IN, Chat, Client, GatewaySecret, Message
from widget.services.conversations.distribution import RESOLVE_CLIENT, resolve_key
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.outbox import insert_or_ignore, nudge, record_operation

SIGNATURE_HEADER = "X-Gateway-Signature"

# --- the signing secret ---------------------------------------------------------------------------


def _new_secret() -> str:
    return secrets.token_hex(32)


def get_or_create_gateway_secret(session: Session, box: TokenBox, account_id: int) -> str:
    """The account's current gateway secret. Created at install (``widget.services.installs.kommo``,
    ``bitrix24_install``), so a gateway can be configured before any message; an account installed
    earlier gets it here, when the Channels page or ``gateway-secret`` first shows it."""
    insert_or_ignore(
        session,
        GatewaySecret,
        {"account_id": account_id, "secret_enc": box.seal(_new_secret()), "created_at": utcnow()},
        ["account_id"],
    )
    sealed = session.execute(
        select(GatewaySecret.secret_enc).where(GatewaySecret.account_id == account_id)
    ).scalar_one()
    return box.open(sealed)


def rotate_gateway_secret(
    session: Session, box: TokenBox, account_id: int, *, keep_previous_for: timedelta = timedelta(0)
) -> str:
    """Replace the secret. ``keep_previous_for`` lets the old one keep working while the gateway is
    reconfigured; zero (the default, for a leaked secret) stops it at once."""
    current = get_or_create_gateway_secret(session, box, account_id)
    from widget.services.inbound.receipts import forget_keys_after_commit

    forget_keys_after_commit(session)
    fresh = _new_secret()
    now = utcnow()
    keep = keep_previous_for > timedelta(0)
    session.execute(
        update(GatewaySecret)
        .where(GatewaySecret.account_id == account_id)
        .values(
            secret_enc=box.seal(fresh),
            previous_secret_enc=box.seal(current) if keep else None,
            previous_valid_until=now + keep_previous_for if keep else None,
            rotated_at=now,
        )
    )
    return fresh


def signing_secrets(
    session: Session, box: TokenBox, account_id: int, now: datetime | None = None
) -> tuple[str, str | None]:
    """What our replies are signed with: the current secret, and the previous one while a rotation's
    grace period lasts (the gateway may not have been switched over yet). One read per reply."""
    row = session.execute(
        select(GatewaySecret.secret_enc, GatewaySecret.previous_secret_enc, GatewaySecret.previous_valid_until).where(
            GatewaySecret.account_id == account_id
        )
    ).first()
    if row is None:  # an account installed before secrets were made at install
        return get_or_create_gateway_secret(session, box, account_id), None
    current = _open_secret(box, bytes(row.secret_enc))
    until = row.previous_valid_until
    if row.previous_secret_enc is None or until is None or until <= (now or utcnow()):
        return current, None
    return current, _open_secret(box, bytes(row.previous_secret_enc))


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the raw body: what the gateway sends in ``X-Gateway-Signature``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChannelKeys:
    account_id: int
    channel_id: int
    secrets: tuple[str, ...]
    account_usable: bool  # an uninstalled account's channels refuse deliveries


_opened: dict[tuple[int, bytes], str] = {}
_OPENED_MAX = 4096


def _open_secret(box: TokenBox, sealed: bytes) -> str:
    """Decrypt a sealed secret, remembering the answer by its ciphertext: the hot inbound path then
    skips Fernet's decryption. A rotation writes a new ciphertext, so a stale entry is never used."""
    key = (id(box), sealed)
    secret = _opened.get(key)
    if secret is None:
        if len(_opened) >= _OPENED_MAX:
            _opened.clear()
        secret = _opened[key] = box.open(sealed)
    return secret


# The channel's account, the account's status and its secrets; ``channel_id`` is bound at run time.
# The gateway's PostgreSQL fast path runs the same statement compiled, straight on the driver.
KEYS_QUERY = (
    select(
        Channel.account_id,
        Account.status,
        GatewaySecret.secret_enc,
        GatewaySecret.previous_secret_enc,
        GatewaySecret.previous_valid_until,
    )
    .join(Account, Account.id == Channel.account_id)
    .join(GatewaySecret, GatewaySecret.account_id == Channel.account_id)
    .where(Channel.id == bindparam("channel_id"))
)


def channel_keys(session: Session, box: TokenBox, channel_id: int, now: datetime | None = None) -> ChannelKeys | None:
    """The account of a channel and the secrets its deliveries may be signed with (one query)."""
    row = session.execute(KEYS_QUERY, {"channel_id": channel_id}).first()
    if row is None:
        return None
    return keys_from_row(box, channel_id, tuple(row), now)


def keys_from_row(box: TokenBox, channel_id: int, row: tuple[Any, ...], now: datetime | None = None) -> ChannelKeys:
    """(account id, account status, sealed secret, sealed previous secret, previous valid until)."""
    account_id, status, current, previous, previous_until = row
    keys = [_open_secret(box, bytes(current))]
    if previous is not None and previous_until is not None and previous_until > (now or utcnow()):
        keys.append(_open_secret(box, bytes(previous)))
    return ChannelKeys(account_id, channel_id, tuple(keys), status in (STATUS_ACTIVE, STATUS_NEEDS_REAUTH))


def signature_matches(keys: ChannelKeys, body: bytes, signature: str) -> bool:
    """Constant-time comparison against every valid secret (all are checked, whatever matches)."""
    given = signature.strip().lower().encode()
    ok = False
    for secret in keys.secrets:
        ok |= hmac.compare_digest(sign(secret, body).encode(), given)
    return ok


# --- storing ---------------------------------------------------------------------------------------

STORED = "stored"
DUPLICATE = "duplicate"
CHANNEL_GONE = "channel_gone"


@dataclass(frozen=True)
class InboundResult:
    status: str
    message_id: int | None = None
    chat_id: int | None = None


def store_inbound(
    database: Database, jobs: JobQueue, account_id: int, msg: InboundMessage, now: datetime | None = None
) -> InboundResult:
    """Store a client's message, its chat and client, and the CRM work a new chat needs, in one
    transaction; then nudge the job. No CRM call happens here.

    A redelivered message id (even concurrently, from several processes) hits the unique
    constraint's ON CONFLICT DO NOTHING and changes nothing. Inserts return their ids, so a new
    client's message costs one round trip per row.
    """
    now = now or utcnow()
    key = client_key(msg.phone, msg.chat_type, msg.chat_id)
    op_ids: list[int] = []
    try:
        with database.transaction() as session:
            # First statement is a write: on SQLite it takes the write lock before any read, so this
            # transaction never has to upgrade a stale read snapshot.
            client_id = insert_or_ignore(
                session,
                Client,
                {"account_id": account_id, "key": key, "phone": msg.phone, "name": msg.sender_name, "created_at": now},
                ["account_id", "key"],
            )
            if client_id is None:
                client_id = session.execute(
                    select(Client.id).where(Client.account_id == account_id, Client.key == key)
                ).scalar_one()
            chat_values = {
                "account_id": account_id,
                "channel_id": msg.channel_id,
                "client_id": client_id,
                "chat_type": msg.chat_type,
                "external_chat_id": msg.chat_id,
                "title": msg.sender_name or msg.phone or msg.chat_id,
                "assignment": "resolving",
                "is_new_client": False,
                "last_message_at": msg.sent_at,
                "last_message_preview": msg.text[:200],
                "last_direction": DIRECTION_IN,
                "unanswered": True,
                "unanswered_since": msg.sent_at,
                "created_at": now,
            }
            chat_id = insert_or_ignore(
                session, Chat, chat_values, ["account_id", "channel_id", "chat_type", "external_chat_id"]
            )
            new_chat = chat_id is not None
            if chat_id is None:
                chat_id = session.execute(
                    select(Chat.id).where(
                        Chat.account_id == account_id,
                        Chat.channel_id == msg.channel_id,
                        Chat.chat_type == msg.chat_type,
                        Chat.external_chat_id == msg.chat_id,
                    )
                ).scalar_one()
            message_id = insert_or_ignore(
                session,
                Message,
                {
                    "account_id": account_id,
                    "channel_id": msg.channel_id,
                    "chat_id": chat_id,
                    "gateway_message_id": msg.message_id,
                    "direction": DIRECTION_IN,
                    "sender_name": msg.sender_name,
                    "text": msg.text,
                    "delivery": "",
                    "sent_at": msg.sent_at,
                    "received_at": now,
                },
                ["account_id", "channel_id", "gateway_message_id"],
            )
            if message_id is None:
                session.rollback()  # nothing of this delivery is new, not even the chat or client rows
                return InboundResult(DUPLICATE, chat_id=chat_id)
            note_chat_list_change(session, account_id)  # a new client message: the chat panel shows it
            if new_chat:
                op_id = record_operation(
                    session,
                    account_id,
                    RESOLVE_CLIENT,
                    resolve_key(chat_id),
                    {"phone": msg.phone, "messenger": msg.chat_type, "messenger_id": msg.chat_id},
                    chat_id=chat_id,
                    now=now,
                )
                if op_id is not None:
                    op_ids.append(op_id)
            else:
                # A late delivery of an older message must not make the chat look newer; any
                # client message makes it unanswered until someone replies.
                session.execute(
                    update(Chat)
                    .where(Chat.id == chat_id, Chat.last_message_at <= msg.sent_at)
                    .values(
                        last_message_at=msg.sent_at,
                        last_message_preview=msg.text[:200],
                        last_direction=DIRECTION_IN,
                    )
                )
                session.execute(
                    update(Chat)
                    .where(Chat.id == chat_id, Chat.unanswered.is_(False), Chat.last_direction == DIRECTION_IN)
                    .values(unanswered=True, unanswered_since=msg.sent_at)
                )
            result = InboundResult(STORED, message_id=int(message_id), chat_id=int(chat_id))
    except IntegrityError:
        # The channel (or the account) was deleted while the message was on its way.
        return InboundResult(CHANNEL_GONE)
    nudge(jobs, op_ids)
    return result
