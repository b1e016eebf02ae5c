"""Replies to clients: storing one (with the rights and first-to-answer rules), "No reply needed",
and delivering stored replies through the messaging gateway.

Durability follows the outbox's pattern (``widget.services.outbox``)::

    send_reply ── one transaction: message row (delivery "queued") + outbound_deliveries row
        │
        ▼ nudge (job "deliver_reply"); the periodic sweep re-nudges whatever is due
    queued ──claim──▶ sending ──gateway 2xx──▶ sent
       ▲                 │ └── refused (4xx), or retries used up ──▶ failed (reason kept; "Retry")
       └── retryable: backoff, Retry-After ◀┘
    sending with an expired lease (worker died) ──claim──▶ sending (attempt + 1)

The gateway call happens outside any transaction; the claim is a conditional UPDATE, so one
worker sends a given attempt. The idempotency key goes to the gateway as the message id, so the
rare resend after a worker died mid-call is recognised there.
"""

from __future__ import annotations

import logging
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from widget.db import Database, lock_for_update
from widget.domain.conversations import may_dismiss, taken_message
from widget.domain.ports import JobQueue
from widget.domain.visibility import OFFERED, ChatFacts, Viewer, WriteRight, can_write, may_learn_taker, write_right
from widget.extensions import AppServices
from widget.models import Channel, Employee
from widget.models._base import utcnow
from widget.models.conversations import DIRECTION_OUT, Chat, Message
from widget.models.replies import (
    DELIVERY_FAILED,
    DELIVERY_QUEUED,
    DELIVERY_SENDING,
    DELIVERY_SENT,
    OutboundDelivery,
)
from widget.services.channels.transports import OutboundMessage, TransportError
from widget.services.conversations.chats import chat_facts, claim_chat, record_accept, viewer_for
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.inbound.messages import signing_secrets
from widget.services.outbox import clock, nudge

log = logging.getLogger(__name__)

JOB_NAME = "deliver_reply"
MAX_TEXT = 4096  # WhatsApp's limit for one text message; the strictest of our messengers
LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 8  # about 20 minutes of retrying with the backoff below, then "failed"
BACKOFF_BASE = 5.0
BACKOFF_CAP = 10 * 60.0
SWEEP_BATCH = 500

# Outcomes of send_reply / mark_no_reply.
SENT = "sent"
DUPLICATE = "duplicate"  # the same idempotency key was stored before: that message is the answer
TAKEN = "taken"
HIDDEN = "hidden"  # the writer may not even see the chat: refused as reading it would be, nobody named
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
INVALID = "invalid"
DONE = "done"

FORBIDDEN_TEXT = "Your role on this channel does not allow answering this chat."
OFFER_DISMISS_TEXT = "Answer this new client to take it; only a head can mark it as not needing a reply."


@dataclass(frozen=True)
class ReplyOutcome:
    status: str
    message_id: int | None = None
    detail: str = ""
    taken_by: str = ""


def clean_text(raw: str | None) -> str | None:
    """The reply as it will be sent, or None when it is empty or too long for a messenger."""
    # A NUL is never text a messenger shows, and PostgreSQL text columns cannot store one.
    text = (raw or "").replace("\x00", "").strip()
    if not text or len(text) > MAX_TEXT:
        return None
    return text


def new_key() -> str:
    return secrets.token_hex(16)


def _refused(session: Session, chat: Chat, viewer: Viewer, facts: ChatFacts) -> ReplyOutcome:
    """A writer refused on a chat someone else took: "taken by NAME" for a colleague on its channel,
    the plain "you cannot see this chat" for anyone else."""
    if may_learn_taker(viewer, facts):
        return _taken(session, chat)
    return ReplyOutcome(HIDDEN, detail="You cannot see this chat.")


def _taken(session: Session, chat: Chat) -> ReplyOutcome:
    owner = session.get(Employee, chat.claimed_by_employee_id) if chat.claimed_by_employee_id else None
    if owner is None and chat.responsible_employee_id is not None:
        owner = session.get(Employee, chat.responsible_employee_id)
    name = owner.name if owner else ""
    return ReplyOutcome(TAKEN, detail=taken_message(name), taken_by=name)


def send_reply(
    database: Database,
    jobs: JobQueue,
    account_id: int,
    chat_id: int,
    employee_id: int,
    text: str,
    *,
    idempotency_key: str | None = None,
    expect_offer: bool = False,
    now: datetime | None = None,
) -> ReplyOutcome:
    """Store an employee's reply and its delivery, if their role allows it; the job sends it.

    The server decides every rule here, whatever the page showed: sellers answer only their own
    clients and the new clients offered to them, heads anyone, quality control nobody. The first
    reply to an offered chat claims it; a reply that lost the race is not stored and the writer is
    told who took the chat. ``expect_offer`` says the writer answered an offer: if someone else
    claimed it meanwhile, the reply is not sent even when the writer (a head) could write anyway —
    they meant to take a new client, not to talk over a colleague.
    """
    now = now or utcnow()
    key = (idempotency_key or "").strip()[:80] or new_key()
    follow_ups: list[int] = []
    with database.transaction() as session:
        # First statement: the chat's row lock (on SQLite the write lock) serialises every reply to
        # this chat, so the idempotency check below cannot race with itself.
        chat = lock_for_update(session, Chat, id=chat_id)
        if chat is None or chat.account_id != account_id:
            return ReplyOutcome(NOT_FOUND, detail="This chat does not exist.")
        # The writer's right comes first: a key (or anything else) says nothing to someone who may
        # not write here.
        viewer, facts = viewer_for(session, account_id, employee_id), chat_facts(session, chat)
        right = write_right(viewer, facts)
        if right is WriteRight.FORBIDDEN:
            if chat.claimed_by_employee_id not in (None, employee_id):
                return _refused(session, chat, viewer, facts)
            return ReplyOutcome(FORBIDDEN, detail=FORBIDDEN_TEXT)
        earlier = session.execute(
            select(OutboundDelivery.message_id, OutboundDelivery.chat_id, Message.author_employee_id)
            .join(Message, Message.id == OutboundDelivery.message_id)
            .where(OutboundDelivery.account_id == account_id, OutboundDelivery.idempotency_key == key)
        ).first()
        if earlier is not None:
            # A key answers only its own author's retries: anyone else's reuse of it is refused
            # without showing the message it stands for.
            if earlier.author_employee_id != employee_id or earlier.chat_id != chat_id:
                return ReplyOutcome(INVALID, detail="This idempotency key was already used.")
            return ReplyOutcome(DUPLICATE, message_id=int(earlier.message_id))
        if expect_offer and chat.assignment != OFFERED and chat.claimed_by_employee_id not in (None, employee_id):
            return _taken(session, chat)
        if right is WriteRight.CLAIMS:
            claim = claim_chat(session, account_id, chat_id, employee_id, now)
            if not claim.won:
                return ReplyOutcome(TAKEN, detail=claim.message, taken_by=claim.owner_name)
            follow_ups += claim.follow_ups
            session.refresh(chat)
        message = Message(
            account_id=account_id,
            channel_id=chat.channel_id,
            chat_id=chat.id,
            direction=DIRECTION_OUT,
            author_employee_id=employee_id,
            text=text,
            delivery=DELIVERY_QUEUED,
            sent_at=now,
            received_at=now,
        )
        session.add(message)
        chat.last_message_at = max(chat.last_message_at, now)
        chat.last_message_preview = text[:200]
        chat.last_direction = DIRECTION_OUT
        chat.unanswered = False
        chat.unanswered_since = None
        note_chat_list_change(session, account_id)
        if chat.crm_incoming_uid:
            follow_ups += record_accept(session, chat, now)
        session.flush()
        session.add(
            OutboundDelivery(
                message_id=message.id,
                account_id=account_id,
                chat_id=chat.id,
                idempotency_key=key,
                status=DELIVERY_QUEUED,
                attempts=0,
                next_attempt_at=now,
                last_error="",
                created_at=now,
            )
        )
        message_id = int(message.id)
    nudge(jobs, follow_ups)
    nudge_delivery(jobs, message_id)
    return ReplyOutcome(SENT, message_id=message_id)


def mark_no_reply(
    database: Database, account_id: int, chat_id: int, employee_id: int, now: datetime | None = None
) -> ReplyOutcome:
    """ "No reply needed": the chat stops counting as unanswered until the client writes again.

    Who may press it is ``widget.domain.conversations.may_dismiss``; on a chat still on offer (only
    a head may) it claims nothing: the offer stays open and nobody becomes responsible.
    """
    with database.transaction() as session:
        chat = lock_for_update(session, Chat, id=chat_id)
        if chat is None or chat.account_id != account_id:
            return ReplyOutcome(NOT_FOUND, detail="This chat does not exist.")
        viewer, facts = viewer_for(session, account_id, employee_id), chat_facts(session, chat)
        if not may_dismiss(viewer, facts):
            if chat.claimed_by_employee_id not in (None, employee_id):
                return _refused(session, chat, viewer, facts)
            if can_write(viewer, facts):
                return ReplyOutcome(FORBIDDEN, detail=OFFER_DISMISS_TEXT)
            return ReplyOutcome(FORBIDDEN, detail=FORBIDDEN_TEXT)
        chat.unanswered = False
        chat.unanswered_since = None
        note_chat_list_change(session, account_id)
    return ReplyOutcome(DONE)


def retry_delivery(
    database: Database, jobs: JobQueue, account_id: int, message_id: int, employee_id: int
) -> ReplyOutcome:
    """Send a failed reply again ("Retry" next to it), for anyone who may write to its chat."""
    with database.transaction() as session:
        delivery = lock_for_update(session, OutboundDelivery, message_id=message_id)
        if delivery is None or delivery.account_id != account_id:
            return ReplyOutcome(NOT_FOUND, detail="This message does not exist.")
        chat = session.get(Chat, delivery.chat_id)
        assert chat is not None
        if not can_write(viewer_for(session, account_id, employee_id), chat_facts(session, chat)):
            return ReplyOutcome(FORBIDDEN, detail=FORBIDDEN_TEXT)
        if delivery.status != DELIVERY_FAILED:
            return ReplyOutcome(INVALID, message_id=message_id, detail="Only a failed message can be sent again.")
        delivery.status = DELIVERY_QUEUED
        delivery.attempts = 0
        delivery.next_attempt_at = utcnow()
        delivery.claim_token = None
        session.execute(update(Message).where(Message.id == message_id).values(delivery=DELIVERY_QUEUED))
    nudge_delivery(jobs, message_id)
    return ReplyOutcome(SENT, message_id=message_id)


# --- delivering ---------------------------------------------------------------------------------


def nudge_delivery(jobs: JobQueue, message_id: int, *, delay: timedelta | None = None) -> None:
    jobs.enqueue(JOB_NAME, message_id, delay=delay)


def backoff(attempts: int) -> float:
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return delay * random.uniform(1.0, 1.2)  # noqa: S311  (jitter, not security)


@dataclass(frozen=True)
class _Claimed:
    token: str
    attempts: int
    account_id: int
    message: OutboundMessage
    secret: str
    previous: str | None = None  # the secret before a rotation, while its grace period lasts


def _claim(database: Database, services: AppServices, message_id: int, now: datetime) -> _Claimed | None:
    token = secrets.token_hex(16)
    with database.transaction() as session:
        won = session.execute(
            update(OutboundDelivery)
            .where(
                OutboundDelivery.message_id == message_id,
                OutboundDelivery.status.in_((DELIVERY_QUEUED, DELIVERY_SENDING)),
                OutboundDelivery.next_attempt_at <= now,
            )
            .values(
                status=DELIVERY_SENDING,
                claim_token=token,
                next_attempt_at=now + LEASE,
                attempts=OutboundDelivery.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not won:
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
        delay = exc.retry_after if exc.retry_after is not None else backoff(claimed.attempts)
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
