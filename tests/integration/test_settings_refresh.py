""" "Refresh CRM data" from the settings tab: the JSON the page merges into its unsaved state,
and CRM failures in words a person understands. The CRM side is our own interface
(``refresh_crm_data``), replaced here by fakes that change the mirrored data the way a sync does."""

from __future__ import annotations

import re

from tests.integration.test_settings_helpers import (
    Browser,
    add_channels,
    employee_ids,
    kommo_account,
    kommo_form,
    kommo_snapshot,
)
from widget.crm.errors import CrmAuthError, CrmError, CrmRateLimited, CrmUnavailable
from widget.db import Database
from widget.domain.crm import CrmSnapshot, CrmUser, SyncReport
from widget.extensions import AppServices
from widget.services.crm_data.snapshot import apply_snapshot


class FakeCrm:
    """Stands in for the CRM's sync: applies the next snapshot like the real one, or fails."""

    def __init__(self, snapshot: CrmSnapshot | None = None, error: CrmError | None = None) -> None:
        self.snapshot = snapshot
        self.error = error
        self.calls: list[int] = []

    def __call__(self, database: Database, services: AppServices, account_id: int) -> SyncReport:
        self.calls.append(account_id)
        if self.error is not None:
            raise self.error
        assert self.snapshot is not None
        with database.transaction() as s:
            return apply_snapshot(s, account_id, self.snapshot)


def changed_snapshot() -> CrmSnapshot:
    """Eva joined, Bruno was deactivated, the "Wholesale" pipeline was deleted."""
    kept = [CrmUser(u.crm_user_id, u.name, u.email, u.crm_user_id != "101", u.is_admin) for u in kommo_snapshot().users]
    users = (*kept, CrmUser("104", "Eva New", "eva@example.com", True, False))
    return CrmSnapshot(users=users, pipelines=kommo_snapshot(with_second_pipeline=False).pipelines)


def test_refresh_answers_what_changed_and_the_new_lists(app, client):
    acc = kommo_account()
    (ch,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    before = employee_ids(acc)
    admin = Browser(app, client, acc)
    fake = FakeCrm(changed_snapshot())
    app.extensions["widget"].refresh_crm_data = fake

    resp = admin.xhr("/app/settings/refresh")
    assert resp.status_code == 200
    body = resp.get_json()
    assert fake.calls == [acc]
    assert body["ok"] is True
    assert body["report"]["added"] == ["Eva New"] and body["report"]["deactivated"] == ["Bruno Seller"]
    texts = {c["kind"]: c["text"] for c in body["changes"]}
    assert texts["added"] == "1 new employee: Eva New"
    assert texts["deactivated"] == "1 employee is no longer active in the CRM: Bruno Seller"
    assert texts["pipelines_removed"] == "Pipeline removed from the CRM: Wholesale"

    # Existing employees keep their ids, so the page can merge rows and keep unsaved choices.
    by_id = {e["id"]: e for e in body["employees"]}
    assert {before[c] for c in ("100", "101", "102", "103")} <= set(by_id)
    assert by_id[before["101"]]["is_active"] is False
    assert by_id[before["100"]]["is_me"] is True
    eva = next(e for e in body["employees"] if e["name"] == "Eva New")
    assert eva["is_active"] is True
    assert [e["name"] for e in body["employees"]] == sorted(e["name"] for e in body["employees"])
    wholesale = next(p for p in body["pipelines"] if p["id"] == "2")
    assert wholesale["is_active"] is False
    assert [s["name"] for s in body["pipelines"][0]["stages"]][:2] == ["Incoming leads", "First contact"]

    # The unsaved choice made before the refresh (Eva was not on the page yet) saves fine after it.
    save = admin.xhr(f"/app/settings/channels/{ch}", kommo_form({eva["id"]: ("seller", True)}))
    assert save.status_code == 200


def test_nothing_changed_says_so(app, client, monkeypatch):
    acc = kommo_account()
    app.extensions["widget"].refresh_crm_data = FakeCrm(kommo_snapshot())
    body = Browser(app, client, acc).xhr("/app/settings/refresh").get_json()
    assert body["changes"] == [{"kind": "none", "text": "Everything is up to date: nothing changed in the CRM."}]


def test_crm_failures_are_told_in_plain_words_and_change_nothing(app, client):
    acc = kommo_account()
    admin = Browser(app, client, acc)
    before = employee_ids(acc)
    for error, words in [
        (CrmUnavailable("timeout after 10 s"), "not reachable at the moment"),
        (CrmAuthError("invalid_grant"), "no longer accepts our authorization"),
        (CrmRateLimited("429", retry_after=3), "limiting our requests"),
    ]:
        app.extensions["widget"].refresh_crm_data = FakeCrm(error=error)
        resp = admin.xhr("/app/settings/refresh")
        assert resp.status_code == 502
        body = resp.get_json()
        assert body["ok"] is False and body["error"] == "crm_error"
        assert words in body["message"]
        assert "timeout" not in body["message"] and "invalid_grant" not in body["message"]
    assert employee_ids(acc) == before


def test_a_crm_specific_error_keeps_its_own_wording(app, client):
    class PortalBlocked(CrmUnavailable):
        user_message = "Your Bitrix24 portal is blocked for unpaid plan."

    acc = kommo_account()
    app.extensions["widget"].refresh_crm_data = FakeCrm(error=PortalBlocked("PAYMENT_REQUIRED"))
    body = Browser(app, client, acc).xhr("/app/settings/refresh").get_json()
    assert body["message"] == "Your Bitrix24 portal is blocked for unpaid plan."


def test_without_script_refresh_returns_to_the_tab(app, client):
    acc = kommo_account()
    (ch,) = add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    app.extensions["widget"].refresh_crm_data = FakeCrm(changed_snapshot())
    admin = Browser(app, client, acc)
    resp = admin.form("/app/settings/refresh", {"channel": str(ch)})
    assert resp.status_code == 302
    assert "notice=refreshed" in resp.headers["Location"] and f"channel={ch}" in resp.headers["Location"]
    html = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "CRM data refreshed." in html and "Eva New" in html
    assert re.search(r'data-employee-id="\d+" data-name="bruno seller"[^>]*data-inactive="1"', html)


def test_refresh_needs_an_admin_and_the_csrf_token(app, client):
    acc = kommo_account()
    fake = FakeCrm(changed_snapshot())
    app.extensions["widget"].refresh_crm_data = fake
    assert Browser(app, client, acc).xhr("/app/settings/refresh", csrf=False).status_code == 400
    assert Browser(app, client, acc, user="101", admin=False).xhr("/app/settings/refresh").status_code == 403
    assert fake.calls == []
