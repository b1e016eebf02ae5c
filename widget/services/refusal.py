"""How a service turns a caller away: an HTTP status and a sentence that is safe to show them.

Each entry point subclasses it (``bitrix24_install.Refused``, ``kommo_session.SessionRefused``) so
its web layer catches only its own refusals."""

from __future__ import annotations


class Refusal(Exception):
    """``status`` is the HTTP answer; ``message`` never carries a token or a CRM's raw error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
