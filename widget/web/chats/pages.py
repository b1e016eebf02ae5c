"""The chat panel's pages: ``/app/chats`` (global, or on one CRM card) and ``/app/chats/<id>``."""

from __future__ import annotations

from typing import Any

from flask import Response, render_template, request, url_for
from flask_babel import gettext as _

from widget.extensions import app_services
from widget.services.conversations import chat_panel, replies
from widget.services.conversations.chat_list.one_chat import ChatHidden, visible_chat
from widget.services.conversations.chat_list.scopes import viewer_of
from widget.services.settings.trial_message import TEST_CLIENT_NAME
from widget.services.unit_of_work import database
from widget.web.chat_json import js_strings
from widget.web.chats.blueprint import (
    MAX_CHAT_ID,
    PAGE_SIZE,
    POLL_MS,
    RESPONSIBLE_MAX_AGE,
    BadRequest,
    bad_request,
    bp,
    card_in_args,
    me,
)
from widget.web.chats.listing import detail_json, etag_of, list_answer
from widget.web.context import get_db
from widget.web.identity import require_identity
from widget.web.urls import surl


def render_panel(chat_id: int | None = None) -> Any:
    ident, employee = me()
    session = get_db()
    try:
        card = card_in_args()
    except BadRequest as exc:  # caught here too: ``/app?view=chats`` (another blueprint) renders the panel
        return bad_request(exc)
    viewer = viewer_of(session, ident.account_id, employee)
    notice = chat_panel.panel_notice(app_services().jobs, session, ident.account_id, viewer) if ident.is_admin else None
    listing = list_answer(card, PAGE_SIZE, None, False, set())
    # The page carries the ETags its data would have from the API, so the first poll is a 304.
    initial: dict[str, Any] = {
        "list": listing.payload,
        "list_etag": f'"{listing.etag}"',
        "chat": None,
        "error": None,
    }
    if chat_id is not None:
        try:
            if not 0 < chat_id <= MAX_CHAT_ID:
                raise LookupError(chat_id)
            visible_chat(session, ident.account_id, employee, chat_id)
            chat_panel.refresh_responsible(database(), app_services(), ident.account_id, chat_id, RESPONSIBLE_MAX_AGE)
            initial["chat"] = detail_json(chat_id)
            initial["chat_etag"] = etag_of(initial["chat"])
        except LookupError:
            initial["error"] = _("This chat does not exist.")
        except ChatHidden as exc:
            initial["error"] = (
                _("This chat was already taken by %(name)s.", name=exc.taken_by)
                if exc.taken_by
                else _("You cannot see this chat: it belongs to a client of someone else.")
            )
    scope = {"entity_type": card.kind, "entity_id": card.crm_id} if card else None
    page_data = {
        "scope": scope,
        "poll_ms": POLL_MS,
        "max_text": replies.MAX_TEXT,
        "test_client": TEST_CLIENT_NAME,
        "urls": {
            "list": url_for("chats.api_list"),
            "chat": url_for("chats.api_chat", chat_id=0).replace("/0", "/__ID__"),
            "messages": url_for("chats.api_messages", chat_id=0).replace("/0/", "/__ID__/"),
            "no_reply": url_for("chats.api_no_reply", chat_id=0).replace("/0/", "/__ID__/"),
            "retry": url_for("chats.api_retry", message_id=0).replace("/0/", "/__ID__/"),
            "page": surl("chats.panel", **(scope or {})),
        },
        "initial": initial,
        "i18n": js_strings(),
    }
    html = render_template(
        "chats/panel.html",
        page_data=page_data,
        card=card,
        employee=employee,
        notice=notice,
    )
    return Response(html, mimetype="text/html")


@bp.get("/app/chats")
@require_identity
def panel() -> Any:
    chat_id = request.args.get("chat", type=int)
    return render_panel(chat_id)


@bp.get("/app/chats/<int:chat_id>")
@require_identity
def panel_chat(chat_id: int) -> Any:
    return render_panel(chat_id)
