"""Links inside our iframe pages. Kept apart from the blueprints so every page module can make
links without importing another page module (``pages``, ``chats`` and ``settings`` link to each
other; their modules do not import each other for it)."""

from __future__ import annotations

from typing import Any

from flask import url_for

from widget.web.identity import SESSION_PARAM, current_session_token


def surl(endpoint: str, **values: Any) -> str:
    """``url_for`` that carries the session token, for links inside our iframe pages."""
    token = current_session_token()
    if token:
        values[SESSION_PARAM] = token
    return url_for(endpoint, **values)
