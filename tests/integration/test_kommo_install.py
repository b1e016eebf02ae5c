"""Installing and uninstalling Kommo, over real HTTP between our server and the sandbox Kommo."""

from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.support.jobs import CallQueue
from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import kommo_world, world_fixture  # noqa: F401  (fixture)
from widget.db import db
from widget.models import Account, AccountToken, Channel, ChannelRole, ChannelSettings, Employee, PendingInstall, Stage
from widget.models._base import utcnow
from widget.models.accounts import STATUS_ACTIVE, STATUS_UNINSTALLED
from widget.models.security import DONE, FAILED, PENDING


def _count(model, **where):
    with db.transaction() as s:
        query = select(func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return s.execute(query).scalar_one()


def test_install_webhook_creates_the_account_and_reads_its_crm_data(world):
    response = world.sandbox.deliver_install_webhook(DEMO_HOST)
    assert response.status_code == 200

    account = world.account()
    assert account is not None
    assert (account.domain, account.name, account.status) == (DEMO_HOST, "Demo Company", STATUS_ACTIVE)
    assert account.installed_by_crm_user_id == str(world.sandbox.admin_id(DEMO_HOST))
    assert _count(AccountToken, account_id=account.id) == 1
    # The first "Refresh CRM data" ran: every Kommo user and every stage is here.
    assert _count(Employee, account_id=account.id) == len(world.sandbox.users(DEMO_HOST))
    with db.transaction() as s:
        kinds = set(s.execute(select(Stage.kind).where(Stage.account_id == account.id)).scalars())
    assert {"incoming", "open", "won", "lost"} <= kinds

    # The code was exchanged at the account's own host, once, with our registered redirect URI.
    exchanges = world.sandbox.log.entries("POST", "/oauth2/access_token")
    assert [e.host for e in exchanges] == [DEMO_HOST]
    assert exchanges[0].form["redirect_uri"] == [f"{world.url}/kommo/oauth/callback"]


def test_the_embedded_default_gives_the_demo_account_three_channels(world):
    account_id = world.install()
    with db.transaction() as s:
        channels = (
            s.execute(select(Channel.transport).where(Channel.account_id == account_id).order_by(Channel.id))
            .scalars()
            .all()
        )
    assert len(set(channels)) == 3
    # A reinstall does not add them twice.
    world.sandbox.call_revoke_hook(DEMO_HOST)
    assert world.install() == account_id
    assert _count(Channel, account_id=account_id) == 3


def test_a_production_install_gets_no_demo_channels(make_settings):
    """A real install, on a start that did not choose the sandbox (gunicorn with its settings and
    no SANDBOX), keeps the account as the CRM made it: no fictional demo channels."""
    production = {"SANDBOX": "", "GATEWAY_URL": "https://gateway.example.test/v1/messages"}
    with kommo_world(make_settings, **production) as world:
        assert world.settings.sandbox is False
        account_id = world.install()
        assert _count(Employee, account_id=account_id) == len(world.sandbox.users(DEMO_HOST))
        assert _count(Channel, account_id=account_id) == 0


def test_the_webhook_is_answered_before_the_code_is_exchanged(world):
    # Kommo waits 3 s and never resends: the callback stores the code and only nudges the job.
    nudged: list[tuple] = []
    services = world.app.extensions["widget"]
    real = services.jobs
    services.jobs = CallQueue(lambda name, *args, delay=None: nudged.append((name, args)))

    response = world.sandbox.deliver_install_webhook(DEMO_HOST)
    assert response.status_code == 200
    assert world.sandbox.count("POST", "/oauth2/access_token") == 0
    assert [name for name, _ in nudged] == ["kommo_complete_install"]
    with db.transaction() as s:
        pending = s.execute(select(PendingInstall)).scalar_one()
        assert pending.status == PENDING and pending.host == DEMO_HOST

    services.jobs = real
    from widget.jobs.kommo_jobs import kommo_complete_install

    with world.app.app_context():
        kommo_complete_install(*nudged[0][1])
    assert world.account().status == STATUS_ACTIVE


def test_install_by_button_through_kommos_popup(world):
    start = requests.get(f"{world.url}/kommo/connect", allow_redirects=False, timeout=10)
    assert start.status_code == 302
    popup = urlsplit(start.headers["Location"])
    assert f"{popup.scheme}://{popup.netloc}" == world.kommo.url  # the OAuth host comes from configuration
    query = parse_qs(popup.query)
    assert query["client_id"] == [world.sandbox.client_id]

    # The admin picks the account and clicks Allow in the sandbox's popup; Kommo redirects the
    # browser to our callback with code, referer, state and client_id.
    admin = world.sandbox.admin_id(DEMO_HOST)
    allow = requests.post(
        start.headers["Location"].split("?", 1)[0],
        data={"client_id": query["client_id"][0], "state": query["state"][0], "who": f"{DEMO_HOST}|{admin}"},
        allow_redirects=False,
        timeout=10,
    )
    assert allow.status_code in (302, 303)
    callback = allow.headers["Location"]
    page = requests.get(callback, timeout=10)
    assert page.status_code == 200
    assert "Wazzup is connected to demo.kommo.test" in page.text
    assert world.account().status == STATUS_ACTIVE

    # The state works once.
    replay = requests.get(callback, timeout=10)
    assert replay.status_code == 400
    assert "already used" in replay.text


def test_button_callback_with_a_forged_state_is_refused(world):
    url = world.sandbox.button_redirect_url(DEMO_HOST, "forged-state")
    page = requests.get(url, timeout=10)
    assert page.status_code == 400
    assert "not valid" in page.text
    assert world.account() is None
    assert world.sandbox.count("POST", "/oauth2/access_token") == 0


def test_declining_in_the_popup_shows_a_friendly_page(world):
    start = requests.get(f"{world.url}/kommo/connect", allow_redirects=False, timeout=10)
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    page = requests.get(world.sandbox.button_redirect_url(DEMO_HOST, state, deny=True), timeout=10)
    assert page.status_code == 200
    assert "Wazzup was not connected" in page.text
    assert "/kommo/connect" in page.text
    assert world.account() is None


def test_unknown_extra_parameters_are_tolerated(world):
    code = world.sandbox.issue_code(DEMO_HOST)
    query = urlencode({"code": code, "referer": DEMO_HOST, "from_widget": 1, "platform": 2, "whatever": "x"})
    assert requests.get(f"{world.url}/kommo/oauth/callback?{query}", timeout=10).status_code == 200
    assert world.account().status == STATUS_ACTIVE


class _Recorder:
    """A loopback server that records every request it gets (where a leaked secret would go)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self._server = make_server("127.0.0.1", 0, self)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):
        request = Request(environ)
        self.requests.append((request.method, request.full_path, request.get_data(as_text=True)))
        return Response("{}", status=400, content_type="application/json")(environ, start_response)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recorder():
    rec = _Recorder()
    yield rec
    rec.stop()


FOREIGN_REFERERS = [
    "evil.test",
    "demo.kommo.test.evil.test",
    "evilkommo.test",
    "evil.test/demo.kommo.test",
    "demo.kommo.test:8443",
    "admin@demo.kommo.test",
    "evil.test#.kommo.test",
    "evil.test?x=.kommo.test",
    "https://demo.kommo.test",
    "evil.test%2f.kommo.test",
    "demo.kommo.test/../evil.test",
    "127.0.0.1",
]


def test_a_foreign_referer_never_receives_our_client_secret(world, recorder):
    secret = world.sandbox.client_secret
    # Point the account-address template at the recorder: any host we accepted would reach it.
    world.app.extensions["widget"].settings = world.settings.with_overrides(kommo_base_url=recorder.url + "/{host}")
    for referer in FOREIGN_REFERERS:
        query = urlencode({"code": "def502stolen", "referer": referer, "from_widget": 1})
        response = requests.get(f"{world.url}/kommo/oauth/callback?{query}", timeout=10)
        assert response.status_code == 400, referer
    assert _count(PendingInstall) == 0
    assert recorder.requests == []

    # The control: a genuine Kommo host does reach the (recording) token endpoint, with the secret —
    # so the silence above means the foreign hosts were refused, not that nothing could be seen.
    query = urlencode({"code": "def502real", "referer": DEMO_HOST, "from_widget": 1})
    assert requests.get(f"{world.url}/kommo/oauth/callback?{query}", timeout=10).status_code == 200
    assert [(m, p.split("?")[0]) for m, p, _ in recorder.requests] == [("POST", f"/{DEMO_HOST}/oauth2/access_token")]
    assert secret in recorder.requests[0][2]


def test_an_exchange_that_fails_is_retried_by_the_sweep_until_it_succeeds(world):
    world.sandbox.set_fault("error", status=502, path_contains="/oauth2/access_token")
    assert world.sandbox.deliver_install_webhook(DEMO_HOST).status_code == 200
    assert world.account() is None
    with db.transaction() as s:
        pending = s.execute(select(PendingInstall)).scalar_one()
        assert (pending.status, pending.attempts) == (PENDING, 1)
        assert "502" in pending.last_error

    from widget.jobs.kommo_jobs import kommo_sweep_installs

    with world.app.app_context():
        kommo_sweep_installs()  # Kommo still failing: still pending
    world.sandbox.clear_faults()
    with world.app.app_context():
        kommo_sweep_installs()

    assert world.account().status == STATUS_ACTIVE
    with db.transaction() as s:
        pending = s.execute(select(PendingInstall)).scalar_one()
        assert (pending.status, pending.attempts) == (DONE, 3)


def test_the_sweep_gives_up_when_the_code_has_expired(world):
    world.sandbox.set_fault("outage", path_contains="/oauth2/access_token")
    world.sandbox.deliver_install_webhook(DEMO_HOST)
    world.sandbox.clear_faults()
    with db.transaction() as s:
        pending = s.execute(select(PendingInstall)).scalar_one()
        pending.expires_at = utcnow() - timedelta(seconds=1)

    from widget.jobs.kommo_jobs import kommo_sweep_installs

    before = world.sandbox.count("POST", "/oauth2/access_token")
    with world.app.app_context():
        kommo_sweep_installs()
    assert world.sandbox.count("POST", "/oauth2/access_token") == before
    with db.transaction() as s:
        assert s.execute(select(PendingInstall.status)).scalar_one() == FAILED
    assert world.account() is None


def _page(world, account_id):
    from tests.support.factories import identity, session_token

    st = session_token(world.app, identity(account_id, origin=world.kommo_origin()))
    return requests.get(f"{world.url}/app", params={"st": st}, timeout=10)


def test_uninstall_with_kommos_signature_deletes_tokens_and_closes_our_pages(world):
    account_id = world.install()
    assert _page(world, account_id).status_code == 200

    response = world.sandbox.call_revoke_hook(DEMO_HOST)
    assert response.status_code == 200
    account = world.account()
    assert account.status == STATUS_UNINSTALLED
    assert _count(AccountToken, account_id=account_id) == 0
    assert _page(world, account_id).status_code == 403


@pytest.mark.parametrize(
    "forgery",
    [
        {"signature": "0" * 64},
        {"client_uuid": "00000000-0000-0000-0000-000000000000"},
    ],
)
def test_uninstall_with_a_bad_signature_changes_nothing(world, forgery):
    account_id = world.install()
    response = world.sandbox.call_revoke_hook(DEMO_HOST, **forgery)
    assert response.status_code == 401
    assert world.account().status == STATUS_ACTIVE
    assert _count(AccountToken, account_id=account_id) == 1
    assert _page(world, account_id).status_code == 200


def _add_settings(account_id):
    with db.transaction() as s:
        channel = Channel(account_id=account_id, transport="whatsapp", name="Sales WA", address="+15550001")
        s.add(channel)
        s.flush()
        s.add(ChannelSettings(channel_id=channel.id, account_id=account_id, distribution="round_robin"))
        employee = s.execute(select(Employee).where(Employee.account_id == account_id)).scalars().first()
        s.add(ChannelRole(account_id=account_id, channel_id=channel.id, employee_id=employee.id, role="head"))
        return channel.id


def test_reinstall_within_grace_restores_channels_settings_and_roles(world):
    account_id = world.install()
    channel_id = _add_settings(account_id)
    world.sandbox.call_revoke_hook(DEMO_HOST)
    assert world.account().status == STATUS_UNINSTALLED

    assert world.install() == account_id
    assert world.account().status == STATUS_ACTIVE
    with db.transaction() as s:
        assert s.get(ChannelSettings, channel_id).distribution == "round_robin"
        assert s.execute(select(ChannelRole.role).where(ChannelRole.channel_id == channel_id)).scalars().all() == [
            "head"
        ]
    assert _page(world, account_id).status_code == 200


def test_reinstall_after_grace_starts_fresh(world):
    account_id = world.install()
    _add_settings(account_id)
    world.sandbox.call_revoke_hook(DEMO_HOST)
    with db.transaction() as s:
        s.get(Account, account_id).uninstalled_at = utcnow() - timedelta(days=world.settings.uninstall_grace_days + 1)

    new_id = world.install()
    assert world.account().status == STATUS_ACTIVE
    # Nothing of the old account survives (SQLite may hand out the same row id again); the fresh
    # account only has the embedded default's three demo channels, with no settings or roles.
    assert _count(Channel, account_id=new_id) == 3
    assert _count(Channel) == 3
    assert _count(ChannelSettings) == 0
    assert _count(ChannelRole) == 0
