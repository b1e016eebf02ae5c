"""Kommo tokens: refreshed when expired, once per account however many callers (threads and OS
processes), stored before use; a refused refresh asks the admin to reconnect. Plus the client's
behaviour under Kommo's limits and failures."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import update

from tests.support.factories import identity, session_token
from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import read_account_in_threads, world_fixture  # noqa: F401  (fixture)
from widget.crm.errors import CrmAuthError, CrmRateLimited, CrmUnavailable
from widget.crm.kommo.creates import NewContact, NewLead
from widget.db import db
from widget.models import Account, AccountToken
from widget.models._base import utcnow
from widget.models.accounts import STATUS_ACTIVE, STATUS_NEEDS_REAUTH
from widget.services.crm_data.refresh import refresh_crm_data

CALLERS = 50


def _expire_ours(account_id: int) -> None:
    with db.transaction() as s:
        s.execute(
            update(AccountToken)
            .where(AccountToken.account_id == account_id)
            .values(expires_at=utcnow() - timedelta(minutes=5))
        )


def _generation(account_id: int) -> int:
    with db.transaction() as s:
        return s.get(AccountToken, account_id).generation


def _fast(world):
    """Our limiter and the sandbox's both opened up: these tests are about refreshing, not pacing."""
    world.sandbox.set_rate_limit(10_000)
    return world.settings.with_overrides(kommo_rate_per_second=10_000)


def _concurrently(fn, n=CALLERS):
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: fn(), range(n)))


def test_fifty_concurrent_calls_with_an_expired_token_refresh_it_once(world):
    account_id = world.install()
    settings = _fast(world)
    _expire_ours(account_id)
    world.sandbox.expire_tokens(DEMO_HOST)
    generation = _generation(account_id)

    names = _concurrently(lambda: world.client(account_id, DEMO_HOST, settings).get_account().name)

    assert names == ["Demo Company"] * CALLERS
    assert world.sandbox.refresh_count(DEMO_HOST) == 1
    assert _generation(account_id) == generation + 1


def test_a_401_on_a_token_we_thought_valid_refreshes_once_and_retries(world):
    account_id = world.install()
    settings = _fast(world)
    world.sandbox.expire_tokens(DEMO_HOST)  # Kommo expired it; our clock still trusts it

    names = _concurrently(lambda: world.client(account_id, DEMO_HOST, settings).get_account().name)

    assert names == ["Demo Company"] * CALLERS
    assert world.sandbox.refresh_count(DEMO_HOST) == 1
    # The new pair was stored before it was used: the API only ever saw the stored token.
    with db.transaction() as s:
        stored = world.app.extensions["widget"].box.open(s.get(AccountToken, account_id).access_token_enc)
    last = world.sandbox.log.entries("GET", "/api/v4/account")[-1]
    assert last.headers["Authorization"] == f"Bearer {stored}"


@pytest.mark.slow
def test_several_processes_with_an_expired_token_refresh_it_once(world):
    account_id = world.install()
    settings = _fast(world)
    _expire_ours(account_id)
    world.sandbox.expire_tokens(DEMO_HOST)

    processes, threads = 4, 8
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=read_account_in_threads, args=(settings, account_id, DEMO_HOST, threads, start, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    names = [name for _ in workers for name in results.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0

    assert names == ["Demo Company"] * processes * threads
    assert world.sandbox.refresh_count(DEMO_HOST) == 1


def test_a_refused_refresh_asks_the_admin_to_reconnect_and_nothing_crashes(world):
    account_id = world.install()
    world.sandbox.revoke_tokens(DEMO_HOST)  # e.g. the admin regenerated the secret in Kommo
    _expire_ours(account_id)

    with pytest.raises(CrmAuthError):
        world.client(account_id, DEMO_HOST).get_account()
    with db.transaction() as s:
        account = s.get(Account, account_id)
        assert account.status == STATUS_NEEDS_REAUTH
        assert "Token has been revoked" in account.status_reason
    with pytest.raises(CrmAuthError):
        refresh_crm_data(db, world.app.extensions["widget"], account_id)

    st = session_token(world.app, identity(account_id, origin=world.kommo_origin()))
    page = requests.get(f"{world.url}/app", params={"st": st}, timeout=10)
    assert page.status_code == 200
    assert "The CRM no longer accepts our authorization." in page.text
    assert "/kommo/connect" in page.text

    # Reconnecting (a new authorization) clears it.
    world.install()
    with db.transaction() as s:
        assert s.get(Account, account_id).status == STATUS_ACTIVE
    page = requests.get(f"{world.url}/app", params={"st": st}, timeout=10)
    assert "The CRM no longer accepts our authorization." not in page.text


def test_a_429_is_waited_out_as_kommo_asks(world):
    account_id = world.install()
    world.sandbox.reset_log()
    world.sandbox.set_fault("rate_limit", retry_after=1, count=1, path_contains="/api/v4/account")
    assert world.client(account_id, DEMO_HOST).get_account().name == "Demo Company"
    statuses = [e.status for e in world.sandbox.log.entries("GET", "/api/v4/account")]
    assert statuses == [429, 200]


def test_a_long_429_is_handed_to_the_caller_instead_of_sleeping(world):
    account_id = world.install()
    world.sandbox.reset_log()
    world.sandbox.set_fault("rate_limit", retry_after=300, path_contains="/api/v4/account")
    with pytest.raises(CrmRateLimited) as caught:
        world.client(account_id, DEMO_HOST).get_account()
    assert caught.value.retry_after == 300
    assert caught.value.details["status"] == 429  # Kommo's problem+json is kept
    assert world.sandbox.count("GET", "/api/v4/account") == 1


def test_our_pace_never_trips_kommos_seven_per_second(world):
    account_id = world.install()
    world.sandbox.reset_log()
    client = world.client(account_id, DEMO_HOST)
    for _ in range(22):
        client.get_account()
    statuses = [e.status for e in world.sandbox.log.entries(host=DEMO_HOST)]
    assert len(statuses) == 22
    assert 429 not in statuses


def test_an_ip_block_and_a_timeout_are_retried_for_reads(world):
    account_id = world.install()
    world.sandbox.reset_log()
    world.sandbox.set_fault("block", count=2, path_contains="/api/v4/account")
    assert world.client(account_id, DEMO_HOST).get_account().name == "Demo Company"
    assert [e.status for e in world.sandbox.log.entries("GET", "/api/v4/account")] == [403, 403, 200]

    slow = world.settings.with_overrides(http_timeout=0.3)
    world.sandbox.set_fault("latency", seconds=1.0, count=1, path_contains="/api/v4/account")
    assert world.client(account_id, DEMO_HOST, slow).get_account().name == "Demo Company"


def test_a_failed_create_is_not_resent_blindly(world):
    account_id = world.install()
    leads_before = len(world.sandbox.account(DEMO_HOST).leads)
    world.sandbox.reset_log()
    world.sandbox.set_fault("error", status=502, count=1, path_contains="/leads/complex")
    with pytest.raises(CrmUnavailable) as caught:
        world.client(account_id, DEMO_HOST).create_complex_leads([NewLead("From WhatsApp")])
    assert caught.value.status == 502
    assert world.sandbox.count("POST", "/leads/complex") == 1
    assert len(world.sandbox.account(DEMO_HOST).leads) == leads_before


def test_every_call_has_a_timeout(world):
    account_id = world.install()
    slow = world.settings.with_overrides(http_timeout=0.3)
    world.sandbox.set_fault("latency", seconds=1.0, path_contains="/leads/complex")
    client = world.client(account_id, DEMO_HOST, slow)
    with pytest.raises(CrmUnavailable):
        client.create_complex_leads([NewLead("x", contact=NewContact("y"))])
