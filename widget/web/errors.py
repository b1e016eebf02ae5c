"""One error-body builder: JSON for API and server-to-server callers, a small page for people."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from widget.crm.errors import CrmError
from widget.services.conversations.replies import MAX_TEXT


def wants_json() -> bool:
    if request.path.startswith(("/api/", "/gateway/", "/kommo/session", "/bitrix24/events")):
        return True
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status: int, message: str, **extra: Any) -> tuple[Response | str, int]:
    if wants_json():
        body: dict[str, Any] = {"error": _code(status), "message": message}
        body.update(extra)
        return jsonify(body), status
    # A 401 page may be a page asked for again without its token (Back, reload): app.js then
    # retries once with the token its history entry kept.
    return render_template("error.html", status=status, message=message, session_lost=status == 401), status


def unsendable_text(text: str) -> tuple[Response | str, int]:
    """422 for a message text ``replies.clean_text`` refused: empty, or past its length."""
    message = (
        gettext("Write something first.")
        if not text.strip()
        else gettext("This message is too long: %(max)s characters at most.", max=MAX_TEXT)
    )
    return error_response(422, message, errors={"text": message})


def _code(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "too_large",
        422: "invalid",
        429: "rate_limited",
        502: "crm_error",
        503: "unavailable",
    }.get(status, "error")


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        return error_response(
            400, gettext("This form has expired or did not come from our page. Please reload and try again.")
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        status = exc.code or 500
        message = exc.description or exc.name
        return error_response(status, message)

    @app.errorhandler(CrmError)
    def _crm(exc: CrmError) -> Any:
        app.logger.warning("CRM error reached a view: %s", exc)
        return error_response(502, exc.user_message)
