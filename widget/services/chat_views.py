"""What the chat panel reads: the chat list (global or one CRM card), the unanswered counters, and
one chat with its history — always through the visibility rules of ``widget.domain.visibility``,
so the list, the counters, the history and the send box agree with what the server enforces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from widget.domain.ports import CONTACT, DEAL, LEAD
from widget.domain.roles import capabilities
from widget.domain.visibility import (
    OFFERED,
    RESOLVING,
    UNASSIGNED,
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
from widget.services.conversations import ChatListItem, _list_query, viewer_for
from widget.services.replies import may_dismiss

CARD_KINDS = (LEAD, DEAL, CONTACT)
CARD_LIMIT = 200  # chats of one CRM card; a client with more is not a person
TOTALS_LIMIT = 1000  # unanswered chats counted for the header; beyond it the header says "1000+"


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
    may_dismiss: bool  # "No reply needed"
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
    offers = _offers(session, [i for i, r in found.items() if r.Chat.assignment == OFFERED])
    rows = []
    for chat_id in chat_ids:
        r = found.get(chat_id)
        if r is None:
            continue
        c = r.Chat
        facts = _facts(c, offers)
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
            )
        )
    return rows


# --- the list ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatPage:
    rows: list[ChatRow]
    next_before: tuple[datetime, int] | None  # keyset cursor of the next (older) page


def list_page(
    session: Session,
    account_id: int,
    employee: Employee | None,
    *,
    card: Card | None = None,
    limit: int = 50,
    before: tuple[datetime, int] | None = None,
    unanswered_only: bool = False,
    viewer: Viewer | None = None,
) -> ChatPage:
    """One page of the chats this employee may see, newest first.

    Global scope pages through ``visible_page`` (index range scans per role); a card shows the few
    chats of one CRM contact / lead / deal, each checked with ``can_see``. A caller that already
    has the viewer passes it: it is read once per request.
    """
    if employee is None:
        return ChatPage([], None)
    viewer = viewer or viewer_for(session, account_id, employee.id)
    if card is not None:
        rows = build_rows(session, account_id, viewer, [c.id for c in card_chats(session, account_id, viewer, card)])
        if unanswered_only:
            rows = [r for r in rows if r.unanswered]
        return ChatPage(rows, None)
    if unanswered_only:
        ids = [c.id for c in unanswered_chats(session, account_id, viewer, limit=limit, before=before)]
    else:
        ids = [
            i.chat_id for i in visible_page(session, account_id, employee.id, viewer=viewer, limit=limit, before=before)
        ]
    rows = build_rows(session, account_id, viewer, ids)
    next_before = (rows[-1].last_message_at, rows[-1].id) if len(rows) >= limit else None
    return ChatPage(rows, next_before)


def visible_page(
    session: Session,
    account_id: int,
    employee_id: int,
    *,
    viewer: Viewer | None = None,
    limit: int = 50,
    before: tuple[datetime, int] | None = None,
) -> list[ChatListItem]:
    """The chats this employee may see, newest first, one keyset page (``before`` = the last item's
    (last_message_at, chat_id)), each with its counter: the viewer (unless given), then the page
    in one statement (``conversations._list_query``: a ``UNION ALL`` of index range scans), then
    who else a page's offered chats went to only if it holds any.

    The same rules as ``conversations.list_chats``; what the chat panel runs on every poll that
    is not a 304, so it stays at the Core level (no ORM identity map for 50 plain rows)."""
    viewer = viewer or viewer_for(session, account_id, employee_id)
    see_all, see_own = _role_channels(viewer)
    if not see_all and not see_own:
        return []
    params: dict[str, Any] = {"account_id": account_id, "employee_id": employee_id}
    if see_all:
        params["see_all"] = see_all
    if see_own:
        params["see_own"] = see_own
    if before is not None:
        params["before_at"], params["before_id"] = before
    query = _list_query(bool(see_all), bool(see_own), before is not None, limit)
    found = list(session.connection().execute(query, params))
    if see_own:  # two or three branches, each in order: merge them (a chat is in one branch only)
        found.sort(key=lambda c: (c.last_message_at, c.id), reverse=True)
    page = found[:limit]
    offered = [c.id for c in page if c.assignment == OFFERED]
    offers = _offers(session, offered) if offered else {}
    items = []
    for c in page:
        facts = ChatFacts(
            c.channel_id, c.assignment, c.responsible_employee_id, offers.get(c.id, frozenset()), c.unanswered
        )
        items.append(
            ChatListItem(c.id, c.channel_id, c.title, c.last_message_at, c.last_message_preview, counter(viewer, facts))
        )
    return items


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


def totals(
    session: Session, account_id: int, employee: Employee | None, card: Card | None = None, viewer: Viewer | None = None
) -> Totals:
    """How many unanswered chats this employee should act on (red) and merely sees (grey).

    Counted in SQL over the partial index of unanswered chats (a head of a million chats does not
    load them); the conditions are ``widget.domain.visibility.counter`` written as SQL, and a test
    holds the two together. Each count stops at ``TOTALS_LIMIT``.
    """
    if employee is None:
        return Totals(0, 0)
    viewer = viewer or viewer_for(session, account_id, employee.id)
    if card is not None:
        return _card_totals(session, account_id, viewer, card)
    watch = [c for c, r in viewer.roles.items() if capabilities(r).see_all and not capabilities(r).writes_anything]
    lead = [c for c, r in viewer.roles.items() if capabilities(r).see_all and capabilities(r).writes_anything]
    own_only = [c for c, r in viewer.roles.items() if capabilities(r).see_own and not capabilities(r).see_all]
    me = viewer.employee_id
    offered_to_me = and_(
        Chat.assignment == OFFERED,
        Chat.id.in_(select(ChatOffer.chat_id).where(ChatOffer.account_id == account_id, ChatOffer.employee_id == me)),
    )
    should_act = or_(and_(Chat.responsible_employee_id == me, Chat.assignment != OFFERED), offered_to_me)

    def count(channels: list[int], *extra: Any) -> int:
        if not channels:
            return 0
        capped = (
            select(Chat.id)
            .where(Chat.account_id == account_id, Chat.unanswered, Chat.channel_id.in_(channels), *extra)
            .limit(TOTALS_LIMIT)
            .subquery()
        )
        return int(session.execute(select(func.count()).select_from(capped)).scalar_one())

    # A rep's two kinds apart, so each is a range of the partial index (own: by responsible).
    red = count(own_only, Chat.responsible_employee_id == me, Chat.assignment != OFFERED) + count(
        own_only, offered_to_me
    )
    grey = count(watch)
    if lead:
        everyone = count(lead)
        # Heads act on their own chats, on everything with "notify heads about all messages", and on
        # chats nobody else will answer (nobody eligible, or the CRM has not named anyone yet).
        mine = (
            everyone
            if viewer.notify_heads_all
            else count(
                lead,
                or_(
                    should_act,
                    Chat.assignment.in_((UNASSIGNED, RESOLVING)),
                    Chat.responsible_employee_id.is_(None),
                ),
            )
        )
        red += mine
        grey += everyone - mine
    return Totals(red, grey, capped=max(red, grey) >= TOTALS_LIMIT)


def _card_totals(session: Session, account_id: int, viewer: Viewer, card: Card) -> Totals:
    chats = [c for c in card_chats(session, account_id, viewer, card) if c.unanswered]
    offers = _offers(session, [c.id for c in chats if c.assignment == OFFERED])
    marks = [counter(viewer, _facts(c, offers)) for c in chats]
    return Totals(marks.count(Counter.RED), marks.count(Counter.GREY))


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
    (row,) = build_rows(session, account_id, viewer, [chat.id])
    messages, has_older = messages_of(session, chat.id, limit=limit)
    return ChatView(row, messages, has_older)
