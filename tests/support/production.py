"""The README's "Deploying at scale", running on loopback for browser tests: the production shape.

    with production_shape(database_url, run_dir) as shape:
        page.goto(shape.kommo_shell("/settings/widgets", user=7))

What runs (``faults.stack`` starts and stops the processes; this module adds HTTPS around them):

* our app: ``gunicorn --worker-class gthread server:app`` with ``SANDBOX=0`` and every production
  setting given explicitly, PostgreSQL, and ``python -m widget.jobs.worker`` processes on a Redis
  queue;
* the sandbox Kommo, Bitrix24 and messaging gateway, each its own process;
* a TLS front (``tests.support.tls``) before each of them: our pages on
  ``https://widget.app.test:<p>``, Kommo on ``https://kommo.crm.test:<q>``, the Bitrix24 portal on
  ``https://portal.crm.test:<r>`` (its OAuth server under ``/oauth-server``), the gateway on
  ``https://gateway.crm.test:<s>`` — two sites, ``app.test`` and ``crm.test``;
* every server-side call to those names (ours to the CRMs and the gateway, theirs to us) goes
  through a CONNECT proxy (``HTTPS_PROXY``) and verifies the test certificate
  (``REQUESTS_CA_BUNDLE``): TLS end to end, as in production.

The test process drives the sandboxes through their loopback controls (``/_sandbox/…``), never
through our app, and reads our database only for what an operator would copy from elsewhere (the
account's gateway secret, which the operator types into the gateway's console).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from faults.stack import PublicNames, Stack, StackConfig, wait_for
from tests.support.tls import Certificate, ConnectProxy, TlsFront, free_port, make_certificate
from widget.config import (
    SANDBOX_BITRIX24_CLIENT_ID,
    SANDBOX_BITRIX24_CLIENT_SECRET,
    SANDBOX_KOMMO_CLIENT_ID,
    SANDBOX_KOMMO_CLIENT_SECRET,
)

OURS, KOMMO, PORTAL, GATEWAY = "widget.app.test", "kommo.crm.test", "portal.crm.test", "gateway.crm.test"
DEMO_KOMMO_HOST = "demo.kommo.test"
# Chromium resolves every test name to loopback itself, and must accept the self-signed certificate.
CHROMIUM_ARGS = ("--host-resolver-rules=MAP *.test 127.0.0.1", "--ignore-certificate-errors")
# In production our Bitrix24 pages load Bitrix24's official library (bitrix_app/app-card.json); offline
# the browser is handed our BX24-compatible bridge for that address instead (the same wire).
BITRIX24_LIBRARY = "https://api.bitrix24.com/api/v1/**"
BRIDGE = Path(__file__).resolve().parents[2] / "bitrix_app" / "bx24-bridge.js"


@dataclass
class ProductionShape:
    stack: Stack
    certificate: Certificate
    names: PublicNames
    proxy: ConnectProxy

    @property
    def ours(self) -> str:
        return self.names.ours

    def kommo_shell(self, path: str = "", **query: Any) -> str:
        query.setdefault("account", DEMO_KOMMO_HOST)
        return f"{self.names.kommo}/shell{path}?{urlencode(query)}"

    def bitrix24_shell(self, path: str = "", **query: Any) -> str:
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{self.names.bitrix24}/shell{path}{suffix}"

    @property
    def gateway_console(self) -> str:
        return self.names.gateway + "/"

    def https(self) -> requests.Session:
        """A client that reaches the ``https://*.test`` names as our server does: the proxy, the CA."""
        session = requests.Session()
        session.trust_env = False
        session.proxies = {"https": self.proxy.url}
        session.verify = str(self.certificate.cert)
        return session

    # --- the sandboxes, through their loopback controls -----------------------------------------------

    def kommo_users(self, host: str = DEMO_KOMMO_HOST) -> dict[str, int]:
        answer = requests.get(f"{self.stack.kommo_url}/_sandbox/accounts/{host}", timeout=10)
        answer.raise_for_status()
        return {u["name"]: int(u["id"]) for u in answer.json()["users"]}

    def gateway_secret(self, channel_id: int) -> tuple[str, str]:
        """The signing secret of the channel's account and the channel's messenger, as the operator
        copies them into the gateway's console."""
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session

        from widget.crypto import TokenBox
        from widget.models import Channel
        from widget.services.channels.signing import get_or_create_gateway_secret

        settings = self.stack.settings()
        engine = create_engine(settings.database_url)
        try:
            with Session(engine) as session, session.begin():
                channel = session.get(Channel, channel_id)
                assert channel is not None, f"no channel {channel_id}"
                box = TokenBox(settings.token_keys)
                return get_or_create_gateway_secret(session, box, channel.account_id), channel.transport
        finally:
            engine.dispose()

    def link_channel(self, channel_id: int) -> None:
        """What an operator types into a real gateway's console: the channel, its secret, our inbound
        address (``PUBLIC_URL``), so the gateway signs what clients write and checks our replies."""
        secret, transport = self.gateway_secret(channel_id)
        answer = requests.put(
            f"{self.stack.gateway_url}/_sandbox/channels/{channel_id}",
            json={"secret": secret, "inbound_url": f"{self.ours}/gateway/messages", "transport": transport},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    def client_writes(self, channel_id: int, name: str, phone: str, text: str) -> None:
        """A client writes on the channel: the gateway signs it and POSTs it to our ``https://`` name."""
        chat_id = "".join(ch for ch in phone if ch.isdigit())
        answer = requests.post(
            f"{self.stack.gateway_url}/_sandbox/write",
            json={"channel_id": channel_id, "chat_id": chat_id, "phone": phone, "sender_name": name, "text": text},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text


def production_env(proxy: ConnectProxy, certificate: Certificate) -> dict[str, str]:
    """Everything a real deployment sets, spelled out (nothing left to the embedded default)."""
    return {
        "SANDBOX": "0",
        "KOMMO_CLIENT_ID": SANDBOX_KOMMO_CLIENT_ID,
        "KOMMO_CLIENT_SECRET": SANDBOX_KOMMO_CLIENT_SECRET,
        "BITRIX24_CLIENT_ID": SANDBOX_BITRIX24_CLIENT_ID,
        "BITRIX24_CLIENT_SECRET": SANDBOX_BITRIX24_CLIENT_SECRET,
        "PROXY_HOPS": "1",  # the TLS front
        "HTTPS_PROXY": proxy.url,
        "NO_PROXY": "127.0.0.1,localhost",
        "REQUESTS_CA_BUNDLE": str(certificate.cert),
    }


@contextmanager
def production_shape(database_url: str, *, web_workers: int = 2, job_workers: int = 2) -> Iterator[ProductionShape]:
    """Start everything (about ten seconds on two cores) and stop it all afterwards."""
    run_dir = Path(tempfile.mkdtemp(prefix="widget-production-"))
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, run_dir, ignore_errors=True)
        certificate = make_certificate(run_dir / "tls")
        proxy = ConnectProxy()
        cleanup.callback(proxy.stop)
        ports = {part: free_port() for part in ("ours", "kommo", "bitrix24", "gateway")}
        names = PublicNames(
            ours=f"https://{OURS}:{ports['ours']}",
            kommo=f"https://{KOMMO}:{ports['kommo']}",
            bitrix24=f"https://{PORTAL}:{ports['bitrix24']}",
            gateway=f"https://{GATEWAY}:{ports['gateway']}",
        )
        config = StackConfig(
            database_url=database_url,
            web_workers=web_workers,
            web_threads=4,
            job_workers=job_workers,
            job_threads=2,
            http_timeout=5.0,
            worker_module="widget.jobs.worker",
            gateway=True,
            public=names,
            env=production_env(proxy, certificate),
        )
        stack = Stack(config, run_dir=str(run_dir / "stack"))
        backends = {
            "ours": stack.web_port,
            "kommo": stack.kommo_port,
            "bitrix24": stack.bitrix24_port,
            "gateway": stack.gateway_port,
        }
        for part, backend in backends.items():
            cleanup.callback(TlsFront(certificate, backend, port=ports[part]).stop)
        cleanup.callback(stack.stop)
        stack.start()  # migrates the database first
        shape = ProductionShape(stack, certificate, names, proxy)
        client = shape.https()
        cleanup.callback(client.close)
        wait_for(lambda: client.get(f"{names.ours}/healthz", timeout=5).status_code == 200, 30, "our TLS front")
        try:
            yield shape
        except BaseException:
            print(stack.diagnostics())
            raise


def route_bitrix24_library(context: Any) -> None:
    """Serve our BX24 bridge where production pages load Bitrix24's official library."""
    body = BRIDGE.read_text()
    context.route(
        BITRIX24_LIBRARY,
        lambda route: route.fulfill(status=200, content_type="application/javascript", body=body),
    )
