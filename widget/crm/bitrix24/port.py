"""Bitrix24 behind our ``CrmPort`` (``widget.domain.ports``), on the REST client (reference §6).

A new client costs two requests: the lookup and one create. The lookup is
``crm.duplicate.findbycomm`` for a phone (``[]`` = nobody, §6.5); findbycomm knows only phones and
e-mails, so a messenger id is looked for with ``crm.contact.list``/``crm.lead.list`` filtered on the
``IM`` multifield (exact match on the value), all of it in one ``batch`` when there is both. Then one
create — a ``batch`` of ``crm.contact.add`` + ``crm.deal.add`` whose deal points at the new contact
through ``$result[c]`` with ``halt=1`` (§6.6), or a lone ``crm.lead.add``. A known client costs one
more: a batch reading the contacts, their deals and the leads found.

Idempotency: everything we create carries ``ORIGINATOR_ID``/``ORIGIN_ID`` = ours/the outbox key
(§6.4), so ``find_created`` is one batch of ``crm.*.list`` filtered by it — and nothing at all on a
first attempt (the outbox says so: ``EarlierAttempt``). Bitrix24 batches are not transactions: when the contact
was made and the deal was not, the next attempt adds only the deal to that contact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from widget.crm.bitrix24.client import BATCH_MAX, CRM_MODE_SIMPLE, BatchResult, Bitrix24Client
from widget.crm.bitrix24.php import as_dict, as_list
from widget.crm.errors import CrmNotFound
from widget.domain.crm import ENTITY_DEAL, ENTITY_LEAD
from widget.domain.messenger_ids import MessengerId, crm_messenger_id
from widget.domain.outreach import Address, CardClient, im_address, phone_address, unique
from widget.domain.ports import (
    CONTACT,
    DEAL,
    LEAD,
    CreatedEntities,
    EarlierAttempt,
    EntityRef,
    KnownClient,
    NewClientSpec,
)
from widget.domain.responsibility import EntityState

log = logging.getLogger(__name__)

ORIGINATOR = "wazzup"
# A phone shared by more people than this is read for the first few only (one batch).
MAX_MATCHES = 5
# Bitrix24 "semantics" of a stage: S success, F failure; anything else is still in progress.
_CLOSED_SEMANTICS = ("S", "F")
_METHODS = {CONTACT: "crm.contact", DEAL: "crm.deal", LEAD: "crm.lead"}
# Bitrix24's own IM value types (crm_multifield) for the messengers it names; the rest are OTHER.
# Shown in the card only: the lookup matches the value, which names the messenger itself.
IM_VALUE_TYPES = {"telegram": "TELEGRAM", "instagram": "INSTAGRAM", "facebook": "FACEBOOK", "viber": "VIBER"}


def _str(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text if text and text != "0" else None


ClosedStages = Callable[[], Mapping[str, frozenset[str]]]


class Bitrix24CrmPort:
    def __init__(self, client: Bitrix24Client, account_id: int, crm_mode: str, closed_stages: ClosedStages) -> None:
        """``closed_stages``: the won/lost deal stages (``ENTITY_DEAL``) and lead statuses
        (``ENTITY_LEAD``) as our last "Refresh CRM data" saw them; asked once, when first needed."""
        self.client = client
        self.account_id = account_id
        self.crm_mode = crm_mode
        self._read_closed = closed_stages
        # A contact an earlier attempt made without its deal (halt stopped the batch), by key.
        self._orphans: dict[str, str] = {}
        self._closed: dict[str, frozenset[str]] | None = None

    # --- what is closed --------------------------------------------------------------------------

    def _closed_stages(self) -> dict[str, frozenset[str]]:
        """The legacy records do not always carry ``CLOSED``/``*_SEMANTIC_ID`` in what they return."""
        if self._closed is None:
            known = self._read_closed()
            self._closed = {
                DEAL: known.get(ENTITY_DEAL, frozenset()),
                LEAD: known.get(ENTITY_LEAD, frozenset()),
            }
        return self._closed

    def _is_closed(self, kind: str, record: Mapping[str, Any]) -> bool:
        if kind == DEAL:
            if str(record.get("CLOSED") or "") == "Y" or record.get("STAGE_SEMANTIC_ID") in _CLOSED_SEMANTICS:
                return True
            return str(record.get("STAGE_ID") or "") in self._closed_stages()[DEAL]
        if kind == LEAD:
            if record.get("STATUS_SEMANTIC_ID") in _CLOSED_SEMANTICS:
                return True
            return str(record.get("STATUS_ID") or "") in self._closed_stages()[LEAD]
        return False

    # --- who is this client --------------------------------------------------------------------

    def _matches(self, phone: str | None, im: MessengerId | None) -> tuple[list[str], list[str]]:
        """Ids of the contacts and leads holding this phone or this IM value: ONE request."""
        if im is None:
            found = self.client.find_by_phone(phone) if phone else {}
            return found.get("CONTACT", []), found.get("LEAD", [])
        by_im = {"filter": {"IM": im.value}, "select": ["ID"], "order": {"ID": "ASC"}}
        commands: dict[str, tuple[str, Mapping[str, Any]]] = {
            "c": ("crm.contact.list", by_im),
            "l": ("crm.lead.list", by_im),
        }
        if phone:
            commands["p"] = ("crm.duplicate.findbycomm", {"type": "PHONE", "values": [phone]})
        answer = self.client.batch(commands, halt=False)
        # A failed search must not pass for "nobody": that would create a second contact. Only a
        # simple-CRM portal (no leads, §6.4) may refuse the lead list; its contacts still count.
        by_phone = as_dict(answer.get("p")) if phone else {}  # [] when nothing matches (§6.5)
        contacts = as_list(answer.get("c"))
        if "l" in answer.errors and self.crm_mode == CRM_MODE_SIMPLE:
            log.info("Bitrix24 account %s: lead lookup by IM refused: %s", self.account_id, answer.errors["l"])
            leads: list[Any] = []
        else:
            leads = as_list(answer.get("l"))

        def ids(found: list[Any], kind: str) -> list[str]:
            out = [str(i) for i in as_list(by_phone.get(kind))] + [str(as_dict(r).get("ID")) for r in found]
            return list(dict.fromkeys(i for i in out if i.isdigit()))

        return ids(contacts, "CONTACT"), ids(leads, "LEAD")

    def find_client(
        self, phone: str | None, messenger_id: str | None, messenger: str | None = None
    ) -> KnownClient | None:
        """The contacts and leads with this phone or messenger id (one request), then, only when
        there are some, one batch reading them and the contacts' deals."""
        found_contacts, found_leads = self._matches(phone, crm_messenger_id(phone, messenger, messenger_id))
        contact_ids = found_contacts[:MAX_MATCHES]
        lead_ids = found_leads[:MAX_MATCHES]
        if not contact_ids and not lead_ids:
            return None
        commands: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for cid in contact_ids:
            commands[f"c{cid}"] = ("crm.contact.get", {"id": cid})
            commands[f"d{cid}"] = ("crm.deal.list", {"filter": {"CONTACT_ID": cid}, "order": {"ID": "DESC"}})
        for lid in lead_ids:
            commands[f"l{lid}"] = ("crm.lead.get", {"id": lid})
        answer = self.client.batch(commands, halt=False)
        contacts = {cid: as_dict(answer.results[f"c{cid}"]) for cid in contact_ids if f"c{cid}" in answer.results}

        open_deals = [
            as_dict(d)
            for cid in contacts
            for d in as_list(answer.results.get(f"d{cid}"))
            if not self._is_closed(DEAL, as_dict(d))
        ]
        if open_deals:
            deal = max(open_deals, key=lambda d: int(str(d.get("ID") or 0)))
            cid = str(deal.get("CONTACT_ID") or "")
            contact = contacts.get(cid) or next(iter(contacts.values()))
            return KnownClient(
                str(contact.get("ID")),
                _str(deal.get("ASSIGNED_BY_ID")) or _str(contact.get("ASSIGNED_BY_ID")),
                EntityRef(DEAL, str(deal.get("ID"))),
                _name(contact),
            )
        open_leads = [
            as_dict(answer.results[f"l{lid}"])
            for lid in lead_ids
            if f"l{lid}" in answer.results and not self._is_closed(LEAD, as_dict(answer.results[f"l{lid}"]))
        ]
        if open_leads:
            lead = max(open_leads, key=lambda ld: int(str(ld.get("ID") or 0)))
            cid = str(lead.get("CONTACT_ID") or "")
            contact = contacts.get(cid) or (next(iter(contacts.values())) if contacts else {})
            # A lone lead (no contact) is still a client the CRM knows: it is not created twice.
            return KnownClient(
                str(contact.get("ID") or ""),
                _str(lead.get("ASSIGNED_BY_ID")),
                EntityRef(LEAD, str(lead.get("ID"))),
                _name(contact or lead),
            )
        if not contacts:
            return None  # only closed leads carry this phone: a new client
        contact = contacts[contact_ids[0]] if contact_ids[0] in contacts else next(iter(contacts.values()))
        return KnownClient(str(contact.get("ID")), _str(contact.get("ASSIGNED_BY_ID")), None, _name(contact))

    # --- creating ------------------------------------------------------------------------------

    def _origin(self, key: str) -> dict[str, str]:
        return {"ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": key}

    def _communications(self, spec: NewClientSpec) -> dict[str, Any]:
        """PHONE and IM multifields of a new contact or lone lead: what ``find_client`` searches."""
        fields: dict[str, Any] = {}
        if spec.phone:
            fields["PHONE"] = [{"VALUE": spec.phone, "VALUE_TYPE": "MOBILE"}]
        im = crm_messenger_id(spec.phone, spec.messenger, spec.messenger_id)
        if im is not None:
            fields["IM"] = [{"VALUE": im.value, "VALUE_TYPE": IM_VALUE_TYPES.get(im.messenger, "OTHER")}]
        return fields

    def _contact_fields(self, spec: NewClientSpec, key: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"NAME": spec.name[:100], **self._origin(key), **self._communications(spec)}
        if spec.responsible_crm_user_id:
            fields["ASSIGNED_BY_ID"] = spec.responsible_crm_user_id
        if spec.channel_name:
            fields["SOURCE_DESCRIPTION"] = spec.channel_name[:250]
        return fields

    def _deal_fields(self, spec: NewClientSpec, key: str, contact: str) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "TITLE": spec.entity_title,
            "CATEGORY_ID": spec.pipeline_id or "0",
            "CONTACT_ID": contact,
            **self._origin(key),
        }
        if spec.stage_id:
            fields["STAGE_ID"] = spec.stage_id  # must belong to the category (§6.4)
        if spec.responsible_crm_user_id:
            fields["ASSIGNED_BY_ID"] = spec.responsible_crm_user_id
        if spec.channel_name:
            fields["SOURCE_DESCRIPTION"] = spec.channel_name[:250]
        return fields

    def create_contact_with_entity(self, spec: NewClientSpec, idempotency_key: str) -> CreatedEntities:
        if spec.entity == LEAD and not spec.with_contact:
            if self.crm_mode != CRM_MODE_SIMPLE:
                return self._create_lead(spec, idempotency_key)
            # Simple CRM has no leads: Bitrix24 would convert one into a deal at once (§6.4).
            log.warning(
                "Bitrix24 account %s runs in simple CRM mode: a contact and a deal in the main pipeline "
                "are created instead of a lead",
                self.account_id,
            )
            spec = replace(spec, entity=DEAL, with_contact=True, pipeline_id=None, stage_id=None)
        orphan = self._orphans.pop(idempotency_key, None)
        if orphan is not None:
            deal_id = self.client.call(
                "crm.deal.add", {"fields": self._deal_fields(spec, idempotency_key, orphan)}, idempotent=False
            ).result
            return CreatedEntities(orphan, EntityRef(DEAL, str(deal_id)))
        answer = self.client.batch(
            {
                "c": ("crm.contact.add", {"fields": self._contact_fields(spec, idempotency_key)}),
                "d": ("crm.deal.add", {"fields": self._deal_fields(spec, idempotency_key, "$result[c]")}),
            },
            halt=True,
            idempotent=False,
        )
        contact_id = str(answer.get("c"))
        return CreatedEntities(contact_id, EntityRef(DEAL, str(answer.get("d"))))

    def _create_lead(self, spec: NewClientSpec, key: str) -> CreatedEntities:
        fields: dict[str, Any] = {
            "TITLE": spec.entity_title,
            "NAME": spec.name[:100],
            **self._origin(key),
            **self._communications(spec),
        }
        if spec.stage_id:
            fields["STATUS_ID"] = spec.stage_id
        if spec.responsible_crm_user_id:
            fields["ASSIGNED_BY_ID"] = spec.responsible_crm_user_id
        if spec.channel_name:
            fields["SOURCE_DESCRIPTION"] = spec.channel_name[:250]
        lead_id = self.client.call("crm.lead.add", {"fields": fields}, idempotent=False).result
        return CreatedEntities(None, EntityRef(LEAD, str(lead_id)))

    def create_incoming_lead(self, spec: NewClientSpec, idempotency_key: str) -> CreatedEntities:
        """Bitrix24 has no incoming-leads stage of its own; a plain create is what fits."""
        return self.create_contact_with_entity(spec, idempotency_key)

    def find_created(self, idempotency_key: str, earlier: EarlierAttempt | None) -> CreatedEntities | None:
        if earlier is None:
            return None  # the first attempt: nothing of it can be in the portal yet
        origin = {"filter": self._origin(idempotency_key), "order": {"ID": "ASC"}}
        answer = self.client.batch(
            {"c": ("crm.contact.list", origin), "d": ("crm.deal.list", origin), "l": ("crm.lead.list", origin)},
            halt=False,
        )
        contacts = _records(answer, "c")
        deals = _records(answer, "d")
        leads = _records(answer, "l")
        first_contact = str(contacts[0].get("ID")) if contacts else None
        if deals:
            deal = deals[0]
            contact = _str(deal.get("CONTACT_ID")) or first_contact
            return CreatedEntities(contact, EntityRef(DEAL, str(deal.get("ID"))))
        if leads:
            return CreatedEntities(None, EntityRef(LEAD, str(leads[0].get("ID"))))
        if first_contact is not None:
            # The contact was made, the deal was not: the create that follows adds only the deal.
            self._orphans[idempotency_key] = first_contact
        return None

    # --- responsibility ------------------------------------------------------------------------

    def accept_incoming(self, incoming_uid: str, crm_user_id: str | None, stage_id: str | None) -> None:
        """Nothing to accept: Bitrix24 records are never created as incoming leads."""

    def set_responsible(self, entity_refs: Sequence[EntityRef], crm_user_id: str) -> None:
        """``ASSIGNED_BY_ID`` on every entity in one batch (§6.4, §6.6)."""
        updates = [(r.kind, r.crm_id, crm_user_id) for r in entity_refs if r.kind in _METHODS]
        if updates:
            self.client.set_responsible_many(updates)

    # --- a card's client (starting a conversation from a card) ----------------------------------

    def read_card(self, card: EntityRef) -> CardClient | None:
        """The client of a deal, lead or contact tab in ONE request: a batch reading the record and,
        for a deal or lead, its contact through ``$result[e][CONTACT_ID]`` (§6.6). A lead without a
        contact carries the phone and messenger ids itself. None when the portal has no such record."""
        method = _METHODS.get(card.kind)
        if method is None or not card.crm_id.isdigit():
            return None
        commands: dict[str, tuple[str, Mapping[str, Any]]] = {"e": (f"{method}.get", {"id": card.crm_id})}
        if card.kind != CONTACT:
            commands["c"] = ("crm.contact.get", {"id": "$result[e][CONTACT_ID]"})
        answer = self.client.batch(commands, halt=False)
        try:
            record = as_dict(answer.get("e"))
        except CrmNotFound:
            return None
        states = {card: EntityState(_str(record.get("ASSIGNED_BY_ID")), self._is_closed(card.kind, record))}
        if card.kind == CONTACT:
            return CardClient(card, card.crm_id, None, _name(record), states, _record_addresses(record, card.crm_id))
        contact: dict[str, Any] = {}
        if _str(record.get("CONTACT_ID")) and "c" in answer.results:
            contact = as_dict(answer.results["c"])  # a deal or lead without a contact: its batch line failed
        contact_id = _str(contact.get("ID"))
        if contact_id:
            states[EntityRef(CONTACT, contact_id)] = EntityState(_str(contact.get("ASSIGNED_BY_ID")))
        # The contact's phones and ids first; a lead's own fields too (a lead may carry them itself).
        addresses = unique([*_record_addresses(contact, contact_id), *_record_addresses(record, None)])
        name = (_name(contact) if contact_id else "") or _name(record) or str(record.get("TITLE") or "")
        return CardClient(card, contact_id, card, name, states, addresses)

    def read_entities(self, refs: Sequence[EntityRef]) -> dict[EntityRef, EntityState]:
        """``crm.contact.get``/``crm.deal.get``/``crm.lead.get`` for every ref, 50 per batch
        (``ResponsibleReader``). An entity the portal no longer has is left out."""
        wanted = [r for r in dict.fromkeys(refs) if r.kind in _METHODS]
        states: dict[EntityRef, EntityState] = {}
        for start in range(0, len(wanted), BATCH_MAX):
            chunk = wanted[start : start + BATCH_MAX]
            commands = {f"e{i}": (f"{_METHODS[r.kind]}.get", {"id": r.crm_id}) for i, r in enumerate(chunk)}
            answer = self.client.batch(commands, halt=False)
            for i, ref in enumerate(chunk):
                try:
                    record = as_dict(answer.get(f"e{i}"))
                except CrmNotFound:
                    continue
                states[ref] = EntityState(_str(record.get("ASSIGNED_BY_ID")), self._is_closed(ref.kind, record))
        return states


def _records(answer: BatchResult, key: str) -> list[dict[str, Any]]:
    if key in answer.errors:
        # e.g. crm.lead.list on a portal whose CRM mode hides leads: nothing of ours is there.
        log.info("Bitrix24 %s lookup by origin failed: %s", key, answer.errors[key])
        return []
    return [as_dict(r) for r in as_list(answer.results.get(key))]


def _record_addresses(record: Mapping[str, Any], contact_id: str | None) -> tuple[Address, ...]:
    """The ``PHONE`` and ``IM`` multifields of a contact or lead (§6.4 crm_multifield)."""
    found: list[Address | None] = []
    for item in as_list(record.get("PHONE")):
        found.append(phone_address(str(as_dict(item).get("VALUE") or ""), contact_id))
    for item in as_list(record.get("IM")):
        found.append(im_address(str(as_dict(item).get("VALUE") or ""), contact_id))
    return unique(found)


def _name(record: Mapping[str, Any]) -> str:
    return " ".join(str(record.get(k) or "").strip() for k in ("NAME", "LAST_NAME")).strip()
