"""Authorization codes and token pairs with Kommo's rotation rules (reference §1.2-§1.4).

* A code lives 20 minutes, works once, and is bound to one account, client and redirect URI.
* Every refresh hands out a new pair. The refresh token that produced it keeps working until the
  new pair is *used* (its access token on the API, or its refresh token at the token endpoint), so a
  client that lost the response can retry; after that, reusing it gets 401 "Token has been revoked".
* Our stricter reading, on purpose: once one of several pairs minted from the same refresh token is
  used, its unused siblings are revoked too. Two processes refreshing at once therefore break, which is
  exactly what "one refresh at a time per account" must prevent.
* An old access token keeps working until it expires; Kommo documents nothing that revokes it early.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from dataclasses import dataclass, field

import jwt

from sandbox.kommo.clock import SandboxClock
from sandbox.kommo.errors import OAuthError

CODE_LIFETIME = 20 * 60
REFRESH_LIFETIME = 90 * 24 * 3600


@dataclass
class Code:
    value: str
    host: str
    account_id: int
    user_id: int
    client_id: str
    redirect_uri: str
    issued_at: float
    used: bool = False
    revoked: bool = False


@dataclass
class TokenPair:
    access_token: str
    refresh_token: str
    host: str
    account_id: int
    user_id: int
    issued_at: float
    access_expires_at: float
    refresh_expires_at: float
    parent: TokenPair | None = None
    children: list[TokenPair] = field(default_factory=list)
    used: bool = False
    access_revoked: bool = False
    refresh_revoked: bool = False


def _opaque() -> str:
    # Codes and refresh tokens seen in the wild are long opaque strings starting with "def502".
    return "def50200" + secrets.token_hex(128)


class TokenStore:
    def __init__(self, clock: SandboxClock, lock: threading.RLock, client_id: str, token_ttl: int) -> None:
        self._clock = clock
        self._lock = lock
        self.client_id = client_id
        self.token_ttl = token_ttl
        # Access tokens look like Kommo's JWTs; the sandbox signs them with its own key (Kommo uses
        # RS256 and never asks a client to verify them).
        self._signing_key = secrets.token_hex(32)
        self._codes: dict[str, Code] = {}
        self._by_access: dict[str, TokenPair] = {}
        self._by_refresh: dict[str, TokenPair] = {}
        self._refreshes: dict[str, int] = {}

    # --- codes -------------------------------------------------------------------------------------

    def issue_code(self, host: str, account_id: int, user_id: int, redirect_uri: str) -> str:
        with self._lock:
            value = _opaque()
            self._codes[value] = Code(value, host, account_id, user_id, self.client_id, redirect_uri, self._clock.now())
            return value

    def exchange_code(self, host: str, value: str, redirect_uri: str) -> TokenPair:
        with self._lock:
            code = self._codes.get(value)
            if code is None:
                raise OAuthError(400, "Cannot decrypt the authorization code")
            if code.host != host:
                raise OAuthError(400, "Invalid account")
            if code.redirect_uri != redirect_uri:
                raise OAuthError(400, "Redirect URI is not associated with client")
            if code.used or code.revoked:
                raise OAuthError(400, "Authorization code has been revoked")
            if self._clock.now() - code.issued_at > CODE_LIFETIME:
                raise OAuthError(400, "Authorization code has expired")
            code.used = True
            return self._mint(host, code.account_id, code.user_id, parent=None)

    # --- refresh -----------------------------------------------------------------------------------

    def refresh(self, host: str, refresh_token: str) -> TokenPair:
        with self._lock:
            pair = self._by_refresh.get(refresh_token)
            if pair is None:
                raise OAuthError(400, "Invalid refresh token")
            if pair.host != host:
                raise OAuthError(400, "Invalid account")
            if pair.refresh_revoked:
                raise OAuthError(401, "Token has been revoked")
            if self._clock.now() >= pair.refresh_expires_at:
                # Three months without a refresh lose access (reference §1.3); the hint is the one of
                # the OAuth server library Kommo's other hints come from.
                raise OAuthError(401, "Token has expired")
            self._mark_used(pair)
            self._refreshes[host] = self._refreshes.get(host, 0) + 1
            return self._mint(host, pair.account_id, pair.user_id, parent=pair)

    def refresh_count(self, host: str | None = None) -> int:
        with self._lock:
            if host is None:
                return sum(self._refreshes.values())
            return self._refreshes.get(host, 0)

    # --- the API side ------------------------------------------------------------------------------

    def authenticate(self, host: str, access_token: str) -> TokenPair | None:
        """The pair behind a Bearer token, or None when it is unknown, foreign, expired or revoked."""
        with self._lock:
            pair = self._by_access.get(access_token)
            if pair is None or pair.host != host or pair.access_revoked:
                return None
            if self._clock.now() >= pair.access_expires_at:
                return None
            self._mark_used(pair)
            return pair

    def expire(self, host: str) -> int:
        """Make every access token of the account expire now; refresh tokens still work."""
        with self._lock:
            now = self._clock.now()
            pairs = [p for p in self._by_access.values() if p.host == host and p.access_expires_at > now]
            for pair in pairs:
                pair.access_expires_at = now
            return len(pairs)

    def revoke(self, host: str) -> int:
        """What uninstall does: every code, access and refresh token of the account stops working."""
        with self._lock:
            pairs = [p for p in self._by_access.values() if p.host == host]
            for pair in pairs:
                pair.access_revoked = pair.refresh_revoked = True
            for code in self._codes.values():
                if code.host == host:
                    code.revoked = True
            return len(pairs)

    def pairs(self, host: str | None = None) -> list[TokenPair]:
        with self._lock:
            return [p for p in self._by_access.values() if host is None or p.host == host]

    # --- internals ---------------------------------------------------------------------------------

    def _mark_used(self, pair: TokenPair) -> None:
        if pair.used:
            return
        pair.used = True
        parent = pair.parent
        if parent is None:
            return
        parent.refresh_revoked = True
        for sibling in parent.children:
            if sibling is not pair and not sibling.used:
                sibling.access_revoked = sibling.refresh_revoked = True

    def _mint(self, host: str, account_id: int, user_id: int, parent: TokenPair | None) -> TokenPair:
        now = self._clock.now()
        claims = {
            "aud": self.client_id,
            "jti": str(uuid.uuid4()),
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + self.token_ttl),
            "sub": str(user_id),
            "account_id": account_id,
            "base_domain": "kommo.test",
            "api_domain": host,
            "version": 2,
            "scopes": ["crm", "notifications"],
        }
        access = jwt.encode(claims, self._signing_key, algorithm="HS256")
        pair = TokenPair(
            access_token=access,
            refresh_token=_opaque(),
            host=host,
            account_id=account_id,
            user_id=user_id,
            issued_at=now,
            access_expires_at=now + self.token_ttl,
            refresh_expires_at=now + REFRESH_LIFETIME,
            parent=parent,
        )
        if parent is not None:
            parent.children.append(pair)
        self._by_access[pair.access_token] = pair
        self._by_refresh[pair.refresh_token] = pair
        return pair
