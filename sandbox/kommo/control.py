"""``/_sandbox/...``: the ``KommoSandbox`` controls over HTTP (JSON), for tests in another process
and for the shell page.

Not part of Kommo. Unauthenticated on purpose (loopback only); writes must be sent as
``application/json``, which a foreign web page cannot do without a CORS preflight we never grant.
"""

from __future__ import annotations

from typing import Any

import requests
from flask import Blueprint, Response, abort, current_app, jsonify, request

from sandbox.kommo.state import KommoSandbox, UnknownAccount

bp = Blueprint("kommo_control", __name__, url_prefix="/_sandbox")


def sandbox() -> KommoSandbox:
    return current_app.extensions["kommo_sandbox"]


@bp.before_request
def _json_only() -> None:
    if request.method in ("POST", "PATCH", "DELETE", "PUT") and request.get_data() and not request.is_json:
        abort(415)


@bp.errorhandler(UnknownAccount)
def _unknown(error: UnknownAccount) -> tuple[Response, int]:
    return jsonify(error=f"no account {error.args[0]}"), 404


@bp.errorhandler(ValueError)
@bp.errorhandler(KeyError)
@bp.errorhandler(TypeError)
def _bad(error: Exception) -> tuple[Response, int]:
    return jsonify(error=str(error)), 400


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _host(data: dict[str, Any]) -> str:
    host = data.get("host") or request.args.get("host")
    if not host:
        raise ValueError("host is required")
    return str(host)


def _outbound(call: Any) -> tuple[Response, int]:
    """Run an outbound call (install webhook, revoke hook) and describe what came back."""
    try:
        response = call()
    except requests.RequestException as exc:
        return jsonify(status=None, error=repr(exc), body="", elapsed=None), 200
    return jsonify(
        status=response.status_code,
        error=None,
        body=response.text[:4000],
        headers=dict(response.headers),
        elapsed=response.elapsed.total_seconds(),
    ), 200


# --- state --------------------------------------------------------------------------------------------


@bp.get("/state")
def state() -> Response:
    sb = sandbox()
    with sb.lock:
        return jsonify(
            base_url=sb.base_url,
            client_id=sb.client_id,
            redirect_uri=sb.redirect_uri,
            revoke_hook_url=sb.revoke_hook_url,
            widget_origin=sb.widget_origin,
            clock={"now": sb.clock.now(), "frozen": sb.clock.frozen},
            faults=sb.faults(),
            rate_per_second=sb.limiter.per_second,
            accounts=[
                {"host": a.host, "id": a.id, "name": a.name, "widget_installed": a.widget_installed}
                for a in sb.accounts.values()
            ],
        )


@bp.post("/integration")
def integration() -> Response:
    data = body()
    sandbox().set_integration(
        redirect_uri=data.get("redirect_uri"),
        revoke_hook_url=data.get("revoke_hook_url"),
        widget_origin=data.get("widget_origin"),
    )
    return state()


@bp.post("/accounts")
def add_account() -> Response:
    data = body()
    host = sandbox().add_account(
        str(data["subdomain"]),
        account_id=data.get("account_id"),
        n_users=int(data.get("n_users", 12)),
        name=data.get("name"),
    )
    return jsonify(host=host, account_id=sandbox().account(host).id)


@bp.get("/accounts/<host>")
def account(host: str) -> Response:
    sb = sandbox()
    with sb.lock:
        acct = sb.account(host)
        return jsonify(
            host=acct.host,
            id=acct.id,
            subdomain=acct.subdomain,
            name=acct.name,
            widget_installed=acct.widget_installed,
            admin_id=acct.owner().id,
            users=[
                {
                    "id": u.id,
                    "name": u.name,
                    "email": u.email,
                    "lang": u.lang,
                    "is_admin": u.is_admin,
                    "is_active": u.is_active,
                }
                for u in acct.users.values()
            ],
            pipelines=[
                {
                    "id": p.id,
                    "name": p.name,
                    "is_main": p.is_main,
                    "statuses": [{"id": s.id, "name": s.name, "type": s.type} for s in p.statuses],
                }
                for p in acct.pipelines.values()
            ],
        )


@bp.post("/accounts/<host>/users")
def add_users(host: str) -> Response:
    return jsonify(ids=sandbox().add_users(host, int(body().get("n", 1))))


@bp.patch("/accounts/<host>/users/<int:user_id>")
def set_user(host: str, user_id: int) -> Response:
    user = sandbox().set_user(host, user_id, **body())
    return jsonify(id=user.id, name=user.name, is_admin=user.is_admin, is_active=user.is_active, lang=user.lang)


@bp.post("/accounts/<host>/pipelines")
def add_pipeline(host: str) -> Response:
    data = body()
    pid = sandbox().add_pipeline(host, str(data["name"]), data.get("stages"), is_main=bool(data.get("is_main")))
    return jsonify(id=pid)


@bp.delete("/accounts/<host>/pipelines/<int:pipeline_id>")
def remove_pipeline(host: str, pipeline_id: int) -> tuple[str, int]:
    sandbox().remove_pipeline(host, pipeline_id)
    return "", 204


@bp.post("/accounts/<host>/pipelines/<int:pipeline_id>/stages")
def add_stage(host: str, pipeline_id: int) -> Response:
    return jsonify(id=sandbox().add_stage(host, pipeline_id, str(body()["name"])))


@bp.delete("/accounts/<host>/pipelines/<int:pipeline_id>/stages/<int:status_id>")
def remove_stage(host: str, pipeline_id: int, status_id: int) -> tuple[str, int]:
    sandbox().remove_stage(host, pipeline_id, status_id)
    return "", 204


# --- OAuth, install, uninstall, JWT -----------------------------------------------------------------


@bp.post("/code")
def code() -> Response:
    data = body()
    return jsonify(code=sandbox().issue_code(_host(data), data.get("user_id")))


@bp.post("/install-webhook")
def install_webhook() -> tuple[Response, int]:
    data = body()
    host = _host(data)
    sandbox().account(host)
    return _outbound(lambda: sandbox().deliver_install_webhook(host, data.get("user_id")))


@bp.post("/button-redirect")
def button_redirect() -> Response:
    data = body()
    url = sandbox().button_redirect_url(
        _host(data), str(data.get("state", "")), deny=bool(data.get("deny")), user_id=data.get("user_id")
    )
    return jsonify(url=url)


@bp.post("/jwt")
def mint_jwt() -> Response:
    """Stands in for ``$authorizedAjax``: a widget JWT for ``user_id`` (the shell uses it too)."""
    data = body()
    extra = data.get("claims") or {}
    if not isinstance(extra, dict):
        raise ValueError("claims must be an object")
    token = sandbox().mint_widget_jwt(
        _host(data),
        int(data["user_id"]),
        aud=data.get("aud"),
        lifetime=int(data.get("lifetime", 1800)),
        secret=data.get("secret"),
        jti=data.get("jti"),
        now=data.get("now"),
        claims=extra,
    )
    return jsonify(token=token)


@bp.post("/revoke-hook")
def revoke_hook() -> tuple[Response, int]:
    data = body()
    host = _host(data)
    sandbox().account(host)
    return _outbound(
        lambda: sandbox().call_revoke_hook(host, signature=data.get("signature"), client_uuid=data.get("client_uuid"))
    )


@bp.post("/expire-tokens")
def expire_tokens() -> Response:
    return jsonify(expired=sandbox().expire_tokens(_host(body())))


@bp.post("/revoke-tokens")
def revoke_tokens() -> Response:
    return jsonify(revoked=sandbox().revoke_tokens(_host(body())))


@bp.get("/refresh-count")
def refresh_count() -> Response:
    return jsonify(count=sandbox().refresh_count(request.args.get("host")))


@bp.post("/access-token")
def access_token() -> Response:
    data = body()
    return jsonify(access_token=sandbox().access_token(_host(data), data.get("user_id")))


# --- entity webhooks ----------------------------------------------------------------------------------


@bp.post("/responsible-changed")
def responsible_changed() -> Response:
    data = body()
    deliveries = sandbox().fire_responsible_changed(
        _host(data),
        str(data["entity"]),
        int(data["entity_id"]),
        int(data["user_id"]),
        by_user_id=int(data.get("by_user_id", 0)),
    )
    return jsonify(deliveries=[d.describe() for d in deliveries])


@bp.get("/deliveries")
def deliveries() -> Response:
    sb = sandbox()
    with sb.lock:
        return jsonify(deliveries=[d.describe() for d in sb.deliveries])


# --- faults, rate limit, clock, log ---------------------------------------------------------------------


@bp.get("/faults")
def faults() -> Response:
    return jsonify(faults=sandbox().faults())


@bp.post("/faults")
def set_fault() -> Response:
    data = dict(body())
    kind = str(data.pop("kind", ""))
    sandbox().set_fault(kind, **data)
    return jsonify(faults=sandbox().faults())


@bp.delete("/faults")
def clear_faults() -> Response:
    sandbox().clear_faults(request.args.get("kind") or body().get("kind"))
    return jsonify(faults=sandbox().faults())


@bp.post("/rate-limit")
def rate_limit() -> Response:
    sandbox().set_rate_limit(float(body()["per_second"]))
    return jsonify(per_second=sandbox().limiter.per_second)


@bp.post("/clock")
def clock() -> Response:
    """``{"freeze": true | <unix time>}``, ``{"advance": seconds}``, ``{"unfreeze": true}``."""
    data = body()
    clk = sandbox().clock
    if data.get("unfreeze"):
        clk.unfreeze()
    freeze = data.get("freeze")
    if freeze is True:
        clk.freeze()
    elif isinstance(freeze, int | float) and not isinstance(freeze, bool):
        clk.freeze(float(freeze))
    if data.get("advance"):
        clk.advance(float(data["advance"]))
    return jsonify(now=clk.now(), frozen=clk.frozen)


def _log_filters() -> dict[str, Any]:
    return {
        "method": request.args.get("method"),
        "path_contains": request.args.get("path"),
        "host": request.args.get("host"),
    }


@bp.get("/log")
def log() -> Response:
    filters = _log_filters()
    entries = sandbox().log.entries(**filters)
    return jsonify(requests=[{k: v for k, v in vars(e).items() if k != "body"} | {"body": e.body} for e in entries])


@bp.get("/log/count")
def log_count() -> Response:
    return jsonify(count=sandbox().count(**_log_filters()))


@bp.delete("/log")
def reset_log() -> tuple[str, int]:
    sandbox().reset_log()
    return "", 204


@bp.post("/log/reset")
def reset_log_post() -> tuple[str, int]:
    sandbox().reset_log()
    return "", 204
