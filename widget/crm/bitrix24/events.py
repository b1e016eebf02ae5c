"""Inbound Bitrix24 calls: what authenticates them, and what each event means to us (reference §5).

Events carry no signature; the ``application_token`` Bitrix24 gave us at install is the only proof
that a POST comes from the portal (``ONAPPUNINSTALL`` carries no OAuth token at all, §5.3). It is
compared in constant time with the stored one of ``auth[member_id]``.
"""

from __future__ import annotations

import hmac

from widget.crm.bitrix24.payloads import FramePost

EVENT_INSTALL = "ONAPPINSTALL"
EVENT_UPDATE = "ONAPPUPDATE"
EVENT_UNINSTALL = "ONAPPUNINSTALL"

# CRM change notifications we record for the conversation logic (responsible follows the CRM).
CRM_UPDATE_EVENTS = {
    "ONCRMCONTACTUPDATE": "contact",
    "ONCRMDEALUPDATE": "deal",
    "ONCRMLEADUPDATE": "lead",
}

# Detail-tab placements and the CRM entity whose chats they show (§3.3; ``ID`` is a string).
CARD_PLACEMENTS = {
    "CRM_DEAL_DETAIL_TAB": "deal",
    "CRM_CONTACT_DETAIL_TAB": "contact",
    "CRM_LEAD_DETAIL_TAB": "lead",
}


def application_token_matches(stored: str | None, presented: str | None) -> bool:
    """True only when both exist and are equal; the comparison takes the same time either way."""
    if not stored or not presented:
        return False
    return hmac.compare_digest(stored.encode(), presented.encode())


def card_target(frame: FramePost) -> tuple[str, str] | None:
    """``("deal", "8061")`` for a CRM detail tab opened on deal 8061; None for other placements."""
    entity = CARD_PLACEMENTS.get(frame.placement)
    if entity is None:
        return None
    entity_id = str(frame.placement_options.get("ID") or "").strip()
    if not entity_id.isdigit():
        return None
    return entity, entity_id
