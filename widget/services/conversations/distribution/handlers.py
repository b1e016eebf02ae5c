"""The outbox handlers of distribution: ``resolve_client`` asks the CRM who the client is,
``create_entities`` creates the new client's CRM records (adopting what an earlier attempt left),
``await_creator`` re-checks a chat waiting for another chat of the same person."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from widget.db import Database, lock_for_update
from widget.domain.conversations import CreationPlan
from widget.domain.ports import CreatedEntities, CrmPort, EntityRef, KnownClient, NewClientSpec
from widget.domain.visibility import ASSIGNED, RESOLVING, UNASSIGNED
from widget.models.conversations import Chat, Client
from widget.services.conversations.crm_responsible import record_accept, record_responsible_change
from widget.services.conversations.distribution.keys import AWAIT_CREATOR, CREATE_ENTITIES, RESOLVE_CLIENT
from widget.services.conversations.distribution.routing import fallback_employee, set_responsible
from widget.services.conversations.distribution.settling import (
    follow_creator,
    follow_known_client,
    link_failed_creators,
    settle_unknown,
)
from widget.services.outbox import Handler, Operation, earlier_attempt, record_operation

log = logging.getLogger(__name__)


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
            follow_known_client(session, chat, client, _known(result["known"]))
            return []
        return settle_unknown(session, chat, client, now, since=now, round_=0)

    def abandon(self, session: Session, op: Operation, now: datetime) -> list[int]:
        """The CRM could not be asked who this is, for good: the chat must not stay invisible to
        everyone but the heads without anybody responsible, so it takes the "nobody eligible" path
        (fallback responsible, heads asked to act). Nothing is created: the client may be known."""
        chat = _lock_chat(session, op)
        if chat is not None and chat.assignment == RESOLVING:
            set_responsible(chat, fallback_employee(session, chat.account_id), UNASSIGNED)
            log.warning("chat %s: the CRM lookup failed for good; given to the fallback user and the heads", chat.id)
        return []


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
        return settle_unknown(session, chat, client, now, since=since, round_=int(op.payload.get("round", 0)))

    def abandon(self, session: Session, op: Operation, now: datetime) -> list[int]:
        return ResolveClient().abandon(session, op, now)


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
                # settle_unknown): they now follow it instead of creating their own.
                waiting = session.execute(
                    select(Chat).where(
                        Chat.account_id == chat.account_id,
                        Chat.client_id == client.id,
                        Chat.id != chat.id,
                        Chat.assignment == RESOLVING,
                    )
                ).scalars()
                for sibling in waiting:
                    follow_creator(session, sibling, client, chat)
                if created.contact_id:
                    link_failed_creators(session, chat, created.contact_id)
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


HANDLERS: dict[str, Handler] = {
    RESOLVE_CLIENT: ResolveClient(),
    CREATE_ENTITIES: CreateEntities(),
    AWAIT_CREATOR: AwaitCreator(),
}
