"""One sandbox portal: its users, CRM directories and records, and the app's installation on it."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

MODE_CLASSIC = 1  # crm.settings.mode.get (reference §6.4)
MODE_SIMPLE = 2


@dataclass
class User:
    id: int
    name: str
    last_name: str
    email: str
    active: bool = True
    admin: bool = False
    lang: str = "en"
    position: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.name} {self.last_name}".strip()

    def as_rest(self) -> dict[str, Any]:
        # Legacy user.get: string ids, ACTIVE as a boolean (reference §6.2).
        return {
            "ID": str(self.id),
            "XML_ID": "",
            "ACTIVE": self.active,
            "NAME": self.name,
            "LAST_NAME": self.last_name,
            "SECOND_NAME": "",
            "EMAIL": self.email,
            "LAST_LOGIN": "2026-11-20T09:12:00+00:00",
            "DATE_REGISTER": "2025-02-01T00:00:00+00:00",
            "IS_ONLINE": "N",
            "TIME_ZONE": "",
            "PERSONAL_GENDER": "",
            "WORK_POSITION": self.position,
            "UF_DEPARTMENT": [1],
            "USER_TYPE": "employee",
        }


@dataclass
class Category:
    id: int
    name: str
    sort: int

    def as_rest(self) -> dict[str, Any]:
        # crm.category.* speaks camelCase with integer ids (reference §6.3).
        return {
            "id": self.id,
            "name": self.name,
            "sort": self.sort,
            "entityTypeId": 2,
            "isDefault": "Y" if self.id == 0 else "N",
            "originId": "",
            "originatorId": "",
        }


@dataclass
class Status:
    row_id: int
    entity_id: str  # DEAL_STAGE, DEAL_STAGE_<cat>, STATUS
    status_id: str  # NEW, C1:NEW…
    name: str
    sort: int
    semantics: str | None = None  # "S" success, "F" failure
    color: str = "#39A8EF"

    @property
    def category_id(self) -> str | None:
        if self.entity_id.startswith("DEAL_STAGE_"):
            return self.entity_id.rsplit("_", 1)[1]
        return "0" if self.entity_id == "DEAL_STAGE" else None

    def as_rest(self) -> dict[str, Any]:
        process = {"S": "success", "F": "failure"}.get(self.semantics or "", "process")
        return {
            "ID": str(self.row_id),
            "ENTITY_ID": self.entity_id,
            "STATUS_ID": self.status_id,
            "NAME": self.name,
            "NAME_INIT": self.name,
            "SORT": str(self.sort),
            "SYSTEM": "Y" if self.status_id.split(":")[-1] in ("NEW", "WON", "LOSE") else "N",
            "CATEGORY_ID": self.category_id,
            "COLOR": self.color,
            "SEMANTICS": self.semantics,
            "EXTRA": {"SEMANTICS": process, "COLOR": self.color},
        }


@dataclass
class Binding:
    id: int
    kind: str  # "placement" or "event"
    code: str  # LEFT_MENU / ONCRMDEALUPDATE
    handler: str
    title: str = ""
    lang_all: dict[str, Any] = field(default_factory=dict)
    auth_type: int = 0


@dataclass
class Installation:
    """The app on this portal. ``installed`` turns true at ``installFinish`` (reference §1.2)."""

    application_token: str
    installed: bool = False
    installed_by: int | None = None
    version: int = 1
    status: str = "L"
    bindings: list[Binding] = field(default_factory=list)

    def placements(self, code: str | None = None) -> list[Binding]:
        return [b for b in self.bindings if b.kind == "placement" and (code is None or b.code == code)]

    def events(self, code: str | None = None) -> list[Binding]:
        return [b for b in self.bindings if b.kind == "event" and (code is None or b.code == code)]


@dataclass
class Portal:
    member_id: str
    domain: str  # host:port, the Host header it answers to
    name: str
    users: dict[int, User] = field(default_factory=dict)
    categories: dict[int, Category] = field(default_factory=dict)
    statuses: list[Status] = field(default_factory=list)
    records: dict[str, dict[int, dict[str, Any]]] = field(
        default_factory=lambda: {"contact": {}, "deal": {}, "lead": {}}
    )
    next_id: dict[str, int] = field(default_factory=lambda: {"contact": 1, "deal": 1, "lead": 1, "status": 1})
    crm_mode: int = MODE_CLASSIC
    installation: Installation | None = None
    old_domains: list[str] = field(default_factory=list)
    protocol: int = 0  # the sandbox speaks plain HTTP on loopback
    license: str = "en_project"

    @property
    def origin(self) -> str:
        return f"{'https' if self.protocol else 'http'}://{self.domain}"

    @property
    def client_endpoint(self) -> str:
        return f"{self.origin}/rest/"

    def stages(self, entity_id: str) -> list[Status]:
        return sorted((s for s in self.statuses if s.entity_id == entity_id), key=lambda s: (s.sort, s.row_id))

    def add_status(self, entity_id: str, status_id: str, name: str, sort: int, semantics: str | None = None) -> None:
        row = self.next_id["status"]
        self.next_id["status"] += 1
        self.statuses.append(Status(row, entity_id, status_id, name, sort, semantics))

    def add_category(self, cat_id: int, name: str, sort: int, stages: list[tuple[str, str, str | None]]) -> None:
        self.categories[cat_id] = Category(cat_id, name, sort)
        entity = "DEAL_STAGE" if cat_id == 0 else f"DEAL_STAGE_{cat_id}"
        prefix = "" if cat_id == 0 else f"C{cat_id}:"
        for i, (code, label, semantics) in enumerate(stages):
            self.add_status(entity, prefix + code, label, (i + 1) * 10, semantics)

    def new_record(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        rid = self.next_id[kind]
        self.next_id[kind] += 1
        record = dict(fields)
        record["ID"] = str(rid)
        self.records[kind][rid] = record
        return record

    def find_by_phone(self, digits: str, kinds: tuple[str, ...]) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for kind in kinds:
            for rid, rec in sorted(self.records.get(kind, {}).items()):
                for phone in rec.get("PHONE") or []:
                    if phone_digits(str(phone.get("VALUE") or "")) == digits:
                        found.setdefault(kind.upper(), []).append(rid)
                        break
        return found


def phone_digits(value: str) -> str:
    """The sandbox matches phones on digits only (the real rules are undocumented, Uncertain #9)."""
    digits = re.sub(r"\D", "", value.split(";")[0])
    return digits


def new_member_id() -> str:
    return secrets.token_hex(16)
