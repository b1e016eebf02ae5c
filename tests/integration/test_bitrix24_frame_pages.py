"""Every page we show in a Bitrix24 frame loads the BX24 library and our frame script (which sizes
the frame), and may: offline our bridge from our origin, in production Bitrix24's official library,
whose origin the page's Content-Security-Policy then allows. Kommo pages load neither."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask

from tests.integration.test_settings_helpers import Browser, add_channels, bitrix_account, kommo_account
from tests.support.jobs import run_jobs_inline
from widget import create_app
from widget.models.accounts import CRM_BITRIX24

BRIDGE = "/bitrix24/assets/bx24-bridge.js"
OFFICIAL = "https://api.bitrix24.com/api/v1/"
PAGES = (
    ("/bitrix24/home", {}),
    ("/app/settings", {}),
    ("/app/settings/advanced", {}),
    ("/app/channels", {}),
    ("/app", {"view": "chats"}),
)


def script_src(csp: str) -> list[str]:
    found = re.search(r"script-src ([^;]+)", csp)
    assert found, csp
    return found.group(1).split()


def test_every_bitrix24_page_loads_the_bridge_and_the_frame_script(app, client):
    acc = bitrix_account()
    add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    admin = Browser(app, client, acc, user="1", crm=CRM_BITRIX24)
    for path, query in PAGES:
        page = admin.get(path, **query)
        html = page.get_data(as_text=True)
        assert page.status_code == 200, path
        assert BRIDGE in html and "/static/frame.js" in html, path
        assert script_src(page.headers["Content-Security-Policy"]) == ["'self'"], path
    # A refused open of our Bitrix24 routes (no session yet) is shown in the frame too.
    refused = client.get("/bitrix24/app")
    assert refused.status_code == 400 and BRIDGE in refused.get_data(as_text=True)


def test_kommo_pages_load_neither(app, client):
    acc = kommo_account()
    add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    admin = Browser(app, client, acc)
    for path, query in PAGES[1:]:
        html = admin.get(path, **query).get_data(as_text=True)
        assert "bx24" not in html and "/static/frame.js" not in html, path


@pytest.fixture
def production(make_settings) -> Iterator[Flask]:
    application = create_app(make_settings().with_overrides(sandbox=False))
    application.config["TESTING"] = True
    run_jobs_inline(application)
    yield application


def test_in_production_the_official_library_is_loaded_and_allowed(production):
    client = production.test_client()
    acc = bitrix_account()
    add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    admin = Browser(production, client, acc, user="1", crm=CRM_BITRIX24)
    for path, query in PAGES:
        page = admin.get(path, **query)
        html = page.get_data(as_text=True)
        assert f'<script src="{OFFICIAL}"></script>' in html and BRIDGE not in html, path
        assert script_src(page.headers["Content-Security-Policy"]) == ["'self'", "https://api.bitrix24.com"], path
    kommo = Browser(production, client, kommo_account())
    assert script_src(kommo.get("/app/settings").headers["Content-Security-Policy"]) == ["'self'"]
