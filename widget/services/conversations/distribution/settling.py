"""Settling a client the CRM does not know yet, when the same person may write on several channels:
follow the CRM record another of their chats created, wait for one being created, or distribute
this chat and record the creation of its own (``creation_plan``: what the channel's settings say to
create)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from widget.domain.conversations import CreationPlan, PipelineInfo, StageInfo, plan_new_client
from widget.domain.distribution import CreatorState, creator_verdict
from widget.domain.ports import EntityRef, KnownClient
from widget.domain.visibility import ASSIGNED
from widget.models import Account, Channel, ChannelSettings, Employee, Pipeline, Stage
from widget.models.channels import NEW_CLIENT_LEAD
from widget.models.conversations import OP_FAILED, OP_PENDING, OP_RUNNING, Chat, Client, CrmOperation
from widget.services.conversations.distribution.keys import AWAIT_CREATOR, CREATE_ENTITIES, await_key, create_key
from widget.services.conversations.distribution.routing import assign_new_client
from widget.services.outbox import LEASE, record_operation

log = logging.getLogger(__name__)


def creation_plan(session: Session, chat: Chat) -> CreationPlan:
    account = session.get(Account, chat.account_id)
    assert account is not None
    settings = session.get(ChannelSettings, chat.channel_id)
    stages: dict[int, list[StageInfo]] = {}
    for st in session.execute(select(Stage).where(Stage.account_id == chat.account_id)).scalars():
        stages.setdefault(st.pipeline_id, []).append(StageInfo(st.crm_stage_id, st.kind, st.sort, st.is_active))
    pipelines = [
        PipelineInfo(p.entity, p.crm_pipeline_id, p.is_main, p.sort, tuple(stages.get(p.id, ())), p.is_active)
        for p in session.execute(select(Pipeline).where(Pipeline.account_id == chat.account_id)).scalars()
    ]
    plan = plan_new_client(
        account.crm,
        settings.new_client_entity if settings is not None else NEW_CLIENT_LEAD,
        account.crm_mode,
        settings.crm_pipeline_id if settings is not None else None,
        settings.crm_stage_id if settings is not None else None,
        pipelines,
    )
    if plan.fallback_reason:
        log.warning(
            "account %s channel %s: %s; new client created in pipeline %s stage %s",
            chat.account_id,
            chat.channel_id,
            plan.fallback_reason,
            plan.pipeline_id,
            plan.stage_id,
        )
    return plan


# How long a chat of a new person waits for the CRM record another of their chats is creating before
# it creates its own (abandoning that creation). Past it the waiting chat, seen only by the heads,
# is distributed like any new client. Normal creations take seconds; a permanent failure wakes the
# waiting chats at once (``CreateEntities.abandon``), so this bounds only outages, a CRM that keeps
# refusing without failing for good yet, and a creator chat deleted meanwhile. Well beyond the
# first backoff steps of an outage, well below the hour that MAX_ATTEMPTS of backoff takes to fail.
CREATOR_PATIENCE = timedelta(minutes=15)


def _creators(session: Session, chat: Chat, client: Client, now: datetime) -> list[tuple[Chat, CreatorState]]:
    """The person's other chats that took the job of creating their CRM record, with how it went."""
    rows = session.execute(
        select(Chat, CrmOperation.status, CrmOperation.next_attempt_at)
        .outerjoin(
            CrmOperation,
            and_(
                CrmOperation.account_id == Chat.account_id,
                CrmOperation.chat_id == Chat.id,
                CrmOperation.kind == CREATE_ENTITIES,
            ),
        )
        .where(Chat.account_id == chat.account_id, Chat.client_id == client.id, Chat.id != chat.id)
        .where(Chat.is_new_client.is_(True))
        .order_by(Chat.id)
    ).all()
    return [
        (
            other,
            CreatorState(
                chat_id=other.id,
                has_crm_record=bool(other.crm_contact_id or other.crm_entity_id),
                creating=status in (OP_PENDING, OP_RUNNING),
                held=status == OP_RUNNING and due is not None and due > now,
            ),
        )
        for other, status, due in rows
    ]


def settle_unknown(
    session: Session, chat: Chat, client: Client, now: datetime, *, since: datetime, round_: int
) -> list[int]:
    """The CRM does not know this person: follow the record another of their chats created, wait
    for one being created (a re-check is recorded), or distribute this chat and create its own.
    The caller holds the chat's and the client's row locks (the client row serialises decisions
    about one person across channels and processes)."""
    creators = _creators(session, chat, client, now)
    verdict = creator_verdict([state for _, state in creators], now - since, CREATOR_PATIENCE)
    if verdict.follow is not None:
        # The same person wrote on another channel first and that chat created the CRM record:
        # creating here too would make a second contact.
        creator = next(c for c, _ in creators if c.id == verdict.follow)
        follow_creator(session, chat, client, creator)
        return []
    if not verdict.wait and verdict.abandon:
        ops = [create_key(chat_id) for chat_id in verdict.abandon]
        abandoned = session.execute(
            update(CrmOperation)
            .where(
                CrmOperation.account_id == chat.account_id,
                CrmOperation.idempotency_key.in_(ops),
                or_(
                    CrmOperation.status == OP_PENDING,
                    and_(CrmOperation.status == OP_RUNNING, CrmOperation.next_attempt_at <= now),
                ),
            )
            .values(
                status=OP_FAILED,
                finished_at=now,
                lease_until=None,
                claim_token=None,
                last_error=f"abandoned: chat {chat.id} of the same person waited {CREATOR_PATIENCE} and creates it",
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if abandoned != len(ops):
            # A worker claimed one of them in between: its result decides, look again after its lease.
            return _recheck_later(session, chat, now, since=since, round_=round_, delay=LEASE)
        log.warning("chat %s: creations %s abandoned after %s; this chat creates the record", chat.id, ops, now - since)
    elif verdict.wait:
        delay = max(timedelta(0), since + CREATOR_PATIENCE - now) or LEASE
        return _recheck_later(session, chat, now, since=since, round_=round_, delay=delay)
    # Nobody else is (still) creating: this chat is the person's new client. A failed or abandoned
    # creation may still have reached the CRM before it died, so its key is adopted if found there.
    adopt = [create_key(c.id) for c, _ in creators]
    return _become_creator(session, chat, client, now, adopt_keys=adopt)


def _recheck_later(
    session: Session, chat: Chat, now: datetime, *, since: datetime, round_: int, delay: timedelta
) -> list[int]:
    """A delayed ``await_creator`` for this chat. Keyed by round, so a repeated or crashed record
    step records the same re-check once; the sweep runs it when it is due."""
    op_id = record_operation(
        session,
        chat.account_id,
        AWAIT_CREATOR,
        await_key(chat.id, round_ + 1),
        {"since": since.isoformat(), "round": round_ + 1},
        chat_id=chat.id,
        now=now + delay,
    )
    return [op_id] if op_id is not None else []


def _become_creator(
    session: Session, chat: Chat, client: Client, now: datetime, *, adopt_keys: list[str] | None = None
) -> list[int]:
    chat.is_new_client = True
    assign_new_client(session, chat, now)
    plan = creation_plan(session, chat)
    channel = session.get(Channel, chat.channel_id)
    payload: dict[str, Any] = {
        "plan": asdict(plan),
        "name": client.name or chat.title or client.phone or chat.external_chat_id,
        "phone": client.phone,
        "messenger": chat.chat_type,
        "messenger_id": chat.external_chat_id,
        "first_message": chat.last_message_preview,
        "channel_name": channel.name if channel is not None else "",
    }
    if adopt_keys:
        payload["adopt_keys"] = adopt_keys
    op_id = record_operation(
        session, chat.account_id, CREATE_ENTITIES, create_key(chat.id), payload, chat_id=chat.id, now=now
    )
    return [op_id] if op_id is not None else []


def follow_known_client(session: Session, chat: Chat, client: Client, known: KnownClient) -> None:
    """A client the CRM knows: the chat belongs to the contact's (or open deal's) responsible."""
    employee = None
    if known.responsible_crm_user_id:
        employee = session.execute(
            select(Employee).where(
                Employee.account_id == chat.account_id, Employee.crm_user_id == known.responsible_crm_user_id
            )
        ).scalar_one_or_none()
    chat.assignment = ASSIGNED
    chat.responsible_employee_id = employee.id if employee is not None else None
    chat.crm_responsible_user_id = known.responsible_crm_user_id
    chat.crm_contact_id = known.contact_id
    if known.open_entity is not None:
        chat.crm_entity_kind, chat.crm_entity_id = known.open_entity.kind, known.open_entity.crm_id
    client.crm_contact_id = known.contact_id


def follow_creator(session: Session, chat: Chat, client: Client, creator: Chat) -> None:
    """Follow the CRM record another chat of the same person created: its contact (if any; a
    Bitrix24 lead carries the person without one), its lead or deal, and its responsible."""
    if creator.crm_contact_id:
        follow_known_client(session, chat, client, _known_from_chat(creator))
        return
    employee = session.get(Employee, creator.responsible_employee_id) if creator.responsible_employee_id else None
    chat.assignment = ASSIGNED
    chat.responsible_employee_id = employee.id if employee is not None else None
    chat.crm_responsible_user_id = creator.crm_responsible_user_id
    chat.crm_entity_kind, chat.crm_entity_id = creator.crm_entity_kind, creator.crm_entity_id


def _known_from_chat(creator: Chat) -> KnownClient:
    """What the CRM now knows of a client, as the chat that created its contact recorded it."""
    entity = None
    if creator.crm_entity_kind and creator.crm_entity_id:
        entity = EntityRef(creator.crm_entity_kind, creator.crm_entity_id)
    return KnownClient(
        contact_id=str(creator.crm_contact_id),
        responsible_crm_user_id=creator.crm_responsible_user_id,
        open_entity=entity,
        name="",
    )


def link_failed_creators(session: Session, chat: Chat, contact_id: str) -> None:
    """Chats of the same person whose own creation failed or was abandoned now have a contact: the
    one this chat created (so they show on the person's CRM card). Their distribution is kept."""
    failed = select(CrmOperation.chat_id).where(
        CrmOperation.account_id == chat.account_id,
        CrmOperation.kind == CREATE_ENTITIES,
        CrmOperation.status == OP_FAILED,
    )
    session.execute(
        update(Chat)
        .where(
            Chat.account_id == chat.account_id,
            Chat.client_id == chat.client_id,
            Chat.id != chat.id,
            Chat.is_new_client.is_(True),
            Chat.crm_contact_id.is_(None),
            Chat.id.in_(failed),
        )
        .values(crm_contact_id=contact_id)
        .execution_options(synchronize_session=False)
    )
