"""The account's gateway signing secret as the people who configure a gateway see it: the admin on
the Channels page and the deployer on the command line (``flask --app server gateway-secret``).

The secret itself lives in ``gateway_secrets`` (``widget.services.channels.signing``): created at install,
and by ``secret_state`` for an account installed before that. A rotation keeps the previous secret
valid for ``ROTATION_GRACE`` so the gateway can be switched over without losing a delivery; a
leaked secret is stopped at once instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from widget.db import Database, lock_for_update
from widget.extensions import AppServices
from widget.models import Account, Channel
from widget.models._base import utcnow
from widget.models.conversations import GatewaySecret
from widget.services.channels.signing import get_or_create_gateway_secret, rotate_gateway_secret

log = logging.getLogger(__name__)

# Long enough for an operator to update a gateway's configuration the next working day.
ROTATION_GRACE = timedelta(hours=24)
INBOUND_PATH = "/gateway/messages"


@dataclass(frozen=True)
class SecretState:
    secret: str
    created_at: datetime
    rotated_at: datetime | None
    previous_valid_until: datetime | None  # set while the secret before the last rotation still works

    @property
    def hint(self) -> str:
        """The last characters, so a person can tell which secret a gateway holds without seeing it."""
        return self.secret[-4:]


def secret_state(session: Session, services: AppServices, account_id: int, now: datetime | None = None) -> SecretState:
    """The account's secret (created now if the account predates creation at install)."""
    secret = get_or_create_gateway_secret(session, services.box, account_id)
    row = session.get(GatewaySecret, account_id, populate_existing=True)
    assert row is not None
    until = row.previous_valid_until
    still_valid = until is not None and row.previous_secret_enc is not None and until > (now or utcnow())
    return SecretState(secret, row.created_at, row.rotated_at, until if still_valid else None)


def read_secret(database: Database, services: AppServices, account_id: int) -> SecretState:
    with database.transaction() as session:
        return secret_state(session, services, account_id)


def rotate(database: Database, services: AppServices, account_id: int, *, stop_previous: bool = False) -> SecretState:
    """A new secret; the old one keeps working for ``ROTATION_GRACE`` unless ``stop_previous``
    (it leaked). Two rotations at once are serialised on the secret's row, so the secret the first
    one showed is the one the second keeps valid."""
    grace = timedelta(0) if stop_previous else ROTATION_GRACE
    with database.transaction() as session:
        get_or_create_gateway_secret(session, services.box, account_id)
        lock_for_update(session, GatewaySecret, account_id=account_id)
        rotate_gateway_secret(session, services.box, account_id, keep_previous_for=grace)
        state = secret_state(session, services, account_id)
        found = session.execute(select(Channel.id, Channel.transport).where(Channel.account_id == account_id))
        channels = [(int(c.id), str(c.transport)) for c in found]
    log.info("account %s: gateway secret rotated (previous %s)", account_id, "stopped" if stop_previous else "in grace")
    _tell_sandbox_gateway(services, channels, state.secret)
    return state


def _tell_sandbox_gateway(services: AppServices, channels: list[tuple[int, str]], secret: str) -> None:
    """On the embedded default we are also the gateway's operator: hand it the new secret now, as an
    operator types it into a real gateway's console. A real gateway (``GATEWAY_URL``) is told by a person."""
    from widget.services.channels.transports import SandboxGatewayTransport, TransportError

    transport = services.transport
    if not isinstance(transport, SandboxGatewayTransport):
        return
    for channel_id, kind in channels:
        try:
            transport.configure_channel(channel_id, kind, secret)
        except TransportError as exc:
            # The sandbox links a channel again on its next reply; the old secret still works meanwhile.
            log.info("sandbox gateway not told about channel %s: %s", channel_id, exc.reason)


def find_account(session: Session, ref: str) -> Account | None:
    """An account by its CRM address (Kommo account host, Bitrix24 portal domain) or by our id, as
    ``gateway-secret --list`` prints them."""
    text = ref.strip().lower()
    if text.isdigit():
        return session.get(Account, int(text))
    if not text:
        return None
    return session.execute(select(Account).where(Account.domain == text)).scalars().first()


def list_accounts(session: Session) -> list[Account]:
    return list(session.execute(select(Account).order_by(Account.id)).scalars())


def inbound_url(services: AppServices) -> str:
    return services.settings.public_url.rstrip("/") + INBOUND_PATH
