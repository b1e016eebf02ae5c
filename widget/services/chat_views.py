"""What the chat panel reads: the chat list (global or one CRM card), the unanswered counters, and
one chat with its history — always through the visibility rules of ``widget.domain.visibility``,
so the list, the counters, the history and the send box agree with what the server enforces.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.orm import Session

from widget.domain.ports import CONTACT, DEAL, LEAD
from widget.domain.roles import capabilities
from widget.domain.visibility import (
    OFFERED,
    ChatFacts,
    Counter,
    Viewer,
    WriteRight,
    can_see,
    counter,
    write_right,
)
from widget.models import Channel, Employee
from widget.models.conversations import DIRECTION_IN, Chat, ChatOffer, Client, Message
from widget.models.replies import OutboundDelivery
from widget.services.conversations import list_chats, viewer_for

CARD_KINDS = (LEAD, DEAL, CONTACT)
CARD_LIMIT = 200  # chats of one CRM card; a client with more is not a person
TOTALS_LIMIT = 10_000  # unanswered chats counted for the header; beyond it the header says "10000+"


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


# --- rows -------------------------------------------------------------------------------------------


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
    crm_contact_id: str | None
    crm_entity_kind: str | None
    crm_entity_id: str | None


def _offers(session: Session, chat_ids: Sequence[int]) -> dict[int, frozenset[int]]:
    if not chat_ids:
        return {}
    found: dict[int, set[int]] = {}
    for cid, eid in session.execute(
        select(ChatOffer.chat_id, ChatOffer.employee_id).where(ChatOffer.chat_id.in_(chat_ids))
    ):
        found.setdefault(cid, set()).add(eid)
    return {cid: frozenset(eids) for cid, eids in found.items()}


def _facts(chat: Chat, offers: dict[int, frozenset[int]]) -> ChatFacts:
    return ChatFacts(
        channel_id=chat.channel_id,
        assignment=chat.assignment,
        responsible_employee_id=chat.responsible_employee_id,
        offered_to=offers.get(chat.id, frozenset()) if chat.assignment == OFFERED else frozenset(),
        unanswered=chat.unanswered,
    )


def _unanswered_counts(session: Session, chats: Sequence[Chat]) -> dict[int, int]:
    """Client messages since the last answer, per unanswered chat (one grouped index scan)."""
    ids = [c.id for c in chats if c.unanswered]
    if not ids:
        return {}
    rows = session.execute(
        select(Message.chat_id, func.count())
        .join(Chat, Chat.id == Message.chat_id)
        .where(
            Message.chat_id.in_(ids),
            Message.direction == DIRECTION_IN,
            or_(Chat.unanswered_since.is_(None), Message.sent_at >= Chat.unanswered_since),
        )
        .group_by(Message.chat_id)
    )
    return {int(cid): int(n) for cid, n in rows}


def _names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(select(Employee.id, Employee.name).where(Employee.id.in_(wanted))).all())  # type: ignore[arg-type]


def build_rows(session: Session, account_id: int, viewer: Viewer, chats: Sequence[Chat]) -> list[ChatRow]:
    """The chats as the panel shows them to this viewer. Callers pass only chats the viewer may see."""
    if not chats:
        return []
    offers = _offers(session, [c.id for c in chats if c.assignment == OFFERED])
    counts = _unanswered_counts(session, chats)
    names = _names(session, [c.responsible_employee_id for c in chats] + [c.claimed_by_employee_id for c in chats])
    channels = {
        ch_id: (name, transport)
        for ch_id, name, transport in session.execute(
            select(Channel.id, Channel.name, Channel.transport).where(
                Channel.account_id == account_id, Channel.id.in_({c.channel_id for c in chats})
            )
        )
    }
    phones = dict(
        session.execute(select(Client.id, Client.phone).where(Client.id.in_({c.client_id for c in chats}))).all()  # type: ignore[arg-type]
    )
    rows = []
    for c in chats:
        facts = _facts(c, offers)
        channel_name, transport = channels.get(c.channel_id, ("", c.chat_type))
        rows.append(
            ChatRow(
                id=c.id,
                channel_id=c.channel_id,
                channel_name=channel_name,
                transport=transport,
                title=c.title,
                phone=phones.get(c.client_id),
                preview=c.last_message_preview,
                last_message_at=c.last_message_at,
                last_direction=c.last_direction,
                unanswered=c.unanswered,
                unanswered_count=counts.get(c.id, 1 if c.unanswered else 0),
                counter=counter(viewer, facts),
                offered=c.assignment == OFFERED,
                # While offered, the CRM responsible is only the provisional fallback user.
                responsible_name="" if c.assignment == OFFERED else names.get(c.responsible_employee_id or 0, ""),
                claimed_by_name=names.get(c.claimed_by_employee_id or 0, ""),
                write=write_right(viewer, facts),
                crm_contact_id=c.crm_contact_id,
                crm_entity_kind=c.crm_entity_kind,
                crm_entity_id=c.crm_entity_id,
            )
        )
    return rows


# --- the list ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatPage:
    rows: list[ChatRow]
    next_before: tuple[datetime, int] | None  # keyset cursor of the next (older) page


def _chats_by_id(session: Session, account_id: int, ids: Sequence[int]) -> list[Chat]:
    if not ids:
        return []
    found = {
        c.id: c for c in session.execute(select(Chat).where(Chat.account_id == account_id, Chat.id.in_(ids))).scalars()
    }
    return [found[i] for i in ids if i in found]


def list_page(
    session: Session,
    account_id: int,
    employee: Employee | None,
    *,
    card: Card | None = None,
    limit: int = 50,
    before: tuple[datetime, int] | None = None,
    unanswered_only: bool = False,
) -> ChatPage:
    """One page of the chats this employee may see, newest first.

    Global scope pages through the engine's ``list_chats`` (index range scans per role); a card
    shows the few chats of one CRM contact / lead / deal, each checked with ``can_see``.
    """
    if employee is None:
        return ChatPage([], None)
    viewer = viewer_for(session, account_id, employee.id)
    if card is not None:
        rows = build_rows(session, account_id, viewer, card_chats(session, account_id, viewer, card))
        if unanswered_only:
            rows = [r for r in rows if r.unanswered]
        return ChatPage(rows, None)
    if unanswered_only:
        chats = unanswered_chats(session, account_id, viewer, limit=limit, before=before)
    else:
        items = list_chats(session, account_id, employee.id, limit=limit, before=before)
        chats = _chats_by_id(session, account_id, [i.chat_id for i in items])
    rows = build_rows(session, account_id, viewer, chats)
    next_before = (rows[-1].last_message_at, rows[-1].id) if len(rows) >= limit else None
    return ChatPage(rows, next_before)


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
    offers = _offers(session, [c.id for c in chats.values() if c.assignment == OFFERED])
    visible = [c for c in chats.values() if can_see(viewer, _facts(c, offers))]
    return sorted(visible, key=lambda c: (c.last_message_at, c.id), reverse=True)


def _role_channels(viewer: Viewer) -> tuple[list[int], list[int]]:
    see_all = [c for c, r in viewer.roles.items() if capabilities(r).see_all]
    see_own = [c for c, r in viewer.roles.items() if capabilities(r).see_own and not capabilities(r).see_all]
    return see_all, see_own


def _visible_unanswered(account_id: int, viewer: Viewer) -> list[Any]:
    """Conditions selecting the unanswered chats this viewer may see, one per index range (the
    partial ``ix_chats_unanswered`` holds only unanswered chats)."""
    see_all, see_own = _role_channels(viewer)
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


@dataclass(frozen=True)
class Totals:
    red: int
    grey: int
    capped: bool = False


def totals(session: Session, account_id: int, employee: Employee | None, card: Card | None = None) -> Totals:
    """How many unanswered chats this employee should act on (red) and merely sees (grey)."""
    if employee is None:
        return Totals(0, 0)
    viewer = viewer_for(session, account_id, employee.id)
    if card is not None:
        chats = [c for c in card_chats(session, account_id, viewer, card) if c.unanswered]
    else:
        found: dict[int, Chat] = {}
        for cond in _visible_unanswered(account_id, viewer):
            for c in session.execute(select(Chat).where(cond).limit(TOTALS_LIMIT)).scalars():
                found[c.id] = c
        chats = list(found.values())
    offers = _offers(session, [c.id for c in chats if c.assignment == OFFERED])
    red = grey = 0
    for c in chats:
        mark = counter(viewer, _facts(c, offers))
        if mark is Counter.RED:
            red += 1
        elif mark is Counter.GREY:
            grey += 1
    return Totals(red, grey, capped=len(chats) >= TOTALS_LIMIT)


# --- one chat -----------------------------------------------------------------------------------------


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
    offers = _offers(session, [chat.id] if chat.assignment == OFFERED else [])
    if not can_see(viewer, _facts(chat, offers)):
        taken_by = ""
        if chat.claimed_by_employee_id is not None and chat.claimed_by_employee_id != viewer.employee_id:
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
    (row,) = build_rows(session, account_id, viewer, [chat])
    messages, has_older = messages_of(session, chat.id, limit=limit)
    return ChatView(row, messages, has_older)
