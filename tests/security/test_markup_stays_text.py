"""CRM and client text stays text. Employee, pipeline, stage, client and account names come from
the CRM, message texts from clients, channel names from admins; all of them carry markup and
script payloads in this world. Every page of ours (found in the URL map) is rendered as every
kind of user, and no payload creates an element, an attribute, a script or a template value:
HTML shows it escaped, the JSON our scripts read carries it unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.security.conftest import ADMIN, QC, SELLER, Tenant, World
from tests.support.factories import identity, launch_token
from tests.support.security import (
    EMPLOYEE,
    PAYLOADS,
    TEMPLATE_PAYLOAD,
    call,
    catalogue,
    evaluated,
    fill,
    fill_any,
    injected,
    private_routes,
    visible_text,
)

ROOT = Path(__file__).resolve().parents[2]
# Each kind of outside text, as labelled in the world (conftest.label), that our pages show. The
# account's name is seeded with a payload too but no page shows it yet (the domain is shown).
KINDS = ("emp", "pipeline", "stage", "channel", "client", "msg", "reply")


def queries(t: Tenant) -> list[dict[str, Any]]:
    """The query parameters our links use: another channel's tab, one chat, a CRM card, notices."""
    return [
        {},
        {"channel": t.other_channel_id, "notice": "saved", "first": "1"},
        {"view": "chats", "chat": t.chat_id},
        {"entity_type": t.entity_kind, "entity_id": t.entity_id, "filter": "unanswered"},
    ]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


class Seen:
    """What the pages showed: problems, and which kinds of text reached a reader as text."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.shown: set[str] = set()
        self.payloads_shown: set[str] = set()

    def check(self, where: str, response: Any, tenant: Tenant) -> None:
        if response.status_code >= 500:
            self.problems.append(f"{where}: {response.status_code}")
            return
        body = response.get_data(as_text=True)
        if response.mimetype == "text/html":
            self.problems += [f"{where}: {p}" for p in injected(body)]
            if evaluated(body, tenant.tag):
                self.problems.append(f"{where}: {TEMPLATE_PAYLOAD} was evaluated")
            text = visible_text(body)
            if "&lt;" in text or "&#34;" in text or "&gt;" in text:
                self.problems.append(f"{where}: text escaped twice (shows entities)")
            self._note(text, tenant)
            for _kind, data in _json_scripts(body):
                self._json(where, data, tenant)
        elif response.mimetype == "application/json":
            if response.headers.get("X-Content-Type-Options") != "nosniff":
                self.problems.append(f"{where}: JSON without X-Content-Type-Options: nosniff")
            self._json(where, response.get_json(), tenant)

    def _json(self, where: str, data: Any, tenant: Tenant) -> None:
        for s in _strings(data):
            for match in re.finditer(re.escape(tenant.tag) + r"-([a-z]+)(\d+) ", s):
                payload = PAYLOADS[int(match.group(2)) % len(PAYLOADS)]
                if not s[match.end() :].startswith(payload):
                    self.problems.append(f"{where}: JSON changed the text {s[match.start() :][:60]!r}")
            if re.search(re.escape(tenant.tag) + r"-[a-z]+\d+ 49\b", s):
                self.problems.append(f"{where}: {TEMPLATE_PAYLOAD} was evaluated in JSON")
            self._note(s, tenant)

    def _note(self, text: str, tenant: Tenant) -> None:
        for match in re.finditer(re.escape(tenant.tag) + r"-([a-z]+)(\d+) ", text):
            payload = PAYLOADS[int(match.group(2)) % len(PAYLOADS)]
            if text[match.end() :].startswith(payload):
                self.shown.add(match.group(1))
                self.payloads_shown.add(payload)


def _json_scripts(html: str) -> list[tuple[str, Any]]:
    """The JSON our pages embed for their scripts (what chats.js and settings.js read)."""
    found = []
    for match in re.finditer(r'<script type="application/json" id="([^"]+)">(.*?)</script>', html, re.S):
        found.append((match.group(1), json.loads(match.group(2))))
    return found


def render_everything(world: World, seen: Seen, users: tuple[str, ...] = (ADMIN, SELLER, QC)) -> None:
    """Every GET route of ours, for both CRMs, as an admin, a sales rep and quality control (the
    admin pages only as the admin: the others are refused there)."""
    pages = [r for r in private_routes(world.app) if r.method == "GET"]
    for tenant in (world.a, world.b):
        for user in users:
            for route in pages:
                if user != ADMIN and route.endpoint not in EMPLOYEE:
                    continue
                accept = "application/json" if route.rule.startswith("/api/") else "text/html"
                for query in queries(tenant):
                    response = call(
                        world.client, "GET", fill(route, tenant), token=tenant.tokens[user], query=query, accept=accept
                    )
                    seen.check(f"{route.name} {query} as {tenant.crm} user {user}", response, tenant)


def test_crm_text_stays_text_on_every_page(world: World):
    seen = Seen()
    render_everything(world, seen)
    assert not seen.problems, "\n".join(sorted(set(seen.problems)))
    # The pages did show the outside text, payloads included, as text.
    assert set(KINDS) <= seen.shown, f"never shown: {set(KINDS) - seen.shown}"
    assert set(PAYLOADS) <= seen.payloads_shown


def test_text_saved_through_our_own_forms_stays_text(world: World):
    """An admin names channels, a rep answers a client: those texts go through every state-changing
    route of ours, whose answers (re-rendered forms, JSON) and every page afterwards keep them text."""
    a = world.a
    seen = Seen()
    for n, route in enumerate(r for r in private_routes(world.app) if r.changes_state):
        tenant = world.b if route.endpoint.startswith("bitrix24.") else a
        text = f"{tenant.tag}-form{n} {PAYLOADS[n % len(PAYLOADS)]}"
        form = {"name": text, "text": text, "transport": "whatsapp", "address": f"+1555300{n:04d}"}
        for accept in ("text/html", "application/json"):
            response = call(
                world.client,
                route.method,
                fill(route, tenant),
                token=tenant.tokens[ADMIN],
                csrf=tenant.csrf[ADMIN],
                form=form,
                accept=accept,
            )
            seen.check(f"{route.name} ({accept})", response, tenant)
        # A form refused for one field shows the rest as typed: an unusable address with the name.
        refused = call(
            world.client,
            route.method,
            fill(route, tenant),
            token=tenant.tokens[ADMIN],
            csrf=tenant.csrf[ADMIN],
            form=form | {"address": text, "transport": text},
        )
        seen.check(f"{route.name} (refused form)", refused, tenant)
    render_everything(world, seen, users=(ADMIN,))
    assert not seen.problems, "\n".join(sorted(set(seen.problems)))
    assert "form" in seen.shown, "the texts sent through our forms were shown"


def test_what_a_caller_sends_is_not_reflected_as_markup(world: World):
    """Error pages and refusals echo nothing a caller can turn into markup, on every route,
    public ones included (Kommo's redirect URI, Bitrix24's iframe POSTs, the launch hop)."""
    names = (
        "code",
        "state",
        "referer",
        "error",
        "client_id",
        "lt",
        "next",
        "DOMAIN",
        "PROTOCOL",
        "LANG",
        "APP_SID",
        "member_id",
        "AUTH_ID",
        "APPLICATION_TOKEN",
        "PLACEMENT",
        "PLACEMENT_OPTIONS",
        "event",
        "entity_type",
        "entity_id",
        "chat",
        "channel",
        "view",
        "before",
        "limit",
        "filter",
        "name",
        "text",
        "st",
    )
    problems = []
    for n, route in enumerate(catalogue(world.app)):
        payload = PAYLOADS[n % len(PAYLOADS)]
        values = {k: f"Aardvark-x{n} {payload}" for k in names}
        response = call(world.client, route.method, fill_any(route, world.a), query=values, form=values)
        if response.status_code >= 500:
            problems.append(f"{route.name}: {response.status_code}")
        if response.mimetype == "text/html":
            body = response.get_data(as_text=True)
            problems += [f"{route.name}: {p}" for p in injected(body)]
            if evaluated(body, "Aardvark"):
                problems.append(f"{route.name}: {TEMPLATE_PAYLOAD} was evaluated")
        response.close()  # static files are streamed from an open file
    assert not problems, "\n".join(problems)


def test_our_scripts_never_turn_data_into_markup():
    """The chat panel and settings scripts build the page from JSON with textContent and DOM nodes;
    an HTML sink anywhere would undo the escaping the server does."""
    sinks = re.compile(r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function\(")
    scripts = sorted([*ROOT.joinpath("static").glob("*.js"), *ROOT.joinpath("bitrix_app").glob("*.js")])
    assert scripts
    found = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()}"
        for p in scripts
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if sinks.search(line)
    ]
    assert not found, "\n".join(found)


def test_no_route_redirects_to_an_address_a_caller_chose(world: World):
    """Our links carry the session token: a redirect to a host a caller named would hand it over.
    Every route, with and without A's admin session, is given such a host in every field a
    redirect could be built from."""
    evil = "https://evil.example/steal"
    fields = ("next", "return", "return_to", "redirect", "redirect_uri", "url", "back", "target", "referer", "DOMAIN")
    values = dict.fromkeys(fields, evil) | {"view": "chats", "code": "c", "from_widget": "1", "state": "s"}
    values["lt"] = launch_token(world.app, identity(world.a.account_id))  # a genuine hop, with next= set
    problems = []
    for route in catalogue(world.app):
        for token, csrf in ((None, None), (world.a.tokens[ADMIN], world.a.csrf[ADMIN])):
            response = call(
                world.client, route.method, fill_any(route, world.a), token=token, csrf=csrf, query=values, form=values
            )
            location = response.headers.get("Location", "")
            if "evil.example" in location or "evil.example" in response.headers.get("Refresh", ""):
                problems.append(f"{route.name}: redirects to {location}")
            response.close()
    assert not problems, "\n".join(problems)
