"""Our own pages inside the CRM iframe: the launch hop and the account pages' entry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, g, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale, gettext
from itsdangerous import BadSignature, SignatureExpired

from widget.services.sessions.nonces import use_once
from widget.web.context import get_db
from widget.web.identity import (
    LAUNCH_MAX_AGE,
    SESSION_MAX_AGE,
    current_identity,
    current_session_token,
    issue_session_token,
    read_launch_token,
    require_identity,
)
from widget.web.urls import surl

bp = Blueprint("pages", __name__)


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {
        "surl": surl,
        "identity": current_identity(),
        "session_token": current_session_token(),
        "get_locale": lambda: str(get_locale() or "en"),  # <html lang> in base.html
    }


@bp.get("/app/launch")
def launch() -> Any:
    """Exchange a single-use launch token for a session token in the page URL."""
    token = request.args.get("lt", "")
    try:
        identity, jti = read_launch_token(token)
    except SignatureExpired:
        abort(401, description=gettext("This link has expired. Please reopen the integration from your CRM."))
    except (BadSignature, KeyError, ValueError, TypeError):
        abort(401, description=gettext("This link is not valid. Please reopen the integration from your CRM."))
    if not use_once(get_db(), f"launch:{jti}", timedelta(seconds=LAUNCH_MAX_AGE + 60)):
        abort(401, description=gettext("This link was already used. Please reopen the integration from your CRM."))
    st = issue_session_token(identity)
    target = request.args.get("next") or ""
    g.frame_ancestors = identity.frame_origin
    if target == "chats" or not identity.is_admin:
        # The chat panel; a CRM card passes on which card it is (checked there, never trusted).
        card: dict[str, Any] = {k: request.args[k] for k in ("entity_type", "entity_id") if request.args.get(k)}
        return redirect(url_for("chats.panel", st=st, **card))
    return redirect(url_for("pages.home", st=st))


@bp.get("/app/session")
@require_identity
def session_state() -> Any:
    """The page scripts' keep-alive: a still-valid session answers with its successor once it is
    old (``X-Session-Renewed``), an ended one with the 401 that says how to get back."""
    response = jsonify(expires_in=SESSION_MAX_AGE)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/app")
@require_identity
def home() -> Any:
    """The account's entry page: admins land on the "CRM integration" tab, other employees on a
    page that leads to their chats (``view=chats`` is the chat panel)."""
    ident = current_identity()
    assert ident is not None
    if request.args.get("view") == "chats":
        from widget.web.chats import render_panel

        return render_panel(request.args.get("chat", type=int))
    if ident.is_admin:
        from widget.web.settings import render_crm_tab

        return render_crm_tab(request.args.get("channel", type=int))
    from widget.services.accounts.state import get_account

    return render_template("pages/home.html", account=get_account(get_db(), ident.account_id))
