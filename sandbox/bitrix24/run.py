"""``python server.py``: the demo portal on ``localhost:<SANDBOX_BITRIX24_PORT>`` in daemon threads."""

from __future__ import annotations

from urllib.parse import urlsplit

from sandbox.bitrix24.app import create_sandbox_app
from sandbox.bitrix24.server import SandboxServer
from sandbox.bitrix24.state import AppRegistration, SandboxState
from widget.config import Settings


def build_state(settings: Settings, port: int) -> SandboxState:
    """The demo world: our app registered with the sandbox credentials and handler URLs on our
    public URL, and one portal (``localhost:<port>``) seeded with demo data."""
    from widget.crm.bitrix24.provider import load_app_card

    oauth = settings.bitrix24_oauth_url
    if urlsplit(oauth).netloc != f"localhost:{port}":
        # Configured for another OAuth server: still serve ours at the documented place.
        oauth = f"http://localhost:{port}/oauth-server"
    state = SandboxState(oauth_url=oauth)
    state.register_app(
        AppRegistration.from_card(
            load_app_card().data,
            settings.public_url,
            str(settings.bitrix24_client_id),
            str(settings.bitrix24_client_secret),
        )
    )
    state.add_portal(f"localhost:{port}", name="Acme Trading (sandbox)")
    return state


def start_bitrix24_sandbox(settings: Settings) -> str:
    """Serve the sandbox portal + OAuth server threaded in the background; return its URL."""
    port = settings.sandbox_bitrix24_port
    state = build_state(settings, port)
    server = SandboxServer(create_sandbox_app(state))
    # localhost resolves to 127.0.0.1; a renamed portal gets its own loopback name on this port.
    server.listen("127.0.0.1", port)

    def listen_on(host: str) -> None:
        if host not in ("localhost", "127.0.0.1"):
            server.listen(host)

    state.on_new_host = listen_on
    return f"http://localhost:{server.port}"
