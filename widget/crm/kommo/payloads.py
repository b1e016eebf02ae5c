"""Typed views of the Kommo JSON we read, built at the edge: tokens, the account, users,
pipelines, contacts, leads, webhooks (creating leads is ``creates``).

Every parser takes untrusted JSON and either returns a frozen object or raises ``CrmBadResponse``
naming what was wrong, so nothing deeper down meets a ``KeyError`` (reference §5). The typed
accessors (``as_object``, ``int_field``…) are shared with ``creates``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


def as_object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CrmBadResponse(f"Kommo {what}: expected an object, got {type(value).__name__}")
    return value


def as_array(value: Any, what: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise CrmBadResponse(f"Kommo {what}: expected an array, got {type(value).__name__}")
    return value


def int_field(obj: Mapping[str, Any], key: str, what: str) -> int:
    value = obj.get(key)
    # bool is an int in Python; Kommo never sends a bool where it means an id.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise CrmBadResponse(f"Kommo {what}: {key!r} must be an integer, got {value!r}")
    return value


def opt_int_field(obj: Mapping[str, Any], key: str, what: str) -> int | None:
    if obj.get(key) is None:
        return None
    return int_field(obj, key, what)


def str_field(obj: Mapping[str, Any], key: str, default: str = "") -> str:
    value = obj.get(key)
    if value is None:
        return default
    return str(value)


def bool_field(obj: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    return bool(value)


def embedded_items(obj: Mapping[str, Any], key: str, what: str) -> Sequence[Any]:
    embedded = obj.get("_embedded")
    if embedded is None:
        return []
    items = as_object(embedded, f"{what} _embedded").get(key)
    if items is None:
        return []
    return as_array(items, f"{what} _embedded.{key}")


# ---------------------------------------------------------------- OAuth


def parse_token_response(data: Any, now: datetime) -> TokenPair:
    """``POST /oauth2/access_token`` → the pair and its expiry (reference §1.3)."""
    obj = as_object(data, "token response")
    access = obj.get("access_token")
    refresh = obj.get("refresh_token")
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
        raise CrmBadResponse("Kommo token response: access_token and refresh_token are required")
    expires_in = int_field(obj, "expires_in", "token response")
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
    obj = as_object(data, "account")
    return KommoAccount(
        id=int_field(obj, "id", "account"),
        name=str_field(obj, "name"),
        subdomain=str_field(obj, "subdomain"),
        current_user_id=opt_int_field(obj, "current_user_id", "account"),
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
    obj = as_object(data, "user")
    # is_admin and is_active live inside ``rights`` (reference §5.2).
    rights = as_object(obj.get("rights") or {}, "user rights")
    return KommoUser(
        id=int_field(obj, "id", "user"),
        name=str_field(obj, "name"),
        email=str_field(obj, "email"),
        lang=str_field(obj, "lang"),
        is_admin=bool_field(rights, "is_admin"),
        is_active=bool_field(rights, "is_active", True),
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
    obj = as_object(data, "users list")
    users = tuple(parse_user(u) for u in embedded_items(obj, "users", "users list"))
    links = obj.get("_links")
    has_next = isinstance(links, Mapping) and isinstance(links.get("next"), Mapping)
    return UsersPage(
        users=users,
        page=opt_int_field(obj, "_page", "users list") or 1,
        page_count=opt_int_field(obj, "_page_count", "users list"),
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
    obj = as_object(data, "pipelines")
    result = []
    for raw in embedded_items(obj, "pipelines", "pipelines"):
        p = as_object(raw, "pipeline")
        statuses = []
        for raw_status in embedded_items(p, "statuses", "pipeline"):
            s = as_object(raw_status, "status")
            statuses.append(
                KommoStatus(
                    id=int_field(s, "id", "status"),
                    name=str_field(s, "name"),
                    sort=opt_int_field(s, "sort", "status") or 0,
                    type=opt_int_field(s, "type", "status") or 0,
                )
            )
        result.append(
            KommoPipeline(
                id=int_field(p, "id", "pipeline"),
                name=str_field(p, "name"),
                sort=opt_int_field(p, "sort", "pipeline") or 0,
                is_main=bool_field(p, "is_main"),
                is_archive=bool_field(p, "is_archive"),
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
    obj = as_object(data, "contact")
    leads = tuple(
        int_field(as_object(ld, "contact lead"), "id", "contact lead") for ld in embedded_items(obj, "leads", "contact")
    )
    return KommoContact(
        id=int_field(obj, "id", "contact"),
        name=str_field(obj, "name"),
        responsible_user_id=opt_int_field(obj, "responsible_user_id", "contact"),
        phones=_field_values(obj, "PHONE"),
        lead_ids=leads,
        ims=_field_values(obj, "IM"),
        created_at=opt_int_field(obj, "created_at", "contact") or 0,
    )


def parse_contacts(data: Any) -> tuple[KommoContact, ...]:
    """A contacts list or search. ``None`` is Kommo's 204 "nothing found" (reference §5.4)."""
    if data is None:
        return ()
    obj = as_object(data, "contacts list")
    return tuple(parse_contact(c) for c in embedded_items(obj, "contacts", "contacts list"))


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
    obj = as_object(data, "lead")
    contacts = [as_object(c, "lead contact") for c in embedded_items(obj, "contacts", "lead")]
    contacts.sort(key=lambda c: not bool_field(c, "is_main"))
    return KommoLead(
        id=int_field(obj, "id", "lead"),
        name=str_field(obj, "name"),
        status_id=opt_int_field(obj, "status_id", "lead") or 0,
        pipeline_id=opt_int_field(obj, "pipeline_id", "lead") or 0,
        responsible_user_id=opt_int_field(obj, "responsible_user_id", "lead"),
        contact_ids=tuple(int_field(c, "id", "lead contact") for c in contacts),
        created_at=opt_int_field(obj, "created_at", "lead") or 0,
    )


def parse_leads(data: Any) -> tuple[KommoLead, ...]:
    """A leads list or search. ``None`` is Kommo's 204 "nothing found"."""
    if data is None:
        return ()
    return tuple(parse_lead(x) for x in embedded_items(as_object(data, "leads list"), "leads", "leads list"))


@dataclass(frozen=True)
class WebhookSubscription:
    id: int | None
    destination: str
    settings: tuple[str, ...]


def parse_webhook(data: Any) -> WebhookSubscription:
    obj = as_object(data, "webhook")
    raw_settings = obj.get("settings")
    return WebhookSubscription(
        id=opt_int_field(obj, "id", "webhook"),
        destination=str_field(obj, "destination"),
        settings=tuple(str(s) for s in raw_settings) if isinstance(raw_settings, list) else (),
    )
