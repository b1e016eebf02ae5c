"""Starting a conversation from a CRM card (the chat panel in card scope): what the employee may do
(``GET /api/chats/start/<entity_type>/<entity_id>``) and doing it (``POST`` to the same address). Kept apart from
``widget.web.chats`` so the two change independently; both go through the same rules and the same
reply path (``widget.services.conversations.outreach``).

The card named in the request is not trusted: the client, their numbers and their responsible are
read from this account's CRM on every call, so a forged id names either nothing (404) or a client
whose rights are checked like any other.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, jsonify, request
from flask_babel import gettext as _

from widget.crm.errors import CrmError
from widget.domain.outreach import PHONE, Action, Address, ChannelOption, Why
from widget.domain.ports import EntityRef
from widget.extensions import app_services
from widget.services.conversations import outreach, replies
from widget.services.conversations.chat_list.scopes import employee_for
from widget.services.conversations.chat_panel import NotSetUp, PanelEmployee
from widget.services.outbox import CrmPortMissing, clock
from widget.services.unit_of_work import database
from widget.web.context import get_db
from widget.web.errors import error_response, unsendable_text
from widget.web.identity import Identity, current_identity, require_identity

bp = Blueprint("chat_start", __name__)

# The card kinds each CRM shows our panel in (Kommo: lead and contact cards; Bitrix24: deal, lead
# and contact tabs).
CARD_KINDS = {"kommo": ("lead", "contact"), "bitrix24": ("deal", "lead", "contact")}
_DIGITS = re.compile(r"^[0-9]{1,20}$")
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,80}$")
MAX_CHANNEL_ID = 2**31 - 1


def _identity() -> Identity:
    ident = current_identity()
    assert ident is not None  # require_identity ran
    return ident


def _card(kind: str, crm_id: str, crm: str) -> EntityRef | None:
    """The card named in the address, if this CRM has cards of that kind at all (a Kommo account has
    no deal cards): anything else is a card the CRM does not have."""
    if kind not in CARD_KINDS.get(crm, ()) or not _DIGITS.match(crm_id):
        return None
    return EntityRef(kind, crm_id)


# --- wording ------------------------------------------------------------------------------------------


def why_text(why: Why | None, responsible: str) -> str:
    if why is Why.QC:
        return _("Your role on this channel is Quality control: you can read its chats but not write to clients.")
    if why is Why.NOT_RESPONSIBLE:
        if responsible:
            return _(
                "Only %(name)s, this client's responsible in the CRM, or a head can start a conversation with them.",
                name=responsible,
            )
        return _("Only this client's responsible in the CRM or a head can start a conversation with them.")
    if why is Why.BOT:
        return _("A Telegram bot cannot write first: the client has to write to the bot before it can answer them.")
    if why is Why.INSTAGRAM:
        return _("Instagram lets a business answer a client only after the client has written to it.")
    if why is Why.WABA:
        return _(
            "The WhatsApp Business API can start a conversation only with a template message approved by "
            "WhatsApp, which this integration does not send. Write from a WhatsApp channel, or wait for the "
            "client to write."
        )
    if why is Why.NO_ADDRESS:
        return _("The CRM has no phone number or messenger account of this client that this channel can write to.")
    if why is Why.HIDDEN:
        return _(
            "This client already has a chat on this channel that is not yours in our records yet. It moves to "
            "you as soon as your CRM's change reaches us; meanwhile a head can write in it."
        )
    return _("You cannot start a conversation on this channel.")


def _address_label(a: Address) -> str:
    if a.kind == PHONE:
        return a.value
    return _("%(messenger)s account %(id)s", messenger=a.kind.capitalize(), id=a.value)


def _option_json(o: ChannelOption, responsible: str) -> dict[str, Any]:
    return {
        "channel": {"id": o.channel.id, "name": o.channel.name, "transport": o.channel.transport},
        "action": o.action.value,
        "reason": why_text(o.why, responsible) if o.action is Action.NONE else "",
        "chat_id": o.chat_id,
        "addresses": [{"key": a.key, "label": _address_label(a)} for a in o.addresses],
    }


def _plan_json(start: outreach.CardStart) -> dict[str, Any]:
    plan = start.plan
    summary = ""
    if not plan.options:
        summary = _(
            "You have no role on any channel, so you cannot write to clients. Your CRM administrator can "
            "give you one in the integration's settings (CRM integration → Select roles)."
        )
    elif not plan.can_start:
        summary = _("You cannot start a conversation with this client:")
    return {
        "client": {"name": start.client.name, "responsible": start.responsible_name or None},
        "can_start": plan.can_start,
        "default_channel_id": plan.default_channel_id,
        "options": [_option_json(o, start.responsible_name) for o in plan.options],
        "summary": summary,
    }


def start_strings() -> dict[str, Any]:
    """What ``static/chat_start.js`` shows, in the employee's language (placeholders filled there)."""
    return {
        "loading": _("Reading this client from your CRM…"),
        "to": _("To: %(name)s"),
        "responsible": _("Responsible in the CRM: %(name)s"),
        "open_existing": _("%(channel)s — open the existing chat"),
        "existing": _("This client already has a chat on this channel. Open it to write there."),
        "empty_text": _("Write something first."),
        "sending": _("Sending…"),
        "failed": _("We could not reach our server. We keep trying…"),
        "transports": {
            "whatsapp": _("WhatsApp"),
            "waba": _("WABA"),
            "telegram": _("Telegram"),
            "instagram": _("Instagram"),
        },
    }


@bp.app_context_processor
def _templates() -> dict[str, Any]:
    return {"chat_start_strings": start_strings}


# --- helpers ------------------------------------------------------------------------------------------


def _me() -> tuple[Identity, PanelEmployee | None]:
    ident = _identity()
    return ident, employee_for(get_db(), ident.account_id, ident.crm_user_id)


# --- errors: both routes answer them the same way ---------------------------------------------------


@bp.errorhandler(CrmError)
@bp.errorhandler(CrmPortMissing)
def _crm_failed(exc: CrmError | CrmPortMissing) -> Any:
    from widget.web.settings.wording import crm_error_message

    message = crm_error_message(exc) if isinstance(exc, CrmError) else _("The CRM cannot be reached right now.")
    return error_response(503, _("We could not read this client from your CRM: %(reason)s", reason=message))


@bp.errorhandler(NotSetUp)
def _not_set_up(exc: NotSetUp) -> Any:
    return error_response(403, _("You are not set up in the integration yet. Ask your CRM administrator."))


@bp.errorhandler(outreach.CardNotFound)
def _card_not_found(exc: outreach.CardNotFound) -> Any:
    return error_response(404, _("Your CRM has no such card. It may have been deleted."))


# --- routes -------------------------------------------------------------------------------------------


def _load(entity_type: str, entity_id: str) -> tuple[PanelEmployee, outreach.CardStart]:
    """The employee and the card's client as the CRM has them now."""
    ident, employee = _me()
    card = _card(entity_type, entity_id, ident.crm)
    if card is None:
        raise outreach.CardNotFound(entity_id)
    if employee is None:
        raise NotSetUp()
    return employee, outreach.load_card_start(database(), app_services(), ident.account_id, employee, card)


@bp.get("/api/chats/start/<entity_type>/<entity_id>")
@require_identity
def api_start_options(entity_type: str, entity_id: str) -> Any:
    _employee, start = _load(entity_type, entity_id)
    response = jsonify(_plan_json(start))
    response.headers["Cache-Control"] = "no-store"
    return response


def _body() -> dict[str, Any] | None:
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nesting past the parser's limit: as malformed as any bad JSON
            return None
        return data if isinstance(data, dict) else None
    form: dict[str, Any] = {k: v for k, v in request.form.items() if k not in ("st", "csrf_token")}
    if isinstance(form.get("channel_id"), str) and form["channel_id"].isdigit():
        form["channel_id"] = int(form["channel_id"])
    return form


@bp.post("/api/chats/start/<entity_type>/<entity_id>")
@require_identity
def api_start(entity_type: str, entity_id: str) -> Any:
    """The card is read first: a card this account's CRM does not have is "not found", whatever
    else the request says."""
    employee, start = _load(entity_type, entity_id)
    body = _body()
    if body is None:
        return error_response(400, _("The request is malformed."), problems=["the body must be a JSON object"])
    problems: list[str] = []
    channel_id = body.get("channel_id")
    if isinstance(channel_id, bool) or not isinstance(channel_id, int) or not 0 < channel_id <= MAX_CHANNEL_ID:
        problems.append("channel_id: the id of one of your channels")
    address = body.get("address")
    if address is not None and (not isinstance(address, str) or len(address) > 200):
        problems.append("address: one of the keys the options listed")
    text_raw = body.get("text")
    if not isinstance(text_raw, str):
        problems.append("text: required, a string")
    key = body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not _KEY.match(key)):
        problems.append("idempotency_key: 8 to 80 letters, digits or _.:-")
    if problems:
        return error_response(400, _("The request is malformed."), problems=problems)
    assert isinstance(text_raw, str) and isinstance(channel_id, int)
    text = replies.clean_text(text_raw)
    if text is None:
        return unsendable_text(text_raw)
    outcome = outreach.start_conversation(
        database(),
        app_services(),
        _identity().account_id,
        employee,
        start,
        channel_id,
        address if isinstance(address, str) else None,
        text,
        idempotency_key=key if isinstance(key, str) else None,
        now=clock(app_services()),
    )
    return _answer(outcome)


def _answer(outcome: outreach.StartOutcome) -> Any:
    responsible = outcome.start.responsible_name if outcome.start else ""
    if outcome.status == outreach.REFUSED:
        return error_response(403, why_text(outcome.why, responsible))
    if outcome.status == outreach.INVALID:
        return error_response(
            422, _("This channel or address is not one you can start a conversation on. Reopen the card and try again.")
        )
    if outcome.status == outreach.OPENED:
        return jsonify(
            status="open",
            chat_id=outcome.chat_id,
            message=_("This client already has a chat on this channel: it is open, and your text is still unsent."),
        )
    status = 200 if outcome.status == outreach.DUPLICATE else 201
    return jsonify(status="started", chat_id=outcome.chat_id, message_id=outcome.message_id), status
