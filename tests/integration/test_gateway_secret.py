"""A real messaging gateway can get its signing secret: created at install, shown to the account's
admins on the Channels page (revealed on request), rotated with a grace period during which
deliveries signed with the old and the new secret are both accepted, and printed or rotated by the
deployer with ``flask --app server gateway-secret``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from sandbox.gateway import GatewaySandbox
from sandbox.gateway import create_app as gateway_app
from tests.integration.test_settings_helpers import Browser
from tests.support.bitrix24_sandbox import bitrix24_world
from tests.support.chat_panel import chat_by_external, open_panel
from tests.support.conversations import World, make_world
from tests.support.kommo_world import KommoWorld, world_fixture
from tests.support.servers import live_server
from widget.db import db
from widget.models._base import utcnow
from widget.models.conversations import GatewaySecret
from widget.services.channels.gateway_secret import ROTATION_GRACE
from widget.services.channels.signing import forget_keys, get_or_create_gateway_secret
from widget.services.channels.transports import HttpGatewayTransport

__all__ = ["world_fixture"]


@pytest.fixture
def w(app: Flask, database_url: str) -> Iterator[World]:
    yield make_world(app, roles={1: ("seller", True)})


def admin_of(app: Flask, client: Any, w: World) -> Browser:
    return Browser(app, client, w.account_id, user="100", admin=True)


def stored_secret(app: Flask, account_id: int) -> str:
    with db.transaction() as s:
        return get_or_create_gateway_secret(s, app.extensions["widget"].box, account_id)


def grace_ends_now(account_id: int) -> None:
    """Time passes past the end of the grace period (the stored end moves into the past)."""
    with db.transaction() as s:
        s.execute(
            update(GatewaySecret)
            .where(GatewaySecret.account_id == account_id)
            .values(previous_valid_until=utcnow() - timedelta(seconds=1))
        )
    forget_keys()  # what a process would do once its cached keys expire (two seconds)


def test_admin_sees_the_inbound_address_and_reveals_the_secret_only_on_request(app: Flask, client: Any, w: World):
    admin = admin_of(app, client, w)
    page = admin.get("/app/channels")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-testid="gateway-section"' in html
    assert "http://127.0.0.1:5000/gateway/messages" in html
    assert w.secret not in html, "the secret is never written into the page"
    assert f"{'•' * 12}{w.secret[-4:]}" in html  # its last characters tell which one a gateway holds

    shown = admin.xhr("/app/channels/gateway-secret")
    assert shown.status_code == 200
    assert shown.get_json()["secret"] == w.secret
    assert shown.get_json()["inbound_url"] == "http://127.0.0.1:5000/gateway/messages"
    assert shown.headers["Cache-Control"] == "no-store"


def test_rotation_keeps_the_old_secret_valid_until_the_grace_ends(app: Flask, client: Any, w: World):
    admin = admin_of(app, client, w)
    old = w.secret
    assert w.post(client, w.payload(1), secret=old).status_code == 200

    rotated = admin.form("/app/channels/gateway-secret/rotate")
    assert rotated.status_code == 302 and "#gateway" in rotated.headers["Location"]
    new = admin.xhr("/app/channels/gateway-secret").get_json()["secret"]
    assert new != old and len(new) == 64

    # During the grace period the gateway may sign with either: nothing is lost while it switches.
    assert w.post(client, w.payload(2), secret=old).status_code == 200
    assert w.post(client, w.payload(3), secret=new).status_code == 200
    page = admin.get("/app/channels", notice="rotated").get_data(as_text=True)
    assert 'data-testid="gateway-grace"' in page and "UTC" in page
    with db.transaction() as s:
        row = s.get(GatewaySecret, w.account_id)
        assert row is not None and row.previous_valid_until is not None
        left = row.previous_valid_until - utcnow()
    assert ROTATION_GRACE - timedelta(minutes=1) < left <= ROTATION_GRACE

    grace_ends_now(w.account_id)
    refused = w.post(client, w.payload(4), secret=old)
    assert refused.status_code == 401
    assert w.post(client, w.payload(5), secret=new).status_code == 200
    assert 'data-testid="gateway-grace"' not in admin.get("/app/channels").get_data(as_text=True)


def test_replies_reach_a_gateway_still_holding_the_old_secret_until_the_grace_ends(app: Flask, client: Any, w: World):
    gateway = GatewaySandbox(answer_delay=0.05, timeout=5)
    with live_server(gateway_app(gateway)) as gw:
        # The operator configured the gateway with the secret of the day; our replies go there over HTTP.
        gateway.link(w.channel_id, w.secret, "http://127.0.0.1:9/gateway/messages")
        app.extensions["widget"].transport = HttpGatewayTransport(gw.url + "/api/v1/messages", timeout=5)
        assert w.post(client, w.payload(1)).status_code == 200
        chat_id = chat_by_external(w, 1).id
        rep = open_panel(app, w, 1)
        admin_of(app, client, w).form("/app/channels/gateway-secret/rotate")

        assert rep.send(chat_id, "During the grace period").status_code == 201
        assert [m.text for m in gateway.outbound] == ["During the grace period"]

        grace_ends_now(w.account_id)
        rep.send(chat_id, "After it, to a gateway nobody updated")
        last = rep.chat(chat_id).get_json()["messages"][-1]
        assert last["status"] == "failed" and "HTTP 401" in last["error"]

        gateway.link(w.channel_id, stored_secret(app, w.account_id), "http://127.0.0.1:9/gateway/messages")
        rep.send(chat_id, "Once the gateway has the new one")
        assert [m.text for m in gateway.outbound][-1] == "Once the gateway has the new one"


def test_a_leaked_secret_is_stopped_at_once(app: Flask, client: Any, w: World):
    admin = admin_of(app, client, w)
    answer = admin.xhr("/app/channels/gateway-secret/rotate", {"stop_previous": "1"})
    assert answer.status_code == 200
    assert "no longer works" in answer.get_json()["message"]
    assert answer.get_json()["gateway"]["previous_until"] == ""
    new = stored_secret(app, w.account_id)
    assert w.post(client, w.payload(1), secret=w.secret).status_code == 401
    assert w.post(client, w.payload(2), secret=new).status_code == 200


def test_the_page_speaks_the_admins_language(app: Flask, client: Any, w: World):
    from tests.support.factories import identity, session_token

    st = session_token(app, identity(w.account_id, crm="kommo", user="100", admin=True, lang="es"))
    html = client.get("/app/channels", query_string={"st": st}).get_data(as_text=True)
    assert "Secreto de firma" in html and "Rotar el secreto" in html


# --- created at install, not on first use ------------------------------------------------------------


def test_a_kommo_install_creates_the_secret_before_any_message(world: KommoWorld):
    account_id = world.install()
    with db.transaction() as s:
        assert s.get(GatewaySecret, account_id) is not None


def test_a_bitrix24_install_creates_the_secret_before_any_message(make_settings: Any):
    with bitrix24_world(make_settings) as b24:
        b24.install()
        account = b24.account()
        assert account is not None
        with db.transaction() as s:
            assert s.get(GatewaySecret, account.id) is not None
        b24.state.wait_deliveries()


# --- the deployer's command -----------------------------------------------------------------------------


def test_the_cli_prints_and_rotates_an_accounts_secret(app: Flask, w: World):
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["gateway-secret", "--list"])
    assert listed.exit_code == 0 and "acme.kommo.test" in listed.output and w.secret not in listed.output

    shown = runner.invoke(args=["gateway-secret", "acme.kommo.test"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.strip() == w.secret
    assert runner.invoke(args=["gateway-secret", str(w.account_id)]).stdout.strip() == w.secret

    rotated = runner.invoke(args=["gateway-secret", "acme.kommo.test", "--rotate"])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip()
    assert new == stored_secret(app, w.account_id) and new != w.secret
    assert "keeps working until" in rotated.stderr

    unknown = runner.invoke(args=["gateway-secret", "nobody.kommo.test"])
    assert unknown.exit_code != 0 and "No account" in unknown.output
    with db.transaction() as s:
        assert s.execute(select(GatewaySecret.account_id)).scalars().all() == [w.account_id]
