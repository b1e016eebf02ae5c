"""Dispatch of "Refresh CRM data" to the CRM's own sync use case, whatever the CRM; and where the
background read of the CRM's data stands (right after an install, the settings wait for it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from widget.crm.errors import (
    CrmAuthError,
    CrmBadResponse,
    CrmError,
    CrmForbidden,
    CrmRateLimited,
    CrmUnavailable,
)
from widget.db import Database
from widget.domain.crm import SyncReport
from widget.extensions import AppServices
from widget.models import Account
from widget.models._base import utcnow
from widget.models.accounts import CRM_BITRIX24, CRM_KOMMO

# How a read failed, most specific first: what the settings tell the admin (``FAILURE_KINDS``
# names the error type whose message the page shows, in the reader's language).
FAILURE_KINDS: dict[str, type[CrmError]] = {
    "auth": CrmAuthError,
    "forbidden": CrmForbidden,
    "rate_limited": CrmRateLimited,
    "unavailable": CrmUnavailable,
    "bad_response": CrmBadResponse,
    "error": CrmError,
}

READ_PENDING = "loading"  # installed, the first read has not finished yet
READ_FAILED = "failed"  # the first read failed (the queue retries it)
READ_DONE = "ready"


@dataclass(frozen=True)
class CrmReadState:
    state: str  # READ_PENDING, READ_FAILED or READ_DONE
    synced_at: datetime | None
    failure: type[CrmError] | None  # why the last read failed, while nothing was read yet


def failure_kind(exc: CrmError) -> str:
    return next(kind for kind, cls in FAILURE_KINDS.items() if isinstance(exc, cls))


def record_sync_failure(database: Database, account_id: int, exc: CrmError) -> None:
    """A background read failed: kept so the settings can say so in words (the next read that
    succeeds clears it, ``widget.services.crm_data.snapshot.apply_snapshot``)."""
    with database.transaction() as session:
        session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(sync_failure=failure_kind(exc), sync_failed_at=utcnow())
        )


def crm_read_state(session: Session, account_id: int) -> CrmReadState:
    row = session.execute(select(Account.synced_at, Account.sync_failure).where(Account.id == account_id)).one_or_none()
    if row is None:
        raise LookupError(account_id)
    if row.synced_at is not None:
        return CrmReadState(READ_DONE, row.synced_at, None)
    if row.sync_failure:
        return CrmReadState(READ_FAILED, None, FAILURE_KINDS.get(row.sync_failure, CrmError))
    return CrmReadState(READ_PENDING, None, None)


def refresh_crm_data(database: Database, services: AppServices, account_id: int) -> SyncReport:
    """Re-read employees, pipelines and stages from the CRM and upsert them.

    Raises ``widget.crm.errors.CrmError`` subclasses when the CRM fails; nothing is changed then.
    """
    with database.transaction() as session:
        account = session.get(Account, account_id)
        if account is None:
            raise LookupError(f"account {account_id} does not exist")
        crm = account.crm
    if crm == CRM_KOMMO:
        from widget.services.crm_data.kommo import refresh_kommo_data

        return refresh_kommo_data(database, services, account_id)
    if crm == CRM_BITRIX24:
        from widget.services.crm_data.bitrix24 import refresh_bitrix24_data

        return refresh_bitrix24_data(database, services, account_id)
    raise ValueError(f"unknown CRM {crm!r}")
