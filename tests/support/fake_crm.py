"""An in-memory CRM behind our ``CrmPort``: what the conversation services see of Kommo or Bitrix24.

Switch ``outage`` (every call raises ``CrmUnavailable``) or ``rate_limited`` (``CrmRateLimited``
with that ``retry_after``) to test retries; set ``crash_after_create`` to simulate a worker killed
after the CRM created something and before we recorded it. Thread-safe; counts what it creates.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from widget.crm.errors import CrmRateLimited, CrmUnavailable
from widget.domain.ports import CONTACT, CreatedEntities, EarlierAttempt, EntityRef, KnownClient, NewClientSpec


class SimulatedCrash(BaseException):
    """A worker dying mid-job: not an ``Exception``, so nothing in our code catches and records it."""


@dataclass
class FakeContact:
    id: str
    name: str
    phone: str | None
    messenger_id: str | None
    responsible: str | None
    messenger: str | None = None


@dataclass
class FakeEntity:
    kind: str
    id: str
    contact_id: str | None
    pipeline_id: str | None
    stage_id: str | None
    responsible: str | None
    closed: bool = False
    incoming_uid: str | None = None
    accepted_by: str | None = None


@dataclass
class FakeCrm:
    outage: bool = False
    rate_limited: float | None = None
    crash_after_create: bool = False
    contacts: dict[str, FakeContact] = field(default_factory=dict)
    entities: dict[str, FakeEntity] = field(default_factory=dict)
    by_key: dict[str, CreatedEntities] = field(default_factory=dict)
    specs: list[NewClientSpec] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    created_contacts: int = 0
    created_entities: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1000)

    # --- test helpers ----------------------------------------------------------------------------

    def add_contact(self, phone: str, responsible: str, name: str = "Known client") -> FakeContact:
        with self._lock:
            contact = FakeContact(str(next(self._ids)), name, phone, None, responsible)
            self.contacts[contact.id] = contact
            return contact

    def add_open_entity(self, contact_id: str, kind: str, responsible: str) -> FakeEntity:
        with self._lock:
            ent = FakeEntity(kind, str(next(self._ids)), contact_id, None, None, responsible)
            self.entities[ent.id] = ent
            return ent

    def _gate(self, name: str) -> None:
        self.calls.append(name)
        if self.outage:
            raise CrmUnavailable("the CRM answered 503")
        if self.rate_limited is not None:
            raise CrmRateLimited("429 Too Many Requests", retry_after=self.rate_limited)

    # --- CrmPort ---------------------------------------------------------------------------------

    def find_client(
        self, phone: str | None, messenger_id: str | None, messenger: str | None = None
    ) -> KnownClient | None:
        with self._lock:
            self._gate("find_client")
            for c in self.contacts.values():
                # Like the adapters: a chat id counts only together with its messenger.
                by_messenger = messenger and messenger_id and (c.messenger, c.messenger_id) == (messenger, messenger_id)
                if (phone and c.phone == phone) or by_messenger:
                    open_ent = next((e for e in self.entities.values() if e.contact_id == c.id and not e.closed), None)
                    if open_ent is not None:
                        return KnownClient(c.id, open_ent.responsible, EntityRef(open_ent.kind, open_ent.id), c.name)
                    return KnownClient(c.id, c.responsible, None, c.name)
            return None

    def find_created(self, idempotency_key: str, earlier: EarlierAttempt | None) -> CreatedEntities | None:
        with self._lock:
            self._gate("find_created")
            return self.by_key.get(idempotency_key)

    def _create(self, spec: NewClientSpec, key: str, incoming: bool) -> CreatedEntities:
        with self._lock:
            self._gate("create_incoming_lead" if incoming else "create_contact_with_entity")
            if key in self.by_key:  # a real CRM would make a second one; our adapters must not call twice
                raise AssertionError(f"create called twice for {key}")
            contact_id = None
            if spec.with_contact:
                contact = FakeContact(
                    str(next(self._ids)),
                    spec.name,
                    spec.phone,
                    spec.messenger_id,
                    spec.responsible_crm_user_id,
                    spec.messenger,
                )
                self.contacts[contact.id] = contact
                contact_id = contact.id
                self.created_contacts += 1
            uid = f"uid-{next(self._ids)}" if incoming else None
            ent = FakeEntity(
                spec.entity,
                str(next(self._ids)),
                contact_id,
                spec.pipeline_id,
                spec.stage_id,
                spec.responsible_crm_user_id,
                incoming_uid=uid,
            )
            self.entities[ent.id] = ent
            self.created_entities += 1
            created = CreatedEntities(contact_id, EntityRef(spec.entity, ent.id), uid)
            self.by_key[key] = created
            self.specs.append(spec)
        if self.crash_after_create:
            raise SimulatedCrash("worker killed after the CRM created the entities")
        return created

    def create_contact_with_entity(self, spec: NewClientSpec, idempotency_key: str) -> CreatedEntities:
        return self._create(spec, idempotency_key, incoming=False)

    def create_incoming_lead(self, spec: NewClientSpec, idempotency_key: str) -> CreatedEntities:
        return self._create(spec, idempotency_key, incoming=True)

    def accept_incoming(self, incoming_uid: str, crm_user_id: str | None, stage_id: str | None) -> None:
        with self._lock:
            self._gate("accept_incoming")
            for e in self.entities.values():
                if e.incoming_uid == incoming_uid:
                    e.accepted_by = crm_user_id

    def set_responsible(self, entity_refs: Sequence[EntityRef], crm_user_id: str) -> None:
        with self._lock:
            self._gate("set_responsible")
            for ref in entity_refs:
                if ref.kind == CONTACT:
                    self.contacts[ref.crm_id].responsible = crm_user_id
                else:
                    self.entities[ref.crm_id].responsible = crm_user_id

    # --- what a test looks at --------------------------------------------------------------------

    def entity_for_contact(self, contact_id: str) -> FakeEntity:
        return next(e for e in self.entities.values() if e.contact_id == contact_id)
