"""CRM → chat responsibility jobs: ids in, one service call, safe to run twice."""

from __future__ import annotations

import logging

from widget.crm.errors import CrmAuthError
from widget.db import db
from widget.extensions import app_services
from widget.jobs.registry import job, periodic
from widget.services.conversations import kommo_webhooks, responsibility

log = logging.getLogger(__name__)


@job
def process_crm_events(account_id: int) -> None:
    """Apply the account's recorded CRM notifications. A CRM failure raises so the queue retries;
    the events stay recorded either way and the sweep comes back to them."""
    try:
        responsibility.process_crm_events(db, app_services(), account_id)
    except CrmAuthError as exc:
        log.info("CRM notifications of account %s wait for a working authorization: %s", account_id, exc)


@periodic(1)
def sweep_crm_events() -> None:
    responsibility.sweep_crm_events(db, app_services())


@job
def kommo_subscribe_webhooks(account_id: int) -> None:
    """Subscribe the account's webhook address at Kommo (after install; again if it fails)."""
    try:
        kommo_webhooks.subscribe(db, app_services(), account_id)
    except (CrmAuthError, LookupError) as exc:
        log.info("Kommo webhook subscription for account %s skipped: %s", account_id, exc)


@periodic(10)
def sweep_kommo_webhooks() -> None:
    """Accounts whose subscription failed, or whose public URL changed, are subscribed again."""
    kommo_webhooks.sweep_subscriptions(db, app_services())
