"""The sandbox gateway's console asks each messenger's client for what that messenger knows of
them (``sandbox.gateway.clients``): a phone on WhatsApp, a chat id or @username on
Telegram, an @username on Instagram."""

from __future__ import annotations

import pytest

from sandbox.gateway.clients import ConsoleClient, console_client


@pytest.mark.parametrize(
    ("transport", "given", "phone", "expected"),
    [
        ("whatsapp", "+34 600 123 456", "", ConsoleClient("34600123456", "+34600123456")),
        ("waba", "(202) 555-0143 1", "", ConsoleClient("20255501431", "+20255501431")),
        ("telegram", " 5550001 ", "", ConsoleClient("5550001", None)),
        ("telegram", "ana_lima", "+7 900 123 45 67", ConsoleClient("@ana_lima", "+79001234567")),
        ("telegram", "@ana_lima", "", ConsoleClient("@ana_lima", None)),
        ("instagram", "@ana.lima", "", ConsoleClient("ana.lima", None)),
        ("instagram", "shop_42", "", ConsoleClient("shop_42", None)),
    ],
)
def test_each_messenger_names_its_client_its_own_way(transport, given, phone, expected):
    assert console_client(transport, given, phone) == expected


@pytest.mark.parametrize(
    ("transport", "given", "phone", "says"),
    [
        ("whatsapp", "@ana", "", "phone number"),
        ("whatsapp", "12345", "", "7 to 15 digits"),
        ("telegram", "ana!", "", "chat id"),
        ("telegram", "@ab", "", "@username"),
        ("telegram", "5550001", "not a phone", "The phone must be"),
        ("instagram", "ana lima", "", "@username"),
        ("viber", "+34600123456", "", "does not know the messenger"),
    ],
)
def test_what_the_messenger_would_not_know_is_refused_in_words(transport, given, phone, says):
    with pytest.raises(ValueError, match=says):
        console_client(transport, given, phone)
