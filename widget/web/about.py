"""``GET /``: what this server is. People get a small page in their language; API clients JSON.

On the embedded default it leads to the sandbox CRM shells and the sandbox messaging gateway, which
run on this machine. A real deployment names nothing but itself: no sandbox, no addresses, no version.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, make_response, render_template

from widget.extensions import app_services
from widget.web.errors import wants_json

bp = Blueprint("about", __name__)


@bp.get("/")
def about() -> Any:
    settings = app_services().settings
    sandbox: dict[str, str] = {}
    if settings.sandbox:
        sandbox = {
            "kommo": f"{settings.sandbox_kommo_url}/shell",
            "bitrix24": f"{settings.sandbox_bitrix24_url}/shell",
        }
        if not settings.gateway_url:  # the sandbox gateway runs only when no real one is configured
            sandbox["gateway"] = f"{settings.sandbox_gateway_url}/"
    if wants_json():
        body: dict[str, Any] = {"service": "wazzup-crm-widget", "health": "/healthz"}
        if sandbox:
            body["sandbox"] = sandbox
        response = jsonify(body)
    else:
        response = make_response(render_template("pages/about.html", sandbox=sandbox))
    response.vary.update(("Accept", "Accept-Language"))  # a shared cache keeps each variant apart
    return response
