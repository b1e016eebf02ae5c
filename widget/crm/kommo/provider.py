"""``KommoProvider``: the install side of Kommo — where an account lives, the OAuth token
endpoint (code exchange and refresh), and building a ``KommoClient`` on the token store it is
handed (an installed account's comes from ``widget.services.accounts.crm_clients``).

The client secret only ever goes to ``{account host}/oauth2/access_token`` where the host has been
verified against the configured Kommo domains (reference §1.3: the token endpoint is the account
host taken from ``referer``); redirects are never followed, so it cannot be bounced elsewhere.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from widget.config import Settings
from widget.crm.errors import CrmAuthError, CrmBadResponse, CrmRateLimited, CrmUnavailable
from widget.crm.http import HttpSender, RetryPolicy, shared_limiter
from widget.crm.kommo import payloads
from widget.crm.kommo.client import KommoClient
from widget.crm.kommo.errors import error_body, retry_after_seconds
from widget.crm.kommo.events import InboundRejected, verify_account_host
from widget.crm.tokens import TokenPair, TokenStore

CALLBACK_PATH = "/kommo/oauth/callback"
# The button/popup flow's state: signed by us, single use, and only as long as a person needs to
# pick an account and click Allow.
STATE_MAX_AGE = 15 * 60


def kommo_base_url(settings: Settings, host: str) -> str:
    """The account's address (``https://acme.kommo.com``; in the sandbox a path under it)."""
    return settings.kommo_base_url.format(host=host).rstrip("/")


def kommo_origin(settings: Settings, host: str) -> str:
    """The browser origin of the account's Kommo pages: the only origin allowed to frame our pages
    and to call ``/kommo/session``."""
    parts = urlsplit(kommo_base_url(settings, host))
    return f"{parts.scheme}://{parts.netloc}"


def oauth_authorize_url(settings: Settings) -> str:
    """Kommo's account-picker page for the button/popup flow (reference §1.2, item 3). It lives on
    ``www.`` of the first configured domain (``https://www.kommo.com/oauth``); the same template
    points it at the sandbox when the sandbox is configured."""
    return kommo_base_url(settings, "www." + settings.kommo_domains[0]) + "/oauth"


def redirect_uri(settings: Settings) -> str:
    return settings.public_url.rstrip("/") + CALLBACK_PATH


def _state_serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="kommo-oauth-state")


def make_state(secret_key: str) -> str:
    return _state_serializer(secret_key).dumps({"n": secrets.token_urlsafe(16)})


def read_state(secret_key: str, state: str) -> str:
    """The state's nonce (the caller records it as used); ``InboundRejected`` when forged/expired."""
    try:
        data = _state_serializer(secret_key).loads(state, max_age=STATE_MAX_AGE)
    except SignatureExpired:
        raise InboundRejected("the connection attempt took too long") from None
    except BadSignature:
        raise InboundRejected("state was not issued by us") from None
    if not isinstance(data, dict) or not isinstance(data.get("n"), str):
        raise InboundRejected("state is malformed")
    return str(data["n"])


def classify_token_response(now: Callable[[], datetime]) -> Callable[[requests.Response], TokenPair]:
    """Token endpoint answers (reference §1.4): problem+json with a ``hint``, no ``error`` field.
    Bad credentials have been seen as 401 as well as 400, so both mean "refused"."""

    def classify(response: requests.Response) -> TokenPair:
        status = response.status_code
        if status == 200:
            try:
                data = response.json()
            except ValueError:
                raise CrmBadResponse("Kommo token endpoint answered 200 without JSON", status=200) from None
            return payloads.parse_token_response(data, now())
        body = error_body(response)
        hint = (body.get("hint") or body.get("detail")) if isinstance(body, dict) else None
        text = f"Kommo token endpoint answered {status}" + (f": {hint}" if hint else "")
        if status in (400, 401) and isinstance(body, dict):
            raise CrmAuthError(text, status=status, details=body)
        if status == 429:
            raise CrmRateLimited(text, retry_after=retry_after_seconds(response, body), status=status, details=body)
        if status == 403 and not isinstance(body, dict):
            exc = CrmUnavailable("Kommo is blocking our requests (403 without JSON)", status=status, details=body)
            exc.not_applied = True  # type: ignore[attr-defined]
            raise exc
        if status >= 500:
            raise CrmUnavailable(text, status=status, details=body)
        raise CrmBadResponse(text, status=status, details=body)

    return classify


class KommoProvider:
    def __init__(
        self,
        settings: Settings,
        *,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not (settings.kommo_client_id and settings.kommo_client_secret):
            raise CrmAuthError("Kommo is not configured (KOMMO_CLIENT_ID / KOMMO_CLIENT_SECRET)")
        self.settings = settings
        self.client_id: str = settings.kommo_client_id
        self._secret: str = settings.kommo_client_secret
        self.retry = retry
        self.session = session
        self.now = now

    # ------------------------------------------------------------ addresses

    def verified_host(self, referer: str | None) -> str:
        return verify_account_host(referer, self.settings.kommo_domains)

    def base_url(self, host: str) -> str:
        return kommo_base_url(self.settings, self.verified_host(host))

    def sender(self, host: str) -> HttpSender:
        # Kommo allows 7 requests per second (reference §6); burst 1 keeps any one-second window
        # at or under the rate, not just the long-run average. Keyed by the account's host.
        limiter = shared_limiter("kommo", self.settings.kommo_rate_per_second, 1)
        return HttpSender(
            timeout=self.settings.http_timeout,
            limiter=limiter,
            limiter_key=host,
            retry=self.retry,
            session=self.session,
        )

    def authorize_url(self, state: str) -> str:
        query = urlencode({"client_id": self.client_id, "state": state, "mode": "post_message"})
        return f"{oauth_authorize_url(self.settings)}?{query}"

    # ------------------------------------------------------------ token endpoint

    def _token_request(self, host: str, grant_type: str, *, idempotent: bool, **params: Any) -> TokenPair:
        # Re-verified here as well as at the callback: this is the one place the secret leaves us.
        url = self.base_url(host) + "/oauth2/access_token"
        body = prepare_token_request(
            grant_type,
            redirect_uri=redirect_uri(self.settings),
            client_id=self.client_id,
            client_secret=self._secret,
            **params,
        )
        return self.sender(host).send(
            "POST",
            url,
            classify_token_response(self.now),
            idempotent=idempotent,
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )

    def exchange_code(self, host: str, code: str) -> TokenPair:
        """A code works once: a 5xx or timeout is not resent here (the pending install is retried
        by the sweep, and a code Kommo did consume then answers "revoked")."""
        return self._token_request(host, "authorization_code", idempotent=False, code=code)

    def refresh_tokens(self, host: str, refresh_token: str) -> TokenPair:
        """Safe to resend after a lost answer: the old refresh token keeps working until the new
        pair is used (reference §1.3)."""
        return self._token_request(host, "refresh_token", idempotent=True, refresh_token=refresh_token)

    # ------------------------------------------------------------ clients

    def client(self, host: str, tokens: TokenStore) -> KommoClient:
        return KommoClient(self.base_url(host), tokens, self.sender(host))
