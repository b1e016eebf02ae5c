"""Delivering stored replies through the messaging gateway (the ``deliver_reply`` job), with the
outbox's durability (``widget.services.outbox``)::

    send_reply ── one transaction: message row (delivery "queued") + outbound_deliveries row
        │
        ▼ nudge (job "deliver_reply"); the periodic sweep re-nudges whatever is due
    queued ──claim──▶ sending ──gateway 2xx──▶ sent
       ▲                 │ └── refused (4xx), or retries used up ──▶ failed (reason kept; "Retry")
       └── retryable: backoff, Retry-After ◀┘
    sending with an expired lease (worker died) ──claim──▶ sending (attempt + 1)

The gateway call happens outside any transaction; the claim is a conditional UPDATE
(``widget.services.leases``), so one worker sends a given attempt. The idempotency key goes to the
gateway as the message id, so the rare resend after a worker died mid-call is recognised there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from widget.db import Database
from widget.domain.ports import JobQueue
from widget.extensions import AppServices
from widget.models import Channel, Employee
from widget.models.conversations import Chat, Message
from widget.models.replies import (
    DELIVERY_FAILED,
    DELIVERY_QUEUED,
    DELIVERY_SENDING,
    DELIVERY_SENT,
    OutboundDelivery,
)
from widget.services.channels.signing import signing_secrets
from widget.services.channels.transports import OutboundMessage, TransportError
from widget.services.leases import backoff, claim_one
from widget.services.outbox import clock

log = logging.getLogger(__name__)

JOB_NAME = "deliver_reply"
LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 8  # about 20 minutes of retrying with the backoff below, then "failed"
BACKOFF_BASE = 5.0
BACKOFF_CAP = 10 * 60.0
SWEEP_BATCH = 500


def nudge_delivery(jobs: JobQueue, message_id: int, *, delay: timedelta | None = None) -> None:
    jobs.enqueue(JOB_NAME, message_id, delay=delay)


@dataclass(frozen=True)
class _Claimed:
    token: str
    attempts: int
    account_id: int
    message: OutboundMessage
    secret: str
    previous: str | None = None  # the secret before a rotation, while its grace period lasts


def _claim(database: Database, services: AppServices, message_id: int, now: datetime) -> _Claimed | None:
    with database.transaction() as session:
        token = claim_one(
            session,
            OutboundDelivery,
            [
                OutboundDelivery.message_id == message_id,
                OutboundDelivery.status.in_((DELIVERY_QUEUED, DELIVERY_SENDING)),
            ],
            due=OutboundDelivery.next_attempt_at,
            now=now,
            lease=LEASE,
            status=DELIVERY_SENDING,
        )
        if token is None:
            return None
        row = session.execute(
            select(OutboundDelivery, Message, Chat, Channel.transport, Employee.name)
            .join(Message, Message.id == OutboundDelivery.message_id)
            .join(Chat, Chat.id == OutboundDelivery.chat_id)
            .join(Channel, Channel.id == Chat.channel_id)
            .outerjoin(Employee, Employee.id == Message.author_employee_id)
            .where(OutboundDelivery.message_id == message_id)
        ).one()
        delivery, message, chat, transport, author = row
        secret, previous = signing_secrets(session, services.box, delivery.account_id)
        return _Claimed(
            token=token,
            attempts=delivery.attempts,
            account_id=delivery.account_id,
            secret=secret,
            previous=previous,
            message=OutboundMessage(
                message_id=delivery.idempotency_key,
                channel_id=chat.channel_id,
                chat_type=chat.chat_type or transport,
                chat_id=chat.external_chat_id,
                text=message.text,
                author_name=author or "",
                sent_at=message.sent_at.isoformat(),
            ),
        )


def _finish(database: Database, message_id: int, token: str, status: str, **values: object) -> bool:
    with database.transaction() as session:
        mine = session.execute(
            update(OutboundDelivery)
            .where(
                OutboundDelivery.message_id == message_id,
                OutboundDelivery.claim_token == token,
                OutboundDelivery.status == DELIVERY_SENDING,
            )
            .values(status=status, claim_token=None, **values)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not mine:
            session.rollback()
            return False
        visible = DELIVERY_QUEUED if status in (DELIVERY_QUEUED, DELIVERY_SENDING) else status
        session.execute(update(Message).where(Message.id == message_id).values(delivery=visible))
        return True


def deliver(database: Database, services: AppServices, message_id: int) -> str:
    """Drive one reply's delivery one step; returns the state it was left in ("skipped" when
    another worker holds it, or it is not due, or it is already finished)."""
    now = clock(services)
    claimed = _claim(database, services, message_id, now)
    if claimed is None:
        return "skipped"
    try:
        sent = services.transport.send(claimed.message, claimed.secret, claimed.previous)
    except TransportError as exc:
        if not exc.retryable or claimed.attempts >= MAX_ATTEMPTS:
            _finish(database, message_id, claimed.token, DELIVERY_FAILED, last_error=exc.reason[:500])
            log.warning("reply %s failed for good: %s", message_id, exc.reason)
            return DELIVERY_FAILED
        delay = (
            exc.retry_after
            if exc.retry_after is not None
            else backoff(claimed.attempts, base=BACKOFF_BASE, cap=BACKOFF_CAP)
        )
        delay = max(1.0, delay)
        if _finish(
            database,
            message_id,
            claimed.token,
            DELIVERY_QUEUED,
            last_error=exc.reason[:500],
            next_attempt_at=now + timedelta(seconds=delay),
        ):
            nudge_delivery(services.jobs, message_id, delay=timedelta(seconds=delay))
        log.info("reply %s retries in %.0fs: %s", message_id, delay, exc.reason)
        return DELIVERY_QUEUED
    _finish(
        database,
        message_id,
        claimed.token,
        DELIVERY_SENT,
        last_error="",
        gateway_message_id=sent.gateway_message_id,
        delivered_at=now,
    )
    return DELIVERY_SENT


def due_deliveries(database: Database, now: datetime, limit: int = SWEEP_BATCH) -> list[int]:
    with database.transaction() as session:
        ids = session.execute(
            select(OutboundDelivery.message_id)
            .where(
                OutboundDelivery.status.in_((DELIVERY_QUEUED, DELIVERY_SENDING)),  # the partial index
                OutboundDelivery.next_attempt_at <= now,
            )
            .order_by(OutboundDelivery.next_attempt_at)
            .limit(limit)
        ).scalars()
        return [int(i) for i in ids]


def sweep(database: Database, services: AppServices) -> int:
    """Re-nudge every delivery that is due (a lost nudge, a dead worker). Returns how many."""
    ids = due_deliveries(database, clock(services))
    for message_id in ids:
        nudge_delivery(services.jobs, message_id)
    return len(ids)
