"""The Kommo install callback sends our client secret to the host its ``referer`` names, so only
account hosts are accepted, and an unauthenticated caller cannot make us send it over and over
(finding 1): each accepted callback counts per client address and per host, the same code is
stored once, and only a few codes may wait per host and in all. The requests are counted where
they land: at the sandbox Kommo's token endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from sqlalchemy import func, select

from tests.support.jobs import run_jobs_inline
from tests.support.kommo_sandbox import DEMO_HOST, RunningKommo, running_kommo
from widget import create_app
from widget.db import db
from widget.models import PendingInstall
from widget.services.installs import kommo as kommo_install


@pytest.fixture
def kommo_app(make_settings: Any) -> Iterator[tuple[RunningKommo, Flask]]:
    with running_kommo() as kommo:
        settings = make_settings(**kommo.env())
        app = create_app(settings)
        app.config["TESTING"] = True

        run_jobs_inline(app)
        yield kommo, app


def _callback(app: Flask, referer: str, code: str, address: str = "203.0.113.7") -> Any:
    query = urlencode({"code": code, "referer": referer, "from_widget": 1})
    return app.test_client().get(f"/kommo/oauth/callback?{query}", environ_base={"REMOTE_ADDR": address})


def _token_requests(kommo: RunningKommo) -> int:
    return kommo.sandbox.log.count("POST", "/oauth2/access_token")


def _stored() -> int:
    with db.transaction() as s:
        return int(s.execute(select(func.count()).select_from(PendingInstall)).scalar_one())


def test_a_burst_of_callbacks_for_unknown_hosts_does_not_send_a_token_request_each(kommo_app):
    kommo, app = kommo_app
    answers = [_callback(app, f"shop{n}.kommo.test", f"def502burst{n}").status_code for n in range(30)]

    sent = _token_requests(kommo)
    assert sent < 30, "every callback of the burst made us send our client secret"
    assert sent <= 10 and answers.count(200) == sent, answers  # the per-address limit: 10 a minute
    assert answers.count(429) == 30 - sent
    assert _stored() == sent, "a refused callback stores nothing"

    # Another address is counted on its own: a genuine Kommo install still goes through.
    assert _callback(app, DEMO_HOST, "def502genuine", address="198.51.100.2").status_code == 200
    assert _token_requests(kommo) == sent + 1


@pytest.mark.parametrize(
    "referer",
    [
        "deep.sub.kommo.test",  # more than one label under the domain
        "a.b.c.kommo.test",
        "kommo.test",  # the bare domain
        "www.kommo.test",  # Kommo's own services
        "oauth.kommo.test",
        "api.kommo.test",
        "amojo.kommo.test",
        "developers.kommo.test",
        "WWW.Kommo.test",
    ],
)
def test_only_single_label_account_hosts_receive_our_secret(kommo_app, referer):
    kommo, app = kommo_app
    response = _callback(app, referer, "def502probe")
    assert response.status_code == 400
    assert _stored() == 0 and _token_requests(kommo) == 0


def test_the_same_code_for_the_same_host_is_one_install(kommo_app):
    kommo, app = kommo_app
    # The exchange fails (Kommo down): the code stays pending, as a resent callback would find it.
    kommo.sandbox.set_fault("error", status=502, path_contains="/oauth2/access_token")
    for _ in range(4):
        assert _callback(app, "acme.kommo.test", "def502same").status_code == 200
    assert _stored() == 1
    assert _token_requests(kommo) == 1, "a repeated callback sent the code again"


def test_few_codes_may_wait_per_host_and_in_all(kommo_app, monkeypatch):
    kommo, app = kommo_app
    kommo.sandbox.set_fault("error", status=502, path_contains="/oauth2/access_token")
    for n in range(kommo_install.MAX_PENDING_PER_HOST):
        assert _callback(app, "acme.kommo.test", f"def502wait{n}").status_code == 200
    refused = _callback(app, "acme.kommo.test", "def502one-more", address="198.51.100.3")
    assert refused.status_code == 429
    assert _stored() == kommo_install.MAX_PENDING_PER_HOST

    monkeypatch.setattr(kommo_install, "MAX_PENDING", kommo_install.MAX_PENDING_PER_HOST + 2)
    for n in range(2):
        assert _callback(app, f"other{n}.kommo.test", "def502x", address=f"198.51.100.{10 + n}").status_code == 200
    full = _callback(app, "late.kommo.test", "def502x", address="198.51.100.20")
    assert full.status_code == 503
    assert _stored() == kommo_install.MAX_PENDING_PER_HOST + 2
    assert _token_requests(kommo) == _stored()


def test_one_host_is_limited_whoever_calls(kommo_app):
    kommo, app = kommo_app
    answers = [
        _callback(app, "victim.kommo.test", f"def502v{n}", address=f"192.0.2.{n + 1}").status_code for n in range(8)
    ]
    assert answers.count(200) <= 5 and 429 in answers, answers  # 5 per 10 minutes per host
    assert _token_requests(kommo) == answers.count(200)
