"""``widget/openapi.yaml`` tells the truth about the chat panel's JSON API: every route is
documented with its methods and parameters, and what each route answers in a real scenario (every
status a user can meet: 200/201/304/400/401/403/404/409/422) matches the documented schema.

The document is fuzzed with schemathesis later; this checks it against our own scenario with a
small validator for the JSON Schema subset the document uses (no extra package needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.support.chat_panel import Panel, RecordingTransport, chat_by_external, deliveries, open_panel
from tests.support.conversations import make_world

DOC = json.loads((Path(__file__).resolve().parents[2] / "widget" / "openapi.yaml").read_text())


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = DOC["components"]["schemas"][name]
    return schema


def check(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Problems of ``value`` against ``schema`` (type, enum, required, properties, items, oneOf,
    minimum/maximum, minLength/maxLength, pattern)."""
    schema = resolve(schema)
    if "oneOf" in schema:
        matches = [s for s in schema["oneOf"] if not check(value, s, where)]
        return [] if len(matches) == 1 else [f"{where}: matches {len(matches)} of oneOf"]
    problems: list[str] = []
    types = schema.get("type")
    if types is not None:
        allowed = types if isinstance(types, list) else [types]
        kinds = {
            "object": dict,
            "array": list,
            "string": str,
            "boolean": bool,
            "null": type(None),
        }
        ok = any(
            (t == "integer" and isinstance(value, int) and not isinstance(value, bool))
            or (t == "number" and isinstance(value, (int, float)) and not isinstance(value, bool))
            or (t in kinds and isinstance(value, kinds[t]))
            for t in allowed
        )
        if not ok:
            return [f"{where}: {value!r} is not {allowed}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing {key}")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                problems += check(value[key], sub, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += check(item, schema["items"], f"{where}[{i}]")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if len(value) > schema.get("maxLength", 10**9) or len(value) < schema.get("minLength", 0):
            problems.append(f"{where}: length {len(value)} out of bounds")
    if isinstance(value, int) and not isinstance(value, bool):
        if value < schema.get("minimum", -(10**30)) or value > schema.get("maximum", 10**30):
            problems.append(f"{where}: {value} out of bounds")
    return problems


def operation(path: str, method: str) -> dict[str, Any]:
    return dict(DOC["paths"][path][method])


def conforms(response: Any, path: str, method: str) -> None:
    op = operation(path, method)
    status = str(response.status_code)
    assert status in op["responses"], f"{method.upper()} {path} answered {status}, which is not documented"
    documented = op["responses"][status]
    if "content" not in documented:
        assert response.get_data() == b"", f"{status} is documented without a body"
        return
    schema = documented["content"]["application/json"]["schema"]
    problems = check(response.get_json(), schema)
    assert not problems, f"{method.upper()} {path} {status}: " + "; ".join(problems)


def test_every_api_route_is_documented_with_its_methods_and_path_parameters(app: Flask):
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in DOC["paths"], f"{rule.rule} is not in widget/openapi.yaml"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            op = operation(path, method.lower())
            assert op.get("operationId") and op.get("responses") and op.get("security"), (path, method)
            documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert documented == set(rule.arguments), (path, method, documented, rule.arguments)
            if method == "POST":
                assert {"CsrfToken": []} in op["security"] or any("CsrfToken" in s for s in op["security"])
                assert "400" in op["responses"], "a POST without the CSRF token is a 400"
            assert {"401", "403"} <= set(op["responses"]), (path, method)


@pytest.fixture
def scene(app: Flask, client: Any, database_url: str) -> dict[str, Any]:
    transport = RecordingTransport()
    app.extensions["widget"].transport = transport
    w = make_world(app, n_users=5, roles={1: ("seller", True), 2: ("seller", True), 3: ("qc", False)})
    for n in (1, 2):
        w.post(client, w.payload(n))
    return {"w": w, "rep1": open_panel(app, w, 1), "rep2": open_panel(app, w, 2), "qc": open_panel(app, w, 3)}


def test_answers_match_the_documented_schemas(app: Flask, scene: dict[str, Any]):
    w, rep1, rep2, qc = scene["w"], scene["rep1"], scene["rep2"], scene["qc"]
    one, two = chat_by_external(w, 1).id, chat_by_external(w, 2).id
    chats, chat, messages = "/api/chats", "/api/chats/{chat_id}", "/api/chats/{chat_id}/messages"

    listing = rep1.chats(limit=1)
    conforms(listing, chats, "get")
    conforms(rep1.chats(before=listing.get_json()["next_cursor"], filter="unanswered"), chats, "get")
    conforms(rep1.chats(entity_type="lead", entity_id="1"), chats, "get")
    conforms(rep1.chats(limit="many"), chats, "get")
    again = rep1.client.get(
        "/api/chats", query_string={"limit": 1}, headers=rep1.headers(**{"If-None-Match": listing.headers["ETag"]})
    )
    assert again.status_code == 304
    conforms(again, chats, "get")
    conforms(Panel(app.test_client(), "").chats(), chats, "get")

    conforms(rep1.chat(one, refresh="1"), chat, "get")
    conforms(qc.chat(one), chat, "get")
    conforms(rep1.chat(10**12), chat, "get")
    conforms(rep1.get(f"/api/chats/{one}/messages", limit=1), messages, "get")
    conforms(rep1.get(f"/api/chats/{one}/messages", before="x"), messages, "get")

    sent = rep1.send(one, "Hello from the rep", idempotency_key="openapi-key-1", expect_offer=True)
    assert sent.status_code == 201
    conforms(sent, messages, "post")
    conforms(rep1.send(one, "Hello from the rep", idempotency_key="openapi-key-1"), messages, "post")
    conforms(rep2.send(one, "me too", expect_offer=True), messages, "post")  # 409
    conforms(rep2.chat(one), chat, "get")  # 403 with taken_by
    conforms(qc.send(two, "qc"), messages, "post")  # 403
    conforms(rep1.send(two, ""), messages, "post")  # 422
    conforms(rep1.post(f"/api/chats/{two}/messages", {"text": ["x"]}), messages, "post")  # 400
    conforms(Panel(rep1.client, rep1.token).send(two, "no csrf"), messages, "post")  # 400
    conforms(rep1.send(10**12, "nowhere"), messages, "post")  # 404

    conforms(rep2.no_reply(two), "/api/chats/{chat_id}/no-reply", "post")
    conforms(qc.no_reply(two), "/api/chats/{chat_id}/no-reply", "post")

    retry = "/api/messages/{message_id}/retry"
    (delivery,) = deliveries()
    conforms(rep1.post(f"/api/messages/{delivery.message_id}/retry"), retry, "post")  # 409: it was sent
    conforms(rep1.post("/api/messages/99999999/retry"), retry, "post")
