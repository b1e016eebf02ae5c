"""Durable CRM work: every CRM side effect is a ``crm_operations`` row before it is attempted.

State machine of one operation::

    pending ──claim──▶ running ──CRM ok + recorded──▶ done
       ▲                 │  │
       │   retryable     │  └─ permanent error after MAX_ATTEMPTS ──▶ failed
       └── (backoff, ◀───┘
            Retry-After)
    running with an expired lease (worker died) ──claim──▶ running (attempt + 1)

* **claim** is one conditional UPDATE (``… WHERE status='pending' AND next_attempt_at <= now OR
  status='running' AND next_attempt_at <= now``, ``widget.services.leases.claim_one``): exactly one
  worker wins on PostgreSQL and SQLite alike, with no lock held while the CRM is called. A running
  row's ``next_attempt_at`` is its lease end, so one partial index serves both the sweep and
  stuck-work recovery.
* **the CRM call** happens outside any transaction. Creates are idempotent by the row's
  ``idempotency_key`` (the port's ``find_created`` is asked first), so a re-run after a crash
  between "the CRM created it" and "we recorded it" creates nothing new.
* **finish** records the result, any follow-up operations and the state change in one transaction
  that only commits if this worker still holds the claim token.
* **the queue is only a nudge** (``run_crm_operation`` job); ``sweep`` (periodic) re-nudges
  everything due, so nothing depends on a message staying in Redis.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from widget.crm.errors import CrmAuthError, CrmError, CrmRateLimited, CrmUnavailable
from widget.db import Base, Database
from widget.domain.ports import UNRECORDED, CrmPort, EarlierAttempt, JobQueue
from widget.extensions import AppServices
from widget.models._base import utcnow
from widget.models.conversations import OP_DONE, OP_FAILED, OP_PENDING, OP_RUNNING, CrmOperation
from widget.services.accounts.crm_clients import account_crm
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.leases import backoff, claim_one

log = logging.getLogger(__name__)

JOB_NAME = "run_crm_operation"
LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 12  # for errors that will not fix themselves; outages and rate limits retry forever
BACKOFF_BASE = 5.0
BACKOFF_CAP = 15 * 60.0
AUTH_RETRY = 10 * 60.0  # the account needs re-authorization; look again every ten minutes
SWEEP_BATCH = 500


class CrmPortMissing(CrmError):
    """No adapter for this account's CRM is plugged in yet: the work waits, it is not lost."""

    user_message = "The connection to this CRM is not available yet."


# --- small SQL helpers shared by the conversation services ---------------------------------------


def insert_or_ignore(session: Session, model: type[Base], values: Mapping[str, Any], conflict: list[str]) -> Any:
    """INSERT … ON CONFLICT DO NOTHING on PostgreSQL and SQLite: the new row's (first) primary-key
    value, or None when a row with the same unique key already existed.

    Under concurrency the loser of the race waits for the winner's commit (PostgreSQL) or for the
    write lock (SQLite) and then inserts nothing, so "store once" holds across processes.
    """
    table: Any = model.__table__
    dialect = session.get_bind().dialect.name
    ins: Any = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    # RETURNING rather than rowcount: a conflicting row returns nothing on both databases, where
    # rowcount is not reliable for ON CONFLICT on every driver.
    pk = next(iter(table.primary_key.columns))
    stmt = ins.values(**values).on_conflict_do_nothing(index_elements=conflict).returning(pk)
    row = session.execute(stmt).first()
    return row[0] if row is not None else None


def clock(services: AppServices) -> datetime:
    """Now, by the app's clock (tests freeze it)."""
    return services.clock()


# --- the port registry ----------------------------------------------------------------------------


def crm_port_for(database: Database, services: AppServices, account_id: int) -> CrmPort:
    """The CRM adapter for this account, from the app's factory for its CRM
    (``services.crm_ports``, built by ``widget.services.accounts.crm_clients``); without one the work
    stays pending (``CrmPortMissing`` is retried).
    """
    crm = account_crm(database, account_id)
    factory = services.crm_ports.get(crm)
    if factory is None:
        raise CrmPortMissing(f"no CRM port for {crm!r} is plugged in")
    return factory(database, services, account_id)


# --- recording work -------------------------------------------------------------------------------


def record_operation(
    session: Session,
    account_id: int,
    kind: str,
    key: str,
    payload: Mapping[str, Any],
    *,
    chat_id: int | None = None,
    now: datetime | None = None,
) -> int | None:
    """Record CRM work in the caller's transaction. Returns the new row's id, or None when work
    with this key was already recorded (it is not recorded twice)."""
    values = {
        "account_id": account_id,
        "chat_id": chat_id,
        "kind": kind,
        "idempotency_key": key,
        "status": OP_PENDING,
        "attempts": 0,
        "next_attempt_at": now or utcnow(),
        "payload": json.dumps(dict(payload), sort_keys=True),
        "result": "",
        "last_error": "",
        "created_at": now or utcnow(),
    }
    op_id = insert_or_ignore(session, CrmOperation, values, ["account_id", "idempotency_key"])
    return int(op_id) if op_id is not None else None


def nudge(jobs: JobQueue, op_ids: list[int], *, delay: timedelta | None = None) -> None:
    for op_id in op_ids:
        jobs.enqueue(JOB_NAME, op_id, delay=delay)


# --- running work ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    id: int
    account_id: int
    chat_id: int | None
    kind: str
    key: str
    payload: dict[str, Any]
    attempts: int
    token: str


class Handler(Protocol):
    def execute(self, database: Database, port: CrmPort, op: Operation) -> dict[str, Any]:
        """Do the CRM side effect (outside any transaction) and return what to record."""
        ...

    def record(self, session: Session, op: Operation, result: dict[str, Any], now: datetime) -> list[int]:
        """Store the result in the finishing transaction; return follow-up operation ids."""
        ...


def claim(database: Database, op_id: int, now: datetime, lease: timedelta = LEASE) -> Operation | None:
    with database.transaction() as session:
        token = claim_one(
            session,
            CrmOperation,
            [CrmOperation.id == op_id, CrmOperation.status.in_((OP_PENDING, OP_RUNNING))],
            due=CrmOperation.next_attempt_at,
            now=now,
            lease=lease,
            status=OP_RUNNING,
            lease_until=now + lease,
        )
        if token is None:
            return None
        row = session.get(CrmOperation, op_id)
        assert row is not None
        return Operation(
            id=row.id,
            account_id=row.account_id,
            chat_id=row.chat_id,
            kind=row.kind,
            key=row.idempotency_key,
            payload=json.loads(row.payload or "{}"),
            attempts=row.attempts,
            token=token,
        )


def _still_mine(op: Operation) -> Any:
    return and_(CrmOperation.id == op.id, CrmOperation.claim_token == op.token, CrmOperation.status == OP_RUNNING)


def run_operation(database: Database, services: AppServices, op_id: int) -> str:
    """Claim one operation and drive it one step. Returns the state it was left in (for logs and
    tests); "skipped" when another worker holds it or it is not due."""
    now = clock(services)
    op = claim(database, op_id, now)
    if op is None:
        return "skipped"
    handler = services.outbox_handlers.get(op.kind)
    if handler is None:
        return _give_up(database, services.jobs, op, f"unknown operation kind {op.kind!r}", now)
    try:
        port = crm_port_for(database, services, op.account_id)
        result = handler.execute(database, port, op)
    except CrmRateLimited as exc:
        delay = (
            exc.retry_after if exc.retry_after is not None else backoff(op.attempts, base=BACKOFF_BASE, cap=BACKOFF_CAP)
        )
        return _retry(database, services.jobs, op, exc, max(1.0, delay), now)
    except CrmAuthError as exc:
        return _retry(database, services.jobs, op, exc, AUTH_RETRY, now)
    except (CrmUnavailable, CrmPortMissing) as exc:
        return _retry(database, services.jobs, op, exc, backoff(op.attempts, base=BACKOFF_BASE, cap=BACKOFF_CAP), now)
    except Exception as exc:  # a CRM refusal or a bug: retried a bounded number of times, then kept as failed
        log.warning("CRM operation %s (%s) failed: %s", op.id, op.kind, exc, exc_info=not isinstance(exc, CrmError))
        if op.attempts >= MAX_ATTEMPTS:
            return _give_up(database, services.jobs, op, _describe(exc), now, handler)
        return _retry(database, services.jobs, op, exc, backoff(op.attempts, base=BACKOFF_BASE, cap=BACKOFF_CAP), now)

    follow_ups: list[int] = []
    with database.transaction() as session:
        # First statement: takes SQLite's write lock before any read, and proves the claim is ours.
        mine = session.execute(
            update(CrmOperation)
            .where(_still_mine(op))
            .values(
                status=OP_DONE,
                result=json.dumps(result, sort_keys=True),
                finished_at=now,
                lease_until=None,
                last_error="",
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not mine:
            # Our lease ran out and another worker took over; it will find our CRM work by key.
            session.rollback()
            return "lost"
        follow_ups = handler.record(session, op, result, now)
        note_chat_list_change(session, op.account_id)  # records change chats (distribution, CRM ids)
    nudge(services.jobs, follow_ups)
    return OP_DONE


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


def _retry(database: Database, jobs: JobQueue, op: Operation, exc: BaseException, delay: float, now: datetime) -> str:
    with database.transaction() as session:
        session.execute(
            update(CrmOperation)
            .where(_still_mine(op))
            .values(
                status=OP_PENDING,
                next_attempt_at=now + timedelta(seconds=delay),
                lease_until=None,
                claim_token=None,
                last_error=_describe(exc),
            )
            .execution_options(synchronize_session=False)
        )
    log.info("CRM operation %s (%s) retries in %.0fs: %s", op.id, op.kind, delay, exc)
    nudge(jobs, [op.id], delay=timedelta(seconds=delay))
    return OP_PENDING


def _give_up(database: Database, jobs: JobQueue, op: Operation, reason: str, now: datetime, handler: Any = None) -> str:
    """Keep the operation as failed. A handler with an ``abandon(session, op, now)`` step settles,
    in the same transaction, what was waiting for this work (it returns follow-ups to nudge)."""
    follow_ups: list[int] = []
    with database.transaction() as session:
        mine = session.execute(
            update(CrmOperation)
            .where(_still_mine(op))
            .values(status=OP_FAILED, finished_at=now, lease_until=None, last_error=reason[:1000])
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        abandon = getattr(handler, "abandon", None)
        if mine and abandon is not None:
            follow_ups = abandon(session, op, now)
            note_chat_list_change(session, op.account_id)  # abandoning settles the waiting chats
    log.error("CRM operation %s (%s) failed for good: %s", op.id, op.kind, reason)
    nudge(jobs, follow_ups)
    return OP_FAILED


def due_operations(database: Database, now: datetime, limit: int = SWEEP_BATCH) -> list[int]:
    """Pending work whose time has come and running work whose lease has expired."""
    with database.transaction() as session:
        ids = session.execute(
            select(CrmOperation.id)
            .where(
                CrmOperation.status.in_((OP_PENDING, OP_RUNNING)),  # matches the partial index
                CrmOperation.next_attempt_at <= now,
            )
            .order_by(CrmOperation.next_attempt_at)
            .limit(limit)
        ).scalars()
        return [int(i) for i in ids]


def sweep(database: Database, services: AppServices) -> int:
    """Re-nudge everything due (the periodic safety net). Returns how many were nudged."""
    ids = due_operations(database, clock(services))
    nudge(services.jobs, ids)
    return len(ids)


# --- what a port may ask of earlier attempts ------------------------------------------------------


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and str(value) else None


def earlier_attempt(database: Database, account_id: int, key: str) -> EarlierAttempt | None:
    """What a port's ``find_created(key, …)`` is told: None only when the work ``key`` is on its first
    attempt (``claim`` counts an attempt before the CRM is called, so a crashed or timed-out earlier
    call shows as attempts > 1): nothing can have been created yet, and the port spends no request
    (the request budget of a new client is two). Work we did not record (no row) is assumed to have
    run (``UNRECORDED``)."""
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
