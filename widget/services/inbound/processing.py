"""Processing acknowledged gateway deliveries (the ``process_inbound`` job, nudged after every
acknowledgement by ``receipts.nudge`` and swept every minute).

``process_pending`` leases pending ``inbound_deliveries`` rows in id order
(``widget.services.leases.claim_batch``), stores each as client, chat, message and CRM work with
``store_inbound`` (one transaction, idempotent on the message's unique key), and marks the rows
processed. A job that dies mid-batch leaves its lease to run out; whoever takes the rows again
finds the messages already stored and changes nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from widget.db import Database
from widget.domain.inbound import PayloadError, parse_inbound
from widget.domain.ports import JobQueue
from widget.models._base import utcnow
from widget.models.intake import InboundDelivery
from widget.services.inbound.messages import store_inbound
from widget.services.leases import claim_batch

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
BATCH = 100
INVALID = "invalid"
FAILED_ATTEMPTS_WARNING = 5

_table: Any = InboundDelivery.__table__


@dataclass(frozen=True)
class Leased:
    id: int
    account_id: int
    body: str
    received_at: datetime
    attempts: int


def _lease(database: Database, now: datetime, limit: int) -> list[Leased]:
    """Take up to ``limit`` pending rows nobody holds, oldest first, for ``LEASE`` (several job
    workers lease disjoint batches at once)."""
    rows = claim_batch(
        database,
        _table,
        pending=_table.c.processed_at.is_(None),
        now=now,
        lease=LEASE,
        limit=limit,
        returning=(_table.c.id, _table.c.account_id, _table.c.body, _table.c.received_at, _table.c.attempts),
    )
    return sorted((Leased(*tuple(row)) for row in rows), key=lambda r: r.id)


def _finish(database: Database, outcomes: dict[int, str], now: datetime) -> None:
    by_outcome: dict[str, list[int]] = {}
    for delivery_id, outcome in outcomes.items():
        by_outcome.setdefault(outcome, []).append(delivery_id)
    with database.engine.begin() as conn:
        for outcome, ids in by_outcome.items():
            conn.execute(
                update(_table).where(_table.c.id.in_(ids)).values(processed_at=now, outcome=outcome, lease_until=None)
            )


def _process_one(database: Database, jobs: JobQueue, row: Leased) -> str:
    try:
        message = parse_inbound(json.loads(row.body))
    except (ValueError, PayloadError):
        # Checked before it was acknowledged, so only a change of the rules makes this happen; the
        # row stays, with its body, for whoever looks into it.
        log.error("inbound delivery %s no longer parses; kept as %r", row.id, INVALID)
        return INVALID
    result = store_inbound(database, jobs, row.account_id, message, now=row.received_at)
    return result.status


def process_pending(database: Database, jobs: JobQueue, *, now: datetime | None = None, batch: int = BATCH) -> int:
    """Process pending deliveries until none is left unleased; returns how many were processed."""
    done = 0
    while True:
        started = now or utcnow()
        rows = _lease(database, started, batch)
        if not rows:
            return done
        outcomes: dict[int, str] = {}
        for row in rows:
            try:
                outcomes[row.id] = _process_one(database, jobs, row)
            except Exception:
                # Left leased: it is retried when the lease runs out, and the rest go on.
                level = logging.ERROR if row.attempts >= FAILED_ATTEMPTS_WARNING else logging.WARNING
                log.log(level, "inbound delivery %s failed (attempt %s)", row.id, row.attempts, exc_info=True)
        if outcomes:
            _finish(database, outcomes, now or utcnow())
        done += len(outcomes)
        if len(rows) < batch:
            return done
