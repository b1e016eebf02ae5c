"""``KommoSandbox``: everything one sandbox Kommo knows, and what tests do to it.

One object per sandbox app (``app.extensions["kommo_sandbox"]``), safe to drive from test threads
while the server answers requests: one re-entrant lock guards all data, and it is never held while
the sandbox itself calls out over HTTP (our server may call back into the sandbox meanwhile):
those calls are made and recorded by ``outbound.py``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import threading
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt
import requests

from sandbox.kommo import seed
from sandbox.kommo.clock import SandboxClock
from sandbox.kommo.faults import FaultBoard, RateLimiter
from sandbox.kommo.outbound import Delivery, Outbound
from sandbox.kommo.records import Account, Contact, Ids, Lead, Pipeline, Status, User, Webhook
from sandbox.kommo.reqlog import LoggedRequest, RequestLog
from sandbox.kommo.tokens import TokenStore
from sandbox.kommo.webhooks import responsible_payloads

DEFAULT_BASE_URL = "http://localhost:5001"
# Kommo waits at most 3 s for the install webhook and ignores the answer (reference §1.2).
INSTALL_WEBHOOK_TIMEOUT = 3.0
USER_FIELDS = {"name", "email", "lang", "is_admin", "is_active", "is_free", "group_id", "role_id"}


class UnknownAccount(LookupError):
    pass


class KommoSandbox:
    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        revoke_hook_url: str,
        widget_origin: str,
        token_ttl: int = 86400,
        rate_per_second: float = 7.0,
        base_url: str | None = None,
        clock: SandboxClock | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock or SandboxClock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.revoke_hook_url = revoke_hook_url
        self.widget_origin = widget_origin.rstrip("/")
        self._base_url = base_url.rstrip("/") if base_url else None
        self.ids = Ids()
        self.accounts: dict[str, Account] = {}
        self.tokens = TokenStore(self.clock, self.lock, client_id, token_ttl)
        self.fault_board = FaultBoard(self.lock)
        self.limiter = RateLimiter(self.clock, self.lock, rate_per_second)
        self.log = RequestLog(self.lock)
        self.outbound = Outbound(self.lock)

    @property
    def deliveries(self) -> list[Delivery]:
        """The calls the sandbox made to our server, oldest first (the last 500)."""
        return self.outbound.deliveries

    # --- where the sandbox lives and who it serves --------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base_url or DEFAULT_BASE_URL

    @base_url.setter
    def base_url(self, value: str) -> None:
        self._base_url = value.rstrip("/")

    @property
    def base_url_known(self) -> bool:
        return self._base_url is not None

    def account_url(self, host: str) -> str:
        """The account's address, standing in for ``https://{subdomain}.kommo.com``."""
        return f"{self.base_url}/{host}"

    def set_integration(
        self,
        *,
        redirect_uri: str | None = None,
        revoke_hook_url: str | None = None,
        widget_origin: str | None = None,
    ) -> None:
        """Point the integration at our server once its address is known (tests start it second)."""
        with self.lock:
            if redirect_uri is not None:
                self.redirect_uri = redirect_uri
            if revoke_hook_url is not None:
                self.revoke_hook_url = revoke_hook_url
            if widget_origin is not None:
                self.widget_origin = widget_origin.rstrip("/")

    @property
    def redirect_origin(self) -> str:
        """``aud`` of widget JWTs: scheme + host of the redirect URI (reference §3)."""
        parts = urlsplit(self.redirect_uri)
        return f"{parts.scheme}://{parts.netloc}"

    def now(self) -> int:
        return int(self.clock.now())

    # --- accounts and users ----------------------------------------------------------------------

    def add_account(
        self, subdomain: str, *, account_id: int | None = None, n_users: int = 12, name: str | None = None
    ) -> str:
        """A new account with ``n_users`` users (the first is its admin) and one "Sales" pipeline."""
        with self.lock:
            host = f"{subdomain}.kommo.test"
            if host in self.accounts:
                raise ValueError(f"account {host} exists already")
            if account_id is not None and any(a.id == account_id for a in self.accounts.values()):
                raise ValueError(f"account id {account_id} is taken")
            if account_id is None:
                # Draw until the id is free: the demo account holds a fixed id from the same range.
                taken = {a.id for a in self.accounts.values()}
                account_id = self.ids.next("account")
                while account_id in taken:
                    account_id = self.ids.next("account")
            acct = seed.new_account(self.ids, subdomain, name or f"{subdomain.title()} Ltd", account_id, self.now())
            self.accounts[host] = acct
            if n_users:
                self.add_users(host, n_users)
            seed.add_pipeline(self.ids, acct, "Sales", ["First contact", "Negotiation", "Decision"], is_main=True)
            return host

    def seed_demo(self) -> str:
        """The "Demo Company" account (host ``demo.kommo.test``): 12 users, 3 pipelines, a few leads."""
        with self.lock:
            acct = seed.new_account(self.ids, seed.DEMO_SUBDOMAIN, seed.DEMO_NAME, seed.DEMO_ACCOUNT_ID, seed.SEED_TIME)
            self.accounts[acct.host] = acct
            seed.seed_demo(self.ids, acct)
            return acct.host

    def account(self, host: str) -> Account:
        with self.lock:
            acct = self.accounts.get(host)
            if acct is None:
                raise UnknownAccount(host)
            return acct

    def add_users(self, host: str, n: int) -> list[int]:
        with self.lock:
            acct = self.account(host)
            users = seed.generated_users(self.ids, acct, n)
            for user in users:
                acct.users[user.id] = user
            return [u.id for u in users]

    def add_user(
        self, host: str, name: str, *, email: str | None = None, lang: str = "en", is_admin: bool = False,
        is_active: bool = True,
    ) -> int:  # fmt: skip
        with self.lock:
            acct = self.account(host)
            user = seed.make_user(self.ids, acct, name, email or f"user{len(acct.users) + 1}@{host}", lang, is_admin,
                                  is_active)  # fmt: skip
            acct.users[user.id] = user
            return user.id

    def set_user(self, host: str, user_id: int, **fields: Any) -> User:
        """Change a user as an admin would in Kommo, e.g. ``set_user(host, uid, is_active=False)``."""
        unknown = set(fields) - USER_FIELDS
        if unknown:
            raise ValueError(f"users have no field(s) {sorted(unknown)}")
        with self.lock:
            user = self.account(host).users[user_id]
            for key, value in fields.items():
                setattr(user, key, value)
            return copy.copy(user)

    def remove_user(self, host: str, user_id: int) -> None:
        with self.lock:
            del self.account(host).users[user_id]

    def users(self, host: str) -> list[User]:
        with self.lock:
            return [copy.copy(u) for u in self.account(host).users.values()]

    def admin_id(self, host: str) -> int:
        """The admin who installs by default."""
        with self.lock:
            return self.account(host).owner().id

    # --- pipelines -------------------------------------------------------------------------------

    def add_pipeline(self, host: str, name: str, stages: list[str] | None = None, *, is_main: bool = False) -> int:
        with self.lock:
            acct = self.account(host)
            if is_main:
                for p in acct.pipelines.values():
                    p.is_main = False
            return seed.add_pipeline(self.ids, acct, name, list(stages or ["New", "In progress"]), is_main=is_main).id

    def remove_pipeline(self, host: str, pipeline_id: int) -> None:
        with self.lock:
            acct = self.account(host)
            removed = acct.pipelines.pop(pipeline_id)
            if removed.is_main and acct.pipelines:
                min(acct.pipelines.values(), key=lambda p: p.sort).is_main = True

    def rename_pipeline(self, host: str, pipeline_id: int, name: str) -> None:
        with self.lock:
            self.account(host).pipelines[pipeline_id].name = name

    def add_stage(self, host: str, pipeline_id: int, name: str) -> int:
        with self.lock:
            pipeline = self.account(host).pipelines[pipeline_id]
            sort = max(s.sort for s in pipeline.statuses if s.sort < 10000) + 10
            status = Status(self.ids.next("status"), name, sort)
            pipeline.statuses.append(status)
            return status.id

    def remove_stage(self, host: str, pipeline_id: int, status_id: int) -> None:
        with self.lock:
            pipeline = self.account(host).pipelines[pipeline_id]
            pipeline.statuses = [s for s in pipeline.statuses if s.id != status_id]

    def pipelines(self, host: str) -> list[Pipeline]:
        with self.lock:
            return copy.deepcopy(sorted(self.account(host).pipelines.values(), key=lambda p: p.sort))

    # --- CRM data, for tests that need it without going through the API ------------------------------

    def add_contact(
        self,
        host: str,
        name: str,
        phone: str | None = None,
        *,
        responsible_user_id: int | None = None,
        im: str | None = None,
    ) -> int:
        """``im``: a value of the IM field (enum OTHER), e.g. what our adapters write, "telegram:42"."""
        from sandbox.kommo.entities import create_contacts

        item: dict[str, Any] = {"name": name}
        if responsible_user_id is not None:
            item["responsible_user_id"] = responsible_user_id
        fields: list[dict[str, Any]] = []
        if phone is not None:
            fields.append({"field_code": "PHONE", "values": [{"value": phone, "enum_code": "WORK"}]})
        if im is not None:
            fields.append({"field_code": "IM", "values": [{"value": im, "enum_code": "OTHER"}]})
        if fields:
            item["custom_fields_values"] = fields
        with self.lock:
            acct = self.account(host)
            return create_contacts(acct, self.ids, self.now(), acct.owner().id, [item])[0].id

    def add_lead(self, host: str, name: str, *, contact_id: int | None = None, **fields: Any) -> int:
        """``fields``: pipeline_id, status_id, responsible_user_id, price (validated as the API does)."""
        from sandbox.kommo.entities import create_leads

        item: dict[str, Any] = {"name": name, **fields}
        if contact_id is not None:
            item["_embedded"] = {"contacts": [{"id": contact_id, "is_main": True}]}
        with self.lock:
            acct = self.account(host)
            return create_leads(acct, self.ids, self.now(), acct.owner().id, [item])[0].id

    def contact(self, host: str, contact_id: int) -> Contact:
        with self.lock:
            return copy.deepcopy(self.account(host).contacts[contact_id])

    def lead(self, host: str, lead_id: int) -> Lead:
        with self.lock:
            return copy.deepcopy(self.account(host).leads[lead_id])

    def webhooks(self, host: str) -> list[Webhook]:
        with self.lock:
            return copy.deepcopy(list(self.account(host).webhooks.values()))

    # --- OAuth: codes, install, button, tokens ------------------------------------------------------

    def issue_code(self, host: str, user_id: int | None = None) -> str:
        """An authorization code for ``user_id`` (default: the account's admin): 20 minutes, single use,
        bound to this client and redirect URI."""
        with self.lock:
            acct = self.account(host)
            uid = acct.owner().id if user_id is None else user_id
            if uid not in acct.users:
                raise ValueError(f"user {uid} is not in {host}")
            return self.tokens.issue_code(host, acct.id, uid, self.redirect_uri)

    def deliver_install_webhook(
        self, host: str, user_id: int | None = None, *, timeout: float = INSTALL_WEBHOOK_TIMEOUT
    ) -> requests.Response:
        """What Kommo does when a user clicks Install on the widget: a server-side
        ``GET {redirect_uri}?code&referer&from_widget=1`` with no ``state``. Kommo neither checks the
        answer nor resends; the widget counts as installed either way. A slow answer raises
        ``requests.Timeout`` after ``timeout`` seconds (Kommo gives up after 3)."""
        code = self.issue_code(host, user_id)
        with self.lock:
            self.account(host).widget_installed = True
            url = f"{self.redirect_uri}?{urlencode({'code': code, 'referer': host, 'from_widget': 1})}"
        return self.outbound.get("install_webhook", host, url, timeout)

    def button_redirect_url(self, host: str, state: str, *, deny: bool = False, user_id: int | None = None) -> str:
        """Where Kommo's "button on site" popup sends the browser after Allow (or Decline)."""
        if deny:
            query = {"error": "access_denied", "client_id": self.client_id, "state": state}
        else:
            code = self.issue_code(host, user_id)
            query = {"code": code, "referer": host, "state": state, "client_id": self.client_id}
        return f"{self.redirect_uri}?{urlencode(query)}"

    def expire_tokens(self, host: str) -> int:
        """Every access token of the account expires now (refresh tokens keep working)."""
        self.account(host)
        return self.tokens.expire(host)

    def revoke_tokens(self, host: str) -> int:
        self.account(host)
        return self.tokens.revoke(host)

    def refresh_count(self, host: str | None = None) -> int:
        """How many refresh_token grants succeeded: tests assert "exactly one refresh"."""
        return self.tokens.refresh_count(host)

    def token_requests(self, grant_type: str | None = None, host: str | None = None) -> int:
        """Token-endpoint calls seen, failed ones included (``grant_type``: authorization_code or
        refresh_token), from the request log."""
        entries = self.log.entries("POST", "/oauth2/access_token", host)

        def grant(entry: LoggedRequest) -> str | None:
            body = entry.json if isinstance(entry.json, dict) else {k: v[0] for k, v in entry.form.items() if v}
            value = body.get("grant_type")
            return value if isinstance(value, str) else None

        return sum(1 for e in entries if grant_type is None or grant(e) == grant_type)

    def access_token(self, host: str, user_id: int | None = None) -> str:
        """A fresh access token without the HTTP dance, for tests of the API itself."""
        code = self.issue_code(host, user_id)
        return self.tokens.exchange_code(host, code, self.redirect_uri).access_token

    # --- uninstall -------------------------------------------------------------------------------

    def revoke_signature(self, account_id: int) -> str:
        # Hex HMAC-SHA256 of "{client_id}|{account_id}" keyed with the client secret (reference §2).
        message = f"{self.client_id}|{account_id}".encode()
        return hmac.new(self.client_secret.encode(), message, hashlib.sha256).hexdigest()

    def call_revoke_hook(
        self, host: str, *, signature: str | None = None, client_uuid: str | None = None,
        timeout: float = INSTALL_WEBHOOK_TIMEOUT,
    ) -> requests.Response:  # fmt: skip
        """Uninstall: revoke every token of the account (the API answers 401 from now on), then
        ``GET {revoke_hook_url}?client_uuid&account_id&signature``. Pass ``signature`` or
        ``client_uuid`` to send forged values."""
        with self.lock:
            acct = self.account(host)
            acct.widget_installed = False
            self.tokens.revoke(host)
            query = {
                "client_uuid": self.client_id if client_uuid is None else client_uuid,
                "account_id": acct.id,
                "signature": self.revoke_signature(acct.id) if signature is None else signature,
            }
            url = f"{self.revoke_hook_url}?{urlencode(query)}"
        return self.outbound.get("revoke_hook", host, url, timeout)

    # --- widget JWT (what $authorizedAjax puts in X-Auth-Token) ----------------------------------

    def mint_widget_jwt(
        self,
        host: str,
        user_id: int,
        *,
        aud: str | None = None,
        lifetime: int = 1800,
        secret: str | None = None,
        jti: str | None = None,
        now: float | None = None,
        claims: dict[str, Any] | None = None,
        **extra_claims: Any,
    ) -> str:
        """HS256 with the client secret (reference §3). ``aud`` defaults to the redirect URI's origin;
        ``secret``/``now``/``jti`` forge bad signatures, expired tokens and replays. Extra claims
        (keywords, or ``claims`` for names like ``user_id``) are added or replaced; one set to
        ``None`` is removed from the token."""
        with self.lock:
            acct = self.account(host)
            user = acct.users.get(user_id)
            if user is None:
                raise ValueError(f"user {user_id} is not in {host}")
            issued = int(self.clock.now() if now is None else now)
            payload: dict[str, Any] = {
                "iss": self.account_url(host),
                "aud": self.redirect_origin if aud is None else aud,
                "jti": jti or str(uuid.uuid4()),
                "iat": issued,
                "nbf": issued,
                "exp": issued + lifetime,
                "account_id": acct.id,
                "user_id": user.id,
                "subdomain": acct.subdomain,
                "client_uuid": self.client_id,
                "is_admin": user.is_admin,
            }
            for key, value in {**extra_claims, **(claims or {})}.items():
                if value is None:
                    payload.pop(key, None)
                else:
                    payload[key] = value
            return jwt.encode(payload, self.client_secret if secret is None else secret, algorithm="HS256")

    # --- entity webhooks -------------------------------------------------------------------------

    def fire_responsible_changed(
        self, host: str, entity: str, entity_id: int, new_user_id: int, *, by_user_id: int = 0, timeout: float = 5.0
    ) -> list[Delivery]:
        """A user changes the responsible of a lead or contact in Kommo: the change is applied and a
        form-encoded webhook goes to every subscribed destination (format: see ``webhooks.py``)."""
        entities = {"lead": "leads", "leads": "leads", "contact": "contacts", "contacts": "contacts"}.get(entity)
        if entities is None:
            raise ValueError("entity must be 'leads' or 'contacts'")
        with self.lock:
            acct = self.account(host)
            if new_user_id not in acct.users:
                raise ValueError(f"user {new_user_id} is not in {host}")
            record: Lead | Contact = (acct.leads if entities == "leads" else acct.contacts)[entity_id]
            old = record.responsible_user_id
            record.responsible_user_id = new_user_id
            record.updated_at = self.now()
            record.updated_by = by_user_id
            payloads = responsible_payloads(acct, self.base_url, entities, record, old, by_user_id)
        return [self.outbound.post_form(host, url, pairs, timeout) for url, pairs in payloads]

    # --- faults, rate limit, request log -----------------------------------------------------------

    def set_fault(self, kind: str, **params: Any) -> None:
        """latency(seconds) | error(status, count) | outage | block | rate_limit(retry_after); every kind
        also takes ``count``, ``host`` and ``path_contains`` to narrow it."""
        self.fault_board.set(kind, **params)

    def clear_faults(self, kind: str | None = None) -> None:
        self.fault_board.clear(kind)

    def faults(self) -> list[dict[str, Any]]:
        return self.fault_board.active()

    def set_rate_limit(self, per_second: float) -> None:
        self.limiter.set_rate(per_second)

    def record(self, entry: LoggedRequest) -> None:
        self.log.add(entry)

    def count(self, method: str | None = None, path_contains: str | None = None, host: str | None = None) -> int:
        return self.log.count(method, path_contains, host)

    def requests_log(self) -> list[dict[str, Any]]:
        return self.log.snapshot()

    def reset_log(self) -> None:
        self.log.reset()
