"""The chat panel inside the CRM iframe, and its JSON API.

Pages: ``/app/chats`` (global: the left-menu page in both CRMs) and the same page on one CRM card
(``entity_type`` / ``entity_id``: Kommo's lead card panel, Bitrix24's deal / contact / lead tabs);
``/app/chats/<id>`` opens one chat. The page is a shell: ``static/chats.js`` reads the first data
embedded in it and then talks to ``/api/chats…`` (session token in ``X-Session-Token``, CSRF token
in ``X-CSRFToken``, no cookies), polling every two seconds with ``If-None-Match``.

Every rule is the server's, on every call: the list and the counters come from the visibility
rules, a chat is opened only if the employee may see it, and replies / "No reply needed" go
through ``widget.services.conversations.replies``, which checks the right to write under the chat's row lock.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.http import generate_etag

from widget.crm.errors import CrmError
from widget.db import db
from widget.extensions import app_services
from widget.models import Employee
from widget.models.trial_messages import TEST_MESSAGE_PENDING, TEST_MESSAGE_SENT
from widget.services.conversations import replies
from widget.services.conversations.access import panel_access
from widget.services.conversations.chat_list import (
    CARD_KINDS,
    Card,
    ChatHidden,
    chat_view,
    employee_for,
    list_page,
    messages_of,
    one_message,
    totals,
    viewer_of,
    visible_chat,
)
from widget.services.conversations.list_stamps import chat_list_stamp
from widget.services.outbox import clock
from widget.services.settings.trial_message import TEST_CLIENT_NAME, notice_for, nudge_test_message
from widget.web.chat_json import access_json, chat_json, js_strings, message_json
from widget.web.context import get_db
from widget.web.errors import error_response, unsendable_text
from widget.web.identity import Identity, current_identity, require_identity
from widget.web.pages import surl

log = logging.getLogger(__name__)

bp = Blueprint("chats", __name__)

POLL_MS = 2000
PAGE_SIZE = 50
MAX_PAGE = 100
# When a chat is opened, its responsible is re-read from the CRM if our copy is older than this.
RESPONSIBLE_MAX_AGE = timedelta(minutes=2)
_DIGITS = re.compile(r"^[0-9]{1,20}$")
_CURSOR = re.compile(r"^([0-9]{1,20})\.([0-9]{1,10})$")
MAX_CHAT_ID = 2**31 - 1  # chats.id is a 32-bit integer on PostgreSQL
MAX_MESSAGE_ID = 2**63 - 1
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,80}$")


# --- request helpers ----------------------------------------------------------------------------


def _identity() -> Identity:
    ident = current_identity()
    assert ident is not None  # require_identity ran
    return ident


def _me() -> tuple[Identity, Employee | None]:
    ident = _identity()
    return ident, employee_for(get_db(), ident.account_id, ident.crm_user_id)


class BadRequest(Exception):
    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems


def _card() -> Card | None:
    """The CRM card from ``entity_type`` / ``entity_id`` (both or neither)."""
    kind = request.args.get("entity_type")
    crm_id = request.args.get("entity_id")
    if kind is None and crm_id is None:
        return None
    problems = []
    if kind not in CARD_KINDS:
        problems.append("entity_type: must be one of " + ", ".join(CARD_KINDS))
    if crm_id is None or not _DIGITS.match(crm_id):
        problems.append("entity_id: required with entity_type, the CRM id (digits)")
    if problems:
        raise BadRequest(_("This CRM card cannot be shown."), problems)
    assert kind is not None and crm_id is not None
    return Card(kind, crm_id)


def _limit(default: int = PAGE_SIZE) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(_("The request is malformed."), [f"limit: a whole number from 1 to {MAX_PAGE}"])
    return int(raw)


def _cursor(value: datetime, chat_id: int) -> str:
    return f"{int(value.timestamp() * 1_000_000)}.{chat_id}"


def _before() -> tuple[datetime, int] | None:
    raw = request.args.get("before")
    if raw is None:
        return None
    match = _CURSOR.match(raw)
    if match is None:
        raise BadRequest(_("The request is malformed."), ["before: the next_cursor of a previous page"])
    micros, chat_id = int(match.group(1)), int(match.group(2))
    if chat_id > MAX_CHAT_ID:
        raise BadRequest(_("The request is malformed."), ["before: the next_cursor of a previous page"])
    try:
        when = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
    except (OverflowError, ValueError, OSError):
        raise BadRequest(_("The request is malformed."), ["before: the next_cursor of a previous page"]) from None
    return when, chat_id


def _bad(exc: BadRequest) -> Any:
    return error_response(400, exc.message, problems=exc.problems)


def _conditional(payload: dict[str, Any]) -> Response:
    """JSON with an ETag: the poll sends it back in If-None-Match and gets a bodiless 304 when
    nothing it shows has changed. Never cached by the browser (the token is in a header)."""
    response = jsonify(payload)
    response.headers["Cache-Control"] = "no-store"
    response.add_etag()
    response.make_conditional(request)
    return response


def _etag(payload: dict[str, Any]) -> str:
    """The ETag ``_conditional`` gives the same payload."""
    return f'"{generate_etag(jsonify(payload).get_data())}"'


def _body() -> dict[str, Any]:
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nesting past the parser's limit: as malformed as any bad JSON
            data = None
        if not isinstance(data, dict):
            raise BadRequest(_("The request is malformed."), ["the body must be a JSON object"])
        return data
    return {k: v for k, v in request.form.items() if k not in ("st", "csrf_token")}


def list_json(card: Card | None, limit: int, before: tuple[datetime, int] | None, unanswered: bool) -> dict[str, Any]:
    ident, employee = _me()
    session = get_db()
    page = list_page(
        session, ident.account_id, employee, card=card, limit=limit, before=before, unanswered_only=unanswered
    )
    counts = totals(session, ident.account_id, employee, card, viewer=page.viewer)
    return {
        "chats": [chat_json(r, employee) for r in page.rows],
        "next_cursor": _cursor(*page.next_before) if page.next_before else None,
        "totals": {"red": counts.red, "grey": counts.grey, "capped": counts.capped},
        "me": {"employee_id": employee.id if employee else None, "name": employee.name if employee else ident.name},
        "access": access_json(panel_access(session, ident.account_id, page.viewer), ident.is_admin),
    }


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
    ident = _identity()
    parts = (
        LIST_FORMAT,
        ident.account_id,
        ident.crm_user_id,
        ident.name,
        str(get_locale()),
        card.kind if card else "",
        card.crm_id if card else "",
        limit,
        _cursor(*before) if before else "",
        unanswered,
    )
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).hexdigest()


def _not_modified(tag: str) -> Response:
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
    ident = _identity()
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
    ident, employee = _me()
    view = chat_view(get_db(), ident.account_id, employee, chat_id, limit=limit)
    return {
        "chat": chat_json(view.row, employee),
        "messages": [message_json(m, employee) for m in view.messages],
        "older_cursor": view.messages[0].id if view.has_older and view.messages else None,
    }


def _hidden(exc: ChatHidden) -> Any:
    if exc.taken_by:
        return error_response(
            403,
            _("This chat was already taken by %(name)s.", name=exc.taken_by),
            taken_by=exc.taken_by,
        )
    return error_response(403, _("You cannot see this chat: it belongs to a client of someone else."))


def _not_found() -> Any:
    return error_response(404, _("This chat does not exist."))


def _refresh_responsible(account_id: int, chat_id: int) -> None:
    """Ask the CRM who is responsible now (the CRM is the source of truth), when the CRM adapters
    offer it; a CRM hiccup never stops the chat from opening."""
    try:
        from widget.services.conversations import responsibility  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return
    refresh = getattr(responsibility, "refresh_chat_responsible", None)
    if refresh is None:
        return
    try:
        refresh(db, app_services(), account_id, chat_id, RESPONSIBLE_MAX_AGE)
    except CrmError as exc:
        log.info("chat %s: responsible not refreshed from the CRM: %s", chat_id, exc)


# --- pages --------------------------------------------------------------------------------------------


def render_panel(chat_id: int | None = None) -> Any:
    ident, employee = _me()
    session = get_db()
    try:
        card = _card()
    except BadRequest as exc:
        return _bad(exc)
    viewer = viewer_of(session, ident.account_id, employee)
    notice = notice_for(session, ident.account_id, viewer) if ident.is_admin else None
    if notice is not None and notice.status == TEST_MESSAGE_PENDING:
        # "Go to chats" lands here: make sure the test client is writing (the job is idempotent).
        nudge_test_message(app_services().jobs, ident.account_id)
        session.rollback()  # a fresh snapshot: the change was committed in its own transaction
        notice = notice_for(session, ident.account_id, viewer)
    if notice is not None and notice.status == TEST_MESSAGE_SENT and notice.viewer_sees_channel:
        notice = None  # the chat is in the list: nothing more to say
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
            _refresh_responsible(ident.account_id, chat_id)
            initial["chat"] = detail_json(chat_id)
            initial["chat_etag"] = _etag(initial["chat"])
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


# --- JSON API -----------------------------------------------------------------------------------------


@bp.get("/api/chats")
@require_identity
def api_list() -> Any:
    try:
        card = _card()
        limit, before = _limit(), _before()
        show = request.args.get("filter", "all")
        if show not in ("all", "unanswered"):
            raise BadRequest(_("The request is malformed."), ["filter: all or unanswered"])
    except BadRequest as exc:
        return _bad(exc)
    # An empty ETag (``W/""``) parses as None: it names no list of ours.
    known = {tag for tag in request.if_none_match.as_set(include_weak=True) if tag}
    answer = list_answer(card, limit, before, show == "unanswered", known)
    if answer.payload is None:
        return _not_modified(answer.etag)
    response = Response(answer.body, mimetype="application/json")
    response.set_etag(answer.etag)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/chats/<int:chat_id>")
@require_identity
def api_chat(chat_id: int) -> Any:
    if chat_id > MAX_CHAT_ID:
        return _not_found()
    ident, employee = _me()
    try:
        limit = _limit()
        visible_chat(get_db(), ident.account_id, employee, chat_id)
        if request.args.get("refresh") == "1":
            _refresh_responsible(ident.account_id, chat_id)
            get_db().rollback()  # a fresh snapshot: the change was committed in its own transaction
        return _conditional(detail_json(chat_id, limit))
    except BadRequest as exc:
        return _bad(exc)
    except LookupError:
        return _not_found()
    except ChatHidden as exc:
        return _hidden(exc)


@bp.get("/api/chats/<int:chat_id>/messages")
@require_identity
def api_messages(chat_id: int) -> Any:
    if chat_id > MAX_CHAT_ID:
        return _not_found()
    ident, employee = _me()
    session = get_db()
    try:
        limit = _limit()
        raw = request.args.get("before")
        if raw is not None and (not _DIGITS.match(raw) or int(raw) > MAX_MESSAGE_ID):
            raise BadRequest(_("The request is malformed."), ["before: a message id (older_cursor)"])
        visible_chat(session, ident.account_id, employee, chat_id)
    except BadRequest as exc:
        return _bad(exc)
    except LookupError:
        return _not_found()
    except ChatHidden as exc:
        return _hidden(exc)
    messages, has_older = messages_of(session, chat_id, limit=limit, before_id=int(raw) if raw else None)
    return jsonify(
        messages=[message_json(m, employee) for m in messages],
        older_cursor=messages[0].id if has_older and messages else None,
    )


@bp.post("/api/chats/<int:chat_id>/messages")
@require_identity
def api_send(chat_id: int) -> Any:
    if chat_id > MAX_CHAT_ID:
        return _not_found()
    ident, employee = _me()
    try:
        body = _body()
        text_raw = body.get("text")
        key = body.get("idempotency_key")
        expect_offer = body.get("expect_offer", False)
        problems = []
        if not isinstance(text_raw, str):
            problems.append("text: required, a string")
        if key is not None and (not isinstance(key, str) or not _KEY.match(key)):
            problems.append("idempotency_key: 8 to 80 letters, digits or _.:-")
        if isinstance(expect_offer, str):
            expect_offer = expect_offer.lower() in ("1", "true", "on", "yes")
        if not isinstance(expect_offer, bool):
            problems.append("expect_offer: true or false")
        if problems:
            raise BadRequest(_("The request is malformed."), problems)
    except BadRequest as exc:
        return _bad(exc)
    assert isinstance(text_raw, str)
    text = replies.clean_text(text_raw)
    if text is None:
        return unsendable_text(text_raw)
    if employee is None:
        return _not_set_up(chat_id)
    outcome = replies.send_reply(
        db,
        app_services().jobs,
        ident.account_id,
        chat_id,
        employee.id,
        text,
        idempotency_key=key if isinstance(key, str) else None,
        expect_offer=bool(expect_offer),
        now=clock(app_services()),
    )
    return _reply_answer(outcome, chat_id, employee)


def _reply_answer(outcome: replies.ReplyOutcome, chat_id: int, employee: Employee) -> Any:
    if outcome.status == replies.NOT_FOUND:
        return _not_found()
    if outcome.status == replies.HIDDEN:
        return _hidden(ChatHidden())
    if outcome.status == replies.TAKEN:
        return error_response(
            409,
            _("This chat was already taken by %(name)s. Your reply was not sent.", name=outcome.taken_by),
            taken_by=outcome.taken_by,
        )
    if outcome.status == replies.FORBIDDEN:
        if outcome.detail == replies.OFFER_DISMISS_TEXT:
            return error_response(
                403, _("Answer this new client to take it; only a head can mark it as not needing a reply.")
            )
        return error_response(403, _("Your role on this channel does not allow answering this chat."))
    if outcome.status == replies.INVALID:
        return error_response(422, _("This idempotency key was already used."))
    session = get_db()
    session.rollback()  # a fresh snapshot: the change was committed in its own transaction
    account_id = _identity().account_id
    assert outcome.message_id is not None
    sent = one_message(session, account_id, outcome.message_id)
    assert sent is not None
    try:
        chat: dict[str, Any] | None = chat_json(
            chat_view(session, account_id, employee, chat_id, limit=1).row, employee
        )
    except (LookupError, ChatHidden):
        chat = None
    body = {"message": message_json(sent, employee), "chat": chat, "duplicate": outcome.status == replies.DUPLICATE}
    return jsonify(body), 200 if outcome.status == replies.DUPLICATE else 201


def _not_set_up(chat_id: int) -> Any:
    from widget.models.conversations import Chat

    found = get_db().get(Chat, chat_id)
    if found is None or found.account_id != _identity().account_id:
        return _not_found()
    return error_response(403, _("You are not set up in the integration yet. Ask your CRM administrator."))


@bp.post("/api/chats/<int:chat_id>/no-reply")
@require_identity
def api_no_reply(chat_id: int) -> Any:
    if chat_id > MAX_CHAT_ID:
        return _not_found()
    ident, employee = _me()
    if employee is None:
        return _not_set_up(chat_id)
    outcome = replies.mark_no_reply(db, ident.account_id, chat_id, employee.id, now=clock(app_services()))
    if outcome.status != replies.DONE:
        return _reply_answer(outcome, chat_id, employee)
    get_db().rollback()  # a fresh snapshot: the change was committed in its own transaction
    view = chat_view(get_db(), ident.account_id, employee, chat_id, limit=1)
    return jsonify(chat=chat_json(view.row, employee))


@bp.post("/api/messages/<int:message_id>/retry")
@require_identity
def api_retry(message_id: int) -> Any:
    if message_id > MAX_MESSAGE_ID:
        return error_response(404, _("This message does not exist."))
    ident, employee = _me()
    if employee is None:
        return error_response(404, _("This message does not exist."))
    outcome = replies.retry_delivery(db, app_services().jobs, ident.account_id, message_id, employee.id)
    if outcome.status == replies.NOT_FOUND:
        return error_response(404, _("This message does not exist."))
    if outcome.status == replies.FORBIDDEN:
        return error_response(403, _("Your role on this channel does not allow answering this chat."))
    if outcome.status == replies.INVALID:
        return error_response(409, _("Only a message that was not delivered can be sent again."))
    get_db().rollback()  # a fresh snapshot: the change was committed in its own transaction
    found = one_message(get_db(), ident.account_id, message_id)
    assert found is not None
    return jsonify(message=message_json(found, employee))
