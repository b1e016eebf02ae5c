"""Kommo's Redirect URI (``/kommo/oauth/callback``) as one unit of work: the button flow's state is
spent, the account host verified and the code stored together, or nothing is (reference §1.2).

The code is then exchanged by a job (``widget.services.installs.kommo``); Kommo waits at most 3 s for
this answer and never resends, so nothing here calls Kommo."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from widget.crm.kommo.events import InboundRejected, verify_account_host
from widget.crm.kommo.provider import KommoProvider
from widget.crypto import TokenBox
from widget.models import PendingInstall
from widget.models._base import utcnow
from widget.models.security import DONE, FAILED
from widget.services.installs.kommo import CODE_LIFETIME, InstallRefused, record_install_code
from widget.services.sessions.nonces import consume_nonce

log = logging.getLogger(__name__)


class StateReused(Exception):
    """The button flow's state was spent by an earlier callback."""


class HostRefused(Exception):
    """``referer`` names no Kommo account host of ours; ``reason`` says why, for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StoredCode:
    pending_id: int
    new: bool  # False: the same code for the same host was stored before (a resend)
    host: str


def store_install_code(
    session: Session,
    provider: KommoProvider,
    box: TokenBox,
    referer: str | None,
    code: str,
    source: str,
    state_nonce: str | None,
) -> StoredCode:
    """Spend the state (button flow), verify the host, store the code, and commit; on any refusal
    roll back, so an unspent state still works. Raises ``StateReused``, ``HostRefused`` or
    ``InstallRefused``."""
    try:
        if state_nonce is not None:
            if not consume_nonce(session, f"kommo-state:{state_nonce}", utcnow() + CODE_LIFETIME):
                raise StateReused()
        try:
            host = verify_account_host(referer, provider.settings.kommo_domains)
        except InboundRejected as exc:
            raise HostRefused(exc.reason) from None
        try:
            row, new = record_install_code(session, provider, box, host, code, source)
        except InstallRefused as exc:
            log.warning("Kommo callback for %s refused: %s", host, exc.message)
            raise
    except (StateReused, HostRefused, InstallRefused):
        session.rollback()
        raise
    session.commit()
    return StoredCode(row.id, new, host)


def install_finished(session: Session, pending_id: int) -> tuple[bool, bool]:
    """(done, failed) of a stored code as the job left it so far (read afresh)."""
    session.expire_all()
    latest = session.get(PendingInstall, pending_id)
    status = latest.status if latest is not None else FAILED
    return status == DONE, status == FAILED
