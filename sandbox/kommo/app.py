"""The sandbox Kommo as a Flask app: account routes under ``/{host}/``, the shell, the control API."""

from __future__ import annotations

import os
import time

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from sandbox.kommo.errors import ApiError, OAuthError
from sandbox.kommo.reqlog import LoggedRequest
from sandbox.kommo.responses import fault_response, oauth_problem, problem, too_many_requests
from sandbox.kommo.state import KommoSandbox

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN_ENDPOINT = "kommo_oauth.access_token"
UNLOGGED_PREFIXES = ("/_sandbox/", "/static/")


def create_app(
    *,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    revoke_hook_url: str,
    widget_origin: str,
    seed_demo: bool = True,
    token_ttl: int = 86400,
    rate_per_second: float = 7.0,
    base_url: str | None = None,
) -> Flask:
    """Build a sandbox Kommo. ``app.extensions["kommo_sandbox"]`` is its ``KommoSandbox``.

    ``base_url`` is where it will be reachable (it becomes the ``iss`` of widget JWTs and the shell's
    account address); left out, the first request's own address is taken.
    """
    app = Flask(
        __name__,
        template_folder=os.path.join(HERE, "templates"),
        static_folder=os.path.join(HERE, "static"),
        static_url_path="/static",
    )
    app.config.update(MAX_CONTENT_LENGTH=8 * 1024 * 1024)
    sandbox = KommoSandbox(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        revoke_hook_url=revoke_hook_url,
        widget_origin=widget_origin,
        token_ttl=token_ttl,
        rate_per_second=rate_per_second,
        base_url=base_url,
    )
    if seed_demo:
        sandbox.seed_demo()
    app.extensions["kommo_sandbox"] = sandbox

    from sandbox.kommo import api, control, oauth, shell

    app.register_blueprint(oauth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(control.bp)
    app.register_blueprint(shell.bp)

    app.before_request(_guard)
    app.after_request(_record)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _sandbox() -> KommoSandbox:
    from flask import current_app

    return current_app.extensions["kommo_sandbox"]


def _account_host() -> str | None:
    """The account a request addresses: the first path segment of token and API calls."""
    segment = request.path.split("/", 2)[1] if request.path.count("/") >= 2 else ""
    if request.endpoint == TOKEN_ENDPOINT or (request.endpoint or "").startswith("kommo_api."):
        return segment
    return segment if segment in _sandbox().accounts else None


def _guard() -> Response | None:
    """Faults first (a dead Kommo answers nothing else), then the 7 rps limit, per account."""
    sandbox = _sandbox()
    g.account_key = _account_host()
    if not sandbox.base_url_known:
        sandbox.base_url = request.host_url
    if g.account_key is None:
        return None
    delay, fault = sandbox.fault_board.take(g.account_key, request.path)
    if delay:
        time.sleep(delay)
    if fault is not None:
        return fault_response(fault)
    if g.account_key in sandbox.accounts:
        wait = sandbox.limiter.take(g.account_key)
        if wait is not None:
            return too_many_requests(wait)
    return None


def _record(response: Response) -> Response:
    if request.path.startswith(UNLOGGED_PREFIXES):
        return response
    sandbox = _sandbox()
    sandbox.record(
        LoggedRequest(
            method=request.method,
            path=request.path,
            host=g.get("account_key"),
            query={k: request.args.getlist(k) for k in request.args},
            headers=dict(request.headers),
            form={k: request.form.getlist(k) for k in request.form},
            json=request.get_json(silent=True) if request.is_json else None,
            status=response.status_code,
            timestamp=sandbox.clock.now(),
            body=request.get_data(as_text=True)[:20000],
        )
    )
    return response


def _http_error(error: HTTPException) -> Response:
    """Unknown paths and methods under an account answer problem+json, as Kommo's API does."""
    if g.get("account_key") is None and _account_host() is None:
        return error.get_response()
    status = error.code or 500
    if request.path.split("/", 3)[2:3] == ["oauth2"]:
        return oauth_problem(OAuthError(status, error.description or "Error"))
    return problem(ApiError(status, f"Cannot {request.method} {request.url}"))
