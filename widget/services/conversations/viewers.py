"""The facts the domain's visibility rules decide on, read from the database: the viewer (an
employee's roles per channel and the account's "notify heads" option) and a chat's facts."""

from __future__ import annotations

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from widget.domain.visibility import OFFERED, ChatFacts, Viewer
from widget.models import AccountSettings, ChannelRole, Employee
from widget.models.conversations import Chat, ChatOffer


def viewer_for(session: Session, account_id: int, employee_id: int) -> Viewer:
    """The employee's roles per channel and the account's "notify heads" option, in one statement
    (it runs before every chat list, send and counter)."""
    rows = session.execute(
        select(
            Employee.is_active,
            Employee.in_crm,
            ChannelRole.channel_id,
            ChannelRole.role,
            AccountSettings.notify_heads_all,
        )
        .select_from(Employee)
        .outerjoin(ChannelRole, and_(ChannelRole.employee_id == Employee.id, ChannelRole.account_id == account_id))
        .outerjoin(AccountSettings, AccountSettings.account_id == Employee.account_id)
        .where(Employee.id == employee_id, Employee.account_id == account_id)
    ).all()
    if not rows or not (rows[0].is_active and rows[0].in_crm):
        return Viewer(employee_id=employee_id)
    roles = {r.channel_id: r.role for r in rows if r.channel_id is not None}
    return Viewer(employee_id=employee_id, roles=roles, notify_heads_all=bool(rows[0].notify_heads_all))


def chat_facts(session: Session, chat: Chat) -> ChatFacts:
    offered: frozenset[int] = frozenset()
    if chat.assignment == OFFERED:
        offered = frozenset(
            session.execute(select(ChatOffer.employee_id).where(ChatOffer.chat_id == chat.id)).scalars()
        )
    return ChatFacts(
        channel_id=chat.channel_id,
        assignment=chat.assignment,
        responsible_employee_id=chat.responsible_employee_id,
        offered_to=offered,
        unanswered=chat.unanswered,
    )
