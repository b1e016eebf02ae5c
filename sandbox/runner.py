"""Starts the embedded sandbox CRMs beside the server (``python server.py`` with ``SANDBOX=1``)."""

from __future__ import annotations

from widget.config import Settings


def start_sandboxes(settings: Settings) -> dict[str, str]:
    """Serve the sandbox Kommo and Bitrix24 on loopback in background threads; return their URLs."""
    from sandbox.bitrix24.run import start_bitrix24_sandbox
    from sandbox.kommo.run import start_kommo_sandbox

    urls = {
        "kommo": start_kommo_sandbox(settings),
        "bitrix24": start_bitrix24_sandbox(settings),
    }
    if not settings.gateway_url:  # replies go to the sandbox messaging gateway unless one is configured
        from sandbox.gateway.run import start_gateway_sandbox

        urls["gateway"] = start_gateway_sandbox(settings)
    return urls
