"""OAuth tokens of the sandbox: 1-hour access tokens, refresh tokens rotated on every use
(reference §4.3: the used refresh token and the access token issued with it die at once)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

# Why a token no longer works, as the portal reports it (reference §4.4).
GONE_UNINSTALLED = "APPLICATION_NOT_FOUND"
GONE_INVALIDATED = "invalid_token"


@dataclass
class Grant:
    access_token: str
    refresh_token: str
    member_id: str
    user_id: int
    client_id: str
    scope: str
    issued_at: float
    expires_at: float
    refresh_expires_at: float


class TokenStore:
    def __init__(self, access_ttl: float = 3600.0, refresh_ttl: float = 180 * 86400.0) -> None:
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._by_access: dict[str, Grant] = {}
        self._by_refresh: dict[str, Grant] = {}
        # Tokens that once existed, and why they stopped working.
        self._gone: dict[str, str] = {}
        self.refreshes = 0

    def issue(self, member_id: str, user_id: int, client_id: str, scope: str, now: float) -> Grant:
        grant = Grant(
            access_token=secrets.token_hex(24),
            refresh_token=secrets.token_hex(24),
            member_id=member_id,
            user_id=user_id,
            client_id=client_id,
            scope=scope,
            issued_at=now,
            expires_at=now + self.access_ttl,
            refresh_expires_at=now + self.refresh_ttl,
        )
        self._by_access[grant.access_token] = grant
        self._by_refresh[grant.refresh_token] = grant
        return grant

    def by_access(self, token: str) -> Grant | None:
        return self._by_access.get(token)

    def gone_reason(self, token: str) -> str | None:
        return self._gone.get(token)

    def rotate(self, refresh_token: str, now: float) -> Grant | None:
        """A new pair for a valid refresh token; the old pair stops working."""
        old = self._by_refresh.get(refresh_token)
        if old is None or old.refresh_expires_at <= now:
            return None
        # The used refresh token and the access token issued with it die at once (§4.3).
        self._drop(old, GONE_INVALIDATED)
        self.refreshes += 1
        return self.issue(old.member_id, old.user_id, old.client_id, old.scope, now)

    def _drop(self, grant: Grant, reason: str | None) -> None:
        self._by_access.pop(grant.access_token, None)
        self._by_refresh.pop(grant.refresh_token, None)
        if reason:
            self._gone[grant.access_token] = reason
            self._gone[grant.refresh_token] = reason

    def revoke_portal(self, member_id: str, reason: str) -> int:
        victims = [g for g in self._by_access.values() if g.member_id == member_id]
        for grant in victims:
            self._drop(grant, reason)
        return len(victims)

    def expire_now(self, now: float, member_id: str | None = None) -> int:
        count = 0
        for grant in self._by_access.values():
            if member_id is None or grant.member_id == member_id:
                grant.expires_at = min(grant.expires_at, now - 1)
                count += 1
        return count

    def expire_refresh(self, now: float, member_id: str) -> int:
        """Refresh tokens past their lifetime (180 days): refreshing answers ``invalid_grant``."""
        victims = [g for g in self._by_refresh.values() if g.member_id == member_id]
        for grant in victims:
            grant.refresh_expires_at = now - 1
        return len(victims)

    def invalidate(self, member_id: str) -> int:
        """Access tokens answer ``invalid_token``; refresh tokens keep working (Addendum)."""
        victims = [g for g in self._by_access.values() if g.member_id == member_id]
        for grant in victims:
            self._by_access.pop(grant.access_token, None)
            self._gone[grant.access_token] = GONE_INVALIDATED
        return len(victims)
