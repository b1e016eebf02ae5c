"""POST /gateway/messages: verified before parsed, typed at the edge, stored once, documented."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.support.conversations import World, make_world
from widget.db import db
from widget.domain.inbound import parse_inbound
from widget.models.conversations import Chat, Client, CrmOperation, Message
from widget.models.intake import InboundDelivery
from widget.services.channels.signing import get_or_create_gateway_secret, rotate_gateway_secret


@pytest.fixture
def world(app: Flask, database_url: str) -> Iterator[World]:
    yield make_world(app, roles={1: ("seller", True), 2: ("seller", True), 3: ("head", False)})


def counts() -> dict[str, int]:
    with db.transaction() as s:
        return {
            m.__tablename__: s.execute(select(func.count()).select_from(m)).scalar_one()
            for m in (InboundDelivery, Message, Chat, Client, CrmOperation)
        }


NOTHING = {"inbound_deliveries": 0, "messages": 0, "chats": 0, "clients": 0, "crm_operations": 0}


def test_signed_message_is_stored_and_the_client_handled(client: Any, world: World):
    res = world.post(client, world.payload(1))
    assert res.status_code == 200, res.get_json()
    assert res.get_json()["status"] == "stored"
    with db.transaction() as s:
        msg = s.execute(select(Message)).scalar_one()
        assert (msg.text, msg.gateway_message_id, msg.direction) == ("Hello from client 1", "msg-1", "in")
        chat = s.get(Chat, msg.chat_id)
        assert chat is not None and chat.unanswered and chat.title == "Client 1"
    # The nudged job ran: the CRM was asked and the new client created (contact + lead).
    assert world.crm.created_contacts == 1 and world.crm.created_entities == 1


def test_bad_signature_is_refused_and_nothing_is_stored(client: Any, world: World):
    res = world.post(client, world.payload(1), secret="not-the-secret")
    assert res.status_code == 401
    assert res.get_json()["error"] == "unauthorized"
    assert counts() == NOTHING
    assert world.crm.calls == []


def test_missing_signature_is_refused(client: Any, world: World):
    res = client.post("/gateway/messages", json=world.payload(1))
    assert res.status_code == 401 and "X-Gateway-Signature" in res.get_json()["message"]
    assert counts() == NOTHING


def test_signature_of_another_account_is_refused(app: Flask, client: Any, world: World):
    with db.transaction() as s:
        from tests.support.factories import make_account

        other = make_account(external_id="2002", domain="other.kommo.test")
        other_secret = get_or_create_gateway_secret(s, app.extensions["widget"].box, other)
    res = world.post(client, world.payload(1), secret=other_secret)
    assert res.status_code == 401
    assert counts() == NOTHING


def test_tampered_body_is_refused(client: Any, world: World):
    raw = json.dumps(world.payload(1)).encode()
    from widget.services.channels.signing import sign

    sig = sign(world.secret, raw)
    tampered = raw.replace(b"Hello", b"Hallo")
    res = client.post("/gateway/messages", data=tampered, headers={"X-Gateway-Signature": sig})
    assert res.status_code == 401
    assert counts() == NOTHING


def test_unknown_channel_is_refused_like_a_bad_signature(client: Any, world: World):
    res = world.post(client, world.payload(1, channel_id=world.channel_id + 100))
    assert res.status_code == 401
    assert counts() == NOTHING


def test_rotation_stops_the_old_secret_unless_a_grace_is_asked(app: Flask, client: Any, world: World):
    box = app.extensions["widget"].box
    with db.transaction() as s:
        new = rotate_gateway_secret(s, box, world.account_id)
    assert world.post(client, world.payload(1)).status_code == 401
    assert world.post(client, world.payload(1), secret=new).status_code == 200
    from datetime import timedelta

    with db.transaction() as s:
        newer = rotate_gateway_secret(s, box, world.account_id, keep_previous_for=timedelta(hours=1))
    assert world.post(client, world.payload(2), secret=new).status_code == 200
    assert world.post(client, world.payload(3), secret=newer).status_code == 200


def test_malformed_payload_gets_400_listing_every_problem(client: Any, world: World):
    body = {"channel_id": world.channel_id, "chat_type": "fax", "text": 5, "sent_at": "noon"}
    res = world.post(client, body)
    assert res.status_code == 400
    problems = res.get_json()["problems"]
    for field in ("message_id", "chat_type", "chat_id", "text", "sent_at"):
        assert any(p.startswith(field + ":") for p in problems), (field, problems)
    assert counts() == NOTHING


def test_not_json_and_no_channel_are_400(client: Any, world: World):
    assert world.post(client, b"{not json").status_code == 400
    res = world.post(client, {"text": "hi"})
    assert res.status_code == 400 and res.get_json()["problems"] == ["channel_id: required, a positive integer"]
    assert counts() == NOTHING


def test_uninstalled_account_refuses_messages(client: Any, world: World):
    from widget.models import Account
    from widget.models.accounts import STATUS_UNINSTALLED

    with db.transaction() as s:
        acc = s.get(Account, world.account_id)
        assert acc is not None
        acc.status = STATUS_UNINSTALLED
    assert world.post(client, world.payload(1)).status_code == 403
    assert counts() == NOTHING


def test_gateway_needs_no_csrf_token(app: Flask, world: World):
    app.config["WTF_CSRF_ENABLED"] = True
    res = world.post(app.test_client(), world.payload(1))
    assert res.status_code == 200


def test_redelivery_is_stored_once(client: Any, world: World):
    first = world.post(client, world.payload(1))
    again = world.post(client, world.payload(1))
    assert first.get_json()["status"] == "stored"
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert counts()["messages"] == 1


def test_same_message_five_times_at_once_is_stored_and_processed_once(app: Flask, world: World):
    body = world.payload(1)
    barrier = threading.Barrier(5)
    statuses: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            c = app.test_client()
            barrier.wait()
            res = world.post(c, body)
            assert res.status_code == 200, res.get_data(as_text=True)
            statuses.append(res.get_json()["status"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(statuses) == ["duplicate"] * 4 + ["stored"]
    c = counts()
    assert (c["messages"], c["chats"], c["clients"]) == (1, 1, 1)
    assert world.crm.created_contacts == 1 and world.crm.created_entities == 1
    assert world.crm.calls.count("find_client") == 1


def test_openapi_documents_the_route_and_its_example_is_accepted(app: Flask, client: Any, world: World):
    res = client.get("/openapi.yaml")
    assert res.status_code == 200
    spec = json.loads(res.get_data(as_text=True))  # written in the JSON subset of YAML
    op = spec["paths"]["/gateway/messages"]["post"]
    rules = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods or ()}
    assert ("/gateway/messages", "POST") in rules
    assert any(p["name"] == "X-Gateway-Signature" and p["in"] == "header" for p in op["parameters"])
    assert {"200", "400", "401", "403"} <= set(op["responses"])
    media = op["requestBody"]["content"]["application/json"]
    schema = spec["components"]["schemas"]["InboundMessage"]
    example = media["example"]
    # The example satisfies the documented schema ...
    assert set(schema["required"]) <= set(example)
    for name, value in example.items():
        prop = schema["properties"][name]
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        assert {"string": str, "integer": int, "null": type(None)}[types[0]] is type(value) or value is None
        if "enum" in prop:
            assert value in prop["enum"]
        if "maxLength" in prop:
            assert len(value) <= prop["maxLength"]
    # ... the parser agrees on the required fields ...
    parse_inbound(example)
    for name in schema["required"]:
        with pytest.raises(ValueError, match=name):
            parse_inbound({k: v for k, v in example.items() if k != name})
    # ... and the real endpoint accepts it, signed as documented.
    res = world.post(client, {**example, "channel_id": world.channel_id})
    assert res.status_code == 200 and res.get_json()["status"] == "stored"
