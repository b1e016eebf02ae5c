"""What a CRM client needs to know about tokens, the same for every CRM: the pair a token endpoint
grants, and the store a client takes its access token from.

The adapters never keep tokens themselves. An installed account's store is the services' (the
encrypted ``account_tokens`` row, refreshed one at a time across processes: ``widget.services
.accounts.tokens``); a token we were just handed and have not stored is a ``FixedToken``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from widget.crm.errors import CrmAuthError


@dataclass(frozen=True)
class TokenPair:
    """An OAuth pair as a token endpoint grants it (Kommo reference §1.3, Bitrix24 §4.3)."""

    access_token: str
    refresh_token: str
    expires_at: datetime


class TokenStore(Protocol):
    """Where a client gets its access token, and whom it tells when the CRM refuses it.

    ``generation`` identifies the stored pair, so a token the CRM refused is replaced exactly once,
    whoever notices first."""

    def current(self) -> tuple[str, int]:
        """The access token (refreshed first when it has expired) and its generation."""
        ...

    def refreshed(self, stale_generation: int) -> tuple[str, int]:
        """A token that replaces ``stale_generation``, which the CRM has just refused as expired
        (one refresh per account across processes; someone else's newer pair is used as it is)."""
        ...

    def newer(self, generation: int) -> tuple[str, int] | None:
        """The stored token when it is newer than ``generation`` (someone else refreshed), else None."""
        ...

    def revoked(self, reason: str) -> None:
        """The CRM says the stored authorization is gone for good: the account needs re-authorization."""
        ...


class FixedToken:
    """A token we were just handed and do not store (a fresh install's, a user's frame token): it is
    never refreshed, and a refusal raises ``refusal()``."""

    def __init__(self, token: str, refusal: Callable[[], CrmAuthError]) -> None:
        self._token = token
        self._refusal = refusal

    def current(self) -> tuple[str, int]:
        return self._token, 0

    def refreshed(self, stale_generation: int) -> tuple[str, int]:
        raise self._refusal()

    def newer(self, generation: int) -> tuple[str, int] | None:
        return None

    def revoked(self, reason: str) -> None:
        return None  # a token we do not store says nothing about the account's stored authorization
