"""Serve the sandbox Kommo next to our server (``python server.py``, the embedded default)."""

from __future__ import annotations

import logging
import threading

from werkzeug.serving import make_server

from sandbox.kommo.app import create_app
from widget.config import Settings

log = logging.getLogger(__name__)


def start_kommo_sandbox(settings: Settings) -> str:
    """Build the sandbox from ``settings`` and serve it, threaded, in a daemon thread on
    ``localhost:{settings.sandbox_kommo_port}``. Returns its base URL."""
    if not settings.kommo_client_id or not settings.kommo_client_secret:
        raise ValueError("the sandbox Kommo needs KOMMO_CLIENT_ID and KOMMO_CLIENT_SECRET")
    base_url = settings.sandbox_kommo_url
    app = create_app(
        client_id=settings.kommo_client_id,
        client_secret=settings.kommo_client_secret,
        redirect_uri=settings.public_url + "/kommo/oauth/callback",
        revoke_hook_url=settings.public_url + "/kommo/uninstall",
        widget_origin=settings.public_origin,
        base_url=base_url,
    )
    # Loopback only: the sandbox's control API is unauthenticated.
    server = make_server("localhost", settings.sandbox_kommo_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="sandbox-kommo", daemon=True)
    thread.start()
    log.info("sandbox Kommo on %s (shell: %s/shell)", base_url, base_url)
    return base_url
