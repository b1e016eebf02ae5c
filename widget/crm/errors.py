"""The project's own CRM error types. Callers can retry, re-authorize or tell the user by type."""

from __future__ import annotations

from typing import Any


class CrmError(Exception):
    """Base of every CRM failure. ``user_message`` is safe to show to a person."""

    user_message = "The CRM did not answer as expected."

    def __init__(self, message: str, *, status: int | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        # The CRM's own error body (Kommo problem+json, Bitrix24 error/error_description), kept whole.
        self.details = details


class CrmAuthError(CrmError):
    """Our stored authorization is no longer accepted (revoked, uninstalled, refresh rejected)."""

    user_message = "The CRM no longer accepts our authorization. Please reinstall or reauthorize the integration."


class CrmTokenExpired(CrmAuthError):
    """The access token expired; a refresh is expected to fix it."""


class CrmForbidden(CrmError):
    """The call needs rights the token does not have (e.g. Kommo users list for a non-admin)."""

    user_message = "The CRM refused: the user who installed the integration lacks the rights for this."


class CrmRateLimited(CrmError):
    user_message = "The CRM is limiting our requests right now. We will retry shortly."

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class CrmUnavailable(CrmError):
    """5xx, timeouts, connection errors, an IP block: worth retrying later."""

    user_message = "The CRM is not reachable at the moment. Please try again in a few minutes."


class CrmBadResponse(CrmError):
    """The CRM answered, but not with what the contract says (or refused our input)."""

    user_message = "The CRM answered in an unexpected way."


class CrmNotFound(CrmBadResponse):
    user_message = "The CRM could not find the requested record."
