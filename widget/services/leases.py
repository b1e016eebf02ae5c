"""Leased claims: how the three work queues (the outbox's CRM operations, the reply deliveries and
the gateway intake) take a row so that exactly one worker runs it, with no lock held meanwhile.

A claim is one conditional UPDATE that sets a lease end and counts the attempt: exactly one worker
wins on PostgreSQL and SQLite alike. A worker that dies leaves its lease to run out, and whoever
claims the row next (a sweep, another nudge) does the work again: every queue's work is safe to
repeat.

* ``claim_one`` — one row by key, when it is due: its ``due`` column (``next_attempt_at``) holds
  the next attempt's time while the row waits and the lease end while it runs, so one partial index
  serves both the sweep and stuck-work recovery. A fresh claim token proves later that the claim
  is still ours.
* ``claim_batch`` — up to ``limit`` rows nobody holds, oldest first (``SKIP LOCKED`` lets several
  workers take disjoint batches at once on PostgreSQL).
* ``backoff`` — how long a failed attempt waits before the next.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from widget.db import Database


def backoff(attempts: int, *, base: float, cap: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling from ``base`` up to
    ``cap``, with jitter so that work that failed together does not retry together."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return delay * random.uniform(1.0, 1.2)  # noqa: S311  (jitter, not security)


def claim_one(
    session: Session,
    model: Any,
    where: Sequence[ColumnElement[bool]],
    *,
    due: InstrumentedAttribute[Any],
    now: datetime,
    lease: timedelta,
    **values: Any,
) -> str | None:
    """Claim the row ``where`` selects if it is due (``due <= now``): its ``due`` becomes the lease
    end, ``attempts`` grows by one, ``claim_token`` is a new token and ``values`` are set. Returns
    the token, or None when the row is not due or another worker holds it.

    Meant as the transaction's first statement: on SQLite it takes the write lock before any read.
    """
    token = secrets.token_hex(16)
    won = session.execute(
        update(model)
        .where(*where, due <= now)
        .values(**{due.key: now + lease}, attempts=model.attempts + 1, claim_token=token, **values)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return token if won else None


def claim_batch(
    database: Database,
    table: Table,
    *,
    pending: ColumnElement[bool],
    now: datetime,
    lease: timedelta,
    limit: int,
    returning: Sequence[Any],
) -> Sequence[Row[Any]]:
    """Claim up to ``limit`` rows that are ``pending`` and that nobody holds (no lease, or one that
    has run out), lowest id first: ``lease_until`` becomes the lease end and ``attempts`` grows by
    one. Returns the ``returning`` columns of the rows taken, in no particular order.

    One statement in its own transaction: on SQLite it takes the write lock before it reads.
    """
    free = (
        select(table.c.id)
        .where(pending)
        .where((table.c.lease_until.is_(None)) | (table.c.lease_until < now))
        .order_by(table.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(table)
        .where(table.c.id.in_(free.scalar_subquery()))
        .values(lease_until=now + lease, attempts=table.c.attempts + 1)
        .returning(*returning)
    )
    with database.engine.begin() as conn:
        return conn.execute(stmt).all()
