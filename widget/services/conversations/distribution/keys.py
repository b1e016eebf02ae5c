"""The outbox operations that carry a new client through distribution, and their idempotency keys
(one operation per chat and step, so a repeated or crashed step records it once)."""

from __future__ import annotations

RESOLVE_CLIENT = "resolve_client"
CREATE_ENTITIES = "create_entities"
AWAIT_CREATOR = "await_creator"


def resolve_key(chat_id: int) -> str:
    return f"resolve:{chat_id}"


def create_key(chat_id: int) -> str:
    return f"create:{chat_id}"


def await_key(chat_id: int, round_: int) -> str:
    return f"await:{chat_id}:{round_}"
