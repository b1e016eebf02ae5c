"""Portal REST methods of the CRM: pipelines, stages, mode, duplicates, contacts/deals/leads
(reference §6.3-6.5). Legacy ``crm.*`` errors come with an empty code and HTTP 400."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.bitrix24 import phpform
from sandbox.bitrix24.filters import ENTITY_FIELDS, NEGATIVE, known_fields, known_terms, matches
from sandbox.bitrix24.portal import MODE_SIMPLE, Portal, User, phone_digits
from sandbox.bitrix24.restkit import Answer, Ctx, Handler, RestError, arg, empty, legacy, page, to_int

# ---------------------------------------------------------------------------------- CRM directories


def m_category_list(ctx: Ctx, params: dict[str, Any]) -> Answer:
    etype = to_int(arg(params, "entityTypeId"), -1)
    if etype == -1:
        raise RestError(400, "ENTITY_TYPE_NOT_SUPPORTED", "Entity type `` is not supported")
    if etype != 2:
        raise RestError(400, "ENTITY_TYPE_NOT_SUPPORTED", f"Entity type `{etype}` is not supported")
    cats = sorted(ctx.portal.categories.values(), key=lambda c: (c.sort, c.id))
    answer = page([c.as_rest() for c in cats], params)
    return Answer({"categories": answer.result}, answer.total, answer.next)


_STATUS_FIELDS = ("ID", "ENTITY_ID", "STATUS_ID", "NAME", "NAME_INIT", "SORT", "SYSTEM", "CATEGORY_ID", "COLOR")


def m_status_list(ctx: Ctx, params: dict[str, Any]) -> Answer:
    filt = arg(params, "filter") or {}
    terms = known_terms(filt, _STATUS_FIELDS) if isinstance(filt, dict) else []
    # One directory (the usual call) comes in its stages' order; the whole table by row.
    one = any(f == "ENTITY_ID" for _, f, _ in terms)
    ordered = sorted(ctx.portal.statuses, key=lambda s: (s.sort, s.row_id) if one else (0, s.row_id))
    items = [s.as_rest() for s in ordered]
    items = [i for i in items if all(matches(i.get(f), op, v) for op, f, v in terms)]
    return Answer(empty(items), total=len(items))


def m_mode_get(ctx: Ctx, params: dict[str, Any]) -> Answer:
    return Answer(ctx.portal.crm_mode)


def m_findbycomm(ctx: Ctx, params: dict[str, Any]) -> Answer:
    kind = str(arg(params, "type", "")).upper()
    if kind not in ("PHONE", "EMAIL"):
        raise RestError(400, "Communication type is not defined.", "Communication type is not defined.")
    values = phpform.listify(arg(params, "values"))
    if isinstance(values, str):
        values = [values]
    if not values:
        raise RestError(400, "Communication values is not defined.", "Communication values is not defined.")
    if len(values) > 20:
        raise RestError(400, "Too many communication values.", "Too many communication values.")
    entity = str(arg(params, "entity_type", "") or "").lower()
    kinds = (entity,) if entity in ("lead", "contact", "company") else ("lead", "contact", "company")
    found: dict[str, list[int]] = {}
    for value in values:
        if kind == "PHONE":
            digits = phone_digits(str(value))
            hits = ctx.portal.find_by_phone(digits, kinds) if digits else {}
        else:
            hits = {}
            for k in kinds:
                for rid, rec in sorted(ctx.portal.records.get(k, {}).items()):
                    if any(str(e.get("VALUE", "")).lower() == str(value).lower() for e in rec.get("EMAIL") or []):
                        hits.setdefault(k.upper(), []).append(rid)
        for k, ids in hits.items():
            found.setdefault(k, [])
            found[k].extend(i for i in ids if i not in found[k])
    return Answer(found or [])  # nothing found → [] (§0.9)


# ---------------------------------------------------------------------------------- CRM records

_MULTI = ("PHONE", "EMAIL", "IM", "WEB")
_EVENT_OF = {"contact": "CONTACT", "deal": "DEAL", "lead": "LEAD"}


def _fields(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    fields = arg(params, "fields")
    if not isinstance(fields, dict):
        raise legacy("Parameter 'fields' must be array.")
    return known_fields(kind, {str(k).upper(): phpform.listify(v) for k, v in fields.items()})


def _normalise(portal: Portal, fields: dict[str, Any], user: User) -> dict[str, Any]:
    return normalise_fields(portal, fields, user.id)


def normalise_fields(portal: Portal, fields: dict[str, Any], user_id: int) -> dict[str, Any]:
    """What ``crm.*.add`` stores: multifield items with ``ID``/``TYPE_ID`` (empty values dropped),
    ``ASSIGNED_BY_ID`` defaulting to the caller."""
    out = dict(fields)
    for name in _MULTI:
        items = out.get(name)
        if items is None:
            continue
        if isinstance(items, dict):
            items = [items]
        out[name] = [
            {
                "ID": str(portal.next_id["status"] + i),
                "VALUE_TYPE": str(item.get("VALUE_TYPE") or "WORK"),
                "VALUE": str(item.get("VALUE") or ""),
                "TYPE_ID": name,
            }
            for i, item in enumerate(items)
            if isinstance(item, dict) and item.get("VALUE")
        ]
    out["ASSIGNED_BY_ID"] = str(out.get("ASSIGNED_BY_ID") or user_id)
    return out


def _add_contact(ctx: Ctx, fields: dict[str, Any]) -> int:
    record = ctx.portal.new_record("contact", _normalise(ctx.portal, fields, ctx.user))
    return int(record["ID"])


def _add_deal(ctx: Ctx, fields: dict[str, Any]) -> int:
    portal = ctx.portal
    fields = _normalise(portal, fields, ctx.user)
    cat = to_int(fields.get("CATEGORY_ID"), 0)
    if cat not in portal.categories:
        raise legacy("Category is not found.")
    entity = "DEAL_STAGE" if cat == 0 else f"DEAL_STAGE_{cat}"
    stages = [s.status_id for s in portal.stages(entity)]
    if fields.get("STAGE_ID") not in stages:
        fields["STAGE_ID"] = stages[0]  # a foreign or missing stage → the pipeline's first one (§6.4)
    fields["CATEGORY_ID"] = str(cat)
    contact = fields.get("CONTACT_ID")
    if contact not in (None, "", "0") and to_int(contact) not in portal.records["contact"]:
        raise legacy("Contact is not found.")
    if contact not in (None, ""):
        fields["CONTACT_ID"] = str(contact)
    record = portal.new_record("deal", fields)
    return int(record["ID"])


def _add_lead(ctx: Ctx, fields: dict[str, Any]) -> int:
    portal = ctx.portal
    fields = _normalise(portal, fields, ctx.user)
    statuses = [s.status_id for s in portal.stages("STATUS")]
    if fields.get("STATUS_ID") not in statuses:
        fields["STATUS_ID"] = statuses[0]
    if portal.crm_mode == MODE_SIMPLE:
        # Simple CRM has no leads: a new lead is converted into a deal at once (§6.4).
        contact_id = _add_contact(ctx, {k: v for k, v in fields.items() if k in ("NAME", "LAST_NAME", *_MULTI)})
        _add_deal(
            ctx,
            {
                "TITLE": fields.get("TITLE") or "",
                "CONTACT_ID": contact_id,
                "ASSIGNED_BY_ID": fields["ASSIGNED_BY_ID"],
            },
        )
        fields["STATUS_ID"] = "CONVERTED"
    record = portal.new_record("lead", fields)
    return int(record["ID"])


def _matches(record: dict[str, Any], op: str, key: str, wanted: Any) -> bool:
    """A list filter term. Phone, e-mail, web and messenger fields are multifields: the filter
    matches a record with any item of exactly that value, whatever its VALUE_TYPE (crm.contact.list:
    "filters on them work on an exact match only")."""
    if key in _MULTI:
        values = [str(item.get("VALUE", "")) for item in record.get(key) or []]
        return matches(values, "!" if op in NEGATIVE else "", wanted)
    return matches(record.get(key), op, wanted)


def _sorted(items: list[dict[str, Any]], order: Any) -> list[dict[str, Any]]:
    """``order`` as ``{FIELD: ASC|DESC}``, applied last key first so the first key wins; ids
    compare as numbers. By default Bitrix24 lists by ID ascending."""
    if not isinstance(order, dict):
        return items
    for key, direction in reversed(list(order.items())):
        field = str(key).upper()

        def sort_key(record: dict[str, Any], field: str = field) -> tuple[int, float, str]:
            value = record.get(field)
            number = to_int(value, -1) if field.endswith("ID") else -1
            return (0, float(number), "") if number >= 0 else (1, 0.0, str(value or ""))

        items = sorted(items, key=sort_key, reverse=str(direction).upper() == "DESC")
    return items


_ADDERS: dict[str, Callable[[Ctx, dict[str, Any]], int]] = {
    "contact": _add_contact,
    "deal": _add_deal,
    "lead": _add_lead,
}


def crud(kind: str) -> dict[str, Handler]:
    def add(ctx: Ctx, params: dict[str, Any]) -> Answer:
        new_id = _ADDERS[kind](ctx, _fields(kind, params))
        ctx.state.fire(ctx.portal, f"ONCRM{_EVENT_OF[kind]}ADD", {"FIELDS": {"ID": new_id}}, ctx.user.id)
        return Answer(new_id)

    def record_of(ctx: Ctx, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        rid = to_int(arg(params, "id"), 0)
        if rid <= 0:
            raise legacy("ID is not defined or invalid.")
        record = ctx.portal.records[kind].get(rid)
        if record is None:
            raise legacy("Not found")
        return rid, record

    def get(ctx: Ctx, params: dict[str, Any]) -> Answer:
        return Answer(dict(record_of(ctx, params)[1]))

    def update(ctx: Ctx, params: dict[str, Any]) -> Answer:
        rid, record = record_of(ctx, params)
        fields = _fields(kind, params)
        if "ASSIGNED_BY_ID" in fields:
            fields["ASSIGNED_BY_ID"] = str(fields["ASSIGNED_BY_ID"])
        if kind == "deal" and "STAGE_ID" in fields:
            entity = "DEAL_STAGE" if record.get("CATEGORY_ID") in (None, "0") else f"DEAL_STAGE_{record['CATEGORY_ID']}"
            if fields["STAGE_ID"] not in [s.status_id for s in ctx.portal.stages(entity)]:
                del fields["STAGE_ID"]  # crm.deal.update ignores a foreign pipeline's stage (§6.4)
        fields.pop("CATEGORY_ID", None)
        record.update({k: v for k, v in fields.items() if k != "ID"})
        ctx.state.fire(ctx.portal, f"ONCRM{_EVENT_OF[kind]}UPDATE", {"FIELDS": {"ID": rid}}, ctx.user.id)
        return Answer(True)

    def list_(ctx: Ctx, params: dict[str, Any]) -> Answer:
        filt = arg(params, "filter") or {}
        terms = known_terms(filt, ENTITY_FIELDS[kind]) if isinstance(filt, dict) else []
        items = [dict(r) for _, r in sorted(ctx.portal.records[kind].items())]
        items = [r for r in items if all(_matches(r, op, f, v) for op, f, v in terms)]
        return page(_sorted(items, arg(params, "order")), params)

    prefix = f"crm.{kind}."
    return {prefix + "add": add, prefix + "get": get, prefix + "update": update, prefix + "list": list_}
