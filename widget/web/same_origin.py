"""CSRF protection: Flask-WTF's token, plus our own check that the browser posted from our origin.

Why not Flask-WTF's HTTPS check (``WTF_CSRF_SSL_STRICT``): it demands a ``Referer`` of our own
origin on every https POST. Our pages must not leak their URL (it carries the session token), and
browsers, extensions and corporate proxies may drop the ``Referer`` altogether, so behind a TLS
front that check refused every form. It exists to stop cookie-planting on https sites, which
cannot touch us: our CSRF token is bound to the page's session token, which never lives in a
cookie (``widget.web.identity``).

What we check instead, on every request the CSRF token protects, on http as on https:

1. ``Sec-Fetch-Site`` (sent by current browsers on https and loopback; page script cannot set it):
   only ``same-origin`` passes — a sibling subdomain (``same-site``) does not;
2. else ``Origin``: our ``PUBLIC_URL`` origin or the origin the request was addressed to;
   ``null`` does not pass (our pages send ``Referrer-Policy: strict-origin``, so their own posts
   carry their origin);
3. else ``Referer``: the same rule, on its scheme, host and port;
4. none of the three: not a browser, or one too old to send ``Origin`` on a POST — CSRF needs a
   victim's browser, so the tokens alone decide, as they did before.

The protection is therefore never weaker than Flask-WTF's: the tokens are still required, and a
browser that says where a post came from is believed on plain HTTP too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, request
from flask_wtf import CSRFProtect

from widget.extensions import app_services

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute URL, or ``None`` for anything else (``null`` included)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def _ours() -> set[tuple[str, str, int]]:
    found = {_origin(app_services().settings.public_url), _origin(request.host_url)}
    return {o for o in found if o is not None}


def cross_origin_reason() -> str | None:
    """Why this request did not come from one of our pages, or ``None`` when nothing says so."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return None if fetch_site == "same-origin" else f"Sec-Fetch-Site is {fetch_site!r}."
    for header in ("Origin", "Referer"):
        value = request.headers.get(header)
        if value is not None:
            return None if _origin(value) in _ours() else f"The {header} header names another origin."
    return None


class SameOriginCSRFProtect(CSRFProtect):
    """``CSRFProtect`` whose ``protect`` also runs ``cross_origin_reason`` (see the module's text)."""

    def protect(self, apply_exemptions: bool = False) -> None:
        if apply_exemptions and (not request.endpoint or self._is_exempt()):
            return
        if request.method not in current_app.config["WTF_CSRF_METHODS"]:
            return
        super().protect()
        reason = cross_origin_reason()
        if reason is not None:
            self._error_response(reason)


# The app's one CSRF guard: routes that take no browser form (CRM callbacks, the gateway) exempt
# themselves with ``csrf.exempt``.
csrf = SameOriginCSRFProtect()
