"""Identity inside Kommo's iframe: the widget's one-time JWT → a launch URL → our page, framed only by
the account's own Kommo origin."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.factories import make_account
from tests.support.jobs import CallQueue
from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import world_fixture  # noqa: F401  (fixture)
from widget.models.accounts import CRM_KOMMO
from widget.web.identity import read_session_token


def _open(world, response):
    """Follow the launch URL as the iframe would; return the page response and the identity."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 120
    assert body["url"].startswith(f"{world.url}/app/launch?lt=")
    hop = requests.get(body["url"], allow_redirects=False, timeout=10)
    assert hop.status_code == 302
    st = parse_qs(urlsplit(hop.headers["Location"]).query)["st"][0]
    page = requests.get(f"{world.url}/app", params={"st": st}, timeout=10)
    with world.app.app_context():
        ident = read_session_token(st)
    return page, ident


def test_a_valid_token_opens_our_page_framed_only_by_the_accounts_kommo(world):
    world.install()
    admin = world.sandbox.admin_id(DEMO_HOST)
    response = world.session_url(DEMO_HOST, admin)
    assert response.headers["Access-Control-Allow-Origin"] == world.kommo_origin()

    page, ident = _open(world, response)
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert csp.startswith(f"frame-ancestors {world.kommo_origin()};")
    assert (ident.crm, ident.crm_user_id, ident.is_admin) == (CRM_KOMMO, str(admin), True)
    assert ident.frame_origin == world.kommo_origin()


def test_the_users_language_and_rights_come_from_kommo(world):
    world.install()
    maria = next(u for u in world.sandbox.users(DEMO_HOST) if u.name == "Мария Иванова")
    page, ident = _open(world, world.session_url(DEMO_HOST, maria.id))
    assert (ident.lang, ident.is_admin) == ("ru", False)
    assert page.status_code == 200

    # Without the is_admin claim (absent from Kommo's documented example), our synced row decides.
    admin = world.sandbox.admin_id(DEMO_HOST)
    _, ident = _open(world, world.session_url(DEMO_HOST, admin, is_admin=None))
    assert ident.is_admin is True


def test_a_user_added_after_the_last_refresh_is_read_from_kommo(world):
    world.install()
    newcomer = world.sandbox.add_user(DEMO_HOST, "Nadia Novak", lang="pt", is_admin=True)
    _, ident = _open(world, world.session_url(DEMO_HOST, newcomer, is_admin=None))
    assert (ident.lang, ident.is_admin, ident.name) == ("pt", True, "Nadia Novak")


def _post(world, token, origin=None):
    headers = {"X-Auth-Token": token, "Origin": origin or world.kommo_origin()}
    return requests.post(f"{world.url}/kommo/session", headers=headers, json={"location": "widget_page"}, timeout=10)


@pytest.mark.parametrize(
    ("forge", "status", "words"),
    [
        (lambda sb, uid: sb.mint_widget_jwt(DEMO_HOST, uid, now=time.time() - 3600), 401, "expired"),
        (lambda sb, uid: sb.mint_widget_jwt(DEMO_HOST, uid, aud="https://other.example"), 401, "another address"),
        (lambda sb, uid: sb.mint_widget_jwt(DEMO_HOST, uid, secret="x" * 44), 401, "not valid"),
        (lambda sb, uid: sb.mint_widget_jwt(DEMO_HOST, uid, client_uuid="0" * 36), 401, "another integration"),
        (lambda sb, uid: sb.mint_widget_jwt(DEMO_HOST, uid, subdomain="beta"), 403, "another Kommo account"),
        (lambda sb, uid: sb.mint_widget_jwt(DEMO_HOST, uid, account_id=31999999), 403, "not installed"),
        (lambda sb, uid: "", 401, "no X-Auth-Token"),
    ],
    ids=["expired", "wrong-aud", "wrong-key", "other-client", "other-subdomain", "other-account", "missing"],
)
def test_bad_tokens_are_refused_with_a_readable_json_error(world, forge, status, words):
    world.install()
    response = _post(world, forge(world.sandbox, world.sandbox.admin_id(DEMO_HOST)))
    assert response.status_code == status
    body = response.json()
    assert body["error"] in ("unauthorized", "forbidden")
    assert words in body["message"]
    # The widget can read the refusal: CORS headers are on errors too.
    assert response.headers["Access-Control-Allow-Origin"] == world.kommo_origin()


def test_a_replayed_token_is_refused(world):
    world.install()
    token = world.sandbox.mint_widget_jwt(DEMO_HOST, world.sandbox.admin_id(DEMO_HOST))
    assert _post(world, token).status_code == 200
    again = _post(world, token)
    assert again.status_code == 401
    assert "already used" in again.json()["message"]


def test_a_refused_token_is_not_spent(world):
    # A token refused for a reason outside it (the account was not installed yet) works afterwards.
    token = world.sandbox.mint_widget_jwt(DEMO_HOST, world.sandbox.admin_id(DEMO_HOST))
    assert _post(world, token).status_code == 403
    world.install()
    assert _post(world, token).status_code == 200


def test_an_uninstalled_account_gets_no_session(world):
    world.install()
    world.sandbox.call_revoke_hook(DEMO_HOST)
    response = world.session_url(DEMO_HOST, world.sandbox.admin_id(DEMO_HOST))
    assert response.status_code == 403


def test_preflight_is_allowed_from_the_installed_accounts_kommo_only(world):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-auth-token"}
    before = requests.options(
        f"{world.url}/kommo/session", headers={**preflight, "Origin": world.kommo_origin()}, timeout=10
    )
    assert before.status_code == 403  # nothing installed yet: no Kommo origin is ours
    world.install()
    ok = requests.options(
        f"{world.url}/kommo/session", headers={**preflight, "Origin": world.kommo_origin()}, timeout=10
    )
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == world.kommo_origin()
    assert "X-Auth-Token" in ok.headers["Access-Control-Allow-Headers"]
    assert "POST" in ok.headers["Access-Control-Allow-Methods"]
    for origin in ("https://evil.example", world.url, "null"):
        refused = requests.options(f"{world.url}/kommo/session", headers={**preflight, "Origin": origin}, timeout=10)
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers


def test_a_genuine_token_sent_from_another_origin_is_refused(world):
    world.install()
    token = world.sandbox.mint_widget_jwt(DEMO_HOST, world.sandbox.admin_id(DEMO_HOST))
    response = _post(world, token, origin="https://evil.example")
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers


# ---- per-account origins, as in production (KOMMO_BASE_URL=https://{host}) -------------------------


@pytest.fixture
def per_host_app(make_settings):
    from widget import create_app

    settings = make_settings(KOMMO_BASE_URL="https://{host}", KOMMO_DOMAINS="kommo.test")
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


def test_each_account_allows_only_its_own_kommo_origin(per_host_app):
    make_account(external_id="501", domain="acme.kommo.test")
    client = per_host_app.test_client()
    preflight = {"Access-Control-Request-Method": "POST"}

    ok = client.options("/kommo/session", headers={**preflight, "Origin": "https://acme.kommo.test"})
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "https://acme.kommo.test"
    for origin in (
        "https://beta.kommo.test",  # a Kommo account that has not installed us
        "https://acme.kommo.test.evil.example",
        "http://acme.kommo.test",  # wrong scheme
        "https://acme.kommo.test:8443",
    ):
        refused = client.options("/kommo/session", headers={**preflight, "Origin": origin})
        assert refused.status_code == 403, origin
        assert "Access-Control-Allow-Origin" not in refused.headers


def test_a_token_for_one_account_sent_from_another_accounts_kommo_is_refused(per_host_app, settings):
    import uuid

    import jwt

    make_account(external_id="501", domain="acme.kommo.test")
    make_account(external_id="502", domain="beta.kommo.test")
    now = int(time.time())
    token = jwt.encode(
        {
            "iss": "https://acme.kommo.test",
            "aud": settings.public_origin,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + 1800,
            "account_id": 501,
            "user_id": 1,
            "subdomain": "acme",
            "client_uuid": settings.kommo_client_id,
            "is_admin": True,
        },
        settings.kommo_client_secret,
        algorithm="HS256",
    )
    client = per_host_app.test_client()
    wrong = client.post("/kommo/session", headers={"X-Auth-Token": token, "Origin": "https://beta.kommo.test"})
    assert wrong.status_code == 403
    assert wrong.headers["Access-Control-Allow-Origin"] == "https://beta.kommo.test"  # so the widget can read why
    right = client.post("/kommo/session", headers={"X-Auth-Token": token, "Origin": "https://acme.kommo.test"})
    assert right.status_code == 200
    assert right.headers["Access-Control-Allow-Origin"] == "https://acme.kommo.test"


def test_a_card_opens_the_chat_panel_on_that_card_and_bad_bodies_are_refused(world):
    world.install()
    admin = world.sandbox.admin_id(DEMO_HOST)

    def post(body):
        token = world.sandbox.mint_widget_jwt(DEMO_HOST, admin)
        headers = {"X-Auth-Token": token, "Origin": world.kommo_origin()}
        return requests.post(f"{world.url}/kommo/session", headers=headers, json=body, timeout=10)

    card = post({"location": "lcard", "entity_type": "lead", "entity_id": 123})
    assert card.status_code == 200
    query = parse_qs(urlsplit(card.json()["url"]).query)
    assert (query["next"], query["entity_type"], query["entity_id"]) == (["chats"], ["lead"], ["123"])

    settings_page = parse_qs(urlsplit(post({"location": "advanced_settings"}).json()["url"]).query)
    assert "next" not in settings_page

    for bad in ({"location": "somewhere"}, {"entity_type": "invoice"}, {"entity_id": -1}, ["not", "an", "object"]):
        response = post(bad)
        assert response.status_code == 400, bad
        assert response.json()["error"] == "bad_request"


def test_right_after_the_install_webhook_the_widget_reads_still_connecting(world):
    """Kommo shows the widget as soon as it sent the install webhook; while our code exchange is
    still queued, the widget gets a readable answer (CORS allowed), then the page once it is done."""
    queued = []
    services = world.app.extensions["widget"]
    real = services.jobs
    services.jobs = CallQueue(lambda name, *args, delay=None: queued.append((name, args)))
    assert world.sandbox.deliver_install_webhook(DEMO_HOST).status_code == 200
    assert world.account() is None
    assert [name for name, _ in queued] == ["kommo_complete_install"]

    preflight = requests.options(
        f"{world.url}/kommo/session",
        headers={"Origin": world.kommo_origin(), "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == world.kommo_origin()

    admin = world.sandbox.admin_id(DEMO_HOST)
    waiting = world.session_url(DEMO_HOST, admin)
    assert waiting.status_code == 503
    assert waiting.headers["Access-Control-Allow-Origin"] == world.kommo_origin()
    assert "still being connected" in waiting.json()["message"]

    # The queued job runs: the next click opens our page.
    services.jobs = real
    with world.app.app_context():
        for name, args in queued:
            real.enqueue(name, *args)
    page, ident = _open(world, world.session_url(DEMO_HOST, admin))
    assert page.status_code == 200 and ident.is_admin


def test_an_origin_with_no_install_at_all_is_still_refused(world):
    preflight = requests.options(
        f"{world.url}/kommo/session",
        headers={"Origin": world.kommo_origin(), "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.status_code == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
