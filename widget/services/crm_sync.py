"""Dispatch of "Refresh CRM data" to the CRM's own sync use case, whatever the CRM."""

from __future__ import annotations

from widget.db import Database
from widget.domain.crm import SyncReport
from widget.extensions import AppServices
from widget.models import Account
from widget.models.accounts import CRM_BITRIX24, CRM_KOMMO


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
        from widget.services.kommo_sync import refresh_kommo_data

        return refresh_kommo_data(database, services, account_id)
    if crm == CRM_BITRIX24:
        from widget.services.bitrix24_sync import refresh_bitrix24_data

        return refresh_bitrix24_data(database, services, account_id)
    raise ValueError(f"unknown CRM {crm!r}")
