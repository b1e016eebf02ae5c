"""What the CRM adapters may ask our own outbox: has work with this key possibly reached the CRM,
and if so, what was it asked to create?

The outbox asks ``find_created(key)`` before every create. On the first attempt nothing can have
been created yet, so the adapters skip that CRM lookup and a new client costs only the search and
the create (the request budget of the task: two per new client). On a later attempt an adapter
whose CRM keeps no key of ours (Kommo) searches for what the work wrote instead: the client's
phone or messenger identity, created no earlier than the work was recorded (``EarlierAttempt``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from widget.db import Database
from widget.models.conversations import CrmOperation


@dataclass(frozen=True)
class EarlierAttempt:
    """A create that may have reached the CRM before, as the outbox recorded it.

    The fields are those of the ``create_entities`` payload (``widget.services.conversations.distribution``);
    all are None for work we did not record, of which nothing but the key is known."""

    began_at: datetime | None  # when the work was recorded: nothing it made in the CRM is older
    phone: str | None
    messenger: str | None
    messenger_id: str | None
    incoming: bool | None  # a Kommo incoming lead (Unsorted); None when unknown


UNRECORDED = EarlierAttempt(None, None, None, None, None)


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and str(value) else None


def earlier_attempt(database: Database, account_id: int, key: str) -> EarlierAttempt | None:
    """None only when the outbox row for ``key`` is on its first attempt: ``claim`` counts an
    attempt before the CRM is called, so a crashed or timed-out earlier call shows as attempts > 1.
    Work we did not record (no row) is assumed to have run (``UNRECORDED``)."""
    with database.transaction() as session:
        row = session.execute(
            select(CrmOperation.attempts, CrmOperation.created_at, CrmOperation.payload).where(
                CrmOperation.account_id == account_id, CrmOperation.idempotency_key == key
            )
        ).first()
    if row is None:
        return UNRECORDED
    if row.attempts <= 1:
        return None
    try:
        payload = json.loads(row.payload or "{}")
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    plan = payload.get("plan")
    incoming = plan.get("incoming") if isinstance(plan, dict) else None
    return EarlierAttempt(
        began_at=row.created_at,
        phone=_text(payload.get("phone")),
        messenger=_text(payload.get("messenger")),
        messenger_id=_text(payload.get("messenger_id")),
        incoming=incoming if isinstance(incoming, bool) else None,
    )


def may_have_run_before(database: Database, account_id: int, key: str) -> bool:
    """False only when the outbox row for ``key`` is on its first attempt (see ``earlier_attempt``)."""
    return earlier_attempt(database, account_id, key) is not None
