"""Serve the sandbox messaging gateway next to our server (``python server.py``, the embedded default)."""

from __future__ import annotations

import logging
import threading

from werkzeug.serving import make_server

from sandbox.gateway.app import create_app
from widget.config import Settings

log = logging.getLogger(__name__)


def start_gateway_sandbox(settings: Settings) -> str:
    """Serve it, threaded, in a daemon thread on ``localhost:{settings.sandbox_gateway_port}``.
    Our server configures it itself (``SandboxGatewayTransport``). Returns its base URL."""
    app = create_app()
    # Loopback only: the controls are unauthenticated and hold the channels' secrets.
    server = make_server("localhost", settings.sandbox_gateway_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="sandbox-gateway", daemon=True)
    thread.start()
    log.info("sandbox messaging gateway on %s", settings.sandbox_gateway_url)
    return settings.sandbox_gateway_url
