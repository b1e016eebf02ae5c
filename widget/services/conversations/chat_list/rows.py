"""A chat as the panel shows it to one viewer (``ChatRow``): title, client, channel, names,
counter and write right, read for a page of chats in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, aliased

from widget.domain.visibility import OFFERED, Counter, Viewer, WriteRight, counter, write_right
from widget.models import Channel, Employee
from widget.models.conversations import DIRECTION_IN, Chat, Client, Message
from widget.services.conversations.chat_list.scopes import facts_of, offers_by_chat
from widget.services.conversations.replies import may_dismiss


@dataclass(frozen=True)
class ChatRow:
    id: int
    channel_id: int
    channel_name: str
    transport: str
    title: str
    phone: str | None
    preview: str
    last_message_at: datetime
    last_direction: str
    unanswered: bool
    unanswered_count: int
    counter: Counter | None
    offered: bool  # first to answer: nobody has taken this new client yet
    responsible_name: str
    claimed_by_name: str
    write: WriteRight
    may_dismiss: bool  # "No reply needed"
    crm_contact_id: str | None
    crm_entity_kind: str | None
    crm_entity_id: str | None
    # The viewer's role on the chat's channel and whether they are its (CRM) responsible: why a
    # viewer who may not write cannot is said in their role's words.
    viewer_role: str | None = None
    viewer_is_responsible: bool = False


def build_rows(session: Session, account_id: int, viewer: Viewer, chat_ids: Sequence[int]) -> list[ChatRow]:
    """The chats as the panel shows them to this viewer, in the order given; callers pass only chats
    the viewer may see. One statement (chat, client, channel, responsible and claimer names, and the
    client messages since the last answer), plus one for the offers of first-to-answer chats."""
    if not chat_ids:
        return []
    responsible = aliased(Employee)
    claimer = aliased(Employee)
    since_answer = (
        select(func.count())
        .select_from(Message)
        .where(
            Message.chat_id == Chat.id,
            Message.direction == DIRECTION_IN,
            or_(Chat.unanswered_since.is_(None), Message.sent_at >= Chat.unanswered_since),
        )
        .correlate(Chat)
        .scalar_subquery()
    )
    found = {
        r.Chat.id: r
        for r in session.execute(
            select(
                Chat,
                Client.phone,
                Channel.name.label("channel_name"),
                Channel.transport,
                responsible.name.label("responsible_name"),
                claimer.name.label("claimer_name"),
                case((Chat.unanswered, since_answer), else_=0).label("waiting"),
            )
            .join(Client, Client.id == Chat.client_id)
            .join(Channel, Channel.id == Chat.channel_id)
            .outerjoin(responsible, responsible.id == Chat.responsible_employee_id)
            .outerjoin(claimer, claimer.id == Chat.claimed_by_employee_id)
            .where(Chat.account_id == account_id, Chat.id.in_(chat_ids))
        )
    }
    offers = offers_by_chat(session, [i for i, r in found.items() if r.Chat.assignment == OFFERED])
    rows = []
    for chat_id in chat_ids:
        r = found.get(chat_id)
        if r is None:
            continue
        c = r.Chat
        facts = facts_of(c, offers)
        rows.append(
            ChatRow(
                id=c.id,
                channel_id=c.channel_id,
                channel_name=r.channel_name,
                transport=r.transport,
                title=c.title,
                phone=r.phone,
                preview=c.last_message_preview,
                last_message_at=c.last_message_at,
                last_direction=c.last_direction,
                unanswered=c.unanswered,
                unanswered_count=max(int(r.waiting or 0), 1 if c.unanswered else 0),
                counter=counter(viewer, facts),
                offered=c.assignment == OFFERED,
                # While offered, the CRM responsible is only the provisional fallback user.
                responsible_name="" if c.assignment == OFFERED else (r.responsible_name or ""),
                claimed_by_name=r.claimer_name or "",
                write=write_right(viewer, facts),
                may_dismiss=may_dismiss(viewer, facts),
                crm_contact_id=c.crm_contact_id,
                crm_entity_kind=c.crm_entity_kind,
                crm_entity_id=c.crm_entity_id,
                viewer_role=viewer.role_on(c.channel_id),
                viewer_is_responsible=c.assignment != OFFERED and c.responsible_employee_id == viewer.employee_id,
            )
        )
    return rows
