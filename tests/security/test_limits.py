"""What an attacker can repeat is limited (finding 8): refused calls to ``/gateway/messages`` and
``/kommo/session`` from one address meet a 429 within a burst of a few dozen, while genuine
deliveries are never counted (no storage call at all); and an account's channels are capped."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from tests.security.conftest import ADMIN, World
from tests.support.security import changed_tables, fingerprint, widget_jwt
from widget.models import Channel
from widget.services.channels.signing import sign
from widget.web import limits

ATTACKER = "203.0.113.66"
GATEWAY = "198.51.100.5"


def _delivery(world: World, n: int) -> bytes:
    return json.dumps(
        {
            "message_id": f"limit-{n}",
            "channel_id": world.a.channel_id,
            "chat_type": "whatsapp",
            "chat_id": f"limit-chat-{n}",
            "phone": f"+1555888{n:04d}",
            "sender_name": "Client",
            "text": "hello",
            "sent_at": "2026-01-31T12:00:00Z",
        }
    ).encode()


def _post(world: World, raw: bytes, signature: str, address: str) -> Any:
    return world.client.post(
        "/gateway/messages",
        data=raw,
        headers={"X-Gateway-Signature": signature, "Content-Type": "application/json"},
        environ_base={"REMOTE_ADDR": address},
    )


@pytest.fixture
def storage_calls(monkeypatch) -> list[str]:
    """Every call the failure guards make to the shared counter (Redis in production)."""
    calls: list[str] = []
    real = limits.limiter.limiter
    for name in ("test", "hit"):
        original = getattr(real, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(real, name, spy)
    return calls


def test_bad_signatures_from_one_address_meet_a_429_and_genuine_deliveries_touch_no_counter(
    world: World, storage_calls: list[str]
):
    statuses = []
    before = fingerprint()
    for n in range(40):
        statuses.append(_post(world, _delivery(world, n), "0" * 64, ATTACKER).status_code)
    assert 429 in statuses[:30], statuses  # within a burst of a few dozen
    assert set(statuses[: statuses.index(429)]) == {401}
    assert set(statuses[statuses.index(429) :]) == {429}
    assert changed_tables(before, fingerprint()) == []
    refused = _post(world, _delivery(world, 99), "0" * 64, ATTACKER)
    assert refused.headers["Retry-After"].isdigit() and int(refused.headers["Retry-After"]) <= 60

    # The genuine gateway, at another address: 200 every time, and not one counter read or written.
    storage_calls.clear()
    for n in range(100, 160):
        raw = _delivery(world, n)
        assert _post(world, raw, sign(world.a.secret, raw), GATEWAY).status_code == 200
    assert storage_calls == []

    # The attacker's address stays refused even with a genuine signature until the window passes.
    raw = _delivery(world, 200)
    assert _post(world, raw, sign(world.a.secret, raw), ATTACKER).status_code == 429


def test_bad_widget_tokens_from_one_address_meet_a_429(world: World, app: Flask):
    statuses = []
    for _ in range(30):
        response = world.client.post(
            "/kommo/session",
            headers={"X-Auth-Token": widget_jwt(app, key="x" * 44)},
            json={"location": "widget_page"},
            environ_base={"REMOTE_ADDR": ATTACKER},
        )
        statuses.append(response.status_code)
    assert 429 in statuses, statuses
    assert set(statuses[: statuses.index(429)]) == {401}
    # Someone else, with a genuine token, is not affected.
    ok = world.client.post(
        "/kommo/session", headers={"X-Auth-Token": widget_jwt(app)}, json={}, environ_base={"REMOTE_ADDR": GATEWAY}
    )
    assert ok.status_code == 200, ok.get_json()


def test_an_account_has_at_most_max_channels(world: World, app: Flask):
    from sqlalchemy import func, select

    from widget.db import db

    app.extensions["widget"].settings = app.extensions["widget"].settings.with_overrides(max_channels=3)
    a = world.a
    headers = {"X-Session-Token": a.tokens[ADMIN], "X-CSRFToken": a.csrf[ADMIN]}

    def add(n: int, accept: str) -> Any:
        form = {"transport": "whatsapp", "name": f"Extra {n}", "address": f"+1202555{n:04d}"}
        return world.client.post("/app/channels", data=form, headers={**headers, "Accept": accept})

    assert add(1, "application/json").status_code == 201  # the tenant had 2: now 3
    refused = add(2, "application/json")
    assert refused.status_code == 422
    message = refused.get_json()["errors"]["channels"]
    assert "3 channels" in message
    page = add(3, "text/html")
    assert page.status_code == 422
    assert message in page.get_data(as_text=True)
    with db.transaction() as s:
        count = s.execute(select(func.count()).select_from(Channel).where(Channel.account_id == a.account_id))
        assert count.scalar_one() == 3


def test_max_channels_defaults_to_100_and_is_configurable(make_settings):
    assert make_settings().max_channels == 100
    assert make_settings(MAX_CHANNELS="250").max_channels == 250


def test_with_redis_url_the_counters_live_in_redis_and_every_process_counts_together(make_settings):
    """With ``REDIS_URL`` the refusals are counted in Redis (not in each process's memory), so two
    processes of one deployment share one budget: an address refused 15 times by the first meets a
    429 from the second within a few more tries."""
    import redis

    from widget import create_app

    url = "redis://127.0.0.1:6379/15"
    store = redis.Redis.from_url(url)
    try:
        store.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379 (.ci/run starts one)")
    store.flushdb()
    try:
        settings = make_settings(REDIS_URL=url)

        def refusals(app: Flask, count: int) -> list[int]:
            client = app.test_client()
            return [
                client.post(
                    "/kommo/session",
                    headers={"X-Auth-Token": "not-a-token"},
                    json={},
                    environ_base={"REMOTE_ADDR": ATTACKER},
                ).status_code
                for _ in range(count)
            ]

        first = create_app(settings)
        assert refusals(first, 15) == [401] * 15
        assert any(limits.KEY_PREFIX in k.decode() for k in store.keys()), store.keys()
        second = create_app(settings)  # another process of the same deployment
        statuses = refusals(second, 10)
        assert 429 in statuses, statuses
        assert statuses.index(429) <= 6, statuses  # 20 a minute in all, not 20 in each process
    finally:
        store.flushdb()
