"""Run the sandbox Kommo on a loopback port for a test, and point it at our server.

    with running_kommo() as kommo, serving_ours(
        lambda url: create_app(make_settings(PUBLIC_URL=url, **kommo.env()))
    ) as ours:
        kommo.point_at(ours.url)                 # redirect URI, revoke hook, widget origin
        kommo.sandbox.deliver_install_webhook(DEMO_HOST)

or, in a test module, ``from tests.support.kommo_sandbox import kommo`` (re-export it, e.g. in
``__all__``) and take the ``kommo`` fixture: a fresh seeded sandbox per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask import Flask

from sandbox.kommo import KommoSandbox, create_app
from tests.support.servers import LiveServer, live_server
from widget.config import SANDBOX_KOMMO_CLIENT_ID, SANDBOX_KOMMO_CLIENT_SECRET

DEMO_HOST = "demo.kommo.test"
# Until point_at() is called, hooks go to a closed loopback port (nothing listens on port 9).
UNSET_ORIGIN = "http://127.0.0.1:9"


@dataclass
class RunningKommo:
    app: Flask
    server: LiveServer
    sandbox: KommoSandbox

    @property
    def url(self) -> str:
        """The sandbox's base URL, e.g. ``http://127.0.0.1:40123``."""
        return self.server.url

    @property
    def base_url_template(self) -> str:
        """What ``KOMMO_BASE_URL`` must be for our server to reach this sandbox."""
        return f"{self.server.url}/{{host}}"

    def account_url(self, host: str = DEMO_HOST) -> str:
        return f"{self.server.url}/{host}"

    def env(self, **extra: Any) -> dict[str, str]:
        """Environment overrides for ``make_settings(**kommo.env())``."""
        env = {
            "KOMMO_BASE_URL": self.base_url_template,
            "KOMMO_DOMAINS": "kommo.test",
            "KOMMO_CLIENT_ID": self.sandbox.client_id,
            "KOMMO_CLIENT_SECRET": self.sandbox.client_secret,
        }
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def point_at(self, our_url: str) -> None:
        """Aim the integration at our server (callback, uninstall hook, iframe origin)."""
        our_url = our_url.rstrip("/")
        self.sandbox.set_integration(
            redirect_uri=f"{our_url}/kommo/oauth/callback",
            revoke_hook_url=f"{our_url}/kommo/uninstall",
            widget_origin=our_url,
        )

    def token_pair(self, host: str = DEMO_HOST, user_id: int | None = None) -> dict[str, Any]:
        """Exchange a fresh code over HTTP, as our server would: the token endpoint's JSON."""
        response = requests.post(
            f"{self.account_url(host)}/oauth2/access_token",
            json={
                "client_id": self.sandbox.client_id,
                "client_secret": self.sandbox.client_secret,
                "grant_type": "authorization_code",
                "code": self.sandbox.issue_code(host, user_id),
                "redirect_uri": self.sandbox.redirect_uri,
            },
            timeout=5,
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


@contextmanager
def running_kommo(
    *,
    client_id: str = SANDBOX_KOMMO_CLIENT_ID,
    client_secret: str = SANDBOX_KOMMO_CLIENT_SECRET,
    our_url: str = UNSET_ORIGIN,
    seed_demo: bool = True,
    token_ttl: int = 86400,
) -> Iterator[RunningKommo]:
    """A sandbox Kommo on ``127.0.0.1:<free port>`` for the duration of the block."""
    our_url = our_url.rstrip("/")
    app = create_app(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=f"{our_url}/kommo/oauth/callback",
        revoke_hook_url=f"{our_url}/kommo/uninstall",
        widget_origin=our_url,
        seed_demo=seed_demo,
        token_ttl=token_ttl,
    )
    sandbox: KommoSandbox = app.extensions["kommo_sandbox"]
    with live_server(app) as server:
        sandbox.base_url = server.url
        yield RunningKommo(app=app, server=server, sandbox=sandbox)


@pytest.fixture
def kommo() -> Iterator[RunningKommo]:
    """A fresh, seeded sandbox Kommo per test (host ``demo.kommo.test``)."""
    with running_kommo() as running:
        yield running


class _LateApp:
    """A WSGI shell whose app is set once the server's address is known."""

    def __init__(self) -> None:
        self.app: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"starting"]
        return self.app(environ, start_response)


@contextmanager
def serving_ours(build: Any) -> Iterator[LiveServer]:
    """Serve our app on a loopback port known *before* the app is built: ``build(url)`` gets the
    URL, so ``PUBLIC_URL`` (the OAuth redirect URI and the widget JWT's ``aud``) can match it.

        with running_kommo() as kommo, serving_ours(lambda url: create_app(make_settings(
                PUBLIC_URL=url, **kommo.env()))) as ours:
            kommo.point_at(ours.url)
    """
    shell = _LateApp()
    with live_server(shell) as server:
        shell.app = build(server.url)
        yield server
