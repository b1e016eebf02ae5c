"""Response headers: who may frame our pages, and the usual hardening.

* ``Referrer-Policy: strict-origin``: a request leaving our pages names at most our origin, never a
  path or query (our URLs carry the session token), and our own form posts carry a real ``Origin``
  (``no-referrer`` made it ``null``), which ``widget.web.same_origin`` checks;
* ``Cache-Control: no-store`` on every HTML response: pages carry session and CSRF tokens, and
  nothing of them should stay in a browser's or a proxy's cache;
* ``Strict-Transport-Security`` when ``PUBLIC_URL`` is https: browsers keep to https afterwards.
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from widget.extensions import app_services
from widget.web.frame import page_script_origin
from widget.web.identity import current_identity

HSTS = "max-age=31536000"  # a year; not includeSubDomains: the parent domain is not ours to decide

# Server-to-server callbacks and the JSON API are never framed; pages are framed only by the
# CRM origin of the verified identity (Kommo account host / Bitrix24 portal).


def init_app(app: Flask) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin")
        if app_services().settings.public_url.startswith("https://"):
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if response.mimetype == "text/html":
            response.headers["Cache-Control"] = "no-store"
        if response.mimetype == "text/html" and "Content-Security-Policy" not in response.headers:
            ancestors = getattr(g, "frame_ancestors", None)
            if ancestors is None:
                ident = current_identity()
                ancestors = ident.frame_origin if ident is not None else None
            if ancestors is None and response.status_code >= 400:
                # An error page shows nothing of value; let the CRM frame show it instead of a blank.
                ancestors = "*"
            # A page in a Bitrix24 frame loads Bitrix24's library (``widget.web.frame``).
            scripts = " ".join(filter(None, ("'self'", page_script_origin())))
            response.headers["Content-Security-Policy"] = (
                f"frame-ancestors {ancestors or chr(39) + 'none' + chr(39)}; "
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                f"script-src {scripts}; connect-src 'self'; form-action 'self'; base-uri 'none'; "
                "object-src 'none'"
            )
        if request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "public, max-age=3600")
        elif response.mimetype == "text/html":
            # Our pages embed the session token: no cache, shared or private, may keep one.
            response.headers.setdefault("Cache-Control", "no-store")
        return response
