"""What the chat panel reads: the chat list (global or one CRM card), the unanswered counters, and
one chat with its history — always through the visibility rules of ``widget.domain.visibility``,
so the list, the counters, the history and the send box agree with what the server enforces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
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
    may_learn_taker,
    write_right,
)
from widget.models import AccountSettings, Channel, ChannelRole, Employee
from widget.models.conversations import DIRECTION_IN, Chat, ChatOffer, Client, Message
from widget.models.replies import OutboundDelivery
from widget.services.conversations.chats import ChatListItem, viewer_for
from widget.services.conversations.replies import may_dismiss

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
    # The viewer's role on the chat's channel and whether they are its (CRM) responsible: why a
    # viewer who may not write cannot is said in their role's words.
    viewer_role: str | None = None
    viewer_is_responsible: bool = False


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
                viewer_role=viewer.role_on(c.channel_id),
                viewer_is_responsible=c.assignment != OFFERED and c.responsible_employee_id == viewer.employee_id,
            )
        )
    return rows


# --- the list ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatPage:
    rows: list[ChatRow]
    next_before: tuple[datetime, int] | None  # keyset cursor of the next (older) page
    viewer: Viewer  # who the page was read for (``viewer_for``), for the rest of the request


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
    """One page of the chats this employee may see, newest first, and the viewer it was read for.

    Global scope pages through ``visible_page_and_viewer`` (the viewer and the page in one
    statement); a card shows the few chats of one CRM contact / lead / deal, each checked with
    ``can_see``.
    """
    if employee is None:
        return ChatPage([], None, Viewer(employee_id=0))
    if card is None and not unanswered_only:
        items, viewer = visible_page_and_viewer(session, account_id, employee.id, limit=limit, before=before)
        ids = [i.chat_id for i in items]
    else:
        viewer = viewer_for(session, account_id, employee.id)
        if card is not None:
            rows = build_rows(
                session, account_id, viewer, [c.id for c in card_chats(session, account_id, viewer, card)]
            )
            if unanswered_only:
                rows = [r for r in rows if r.unanswered]
            return ChatPage(rows, None, viewer)
        ids = [c.id for c in unanswered_chats(session, account_id, viewer, limit=limit, before=before)]
    rows = build_rows(session, account_id, viewer, ids)
    next_before = (rows[-1].last_message_at, rows[-1].id) if len(rows) >= limit else None
    return ChatPage(rows, next_before, viewer)


def visible_page(
    session: Session,
    account_id: int,
    employee_id: int,
    *,
    limit: int = 50,
    before: tuple[datetime, int] | None = None,
) -> list[ChatListItem]:
    """The chats this employee may see, newest first, one keyset page (``before`` = the last item's
    (last_message_at, chat_id)), each with its counter: ``visible_page_and_viewer``."""
    return visible_page_and_viewer(session, account_id, employee_id, limit=limit, before=before)[0]


def visible_page_and_viewer(
    session: Session,
    account_id: int,
    employee_id: int,
    *,
    limit: int = 50,
    before: tuple[datetime, int] | None = None,
) -> tuple[list[ChatListItem], Viewer]:
    """``visible_page``, and the viewer it was read for (what ``viewer_for`` returns), so a caller
    that needs the viewer too does not read it again.

    What the chat panel runs on every poll that is not a 304, so it is one round trip: the page
    and the viewer in one statement (``_page_query``), at the Core level (no ORM identity map for
    50 plain rows). The statement is written for the channels the employee had roles on at their
    last page (``_ROLES_SEEN``); it also reads their roles now, and a page read for other roles
    than they have is read again for the right ones (once, after a role change). An employee's
    first page in this process reads their roles first. Each counter is ``visibility.counter``
    itself, on the viewer read with the page.
    """
    params: dict[str, Any] = {"account_id": account_id, "employee_id": employee_id}
    if before is not None:
        params["before_at"], params["before_id"] = before
    connection = session.connection()
    key = (account_id, employee_id)
    channels = _ROLES_SEEN.get(key)
    if channels is None:
        channels = _channels_seen(viewer_for(session, account_id, employee_id))
    for _ in range(3):
        page, viewer = _read_page(connection, channels, before is not None, limit, params)
        now = _channels_seen(viewer)
        if len(_ROLES_SEEN) >= _ROLES_KEPT:
            _ROLES_SEEN.clear()
        _ROLES_SEEN[key] = now
        if now == channels:
            break
        channels = now  # the roles changed since the last page: read it again for the new ones
    else:
        # Roles changing under every read (never seen): keep only what the roles read last allow.
        page = [c for c in page if can_see(viewer, ChatFacts(c[1], c[5], c[6], _offered_to(c, employee_id), c[7]))]
    if not viewer.roles:  # switched off, gone from the CRM, or no role: sees nothing
        return [], viewer
    page.sort(key=_recency, reverse=True)  # the branches, each in order, merged (a chat is in one only)
    items = []
    for c in page[:limit]:
        chat_id, channel_id, title, at, preview, assignment, responsible, unanswered, _ = c
        facts = ChatFacts(channel_id, assignment, responsible, _offered_to(c, employee_id), unanswered)
        items.append(ChatListItem(chat_id, channel_id, title, at, preview, counter(viewer, facts)))
    return items, viewer


# The channels an employee saw entirely and those where they saw their own chats, at their last
# page: what the next page's statement is written for (see ``visible_page_and_viewer``).
_Channels = tuple[tuple[int, ...], tuple[int, ...]]
_ROLES_SEEN: dict[tuple[int, int], _Channels] = {}
_ROLES_KEPT = 50_000  # then forgotten all at once: a forgotten employee's next page costs one read more


def _channels_seen(viewer: Viewer) -> _Channels:
    see_all, see_own = _role_channels(viewer)
    return tuple(sorted(see_all)), tuple(sorted(see_own))


def _offered_to(chat: tuple[Any, ...], employee_id: int) -> frozenset[int]:
    # Who else an offered chat went to changes nothing for this viewer: only whether it went to them.
    return frozenset((employee_id,)) if chat[8] else frozenset()


def _read_page(
    connection: Any, channels: _Channels, keyset: bool, limit: int, params: dict[str, Any]
) -> tuple[list[tuple[Any, ...]], Viewer]:
    """``_page_query`` for these channels: the chats it found, and the viewer."""
    see_all, see_own = channels
    bound = {
        **params,
        **{f"all_{i}": ch for i, ch in enumerate(see_all)},
        **{f"own_{i}": ch for i, ch in enumerate(see_own)},
    }
    query = _page_query(connection.dialect.name, len(see_all), len(see_own), keyset, limit)
    page: list[tuple[Any, ...]] = []
    of_viewer: list[tuple[Any, ...]] = []
    # Unpacked by position: reading 50 rows' columns by name costs more than the rest of the work.
    for kind, *chat, is_active, in_crm, role, notify_heads_all in connection.execute(query, bound):
        if kind == _CHAT:
            page.append(tuple(chat))
        else:
            of_viewer.append((chat[1], role, is_active, in_crm, notify_heads_all))
    return page, _viewer_from(params["employee_id"], of_viewer)


def _recency(chat: tuple[Any, ...]) -> tuple[datetime, int]:
    return chat[3], chat[0]


def _viewer_from(employee_id: int, rows: Sequence[tuple[Any, ...]]) -> Viewer:
    """``conversations.viewer_for`` on the rows the page query read for it: (channel, role,
    is_active, in_crm, notify_heads_all), one per role, or one with no channel."""
    if not rows or not (rows[0][2] and rows[0][3]):
        return Viewer(employee_id=employee_id)
    roles = {channel_id: role for channel_id, role, *_ in rows if channel_id is not None}
    return Viewer(employee_id=employee_id, roles=roles, notify_heads_all=bool(rows[0][4]))


_CHAT = 0  # the kind of a chat's row; the viewer's rows are 1
# Built once per shape (dialect, how many channels of each kind, first page or keyset, page size),
# then only bound.
_PAGE_QUERIES: dict[tuple[str, int, int, bool, int], Any] = {}


def _page_query(dialect: str, n_see_all: int, n_see_own: int, keyset: bool, limit: int) -> Any:
    """The page for given channels, and the viewer, in one statement: a ``UNION ALL`` of

    - the chats of the channels seen entirely (``:all_0`` …; ``ix_chats_account_recent`` or
      ``ix_chats_channel_recent``, as the planner finds best for those channels),
    - the viewer's own clients on the channels where they see their own (``:own_0`` …;
      ``ix_chats_responsible_recent``),
    - the new clients offered to them there (``ix_chat_offers_employee``),

    each at most ``limit`` rows in order, with for every offered chat whether it was offered to the
    viewer; then ``viewer_for``'s rows (roles per channel, "notify heads"), which tell the caller
    whether the channels were the right ones. A branch without channels is left out.

    Nothing here is kept prepared (psycopg forgets its prepared statements at every rollback), so
    PostgreSQL plans it on every call: it is kept to what the viewer needs, constants are written
    in (the planner sees them), and it stays under the length psycopg parses once and remembers.
    """
    built = (dialect, n_see_all, n_see_own, keyset, limit)
    query = _PAGE_QUERIES.get(built)
    if query is not None:
        return query
    account: Any = bindparam("account_id")
    employee: Any = bindparam("employee_id")
    c = aliased(Chat, name="c")
    offer = aliased(ChatOffer, name="o")
    offered = _sql_text(OFFERED)
    written_limit = literal_column(str(int(limit)), Integer)

    def branch(q: Any, channels: list[Any], offered_to_me: Any) -> Any:
        q = q.add_columns(offered_to_me.label("offered_to_me"), *_NO_VIEWER).where(
            c.account_id == account, c.channel_id.in_(channels)
        )
        if keyset:
            after = bindparam("before_at", type_=Chat.last_message_at.type)
            q = q.where(tuple_(c.last_message_at, c.id) < tuple_(after, bindparam("before_id", type_=Integer)))
        q = q.order_by(c.last_message_at.desc(), c.id.desc()).limit(written_limit)
        # PostgreSQL takes each branch in parentheses (shorter SQL); SQLite only allows an ordered,
        # limited branch as a subquery.
        return q if dialect == "postgresql" else select(q.subquery())

    columns = (
        literal_column(str(_CHAT), Integer).label("kind"),
        c.id,
        c.channel_id,
        c.title,
        c.last_message_at,
        c.last_message_preview,
        c.assignment,
        c.responsible_employee_id,
        c.unanswered,
    )
    branches = []
    if n_see_all:
        to_me = select(offer.chat_id).where(offer.chat_id == c.id, offer.employee_id == employee).exists()
        see_all: list[Any] = [bindparam(f"all_{i}", type_=Integer) for i in range(n_see_all)]
        branches.append(branch(select(*columns), see_all, case((c.assignment == offered, to_me), else_=false())))
    if n_see_own:
        see_own: list[Any] = [bindparam(f"own_{i}", type_=Integer) for i in range(n_see_own)]
        own = select(*columns).where(c.responsible_employee_id == employee, c.assignment != offered)
        offered_to_them = (
            select(*columns)
            .select_from(offer)
            .join(c, c.id == offer.chat_id)
            .where(offer.account_id == account, offer.employee_id == employee, c.assignment == offered)
        )
        branches.append(branch(own, see_own, false()))
        branches.append(branch(offered_to_them, see_own, true()))
    of_viewer = (
        select(
            literal_column("1", Integer),
            null(),  # id
            ChannelRole.channel_id,
            *(null() for _ in range(7)),  # title … unanswered, offered_to_me
            Employee.is_active,
            Employee.in_crm,
            ChannelRole.role,
            AccountSettings.notify_heads_all,
        )
        .select_from(Employee)
        .outerjoin(ChannelRole, and_(ChannelRole.employee_id == Employee.id, ChannelRole.account_id == account))
        .outerjoin(AccountSettings, AccountSettings.account_id == Employee.account_id)
        .where(Employee.id == employee, Employee.account_id == account)
    )
    combine: Any = union_all  # called through Any: mypy 2.4 crashes expanding its overloads
    query = combine(*branches, of_viewer) if branches else of_viewer
    _PAGE_QUERIES[built] = query
    return query


def _sql_text(value: str) -> Any:
    """A constant of the code written into the SQL rather than bound, so the planner sees it; only
    plain words, so no quoting can go wrong."""
    if not value.replace("_", "").isalnum():
        raise ValueError(value)
    return literal_column(f"'{value}'", String)


# The viewer's columns, empty in a chat's row (typed: PostgreSQL types a UNION's columns pairwise).
_NO_VIEWER = (
    cast(null(), Boolean).label("is_active"),
    cast(null(), Boolean).label("in_crm"),
    cast(null(), String).label("role"),
    cast(null(), Boolean).label("notify_heads_all"),
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
    facts = _facts(chat, offers)
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
