"""Our server and the sandbox Kommo, each on its own loopback port, wired to each other.

``world`` (a fixture; in a test module: ``from tests.support.kommo_world import world_fixture``
with ``# noqa: F401``) gives a sandbox Kommo seeded with the "Demo Company" account, and our app
served over HTTP with ``PUBLIC_URL`` equal to its real address (the OAuth redirect URI and the
widget JWT's ``aud``) and ``KOMMO_BASE_URL`` pointing at the sandbox. Jobs run immediately, in the
request that enqueues them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from sandbox.kommo import KommoSandbox
from tests.support.jobs import run_jobs_inline
from tests.support.kommo_sandbox import DEMO_HOST, RunningKommo, running_kommo, serving_ours
from tests.support.servers import LiveServer
from widget import create_app
from widget.config import Settings
from widget.crm.http import RetryPolicy
from widget.crm.kommo.client import KommoClient
from widget.crm.kommo.provider import KommoProvider, kommo_origin
from widget.db import db
from widget.models import Account
from widget.models.accounts import CRM_KOMMO
from widget.services.accounts.crm_clients import kommo_tokens


@dataclass
class KommoWorld:
    kommo: RunningKommo
    ours: LiveServer
    app: Flask
    settings: Settings

    @property
    def sandbox(self) -> KommoSandbox:
        return self.kommo.sandbox

    @property
    def url(self) -> str:
        return self.ours.url

    def kommo_origin(self, host: str = DEMO_HOST) -> str:
        return kommo_origin(self.settings, host)

    def provider(self, settings: Settings | None = None, **kw: Any) -> KommoProvider:
        """Our provider, with short retry waits so fault tests do not sleep for seconds."""
        kw.setdefault("retry", RetryPolicy(base_delay=0.01, max_delay=0.05))
        return KommoProvider(settings or self.settings, **kw)

    def client(
        self, account_id: int, host: str = DEMO_HOST, settings: Settings | None = None, **kw: Any
    ) -> KommoClient:
        """The account's client on its stored tokens, as the services build it, on ``provider(...)``."""
        provider = self.provider(settings, **kw)
        box = self.app.extensions["widget"].box
        return provider.client(host, kommo_tokens(db, box, provider, account_id, host))

    def install(self, host: str = DEMO_HOST, user_id: int | None = None) -> int:
        """Install the widget as Kommo does (the install webhook) and return our account id."""
        response = self.sandbox.deliver_install_webhook(host, user_id)
        assert response.status_code == 200, response.text
        account = self.account(host)
        assert account is not None, "the install did not create the account"
        return account.id

    def account(self, host: str = DEMO_HOST) -> Account | None:
        kommo_id = self.sandbox.account(host).id
        with db.transaction() as s:
            return s.execute(
                select(Account).where(Account.crm == CRM_KOMMO, Account.external_id == str(kommo_id))
            ).scalar_one_or_none()

    def session_url(self, host: str, user_id: int, **claims: Any) -> requests.Response:
        """What the widget's ``$authorizedAjax`` does: POST /kommo/session with the one-time JWT."""
        token = self.sandbox.mint_widget_jwt(host, user_id, **claims)
        return requests.post(
            f"{self.url}/kommo/session",
            headers={"X-Auth-Token": token, "Origin": self.kommo_origin(host)},
            json={"location": "advanced_settings"},
            timeout=10,
        )


@contextmanager
def kommo_world(make_settings: Any, **overrides: Any) -> Iterator[KommoWorld]:
    """The world, with ``overrides`` on top of the test settings (e.g. a production start's)."""
    with running_kommo() as kommo:
        holder: dict[str, Any] = {}

        def build(url: str) -> Flask:
            settings = make_settings(PUBLIC_URL=url, **kommo.env(), **overrides)
            app = create_app(settings)
            app.config["TESTING"] = True
            run_jobs_inline(app)
            holder.update(app=app, settings=settings)
            return app

        with serving_ours(build) as ours:
            kommo.point_at(ours.url)
            yield KommoWorld(kommo=kommo, ours=ours, app=holder["app"], settings=holder["settings"])


@pytest.fixture(name="world")
def world_fixture(make_settings: Any) -> Iterator[KommoWorld]:
    with kommo_world(make_settings) as world:
        yield world


def read_account_in_threads(
    settings: Settings, account_id: int, host: str, threads: int, start: Any, results: Any
) -> None:
    """Run in a separate OS process (``multiprocessing`` spawn): its own engine, its own provider,
    ``threads`` concurrent API calls released together by ``start`` (a barrier shared by processes).
    Puts what each call read, or the error it met, on ``results``."""
    from concurrent.futures import ThreadPoolExecutor

    from widget.crypto import TokenBox

    db.configure(settings.database_url)
    provider = KommoProvider(settings)
    box = TokenBox(settings.token_keys)

    def call(_: int) -> str:
        try:
            return provider.client(host, kommo_tokens(db, box, provider, account_id, host)).get_account().name
        except Exception as exc:  # reported to the parent, which asserts on it
            return f"{type(exc).__name__}: {exc}"

    start.wait()
    try:
        with ThreadPoolExecutor(threads) as pool:
            results.put(list(pool.map(call, range(threads))))
    finally:
        db.engine.dispose()
