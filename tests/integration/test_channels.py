"""The Channels page: list, add with validation, rename, disable and re-enable, the demo seed."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.integration.test_settings_helpers import Browser, add_channels, kommo_account
from widget.db import db
from widget.models import Channel
from widget.services.channels.manage import DEMO_CHANNELS, list_channels, seed_demo_channels


def _channels(account_id: int) -> list[tuple[str, str, str, bool]]:
    with db.transaction() as s:
        return [(c.transport, c.name, c.address, c.is_enabled) for c in list_channels(s, account_id)]


def test_admin_adds_channels_of_every_transport_in_order(app, client):
    acc = kommo_account()
    admin = Browser(app, client, acc)
    for transport, name, address in [
        ("whatsapp", "Sales", "+34 600 123 456"),
        ("waba", "Official", "+1 (202) 555-0143"),
        ("telegram", "Bot", "t.me/Acme_Support_Bot"),
        ("instagram", "Shop", "@Acme.Shop"),
    ]:
        resp = admin.xhr("/app/channels", {"transport": transport, "name": name, "address": address})
        assert resp.status_code == 201, resp.get_json()
        assert resp.get_json()["channel"]["transport"] == transport

    assert _channels(acc) == [
        ("whatsapp", "Sales", "+34600123456", True),
        ("waba", "Official", "+12025550143", True),
        ("telegram", "Bot", "@acme_support_bot", True),
        ("instagram", "Shop", "@acme.shop", True),
    ]
    page = admin.get("/app/channels").get_data(as_text=True)
    assert page.index("+34600123456") < page.index("+12025550143") < page.index("@acme_support_bot")
    assert page.count('data-testid="channel-row"') == 4


def test_adding_reports_every_problem_next_to_its_field(app, client):
    acc = kommo_account()
    admin = Browser(app, client, acc)
    resp = admin.xhr("/app/channels", {"transport": "whatsapp", "name": " ", "address": "600 123 456"})
    assert resp.status_code == 422
    body = resp.get_json()
    assert set(body["errors"]) == {"name", "address"}
    assert "international format" in body["errors"]["address"]

    resp = admin.xhr("/app/channels", {"transport": "telegram", "name": "Bot", "address": "@no"})
    assert resp.get_json()["errors"] == {"address": resp.get_json()["errors"]["address"]}
    assert "Telegram username" in resp.get_json()["errors"]["address"]
    resp = admin.xhr("/app/channels", {"transport": "instagram", "name": "Shop", "address": "@bad..name"})
    assert "Instagram username" in resp.get_json()["errors"]["address"]
    resp = admin.xhr("/app/channels", {"transport": "sms", "name": "Shop", "address": "+34600123456"})
    assert set(resp.get_json()["errors"]) == {"transport"}
    assert _channels(acc) == []


def test_the_same_number_twice_is_refused_and_a_disabled_one_should_be_enabled(app, client):
    acc = kommo_account()
    admin = Browser(app, client, acc)
    assert (
        admin.xhr("/app/channels", {"transport": "whatsapp", "name": "A", "address": "+34600123456"}).status_code == 201
    )
    again = admin.xhr("/app/channels", {"transport": "whatsapp", "name": "B", "address": "0034 600 123 456"})
    assert again.status_code == 422
    assert "already connected as “A”" in again.get_json()["errors"]["address"]

    ch_id = _only_id(acc)
    admin.xhr(f"/app/channels/{ch_id}/disable")
    again = admin.xhr("/app/channels", {"transport": "whatsapp", "name": "B", "address": "+34600123456"})
    assert "Enable it instead" in again.get_json()["errors"]["address"]


def _only_id(acc: int) -> int:
    with db.transaction() as s:
        return s.execute(select(Channel.id).where(Channel.account_id == acc)).scalar_one()


def test_without_script_errors_come_back_in_the_page_with_what_was_typed(app, client):
    acc = kommo_account()
    admin = Browser(app, client, acc)
    resp = admin.form("/app/channels", {"transport": "waba", "name": "Support", "address": "12345"})
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert 'value="Support"' in page and 'value="12345"' in page
    assert 'data-testid="error-address"' in page and "international format" in page

    ok = admin.form("/app/channels", {"transport": "waba", "name": "Support", "address": "+5511912345678"})
    assert ok.status_code == 302
    assert "notice=added" in ok.headers["Location"] and "st=" in ok.headers["Location"]


def test_rename_disable_and_enable_keep_the_settings(app, client):
    acc = kommo_account()
    (ch,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    admin = Browser(app, client, acc)

    resp = admin.xhr(f"/app/channels/{ch}/rename", {"name": "  Sales Spain  "})
    assert resp.get_json()["channel"]["name"] == "Sales Spain"
    resp = admin.xhr(f"/app/channels/{ch}/rename", {"name": ""})
    assert resp.status_code == 422 and set(resp.get_json()["errors"]) == {"name"}
    page = admin.form(f"/app/channels/{ch}/rename", {"name": "x" * 200})
    assert page.status_code == 422 and 'data-testid="rename-error"' in page.get_data(as_text=True)

    assert admin.xhr(f"/app/channels/{ch}/disable").get_json()["channel"]["is_enabled"] is False
    assert _channels(acc) == [("whatsapp", "Sales Spain", "+34600123456", False)]
    listing = admin.get("/app/channels").get_data(as_text=True)
    assert 'data-testid="enable-button"' in listing and 'data-testid="disable-button"' not in listing
    assert admin.form(f"/app/channels/{ch}/enable").status_code == 302
    assert _channels(acc) == [("whatsapp", "Sales Spain", "+34600123456", True)]


def test_channel_posts_need_the_csrf_token(app, client):
    acc = kommo_account()
    (ch,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    admin = Browser(app, client, acc)
    for path, data in [
        ("/app/channels", {"transport": "whatsapp", "name": "X", "address": "+34600999999"}),
        (f"/app/channels/{ch}/rename", {"name": "Hacked"}),
        (f"/app/channels/{ch}/disable", {}),
    ]:
        assert admin.xhr(path, data, csrf=False).status_code == 400
    assert _channels(acc) == [("whatsapp", "Sales", "+34600123456", True)]


def test_demo_seed_adds_three_transports_once(app, client):
    acc = kommo_account()
    with db.transaction() as s:
        first = seed_demo_channels(s, acc)
    with db.transaction() as s:
        again = seed_demo_channels(s, acc)
    assert len(first) == 3 and again == []
    rows = _channels(acc)
    assert [r[0] for r in rows] == ["whatsapp", "telegram", "instagram"]
    assert [(t, a) for t, _n, a, _e in rows] == [(t, a) for t, _n, a in DEMO_CHANNELS]

    # A renamed or disabled demo channel is still "there": nothing is added back.
    admin = Browser(app, client, acc)
    admin.xhr(f"/app/channels/{first[0]}/rename", {"name": "Renamed"})
    admin.xhr(f"/app/channels/{first[2]}/disable")
    with db.transaction() as s:
        assert seed_demo_channels(s, acc) == []
        assert s.execute(select(func.count()).select_from(Channel).where(Channel.account_id == acc)).scalar() == 3
