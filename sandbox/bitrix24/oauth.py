"""The sandbox's OAuth server (``oauth.bitrix.info`` stand-in), mounted under ``/oauth-server``.

* ``/oauth-server/oauth/token/`` (GET query or POST form, reference §4.1): ``refresh_token`` rotates
  the pair; ``authorization_code`` exchanges a 30-second code.
* ``/oauth-server/rest/app.info`` and ``…/app.info/`` (Addendum: b24pysdk adds the slash): the
  trusted view of a token, in the shape the official Python SDK parses (reference §2.2).
"""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox.bitrix24.reqlog import KIND_APP_INFO, KIND_TOKEN
from sandbox.bitrix24.rest import time_block
from sandbox.bitrix24.state import SandboxState

bp = Blueprint("b24_oauth", __name__, url_prefix="/oauth-server")


def _state() -> SandboxState:
    state: SandboxState = current_app.extensions["bitrix24_sandbox"]
    return state


def _error(status: int, code: str, description: str) -> tuple[Response, int]:
    return jsonify(error=code, error_description=description), status


@bp.route("/oauth/token/", methods=["GET", "POST"])
@bp.route("/oauth/token", methods=["GET", "POST"])
def token() -> Any:
    state = _state()
    values = request.values
    grant_type = values.get("grant_type", "")
    status, body, member = _token(state, values)
    state.log.add(
        at=time.time(),
        kind=KIND_TOKEN,
        host=request.host,
        http_method=request.method,
        path=request.path,
        grant_type=grant_type,
        member_id=member,
        token=values.get("refresh_token", "") or values.get("code", ""),
        status=status,
    )
    return jsonify(body), status


def _token(state: SandboxState, values: Any) -> tuple[int, dict[str, Any], str]:
    app = state.app
    client_id = values.get("client_id", "")
    secret = values.get("client_secret", "")
    if (
        app is None
        or not hmac.compare_digest(client_id.encode(), app.client_id.encode())
        or not hmac.compare_digest(secret.encode(), app.client_secret.encode())
    ):
        return 401, {"error": "invalid_client", "error_description": "Invalid client credentials"}, ""
    grant_type = values.get("grant_type", "")
    now = state.clock()
    with state.lock:
        if grant_type == "refresh_token":
            grant = state.tokens.rotate(values.get("refresh_token", ""), now)
        elif grant_type == "authorization_code":
            code = state.codes.pop(values.get("code", ""), None)
            if code is None or code[2] < now:
                return 400, {"error": "invalid_grant", "error_description": "Invalid authorization code"}, ""
            grant = state.issue_token(code[0], code[1])
        else:
            return 400, {"error": "invalid_request", "error_description": "Unsupported grant_type"}, ""
        if grant is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}, ""
        portal = state.portals[grant.member_id]
        if portal.installation is None:
            return 401, {"error": "invalid_client", "error_description": "Application not installed"}, grant.member_id
        return 200, state.token_response(grant), grant.member_id


@bp.route("/rest/app.info", methods=["GET", "POST"])
@bp.route("/rest/app.info/", methods=["GET", "POST"])
@bp.route("/rest/app.info.json", methods=["GET", "POST"])
def app_info() -> Any:
    state = _state()
    token = request.values.get("auth") or request.values.get("access_token") or ""
    header = request.headers.get("Authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:].strip()
    started = time.time()
    status, body, member, user_id = _app_info(state, token)
    body["time"] = time_block(started, time.time())
    state.log.add(
        at=time.time(),
        kind=KIND_APP_INFO,
        host=request.host,
        http_method=request.method,
        path=request.path,
        member_id=member,
        user_id=user_id,
        token=token,
        status=status,
    )
    return jsonify(body), status


def _app_info(state: SandboxState, token: str) -> tuple[int, dict[str, Any], str, int | None]:
    with state.lock:
        gone = state.tokens.gone_reason(token) if token else None
        if gone:
            return 401, {"error": gone, "error_description": "The access token provided is no longer valid."}, "", None
        grant = state.tokens.by_access(token) if token else None
        if grant is None:
            return (
                401,
                {"error": "invalid_token", "error_description": "The access token provided is invalid."},
                "",
                None,
            )
        if grant.expires_at <= state.clock():
            return (
                401,
                {"error": "expired_token", "error_description": "The access token provided has expired."},
                grant.member_id,
                grant.user_id,
            )
        portal = state.portals[grant.member_id]
        inst = portal.installation
        app = state.app
        if inst is None or app is None:
            return 401, {"error": "APPLICATION_NOT_FOUND", "error_description": "Application not found"}, "", None
        result = {
            "client_id": grant.client_id,
            "scope": grant.scope,
            "expires": datetime.fromtimestamp(grant.expires_at, UTC).isoformat(),
            "user_id": grant.user_id,
            "install": {
                "installed": inst.installed,
                "version": inst.version,
                "status": inst.status,
                "scope": grant.scope,
                "domain": portal.domain,
                "uri": portal.origin,
                "client_endpoint": portal.client_endpoint,
                "member_id": portal.member_id,
                "member_type": "PORTAL",
            },
        }
        return 200, {"result": result}, portal.member_id, grant.user_id
