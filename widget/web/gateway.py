"""The messaging gateway's server-to-server API: inbound client messages, and our OpenAPI document.

``POST /gateway/messages`` is verified before it is parsed: the only thing read from the body
before the HMAC check is ``channel_id``, which names the account whose secret signs it. A verified,
well-formed delivery is acknowledged once it is durably stored (``widget.services.inbound.receipts``); the
client, chat and CRM work are made from it by a job a moment later.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Blueprint, Response, request

from widget.domain.inbound import PayloadError, parse_inbound
from widget.extensions import app_services
from widget.services.channels.signing import SIGNATURE_HEADER, signature_matches
from widget.services.inbound.messages import DUPLICATE, STORED
from widget.services.inbound.receipts import ChannelGone, intake_for, nudge
from widget.services.outbox import clock
from widget.services.unit_of_work import database
from widget.web.errors import error_response
from widget.web.limits import GATEWAY_FAILURES, guarded_by_failures
from widget.web.same_origin import csrf

bp = Blueprint("gateway", __name__)

OPENAPI_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "openapi.yaml")
BAD_SIGNATURE = "Unknown channel or bad signature."
MAX_CHANNEL_ID = 2**31 - 1  # channels.id is a 32-bit integer on PostgreSQL; larger ids name no channel


@bp.post("/gateway/messages")
@csrf.exempt
# Refusals only (a missing or bad signature, a channel that is not ours): genuine deliveries touch
# no counter. See ``widget.web.limits``.
@guarded_by_failures("gateway", GATEWAY_FAILURES, lambda status: status == 401)
def receive_message() -> Any:
    raw = request.get_data(cache=False)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return error_response(401, f"The {SIGNATURE_HEADER} header is missing.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # nesting past the parser's limit too
        return error_response(400, "The body is not valid JSON.", problems=["the body must be a JSON object"])
    channel_id = body.get("channel_id") if isinstance(body, dict) else None
    if isinstance(channel_id, bool) or not isinstance(channel_id, int):
        # Without the channel we cannot tell whose secret signs the body, so nothing else is read.
        return error_response(400, "The payload is malformed.", problems=["channel_id: required, a positive integer"])
    if not 0 < channel_id <= MAX_CHANNEL_ID:
        # Past the column's range the database refuses the lookup itself (a 500): no such channel.
        return error_response(401, BAD_SIGNATURE)
    services = app_services()
    store = intake_for(database())
    keys = store.keys(services.box, channel_id)
    if keys is None or not signature_matches(keys, raw, signature):
        return error_response(401, BAD_SIGNATURE)
    if not keys.account_usable:
        return error_response(403, "This account has uninstalled the integration.")
    try:
        message = parse_inbound(body)
    except PayloadError as exc:
        return error_response(400, "The payload is malformed.", problems=exc.problems)
    try:
        delivery_id = store.accept(keys.account_id, message, raw, clock(services))
    except ChannelGone:
        return error_response(404, "This channel no longer exists.")
    if delivery_id is None:
        return Response(f'{{"status":"{DUPLICATE}"}}', 200, mimetype="application/json")
    nudge(services.jobs)
    # Written out rather than through jsonify: this answer is the hottest we send, and fixed.
    return Response(f'{{"status":"{STORED}","delivery_id":{int(delivery_id)}}}', 200, mimetype="application/json")


@bp.get("/openapi.yaml")
def openapi() -> Response:
    with open(OPENAPI_PATH, "rb") as fh:
        return Response(fh.read(), mimetype="application/yaml")
