"""Incoming leads (Unsorted) and the complex endpoint (reference §5.6, §5.7)."""

from __future__ import annotations

import uuid
from typing import Any

from sandbox.kommo.entities import (
    MAX_BATCH,
    batch,
    int_field,
    new_company,
    new_contact,
    new_lead,
    request_id,
)
from sandbox.kommo.errors import ApiError, Invalid, not_supported
from sandbox.kommo.records import LOST_STATUS_ID, WON_STATUS_ID, Account, Ids, Lead, Pipeline, Unsorted

COMPLEX_LIMIT = 50  # complex accepts at most 50 leads per request (reference §5.6)


def _incoming_pipeline(acct: Account, item: dict[str, Any], invalid: Invalid, rid: str) -> Pipeline | None:
    pipeline_id = int_field(item, "pipeline_id", invalid, rid)
    pipeline = acct.main_pipeline if pipeline_id is None else acct.pipelines.get(pipeline_id)
    if pipeline is None or pipeline.is_archive or pipeline.incoming is None or not pipeline.is_unsorted_on:
        not_supported(invalid, rid, "pipeline_id")
        return None
    return pipeline


def create_complex(acct: Account, ids: Ids, now: int, actor: int, payload: Any) -> list[dict[str, Any]]:
    """Lead + contact (+ company) per item; the answer is a bare JSON array, not HAL."""
    items = batch(payload, limit=COMPLEX_LIMIT)
    invalid = Invalid()
    plans = []
    for i, item in enumerate(items):
        rid = request_id(item, i)
        embedded = item.get("_embedded") or {}
        contacts = embedded.get("contacts") or []
        companies = embedded.get("companies") or []
        if len(contacts) > 1:
            not_supported(invalid, rid, "_embedded.contacts")
        if len(companies) > 1:
            not_supported(invalid, rid, "_embedded.companies")
        metadata = embedded.get("metadata")
        lead_item = {k: v for k, v in item.items() if k != "_embedded"}
        lead_item["_embedded"] = {"tags": embedded.get("tags") or []}
        if metadata is not None:
            pipeline = _incoming_pipeline(acct, item, invalid, rid)
            if pipeline is not None and pipeline.incoming is not None:
                lead_item["pipeline_id"] = pipeline.id
                lead_item["status_id"] = pipeline.incoming.id
        contact_build = contact_id = None
        if contacts:
            ref = contacts[0]
            if isinstance(ref, dict) and "id" in ref:
                if ref["id"] not in acct.contacts:
                    not_supported(invalid, rid, "_embedded.contacts.0.id")
                contact_id = ref["id"]
            elif isinstance(ref, dict):
                contact_build = new_contact(acct, ids, now, actor, ref, invalid, rid)
        company_ref = companies[0] if companies and isinstance(companies[0], dict) else None
        if company_ref and "id" in company_ref and company_ref["id"] not in acct.companies:
            not_supported(invalid, rid, "_embedded.companies.0.id")
        lead_build = new_lead(acct, ids, now, actor, lead_item, invalid, rid, allow_incoming=metadata is not None)
        plans.append((rid, metadata, contact_build, contact_id, company_ref, lead_build))
    invalid.raise_if_any()

    result = []
    for rid, metadata, contact_build, contact_id, company_ref, lead_build in plans:
        company_id = None
        if company_ref is not None:
            company_id = company_ref.get("id") or new_company(acct, ids, now, actor, company_ref).id
        if contact_build is not None:
            contact = contact_build()
            contact.company_id = company_id  # a new contact and company are linked to each other
            acct.contacts[contact.id] = contact
            contact_id = contact.id
        lead = lead_build()
        lead.contact_ids = [contact_id] if contact_id else []
        lead.company_id = company_id
        acct.leads[lead.id] = lead
        if metadata is not None:
            _hide_until_accepted(acct, lead)
            _record_unsorted(acct, now, lead, dict(metadata), rid, source_uid=str(metadata.get("source_uid") or ""))
        result.append(
            {"id": lead.id, "contact_id": contact_id, "company_id": company_id, "request_id": [rid], "merged": False}
        )
    return result


def _hide_until_accepted(acct: Account, lead: Lead) -> None:
    for cid in lead.contact_ids:
        acct.contacts[cid].is_unsorted = True
    if lead.company_id is not None:
        acct.companies[lead.company_id].is_unsorted = True


def _record_unsorted(
    acct: Account,
    now: int,
    lead: Lead,
    metadata: dict[str, Any],
    rid: str,
    *,
    source_uid: str,
    source_name: str = "",
    category: str | None = None,
) -> Unsorted:
    record = Unsorted(
        uid=uuid.uuid4().hex,
        category=category or str(metadata.get("category") or "forms"),
        source_uid=source_uid,
        source_name=source_name or str(metadata.get("source_name") or ""),
        pipeline_id=lead.pipeline_id,
        created_at=now,
        metadata=metadata,
        lead_id=lead.id,
        contact_ids=list(lead.contact_ids),
        company_ids=[lead.company_id] if lead.company_id else [],
        request_id=rid,
    )
    acct.unsorted[record.uid] = record
    return record


def create_forms(acct: Account, ids: Ids, now: int, actor: int, payload: Any) -> list[Unsorted]:
    """POST /leads/unsorted/forms: one incoming lead (with its contacts) per item."""
    items = batch(payload, limit=MAX_BATCH)
    invalid = Invalid()
    plans = []
    for i, item in enumerate(items):
        rid = request_id(item, i)
        for key in ("source_uid", "source_name"):
            if not item.get(key):
                invalid.add(rid, "NotBlank", key, "This value should not be blank.")
        pipeline = _incoming_pipeline(acct, item, invalid, rid)
        embedded = item.get("_embedded") or {}
        lead_items = embedded.get("leads") or [{}]
        lead_item = dict(lead_items[0]) if isinstance(lead_items[0], dict) else {}
        lead_item.pop("_embedded", None)
        if pipeline is not None and pipeline.incoming is not None:
            lead_item.update(pipeline_id=pipeline.id, status_id=pipeline.incoming.id)
        lead_build = new_lead(acct, ids, now, actor, lead_item, invalid, rid, allow_incoming=True)
        contact_builds = [
            new_contact(acct, ids, now, actor, c, invalid, rid)
            for c in embedded.get("contacts") or []
            if isinstance(c, dict)
        ]
        plans.append((rid, item, lead_build, contact_builds))
    invalid.raise_if_any()

    records = []
    for rid, item, lead_build, contact_builds in plans:
        contacts = [build() for build in contact_builds]
        for contact in contacts:
            acct.contacts[contact.id] = contact
        lead = lead_build()
        lead.contact_ids = [c.id for c in contacts]
        acct.leads[lead.id] = lead
        _hide_until_accepted(acct, lead)
        metadata = dict(item.get("metadata") or {})
        records.append(
            _record_unsorted(
                acct,
                _when(item, now),
                lead,
                metadata,
                rid,
                source_uid=str(item["source_uid"]),
                source_name=str(item["source_name"]),
                category="forms",
            )
        )
    return records


def _when(item: dict[str, Any], now: int) -> int:
    created_at = item.get("created_at")
    return created_at if isinstance(created_at, int) and not isinstance(created_at, bool) else now


def _pending(acct: Account, uid: str) -> Unsorted:
    record = acct.unsorted.get(uid)
    if record is None:
        raise ApiError(404, f"Incoming lead {uid} not found")
    if record.state != "new":
        raise ApiError(400, f"Incoming lead {uid} has already been {record.state}")
    return record


def accept(acct: Account, now: int, actor: int, uid: str, body: dict[str, Any]) -> Unsorted:
    """Accepting moves the lead to ``status_id`` (default: the pipeline's first stage) and makes its
    contacts visible; ``user_id`` becomes the lead's creator (reference §5.7)."""
    record = _pending(acct, uid)
    invalid = Invalid()
    user_id = int_field(body, "user_id", invalid, "0")
    if user_id is not None and user_id not in acct.users:
        not_supported(invalid, "0", "user_id")
    pipeline = acct.pipelines[record.pipeline_id]
    status_id = int_field(body, "status_id", invalid, "0")
    if status_id is not None and status_id not in (WON_STATUS_ID, LOST_STATUS_ID):
        status = pipeline.status(status_id)
        if status is None or status.type == 1:
            not_supported(invalid, "0", "status_id")
    invalid.raise_if_any()
    lead = acct.leads[record.lead_id]
    lead.status_id = status_id if status_id is not None else pipeline.first_stage.id
    lead.closed_at = now if lead.status_id in (WON_STATUS_ID, LOST_STATUS_ID) else None
    lead.created_by = user_id if user_id is not None else actor
    lead.updated_by = user_id if user_id is not None else actor
    lead.updated_at = now
    for cid in record.contact_ids:
        acct.contacts[cid].is_unsorted = False
    for company_id in record.company_ids:
        acct.companies[company_id].is_unsorted = False
    record.state = "accepted"
    return record


def decline(acct: Account, now: int, uid: str) -> Unsorted:
    """Declining deletes the incoming lead together with the contacts that came with it."""
    record = _pending(acct, uid)
    lead = acct.leads[record.lead_id]
    lead.is_deleted = True
    lead.updated_at = now
    for cid in record.contact_ids:
        acct.contacts[cid].is_deleted = True
    record.state = "declined"
    return record


def pending(
    acct: Account, uids: list[str], categories: list[str], pipeline_id: int | None, newest_first: bool
) -> list[Unsorted]:
    found = [u for u in acct.unsorted.values() if u.state == "new"]
    if uids:
        found = [u for u in found if u.uid in uids]
    if categories:
        found = [u for u in found if u.category in categories]
    if pipeline_id is not None:
        found = [u for u in found if u.pipeline_id == pipeline_id]
    return sorted(found, key=lambda u: (u.created_at, u.lead_id), reverse=newest_first)
