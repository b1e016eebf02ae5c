"""Access logs that carry no credential.

Our pages carry the session token in the address (``st``), the launch hop a launch token (``lt``),
Kommo's install callback an authorization code, and Kommo's entity webhooks post to an address
that holds the account's webhook token. Access logs print addresses, so each of these is masked
before a line is written:

* ``python server.py`` (werkzeug's request log): ``install_werkzeug_filter`` adds a filter to the
  ``werkzeug`` logger, done by ``create_app``;
* gunicorn: ``--logger-class widget.access_log.GunicornLogger`` (the README's command) masks the
  request line, path, query, referrer and the token headers in whatever access-log format is set.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "[redacted]"
# Query parameters whose value is a credential (ours or the CRM's).
SECRET_PARAMS = ("st", "lt", "code", "token", "access_token", "refresh_token", "auth_id", "refresh_id")
_QUERY = re.compile(r"(?i)((?:^|[?&;])(?:" + "|".join(SECRET_PARAMS) + r")=)[^&;#\s\"']*")
# Path segments that are credentials: Kommo's webhook address ``/kommo/webhooks/<token>``.
_PATH = re.compile(r"(/kommo/webhooks/)[^/?#\s\"']+")
SECRET_HEADERS = ("x-session-token", "x-auth-token", "x-csrftoken", "x-csrf-token", "authorization", "cookie")


def redact(text: str) -> str:
    """``text`` with every credential in an address masked."""
    if not text:
        return text
    return _PATH.sub(r"\1" + MASK, _QUERY.sub(r"\1" + MASK, text))


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's message (werkzeug formats the request line into its args)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def install_werkzeug_filter() -> None:
    """Mask credentials in werkzeug's request log (once per process)."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())


try:
    from gunicorn.glogging import Logger as _GunicornBase
except ImportError:  # gunicorn is for production; the embedded default runs without it
    _GunicornBase = object


class GunicornLogger(_GunicornBase):  # type: ignore[misc,valid-type]
    """gunicorn's logger with credentials masked in every access-log atom."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U", "q", "f"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        for name in SECRET_HEADERS:
            if f"{{{name}}}i" in atoms:
                atoms[f"{{{name}}}i"] = MASK
        environ_headers = {"{http_" + name.replace("-", "_") + "}e" for name in SECRET_HEADERS}
        for key, value in list(atoms.items()):
            if key in environ_headers:
                atoms[key] = MASK
            elif key.endswith("}e") and isinstance(value, str):
                atoms[key] = redact(value)
        return atoms
