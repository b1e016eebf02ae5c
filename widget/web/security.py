"""Response headers: who may frame our pages, and the usual hardening."""

from __future__ import annotations

from flask import Flask, Response, g, request

from widget.web.identity import current_identity

# Server-to-server callbacks and the JSON API are never framed; pages are framed only by the
# CRM origin of the verified identity (Kommo account host / Bitrix24 portal).


def init_app(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if response.mimetype == "text/html" and "Content-Security-Policy" not in response.headers:
            ancestors = getattr(g, "frame_ancestors", None)
            if ancestors is None:
                ident = current_identity()
                ancestors = ident.frame_origin if ident is not None else None
            if ancestors is None and response.status_code >= 400:
                # An error page shows nothing of value; let the CRM frame show it instead of a blank.
                ancestors = "*"
            response.headers["Content-Security-Policy"] = (
                f"frame-ancestors {ancestors or chr(39) + 'none' + chr(39)}; "
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "script-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
                "object-src 'none'"
            )
        if request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "public, max-age=3600")
        elif response.mimetype == "text/html":
            # Our pages embed the session token: no cache, shared or private, may keep one.
            response.headers.setdefault("Cache-Control", "no-store")
        return response
