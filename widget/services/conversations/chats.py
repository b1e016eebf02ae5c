"""Conversation use cases: who may see and answer a chat, claiming a first-to-answer chat, and the
CRM follow-ups that responsibility changes need. Storing a reply (which claims through
``claim_chat``) is ``widget.services.conversations.replies.send_reply``: there is one way to answer a client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.orm import Session

from widget.db import Database
from widget.domain.conversations import taken_message
from widget.domain.ports import CONTACT, CrmPort, EntityRef
from widget.domain.visibility import (
    ASSIGNED,
    OFFERED,
    ChatFacts,
    Viewer,
)
from widget.models import AccountSettings, ChannelRole, Employee
from widget.models._base import utcnow
from widget.models.conversations import Chat, ChatOffer
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.outbox import Handler, Operation, record_operation

SET_RESPONSIBLE = "set_responsible"
ACCEPT_INCOMING = "accept_incoming"


# --- facts for the domain rules -------------------------------------------------------------------


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


# --- claiming (first to answer) -------------------------------------------------------------------


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


# --- CRM follow-ups of responsibility changes -----------------------------------------------------


def _refs(chat: Chat) -> list[dict[str, str]]:
    refs = []
    if chat.crm_contact_id:
        refs.append({"kind": CONTACT, "crm_id": chat.crm_contact_id})
    if chat.crm_entity_id and chat.crm_entity_kind:
        refs.append({"kind": chat.crm_entity_kind, "crm_id": chat.crm_entity_id})
    return refs


def record_accept(session: Session, chat: Chat, now: datetime) -> list[int]:
    """Kommo incoming lead: accept it for the chat's responsible (once per chat)."""
    if not chat.crm_incoming_uid:
        return []
    op_id = record_operation(
        session,
        chat.account_id,
        ACCEPT_INCOMING,
        f"accept:{chat.id}",
        {"uid": chat.crm_incoming_uid},
        chat_id=chat.id,
        now=now,
    )
    return [op_id] if op_id is not None else []


def record_responsible_change(session: Session, chat: Chat, now: datetime) -> list[int]:
    """Tell the CRM the chat's responsible changed. Before the new client's entities exist there is
    nothing to change: ``create_entities`` reads the responsible when it runs."""
    if not chat.crm_responsible_user_id:
        return []
    if chat.crm_incoming_uid:
        return record_accept(session, chat, now)  # accepting also sets the responsible
    refs = _refs(chat)
    if not refs:
        return []
    op_id = record_operation(
        session,
        chat.account_id,
        SET_RESPONSIBLE,
        f"responsible:{chat.id}:{chat.crm_responsible_user_id}",
        {"refs": refs, "crm_user_id": chat.crm_responsible_user_id},
        chat_id=chat.id,
        now=now,
    )
    return [op_id] if op_id is not None else []


class SetResponsible:
    def execute(self, database: Database, port: CrmPort, op: Operation) -> dict[str, Any]:
        refs = [EntityRef(r["kind"], r["crm_id"]) for r in op.payload["refs"]]
        port.set_responsible(refs, op.payload["crm_user_id"])
        return {}

    def record(self, session: Session, op: Operation, result: dict[str, Any], now: datetime) -> list[int]:
        return []


class AcceptIncoming:
    """Accept the Kommo incoming lead for whoever is responsible now, then make them responsible
    for the lead and its contact too (accepting only names the user as the one who accepted)."""

    def execute(self, database: Database, port: CrmPort, op: Operation) -> dict[str, Any]:
        with database.transaction() as session:
            chat = session.get(Chat, op.chat_id) if op.chat_id is not None else None
            if chat is None or chat.account_id != op.account_id:
                return {"skipped": "chat is gone"}
            user, refs = chat.crm_responsible_user_id, [EntityRef(r["kind"], r["crm_id"]) for r in _refs(chat)]
        port.accept_incoming(op.payload["uid"], user, None)
        if user and refs:
            port.set_responsible(refs, user)
        return {"crm_user_id": user}

    def record(self, session: Session, op: Operation, result: dict[str, Any], now: datetime) -> list[int]:
        return []


HANDLERS: dict[str, Handler] = {SET_RESPONSIBLE: SetResponsible(), ACCEPT_INCOMING: AcceptIncoming()}
