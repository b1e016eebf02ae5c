"""How API v4 renders things: HAL bodies with absolute ``_links`` (reference §5)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sandbox.kommo.records import (
    Account,
    Company,
    Contact,
    CustomField,
    Lead,
    Pipeline,
    Status,
    Unsorted,
    User,
    Webhook,
)


def link(href: str) -> dict[str, Any]:
    return {"href": href}


def _rights(user: User) -> dict[str, Any]:
    full = {"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"}
    seller = {"view": "A", "edit": "A", "add": "A", "delete": "D", "export": "D"}
    entity = full if user.is_admin else seller
    return {
        "leads": dict(entity),
        "contacts": dict(entity),
        "companies": dict(entity),
        "tasks": {"edit": "A", "delete": "A" if user.is_admin else "D"},
        "mail_access": user.is_admin,
        "catalog_access": user.is_admin,
        "files_access": True,
        "status_rights": [],
        "catalog_rights": None,
        "custom_fields_rights": None,
        "oper_day_reports_view_access": user.is_admin,
        "oper_day_user_tracking": user.is_admin,
        # is_admin, is_active and group_id live inside ``rights`` (reference §5.2).
        "is_admin": user.is_admin,
        "is_free": user.is_free,
        "is_active": user.is_active,
        "group_id": user.group_id or None,
        "role_id": user.role_id,
    }


def user_json(api: str, user: User, with_: set[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "lang": user.lang,
        "rights": _rights(user),
        "_links": {"self": link(f"{api}/api/v4/users/{user.id}")},
    }
    if "uuid" in with_:
        body["uuid"] = user.uuid
    if "amojo_id" in with_:
        body["amojo_id"] = user.amojo_id
    if "user_rank" in with_:
        body["user_rank"] = "newbie"
    embedded: dict[str, Any] = {}
    if "role" in with_:
        embedded["roles"] = []
    if "group" in with_:
        embedded["groups"] = [{"id": user.group_id, "name": "Sales department" if user.group_id == 0 else "Group"}]
    if embedded:
        body["_embedded"] = embedded
    return body


def status_json(api: str, acct: Account, pipeline: Pipeline, status: Status) -> dict[str, Any]:
    return {
        "id": status.id,
        "name": status.name,
        "sort": status.sort,
        "is_editable": status.is_editable,
        "pipeline_id": pipeline.id,
        "color": status.color,
        "type": status.type,
        "account_id": acct.id,
        "_links": {"self": link(f"{api}/api/v4/leads/pipelines/{pipeline.id}/statuses/{status.id}")},
    }


def pipeline_json(api: str, acct: Account, pipeline: Pipeline) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "sort": pipeline.sort,
        "is_main": pipeline.is_main,
        "is_unsorted_on": pipeline.is_unsorted_on,
        "is_archive": pipeline.is_archive,
        "account_id": acct.id,
        "_links": {"self": link(f"{api}/api/v4/leads/pipelines/{pipeline.id}")},
        "_embedded": {
            "statuses": [status_json(api, acct, pipeline, s) for s in sorted(pipeline.statuses, key=lambda s: s.sort)]
        },
    }


def _group(acct: Account, user_id: int) -> int:
    user = acct.users.get(user_id)
    return user.group_id if user else 0


def _tags(names: list[str]) -> list[dict[str, Any]]:
    return [{"id": 100_000 + i, "name": name, "color": None} for i, name in enumerate(names)]


def contact_json(api: str, acct: Account, contact: Contact, leads: list[Lead] | None) -> dict[str, Any]:
    embedded: dict[str, Any] = {
        "tags": _tags(contact.tags),
        "companies": [
            {"id": contact.company_id, "_links": {"self": link(f"{api}/api/v4/companies/{contact.company_id}")}}
        ]
        if contact.company_id
        else [],
    }
    if leads is not None:
        embedded["leads"] = [
            {"id": lead.id, "_links": {"self": link(f"{api}/api/v4/leads/{lead.id}")}} for lead in leads
        ]
    return {
        "id": contact.id,
        "name": contact.name,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "responsible_user_id": contact.responsible_user_id,
        "group_id": _group(acct, contact.responsible_user_id),
        "created_by": contact.created_by,
        "updated_by": contact.updated_by,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
        "closest_task_at": None,
        "is_deleted": contact.is_deleted,
        "is_unsorted": contact.is_unsorted,
        "custom_fields_values": contact.custom_fields or None,
        "account_id": acct.id,
        "_links": {"self": link(f"{api}/api/v4/contacts/{contact.id}")},
        "_embedded": embedded,
    }


def lead_json(api: str, acct: Account, lead: Lead, with_contacts: bool) -> dict[str, Any]:
    embedded: dict[str, Any] = {
        "tags": _tags(lead.tags),
        "companies": [{"id": lead.company_id, "_links": {"self": link(f"{api}/api/v4/companies/{lead.company_id}")}}]
        if lead.company_id
        else [],
    }
    if with_contacts:
        embedded["contacts"] = [
            {"id": cid, "is_main": i == 0, "_links": {"self": link(f"{api}/api/v4/contacts/{cid}")}}
            for i, cid in enumerate(lead.contact_ids)
        ]
    return {
        "id": lead.id,
        "name": lead.name,
        "price": lead.price,
        "responsible_user_id": lead.responsible_user_id,
        "group_id": _group(acct, lead.responsible_user_id),
        "status_id": lead.status_id,
        "pipeline_id": lead.pipeline_id,
        "loss_reason_id": lead.loss_reason_id,
        "created_by": lead.created_by,
        "updated_by": lead.updated_by,
        "created_at": lead.created_at,
        "updated_at": lead.updated_at,
        "closed_at": lead.closed_at,
        "closest_task_at": None,
        "is_deleted": lead.is_deleted,
        "custom_fields_values": lead.custom_fields or None,
        "score": None,
        "account_id": acct.id,
        "labor_cost": None,
        "_links": {"self": link(f"{api}/api/v4/leads/{lead.id}")},
        "_embedded": embedded,
    }


def company_json(api: str, acct: Account, company: Company) -> dict[str, Any]:
    return {
        "id": company.id,
        "name": company.name,
        "responsible_user_id": company.responsible_user_id,
        "created_by": company.created_by,
        "created_at": company.created_at,
        "updated_at": company.updated_at,
        "account_id": acct.id,
        "_links": {"self": link(f"{api}/api/v4/companies/{company.id}")},
    }


def unsorted_json(api: str, acct: Account, record: Unsorted) -> dict[str, Any]:
    lead = acct.leads[record.lead_id]
    return {
        "uid": record.uid,
        "source_uid": record.source_uid,
        "source_name": record.source_name,
        "category": record.category,
        "pipeline_id": record.pipeline_id,
        "created_at": record.created_at,
        "metadata": record.metadata,
        "account_id": acct.id,
        "_links": {"self": link(f"{api}/api/v4/leads/unsorted/{record.uid}")},
        "_embedded": {
            "leads": [lead_json(api, acct, lead, with_contacts=False)],
            "contacts": [contact_json(api, acct, acct.contacts[c], None) for c in record.contact_ids],
            "companies": [company_json(api, acct, acct.companies[c]) for c in record.company_ids],
        },
    }


def unsorted_action_json(api: str, record: Unsorted) -> dict[str, Any]:
    """The shape of accept / decline answers (reference §5.7)."""
    return {
        "uid": record.uid,
        "category": record.category,
        "pipeline_id": record.pipeline_id,
        "created_at": record.created_at,
        "_embedded": {
            "leads": [{"id": record.lead_id, "_links": {"self": link(f"{api}/api/v4/leads/{record.lead_id}")}}],
            "contacts": [{"id": c, "_links": {"self": link(f"{api}/api/v4/contacts/{c}")}} for c in record.contact_ids],
            "companies": [{"id": c} for c in record.company_ids],
        },
        "_links": {"self": link(f"{api}/api/v4/leads/unsorted/{record.uid}")},
    }


def webhook_json(acct: Account, hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "destination": hook.destination,
        "created_at": hook.created_at,
        "updated_at": hook.updated_at,
        "account_id": acct.id,
        "created_by": hook.created_by,
        "sort": hook.sort,
        "disabled": hook.disabled,
        "settings": list(hook.settings),
    }


def field_json(api: str, acct: Account, field: CustomField) -> dict[str, Any]:
    return {
        "id": field.id,
        "name": field.name,
        "type": field.type,
        "code": field.code,
        "sort": field.sort,
        "is_api_only": False,
        "is_predefined": True,
        "is_deletable": False,
        "entity_type": "contacts",
        "account_id": acct.id,
        "enums": [{"id": eid, "value": code, "sort": i * 2 + 2} for i, (code, eid) in enumerate(field.enums.items())],
        "_links": {"self": link(f"{api}/api/v4/contacts/custom_fields/{field.id}")},
    }


def account_json(api: str, acct: Account, current_user_id: int, with_: set[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": acct.id,
        "name": acct.name,
        "subdomain": acct.subdomain,
        "created_at": acct.created_at,
        "created_by": 0,
        "updated_at": acct.created_at,
        "updated_by": 0,
        "current_user_id": current_user_id,
        "country": acct.country,
        "currency": acct.currency,
        "currency_symbol": acct.currency_symbol,
        "customers_mode": "disabled",
        "is_unsorted_on": True,
        "mobile_feature_version": 0,
        "is_loss_reason_enabled": False,
        "is_helpbot_enabled": False,
        "is_technical_account": False,
        "contact_name_display_order": 1,
        "_links": {"self": link(f"{api}/api/v4/account")},
    }
    if "amojo_id" in with_:
        body["amojo_id"] = acct.amojo_id
    if "version" in with_:
        body["version"] = 11
    embedded: dict[str, Any] = {}
    if "amojo_rights" in with_:
        embedded["amojo_rights"] = {"can_direct": True, "can_create_groups": True}
    if "users_groups" in with_:
        embedded["users_groups"] = [{"id": 0, "name": "Sales department", "uuid": None}]
    if "task_types" in with_:
        embedded["task_types"] = [
            {"id": 1, "name": "Follow-up", "color": None, "icon_id": None, "code": "FOLLOW_UP"},
            {"id": 2, "name": "Meeting", "color": None, "icon_id": None, "code": "MEETING"},
        ]
    if "datetime_settings" in with_:
        embedded["datetime_settings"] = {
            "date_pattern": "Y-m-d H:i",
            "short_date_pattern": "Y-m-d",
            "short_time_pattern": "H:i",
            "date_format": "Y-m-d",
            "time_format": "H:i:s",
            "timezone": "UTC",
            "timezone_offset": "+00:00",
        }
    if embedded:
        body["_embedded"] = embedded
    return body


def page_links(url: str, args: dict[str, Any], page: int, has_next: bool) -> dict[str, Any]:
    """``self``/``next``/``prev`` with the same query, as the official library follows ``next.href``."""

    def href(p: int) -> dict[str, Any]:
        return link(f"{url}?{urlencode({**args, 'page': p}, doseq=True)}")

    links = {"self": href(page)}
    if has_next:
        links["next"] = href(page + 1)
    if page > 1:
        links["prev"] = href(page - 1)
    return links
