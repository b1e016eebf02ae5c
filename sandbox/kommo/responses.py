"""Response builders for the sandbox's wire formats."""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask import Response

from sandbox.kommo.errors import ApiError, OAuthError
from sandbox.kommo.faults import Fault

HAL = "application/hal+json"
PROBLEM = "application/problem+json"

NGINX_REASONS = {
    403: "Forbidden",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def _dump(body: Any) -> str:
    # Kommo answers UTF-8 JSON with non-ASCII text unescaped; our client must read it as such.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def hal(body: Any, status: int = 200) -> Response:
    return Response(_dump(body), status=status, mimetype=HAL)


def plain_json(body: Any, status: int = 200) -> Response:
    return Response(_dump(body), status=status, mimetype="application/json")


def no_content() -> Response:
    # Kommo answers an empty list or search with 204 and no body (reference §5).
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


def problem(error: ApiError) -> Response:
    response = Response(_dump(error.body()), status=error.status, mimetype=PROBLEM)
    if error.status == 429 and "retry_after" in error.extra:
        response.headers["Retry-After"] = str(error.extra["retry_after"])
    return response


def oauth_problem(error: OAuthError) -> Response:
    return Response(_dump(error.body()), status=error.status, mimetype=PROBLEM)


def nginx_page(status: int) -> Response:
    """What a dead upstream or an IP block looks like: nginx's own HTML page, not JSON."""
    reason = NGINX_REASONS.get(status, "Error")
    html = (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(html, status=status, mimetype="text/html")


def too_many_requests(retry_after: int) -> Response:
    # The documented body carries retry_after; some clients read only the header: send both (§6, Addendum).
    return problem(
        ApiError(
            429,
            "You have sent too many requests. Please reduce the frequency of requests.",
            extra={"retry_after": retry_after},
        )
    )


def fault_response(fault: Fault) -> Response:
    if fault.kind == "block":
        return nginx_page(403)
    if fault.kind == "outage":
        return nginx_page(503)
    if fault.kind == "rate_limit":
        return too_many_requests(fault.retry_after)
    if fault.status == 500:
        # Kommo's 500 is problem+json with a trace id (reference §5.8).
        return problem(ApiError(500, "Internal Server Error", extra={"trace_id": secrets.token_hex(8)}))
    return nginx_page(fault.status)
