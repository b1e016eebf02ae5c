"""The CRM-neutral port the conversation services call. Kommo and Bitrix24 adapters implement it.

Every method is one CRM side effect or question; the outbox (``widget.services.outbox``) records
each call as a row before it is attempted and retries it, so an adapter must:

* raise ``widget.crm.errors`` types (``CrmRateLimited`` with ``retry_after``, ``CrmUnavailable`` for
  5xx / timeouts, ``CrmAuthError``, ``CrmBadResponse``) and nothing else for CRM failures;
* make the create methods idempotent by ``idempotency_key``: ``find_created`` must recognise the
  work of an earlier attempt that crashed after the CRM answered and before we recorded the answer
  — by the key where the CRM keeps one of ours in a field people do not read (Bitrix24
  ``ORIGIN_ID`` / ``ORIGINATOR_ID``, Kommo's Unsorted ``source_uid``), else by what the work wrote
  (Kommo: the new contact's phone or messenger identity, ``EarlierAttempt``). Never in a name
  a person reads. The outbox tells it whether an attempt may have run before: on the first one,
  nothing can have been created, and no CRM lookup is spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

CONTACT = "contact"
LEAD = "lead"  # Kommo lead (a deal in Kommo's words) / Bitrix24 lead
DEAL = "deal"  # Bitrix24 deal


@dataclass(frozen=True)
class EntityRef:
    kind: str  # CONTACT, LEAD or DEAL
    crm_id: str


@dataclass(frozen=True)
class KnownClient:
    """A contact the CRM already has for this phone / messenger id."""

    contact_id: str
    # The CRM user responsible for the client: the responsible of the client's open lead/deal when
    # there is one, else the contact's responsible (product.md "Responsible").
    responsible_crm_user_id: str | None
    open_entity: EntityRef | None = None
    name: str = ""


@dataclass(frozen=True)
class NewClientSpec:
    """What to create for a client the CRM does not know (product.md §2)."""

    name: str
    phone: str | None  # "+" and digits, when the messenger gives a phone
    messenger: str  # channel transport: whatsapp, waba, telegram, instagram
    messenger_id: str  # the chat id in the messenger; kept in the contact's IM field (``messenger_ids``)
    entity: str  # LEAD or DEAL
    with_contact: bool  # False only for a Bitrix24 lead, which carries the phone and IM itself
    pipeline_id: str | None  # CRM pipeline / category id; None = the CRM's default
    stage_id: str | None  # CRM stage / status id; None = the pipeline's first stage
    responsible_crm_user_id: str | None  # None = the CRM's default (the token owner)
    first_message: str = ""  # shown in the lead's note / incoming lead form
    channel_name: str = ""  # the source shown in the CRM

    @property
    def entity_title(self) -> str:
        """The lead's or deal's name, as a person would write it in either CRM: the client and
        where they wrote, "Ana (Sales WhatsApp)". Nothing of ours (keys, tokens) goes in it."""
        return f"{self.name[:150]} ({(self.channel_name or self.messenger)[:60]})"


@dataclass(frozen=True)
class CreatedEntities:
    contact_id: str | None
    entity: EntityRef | None  # the lead or deal
    # Kommo incoming lead (unsorted) uid: accepted for whoever answers first.
    incoming_uid: str | None = None

    def refs(self) -> tuple[EntityRef, ...]:
        refs = [EntityRef(CONTACT, self.contact_id)] if self.contact_id else []
        if self.entity is not None:
            refs.append(self.entity)
        return tuple(refs)


@dataclass(frozen=True)
class EarlierAttempt:
    """A create that may have reached the CRM before, as the outbox recorded it (``find_created``).

    The fields are those of the ``create_entities`` payload; all are None for work we did not
    record, of which nothing but the key is known (``UNRECORDED``)."""

    began_at: datetime | None  # when the work was recorded: nothing it made in the CRM is older
    phone: str | None
    messenger: str | None
    messenger_id: str | None
    incoming: bool | None  # a Kommo incoming lead (Unsorted); None when unknown


UNRECORDED = EarlierAttempt(None, None, None, None, None)


@runtime_checkable
class CrmPort(Protocol):
    def find_client(
        self, phone: str | None, messenger_id: str | None, messenger: str | None = None
    ) -> KnownClient | None:
        """The contact with this phone, or with this messenger's chat id (``messenger`` is the chat
        type, e.g. "telegram"; the id is searched as ``widget.domain.messenger_ids`` writes it into
        the contact's IM field), or None. Kommo: contacts?query= (204 = none); Bitrix24:
        crm.duplicate.findbycomm / crm.contact.list by IM, then the contact and its open deals.
        A lookup without ``messenger`` (work recorded before it was carried) searches the phone only."""
        ...

    def find_created(self, idempotency_key: str, earlier: EarlierAttempt | None) -> CreatedEntities | None:
        """What an earlier create call with this key made, or None if it made nothing. ``earlier``
        is None on the work's first attempt (nothing can have been made: no request is sent), else
        what the outbox recorded of the work."""
        ...

    def create_contact_with_entity(self, spec: NewClientSpec, idempotency_key: str) -> CreatedEntities:
        """Contact + lead/deal in ``spec.pipeline_id``/``spec.stage_id`` (or a lone Bitrix24 lead when
        ``spec.with_contact`` is False), all with ``spec.responsible_crm_user_id``."""
        ...

    def create_incoming_lead(self, spec: NewClientSpec, idempotency_key: str) -> CreatedEntities:
        """Kommo: an incoming lead (unsorted, category forms) with its contact, in ``spec.pipeline_id``.
        Returns ``incoming_uid`` and the ids of the lead and contact it holds."""
        ...

    def accept_incoming(self, incoming_uid: str, crm_user_id: str | None, stage_id: str | None) -> None:
        """Kommo: accept the incoming lead for this user. Accepting one already accepted succeeds."""
        ...

    def set_responsible(self, entity_refs: Sequence[EntityRef], crm_user_id: str) -> None:
        """Make this user responsible for the contact and the lead/deal. Safe to repeat."""
        ...


class JobQueue(Protocol):
    """Background work by job name (``widget.jobs``). A nudge only: what a job does is recorded in
    the database first, and periodic sweeps pick up whatever a lost nudge left."""

    def enqueue(self, name: str, *args: Any, delay: timedelta | None = None) -> None:
        """Run job ``name`` with these ids (after ``delay``). Never raises for a queue hiccup."""
        ...

    def nudge_soon(self, name: str) -> None:
        """Run job ``name`` (no arguments) soon; many calls in a burst may share one run, but a
        call is always followed by a run that starts after it."""
        ...
