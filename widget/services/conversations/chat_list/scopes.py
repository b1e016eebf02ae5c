"""Who reads the panel (the identity's employee and their ``Viewer``) and which chats they may see
in each scope of it: one CRM card's chats, the unanswered ones, and the facts (who a first-to-answer
chat was offered to) the visibility rules decide on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, tuple_
from sqlalchemy.orm import Session

from widget.domain.ports import CONTACT, DEAL, LEAD
from widget.domain.roles import capabilities
from widget.domain.visibility import OFFERED, ChatFacts, Viewer, can_see
from widget.models import Employee
from widget.models.conversations import Chat, ChatOffer
from widget.services.conversations.viewers import viewer_for

CARD_KINDS = (LEAD, DEAL, CONTACT)
CARD_LIMIT = 200  # chats of one CRM card; a client with more is not a person


@dataclass(frozen=True)
class Card:
    """The CRM card the panel is opened in: a Kommo lead / contact, a Bitrix24 deal / lead / contact."""

    kind: str
    crm_id: str


def employee_for(session: Session, account_id: int, crm_user_id: str) -> Employee | None:
    """The identity's CRM user as a synced employee (None until "Refresh CRM data" saw them)."""
    return session.execute(
        select(Employee).where(Employee.account_id == account_id, Employee.crm_user_id == crm_user_id)
    ).scalar_one_or_none()


def viewer_of(session: Session, account_id: int, employee: Employee | None) -> Viewer:
    return viewer_for(session, account_id, employee.id) if employee is not None else Viewer(employee_id=0)


def offers_by_chat(session: Session, chat_ids: Sequence[int]) -> dict[int, frozenset[int]]:
    if not chat_ids:
        return {}
    found: dict[int, set[int]] = {}
    for cid, eid in session.execute(
        select(ChatOffer.chat_id, ChatOffer.employee_id).where(ChatOffer.chat_id.in_(chat_ids))
    ):
        found.setdefault(cid, set()).add(eid)
    return {cid: frozenset(eids) for cid, eids in found.items()}


def facts_of(chat: Chat, offers: dict[int, frozenset[int]]) -> ChatFacts:
    return ChatFacts(
        channel_id=chat.channel_id,
        assignment=chat.assignment,
        responsible_employee_id=chat.responsible_employee_id,
        offered_to=offers.get(chat.id, frozenset()) if chat.assignment == OFFERED else frozenset(),
        unanswered=chat.unanswered,
    )


def card_chats(session: Session, account_id: int, viewer: Viewer, card: Card) -> list[Chat]:
    """Chats of one CRM card that this viewer may see. A lead/deal card also shows the client's
    other chats (same CRM contact), e.g. the same person writing on Telegram and on WhatsApp."""
    if card.kind == CONTACT:
        direct = select(Chat).where(Chat.account_id == account_id, Chat.crm_contact_id == card.crm_id)
    else:
        direct = select(Chat).where(
            Chat.account_id == account_id, Chat.crm_entity_id == card.crm_id, Chat.crm_entity_kind == card.kind
        )
    chats = {c.id: c for c in session.execute(direct.limit(CARD_LIMIT)).scalars()}
    contacts = {c.crm_contact_id for c in chats.values() if c.crm_contact_id}
    if card.kind != CONTACT and contacts:
        for c in session.execute(
            select(Chat).where(Chat.account_id == account_id, Chat.crm_contact_id.in_(contacts)).limit(CARD_LIMIT)
        ).scalars():
            chats[c.id] = c
    offers = offers_by_chat(session, [c.id for c in chats.values() if c.assignment == OFFERED])
    visible = [c for c in chats.values() if can_see(viewer, facts_of(c, offers))]
    return sorted(visible, key=lambda c: (c.last_message_at, c.id), reverse=True)


def role_channels(viewer: Viewer) -> tuple[list[int], list[int]]:
    see_all = [c for c, r in viewer.roles.items() if capabilities(r).see_all]
    see_own = [c for c, r in viewer.roles.items() if capabilities(r).see_own and not capabilities(r).see_all]
    return see_all, see_own


def _visible_unanswered(account_id: int, viewer: Viewer) -> list[Any]:
    """Conditions selecting the unanswered chats this viewer may see, one per index range (the
    partial ``ix_chats_unanswered`` holds only unanswered chats)."""
    see_all, see_own = role_channels(viewer)
    conditions: list[Any] = []
    if see_all:
        conditions.append(and_(Chat.account_id == account_id, Chat.unanswered, Chat.channel_id.in_(see_all)))
    if see_own:
        conditions.append(
            and_(
                Chat.account_id == account_id,
                Chat.unanswered,
                Chat.channel_id.in_(see_own),
                Chat.responsible_employee_id == viewer.employee_id,
                Chat.assignment != OFFERED,
            )
        )
        offered = select(ChatOffer.chat_id).where(
            ChatOffer.account_id == account_id, ChatOffer.employee_id == viewer.employee_id
        )
        conditions.append(
            and_(
                Chat.account_id == account_id,
                Chat.unanswered,
                Chat.channel_id.in_(see_own),
                Chat.assignment == OFFERED,
                Chat.id.in_(offered),
            )
        )
    return conditions


def unanswered_chats(
    session: Session, account_id: int, viewer: Viewer, *, limit: int, before: tuple[datetime, int] | None
) -> list[Chat]:
    found: dict[int, Chat] = {}
    for cond in _visible_unanswered(account_id, viewer):
        q = select(Chat).where(cond)
        if before is not None:
            q = q.where(tuple_(Chat.last_message_at, Chat.id) < tuple_(*before))
        for c in session.execute(q.order_by(Chat.last_message_at.desc(), Chat.id.desc()).limit(limit)).scalars():
            found[c.id] = c
    return sorted(found.values(), key=lambda c: (c.last_message_at, c.id), reverse=True)[:limit]
