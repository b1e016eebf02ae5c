"""The route catalogue of the security suite: every route of the app, read from its URL map, with
what the suite needs to aim at it (who may call it, what fills its URL parameters), and the
database fingerprints that prove a refused call changed nothing.

A new route is covered the moment it is registered: the suite walks ``app.url_map``. The only
hand-kept lists are here, and each entry says why it is there:

* ``PUBLIC``: routes that are not ours to protect with a session (server-to-server callbacks that
  verify their own caller, the launch hop, static files). Everything else must refuse a caller
  without a valid session.
* ``EMPLOYEE``: routes any signed-in employee may use; everything else is for CRM admins only.
* ``PATH_VALUES``: what each URL parameter name means, so the cross-account test can put account
  A's object there. A new parameter name fails that test until it is described here.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import jwt
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf.csrf import generate_csrf
from sqlalchemy import MetaData, Table, inspect, select

from widget.config import SANDBOX_KOMMO_CLIENT_ID, SANDBOX_KOMMO_CLIENT_SECRET
from widget.db import db

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Server-to-server and bootstrap routes: each verifies its caller in its own way (or serves
# nothing private). The reason is part of the review: read it before adding a line here.
PUBLIC: dict[str, str] = {
    "static": "our CSS and scripts; nothing private",
    "health.healthz": "load balancer probe; answers only 'ok'",
    "about.about": "says what this server is; sandbox links only on the embedded default (test_about_page)",
    "gateway.openapi": "the published API document",
    "gateway.receive_message": "messaging gateway: HMAC of the body with the account secret (test_inbound_signatures)",
    "pages.launch": "exchanges a signed single-use launch token for a session (test_inbound_signatures)",
    "kommo.connect": "starts Kommo's OAuth button flow with a signed state; reads and writes nothing of ours",
    "kommo.oauth_callback": "Kommo's redirect URI: code + referer under our Kommo domains + signed state",
    "kommo.uninstall": "Kommo's access-revoked hook: HMAC signature + client_uuid (test_inbound_signatures)",
    "kommo.session_preflight": "CORS preflight of /kommo/session; allowed only for installed Kommo origins",
    "kommo.open_session": "widget JWT signed with our client secret, single use (test_inbound_signatures)",
    "kommo_webhooks.entity_webhook": "Kommo entity webhooks: per-account secret token in the address",
    "bitrix24.install": "installer iframe / ONAPPINSTALL: verified with app.info + profile at the OAuth server",
    "bitrix24.app_page": "Bitrix24 iframe POST: application token + AUTH_ID verified at the OAuth server",
    "bitrix24.placement": "Bitrix24 card tab iframe POST: verified like the app page",
    "bitrix24.opened_directly": "a GET of the iframe address: only says 'open this from Bitrix24'",
    "bitrix24.events": "Bitrix24 events: the stored application token of member_id",
    "bitrix24.asset": "installer and placement scripts, the offline BX24 bridge; nothing private",
}

# Signed-in employees who are not CRM admins may use these; everything else refuses them (403).
EMPLOYEE: dict[str, str] = {
    "pages.home": "the entry page: employees get a page that leads to their chats",
    "pages.session_state": "the page scripts' keep-alive: renews the caller's own session",
    "bitrix24.home": "the Bitrix24 app page sends employees on to their chat panel",
    "chats.panel": "the chat panel",
    "chats.panel_chat": "the chat panel opened on one chat",
    "chats.api_list": "chat panel API",
    "chats.api_chat": "chat panel API",
    "chats.api_messages": "chat panel API",
    "chats.api_send": "chat panel API (the role decides per chat)",
    "chats.api_no_reply": "chat panel API (the role decides per chat)",
    "chats.api_retry": "chat panel API (only the author's own failed replies)",
    "chat_start.api_start_options": "a CRM card's 'new conversation': the role and the CRM decide per channel",
    "chat_start.api_start": "a CRM card's 'new conversation': the role and the CRM decide per channel",
}

# Pages that answer another account's object with the page itself and the refusal inside it (the
# user keeps their own list), instead of a 403/404 status: endpoint -> the refusal they show.
REFUSED_IN_PAGE: dict[str, str] = {
    "chats.panel_chat": "This chat does not exist.",
}


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    endpoint: str
    arguments: tuple[str, ...]
    converters: Mapping[str, str]  # argument -> converter class name

    @property
    def name(self) -> str:
        return f"{self.method} {self.rule}"

    @property
    def public(self) -> bool:
        return self.endpoint in PUBLIC

    @property
    def changes_state(self) -> bool:
        return self.method in STATE_CHANGING

    def path(self, values: Mapping[str, Any]) -> str:
        """The rule with each ``<converter:name>`` replaced by ``values[name]``."""
        return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: str(values[m.group(1)]), self.rule)


def catalogue(app: Flask) -> list[Route]:
    """Every (rule, method) the app answers, HEAD and automatic OPTIONS left out (Flask answers
    them from the same view), an explicit OPTIONS view kept."""
    routes = []
    for rule in app.url_map.iter_rules():
        methods = set(rule.methods or ()) - {"HEAD"}
        if methods - {"OPTIONS"}:
            methods.discard("OPTIONS")
        converters = {name: type(conv).__name__ for name, conv in rule._converters.items()}
        for method in sorted(methods):
            routes.append(Route(rule.rule, method, rule.endpoint, tuple(sorted(rule.arguments)), converters))
    return sorted(routes, key=lambda r: (r.rule, r.method))


def private_routes(app: Flask) -> list[Route]:
    return [r for r in catalogue(app) if not r.public]


# --- URL parameters -------------------------------------------------------------------------------

# Parameter name -> which object of a tenant it names (an attribute of ``tests.security`` Tenant).
PATH_VALUES: dict[str, str] = {
    "channel_id": "channel_id",
    "chat_id": "chat_id",
    "message_id": "message_id",
    "key": "preset_key",
    "token": "webhook_token",
    "filename": "asset_name",
    "entity_type": "entity_kind",
    "entity_id": "entity_id",
}

# Values that pass any converter, for routes reached before any lookup (refusals without a session).
_ANY = {"IntegerConverter": 1, "UnicodeConverter": "x", "PathConverter": "x", "AnyConverter": "x"}


def fill(route: Route, tenant: Any) -> str:
    """The route's address aimed at ``tenant``'s objects. Raises ``KeyError`` naming a parameter
    the table does not know yet."""
    values = {}
    for name in route.arguments:
        if name not in PATH_VALUES:
            raise KeyError(f"{route.name}: add <{name}> to PATH_VALUES in tests/support/security.py")
        values[name] = getattr(tenant, PATH_VALUES[name])
    return route.path(values)


def fill_any(route: Route, tenant: Any | None = None) -> str:
    """Like ``fill`` when the parameter is known, else any value its converter accepts."""
    values = {}
    for name in route.arguments:
        if tenant is not None and name in PATH_VALUES:
            values[name] = getattr(tenant, PATH_VALUES[name])
        else:
            values[name] = _ANY.get(route.converters.get(name, ""), "x")
    return route.path(values)


# --- "nothing changed" ----------------------------------------------------------------------------


def _tables() -> list[Table]:
    meta = MetaData()
    names = sorted(inspect(db.engine).get_table_names())
    meta.reflect(bind=db.engine, only=names)
    return [meta.tables[n] for n in names]


_TABLES: dict[str, list[Table]] = {}


def tables() -> list[Table]:
    """Every table of the database (reflected, so tables added by any migration are included)."""
    key = str(db.url)
    if key not in _TABLES:
        _TABLES[key] = _tables()
    return _TABLES[key]


def _digest(rows: Iterable[Any]) -> tuple[int, str]:
    encoded = sorted(repr(tuple(row)) for row in rows)
    return len(encoded), hashlib.sha256("\n".join(encoded).encode()).hexdigest()


def fingerprint() -> dict[str, tuple[int, str]]:
    """Row count and a hash of the row contents of every table."""
    with db.engine.connect() as conn:
        return {t.name: _digest(conn.execute(select(t))) for t in tables()}


def account_fingerprint(account_id: int) -> dict[str, tuple[int, str]]:
    """The same, restricted to one account's rows (tables without an account id are whole)."""
    out = {}
    with db.engine.connect() as conn:
        for t in tables():
            query = select(t)
            if "account_id" in t.c:
                query = query.where(t.c.account_id == account_id)
            elif t.name == "accounts":
                query = query.where(t.c.id == account_id)
            out[t.name] = _digest(conn.execute(query))
    return out


def changed_tables(before: Mapping[str, tuple[int, str]], after: Mapping[str, tuple[int, str]]) -> list[str]:
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


# --- markup that must stay text -------------------------------------------------------------------

PAYLOADS = (
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    '"><svg onload=alert(1)>',
    "{{7*7}}",
)
TEMPLATE_PAYLOAD = "{{7*7}}"


class _Scan(HTMLParser):
    """Collects what a browser would build: elements, attributes, script bodies, visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.scripts: list[tuple[str, str]] = []  # (type attribute, body)
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))
        if tag == "script":
            self._script = dict(attrs).get("type") or "text/javascript"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is None:
            self.text.append(data)
        else:
            self.scripts.append((self._script, data))


def scan(html: str) -> _Scan:
    parser = _Scan()
    parser.feed(html)
    parser.close()
    return parser


def injected(html: str) -> list[str]:
    """What the payloads managed to create in this page: elements or attributes that none of our
    templates make (an ``img`` without a real source, ``svg``, an ``on*`` handler, an inline script
    calling ``alert``), and payloads that reached the page source unescaped."""
    found = []
    page = scan(html)
    for tag, attrs in page.elements:
        names = {k for k, _ in attrs}
        if tag == "svg" or (tag == "img" and dict(attrs).get("src") == "x"):
            found.append(f"<{tag}> element")
        for name in names:
            if name.startswith("on"):
                found.append(f"{name}= attribute on <{tag}>")
    for kind, body in page.scripts:
        if "json" in kind:
            # Data for our scripts: tojson writes < > & ' as \u escapes, so no payload can end
            # the script element or start markup.
            if "<" in body:
                found.append(f"raw '<' inside <script type={kind}>")
        elif "alert(" in body:
            found.append("an inline script calling alert()")
    for payload in PAYLOADS:
        if payload != TEMPLATE_PAYLOAD and payload in html:
            found.append(f"raw {payload!r} in the page source")
    return found


def visible_text(html: str) -> str:
    return " ".join(scan(html).text)


def evaluated(html: str, tag: str) -> bool:
    """True when a ``{{7*7}}`` next to ``tag`` came out as 49 (a template evaluated CRM text)."""
    return re.search(re.escape(tag) + r"[^\s<>\"]*\s+49\b", html) is not None


Check = Callable[[str], list[str]]


# --- requests -------------------------------------------------------------------------------------


def label(tag: str, what: str, n: int) -> str:
    """``Aardvark-emp1 <script>alert(1)</script>``: the tag finds leaks, the payload finds markup."""
    return f"{tag}-{what}{n} {PAYLOADS[n % len(PAYLOADS)]}"


def csrf_token(app: Flask, token: str) -> str:
    """The CSRF token our pages give this session (the same one the page's meta tag carries)."""
    with app.test_request_context("/", query_string={"st": token}):
        return str(generate_csrf())


def call(
    client: FlaskClient,
    method: str,
    path: str,
    *,
    token: str | None = None,
    csrf: str | None = None,
    query: dict[str, Any] | None = None,
    form: dict[str, Any] | None = None,
    accept: str = "text/html",
) -> Any:
    """One request the way our pages send it: the session token in X-Session-Token, the CSRF token
    in X-CSRFToken, form fields in the body of state-changing methods."""
    headers = {"Accept": accept}
    if token is not None:
        headers["X-Session-Token"] = token
    if csrf is not None:
        headers["X-CSRFToken"] = csrf
    kwargs: dict[str, Any] = {"query_string": query or {}, "headers": headers}
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        kwargs["data"] = form or {}
    return client.open(path, method=method, **kwargs)


def widget_jwt_issuer(app: Flask, subdomain: str) -> str:
    """What Kommo puts in ``iss``: the account's own address (``https://acme.kommo.com``), here the
    one the app's KOMMO_BASE_URL gives the account's host."""
    from widget.crm.kommo.provider import kommo_base_url

    return kommo_base_url(app.extensions["widget"].settings, f"{subdomain}.kommo.test")


def widget_jwt(app: Flask, *, account_id: int = 31001, subdomain: str = "aardvark", **over: Any) -> str:
    """The one-time JWT Kommo's ``$authorizedAjax`` sends (reference §3), for account A of the
    security world by default; ``key=`` signs with another secret, a claim set to None is left out."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": widget_jwt_issuer(app, subdomain),
        "aud": app.extensions["widget"].settings.public_origin,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + 1800,
        "account_id": account_id,
        "user_id": 100,
        "subdomain": subdomain,
        "client_uuid": SANDBOX_KOMMO_CLIENT_ID,
        "is_admin": True,
    }
    key = over.pop("key", SANDBOX_KOMMO_CLIENT_SECRET)
    claims.update(over)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="HS256")
