"""What the panel shows, as JSON: the chat list (with the ETag that makes the poll cheap) and one
chat with its messages. The page embeds the first of them; the API answers the poll with them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Response, jsonify, request
from flask_babel import get_locale
from werkzeug.http import generate_etag

from widget.services.conversations.access import panel_access
from widget.services.conversations.chat_list.counters import totals
from widget.services.conversations.chat_list.one_chat import chat_view
from widget.services.conversations.chat_list.page import list_page
from widget.services.conversations.chat_list.scopes import Card
from widget.services.conversations.list_stamps import chat_list_stamp
from widget.web.chat_json import access_json, chat_json, message_json
from widget.web.chats.blueprint import PAGE_SIZE, cursor, identity, me
from widget.web.context import get_db


def list_json(card: Card | None, limit: int, before: tuple[datetime, int] | None, unanswered: bool) -> dict[str, Any]:
    ident, employee = me()
    session = get_db()
    page = list_page(
        session, ident.account_id, employee, card=card, limit=limit, before=before, unanswered_only=unanswered
    )
    counts = totals(session, ident.account_id, employee, card, viewer=page.viewer)
    return {
        "chats": [chat_json(r, employee) for r in page.rows],
        "next_cursor": cursor(*page.next_before) if page.next_before else None,
        "totals": {"red": counts.red, "grey": counts.grey, "capped": counts.capped},
        "me": {"employee_id": employee.id if employee else None, "name": employee.name if employee else ident.name},
        "access": access_json(panel_access(session, ident.account_id, page.viewer), ident.is_admin),
    }


def conditional(payload: dict[str, Any]) -> Response:
    """JSON with an ETag: the poll sends it back in If-None-Match and gets a bodiless 304 when
    nothing it shows has changed. Never cached by the browser (the token is in a header)."""
    response = jsonify(payload)
    response.headers["Cache-Control"] = "no-store"
    response.add_etag()
    response.make_conditional(request)
    return response


def etag_of(payload: dict[str, Any]) -> str:
    """The ETag ``conditional`` gives the same payload."""
    return f'"{generate_etag(jsonify(payload).get_data())}"'


# --- the list's ETag ------------------------------------------------------------------------------
#
# ``<stamp>-<request>-<body>``: the account's chat-list stamp read *before* the list (see
# ``widget.services.conversations.list_stamps``), a digest of everything else the answer depends on (who asks, in
# which language, which page), and the body's own digest. While the stamp and the request part are
# the ones a poll sends back, nothing the list shows can have changed: 304 without the list query.
# After a change the list is read again; an answer that came out the same is still a 304 (with
# the new ETag, so the next poll is cheap again).

LIST_FORMAT = "1"  # raise when the list's JSON changes: ETags of the old format then never match


def _list_key(card: Card | None, limit: int, before: tuple[datetime, int] | None, unanswered: bool) -> str:
    ident = identity()
    parts = (
        LIST_FORMAT,
        ident.account_id,
        ident.crm_user_id,
        ident.name,
        str(get_locale()),
        card.kind if card else "",
        card.crm_id if card else "",
        limit,
        cursor(*before) if before else "",
        unanswered,
    )
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).hexdigest()


def not_modified(tag: str) -> Response:
    response = Response(status=304)
    response.set_etag(tag)
    response.headers["Cache-Control"] = "no-store"
    return response


@dataclass(frozen=True)
class ListAnswer:
    payload: dict[str, Any] | None  # None: the poll already has this list
    body: bytes
    etag: str  # unquoted


def list_answer(
    card: Card | None, limit: int, before: tuple[datetime, int] | None, unanswered: bool, known: set[str]
) -> ListAnswer:
    """The list and its ETag, unless ``known`` (the poll's ETags) shows the caller has it."""
    ident = identity()
    stamp = chat_list_stamp(get_db(), ident.account_id)  # first: a write after this reloads next time
    key = _list_key(card, limit, before, unanswered)
    prefix = f"{stamp}-{key}-"
    for tag in known:
        if tag.startswith(prefix):
            return ListAnswer(None, b"", tag)
    payload = list_json(card, limit, before, unanswered)
    body = jsonify(payload).get_data()
    digest = generate_etag(body)
    if any(tag.split("-", 1)[-1] == f"{key}-{digest}" for tag in known):
        return ListAnswer(None, b"", prefix + digest)
    return ListAnswer(payload, body, prefix + digest)


def detail_json(chat_id: int, limit: int = PAGE_SIZE) -> dict[str, Any]:
    ident, employee = me()
    view = chat_view(get_db(), ident.account_id, employee, chat_id, limit=limit)
    return {
        "chat": chat_json(view.row, employee),
        "messages": [message_json(m, employee) for m in view.messages],
        "older_cursor": view.messages[0].id if view.has_older and view.messages else None,
    }
