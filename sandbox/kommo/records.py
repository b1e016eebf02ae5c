"""What one sandbox account holds. Plain data; the sandbox's lock guards every change."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

# Kommo's closed stages carry the same ids in every pipeline (reference §5.3).
WON_STATUS_ID = 142
LOST_STATUS_ID = 143

# Each entity kind draws ids from its own range, so an id read in a log says what it is.
ID_STARTS = {
    "account": 30_000_001,
    "user": 10_000_001,
    "pipeline": 7_000_001,
    "status": 60_000_001,
    "contact": 20_000_001,
    "lead": 40_000_001,
    "company": 50_000_001,
    "field": 900_001,
    "enum": 800_001,
    "webhook": 1,
}


class Ids:
    """Id sequences shared by all accounts, as in Kommo where ids are global."""

    def __init__(self) -> None:
        self._seqs = {kind: itertools.count(start) for kind, start in ID_STARTS.items()}

    def next(self, kind: str) -> int:
        return next(self._seqs[kind])


@dataclass
class User:
    id: int
    name: str
    email: str
    lang: str = "en"
    is_admin: bool = False
    is_active: bool = True
    is_free: bool = False
    group_id: int = 0
    role_id: int | None = None
    uuid: str = ""
    amojo_id: str = ""


@dataclass
class Status:
    id: int
    name: str
    sort: int
    type: int = 0  # 1 = incoming leads (unsorted); 0 = regular and closed stages
    is_editable: bool = True
    color: str = "#99ccff"


@dataclass
class Pipeline:
    id: int
    name: str
    sort: int
    is_main: bool = False
    is_unsorted_on: bool = True
    is_archive: bool = False
    statuses: list[Status] = field(default_factory=list)

    def status(self, status_id: int) -> Status | None:
        return next((s for s in self.statuses if s.id == status_id), None)

    @property
    def incoming(self) -> Status | None:
        return next((s for s in self.statuses if s.type == 1), None)

    @property
    def first_stage(self) -> Status:
        """Where a lead lands when only the pipeline is given: the first regular stage."""
        regular = [s for s in self.statuses if s.type == 0 and s.id not in (WON_STATUS_ID, LOST_STATUS_ID)]
        return min(regular or self.statuses, key=lambda s: s.sort)


@dataclass
class CustomField:
    id: int
    code: str
    name: str
    type: str
    enums: dict[str, int]  # enum code -> enum id
    sort: int = 0


@dataclass
class Contact:
    id: int
    name: str
    first_name: str
    last_name: str
    responsible_user_id: int
    created_by: int
    updated_by: int
    created_at: int
    updated_at: int
    custom_fields: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    company_id: int | None = None
    is_unsorted: bool = False  # hidden from lists until its incoming lead is accepted
    is_deleted: bool = False


@dataclass
class Company:
    id: int
    name: str
    responsible_user_id: int
    created_by: int
    created_at: int
    updated_at: int
    is_unsorted: bool = False


@dataclass
class Lead:
    id: int
    name: str
    price: int
    responsible_user_id: int
    status_id: int
    pipeline_id: int
    created_by: int
    updated_by: int
    created_at: int
    updated_at: int
    closed_at: int | None = None
    custom_fields: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)  # the first one is the main contact
    company_id: int | None = None
    is_deleted: bool = False
    loss_reason_id: int | None = None


@dataclass
class Unsorted:
    uid: str
    category: str
    source_uid: str
    source_name: str
    pipeline_id: int
    created_at: int
    metadata: dict[str, Any]
    lead_id: int
    contact_ids: list[int]
    company_ids: list[int]
    request_id: str = "0"
    state: str = "new"  # new | accepted | declined


@dataclass
class Webhook:
    id: int
    destination: str
    settings: list[str]
    created_at: int
    updated_at: int
    created_by: int
    sort: int = 0
    disabled: bool = False


@dataclass
class Account:
    id: int
    subdomain: str
    name: str
    created_at: int
    amojo_id: str
    country: str = "US"
    currency: str = "USD"
    currency_symbol: str = "$"
    widget_installed: bool = False
    users: dict[int, User] = field(default_factory=dict)
    pipelines: dict[int, Pipeline] = field(default_factory=dict)
    contact_fields: dict[str, CustomField] = field(default_factory=dict)  # by field code
    contacts: dict[int, Contact] = field(default_factory=dict)
    companies: dict[int, Company] = field(default_factory=dict)
    leads: dict[int, Lead] = field(default_factory=dict)
    unsorted: dict[str, Unsorted] = field(default_factory=dict)
    webhooks: dict[str, Webhook] = field(default_factory=dict)  # by destination

    @property
    def host(self) -> str:
        return f"{self.subdomain}.kommo.test"

    @property
    def main_pipeline(self) -> Pipeline:
        live = [p for p in self.pipelines.values() if not p.is_archive]
        return next((p for p in live if p.is_main), None) or min(live, key=lambda p: p.sort)

    def owner(self) -> User:
        """The admin who installs by default: the first active admin."""
        admins = [u for u in self.users.values() if u.is_admin and u.is_active]
        return admins[0] if admins else next(iter(self.users.values()))

    def find_status(self, status_id: int) -> Pipeline | None:
        return next((p for p in self.pipelines.values() if p.status(status_id)), None)
