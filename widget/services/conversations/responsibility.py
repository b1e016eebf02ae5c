"""CRM → chat: the CRM is the source of truth for who is responsible (product.md "Responsible").

Three ways a change reaches our chats, all through ``follow_crm``:

* a Kommo responsible-change webhook and a Bitrix24 ``ONCRM*UPDATE`` event are recorded as
  ``CrmEvent`` rows first (durable), then ``process_crm_events`` (a job) re-reads the entities the
  events name — the CRM's current state, whatever order the notifications arrived in — and marks
  the events processed. Re-running it changes nothing more.
* ``refresh_chat_responsible``: a chat opened with a copy older than ``max_age`` re-reads the CRM.

A chat with CRM work of ours still pending (a claim not yet written to the CRM, a create in
flight) is left alone: the CRM does not know our decision yet, and once our write lands the CRM
notifies us again. A chat whose responsible changed locally while we were reading is left alone too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from widget.db import Database, lock_for_update
from widget.domain.ports import CONTACT, EntityRef, JobQueue
from widget.domain.responsibility import EntityState, ResponsibleReader, chat_refs, crm_responsible
from widget.domain.visibility import ASSIGNED, OFFERED, RESOLVING, UNASSIGNED
from widget.extensions import AppServices
from widget.models import Account, CrmEvent, Employee
from widget.models.conversations import OP_PENDING, OP_RUNNING, Chat, ChatOffer, CrmOperation
from widget.models.responsibility import ChatCrmCheck
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.outbox import CrmPortMissing, clock, crm_port_for, insert_or_ignore

log = logging.getLogger(__name__)

JOB_NAME = "process_crm_events"
EVENT_BATCH = 500  # events handled per job run; a fuller backlog nudges the job again
EVENT_GIVE_UP = timedelta(days=1)  # an event the CRM could not be asked about for a day is dropped
EVENT_KEPT = timedelta(days=7)  # processed events kept for support questions


def port_responsible_reader(database: Database, services: AppServices, account_id: int) -> ResponsibleReader:
    """The account's CRM adapter as a ``ResponsibleReader`` (the app's ``responsible_reader`` by
    default)."""
    port = crm_port_for(database, services, account_id)
    if not isinstance(port, ResponsibleReader):
        raise CrmPortMissing(f"the CRM port of account {account_id} cannot read responsibles")
    return port


# --- applying what the CRM says -------------------------------------------------------------------


@dataclass(frozen=True)
class ChatLink:
    """A chat as we knew it before asking the CRM."""

    chat_id: int
    refs: tuple[EntityRef, ...]
    crm_responsible: str | None


def _link(chat: Chat) -> ChatLink:
    refs = chat_refs(chat.crm_contact_id, chat.crm_entity_kind, chat.crm_entity_id)
    return ChatLink(chat.id, refs, chat.crm_responsible_user_id)


def linked_chats(session: Session, account_id: int, entities: Mapping[str, set[str]]) -> list[ChatLink]:
    """Chats of the account tied to any of these CRM entities (kind → ids); resolving chats are
    skipped, their lookup reads the CRM anyway."""
    conditions: list[ColumnElement[bool]] = []
    for kind, ids in entities.items():
        if not ids:
            continue
        if kind == CONTACT:
            conditions.append(Chat.crm_contact_id.in_(sorted(ids)))
        else:
            conditions.append((Chat.crm_entity_kind == kind) & Chat.crm_entity_id.in_(sorted(ids)))
    if not conditions:
        return []
    chats = session.execute(
        select(Chat).where(Chat.account_id == account_id, Chat.assignment != RESOLVING, or_(*conditions))
    ).scalars()
    return [_link(c) for c in chats]


def _confirm(session: Session, chat: Chat, now: datetime) -> None:
    if (
        insert_or_ignore(
            session, ChatCrmCheck, {"chat_id": chat.id, "account_id": chat.account_id, "confirmed_at": now}, ["chat_id"]
        )
        is None
    ):
        session.execute(update(ChatCrmCheck).where(ChatCrmCheck.chat_id == chat.id).values(confirmed_at=now))


def _has_pending_work(session: Session, chat_id: int) -> bool:
    return (
        session.execute(
            select(CrmOperation.id)
            .where(CrmOperation.chat_id == chat_id, CrmOperation.status.in_((OP_PENDING, OP_RUNNING)))
            .limit(1)
        ).first()
        is not None
    )


def follow_crm(
    database: Database, account_id: int, link: ChatLink, states: Mapping[EntityRef, EntityState], now: datetime
) -> bool:
    """Give the chat the responsible the CRM names. True when it changed.

    The new owner sees the chat (visibility follows ``responsible_employee_id``); an offered
    first-to-answer chat stops being offered — the CRM gave it to someone — and its other
    candidates are told it is taken by them.
    """
    wanted = crm_responsible(link.refs, states)
    with database.transaction() as session:
        chat = lock_for_update(session, Chat, id=link.chat_id)  # first statement (SQLite)
        if chat is None or chat.account_id != account_id or chat.assignment == RESOLVING:
            return False
        if _link(chat) != link or _has_pending_work(session, chat.id):
            return False  # our own newer decision is on its way to the CRM
        _confirm(session, chat, now)
        if wanted is None or wanted == chat.crm_responsible_user_id:
            return False
        employee = session.execute(
            select(Employee).where(Employee.account_id == account_id, Employee.crm_user_id == wanted)
        ).scalar_one_or_none()
        before = chat.crm_responsible_user_id
        note_chat_list_change(session, account_id)
        was = chat.assignment
        chat.crm_responsible_user_id = wanted
        chat.responsible_employee_id = employee.id if employee is not None else None
        if was in (OFFERED, UNASSIGNED):
            chat.assignment = ASSIGNED
            session.execute(delete(ChatOffer).where(ChatOffer.chat_id == chat.id))
        if was == OFFERED or chat.claimed_by_employee_id is not None:
            chat.claimed_by_employee_id = employee.id if employee is not None else None
            chat.claimed_at = now
    log.info(
        "chat %s follows the CRM: responsible %s -> %s%s",
        link.chat_id,
        before,
        wanted,
        "" if employee is not None else " (not synced yet: Refresh CRM data)",
    )
    return True


def follow_crm_all(
    database: Database, services: AppServices, account_id: int, links: Sequence[ChatLink], now: datetime
) -> int:
    """Read what these chats hang on and apply it. CRM errors propagate.

    Leads/deals first: an open one decides alone, so a contact is read only for chats without an
    open lead/deal (Kommo: one request instead of two for a typical change)."""
    if not any(link.refs for link in links):
        return 0
    reader = services.responsible_reader(database, services, account_id)
    entities = list(dict.fromkeys(r for link in links for r in link.refs if r.kind != CONTACT))
    states = dict(reader.read_entities(entities)) if entities else {}

    def decided(link: ChatLink) -> bool:
        return any(
            r.kind != CONTACT and r in states and not states[r].closed and states[r].responsible_crm_user_id
            for r in link.refs
        )

    contacts = list(dict.fromkeys(r for link in links if not decided(link) for r in link.refs if r.kind == CONTACT))
    if contacts:
        states.update(reader.read_entities(contacts))
    return sum(follow_crm(database, account_id, link, states, now) for link in links)


# --- recorded CRM notifications -------------------------------------------------------------------


def record_crm_events(
    database: Database, account_id: int, changes: Sequence[tuple[str, str, str, str]], now: datetime
) -> int:
    """Store notifications (event, entity kind, entity id, JSON payload) before acting on them."""
    if not changes:
        return 0
    with database.transaction() as session:
        session.add_all(
            CrmEvent(
                account_id=account_id,
                event=event[:64],
                entity_type=kind[:16],
                entity_id=entity_id[:64],
                payload=payload,
                received_at=now,
            )
            for event, kind, entity_id, payload in changes
        )
    return len(changes)


def nudge_events(jobs: JobQueue, account_id: int) -> None:
    jobs.enqueue(JOB_NAME, account_id)


def process_crm_events(database: Database, services: AppServices, account_id: int, limit: int = EVENT_BATCH) -> int:
    """Act on the account's unprocessed CRM notifications. Returns how many were processed; when
    the CRM cannot be asked, raises ``CrmError`` and leaves them for the next run."""
    now = clock(services)
    with database.transaction() as session:
        events = session.execute(
            select(CrmEvent.id, CrmEvent.entity_type, CrmEvent.entity_id)
            .where(CrmEvent.account_id == account_id, CrmEvent.processed_at.is_(None))
            .order_by(CrmEvent.id)
            .limit(limit)
        ).all()
        if not events:
            return 0
        account = session.get(Account, account_id)
        usable = account is not None and account.is_usable
        entities: dict[str, set[str]] = {}
        for _id, kind, entity_id in events:
            if kind and entity_id:
                entities.setdefault(kind, set()).add(entity_id)
        links = linked_chats(session, account_id, entities) if usable else []
    changed = follow_crm_all(database, services, account_id, links, now) if links else 0
    with database.transaction() as session:
        session.execute(
            update(CrmEvent)
            .where(CrmEvent.id.in_([e.id for e in events]), CrmEvent.processed_at.is_(None))
            .values(processed_at=now)
            .execution_options(synchronize_session=False)
        )
    log.info(
        "account %s: %d CRM notification(s) touched %d chat(s), %d changed",
        account_id,
        len(events),
        len(links),
        changed,
    )
    if len(events) == limit:
        nudge_events(services.jobs, account_id)
    return len(events)


def sweep_crm_events(database: Database, services: AppServices) -> list[int]:
    """The periodic safety net: nudge every account with waiting notifications, drop those the CRM
    could not be asked about for a day, and forget processed ones after a week."""
    now = clock(services)
    with database.transaction() as session:
        session.execute(
            update(CrmEvent)
            .where(CrmEvent.processed_at.is_(None), CrmEvent.received_at < now - EVENT_GIVE_UP)
            .values(processed_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(delete(CrmEvent).where(CrmEvent.processed_at < now - EVENT_KEPT))
        accounts = [
            int(a)
            for a in session.execute(
                select(CrmEvent.account_id).where(CrmEvent.processed_at.is_(None)).distinct()
            ).scalars()
        ]
    for account_id in accounts:
        nudge_events(services.jobs, account_id)
    return accounts


# --- a chat opened with an old copy ---------------------------------------------------------------


@dataclass(frozen=True)
class ChatResponsible:
    chat_id: int
    responsible_employee_id: int | None
    crm_responsible_user_id: str | None
    confirmed_at: datetime
    reread: bool  # the CRM was asked this time
    changed: bool


def _current(session: Session, account_id: int, chat_id: int) -> tuple[Chat, datetime]:
    chat = session.execute(select(Chat).where(Chat.id == chat_id, Chat.account_id == account_id)).scalar_one_or_none()
    if chat is None:
        raise LookupError(f"chat {chat_id} is not in account {account_id}")
    check = session.get(ChatCrmCheck, chat_id)
    # No confirmation yet: the copy is as old as the chat, whose lookup read the CRM when it began.
    return chat, check.confirmed_at if check is not None else chat.created_at


def refresh_chat_responsible(
    database: Database, services: AppServices, account_id: int, chat_id: int, max_age: timedelta
) -> ChatResponsible:
    """For the chat panel, when a chat is opened: re-read the responsible from the CRM if our copy
    is older than ``max_age``. A CRM failure raises ``CrmError``; the caller shows the copy it has."""
    now = clock(services)
    with database.transaction() as session:
        chat, confirmed = _current(session, account_id, chat_id)
        link = _link(chat)
        fresh = now - confirmed <= max_age or chat.assignment == RESOLVING or not link.refs
    changed = False
    if not fresh:
        changed = follow_crm_all(database, services, account_id, [link], now) > 0
    with database.transaction() as session:
        chat, confirmed = _current(session, account_id, chat_id)
        return ChatResponsible(
            chat.id, chat.responsible_employee_id, chat.crm_responsible_user_id, confirmed, not fresh, changed
        )
