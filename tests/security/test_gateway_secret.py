"""The gateway signing secret is the key to every account's inbound messages: only the account's own
admins see or rotate it, only from their own page (CSRF), never through a GET, and an uninstalled
account's admin cannot get it at all."""

from __future__ import annotations

from typing import Any

from tests.security.conftest import ADMIN, QC, SELLER, Tenant, World
from tests.support.security import call
from widget.db import db
from widget.services.channels.signing import get_or_create_gateway_secret

REVEAL = "/app/channels/gateway-secret"
ROTATE = "/app/channels/gateway-secret/rotate"


def secret_of(world: World, tenant: Tenant) -> str:
    with db.transaction() as s:
        return get_or_create_gateway_secret(s, world.app.extensions["widget"].box, tenant.account_id)


def as_user(world: World, tenant: Tenant, user: str, path: str, **kw: Any) -> Any:
    return call(
        world.client,
        "POST",
        path,
        token=tenant.tokens[user],
        csrf=tenant.csrf[user],
        accept="application/json",
        **kw,
    )


def test_each_admin_sees_and_rotates_only_their_own_accounts_secret(world: World):
    a, b = world.a, world.b
    shown = as_user(world, b, ADMIN, REVEAL)
    assert shown.status_code == 200
    assert shown.get_json()["secret"] == b.secret != a.secret
    page = call(world.client, "GET", "/app/channels", token=b.tokens[ADMIN])
    assert a.secret not in page.get_data(as_text=True) and b.secret not in page.get_data(as_text=True)

    rotated = as_user(world, b, ADMIN, ROTATE, form={"stop_previous": "1"})
    assert rotated.status_code == 200
    assert a.secret not in rotated.get_data(as_text=True)
    assert secret_of(world, a) == a.secret, "another account's rotation leaves this one's secret alone"
    assert secret_of(world, b) != b.secret


def test_employees_who_are_not_admins_get_nothing(world: World):
    a = world.a
    for user in (SELLER, QC):
        for path in (REVEAL, ROTATE):
            answer = as_user(world, a, user, path)
            assert answer.status_code == 403, (user, path)
            assert a.secret not in answer.get_data(as_text=True)
        page = call(world.client, "GET", "/app/channels", token=a.tokens[user])
        assert page.status_code == 403
    assert secret_of(world, a) == a.secret


def test_without_the_pages_csrf_token_nothing_is_revealed_or_rotated(world: World):
    a, b = world.a, world.b
    for csrf in (None, "forged", b.csrf[ADMIN], a.csrf[SELLER]):
        for path in (REVEAL, ROTATE):
            answer = call(world.client, "POST", path, token=a.tokens[ADMIN], csrf=csrf, accept="application/json")
            assert answer.status_code == 400, (csrf, path)
            assert a.secret not in answer.get_data(as_text=True)
    assert secret_of(world, a) == a.secret


def test_the_secret_is_never_served_to_a_get_or_without_a_session(world: World):
    a = world.a
    assert call(world.client, "GET", REVEAL, token=a.tokens[ADMIN]).status_code == 405
    anonymous = call(world.client, "POST", REVEAL, accept="application/json")
    assert anonymous.status_code in (400, 401) and a.secret not in anonymous.get_data(as_text=True)


def test_an_uninstalled_accounts_admin_cannot_get_or_rotate_it(world: World):
    c = world.c
    for path in (REVEAL, ROTATE):
        answer = as_user(world, c, ADMIN, path)
        assert answer.status_code == 403
        assert c.secret not in answer.get_data(as_text=True)
    assert secret_of(world, c) == c.secret
