"""The unanswered counters of the panel's header: how many chats the viewer should act on (red)
and merely sees (grey), counted in SQL by the rules of ``widget.domain.visibility.counter``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from widget.domain.roles import capabilities
from widget.domain.visibility import OFFERED, RESOLVING, UNASSIGNED, Counter, Viewer, counter
from widget.models import Employee
from widget.models.conversations import Chat, ChatOffer
from widget.services.conversations.chat_list.scopes import Card, card_chats, facts_of, offers_by_chat
from widget.services.conversations.viewers import viewer_for

TOTALS_LIMIT = 1000  # unanswered chats counted for the header; beyond it the header says "1000+"


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
    offers = offers_by_chat(session, [c.id for c in chats if c.assignment == OFFERED])
    marks = [counter(viewer, facts_of(c, offers)) for c in chats]
    return Totals(marks.count(Counter.RED), marks.count(Counter.GREY))
