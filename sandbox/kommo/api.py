"""API v4 under ``/{host}/api/v4``: HAL bodies, problem+json errors, 204 for empty results (reference §5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from sandbox.kommo import entities, hal, unsorted, webhooks
from sandbox.kommo.errors import ApiError
from sandbox.kommo.records import Account, User
from sandbox.kommo.responses import hal as hal_response
from sandbox.kommo.responses import no_content, plain_json, problem
from sandbox.kommo.state import KommoSandbox

bp = Blueprint("kommo_api", __name__, url_prefix="/<account_host>/api/v4")

MAX_PAGE = 250


def sandbox() -> KommoSandbox:
    return current_app.extensions["kommo_sandbox"]


@bp.url_value_preprocessor
def _pull_host(endpoint: str | None, values: dict[str, Any] | None) -> None:
    g.account_host = (values or {}).pop("account_host", None)


@bp.url_defaults
def _push_host(endpoint: str, values: dict[str, Any]) -> None:
    values.setdefault("account_host", g.get("account_host"))


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> Response:
    return problem(error)


@bp.before_request
def _authenticate() -> Response | None:
    sb = sandbox()
    host = g.account_host
    if host not in sb.accounts:
        return problem(ApiError(404, f"Cannot {request.method} {request.url}"))
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    pair = sb.tokens.authenticate(host, token) if token else None
    if pair is None:
        return problem(ApiError(401, "Invalid user name or password"))
    acct = sb.account(host)
    user = acct.users.get(pair.user_id)
    if user is None:
        return problem(ApiError(401, "Invalid user name or password"))
    g.token_user = user
    g.actor = user
    # An admin-granted token may act with another user's rights via X-Context-User-ID (reference §1.1).
    context = request.headers.get("X-Context-User-ID", "").strip()
    if context and user.is_admin:
        other = acct.users.get(int(context)) if context.isdigit() else None
        if other is None:
            return problem(ApiError(400, "Invalid X-Context-User-ID"))
        g.actor = other
    return None


def _locked(view: Callable[..., Response]) -> Callable[..., Response]:
    """Run the view with the sandbox lock held and the account resolved."""

    def wrapper(**kwargs: Any) -> Response:
        sb = sandbox()
        with sb.lock:
            return view(sb, sb.account(g.account_host), **kwargs)

    wrapper.__name__ = view.__name__
    return wrapper


def api_base() -> str:
    return f"{request.host_url.rstrip('/')}/{g.account_host}"


def _with() -> set[str]:
    return {w.strip() for w in request.args.get("with", "").split(",") if w.strip()}


def _paging() -> tuple[int, int]:
    try:
        page = int(request.args.get("page", 1))
        limit = int(request.args.get("limit", 50))
    except ValueError:
        raise ApiError(400, "Request validation failed", validation=[
            {"request_id": "0", "errors": [{"code": "InvalidType", "path": "page", "detail": "Expected int."}]}
        ]) from None  # fmt: skip
    if limit > MAX_PAGE:
        raise ApiError(422, "Limit 250 per page")
    return max(page, 1), max(limit, 1)


def _ids_filter(name: str) -> list[int]:
    raw = request.args.getlist(f"filter[{name}]") + request.args.getlist(f"filter[{name}][]")
    raw += [v for k, v in request.args.items(multi=True) if k.startswith(f"filter[{name}][") and k.endswith("]")]
    return [int(v) for v in dict.fromkeys(raw) if v.isdigit()]


def _page_of(items: list[Any], key: str, render: Callable[[Any], dict[str, Any]], *, totals: bool = False) -> Response:
    page, limit = _paging()
    if not items:
        return no_content()
    chunk = items[(page - 1) * limit : page * limit]
    if not chunk:
        return no_content()
    page_count = (len(items) + limit - 1) // limit
    args = {k: request.args.getlist(k) for k in request.args if k != "page"}
    args["limit"] = [str(limit)]
    body: dict[str, Any] = {}
    if totals:
        body["_total_items"] = len(items)
    body["_page"] = page
    if totals:
        body["_page_count"] = page_count
    body["_links"] = hal.page_links(
        f"{api_base()}{request.path[len('/' + g.account_host) :]}", args, page, page < page_count
    )
    body["_embedded"] = {key: [render(item) for item in chunk]}
    return hal_response(body)


def _json_body() -> Any:
    if not request.get_data():
        return None
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "Request body is not valid JSON")
    return data


def _actor() -> User:
    actor: User = g.actor
    return actor


# --- account, users, pipelines -------------------------------------------------------------------


@bp.get("/account")
@_locked
def account(sb: KommoSandbox, acct: Account) -> Response:
    return hal_response(hal.account_json(api_base(), acct, g.token_user.id, _with()))


@bp.get("/users")
@_locked
def users(sb: KommoSandbox, acct: Account) -> Response:
    # Listing users is admin-only; Kommo confirms there is no way around it (reference §5.2).
    if not _actor().is_admin:
        raise ApiError(403, "Insufficient rights")
    with_ = _with()
    return _page_of(list(acct.users.values()), "users", lambda u: hal.user_json(api_base(), u, with_), totals=True)


@bp.get("/users/<int:user_id>")
@_locked
def user(sb: KommoSandbox, acct: Account, user_id: int) -> Response:
    if not _actor().is_admin and _actor().id != user_id:
        raise ApiError(403, "Insufficient rights")
    found = acct.users.get(user_id)
    if found is None:
        raise ApiError(404, f"Cannot GET {request.url}")
    return hal_response(hal.user_json(api_base(), found, _with()))


@bp.get("/leads/pipelines")
@_locked
def pipelines(sb: KommoSandbox, acct: Account) -> Response:
    live = sorted(acct.pipelines.values(), key=lambda p: p.sort)
    return hal_response(
        {
            "_total_items": len(live),
            "_links": {"self": hal.link(f"{api_base()}/api/v4/leads/pipelines")},
            "_embedded": {"pipelines": [hal.pipeline_json(api_base(), acct, p) for p in live]},
        }
    )


@bp.get("/leads/pipelines/<int:pipeline_id>")
@_locked
def pipeline(sb: KommoSandbox, acct: Account, pipeline_id: int) -> Response:
    found = acct.pipelines.get(pipeline_id)
    if found is None:
        raise ApiError(404, f"Cannot GET {request.url}")
    return hal_response(hal.pipeline_json(api_base(), acct, found))


@bp.get("/leads/pipelines/<int:pipeline_id>/statuses")
@_locked
def statuses(sb: KommoSandbox, acct: Account, pipeline_id: int) -> Response:
    found = acct.pipelines.get(pipeline_id)
    if found is None:
        raise ApiError(404, f"Cannot GET {request.url}")
    items = [hal.status_json(api_base(), acct, found, s) for s in sorted(found.statuses, key=lambda s: s.sort)]
    return hal_response({"_total_items": len(items), "_embedded": {"statuses": items}})


# --- contacts ------------------------------------------------------------------------------------


def _contact_renderer(acct: Account) -> Callable[[Any], dict[str, Any]]:
    with_leads = "leads" in _with()
    return lambda c: hal.contact_json(
        api_base(), acct, c, entities.leads_of_contact(acct, c.id) if with_leads else None
    )


@bp.get("/contacts")
@_locked
def contacts(sb: KommoSandbox, acct: Account) -> Response:
    found = entities.search_contacts(acct, request.args.get("query"), _ids_filter("id"))
    if request.args.get("order[id]") == "desc" or request.args.get("order[updated_at]") == "desc":
        found.sort(key=lambda c: c.updated_at if "order[updated_at]" in request.args else c.id, reverse=True)
    return _page_of(found, "contacts", _contact_renderer(acct))


@bp.get("/contacts/<int:contact_id>")
@_locked
def contact(sb: KommoSandbox, acct: Account, contact_id: int) -> Response:
    found = acct.contacts.get(contact_id)
    if found is None or found.is_deleted:
        return no_content()
    return hal_response(_contact_renderer(acct)(found))


@bp.get("/contacts/custom_fields")
@_locked
def contact_fields(sb: KommoSandbox, acct: Account) -> Response:
    fields = sorted(acct.contact_fields.values(), key=lambda f: f.sort)
    return _page_of(fields, "custom_fields", lambda f: hal.field_json(api_base(), acct, f), totals=True)


def _saved(key: str, records: list[Any], rids: list[str] | None, extra: Callable[[Any], dict[str, Any]]) -> Response:
    items = []
    for i, record in enumerate(records):
        item = {"id": record.id, **extra(record)}
        if rids is not None:
            item["request_id"] = rids[i]
        item["_links"] = {"self": hal.link(f"{api_base()}/api/v4/{key}/{record.id}")}
        items.append(item)
    return hal_response({"_links": {"self": hal.link(f"{api_base()}/api/v4/{key}")}, "_embedded": {key: items}})


@bp.post("/contacts")
@_locked
def create_contacts(sb: KommoSandbox, acct: Account) -> Response:
    items = entities.batch(_json_body())
    created = entities.create_contacts(acct, sb.ids, sb.now(), _actor().id, items)
    rids = [entities.request_id(item, i) for i, item in enumerate(items)]
    return _saved("contacts", created, rids, lambda c: {"is_deleted": False, "is_unsorted": False})


@bp.patch("/contacts")
@_locked
def update_contacts(sb: KommoSandbox, acct: Account) -> Response:
    items = entities.batch(_json_body())
    updated = entities.update_contacts(acct, sb.now(), _actor().id, items)
    return _saved("contacts", updated, None, lambda c: {"name": c.name, "updated_at": c.updated_at})


@bp.patch("/contacts/<int:contact_id>")
@_locked
def update_contact(sb: KommoSandbox, acct: Account, contact_id: int) -> Response:
    body = _json_body()
    if not isinstance(body, dict) or not body:
        raise ApiError(400, "Request data can not be empty")
    if contact_id not in acct.contacts:
        raise ApiError(404, f"Cannot PATCH {request.url}")
    updated = entities.update_contacts(acct, sb.now(), _actor().id, [{**body, "id": contact_id}])[0]
    return hal_response(
        {
            "id": updated.id,
            "name": updated.name,
            "updated_at": updated.updated_at,
            "_links": {"self": hal.link(f"{api_base()}/api/v4/contacts/{updated.id}")},
        }
    )


# --- leads ---------------------------------------------------------------------------------------


@bp.get("/leads")
@_locked
def leads(sb: KommoSandbox, acct: Account) -> Response:
    found = entities.visible_leads(acct)
    wanted = _ids_filter("id")
    if wanted:
        found = [lead for lead in found if lead.id in wanted]
    pipelines = _ids_filter("pipeline_id")
    if pipelines:
        found = [lead for lead in found if lead.pipeline_id in pipelines]
    query = (request.args.get("query") or "").casefold()
    if query:
        found = [lead for lead in found if query in lead.name.casefold() or query == str(lead.id)]
    with_contacts = "contacts" in _with()
    return _page_of(found, "leads", lambda lead: hal.lead_json(api_base(), acct, lead, with_contacts))


@bp.get("/leads/<int:lead_id>")
@_locked
def lead(sb: KommoSandbox, acct: Account, lead_id: int) -> Response:
    found = acct.leads.get(lead_id)
    if found is None or found.is_deleted:
        return no_content()
    return hal_response(hal.lead_json(api_base(), acct, found, "contacts" in _with()))


@bp.post("/leads")
@_locked
def create_leads(sb: KommoSandbox, acct: Account) -> Response:
    items = entities.batch(_json_body())
    created = entities.create_leads(acct, sb.ids, sb.now(), _actor().id, items)
    rids = [entities.request_id(item, i) for i, item in enumerate(items)]
    return _saved("leads", created, rids, lambda lead: {})


@bp.patch("/leads")
@_locked
def update_leads(sb: KommoSandbox, acct: Account) -> Response:
    items = entities.batch(_json_body())
    updated = entities.update_leads(acct, sb.now(), _actor().id, items)
    return _saved("leads", updated, None, lambda lead: {"updated_at": lead.updated_at})


@bp.patch("/leads/<int:lead_id>")
@_locked
def update_lead(sb: KommoSandbox, acct: Account, lead_id: int) -> Response:
    body = _json_body()
    if not isinstance(body, dict) or not body:
        raise ApiError(400, "Request data can not be empty")
    if lead_id not in acct.leads:
        raise ApiError(404, f"Cannot PATCH {request.url}")
    updated = entities.update_leads(acct, sb.now(), _actor().id, [{**body, "id": lead_id}])[0]
    return hal_response(
        {
            "id": updated.id,
            "updated_at": updated.updated_at,
            "_links": {"self": hal.link(f"{api_base()}/api/v4/leads/{updated.id}")},
        }
    )


@bp.post("/leads/complex")
@_locked
def complex_leads(sb: KommoSandbox, acct: Account) -> Response:
    # A bare JSON array, not HAL (reference §5.6).
    return plain_json(unsorted.create_complex(acct, sb.ids, sb.now(), _actor().id, _json_body()))


# --- incoming leads (unsorted) -----------------------------------------------------------------------


@bp.post("/leads/unsorted/forms")
@_locked
def unsorted_forms(sb: KommoSandbox, acct: Account) -> Response:
    records = unsorted.create_forms(acct, sb.ids, sb.now(), _actor().id, _json_body())
    items = []
    for record in records:
        shape = hal.unsorted_action_json(api_base(), record)
        items.append({"uid": record.uid, "request_id": record.request_id, "_links": shape["_links"],
                      "_embedded": shape["_embedded"]})  # fmt: skip
    return hal_response({"_total_items": len(items), "_embedded": {"unsorted": items}})


@bp.get("/leads/unsorted")
@_locked
def unsorted_list(sb: KommoSandbox, acct: Account) -> Response:
    uids = request.args.getlist("filter[uid]") + request.args.getlist("filter[uid][]")
    categories = request.args.getlist("filter[category][]") + request.args.getlist("filter[category]")
    pipeline_ids = _ids_filter("pipeline_id")
    found = unsorted.pending(
        acct, uids, categories, pipeline_ids[0] if pipeline_ids else None,
        newest_first=request.args.get("order[created_at]", "desc") == "desc",
    )  # fmt: skip
    return _page_of(found, "unsorted", lambda u: hal.unsorted_json(api_base(), acct, u), totals=True)


@bp.get("/leads/unsorted/<uid>")
@_locked
def unsorted_one(sb: KommoSandbox, acct: Account, uid: str) -> Response:
    record = acct.unsorted.get(uid)
    if record is None:
        return no_content()
    return hal_response(hal.unsorted_json(api_base(), acct, record))


@bp.post("/leads/unsorted/<uid>/accept")
@_locked
def unsorted_accept(sb: KommoSandbox, acct: Account, uid: str) -> Response:
    body = _json_body() or {}
    if not isinstance(body, dict):
        raise ApiError(400, "Request validation failed", validation=[])
    record = unsorted.accept(acct, sb.now(), _actor().id, uid, body)
    return hal_response(hal.unsorted_action_json(api_base(), record))


@bp.delete("/leads/unsorted/<uid>/decline")
@_locked
def unsorted_decline(sb: KommoSandbox, acct: Account, uid: str) -> Response:
    record = unsorted.decline(acct, sb.now(), uid)
    return hal_response(hal.unsorted_action_json(api_base(), record))


# --- webhooks ------------------------------------------------------------------------------------


@bp.get("/webhooks")
@_locked
def webhook_list(sb: KommoSandbox, acct: Account) -> Response:
    hooks = sorted(acct.webhooks.values(), key=lambda h: (h.sort, h.id))
    destination = request.args.get("filter[destination]")
    if destination:
        hooks = [h for h in hooks if h.destination == destination]
    if not hooks:
        return no_content()
    return hal_response(
        {"_total_items": len(hooks), "_embedded": {"webhooks": [hal.webhook_json(acct, h) for h in hooks]}}
    )


@bp.post("/webhooks")
@_locked
def webhook_subscribe(sb: KommoSandbox, acct: Account) -> Response:
    hook = webhooks.subscribe(acct, sb.ids, sb.now(), _actor().id, _json_body())
    return hal_response(hal.webhook_json(acct, hook), status=201)


@bp.delete("/webhooks")
@_locked
def webhook_unsubscribe(sb: KommoSandbox, acct: Account) -> Response:
    webhooks.unsubscribe(acct, _json_body())
    return no_content()
