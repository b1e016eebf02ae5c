"""The "CRM integration" tab as an admin sees it: what is on the page, for whom, and safely."""

from __future__ import annotations

import json
import re

from tests.integration.test_settings_helpers import (
    Browser,
    add_channels,
    bitrix_account,
    employee_ids,
    kommo_account,
    kommo_form,
    kommo_snapshot,
)
from tests.support.factories import identity, launch_token, seed_crm, session_token
from widget.db import db
from widget.domain.crm import CrmUser
from widget.models import Account
from widget.services.accounts.state import mark_uninstalled

XSS = "<img src=x onerror=alert(1)>"


def page_data(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="settings-data">(.*?)</script>', html, re.S)
    assert found
    return json.loads(found.group(1))


def test_admin_lands_on_the_crm_integration_tab_of_the_first_enabled_channel(app, client):
    acc = kommo_account()
    _off, first, _second = add_channels(
        acc, ("whatsapp", "Old", "+34600000001"), ("telegram", "Bot", "@acme_bot"), ("waba", "API", "+34600000002")
    )
    admin = Browser(app, client, acc)
    admin.xhr(f"/app/channels/{_off}/disable")

    resp = client.get(f"/app/launch?lt={launch_token(app, identity(acc))}")
    assert resp.status_code == 302
    page = client.get(resp.headers["Location"])
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'aria-current="page">CRM integration' in html
    assert f'<option value="{first}" selected>' in html
    for testid in (
        "top-panel",
        "save-button",
        "unsaved-indicator",
        "channel-select",
        "open-roles",
        "refresh-crm",
        "roles-dialog",
        "roles-filter",
        "roles-apply",
        "roles-cancel",
        "pipeline-select",
        "stage-select",
        "distribution-first_reply",
        "distribution-round_robin",
        "preset-classic_sales",
        "preset-shop_support",
        "preset-single_person",
        "test-message-dialog",
        "admin-head-hint",
        "kommo-caveat",
        "incoming-hint",
    ):
        assert f'data-testid="{testid}"' in html, testid
    # No script of ours inline (CSP script-src 'self'): only the JSON data block and our files.
    assert "onclick=" not in html and "onchange=" not in html
    scripts = re.findall(r"<script([^>]*)>", html)
    assert all('type="application/json"' in s or "src=" in s for s in scripts)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_every_employee_is_listed_and_inactive_ones_cannot_be_given_a_role(app, client):
    acc = kommo_account()
    add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    ids = employee_ids(acc)
    html = Browser(app, client, acc).get("/app/settings").get_data(as_text=True)
    assert html.count('data-testid="employee-row"') == 5  # four employees + the row template
    dario = re.search(rf'<tr[^>]*data-employee-id="{ids["103"]}"[^>]*>.*?</tr>', html, re.S)
    assert dario and 'data-inactive="1"' in dario.group(0)
    assert re.search(rf'<select name="role-{ids["103"]}"[^>]*disabled', dario.group(0))
    assert 'data-testid="inactive-badge"' in dario.group(0)
    # Every control is named: by its column header and the employee's name.
    assert f'aria-labelledby="col-role emp-{ids["101"]}"' in html
    assert f'aria-labelledby="col-new emp-{ids["101"]}"' in html
    # The admin looking at the page is marked, with the Head recommendation.
    ana = re.search(rf'<tr[^>]*data-employee-id="{ids["100"]}"[^>]*>.*?</tr>', html, re.S)
    assert ana and "badge-you" in ana.group(0) and 'data-testid="head-recommended"' in ana.group(0)


def test_names_from_the_crm_stay_text(app, client):
    acc = kommo_account()
    users = (CrmUser("100", XSS, "", True, True), CrmUser("101", "Bruno", "", True, False))
    seed_crm(acc, kommo_snapshot(users))
    ch = add_channels(acc, ("whatsapp", XSS, "+34600123456"))[0]
    admin = Browser(app, client, acc)
    for path in ("/app/settings", "/app/settings/advanced", "/app/channels"):
        html = admin.get(path).get_data(as_text=True)
        assert XSS not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path
    html = admin.get("/app/settings").get_data(as_text=True)
    # The JSON the script reads escapes markup too (no "</script>" break-out possible).
    raw = re.search(r'id="settings-data">(.*?)</script>', html, re.S).group(1)
    assert "<img" not in raw
    assert page_data(html)["employees"][0]["name"] == XSS

    # A validation message naming the employee keeps the name as text too.
    ids = employee_ids(acc)
    resp = admin.form(f"/app/settings/channels/{ch}", kommo_form({ids["100"]: ("qc", True)}))
    assert resp.status_code == 422
    assert XSS not in resp.get_data(as_text=True)
    assert (
        XSS
        in admin.xhr(f"/app/settings/channels/{ch}", kommo_form({ids["100"]: ("qc", True)})).get_json()["errors"][
            f"roles.{ids['100']}.gets_new_clients"
        ]
    )


def test_employee_who_is_not_admin_is_refused_politely(app, client):
    acc = kommo_account()
    ch = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))[0]
    rep = Browser(app, client, acc, user="101", admin=False)
    home = rep.get("/app")
    assert home.status_code == 200
    assert 'data-testid="employee-welcome"' in home.get_data(as_text=True)
    assert 'data-testid="roles-dialog"' not in home.get_data(as_text=True)

    for path in ("/app/settings", "/app/settings/advanced", "/app/channels"):
        resp = rep.get(path)
        assert resp.status_code == 403
        html = resp.get_data(as_text=True)
        assert "for CRM administrators" in html and 'data-testid="open-chats"' in html
    for path in (f"/app/settings/channels/{ch}", "/app/settings/refresh", "/app/channels", "/app/settings/advanced"):
        resp = rep.xhr(path, {})
        assert resp.status_code == 403
        assert resp.get_json()["error"] == "forbidden"


def test_after_an_uninstall_everyone_is_told_so(app, client):
    acc = kommo_account()
    admin = Browser(app, client, acc)
    rep = Browser(app, client, acc, user="101", admin=False)
    rep.csrf  # noqa: B018  (taken while the account is installed)
    with db.transaction() as s:
        mark_uninstalled(s, s.get(Account, acc))
    for who in (admin, rep):
        resp = who.get("/app/settings")
        assert resp.status_code == 403
        assert "uninstalled" in resp.get_data(as_text=True)
    assert rep.xhr("/app/settings/refresh").get_json()["error"] == "forbidden"


def test_the_page_speaks_the_crm_users_language(app, client):
    acc = kommo_account()
    add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    st = session_token(app, identity(acc, lang="es"))
    html = client.get("/app/settings", query_string={"st": st}).get_data(as_text=True)
    assert '<html lang="es">' in html
    assert "Seleccionar roles" in html  # the help text's own words for "Select roles"
    assert page_data(html)["i18n"]["head"] != "Head"  # the script's words come translated too


def test_no_channel_yet_shows_how_to_add_one_and_the_crm_data(app, client):
    acc = kommo_account()
    html = Browser(app, client, acc).get("/app").get_data(as_text=True)
    assert 'data-testid="no-channels"' in html and 'data-testid="add-first-channel"' in html
    assert "Bruno Seller" in html


def test_kommo_stage_list_includes_incoming_leads_and_hides_closed_stages(app, client):
    acc = kommo_account()
    add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    html = Browser(app, client, acc).get("/app/settings").get_data(as_text=True)
    stage_select = re.search(r'<select name="stage".*?</select>', html, re.S).group(0)
    assert '<option value="10" selected>Incoming leads</option>' in stage_select  # the default
    assert "Closed - won" not in stage_select and "Closed - lost" not in stage_select
    assert 'value="new_client_entity"' not in html and 'name="new_client_entity" value="lead"' in html
    data = page_data(html)
    assert [p["name"] for p in data["pipelines"]] == ["Sales", "Wholesale"]
    assert data["urls"]["refresh"] == "/app/settings/refresh"  # the XHR carries the token in a header


def test_bitrix24_offers_deal_or_lead_and_only_deal_in_simple_crm(app, client):
    acc = bitrix_account()
    add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    html = Browser(app, client, acc).get("/app/settings").get_data(as_text=True)
    assert 'data-testid="entity-deal"' in html and 'data-testid="entity-lead"' in html
    assert 'data-testid="kommo-caveat"' not in html and 'data-testid="incoming-hint"' not in html
    assert 'data-crm="bitrix24"' in html

    simple = bitrix_account("simple", external_id="m-2")
    add_channels(simple, ("whatsapp", "Sales", "+34600123457"))
    html = Browser(app, client, simple).get("/app/settings").get_data(as_text=True)
    assert 'data-testid="entity-deal"' in html and 'data-testid="entity-lead"' not in html
    assert 'data-testid="simple-crm-note"' in html


def test_a_pipeline_that_vanished_from_the_crm_is_flagged(app, client):
    acc = kommo_account()
    ch = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))[0]
    admin = Browser(app, client, acc)
    assert admin.xhr(f"/app/settings/channels/{ch}", kommo_form(pipeline="2", stage="21")).status_code == 200
    seed_crm(acc, kommo_snapshot(with_second_pipeline=False))  # "Wholesale" deleted in Kommo

    html = admin.get("/app/settings").get_data(as_text=True)
    assert 'data-testid="flag-pipeline"' in html
    assert "was removed from your CRM" in html
    assert re.search(r'<option value="2" selected>Wholesale \(removed from the CRM\)</option>', html)
    # Saving as is is refused until another pipeline is chosen.
    resp = admin.xhr(f"/app/settings/channels/{ch}", kommo_form(pipeline="2", stage="21"))
    assert resp.status_code == 422 and "pipeline" in resp.get_json()["errors"]


def test_every_post_needs_the_csrf_token(app, client):
    acc = kommo_account()
    (ch,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    calls: list[int] = []
    app.extensions["widget"].refresh_crm_data = lambda database, services, account_id: calls.append(1)
    admin = Browser(app, client, acc)
    for path in (
        f"/app/settings/channels/{ch}",
        f"/app/settings/channels/{ch}/preset/shop_support",
        "/app/settings/refresh",
        "/app/settings/test-message",
        "/app/settings/advanced",
        "/app/channels",
        f"/app/channels/{ch}/rename",
        f"/app/channels/{ch}/disable",
        f"/app/channels/{ch}/enable",
    ):
        resp = admin.xhr(path, {**kommo_form(), "name": "x"}, csrf=False)
        assert resp.status_code == 400, path
        assert "did not come from our page" in resp.get_json()["message"]
    assert calls == []


def test_every_form_carries_the_session_token_and_a_form_post_without_script_works(app, client):
    """Forms posted by the browser itself (no script) must authenticate with their hidden fields."""
    acc = kommo_account()
    add_channels(acc, ("whatsapp", "Main", "+34600000001"))
    admin = Browser(app, client, acc)
    for path in ("/app/settings", "/app/settings/advanced", "/app/channels"):
        html = admin.get(path).get_data(as_text=True)
        values = re.findall(r'<input type="hidden" name="st" value="([^"]*)">', html)
        assert values, path
        assert set(values) == {admin.st}, path
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', admin.get("/app/channels").get_data(as_text=True))
    assert csrf
    # A plain form post: the token travels only in the body, as a browser without our script sends it.
    resp = client.post(
        "/app/channels",
        data={
            "st": admin.st,
            "csrf_token": csrf.group(1),
            "transport": "telegram",
            "name": "Bot",
            "address": "@wz_bot",
        },
    )
    assert resp.status_code in (200, 302, 303)
    listing = admin.get("/app/channels").get_data(as_text=True)
    assert "@wz_bot" in listing
