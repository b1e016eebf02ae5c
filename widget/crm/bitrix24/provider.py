"""Bitrix24 installation trust and tokens: ``app.info`` verification and refreshes (reference §2.2, §4).

Only the *configured* OAuth server (``settings.bitrix24_oauth_url``) ever receives a token from us
for checking; a posted ``DOMAIN`` or ``SERVER_ENDPOINT`` is compared with what that server says, never
used as an address first. Refreshes go through the stored ``server_endpoint`` (regional hosts,
§0.10), and only when its host is the configured server's.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from widget.config import ROOT, Settings
from widget.crm.bitrix24.client import Bitrix24Client, TokenSource, error_for
from widget.crm.bitrix24.payloads import AppInfo, TokenGrant
from widget.crm.errors import CrmAuthError, CrmBadResponse, CrmUnavailable
from widget.crm.http import HttpSender, RetryPolicy, shared_limiter

log = logging.getLogger(__name__)


class VerificationFailed(CrmAuthError):
    """The OAuth server does not vouch for this request (wrong app, portal, domain or token)."""

    user_message = "We could not confirm that this request came from your Bitrix24. Please reopen the app."


def normalise_domain(domain: str) -> str:
    """``Portal.Bitrix24.com:443`` → ``portal.bitrix24.com`` (the JS SDK strips default ports too)."""
    value = domain.strip().lower().rstrip("/")
    for suffix in (":80", ":443"):
        if value.endswith(suffix):
            value = value[: -len(suffix)]
    return value


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any


class Bitrix24Provider:
    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        if not settings.bitrix24_enabled:
            raise RuntimeError("Bitrix24 is not configured (BITRIX24_CLIENT_ID / BITRIX24_CLIENT_SECRET)")
        self.settings = settings
        self.client_id = str(settings.bitrix24_client_id)
        self._secret = str(settings.bitrix24_client_secret)
        self.oauth_url = settings.bitrix24_oauth_url.rstrip("/")
        self._session = session or requests.Session()
        # The OAuth server is not the portal: no portal rate limit, but the same timeouts.
        self._sender = HttpSender(
            timeout=settings.http_timeout, limiter=None, limiter_key="bitrix24-oauth", session=self._session
        )

    # ------------------------------------------------------------------------------ app.info

    def app_info(self, access_token: str) -> AppInfo:
        answer = self._sender.send("POST", f"{self.oauth_url}/rest/app.info", self._answer, data={"auth": access_token})
        body = answer.body
        if isinstance(body, dict) and "error" in body:
            raise error_for(
                str(body.get("error") or ""),
                str(body.get("error_description") or ""),
                status=answer.status,
                body=body,
            )
        if answer.status >= 400:
            raise CrmBadResponse(f"app.info: HTTP {answer.status}", status=answer.status)
        return AppInfo.parse(body)

    def verify(self, access_token: str, *, member_id: str, domain: str | None) -> AppInfo:
        """Ask the configured OAuth server who ``access_token`` belongs to, and check it is us,
        this portal and (when given) this domain."""
        try:
            info = self.app_info(access_token)
        except CrmAuthError as exc:
            raise VerificationFailed(f"app.info refused the token: {exc}", details=exc.details) from exc
        except CrmBadResponse as exc:
            # 400-class answers about a token we were handed mean "not a token of ours".
            if exc.status is not None and exc.status < 500:
                raise VerificationFailed(f"app.info refused the token: {exc}", details=exc.details) from exc
            raise
        if info.client_id != self.client_id:
            raise VerificationFailed("token belongs to another application")
        if info.member_id != member_id:
            raise VerificationFailed("token belongs to another portal")
        if domain is not None and normalise_domain(info.domain) != normalise_domain(domain):
            raise VerificationFailed("DOMAIN does not match the portal the token belongs to")
        return info

    # ------------------------------------------------------------------------------ tokens

    def token_url(self, server_endpoint: str | None) -> str:
        """``https://oauth.bitrix.info/rest/`` → ``https://oauth.bitrix.info/oauth/token/``; refuse any
        host other than the configured OAuth server's."""
        configured = urlsplit(self.oauth_url)
        endpoint = server_endpoint or f"{self.oauth_url}/rest/"
        parts = urlsplit(endpoint)
        if parts.scheme != configured.scheme or parts.netloc.lower() != configured.netloc.lower():
            raise CrmAuthError(
                f"the stored server endpoint {parts.netloc!r} is not the configured OAuth server; refusing to send "
                "the refresh token there"
            )
        path = parts.path
        base = path[: path.rindex("/rest")] if "/rest" in path else path.rstrip("/")
        return f"{parts.scheme}://{parts.netloc}{base}/oauth/token/"

    def refresh(self, server_endpoint: str | None, refresh_token: str) -> TokenGrant:
        url = self.token_url(server_endpoint)
        # A refresh token is single use (§4.3): never resend one whose answer we may have lost.
        answer = self._sender.send(
            "GET",
            url,
            self._answer,
            idempotent=False,
            params={
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self._secret,
                "refresh_token": refresh_token,
            },
        )
        body = answer.body
        if isinstance(body, dict) and "error" in body:
            code = str(body.get("error") or "")
            description = str(body.get("error_description") or "")
            if answer.status >= 500:
                raise CrmUnavailable(f"token refresh: {code}", status=answer.status)
            # invalid_grant / invalid_client / expired_token on refresh: the chain is broken.
            raise CrmAuthError(f"Bitrix24 OAuth {code}: {description}", status=answer.status, details=body)
        if answer.status >= 400:
            raise CrmBadResponse(f"token refresh: HTTP {answer.status}", status=answer.status)
        return TokenGrant.parse(body)

    def _answer(self, response: requests.Response) -> _Answer:
        try:
            body = response.json()
        except ValueError:
            if response.status_code >= 500:
                raise CrmUnavailable(f"Bitrix24 OAuth server: HTTP {response.status_code}") from None
            raise CrmBadResponse(f"Bitrix24 OAuth server: HTTP {response.status_code} without JSON") from None
        if response.status_code >= 500 and not (isinstance(body, dict) and "error" in body):
            raise CrmUnavailable(f"Bitrix24 OAuth server: HTTP {response.status_code}")
        return _Answer(response.status_code, body)

    # ------------------------------------------------------------------------------ clients

    def _limiter_args(self, member_id: str) -> dict[str, Any]:
        s = self.settings
        return {
            "timeout": s.http_timeout,
            "limiter": shared_limiter("bitrix24", s.bitrix24_rate_per_second, s.bitrix24_burst),
            "limiter_key": member_id,
        }

    def user_client(
        self, client_endpoint: str, access_token: str, member_id: str, retry: RetryPolicy | None = None
    ) -> Bitrix24Client:
        """A client acting with a user's own frame token (no refresh, no marking of the portal)."""
        return self.client(client_endpoint, UserTokenSource(access_token), member_id, retry)

    def client(
        self, client_endpoint: str, auth: TokenSource, member_id: str, retry: RetryPolicy | None = None
    ) -> Bitrix24Client:
        return Bitrix24Client(
            client_endpoint=client_endpoint,
            auth=auth,
            retry=retry,
            session=self._session,
            **self._limiter_args(member_id),
        )


class UserTokenSource:
    """The token a user's browser posted (already verified with ``app.info``)."""

    def __init__(self, access_token: str) -> None:
        self._token = access_token

    def token(self) -> tuple[str, int]:
        return self._token, 0

    def refreshed(self, stale_generation: int) -> tuple[str, int]:
        raise VerificationFailed("the user's Bitrix24 token expired; the page must be reopened")

    def newer(self, generation: int) -> tuple[str, int] | None:
        return None

    def rejected(self, code: str, description: str) -> None:
        return None  # a user's token says nothing about the portal's stored authorization

    def moved(self, client_endpoint: str) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# The app card: what the local-application form holds and what the installer binds.

APP_CARD_PATH = os.path.join(ROOT, "bitrix_app", "app-card.json")
# LANG_ALL keys are Bitrix24's language ids: Spanish is "la", Brazilian Portuguese "br".
_BITRIX_LANG = {"en": "en", "es": "la", "pt": "br", "ru": "ru"}


@dataclass(frozen=True)
class AppCard:
    data: dict[str, Any]

    def text(self, key: str, lang: str) -> str:
        texts = self.data.get(key) or self.data["installer_texts"].get(key) or {}
        return str(texts.get(lang) or texts.get("en") or "")

    def url(self, public_url: str, path: str) -> str:
        return public_url.rstrip("/") + path

    def placements(self, public_url: str, lang: str) -> list[dict[str, Any]]:
        """``placement.bind`` parameters for every placement, handler URLs on our public URL."""
        out = []
        for p in self.data["placements"]:
            titles = p["title"]
            out.append(
                {
                    "PLACEMENT": p["code"],
                    "HANDLER": self.url(public_url, p["handler_path"]),
                    "TITLE": titles.get(lang) or titles["en"],
                    "LANG_ALL": {_BITRIX_LANG[k]: {"TITLE": v} for k, v in titles.items() if k in _BITRIX_LANG},
                }
            )
        return out

    def events(self, public_url: str) -> list[dict[str, str]]:
        return [{"event": e["event"], "handler": self.url(public_url, e["handler_path"])} for e in self.data["events"]]


@functools.cache
def load_app_card(path: str = APP_CARD_PATH) -> AppCard:
    with open(path, encoding="utf-8") as fh:
        return AppCard(json.load(fh))
