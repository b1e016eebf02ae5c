"""Who a client written in the console is, by the messenger of the channel they write to.

The gateway's contract (``widget/openapi.yaml``, InboundMessage) carries ``chat_id``, the
messenger's id of the conversation, and ``phone`` when the messenger knows it. Each messenger
identifies a client its own way, so the console asks for what that messenger has:

* WhatsApp and WABA: the phone number, which is also the chat id (its digits);
* Telegram: the chat id (digits) a bot sees, or the client's @username; a phone only if shared;
* Instagram: the @username; never a phone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PHONE_MESSENGERS = ("whatsapp", "waba")
_DIGITS = re.compile(r"\D")
_TELEGRAM_ID = re.compile(r"\d{1,20}")
_TELEGRAM_USERNAME = re.compile(r"@?([A-Za-z][A-Za-z0-9_]{4,31})")
_INSTAGRAM_USERNAME = re.compile(r"@?([A-Za-z0-9._]{1,30})")

MESSENGERS = {"whatsapp": "WhatsApp", "waba": "WABA", "telegram": "Telegram", "instagram": "Instagram"}
# What the console's "Client" field asks for, per messenger.
HINTS = {
    "whatsapp": "phone number, e.g. +34 600 123 456",
    "waba": "phone number, e.g. +34 600 123 456",
    "telegram": "chat id (digits, e.g. 5550001) or @username",
    "instagram": "@username, e.g. @ana.lima",
}


@dataclass(frozen=True)
class ConsoleClient:
    chat_id: str
    phone: str | None


def _phone(raw: str) -> str | None:
    digits = _DIGITS.sub("", raw)
    return "+" + digits if 7 <= len(digits) <= 15 else None


def console_client(transport: str, given: str, phone: str = "") -> ConsoleClient:
    """The client's chat id (and phone) on a channel of ``transport``; ``ValueError`` says what
    the field should hold."""
    value = given.strip()
    extra = phone.strip()
    if transport in PHONE_MESSENGERS:
        number = _phone(value)
        if number is None:
            raise ValueError("A WhatsApp client is their phone number: + and 7 to 15 digits, e.g. +34 600 123 456.")
        return ConsoleClient(number[1:], number)
    if extra and _phone(extra) is None:
        raise ValueError("The phone must be + and 7 to 15 digits, e.g. +34 600 123 456.")
    shared = _phone(extra) if extra else None
    if transport == "telegram":
        if _TELEGRAM_ID.fullmatch(value):
            return ConsoleClient(value, shared)
        found = _TELEGRAM_USERNAME.fullmatch(value)
        if found is None:
            raise ValueError(
                "A Telegram client is their chat id (digits, e.g. 5550001) or @username (5 to 32 letters, digits or _)."
            )
        return ConsoleClient("@" + found.group(1), shared)
    if transport == "instagram":
        found = _INSTAGRAM_USERNAME.fullmatch(value)
        if found is None:
            raise ValueError("An Instagram client is their @username (letters, digits, . and _).")
        return ConsoleClient(found.group(1), None)
    raise ValueError(f"This gateway does not know the messenger {transport!r}.")
