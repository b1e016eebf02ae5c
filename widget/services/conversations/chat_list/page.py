"""One page of the chat list: ``list_page`` for the panel (global, one card, or unanswered only),
and ``visible_page``, the global page the panel polls, read with the viewer in one statement."""

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
    literal_column,
    null,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from widget.domain.visibility import OFFERED, ChatFacts, Counter, Viewer, can_see, counter
from widget.models import AccountSettings, ChannelRole, Employee
from widget.models.conversations import Chat, ChatOffer
from widget.services.conversations.chat_list.rows import ChatRow, build_rows
from widget.services.conversations.chat_list.scopes import Card, card_chats, role_channels, unanswered_chats
from widget.services.conversations.viewers import viewer_for


@dataclass(frozen=True)
class ChatListItem:
    chat_id: int
    channel_id: int
    title: str
    last_message_at: datetime
    preview: str
    counter: Counter | None


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
    see_all, see_own = role_channels(viewer)
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
    """``viewers.viewer_for`` on the rows the page query read for it: (channel, role,
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
