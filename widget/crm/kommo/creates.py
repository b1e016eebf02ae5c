"""Creating leads in Kommo: the bodies of ``POST /api/v4/leads/complex`` (lead + contact, reference
§5.6) and of incoming leads (``POST /api/v4/leads/unsorted/forms``, §5.7), and Kommo's answers about
them, the Unsorted list included (where an earlier incoming lead is looked for).

Answers are parsed as in ``payloads``: a frozen object, or ``CrmBadResponse`` naming what was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from widget.crm.errors import CrmBadResponse
from widget.crm.kommo.payloads import (
    as_array,
    as_object,
    bool_field,
    embedded_items,
    int_field,
    opt_int_field,
    str_field,
)


@dataclass(frozen=True)
class NewContact:
    name: str
    phone: str = ""
    responsible_user_id: int | None = None
    # The client's messenger identity as ``widget.domain.messenger_ids`` encodes it ("telegram:123").
    im: str = ""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name}
        if self.responsible_user_id is not None:
            body["responsible_user_id"] = self.responsible_user_id
        fields: list[dict[str, Any]] = []
        if self.phone:
            # Send enum_code (reference Addendum); Kommo reads field_code PHONE without a field id.
            fields.append({"field_code": "PHONE", "values": [{"value": self.phone, "enum_code": "WORK"}]})
        if self.im:
            # The predefined multitext IM field: its enums (SKYPE, ICQ, JABBER, GTALK, MSN, OTHER) name
            # no current messenger, so OTHER, and the value names the messenger. ``query=`` searches
            # every filled field (reference §5.4), this one included.
            fields.append({"field_code": "IM", "values": [{"value": self.im, "enum_code": "OTHER"}]})
        if fields:
            body["custom_fields_values"] = fields
        return body


@dataclass(frozen=True)
class NewLead:
    """A lead with (at most one) new or existing contact, for ``POST /api/v4/leads/complex``."""

    name: str
    pipeline_id: int | None = None
    status_id: int | None = None
    responsible_user_id: int | None = None
    contact: NewContact | None = None
    contact_id: int | None = None
    request_id: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name}
        if self.pipeline_id is not None:
            body["pipeline_id"] = self.pipeline_id
        if self.status_id is not None:
            body["status_id"] = self.status_id
        if self.responsible_user_id is not None:
            body["responsible_user_id"] = self.responsible_user_id
        if self.request_id:
            body["request_id"] = self.request_id
        embedded: dict[str, Any] = {}
        if self.contact_id is not None:
            embedded["contacts"] = [{"id": self.contact_id}]
        elif self.contact is not None:
            embedded["contacts"] = [self.contact.to_json()]
        if self.tags:
            embedded["tags"] = [{"name": t} for t in self.tags]
        if embedded:
            body["_embedded"] = embedded
        return body


@dataclass(frozen=True)
class ComplexLeadResult:
    id: int
    contact_id: int | None
    request_ids: tuple[str, ...]
    merged: bool


def parse_complex_result(data: Any) -> tuple[ComplexLeadResult, ...]:
    """The reference shows a bare array; some client docs show a HAL object (reference Addendum)."""
    if isinstance(data, Mapping):
        items: Sequence[Any] = embedded_items(data, "leads", "complex leads")
    else:
        items = as_array(data, "complex leads")
    out = []
    for raw in items:
        obj = as_object(raw, "complex lead")
        req = obj.get("request_id")
        request_ids = tuple(str(r) for r in req) if isinstance(req, list) else ((str(req),) if req else ())
        out.append(
            ComplexLeadResult(
                id=int_field(obj, "id", "complex lead"),
                contact_id=opt_int_field(obj, "contact_id", "complex lead"),
                request_ids=request_ids,
                merged=bool_field(obj, "merged"),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class NewUnsortedForm:
    """An incoming lead of category "forms" (``POST /api/v4/leads/unsorted/forms``, reference §5.7)."""

    source_uid: str
    source_name: str
    lead_name: str
    form_id: str
    form_name: str
    form_page: str
    form_sent_at: int
    contact: NewContact | None = None
    pipeline_id: int | None = None
    request_id: str = ""
    lead_responsible_user_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        lead: dict[str, Any] = {"name": self.lead_name}
        if self.lead_responsible_user_id is not None:
            lead["responsible_user_id"] = self.lead_responsible_user_id
        embedded: dict[str, Any] = {"leads": [lead]}
        if self.contact is not None:
            embedded["contacts"] = [self.contact.to_json()]
        body: dict[str, Any] = {
            "source_uid": self.source_uid,
            "source_name": self.source_name,
            # The official library always sends these four metadata fields.
            "metadata": {
                "form_id": self.form_id,
                "form_name": self.form_name,
                "form_page": self.form_page,
                "form_sent_at": self.form_sent_at,
            },
            "_embedded": embedded,
        }
        if self.pipeline_id is not None:
            body["pipeline_id"] = self.pipeline_id
        if self.request_id:
            body["request_id"] = self.request_id
        return body


@dataclass(frozen=True)
class UnsortedResult:
    uid: str
    lead_ids: tuple[int, ...]
    contact_ids: tuple[int, ...]


def _unsorted(obj: Mapping[str, Any]) -> UnsortedResult:
    uid = obj.get("uid")
    if not isinstance(uid, str) or not uid:
        raise CrmBadResponse("Kommo unsorted item: 'uid' is missing")
    return UnsortedResult(
        uid=uid,
        lead_ids=tuple(
            int_field(as_object(x, "unsorted lead"), "id", "unsorted lead")
            for x in embedded_items(obj, "leads", "unsorted")
        ),
        contact_ids=tuple(
            int_field(as_object(x, "unsorted contact"), "id", "unsorted contact")
            for x in embedded_items(obj, "contacts", "unsorted")
        ),
    )


def parse_unsorted_created(data: Any) -> tuple[UnsortedResult, ...]:
    obj = as_object(data, "unsorted create")
    return tuple(_unsorted(as_object(x, "unsorted item")) for x in embedded_items(obj, "unsorted", "unsorted create"))


def parse_unsorted_accepted(data: Any) -> UnsortedResult:
    return _unsorted(as_object(data, "unsorted accept"))


@dataclass(frozen=True)
class UnsortedItem:
    """One incoming lead as ``GET /api/v4/leads/unsorted`` lists it."""

    uid: str
    source_uid: str
    pipeline_id: int | None
    lead_ids: tuple[int, ...]
    contact_ids: tuple[int, ...]


@dataclass(frozen=True)
class UnsortedPage:
    items: tuple[UnsortedItem, ...]
    has_next: bool


def parse_unsorted_page(data: Any) -> UnsortedPage:
    if data is None:
        return UnsortedPage((), False)
    obj = as_object(data, "unsorted list")
    items = []
    for raw in embedded_items(obj, "unsorted", "unsorted list"):
        item = as_object(raw, "unsorted item")
        base = _unsorted(item)
        items.append(
            UnsortedItem(
                uid=base.uid,
                source_uid=str_field(item, "source_uid"),
                pipeline_id=opt_int_field(item, "pipeline_id", "unsorted item"),
                lead_ids=base.lead_ids,
                contact_ids=base.contact_ids,
            )
        )
    links = obj.get("_links")
    return UnsortedPage(tuple(items), isinstance(links, Mapping) and isinstance(links.get("next"), Mapping))
