"""Nothing ever crosses accounts (product: "Terms"). A signed-in user of one account aims every
route at the other account's objects — in the path, in the query and in the form — with a valid
CSRF token of their own page. Each route refuses what names another account's object, none of the
victim's rows change, and no answer shows anything of the victim's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.conftest import ADMIN, SELLER, Tenant, World
from tests.support.security import (
    REFUSED_IN_PAGE,
    Route,
    account_fingerprint,
    call,
    changed_tables,
    fill,
    private_routes,
)


def victim_query(v: Tenant) -> list[dict[str, Any]]:
    """The query parameters our pages use to name an object (settings tab, chat, CRM card)."""
    return [
        {"channel": v.channel_id},
        {"view": "chats", "chat": v.chat_id, "entity_type": v.entity_kind, "entity_id": v.entity_id},
    ]


def victim_form(v: Tenant) -> dict[str, Any]:
    """Every form field of ours that carries an id, set to the victim's objects."""
    rep = v.employees[SELLER]
    return {
        "channel": v.channel_id,
        "default_channel": v.channel_id,
        "fallback_employee": v.employees[ADMIN],
        f"role-{rep}": "head",
        f"new-{rep}": "1",
        "new_client_entity": v.entity_kind,
        "pipeline": "1",
        "stage": "11",
        "distribution": "round_robin",
        "name": "renamed by a stranger",
        "text": "written by a stranger",
        "transport": "whatsapp",
        "address": "+15559990001",
    }


def refused(route: Route, response: Any) -> bool:
    if response.status_code in (403, 404):
        return True
    shown = REFUSED_IN_PAGE.get(route.endpoint)
    return response.status_code == 200 and shown is not None and shown in response.get_data(as_text=True)


def leaks(response: Any, victim: Tenant) -> list[str]:
    seen = response.get_data(as_text=True) + " " + response.headers.get("Location", "")
    return [s for s in victim.secrets if s in seen]


@pytest.mark.parametrize(
    ("attacker", "victim", "user"),
    [("b", "a", ADMIN), ("b", "a", SELLER), ("a", "b", ADMIN), ("a", "b", SELLER)],
    ids=["bitrix24-admin-on-kommo", "bitrix24-rep-on-kommo", "kommo-admin-on-bitrix24", "kommo-rep-on-bitrix24"],
)
def test_another_accounts_ids_are_refused_and_nothing_of_theirs_changes_or_shows(
    world: World, attacker: str, victim: str, user: str
):
    me, them = getattr(world, attacker), getattr(world, victim)
    problems = []
    for route in private_routes(world.app):
        try:
            path = fill(route, them)
        except KeyError as exc:
            problems.append(str(exc.args[0]))
            continue
        before = account_fingerprint(them.account_id)
        queries = victim_query(them) if route.method == "GET" else victim_query(them)[:1]
        for query in queries:
            for accept in ("text/html", "application/json"):
                response = call(
                    world.client,
                    route.method,
                    path,
                    token=me.tokens[user],
                    csrf=me.csrf[user],
                    query=query,
                    form=victim_form(them),
                    accept=accept,
                )
                where = f"{route.name} {query} ({accept})"
                if response.status_code >= 500:
                    problems.append(f"{where}: {response.status_code}")
                if route.arguments and not refused(route, response):
                    problems.append(f"{where}: answered {response.status_code} for the other account's object")
                found = leaks(response, them)
                if found:
                    problems.append(f"{where}: shows the other account's {found}")
        changed = changed_tables(before, account_fingerprint(them.account_id))
        if changed:
            problems.append(f"{route.name}: changed the other account's {changed}")
    assert not problems, "\n".join(problems)


def test_the_ids_used_above_are_real(world: World):
    """The refusals above are about the account: the owner reaches the same objects."""
    for route in private_routes(world.app):
        if route.method != "GET" or not route.arguments:
            continue
        for tenant in (world.a, world.b):
            response = call(world.client, "GET", fill(route, tenant), token=tenant.tokens[ADMIN])
            assert response.status_code == 200, (route.name, tenant.crm, response.status_code)
            assert tenant.tag in response.get_data(as_text=True), route.name
