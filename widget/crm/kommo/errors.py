"""Kommo's answers as our error types: API v4 problem+json (reference §5.8, §6), kept in the
error's ``details``."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from widget.crm.errors import (
    CrmBadResponse,
    CrmForbidden,
    CrmNotFound,
    CrmRateLimited,
    CrmTokenExpired,
    CrmUnavailable,
)


def error_body(response: requests.Response) -> Any:
    """Kommo's error body: problem+json when it is JSON, else a short text excerpt."""
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def retry_after_seconds(response: requests.Response, body: Any) -> float | None:
    """Kommo's documented 429 body has ``retry_after``; some proxies send only ``Retry-After``."""
    if isinstance(body, dict):
        value = body.get("retry_after")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    header = response.headers.get("Retry-After")
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify(response: requests.Response) -> Any:
    """API v4 response → JSON data (``None`` for 204) or one of our errors (reference §5.8, §6)."""
    status = response.status_code
    if status == 204:
        return None  # Kommo's "empty list / nothing found"
    if 200 <= status < 300:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CrmBadResponse(f"Kommo answered {status} with a body that is not JSON", status=status) from None
    body = error_body(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    text = f"Kommo answered {status}" + (f": {detail}" if detail else "")
    if status == 401:
        raise CrmTokenExpired(text, status=status, details=body)
    if status == 402:
        # The account's paid or trial period has ended.
        raise CrmForbidden(text, status=status, details=body)
    if status == 403:
        if not isinstance(body, dict):
            # Repeated limit violations get the IP blocked with an HTML nginx page (reference §6):
            # nothing was applied, so it is worth retrying later whatever the method.
            exc = CrmUnavailable("Kommo is blocking our requests (403 without JSON)", status=status, details=body)
            exc.not_applied = True  # type: ignore[attr-defined]
            raise exc
        raise CrmForbidden(text, status=status, details=body)
    if status == 404:
        raise CrmNotFound(text, status=status, details=body)
    if status == 429:
        raise CrmRateLimited(text, retry_after=retry_after_seconds(response, body), status=status, details=body)
    if status >= 500:
        raise CrmUnavailable(text, status=status, details=body)
    raise CrmBadResponse(text, status=status, details=body)
