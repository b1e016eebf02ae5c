"""Rules of a channel (product.md §1, §4): which messengers, what makes a number or username valid
(and the same one twice), a channel's name, and which channel gets the test message. Pure: no
Flask, no SQL."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from widget.domain.problems import Problem

WHATSAPP, WABA, TELEGRAM, INSTAGRAM = "whatsapp", "waba", "telegram", "instagram"
TRANSPORTS = (WHATSAPP, WABA, TELEGRAM, INSTAGRAM)
PHONE_TRANSPORTS = (WHATSAPP, WABA)
# The test client writes to the first of these (product.md §4); Instagram cannot be written to first.
TEST_MESSAGE_TRANSPORTS = (WHATSAPP, WABA, TELEGRAM)
NAME_MAX = 120

_PHONE_NOISE = re.compile(r"[\s\-().\u00a0]")
_TELEGRAM = re.compile(r"^[A-Za-z][A-Za-z0-9_]{4,31}$")  # Telegram usernames: 5-32, letter first
_INSTAGRAM = re.compile(r"^[A-Za-z0-9._]{1,30}$")


class ChannelLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def transport(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def is_enabled(self) -> bool: ...


C = TypeVar("C", bound=ChannelLike)


def normalise_phone(raw: str) -> str | None:
    """E.164-ish: "+" (or "00") and the country code are required, because a national number
    cannot be told apart from another country's number. Spaces, dashes, dots and brackets go."""
    text = _PHONE_NOISE.sub("", raw)
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        return None
    digits = text[1:]
    if not digits.isascii() or not digits.isdigit() or not 7 <= len(digits) <= 15 or digits[0] == "0":
        return None
    return "+" + digits


def normalise_handle(transport: str, raw: str) -> str | None:
    handle = raw.strip()
    for prefix in ("https://", "http://", "www."):
        if handle.lower().startswith(prefix):
            handle = handle[len(prefix) :]
    for host in ("t.me/", "telegram.me/", "instagram.com/"):
        if handle.lower().startswith(host):
            handle = handle[len(host) :].strip("/")
    handle = handle.removeprefix("@")
    if transport == TELEGRAM:
        if not _TELEGRAM.match(handle) or handle.endswith("_"):
            return None
    elif not _INSTAGRAM.match(handle) or handle.startswith(".") or handle.endswith(".") or ".." in handle:
        return None
    # Both messengers treat usernames case-insensitively; one spelling keeps duplicates visible.
    return "@" + handle.lower()


def normalise_address(transport: str, raw: str) -> str | None:
    if transport in PHONE_TRANSPORTS:
        return normalise_phone(raw)
    if transport == TELEGRAM:
        # A Telegram channel is a bot or account handle, or a personal account's phone number.
        stripped = raw.strip()
        if stripped.startswith(("+", "00")):
            return normalise_phone(stripped)
        return normalise_handle(TELEGRAM, stripped)
    if transport == INSTAGRAM:
        return normalise_handle(INSTAGRAM, raw)
    return None


def clean_name(raw: str) -> str:
    """One line of visible text: control and format characters become spaces, runs collapse."""
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in raw)
    return " ".join(text.split())


@dataclass(frozen=True)
class NewChannel:
    transport: str
    name: str
    address: str


def check_new_channel(
    transport: str, name: str, address: str, existing: Iterable[ChannelLike]
) -> tuple[NewChannel | None, list[Problem]]:
    problems: list[Problem] = []
    if transport not in TRANSPORTS:
        problems.append(Problem("transport", "invalid_choice"))
    problems.extend(check_channel_name(name))
    normalised: str | None = None
    if not address.strip():
        problems.append(Problem("address", "required"))
    elif transport in TRANSPORTS:
        normalised = normalise_address(transport, address)
        if normalised is None:
            code = "invalid_phone" if transport in PHONE_TRANSPORTS else f"invalid_{transport}_handle"
            problems.append(Problem("address", code))
        else:
            for ch in existing:
                if ch.transport == transport and ch.address == normalised:
                    code = "duplicate_address" if ch.is_enabled else "duplicate_disabled_address"
                    problems.append(Problem("address", code, {"name": ch.name}))
                    break
    if problems or normalised is None:
        return None, problems
    return NewChannel(transport, clean_name(name), normalised), []


DEFAULT_MAX_CHANNELS = 100  # per account, enabled or not (MAX_CHANNELS)


def check_channel_count(existing: int, limit: int) -> list[Problem]:
    """Room for one more channel? Disabled channels count: they keep their settings and may come
    back at any time."""
    if existing >= limit:
        return [Problem("channels", "too_many", {"max": str(limit)})]
    return []


def check_channel_name(name: str) -> list[Problem]:
    cleaned = clean_name(name)
    if not cleaned:
        return [Problem("name", "required")]
    if len(cleaned) > NAME_MAX:
        return [Problem("name", "too_long", {"max": str(NAME_MAX)})]
    return []


def pick_test_message_channel(channels_in_creation_order: Sequence[C]) -> C | None:
    """The first enabled WhatsApp, WABA or Telegram channel, in the order they were added."""
    for ch in channels_in_creation_order:
        if ch.is_enabled and ch.transport in TEST_MESSAGE_TRANSPORTS:
            return ch
    return None
