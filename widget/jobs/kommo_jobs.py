"""Kommo background jobs: ids in, one service call, safe to run twice."""

from __future__ import annotations

import logging

from widget.crm.errors import CrmAuthError, CrmError
from widget.db import db
from widget.extensions import app_services
from widget.jobs.registry import job, periodic
from widget.services.crm_data.kommo import refresh_kommo_data
from widget.services.installs.kommo import complete_install, sweep_pending_installs

log = logging.getLogger(__name__)


@job
def kommo_complete_install(pending_id: int) -> None:
    """Exchange a stored install code. A transient failure leaves it pending for the sweep."""
    complete_install(db, app_services(), pending_id)


@periodic(1)
def kommo_sweep_installs() -> None:
    """Retry installs a lost job or a Kommo hiccup left pending, within the code's 20 minutes."""
    sweep_pending_installs(db, app_services())


@job
def kommo_refresh_data(account_id: int) -> None:
    """ "Refresh CRM data" in the background. A transient Kommo failure raises, so the queue
    retries; an account that is gone or no longer authorizes us is not retried."""
    from widget.services.crm_data.refresh import record_sync_failure

    try:
        refresh_kommo_data(db, app_services(), account_id)
    except CrmAuthError as exc:
        log.info("Refresh CRM data for account %s skipped: %s", account_id, exc)
        record_sync_failure(db, account_id, exc)
    except LookupError as exc:
        log.info("Refresh CRM data for account %s skipped: %s", account_id, exc)
    except CrmError as exc:
        record_sync_failure(db, account_id, exc)  # the settings say so while the queue retries
        raise
