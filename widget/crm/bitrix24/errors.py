"""Bitrix24's error codes as our error types (reference §6.1, §4.4): keyed on the body's ``error``
code, not the HTTP status, on which Bitrix24's docs and core disagree (Uncertain #4)."""

from __future__ import annotations

from typing import Any

from widget.crm.errors import (
    CrmAuthError,
    CrmBadResponse,
    CrmError,
    CrmForbidden,
    CrmNotFound,
    CrmRateLimited,
    CrmTokenExpired,
    CrmUnavailable,
)

# Codes meaning our stored authorization is gone for good: the portal must reinstall (§4.4).
REINSTALL_CODES = frozenset({"NO_AUTH_FOUND", "APPLICATION_NOT_FOUND", "invalid_token", "PORTAL_DELETED"})
_AUTH_CODES = REINSTALL_CODES | {"authorization_error", "PAYMENT_REQUIRED", "invalid_grant", "invalid_client"}
_FORBIDDEN_CODES = frozenset(
    {"insufficient_scope", "ACCESS_DENIED", "WRONG_AUTH_TYPE", "user_access_error", "INVALID_CREDENTIALS"}
)
_NOT_FOUND_CODES = frozenset({"NOT_FOUND", "ERROR_NOT_FOUND", "ERROR_METHOD_NOT_FOUND"})


def error_for(code: str, description: str, *, status: int | None = None, body: Any = None) -> CrmError:
    """Our error type for a Bitrix24 error code (also used for batch sub-command errors)."""
    message = f"Bitrix24 {code or '(empty code)'}: {description}".strip()
    kw: dict[str, Any] = {"status": status, "details": body if body is not None else {"error": code}}
    if code == "expired_token":
        return CrmTokenExpired(message, **kw)
    if code in _AUTH_CODES:
        return CrmAuthError(message, **kw)
    if code == "QUERY_LIMIT_EXCEEDED":
        return CrmRateLimited(message, retry_after=None, **kw)
    if code == "OVERLOAD_LIMIT":
        # A manual block by Bitrix24 support: no point retrying inline.
        return CrmRateLimited(message, retry_after=3600.0, **kw)
    if code in _FORBIDDEN_CODES:
        return CrmForbidden(message, **kw)
    if code in _NOT_FOUND_CODES:
        return CrmNotFound(message, **kw)
    if code == "":
        # Legacy crm.* errors: HTTP 400, empty code, meaning in the description (§6.4).
        text = description.lower()
        if "not found" in text:
            return CrmNotFound(message, **kw)
        if "access denied" in text:
            return CrmForbidden(message, **kw)
        return CrmBadResponse(message, **kw)
    if code in ("INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER") or (status or 0) >= 500:
        return CrmUnavailable(message, **kw)
    return CrmBadResponse(message, **kw)


def error_code(exc: CrmError) -> str:
    details = exc.details
    return str(details.get("error") or "") if isinstance(details, dict) else ""
