"""Saving the "CRM integration" tab: validation, what is stored, idempotence, presets, the test message."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests.integration.test_settings_helpers import (
    Browser,
    add_channels,
    bitrix_account,
    employee_ids,
    kommo_account,
    kommo_form,
    kommo_snapshot,
)
from tests.support.factories import seed_crm
from widget.db import db
from widget.domain.crm import CrmUser
from widget.models import AccountSettings, ChannelRole, ChannelSettings
from widget.models.trial_messages import TestMessageRequest


def stored_roles(channel_id: int) -> dict[int, tuple[str | None, bool]]:
    with db.transaction() as s:
        rows = s.execute(select(ChannelRole).where(ChannelRole.channel_id == channel_id)).scalars()
        return {r.employee_id: (r.role, r.gets_new_clients) for r in rows}


def role_rows(channel_id: int) -> list[tuple[int, int]]:
    with db.transaction() as s:
        return sorted(
            s.execute(select(ChannelRole.id, ChannelRole.employee_id).where(ChannelRole.channel_id == channel_id)).all()
        )


def roles_summary(html: str) -> str:
    """The roles summary next to "Select roles", as text (what a closed "+N more" hides included)."""
    found = re.search(r'<div class="roles-summary"[^>]*>(.*?)</div>', html, re.S)
    assert found, "the page has no roles summary"
    text = re.sub(r"<summary>[^<]*</summary>", "", found.group(1))
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", text)).strip()


def stored_settings(channel_id: int) -> ChannelSettings | None:
    with db.transaction() as s:
        return s.get(ChannelSettings, channel_id)


def test_roles_are_saved_and_shown_again(app, client):
    acc = kommo_account()
    ch = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))[0]
    ids = employee_ids(acc)
    admin = Browser(app, client, acc)
    form = kommo_form(
        {ids["100"]: ("head", False), ids["101"]: ("seller", True), ids["102"]: ("qc", False)},
        pipeline="1",
        stage="11",
        distribution="round_robin",
    )
    resp = admin.xhr(f"/app/settings/channels/{ch}", form)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["ok"] and body["changed"] and body["first_save"]
    assert stored_roles(ch) == {ids["100"]: ("head", False), ids["101"]: ("seller", True), ids["102"]: ("qc", False)}
    row = stored_settings(ch)
    assert row is not None
    assert (row.new_client_entity, row.crm_pipeline_id, row.crm_stage_id, row.distribution) == (
        "lead",
        "1",
        "11",
        "round_robin",
    )

    html = admin.get("/app/settings", channel=ch).get_data(as_text=True)
    assert re.search(
        rf'name="role-{ids["101"]}"[^>]*>\s*<option value="">[^<]*</option>\s*<option value="seller" selected', html
    )
    assert re.search(rf'name="new-{ids["101"]}"[^>]*checked', html)
    assert re.search(rf'name="role-{ids["102"]}".*?<option value="qc" selected', html, re.S)
    assert 'value="round_robin" id="distribution-round_robin" data-testid="distribution-round_robin" checked' in html
    assert roles_summary(html) == (
        "Sales reps: Bruno Seller · Heads: Ana Admin · Quality control: Carla Seller · Get new clients: Bruno Seller"
    )


def test_quality_control_cannot_get_new_clients_and_nothing_is_saved(app, client):
    acc = kommo_account()
    ch = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))[0]
    ids = employee_ids(acc)
    admin = Browser(app, client, acc)
    resp = admin.xhr(f"/app/settings/channels/{ch}", kommo_form({ids["101"]: ("qc", True), ids["100"]: ("head", True)}))
    assert resp.status_code == 422
    assert list(resp.get_json()["errors"]) == [f"roles.{ids['101']}.gets_new_clients"]
    assert stored_roles(ch) == {} and stored_settings(ch) is None


def test_inactive_employee_is_not_assignable_but_keeps_a_role_given_before(app, client):
    acc = kommo_account()
    ch = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))[0]
    ids = employee_ids(acc)
    admin = Browser(app, client, acc)
    resp = admin.xhr(f"/app/settings/channels/{ch}", kommo_form({ids["103"]: ("seller", True)}))
    assert resp.status_code == 422
    assert "inactive in the CRM" in resp.get_json()["errors"][f"roles.{ids['103']}.role"]

    # Carla is a head, then leaves the CRM; her role is kept for when she comes back.
    admin.xhr(f"/app/settings/channels/{ch}", kommo_form({ids["102"]: ("head", True)}))
    users = kommo_snapshot().users
    seed_crm(acc, kommo_snapshot(tuple(u for u in users if u.crm_user_id != "102")))
    # The page does not send a disabled row; saving other changes leaves her role alone.
    assert admin.xhr(f"/app/settings/channels/{ch}", kommo_form({ids["101"]: ("seller", True)})).status_code == 200
    assert stored_roles(ch)[ids["102"]] == ("head", True)
    seed_crm(acc, kommo_snapshot())
    html = admin.get("/app/settings").get_data(as_text=True)
    assert re.search(rf'name="role-{ids["102"]}".*?<option value="head" selected', html, re.S)


def test_all_problems_come_back_at_once_with_field_keys(app, client):
    acc = kommo_account()
    ch = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))[0]
    ids = employee_ids(acc)
    resp = Browser(app, client, acc).xhr(
        f"/app/settings/channels/{ch}",
        kommo_form(
            {ids["101"]: ("qc", True), ids["102"]: ("", True), ids["103"]: ("head", False), 987654: ("head", False)},
            pipeline="1",
            stage="142",
            distribution="whoever",
        ),
    )
    assert resp.status_code == 422
    errors = resp.get_json()["errors"]
    assert set(errors) == {
        "stage",
        "distribution",
        f"roles.{ids['101']}.gets_new_clients",
        f"roles.{ids['102']}.gets_new_clients",
        f"roles.{ids['103']}.role",
        "roles.987654",
    }
    assert errors["stage"] == "A new client cannot start in a closed stage. Choose an open one."
    assert {p["code"] for p in resp.get_json()["problems"]} >= {"closed_stage", "qc_cannot_get_new_clients"}


def test_without_script_errors_are_shown_next_to_fields_keeping_the_unsaved_choices(app, client):
    acc = kommo_account()
    ch = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))[0]
    ids = employee_ids(acc)
    resp = Browser(app, client, acc).form(
        f"/app/settings/channels/{ch}", kommo_form({ids["101"]: ("seller", True)}, pipeline="", stage="")
    )
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert re.search(r'id="error-pipeline"[^>]*>Choose a pipeline\.</p>', html)
    assert re.search(rf'name="role-{ids["101"]}".*?<option value="seller" selected', html, re.S)
    assert 'data-testid="unsaved-indicator">' in html  # shown: the page holds unsaved changes
    assert stored_roles(ch) == {}


def test_saving_the_same_thing_twice_changes_nothing(app, client):
    acc = kommo_account()
    ch = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))[0]
    ids = employee_ids(acc)
    admin = Browser(app, client, acc)
    form = kommo_form({ids["100"]: ("head", True), ids["101"]: ("seller", True), ids["102"]: ("", False)})
    assert admin.xhr(f"/app/settings/channels/{ch}", form).get_json()["changed"] is True
    before = stored_settings(ch)
    rows_before = role_rows(ch)
    assert before is not None and len(rows_before) == 2  # nobody gets a row for "no role"

    again = admin.xhr(f"/app/settings/channels/{ch}", form).get_json()
    assert again["changed"] is False and again["first_save"] is False and again["test_message"] is None
    after = stored_settings(ch)
    assert after is not None
    assert (after.updated_at, after.saved_at) == (before.updated_at, before.saved_at)
    assert role_rows(ch) == rows_before

    # Taking a role away keeps the row (its distribution history), marked "no role".
    admin.xhr(f"/app/settings/channels/{ch}", kommo_form({ids["101"]: ("", False)}))
    assert role_rows(ch) == rows_before
    assert stored_roles(ch)[ids["101"]] == (None, False)
    assert stored_settings(ch).saved_at > before.saved_at


def test_employees_the_form_does_not_mention_keep_their_roles(app, client):
    acc = kommo_account()
    ch = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))[0]
    ids = employee_ids(acc)
    admin = Browser(app, client, acc)
    admin.xhr(f"/app/settings/channels/{ch}", kommo_form({ids["100"]: ("head", True), ids["101"]: ("seller", True)}))
    admin.xhr(f"/app/settings/channels/{ch}", kommo_form({ids["101"]: ("qc", False)}))
    assert stored_roles(ch) == {ids["100"]: ("head", True), ids["101"]: ("qc", False)}


def test_settings_are_per_channel(app, client):
    acc = kommo_account()
    wa, tg = add_channels(acc, ("whatsapp", "Sales", "+34600123456"), ("telegram", "Bot", "@acme_bot"))
    ids = employee_ids(acc)
    admin = Browser(app, client, acc)
    admin.xhr(f"/app/settings/channels/{wa}", kommo_form({ids["101"]: ("seller", True)}, distribution="round_robin"))
    admin.xhr(f"/app/settings/channels/{tg}", kommo_form({ids["101"]: ("head", False)}, pipeline="2", stage="21"))
    assert stored_roles(wa) == {ids["101"]: ("seller", True)}
    assert stored_roles(tg) == {ids["101"]: ("head", False)}
    assert (stored_settings(wa).distribution, stored_settings(tg).crm_pipeline_id) == ("round_robin", "2")


def test_first_save_records_one_test_message_to_the_first_whatsapp_waba_or_telegram_channel(app, client):
    acc = kommo_account()
    ig, wa, tg = add_channels(
        acc,
        ("instagram", "Shop", "@acme.shop"),
        ("whatsapp", "Sales", "+34600123456"),
        ("telegram", "Bot", "@acme_bot"),
    )
    admin = Browser(app, client, acc)
    first = admin.xhr(f"/app/settings/channels/{ig}", kommo_form()).get_json()
    assert first["first_save"] is True
    assert first["test_message"]["requested"] is True
    assert first["test_message"]["channel"] == {
        "id": wa,
        "name": "Sales",
        "transport": "whatsapp",
        "address": "+34600123456",
    }

    second = admin.xhr(f"/app/settings/channels/{tg}", kommo_form(distribution="round_robin")).get_json()
    assert second["first_save"] is False and second["test_message"] is None
    assert admin.xhr("/app/settings/test-message").get_json()["test_message"]["just_requested"] is False
    with db.transaction() as s:
        requests = s.execute(select(TestMessageRequest).where(TestMessageRequest.account_id == acc)).scalars().all()
        settings = s.get(AccountSettings, acc)
        assert [(r.channel_id, r.status, r.requested_by_crm_user_id) for r in requests] == [(wa, "pending", "100")]
        assert settings is not None and settings.first_saved_at is not None
        assert settings.test_message_requested_at == requests[0].requested_at


def test_without_a_suitable_channel_the_dialog_says_how_to_add_one(app, client):
    acc = kommo_account()
    (ig,) = add_channels(acc, ("instagram", "Shop", "@acme.shop"))
    admin = Browser(app, client, acc)
    first = admin.xhr(f"/app/settings/channels/{ig}", kommo_form()).get_json()
    assert first["first_save"] is True
    assert first["test_message"] == {"requested": False, "just_requested": False, "channel": None}
    with db.transaction() as s:
        assert s.get(AccountSettings, acc).test_message_requested_at is None

    # Later a Telegram channel is added: the tab offers the test message, asked once.
    admin.xhr("/app/channels", {"transport": "telegram", "name": "Bot", "address": "@acme_support_bot"})
    html = admin.get("/app/settings").get_data(as_text=True)
    assert 'data-testid="send-test-message"' in html
    assert admin.xhr("/app/settings/test-message").get_json()["test_message"]["just_requested"] is True
    assert admin.xhr("/app/settings/test-message").get_json()["test_message"]["just_requested"] is False
    assert 'data-testid="send-test-message"' not in admin.get("/app/settings").get_data(as_text=True)


def test_without_script_the_first_save_redirects_to_the_open_test_message_dialog(app, client):
    acc = kommo_account()
    (wa,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    admin = Browser(app, client, acc)
    resp = admin.form(f"/app/settings/channels/{wa}", kommo_form())
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert "first=1" in location and "notice=saved" in location and "st=" in location
    html = client.get(location).get_data(as_text=True)
    assert re.search(r'<dialog id="test-message-dialog"[^>]*\sopen', html)
    assert 'data-testid="go-to-chats"' in html and "+34600123456" in html
    again = admin.form(f"/app/settings/channels/{wa}", kommo_form())
    assert "first=1" not in again.headers["Location"] and "notice=unchanged" in again.headers["Location"]


def test_presets_change_the_unsaved_form_only(app, client):
    acc = kommo_account()
    (ch,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    ids = employee_ids(acc)
    admin = Browser(app, client, acc)
    resp = admin.xhr(f"/app/settings/channels/{ch}/preset/classic_sales", kommo_form({ids["101"]: ("qc", False)}))
    assert resp.status_code == 200
    setup = resp.get_json()["setup"]
    assert setup["distribution"] == "round_robin"
    assert setup["roles"] == {
        str(ids["100"]): {"role": "head", "gets_new_clients": False},
        str(ids["101"]): {"role": "seller", "gets_new_clients": True},
        str(ids["102"]): {"role": "seller", "gets_new_clients": True},
    }
    assert (setup["pipeline"], setup["stage"]) == ("1", "10")
    assert stored_roles(ch) == {} and stored_settings(ch) is None

    # Adjusted, then saved: what the admin saves is what is stored.
    form = kommo_form({int(k): (v["role"], v["gets_new_clients"]) for k, v in setup["roles"].items()})
    form["distribution"] = setup["distribution"]
    form[f"role-{ids['102']}"] = "qc"
    form.pop(f"new-{ids['102']}")
    assert admin.xhr(f"/app/settings/channels/{ch}", form).status_code == 200
    assert stored_roles(ch)[ids["102"]] == ("qc", False)

    shop = admin.xhr(f"/app/settings/channels/{ch}/preset/shop_support", kommo_form()).get_json()["setup"]
    assert {v["role"] for v in shop["roles"].values()} == {"head"} and shop["distribution"] == "first_reply"
    single = admin.xhr(f"/app/settings/channels/{ch}/preset/single_person", kommo_form()).get_json()["setup"]
    assert [k for k, v in single["roles"].items() if v["role"]] == [str(ids["100"])]
    assert admin.xhr(f"/app/settings/channels/{ch}/preset/nonsense", kommo_form()).status_code == 404

    # Without script the preset is shown in the page, not saved, with what it changed.
    html = admin.form(f"/app/settings/channels/{ch}/preset/shop_support", kommo_form()).get_data(as_text=True)
    assert re.search(rf'name="role-{ids["101"]}".*?<option value="head" selected', html, re.S)
    assert stored_roles(ch)[ids["101"]] == ("seller", True)
    applied = re.search(r'data-testid="preset-applied">(.*?)</section>', html, re.S)
    assert applied is not None and "not saved yet" in applied.group(1)
    assert "Quality control → Head, gets new clients:</strong> Carla Seller</li>" in applied.group(1)


def test_an_example_says_who_it_moves_from_which_role_to_which(app, client):
    acc = kommo_account()
    (ch,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    ids = employee_ids(acc)
    admin = Browser(app, client, acc)
    saved = kommo_form({ids["100"]: ("head", True), ids["101"]: ("seller", True)})
    assert admin.xhr(f"/app/settings/channels/{ch}", saved).status_code == 200
    # The form as the admin left it: Carla made quality control (unsaved), Bruno not in the form
    # at all (he counts with his stored role).
    form = kommo_form({ids["100"]: ("head", True), ids["102"]: ("qc", False)})
    form.pop(f"role-{ids['101']}", None)
    form.pop(f"new-{ids['101']}", None)

    body = admin.xhr(f"/app/settings/channels/{ch}/preset/classic_sales", form).get_json()

    assert body["changes"]["roles"] == [
        {"from": "Head, gets new clients", "to": "Head", "ids": [ids["100"]], "names": ["Ana Admin"]},
        {
            "from": "Quality control",
            "to": "Sales rep, gets new clients",
            "ids": [ids["102"]],
            "names": ["Carla Seller"],
        },
    ]
    assert body["changes"]["distribution"] == {"from": "First to answer", "to": "In turn"}
    assert "not saved yet" in body["message"]
    # Nothing moved is nothing to ask about; the inactive Dario is never touched.
    same = kommo_form({ids["100"]: ("head", True), ids["101"]: ("head", True), ids["102"]: ("head", True)})
    unchanged = admin.xhr(f"/app/settings/channels/{ch}/preset/shop_support", same).get_json()["changes"]
    assert unchanged == {"roles": [], "distribution": None}
    assert stored_roles(ch) == {ids["100"]: ("head", True), ids["101"]: ("seller", True)}


def test_the_roles_summary_names_who_has_which_role(app, client):
    reps = tuple(CrmUser(str(200 + i), f"Rep {i:02d}", f"r{i}@example.com", True, False, "en") for i in range(9))
    acc = kommo_account()
    seed_crm(acc, kommo_snapshot(kommo_snapshot().users + reps))
    (ch,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    ids = employee_ids(acc)
    admin = Browser(app, client, acc)
    roles = {ids[str(200 + i)]: ("seller", i % 2 == 0) for i in range(1, 9)}
    roles[ids["200"]] = ("head", False)
    assert admin.xhr(f"/app/settings/channels/{ch}", kommo_form(roles)).status_code == 200

    html = admin.get("/app/settings", channel=ch).get_data(as_text=True)

    assert roles_summary(html) == (
        "Sales reps: Rep 01, Rep 02, Rep 03, Rep 04, Rep 05, Rep 06, Rep 07, Rep 08"
        " · Heads: Rep 00 · Get new clients: Rep 02, Rep 04, Rep 06, Rep 08"
    )
    # Past five names the rest waits behind "+3 more".
    assert re.search(r'data-testid="roster-seller".*?<summary> \+3 more</summary>', html, re.S)


def test_bitrix24_deal_or_lead(app, client):
    acc = bitrix_account()
    (ch,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    admin = Browser(app, client, acc)
    deal = {"new_client_entity": "deal", "pipeline": "1", "stage": "C1:NEW", "distribution": "first_reply"}
    assert admin.xhr(f"/app/settings/channels/{ch}", deal).status_code == 200
    lead = {"new_client_entity": "lead", "pipeline": "0", "stage": "NEW", "distribution": "first_reply"}
    assert admin.xhr(f"/app/settings/channels/{ch}", lead).status_code == 200
    assert stored_settings(ch).new_client_entity == "lead"

    simple = bitrix_account("simple", external_id="m-2")
    (ch2,) = add_channels(simple, ("whatsapp", "Sales", "+34600123457"))
    resp = Browser(app, client, simple).xhr(f"/app/settings/channels/{ch2}", lead)
    assert resp.status_code == 422
    assert "simple CRM" in resp.get_json()["errors"]["new_client_entity"]


def test_saving_needs_the_csrf_token(app, client):
    acc = kommo_account()
    (ch,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    admin = Browser(app, client, acc)
    assert admin.xhr(f"/app/settings/channels/{ch}", kommo_form(), csrf=False).status_code == 400
    plain = client.post(f"/app/settings/channels/{ch}", data={"st": admin.st, **kommo_form()})
    assert plain.status_code == 400
    assert stored_settings(ch) is None


def test_a_new_employee_from_the_crm_can_be_given_a_role(app, client):
    acc = kommo_account()
    (ch,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    seed_crm(acc, kommo_snapshot((*kommo_snapshot().users, CrmUser("104", "Eva New", "", True, False))))
    eva = employee_ids(acc)["104"]
    resp = Browser(app, client, acc).xhr(f"/app/settings/channels/{ch}", kommo_form({eva: ("seller", True)}))
    assert resp.status_code == 200
    assert stored_roles(ch) == {eva: ("seller", True)}
