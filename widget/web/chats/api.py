"""The chat panel's JSON API (``widget/openapi.yaml``): the list, one chat, its messages, a reply,
"No reply needed" and "Retry"."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask_babel import gettext as _

from widget.extensions import app_services
from widget.services.conversations import chat_panel, replies
from widget.services.conversations.chat_list.one_chat import messages_of
from widget.services.conversations.chat_panel import (
    ChatNotFound,
    MessageNotFound,
)
from widget.services.outbox import clock
from widget.services.unit_of_work import database
from widget.web.chat_json import chat_json, message_json
from widget.web.chats.blueprint import (
    DIGITS,
    KEY,
    MAX_CHAT_ID,
    MAX_MESSAGE_ID,
    RESPONSIBLE_MAX_AGE,
    BadRequest,
    before_in_args,
    bp,
    card_in_args,
    json_body,
    me,
    page_limit,
)
from widget.web.chats.listing import conditional, detail_json, list_answer, not_modified
from widget.web.context import get_db
from widget.web.errors import unsendable_text
from widget.web.identity import require_identity


@bp.get("/api/chats")
@require_identity
def api_list() -> Any:
    card = card_in_args()
    limit, before = page_limit(), before_in_args()
    show = request.args.get("filter", "all")
    if show not in ("all", "unanswered"):
        raise BadRequest(_("The request is malformed."), ["filter: all or unanswered"])
    # An empty ETag (``W/""``) parses as None: it names no list of ours.
    known = {tag for tag in request.if_none_match.as_set(include_weak=True) if tag}
    answer = list_answer(card, limit, before, show == "unanswered", known)
    if answer.payload is None:
        return not_modified(answer.etag)
    response = Response(answer.body, mimetype="application/json")
    response.set_etag(answer.etag)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/chats/<int:chat_id>")
@require_identity
def api_chat(chat_id: int) -> Any:
    if chat_id > MAX_CHAT_ID:
        raise ChatNotFound(chat_id)
    ident, employee = me()
    limit = page_limit()
    chat_panel.open_chat(get_db(), ident.account_id, employee, chat_id)
    if request.args.get("refresh") == "1":
        chat_panel.refresh_responsible(
            database(), app_services(), ident.account_id, chat_id, RESPONSIBLE_MAX_AGE, reread=get_db()
        )
    return conditional(detail_json(chat_id, limit))


@bp.get("/api/chats/<int:chat_id>/messages")
@require_identity
def api_messages(chat_id: int) -> Any:
    if chat_id > MAX_CHAT_ID:
        raise ChatNotFound(chat_id)
    ident, employee = me()
    session = get_db()
    limit = page_limit()
    raw = request.args.get("before")
    if raw is not None and (not DIGITS.match(raw) or int(raw) > MAX_MESSAGE_ID):
        raise BadRequest(_("The request is malformed."), ["before: a message id (older_cursor)"])
    chat_panel.open_chat(session, ident.account_id, employee, chat_id)
    messages, has_older = messages_of(session, chat_id, limit=limit, before_id=int(raw) if raw else None)
    return jsonify(
        messages=[message_json(m, employee) for m in messages],
        older_cursor=messages[0].id if has_older and messages else None,
    )


@bp.post("/api/chats/<int:chat_id>/messages")
@require_identity
def api_send(chat_id: int) -> Any:
    if chat_id > MAX_CHAT_ID:
        raise ChatNotFound(chat_id)
    ident, employee = me()
    body = json_body()
    text_raw = body.get("text")
    key = body.get("idempotency_key")
    expect_offer = body.get("expect_offer", False)
    problems = []
    if not isinstance(text_raw, str):
        problems.append("text: required, a string")
    if key is not None and (not isinstance(key, str) or not KEY.match(key)):
        problems.append("idempotency_key: 8 to 80 letters, digits or _.:-")
    if isinstance(expect_offer, str):
        expect_offer = expect_offer.lower() in ("1", "true", "on", "yes")
    if not isinstance(expect_offer, bool):
        problems.append("expect_offer: true or false")
    if problems:
        raise BadRequest(_("The request is malformed."), problems)
    assert isinstance(text_raw, str)
    text = replies.clean_text(text_raw)
    if text is None:
        return unsendable_text(text_raw)
    sent = chat_panel.send(
        database(),
        app_services().jobs,
        get_db(),
        ident.account_id,
        employee,
        chat_id,
        text,
        idempotency_key=key if isinstance(key, str) else None,
        expect_offer=bool(expect_offer),
        now=clock(app_services()),
    )
    body = {
        "message": message_json(sent.message, employee),
        "chat": chat_json(sent.chat, employee) if sent.chat is not None else None,
        "duplicate": sent.duplicate,
    }
    return jsonify(body), 200 if sent.duplicate else 201


@bp.post("/api/chats/<int:chat_id>/no-reply")
@require_identity
def api_no_reply(chat_id: int) -> Any:
    if chat_id > MAX_CHAT_ID:
        raise ChatNotFound(chat_id)
    ident, employee = me()
    row = chat_panel.mark_no_reply(database(), get_db(), ident.account_id, employee, chat_id, now=clock(app_services()))
    return jsonify(chat=chat_json(row, employee))


@bp.post("/api/messages/<int:message_id>/retry")
@require_identity
def api_retry(message_id: int) -> Any:
    if message_id > MAX_MESSAGE_ID:
        raise MessageNotFound(message_id)
    ident, employee = me()
    found = chat_panel.retry(database(), app_services().jobs, get_db(), ident.account_id, employee, message_id)
    return jsonify(message=message_json(found, employee))
