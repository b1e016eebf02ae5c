"""The chat blueprint and what its pages and API share: who is asking, the request's parameters
parsed or refused, and the one place where refusals become HTTP answers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, request
from flask_babel import gettext as _

from widget.services.conversations.chat_list.one_chat import ChatHidden
from widget.services.conversations.chat_list.scopes import CARD_KINDS, Card, employee_for
from widget.services.conversations.chat_panel import (
    ChatNotFound,
    ChatTaken,
    KeyReused,
    MessageNotFound,
    NotRetryable,
    NotSetUp,
    PanelEmployee,
    WriteForbidden,
)
from widget.web.context import get_db
from widget.web.errors import error_response
from widget.web.identity import Identity, current_identity

bp = Blueprint("chats", __name__)

POLL_MS = 2000
PAGE_SIZE = 50
MAX_PAGE = 100
# When a chat is opened, its responsible is re-read from the CRM if our copy is older than this.
RESPONSIBLE_MAX_AGE = timedelta(minutes=2)
DIGITS = re.compile(r"^[0-9]{1,20}$")
_CURSOR = re.compile(r"^([0-9]{1,20})\.([0-9]{1,10})$")
MAX_CHAT_ID = 2**31 - 1  # chats.id is a 32-bit integer on PostgreSQL
MAX_MESSAGE_ID = 2**63 - 1
KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,80}$")


# --- who is asking ------------------------------------------------------------------------------------


def identity() -> Identity:
    ident = current_identity()
    assert ident is not None  # require_identity ran
    return ident


def me() -> tuple[Identity, PanelEmployee | None]:
    ident = identity()
    return ident, employee_for(get_db(), ident.account_id, ident.crm_user_id)


class BadRequest(Exception):
    """A request the panel's script never sends: 400 with what is wrong with it."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems


# --- errors: every route of the blueprint answers them the same way --------------------------------------


@bp.errorhandler(BadRequest)
def bad_request(exc: BadRequest) -> Any:
    return error_response(400, exc.message, problems=exc.problems)


@bp.errorhandler(ChatNotFound)
def _chat_not_found(exc: ChatNotFound) -> Any:
    return error_response(404, _("This chat does not exist."))


@bp.errorhandler(ChatHidden)
def _chat_hidden(exc: ChatHidden) -> Any:
    if exc.taken_by:
        return error_response(
            403, _("This chat was already taken by %(name)s.", name=exc.taken_by), taken_by=exc.taken_by
        )
    return error_response(403, _("You cannot see this chat: it belongs to a client of someone else."))


@bp.errorhandler(ChatTaken)
def _chat_taken(exc: ChatTaken) -> Any:
    return error_response(
        409,
        _("This chat was already taken by %(name)s. Your reply was not sent.", name=exc.taken_by),
        taken_by=exc.taken_by,
    )


@bp.errorhandler(WriteForbidden)
def _write_forbidden(exc: WriteForbidden) -> Any:
    if exc.on_offer:
        return error_response(
            403, _("Answer this new client to take it; only a head can mark it as not needing a reply.")
        )
    return error_response(403, _("Your role on this channel does not allow answering this chat."))


@bp.errorhandler(KeyReused)
def _key_reused(exc: KeyReused) -> Any:
    return error_response(422, _("This idempotency key was already used."))


@bp.errorhandler(NotSetUp)
def _not_set_up(exc: NotSetUp) -> Any:
    return error_response(403, _("You are not set up in the integration yet. Ask your CRM administrator."))


@bp.errorhandler(MessageNotFound)
def _message_not_found(exc: MessageNotFound) -> Any:
    return error_response(404, _("This message does not exist."))


@bp.errorhandler(NotRetryable)
def _not_retryable(exc: NotRetryable) -> Any:
    return error_response(409, _("Only a message that was not delivered can be sent again."))


# --- the request's parameters, parsed or refused --------------------------------------------------------


def card_in_args() -> Card | None:
    """The CRM card from ``entity_type`` / ``entity_id`` (both or neither)."""
    kind = request.args.get("entity_type")
    crm_id = request.args.get("entity_id")
    if kind is None and crm_id is None:
        return None
    problems = []
    if kind not in CARD_KINDS:
        problems.append("entity_type: must be one of " + ", ".join(CARD_KINDS))
    if crm_id is None or not DIGITS.match(crm_id):
        problems.append("entity_id: required with entity_type, the CRM id (digits)")
    if problems:
        raise BadRequest(_("This CRM card cannot be shown."), problems)
    assert kind is not None and crm_id is not None
    return Card(kind, crm_id)


def page_limit(default: int = PAGE_SIZE) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(_("The request is malformed."), [f"limit: a whole number from 1 to {MAX_PAGE}"])
    return int(raw)


def cursor(value: datetime, chat_id: int) -> str:
    return f"{int(value.timestamp() * 1_000_000)}.{chat_id}"


def before_in_args() -> tuple[datetime, int] | None:
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


def json_body() -> dict[str, Any]:
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nesting past the parser's limit: as malformed as any bad JSON
            data = None
        if not isinstance(data, dict):
            raise BadRequest(_("The request is malformed."), ["the body must be a JSON object"])
        return data
    return {k: v for k, v in request.form.items() if k not in ("st", "csrf_token")}
