"""Installing the app into a Bitrix24 portal: the installer page in the iframe and ONAPPINSTALL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sandbox.bitrix24.reqlog import KIND_APP_INFO, KIND_REST
from tests.support.bitrix24_sandbox import Bitrix24Sandbox, bitrix24_world, installer_config, post_event, run_installer
from widget.db import db
from widget.models import Account, AccountToken, Employee, Pipeline, Stage
from widget.models.accounts import STATUS_ACTIVE


@pytest.fixture
def b24(make_settings):
    with bitrix24_world(make_settings) as world:
        yield world


def _employees(account_id: int) -> dict[str, Employee]:
    with db.transaction() as s:
        return {
            e.crm_user_id: e for e in s.execute(select(Employee).where(Employee.account_id == account_id)).scalars()
        }


def _pipelines(account_id: int) -> dict[tuple[str, str], tuple[Pipeline, list[Stage]]]:
    with db.transaction() as s:
        out = {}
        for p in s.execute(select(Pipeline).where(Pipeline.account_id == account_id)).scalars():
            stages = list(s.execute(select(Stage).where(Stage.pipeline_id == p.id).order_by(Stage.sort)).scalars())
            out[(p.entity, p.crm_pipeline_id)] = (p, stages)
        return out


def test_installer_in_the_iframe_stores_the_portal_binds_and_syncs(b24):
    frame = b24.state.begin_install(b24.portal, 1)
    page = frame.post()

    assert page.status_code == 200
    assert "Set-Cookie" not in page.headers
    csp = page.headers["Content-Security-Policy"]
    assert csp.startswith(f"frame-ancestors {b24.portal.origin};")
    assert f"connect-src 'self' {b24.portal.origin}" in csp  # BX24.callMethod reaches the portal's REST
    # Offline, the page loads our BX24-compatible bridge, then the installer script.
    assert "/bitrix24/assets/bx24-bridge.js" in page.text
    assert "/bitrix24/assets/install.js" in page.text
    assert "/static/frame.js" in page.text  # the installer sizes its frame like every page of ours
    config = installer_config(page.text)
    handlers = {p["PLACEMENT"]: p["HANDLER"] for p in config["placements"]}
    assert handlers == {
        "LEFT_MENU": f"{b24.base_url}/bitrix24/app",
        "CRM_DEAL_DETAIL_TAB": f"{b24.base_url}/bitrix24/placement",
        "CRM_CONTACT_DETAIL_TAB": f"{b24.base_url}/bitrix24/placement",
        "CRM_LEAD_DETAIL_TAB": f"{b24.base_url}/bitrix24/placement",
    }
    assert {e["event"] for e in config["events"]} == {
        "ONAPPUNINSTALL",
        "ONCRMCONTACTUPDATE",
        "ONCRMDEALUPDATE",
        "ONCRMLEADUPDATE",
    }
    assert {e["handler"] for e in config["events"]} == {f"{b24.base_url}/bitrix24/events"}

    account = b24.account()
    assert account is not None and account.status == STATUS_ACTIVE
    assert account.domain == b24.portal.domain
    assert account.client_endpoint == b24.portal.client_endpoint
    assert account.server_endpoint == b24.state.server_endpoint
    assert account.installed_by_crm_user_id == "1"
    # Secrets are stored encrypted, never as sent.
    app_token = b24.portal.installation.application_token
    assert app_token.encode() not in account.application_token_enc
    with db.transaction() as s:
        tokens = s.get(AccountToken, account.id)
        assert frame.form["REFRESH_ID"].encode() not in tokens.refresh_token_enc

    # The first "Refresh CRM data" ran: every employee (the fired one inactive), every pipeline.
    employees = _employees(account.id)
    assert len(employees) == 12
    assert employees["2"].name == "Иван Петров"
    assert employees["9"].name == "伟 陈"
    assert employees["10"].is_active is False
    assert employees["1"].is_admin is True
    pipes = _pipelines(account.id)
    assert set(pipes) == {("deal", "0"), ("deal", "1"), ("deal", "3"), ("lead", "STATUS")}
    general, stages = pipes[("deal", "0")]
    assert general.is_main and general.name == "General"
    assert [s.crm_stage_id for s in stages][:2] == ["NEW", "PREPARATION"]
    assert {s.crm_stage_id: s.kind for s in stages}["WON"] == "won"
    assert pipes[("deal", "1")][1][0].crm_stage_id == "C1:NEW"

    # The installer script binds, then installFinish: the widgets appear in the portal.
    run_installer(b24.state, frame, page.text)
    inst = b24.state.portal(b24.portal.member_id).installation
    assert inst.installed
    assert {b.code for b in inst.placements()} == set(handlers)


def test_a_repeated_install_is_not_an_error(b24):
    b24.install()
    frame = b24.state.begin_install(b24.portal, 1)
    page = frame.post()
    assert page.status_code == 200
    answer = run_installer(b24.state, frame, page.text)  # asserts every error is "already binded"
    assert len(answer["result_error"]) == 8
    assert b24.account().status == STATUS_ACTIVE
    with db.transaction() as s:
        assert s.query(Account).count() == 1


def test_onappinstall_event_is_verified_with_app_info_then_stored(b24):
    delivery = b24.state.install_api_only(b24.portal, 1)

    assert delivery.status == 200, delivery.body
    token = delivery.payload["auth"]["access_token"]
    # Nothing stored to compare with yet: the event's own token was checked at the OAuth server.
    checks = b24.state.log.entries(kind=KIND_APP_INFO, token=token)
    assert len(checks) == 1 and checks[0].status == 200
    account = b24.account()
    assert account is not None and account.status == STATUS_ACTIVE
    assert account.client_endpoint == b24.portal.client_endpoint
    assert len(_employees(account.id)) == 12


def test_forged_onappinstall_is_refused_and_nothing_is_stored(b24):
    install_url = f"{b24.base_url}/bitrix24/install"
    payload = b24.state.event_payload(b24.portal, "ONAPPINSTALL", {"VERSION": "1"}, user_id=None)
    payload["auth"].update({"access_token": "f" * 48, "refresh_token": "e" * 48, "expires_in": 3600})

    assert post_event(install_url, payload).status_code == 401
    assert b24.account() is None


def test_onappinstall_with_an_employees_own_token_is_refused(b24):
    # A real token of this portal and app, but of a regular employee: it must not become the
    # portal's background authorization, nor replace its application token.
    b24.state.begin_install(b24.portal, 1)
    payload = b24.state.event_payload(b24.portal, "ONAPPINSTALL", {"VERSION": "1"}, user_id=2, with_refresh=True)
    payload["auth"]["application_token"] = "attacker-chosen"

    assert post_event(f"{b24.base_url}/bitrix24/install", payload).status_code == 403
    assert b24.account() is None


def test_a_non_admin_cannot_install(b24):
    frame = b24.state.begin_install(b24.portal, 1)
    employee = b24.state.issue_token(b24.portal, 2)  # a regular employee posts the form with their token
    frame.form["AUTH_ID"], frame.form["REFRESH_ID"] = employee.access_token, employee.refresh_token

    page = frame.post()
    assert page.status_code == 403
    assert b24.account() is None
    assert b24.state.log.count(kind=KIND_REST, rest_method="batch") == 0  # no sync ran


def test_forged_domain_sends_no_token_to_that_server(b24):
    evil = Bitrix24Sandbox()
    evil_portal = evil.add_portal("localhost")
    try:
        frame = b24.state.begin_install(b24.portal, 1)
        forged = frame.url.replace(f"DOMAIN={b24.portal.domain.replace(':', '%3A')}", f"DOMAIN={evil_portal.domain}")
        assert forged != frame.url
        frame.url = forged
        page = frame.post()

        assert page.status_code == 401
        assert b24.account() is None
        assert evil.state.log.entries() == []  # the posted DOMAIN never received anything
    finally:
        evil.stop()
