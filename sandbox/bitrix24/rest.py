"""The portal's REST methods (reference §2.2, §3.2, §5.1, §6), answered the way Bitrix24 answers.

``call`` is the whole pipeline for one HTTP request: leaky bucket, token checks, the per-method
operation limit, dispatch. Shapes kept on purpose: string ids in legacy methods, integer ids in
``crm.category.*``, ``[]`` for empty PHP arrays, legacy ``crm.*`` errors with an empty code and
HTTP 400, ``batch`` always 200 with per-command errors in ``result_error``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from sandbox.bitrix24 import phpform
from sandbox.bitrix24.app_methods import (
    m_app_info,
    m_event_bind,
    m_event_get,
    m_event_unbind,
    m_placement_bind,
    m_placement_get,
    m_placement_list,
    m_placement_unbind,
    m_profile,
    m_user_current,
    m_user_get,
)
from sandbox.bitrix24.crm_methods import crud, m_category_list, m_findbycomm, m_mode_get, m_status_list
from sandbox.bitrix24.portal import Portal, User
from sandbox.bitrix24.restkit import Answer, Ctx, Handler, RestError, arg, empty, time_block
from sandbox.bitrix24.state import SandboxState
from sandbox.bitrix24.tokens import Grant

__all__ = ["RestError", "arg", "call", "time_block"]

BATCH_MAX = 50

# ---------------------------------------------------------------------------------- dispatch

METHODS: dict[str, tuple[set[str], Handler]] = {
    "profile": (set(), m_profile),
    "app.info": (set(), m_app_info),
    "user.current": ({"user"}, m_user_current),
    "user.get": ({"user"}, m_user_get),
    "crm.category.list": ({"crm"}, m_category_list),
    "crm.status.list": ({"crm"}, m_status_list),
    "crm.settings.mode.get": ({"crm"}, m_mode_get),
    "crm.duplicate.findbycomm": ({"crm"}, m_findbycomm),
    "placement.bind": ({"placement"}, m_placement_bind),
    "placement.unbind": ({"placement"}, m_placement_unbind),
    "placement.get": ({"placement"}, m_placement_get),
    "placement.list": ({"placement"}, m_placement_list),
    "event.bind": (set(), m_event_bind),
    "event.unbind": (set(), m_event_unbind),
    "event.get": (set(), m_event_get),
}
for _kind in ("contact", "deal", "lead"):
    METHODS.update({name: ({"crm"}, fn) for name, fn in crud(_kind).items()})

_NOT_IN_BATCH = {"batch", "upload", "download"}
_REF = re.compile(r"\$result\[([^\[\]]*)\]((?:\[[^\[\]]*\])*)")


def _dispatch(ctx: Ctx, method: str, params: dict[str, Any]) -> Answer:
    reset_at = ctx.state.faults.operation_limits.get((ctx.portal.member_id, method))
    if reset_at is not None and reset_at > ctx.state.clock():
        raise RestError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")
    entry = METHODS.get(method)
    if entry is None:
        raise RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
    needed, handler = entry
    if not needed <= ctx.scopes:
        raise RestError(
            401, "insufficient_scope", "The request requires higher privileges than provided by the access token"
        )
    return handler(ctx, params)


def _lookup(results: dict[str, Any], match: re.Match[str]) -> tuple[bool, Any]:
    key = match.group(1)
    if key not in results:
        return False, None
    node = results[key]
    for part in re.findall(r"\[([^\[\]]*)\]", match.group(2)):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            break  # a missing path stops at the last level found (§6.6)
    return True, node


def _resolve(value: Any, results: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, results) for k, v in value.items()}
    if not isinstance(value, str) or "$result" not in value:
        return value
    whole = _REF.fullmatch(value.strip())
    if whole is not None:
        found, node = _lookup(results, whole)
        return node if found else value  # the whole value is a reference: the raw value

    def inline(m: re.Match[str]) -> str:
        found, node = _lookup(results, m)
        return str(node) if found and not isinstance(node, dict | list) else m.group(0)

    return _REF.sub(inline, value)


def m_batch(ctx: Ctx, params: dict[str, Any]) -> Answer:
    halt = str(arg(params, "halt", "0")).lower() in ("1", "true", "y")
    commands = arg(params, "cmd") or {}
    if isinstance(commands, list):
        commands = {str(i): c for i, c in enumerate(commands)}
    if not isinstance(commands, dict):
        raise RestError(400, "INVALID_ARG_VALUE", "cmd must be an array")
    results: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    totals: dict[str, int] = {}
    nexts: dict[str, int] = {}
    times: dict[str, Any] = {}
    for i, (key, line) in enumerate(commands.items()):
        started = time.time()
        try:
            if i >= BATCH_MAX:
                raise RestError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
            method, _, query = str(line).partition("?")
            method = method.strip().strip("/").lower().removesuffix(".json")
            if method in _NOT_IN_BATCH:
                raise RestError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage")
            sub = _resolve(phpform.decode(query), results)
            answer = _dispatch(ctx, method, sub)
        except RestError as exc:
            errors[key] = exc.body()
            if halt:
                break
            continue
        results[key] = answer.result
        if answer.total is not None:
            totals[key] = answer.total
        if answer.next is not None:
            nexts[key] = answer.next
        times[key] = time_block(started, time.time())
    return Answer(
        {
            "result": empty(results),
            "result_error": empty(errors),
            "result_total": empty(totals),
            "result_next": empty(nexts),
            "result_time": empty(times),
        }
    )


@dataclass
class RestOutcome:
    status: int
    body: dict[str, Any]
    grant: Grant | None = None


def authenticate(state: SandboxState, portal: Portal, token: str) -> tuple[Grant, User]:
    """The portal's token checks, with its error codes (reference §4.4)."""
    if not token:
        raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
    forced = state.faults.token_errors.get(portal.member_id)
    if forced:
        raise RestError(401, forced, "The access token provided is invalid.")
    gone = state.tokens.gone_reason(token)
    if gone == "APPLICATION_NOT_FOUND":
        raise RestError(401, "APPLICATION_NOT_FOUND", "Application not found")
    if gone == "invalid_token":
        raise RestError(401, "invalid_token", "The access token provided is invalid.")
    grant = state.tokens.by_access(token)
    if grant is None or grant.member_id != portal.member_id:
        raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
    if portal.installation is None:
        raise RestError(401, "APPLICATION_NOT_FOUND", "Application not found")
    if grant.expires_at <= state.clock():
        raise RestError(401, "expired_token", "The access token provided has expired.")
    user = portal.users.get(grant.user_id)
    if user is None or not user.active:
        raise RestError(401, "authorization_error", "Unable to authorize user")
    return grant, user


def call(state: SandboxState, portal: Portal, method: str, params: dict[str, Any], token: str) -> RestOutcome:
    """One REST request from arrival to answer. ``time`` is in every answer, errors included."""
    started = time.time()
    grant: Grant | None = None
    try:
        if not state.admit(portal.member_id):
            raise RestError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        with state.lock:
            grant, user = authenticate(state, portal, token)
            ctx = Ctx(state, portal, grant, user)
            answer = m_batch(ctx, params) if method == "batch" else _dispatch(ctx, method, params)
    except RestError as exc:
        body = exc.body()
        reset = None
        if exc.code == "OPERATION_TIME_LIMIT":
            reset = state.faults.operation_limits.get((portal.member_id, method))
        body["time"] = time_block(started, time.time(), reset)
        return RestOutcome(exc.status, body, grant)
    body = {"result": answer.result}
    if answer.next is not None:
        body["next"] = answer.next
    if answer.total is not None:
        body["total"] = answer.total
    body["time"] = time_block(started, time.time())
    return RestOutcome(200, body, grant)
