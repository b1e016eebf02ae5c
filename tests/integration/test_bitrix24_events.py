"""Events from the portal: authenticated by the stored application token; uninstall and reinstall."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support.bitrix24_sandbox import bitrix24_world, post_event
from widget.db import db
from widget.models import Account, AccountSettings, AccountToken, Channel, CrmEvent
from widget.models._base import utcnow
from widget.models.accounts import STATUS_ACTIVE, STATUS_UNINSTALLED


@pytest.fixture
def b24(make_settings):
    with bitrix24_world(make_settings) as world:
        yield world


def _events() -> list[CrmEvent]:
    with db.transaction() as s:
        return list(s.execute(select(CrmEvent).order_by(CrmEvent.id)).scalars())


def _add_settings(account_id: int) -> int:
    with db.transaction() as s:
        channel = Channel(account_id=account_id, transport="whatsapp", name="Sales WhatsApp", address="+15550001")
        s.add(channel)
        s.add(AccountSettings(account_id=account_id, notify_heads_all=True))
        s.flush()
        return channel.id


@pytest.mark.parametrize("kind", ["deal", "contact", "lead"])
def test_crm_changes_are_recorded_for_the_conversations(b24, kind):
    b24.install()
    b24.state.update_record(b24.portal, kind, 1, {"ASSIGNED_BY_ID": "5"}, user_id=1)
    assert b24.state.wait_deliveries()

    assert [d.status for d in b24.state.deliveries] == [200]
    (event,) = _events()
    assert event.event == f"ONCRM{kind.upper()}UPDATE"
    assert (event.entity_type, event.entity_id) == (kind, "1")
    assert event.account_id == b24.account().id
    payload = json.loads(event.payload)
    assert payload["data"]["FIELDS"]["ID"] == "1"
    assert "access_token" not in event.payload  # never keep the event's live token


def test_forged_missing_or_foreign_application_token_is_refused(b24):
    b24.install()
    url = f"{b24.base_url}/bitrix24/events"
    data = {"FIELDS": {"ID": "1"}}

    forged = b24.state.send_event(b24.portal, "ONCRMDEALUPDATE", data, url=url, application_token="x" * 32)
    assert forged.status == 401 and "invalid_application_token" in forged.body
    missing = b24.state.event_payload(b24.portal, "ONCRMDEALUPDATE", data, user_id=1)
    del missing["auth"]["application_token"]
    assert post_event(url, missing).status_code == 401
    unknown = b24.state.send_event(b24.portal, "ONCRMDEALUPDATE", data, url=url, member_id="f" * 32)
    assert unknown.status == 401
    # A forged uninstall changes nothing either.
    fake_uninstall = b24.state.send_event(b24.portal, "ONAPPUNINSTALL", {"CLEAN": "1"}, url=url, application_token="")
    assert fake_uninstall.status == 401

    assert _events() == []
    assert b24.account().status == STATUS_ACTIVE


def test_uninstall_deletes_tokens_at_once_and_keeps_settings_for_the_grace_period(b24):
    b24.install()
    account_id = b24.account().id
    channel_id = _add_settings(account_id)

    (delivery,) = b24.state.uninstall(b24.portal)
    assert delivery.status == 200
    assert "access_token" not in delivery.payload["auth"]  # ONAPPUNINSTALL carries no tokens

    account = b24.account()
    assert account.status == STATUS_UNINSTALLED and account.uninstalled_at is not None
    assert account.application_token_enc is None
    with db.transaction() as s:
        assert s.get(AccountToken, account_id) is None
        assert s.get(Channel, channel_id) is not None
        assert s.get(AccountSettings, account_id).notify_heads_all is True


def test_reinstall_within_grace_restores_the_settings(b24):
    b24.install()
    account_id = b24.account().id
    channel_id = _add_settings(account_id)
    b24.state.uninstall(b24.portal)

    b24.install()

    account = b24.account()
    assert account.id == account_id and account.status == STATUS_ACTIVE
    with db.transaction() as s:
        assert s.get(Channel, channel_id).name == "Sales WhatsApp"
        assert s.get(AccountSettings, account_id).notify_heads_all is True
        assert s.get(AccountToken, account_id) is not None
    # The new installation's application token authenticates events again.
    b24.state.update_record(b24.portal, "deal", 1, {"ASSIGNED_BY_ID": "4"})
    assert b24.state.wait_deliveries()
    assert [e.event for e in _events()] == ["ONCRMDEALUPDATE"]


def test_reinstall_after_the_grace_period_starts_clean(b24):
    b24.install()
    old_id = b24.account().id
    channel_id = _add_settings(old_id)
    b24.state.uninstall(b24.portal)
    with db.transaction() as s:
        s.get(Account, old_id).uninstalled_at = utcnow() - timedelta(days=b24.settings.uninstall_grace_days + 1)

    b24.install()

    account = b24.account()
    assert account.status == STATUS_ACTIVE
    with db.transaction() as s:
        assert s.get(Channel, channel_id) is None
        assert s.get(AccountSettings, account.id) is None


def test_uninstall_with_delete_data_removes_the_settings_now(b24):
    b24.install()
    account_id = b24.account().id
    channel_id = _add_settings(account_id)

    (delivery,) = b24.state.uninstall(b24.portal, clean=True)

    assert delivery.status == 200
    assert b24.account() is None
    with db.transaction() as s:
        assert s.get(Channel, channel_id) is None
