"""Bitrix24's HTTP edge: the installer, iframe opens (app page, left menu, CRM card tabs), events.

Bitrix24 opens us with a hidden form POSTed into its iframe (reference §2.1): cross-site, no cookies
of ours. Those POSTs and the server-to-server events are CSRF-exempt because they are authenticated
by ``widget.services.installs.bitrix24`` (application token, ``app.info``, ``profile``); our own forms
carry the session token and a CSRF token as everywhere else.
"""

from __future__ import annotations

import os
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from widget.config import ROOT
from widget.crm.bitrix24.events import CRM_UPDATE_EVENTS, EVENT_INSTALL, EVENT_UNINSTALL, card_target
from widget.crm.bitrix24.payloads import EventPost, FramePost
from widget.crm.bitrix24.php import PayloadError
from widget.crm.bitrix24.provider import load_app_card
from widget.crm.errors import CrmError
from widget.domain.settings import BITRIX24
from widget.extensions import app_services
from widget.services.accounts.state import get_account
from widget.services.channels.sandbox_gateway import nudge_sandbox_gateway
from widget.services.installs.bitrix24 import (
    PortalUser,
    Refused,
    handle_event,
    install_from_event,
    install_from_frame,
    open_frame,
)
from widget.services.unit_of_work import database
from widget.web.context import get_db
from widget.web.errors import error_response
from widget.web.frame import library_origin
from widget.web.i18n import normalise
from widget.web.identity import (
    Identity,
    current_identity,
    current_session_token,
    issue_session_token,
    require_admin,
    require_identity,
)
from widget.web.same_origin import csrf
from widget.web.settings.crm_read import crm_read_view

bp = Blueprint("bitrix24", __name__, url_prefix="/bitrix24")
ASSETS = os.path.join(ROOT, "bitrix_app")


def _enabled() -> None:
    if not app_services().settings.bitrix24_enabled:
        abort(404)


def _frame() -> FramePost:
    try:
        return FramePost.parse(request.args, request.form)
    except PayloadError as exc:
        abort(400, description=f"This request does not look like it came from Bitrix24 ({exc}).")


def _frame_csp(portal_origin: str) -> str:
    """Framed only by the portal; scripts from us (and Bitrix24's library host in production); XHR to
    the portal's REST, which BX24.callMethod reaches directly (§2.4: REST answers CORS ``*``)."""
    scripts = " ".join(filter(None, ("'self'", library_origin())))
    return (
        f"frame-ancestors {portal_origin}; default-src 'self'; img-src 'self' data:; "
        f"style-src 'self' 'unsafe-inline'; script-src {scripts}; connect-src 'self' {portal_origin}; "
        "form-action 'self'; base-uri 'none'; object-src 'none'"
    )


def _framed(body: str, portal_origin: str) -> Response:
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = _frame_csp(portal_origin)
    return response


def _identity(user: PortalUser, lang: str) -> Identity:
    return Identity(
        account_id=user.account_id,
        crm=BITRIX24,
        crm_user_id=user.user_id,
        is_admin=user.is_admin,
        lang=normalise(lang),
        frame_origin=user.frame_origin,
        name=user.name,
    )


def _start_session(user: PortalUser, lang: str) -> str:
    identity = _identity(user, lang)
    st = issue_session_token(identity)
    # Render this response as that user (templates read the identity and the token).
    g.identity = identity
    g.session_token = st
    g.frame_ancestors = user.frame_origin
    return st


def _refused(exc: Refused) -> Any:
    return error_response(exc.status, exc.message)


# ------------------------------------------------------------------ install


@bp.post("/install")
@csrf.exempt  # authenticated by app.info + profile (ADMIN) before anything is stored
def install() -> Any:
    """The initial installation path: the installer page in the iframe, or ``ONAPPINSTALL``."""
    _enabled()
    services = app_services()
    if request.form.get("event"):
        try:
            event = EventPost.parse(request.form.items(multi=True))
        except PayloadError as exc:
            return jsonify(status="error", error="bad_request", message=str(exc)), 400
        if event.event != EVENT_INSTALL:
            return jsonify(status="error", error="unexpected_event"), 400
        try:
            account_id = install_from_event(database(), services, event)
        except Refused as exc:
            return jsonify(status="error", error="invalid_request", message=exc.message), exc.status
        app_services().jobs.enqueue("bitrix24_refresh_crm_data", account_id)
        nudge_sandbox_gateway(services, account_id)  # a reinstall brings its channels back
        return jsonify(status="ok")

    frame = _frame()
    try:
        user = install_from_frame(database(), services, frame)
    except Refused as exc:
        return _refused(exc)
    app_services().jobs.enqueue("bitrix24_refresh_crm_data", user.account_id)
    nudge_sandbox_gateway(services, user.account_id)  # a reinstall brings its channels back
    _start_session(user, frame.lang)
    lang = normalise(frame.lang)
    card = load_app_card()
    public_url = services.settings.public_url
    config = {
        "placements": card.placements(public_url, lang),
        "events": card.events(public_url),
        "texts": {k: card.text(k, lang) for k in ("working", "done", "failed")},
    }
    body = render_template("bitrix24/install.html", config=config, texts=config["texts"])
    return _framed(body, user.frame_origin)


# ------------------------------------------------------------------ iframe opens


def _open(default_card: bool) -> Any:
    _enabled()
    frame = _frame()
    try:
        user = open_frame(database(), app_services(), frame)
    except Refused as exc:
        return _refused(exc)
    st = _start_session(user, frame.lang)
    target = card_target(frame)
    if target is not None:
        entity_type, entity_id = target
        return redirect(
            url_for("pages.home", st=st, view="chats", entity_type=entity_type, entity_id=entity_id), code=303
        )
    if not user.is_admin or default_card:
        # Employees get the chat panel; the settings are for administrators only.
        return redirect(url_for("pages.home", st=st, view="chats"), code=303)
    # A GET of our own, so the page's links and forms carry this session (and its CSRF key).
    return redirect(url_for("bitrix24.home", st=st), code=303)


def _app_page(report: Any = None, error: str = "") -> Response:
    ident = current_identity()
    assert ident is not None
    if ident.crm != BITRIX24:
        abort(404)
    account = get_account(get_db(), ident.account_id)
    assert account is not None
    body = render_template(
        "bitrix24/app.html",
        account=account,
        crm_read=crm_read_view(account.id, BITRIX24),
        report=report,
        error=error,
    )
    return _framed(body, ident.frame_origin)


@bp.post("/app")
@csrf.exempt  # authenticated by application token + app.info + profile
def app_page() -> Any:
    """The app's page (left menu "Wazzup chats", ``PLACEMENT=DEFAULT`` or ``LEFT_MENU``)."""
    return _open(default_card=False)


@bp.post("/placement")
@csrf.exempt  # authenticated by application token + app.info + profile
def placement() -> Any:
    """CRM detail tabs: the chat panel of that deal, contact or lead."""
    return _open(default_card=True)


@bp.get("/app")
@bp.get("/placement")
def opened_directly() -> Any:
    abort(400, description="Open this page from Bitrix24: left menu → Wazzup chats.")


@bp.get("/home")
@require_identity
def home() -> Any:
    """The app page: "Open Wazzup account" for administrators; employees go to the chat panel."""
    ident = current_identity()
    assert ident is not None
    if not ident.is_admin:
        return redirect(url_for("pages.home", st=current_session_token(), view="chats"))
    return _app_page()


@bp.post("/refresh")
@require_admin
def refresh() -> Any:
    """The app page's "Refresh CRM data" (our own form: session token + CSRF token)."""
    from widget.services.crm_data.refresh import refresh_crm_data

    ident = current_identity()
    assert ident is not None
    try:
        report = refresh_crm_data(database(), app_services(), ident.account_id)
    except CrmError as exc:
        return _app_page(error=exc.user_message)
    return _app_page(report=report)


# ------------------------------------------------------------------ events


@bp.post("/events")
@csrf.exempt  # authenticated by the stored application token (constant-time comparison)
def events() -> Any:
    _enabled()
    try:
        event = EventPost.parse(request.form.items(multi=True))
    except PayloadError as exc:
        return jsonify(status="error", error="bad_request", message=str(exc)), 400
    try:
        outcome = handle_event(database(), app_services(), event)
    except Refused as exc:
        return jsonify(status="error", error="invalid_application_token", message=exc.message), exc.status
    if outcome.installed and outcome.account_id is not None:
        app_services().jobs.enqueue("bitrix24_refresh_crm_data", outcome.account_id)
    elif outcome.event == EVENT_UNINSTALL and outcome.account_id is not None:
        nudge_sandbox_gateway(app_services(), outcome.account_id)  # its channels leave the console
    elif outcome.event in CRM_UPDATE_EVENTS and outcome.account_id is not None:
        app_services().jobs.enqueue("process_crm_events", outcome.account_id)  # the responsible may have changed
    return jsonify(status="ok", event=outcome.event)


# ------------------------------------------------------------------ assets


@bp.get("/assets/<path:filename>")
def asset(filename: str) -> Any:
    """Installer and placement scripts, the offline BX24 bridge, the app card."""
    if not filename.endswith((".js", ".json", ".css")):
        abort(404)
    return send_from_directory(ASSETS, filename, max_age=300)
