"""Page sessions do not outlive the rights they were issued for (finding 2): the employee's admin
right and activity are read again on every request, an uninstall or reinstall ends every session
issued before, tokens are short-lived and renewed while the page is in use, and pages keep them out
of caches and, where they can, out of addresses."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.security.conftest import ADMIN, SELLER, World, _snapshot
from tests.support.factories import identity, session_token
from tests.support.security import changed_tables, csrf_token, fingerprint
from widget.crm.kommo.payloads import KommoAccount
from widget.db import db
from widget.domain.crm import CrmSnapshot
from widget.services.crm_data.snapshot import apply_snapshot
from widget.services.installs.kommo import attach_account, revoke_access
from widget.web.identity import (
    RENEWED_HEADER,
    SESSION_LIFETIME_MAX,
    SESSION_MAX_AGE,
    SESSION_RENEW_AFTER,
    read_session_token,
)

KOMMO_A = 31001  # the Kommo account id of tenant A


def _headers(token: str, csrf: str | None = None) -> dict[str, str]:
    headers = {"X-Session-Token": token, "Accept": "application/json"}
    if csrf:
        headers["X-CSRFToken"] = csrf
    return headers


def _refresh_with(world: World, change: dict[str, Any]) -> None:
    """ "Refresh CRM data" for tenant A, with the CRM now saying ``change`` of its admin user."""
    snap = _snapshot(world.a.tag, "kommo")
    users = tuple(replace(u, **change) if u.crm_user_id == ADMIN else u for u in snap.users)
    with db.transaction() as s:
        apply_snapshot(s, world.a.account_id, CrmSnapshot(users, snap.pipelines, crm_mode=snap.crm_mode))


def _add_channel(world: World, token: str, csrf: str, n: int) -> Any:
    form = {"transport": "whatsapp", "name": f"Sneaky {n}", "address": f"+1202555{n:04d}"}
    return world.client.post("/app/channels", data=form, headers=_headers(token, csrf))


@pytest.mark.parametrize(
    "change",
    [{"is_admin": False, "is_active": False}, {"is_admin": False}, {"is_active": False}],
    ids=["demoted-and-deactivated", "demoted", "deactivated"],
)
def test_an_admin_whose_rights_changed_in_the_crm_is_refused_on_the_next_request(world: World, change):
    a = world.a
    token, csrf = a.tokens[ADMIN], a.csrf[ADMIN]
    assert world.client.get("/app/channels", headers=_headers(token)).status_code == 200
    assert _add_channel(world, token, csrf, 1).status_code == 201

    _refresh_with(world, change)

    before = fingerprint()
    assert world.client.get("/app/channels", headers=_headers(token)).status_code in (401, 403)
    assert _add_channel(world, token, csrf, 2).status_code in (401, 403)
    assert world.client.get("/app/settings/advanced", headers=_headers(token)).status_code in (401, 403)
    assert changed_tables(before, fingerprint()) == []
    if change.get("is_active") is False:
        # Deactivated: not even the chat panel.
        assert world.client.get("/api/chats", headers=_headers(token)).status_code in (401, 403)


def test_a_right_granted_later_needs_a_new_session_and_a_stale_admin_claim_grants_nothing(world: World, app: Flask):
    """Rights never exceed what our database says now: a token that says "admin" for an employee the
    database knows as a sales rep opens no admin page."""
    a = world.a
    ident = identity(a.account_id, user=SELLER, admin=True, origin=a.frame_origin)
    forged_claim = session_token(app, ident)  # signed by us, but the CRM never said SELLER is an admin
    assert world.client.get("/app/channels", headers=_headers(forged_claim)).status_code == 403
    assert world.client.get("/api/chats", headers=_headers(forged_claim)).status_code == 200


def test_a_token_from_before_an_uninstall_is_refused_after_the_reinstall(world: World, app: Flask):
    a = world.a
    old = a.tokens[ADMIN]
    assert world.client.get("/app", headers=_headers(old)).status_code == 200

    assert revoke_access(db, KOMMO_A)  # Kommo's "access revoked" hook
    assert world.client.get("/app", headers=_headers(old)).status_code == 403
    with db.transaction() as s:  # installed again within the grace period: settings come back
        attach_account(
            s, KommoAccount(KOMMO_A, "Aardvark", "aardvark", 100), "aardvark.kommo.test", 30, datetime.now(UTC)
        )

    refused = world.client.get("/app", headers=_headers(old))
    assert refused.status_code == 401
    assert "reopen" in refused.get_json()["message"]
    assert world.client.get("/api/chats", headers=_headers(old)).status_code == 401
    fresh = session_token(app, identity(a.account_id, user=ADMIN, admin=True, origin=a.frame_origin))
    assert world.client.get("/app", headers=_headers(fresh)).status_code == 200


@contextmanager
def issued_ago(seconds: float) -> Iterator[None]:
    """Tokens signed inside the block carry a timestamp ``seconds`` in the past."""
    real = time.time
    time.time = lambda: real() - seconds  # type: ignore[assignment]
    try:
        yield
    finally:
        time.time = real  # type: ignore[assignment]


def _token(app: Flask, world: World, user: str = ADMIN) -> str:
    a = world.a
    return session_token(app, identity(a.account_id, user=user, admin=user == ADMIN, origin=a.frame_origin))


def test_a_session_token_expires_unless_renewed_while_in_use(world: World, app: Flask):
    assert SESSION_MAX_AGE <= 3600, "a session token lives an hour at most"
    with issued_ago(SESSION_MAX_AGE + 60):
        expired = _token(app, world)
    gone = world.client.get("/api/chats", headers=_headers(expired))
    assert gone.status_code == 401
    assert "reopen the integration from your CRM" in gone.get_json()["message"]

    with issued_ago(SESSION_RENEW_AFTER + 60):
        aging = _token(app, world)
    answer = world.client.get("/api/chats", headers=_headers(aging))
    assert answer.status_code == 200
    renewed = answer.headers[RENEWED_HEADER]
    assert renewed != aging
    with app.app_context():
        old_claims, new_claims = read_session_token(aging), read_session_token(renewed)
    assert old_claims is not None and new_claims is not None
    assert (new_claims.sid, new_claims.opened_at, new_claims.account_epoch) == (
        old_claims.sid,
        old_claims.opened_at,
        old_claims.account_epoch,
    )
    # The successor works, with the CSRF token the page already has (same session id).
    same_csrf = csrf_token(app, aging)
    assert csrf_token(app, renewed) == same_csrf
    assert _add_channel(world, renewed, same_csrf, 3).status_code == 201
    # A fresh token is not renewed on every call.
    assert RENEWED_HEADER not in world.client.get("/api/chats", headers=_headers(renewed)).headers
    # A page rendered with an aging token embeds its successor.
    page = world.client.get("/app/chats", headers={"X-Session-Token": aging})
    token_in_page = re.search(r'<meta name="session-token" content="([^"]+)"', page.get_data(as_text=True))
    assert token_in_page and token_in_page.group(1) != aging
    with app.app_context():
        assert read_session_token(token_in_page.group(1)) is not None


def test_renewals_stop_a_day_after_the_crm_opened_the_page(world: World, app: Flask):
    a = world.a
    day_old = identity(a.account_id, user=ADMIN, admin=True, origin=a.frame_origin)
    day_old = replace(day_old, opened_at=int(time.time()) - SESSION_LIFETIME_MAX - 60)
    with issued_ago(SESSION_RENEW_AFTER + 60):
        token = session_token(app, day_old)
    answer = world.client.get("/api/chats", headers=_headers(token))
    assert answer.status_code == 200  # still valid for the rest of its own life...
    assert RENEWED_HEADER not in answer.headers  # ...but not renewed again


def test_pages_are_not_cached_and_forms_carry_the_token_in_their_body(world: World):
    token = world.a.tokens[ADMIN]
    for path in ("/app", "/app/channels", "/app/settings/advanced", "/app/chats"):
        page = world.client.get(path, query_string={"st": token})
        assert page.status_code == 200, path
        assert page.headers["Cache-Control"] == "no-store", path
        html = page.get_data(as_text=True)
        for form in re.findall(r"<form[^>]*method=\"post\"[^>]*>", html):
            assert "st=" not in form, (path, form)
        for button in re.findall(r"formaction=\"[^\"]*\"", html):
            assert "st=" not in button, (path, button)


def test_no_template_puts_the_token_into_a_form_or_script_address():
    """Forms carry ``st`` in their body (``auth_fields``) and scripts send it as a header; an address
    built with ``surl`` in a form action or a ``data-*-url`` would put it back into URLs (and a GET
    form drops its action's query anyway). Links (``href``) may carry it: they are navigations."""
    root = Path(__file__).resolve().parents[2] / "templates"
    found = []
    for template in root.rglob("*.html"):
        text = template.read_text()
        for match in re.finditer(r'\s(action|formaction|data-[\w-]*url)="\{\{\s*surl\(', text):
            found.append(f"{template.relative_to(root)}: {match.group(1)}")
    assert found == []
