"""The JSON API fuzzed from its own OpenAPI document (served at ``/openapi.yaml``) with
schemathesis, in process against the WSGI app: valid and invalid requests alike never meet a
server error, and every answer (status, content type, headers, body) is one the document promises.

The caller is account A's admin (head on its channels) with the session token and CSRF token of
their page, so requests reach the handlers. Each operation is fuzzed with generated ids and with
A's real objects; the gateway's bodies are also sent signed with A's secret, so the fuzz reaches
the payload parser and the store instead of stopping at the signature. Generation is
derandomized: CI runs the same examples every time."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.conftest import ADMIN, World
from tests.support.security import catalogue, changed_tables, fill_any, fingerprint, widget_jwt
from widget.services.channels.signing import sign

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Examples per operation, per mode (valid / invalid data) and per kind of ids: tuned so that the
# whole fuzz stays well under a minute on SQLite and PostgreSQL on a 2-core machine.
MAX_EXAMPLES = 12
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def _signed(world: World, case: Any) -> Any:
    """The gateway's call as the gateway makes it: the exact body bytes signed with the secret of
    the account that owns the channel (A's channel put in valid bodies)."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("channel_id"), int):
        body = body | {"channel_id": world.a.channel_id}
    raw = bytes(body) if isinstance(body, bytes | bytearray) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "X-Gateway-Signature": sign(world.a.secret, raw)}
    return world.client.post(case.formatted_path, data=raw, headers=headers)


def _fuzz(strategy: Any, send: Callable[[Any], Any], failures: list[str], label: str) -> None:
    seen: set[str] = set()

    @FUZZ
    @given(case=strategy)
    def run(case: Any) -> None:
        response = send(case)
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' failures: collected, reported together
            first = str(exc).strip().splitlines()[0]
            if first not in seen:
                seen.add(first)
                failures.append(f"{label}: {str(exc)[:2000]}")

    run()


def test_the_api_answers_as_documented_to_fuzzed_requests(world: World):
    schema = schemathesis.openapi.from_wsgi("/openapi.yaml", world.app)
    a = world.a
    headers = {"X-Session-Token": a.tokens[ADMIN], "X-CSRFToken": a.csrf[ADMIN]}
    real_ids = {"chat_id": a.chat_id, "message_id": a.message_id}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/gateway/messages", "/api/chats", "/api/chats/{chat_id}"}

    for op in operations:
        fixed = {p.name: real_ids[p.name] for p in op.path_parameters if p.name in real_ids}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{op.label} ({mode.value})"
            _fuzz(op.as_strategy(generation_mode=mode), lambda case: case.call(headers=headers), failures, label)
            if fixed:
                strategy = op.as_strategy(generation_mode=mode, path_parameters=fixed)
                _fuzz(strategy, lambda case: case.call(headers=headers), failures, f"{label} on A's objects")
            if op.path == "/gateway/messages":
                _fuzz(
                    op.as_strategy(generation_mode=mode), lambda case: _signed(world, case), failures, f"{label} signed"
                )
    assert not failures, "\n\n".join(failures)


# --- every route, documented or not: hostile bodies -------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000  # past any parser's recursion limit
HOSTILE_BODIES: dict[str, tuple[bytes, str]] = {
    "deeply nested JSON": (DEEP.encode(), "application/json"),
    "a JSON string": (b'"x"', "application/json"),
    "a JSON array": (b"[1, 2]", "application/json"),
    "invalid UTF-8": (b'{"text": "\xff\xfe"}', "application/json"),
    "a number past 64 bits": (b'{"channel_id": 1' + b"0" * 40 + b', "text": "x"}', "application/json"),
}
# Form fields our routes and the CRMs' callbacks read, with values no parser should choke on
# (member_id and AUTH_ID well-formed, so a Bitrix24 frame gets as far as PLACEMENT_OPTIONS).
HOSTILE_FORM = {
    "member_id": "a" * 32,
    "AUTH_ID": "x" * 32,
    "DOMAIN": "localhost",
    "PLACEMENT": "CRM_DEAL_DETAIL_TAB",
    "PLACEMENT_OPTIONS": DEEP[:20_000],
    "event": "ONCRMDEALUPDATE",
    "data[FIELDS][ID]": DEEP[:1000],
    "account[id]": "9" * 40,
    "default_channel": "9" * 40,
    "fallback_employee": "9" * 40,
    "role-" + "9" * 40: "head",
    "text": "\x00",  # PostgreSQL text cannot hold NUL
    "name": "a\x00b",
    "address": "+1555\x00",
    "transport": "whatsapp",
    "code": "c\x00",
    "referer": "a\x00.kommo.test",
    "leads[update][0][id]": "1001",
    "leads[update][0][responsible_user_id]": "1\x00",
}

# Query parameters our pages and callbacks read, with numbers past any id column and malformed
# cursors (the chat panel, the settings tab, the launch hop, Kommo's redirect URI).
HOSTILE_QUERY = {
    name: "9" * 40
    for name in ("channel", "chat", "limit", "before", "entity_id", "message_id", "account_id", "client_id")
} | {
    "entity_type": "lead",
    "view": "chats",
    "before": "9" * 25 + "." + "9" * 12,
    "lt": DEEP[:2000],
    "state": DEEP[:2000],
    "code": "c\x00",  # PostgreSQL text cannot hold NUL
    "referer": "a\x00.kommo.test",
    "from_widget": "1",
    "signature": "\x00",
    "client_uuid": "\x00",
}


def admin_headers(world: World) -> dict[str, str]:
    """Every credential a route could ask for, so the body is read: A's admin session and CSRF
    token, a fresh Kommo widget JWT for A, and some gateway signature."""
    a = world.a
    return {
        "X-Session-Token": a.tokens[ADMIN],
        "X-CSRFToken": a.csrf[ADMIN],
        "X-Auth-Token": widget_jwt(world.app),
        "X-Gateway-Signature": "0" * 64,
    }


def test_no_route_crashes_on_hostile_bodies(world: World):
    """The OpenAPI fuzz covers the documented API; every other route of the URL map (CRM callbacks,
    iframe POSTs, our forms) meets the bodies that break naive parsers: answers are refusals or
    "malformed", never a server error."""
    a = world.a
    problems = []
    for route in catalogue(world.app):
        path = fill_any(route, a)
        sends: list[tuple[str, dict[str, Any]]] = [
            ("hostile query", {"query_string": HOSTILE_QUERY}),
            ("invalid UTF-8 in the query", {"query_string": "chat=%FF%FE&channel=%C0&st=%FF"}),
        ]
        if route.method != "GET":
            sends += [(name, {"data": body, "content_type": kind}) for name, (body, kind) in HOSTILE_BODIES.items()]
            sends.append(("hostile form", {"data": HOSTILE_FORM}))
        for name, body in sends:
            for who, headers in (("no session", {}), ("A's admin", admin_headers(world))):
                try:
                    response = world.client.open(path, method=route.method, headers=headers, **body)
                    status = response.status_code
                    response.close()  # static files are streamed from an open file
                except Exception as exc:  # TESTING propagates what would be a 500
                    status = f"{type(exc).__name__}: {exc}"[:120]
                if not isinstance(status, int) or status >= 500:
                    problems.append(f"{route.name} with {name} ({who}): {status}")
    assert not problems, "\n".join(problems)


def test_signed_gateway_bodies_with_nul_characters_are_malformed_not_a_crash(world: World):
    """PostgreSQL text cannot hold NUL (SQLite can): a signed message carrying one is refused as
    malformed on both, before anything is stored, instead of failing inside the store."""
    a = world.a
    before = fingerprint()
    for field in ("message_id", "chat_id", "sender_name", "text"):
        body = {
            "message_id": "nul-1",
            "channel_id": a.channel_id,
            "chat_type": "whatsapp",
            "chat_id": "nul-chat-1",
            "sender_name": "Client",
            "text": "Hello",
            "sent_at": "2026-01-31T12:00:00Z",
        }
        body[field] = f"{body[field]}\x00"
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-Gateway-Signature": sign(a.secret, raw)}
        response = world.client.post("/gateway/messages", data=raw, headers=headers)
        assert response.status_code == 400, (field, response.get_json())
        assert any(p.startswith(f"{field}:") for p in response.get_json()["problems"])
    assert changed_tables(before, fingerprint()) == []
