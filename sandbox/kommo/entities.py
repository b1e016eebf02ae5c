"""Contacts, companies and leads: creation, updates and search with Kommo's validation shape.

Every function takes the account explicitly and is called with the sandbox lock held. Validation
problems are collected per item (``request_id``) and raised together, as Kommo answers a batch
(reference §5.4, §5.5, §5.8).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.kommo.errors import ApiError, Invalid, not_supported, wrong_type
from sandbox.kommo.records import (
    LOST_STATUS_ID,
    WON_STATUS_ID,
    Account,
    Company,
    Contact,
    Ids,
    Lead,
    Pipeline,
)

MAX_BATCH = 250  # Kommo accepts at most 250 entities per request (reference §6)


def batch(payload: Any, *, limit: int = MAX_BATCH) -> list[dict[str, Any]]:
    """The JSON array a batch endpoint expects, or Kommo's refusal."""
    if payload in (None, [], {}):
        raise ApiError(400, "Request data can not be empty")
    if not isinstance(payload, list) or not all(isinstance(i, dict) for i in payload):
        raise ApiError(400, "Request validation failed", validation=[_type_error("0", "", "array")])
    if len(payload) > limit:
        raise ApiError(422, f"Limit {limit} per page")
    return payload


def request_id(item: dict[str, Any], index: int) -> str:
    # Kommo echoes request_id, or the item's index when it is missing (reference §5.4).
    rid = item.get("request_id")
    return str(rid) if rid not in (None, "") else str(index)


def _type_error(rid: str, path: str, kind: str) -> dict[str, Any]:
    return {"request_id": rid, "errors": [{"code": "InvalidType", "path": path, "detail": f"Expected {kind}."}]}


def int_field(item: dict[str, Any], key: str, invalid: Invalid, rid: str, path: str | None = None) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        wrong_type(invalid, rid, path or key)
        return None
    return value


def user_field(acct: Account, item: dict[str, Any], key: str, invalid: Invalid, rid: str) -> int | None:
    value = int_field(item, key, invalid, rid)
    if value is not None and value not in acct.users and value != 0:
        not_supported(invalid, rid, key)
        return None
    return value


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


# --- custom fields ---------------------------------------------------------------------------------


def parse_contact_fields(acct: Account, raw: Any, invalid: Invalid, rid: str) -> list[dict[str, Any]]:
    """Turn ``custom_fields_values`` into what a GET shows: field ids, names and enum codes filled in."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        wrong_type(invalid, rid, "custom_fields_values")
        return []
    by_id = {f.id: f for f in acct.contact_fields.values()}
    result = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            wrong_type(invalid, rid, f"custom_fields_values.{i}")
            continue
        field = None
        if entry.get("field_id") is not None:
            field = by_id.get(entry["field_id"])
            if field is None:
                not_supported(invalid, rid, f"custom_fields_values.{i}.field_id")
                continue
        elif entry.get("field_code") is not None:
            field = acct.contact_fields.get(str(entry["field_code"]).upper())
            if field is None:
                not_supported(invalid, rid, f"custom_fields_values.{i}.field_code")
                continue
        else:
            invalid.add(rid, "NotBlank", f"custom_fields_values.{i}.field_id", "This value should not be blank.")
            continue
        values = []
        for j, value in enumerate(entry.get("values") or []):
            if not isinstance(value, dict) or not isinstance(value.get("value"), str | int):
                wrong_type(invalid, rid, f"custom_fields_values.{i}.values.{j}.value")
                continue
            # Clients send enum_code (newer) or enum (older); accept both and answer with both ids.
            code = value.get("enum_code") or value.get("enum")
            if code is None and value.get("enum_id") is not None:
                code = next((c for c, eid in field.enums.items() if eid == value["enum_id"]), None)
                if code is None:
                    not_supported(invalid, rid, f"custom_fields_values.{i}.values.{j}.enum_id")
                    continue
            code = str(code or "WORK").upper()
            if code not in field.enums:
                not_supported(invalid, rid, f"custom_fields_values.{i}.values.{j}.enum_code")
                continue
            values.append({"value": str(value["value"]), "enum_id": field.enums[code], "enum_code": code})
        result.append(
            {
                "field_id": field.id,
                "field_name": field.name,
                "field_code": field.code,
                "field_type": field.type,
                "values": values,
            }
        )
    return result


def merge_fields(current: list[dict[str, Any]], changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A PATCH replaces the values of the fields it names and keeps the others."""
    changed = {c["field_id"]: c for c in changes}
    merged = [changed.pop(f["field_id"], f) for f in current]
    merged.extend(changed.values())
    return [f for f in merged if f["values"]]


def reject_lead_fields(raw: Any, invalid: Invalid, rid: str) -> None:
    # The sandbox's lead form has no custom fields, so any field id is an unknown choice.
    for i, _entry in enumerate(raw or []):
        not_supported(invalid, rid, f"custom_fields_values.{i}.field_id")


def tag_names(item: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for source in ((item.get("_embedded") or {}).get("tags"), item.get("tags_to_add")):
        for tag in source or []:
            if isinstance(tag, dict) and tag.get("name"):
                names.append(str(tag["name"]))
    return names


# --- contacts --------------------------------------------------------------------------------------


def new_contact(
    acct: Account, ids: Ids, now: int, actor: int, item: dict[str, Any], invalid: Invalid, rid: str
) -> Callable[[], Contact]:
    first = str(item.get("first_name") or "")
    last = str(item.get("last_name") or "")
    name = str(item.get("name") or " ".join(p for p in (first, last) if p))
    responsible = user_field(acct, item, "responsible_user_id", invalid, rid)
    created_by = user_field(acct, item, "created_by", invalid, rid)
    fields = parse_contact_fields(acct, item.get("custom_fields_values"), invalid, rid)
    created_at = int_field(item, "created_at", invalid, rid)
    return lambda: Contact(
        id=ids.next("contact"),
        name=name,
        first_name=first,
        last_name=last,
        responsible_user_id=responsible or actor,
        created_by=actor if created_by is None else created_by,
        updated_by=actor if created_by is None else created_by,
        created_at=created_at or now,
        updated_at=now,
        custom_fields=[f for f in fields if f["values"]],
        tags=tag_names(item),
    )


def create_contacts(acct: Account, ids: Ids, now: int, actor: int, items: list[dict[str, Any]]) -> list[Contact]:
    invalid = Invalid()
    builders = [new_contact(acct, ids, now, actor, item, invalid, request_id(item, i)) for i, item in enumerate(items)]
    invalid.raise_if_any()
    contacts = [build() for build in builders]
    for contact in contacts:
        acct.contacts[contact.id] = contact
    return contacts


def update_contacts(acct: Account, now: int, actor: int, items: list[dict[str, Any]]) -> list[Contact]:
    invalid = Invalid()
    plans = []
    for i, item in enumerate(items):
        rid = request_id(item, i)
        cid = item.get("id")
        contact = acct.contacts.get(cid) if isinstance(cid, int) else None
        if contact is None or contact.is_deleted:
            not_supported(invalid, rid, "id")
            continue
        responsible = user_field(acct, item, "responsible_user_id", invalid, rid)
        fields = parse_contact_fields(acct, item.get("custom_fields_values"), invalid, rid)
        plans.append((contact, item, responsible, fields))
    invalid.raise_if_any()
    for contact, item, responsible, fields in plans:
        if responsible:
            contact.responsible_user_id = responsible
        for key in ("name", "first_name", "last_name"):
            if item.get(key) is not None:
                setattr(contact, key, str(item[key]))
        if "custom_fields_values" in item:
            contact.custom_fields = merge_fields(contact.custom_fields, fields)
        contact.tags.extend(t for t in tag_names(item) if t not in contact.tags)
        contact.updated_at = now
        contact.updated_by = actor
    return [plan[0] for plan in plans]


def visible_contacts(acct: Account) -> list[Contact]:
    # Contacts of an unaccepted incoming lead do not appear in lists (reference §5.7).
    return [c for c in acct.contacts.values() if not c.is_deleted and not c.is_unsorted]


def search_contacts(acct: Account, query: str | None, ids: list[int] | None = None) -> list[Contact]:
    """Kommo's ``query`` is a full-text search over filled fields; how it normalises phones is not
    documented. Our reading: a case-insensitive substring of any name or field value, and for a
    phone-looking query its digits found inside a phone's digits ("+1 (555) 010-2000" finds
    "+15550102000")."""
    found = visible_contacts(acct)
    if ids:
        found = [c for c in found if c.id in ids]
    if not query:
        return found
    needle = query.strip().casefold()
    phone_like = re.fullmatch(r"[\d\s+()\-.]+", query.strip()) is not None and len(digits(query)) >= 3
    result = []
    for contact in found:
        texts = [contact.name, contact.first_name, contact.last_name]
        phones = []
        for f in contact.custom_fields:
            for v in f["values"]:
                texts.append(v["value"])
                if f["field_code"] == "PHONE":
                    phones.append(digits(v["value"]))
        if any(needle in t.casefold() for t in texts if t) or (phone_like and any(digits(query) in p for p in phones)):
            result.append(contact)
    return result


def leads_of_contact(acct: Account, contact_id: int) -> list[Lead]:
    return [lead for lead in acct.leads.values() if contact_id in lead.contact_ids and not lead.is_deleted]


# --- leads -----------------------------------------------------------------------------------------


def resolve_stage(
    acct: Account,
    item: dict[str, Any],
    invalid: Invalid,
    rid: str,
    *,
    default: Pipeline | None = None,
    allow_incoming: bool = False,
) -> tuple[int, int] | None:
    """(pipeline_id, status_id) for a new or moved lead; 142/143 need the pipeline alongside."""
    pipeline_id = int_field(item, "pipeline_id", invalid, rid)
    status_id = int_field(item, "status_id", invalid, rid)
    pipeline = None
    if pipeline_id is not None:
        pipeline = acct.pipelines.get(pipeline_id)
        if pipeline is None or pipeline.is_archive:
            not_supported(invalid, rid, "pipeline_id")
            return None
    if status_id is None:
        target = pipeline or default or acct.main_pipeline
        return target.id, target.first_stage.id
    if status_id in (WON_STATUS_ID, LOST_STATUS_ID):
        return (pipeline or default or acct.main_pipeline).id, status_id
    owner = pipeline if pipeline is not None else acct.find_status(status_id)
    status = owner.status(status_id) if owner else None
    # Incoming leads are made through Unsorted or complex with metadata, not by plain POST.
    if owner is None or status is None or (status.type == 1 and not allow_incoming):
        not_supported(invalid, rid, "status_id")
        return None
    return owner.id, status_id


def linked_contacts(acct: Account, item: dict[str, Any], invalid: Invalid, rid: str) -> list[int]:
    result: list[int] = []
    for i, ref in enumerate((item.get("_embedded") or {}).get("contacts") or []):
        cid = ref.get("id") if isinstance(ref, dict) else None
        if not isinstance(cid, int) or cid not in acct.contacts:
            not_supported(invalid, rid, f"_embedded.contacts.{i}.id")
            continue
        if ref.get("is_main"):
            result.insert(0, cid)
        else:
            result.append(cid)
    return result


def new_lead(
    acct: Account, ids: Ids, now: int, actor: int, item: dict[str, Any], invalid: Invalid, rid: str, **kw: Any
) -> Callable[[], Lead]:
    stage = resolve_stage(acct, item, invalid, rid, **kw)
    responsible = user_field(acct, item, "responsible_user_id", invalid, rid)
    created_by = user_field(acct, item, "created_by", invalid, rid)
    price = int_field(item, "price", invalid, rid) or 0
    created_at = int_field(item, "created_at", invalid, rid) or now
    reject_lead_fields(item.get("custom_fields_values"), invalid, rid)
    contacts = linked_contacts(acct, item, invalid, rid)
    companies = (item.get("_embedded") or {}).get("companies") or []
    company_id = companies[0].get("id") if companies and isinstance(companies[0], dict) else None
    if company_id is not None and company_id not in acct.companies:
        not_supported(invalid, rid, "_embedded.companies.0.id")

    def build() -> Lead:
        assert stage is not None
        lead_id = ids.next("lead")
        pipeline_id, status_id = stage
        return Lead(
            id=lead_id,
            name=str(item.get("name") or f"Lead #{lead_id}"),
            price=price,
            responsible_user_id=responsible or actor,
            status_id=status_id,
            pipeline_id=pipeline_id,
            created_by=actor if created_by is None else created_by,
            updated_by=actor if created_by is None else created_by,
            created_at=created_at,
            updated_at=now,
            closed_at=now if status_id in (WON_STATUS_ID, LOST_STATUS_ID) else None,
            tags=tag_names(item),
            contact_ids=contacts,
            company_id=company_id,
        )

    return build


def create_leads(acct: Account, ids: Ids, now: int, actor: int, items: list[dict[str, Any]]) -> list[Lead]:
    invalid = Invalid()
    builders = [new_lead(acct, ids, now, actor, item, invalid, request_id(item, i)) for i, item in enumerate(items)]
    invalid.raise_if_any()
    leads = [build() for build in builders]
    for lead in leads:
        acct.leads[lead.id] = lead
    return leads


def update_leads(acct: Account, now: int, actor: int, items: list[dict[str, Any]]) -> list[Lead]:
    invalid = Invalid()
    plans = []
    for i, item in enumerate(items):
        rid = request_id(item, i)
        lid = item.get("id")
        lead = acct.leads.get(lid) if isinstance(lid, int) else None
        if lead is None or lead.is_deleted:
            not_supported(invalid, rid, "id")
            continue
        responsible = user_field(acct, item, "responsible_user_id", invalid, rid)
        price = int_field(item, "price", invalid, rid)
        stage = None
        if "status_id" in item or "pipeline_id" in item:
            stage = resolve_stage(acct, item, invalid, rid, default=acct.pipelines.get(lead.pipeline_id))
        reject_lead_fields(item.get("custom_fields_values"), invalid, rid)
        plans.append((lead, item, responsible, price, stage))
    invalid.raise_if_any()
    for lead, item, responsible, price, stage in plans:
        if responsible:
            lead.responsible_user_id = responsible
        if price is not None:
            lead.price = price
        if item.get("name") is not None:
            lead.name = str(item["name"])
        if stage is not None:
            lead.pipeline_id, lead.status_id = stage
            lead.closed_at = now if lead.status_id in (WON_STATUS_ID, LOST_STATUS_ID) else None
        lead.tags.extend(t for t in tag_names(item) if t not in lead.tags)
        lead.updated_at = now
        lead.updated_by = actor
    return [plan[0] for plan in plans]


def visible_leads(acct: Account) -> list[Lead]:
    # Only contacts and companies of incoming leads are hidden; the lead itself is listed in its
    # pipeline's incoming stage.
    return [lead for lead in acct.leads.values() if not lead.is_deleted]


def new_company(acct: Account, ids: Ids, now: int, actor: int, item: dict[str, Any]) -> Company:
    responsible = item.get("responsible_user_id")
    company = Company(
        id=ids.next("company"),
        name=str(item.get("name") or ""),
        responsible_user_id=responsible if isinstance(responsible, int) and responsible in acct.users else actor,
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    acct.companies[company.id] = company
    return company
