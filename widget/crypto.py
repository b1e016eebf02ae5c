"""Secrets at rest: OAuth tokens and application tokens are stored Fernet-encrypted.

Several keys may be configured (comma-separated): the first encrypts, all decrypt, so keys can be
rotated without losing stored tokens.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenBox:
    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is required")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def seal(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def open(self, blob: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(blob)).decode()
        except InvalidToken as exc:
            raise ValueError("stored secret cannot be decrypted with the configured keys") from exc
