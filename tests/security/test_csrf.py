"""Every state-changing route of our pages and API needs the CSRF token of the caller's own page.

Our session token travels in URLs (no cookies inside the CRM iframe), so it can leak through a
shared link or a log; the CSRF token is what stops a page elsewhere from posting with it. Routes
are taken from the URL map; server-to-server routes (``PUBLIC``) verify their callers instead and
are covered by test_inbound_signatures."""

from __future__ import annotations

from typing import Any

from tests.security.conftest import ADMIN, SELLER, World
from tests.support.security import call, changed_tables, fill_any, fingerprint, private_routes

CSRF_REFUSAL = "did not come from our page"


def form_for(world: World) -> dict[str, Any]:
    a = world.a
    return {
        "name": "renamed without a token",
        "transport": "whatsapp",
        "address": "+15559990003",
        "text": "sent without a token",
        "default_channel": a.channel_id,
        "notify_heads_all": "1",
    }


def test_state_changing_routes_refuse_a_missing_or_foreign_csrf_token(world: World):
    a, b = world.a, world.b
    routes = [r for r in private_routes(world.app) if r.changes_state]
    assert len(routes) >= 10
    forged = {
        "no token": None,
        "garbage": "not-a-csrf-token",
        "another account's token": b.csrf[ADMIN],
        "a colleague's token": a.csrf[SELLER],
    }
    problems = []
    for route in routes:
        before = fingerprint()
        for how, csrf in forged.items():
            for accept in ("text/html", "application/json"):
                response = call(
                    world.client,
                    route.method,
                    fill_any(route, a),
                    token=a.tokens[ADMIN],
                    csrf=csrf,
                    form=form_for(world),
                    accept=accept,
                )
                if response.status_code != 400 or CSRF_REFUSAL not in response.get_data(as_text=True):
                    problems.append(f"{route.name} with {how} ({accept}): {response.status_code}")
        changed = changed_tables(before, fingerprint())
        if changed:
            problems.append(f"{route.name}: a call without a valid CSRF token changed {changed}")
    assert not problems, "\n".join(problems)


def test_the_csrf_token_is_accepted_from_the_header_and_from_the_form(world: World):
    """What the refusals above are measured against: the page's own token passes, in the
    ``X-CSRFToken`` header (XHR) or the ``csrf_token`` field (plain form posts)."""
    a = world.a
    path = f"/app/channels/{a.other_channel_id}/rename"
    by_header = call(world.client, "POST", path, token=a.tokens[ADMIN], csrf=a.csrf[ADMIN], form={"name": "Renamed"})
    assert by_header.status_code == 302
    by_field = world.client.post(path, data={"st": a.tokens[ADMIN], "csrf_token": a.csrf[ADMIN], "name": "Again"})
    assert by_field.status_code == 302
    page = world.client.get("/app/channels", query_string={"st": a.tokens[ADMIN]}).get_data(as_text=True)
    assert "Again" in page
