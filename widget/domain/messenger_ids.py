"""How a client's messenger identity is written into a CRM contact so the CRM can find it again.

A client without a phone (Telegram, Instagram) is known only by the chat id its messenger gives.
Both CRMs keep such ids in a contact's "IM" multifield (Kommo field code ``IM``, Bitrix24 multifield
``IM``), whose search matches the whole stored value. Chat ids of different messengers can be equal
("123456" may be a Telegram user and an Instagram user), so the value carries the messenger:
``telegram:123456``. One encoding for both CRMs keeps the lookup a plain equality on the value and
readable for a person looking at the card. The CRM's own messenger type (Bitrix24 ``VALUE_TYPE``)
is set as well, for display only: Kommo's IM enums name no modern messenger, and Bitrix24's filter
on ``IM`` compares values, not types.

Pure: no Flask, no SQL, no HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEPARATOR = ":"
# Chat ids are at most 128 characters (``widget.domain.inbound``) and messengers a short word, so
# an encoded value stays under Bitrix24's 250 characters per multifield value.
_MESSENGER = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Where the chat id is the phone number itself, the phone search already is the messenger search.
PHONE_MESSENGERS = frozenset({"whatsapp", "waba"})


@dataclass(frozen=True)
class MessengerId:
    messenger: str  # the chat type: telegram, instagram, whatsapp, waba
    chat_id: str

    @property
    def value(self) -> str:
        """What the contact's IM field holds, e.g. ``telegram:123456``."""
        return f"{self.messenger}{SEPARATOR}{self.chat_id}"


def messenger_id(messenger: str | None, chat_id: str | None) -> MessengerId | None:
    """The identity to store and search, or None when either part is missing or unusable.

    The messenger is lower-cased (it names a type, "Telegram" and "telegram" are one); the chat id is
    kept as given apart from surrounding blanks, since some messengers' ids are case-sensitive.
    """
    kind = (messenger or "").strip().lower()
    ident = (chat_id or "").strip()
    if not ident or not _MESSENGER.match(kind):
        return None
    return MessengerId(kind, ident)


def parse_messenger_id(value: str | None) -> MessengerId | None:
    """A stored IM value back into its parts; None for values not written this way (a Skype login a
    sales rep typed in, say), so they never match a lookup."""
    if not value or SEPARATOR not in value:
        return None
    kind, _, ident = value.partition(SEPARATOR)
    found = messenger_id(kind, ident)
    return found if found is not None and found.value == value else None


def crm_messenger_id(phone: str | None, messenger: str | None, chat_id: str | None) -> MessengerId | None:
    """The identity we write into a new contact and search for, next to (or instead of) the phone:
    none for a WhatsApp/WABA client with a phone, whose chat is its number (the phone field already
    says it, and the card stays free of a redundant line)."""
    found = messenger_id(messenger, chat_id)
    if found is None or (phone and found.messenger in PHONE_MESSENGERS):
        return None
    return found
