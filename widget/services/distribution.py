"""New clients: ask the CRM who the client is, then either follow the CRM's responsible (known
client) or create what the channel's settings say and distribute the client (product.md §2, §3).

Two outbox operations carry the flow:

* ``resolve_client`` — ``find_client`` in the CRM; the record step applies the answer: a known
  client's chat goes to the contact's responsible; an unknown one is distributed under a row lock on
  the channel's settings (round robin is one turn at a time across processes) and a
  ``create_entities`` operation is recorded in the same transaction.
* ``create_entities`` — first ``find_created(key)`` (a previous attempt may have created it and died
  before recording), else create the contact + lead/deal or the Kommo incoming lead, with the chat's
  responsible *at that moment* (someone may have claimed it while the CRM was down).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from widget.db import Database, lock_for_update
from widget.domain.conversations import CreationPlan, PipelineInfo, StageInfo, plan_new_client
from widget.domain.distribution import FIRST_REPLY, Candidate, Decision, policy_for
from widget.domain.ports import CreatedEntities, CrmPort, EntityRef, KnownClient, NewClientSpec
from widget.domain.visibility import ASSIGNED, OFFERED, RESOLVING, UNASSIGNED
from widget.models import Account, AccountSettings, Channel, ChannelRole, ChannelSettings, Employee, Pipeline, Stage
from widget.models.channels import NEW_CLIENT_LEAD
from widget.models.conversations import Chat, ChatOffer, Client, DistributionTurn
from widget.services.outbox import Handler, Operation, insert_or_ignore, record_operation

log = logging.getLogger(__name__)

RESOLVE_CLIENT = "resolve_client"
CREATE_ENTITIES = "create_entities"


def resolve_key(chat_id: int) -> str:
    return f"resolve:{chat_id}"


def create_key(chat_id: int) -> str:
    return f"create:{chat_id}"


# --- who gets the client --------------------------------------------------------------------------


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
        _set_responsible(chat, chosen, ASSIGNED)
        log.info("chat %s: new client given in turn %s to employee %s", chat.id, turn, decision.assign_to)
    elif decision.offer_to:
        # The fallback user is the CRM responsible until somebody answers first (product.md §3).
        _set_responsible(chat, fallback, OFFERED)
        for employee_id in decision.offer_to:
            session.add(ChatOffer(chat_id=chat.id, employee_id=employee_id, account_id=chat.account_id, offered_at=now))
    else:
        _set_responsible(chat, fallback, UNASSIGNED)
        log.info("chat %s: nobody is eligible on channel %s; the heads are asked to act", chat.id, chat.channel_id)
    return decision


def _set_responsible(chat: Chat, employee: Employee | None, assignment: str) -> None:
    chat.assignment = assignment
    chat.responsible_employee_id = employee.id if employee is not None else None
    chat.crm_responsible_user_id = employee.crm_user_id if employee is not None else None


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


# --- the outbox handlers --------------------------------------------------------------------------


def _lock_chat(session: Session, op: Operation) -> Chat | None:
    if op.chat_id is None:
        return None
    chat = lock_for_update(session, Chat, id=op.chat_id)
    if chat is None or chat.account_id != op.account_id:
        return None
    return chat


class ResolveClient:
    def execute(self, database: Database, port: CrmPort, op: Operation) -> dict[str, Any]:
        known = port.find_client(
            op.payload.get("phone"), op.payload.get("messenger_id"), messenger=op.payload.get("messenger")
        )
        return {"known": asdict(known) if known is not None else None}

    def record(self, session: Session, op: Operation, result: dict[str, Any], now: datetime) -> list[int]:
        chat = _lock_chat(session, op)
        if chat is None or chat.assignment != RESOLVING:
            return []
        # The client row serialises decisions about one person across channels and processes.
        client = lock_for_update(session, Client, id=chat.client_id)
        assert client is not None
        if result.get("known"):
            _follow_known_client(session, chat, client, _known(result["known"]))
            return []
        creator = session.execute(
            select(Chat)
            .where(Chat.account_id == chat.account_id, Chat.client_id == client.id, Chat.id != chat.id)
            .where(Chat.is_new_client.is_(True))
            .order_by(Chat.id)
            .limit(1)
        ).scalar_one_or_none()
        if creator is not None:
            # The same person wrote on another channel first and that chat creates (or created) the
            # CRM contact: creating here too would make a second contact. Follow it once it exists;
            # until then this chat waits, and the creator's record step settles it.
            if creator.crm_contact_id:
                _follow_known_client(session, chat, client, _known_from_chat(creator))
            return []
        chat.is_new_client = True
        assign_new_client(session, chat, now)
        plan = creation_plan(session, chat)
        channel = session.get(Channel, chat.channel_id)
        op_id = record_operation(
            session,
            chat.account_id,
            CREATE_ENTITIES,
            create_key(chat.id),
            {
                "plan": asdict(plan),
                "name": client.name or chat.title or client.phone or chat.external_chat_id,
                "phone": client.phone,
                "messenger": chat.chat_type,
                "messenger_id": chat.external_chat_id,
                "first_message": chat.last_message_preview,
                "channel_name": channel.name if channel is not None else "",
            },
            chat_id=chat.id,
            now=now,
        )
        return [op_id] if op_id is not None else []


def _follow_known_client(session: Session, chat: Chat, client: Client, known: KnownClient) -> None:
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


def _known(data: dict[str, Any]) -> KnownClient:
    entity = data.get("open_entity")
    return KnownClient(
        contact_id=str(data["contact_id"]),
        responsible_crm_user_id=data.get("responsible_crm_user_id"),
        open_entity=EntityRef(entity["kind"], str(entity["crm_id"])) if entity else None,
        name=data.get("name") or "",
    )


def _created_from(data: dict[str, Any]) -> CreatedEntities:
    entity = data.get("entity")
    return CreatedEntities(
        contact_id=data.get("contact_id"),
        entity=EntityRef(entity["kind"], str(entity["crm_id"])) if entity else None,
        incoming_uid=data.get("incoming_uid"),
    )


class CreateEntities:
    def execute(self, database: Database, port: CrmPort, op: Operation) -> dict[str, Any]:
        earlier = port.find_created(op.key)
        if earlier is not None:
            # An earlier attempt created it and died before recording: adopt it, create nothing.
            return {**asdict(earlier), "responsible": None, "reused": True}
        with database.transaction() as session:
            responsible = session.execute(
                select(Chat.crm_responsible_user_id).where(Chat.id == op.chat_id, Chat.account_id == op.account_id)
            ).scalar_one_or_none()
        plan = CreationPlan(**op.payload["plan"])
        spec = NewClientSpec(
            name=op.payload["name"],
            phone=op.payload.get("phone"),
            messenger=op.payload["messenger"],
            messenger_id=op.payload["messenger_id"],
            entity=plan.entity,
            with_contact=plan.with_contact,
            pipeline_id=plan.pipeline_id,
            stage_id=plan.stage_id,
            responsible_crm_user_id=responsible,
            first_message=op.payload.get("first_message", ""),
            channel_name=op.payload.get("channel_name", ""),
        )
        if plan.incoming:
            created = port.create_incoming_lead(spec, op.key)
        else:
            created = port.create_contact_with_entity(spec, op.key)
        return {**asdict(created), "responsible": responsible, "reused": False}

    def record(self, session: Session, op: Operation, result: dict[str, Any], now: datetime) -> list[int]:
        from widget.services.conversations import record_accept, record_responsible_change

        chat = _lock_chat(session, op)
        if chat is None:
            return []
        created = _created_from(result)
        chat.crm_contact_id = created.contact_id
        if created.entity is not None:
            chat.crm_entity_kind, chat.crm_entity_id = created.entity.kind, created.entity.crm_id
        chat.crm_incoming_uid = created.incoming_uid
        if created.contact_id:
            client = lock_for_update(session, Client, id=chat.client_id)
            if client is not None:
                client.crm_contact_id = created.contact_id
                # Chats of the same person on other channels waited for this contact (see
                # ResolveClient.record): they now follow it instead of creating their own.
                waiting = session.execute(
                    select(Chat).where(
                        Chat.account_id == chat.account_id,
                        Chat.client_id == client.id,
                        Chat.id != chat.id,
                        Chat.assignment == RESOLVING,
                    )
                ).scalars()
                for sibling in waiting:
                    _follow_known_client(session, sibling, client, _known_from_chat(chat))
        follow_ups: list[int] = []
        # Someone claimed the chat (or the CRM responsible changed) while we were creating.
        if chat.crm_responsible_user_id and chat.crm_responsible_user_id != result.get("responsible"):
            if chat.assignment == ASSIGNED or result.get("reused"):
                follow_ups += record_responsible_change(session, chat, now)
        if chat.crm_incoming_uid and (chat.claimed_by_employee_id is not None or chat.last_direction == "out"):
            follow_ups += record_accept(session, chat, now)
        return follow_ups


HANDLERS: dict[str, Handler] = {RESOLVE_CLIENT: ResolveClient(), CREATE_ENTITIES: CreateEntities()}
