"""The portal's stored tokens: one refresh at a time, new pair first, "needs reinstall" when dead."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from sandbox.bitrix24.reqlog import KIND_REST, KIND_TOKEN
from tests.support.bitrix24_sandbox import Bitrix24Sandbox, bitrix24_world
from widget.crm.errors import CrmAuthError
from widget.crm.http import RetryPolicy
from widget.db import db
from widget.models import Account, AccountToken
from widget.models.accounts import STATUS_ACTIVE, STATUS_NEEDS_REAUTH
from widget.services.accounts.crm_clients import bitrix24_client
from widget.services.crm_data.bitrix24 import refresh_bitrix24_data

NO_WAIT = RetryPolicy(sleep=lambda _s: None)


@pytest.fixture
def b24(make_settings):
    with bitrix24_world(make_settings) as world:
        yield world


def _services(world) -> Any:
    return world.app.extensions["widget"]


def _generation(account_id: int) -> int:
    with db.transaction() as s:
        return s.get(AccountToken, account_id).generation


def _refreshes(world) -> int:
    return world.state.log.count(kind=KIND_TOKEN, grant_type="refresh_token")


def test_sixty_concurrent_calls_with_an_expired_token_refresh_once(make_settings):
    with bitrix24_world(
        make_settings, rate=1000, burst=1000, BITRIX24_RATE_PER_SECOND=1000, BITRIX24_BURST=1000
    ) as world:
        world.install()
        account_id = world.account().id
        before = _generation(account_id)
        world.state.expire_tokens_now(world.portal)  # the portal says expired; our clock does not know
        world.state.reset_log()

        barrier = threading.Barrier(60)
        results: list[str] = []
        errors: list[BaseException] = []

        def worker() -> None:
            client = bitrix24_client(db, _services(world), account_id)
            barrier.wait()
            try:
                results.append(client.profile().user_id)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(60)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

        assert errors == []
        assert results == ["1"] * 60
        assert _refreshes(world) == 1
        assert _generation(account_id) == before + 1
        assert world.account().status == STATUS_ACTIVE


def test_a_refused_refresh_marks_the_portal_needs_reinstall_and_the_admin_sees_it(b24):
    b24.install()
    _, opened = b24.open(user_id=1)
    st = opened.headers["Location"].split("st=", 1)[1]
    b24.state.expire_tokens_now(b24.portal)
    b24.state.expire_refresh_tokens(b24.portal)  # 180 days passed: invalid_grant

    with pytest.raises(CrmAuthError):
        refresh_bitrix24_data(db, _services(b24), b24.account().id)

    account = b24.account()
    assert account.status == STATUS_NEEDS_REAUTH
    assert "invalid_grant" in account.status_reason
    page = requests.get(f"{b24.base_url}/bitrix24/home?st={st}", timeout=10)
    assert page.status_code == 200
    assert 'id="needs-reinstall"' in page.text and "reinstalled" in page.text


def test_an_admin_opening_the_app_mends_a_broken_refresh_chain(b24):
    b24.install()
    b24.state.expire_tokens_now(b24.portal)
    b24.state.expire_refresh_tokens(b24.portal)
    with pytest.raises(CrmAuthError):
        refresh_bitrix24_data(db, _services(b24), b24.account().id)

    b24.open(user_id=2)  # an employee's token is not stored for the portal
    assert b24.account().status == STATUS_NEEDS_REAUTH
    b24.open(user_id=1)  # a verified admin's fresh pair is

    assert b24.account().status == STATUS_ACTIVE
    report = refresh_bitrix24_data(db, _services(b24), b24.account().id)
    assert report.requests == 2


def test_invalid_token_is_worth_one_refresh(b24):
    b24.install()
    b24.state.invalidate_tokens(b24.portal)
    b24.state.reset_log()

    report = refresh_bitrix24_data(db, _services(b24), b24.account().id)

    assert _refreshes(b24) == 1
    assert [e.status for e in b24.state.log.entries(kind=KIND_REST)] == [401, 200, 200]
    assert report.requests == 3
    assert b24.account().status == STATUS_ACTIVE


def test_invalid_token_after_its_refresh_means_reinstall(b24):
    b24.install()
    b24.state.reject_tokens(b24.portal, "invalid_token")
    b24.state.reset_log()

    with pytest.raises(CrmAuthError):
        refresh_bitrix24_data(db, _services(b24), b24.account().id)

    assert _refreshes(b24) == 1
    assert b24.state.log.count(kind=KIND_REST) == 2
    account = b24.account()
    assert account.status == STATUS_NEEDS_REAUTH and "invalid_token" in account.status_reason


def test_application_not_found_means_reinstall(b24):
    b24.install()
    inst = b24.state.portal(b24.portal.member_id).installation
    # The ONAPPUNINSTALL event is lost (Bitrix24 never retries, reference §5.2) ...
    inst.bindings = [b for b in inst.bindings if b.code != "ONAPPUNINSTALL"]
    b24.state.uninstall(b24.portal)
    assert b24.account().status == STATUS_ACTIVE
    b24.state.reset_log()

    # ... so we learn it from the portal's answer, without a pointless refresh.
    with pytest.raises(CrmAuthError):
        refresh_bitrix24_data(db, _services(b24), b24.account().id)

    assert _refreshes(b24) == 0
    account = b24.account()
    assert account.status == STATUS_NEEDS_REAUTH and "APPLICATION_NOT_FOUND" in account.status_reason


def test_unknown_stored_token_means_reinstall(b24):
    b24.install()
    account_id = b24.account().id
    services = _services(b24)
    with db.transaction() as s:
        s.get(AccountToken, account_id).access_token_enc = services.box.seal("not-a-token-the-portal-knows")

    with pytest.raises(CrmAuthError):
        refresh_bitrix24_data(db, services, account_id)
    assert b24.account().status == STATUS_NEEDS_REAUTH
    assert "NO_AUTH_FOUND" in b24.account().status_reason


def test_refresh_only_goes_to_the_configured_oauth_server(b24):
    b24.install()
    account_id = b24.account().id
    evil = Bitrix24Sandbox()
    try:
        with db.transaction() as s:
            s.get(Account, account_id).server_endpoint = f"http://127.0.0.5:{evil.port}/oauth-server/rest/"
        evil.server.listen("127.0.0.5", evil.port)
        b24.state.expire_tokens_now(b24.portal)

        with pytest.raises(CrmAuthError):
            bitrix24_client(db, _services(b24), account_id, retry=NO_WAIT).profile()

        assert evil.state.log.entries() == []
        assert _refreshes(b24) == 0
        assert b24.account().status == STATUS_NEEDS_REAUTH
    finally:
        evil.stop()
