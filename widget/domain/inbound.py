"""The gateway's inbound message, parsed from untrusted JSON into a typed value at the edge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from widget.domain.conversations import normalize_phone

CHAT_TYPES = ("whatsapp", "waba", "telegram", "instagram")
MAX_TEXT = 10_000


class PayloadError(ValueError):
    """The payload is malformed; ``problems`` lists every problem, one sentence each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    channel_id: int
    chat_type: str
    chat_id: str
    phone: str | None
    sender_name: str
    text: str
    sent_at: datetime


def _string(body: dict[str, Any], key: str, problems: list[str], *, max_len: int, required: bool = True) -> str:
    value = body.get(key)
    if value is None:
        if required:
            problems.append(f"{key}: required")
        return ""
    if not isinstance(value, str):
        problems.append(f"{key}: must be a string")
        return ""
    if required and not value.strip():
        problems.append(f"{key}: must not be empty")
    if len(value) > max_len:
        problems.append(f"{key}: longer than {max_len} characters")
    if "\x00" in value:  # no messenger sends one, and PostgreSQL text columns cannot store it
        problems.append(f"{key}: must not contain NUL characters")
    return value


def parse_inbound(body: Any) -> InboundMessage:
    if not isinstance(body, dict):
        raise PayloadError(["the body must be a JSON object"])
    problems: list[str] = []
    message_id = _string(body, "message_id", problems, max_len=128)
    raw_channel = body.get("channel_id")
    channel_id = 0
    if raw_channel is None:
        problems.append("channel_id: required")
    elif isinstance(raw_channel, bool) or not isinstance(raw_channel, int) or raw_channel < 1:
        problems.append("channel_id: must be a positive integer")
    else:
        channel_id = raw_channel
    chat_type = _string(body, "chat_type", problems, max_len=16)
    if chat_type and chat_type not in CHAT_TYPES:
        problems.append(f"chat_type: must be one of {', '.join(CHAT_TYPES)}")
    chat_id = _string(body, "chat_id", problems, max_len=128)
    raw_phone = _string(body, "phone", problems, max_len=32, required=False) or None
    phone = normalize_phone(raw_phone)
    if raw_phone is not None and phone is None:
        problems.append("phone: must be a phone number of 7 to 15 digits")
    sender_name = _string(body, "sender_name", problems, max_len=255, required=False)
    text = _string(body, "text", problems, max_len=MAX_TEXT)
    sent_at = datetime.now(UTC)
    raw_time = body.get("sent_at")
    if raw_time is None:
        problems.append("sent_at: required")
    elif not isinstance(raw_time, str):
        problems.append("sent_at: must be an ISO 8601 date-time string")
    else:
        try:
            parsed = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
        except ValueError:
            problems.append("sent_at: must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
        else:
            if parsed.tzinfo is None:
                problems.append("sent_at: must carry a time zone offset (e.g. Z or +03:00)")
            else:
                sent_at = parsed.astimezone(UTC)
    # Unknown fields are ignored on purpose: the gateway may add fields before we read them.
    if problems:
        raise PayloadError(problems)
    return InboundMessage(
        message_id=message_id,
        channel_id=channel_id,
        chat_type=chat_type,
        chat_id=chat_id,
        phone=phone,
        sender_name=sender_name.strip(),
        text=text,
        sent_at=sent_at,
    )
