"""The install use case with a hand-written fake of our Kommo provider (no HTTP here; the wire is
covered against the sandbox in tests/integration/test_kommo_install.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.jobs import CallQueue
from widget.crm.errors import CrmAuthError, CrmUnavailable
from widget.crm.kommo.events import verify_account_host
from widget.crm.kommo.payloads import KommoAccount, KommoPipeline, KommoStatus, KommoUser
from widget.crm.tokens import TokenPair
from widget.db import db
from widget.extensions import AppServices
from widget.models import Account, AccountToken, Channel, Employee, PendingInstall
from widget.models._base import utcnow
from widget.models.accounts import STATUS_ACTIVE
from widget.models.kommo import KommoExchangedTokens
from widget.models.security import DONE, FAILED, PENDING
from widget.services.accounts.state import mark_uninstalled
from widget.services.installs.kommo import complete_install, record_install_code

HOST = "acme.kommo.test"


@dataclass
class FakeClient:
    provider: FakeProvider
    request_count: int = 0

    def get_account(self) -> KommoAccount:
        self.provider.calls.append("account")
        if self.provider.account_errors:
            raise self.provider.account_errors.pop(0)
        return KommoAccount(id=31000001, name="Acme", subdomain="acme", current_user_id=7)

    def list_users(self) -> list[KommoUser]:
        self.request_count += 1
        return [KommoUser(7, "Admin", "a@acme", "es", True, True), KommoUser(8, "Rep", "r@acme", "en", False, True)]

    def list_pipelines(self) -> tuple[KommoPipeline, ...]:
        self.request_count += 1
        statuses = (KommoStatus(5, "Incoming", 10, 1), KommoStatus(142, "Won", 10000, 0))
        return (KommoPipeline(1, "Sales", 1, True, False, statuses),)


@dataclass
class FakeProvider:
    """Stands in for ``KommoProvider``: the same methods the install use case calls."""

    services: AppServices
    exchange_errors: list[Exception] = field(default_factory=list)
    account_errors: list[Exception] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    @property
    def box(self):
        return self.services.box

    @property
    def settings(self):
        return self.services.settings

    def verified_host(self, referer):
        return verify_account_host(referer, ("kommo.test",))

    def exchange_code(self, host, code):
        self.calls.append(f"exchange:{code}")
        if self.exchange_errors:
            raise self.exchange_errors.pop(0)
        return TokenPair("access-" + code, "refresh-" + code, utcnow() + timedelta(days=1))

    def client(self, host, tokens):
        return FakeClient(self)


@pytest.fixture
def services(app):
    services = app.extensions["widget"]
    # Jobs the install queues (webhook subscription, retries) are recorded, not run: these tests
    # drive complete_install directly with a fake provider and no Kommo to talk to.
    services.queued = []
    services.jobs = CallQueue(lambda name, *args, delay=None: services.queued.append((name, args)))
    return services


@pytest.fixture
def provider(services):
    return FakeProvider(services)


def _record(provider, code="c0de", now=None):
    with db.transaction() as s:
        return record_install_code(s, provider, provider.box, HOST, code, "widget", now)[0].id


def _install(services, provider, pending_id, **kw):
    return complete_install(db, services, pending_id, provider=provider, **kw)


def test_the_code_is_stored_encrypted(provider):
    pid = _record(provider, code="def502-plain-code")
    with db.transaction() as s:
        row = s.get(PendingInstall, pid)
        assert b"def502-plain-code" not in row.code_enc
        assert provider.box.open(row.code_enc) == "def502-plain-code"
        assert row.expires_at - row.received_at == timedelta(minutes=20)


def test_install_creates_an_active_account_with_tokens_and_synced_employees(services, provider):
    outcome = _install(services, provider, _record(provider))
    assert outcome.status == DONE
    with db.transaction() as s:
        account = s.get(Account, outcome.account_id)
        assert (account.external_id, account.domain, account.status) == ("31000001", HOST, STATUS_ACTIVE)
        assert account.installed_by_crm_user_id == "7"
        assert s.get(AccountToken, account.id) is not None
        names = s.execute(select(Employee.name).where(Employee.account_id == account.id)).scalars().all()
        assert sorted(names) == ["Admin", "Rep"]
        assert s.get(KommoExchangedTokens, outcome.account_id) is None


def test_a_kommo_outage_leaves_the_install_pending_then_a_retry_completes_it(services, provider):
    provider.exchange_errors = [CrmUnavailable("Kommo answered 502")]
    pid = _record(provider)
    first = _install(services, provider, pid)
    assert first.status == PENDING and "502" in first.error
    second = _install(services, provider, pid)
    assert second.status == DONE
    with db.transaction() as s:
        assert s.get(PendingInstall, pid).attempts == 2


def test_a_refused_code_fails_for_good(services, provider):
    provider.exchange_errors = [CrmAuthError("Authorization code has been revoked")]
    pid = _record(provider)
    assert _install(services, provider, pid).status == FAILED
    assert _install(services, provider, pid).status == FAILED
    assert provider.calls.count("exchange:c0de") == 1


def test_an_expired_code_is_not_sent_to_kommo(services, provider):
    pid = _record(provider, now=utcnow() - timedelta(minutes=21))
    outcome = _install(services, provider, pid)
    assert outcome.status == FAILED and "expired" in outcome.error
    assert provider.calls == []


def test_a_spent_code_is_never_sent_twice_when_reading_the_account_fails(services, provider):
    # The code works once: once exchanged, a retry continues from the stored pair.
    provider.account_errors = [CrmUnavailable("timeout")]
    pid = _record(provider)
    assert _install(services, provider, pid).status == PENDING
    assert _install(services, provider, pid).status == DONE
    assert provider.calls.count("exchange:c0de") == 1
    assert provider.calls.count("account") == 2


def test_a_finished_install_is_not_redone(services, provider):
    pid = _record(provider)
    first = _install(services, provider, pid)
    again = _install(services, provider, pid)
    assert (again.status, again.account_id) == (DONE, first.account_id)
    assert provider.calls.count("exchange:c0de") == 1


def _uninstall(account_id, days_ago):
    with db.transaction() as s:
        account = s.get(Account, account_id)
        mark_uninstalled(s, account, utcnow() - timedelta(days=days_ago))
        s.add(Channel(account_id=account_id, transport="whatsapp", name="Main", address="+1555"))


def test_reinstall_within_grace_restores_the_same_account(services, provider):
    first = _install(services, provider, _record(provider, "one"))
    _uninstall(first.account_id, days_ago=29)
    second = _install(services, provider, _record(provider, "two"))
    assert second.account_id == first.account_id
    with db.transaction() as s:
        assert s.get(Account, first.account_id).status == STATUS_ACTIVE
        assert s.execute(select(Channel).where(Channel.account_id == first.account_id)).scalars().all()


def test_reinstall_after_grace_starts_fresh(services, provider):
    first = _install(services, provider, _record(provider, "one"))
    _uninstall(first.account_id, days_ago=31)
    second = _install(services, provider, _record(provider, "two"))
    assert second.status == DONE
    with db.transaction() as s:
        # The old row and its settings are gone (SQLite may reuse the id, so compare contents).
        assert s.execute(select(Account)).scalars().one().status == STATUS_ACTIVE
        addresses = s.execute(select(Channel.address)).scalars().all()
    # Only the embedded default's three demo channels: the one added before the uninstall is gone.
    assert "+1555" not in addresses
    assert len(addresses) == 3


def test_the_sweep_forgets_finished_installs_after_a_week(services, provider):
    from widget.services.installs.kommo import sweep_pending_installs

    old_finished = _record(provider, "old", now=utcnow() - timedelta(days=8))
    _install(services, provider, old_finished)
    recent_failed = _record(provider, "recent", now=utcnow() - timedelta(days=1))
    with db.transaction() as s:
        s.get(PendingInstall, recent_failed).status = FAILED
    sweep_pending_installs(db, services)
    with db.transaction() as s:
        assert s.get(PendingInstall, old_finished) is None
        assert s.get(PendingInstall, recent_failed) is not None
