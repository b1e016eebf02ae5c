"""Bitrix24 "Refresh CRM data", and the REST client that acts with a portal's stored tokens."""

from __future__ import annotations

import logging

from sqlalchemy import select

from widget.crm.bitrix24.client import Bitrix24Client
from widget.crm.bitrix24.payloads import host_of
from widget.crm.bitrix24.provider import Bitrix24Provider
from widget.crm.bitrix24.snapshot import read_snapshot
from widget.crm.errors import CrmAuthError
from widget.crm.http import RetryPolicy
from widget.crypto import TokenBox
from widget.db import Database, lock_for_update
from widget.domain.crm import SyncReport
from widget.extensions import AppServices
from widget.models import Account, AccountToken, Employee
from widget.models.accounts import CRM_BITRIX24
from widget.services.accounts.state import mark_needs_reauth
from widget.services.accounts.tokens import TokenPair, current_token
from widget.services.crm_data.snapshot import apply_snapshot

log = logging.getLogger(__name__)


class StoredTokenSource:
    """The portal's stored pair (the installing admin's): refreshed one at a time across
    processes, the new pair committed before anyone uses it (``widget.services.accounts.tokens``)."""

    def __init__(self, database: Database, box: TokenBox, account_id: int, provider: Bitrix24Provider) -> None:
        self._db = database
        self._box = box
        self._account_id = account_id
        self._provider = provider

    def _refresh(self, refresh_token: str) -> TokenPair:
        with self._db.transaction() as session:
            endpoint = session.execute(
                select(Account.server_endpoint).where(Account.id == self._account_id)
            ).scalar_one_or_none()
        grant = self._provider.refresh(endpoint, refresh_token)
        return TokenPair(grant.access_token, grant.refresh_token, grant.expires_at)

    def token(self) -> tuple[str, int]:
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

    def rejected(self, code: str, description: str) -> None:
        log.warning("Bitrix24 account %s rejects the stored authorization: %s", self._account_id, description)
        with self._db.transaction() as session:
            # The write lock first: on SQLite a transaction that read cannot take it later.
            lock_for_update(session, Account, id=self._account_id)
            mark_needs_reauth(
                session,
                self._account_id,
                f"Bitrix24 no longer accepts the app's authorization ({code}). Please reinstall the app.",
            )

    def moved(self, client_endpoint: str) -> None:
        """The portal was renamed (302 on REST): keep its new address; member_id stays (§6.1)."""
        log.info("Bitrix24 account %s moved to %s", self._account_id, host_of(client_endpoint))
        with self._db.transaction() as session:
            account = lock_for_update(session, Account, id=self._account_id)
            if account is not None:
                account.client_endpoint = client_endpoint
                account.domain = host_of(client_endpoint)


def account_client(
    database: Database, services: AppServices, account_id: int, retry: RetryPolicy | None = None
) -> Bitrix24Client:
    """A REST client for the portal of ``account_id``, acting with its stored tokens."""
    with database.transaction() as session:
        row = session.execute(
            select(Account.client_endpoint, Account.external_id, Account.crm).where(Account.id == account_id)
        ).one_or_none()
    if row is None or row.crm != CRM_BITRIX24:
        raise LookupError(f"Bitrix24 account {account_id} does not exist")
    if not row.client_endpoint:
        raise CrmAuthError("this portal has no stored REST endpoint")
    provider = Bitrix24Provider(services.settings)
    source = StoredTokenSource(database, services.box, account_id, provider)
    return provider.client(row.client_endpoint, source, row.external_id, retry)


def refresh_bitrix24_data(database: Database, services: AppServices, account_id: int) -> SyncReport:
    """Re-read employees, deal pipelines (+ lead stages on a classic CRM) and the CRM mode.

    Nothing is written unless the whole snapshot was read; CRM failures raise ``CrmError``.
    """
    with database.transaction() as session:
        account = session.get(Account, account_id)
        if account is None or account.crm != CRM_BITRIX24:
            raise LookupError(f"Bitrix24 account {account_id} does not exist")
        if not account.is_usable:
            raise CrmAuthError("the app is not installed on this portal")
        # user.get does not say who is an admin; keep what verified profile calls told us.
        admin_ids = frozenset(
            session.execute(
                select(Employee.crm_user_id).where(Employee.account_id == account_id, Employee.is_admin.is_(True))
            ).scalars()
        )
        if account.installed_by_crm_user_id:
            admin_ids |= {account.installed_by_crm_user_id}

    client = account_client(database, services, account_id)
    snapshot = read_snapshot(client, admin_ids)
    with database.transaction() as session:
        report = apply_snapshot(session, account_id, snapshot)
    report.requests = client.request_count
    log.info("Bitrix24 account %s refreshed in %d request(s)", account_id, report.requests)
    return report
