"""One account can never read or change another's channels or settings, whatever ids are sent."""

from __future__ import annotations

from sqlalchemy import select

from tests.integration.test_settings_helpers import (
    Browser,
    add_channels,
    employee_ids,
    kommo_account,
    kommo_form,
)
from widget.db import db
from widget.models import AccountSettings, Channel, ChannelRole, ChannelSettings
from widget.models.trial_messages import TestMessageRequest


def snapshot_of(acc: int) -> dict:
    with db.transaction() as s:
        return {
            "channels": s.execute(
                select(Channel.id, Channel.name, Channel.is_enabled).where(Channel.account_id == acc)
            ).all(),
            "settings": s.execute(
                select(ChannelSettings.channel_id, ChannelSettings.distribution, ChannelSettings.updated_at).where(
                    ChannelSettings.account_id == acc
                )
            ).all(),
            "roles": s.execute(
                select(ChannelRole.employee_id, ChannelRole.role).where(ChannelRole.account_id == acc)
            ).all(),
            "account": s.execute(
                select(AccountSettings.default_channel_id, AccountSettings.fallback_employee_id).where(
                    AccountSettings.account_id == acc
                )
            ).all(),
            "test": s.execute(select(TestMessageRequest.channel_id).where(TestMessageRequest.account_id == acc)).all(),
        }


def test_every_route_refuses_another_accounts_ids(app, client):
    victim = kommo_account("2002", "victim.kommo.test")
    (v_ch,) = add_channels(victim, ("whatsapp", "Victim secret line", "+34600999999"))
    v_emp = employee_ids(victim)
    victim_admin = Browser(app, client, victim)
    victim_admin.xhr(f"/app/settings/channels/{v_ch}", kommo_form({v_emp["101"]: ("seller", True)}))
    victim_admin.xhr("/app/settings/advanced", {"default_channel": str(v_ch), "fallback_employee": str(v_emp["102"])})
    before = snapshot_of(victim)

    attacker = kommo_account("3003", "attacker.kommo.test")
    (a_ch,) = add_channels(attacker, ("telegram", "Mine", "@attacker_bot"))
    a_emp = employee_ids(attacker)
    admin = Browser(app, client, attacker)

    # Pages: another account's channel is "not found", and its name never shows.
    for path, params in [("/app/settings", {"channel": v_ch}), ("/app", {"channel": v_ch})]:
        resp = admin.get(path, **params)
        assert resp.status_code == 404, path
        assert "Victim secret line" not in resp.get_data(as_text=True)
    for path in ("/app/settings", "/app/settings/advanced", "/app/channels"):
        html = admin.get(path).get_data(as_text=True)
        assert "Victim secret line" not in html and "+34600999999" not in html, path
        assert "victim" not in html.lower(), path

    # Writes aimed at the victim's channel.
    for path in (
        f"/app/settings/channels/{v_ch}",
        f"/app/settings/channels/{v_ch}/preset/shop_support",
        f"/app/channels/{v_ch}/rename",
        f"/app/channels/{v_ch}/disable",
        f"/app/channels/{v_ch}/enable",
    ):
        resp = admin.xhr(path, {**kommo_form(), "name": "pwned"})
        assert resp.status_code == 404, path

    # The victim's employees in my own channel's form, and the victim's ids in my Advanced tab.
    resp = admin.xhr(f"/app/settings/channels/{a_ch}", kommo_form({v_emp["101"]: ("head", True)}))
    assert resp.status_code == 422
    assert list(resp.get_json()["errors"]) == [f"roles.{v_emp['101']}"]
    preset = admin.xhr(f"/app/settings/channels/{a_ch}/preset/shop_support", kommo_form({v_emp["102"]: ("qc", False)}))
    assert set(preset.get_json()["setup"]["roles"]) >= {str(a_emp["100"])}
    assert str(v_emp["101"]) not in preset.get_json()["setup"]["roles"]
    resp = admin.xhr("/app/settings/advanced", {"default_channel": str(v_ch), "fallback_employee": str(v_emp["102"])})
    assert resp.status_code == 422
    assert set(resp.get_json()["errors"]) == {"default_channel", "fallback_employee"}

    # Refresh and the test message act on the caller's own account only.
    calls: list[int] = []

    def fake_refresh(database, services, account_id):
        from widget.domain.crm import SyncReport

        calls.append(account_id)
        return SyncReport()

    app.extensions["widget"].refresh_crm_data = fake_refresh
    admin.xhr("/app/settings/refresh", {"account_id": str(victim)})
    assert calls == [attacker]
    admin.xhr("/app/settings/test-message", {"account_id": str(victim), "channel": str(v_ch)})

    # A channel added by the attacker is theirs, whatever account id the form claims.
    admin.xhr("/app/channels", {"transport": "whatsapp", "name": "x", "address": "+34600111111", "account_id": victim})
    assert snapshot_of(victim) == before


def test_a_session_token_from_another_account_does_not_open_this_one(app, client):
    victim = kommo_account("2002", "victim.kommo.test")
    (v_ch,) = add_channels(victim, ("whatsapp", "Victim secret line", "+34600999999"))
    attacker = kommo_account("3003", "attacker.kommo.test")
    admin = Browser(app, client, attacker)
    # The session token names the account; a query parameter cannot switch it.
    resp = client.get("/app/settings", query_string={"st": admin.st, "account_id": victim, "channel": v_ch})
    assert resp.status_code == 404
