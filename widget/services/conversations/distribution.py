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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from widget.db import Database, lock_for_update
from widget.domain.conversations import CreationPlan, PipelineInfo, StageInfo, plan_new_client
from widget.domain.distribution import (
    FIRST_REPLY,
    Candidate,
    CreatorState,
    Decision,
    creator_verdict,
    is_eligible,
    policy_for,
    redistribute,
)
from widget.domain.ports import CreatedEntities, CrmPort, EntityRef, KnownClient, NewClientSpec
from widget.domain.visibility import ASSIGNED, OFFERED, RESOLVING, UNASSIGNED
from widget.models import Account, AccountSettings, Channel, ChannelRole, ChannelSettings, Employee, Pipeline, Stage
from widget.models._base import utcnow
from widget.models.channels import NEW_CLIENT_LEAD
from widget.models.conversations import (
    DIRECTION_OUT,
    OP_FAILED,
    OP_PENDING,
    OP_RUNNING,
    Chat,
    ChatOffer,
    Client,
    CrmOperation,
    DistributionTurn,
    Message,
)
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.outbox import LEASE, Handler, Operation, earlier_attempt, insert_or_ignore, record_operation

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
    _apply_decision(session, chat, settings, decision, now)
    note_chat_list_change(session, chat.account_id)
    return decision


def _apply_decision(
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


def _set_responsible(chat: Chat, employee: Employee | None, assignment: str) -> None:
    chat.assignment = assignment
    chat.responsible_employee_id = employee.id if employee is not None else None
    chat.crm_responsible_user_id = employee.crm_user_id if employee is not None else None


# --- when eligibility changes ----------------------------------------------------------------------


@dataclass(frozen=True)
class EligibilityWatch:
    """Who was eligible for new clients, per channel, before a change (a settings save, a CRM
    users refresh); ``redistribute_open_chats`` compares it with who is eligible after."""

    account_id: int
    before: dict[int, frozenset[int]]  # channel id -> eligible employee ids


def _eligible_by_channel(
    session: Session, account_id: int, channel_ids: Sequence[int] | None
) -> dict[int, frozenset[int]]:
    q = (
        select(
            ChannelRole.channel_id, ChannelRole.employee_id, ChannelRole.role, ChannelRole.gets_new_clients, Employee
        )
        .join(Employee, Employee.id == ChannelRole.employee_id)
        .where(ChannelRole.account_id == account_id)
    )
    if channel_ids is not None:
        q = q.where(ChannelRole.channel_id.in_(list(channel_ids)))
    found: dict[int, set[int]] = {c: set() for c in channel_ids or ()}
    for channel_id, employee_id, role, gets, emp in session.execute(q):
        candidate = Candidate(employee_id, emp.name, role, bool(gets), emp.is_active and emp.in_crm)
        found.setdefault(channel_id, set())
        if is_eligible(candidate):
            found[channel_id].add(employee_id)
    return {c: frozenset(ids) for c, ids in found.items()}


def watch_eligibility(session: Session, account_id: int, channel_ids: Sequence[int] | None = None) -> EligibilityWatch:
    """Call before changing roles, toggles or employees, in the same transaction."""
    return EligibilityWatch(account_id, _eligible_by_channel(session, account_id, channel_ids))


def _open_new_chats(session: Session, account_id: int, channel_id: int, ids: Sequence[int] | None = None) -> list[int]:
    """New clients' chats nobody has answered or claimed yet (no employee message at all)."""
    answered = exists().where(Message.chat_id == Chat.id, Message.direction == DIRECTION_OUT)
    q = select(Chat.id).where(
        Chat.account_id == account_id,
        Chat.channel_id == channel_id,
        Chat.is_new_client.is_(True),
        Chat.claimed_by_employee_id.is_(None),
        Chat.assignment.in_((OFFERED, ASSIGNED, UNASSIGNED)),
        ~answered,
    )
    if ids is not None:
        q = q.where(Chat.id.in_(list(ids)))
    return list(session.execute(q.order_by(Chat.id)).scalars())


def redistribute_open_chats(session: Session, watch: EligibilityWatch, now: datetime | None = None) -> list[int]:
    """After an eligibility change, in the same transaction: re-offer or re-assign the new clients'
    chats nobody has answered yet, by ``widget.domain.distribution.redistribute``. Returns the CRM
    follow-ups (a changed responsible) to nudge after commit; the sweep runs them anyway.

    Rows are locked as the rest of distribution does — each chat (in id order, so two changes never
    deadlock), then the channel's settings row (the round-robin turn) — and the chats are selected
    again once locked: a reply that got in first has claimed or answered the chat and it is left
    alone; a reply that comes after sees the new offer (``send_reply`` checks it under the chat lock).
    """
    now = now or utcnow()
    note_chat_list_change(session, watch.account_id)
    after = _eligible_by_channel(session, watch.account_id, list(watch.before) or None)
    follow_ups: list[int] = []
    for channel_id in sorted(set(watch.before) | set(after)):
        before_ids, after_ids = watch.before.get(channel_id, frozenset()), after.get(channel_id, frozenset())
        if before_ids == after_ids:
            continue
        candidates_ids = _open_new_chats(session, watch.account_id, channel_id)
        if not candidates_ids:
            continue
        for chat_id in candidates_ids:
            lock_for_update(session, Chat, id=chat_id)
        settings = lock_for_update(session, ChannelSettings, channel_id=channel_id)
        mode = settings.distribution if settings is not None else FIRST_REPLY
        candidates = load_candidates(session, watch.account_id, channel_id)
        lost = before_ids - after_ids
        for chat_id in _open_new_chats(session, watch.account_id, channel_id, candidates_ids):
            chat = session.get(Chat, chat_id)
            assert chat is not None
            if chat.assignment == OFFERED:
                holders = list(
                    session.execute(select(ChatOffer.employee_id).where(ChatOffer.chat_id == chat.id)).scalars()
                )
            else:
                holders = [chat.responsible_employee_id] if chat.responsible_employee_id is not None else []
            decision = redistribute(mode, chat.assignment, holders, candidates, lost)
            if decision is None:
                continue
            previous = chat.crm_responsible_user_id
            session.execute(delete(ChatOffer).where(ChatOffer.chat_id == chat.id))
            _apply_decision(session, chat, settings, decision, now)
            log.info("chat %s: redistributed after an eligibility change (%s)", chat.id, chat.assignment)
            if decision.assign_to is not None:
                # The next turn must see this one (load_candidates reads the turns table).
                session.flush()
                candidates = load_candidates(session, watch.account_id, channel_id)
            if chat.crm_responsible_user_id != previous:
                from widget.services.conversations.chats import record_responsible_change

                follow_ups += record_responsible_change(session, chat, now)
    return follow_ups


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
        return _settle_unknown(session, chat, client, now, since=now, round_=0)

    def abandon(self, session: Session, op: Operation, now: datetime) -> list[int]:
        """The CRM could not be asked who this is, for good: the chat must not stay invisible to
        everyone but the heads without anybody responsible, so it takes the "nobody eligible" path
        (fallback responsible, heads asked to act). Nothing is created: the client may be known."""
        chat = _lock_chat(session, op)
        if chat is not None and chat.assignment == RESOLVING:
            _set_responsible(chat, fallback_employee(session, chat.account_id), UNASSIGNED)
            log.warning("chat %s: the CRM lookup failed for good; given to the fallback user and the heads", chat.id)
        return []


# --- one person on several channels ---------------------------------------------------------------

AWAIT_CREATOR = "await_creator"
# How long a chat of a new person waits for the CRM record another of their chats is creating before
# it creates its own (abandoning that creation). Past it the waiting chat, seen only by the heads,
# is distributed like any new client. Normal creations take seconds; a permanent failure wakes the
# waiting chats at once (``CreateEntities.abandon``), so this bounds only outages, a CRM that keeps
# refusing without failing for good yet, and a creator chat deleted meanwhile. Well beyond the
# first backoff steps of an outage, well below the hour that MAX_ATTEMPTS of backoff takes to fail.
CREATOR_PATIENCE = timedelta(minutes=15)


def await_key(chat_id: int, round_: int) -> str:
    return f"await:{chat_id}:{round_}"


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


def _settle_unknown(
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
        _follow_creator(session, chat, client, creator)
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


class AwaitCreator:
    """The delayed re-check of a chat waiting for another chat of the same person (no CRM call)."""

    def execute(self, database: Database, port: CrmPort, op: Operation) -> dict[str, Any]:
        return {}

    def record(self, session: Session, op: Operation, result: dict[str, Any], now: datetime) -> list[int]:
        chat = _lock_chat(session, op)
        if chat is None or chat.assignment != RESOLVING:
            return []  # settled meanwhile (the creator's record step, or an earlier re-check)
        client = lock_for_update(session, Client, id=chat.client_id)
        assert client is not None
        since = datetime.fromisoformat(op.payload["since"]) if op.payload.get("since") else now
        return _settle_unknown(session, chat, client, now, since=since, round_=int(op.payload.get("round", 0)))

    def abandon(self, session: Session, op: Operation, now: datetime) -> list[int]:
        return ResolveClient().abandon(session, op, now)


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


def _follow_creator(session: Session, chat: Chat, client: Client, creator: Chat) -> None:
    """Follow the CRM record another chat of the same person created: its contact (if any; a
    Bitrix24 lead carries the person without one), its lead or deal, and its responsible."""
    if creator.crm_contact_id:
        _follow_known_client(session, chat, client, _known_from_chat(creator))
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
        # An earlier attempt created it and died before recording: adopt it, create nothing. A chat
        # that took over from another chat of the same person also adopts what that one's failed
        # or abandoned creation may have left in the CRM (``adopt_keys``).
        for key in [op.key, *op.payload.get("adopt_keys", ())]:
            earlier = port.find_created(key, earlier_attempt(database, op.account_id, key))
            if earlier is not None:
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
        from widget.services.conversations.chats import record_accept, record_responsible_change

        chat = _lock_chat(session, op)
        if chat is None:
            return []
        created = _created_from(result)
        chat.crm_contact_id = created.contact_id
        if created.entity is not None:
            chat.crm_entity_kind, chat.crm_entity_id = created.entity.kind, created.entity.crm_id
        chat.crm_incoming_uid = created.incoming_uid
        if created.contact_id or created.entity is not None:
            client = lock_for_update(session, Client, id=chat.client_id)
            if client is not None:
                if created.contact_id:
                    client.crm_contact_id = created.contact_id
                # Chats of the same person on other channels waited for this record (see
                # _settle_unknown): they now follow it instead of creating their own.
                waiting = session.execute(
                    select(Chat).where(
                        Chat.account_id == chat.account_id,
                        Chat.client_id == client.id,
                        Chat.id != chat.id,
                        Chat.assignment == RESOLVING,
                    )
                ).scalars()
                for sibling in waiting:
                    _follow_creator(session, sibling, client, chat)
                if created.contact_id:
                    _link_failed_creators(session, chat, created.contact_id)
        follow_ups: list[int] = []
        # Someone claimed the chat (or the CRM responsible changed) while we were creating.
        if chat.crm_responsible_user_id and chat.crm_responsible_user_id != result.get("responsible"):
            if chat.assignment == ASSIGNED or result.get("reused"):
                follow_ups += record_responsible_change(session, chat, now)
        if chat.crm_incoming_uid and (chat.claimed_by_employee_id is not None or chat.last_direction == "out"):
            follow_ups += record_accept(session, chat, now)
        return follow_ups

    def abandon(self, session: Session, op: Operation, now: datetime) -> list[int]:
        """The creation failed for good. The chat itself was distributed when it was recorded, so
        it stays where that put it (offered, given in turn, or the fallback user's and the heads'),
        nothing is lost and a reply still claims it; only the CRM record is missing. Chats of the
        same person waiting for this record are re-checked now: the first creates its own."""
        chat = _lock_chat(session, op)
        if chat is None:
            return []
        log.error("chat %s: creating the new client in the CRM failed for good; the chat stays as distributed", chat.id)
        waiting = session.execute(
            select(Chat.id)
            .where(
                Chat.account_id == chat.account_id,
                Chat.client_id == chat.client_id,
                Chat.id != chat.id,
                Chat.assignment == RESOLVING,
            )
            .order_by(Chat.id)
        ).scalars()
        ids = []
        for sibling_id in waiting:
            op_id = record_operation(
                session,
                chat.account_id,
                AWAIT_CREATOR,
                f"await:{sibling_id}:after:{op.id}",
                {"since": now.isoformat(), "round": 0},
                chat_id=sibling_id,
                now=now,
            )
            if op_id is not None:
                ids.append(op_id)
        return ids


def _link_failed_creators(session: Session, chat: Chat, contact_id: str) -> None:
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


HANDLERS: dict[str, Handler] = {
    RESOLVE_CLIENT: ResolveClient(),
    CREATE_ENTITIES: CreateEntities(),
    AWAIT_CREATOR: AwaitCreator(),
}
