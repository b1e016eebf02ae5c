"""What the CRM adapters may ask our own outbox: has work with this key possibly reached the CRM?

The outbox asks ``find_created(key)`` before every create. On the first attempt nothing can have
been created yet, so the adapters skip that CRM lookup and a new client costs only the search and
the create (the request budget of the task: two per new client).
"""

from __future__ import annotations

from sqlalchemy import select

from widget.db import Database
from widget.models.conversations import CrmOperation


def may_have_run_before(database: Database, account_id: int, key: str) -> bool:
    """False only when the outbox row for ``key`` is on its first attempt: ``claim`` counts an
    attempt before the CRM is called, so a crashed or timed-out earlier call shows as attempts > 1.
    Work we did not record (no row) is assumed to have run."""
    with database.transaction() as session:
        attempts = session.execute(
            select(CrmOperation.attempts).where(
                CrmOperation.account_id == account_id, CrmOperation.idempotency_key == key
            )
        ).scalar_one_or_none()
    return attempts is None or attempts > 1
