"""The token endpoint ``/{host}/oauth2/access_token`` and the "button on site" popup ``/oauth``.

Kommo runs the token endpoint per account host (reference §1.3). Bodies come as JSON (the docs) or
form-urlencoded (the official PHP library); both are accepted.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request
from werkzeug.wrappers import Response

from sandbox.kommo.errors import OAuthError
from sandbox.kommo.responses import oauth_problem, plain_json
from sandbox.kommo.state import KommoSandbox

bp = Blueprint("kommo_oauth", __name__)


def sandbox() -> KommoSandbox:
    return current_app.extensions["kommo_sandbox"]


def _params() -> dict[str, Any]:
    data = request.get_json(silent=True) if request.is_json else None
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None}
    return request.form.to_dict()


def _same(given: Any, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


@bp.post("/<account_host>/oauth2/access_token")
def access_token(account_host: str) -> Response:
    sb = sandbox()
    params = _params()
    try:
        if account_host not in sb.accounts:
            raise OAuthError(400, "Invalid account")
        grant = params.get("grant_type")
        if grant not in ("authorization_code", "refresh_token"):
            raise OAuthError(400, "Check the `grant_type` parameter")
        if not _same(params.get("client_id"), sb.client_id):
            raise OAuthError(400, "Check the `client_id` parameter")
        if not _same(params.get("client_secret"), sb.client_secret):
            raise OAuthError(400, "Check the `client_secret` parameter")
        # The docs list redirect_uri for both grants; it must be the integration's own.
        if params.get("redirect_uri") != sb.redirect_uri:
            raise OAuthError(400, "Redirect URI is not associated with client")
        if grant == "authorization_code":
            if not params.get("code"):
                raise OAuthError(400, "Check the `code` parameter")
            pair = sb.tokens.exchange_code(account_host, str(params["code"]), sb.redirect_uri)
        else:
            if not params.get("refresh_token"):
                raise OAuthError(400, "Check the `refresh_token` parameter")
            pair = sb.tokens.refresh(account_host, str(params["refresh_token"]))
    except OAuthError as error:
        return oauth_problem(error)
    return plain_json(
        {
            "token_type": "Bearer",
            "expires_in": int(pair.access_expires_at - pair.issued_at),
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "server_time": int(pair.issued_at),
        }
    )


# --- the popup that www.kommo.com/oauth shows ---------------------------------------------------------
# Our server builds its address like any account's: KOMMO_BASE_URL with host "www.kommo.test", so the
# popup answers under "/www.<domain>/oauth" as well as under "/oauth".


def _www(www_host: str | None) -> None:
    if www_host is not None and not www_host.startswith("www."):
        abort(404)


@bp.get("/oauth")
@bp.get("/<www_host>/oauth")
def popup(www_host: str | None = None) -> str | tuple[str, int]:
    """Pick an account and a user, then Allow or Decline, like ``https://www.kommo.com/oauth``."""
    _www(www_host)
    sb = sandbox()
    client_id = request.args.get("client_id", "")
    error = None if client_id == sb.client_id else "Unknown integration (client_id)."
    with sb.lock:
        accounts = [
            {"host": a.host, "name": a.name, "users": [u for u in a.users.values() if u.is_active]}
            for a in sb.accounts.values()
        ]
    page = render_template(
        "kommo_shell/oauth_popup.html",
        accounts=accounts,
        client_id=client_id,
        state=request.args.get("state", ""),
        mode=request.args.get("mode", "popup"),
        selected_host=request.args.get("account", ""),
        selected_user=request.args.get("user", ""),
        error=error,
    )
    return (page, 400) if error else page


@bp.post("/oauth")
@bp.post("/<www_host>/oauth")
def decide(www_host: str | None = None) -> Response | tuple[str, int]:
    """Allow: redirect to ``{redirect_uri}?code&referer&state&client_id``; Decline:
    ``?error=access_denied&client_id&state`` (reference §1.2, item 3)."""
    _www(www_host)
    sb = sandbox()
    if request.form.get("client_id") != sb.client_id:
        abort(400)
    host, _, raw_user = request.form.get("who", "").partition("|")
    state = request.form.get("state", "")
    if host not in sb.accounts:
        abort(400)
    if request.form.get("decision") == "deny":
        return redirect(sb.button_redirect_url(host, state, deny=True))
    if not raw_user.isdigit():
        abort(400)
    user_id = int(raw_user)
    with sb.lock:
        acct = sb.account(host)
        user = acct.users.get(user_id)
        if user is None:
            abort(400)
        # Only admins make the first install; others may authorize an installed integration (§1.1).
        if not acct.widget_installed and not user.is_admin:
            message = f"{user.name} is not an administrator of {acct.name}: only an administrator can install it."
            page = render_template(
                "kommo_shell/oauth_popup.html",
                accounts=[],
                error=message,
                client_id=sb.client_id,
                state=state,
                mode="popup",
                selected_host=host,
                selected_user="",
            )
            return page, 403
        acct.widget_installed = True
    return redirect(sb.button_redirect_url(host, state, user_id=user_id))
