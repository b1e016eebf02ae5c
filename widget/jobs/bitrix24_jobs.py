"""Bitrix24 background jobs."""

from __future__ import annotations

import logging

from widget.crm.errors import CrmAuthError, CrmError
from widget.db import db
from widget.extensions import app_services
from widget.jobs.registry import job

log = logging.getLogger(__name__)


@job
def bitrix24_refresh_crm_data(account_id: int) -> None:
    """The first "Refresh CRM data" after an install (and any later nudge). Safe to run twice: it
    upserts. A refused authorization is final (the portal is marked "needs reinstall"); other CRM
    failures raise so the queue retries later."""
    from widget.services.crm_data.bitrix24 import refresh_bitrix24_data
    from widget.services.crm_data.refresh import record_sync_failure

    try:
        refresh_bitrix24_data(db, app_services(), account_id)
    except CrmAuthError as exc:
        log.warning("Bitrix24 account %s cannot be refreshed: %s", account_id, exc)
        record_sync_failure(db, account_id, exc)
    except LookupError:
        log.info("Bitrix24 account %s is gone; nothing to refresh", account_id)
    except CrmError as exc:
        record_sync_failure(db, account_id, exc)  # the settings say so while the queue retries
        raise
