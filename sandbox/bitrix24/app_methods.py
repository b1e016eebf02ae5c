"""Portal REST methods of the app itself: ``profile``, ``app.info``, users, placements, events
(reference §2.2, §3.2, §5.1, §6.2)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sandbox.bitrix24.filters import USER_FILTER_FIELDS, USER_PLAIN_TERMS, known_terms, matches, php_truthy
from sandbox.bitrix24.portal import Binding, User
from sandbox.bitrix24.restkit import Answer, Ctx, RestError, arg, empty, page, to_int

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


def _user_value(user: User, field: str) -> Any:
    if field == "ACTIVE":
        return "Y" if user.active else "N"
    if field == "HAS_DEPARTAMENT":
        return "Y"  # every sandbox employee sits in department 1
    if field == "EXTERNAL_AUTH_ID":
        return ""  # real employees; bots, e-mail and Open Channels users are never listed
    return user.as_rest().get(field)


def _wanted(field: str, value: Any) -> Any:
    """The filter value as the core prepares it (``User::prepareUserValue``)."""
    if field in ("ACTIVE", "IS_ONLINE"):
        return "Y" if php_truthy(value) and value != "N" else "N"
    return value


def _user_filter(params: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """The terms ``user.get`` filters on (reference §6.2, rest ``User::userGet``): ``FILTER`` when it
    is an array, else the top-level keys themselves (legacy ``user.get?ID=1``). Either way only
    user fields count; ``sort``, ``start``, ``auth``, the JS SDK's ``bx24_*`` and any other name
    that is no user field narrow nothing."""
    upper = {str(k).upper(): v for k, v in params.items()}
    source = upper["FILTER"] if isinstance(upper.get("FILTER"), dict) else upper
    terms = []
    for op, field, value in known_terms(source, USER_FILTER_FIELDS):
        terms.append(("" if field in USER_PLAIN_TERMS else op, field, _wanted(field, value)))
    return terms


def _user_matches(user: User, op: str, field: str, value: Any) -> bool:
    if field == "NAME_SEARCH":
        return str(value).lower() in user.full_name.lower()
    return matches(_user_value(user, field), op, value, fold=True)


def m_user_get(ctx: Ctx, params: dict[str, Any]) -> Answer:
    terms = _user_filter(params)
    users = sorted(ctx.portal.users.values(), key=lambda u: u.id)
    users = [u for u in users if all(_user_matches(u, op, f, v) for op, f, v in terms)]
    order = arg(params, "order", "ASC")
    if isinstance(order, dict):  # the JS SDK sends {"ID": "ASC"} (Addendum)
        order = next(iter(order.values()), "ASC")
    if str(order).upper() == "DESC":
        users.reverse()
    return page([u.as_rest() for u in users], params)


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
        empty(
            [
                {
                    "placement": b.code,
                    "userId": 0,
                    "handler": b.handler,
                    "options": [],
                    "title": b.title,
                    "description": "",
                    "langAll": empty(b.lang_all),
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
    auth_type = to_int(arg(params, "auth_type"), 0)
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
        empty(
            [
                {"event": b.code, "handler": b.handler, "auth_type": str(b.auth_type), "offline": 0}
                for b in inst.events()
            ]
        )
    )
