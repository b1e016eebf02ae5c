"""What the messaging gateway and we sign with: the account's gateway secret (sealed in
``gateway_secrets``, with the previous one during a rotation's grace period), the HMAC of a body,
and the keys a channel's deliveries may be signed with.

Processes that cache channel keys (the intake's PostgreSQL fast path) register here, so a rotation
or an uninstall makes them forget at once (``forget_keys_after_commit``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.orm import Session

from widget.crypto import TokenBox
from widget.models import Account, Channel
from widget.models._base import utcnow
from widget.models.accounts import STATUS_ACTIVE, STATUS_NEEDS_REAUTH
from widget.models.conversations import GatewaySecret
from widget.services.outbox import insert_or_ignore

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


# --- caches of channel keys ------------------------------------------------------------------------


class KeyCache(Protocol):
    def forget(self) -> None: ...


_caches: weakref.WeakSet[Any] = weakref.WeakSet()


def remember_key_cache(cache: KeyCache) -> None:
    """``cache`` keeps channel keys: it is told to forget them after every rotation and uninstall."""
    _caches.add(cache)


def forget_keys() -> None:
    """Drop this process's cached signing keys."""
    for cache in list(_caches):
        cache.forget()


def forget_keys_after_commit(session: Session) -> None:
    """Drop this process's cached signing keys once ``session`` commits (a rotation, an uninstall):
    forgetting before the commit would let a concurrent request cache the old keys again."""
    event.listen(session, "after_commit", lambda _s: forget_keys(), once=True)
