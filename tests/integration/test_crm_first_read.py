"""Right after an install, before the background job has read the CRM's employees and pipelines:
the settings say it is being read (or why the read failed), and ``GET /app/settings/crm-data``
tells the page when the lists are there. The job records a failed read and the next good one
clears it."""

from __future__ import annotations

import pytest

from tests.integration.test_settings_helpers import Browser, add_channels, bitrix_snapshot
from tests.support.factories import make_account, seed_crm
from widget.crm.errors import CrmAuthError, CrmUnavailable
from widget.db import db
from widget.jobs.bitrix24_jobs import bitrix24_refresh_crm_data
from widget.models import Account
from widget.models.accounts import CRM_BITRIX24
from widget.services.crm_data.refresh import record_sync_failure

LOADING = "Reading employees and pipelines from Bitrix24…"


def fresh_portal() -> int:
    """Installed a moment ago: nothing read yet."""
    return make_account(CRM_BITRIX24, "m-new", "new.bitrix24.test", installed_by_crm_user_id="1")


def test_the_tab_says_the_data_is_being_read_and_the_endpoint_follows_the_read(app, client):
    acc = fresh_portal()
    admin = Browser(app, client, acc, user="1", crm=CRM_BITRIX24)

    page = admin.get("/app/settings").get_data(as_text=True)
    assert 'data-testid="crm-read"' in page and 'data-state="loading"' in page and LOADING in page
    assert "/static/crm_read.js" in page
    state = admin.get("/app/settings/crm-data")
    assert state.status_code == 200 and state.headers["Cache-Control"] == "no-store"
    assert state.get_json() == {"state": "loading", "message": LOADING, "synced_at": None}

    # The job's read failed: said in words, with the way out.
    record_sync_failure(db, acc, CrmUnavailable("503 from the portal"))
    failed = admin.get("/app/settings/crm-data").get_json()
    assert failed["state"] == "failed"
    assert failed["message"].startswith("Bitrix24 did not give us its employees and pipelines: The CRM is not")
    assert "Refresh CRM data" in failed["message"]
    page = admin.get("/app/settings").get_data(as_text=True)
    assert 'data-state="failed"' in page and 'data-testid="refresh-crm"' in page

    # The queue's next try reads it: the lists are there, and the failure is forgotten.
    seed_crm(acc, bitrix_snapshot())
    ready = admin.get("/app/settings/crm-data").get_json()
    assert ready["state"] == "ready" and ready["message"] == "Employees and pipelines were read from Bitrix24."
    assert "Portal Admin" in {e["name"] for e in ready["employees"]}
    assert ready["pipelines"] and ready["crm_mode"] == "classic" and ready["summary"].endswith("pipelines")
    with db.transaction() as s:
        account = s.get(Account, acc)
        assert account is not None and account.sync_failure is None and account.sync_failed_at is None
    assert 'data-testid="crm-read"' not in admin.get("/app/settings").get_data(as_text=True)


def test_the_endpoint_is_for_admins_of_the_account_only(app, client):
    acc = fresh_portal()
    add_channels(acc, ("whatsapp", "Sales", "+34600123456"))
    rep = Browser(app, client, acc, user="2", admin=False, crm=CRM_BITRIX24)
    assert rep.get("/app/settings/crm-data").status_code == 403
    assert client.get("/app/settings/crm-data").status_code in (401, 403)


def test_the_app_page_waits_for_the_read_too(app, client):
    acc = fresh_portal()
    admin = Browser(app, client, acc, user="1", crm=CRM_BITRIX24)
    page = admin.get("/bitrix24/home").get_data(as_text=True)
    assert LOADING in page and "/static/crm_read.js" in page


@pytest.mark.parametrize(
    ("error", "retried"),
    [(CrmUnavailable("down"), True), (CrmAuthError("revoked"), False)],
)
def test_the_job_records_a_failed_read(app, monkeypatch, error, retried):
    acc = fresh_portal()

    def failing(database, services, account_id):
        raise error

    monkeypatch.setattr("widget.services.crm_data.bitrix24.refresh_bitrix24_data", failing)
    with app.app_context():
        if retried:
            with pytest.raises(type(error)):  # the queue tries again
                bitrix24_refresh_crm_data(acc)
        else:
            bitrix24_refresh_crm_data(acc)  # final: reinstall needed
    with db.transaction() as s:
        account = s.get(Account, acc)
        assert account is not None
        assert account.sync_failure == ("unavailable" if retried else "auth")
        assert account.sync_failed_at is not None
