"""Kommo entity webhooks (``POST /api/v4/webhooks`` subscriptions), parsed into typed changes.

Our reference did not verify Kommo's outbound format (§ "Uncertain": the webhooks API was not
looked at). What we read is what public handlers of real hooks read: a form-encoded body with PHP
style keys, ``leads[responsible][0][id]``, ``contacts[update][0][responsible_user_id]`` … plus
``account[id]`` and ``account[subdomain]``. Deeper keys (custom fields) are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# The events we subscribe to: a responsible changed on a lead or contact, and a lead moved to
# another stage (won/lost leads hand the client back to the contact's responsible).
EVENTS = ("responsible_lead", "responsible_contact", "status_lead")
MAX_CHANGES = 1000  # Kommo batches changes per POST; more than this is not a real delivery

_ENTITIES = {"leads": "lead", "contacts": "contact"}
_KEY = re.compile(r"^(leads|contacts)\[([a-z_]+)\]\[(\d{1,4})\]\[([a-z_]+)\]$")


class MalformedWebhook(ValueError):
    """The body is not a Kommo entity webhook."""


@dataclass(frozen=True)
class EntityChange:
    entity: str  # "lead" or "contact"
    entity_id: str
    action: str  # responsible / status / update / add / delete …
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def event(self) -> str:
        return f"{self.action}_{self.entity}"


@dataclass(frozen=True)
class EntityWebhook:
    account_id: str
    subdomain: str
    changes: tuple[EntityChange, ...]


def parse_entity_webhook(pairs: Iterable[tuple[str, str]]) -> EntityWebhook:
    account_id = subdomain = ""
    grouped: dict[tuple[str, str, str], dict[str, str]] = {}
    for key, value in pairs:
        if key == "account[id]":
            account_id = value.strip()
        elif key == "account[subdomain]":
            subdomain = value.strip()[:100]
        else:
            match = _KEY.match(key)
            if match is None:
                continue
            plural, action, index, name = match.groups()
            item = grouped.setdefault((plural, action, index), {})
            if len(grouped) > MAX_CHANGES:
                raise MalformedWebhook(f"more than {MAX_CHANGES} changes in one delivery")
            item[name] = value[:500]
    if not account_id.isdigit():
        raise MalformedWebhook("account[id] is missing or not a number")
    changes = []
    for (plural, action, _index), values in grouped.items():
        entity_id = values.get("id", "")
        if not entity_id.isdigit():
            raise MalformedWebhook(f"{plural}[{action}] without a numeric id")
        changes.append(EntityChange(_ENTITIES[plural], entity_id, action, values))
    return EntityWebhook(account_id, subdomain, tuple(changes))
