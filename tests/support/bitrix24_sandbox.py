"""Real HTTP between our app and a sandbox Bitrix24, both on loopback.

Our server has to be reachable over HTTP (the sandbox POSTs events to it and the installer/iframe
flows are browser-style POSTs), and its public URL must be known before the settings are built, so
a free port is picked first and ``create_app(settings)`` is served on it with ``live_server``.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from flask import Flask

from sandbox.bitrix24 import AppRegistration, FrameOpen, SandboxServer, SandboxState, create_sandbox_app
from sandbox.bitrix24.portal import Portal
from tests.support.jobs import run_jobs_inline
from tests.support.servers import live_server
from widget import create_app
from widget.config import SANDBOX_BITRIX24_CLIENT_ID, SANDBOX_BITRIX24_CLIENT_SECRET, Settings
from widget.crm.bitrix24.provider import load_app_card
from widget.db import db
from widget.models import Account
from widget.models.accounts import CRM_BITRIX24


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Bitrix24Sandbox:
    """One sandbox server (portals + OAuth server) on ``127.0.0.1:<free port>``, addressed as
    ``localhost:<port>``; other portals get other loopback names on the same port."""

    def __init__(self, *, rate: float = 2.0, burst: float = 50) -> None:
        self.state = SandboxState(rate=rate, burst=burst)
        self.server = SandboxServer(create_sandbox_app(self.state))
        self.port = self.server.listen("127.0.0.1", 0)
        self.state.oauth_url = f"http://localhost:{self.port}/oauth-server"
        self.state.on_new_host = self._listen

    def _listen(self, host: str) -> None:
        if host not in ("localhost", "127.0.0.1"):
            self.server.listen(host, self.port)

    @property
    def oauth_url(self) -> str:
        return self.state.oauth_url

    def add_portal(self, host: str = "localhost", **kw: Any) -> Portal:
        """A portal at ``host:<port>`` (never 127.0.0.1: that is our app's site)."""
        self._listen(host)
        return self.state.add_portal(f"{host}:{self.port}", **kw)

    def register(self, public_url: str, client_id: str = SANDBOX_BITRIX24_CLIENT_ID) -> None:
        self.state.register_app(
            AppRegistration.from_card(load_app_card().data, public_url, client_id, SANDBOX_BITRIX24_CLIENT_SECRET)
        )

    def stop(self) -> None:
        self.server.stop()


@dataclass
class B24World:
    """The sandbox portal(s), our app served over HTTP, and helpers for the flows users go through."""

    sandbox: Bitrix24Sandbox
    state: SandboxState
    app: Flask
    settings: Settings
    base_url: str
    portal: Portal

    def install(self, portal: Portal | None = None, user_id: int = 1) -> requests.Response:
        """An admin installs the app: the installer page in the iframe, its script's binds, and
        ``installFinish`` — what ``bitrix_app/install.js`` does in the browser."""
        portal = portal or self.portal
        frame = self.state.begin_install(portal, user_id)
        page = frame.post()
        assert page.status_code == 200, page.text
        run_installer(self.state, frame, page.text)
        return page

    def open(self, portal: Portal | None = None, user_id: int = 1, **kw: Any) -> tuple[FrameOpen, requests.Response]:
        frame = self.state.open_app(portal or self.portal, user_id, **kw)
        return frame, frame.post()

    def account(self, portal: Portal | None = None) -> Account | None:
        portal = portal or self.portal
        with db.transaction() as s:
            return (
                s.query(Account)
                .filter(Account.crm == CRM_BITRIX24, Account.external_id == portal.member_id)
                .one_or_none()
            )


def post_event(url: str, payload: dict[str, Any]) -> requests.Response:
    """POST an event body the way Bitrix24 sends it (PHP bracket form encoding)."""
    from sandbox.bitrix24 import phpform

    return requests.post(url, data=phpform.pairs(payload), timeout=10)


_CONFIG = re.compile(r'<script type="application/json" id="wz-install-config">(.*?)</script>', re.S)


def installer_config(html: str) -> dict[str, Any]:
    match = _CONFIG.search(html)
    assert match, "the installer page carries its configuration"
    return dict(json.loads(match.group(1)))


def run_installer(state: SandboxState, frame: FrameOpen, html: str) -> dict[str, Any]:
    """Do what the installer script does through BX24: one ``batch`` of ``placement.bind`` and
    ``event.bind`` with the admin's token, straight to ``PROTOCOL://DOMAIN/rest/``, then finish."""
    from widget.crm.bitrix24.php import php_query

    config = installer_config(html)
    cmd = {f"p{i}": "placement.bind?" + php_query(p) for i, p in enumerate(config["placements"])}
    cmd.update({f"e{i}": "event.bind?" + php_query(e) for i, e in enumerate(config["events"])})
    portal = state.portal(frame.member_id)
    answer = requests.post(
        f"{portal.client_endpoint}batch.json",
        json={"halt": 0, "cmd": cmd, "auth": frame.form["AUTH_ID"]},
        timeout=10,
    ).json()
    errors = answer["result"]["result_error"] or {}
    for err in errors.values():
        assert "already binded" in err["error_description"], err
    state.install_finish(portal)
    return dict(answer["result"])


@contextmanager
def bitrix24_world(make_settings: Any, *, rate: float = 2.0, burst: float = 50, **env: Any) -> Iterator[B24World]:
    """Sandbox + our app over HTTP. ``env`` overrides settings (e.g. BITRIX24_RATE_PER_SECOND)."""
    sandbox = Bitrix24Sandbox(rate=rate, burst=burst)
    port = free_port()
    try:
        env.setdefault("HTTP_TIMEOUT", 5)
        settings = make_settings(
            PUBLIC_URL=f"http://127.0.0.1:{port}",
            BITRIX24_OAUTH_URL=sandbox.oauth_url,
            SANDBOX_BITRIX24_PORT=sandbox.port,
            **env,
        )
        sandbox.register(settings.public_url)
        portal = sandbox.add_portal("localhost", name="Acme (test)")
        application = create_app(settings)
        application.config["TESTING"] = True
        run_jobs_inline(application)
        with live_server(application, port=port) as server:
            yield B24World(sandbox, sandbox.state, application, settings, server.url, portal)
    finally:
        sandbox.stop()
