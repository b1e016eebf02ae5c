"""Every route of the app, found in its URL map, is either public for a stated reason or refuses a
caller without a valid session, an account that uninstalled us, and (for admin pages) employees
who are not CRM admins. A refused call changes nothing in the database.

A new route needs no edit here: it is tried as soon as it is registered, and a route that answers
a stranger fails ``test_every_route_is_public_for_a_reason_or_refuses_strangers`` until it is
protected (``require_identity`` / ``require_admin``) or listed in ``PUBLIC`` with its reason."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tests.security.conftest import ADMIN, QC, SELLER, World
from tests.support.factories import identity, launch_token
from tests.support.security import (
    EMPLOYEE,
    PUBLIC,
    call,
    catalogue,
    changed_tables,
    fill_any,
    fingerprint,
    private_routes,
)
from widget.web.identity import SESSION_MAX_AGE


@contextmanager
def csrf_out_of_the_way(app: Flask) -> Iterator[None]:
    """Without this, a POST without a session stops at the CSRF check (400) and never shows whether
    the route itself checks the session; the CSRF check has its own tests (test_csrf)."""
    app.config["WTF_CSRF_ENABLED"] = False
    try:
        yield
    finally:
        app.config["WTF_CSRF_ENABLED"] = True


def forged_sessions(world: World) -> dict[str, str | None]:
    """Session tokens a stranger could present: none, garbage, signed with another key, expired,
    and a launch token (signed by us, for another purpose)."""
    app = world.app
    claims = identity(world.a.account_id).to_claims() | {"sid": "forged-sid"}

    class Past(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - SESSION_MAX_AGE - 60

    expired = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="widget-session", signer=Past).dumps(claims)
    other_key = URLSafeTimedSerializer("another-secret-key-0123456789abcdef", salt="widget-session").dumps(claims)
    return {
        "no token": None,
        "garbage": "not-a-token",
        "signed with another key": other_key,
        "expired": expired,
        "a launch token": launch_token(app, identity(world.a.account_id)),
    }


def test_the_public_list_names_real_routes_and_says_why(app: Flask):
    endpoints = {r.endpoint for r in catalogue(app)}
    for listing in (PUBLIC, EMPLOYEE):
        stale = sorted(set(listing) - endpoints)
        assert not stale, f"tests/support/security.py lists endpoints that no longer exist: {stale}"
        assert all(len(reason) > 10 for reason in listing.values()), "every entry says why"
    assert not set(PUBLIC) & set(EMPLOYEE)


def test_every_route_is_public_for_a_reason_or_refuses_strangers(world: World):
    routes = private_routes(world.app)
    assert len(routes) >= 20, "the catalogue found the app's routes"
    problems = []
    with csrf_out_of_the_way(world.app):
        for route in routes:
            path = fill_any(route, world.a)
            before = fingerprint()
            for how, token in forged_sessions(world).items():
                response = call(world.client, route.method, path, token=token)
                if response.status_code not in (401, 403):
                    problems.append(f"{route.name} with {how}: answered {response.status_code}")
            changed = changed_tables(before, fingerprint())
            if changed:
                problems.append(f"{route.name}: a refused call changed {changed}")
    assert not problems, (
        "routes that answer without a valid session — protect them with require_identity / "
        "require_admin, or list them in PUBLIC (tests/support/security.py) with the reason:\n" + "\n".join(problems)
    )


def test_a_browser_without_a_session_is_refused_and_nothing_changes(world: World):
    """As a forged cross-site form or XHR arrives: no session token, no CSRF token."""
    problems = []
    before = fingerprint()
    for route in private_routes(world.app):
        for accept in ("text/html", "application/json"):
            response = call(world.client, route.method, fill_any(route, world.a), accept=accept)
            allowed = (400, 401, 403) if route.changes_state else (401, 403)
            if response.status_code not in allowed:
                problems.append(f"{route.name} ({accept}): {response.status_code}")
            if "Set-Cookie" in response.headers:
                problems.append(f"{route.name}: set a cookie on a refusal")
    assert not problems, "\n".join(problems)
    assert changed_tables(before, fingerprint()) == []


def test_an_account_that_uninstalled_us_is_refused_everywhere(world: World):
    """Uninstall → "the account's pages and APIs refuse access" (product §6), even with a session
    token issued before the uninstall."""
    problems = []
    before = fingerprint()
    with csrf_out_of_the_way(world.app):
        for route in private_routes(world.app):
            for user in (ADMIN, SELLER):
                response = call(world.client, route.method, fill_any(route, world.c), token=world.c.tokens[user])
                if response.status_code != 403:
                    problems.append(f"{route.name} as user {user}: {response.status_code}")
    assert not problems, "\n".join(problems)
    assert changed_tables(before, fingerprint()) == []


def test_employees_who_are_not_admins_reach_only_the_chat_panel(world: World):
    """Settings, channels and "Refresh CRM data" are for CRM admins (product: "Who uses it");
    a sales rep or quality control gets 403 there, with the CSRF token of their own page."""
    problems = []
    admin_only = [r for r in private_routes(world.app) if r.endpoint not in EMPLOYEE]
    assert any(r.endpoint.startswith("settings.") for r in admin_only)
    for tenant in (world.a, world.b):
        before = fingerprint()
        for route in admin_only:
            for user in (SELLER, QC):
                response = call(
                    world.client,
                    route.method,
                    fill_any(route, tenant),
                    token=tenant.tokens[user],
                    csrf=tenant.csrf[user],
                    form={"name": "renamed by a rep", "transport": "whatsapp", "address": "+15559990002"},
                )
                if response.status_code != 403:
                    problems.append(f"{route.name} as {tenant.crm} user {user}: {response.status_code}")
        changed = changed_tables(before, fingerprint())
        if changed:
            problems.append(f"{tenant.crm}: refused calls changed {changed}")
    assert not problems, (
        "admin routes that employees can use — use require_admin, or list the route in EMPLOYEE "
        "(tests/support/security.py) with the reason:\n" + "\n".join(problems)
    )


TOKEN_FREE_REFERRERS = ("no-referrer", "strict-origin")


def test_the_same_routes_answer_their_own_admin_framed_only_by_their_crm(world: World):
    """The refusals above are about who asks: with the admin's own session every GET page answers,
    framed only by that account's CRM origin, with no inline script allowed, and with no Referer
    that would carry the session token (it is in our URLs) to another site."""
    problems = []
    for route in private_routes(world.app):
        if route.method != "GET":
            continue
        tenant = world.b if route.endpoint.startswith("bitrix24.") else world.a
        response = call(world.client, "GET", fill_any(route, tenant), token=tenant.tokens[ADMIN])
        if response.status_code != 200:
            problems.append(f"{route.name}: {response.status_code}")
            continue
        # Either policy keeps paths and queries (the session token) out of every Referer; our pages
        # use strict-origin so that their own posts carry a real Origin (widget.web.same_origin).
        if response.headers.get("Referrer-Policy") not in TOKEN_FREE_REFERRERS or "Set-Cookie" in response.headers:
            problems.append(f"{route.name}: Referer or cookie could carry the session")
        if response.mimetype == "text/html":
            csp = response.headers.get("Content-Security-Policy", "")
            scripts = csp.split("script-src", 1)[-1].split(";", 1)[0]
            if f"frame-ancestors {tenant.frame_origin};" not in csp or "'unsafe-inline'" in scripts:
                problems.append(f"{route.name}: CSP {csp!r}")
    assert not problems, "\n".join(problems)
