"""Our pages behind the README's TLS front: ``PUBLIC_URL`` is ``https://``, the request reaches the
app as https (gunicorn's ``forwarded_allow_ips`` or ``PROXY_HOPS``), and a browser posts our forms.

Flask-WTF's strict HTTPS check wanted a same-origin ``Referer`` our pages never send, so every form
failed; now the request's own ``Sec-Fetch-Site`` / ``Origin`` / ``Referer`` must say it came from our
origin (on plain HTTP too), on top of the CSRF token bound to the session token. Also here: HSTS,
``Cache-Control: no-store`` on HTML, the referrer policy, which proxy headers are believed, and
absolute URLs built from ``PUBLIC_URL`` whatever the request's ``Host``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from tests.integration.test_settings_helpers import add_channels, employee_ids, kommo_account, kommo_form
from tests.support.factories import identity, session_token
from tests.support.jobs import run_jobs_inline
from tests.support.security import csrf_token, widget_jwt
from widget import create_app
from widget.config import Settings
from widget.db import db
from widget.domain.crm import SyncReport
from widget.models import Channel

PUBLIC = "https://chats.example.test"
CSRF_REFUSAL = "did not come from our page"
# What Chromium sends with a form POST of our page (Referrer-Policy: strict-origin) on https.
SAME_ORIGIN = {"Origin": PUBLIC, "Sec-Fetch-Site": "same-origin", "Referer": PUBLIC + "/"}


def build(make_settings: Any, **env: Any) -> Flask:
    settings: Settings = make_settings(**env)
    app = create_app(settings)
    app.config["TESTING"] = True
    run_jobs_inline(app)
    return app


@pytest.fixture
def https_app(make_settings: Any) -> Flask:
    app = build(make_settings, PUBLIC_URL=PUBLIC)
    # "Refresh CRM data" without a CRM behind it: what matters here is whether the request gets in.
    app.extensions["widget"].refresh_crm_data = lambda *a, **k: SyncReport()
    return app


class Admin:
    """An admin's page session; ``post`` sends what the browser sends, over https via the front."""

    def __init__(self, app: Flask, client: FlaskClient, account_id: int, base_url: str = PUBLIC) -> None:
        self.client = client
        self.base_url = base_url
        self.st = session_token(app, identity(account_id, admin=True, user="100"))
        self.csrf = csrf_token(app, self.st)

    def post(self, path: str, data: dict[str, Any], headers: dict[str, str], *, xhr: bool = False) -> Any:
        body = dict(data)
        sent = dict(headers)
        if xhr:
            sent.update({"X-Session-Token": self.st, "X-CSRFToken": self.csrf, "Accept": "application/json"})
        else:
            body.update({"st": self.st, "csrf_token": self.csrf})
        return self.client.post(path, data=body, headers=sent, base_url=self.base_url)


@pytest.fixture
def admin(https_app: Flask) -> Iterator[tuple[Admin, int, int]]:
    account = kommo_account()
    channel = add_channels(account, ("whatsapp", "Sales", "+34600123456"))[0]
    yield Admin(https_app, https_app.test_client(), account), account, channel


def channel_names(account_id: int) -> list[str]:
    with db.transaction() as s:
        return sorted(c.name for c in s.query(Channel).filter(Channel.account_id == account_id))


# --- the forms Save, Refresh CRM data and Add channel, over https ---------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        SAME_ORIGIN,
        {"Origin": PUBLIC, "Sec-Fetch-Site": "same-origin"},  # a browser or extension that drops Referer
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},  # a page still under Referrer-Policy: no-referrer
        {"Origin": PUBLIC},  # a browser without Sec-Fetch-* (Safari before 16.4)
        {},  # not a browser at all: the tokens alone decide, as before
    ],
    ids=["browser", "no-referer", "origin-null", "no-fetch-metadata", "no-browser-headers"],
)
def test_save_refresh_and_add_channel_work_over_https(admin: tuple[Admin, int, int], headers: dict[str, str]) -> None:
    page, account, channel = admin
    ids = employee_ids(account)
    form = kommo_form({ids["100"]: ("head", True)}, pipeline="1", stage="11", distribution="first_reply")

    saved = page.post(f"/app/settings/channels/{channel}", form, headers, xhr=True)
    assert saved.status_code == 200, saved.get_data(as_text=True)
    assert saved.get_json()["ok"] is True

    refreshed = page.post("/app/settings/refresh", {"channel": str(channel)}, headers, xhr=True)
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    assert refreshed.get_json()["ok"] is True

    bot = {"transport": "telegram", "name": "Support bot", "address": "@acme_bot"}
    added = page.post("/app/channels", bot, headers)
    assert added.status_code == 302, added.get_data(as_text=True)
    assert channel_names(account) == ["Sales", "Support bot"]


@pytest.mark.parametrize(
    ("headers", "base_url"),
    [
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, PUBLIC),
        ({"Origin": "https://crm.example.test", "Sec-Fetch-Site": "same-site"}, PUBLIC),  # a sibling subdomain
        ({"Sec-Fetch-Site": "cross-site"}, PUBLIC),
        ({"Origin": "https://evil.example"}, PUBLIC),
        ({"Origin": "null"}, PUBLIC),  # a sandboxed frame elsewhere; our own pages never send it
        ({"Referer": "https://evil.example/page"}, PUBLIC),
        ({"Origin": "http://chats.example.test"}, PUBLIC),  # the same host, downgraded
        # On plain HTTP (the embedded default) Flask-WTF checked no origin at all; now it does.
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, "http://chats.example.test"),
    ],
    ids=["cross-site", "same-site", "fetch-site", "origin", "origin-null", "referer", "downgrade", "plain-http"],
)
def test_a_post_from_another_origin_is_refused_even_with_both_tokens(
    admin: tuple[Admin, int, int], headers: dict[str, str], base_url: str
) -> None:
    """Someone who got hold of a page's session and CSRF tokens (a shared link, a log) still cannot
    make a victim's browser post them from another page: the browser says where the post came from."""
    page, account, _ = admin
    page.base_url = base_url
    for accept in ("text/html", "application/json"):
        answer = page.post(
            "/app/channels",
            {"transport": "telegram", "name": "Forged", "address": "@forged_bot"},
            {**headers, "Accept": accept},
        )
        assert answer.status_code == 400, answer.get_data(as_text=True)
        assert CSRF_REFUSAL in answer.get_data(as_text=True)
    assert channel_names(account) == ["Sales"]


def test_the_origin_check_still_needs_the_csrf_token(admin: tuple[Admin, int, int]) -> None:
    page, account, _ = admin
    answer = page.client.post(
        "/app/channels",
        data={"st": page.st, "transport": "telegram", "name": "No token", "address": "@no_token_bot"},
        headers=SAME_ORIGIN,
        base_url=PUBLIC,
    )
    assert answer.status_code == 400 and CSRF_REFUSAL in answer.get_data(as_text=True)
    assert channel_names(account) == ["Sales"]


# --- response headers ----------------------------------------------------------------------------------------


def test_pages_tell_browsers_to_stay_on_https_and_never_store_them(admin: tuple[Admin, int, int]) -> None:
    page, _, channel = admin
    client = page.client
    html = {
        "settings": client.get("/app/settings", query_string={"st": page.st, "channel": channel}, base_url=PUBLIC),
        "chats": client.get("/app", query_string={"st": page.st, "view": "chats"}, base_url=PUBLIC),
        "error page": client.get("/app/settings", base_url=PUBLIC),  # no session: 401
        "not found": client.get("/no-such-page", base_url=PUBLIC),
    }
    for what, answer in html.items():
        assert answer.mimetype == "text/html", what
        assert answer.headers.get("Cache-Control") == "no-store", f"{what}: {answer.headers.get('Cache-Control')}"
        assert answer.headers.get("Strict-Transport-Security") == "max-age=31536000", what
        # The referrer our pages send elsewhere is at most our origin: never a path, never a token.
        assert answer.headers.get("Referrer-Policy") == "strict-origin", what
    api = client.get("/api/chats", headers={"X-Session-Token": page.st}, base_url=PUBLIC)
    assert api.status_code == 200 and api.headers.get("Strict-Transport-Security") == "max-age=31536000"
    static = client.get("/static/app.css", base_url=PUBLIC)
    assert "no-store" not in (static.headers.get("Cache-Control") or "")  # our assets stay cacheable
    static.close()


def test_no_hsts_when_the_public_address_is_plain_http(make_settings: Any) -> None:
    """The embedded default on http://127.0.0.1:5000: HSTS there would be ignored at best."""
    app = build(make_settings, PUBLIC_URL="http://127.0.0.1:5000")
    answer = app.test_client().get("/no-such-page")
    assert "Strict-Transport-Security" not in answer.headers
    assert answer.headers.get("Cache-Control") == "no-store"


# --- what is believed of the proxy's headers ---------------------------------------------------------------


def _probe(app: Flask) -> FlaskClient:
    @app.get("/_probe_request")
    def probe() -> Any:
        return {"addr": request.remote_addr, "scheme": request.scheme, "host": request.host}

    return app.test_client()


FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "chats.example.test"}


def test_proxy_headers_are_ignored_unless_proxy_hops_says_a_front_sets_them(make_settings: Any) -> None:
    seen = _probe(build(make_settings, PUBLIC_URL=PUBLIC)).get(
        "/_probe_request", headers=FORWARDED, base_url="http://10.0.0.5:8000", environ_base={"REMOTE_ADDR": "10.0.0.2"}
    )
    assert seen.get_json() == {"addr": "10.0.0.2", "scheme": "http", "host": "10.0.0.5:8000"}


def test_with_proxy_hops_the_client_address_and_scheme_come_from_the_front(make_settings: Any) -> None:
    client = _probe(build(make_settings, PUBLIC_URL=PUBLIC, PROXY_HOPS="1"))
    seen = client.get(
        "/_probe_request",
        headers={**FORWARDED, "X-Forwarded-For": "198.51.100.1, 203.0.113.9"},  # the first one, the client forged
        base_url="http://10.0.0.5:8000",
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )
    assert seen.get_json() == {"addr": "203.0.113.9", "scheme": "https", "host": "chats.example.test"}


def test_absolute_urls_come_from_public_url_whatever_the_request_host(https_app: Flask) -> None:
    """nginx forwards ``Host: <upstream>`` by default; links we hand out must still be ours."""
    client = https_app.test_client()
    internal = "http://10.0.0.5:8000"
    # The Kommo widget's page address (``POST /kommo/session``), asked through the front.
    kommo_account(external_id="31001", domain="aardvark.kommo.test")
    with https_app.app_context():
        token = widget_jwt(https_app)
    session = client.post(
        "/kommo/session", json={"location": "widget_page"}, headers={"X-Auth-Token": token}, base_url=internal
    )
    assert session.status_code == 200, session.get_data(as_text=True)
    assert session.get_json()["url"].startswith(PUBLIC + "/app/launch?lt=")
    # A redirect after a form post stays relative, so the browser keeps the https address it used.
    account = kommo_account(external_id="2002", domain="beta.kommo.test")
    page = Admin(https_app, client, account, base_url=internal)
    added = page.post("/app/channels", {"transport": "telegram", "name": "Bot", "address": "@beta_bot"}, SAME_ORIGIN)
    assert added.status_code == 302
    assert added.headers["Location"].startswith("/app/channels?")
