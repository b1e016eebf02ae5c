"""Chat → CRM: telling the CRM who is responsible for a chat's contact and lead or deal after a
claim or a redistribution, and accepting a Kommo incoming lead for them, through the outbox (the
CRM → chat direction is ``responsibility``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from widget.db import Database
from widget.domain.ports import CONTACT, CrmPort, EntityRef
from widget.models.conversations import Chat
from widget.services.outbox import Handler, Operation, record_operation

SET_RESPONSIBLE = "set_responsible"
ACCEPT_INCOMING = "accept_incoming"


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
