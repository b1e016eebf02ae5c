""" "Refresh CRM data" for a Kommo account: employees, pipelines and stages (product.md §1).

Reads every user (250 a page, the API maximum) and every pipeline with its statuses in one more
request: ceil(users / 250) + 1 requests in all, so a large account stays well inside Kommo's
7 requests per second and is not mistaken for unbounded iteration (reference §6).
"""

from __future__ import annotations

from widget.crm.kommo.provider import KommoProvider
from widget.db import Database
from widget.domain.crm import CrmSnapshot, SyncReport
from widget.extensions import AppServices
from widget.services.accounts.crm_clients import kommo_client
from widget.services.crm_data.snapshot import apply_snapshot


def refresh_kommo_data(
    database: Database,
    services: AppServices,
    account_id: int,
    *,
    provider: KommoProvider | None = None,
) -> SyncReport:
    """Re-read the account's users and pipelines and upsert them. Nothing changes when Kommo fails
    (the error propagates as a ``CrmError``); vanished users are kept inactive with their roles."""
    client = kommo_client(database, services, account_id, provider=provider)
    users = client.list_users()
    # Archived pipelines take no new leads, so they are not offered (and show as gone if chosen).
    pipelines = [p for p in client.list_pipelines() if not p.is_archive]
    snapshot = CrmSnapshot(
        users=tuple(u.to_crm_user() for u in users),
        pipelines=tuple(p.to_crm_pipeline() for p in pipelines),
    )
    with database.transaction() as session:
        report = apply_snapshot(session, account_id, snapshot)
    report.requests = client.request_count
    return report
