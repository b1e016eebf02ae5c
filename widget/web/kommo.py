"""Kommo's HTTP edge: install callback, the button flow's start, the access-revoked hook, and
``/kommo/session`` (the widget's one-time JWT → a launch URL for our iframe pages).

Every inbound call is verified (``widget.crm.kommo.events``) before it touches the database.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request, url_for

from widget.crm.kommo.events import InboundRejected, verify_revoke_hook, verify_widget_token
from widget.crm.kommo.provider import KommoProvider, make_state, read_state
from widget.domain.settings import KOMMO
from widget.extensions import app_services
from widget.services.installs.kommo import SOURCE_BUTTON, SOURCE_WIDGET, InstallRefused, revoke_access
from widget.services.installs.kommo_callback import HostRefused, StateReused, install_finished, store_install_code
from widget.services.sessions.kommo import SessionRefused, is_installed_kommo_origin, start_widget_session
from widget.services.unit_of_work import database
from widget.web.context import get_db
from widget.web.identity import LAUNCH_MAX_AGE, Identity, issue_launch_token
from widget.web.limits import SESSION_FAILURES, callback_limits, guarded_by_failures
from widget.web.same_origin import csrf

bp = Blueprint("kommo", __name__, url_prefix="/kommo")

# Where the widget may ask to open us (manifest locations, reference §4.3), and what it opens.
LOCATIONS = {"widget_page": "chats", "lcard": "chats", "advanced_settings": "", "settings": ""}
ENTITY_TYPES = ("lead", "contact")


def _provider() -> KommoProvider:
    services = app_services()
    if not services.settings.kommo_enabled:
        abort(404)
    return KommoProvider(services.settings)


# ------------------------------------------------------------------ install


@bp.get("/connect")
def connect() -> Any:
    """Start of the button/popup flow: Kommo's account picker with a fresh state of ours."""
    provider = _provider()
    return redirect(provider.authorize_url(make_state(current_app.config["SECRET_KEY"])))


@bp.get("/oauth/callback")
@callback_limits
def oauth_callback() -> Any:
    """The Redirect URI. Two callers (reference §1.2):

    * Kommo itself, when the widget is installed: ``code``, ``referer``, ``from_widget``, no state.
      It waits at most 3 s and never resends, so the code is stored and exchanged by a job.
    * a person's browser at the end of the button flow: ``code``, ``referer``, ``state``,
      ``client_id`` — or ``error=access_denied`` when they declined.
    Unknown extra parameters (``platform``) are ignored."""
    provider = _provider()
    args = request.args
    if args.get("error"):
        # Declining is a choice, not a failure: say what happened and how to connect later.
        return render_template("kommo/access_denied.html", error=args.get("error", "")), 200
    code = args.get("code", "")
    if not code or len(code) > 4096:
        abort(400, description="This link is missing the authorization code from Kommo.")
    client_id = args.get("client_id")
    if client_id is not None and not hmac.compare_digest(client_id.encode(), provider.client_id.encode()):
        abort(400, description="This authorization was issued for another integration.")
    state = args.get("state")
    nonce: str | None = None
    if state:
        source = SOURCE_BUTTON
        try:
            nonce = read_state(current_app.config["SECRET_KEY"], state)
        except InboundRejected as exc:
            abort(400, description=f"This connection link is not valid ({exc.reason}). Please start again.")
    elif "from_widget" in args:
        source = SOURCE_WIDGET
    else:
        abort(400, description="This authorization did not come from Kommo's install flow.")
    session = get_db()
    try:
        stored = store_install_code(session, provider, app_services().box, args.get("referer"), code, source, nonce)
    except StateReused:
        abort(400, description="This connection link was already used. Please start again.")
    except HostRefused as exc:
        current_app.logger.warning("Kommo callback refused: %s", exc.reason)
        abort(400, description="This authorization names an address that is not a Kommo account.")
    except InstallRefused as exc:
        abort(exc.status, description=exc.message)
    pending_id, new = stored.pending_id, stored.new
    if new:
        # A repeated code is already on its way (or done): the sweep retries it, not each resend.
        app_services().jobs.enqueue("kommo_complete_install", pending_id)
    if source == SOURCE_WIDGET:
        return jsonify(status="accepted"), 200
    done, failed = install_finished(session, pending_id)
    return render_template("kommo/installed.html", host=stored.host, done=done, failed=failed)


# ------------------------------------------------------------------ uninstall


@bp.get("/uninstall")
def uninstall() -> Any:
    """Kommo's "access revoked" hook (reference §2). Verified before anything is read."""
    provider = _provider()
    try:
        kommo_account_id = verify_revoke_hook(
            request.args, provider.client_id, provider.settings.kommo_client_secret or ""
        )
    except InboundRejected as exc:
        current_app.logger.warning("Kommo revoke hook refused: %s", exc.reason)
        return jsonify(error="unauthorized", message="The signature does not match."), 401
    revoked = revoke_access(database(), kommo_account_id)
    return jsonify(status="ok", revoked=revoked), 200


# ------------------------------------------------------------------ widget session (CORS)


def _known_kommo_origin(provider: KommoProvider, origin: str | None) -> bool:
    return is_installed_kommo_origin(get_db(), provider.settings, origin)


def _with_cors(response: Response, origin: str | None) -> Response:
    response.headers["Vary"] = "Origin"
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


def _session_error(status: int, message: str, origin: str | None) -> Response:
    codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 503: "unavailable"}
    response = jsonify(error=codes.get(status, "error"), message=message)
    response.status_code = status
    return _with_cors(response, origin)


@bp.route("/session", methods=["OPTIONS"])
def session_preflight() -> Any:
    """CORS preflight of ``$authorizedAjax``: allowed only from an installed account's Kommo origin."""
    provider = _provider()
    origin = request.headers.get("Origin")
    if not _known_kommo_origin(provider, origin):
        return _with_cors(Response(status=403), None)
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "POST"
    response.headers["Access-Control-Allow-Headers"] = "X-Auth-Token, Content-Type"
    response.headers["Access-Control-Max-Age"] = "600"
    return _with_cors(response, origin)


@bp.post("/session")
@csrf.exempt  # authenticated by the one-time JWT, not by a session of ours
@guarded_by_failures("kommo-session", SESSION_FAILURES, lambda status: status in (401, 403))
def open_session() -> Any:
    """``X-Auth-Token`` (reference §3) → ``{"url": <launch URL>, "expires_in": 120}``."""
    provider = _provider()
    settings = provider.settings
    origin = request.headers.get("Origin")
    cors_origin = origin if _known_kommo_origin(provider, origin) else None
    try:
        claims = verify_widget_token(
            request.headers.get("X-Auth-Token"),
            client_id=provider.client_id,
            client_secret=settings.kommo_client_secret or "",
            audience=settings.public_origin,
        )
    except InboundRejected as exc:
        return _session_error(401, f"Kommo's token was refused: {exc.reason}.", cors_origin)

    try:
        body = request.get_json(silent=True) if request.data else {}
    except RecursionError:  # nesting past the parser's limit: as malformed as any bad JSON
        body = None
    if not isinstance(body, dict):
        return _session_error(400, "The request body must be a JSON object.", cors_origin)
    location = body.get("location", "widget_page")
    if location not in LOCATIONS:
        return _session_error(400, f"Unknown location {location!r}.", cors_origin)
    entity_type, entity_id = body.get("entity_type"), body.get("entity_id")
    if entity_type is not None and entity_type not in ENTITY_TYPES:
        return _session_error(400, f"Unknown entity type {entity_type!r}.", cors_origin)
    if entity_id is not None and (isinstance(entity_id, bool) or not isinstance(entity_id, int) or entity_id <= 0):
        return _session_error(400, "entity_id must be a positive integer.", cors_origin)

    try:
        user = start_widget_session(get_db(), database(), app_services().box, provider, claims, origin)
    except SessionRefused as exc:
        return _session_error(exc.status, exc.message, cors_origin)

    identity = Identity(
        account_id=user.account_id,
        crm=KOMMO,
        crm_user_id=user.crm_user_id,
        is_admin=user.is_admin,
        lang=user.lang,
        frame_origin=user.frame_origin,
        name=user.name,
    )
    params: dict[str, Any] = {"lt": issue_launch_token(identity)}
    if LOCATIONS[location]:
        params["next"] = LOCATIONS[location]
    if entity_type is not None and entity_id is not None:
        # The card the chat panel opens on (the same names the Bitrix24 placement passes on).
        # Not secret and not trusted: the chat pages check what this user may see in it.
        params.update(entity_type=entity_type, entity_id=entity_id)
    url = settings.public_origin + url_for("pages.launch", **params)
    return _with_cors(jsonify(url=url, expires_in=LAUNCH_MAX_AGE), user.frame_origin)
