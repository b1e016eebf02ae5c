"""Kommo's entity webhooks (responsible changes), server to server.

``POST /kommo/webhooks/<token>``: the token in the address is checked before the body is read, the
body's ``account[id]`` must be that token's account, and only then are the changes recorded (and a
job nudged to apply them). Anything else is refused with 401 and changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify, request

from widget.crm.kommo.webhooks import MalformedWebhook, parse_entity_webhook
from widget.extensions import app_services
from widget.services.conversations.kommo_webhooks import record_webhook, same_account, target_of
from widget.services.unit_of_work import database
from widget.web.context import get_db
from widget.web.same_origin import csrf

log = logging.getLogger(__name__)

bp = Blueprint("kommo_webhooks", __name__)


def _refused(status: int, error: str, message: str) -> Any:
    return jsonify(status="error", error=error, message=message), status


@bp.post("/kommo/webhooks/<token>")
@csrf.exempt  # authenticated by the per-account token in the address and the account id in the body
def entity_webhook(token: str) -> Any:
    session = get_db()
    target = target_of(session, token)
    session.close()
    if target is None:
        log.warning("Kommo webhook refused: unknown destination token")
        return _refused(401, "unauthorized", "Unknown webhook address.")
    try:
        hook = parse_entity_webhook(request.form.items(multi=True))
    except MalformedWebhook as exc:
        return _refused(400, "bad_request", str(exc))
    if not same_account(target, hook.account_id):
        log.warning("Kommo webhook refused: account %s used account %s's address", hook.account_id, target.account_id)
        return _refused(401, "unauthorized", "This address belongs to another account.")
    if not target.usable:
        return _refused(403, "forbidden", "This account has uninstalled the integration.")
    recorded = record_webhook(database(), app_services(), target, hook)
    return jsonify(status="ok", recorded=recorded)
