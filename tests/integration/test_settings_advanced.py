"""The "Advanced" tab: default channel, "notify heads about all messages", the fallback responsible."""

from __future__ import annotations

import re

from tests.integration.test_settings_helpers import Browser, add_channels, employee_ids, kommo_account
from widget.db import db
from widget.models import AccountSettings


def stored(acc: int) -> tuple[int | None, bool, int | None] | None:
    with db.transaction() as s:
        row = s.get(AccountSettings, acc)
        return None if row is None else (row.default_channel_id, row.notify_heads_all, row.fallback_employee_id)


def test_defaults_show_the_installing_admin_as_fallback(app, client):
    acc = kommo_account()
    add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    html = Browser(app, client, acc).get("/app/settings/advanced").get_data(as_text=True)
    assert 'aria-current="page">Advanced' in html
    assert "The administrator who installed the integration (Ana Admin)" in html
    for testid in ("default-channel-select", "notify-heads-toggle", "fallback-select", "advanced-save"):
        assert f'data-testid="{testid}"' in html
    assert "Dario Gone" not in html  # inactive employees cannot be the fallback


def test_advanced_options_are_saved_once(app, client):
    acc = kommo_account()
    wa, _tg = add_channels(acc, ("whatsapp", "Sales", "+34600123456"), ("telegram", "Bot", "@acme_bot"))
    ids = employee_ids(acc)
    admin = Browser(app, client, acc)
    form = {"default_channel": str(wa), "notify_heads_all": "1", "fallback_employee": str(ids["102"])}
    assert admin.xhr("/app/settings/advanced", form).get_json() == {
        "ok": True,
        "changed": True,
        "message": "Settings saved.",
    }
    assert stored(acc) == (wa, True, ids["102"])
    assert admin.xhr("/app/settings/advanced", form).get_json()["changed"] is False

    html = admin.get("/app/settings/advanced").get_data(as_text=True)
    assert f'<option value="{wa}" selected>' in html
    assert re.search(r'name="notify_heads_all" value="1" id="notify-heads-toggle"[^>]*checked', html)
    assert f'<option value="{ids["102"]}" selected>Carla Seller</option>' in html

    # Back to the defaults: the unchecked switch is simply absent from the form.
    assert admin.xhr("/app/settings/advanced", {"default_channel": "", "fallback_employee": ""}).status_code == 200
    assert stored(acc) == (None, False, None)


def test_advanced_refuses_disabled_channels_and_inactive_employees(app, client):
    acc = kommo_account()
    (off,) = add_channels(acc, ("whatsapp", "Old", "+34600123456"), enabled=False)
    ids = employee_ids(acc)
    admin = Browser(app, client, acc)
    resp = admin.xhr("/app/settings/advanced", {"default_channel": str(off), "fallback_employee": str(ids["103"])})
    assert resp.status_code == 422
    errors = resp.get_json()["errors"]
    assert set(errors) == {"default_channel", "fallback_employee"}
    assert "Dario Gone is inactive" in errors["fallback_employee"]
    assert stored(acc) is None

    page = admin.form("/app/settings/advanced", {"default_channel": str(off), "fallback_employee": ""})
    assert page.status_code == 422
    assert 'data-testid="error-default_channel"' in page.get_data(as_text=True)
    assert re.search(r'id="error-default_channel"[^>]*>This channel is disabled', page.get_data(as_text=True))


def test_a_default_channel_disabled_later_is_flagged(app, client):
    acc = kommo_account()
    (wa,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    admin = Browser(app, client, acc)
    admin.xhr("/app/settings/advanced", {"default_channel": str(wa)})
    admin.xhr(f"/app/channels/{wa}/disable")
    html = admin.get("/app/settings/advanced").get_data(as_text=True)
    assert 'data-testid="flag-default_channel"' in html


def test_without_script_saving_redirects_with_a_notice(app, client):
    acc = kommo_account()
    resp = Browser(app, client, acc).form("/app/settings/advanced", {"notify_heads_all": "1"})
    assert resp.status_code == 302 and "notice=saved" in resp.headers["Location"]
    assert "Settings saved." in client.get(resp.headers["Location"]).get_data(as_text=True)
