"""Who gets a new client: the channel's distribution policy applied under the channel's settings
row lock (round robin is one turn at a time across processes), and the fallback CRM user who takes
clients nobody else can."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from widget.db import lock_for_update
from widget.domain.distribution import FIRST_REPLY, Candidate, Decision, policy_for
from widget.domain.visibility import ASSIGNED, OFFERED, UNASSIGNED
from widget.models import Account, AccountSettings, ChannelRole, ChannelSettings, Employee
from widget.models.conversations import Chat, ChatOffer, DistributionTurn
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.outbox import insert_or_ignore

log = logging.getLogger(__name__)


def load_candidates(session: Session, account_id: int, channel_id: int) -> list[Candidate]:
    rows = session.execute(
        select(ChannelRole, Employee, DistributionTurn.last_turn)
        .join(Employee, Employee.id == ChannelRole.employee_id)
        .outerjoin(
            DistributionTurn,
            (DistributionTurn.channel_id == ChannelRole.channel_id)
            & (DistributionTurn.employee_id == ChannelRole.employee_id),
        )
        .where(ChannelRole.account_id == account_id, ChannelRole.channel_id == channel_id)
    ).all()
    return [
        Candidate(
            employee_id=emp.id,
            name=emp.name,
            role=role.role,
            gets_new_clients=role.gets_new_clients,
            is_active=emp.is_active and emp.in_crm,
            last_turn=last_turn or 0,
        )
        for role, emp, last_turn in rows
    ]


def fallback_employee(session: Session, account_id: int) -> Employee | None:
    """The CRM user who gets clients nobody else can take: the Advanced tab's choice, else the admin
    who installed, else the first active admin. Inactive users are skipped: the CRM would keep a
    client with somebody who can no longer log in."""
    settings = session.get(AccountSettings, account_id)
    account = session.get(Account, account_id)
    tried: list[Employee | None] = []
    if settings is not None and settings.fallback_employee_id is not None:
        tried.append(session.get(Employee, settings.fallback_employee_id))
    if account is not None and account.installed_by_crm_user_id:
        tried.append(
            session.execute(
                select(Employee).where(
                    Employee.account_id == account_id, Employee.crm_user_id == account.installed_by_crm_user_id
                )
            ).scalar_one_or_none()
        )
    tried.append(
        session.execute(
            select(Employee)
            .where(Employee.account_id == account_id, Employee.is_admin, Employee.is_active, Employee.in_crm)
            .order_by(Employee.id)
            .limit(1)
        ).scalar_one_or_none()
    )
    for emp in tried:
        if emp is not None and emp.account_id == account_id and emp.is_active and emp.in_crm:
            return emp
    return None


def assign_new_client(session: Session, chat: Chat, now: datetime) -> Decision:
    """Apply the channel's distribution policy to a new client's chat, in the caller's transaction.

    The channel's settings row is locked first (``FOR UPDATE`` on PostgreSQL, the write lock on
    SQLite), so two new clients never read the same turn, whatever process handles them.
    """
    settings = lock_for_update(session, ChannelSettings, channel_id=chat.channel_id)
    mode = settings.distribution if settings is not None else FIRST_REPLY
    decision = policy_for(mode).decide(load_candidates(session, chat.account_id, chat.channel_id))
    apply_decision(session, chat, settings, decision, now)
    note_chat_list_change(session, chat.account_id)
    return decision


def apply_decision(
    session: Session, chat: Chat, settings: ChannelSettings | None, decision: Decision, now: datetime
) -> None:
    """Make ``decision`` the chat's distribution; the caller holds the channel's settings row lock."""
    fallback = fallback_employee(session, chat.account_id)
    if decision.assign_to is not None:
        assert settings is not None  # round robin is only ever a saved choice
        settings.turn_counter = (settings.turn_counter or 0) + 1
        turn = settings.turn_counter
        if (
            insert_or_ignore(
                session,
                DistributionTurn,
                {
                    "channel_id": chat.channel_id,
                    "employee_id": decision.assign_to,
                    "account_id": chat.account_id,
                    "last_turn": turn,
                },
                ["channel_id", "employee_id"],
            )
            is None
        ):
            session.execute(
                update(DistributionTurn)
                .where(
                    DistributionTurn.channel_id == chat.channel_id, DistributionTurn.employee_id == decision.assign_to
                )
                .values(last_turn=turn)
            )
        session.execute(
            update(ChannelRole)
            .where(ChannelRole.channel_id == chat.channel_id, ChannelRole.employee_id == decision.assign_to)
            .values(assigned_count=ChannelRole.assigned_count + 1)
        )
        chosen = session.get(Employee, decision.assign_to)
        set_responsible(chat, chosen, ASSIGNED)
        log.info("chat %s: new client given in turn %s to employee %s", chat.id, turn, decision.assign_to)
    elif decision.offer_to:
        # The fallback user is the CRM responsible until somebody answers first (product.md §3).
        set_responsible(chat, fallback, OFFERED)
        for employee_id in decision.offer_to:
            session.add(ChatOffer(chat_id=chat.id, employee_id=employee_id, account_id=chat.account_id, offered_at=now))
    else:
        set_responsible(chat, fallback, UNASSIGNED)
        log.info("chat %s: nobody is eligible on channel %s; the heads are asked to act", chat.id, chat.channel_id)


def set_responsible(chat: Chat, employee: Employee | None, assignment: str) -> None:
    chat.assignment = assignment
    chat.responsible_employee_id = employee.id if employee is not None else None
    chat.crm_responsible_user_id = employee.crm_user_id if employee is not None else None
