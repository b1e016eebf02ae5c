"""The sandbox Bitrix24 keeps the wire contract of reference §10 (raw HTTP, no client of ours)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest
import requests
from werkzeug.serving import make_server

from sandbox.bitrix24 import AppRegistration, SandboxState
from sandbox.bitrix24.reqlog import KIND_TOKEN
from tests.support.bitrix24_sandbox import Bitrix24Sandbox

CLIENT_ID, SECRET = "local.test0000000001.00000001", "sandbox-test-secret"


class Catcher:
    """A handler URL that records what the portal POSTs to it (an event receiver)."""

    def __init__(self) -> None:
        self.bodies: list[list[tuple[str, str]]] = []
        self._server = make_server("127.0.0.1", 0, self)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        import threading

        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def __call__(self, environ, start_response):  # a tiny WSGI app
        size = int(environ.get("CONTENT_LENGTH") or 0)
        self.bodies.append(parse_qsl(environ["wsgi.input"].read(size).decode(), keep_blank_values=True))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status":"ok"}']

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def sb() -> Iterator[Bitrix24Sandbox]:
    sandbox = Bitrix24Sandbox()
    sandbox.state.register_app(
        AppRegistration(CLIENT_ID, SECRET, "http://127.0.0.1:9/app", "http://127.0.0.1:9/install", {"en": "Test"})
    )
    sandbox.add_portal("localhost")
    yield sandbox
    sandbox.stop()


def _portal(sb: Bitrix24Sandbox):
    return next(iter(sb.state.portals.values()))


def _token(sb: Bitrix24Sandbox, user_id: int = 1, install: bool = True) -> str:
    portal = _portal(sb)
    if install and portal.installation is None:
        sb.state.begin_install(portal, 1)
    return sb.state.issue_token(portal, user_id).access_token


def _rest(sb: Bitrix24Sandbox, method: str, **kw) -> requests.Response:
    return requests.post(f"{_portal(sb).client_endpoint}{method}", timeout=10, **kw)


def test_calling_conventions_are_tolerated(sb):
    token = _token(sb)
    base = _portal(sb).origin
    answers = [
        requests.post(f"{base}/rest/profile.json", data={"auth": token}, timeout=10),
        requests.get(f"{base}/rest/PROFILE?auth={token}", timeout=10),
        requests.post(f"{base}/rest//profile", json={"auth": token}, timeout=10),  # the JS SDK's double slash
        requests.post(f"{base}/rest/profile", headers={"Authorization": f"Bearer {token}"}, timeout=10),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["result"]["ID"] == "1" and body["result"]["ADMIN"] is True
        assert {"start", "finish", "operating_reset_at"} <= set(body["time"])
        assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_token_errors(sb):
    missing = _rest(sb, "profile")
    assert (missing.status_code, missing.json()["error"]) == (401, "NO_AUTH_FOUND")
    assert "time" in missing.json()
    assert _rest(sb, "profile", data={"auth": "nope"}).json()["error"] == "NO_AUTH_FOUND"
    token = _token(sb)
    sb.state.expire_tokens_now()
    expired = _rest(sb, "profile", data={"auth": token})
    assert (expired.status_code, expired.json()["error"]) == (401, "expired_token")
    fresh = _token(sb)
    sb.state.uninstall(_portal(sb))
    gone = _rest(sb, "profile", data={"auth": fresh})
    assert (gone.status_code, gone.json()["error"]) == (401, "APPLICATION_NOT_FOUND")


def test_refresh_rotates_the_pair(sb):
    portal = _portal(sb)
    sb.state.begin_install(portal, 1)
    grant = sb.state.issue_token(portal, 1)
    url = f"{sb.oauth_url}/oauth/token/"
    params = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": SECRET}

    first = requests.get(url, params={**params, "refresh_token": grant.refresh_token}, timeout=10).json()
    assert first["refresh_token"] != grant.refresh_token
    assert first["member_id"] == portal.member_id and first["user_id"] == 1 and first["expires_in"] == 3600
    assert first["client_endpoint"] == portal.client_endpoint and "expires" in first
    reused = requests.post(url, data={**params, "refresh_token": grant.refresh_token}, timeout=10)
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    wrong = requests.get(
        url, params={**params, "client_secret": "x", "refresh_token": first["refresh_token"]}, timeout=10
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert _rest(sb, "profile", data={"auth": grant.access_token}).status_code == 401  # the old access token died
    assert _rest(sb, "profile", data={"auth": first["access_token"]}).status_code == 200
    assert sb.state.log.count(kind=KIND_TOKEN) == 3


def test_app_info_on_the_oauth_server(sb):
    token = _token(sb, user_id=2)
    for path in ("/rest/app.info", "/rest/app.info/"):
        info = requests.get(f"{sb.oauth_url}{path}", params={"auth": token}, timeout=10).json()["result"]
        assert info["client_id"] == CLIENT_ID and info["user_id"] == 2
        install = info["install"]
        assert install["member_id"] == _portal(sb).member_id and install["domain"] == _portal(sb).domain
        assert install["installed"] is False  # installFinish not called yet
    bad = requests.post(f"{sb.oauth_url}/rest/app.info", data={"auth": "forged"}, timeout=10)
    assert (bad.status_code, bad.json()["error"]) == (401, "invalid_token")


def test_lists_page_by_50_with_total_and_next(sb):
    sb.state.set_users(_portal(sb), 120)
    token = _token(sb)
    page = _rest(sb, "user.get", json={"auth": token, "start": 50}).json()
    assert (len(page["result"]), page["total"], page["next"]) == (50, 120, 100)
    last = _rest(sb, "user.get", json={"auth": token, "start": 100}).json()
    assert len(last["result"]) == 20 and "next" not in last
    fast = _rest(sb, "user.get", json={"auth": token, "start": -1, "order": {"ID": "DESC"}}).json()
    assert "total" not in fast and fast["result"][0]["ID"] == "120"
    assert _rest(sb, "user.get", json={"auth": token, "ID": "7"}).json()["result"][0]["ID"] == "7"  # legacy filter


# What the official JS SDK adds to every call (BX24.callMethod / b24jssdk).
SDK_PARAMS = {"bx24_request_id": "0f3a9c", "bx24_sdk_type": "b24-js-sdk", "bx24_sdk_ver": "0.4.7"}


def test_user_get_ignores_parameters_that_are_no_user_field(sb):
    portal = _portal(sb)
    token = _token(sb)
    everyone = len(portal.users)
    # Legacy form (no FILTER): the top-level keys are the filter, but only user fields count.
    plain = _rest(sb, "user.get", json={"auth": token, "sort": "ID", "order": "ASC", **SDK_PARAMS}).json()
    assert plain["total"] == everyone
    form = _rest(sb, "user.get", data={"auth": token, "start": "0", **SDK_PARAMS}).json()
    assert form["total"] == everyone
    # With FILTER, a key naming no field is skipped; the fields it names still filter.
    odd = _rest(sb, "user.get", json={"auth": token, "FILTER": {"NO_SUCH_FIELD": "x"}, **SDK_PARAMS}).json()
    assert odd["total"] == everyone
    one = _rest(sb, "user.get", json={"auth": token, "FILTER": {"ID": 2, "COLOR": "blue"}, **SDK_PARAMS}).json()
    assert [u["ID"] for u in one["result"]] == ["2"]
    # Operations in front of the field, in either form; keys are case-insensitive.
    later = _rest(sb, "user.get", json={"auth": token, "filter": {">=id": 10}}).json()["result"]
    assert [u["ID"] for u in later] == [str(i) for i in sorted(portal.users) if i >= 10]
    fired = [u.id for u in portal.users.values() if not u.active]
    active = _rest(sb, "user.get", json={"auth": token, "ACTIVE": True, **SDK_PARAMS}).json()
    assert active["total"] == everyone - len(fired)
    inactive = _rest(sb, "user.get", json={"auth": token, "FILTER": {"ACTIVE": False}}).json()
    assert [int(u["ID"]) for u in inactive["result"]] == fired


def test_crm_lists_skip_filter_keys_that_name_no_field(sb):
    token = _token(sb)
    contacts = _portal(sb).records["contact"]
    everyone = _rest(sb, "crm.contact.list", json={"auth": token, **SDK_PARAMS}).json()
    assert everyone["total"] == len(contacts)
    odd = _rest(sb, "crm.contact.list", json={"auth": token, "filter": {"NO_SUCH_FIELD": "x"}}).json()
    assert odd["total"] == len(contacts)
    by_phone = _rest(
        sb, "crm.contact.list", json={"auth": token, "filter": {"PHONE": "+971 50 123 4567", "WHATEVER": 1}}
    ).json()
    assert [c["ID"] for c in by_phone["result"]] == ["2"]
    # Operations work, and so does the order asked for.
    others = _rest(sb, "crm.contact.list", json={"auth": token, "filter": {"!ID": 2}, "order": {"ID": "DESC"}}).json()[
        "result"
    ]
    assert [c["ID"] for c in others] == [str(i) for i in sorted(contacts, reverse=True) if i != 2]
    some = _rest(sb, "crm.contact.list", json={"auth": token, "filter": {"@ID": [1, 2]}}).json()["result"]
    assert [c["ID"] for c in some] == ["1", "2"]
    stages = _rest(
        sb,
        "crm.status.list",
        json={"auth": token, "filter": {"ENTITY_ID": "DEAL_STAGE", "NO_SUCH_FIELD": "x"}, **SDK_PARAMS},
    ).json()
    assert stages["total"] == len(_portal(sb).stages("DEAL_STAGE")) > 0


def test_crm_add_and_update_keep_only_the_entitys_fields(sb):
    token = _token(sb)
    fields = {"NAME": "Ana", "NO_SUCH_FIELD": "x", "ORIGIN_ID": "k1", "UF_CRM_SHOE_SIZE": "38"}
    new_id = _rest(sb, "crm.contact.add", json={"auth": token, "fields": fields, **SDK_PARAMS}).json()["result"]
    stored = _rest(sb, "crm.contact.get", json={"auth": token, "id": new_id}).json()["result"]
    assert stored["NAME"] == "Ana" and stored["ORIGIN_ID"] == "k1" and stored["UF_CRM_SHOE_SIZE"] == "38"
    assert "NO_SUCH_FIELD" not in stored
    changed = {"LAST_NAME": "Lima", "ALSO_NOT_A_FIELD": "y"}
    assert _rest(sb, "crm.contact.update", json={"auth": token, "id": new_id, "fields": changed}).json()["result"]
    stored = _rest(sb, "crm.contact.get", json={"auth": token, "id": new_id}).json()["result"]
    assert stored["LAST_NAME"] == "Lima" and "ALSO_NOT_A_FIELD" not in stored


def test_empty_results_are_php_empty_arrays_and_legacy_errors_have_no_code(sb):
    token = _token(sb)
    nothing = _rest(sb, "crm.duplicate.findbycomm", json={"auth": token, "type": "PHONE", "values": ["+100"]}).json()
    assert nothing["result"] == []
    found = _rest(
        sb, "crm.duplicate.findbycomm", json={"auth": token, "type": "PHONE", "values": ["+971501234567"]}
    ).json()
    assert found["result"] == {"CONTACT": [2]}
    legacy = _rest(sb, "crm.deal.update", json={"auth": token, "id": 999, "fields": {"TITLE": "x"}})
    assert legacy.status_code == 400 and legacy.json()["error"] == ""
    assert _rest(sb, "crm.deal.add", json={"auth": token, "fields": "nope"}).json()["error"] == ""


def test_batch_semantics(sb):
    token = _token(sb)
    answer = _rest(
        sb,
        "batch",
        json={
            "auth": token,
            "halt": 0,
            "cmd": {
                "c": "crm.contact.add?fields%5BNAME%5D=Ana",
                "d": "crm.deal.add?fields%5BTITLE%5D=T&fields%5BCONTACT_ID%5D=%24result%5Bc%5D",
                "bad": "crm.deal.update?id=999&fields%5BTITLE%5D=x",
                "nested": "batch",
                "u": "user.get?ID=%24result%5Bc%5D",
            },
        },
    )
    assert answer.status_code == 200
    body = answer.json()["result"]
    contact_id = body["result"]["c"]
    deal = _portal(sb).records["deal"][body["result"]["d"]]
    assert deal["CONTACT_ID"] == str(contact_id)
    assert body["result_error"]["bad"]["error"] == ""
    assert body["result_error"]["nested"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"
    assert body["result_total"]["u"] is not None

    halted = _rest(
        sb,
        "batch",
        json={"auth": token, "halt": 1, "cmd": {"bad": "crm.deal.update?id=999", "never": "profile"}},
    ).json()["result"]
    assert "never" not in (halted["result"] or {}) and halted["result"] == []
    assert halted["result_total"] == [] and halted["result_next"] == []

    too_many = {f"k{i}": "profile" for i in range(51)}
    over = _rest(sb, "batch", json={"auth": token, "cmd": too_many}).json()["result"]
    assert over["result_error"]["k50"]["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"


def test_leaky_bucket_refuses_over_the_burst(sb):
    sb.state.set_rate_limit(rate=0.5, burst=5)
    token = _token(sb)
    statuses = [_rest(sb, "profile", data={"auth": token}).status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5
    assert statuses[5:] == [503, 503]
    refused = _rest(sb, "profile", data={"auth": token}).json()
    assert refused["error"] == "QUERY_LIMIT_EXCEEDED" and "time" in refused


def test_binding_rules(sb):
    admin, employee = _token(sb, 1), _token(sb, 2)
    args = {"PLACEMENT": "LEFT_MENU", "HANDLER": "http://127.0.0.1:9/app", "TITLE": "Chats"}
    assert _rest(sb, "placement.bind", json={"auth": admin, **args}).json()["result"] is True
    again = _rest(sb, "placement.bind", json={"auth": admin, **args})
    assert again.status_code == 400 and again.json()["error_description"].endswith("Handler already binded")
    assert _rest(sb, "placement.bind", json={"auth": employee, **args}).json()["error"] == "ACCESS_DENIED"
    local = _rest(sb, "placement.bind", json={"auth": admin, **args, "HANDLER": "http://localhost/x"}).json()
    assert local["error"] == "ERROR_WRONG_HANDLER_URL"  # the core wants a dotted host
    ev = {"event": "ONCRMDEALUPDATE", "handler": "http://127.0.0.1:9/events"}
    assert _rest(sb, "event.bind", json={"auth": admin, **ev}).json()["result"] is True
    assert "already binded" in _rest(sb, "event.bind", json={"auth": admin, **ev}).json()["error_description"]
    assert (
        _rest(sb, "event.bind", json={"auth": admin, "event": "ONNOPE", "handler": ev["handler"]}).json()["error"]
        == "ERROR_EVENT_NOT_FOUND"
    )


def test_events_flow_only_after_install_finish_and_look_like_php_forms(sb):
    catcher = Catcher()
    try:
        portal = _portal(sb)
        token = _token(sb)
        _rest(sb, "event.bind", json={"auth": token, "event": "ONCRMDEALUPDATE", "handler": catcher.url})
        sb.state.update_record(portal, "deal", 1, {"TITLE": "before installFinish"})
        assert sb.state.wait_deliveries()
        assert catcher.bodies == []

        sb.state.install_finish(portal)
        sb.state.update_record(portal, "deal", 1, {"TITLE": "after"})
        assert sb.state.wait_deliveries()
        (body,) = catcher.bodies
        fields = dict(body)
        assert fields["event"] == "ONCRMDEALUPDATE" and fields["data[FIELDS][ID]"] == "1"
        assert fields["event_handler_id"] and fields["auth[expires]"] and fields["auth[expires_in]"] == "3600"
        assert fields["auth[application_token]"] == portal.installation.application_token
        assert fields["auth[member_id]"] == portal.member_id
        assert "auth[refresh_token]" not in fields  # only ONAPPINSTALL carries one
    finally:
        catcher.stop()


def test_rename_answers_302_with_location_and_an_empty_body(sb):
    portal = _portal(sb)
    token = _token(sb)
    old = portal.client_endpoint
    sb.state.rename_portal(portal, f"127.0.0.2:{sb.port}")
    moved = requests.post(f"{old}user.get", data={"auth": token}, allow_redirects=False, timeout=10)
    assert moved.status_code == 302 and moved.text == ""
    assert moved.headers["Location"] == f"http://127.0.0.2:{sb.port}/rest/user.get"
    assert requests.post(moved.headers["Location"], data={"auth": token}, timeout=10).status_code == 200


def test_simple_crm_has_no_leads_and_converts_new_ones(sb):
    token = _token(sb)
    sb.state.set_crm_mode(_portal(sb), "simple")
    assert _rest(sb, "crm.settings.mode.get", data={"auth": token}).json()["result"] == 2
    deals_before = len(_portal(sb).records["deal"])
    lead = _rest(sb, "crm.lead.add", json={"auth": token, "fields": {"TITLE": "x", "NAME": "Y"}}).json()["result"]
    assert _portal(sb).records["lead"][lead]["STATUS_ID"] == "CONVERTED"
    assert len(_portal(sb).records["deal"]) == deals_before + 1


def test_http_controls(sb):
    base = _portal(sb).origin
    assert requests.post(f"{base}/_sandbox/crm-mode", json={"mode": "simple"}, timeout=10).json()["ok"] is True
    assert _portal(sb).crm_mode == 2
    opened = requests.post(f"{base}/_sandbox/install", json={"user_id": 1}, timeout=10).json()["result"]
    assert opened["form"]["PLACEMENT"] == "DEFAULT" and "APP_SID=" in opened["url"]
    log = requests.get(f"{base}/_sandbox/log", params={"kind": "control"}, timeout=10).json()
    assert log["count"] == 2
    state = requests.get(f"{base}/_sandbox/state", timeout=10).json()
    assert state["portals"][0]["crm_mode"] == "simple"


def test_a_portal_is_chosen_by_host(sb):
    other = sb.add_portal("127.0.0.3", demo=False, users=2)
    sb.state.begin_install(other, 1)
    token = sb.state.issue_token(other, 1).access_token
    mine = requests.post(f"{other.client_endpoint}user.get", data={"auth": token}, timeout=10).json()
    assert mine["total"] == 2
    # The same token on another portal's host is nobody's.
    assert _rest(sb, "user.get", data={"auth": token}).json()["error"] == "NO_AUTH_FOUND"


def test_state_needs_a_registered_app():
    state = SandboxState()
    portal = state.add_portal("localhost:1")
    with pytest.raises(Exception, match="no application registered"):
        state.begin_install(portal, 1)
