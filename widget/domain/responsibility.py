"""Who the CRM says is responsible for a client's chat (product.md "Responsible"), CRM-neutral.

The CRM is the source of truth: the responsible of the client's *open* lead/deal when there is one,
else the responsible of the contact. The adapters read the entities (``ResponsibleReader``); this
module decides what a chat should show, so Kommo webhooks, Bitrix24 events and a chat opened with
stale data all agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from widget.domain.ports import CONTACT, EntityRef


@dataclass(frozen=True)
class EntityState:
    """What the CRM holds for one contact / lead / deal right now."""

    responsible_crm_user_id: str | None
    closed: bool = False  # a won or lost lead/deal no longer decides who owns the client


@runtime_checkable
class ResponsibleReader(Protocol):
    def read_entities(self, refs: Sequence[EntityRef]) -> Mapping[EntityRef, EntityState]:
        """The current state of each entity; entities the CRM no longer has are left out."""
        ...


def chat_refs(contact_id: str | None, entity_kind: str | None, entity_id: str | None) -> tuple[EntityRef, ...]:
    refs = []
    if contact_id:
        refs.append(EntityRef(CONTACT, contact_id))
    if entity_kind and entity_id:
        refs.append(EntityRef(entity_kind, entity_id))
    return tuple(refs)


def crm_responsible(refs: Sequence[EntityRef], states: Mapping[EntityRef, EntityState]) -> str | None:
    """The chat's responsible as the CRM sees it, or None when the CRM told us nothing usable.

    An open lead/deal wins over the contact; a closed one gives way to the contact; a closed one
    without a contact (a Bitrix24 lead on its own) still names the last person who handled it.
    """
    entity = next((states.get(r) for r in refs if r.kind != CONTACT), None)
    contact = next((states.get(r) for r in refs if r.kind == CONTACT), None)
    if entity is not None and not entity.closed and entity.responsible_crm_user_id:
        return entity.responsible_crm_user_id
    if contact is not None and contact.responsible_crm_user_id:
        return contact.responsible_crm_user_id
    if entity is not None and entity.responsible_crm_user_id:
        return entity.responsible_crm_user_id
    return None
