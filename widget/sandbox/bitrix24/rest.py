"""The portal's REST methods (reference §2.2, §3.2, §5.1, §6), answered the way Bitrix24 answers.

``call`` is the whole pipeline for one HTTP request: leaky bucket, token checks, the per-method
operation limit, dispatch. Shapes kept on purpose: string ids in legacy methods, integer ids in
``crm.category.*``, ``[]`` for empty PHP arrays, legacy ``crm.*`` errors with an empty code and
HTTP 400, ``batch`` always 200 with per-command errors in ``result_error``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from widget.sandbox.bitrix24 import phpform
from widget.sandbox.bitrix24.portal import MODE_SIMPLE, Binding, Portal, User, phone_digits
from widget.sandbox.bitrix24.state import SandboxState
from widget.sandbox.bitrix24.tokens import Grant

PAGE = 50
BATCH_MAX = 50


class RestError(Exception):
    def __init__(self, status: int, code: str, description: str, **extra: Any) -> None:
        super().__init__(f"{code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "error_description": self.description}
        out.update(self.extra)
        return out


def legacy(description: str) -> RestError:
    """crm.contact/deal/lead errors: HTTP 400 with an EMPTY code (reference §0.8, §6.4)."""
    return RestError(400, "", description)


@dataclass
class Answer:
    result: Any
    total: int | None = None
    next: int | None = None


@dataclass
class Ctx:
    state: SandboxState
    portal: Portal
    grant: Grant
    user: User

    @property
    def scopes(self) -> set[str]:
        return set(self.grant.scope.split(","))


Handler = Callable[[Ctx, dict[str, Any]], Answer]


def time_block(start: float, finish: float, reset_at: float | None = None, operating: float = 0.0) -> dict[str, Any]:
    def iso(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat()

    return {
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": finish - start,
        "date_start": iso(start),
        "date_finish": iso(finish),
        "operating_reset_at": int(reset_at if reset_at is not None else finish + 600),
        "operating": operating,
    }


def arg(params: dict[str, Any], name: str, default: Any = None) -> Any:
    """Parameter names are case-insensitive (docs use both ``fields`` and ``FIELDS``, §6.4)."""
    if name in params:
        return params[name]
    low = name.lower()
    for key, value in params.items():
        if key.lower() == low:
            return value
    return default


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _empty(value: Any) -> Any:
    """PHP serialises an empty array as ``[]`` even where a map is expected (§6.1)."""
    return value if value else []


def _page(items: list[Any], params: dict[str, Any]) -> Answer:
    start = _int(arg(params, "start", 0))
    if start == -1:
        # Fast mode: no total, no next; callers page by ">ID" (§6.1).
        return Answer(items[:PAGE])
    start = max(0, start)
    chunk = items[start : start + PAGE]
    nxt = start + PAGE if start + PAGE < len(items) else None
    return Answer(chunk, total=len(items), next=nxt)


# ---------------------------------------------------------------------------------- basic


def m_profile(ctx: Ctx, params: dict[str, Any]) -> Answer:
    u = ctx.user
    if not u.active:
        return Answer([])  # an inactive user gets an empty object (§6.2)
    return Answer(
        {
            "ID": str(u.id),
            "ADMIN": u.admin,
            "NAME": u.name,
            "LAST_NAME": u.last_name,
            "PERSONAL_GENDER": "",
            "TIME_ZONE": "",
            "TIME_ZONE_OFFSET": 0,
        }
    )


def m_app_info(ctx: Ctx, params: dict[str, Any]) -> Answer:
    inst = ctx.portal.installation
    app = ctx.state.app
    assert inst is not None and app is not None
    return Answer(
        {
            "ID": 5,
            "CODE": app.code,
            "VERSION": inst.version,
            "STATUS": inst.status,
            "INSTALLED": inst.installed,
            "PAYMENT_EXPIRED": "N",
            "DAYS": None,
            "LANGUAGE_ID": ctx.user.lang,
            "LICENSE": ctx.portal.license,
            "LICENSE_TYPE": "project",
            "LICENSE_FAMILY": "project",
        }
    )


def m_user_current(ctx: Ctx, params: dict[str, Any]) -> Answer:
    return Answer(ctx.user.as_rest())


_USER_PARAMS = {"sort", "order", "filter", "admin_mode", "select", "image_resize", "start", "auth", "access_token"}
_OPS = (">=", "<=", "!=", ">", "<", "!", "=", "%")


def _user_matches(user: User, key: str, value: Any) -> bool:
    op = ""
    for candidate in _OPS:
        if key.startswith(candidate):
            op, key = candidate, key[len(candidate) :]
            break
    field = key.upper()
    rest = user.as_rest()
    if field == "NAME_SEARCH":
        return str(value).lower() in user.full_name.lower()
    actual = rest.get(field)
    if field == "ACTIVE":
        wanted = str(value).lower() in ("true", "1", "y")
        result = user.active == wanted
        return not result if op in ("!", "!=") else result
    if op == "%":
        return str(value).lower() in str(actual or "").lower()
    if field == "ID":
        a, v = _int(actual), _int(value)
        return {">": a > v, ">=": a >= v, "<": a < v, "<=": a <= v, "!": a != v, "!=": a != v}.get(op, a == v)
    equal = str(actual or "").lower() == str(value).lower()
    return not equal if op in ("!", "!=") else equal


def m_user_get(ctx: Ctx, params: dict[str, Any]) -> Answer:
    filt = arg(params, "FILTER")
    if not isinstance(filt, dict):
        # Legacy: without FILTER, the top-level keys are the filter (user.get?ID=1) (§6.2).
        filt = {k: v for k, v in params.items() if k.lower() not in _USER_PARAMS}
    users = sorted(ctx.portal.users.values(), key=lambda u: u.id)
    users = [u for u in users if all(_user_matches(u, k, v) for k, v in filt.items())]
    order = arg(params, "order", "ASC")
    if isinstance(order, dict):  # the JS SDK sends {"ID": "ASC"} (Addendum)
        order = next(iter(order.values()), "ASC")
    if str(order).upper() == "DESC":
        users.reverse()
    return _page([u.as_rest() for u in users], params)


# ---------------------------------------------------------------------------------- CRM directories


def m_category_list(ctx: Ctx, params: dict[str, Any]) -> Answer:
    etype = _int(arg(params, "entityTypeId"), -1)
    if etype == -1:
        raise RestError(400, "ENTITY_TYPE_NOT_SUPPORTED", "Entity type `` is not supported")
    if etype != 2:
        raise RestError(400, "ENTITY_TYPE_NOT_SUPPORTED", f"Entity type `{etype}` is not supported")
    cats = sorted(ctx.portal.categories.values(), key=lambda c: (c.sort, c.id))
    answer = _page([c.as_rest() for c in cats], params)
    return Answer({"categories": answer.result}, answer.total, answer.next)


def m_status_list(ctx: Ctx, params: dict[str, Any]) -> Answer:
    filt = arg(params, "filter") or {}
    entity = str(arg(filt, "ENTITY_ID", "")) if isinstance(filt, dict) else ""
    statuses = ctx.portal.stages(entity) if entity else sorted(ctx.portal.statuses, key=lambda s: s.row_id)
    items = [s.as_rest() for s in statuses]
    return Answer(_empty(items), total=len(items))


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


def _fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = arg(params, "fields")
    if not isinstance(fields, dict):
        raise legacy("Parameter 'fields' must be array.")
    return {str(k).upper(): phpform.listify(v) for k, v in fields.items()}


def _normalise(portal: Portal, fields: dict[str, Any], user: User) -> dict[str, Any]:
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
    out["ASSIGNED_BY_ID"] = str(out.get("ASSIGNED_BY_ID") or user.id)
    return out


def _add_contact(ctx: Ctx, fields: dict[str, Any]) -> int:
    record = ctx.portal.new_record("contact", _normalise(ctx.portal, fields, ctx.user))
    return int(record["ID"])


def _add_deal(ctx: Ctx, fields: dict[str, Any]) -> int:
    portal = ctx.portal
    fields = _normalise(portal, fields, ctx.user)
    cat = _int(fields.get("CATEGORY_ID"), 0)
    if cat not in portal.categories:
        raise legacy("Category is not found.")
    entity = "DEAL_STAGE" if cat == 0 else f"DEAL_STAGE_{cat}"
    stages = [s.status_id for s in portal.stages(entity)]
    if fields.get("STAGE_ID") not in stages:
        fields["STAGE_ID"] = stages[0]  # a foreign or missing stage → the pipeline's first one (§6.4)
    fields["CATEGORY_ID"] = str(cat)
    contact = fields.get("CONTACT_ID")
    if contact not in (None, "", "0") and _int(contact) not in portal.records["contact"]:
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
        contact_id = _add_contact(ctx, {k: v for k, v in fields.items() if k in ("NAME", "LAST_NAME", "PHONE")})
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


_ADDERS: dict[str, Callable[[Ctx, dict[str, Any]], int]] = {
    "contact": _add_contact,
    "deal": _add_deal,
    "lead": _add_lead,
}


def _crud(kind: str) -> dict[str, Handler]:
    def add(ctx: Ctx, params: dict[str, Any]) -> Answer:
        new_id = _ADDERS[kind](ctx, _fields(params))
        ctx.state.fire(ctx.portal, f"ONCRM{_EVENT_OF[kind]}ADD", {"FIELDS": {"ID": new_id}}, ctx.user.id)
        return Answer(new_id)

    def record_of(ctx: Ctx, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        rid = _int(arg(params, "id"), 0)
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
        fields = _fields(params)
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
        items = [dict(r) for _, r in sorted(ctx.portal.records[kind].items())]
        if isinstance(filt, dict):
            items = [r for r in items if all(str(r.get(str(k).upper(), "")) == str(v) for k, v in filt.items())]
        return _page(items, params)

    prefix = f"crm.{kind}."
    return {prefix + "add": add, prefix + "get": get, prefix + "update": update, prefix + "list": list_}


# ---------------------------------------------------------------------------------- placements and events

PLACEMENT_SCOPES = {
    "LEFT_MENU": {"placement"},
    "CRM_DEAL_DETAIL_TAB": {"placement", "crm"},
    "CRM_CONTACT_DETAIL_TAB": {"placement", "crm"},
    "CRM_LEAD_DETAIL_TAB": {"placement", "crm"},
    "CRM_COMPANY_DETAIL_TAB": {"placement", "crm"},
    "CRM_DEAL_LIST_MENU": {"placement", "crm"},
    "CRM_CONTACT_LIST_MENU": {"placement", "crm"},
    "CRM_LEAD_LIST_MENU": {"placement", "crm"},
    "IM_SIDEBAR": {"placement", "im"},
    "IM_TEXTAREA": {"placement", "im"},
    "IM_NAVIGATION": {"placement", "im"},
}
EVENT_SCOPES = {
    "ONAPPINSTALL": set(),
    "ONAPPUNINSTALL": set(),
    "ONAPPUPDATE": set(),
    "ONCRMDEALADD": {"crm"},
    "ONCRMDEALUPDATE": {"crm"},
    "ONCRMDEALMOVETOCATEGORY": {"crm"},
    "ONCRMCONTACTADD": {"crm"},
    "ONCRMCONTACTUPDATE": {"crm"},
    "ONCRMLEADADD": {"crm"},
    "ONCRMLEADUPDATE": {"crm"},
    "ONUSERADD": {"user"},
}


def _check_handler(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RestError(400, "ERROR_UNSUPPORTED_PROTOCOL", "Unsupported event handler protocol")
    # The core only checks for a dotted host: "localhost" fails, "127.0.0.1" passes (§3.2, §5.1).
    if "." not in (parts.hostname or ""):
        raise RestError(400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL")


def _require_admin(ctx: Ctx) -> None:
    if not ctx.user.admin:
        raise RestError(403, "ACCESS_DENIED", "Access denied!")


def _next_binding_id(ctx: Ctx) -> int:
    inst = ctx.portal.installation
    assert inst is not None
    return max((b.id for b in inst.bindings), default=0) + 1


def m_placement_bind(ctx: Ctx, params: dict[str, Any]) -> Answer:
    _require_admin(ctx)
    code = str(arg(params, "PLACEMENT", "") or "").upper()
    if not code:
        raise RestError(400, "ERROR_ARGUMENT", "Argument 'PLACEMENT' is null or empty", argument="PLACEMENT")
    if code == "DEFAULT":
        raise RestError(400, "ERROR_ARGUMENT", "Wrong value", argument="PLACEMENT")
    needed = PLACEMENT_SCOPES.get(code)
    if needed is None or not needed <= ctx.scopes:
        raise RestError(400, "ERROR_PLACEMENT_NOT_FOUND", "Placement not found")
    handler = str(arg(params, "HANDLER", "") or "")
    if not handler:
        raise RestError(400, "ERROR_ARGUMENT", "Argument 'HANDLER' is null or empty", argument="HANDLER")
    _check_handler(handler)
    inst = ctx.portal.installation
    assert inst is not None
    if any(b.handler == handler for b in inst.placements(code)):
        raise RestError(400, "ERROR_CORE", "Unable to set placement handler: Handler already binded")
    lang_all = arg(params, "LANG_ALL") or {}
    inst.bindings.append(
        Binding(
            _next_binding_id(ctx),
            "placement",
            code,
            handler,
            title=str(arg(params, "TITLE", "") or ""),
            lang_all=lang_all if isinstance(lang_all, dict) else {},
        )
    )
    return Answer(True)


def m_placement_unbind(ctx: Ctx, params: dict[str, Any]) -> Answer:
    _require_admin(ctx)
    code = str(arg(params, "PLACEMENT", "") or "").upper()
    handler = arg(params, "HANDLER")
    inst = ctx.portal.installation
    assert inst is not None
    gone = [b for b in inst.placements(code) if handler in (None, "", b.handler)]
    for b in gone:
        inst.bindings.remove(b)
    return Answer({"count": 2 * len(gone)})  # found + deleted, as the core counts (§3.2)


def m_placement_get(ctx: Ctx, params: dict[str, Any]) -> Answer:
    _require_admin(ctx)
    inst = ctx.portal.installation
    assert inst is not None
    return Answer(
        _empty(
            [
                {
                    "placement": b.code,
                    "userId": 0,
                    "handler": b.handler,
                    "options": [],
                    "title": b.title,
                    "description": "",
                    "langAll": _empty(b.lang_all),
                }
                for b in inst.placements()
            ]
        )
    )


def m_placement_list(ctx: Ctx, params: dict[str, Any]) -> Answer:
    return Answer(sorted(code for code, needed in PLACEMENT_SCOPES.items() if needed <= ctx.scopes))


def m_event_bind(ctx: Ctx, params: dict[str, Any]) -> Answer:
    event = str(arg(params, "event", "") or "").upper()
    handler = str(arg(params, "handler", "") or "")
    if not event:
        raise RestError(400, "ERROR_ARGUMENT", "Argument 'EVENT' is null or empty", argument="EVENT")
    needed = EVENT_SCOPES.get(event)
    if needed is None or not needed <= ctx.scopes:
        raise RestError(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
    if not handler:
        raise RestError(400, "ERROR_ARGUMENT", "Argument 'HANDLER' is null or empty", argument="HANDLER")
    _check_handler(handler)
    auth_type = _int(arg(params, "auth_type"), 0)
    offline = str(arg(params, "event_type", "online")).lower() == "offline"
    if not ctx.user.admin and (auth_type not in (0, ctx.user.id) or offline):
        raise RestError(403, "ACCESS_DENIED", "Access denied!")
    inst = ctx.portal.installation
    assert inst is not None
    if any(b.handler == handler and b.auth_type == auth_type for b in inst.events(event)):
        raise RestError(400, "ERROR_CORE", "Unable to set event handler: Handler already binded")
    inst.bindings.append(Binding(_next_binding_id(ctx), "event", event, handler, auth_type=auth_type))
    return Answer(True)


def m_event_unbind(ctx: Ctx, params: dict[str, Any]) -> Answer:
    event = str(arg(params, "event", "") or "").upper()
    handler = str(arg(params, "handler", "") or "")
    inst = ctx.portal.installation
    assert inst is not None
    gone = [b for b in inst.events(event) if b.handler == handler]
    for b in gone:
        inst.bindings.remove(b)
    return Answer({"count": len(gone)})


def m_event_get(ctx: Ctx, params: dict[str, Any]) -> Answer:
    inst = ctx.portal.installation
    assert inst is not None
    return Answer(
        _empty(
            [
                {"event": b.code, "handler": b.handler, "auth_type": str(b.auth_type), "offline": 0}
                for b in inst.events()
            ]
        )
    )


# ---------------------------------------------------------------------------------- dispatch

METHODS: dict[str, tuple[set[str], Handler]] = {
    "profile": (set(), m_profile),
    "app.info": (set(), m_app_info),
    "user.current": ({"user"}, m_user_current),
    "user.get": ({"user"}, m_user_get),
    "crm.category.list": ({"crm"}, m_category_list),
    "crm.status.list": ({"crm"}, m_status_list),
    "crm.settings.mode.get": ({"crm"}, m_mode_get),
    "crm.duplicate.findbycomm": ({"crm"}, m_findbycomm),
    "placement.bind": ({"placement"}, m_placement_bind),
    "placement.unbind": ({"placement"}, m_placement_unbind),
    "placement.get": ({"placement"}, m_placement_get),
    "placement.list": ({"placement"}, m_placement_list),
    "event.bind": (set(), m_event_bind),
    "event.unbind": (set(), m_event_unbind),
    "event.get": (set(), m_event_get),
}
for _kind in ("contact", "deal", "lead"):
    METHODS.update({name: ({"crm"}, fn) for name, fn in _crud(_kind).items()})

_NOT_IN_BATCH = {"batch", "upload", "download"}
_REF = re.compile(r"\$result\[([^\[\]]*)\]((?:\[[^\[\]]*\])*)")


def _dispatch(ctx: Ctx, method: str, params: dict[str, Any]) -> Answer:
    reset_at = ctx.state.faults.operation_limits.get((ctx.portal.member_id, method))
    if reset_at is not None and reset_at > ctx.state.clock():
        raise RestError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
    entry = METHODS.get(method)
    if entry is None:
        raise RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
    needed, handler = entry
    if not needed <= ctx.scopes:
        raise RestError(
            401, "insufficient_scope", "The request requires higher privileges than provided by the access token"
        )
    return handler(ctx, params)


def _lookup(results: dict[str, Any], match: re.Match[str]) -> tuple[bool, Any]:
    key = match.group(1)
    if key not in results:
        return False, None
    node = results[key]
    for part in re.findall(r"\[([^\[\]]*)\]", match.group(2)):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            break  # a missing path stops at the last level found (§6.6)
    return True, node


def _resolve(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, results) for k, v in value.items()}
    if not isinstance(value, str) or "$result" not in value:
        return value
    whole = _REF.fullmatch(value.strip())
    if whole is not None:
        found, node = _lookup(results, whole)
        return node if found else value  # the whole value is a reference: the raw value

    def inline(m: re.Match[str]) -> str:
        found, node = _lookup(results, m)
        return str(node) if found and not isinstance(node, dict | list) else m.group(0)

    return _REF.sub(inline, value)


def m_batch(ctx: Ctx, params: dict[str, Any]) -> Answer:
    halt = str(arg(params, "halt", "0")).lower() in ("1", "true", "y")
    commands = arg(params, "cmd") or {}
    if isinstance(commands, list):
        commands = {str(i): c for i, c in enumerate(commands)}
    if not isinstance(commands, dict):
        raise RestError(400, "INVALID_ARG_VALUE", "cmd must be an array")
    results: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    totals: dict[str, int] = {}
    nexts: dict[str, int] = {}
    times: dict[str, Any] = {}
    for i, (key, line) in enumerate(commands.items()):
        started = time.time()
        try:
            if i >= BATCH_MAX:
                raise RestError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
            method, _, query = str(line).partition("?")
            method = method.strip().strip("/").lower().removesuffix(".json")
            if method in _NOT_IN_BATCH:
                raise RestError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
            sub = _resolve(phpform.decode(query), results)
            answer = _dispatch(ctx, method, sub)
        except RestError as exc:
            errors[key] = exc.body()
            if halt:
                break
            continue
        results[key] = answer.result
        if answer.total is not None:
            totals[key] = answer.total
        if answer.next is not None:
            nexts[key] = answer.next
        times[key] = time_block(started, time.time())
    return Answer(
        {
            "result": _empty(results),
            "result_error": _empty(errors),
            "result_total": _empty(totals),
            "result_next": _empty(nexts),
            "result_time": _empty(times),
        }
    )


@dataclass
class RestOutcome:
    status: int
    body: dict[str, Any]
    grant: Grant | None = None


def authenticate(state: SandboxState, portal: Portal, token: str) -> tuple[Grant, User]:
    """The portal's token checks, with its error codes (reference §4.4)."""
    if not token:
        raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
    forced = state.faults.token_errors.get(portal.member_id)
    if forced:
        raise RestError(401, forced, "The access token provided is invalid.")
    gone = state.tokens.gone_reason(token)
    if gone == "APPLICATION_NOT_FOUND":
        raise RestError(401, "APPLICATION_NOT_FOUND", "Application not found")
    if gone == "invalid_token":
        raise RestError(401, "invalid_token", "The access token provided is invalid.")
    grant = state.tokens.by_access(token)
    if grant is None or grant.member_id != portal.member_id:
        raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
    if portal.installation is None:
        raise RestError(401, "APPLICATION_NOT_FOUND", "Application not found")
    if grant.expires_at <= state.clock():
        raise RestError(401, "expired_token", "The access token provided has expired.")
    user = portal.users.get(grant.user_id)
    if user is None or not user.active:
        raise RestError(401, "authorization_error", "Unable to authorize user")
    return grant, user


def call(state: SandboxState, portal: Portal, method: str, params: dict[str, Any], token: str) -> RestOutcome:
    """One REST request from arrival to answer. ``time`` is in every answer, errors included."""
    started = time.time()
    grant: Grant | None = None
    try:
        if not state.admit(portal.member_id):
            raise RestError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        with state.lock:
            grant, user = authenticate(state, portal, token)
            ctx = Ctx(state, portal, grant, user)
            answer = m_batch(ctx, params) if method == "batch" else _dispatch(ctx, method, params)
    except RestError as exc:
        body = exc.body()
        reset = None
        if exc.code == "OPERATION_TIME_LIMIT":
            reset = state.faults.operation_limits.get((portal.member_id, method))
        body["time"] = time_block(started, time.time(), reset)
        return RestOutcome(exc.status, body, grant)
    body = {"result": answer.result}
    if answer.next is not None:
        body["next"] = answer.next
    if answer.total is not None:
        body["total"] = answer.total
    body["time"] = time_block(started, time.time())
    return RestOutcome(200, body, grant)
