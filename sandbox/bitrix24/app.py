"""The sandbox's WSGI app: portal REST (chosen by Host), the OAuth server, the CRM shell, controls."""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, Response, current_app, jsonify, redirect, request

from sandbox.bitrix24 import phpform
from sandbox.bitrix24.reqlog import KIND_APP_INFO, KIND_REST, KIND_TOKEN
from sandbox.bitrix24.rest import arg, call
from sandbox.bitrix24.state import SandboxState

HERE = os.path.dirname(os.path.abspath(__file__))


def create_sandbox_app(state: SandboxState) -> Flask:
    app = Flask(
        "bitrix24_sandbox",
        root_path=HERE,
        template_folder=os.path.join(HERE, "templates"),
        static_folder=os.path.join(HERE, "static"),
        static_url_path="/_static",
    )
    # The JS SDK may call /rest//method (Addendum): do not redirect a doubled slash away.
    app.url_map.merge_slashes = False
    app.config.update(JSON_SORT_KEYS=False, SECRET_KEY=os.urandom(16).hex())
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["bitrix24_sandbox"] = state

    from sandbox.bitrix24.control import bp as control_bp
    from sandbox.bitrix24.oauth import bp as oauth_bp
    from sandbox.bitrix24.shell import bp as shell_bp

    app.register_blueprint(oauth_bp)
    app.register_blueprint(shell_bp)
    app.register_blueprint(control_bp)
    app.before_request(_faults)
    app.add_url_rule("/rest/<path:rest_path>", "rest", _rest, methods=["GET", "POST", "OPTIONS"])
    app.add_url_rule("/rest//<path:rest_path>", "rest_double_slash", _rest, methods=["GET", "POST", "OPTIONS"])
    app.add_url_rule("/", "root", lambda: redirect("/shell"))
    return app


def _state() -> SandboxState:
    state: SandboxState = current_app.extensions["bitrix24_sandbox"]
    return state


def _kind(path: str) -> str | None:
    if path.startswith("/rest/"):
        return KIND_REST
    if path.startswith("/oauth-server/oauth/token"):
        return KIND_TOKEN
    if path.startswith("/oauth-server/"):
        return KIND_APP_INFO
    return None


def _faults() -> Response | None:
    """Latency, outage and injected 5xx apply to REST and the OAuth server alike."""
    kind = _kind(request.path)
    if kind is None or request.method == "OPTIONS":
        return None
    state = _state()
    if state.faults.latency:
        time.sleep(state.faults.latency)
    with state.lock:
        outage = state.faults.outage
        failure = None if outage else state.faults.take_failure()
    if not outage and failure is None:
        return None
    status = 503 if outage else int(failure or 500)
    state.log.add(
        at=time.time(), kind=kind, host=request.host, http_method=request.method, path=request.path, status=status
    )
    if status == 500 and not outage:
        response = jsonify(error="INTERNAL_SERVER_ERROR", error_description="Internal server error")
        response.status_code = 500
    else:
        # A load balancer's page, not JSON: clients must cope with that too.
        response = Response(
            f"<html><body><h1>{status} Service Unavailable</h1></body></html>", status, mimetype="text/html"
        )
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _params() -> dict[str, Any]:
    params = phpform.decode(request.query_string.decode("utf-8", "replace"))
    if request.mimetype == "application/json":
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            params.update(body)
    else:
        params.update(phpform.decode_pairs(request.form.items(multi=True)))
    return params


def _cors(response: Response) -> Response:
    # REST answers carry ACAO * so BX24.callMethod can reach it from the app's frame (§2.4).
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _rest(rest_path: str) -> Any:
    state = _state()
    if request.method == "OPTIONS":
        response = Response("", 200)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        return _cors(response)
    portal, moved = state.resolve_host(request.host)
    if moved is not None:
        # A renamed portal: 302 to the new host with an empty body (Addendum: b24pysdk only notices
        # a non-JSON body). The client must repeat its POST there itself.
        target = f"{moved.origin}{request.full_path.rstrip('?')}"
        state.log.add(
            at=time.time(),
            kind=KIND_REST,
            host=request.host,
            http_method=request.method,
            path=request.path,
            member_id=moved.member_id,
            status=302,
        )
        return Response("", 302, headers={"Location": target})
    if portal is None:
        return _cors(Response("<html><body><h1>404 Not Found</h1></body></html>", 404, mimetype="text/html"))

    segments = [s for s in rest_path.split("/") if s]
    params = _params()
    header = request.headers.get("Authorization", "")
    token = str(arg(params, "auth") or arg(params, "access_token") or "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:].strip()
    clean = {k: v for k, v in params.items() if k.lower() not in ("auth", "access_token")}
    if len(segments) != 1:
        method = segments[-1].lower() if segments else ""
        # /rest/<user>/<code>/<method> is an incoming webhook; none are configured on sandbox portals.
        outcome_status, body = 401, {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"}
        user_id = None
    else:
        method = segments[0].lower().removesuffix(".json")  # method names are case-insensitive (§6.1)
        outcome = call(state, portal, method, clean, token)
        outcome_status, body = outcome.status, outcome.body
        user_id = outcome.grant.user_id if outcome.grant else None
    state.log.add(
        at=time.time(),
        kind=KIND_REST,
        host=request.host,
        http_method=request.method,
        path=request.path,
        rest_method=method,
        member_id=portal.member_id,
        user_id=user_id,
        token=token,
        status=outcome_status,
        params=clean,
    )
    response = jsonify(body)
    response.status_code = outcome_status
    return _cors(response)
