"""One chat opened in the panel: whether the viewer may see it (``ChatHidden`` says who took it),
its row and a page of its history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from widget.domain.visibility import OFFERED, Viewer, can_see, may_learn_taker
from widget.models import Employee
from widget.models.conversations import Chat, Message
from widget.models.replies import OutboundDelivery
from widget.services.conversations.chat_list.rows import ChatRow, build_rows
from widget.services.conversations.chat_list.scopes import facts_of, offers_by_chat, viewer_of


@dataclass(frozen=True)
class MessageRow:
    id: int
    direction: str
    text: str
    sent_at: datetime
    author_employee_id: int | None
    author_name: str
    sender_name: str
    delivery: str  # "" (client's), queued, sent, failed
    error: str


@dataclass(frozen=True)
class ChatView:
    row: ChatRow
    messages: list[MessageRow]
    has_older: bool


class ChatHidden(Exception):
    """The chat exists in this account but this employee may not see it (``taken_by``: who took it)."""

    def __init__(self, taken_by: str = "") -> None:
        super().__init__(taken_by)
        self.taken_by = taken_by


def visible_chat(session: Session, account_id: int, employee: Employee | None, chat_id: int) -> tuple[Chat, Viewer]:
    """The chat, if this employee may see it. ``LookupError`` when it is not in the account;
    ``ChatHidden`` when it is and they may not."""
    chat = session.get(Chat, chat_id, populate_existing=True)
    if chat is None or chat.account_id != account_id:
        raise LookupError(chat_id)
    viewer = viewer_of(session, account_id, employee)
    offers = offers_by_chat(session, [chat.id] if chat.assignment == OFFERED else [])
    facts = facts_of(chat, offers)
    if not can_see(viewer, facts):
        taken_by = ""
        if (
            chat.claimed_by_employee_id is not None
            and chat.claimed_by_employee_id != viewer.employee_id
            and may_learn_taker(viewer, facts)
        ):
            owner = session.get(Employee, chat.claimed_by_employee_id)
            taken_by = owner.name if owner else ""
        raise ChatHidden(taken_by)
    return chat, viewer


def _message_query() -> Any:
    return (
        select(Message, Employee.name, OutboundDelivery.last_error, OutboundDelivery.status)
        .outerjoin(Employee, Employee.id == Message.author_employee_id)
        .outerjoin(OutboundDelivery, OutboundDelivery.message_id == Message.id)
    )


def _message_row(m: Message, name: str | None, error: str | None, status: str | None) -> MessageRow:
    return MessageRow(
        id=m.id,
        direction=m.direction,
        text=m.text,
        sent_at=m.sent_at,
        author_employee_id=m.author_employee_id,
        author_name=name or "",
        sender_name=m.sender_name,
        delivery=m.delivery or "",
        # A queued reply that failed an attempt says why it is still retrying.
        error=(error or "") if m.delivery in ("queued", "failed") and status != "sent" else "",
    )


def messages_of(
    session: Session, chat_id: int, *, limit: int = 50, before_id: int | None = None
) -> tuple[list[MessageRow], bool]:
    """A page of the chat's messages, oldest first, and whether older ones exist."""
    q = _message_query().where(Message.chat_id == chat_id)
    if before_id is not None:
        anchor = session.execute(
            select(Message.sent_at, Message.id).where(Message.id == before_id, Message.chat_id == chat_id)
        ).first()
        if anchor is None:
            return [], False
        q = q.where(tuple_(Message.sent_at, Message.id) < tuple_(anchor.sent_at, anchor.id))
    rows = session.execute(q.order_by(Message.sent_at.desc(), Message.id.desc()).limit(limit + 1)).all()
    out = [_message_row(*r) for r in rows[:limit]]
    out.reverse()
    return out, len(rows) > limit


def one_message(session: Session, account_id: int, message_id: int) -> MessageRow | None:
    row = session.execute(_message_query().where(Message.id == message_id, Message.account_id == account_id)).first()
    return _message_row(*row) if row is not None else None


def chat_view(
    session: Session, account_id: int, employee: Employee | None, chat_id: int, *, limit: int = 50
) -> ChatView:
    chat, viewer = visible_chat(session, account_id, employee, chat_id)
    (row,) = build_rows(session, account_id, viewer, [chat.id])
    messages, has_older = messages_of(session, chat.id, limit=limit)
    return ChatView(row, messages, has_older)
