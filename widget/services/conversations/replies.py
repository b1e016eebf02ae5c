"""Replies to clients: storing one (with the rights and first-to-answer rules), "No reply needed",
and "Retry"; ``reply_delivery`` delivers the stored replies through the messaging gateway.

The reply and its delivery row are stored in one transaction and the delivery job is nudged; the
delivery itself (claim, send, retry, sweep) is ``reply_delivery``'s.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from widget.db import Database, lock_for_update
from widget.domain.conversations import may_dismiss, taken_message
from widget.domain.ports import JobQueue
from widget.domain.visibility import OFFERED, ChatFacts, Viewer, WriteRight, can_write, may_learn_taker, write_right
from widget.models import Employee
from widget.models._base import utcnow
from widget.models.conversations import DIRECTION_OUT, Chat, Message
from widget.models.replies import (
    DELIVERY_FAILED,
    DELIVERY_QUEUED,
    OutboundDelivery,
)
from widget.services.conversations.claims import claim_chat
from widget.services.conversations.crm_responsible import record_accept
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.conversations.reply_delivery import nudge_delivery
from widget.services.conversations.viewers import chat_facts, viewer_for
from widget.services.outbox import nudge

log = logging.getLogger(__name__)

MAX_TEXT = 4096  # WhatsApp's limit for one text message; the strictest of our messengers

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
