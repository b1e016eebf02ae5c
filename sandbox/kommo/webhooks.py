"""Webhook subscriptions (``/api/v4/webhooks``) and the form bodies Kommo posts to them.

Our reference did not verify Kommo's outbound webhook format. What we send is our assumption, built
from how public third-party handlers read real hooks: ``application/x-www-form-urlencoded`` with PHP
style keys per event -- ``leads[responsible][0][id]`` for a subscription to ``responsible_lead``,
``leads[update][0][id]`` for ``update_lead`` (contacts alike) -- plus ``account[id]`` and
``account[subdomain]``. One POST per destination carries every event it subscribed to.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sandbox.kommo.errors import ApiError, Invalid, not_supported
from sandbox.kommo.records import Account, Contact, Ids, Lead, Webhook

MAX_WEBHOOKS = 100  # per account (reference §6)

EVENTS = frozenset(
    f"{action}_{entity}"
    for entity in ("lead", "contact", "company", "customer", "task")
    for action in ("add", "update", "delete", "restore", "responsible", "note")
) | {"status_lead", "add_talk", "update_talk", "add_chat_template_review", "add_message", "incoming_chat_message"}


def subscribe(acct: Account, ids: Ids, now: int, actor: int, body: Any) -> Webhook:
    if not isinstance(body, dict) or not body:
        raise ApiError(400, "Request data can not be empty")
    invalid = Invalid()
    destination = body.get("destination")
    parts = urlsplit(destination) if isinstance(destination, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        not_supported(invalid, "0", "destination")
    settings = body.get("settings")
    if not isinstance(settings, list) or not settings:
        invalid.add("0", "NotBlank", "settings", "This value should not be blank.")
        settings = []
    for i, event in enumerate(settings):
        if event not in EVENTS:
            not_supported(invalid, "0", f"settings.{i}")
    invalid.raise_if_any()
    assert isinstance(destination, str)
    existing = acct.webhooks.get(destination)
    if existing is not None:
        # Subscribing an address again replaces its event list.
        existing.settings = list(dict.fromkeys(settings))
        existing.updated_at = now
        return existing
    if len(acct.webhooks) >= MAX_WEBHOOKS:
        raise ApiError(400, f"Limit of {MAX_WEBHOOKS} webhooks per account reached")
    hook = Webhook(
        id=ids.next("webhook"),
        destination=destination,
        settings=list(dict.fromkeys(settings)),
        created_at=now,
        updated_at=now,
        created_by=actor,
        sort=int(body["sort"]) if isinstance(body.get("sort"), int) else 0,
    )
    acct.webhooks[destination] = hook
    return hook


def unsubscribe(acct: Account, body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("destination"), str):
        invalid = Invalid()
        invalid.add("0", "NotBlank", "destination", "This value should not be blank.")
        invalid.raise_if_any()
    acct.webhooks.pop(body["destination"], None)


def _entity_fields(acct: Account, entity: Lead | Contact, old_responsible: int, by_user: int) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": entity.id,
        "name": entity.name,
        "responsible_user_id": entity.responsible_user_id,
        "old_responsible_user_id": old_responsible,
        "modified_user_id": by_user,
        "created_user_id": entity.created_by,
        "date_create": entity.created_at,
        "created_at": entity.created_at,
        "updated_at": entity.updated_at,
        "last_modified": entity.updated_at,
        "account_id": acct.id,
    }
    if isinstance(entity, Lead):
        fields.update(status_id=entity.status_id, pipeline_id=entity.pipeline_id, price=entity.price)
    else:
        fields["type"] = "contact"
    return fields


def responsible_payloads(
    acct: Account, base_url: str, entities: str, entity: Lead | Contact, old_responsible: int, by_user: int
) -> list[tuple[str, list[tuple[str, str]]]]:
    """(destination, form pairs) for every subscription interested in this responsible change."""
    singular = entities[:-1]
    fields = _entity_fields(acct, entity, old_responsible, by_user)
    deliveries = []
    for hook in sorted(acct.webhooks.values(), key=lambda h: (h.sort, h.id)):
        if hook.disabled:
            continue
        events = [e for e in ("responsible", "update") if f"{e}_{singular}" in hook.settings]
        if not events:
            continue
        pairs: list[tuple[str, str]] = []
        for event in events:
            for key, value in fields.items():
                if event == "update" and key == "old_responsible_user_id":
                    continue
                pairs.append((f"{entities}[{event}][0][{key}]", str(value)))
        pairs += [
            ("account[id]", str(acct.id)),
            ("account[subdomain]", acct.subdomain),
            ("account[_links][self]", f"{base_url}/{acct.host}"),
        ]
        deliveries.append((hook.destination, pairs))
    return deliveries
