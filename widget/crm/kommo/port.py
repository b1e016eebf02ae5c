"""Kommo behind our ``CrmPort`` (``widget.domain.ports``): what the conversation outbox asks of it,
in as few API v4 requests as Kommo allows (reference §5).

A new client costs two requests: the contact search (``GET /contacts?query=`` with the phone, or
with the messenger identity kept in the contact's IM field; 204 = nobody) and one create —
``POST /leads/complex`` (lead + contact + responsible, pipeline and stage) or, for the "Incoming
leads" stage, ``POST /leads/unsorted/forms``. ``find_created`` sends nothing on a first
attempt (the outbox says so: ``EarlierAttempt``).

Idempotency. Kommo keeps no ``request_id`` (it only echoes it), and lead names are read by people,
so nothing of ours goes into them: a lead is named as a person would name it ("Ana (Sales
WhatsApp)", as the Bitrix24 deal). An earlier attempt that may have reached Kommo is found by
what it wrote instead:

* an incoming lead carries a token derived from the outbox key as its Unsorted ``source_uid``,
  which Kommo keeps and lists but shows nobody; its contact is hidden from every list until the
  lead is accepted, so the Unsorted list is where it is found;
* a complex lead's new contact holds the client's exact phone, or their messenger identity in the
  IM field. The work was recorded only after ``find_client`` found no such contact, so a contact
  holding it that Kommo created since the work was recorded is the earlier attempt's (or, rarely,
  someone else's record of this very client, which is as much a duplicate to avoid): it is
  adopted with the lead created with it. An incoming lead accepted meanwhile is found this way too.

A tag or a lead custom field would carry the key as well, but a tag per client fills the account's
tag list and shows on every lead card, and a field must be created by an admin in every account.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta

from widget.crm.errors import CrmBadResponse
from widget.crm.kommo.client import KommoClient
from widget.crm.kommo.creates import NewContact, NewLead, NewUnsortedForm
from widget.crm.kommo.payloads import KommoContact, KommoLead
from widget.domain.messenger_ids import crm_messenger_id
from widget.domain.outreach import Address, CardClient, im_address, phone_address, unique
from widget.domain.ports import CONTACT, LEAD, CreatedEntities, EarlierAttempt, EntityRef, KnownClient, NewClientSpec
from widget.domain.responsibility import EntityState

log = logging.getLogger(__name__)

SOURCE_NAME = "Wazzup"
FORM_ID = "wazzup-chats"
# An earlier incoming lead is looked for among this many pages of Unsorted (250 each).
UNSORTED_PAGES = 8
# Kommo's ``created_at`` is Kommo's clock, the work's start ours: this much skew between the two is
# tolerated. A contact Kommo had long before the work began is not the work's, even if it now holds
# the client's phone (someone typed it into an old card meanwhile).
CLOCK_SLACK = timedelta(hours=1)
_NON_DIGITS = re.compile(r"\D+")


def creation_token(account_id: int, key: str) -> str:
    """The Unsorted ``source_uid`` only the create work ``key`` of this account gives an incoming
    lead (Kommo shows it to nobody)."""
    return "wz" + hashlib.sha256(f"{account_id}:{key}".encode()).hexdigest()[:14]


def _digits(phone: str) -> str:
    return _NON_DIGITS.sub("", phone)


def _id(value: str | None) -> int | None:
    return int(value) if value is not None and str(value).isdigit() else None


def _str(value: int | None) -> str | None:
    return str(value) if value is not None else None


class KommoCrmPort:
    def __init__(self, client: KommoClient, account_id: int, *, form_page: str = "") -> None:
        self.client = client
        self.account_id = account_id
        self.form_page = form_page

    # --- who is this client --------------------------------------------------------------------

    def find_client(
        self, phone: str | None, messenger_id: str | None, messenger: str | None = None
    ) -> KnownClient | None:
        """Kommo's contact search is full-text (reference §5.4): a query's digits may sit inside a
        longer number and a chat id inside a longer one, so only contacts holding exactly this
        phone, or exactly this IM value, count.

        ``query=`` takes one text, so phone and messenger id are two searches: the phone first (one
        request, as for every WhatsApp client), the IM value only when there is no phone or the phone
        found nobody. A Telegram/Instagram client who also gives a phone and is new therefore costs
        one request more than issue 6's two; the gateway rarely gives those messengers' phones, and
        a second contact for a known client would cost the sales team more."""
        contacts = self._contacts_holding(phone, messenger_id, messenger)
        if not contacts:
            return None
        lead_ids = [lead_id for c in contacts for lead_id in c.lead_ids]
        # ``with=leads`` gives only ids; one more request tells which lead is open and whose it is.
        open_leads = [lead for lead in self.client.get_leads(lead_ids) if not lead.is_closed] if lead_ids else []
        if open_leads:
            lead = max(open_leads, key=lambda ld: ld.id)  # the newest open lead decides
            contact = next((c for c in contacts if lead.id in c.lead_ids), contacts[0])
            responsible = lead.responsible_user_id or contact.responsible_user_id
            return KnownClient(str(contact.id), _str(responsible), EntityRef(LEAD, str(lead.id)), contact.name)
        contact = contacts[0]
        return KnownClient(str(contact.id), _str(contact.responsible_user_id), None, contact.name)

    def _contacts_holding(
        self, phone: str | None, messenger_id: str | None, messenger: str | None
    ) -> list[KommoContact]:
        """Contacts holding exactly this phone, else exactly this messenger identity (IM field)."""
        contacts: list[KommoContact] = []
        if phone:
            wanted = _digits(phone)
            contacts = [c for c in self.client.search_contacts(phone) if any(_digits(p) == wanted for p in c.phones)]
        im = crm_messenger_id(phone, messenger, messenger_id)
        if not contacts and im is not None:
            contacts = [c for c in self.client.search_contacts(im.value) if im.value in c.ims]
        return contacts

    # --- creating ------------------------------------------------------------------------------

    def _contact(self, spec: NewClientSpec) -> NewContact:
        """Complex and incoming leads carry the same contact: the phone, and the chat's messenger
        identity in the IM field so that ``find_client`` finds a client without a phone later."""
        im = crm_messenger_id(spec.phone, spec.messenger, spec.messenger_id)
        return NewContact(
            name=spec.name[:250],
            phone=spec.phone or "",
            responsible_user_id=_id(spec.responsible_crm_user_id),
            im=im.value if im is not None else "",
        )

    def create_contact_with_entity(self, spec: NewClientSpec, idempotency_key: str) -> CreatedEntities:
        """ONE ``POST /api/v4/leads/complex``: the lead, its new contact, both with the responsible."""
        lead = NewLead(
            name=spec.entity_title,
            pipeline_id=_id(spec.pipeline_id),
            status_id=_id(spec.stage_id),
            responsible_user_id=_id(spec.responsible_crm_user_id),
            contact=self._contact(spec),
            request_id=idempotency_key,
        )
        results = self.client.create_complex_leads([lead])
        if not results:
            raise CrmBadResponse("Kommo answered the complex lead creation with an empty list")
        made = results[0]
        return CreatedEntities(_str(made.contact_id), EntityRef(LEAD, str(made.id)))

    def create_incoming_lead(self, spec: NewClientSpec, idempotency_key: str) -> CreatedEntities:
        """ONE ``POST /api/v4/leads/unsorted/forms`` (category forms, reference §5.7): the lead
        waits in the pipeline's "Incoming leads" until whoever answers first accepts it."""
        token = creation_token(self.account_id, idempotency_key)
        form = NewUnsortedForm(
            source_uid=token,
            source_name=SOURCE_NAME,
            lead_name=spec.entity_title,
            form_id=FORM_ID,
            form_name=(spec.channel_name or spec.messenger)[:100],
            form_page=self.form_page,
            form_sent_at=int(time.time()),
            contact=self._contact(spec),
            pipeline_id=_id(spec.pipeline_id),
            request_id=idempotency_key,
            lead_responsible_user_id=_id(spec.responsible_crm_user_id),
        )
        results = self.client.create_unsorted_forms([form])
        if not results or not results[0].lead_ids:
            raise CrmBadResponse("Kommo did not say which lead the incoming lead holds")
        made = results[0]
        contact_id = made.contact_ids[0] if made.contact_ids else None
        return CreatedEntities(_str(contact_id), EntityRef(LEAD, str(made.lead_ids[0])), made.uid)

    def find_created(self, idempotency_key: str, earlier: EarlierAttempt | None) -> CreatedEntities | None:
        if earlier is None:
            return None  # the first attempt: nothing of it can be in Kommo yet
        found = None
        if earlier.incoming is not False:
            found = self._waiting_incoming(creation_token(self.account_id, idempotency_key))
        if found is None:
            found = self._new_contact_of(earlier)
        if found is not None and found.entity is not None:
            log.info(
                "Kommo account %s: %s was already created as lead %s",
                self.account_id,
                idempotency_key,
                found.entity.crm_id,
            )
        return found

    def _waiting_incoming(self, token: str) -> CreatedEntities | None:
        """The incoming lead with our ``source_uid``, while it waits in Unsorted: its uid (needed to
        accept it), its lead and its contact, which Kommo hides from other lists until then."""
        for page in range(1, UNSORTED_PAGES + 1):
            found = self.client.list_unsorted(page=page)
            for item in found.items:
                if item.source_uid == token and item.lead_ids:
                    contact = _str(item.contact_ids[0]) if item.contact_ids else None
                    return CreatedEntities(contact, EntityRef(LEAD, str(item.lead_ids[0])), item.uid)
            if not found.has_next:
                break
        return None

    def _new_contact_of(self, earlier: EarlierAttempt) -> CreatedEntities | None:
        """The contact holding exactly the phone or messenger identity the work wrote, created since
        the work was recorded, with the first lead created with it since then (the one the create
        made; a later one would be somebody's follow-up). None when there is no such pair."""
        if earlier.began_at is None:
            return None
        since = int((earlier.began_at - CLOCK_SLACK).timestamp())
        contacts = self._contacts_holding(earlier.phone, earlier.messenger_id, earlier.messenger)
        contacts = sorted((c for c in contacts if c.created_at >= since), key=lambda c: c.id)
        lead_ids = [lead_id for c in contacts for lead_id in c.lead_ids]
        if not lead_ids:
            return None
        leads = {lead.id: lead for lead in self.client.get_leads(lead_ids) if lead.created_at >= since}
        for contact in contacts:
            mine = sorted(lead_id for lead_id in contact.lead_ids if lead_id in leads)
            if mine:
                return CreatedEntities(str(contact.id), EntityRef(LEAD, str(mine[0])))
        return None

    # --- responsibility ------------------------------------------------------------------------

    def accept_incoming(self, incoming_uid: str, crm_user_id: str | None, stage_id: str | None) -> None:
        """Accept for the winner (``user_id``) into ``stage_id``, or Kommo's default, the
        pipeline's first working stage. An incoming lead already accepted or declined in Kommo
        answers 400: there is nothing left to do, which is what a repeated accept wants."""
        try:
            self.client.accept_unsorted(incoming_uid, user_id=_id(crm_user_id), status_id=_id(stage_id))
        except CrmBadResponse as exc:
            detail = exc.details.get("detail", "") if isinstance(exc.details, Mapping) else ""
            if exc.status == 400 and "already" in str(detail):
                log.info("Kommo account %s: incoming lead %s: %s", self.account_id, incoming_uid, detail)
                return
            raise

    def set_responsible(self, entity_refs: Sequence[EntityRef], crm_user_id: str) -> None:
        user = _id(crm_user_id)
        if user is None:
            raise CrmBadResponse(f"{crm_user_id!r} is not a Kommo user id")
        contacts = [int(r.crm_id) for r in entity_refs if r.kind == CONTACT and r.crm_id.isdigit()]
        leads = [int(r.crm_id) for r in entity_refs if r.kind == LEAD and r.crm_id.isdigit()]
        self.client.set_responsible_many(contacts, leads, user)

    # --- a card's client (starting a conversation from a card) ----------------------------------

    def read_card(self, card: EntityRef) -> CardClient | None:
        """The client of a lead or contact card (Kommo has no deal cards): one request for a contact
        (``GET /contacts?filter[id][]=``), two for a lead (the lead ``with=contacts``, then its
        contacts, the main one first). None when Kommo has no such card (deleted, or never was)."""
        if not card.crm_id.isdigit():
            return None
        if card.kind == CONTACT:
            found = self.client.get_contacts([int(card.crm_id)])
            if not found:
                return None
            c = found[0]
            states = {card: EntityState(_str(c.responsible_user_id))}
            return CardClient(card, str(c.id), None, c.name, states, _addresses([c]))
        if card.kind != LEAD:
            return None
        leads = self.client.get_leads([int(card.crm_id)], with_contacts=True)
        if not leads:
            return None
        lead = leads[0]
        by_id = {c.id: c for c in self.client.get_contacts(list(lead.contact_ids))} if lead.contact_ids else {}
        contacts = [by_id[i] for i in lead.contact_ids if i in by_id]  # the main contact first
        entity = EntityRef(LEAD, str(lead.id))
        states = {entity: EntityState(_str(lead.responsible_user_id), lead.is_closed)}
        main = contacts[0] if contacts else None
        if main is not None:
            states[EntityRef(CONTACT, str(main.id))] = EntityState(_str(main.responsible_user_id))
        name = main.name if main is not None and main.name else lead.name
        contact_id = str(main.id) if main is not None else None
        return CardClient(card, contact_id, entity, name, states, _addresses(contacts))

    def read_entities(self, refs: Sequence[EntityRef]) -> dict[EntityRef, EntityState]:
        """Contacts and leads by id: at most one request per entity type per 250 (``ResponsibleReader``)."""
        contact_ids = [int(r.crm_id) for r in refs if r.kind == CONTACT and r.crm_id.isdigit()]
        lead_ids = [int(r.crm_id) for r in refs if r.kind == LEAD and r.crm_id.isdigit()]
        states: dict[EntityRef, EntityState] = {}
        contacts: Sequence[KommoContact] = self.client.get_contacts(contact_ids) if contact_ids else ()
        for c in contacts:
            states[EntityRef(CONTACT, str(c.id))] = EntityState(_str(c.responsible_user_id))
        leads: Sequence[KommoLead] = self.client.get_leads(lead_ids) if lead_ids else ()
        for lead in leads:
            states[EntityRef(LEAD, str(lead.id))] = EntityState(_str(lead.responsible_user_id), lead.is_closed)
        return states


def _addresses(contacts: Sequence[KommoContact]) -> tuple[Address, ...]:
    """Every phone and messenger id of these contacts, in order, each once."""
    found: list[Address | None] = []
    for c in contacts:
        found += [phone_address(p, str(c.id)) for p in c.phones]
        found += [im_address(v, str(c.id)) for v in c.ims]
    return unique(found)
