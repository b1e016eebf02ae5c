"""The Bitrix24-looking shell of a sandbox portal, served from the portal's own origin.

Left menu "Wazzup chats" → the app in the work area (a hidden form POSTed into the iframe, as
Bitrix24 renders it); CRM deal/contact/lead cards with the app's detail tab; a user switcher (admin
or not); Market → install (the installer in the iframe until ``installFinish``) / uninstall; a
sandbox panel with the fault switches and the request log. The page answers the BX24 bridge's
``getInitData``, ``resizeWindow`` (which ``BX24.fitWindow`` sends too), ``setInstallFinish`` and
``refreshAuth`` messages (``static/shell.js``), and only from the app's origin. The app's frame starts
at Bitrix24's initial 390 px and changes only when the app asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request, url_for

from sandbox.bitrix24.portal import MODE_SIMPLE, Portal, User
from sandbox.bitrix24.state import FrameOpen, SandboxError, SandboxState

bp = Blueprint("b24_shell", __name__)
USER_COOKIE = "b24_sandbox_user"
KINDS = {"deal": "Deals", "contact": "Contacts", "lead": "Leads"}
# Bitrix24's own language ids in LANG_ALL (Spanish "la", Brazilian Portuguese "br").
_BITRIX_LANG = {"es": "la", "pt": "br"}


def _state() -> SandboxState:
    state: SandboxState = current_app.extensions["bitrix24_sandbox"]
    return state


def _portal() -> Portal:
    portal, moved = _state().resolve_host(request.host)
    if moved is not None:
        abort(redirect(f"{moved.origin}{request.full_path.rstrip('?')}"))
    if portal is None:
        abort(404, description=f"No sandbox portal answers to {request.host}.")
    return portal


def _user(portal: Portal) -> User:
    wanted = request.cookies.get(USER_COOKIE, "")
    user = portal.users.get(int(wanted)) if wanted.isdigit() else None
    if user is None or not user.active:
        user = next((u for u in portal.users.values() if u.admin and u.active), next(iter(portal.users.values())))
    return user


def _title(portal: Portal, user: User, fallback: str, lang_all: Mapping[str, Any]) -> str:
    code = _BITRIX_LANG.get(user.lang, user.lang)
    entry = lang_all.get(code) or lang_all.get("en") or {}
    return str(entry.get("TITLE") or fallback) if isinstance(entry, dict) else fallback


def _menu(portal: Portal, user: User) -> dict[str, Any]:
    state = _state()
    inst = portal.installation
    app_item = None
    placements = []
    if inst is not None and state.app is not None:
        if inst.installed or user.admin:
            app_item = {
                "title": state.app.title(user.lang),
                "href": url_for("b24_shell.home", open="app"),
                "pending": not inst.installed,
            }
        if inst.installed:
            placements = [
                {
                    "title": _title(portal, user, b.title or state.app.title(user.lang), b.lang_all),
                    "href": url_for("b24_shell.home", open="placement", binding=b.id),
                }
                for b in inst.placements("LEFT_MENU")
            ]
    return {"app": app_item, "placements": placements, "kinds": _kinds(portal)}


def _kinds(portal: Portal) -> dict[str, str]:
    # Simple CRM has no leads (reference §6.4).
    return {k: v for k, v in KINDS.items() if not (k == "lead" and portal.crm_mode == MODE_SIMPLE)}


def _page(template: str, portal: Portal, user: User, **kw: Any) -> str:
    state = _state()
    return render_template(
        template,
        portal=portal,
        user=user,
        users=[u for u in portal.users.values() if u.active][:40],
        menu=_menu(portal, user),
        app=state.app,
        installation=portal.installation,
        **kw,
    )


def _frame_config(frame: FrameOpen) -> dict[str, Any]:
    return {
        "appOrigin": frame.app_origin,
        "appSid": frame.app_sid,
        "init": frame.init_data(),
        "installer": frame.is_installer,
        "installFinishUrl": url_for("b24_shell.install_finish"),
        "refreshAuthUrl": url_for("b24_shell.refresh_auth"),
        "afterInstallUrl": url_for("b24_shell.home", open="app"),
    }


@bp.get("/shell")
def home() -> Any:
    """The portal's start page; ``open=app|install|placement`` puts the app in the work area."""
    portal = _portal()
    user = _user(portal)
    state = _state()
    frame = None
    notice = ""
    what = request.args.get("open", "")
    try:
        if what == "install":
            frame = state.begin_install(portal, user.id)
        elif what == "app":
            frame = state.open_app(portal, user.id)
        elif what == "placement":
            inst = portal.installation
            binding = next(
                (b for b in (inst.placements() if inst else []) if str(b.id) == request.args.get("binding")), None
            )
            if binding is None:
                raise SandboxError("This menu item no longer exists.")
            frame = state.open_app(portal, user.id, placement=binding.code, options={"URI": "/"})
    except SandboxError as exc:
        notice = str(exc)
    return _page(
        "bitrix24_shell/home.html",
        portal,
        user,
        frame=frame,
        frame_config=_frame_config(frame) if frame else None,
        notice=notice,
    )


@bp.get("/shell/switch")
def switch_user() -> Any:
    """The user switcher: act as another employee of this portal (admin or not)."""
    portal = _portal()
    uid = request.args.get("as", "")
    target = request.args.get("next") or url_for("b24_shell.home")
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("b24_shell.home")
    response = redirect(target)
    if uid.isdigit() and int(uid) in portal.users:
        response.set_cookie(USER_COOKIE, uid, samesite="Lax", httponly=True)
    return response


@bp.get("/shell/crm/<kind>")
def crm_list(kind: str) -> Any:
    portal = _portal()
    if kind not in _kinds(portal):
        abort(404)
    user = _user(portal)
    records = [dict(r) for _, r in sorted(portal.records[kind].items())]
    return _page("bitrix24_shell/crm_list.html", portal, user, kind=kind, kind_title=KINDS[kind], records=records)


@bp.route("/shell/crm/<kind>/<int:rid>", methods=["GET", "POST"])
def crm_card(kind: str, rid: int) -> Any:
    """A CRM card: "General" with the responsible selector, plus the app's detail tab."""
    portal = _portal()
    if kind not in _kinds(portal):
        abort(404)
    user = _user(portal)
    state = _state()
    if request.method == "POST":
        assigned = request.form.get("ASSIGNED_BY_ID", "")
        if assigned.isdigit():
            state.update_record(portal, kind, rid, {"ASSIGNED_BY_ID": assigned}, user.id)
        return redirect(url_for("b24_shell.crm_card", kind=kind, rid=rid))
    record = portal.records[kind].get(rid)
    if record is None:
        abort(404)
    code = f"CRM_{kind.upper()}_DETAIL_TAB"
    inst = portal.installation
    tabs = [
        {"id": b.id, "title": _title(portal, user, b.title, b.lang_all)}
        for b in (inst.placements(code) if inst is not None and inst.installed else [])
    ]
    frame = None
    notice = ""
    tab = request.args.get("tab", "")
    if tab and any(str(t["id"]) == tab for t in tabs):
        try:
            frame = state.open_app(
                portal,
                user.id,
                placement=code,
                options={"ID": str(rid), "URI": f"/crm/{kind}/details/{rid}/?IFRAME=Y&IFRAME_TYPE=SIDE_SLIDER"},
            )
        except SandboxError as exc:
            notice = str(exc)
    return _page(
        "bitrix24_shell/crm_card.html",
        portal,
        user,
        kind=kind,
        kind_title=KINDS[kind],
        record=record,
        tabs=tabs,
        tab=tab,
        frame=frame,
        frame_config=_frame_config(frame) if frame else None,
        notice=notice,
    )


@bp.get("/shell/market")
def market() -> Any:
    portal = _portal()
    return _page("bitrix24_shell/market.html", portal, _user(portal))


@bp.post("/shell/market/uninstall")
def market_uninstall() -> Any:
    portal = _portal()
    user = _user(portal)
    if not user.admin:
        abort(403, description="Only an administrator can delete applications.")
    try:
        _state().uninstall(portal, clean=request.form.get("clean") == "1")
    except SandboxError:
        pass
    return redirect(url_for("b24_shell.market"))


@bp.get("/shell/sandbox")
def sandbox_panel() -> Any:
    portal = _portal()
    state = _state()
    entries = state.log.entries()[-60:]
    counts: dict[str, int] = {}
    for e in state.log.entries():
        counts[e.kind] = counts.get(e.kind, 0) + 1
    return _page(
        "bitrix24_shell/sandbox.html",
        portal,
        _user(portal),
        entries=list(reversed(entries)),
        counts=counts,
        faults=state.faults,
        deliveries=list(reversed(state.deliveries[-20:])),
    )


@bp.post("/shell/sandbox")
def sandbox_action() -> Any:
    portal = _portal()
    state = _state()
    action = request.form.get("action", "")
    try:
        if action == "crm-mode":
            state.set_crm_mode(portal, request.form.get("mode", "classic"))
        elif action == "expire-tokens":
            state.expire_tokens_now(portal)
        elif action == "outage":
            state.set_outage(request.form.get("on") == "1")
        elif action == "latency":
            state.set_latency(float(request.form.get("seconds") or 0))
        elif action == "fail-next":
            state.fail_next(int(request.form.get("count") or 1), int(request.form.get("status") or 500))
        elif action == "operation-limit":
            state.limit_method(portal, request.form.get("method", "user.get"), float(request.form.get("seconds") or 5))
        elif action == "rename":
            renamed = state.rename_portal(portal, request.form.get("domain", ""))
            return redirect(f"{renamed.origin}{url_for('b24_shell.sandbox_panel')}")
        elif action == "reset-log":
            state.reset_log()
    except (SandboxError, ValueError) as exc:
        abort(400, description=str(exc))
    return redirect(url_for("b24_shell.sandbox_panel"))


# ------------------------------------------------------------------ the BX24 bridge's server side


def _sid() -> str:
    body = request.get_json(silent=True) or {}
    return str(body.get("app_sid") or "") if isinstance(body, dict) else ""


@bp.post("/shell/api/install-finish")
def install_finish() -> Response:
    """``setInstallFinish`` from the installer frame: the app is installed from now on."""
    portal = _portal()
    state = _state()
    try:
        if state.frame(_sid()).member_id != portal.member_id:
            raise SandboxError("a frame of another portal")
        state.install_finish_from_frame(_sid())
    except SandboxError as exc:
        return jsonify(ok=False, error=str(exc))
    return jsonify(ok=True)


@bp.post("/shell/api/refresh-auth")
def refresh_auth() -> Response:
    _portal()
    try:
        return jsonify(_state().refresh_frame_auth(_sid()))
    except SandboxError as exc:
        return jsonify(error=str(exc))
