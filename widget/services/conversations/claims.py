"""Claiming a first-to-answer chat: one conditional UPDATE decides who was first. Storing a reply
(which claims through ``claim_chat``) is ``widget.services.conversations.replies.send_reply``:
there is one way to answer a client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from widget.domain.conversations import taken_message
from widget.domain.visibility import ASSIGNED, OFFERED
from widget.models import Employee
from widget.models._base import utcnow
from widget.models.conversations import Chat, ChatOffer
from widget.services.conversations.crm_responsible import record_responsible_change
from widget.services.conversations.list_stamps import note_chat_list_change


@dataclass(frozen=True)
class ClaimResult:
    won: bool
    owner_employee_id: int | None
    owner_name: str
    follow_ups: tuple[int, ...] = ()  # outbox rows to nudge after commit

    @property
    def message(self) -> str:
        return "" if self.won else taken_message(self.owner_name)


def claim_chat(
    session: Session, account_id: int, chat_id: int, employee_id: int, now: datetime | None = None
) -> ClaimResult:
    """Make this employee responsible for an offered chat, if nobody was faster.

    One conditional UPDATE decides (``… WHERE assignment='offered' AND claimed_by IS NULL``), so
    exactly one of any number of concurrent callers wins, on PostgreSQL and SQLite, across
    processes. On SQLite call it first in its transaction (it then takes the write lock at once).
    The caller checks the right to write and commits; ``follow_ups`` must be nudged after commit.
    """
    now = now or utcnow()
    in_account = exists().where(Employee.id == employee_id, Employee.account_id == account_id)
    won = session.execute(
        update(Chat)
        .where(
            Chat.id == chat_id,
            Chat.account_id == account_id,
            Chat.assignment == OFFERED,
            Chat.claimed_by_employee_id.is_(None),
            in_account,
        )
        .values(
            assignment=ASSIGNED,
            claimed_by_employee_id=employee_id,
            claimed_at=now,
            responsible_employee_id=employee_id,
            crm_responsible_user_id=select(Employee.crm_user_id).where(Employee.id == employee_id).scalar_subquery(),
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if won:
        note_chat_list_change(session, account_id)
        session.execute(delete(ChatOffer).where(ChatOffer.chat_id == chat_id))
        chat = session.execute(
            select(Chat).where(Chat.id == chat_id).execution_options(populate_existing=True)
        ).scalar_one()
        follow_ups = record_responsible_change(session, chat, now)
        name = session.execute(select(Employee.name).where(Employee.id == employee_id)).scalar_one()
        return ClaimResult(True, employee_id, name, tuple(follow_ups))
    row = session.execute(
        select(Chat.claimed_by_employee_id, Chat.responsible_employee_id, Employee.name)
        .outerjoin(Employee, Employee.id == Chat.claimed_by_employee_id)
        .where(Chat.id == chat_id, Chat.account_id == account_id)
    ).first()
    if row is None:
        return ClaimResult(False, None, "")
    return ClaimResult(False, row[0], row[2] or "")
