"""Our pages inside a Bitrix24 frame: the BX24 library and ``static/frame.js``.

Bitrix24 leaves an app's iframe at its initial height (about 390 px) until the app asks for
another through the BX24 library, so every page we show there loads the library and our script
that asks (``static/frame.js``): the installer, the app page, the settings tabs, the chat panel
(global and in CRM cards) and the error pages of those routes. Offline (``SANDBOX=1``) the library
is our bridge, ``bitrix_app/bx24-bridge.js``, served from our origin; in production it is
Bitrix24's official library, whose origin the page's Content-Security-Policy then allows.
"""

from __future__ import annotations

from flask import Flask, g, request, url_for

from widget.domain.settings import BITRIX24
from widget.extensions import app_services
from widget.web.identity import current_identity

BRIDGE = "bx24-bridge.js"


def library_url() -> str:
    """Offline (sandbox) our BX24-compatible bridge; in production Bitrix24's official library."""
    if app_services().settings.sandbox:
        return url_for("bitrix24.asset", filename=BRIDGE)
    from widget.crm.bitrix24.provider import load_app_card

    return str(load_app_card().data["official_library"])


def library_origin() -> str:
    """The library's origin for ``script-src``; empty offline, where the bridge is our own."""
    if app_services().settings.sandbox:
        return ""
    from widget.crm.bitrix24.payloads import origin_of

    return origin_of(library_url())


def in_bitrix24_frame() -> bool:
    """Is this page shown inside a Bitrix24 frame? A Bitrix24 user's session says so; without one
    (a refused iframe open), our Bitrix24 routes do."""
    ident = current_identity()
    if ident is not None:
        return ident.crm == BITRIX24
    return request.path.startswith("/bitrix24/")


def page_script_origin() -> str:
    """What ``script-src`` must allow besides ``'self'`` for the page just rendered."""
    return library_origin() if getattr(g, "frame_library", None) else ""


def init_app(app: Flask) -> None:
    @app.context_processor
    def _frame_library() -> dict[str, str]:
        if not app_services().settings.bitrix24_enabled or not in_bitrix24_frame():
            return {"frame_library_url": ""}
        url = library_url()
        g.frame_library = url  # the response's CSP allows its origin (``widget.web.security``)
        return {"frame_library_url": url}
