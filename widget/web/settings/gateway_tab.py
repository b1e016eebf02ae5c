"""The "Messaging gateway" section of the Channels page: where the gateway delivers messages and the
secret it signs them with, shown only to the account's admins, revealed on request and rotated with
a grace period (``widget.services.channels.gateway_secret``).

The secret is never written into the page's HTML: "Show" and "Copy" ask for it with a POST that
carries the session and CSRF tokens, so it stays out of caches, screenshots of the page as loaded,
and URLs. The answer is ``Cache-Control: no-store``.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, redirect, request
from flask_babel import format_datetime
from flask_babel import gettext as _

from widget.extensions import app_services
from widget.services.channels.gateway_secret import ROTATION_GRACE, SecretState, inbound_url, read_secret, rotate
from widget.services.unit_of_work import database
from widget.web.errors import wants_json
from widget.web.identity import require_admin
from widget.web.settings.blueprint import bp, current_admin
from widget.web.urls import surl


def when(value: Any) -> str:
    """A moment as the admin reads it, in UTC (the CRM does not tell us their time zone)."""
    return f"{format_datetime(value, 'medium')} UTC"


def gateway_view(state: SecretState) -> dict[str, Any]:
    """What the Channels page shows about the gateway (the secret itself only as its last characters)."""
    return {
        "inbound_url": inbound_url(app_services()),
        "hint": state.hint,
        "created_at": when(state.created_at),
        "rotated_at": when(state.rotated_at) if state.rotated_at else "",
        "previous_until": when(state.previous_valid_until) if state.previous_valid_until else "",
        "previous_until_iso": state.previous_valid_until.isoformat() if state.previous_valid_until else "",
        "grace_hours": int(ROTATION_GRACE.total_seconds() // 3600),
    }


def current_gateway() -> dict[str, Any]:
    return gateway_view(read_secret(database(), app_services(), current_admin().account_id))


@bp.post("/app/channels/gateway-secret")
@require_admin
def reveal_gateway_secret() -> Any:
    """The secret in full, for "Show" and "Copy"."""
    state = read_secret(database(), app_services(), current_admin().account_id)
    response = jsonify(secret=state.secret, inbound_url=inbound_url(app_services()))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/app/channels/gateway-secret/rotate")
@require_admin
def rotate_gateway_secret_view() -> Any:
    stop = request.form.get("stop_previous") in ("1", "on", "true")
    state = rotate(database(), app_services(), current_admin().account_id, stop_previous=stop)
    if stop:
        message = _("New secret created. The old one no longer works: enter the new one in the gateway now.")
    else:
        message = _(
            "New secret created. The old one keeps working until %(when)s: "
            "enter the new one in the gateway before then.",
            when=when(state.previous_valid_until),
        )
    if wants_json():
        response = jsonify(ok=True, message=message, gateway=gateway_view(state))
        response.headers["Cache-Control"] = "no-store"
        return response
    return redirect(surl("settings.channels", notice="rotated_now" if stop else "rotated") + "#gateway")
