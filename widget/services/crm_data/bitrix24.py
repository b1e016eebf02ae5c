"""Bitrix24 "Refresh CRM data"."""

from __future__ import annotations

import logging

from sqlalchemy import select

from widget.crm.bitrix24.snapshot import read_snapshot
from widget.db import Database
from widget.domain.crm import SyncReport
from widget.extensions import AppServices
from widget.models import Account, Employee
from widget.services.accounts.crm_clients import bitrix24_client
from widget.services.crm_data.snapshot import apply_snapshot

log = logging.getLogger(__name__)


def refresh_bitrix24_data(database: Database, services: AppServices, account_id: int) -> SyncReport:
    """Re-read employees, deal pipelines (+ lead stages on a classic CRM) and the CRM mode.

    Nothing is written unless the whole snapshot was read; CRM failures raise ``CrmError``.
    """
    client = bitrix24_client(database, services, account_id, usable=True)
    with database.transaction() as session:
        # user.get does not say who is an admin; keep what verified profile calls told us.
        admin_ids = frozenset(
            session.execute(
                select(Employee.crm_user_id).where(Employee.account_id == account_id, Employee.is_admin.is_(True))
            ).scalars()
        )
        installer = session.execute(
            select(Account.installed_by_crm_user_id).where(Account.id == account_id)
        ).scalar_one_or_none()
        if installer:
            admin_ids |= {installer}

    snapshot = read_snapshot(client, admin_ids)
    with database.transaction() as session:
        report = apply_snapshot(session, account_id, snapshot)
    report.requests = client.request_count
    log.info("Bitrix24 account %s refreshed in %d request(s)", account_id, report.requests)
    return report
