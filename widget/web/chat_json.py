"""What the chat panel's JSON says (``widget/openapi.yaml``: ChatSummary, Message, WriteRight) and
the texts its script shows, translated on the server (``static/chats.js`` has no strings of its own).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_babel import gettext as _

from widget.domain.roles import QC
from widget.domain.visibility import WriteRight
from widget.services.conversations.access import PanelAccess
from widget.services.conversations.chat_list.one_chat import MessageRow
from widget.services.conversations.chat_list.rows import ChatRow
from widget.services.conversations.chat_panel import PanelEmployee


def iso_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _watch_reason(row: ChatRow) -> str:
    """Why quality control cannot answer, in words that never suggest they could have: who is
    answering this client, and that their role reads but does not write."""
    if row.offered:
        return _(
            "A new client: the first sales rep or head to answer takes this chat. Quality control can read "
            "this chat but not write."
        )
    if row.viewer_is_responsible:
        return _(
            "You are this client's responsible in the CRM, but your role on this channel is Quality control: "
            "you can read this chat but not write. A head can answer it."
        )
    # Whoever took the new client, while the CRM still has them as its responsible.
    if row.claimed_by_name and row.responsible_name in ("", row.claimed_by_name):
        return _(
            "%(name)s is answering this client. Quality control can read this chat but not write.",
            name=row.claimed_by_name,
        )
    if row.responsible_name:
        return _(
            "%(name)s is responsible for this client. Quality control can read this chat but not write.",
            name=row.responsible_name,
        )
    return _("Quality control can read this chat but not write.")


def _write_json(row: ChatRow, employee: PanelEmployee | None) -> dict[str, Any]:
    if row.write is not WriteRight.FORBIDDEN:
        return {"allowed": True, "claims": row.write is WriteRight.CLAIMS, "no_reply": row.may_dismiss, "reason": ""}
    if employee is not None and row.viewer_role == QC:
        reason = _watch_reason(row)
    elif row.claimed_by_name and not row.offered:
        reason = _("This chat was taken by %(name)s. Only they and the heads can answer it.", name=row.claimed_by_name)
    elif employee is None:
        reason = _("You are not set up in the integration yet. Ask your CRM administrator.")
    else:
        reason = _("Your role on this channel lets you read this chat, not answer it.")
    return {"allowed": False, "claims": False, "no_reply": False, "reason": reason}


def chat_json(row: ChatRow, employee: PanelEmployee | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "phone": row.phone,
        "channel": {"id": row.channel_id, "name": row.channel_name, "transport": row.transport},
        "preview": row.preview,
        "last_message_at": iso_time(row.last_message_at),
        "last_direction": row.last_direction,
        "unanswered": row.unanswered,
        "unanswered_count": row.unanswered_count,
        "counter": row.counter.value if row.counter is not None else None,
        "offered": row.offered,
        "responsible": row.responsible_name or None,
        "taken_by": row.claimed_by_name or None,
        "crm": {"contact_id": row.crm_contact_id, "entity_kind": row.crm_entity_kind, "entity_id": row.crm_entity_id},
        "write": _write_json(row, employee),
    }


# Administrators named in the "no role" message before "and N more".
ADMINS_NAMED = 5


def access_json(access: PanelAccess, is_admin: bool) -> dict[str, Any]:
    """Whether the employee has a role that shows chats, and if not, what the empty panel says
    instead of "no chats yet": that they have no role, and who can give them one."""
    if access.has_role:
        return {"has_role": True, "message": None}
    if is_admin:
        message = _(
            "You have no role on any channel, so no chats are shown to you. As an administrator, you can "
            "give yourself one in the CRM integration settings."
        )
    elif access.admins:
        names = ", ".join(access.admins[:ADMINS_NAMED])
        if len(access.admins) > ADMINS_NAMED:
            names += " " + _("and %(num)s more", num=len(access.admins) - ADMINS_NAMED)
        message = _(
            "You have no role on any channel, so no chats are shown to you. Ask an administrator of your CRM "
            "to give you one: %(names)s.",
            names=names,
        )
    else:
        message = _(
            "You have no role on any channel, so no chats are shown to you. Ask your CRM administrator to give you one."
        )
    return {"has_role": False, "message": message}


_STATUS = {"queued": "sending", "sent": "sent", "failed": "failed"}


def message_json(m: MessageRow, employee: PanelEmployee | None) -> dict[str, Any]:
    outgoing = m.direction == "out"
    return {
        "id": m.id,
        "direction": m.direction,
        "text": m.text,
        "sent_at": iso_time(m.sent_at),
        "author": (m.author_name or None) if outgoing else (m.sender_name or None),
        "mine": outgoing and employee is not None and m.author_employee_id == employee.id,
        "status": _STATUS.get(m.delivery) if outgoing else None,
        "error": _translate_reason(m.error) if outgoing and m.error else None,
    }


def _translate_reason(reason: str) -> str:
    # Transport reasons are written in English where they happen; the common ones read better in
    # the employee's language, the gateway's own words (after the colon) are passed on as they are.
    known = {
        "The messaging gateway did not answer in time.": _("The messaging gateway did not answer in time."),
        "The messaging gateway cannot be reached.": _("The messaging gateway cannot be reached."),
        "The messaging gateway asked us to slow down.": _("The messaging gateway asked us to slow down."),
        "The sandbox messaging gateway cannot be reached.": _("The sandbox messaging gateway cannot be reached."),
        "No messaging gateway is configured (GATEWAY_URL), so replies cannot be delivered.": _(
            "No messaging gateway is configured, so replies cannot be delivered."
        ),
    }
    return known.get(reason, reason)


def js_strings() -> dict[str, str]:
    return {
        "chats": _("Chats"),
        "empty": _("No chats yet. They appear here as soon as clients write."),
        "empty_unanswered": _("No unanswered chats. Well done!"),
        "empty_card": _("No chats with this client yet."),
        "choose": _("Choose a chat on the left."),
        "offer": _("New client"),
        "offer_banner": _("New client: the first to answer takes this chat, and becomes responsible in the CRM."),
        "offer_banner_watch": _("New client: waiting for the first answer from a sales rep or head."),
        "responsible": _("Responsible: %(name)s"),
        "you": _("you"),
        "send": _("Send"),
        "sending": _("Sending…"),
        "sent": _("Sent"),
        "failed": _("Not delivered"),
        "retry": _("Retry"),
        "retrying": _("Retrying: %(reason)s"),
        "no_reply": _("No reply needed"),
        "no_reply_done": _("Marked as not needing a reply."),
        "placeholder": _("Write a reply…"),
        "older": _("Show older messages"),
        "more_chats": _("Show older chats"),
        "back": _("Back to chats"),
        "all": _("All"),
        "unanswered": _("Unanswered"),
        "red_title": _("Unanswered chats you should answer"),
        "grey_title": _("Unanswered chats of your colleagues"),
        "offline": _("We could not reach our server. We keep trying…"),
        "expired": _("Your session has expired. Please reopen the integration from your CRM."),
        "gone": _("This chat is no longer available to you."),
        "client": _("Client"),
        "today": _("Today"),
        "yesterday": _("Yesterday"),
        "empty_text": _("Write something first."),
        "too_long": _("This message is too long: %(max)s characters at most."),
        "unsent_title": _("Your reply to %(name)s was not sent. Copy it from here:"),
        "copied": _("Copied."),
        "copy_by_hand": _("Select the text and copy it."),
    }
