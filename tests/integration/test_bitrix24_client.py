"""The REST client and "Refresh CRM data" against the sandbox portal, counting real requests."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import select

from sandbox.bitrix24.reqlog import KIND_REST
from tests.support.bitrix24_sandbox import bitrix24_world
from widget.crm.bitrix24.client import NewContact, NewDeal, NewLead
from widget.crm.errors import CrmNotFound, CrmUnavailable
from widget.crm.http import RetryPolicy
from widget.db import db
from widget.models import Employee, Pipeline
from widget.services.accounts.crm_clients import bitrix24_client
from widget.services.crm_data.bitrix24 import refresh_bitrix24_data
from widget.services.crm_data.snapshot import load_crm_overview

NO_WAIT = RetryPolicy(sleep=lambda _s: None)


@pytest.fixture
def b24(make_settings):
    with bitrix24_world(make_settings) as world:
        world.install()
        world.state.reset_log()
        yield world


def _services(world) -> Any:
    return world.app.extensions["widget"]


def _client(world, retry: RetryPolicy | None = None):
    return bitrix24_client(db, _services(world), world.account().id, retry=retry)


def _rest(world) -> list[Any]:
    return world.state.log.entries(kind=KIND_REST)


def test_new_contact_and_deal_cost_exactly_one_request(b24):
    client = _client(b24)
    contact_id, deal_id = client.create_contact_with_deal(
        NewContact(name="Lucía Fernández", phone="+34 600 111 222", responsible_id="4"),
        NewDeal(title="WhatsApp: Lucía Fernández", category_id="1", stage_id="C1:PREPARATION", responsible_id="4"),
    )

    assert [(e.rest_method, e.status) for e in _rest(b24)] == [("batch", 200)]
    portal = b24.state.portal(b24.portal.member_id)
    contact = portal.records["contact"][int(contact_id)]
    deal = portal.records["deal"][int(deal_id)]
    assert contact["NAME"] == "Lucía Fernández" and contact["ASSIGNED_BY_ID"] == "4"
    assert contact["PHONE"][0]["VALUE"] == "+34 600 111 222"
    assert deal["CONTACT_ID"] == contact_id  # the $result[c] reference was resolved in the portal
    assert (deal["CATEGORY_ID"], deal["STAGE_ID"], deal["ASSIGNED_BY_ID"]) == ("1", "C1:PREPARATION", "4")


def test_find_lead_and_responsible_updates(b24):
    client = _client(b24)
    assert client.find_by_phone("+1 555 000 0000") == {}  # the portal answers [] for nothing
    assert client.find_by_phone("+55 (11) 98765-4321") == {"CONTACT": ["1"]}

    lead_id = client.create_lead(
        NewLead(title="Telegram: Kenji", name="Kenji", phone="+81 90 0000 1111", responsible_id="6")
    )
    client.set_responsible("lead", lead_id, "8")
    client.set_responsible_many([("contact", "1", "5"), ("deal", "1", "5")])

    portal = b24.state.portal(b24.portal.member_id)
    assert portal.records["lead"][int(lead_id)]["ASSIGNED_BY_ID"] == "8"
    assert portal.records["contact"][1]["ASSIGNED_BY_ID"] == "5"
    assert portal.records["deal"][1]["ASSIGNED_BY_ID"] == "5"
    with pytest.raises(CrmNotFound):  # legacy crm.* error: HTTP 400 with an EMPTY code
        client.set_responsible("deal", "999", "5")


def test_refresh_pages_130_users_within_the_request_budget(b24):
    b24.state.set_users(b24.portal, 130)

    report = refresh_bitrix24_data(db, _services(b24), b24.account().id)

    sent = _rest(b24)
    assert len(sent) == report.requests
    assert report.requests <= math.ceil(130 / 50) + 2
    with db.transaction() as s:
        names = set(s.execute(select(Employee.name).where(Employee.is_active.is_(True))).scalars())
    assert len(names) == 130 and "Employee130 Test" in names
    assert len(report.added) == 130 - 12  # users 1..12 kept their rows (renamed), the rest are new


def test_simple_crm_offers_no_lead_pipeline(b24):
    with db.transaction() as s:
        overview = load_crm_overview(s, b24.account().id)
    assert any(p.entity == "lead" and p.is_active for p in overview.pipelines)

    b24.state.set_crm_mode(b24.portal, "simple")
    report = refresh_bitrix24_data(db, _services(b24), b24.account().id)

    assert report.pipelines_removed == ["Leads"]
    account = b24.account()
    assert account.crm_mode == "simple"
    with db.transaction() as s:
        active = {
            (p.entity, p.crm_pipeline_id)
            for p in s.execute(select(Pipeline).where(Pipeline.is_active.is_(True))).scalars()
        }
    assert active == {("deal", "0"), ("deal", "1"), ("deal", "3")}
    assert all(e.rest_method != "crm.status.list" for e in _rest(b24))  # stages come in the batch


def test_query_limit_is_backed_off_then_succeeds(b24):
    b24.state.force_query_limit(2)
    waits: list[float] = []

    profile = _client(b24, RetryPolicy(sleep=waits.append)).profile()

    assert profile.is_admin
    assert [(e.rest_method, e.status) for e in _rest(b24)] == [("profile", 503), ("profile", 503), ("profile", 200)]
    assert len(waits) == 2 and waits[1] > waits[0] * 1.2  # a growing delay


def test_operation_time_limit_waits_for_the_reset(b24):
    reset_at = b24.state.limit_method(b24.portal, "user.get", 1.0)

    users = _client(b24).users()

    assert len(users) == 12
    calls = [e for e in _rest(b24) if e.rest_method == "user.get"]
    assert [e.status for e in calls] == [429, 200]
    assert calls[1].at >= reset_at  # it waited for operating_reset_at instead of hammering


def test_portal_rename_is_followed_with_the_same_post_and_remembered(b24):
    new_domain = f"127.0.0.2:{b24.sandbox.port}"
    b24.state.rename_portal(b24.portal, new_domain)

    profile = _client(b24).call("user.get", {"FILTER": {"ID": "2"}})

    assert profile.result[0]["NAME"] == "Иван"
    first, second = _rest(b24)
    assert (first.host, first.status) == (f"localhost:{b24.sandbox.port}", 302)
    assert (second.host, second.http_method, second.rest_method, second.status) == (new_domain, "POST", "user.get", 200)
    assert second.params == {"FILTER": {"ID": "2"}}
    account = b24.account()
    assert account.domain == new_domain
    assert account.client_endpoint == f"http://{new_domain}/rest/"
    # Next time we go straight to the new address.
    b24.state.reset_log()
    _client(b24).profile()
    assert [e.host for e in _rest(b24)] == [new_domain]


def test_outage_and_slowness_become_unavailable(make_settings):
    with bitrix24_world(make_settings, HTTP_TIMEOUT=0.5) as world:
        world.install()
        world.state.set_outage(True)
        with pytest.raises(CrmUnavailable):
            _client(world, NO_WAIT).profile()
        world.state.set_outage(False)
        world.state.set_latency(1.0)
        with pytest.raises(CrmUnavailable):
            _client(world, NO_WAIT).profile()
        world.state.set_latency(0)
        assert _client(world).profile().user_id == "1"


def test_binding_twice_is_not_an_error(b24):
    client = _client(b24)
    handler = f"{b24.base_url}/bitrix24/placement"
    assert client.bind_placement("CRM_COMPANY_DETAIL_TAB", handler, "Wazzup chats") is True
    assert client.bind_placement("CRM_COMPANY_DETAIL_TAB", handler, "Wazzup chats") is False
    assert client.bind_event("ONCRMDEALUPDATE", f"{b24.base_url}/bitrix24/events") is False
