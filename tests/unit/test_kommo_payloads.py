"""Kommo JSON becomes typed objects at the edge, and malformed JSON is a clear error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from widget.crm.errors import (
    CrmBadResponse,
    CrmForbidden,
    CrmNotFound,
    CrmRateLimited,
    CrmTokenExpired,
    CrmUnavailable,
)
from widget.crm.kommo import creates, payloads
from widget.crm.kommo.client import pages_needed
from widget.crm.kommo.creates import NewContact, NewLead
from widget.crm.kommo.errors import classify


def _status(id_, name, sort, type_=0):
    return {"id": id_, "name": name, "sort": sort, "type": type_, "pipeline_id": 7}


PIPELINES = {
    "_total_items": 2,
    "_embedded": {
        "pipelines": [
            {
                "id": 7,
                "name": "Sales",
                "sort": 1,
                "is_main": True,
                "is_archive": False,
                "_embedded": {
                    "statuses": [
                        _status(143, "Closed - lost", 11000),
                        _status(55, "Incoming leads", 10, 1),
                        _status(56, "First contact", 20),
                        _status(142, "Closed - won", 10000),
                    ]
                },
            },
            {"id": 8, "name": "Old", "sort": 2, "is_main": False, "is_archive": True},
        ]
    },
}


def test_pipeline_statuses_get_their_kind_from_kommo_system_ids_and_types():
    sales, old = payloads.parse_pipelines(PIPELINES)
    kinds = [(s.name, s.kind) for s in sales.statuses]
    assert kinds == [
        ("Incoming leads", "incoming"),
        ("First contact", "open"),
        ("Closed - won", "won"),
        ("Closed - lost", "lost"),
    ]
    crm = sales.to_crm_pipeline()
    assert (crm.entity, crm.crm_pipeline_id, crm.is_main) == ("lead", "7", True)
    assert old.is_archive and old.statuses == ()


def test_users_read_admin_and_active_from_rights():
    page = payloads.parse_users_page(
        {
            "_page": 1,
            "_page_count": 3,
            "_links": {"next": {"href": "…?page=2"}},
            "_embedded": {
                "users": [
                    {
                        "id": 1,
                        "name": "Ana",
                        "email": "a@x",
                        "lang": "es",
                        "rights": {"is_admin": True, "is_active": True},
                    },
                    {
                        "id": 2,
                        "name": "",
                        "email": "b@x",
                        "lang": "en",
                        "rights": {"is_admin": False, "is_active": False},
                    },
                ]
            },
        }
    )
    assert (page.page, page.page_count, page.has_next) == (1, 3, True)
    ana, ghost = (u.to_crm_user() for u in page.users)
    assert (ana.crm_user_id, ana.is_admin, ana.is_active, ana.lang) == ("1", True, True, "es")
    assert (ghost.name, ghost.is_active) == ("b@x", False)  # a nameless user still shows up by email


def test_an_empty_204_is_an_empty_list_not_an_error():
    assert payloads.parse_users_page(None).users == ()
    assert payloads.parse_contacts(None) == ()


def test_malformed_json_says_what_was_wrong():
    with pytest.raises(CrmBadResponse, match="'id' must be an integer"):
        payloads.parse_user({"name": "no id"})
    with pytest.raises(CrmBadResponse, match="expected an array"):
        payloads.parse_pipelines({"_embedded": {"pipelines": {"id": 1}}})
    with pytest.raises(CrmBadResponse, match="access_token and refresh_token"):
        payloads.parse_token_response({"expires_in": 86400}, datetime.now(UTC))


def test_complex_leads_accept_a_bare_array_and_a_hal_object():
    bare = [{"id": 1, "contact_id": 2, "company_id": None, "request_id": ["a"], "merged": False}]
    hal = {"_embedded": {"leads": [{"id": 1, "contact_id": 2, "request_id": ["a"], "merged": False}]}}
    assert creates.parse_complex_result(bare) == creates.parse_complex_result(hal)
    assert creates.parse_complex_result(bare)[0].contact_id == 2


def test_contacts_read_phones_with_enum_or_enum_code():
    contact = payloads.parse_contact(
        {
            "id": 5,
            "name": "Client",
            "responsible_user_id": 9,
            "custom_fields_values": [
                {
                    "field_code": "PHONE",
                    "values": [{"value": "+1555", "enum": "WORK"}, {"value": "+1666", "enum_code": "MOB"}],
                },
                {"field_code": "EMAIL", "values": [{"value": "c@x"}]},
            ],
            "_embedded": {"leads": [{"id": 77}]},
        }
    )
    assert contact.phones == ("+1555", "+1666")
    assert contact.lead_ids == (77,)


def test_new_lead_sends_one_embedded_contact_with_phone_enum_code():
    body = NewLead("From WhatsApp", pipeline_id=7, status_id=55, contact=NewContact("Client", "+1555", 9)).to_json()
    contact = body["_embedded"]["contacts"][0]
    assert contact["custom_fields_values"] == [
        {"field_code": "PHONE", "values": [{"value": "+1555", "enum_code": "WORK"}]}
    ]
    assert (body["pipeline_id"], body["status_id"]) == (7, 55)


def test_token_response_expiry_counts_from_now():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    pair = payloads.parse_token_response(
        {"token_type": "Bearer", "expires_in": 86400, "access_token": "a", "refresh_token": "r"}, now
    )
    assert pair.expires_at == now + timedelta(days=1)


def _response(status, body=None, headers=None, text=None):
    r = requests.Response()
    r.status_code = status
    if body is not None:
        r._content = json.dumps(body).encode()
        r.headers["Content-Type"] = "application/problem+json"
    else:
        r._content = (text or "").encode()
    r.headers.update(headers or {})
    return r


def test_api_errors_become_our_types_and_keep_kommos_details():
    problem = {"title": "Unauthorized", "type": "https://httpstatus.es/401", "status": 401, "detail": "nope"}
    with pytest.raises(CrmTokenExpired) as caught:
        classify(_response(401, problem))
    assert caught.value.details == problem

    with pytest.raises(CrmForbidden):
        classify(_response(403, {"title": "Forbidden", "status": 403, "detail": "Insufficient rights"}))
    with pytest.raises(CrmNotFound):
        classify(_response(404, {"status": 404, "detail": "Cannot GET"}))
    with pytest.raises(CrmBadResponse) as bad:
        classify(_response(422, {"status": 422, "detail": "Limit 250 per page"}))
    assert "Limit 250 per page" in str(bad.value)
    with pytest.raises(CrmUnavailable):
        classify(_response(502, text="<html>bad gateway</html>"))


def test_an_html_403_is_an_ip_block_worth_retrying():
    with pytest.raises(CrmUnavailable) as caught:
        classify(_response(403, text="<html><center><h1>403 Forbidden</h1></center>nginx</html>"))
    assert getattr(caught.value, "not_applied", False) is True


@pytest.mark.parametrize(
    ("body", "headers", "wait"),
    [
        ({"status": 429, "retry_after": 3}, {}, 3.0),
        (None, {"Retry-After": "2"}, 2.0),
        ({"status": 429, "retry_after": 300}, {"Retry-After": "1"}, 300.0),
        (None, {}, None),
    ],
)
def test_429_honours_retry_after_from_body_or_header(body, headers, wait):
    with pytest.raises(CrmRateLimited) as caught:
        classify(_response(429, body, headers, text="Too Many Requests"))
    assert caught.value.retry_after == wait


def test_204_is_none_and_200_is_json():
    assert classify(_response(204)) is None
    assert classify(_response(200, {"id": 1})) == {"id": 1}


def test_refresh_requests_are_users_pages_plus_pipelines():
    assert pages_needed(600) == 4
    assert pages_needed(250) == 2
    assert pages_needed(1) == 2
