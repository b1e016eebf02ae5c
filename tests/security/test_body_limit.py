"""Bodies over the size limit (1 MiB): 413 on every route, never a 500, nothing stored, and the
connection is not kept (``tests/integration/test_gunicorn_connections.py`` checks what gunicorn does
with it on the wire)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask

from tests.integration.test_settings_helpers import add_channels, kommo_account
from tests.support.factories import identity, session_token
from tests.support.security import changed_tables, csrf_token, fingerprint

LIMIT = 1024 * 1024
OVER = LIMIT + 4096

ROUTES = [
    "/bitrix24/app",  # Bitrix24's iframe POSTs
    "/bitrix24/placement",
    "/bitrix24/install",
    "/bitrix24/events",
    "/bitrix24/refresh",
    "/app/channels",  # our settings forms
    "/app/channels/1/rename",
    "/app/settings/channels/1",
    "/app/settings/advanced",
    "/app/settings/refresh",
    "/app/settings/test-message",
    "/api/chats/1/messages",
    "/kommo/session",
    "/kommo/uninstall",
    "/gateway/messages",
    "/whatsapp/webhook",
    "/telegram/webhook/some-key",
]


def oversized_form(with_token: str | None) -> dict[str, Any]:
    body = {"name": "x" * OVER}
    if with_token:
        body["st"] = with_token
    return body


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body, built here: the test client would spool it to a temporary file
    that nobody reads (the point of the test) and nobody closes."""
    boundary = "wzboundary7f3a"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def page_token(app: Flask) -> str:
    account = kommo_account()
    add_channels(account, ("whatsapp", "Sales", "+34600123456"))
    return session_token(app, identity(account, admin=True, user="100"))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_an_oversized_form_gets_413_on_every_route(app: Flask, page_token: str, route: str, encoding: str) -> None:
    client = app.test_client()
    before = fingerprint()
    fields = oversized_form(page_token)
    headers = {"X-CSRFToken": csrf_token(app, page_token)}
    if encoding == "multipart":
        body, content_type = multipart(fields)
    else:
        body, content_type = urlencode(fields).encode(), "application/x-www-form-urlencoded"
    answer = client.post(route, data=body, content_type=content_type, headers=headers)
    text = answer.get_data(as_text=True)
    assert answer.status_code == 413, f"{route}: {answer.status_code} {text[:200]}"
    assert "too large" in text
    assert answer.headers.get("Connection") == "close"
    assert not changed_tables(before, fingerprint())


@pytest.mark.parametrize(
    ("route", "accept", "kind"),
    [("/app/channels", "text/html", "text/html"), ("/api/chats/1/messages", "application/json", "application/json")],
)
def test_the_413_speaks_the_callers_format(app: Flask, route: str, accept: str, kind: str) -> None:
    answer = app.test_client().post(route, data={"text": "x" * OVER}, headers={"Accept": accept})
    assert answer.status_code == 413
    assert answer.mimetype == kind
    assert "at most 1024 KB" in answer.get_data(as_text=True)


def test_a_get_with_an_oversized_body_is_refused_too(app: Flask) -> None:
    """A route that never reads its body still does not pretend nothing was sent."""
    answer = app.test_client().get("/healthz", data=b"x" * OVER, content_type="application/octet-stream")
    assert answer.status_code == 413


def test_a_body_within_the_limit_still_gets_in(app: Flask, page_token: str) -> None:
    """What the refusals are measured against: the same form, small, reaches the route."""
    answer = app.test_client().post(
        "/app/channels",
        data={"st": page_token, "transport": "telegram", "name": "Bot " + "x" * 50, "address": "@small_bot"},
        headers={"X-CSRFToken": csrf_token(app, page_token), "Sec-Fetch-Site": "same-origin"},
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    assert "Connection" not in answer.headers
