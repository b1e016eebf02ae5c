"""Replies leaving through the messaging gateway, over real HTTP to the sandbox gateway on loopback:
signed, recorded once, retried with backoff while the gateway is down, failed with a readable
reason when it refuses, sent again on "Retry", and answered by a played client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from sandbox.gateway import GatewaySandbox, create_app
from tests.support.chat_panel import Panel, chat_by_external, deliveries, open_panel
from tests.support.conversations import World, make_world
from tests.support.servers import LiveServer, live_server
from widget.config import ConfigError, Settings
from widget.db import db
from widget.models._base import utcnow
from widget.services.channels.signing import rotate_gateway_secret
from widget.services.channels.transports import (
    HttpGatewayTransport,
    SandboxGatewayTransport,
    UnconfiguredTransport,
    build_transport,
)
from widget.services.conversations import reply_delivery


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@dataclass
class Setup:
    app: Flask
    world: World
    gateway: GatewaySandbox
    gateway_url: str
    ours: LiveServer
    clock: Clock
    rep: Panel
    chat_id: int

    def use(self, transport: Any) -> None:
        self.app.extensions["widget"].transport = transport

    def sweep_later(self, minutes: float = 15) -> None:
        """Time passes and the periodic sweep runs, as the worker would."""
        self.clock.advance(minutes=minutes)
        reply_delivery.sweep(db, self.app.extensions["widget"])

    def messages(self) -> list[dict[str, Any]]:
        detail = self.rep.chat(self.chat_id)
        assert detail.status_code == 200
        return [m for m in detail.get_json()["messages"] if m["direction"] == "out"]


@pytest.fixture
def setup(app: Flask, client: Any, database_url: str) -> Iterator[Setup]:
    gateway = GatewaySandbox(answer_delay=0.05, timeout=5)
    clock = Clock()
    app.extensions["widget"].clock = clock
    w = make_world(app, roles={1: ("seller", True)}, distribution="round_robin")
    with live_server(create_app(gateway)) as gw, live_server(app) as ours:
        s = Setup(app, w, gateway, gw.url, ours, clock, open_panel(app, w, 1), 0)
        s.use(SandboxGatewayTransport(gw.url, ours.url + "/gateway/messages", timeout=5))
        assert w.post(client, w.payload(1)).status_code == 200
        s.chat_id = chat_by_external(w, 1).id
        yield s


def test_a_reply_is_signed_recorded_by_the_gateway_and_marked_sent(setup: Setup):
    sent = setup.rep.send(setup.chat_id, "Hello! Your order ships today.", idempotency_key="reply-key-0001")
    assert sent.status_code == 201 and sent.get_json()["message"]["status"] == "sent"
    (out,) = setup.gateway.outbound  # the sandbox checked the signature with the channel's secret
    assert (out.chat_id, out.chat_type, out.text, out.author_name) == (
        "chat-1",
        "whatsapp",
        "Hello! Your order ships today.",
        "User 1",
    )
    assert out.message_id == "reply-key-0001" and out.channel_id == setup.world.channel_id
    (delivery,) = deliveries()
    assert (delivery.status, delivery.attempts, delivery.gateway_message_id) == ("sent", 1, out.id)


def test_gateway_outage_is_retried_with_backoff_until_it_gets_through(setup: Setup):
    setup.gateway.add_faults({"status": 503}, {"status": 503})
    setup.rep.send(setup.chat_id, "Are you still interested?")
    (m,) = setup.messages()
    assert m["status"] == "sending" and m["error"] == "The messaging gateway is unavailable (HTTP 503)."
    assert setup.gateway.outbound == []
    reply_delivery.sweep(db, setup.app.extensions["widget"])  # not due yet: nothing is sent early
    assert setup.gateway.calls == 1
    setup.sweep_later()
    assert setup.messages()[0]["status"] == "sending" and setup.gateway.calls == 2
    setup.sweep_later()
    (m,) = setup.messages()
    assert m["status"] == "sent" and m["error"] is None
    assert len(setup.gateway.outbound) == 1 and deliveries()[0].attempts == 3


def test_a_lost_answer_is_resent_with_the_same_key_and_the_gateway_keeps_one_copy(setup: Setup):
    setup.use(SandboxGatewayTransport(setup.gateway_url, setup.ours.url + "/gateway/messages", timeout=0.3))
    setup.gateway.add_faults({"delay": 1.0})  # records the message, answers too late
    setup.rep.send(setup.chat_id, "One copy only, please")
    (m,) = setup.messages()
    assert m["status"] == "sending" and "did not answer in time" in m["error"]
    setup.sweep_later()
    assert setup.messages()[0]["status"] == "sent"
    (out,) = setup.gateway.outbound
    assert out.attempts == 2 and out.text == "One copy only, please"


def test_a_refused_reply_fails_at_once_with_the_reason_and_retry_sends_it(setup: Setup):
    setup.gateway.add_faults({"status": 422})
    setup.rep.send(setup.chat_id, "This one bounces")
    (m,) = setup.messages()
    assert m["status"] == "failed"
    assert m["error"] == "The messaging gateway refused the message (HTTP 422): Injected fault: HTTP 422"
    setup.sweep_later()
    assert setup.messages()[0]["status"] == "failed" and setup.gateway.calls == 1  # not retried by itself

    qc_like = open_panel(setup.app, setup.world, 2)  # no role on the channel
    assert qc_like.post(f"/api/messages/{m['id']}/retry").status_code == 403
    again = setup.rep.post(f"/api/messages/{m['id']}/retry")
    assert again.status_code == 200 and again.get_json()["message"]["status"] == "sent"
    assert [o.text for o in setup.gateway.outbound] == ["This one bounces"]
    assert setup.rep.post(f"/api/messages/{m['id']}/retry").status_code == 409  # already sent


def test_retries_run_out_and_the_reply_is_marked_failed(setup: Setup):
    setup.gateway.add_faults(*[{"status": 503}] * reply_delivery.MAX_ATTEMPTS)
    setup.rep.send(setup.chat_id, "Nobody will get this")
    for _ in range(reply_delivery.MAX_ATTEMPTS - 1):
        assert setup.messages()[0]["status"] == "sending"
        setup.sweep_later()
    (m,) = setup.messages()
    assert m["status"] == "failed" and m["error"] == "The messaging gateway is unavailable (HTTP 503)."
    assert setup.gateway.calls == reply_delivery.MAX_ATTEMPTS and setup.gateway.outbound == []


def test_a_wrong_signature_is_refused_by_the_gateway(setup: Setup):
    # The operator configured the gateway with the secret, then the secret was rotated here.
    with db.transaction() as s:
        rotate_gateway_secret(s, setup.app.extensions["widget"].box, setup.world.account_id)
    setup.gateway.link(setup.world.channel_id, setup.world.secret, setup.ours.url + "/gateway/messages")
    setup.use(HttpGatewayTransport(setup.gateway_url + "/api/v1/messages", timeout=5))
    setup.rep.send(setup.chat_id, "Signed with the new secret")
    (m,) = setup.messages()
    assert m["status"] == "failed" and "HTTP 401" in m["error"] and "signature" in m["error"]
    assert setup.gateway.outbound == []


def test_a_played_client_answers_the_reply_and_the_chat_is_unanswered_again(setup: Setup):
    setup.gateway.link(setup.world.channel_id, setup.world.secret, setup.ours.url + "/gateway/messages")
    setup.gateway.write(
        channel_id=setup.world.channel_id,
        chat_id="chat-1",
        text="I want to order",
        sender_name="Client 1",
        phone="+15550000001",
        answers=True,
    )
    setup.rep.send(setup.chat_id, "Sure, what would you like?")
    assert setup.gateway.wait_for(lambda g: len(g.inbound) == 2)
    (answer,) = [i for i in setup.gateway.inbound if i.text.startswith("Thanks")]
    assert answer.status == 200 and "Sure, what would you like?" in answer.text
    chat = setup.rep.chat(setup.chat_id).get_json()
    assert chat["chat"]["unanswered"] is True and chat["messages"][-1]["text"] == answer.text


def test_the_transport_follows_the_configuration(make_settings: Any):
    def pick(**env: Any) -> Any:
        settings: Settings = make_settings(**env)
        return build_transport(settings)

    production = pick(GATEWAY_URL="https://gateway.example.test/v1/messages")
    assert type(production) is HttpGatewayTransport and production.url == "https://gateway.example.test/v1/messages"
    sandbox = pick(SANDBOX_GATEWAY_PORT=5099)
    assert isinstance(sandbox, SandboxGatewayTransport) and sandbox.url == "http://localhost:5099/api/v1/messages"
    settings = make_settings().with_overrides(sandbox=False)
    assert isinstance(build_transport(settings), UnconfiguredTransport)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="GATEWAY_URL"):
        make_settings(GATEWAY_URL="gateway.example.test/messages")


def test_without_a_gateway_the_reply_fails_with_a_clear_reason(setup: Setup):
    setup.use(UnconfiguredTransport())
    setup.rep.send(setup.chat_id, "Nowhere to go")
    (m,) = setup.messages()
    assert m["status"] == "failed"
    assert m["error"] == "No messaging gateway is configured, so replies cannot be delivered."


def test_the_embedded_default_serves_the_sandbox_gateway_where_replies_go(make_settings: Any):
    import socket

    import requests

    from sandbox.gateway.run import start_gateway_sandbox

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(SANDBOX_GATEWAY_PORT=port)
    url = start_gateway_sandbox(settings)  # a daemon thread: it lives as long as the test process
    assert url == f"http://localhost:{port}"
    assert "Sandbox messaging gateway" in requests.get(url + "/", timeout=5).text
    transport = build_transport(settings)
    assert isinstance(transport, SandboxGatewayTransport)
    from widget.services.channels.transports import OutboundMessage

    sent = transport.send(
        OutboundMessage(
            "embedded-key-1", 7, "telegram", "tg-7", "Hi from the embedded default", "Ann", "2026-01-01T00:00:00+00:00"
        ),
        "secret-of-account",
    )
    assert sent.gateway_message_id
    recorded = requests.get(url + "/_sandbox/messages", params={"chat_id": "tg-7"}, timeout=5).json()["messages"]
    assert [m["text"] for m in recorded] == ["Hi from the embedded default"]


def test_a_restarted_sandbox_gateway_is_linked_again_and_the_reply_still_goes(setup: Setup):
    assert setup.rep.send(setup.chat_id, "Before the restart").get_json()["message"]["status"] == "sent"
    setup.gateway.reset()  # the embedded default restarted: the sandbox forgot every channel
    assert setup.rep.send(setup.chat_id, "After the restart").get_json()["message"]["status"] == "sent"
    assert [o.text for o in setup.gateway.outbound] == ["After the restart"]
