"""HTTP controls under ``/_sandbox/…``: the ``SandboxState`` methods for tools that cannot import it
(a browser test, curl during a demo). Bodies and answers are JSON; ``portal`` is a member_id or a
domain and defaults to the portal answering to the request's Host."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox.bitrix24.portal import Portal
from sandbox.bitrix24.reqlog import KIND_CONTROL
from sandbox.bitrix24.state import FrameOpen, SandboxError, SandboxState

bp = Blueprint("b24_control", __name__, url_prefix="/_sandbox")


def _state() -> SandboxState:
    state: SandboxState = current_app.extensions["bitrix24_sandbox"]
    return state


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _portal(body: dict[str, Any]) -> Portal:
    state = _state()
    ref = body.get("portal")
    if ref:
        return state.portal(str(ref))
    portal, _ = state.resolve_host(request.host)
    if portal is not None:
        return portal
    if len(state.portals) == 1:
        return next(iter(state.portals.values()))
    raise SandboxError("say which portal")


def _frame(frame: FrameOpen) -> dict[str, Any]:
    return {"url": frame.url, "form": frame.form, "app_sid": frame.app_sid, "frame_name": frame.frame_name}


def _delivery(d: Any) -> dict[str, Any]:
    return {"event": d.event, "url": d.url, "status": d.status, "body": d.body, "error": d.error}


_ACTIONS: dict[str, Callable[[SandboxState, dict[str, Any]], Any]] = {
    "latency": lambda s, b: s.set_latency(float(b.get("seconds", 0))),
    "outage": lambda s, b: s.set_outage(bool(b.get("on", True))),
    "fail-next": lambda s, b: s.fail_next(int(b.get("count", 1)), int(b.get("status", 500))),
    "query-limit": lambda s, b: s.force_query_limit(int(b.get("count", 1))),
    "rate-limit": lambda s, b: s.set_rate_limit(float(b["rate"]), float(b["burst"])),
    "expire-tokens": lambda s, b: s.expire_tokens_now(_portal(b) if b.get("portal") else None),
    "invalidate-tokens": lambda s, b: s.invalidate_tokens(_portal(b)),
    "expire-refresh-tokens": lambda s, b: s.expire_refresh_tokens(_portal(b)),
    "reject-tokens": lambda s, b: s.reject_tokens(_portal(b), b.get("code")),
    "limit-method": lambda s, b: s.limit_method(_portal(b), str(b["method"]), float(b.get("seconds", 10))),
    "crm-mode": lambda s, b: s.set_crm_mode(_portal(b), str(b["mode"])),
    "users": lambda s, b: s.set_users(_portal(b), int(b["count"])),
    "rename": lambda s, b: s.rename_portal(_portal(b), str(b["domain"])).domain,
    "install": lambda s, b: _frame(s.begin_install(_portal(b), int(b.get("user_id", 1)))),
    "install-finish": lambda s, b: s.install_finish(_portal(b)),
    "install-api-only": lambda s, b: _delivery(s.install_api_only(_portal(b), int(b.get("user_id", 1)))),
    "uninstall": lambda s, b: [_delivery(d) for d in s.uninstall(_portal(b), clean=bool(b.get("clean")))],
    "open": lambda s, b: _frame(
        s.open_app(
            _portal(b), int(b.get("user_id", 1)), placement=str(b.get("placement", "DEFAULT")), options=b.get("options")
        )
    ),
    "event": lambda s, b: _delivery(
        s.send_event(
            _portal(b),
            str(b["event"]),
            b.get("data") or {},
            url=b.get("url"),
            application_token=b.get("application_token"),
        )
    ),
    "update-record": lambda s, b: s.update_record(
        _portal(b), str(b["kind"]), int(b["id"]), b.get("fields") or {}, b.get("user_id", 1)
    ),
    "reset-log": lambda s, b: s.reset_log(),
}


@bp.post("/<action>")
def act(action: str) -> Any:
    state = _state()
    handler = _ACTIONS.get(action)
    if handler is None:
        return jsonify(error="unknown_action", actions=sorted(_ACTIONS)), 404
    body = _body()
    state.log.add(at=time.time(), kind=KIND_CONTROL, host=request.host, http_method="POST", path=request.path)
    try:
        result = handler(state, body)
    except (SandboxError, KeyError, ValueError, TypeError) as exc:
        return jsonify(error="bad_request", message=str(exc)), 400
    return jsonify(ok=True, result=result)


@bp.get("/state")
def summary() -> Response:
    state = _state()
    portals = []
    for p in state.portals.values():
        inst = p.installation
        portals.append(
            {
                "member_id": p.member_id,
                "domain": p.domain,
                "old_domains": p.old_domains,
                "crm_mode": "simple" if p.crm_mode == 2 else "classic",
                "users": len(p.users),
                "installed": bool(inst and inst.installed),
                "installation": None
                if inst is None
                else {"placements": [b.code for b in inst.placements()], "events": [b.code for b in inst.events()]},
            }
        )
    return jsonify(portals=portals, refreshes=state.tokens.refreshes, deliveries=len(state.deliveries))


@bp.get("/log")
def request_log() -> Response:
    """``?kind=rest&rest_method=user.get`` filters; ``count`` is the number of matching entries."""
    where = {k: v for k, v in request.args.items() if k in {"kind", "host", "rest_method", "member_id", "grant_type"}}
    if "status" in request.args:
        where_status = int(request.args["status"])
        entries = [e for e in _state().log.entries(**where) if e.status == where_status]
    else:
        entries = _state().log.entries(**where)
    return jsonify(
        count=len(entries),
        entries=[{k: v for k, v in dataclasses.asdict(e).items() if k != "token"} for e in entries[-500:]],
    )
