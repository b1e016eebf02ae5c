"""When who is eligible for new clients changes (a settings save, a CRM users refresh), the new
clients' chats nobody has answered yet are offered or given again."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from widget.db import lock_for_update
from widget.domain.distribution import FIRST_REPLY, Candidate, is_eligible, redistribute
from widget.domain.visibility import ASSIGNED, OFFERED, UNASSIGNED
from widget.models import ChannelRole, ChannelSettings, Employee
from widget.models._base import utcnow
from widget.models.conversations import DIRECTION_OUT, Chat, ChatOffer, Message
from widget.services.conversations.crm_responsible import record_responsible_change
from widget.services.conversations.distribution.routing import apply_decision, load_candidates
from widget.services.conversations.list_stamps import note_chat_list_change

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EligibilityWatch:
    """Who was eligible for new clients, per channel, before a change (a settings save, a CRM
    users refresh); ``redistribute_open_chats`` compares it with who is eligible after."""

    account_id: int
    before: dict[int, frozenset[int]]  # channel id -> eligible employee ids


def _eligible_by_channel(
    session: Session, account_id: int, channel_ids: Sequence[int] | None
) -> dict[int, frozenset[int]]:
    q = (
        select(
            ChannelRole.channel_id, ChannelRole.employee_id, ChannelRole.role, ChannelRole.gets_new_clients, Employee
        )
        .join(Employee, Employee.id == ChannelRole.employee_id)
        .where(ChannelRole.account_id == account_id)
    )
    if channel_ids is not None:
        q = q.where(ChannelRole.channel_id.in_(list(channel_ids)))
    found: dict[int, set[int]] = {c: set() for c in channel_ids or ()}
    for channel_id, employee_id, role, gets, emp in session.execute(q):
        candidate = Candidate(employee_id, emp.name, role, bool(gets), emp.is_active and emp.in_crm)
        found.setdefault(channel_id, set())
        if is_eligible(candidate):
            found[channel_id].add(employee_id)
    return {c: frozenset(ids) for c, ids in found.items()}


def watch_eligibility(session: Session, account_id: int, channel_ids: Sequence[int] | None = None) -> EligibilityWatch:
    """Call before changing roles, toggles or employees, in the same transaction."""
    return EligibilityWatch(account_id, _eligible_by_channel(session, account_id, channel_ids))


def _open_new_chats(session: Session, account_id: int, channel_id: int, ids: Sequence[int] | None = None) -> list[int]:
    """New clients' chats nobody has answered or claimed yet (no employee message at all)."""
    answered = exists().where(Message.chat_id == Chat.id, Message.direction == DIRECTION_OUT)
    q = select(Chat.id).where(
        Chat.account_id == account_id,
        Chat.channel_id == channel_id,
        Chat.is_new_client.is_(True),
        Chat.claimed_by_employee_id.is_(None),
        Chat.assignment.in_((OFFERED, ASSIGNED, UNASSIGNED)),
        ~answered,
    )
    if ids is not None:
        q = q.where(Chat.id.in_(list(ids)))
    return list(session.execute(q.order_by(Chat.id)).scalars())


def redistribute_open_chats(session: Session, watch: EligibilityWatch, now: datetime | None = None) -> list[int]:
    """After an eligibility change, in the same transaction: re-offer or re-assign the new clients'
    chats nobody has answered yet, by ``widget.domain.distribution.redistribute``. Returns the CRM
    follow-ups (a changed responsible) to nudge after commit; the sweep runs them anyway.

    Rows are locked as the rest of distribution does — each chat (in id order, so two changes never
    deadlock), then the channel's settings row (the round-robin turn) — and the chats are selected
    again once locked: a reply that got in first has claimed or answered the chat and it is left
    alone; a reply that comes after sees the new offer (``send_reply`` checks it under the chat lock).
    """
    now = now or utcnow()
    note_chat_list_change(session, watch.account_id)
    after = _eligible_by_channel(session, watch.account_id, list(watch.before) or None)
    follow_ups: list[int] = []
    for channel_id in sorted(set(watch.before) | set(after)):
        before_ids, after_ids = watch.before.get(channel_id, frozenset()), after.get(channel_id, frozenset())
        if before_ids == after_ids:
            continue
        candidates_ids = _open_new_chats(session, watch.account_id, channel_id)
        if not candidates_ids:
            continue
        for chat_id in candidates_ids:
            lock_for_update(session, Chat, id=chat_id)
        settings = lock_for_update(session, ChannelSettings, channel_id=channel_id)
        mode = settings.distribution if settings is not None else FIRST_REPLY
        candidates = load_candidates(session, watch.account_id, channel_id)
        lost = before_ids - after_ids
        for chat_id in _open_new_chats(session, watch.account_id, channel_id, candidates_ids):
            chat = session.get(Chat, chat_id)
            assert chat is not None
            if chat.assignment == OFFERED:
                holders = list(
                    session.execute(select(ChatOffer.employee_id).where(ChatOffer.chat_id == chat.id)).scalars()
                )
            else:
                holders = [chat.responsible_employee_id] if chat.responsible_employee_id is not None else []
            decision = redistribute(mode, chat.assignment, holders, candidates, lost)
            if decision is None:
                continue
            previous = chat.crm_responsible_user_id
            session.execute(delete(ChatOffer).where(ChatOffer.chat_id == chat.id))
            apply_decision(session, chat, settings, decision, now)
            log.info("chat %s: redistributed after an eligibility change (%s)", chat.id, chat.assignment)
            if decision.assign_to is not None:
                # The next turn must see this one (load_candidates reads the turns table).
                session.flush()
                candidates = load_candidates(session, watch.account_id, channel_id)
            if chat.crm_responsible_user_id != previous:
                follow_ups += record_responsible_change(session, chat, now)
    return follow_ups
