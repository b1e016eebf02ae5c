"""Typed views of the Kommo JSON we read, built at the edge.

Every parser takes untrusted JSON and either returns a frozen object or raises ``CrmBadResponse``
naming what was wrong, so nothing deeper down meets a ``KeyError`` (reference §5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from widget.crm.errors import CrmBadResponse
from widget.crm.tokens import TokenPair
from widget.domain.crm import (
    ENTITY_LEAD,
    STAGE_INCOMING,
    STAGE_LOST,
    STAGE_OPEN,
    STAGE_WON,
    CrmPipeline,
    CrmStage,
    CrmUser,
)

# Kommo's system statuses: 142 and 143 are the same ids in every pipeline; the incoming-leads
# (unsorted) status has a per-pipeline id and ``type: 1`` (reference §5.3).
STATUS_WON = 142
STATUS_LOST = 143
STATUS_TYPE_INCOMING = 1


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CrmBadResponse(f"Kommo {what}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise CrmBadResponse(f"Kommo {what}: expected an array, got {type(value).__name__}")
    return value


def _int(obj: Mapping[str, Any], key: str, what: str) -> int:
    value = obj.get(key)
    # bool is an int in Python; Kommo never sends a bool where it means an id.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise CrmBadResponse(f"Kommo {what}: {key!r} must be an integer, got {value!r}")
    return value


def _opt_int(obj: Mapping[str, Any], key: str, what: str) -> int | None:
    if obj.get(key) is None:
        return None
    return _int(obj, key, what)


def _str(obj: Mapping[str, Any], key: str, default: str = "") -> str:
    value = obj.get(key)
    if value is None:
        return default
    return str(value)


def _bool(obj: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    return bool(value)


def _embedded(obj: Mapping[str, Any], key: str, what: str) -> Sequence[Any]:
    embedded = obj.get("_embedded")
    if embedded is None:
        return []
    items = _obj(embedded, f"{what} _embedded").get(key)
    if items is None:
        return []
    return _list(items, f"{what} _embedded.{key}")


# ---------------------------------------------------------------- OAuth


def parse_token_response(data: Any, now: datetime) -> TokenPair:
    """``POST /oauth2/access_token`` → the pair and its expiry (reference §1.3)."""
    obj = _obj(data, "token response")
    access = obj.get("access_token")
    refresh = obj.get("refresh_token")
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
        raise CrmBadResponse("Kommo token response: access_token and refresh_token are required")
    expires_in = _int(obj, "expires_in", "token response")
    if expires_in <= 0:
        raise CrmBadResponse(f"Kommo token response: expires_in must be positive, got {expires_in}")
    return TokenPair(access_token=access, refresh_token=refresh, expires_at=now + timedelta(seconds=expires_in))


# ---------------------------------------------------------------- account and users


@dataclass(frozen=True)
class KommoAccount:
    id: int
    name: str
    subdomain: str
    current_user_id: int | None


def parse_account(data: Any) -> KommoAccount:
    obj = _obj(data, "account")
    return KommoAccount(
        id=_int(obj, "id", "account"),
        name=_str(obj, "name"),
        subdomain=_str(obj, "subdomain"),
        current_user_id=_opt_int(obj, "current_user_id", "account"),
    )


@dataclass(frozen=True)
class KommoUser:
    id: int
    name: str
    email: str
    lang: str
    is_admin: bool
    is_active: bool

    def to_crm_user(self) -> CrmUser:
        return CrmUser(
            crm_user_id=str(self.id),
            name=self.name or self.email or f"#{self.id}",
            email=self.email,
            is_active=self.is_active,
            is_admin=self.is_admin,
            lang=self.lang,
        )


def parse_user(data: Any) -> KommoUser:
    obj = _obj(data, "user")
    # is_admin and is_active live inside ``rights`` (reference §5.2).
    rights = _obj(obj.get("rights") or {}, "user rights")
    return KommoUser(
        id=_int(obj, "id", "user"),
        name=_str(obj, "name"),
        email=_str(obj, "email"),
        lang=_str(obj, "lang"),
        is_admin=_bool(rights, "is_admin"),
        is_active=_bool(rights, "is_active", True),
    )


@dataclass(frozen=True)
class UsersPage:
    users: tuple[KommoUser, ...]
    page: int
    page_count: int | None
    has_next: bool


def parse_users_page(data: Any) -> UsersPage:
    """One page of ``GET /api/v4/users``. ``None`` (Kommo's 204) is an empty page."""
    if data is None:
        return UsersPage((), 1, 0, False)
    obj = _obj(data, "users list")
    users = tuple(parse_user(u) for u in _embedded(obj, "users", "users list"))
    links = obj.get("_links")
    has_next = isinstance(links, Mapping) and isinstance(links.get("next"), Mapping)
    return UsersPage(
        users=users,
        page=_opt_int(obj, "_page", "users list") or 1,
        page_count=_opt_int(obj, "_page_count", "users list"),
        has_next=has_next,
    )


# ---------------------------------------------------------------- pipelines


@dataclass(frozen=True)
class KommoStatus:
    id: int
    name: str
    sort: int
    type: int

    @property
    def kind(self) -> str:
        if self.id == STATUS_WON:
            return STAGE_WON
        if self.id == STATUS_LOST:
            return STAGE_LOST
        if self.type == STATUS_TYPE_INCOMING:
            return STAGE_INCOMING
        return STAGE_OPEN


@dataclass(frozen=True)
class KommoPipeline:
    id: int
    name: str
    sort: int
    is_main: bool
    is_archive: bool
    statuses: tuple[KommoStatus, ...]

    def to_crm_pipeline(self) -> CrmPipeline:
        return CrmPipeline(
            entity=ENTITY_LEAD,
            crm_pipeline_id=str(self.id),
            name=self.name,
            sort=self.sort,
            is_main=self.is_main,
            stages=tuple(CrmStage(str(s.id), s.name, s.sort, s.kind) for s in self.statuses),
        )


def parse_pipelines(data: Any) -> tuple[KommoPipeline, ...]:
    if data is None:
        return ()
    obj = _obj(data, "pipelines")
    result = []
    for raw in _embedded(obj, "pipelines", "pipelines"):
        p = _obj(raw, "pipeline")
        statuses = []
        for raw_status in _embedded(p, "statuses", "pipeline"):
            s = _obj(raw_status, "status")
            statuses.append(
                KommoStatus(
                    id=_int(s, "id", "status"),
                    name=_str(s, "name"),
                    sort=_opt_int(s, "sort", "status") or 0,
                    type=_opt_int(s, "type", "status") or 0,
                )
            )
        result.append(
            KommoPipeline(
                id=_int(p, "id", "pipeline"),
                name=_str(p, "name"),
                sort=_opt_int(p, "sort", "pipeline") or 0,
                is_main=_bool(p, "is_main"),
                is_archive=_bool(p, "is_archive"),
                statuses=tuple(sorted(statuses, key=lambda st: (st.sort, st.id))),
            )
        )
    return tuple(result)


# ---------------------------------------------------------------- contacts and leads


@dataclass(frozen=True)
class KommoContact:
    id: int
    name: str
    responsible_user_id: int | None
    phones: tuple[str, ...]
    lead_ids: tuple[int, ...]
    ims: tuple[str, ...] = ()  # values of the IM field (``widget.domain.messenger_ids``)
    created_at: int = 0  # unix seconds, Kommo's clock


def _field_values(obj: Mapping[str, Any], code: str) -> tuple[str, ...]:
    fields = obj.get("custom_fields_values")
    if not isinstance(fields, list):
        return ()
    values: list[str] = []
    for f in fields:
        if isinstance(f, Mapping) and f.get("field_code") == code and isinstance(f.get("values"), list):
            values.extend(str(v.get("value")) for v in f["values"] if isinstance(v, Mapping) and v.get("value"))
    return tuple(values)


def parse_contact(data: Any) -> KommoContact:
    obj = _obj(data, "contact")
    leads = tuple(_int(_obj(ld, "contact lead"), "id", "contact lead") for ld in _embedded(obj, "leads", "contact"))
    return KommoContact(
        id=_int(obj, "id", "contact"),
        name=_str(obj, "name"),
        responsible_user_id=_opt_int(obj, "responsible_user_id", "contact"),
        phones=_field_values(obj, "PHONE"),
        lead_ids=leads,
        ims=_field_values(obj, "IM"),
        created_at=_opt_int(obj, "created_at", "contact") or 0,
    )


def parse_contacts(data: Any) -> tuple[KommoContact, ...]:
    """A contacts list or search. ``None`` is Kommo's 204 "nothing found" (reference §5.4)."""
    if data is None:
        return ()
    obj = _obj(data, "contacts list")
    return tuple(parse_contact(c) for c in _embedded(obj, "contacts", "contacts list"))


@dataclass(frozen=True)
class KommoLead:
    id: int
    name: str
    status_id: int
    pipeline_id: int
    responsible_user_id: int | None
    contact_ids: tuple[int, ...]  # with=contacts; the main contact first
    created_at: int = 0  # unix seconds, Kommo's clock

    @property
    def is_closed(self) -> bool:
        return self.status_id in (STATUS_WON, STATUS_LOST)


def parse_lead(data: Any) -> KommoLead:
    obj = _obj(data, "lead")
    contacts = [_obj(c, "lead contact") for c in _embedded(obj, "contacts", "lead")]
    contacts.sort(key=lambda c: not _bool(c, "is_main"))
    return KommoLead(
        id=_int(obj, "id", "lead"),
        name=_str(obj, "name"),
        status_id=_opt_int(obj, "status_id", "lead") or 0,
        pipeline_id=_opt_int(obj, "pipeline_id", "lead") or 0,
        responsible_user_id=_opt_int(obj, "responsible_user_id", "lead"),
        contact_ids=tuple(_int(c, "id", "lead contact") for c in contacts),
        created_at=_opt_int(obj, "created_at", "lead") or 0,
    )


def parse_leads(data: Any) -> tuple[KommoLead, ...]:
    """A leads list or search. ``None`` is Kommo's 204 "nothing found"."""
    if data is None:
        return ()
    return tuple(parse_lead(x) for x in _embedded(_obj(data, "leads list"), "leads", "leads list"))


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
        items: Sequence[Any] = _embedded(data, "leads", "complex leads")
    else:
        items = _list(data, "complex leads")
    out = []
    for raw in items:
        obj = _obj(raw, "complex lead")
        req = obj.get("request_id")
        request_ids = tuple(str(r) for r in req) if isinstance(req, list) else ((str(req),) if req else ())
        out.append(
            ComplexLeadResult(
                id=_int(obj, "id", "complex lead"),
                contact_id=_opt_int(obj, "contact_id", "complex lead"),
                request_ids=request_ids,
                merged=_bool(obj, "merged"),
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
            _int(_obj(x, "unsorted lead"), "id", "unsorted lead") for x in _embedded(obj, "leads", "unsorted")
        ),
        contact_ids=tuple(
            _int(_obj(x, "unsorted contact"), "id", "unsorted contact") for x in _embedded(obj, "contacts", "unsorted")
        ),
    )


def parse_unsorted_created(data: Any) -> tuple[UnsortedResult, ...]:
    obj = _obj(data, "unsorted create")
    return tuple(_unsorted(_obj(x, "unsorted item")) for x in _embedded(obj, "unsorted", "unsorted create"))


def parse_unsorted_accepted(data: Any) -> UnsortedResult:
    return _unsorted(_obj(data, "unsorted accept"))


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
    obj = _obj(data, "unsorted list")
    items = []
    for raw in _embedded(obj, "unsorted", "unsorted list"):
        item = _obj(raw, "unsorted item")
        base = _unsorted(item)
        items.append(
            UnsortedItem(
                uid=base.uid,
                source_uid=_str(item, "source_uid"),
                pipeline_id=_opt_int(item, "pipeline_id", "unsorted item"),
                lead_ids=base.lead_ids,
                contact_ids=base.contact_ids,
            )
        )
    links = obj.get("_links")
    return UnsortedPage(tuple(items), isinstance(links, Mapping) and isinstance(links.get("next"), Mapping))


@dataclass(frozen=True)
class WebhookSubscription:
    id: int | None
    destination: str
    settings: tuple[str, ...]


def parse_webhook(data: Any) -> WebhookSubscription:
    obj = _obj(data, "webhook")
    raw_settings = obj.get("settings")
    return WebhookSubscription(
        id=_opt_int(obj, "id", "webhook"),
        destination=_str(obj, "destination"),
        settings=tuple(str(s) for s in raw_settings) if isinstance(raw_settings, list) else (),
    )
