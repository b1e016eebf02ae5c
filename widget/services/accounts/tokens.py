"""OAuth token storage and refresh, one refresh at a time per account across processes: the
``TokenStore`` (``widget.crm.tokens``) every CRM client of an installed account acts with.

The refresh is done while holding a row lock on the account's token row (PostgreSQL
``FOR UPDATE``; SQLite's write lock), and the new pair is committed before anyone uses it. A
process that waited for the lock sees a higher ``generation`` and uses the fresh pair instead of
refreshing again; that is what makes 50 concurrent callers cause exactly one refresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from widget.crm.errors import CrmAuthError
from widget.crm.tokens import TokenPair
from widget.crypto import TokenBox
from widget.db import Database, lock_for_update
from widget.models import Account, AccountToken
from widget.models._base import utcnow
from widget.models.accounts import STATUS_NEEDS_REAUTH, STATUS_UNINSTALLED

log = logging.getLogger(__name__)

# Refresh a little before the CRM's expiry so a call does not race the clock.
EXPIRY_SKEW = timedelta(seconds=60)


@dataclass(frozen=True)
class CurrentToken:
    access_token: str
    generation: int
    expires_at: datetime


RefreshFn = Callable[[str], TokenPair]


def store_tokens(session: Session, box: TokenBox, account_id: int, pair: TokenPair) -> AccountToken:
    row = session.get(AccountToken, account_id)
    if row is None:
        row = AccountToken(
            account_id=account_id,
            access_token_enc=box.seal(pair.access_token),
            refresh_token_enc=box.seal(pair.refresh_token),
            expires_at=pair.expires_at,
            generation=1,
        )
        session.add(row)
    else:
        row.access_token_enc = box.seal(pair.access_token)
        row.refresh_token_enc = box.seal(pair.refresh_token)
        row.expires_at = pair.expires_at
        row.generation = (row.generation or 0) + 1
    return row


def mark_needs_reauth(session: Session, account_id: int, reason: str) -> None:
    """The CRM refused the stored authorization: the account waits for someone to authorize again
    (an uninstalled account stays uninstalled)."""
    account = session.get(Account, account_id)
    if account is not None and account.status != STATUS_UNINSTALLED:
        account.status = STATUS_NEEDS_REAUTH
        account.status_reason = reason[:500]


def _current(row: AccountToken, box: TokenBox) -> CurrentToken:
    return CurrentToken(box.open(row.access_token_enc), row.generation, row.expires_at)


def current_token(
    database: Database,
    box: TokenBox,
    account_id: int,
    refresh: RefreshFn,
    *,
    stale_generation: int | None = None,
    now: Callable[[], datetime] = utcnow,
) -> CurrentToken:
    """The account's access token, refreshed first when it has expired.

    ``stale_generation``: the generation of a token the CRM has just refused as expired; it is
    refreshed even if our clock thinks it is still valid (unless someone already replaced it).
    """
    with database.transaction() as session:
        row = session.get(AccountToken, account_id)
        if row is None:
            raise CrmAuthError("no tokens stored for this account")
        if stale_generation is None and row.expires_at - EXPIRY_SKEW > now():
            return _current(row, box)
        if stale_generation is not None and row.generation != stale_generation:
            return _current(row, box)

    with database.transaction() as session:
        row = lock_for_update(session, AccountToken, account_id=account_id)
        if row is None:
            raise CrmAuthError("no tokens stored for this account")
        fresh = row.expires_at - EXPIRY_SKEW > now()
        if stale_generation is None and fresh:
            return _current(row, box)
        if stale_generation is not None and row.generation != stale_generation:
            return _current(row, box)
        try:
            pair = refresh(box.open(row.refresh_token_enc))
        except CrmAuthError as exc:
            session.rollback()
            with database.transaction() as s2:
                mark_needs_reauth(s2, account_id, f"refresh refused: {exc}")
            raise
        row = store_tokens(session, box, account_id, pair)
        result = _current(row, box)
    return result


class StoredTokens:
    """An installed account's stored pair as a ``TokenStore``: sealed in ``account_tokens``,
    refreshed through ``refresh`` (the CRM's token endpoint) one at a time across processes, the new
    pair committed before anyone uses it."""

    def __init__(self, database: Database, box: TokenBox, account_id: int, refresh: RefreshFn) -> None:
        self._db = database
        self._box = box
        self._account_id = account_id
        self._refresh = refresh

    def current(self) -> tuple[str, int]:
        tok = current_token(self._db, self._box, self._account_id, self._refresh)
        return tok.access_token, tok.generation

    def refreshed(self, stale_generation: int) -> tuple[str, int]:
        tok = current_token(self._db, self._box, self._account_id, self._refresh, stale_generation=stale_generation)
        return tok.access_token, tok.generation

    def newer(self, generation: int) -> tuple[str, int] | None:
        with self._db.transaction() as session:
            row = session.get(AccountToken, self._account_id)
            if row is None or row.generation == generation:
                return None
            return self._box.open(row.access_token_enc), row.generation

    def revoked(self, reason: str) -> None:
        log.warning("account %s: the CRM rejects the stored authorization: %s", self._account_id, reason)
        with self._db.transaction() as session:
            # The write lock first: on SQLite a transaction that read cannot take it later.
            lock_for_update(session, Account, id=self._account_id)
            mark_needs_reauth(session, self._account_id, reason)
