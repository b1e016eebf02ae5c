"""The sandbox Kommo keeps Kommo's contract over real HTTP (reference kommo.md §1-6, §9).

Our Kommo client is only as good as the stand-in it is tested against, so every rule the reference
pins down is checked here on the wire: token rotation, 204 on empty results, the 250 cap, the 7 rps
limit, admin-only users, complex's bare array, Unsorted, faults, widget JWTs and the revoke hook.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from flask import Flask, jsonify, request

from tests.support.kommo_sandbox import DEMO_HOST, RunningKommo, kommo, running_kommo
from tests.support.servers import LiveServer, live_server

__all__ = ["kommo"]  # the fixture, re-exported for pytest

TIMEOUT = 5


# --- our side of the wire: a recorder standing in for our server -------------------------------------


@dataclass
class Recorder:
    """Records what Kommo sends us (install webhook, revoke hook, entity webhooks)."""

    status: int = 200
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Flask:
        app = Flask("recorder")

        @app.route("/<path:path>", methods=["GET", "POST"])
        def record(path: str) -> Any:
            with self.lock:
                self.calls.append(
                    {
                        "method": request.method,
                        "path": "/" + path,
                        "args": request.args.to_dict(),
                        "form": request.form.to_dict(),
                        "content_type": request.content_type,
                        "user_agent": request.headers.get("User-Agent"),
                    }
                )
            return jsonify(ok=self.status < 400), self.status

        return app


@pytest.fixture
def ours() -> Iterator[tuple[Recorder, LiveServer]]:
    recorder = Recorder()
    with live_server(recorder.app()) as server:
        yield recorder, server


@pytest.fixture
def sandbox_for(ours: tuple[Recorder, LiveServer], kommo: RunningKommo) -> RunningKommo:
    """The sandbox aimed at the recorder. The 7 rps limit is lifted here because these tests check
    other rules; ``test_more_than_seven_requests_a_second_get_429`` checks the limit itself."""
    kommo.point_at(ours[1].url)
    kommo.sandbox.set_rate_limit(1000)
    return kommo


# --- helpers ------------------------------------------------------------------------------------------


def token_request(k: RunningKommo, host: str = DEMO_HOST, *, form: bool = False, **params: Any) -> requests.Response:
    body = {"client_id": k.sandbox.client_id, "client_secret": k.sandbox.client_secret,
            "redirect_uri": k.sandbox.redirect_uri, **params}  # fmt: skip
    url = f"{k.account_url(host)}/oauth2/access_token"
    if form:
        return requests.post(url, data=body, timeout=TIMEOUT)
    return requests.post(url, json=body, timeout=TIMEOUT)


def exchange(k: RunningKommo, code: str, host: str = DEMO_HOST, **params: Any) -> requests.Response:
    return token_request(k, host, grant_type="authorization_code", code=code, **params)


def refresh(k: RunningKommo, refresh_token: str, host: str = DEMO_HOST) -> requests.Response:
    return token_request(k, host, grant_type="refresh_token", refresh_token=refresh_token)


def api(
    k: RunningKommo, token: str, path: str, method: str = "GET", host: str = DEMO_HOST, **kwargs: Any
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return requests.request(method, f"{k.account_url(host)}/api/v4/{path}", headers=headers, timeout=TIMEOUT, **kwargs)


def tokens(k: RunningKommo, user_id: int | None = None, host: str = DEMO_HOST) -> dict[str, Any]:
    response = exchange(k, k.sandbox.issue_code(host, user_id), host)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def user_named(k: RunningKommo, name: str) -> int:
    return next(u.id for u in k.sandbox.users(DEMO_HOST) if u.name == name)


def assert_problem(response: requests.Response, status: int, hint: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if hint is not None:
        assert body["hint"] == hint
    return body


# --- token endpoint -----------------------------------------------------------------------------------


def test_code_exchange_returns_a_bearer_pair_whose_access_token_is_a_jwt(sandbox_for: RunningKommo) -> None:
    body = tokens(sandbox_for)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    assert isinstance(body["server_time"], int)
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "JWT"
    assert body["refresh_token"].startswith("def502")
    assert api(sandbox_for, body["access_token"], "account").status_code == 200


def test_form_encoded_token_requests_work_like_json_ones(sandbox_for: RunningKommo) -> None:
    code = sandbox_for.sandbox.issue_code(DEMO_HOST)
    response = token_request(sandbox_for, form=True, grant_type="authorization_code", code=code)
    assert response.status_code == 200
    assert api(sandbox_for, response.json()["access_token"], "account").json()["name"] == "Demo Company"


def test_an_authorization_code_works_once(sandbox_for: RunningKommo) -> None:
    code = sandbox_for.sandbox.issue_code(DEMO_HOST)
    assert exchange(sandbox_for, code).status_code == 200
    body = assert_problem(exchange(sandbox_for, code), 400, "Authorization code has been revoked")
    assert "error" not in body  # Kommo's bodies are not RFC 6749 style (reference §1.4)


def test_an_authorization_code_expires_after_20_minutes(sandbox_for: RunningKommo) -> None:
    clock = sandbox_for.sandbox.clock
    clock.freeze()
    fresh, stale = sandbox_for.sandbox.issue_code(DEMO_HOST), sandbox_for.sandbox.issue_code(DEMO_HOST)
    clock.advance(20 * 60)
    assert exchange(sandbox_for, fresh).status_code == 200
    clock.advance(1)
    assert_problem(exchange(sandbox_for, stale), 400, "Authorization code has expired")


def test_a_code_is_bound_to_its_account_client_and_redirect_uri(sandbox_for: RunningKommo) -> None:
    sb = sandbox_for.sandbox
    other = sb.add_account("acme")
    assert_problem(exchange(sandbox_for, sb.issue_code(DEMO_HOST), redirect_uri="https://evil.example/cb"),
                   400, "Redirect URI is not associated with client")  # fmt: skip
    assert_problem(exchange(sandbox_for, sb.issue_code(DEMO_HOST), client_id="someone-else"),
                   400, "Check the `client_id` parameter")  # fmt: skip
    assert_problem(exchange(sandbox_for, sb.issue_code(DEMO_HOST), client_secret="guessed"),
                   400, "Check the `client_secret` parameter")  # fmt: skip
    assert_problem(exchange(sandbox_for, sb.issue_code(DEMO_HOST), other), 400, "Invalid account")
    assert_problem(exchange(sandbox_for, "def502-made-up"), 400, "Cannot decrypt the authorization code")


def test_the_old_refresh_token_works_until_the_new_pair_is_used(sandbox_for: RunningKommo) -> None:
    first = tokens(sandbox_for)
    second = refresh(sandbox_for, first["refresh_token"])
    assert second.status_code == 200
    # The answer was "lost": retrying with the old refresh token still works (reference §1.3).
    retried = refresh(sandbox_for, first["refresh_token"])
    assert retried.status_code == 200
    assert retried.json()["access_token"] != second.json()["access_token"]

    assert api(sandbox_for, retried.json()["access_token"], "account").status_code == 200
    assert_problem(refresh(sandbox_for, first["refresh_token"]), 401, "Token has been revoked")
    # The pair whose answer was lost is void too: only one pair may live on.
    assert_problem(refresh(sandbox_for, second.json()["refresh_token"]), 401, "Token has been revoked")
    assert sandbox_for.sandbox.refresh_count(DEMO_HOST) == 2


def test_using_the_new_refresh_token_retires_the_old_one(sandbox_for: RunningKommo) -> None:
    first = tokens(sandbox_for)
    second = refresh(sandbox_for, first["refresh_token"]).json()
    third = refresh(sandbox_for, second["refresh_token"])
    assert third.status_code == 200
    assert_problem(refresh(sandbox_for, first["refresh_token"]), 401, "Token has been revoked")
    assert_problem(refresh(sandbox_for, "def502-never-issued"), 400, "Invalid refresh token")


def test_a_refresh_token_unused_for_three_months_is_dead(sandbox_for: RunningKommo) -> None:
    sandbox_for.sandbox.clock.freeze()
    pair = tokens(sandbox_for)
    sandbox_for.sandbox.clock.advance(90 * 24 * 3600)
    assert_problem(refresh(sandbox_for, pair["refresh_token"]), 401, "Token has expired")


def test_expired_access_tokens_get_401_and_one_refresh_recovers(sandbox_for: RunningKommo) -> None:
    pair = tokens(sandbox_for)
    assert sandbox_for.sandbox.expire_tokens(DEMO_HOST) == 1
    refused = api(sandbox_for, pair["access_token"], "account")
    assert_problem(refused, 401)
    assert refused.json()["title"] == "Unauthorized"
    renewed = refresh(sandbox_for, pair["refresh_token"]).json()
    assert api(sandbox_for, renewed["access_token"], "account").status_code == 200
    assert sandbox_for.sandbox.refresh_count(DEMO_HOST) == 1
    assert sandbox_for.sandbox.count("POST", "/oauth2/access_token", DEMO_HOST) == 2


def test_an_unknown_bearer_token_gets_401_problem_json(sandbox_for: RunningKommo) -> None:
    assert_problem(api(sandbox_for, "not-a-token", "account"), 401)
    assert_problem(requests.get(f"{sandbox_for.account_url()}/api/v4/account", timeout=TIMEOUT), 401)


# --- install, button flow, uninstall -----------------------------------------------------------------


def test_the_install_webhook_gets_a_code_without_state_and_its_answer_is_ignored(
    sandbox_for: RunningKommo, ours: tuple[Recorder, LiveServer]
) -> None:
    recorder, _ = ours
    recorder.status = 500  # Kommo neither checks the answer nor resends (reference §1.2)
    response = sandbox_for.sandbox.deliver_install_webhook(DEMO_HOST)
    assert response.status_code == 500
    (call,) = recorder.calls
    assert call["method"] == "GET" and call["path"] == "/kommo/oauth/callback"
    assert call["args"]["referer"] == DEMO_HOST and call["args"]["from_widget"] == "1"
    assert "state" not in call["args"]
    assert sandbox_for.sandbox.account(DEMO_HOST).widget_installed
    assert exchange(sandbox_for, call["args"]["code"]).status_code == 200


def test_the_button_flow_redirects_with_code_state_and_client_id_or_access_denied(sandbox_for: RunningKommo) -> None:
    sb = sandbox_for.sandbox
    allowed = urlsplit(sb.button_redirect_url(DEMO_HOST, "s-123"))
    query = {k: v[0] for k, v in parse_qs(allowed.query).items()}
    assert f"{allowed.scheme}://{allowed.netloc}{allowed.path}" == sb.redirect_uri
    assert query["state"] == "s-123" and query["referer"] == DEMO_HOST and query["client_id"] == sb.client_id
    assert exchange(sandbox_for, query["code"]).status_code == 200
    denied = parse_qs(urlsplit(sb.button_redirect_url(DEMO_HOST, "s-123", deny=True)).query)
    assert denied == {"error": ["access_denied"], "client_id": [sb.client_id], "state": ["s-123"]}


def test_the_account_picker_popup_lets_an_admin_allow_and_refuses_a_first_install_by_a_non_admin(
    sandbox_for: RunningKommo,
) -> None:
    sb = sandbox_for.sandbox
    popup = f"{sandbox_for.url}/www.kommo.test/oauth"
    page = requests.get(popup, params={"client_id": sb.client_id, "state": "st", "mode": "popup"}, timeout=TIMEOUT)
    assert page.status_code == 200 and "Allow" in page.text
    form = {"client_id": sb.client_id, "state": "st", "decision": "allow"}
    non_admin = user_named(sandbox_for, "José Núñez")
    refused = requests.post(popup, data={**form, "who": f"{DEMO_HOST}|{non_admin}"}, timeout=TIMEOUT)
    assert refused.status_code == 403 and "only an administrator" in refused.text
    allowed = requests.post(popup, data={**form, "who": f"{DEMO_HOST}|{sb.admin_id(DEMO_HOST)}"},
                            allow_redirects=False, timeout=TIMEOUT)  # fmt: skip
    assert allowed.status_code == 302
    assert allowed.headers["Location"].startswith(sb.redirect_uri + "?code=")
    assert "state=st" in allowed.headers["Location"]


def test_the_revoke_hook_is_signed_with_the_documented_hmac_and_cuts_api_access(
    sandbox_for: RunningKommo, ours: tuple[Recorder, LiveServer]
) -> None:
    recorder, _ = ours
    sb = sandbox_for.sandbox
    pair = tokens(sandbox_for)
    sb.call_revoke_hook(DEMO_HOST)
    (call,) = recorder.calls
    account_id = sb.account(DEMO_HOST).id
    expected = hmac.new(sb.client_secret.encode(), f"{sb.client_id}|{account_id}".encode(), hashlib.sha256).hexdigest()
    assert call["path"] == "/kommo/uninstall"
    assert call["args"] == {"client_uuid": sb.client_id, "account_id": str(account_id), "signature": expected}
    assert_problem(api(sandbox_for, pair["access_token"], "account"), 401)
    assert_problem(refresh(sandbox_for, pair["refresh_token"]), 401, "Token has been revoked")
    assert not sb.account(DEMO_HOST).widget_installed


def test_a_forged_revoke_hook_carries_the_forged_values(
    sandbox_for: RunningKommo, ours: tuple[Recorder, LiveServer]
) -> None:
    recorder, _ = ours
    sandbox_for.sandbox.call_revoke_hook(DEMO_HOST, signature="0" * 64, client_uuid="another-integration")
    assert recorder.calls[0]["args"]["signature"] == "0" * 64
    assert recorder.calls[0]["args"]["client_uuid"] == "another-integration"


# --- widget JWT ---------------------------------------------------------------------------------------


def test_widget_jwts_verify_with_pyjwt_and_carry_the_documented_claims(sandbox_for: RunningKommo) -> None:
    sb = sandbox_for.sandbox
    seller = user_named(sandbox_for, "Мария Иванова")
    token = sb.mint_widget_jwt(DEMO_HOST, seller, aud="https://widget.example")
    claims = jwt.decode(token, sb.client_secret, algorithms=["HS256"], audience="https://widget.example")
    assert claims["iss"] == f"{sandbox_for.url}/{DEMO_HOST}"
    assert claims["exp"] - claims["iat"] == 1800 and claims["nbf"] == claims["iat"]
    assert claims["account_id"] == sb.account(DEMO_HOST).id
    assert claims["user_id"] == seller and claims["is_admin"] is False
    assert claims["subdomain"] == "demo" and claims["client_uuid"] == sb.client_id
    assert re.fullmatch(r"[0-9a-f-]{36}", claims["jti"])
    # By default the audience is our server's origin, taken from the redirect URI (reference §3).
    default = jwt.decode(sb.mint_widget_jwt(DEMO_HOST, sb.admin_id(DEMO_HOST)), sb.client_secret,
                         algorithms=["HS256"], audience=sb.redirect_origin)  # fmt: skip
    assert default["is_admin"] is True


def test_forged_widget_jwts_fail_verification(sandbox_for: RunningKommo) -> None:
    sb = sandbox_for.sandbox
    admin = sb.admin_id(DEMO_HOST)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(sb.mint_widget_jwt(DEMO_HOST, admin, secret="x" * 40), sb.client_secret,
                   algorithms=["HS256"], audience=sb.redirect_origin)  # fmt: skip
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(sb.mint_widget_jwt(DEMO_HOST, admin, now=sb.clock.now() - 3600), sb.client_secret,
                   algorithms=["HS256"], audience=sb.redirect_origin)  # fmt: skip
    without_user = sb.mint_widget_jwt(DEMO_HOST, admin, claims={"user_id": None})
    assert "user_id" not in jwt.decode(without_user, sb.client_secret, algorithms=["HS256"],
                                       audience=sb.redirect_origin)  # fmt: skip


# --- account, users, pipelines ------------------------------------------------------------------------


def test_users_page_through_hal_links_over_six_hundred_users(sandbox_for: RunningKommo) -> None:
    sandbox_for.sandbox.add_users(DEMO_HOST, 600)
    token = tokens(sandbox_for)["access_token"]
    url: str | None = f"{sandbox_for.account_url()}/api/v4/users?limit=250"
    names: list[str] = []
    pages = []
    while url:
        response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
        assert response.headers["Content-Type"] == "application/hal+json"
        body = response.json()
        pages.append((body["_page"], body["_page_count"], body["_total_items"]))
        names += [u["name"] for u in body["_embedded"]["users"]]
        url = body["_links"].get("next", {}).get("href")
    assert pages == [(1, 3, 612), (2, 3, 612), (3, 3, 612)]
    assert len(names) == len(set(names)) == 612
    assert {"José Núñez", "Мария Иванова", "João Gonçalves", "Zoë Ångström"} <= set(names)


def test_users_carry_rights_activity_and_language(sandbox_for: RunningKommo) -> None:
    users = api(sandbox_for, tokens(sandbox_for)["access_token"], "users").json()["_embedded"]["users"]
    assert len(users) == 12
    assert [u["name"] for u in users if u["rights"]["is_admin"]] == ["Olivia Bennett"]
    assert [u["name"] for u in users if not u["rights"]["is_active"]] == ["Sofía Ramírez"]
    assert {u["lang"] for u in users} == {"en", "es", "pt", "ru"}


def test_more_than_250_per_page_is_refused_with_422(sandbox_for: RunningKommo) -> None:
    token = tokens(sandbox_for)["access_token"]
    body = assert_problem(api(sandbox_for, token, "users?limit=251"), 422)
    assert body["detail"] == "Limit 250 per page"
    assert_problem(api(sandbox_for, token, "contacts?limit=500"), 422)


def test_listing_users_is_for_admins_only(sandbox_for: RunningKommo) -> None:
    seller = user_named(sandbox_for, "José Núñez")
    assert_problem(api(sandbox_for, tokens(sandbox_for, seller)["access_token"], "users"), 403)
    admin_token = tokens(sandbox_for)["access_token"]
    # An admin's token acting as a seller gets the seller's rights (X-Context-User-ID, reference §1.1).
    as_seller = api(sandbox_for, admin_token, "users", headers={"X-Context-User-ID": str(seller)})
    assert_problem(as_seller, 403)
    # The account and pipelines are open to every user.
    seller_token = tokens(sandbox_for, seller)["access_token"]
    assert api(sandbox_for, seller_token, "account").json()["current_user_id"] == seller
    assert api(sandbox_for, seller_token, "leads/pipelines").status_code == 200


def test_pipelines_have_an_incoming_stage_and_the_closed_142_and_143(sandbox_for: RunningKommo) -> None:
    body = api(sandbox_for, tokens(sandbox_for)["access_token"], "leads/pipelines").json()
    pipelines = body["_embedded"]["pipelines"]
    assert [p["name"] for p in pipelines] == ["Sales", "Wholesale", "Support"]
    assert [p["is_main"] for p in pipelines] == [True, False, False]
    for p in pipelines:
        statuses = p["_embedded"]["statuses"]
        assert [s["id"] for s in statuses if s["type"] == 1] != []
        assert len([s for s in statuses if s["type"] == 1]) == 1
        assert {142, 143} <= {s["id"] for s in statuses}
        assert all(s["pipeline_id"] == p["id"] for s in statuses)


def test_pipeline_edits_show_up_in_the_api(sandbox_for: RunningKommo) -> None:
    sb = sandbox_for.sandbox
    token = tokens(sandbox_for)["access_token"]
    wholesale = next(p for p in sb.pipelines(DEMO_HOST) if p.name == "Wholesale")
    sb.remove_pipeline(DEMO_HOST, wholesale.id)
    added = sb.add_pipeline(DEMO_HOST, "Partners", ["Intro", "Deal"])
    names = [p["name"] for p in api(sandbox_for, token, "leads/pipelines").json()["_embedded"]["pipelines"]]
    assert names == ["Sales", "Support", "Partners"]
    assert api(sandbox_for, token, f"leads/pipelines/{wholesale.id}").status_code == 404
    assert api(sandbox_for, token, f"leads/pipelines/{added}").json()["name"] == "Partners"


def test_seeding_is_deterministic() -> None:
    with running_kommo() as one, running_kommo() as two:

        def shape(k: RunningKommo) -> list[Any]:
            users = [(u.id, u.name, u.lang, u.is_admin, u.is_active) for u in k.sandbox.users(DEMO_HOST)]
            pipes = [(p.id, p.name, [(s.id, s.name) for s in p.statuses]) for p in k.sandbox.pipelines(DEMO_HOST)]
            return [users, pipes, k.sandbox.account(DEMO_HOST).id]

        assert shape(one) == shape(two)


# --- contacts and leads ------------------------------------------------------------------------------


def test_a_search_that_finds_nothing_is_204_without_a_body(sandbox_for: RunningKommo) -> None:
    response = api(sandbox_for, tokens(sandbox_for)["access_token"], "contacts", params={"query": "+99 000 000"})
    assert response.status_code == 204
    assert response.content == b""


def test_contacts_are_found_by_phone_in_another_format_with_their_leads(sandbox_for: RunningKommo) -> None:
    token = tokens(sandbox_for)["access_token"]
    found = api(sandbox_for, token, "contacts", params={"query": "34600123456", "with": "leads"}).json()
    (contact,) = found["_embedded"]["contacts"]
    assert contact["name"] == "Ana López"
    phone = contact["custom_fields_values"][0]
    assert phone["field_code"] == "PHONE" and phone["values"][0]["enum_code"] == "WORK"
    (lead,) = contact["_embedded"]["leads"]
    assert api(sandbox_for, token, f"leads/{lead['id']}").json()["name"] == "Website order #1001"


def test_contacts_are_created_in_batches_and_reassigned_by_patch(sandbox_for: RunningKommo) -> None:
    token = tokens(sandbox_for)["access_token"]
    seller = user_named(sandbox_for, "João Gonçalves")
    created = api(sandbox_for, token, "contacts", "POST", json=[
        {"name": "Zoë Client", "custom_fields_values": [
            {"field_code": "PHONE", "values": [{"value": "+1 555 777 0001", "enum_code": "MOB"}]}]},
        {"name": "Second", "request_id": "mine"},
    ])  # fmt: skip
    assert created.status_code == 200
    items = created.json()["_embedded"]["contacts"]
    assert [i["request_id"] for i in items] == ["0", "mine"]
    patched = api(sandbox_for, token, "contacts", "PATCH", json=[{"id": items[0]["id"], "responsible_user_id": seller}])
    assert patched.status_code == 200
    one = api(sandbox_for, token, f"contacts/{items[0]['id']}").json()
    assert one["responsible_user_id"] == seller
    single = api(sandbox_for, token, f"contacts/{items[1]['id']}", "PATCH", json={"name": "Renamed"})
    assert single.json()["name"] == "Renamed"
    refused = assert_problem(api(sandbox_for, token, "contacts", "PATCH",
                                 json=[{"id": items[0]["id"], "responsible_user_id": 1}]), 400)  # fmt: skip
    assert refused["validation-errors"][0]["errors"][0] == {
        "code": "NotSupportedChoice", "path": "responsible_user_id",
        "detail": "The value you selected is not a valid choice.",
    }  # fmt: skip
    assert_problem(api(sandbox_for, token, "contacts", "POST", json=[{"name": str(i)} for i in range(251)]), 422)


def test_leads_are_created_linked_and_moved(sandbox_for: RunningKommo) -> None:
    sb = sandbox_for.sandbox
    token = tokens(sandbox_for)["access_token"]
    support = next(p for p in sb.pipelines(DEMO_HOST) if p.name == "Support")
    contact_id = sb.add_contact(DEMO_HOST, "Lead Owner", "+44 20 7946 0000")
    created = api(sandbox_for, token, "leads", "POST", json=[
        {"name": "From API", "pipeline_id": support.id, "_embedded": {"contacts": [{"id": contact_id}]}}
    ])  # fmt: skip
    lead_id = created.json()["_embedded"]["leads"][0]["id"]
    lead = api(sandbox_for, token, f"leads/{lead_id}", params={"with": "contacts"}).json()
    assert lead["pipeline_id"] == support.id
    assert lead["status_id"] == support.first_stage.id  # not the incoming stage
    assert lead["_embedded"]["contacts"][0]["id"] == contact_id
    moved = api(sandbox_for, token, f"leads/{lead_id}", "PATCH", json={"status_id": 142})
    assert moved.status_code == 200
    assert api(sandbox_for, token, f"leads/{lead_id}").json()["closed_at"] is not None
    # A stage of another pipeline is not a valid choice (reference §5.8).
    wrong = assert_problem(api(sandbox_for, token, "leads", "POST",
                               json=[{"pipeline_id": support.id, "status_id": 1}]), 400)  # fmt: skip
    assert wrong["validation-errors"][0]["errors"][0]["path"] == "status_id"


def test_complex_answers_a_bare_array_and_links_the_new_contact_and_lead(sandbox_for: RunningKommo) -> None:
    token = tokens(sandbox_for)["access_token"]
    response = api(sandbox_for, token, "leads/complex", "POST", json=[{
        "name": "WhatsApp +34 611 222 333",
        "_embedded": {"contacts": [{"first_name": "Nuria", "custom_fields_values": [
            {"field_code": "PHONE", "values": [{"value": "+34611222333"}]}]}]},
    }])  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    (item,) = body
    assert item["merged"] is False and item["request_id"] == ["0"] and item["company_id"] is None
    lead = api(sandbox_for, token, f"leads/{item['id']}", params={"with": "contacts"}).json()
    assert lead["_embedded"]["contacts"][0]["id"] == item["contact_id"]
    contact = api(sandbox_for, token, "contacts", params={"query": "+34611222333", "with": "leads"}).json()
    assert contact["_embedded"]["contacts"][0]["_embedded"]["leads"][0]["id"] == item["id"]
    assert_problem(api(sandbox_for, token, "leads/complex", "POST", json=[{"name": "x"}] * 51), 422)


def test_an_incoming_form_lead_is_hidden_until_accepted_then_moves_to_the_chosen_stage(
    sandbox_for: RunningKommo,
) -> None:
    sb = sandbox_for.sandbox
    token = tokens(sandbox_for)["access_token"]
    sales = sb.pipelines(DEMO_HOST)[0]
    seller = user_named(sandbox_for, "Zoë Ångström")
    created = api(sandbox_for, token, "leads/unsorted/forms", "POST", json=[{
        "source_uid": "wazzup-chat-1", "source_name": "Wazzup", "pipeline_id": sales.id,
        "metadata": {"form_id": "wa", "form_name": "WhatsApp", "form_page": "wazzup", "form_sent_at": 1735689600},
        "_embedded": {"leads": [{"name": "New WhatsApp client"}],
                      "contacts": [{"name": "Nuevo", "custom_fields_values": [
                          {"field_code": "PHONE", "values": [{"value": "+52 55 1234 5678"}]}]}]},
    }])  # fmt: skip
    assert created.status_code == 200
    (entry,) = created.json()["_embedded"]["unsorted"]
    lead_id = entry["_embedded"]["leads"][0]["id"]
    assert api(sandbox_for, token, f"leads/{lead_id}").json()["status_id"] == sales.incoming.id
    # Contacts of an unaccepted incoming lead do not appear in lists (reference §5.7).
    assert api(sandbox_for, token, "contacts", params={"query": "525512345678"}).status_code == 204
    listed = api(sandbox_for, token, "leads/unsorted").json()["_embedded"]["unsorted"]
    assert [u["uid"] for u in listed] == [entry["uid"]]
    # What our adapter finds a lost create by: our source_uid, kept and listed (shown to nobody).
    assert [u["source_uid"] for u in listed] == ["wazzup-chat-1"]
    assert isinstance(api(sandbox_for, token, f"leads/{lead_id}").json()["created_at"], int)

    stage = sales.first_stage.id
    accepted = api(sandbox_for, token, f"leads/unsorted/{entry['uid']}/accept", "POST",
                   json={"user_id": seller, "status_id": stage})  # fmt: skip
    assert accepted.status_code == 200
    assert accepted.json()["_embedded"]["leads"][0]["id"] == lead_id
    assert api(sandbox_for, token, f"leads/{lead_id}").json()["status_id"] == stage
    visible = api(sandbox_for, token, "contacts", params={"query": "525512345678"})
    assert visible.status_code == 200 and isinstance(visible.json()["_embedded"]["contacts"][0]["created_at"], int)
    assert api(sandbox_for, token, "leads/unsorted").status_code == 204
    assert_problem(api(sandbox_for, token, f"leads/unsorted/{entry['uid']}/accept", "POST", json={}), 400)


def test_declining_an_incoming_lead_deletes_it(sandbox_for: RunningKommo) -> None:
    token = tokens(sandbox_for)["access_token"]
    created = api(sandbox_for, token, "leads/unsorted/forms", "POST", json=[
        {"source_uid": "x1", "source_name": "Wazzup", "metadata": {}, "_embedded": {"leads": [{"name": "Spam"}]}}
    ]).json()  # fmt: skip
    entry = created["_embedded"]["unsorted"][0]
    assert api(sandbox_for, token, f"leads/unsorted/{entry['uid']}/decline", "DELETE", json={}).status_code == 200
    assert api(sandbox_for, token, f"leads/{entry['_embedded']['leads'][0]['id']}").status_code == 204
    missing = api(sandbox_for, token, "leads/unsorted/forms", "POST", json=[{"source_name": "no uid"}])
    assert assert_problem(missing, 400)["validation-errors"][0]["errors"][0]["path"] == "source_uid"


# --- webhooks -----------------------------------------------------------------------------------------


def test_a_responsible_change_is_posted_to_subscribed_webhooks(
    sandbox_for: RunningKommo, ours: tuple[Recorder, LiveServer]
) -> None:
    recorder, server = ours
    sb = sandbox_for.sandbox
    token = tokens(sandbox_for)["access_token"]
    destination = f"{server.url}/kommo/events"
    subscribed = api(sandbox_for, token, "webhooks", "POST",
                     json={"destination": destination, "settings": ["responsible_lead", "update_lead"]})  # fmt: skip
    assert subscribed.status_code == 201
    assert api(sandbox_for, token, "webhooks").json()["_embedded"]["webhooks"][0]["destination"] == destination

    lead_id = next(iter(sb.account(DEMO_HOST).leads))
    new_owner = user_named(sandbox_for, "Noah Kim")
    (delivery,) = sb.fire_responsible_changed(DEMO_HOST, "leads", lead_id, new_owner)
    assert delivery.status == 200
    (call,) = recorder.calls
    assert call["method"] == "POST" and call["content_type"] == "application/x-www-form-urlencoded"
    form = call["form"]
    assert form["leads[responsible][0][id]"] == str(lead_id)
    assert form["leads[responsible][0][responsible_user_id]"] == str(new_owner)
    assert form["leads[update][0][id]"] == str(lead_id)
    assert form["account[id]"] == str(sb.account(DEMO_HOST).id) and form["account[subdomain]"] == "demo"
    assert api(sandbox_for, token, f"leads/{lead_id}").json()["responsible_user_id"] == new_owner

    assert api(sandbox_for, token, "webhooks", "DELETE", json={"destination": destination}).status_code == 204
    assert api(sandbox_for, token, "webhooks").status_code == 204
    assert (
        sb.fire_responsible_changed(DEMO_HOST, "contacts", next(iter(sb.account(DEMO_HOST).contacts)), new_owner) == []
    )


# --- limits and faults --------------------------------------------------------------------------------


def test_more_than_seven_requests_a_second_get_429(kommo: RunningKommo) -> None:
    kommo.sandbox.clock.freeze()
    token = kommo.sandbox.access_token(DEMO_HOST)
    answers = [api(kommo, token, "account").status_code for _ in range(8)]
    assert answers == [200] * 7 + [429]
    limited = api(kommo, token, "account")
    body = assert_problem(limited, 429)
    assert body["retry_after"] == 1 and limited.headers["Retry-After"] == "1"
    # Another account has its own bucket.
    other = kommo.sandbox.add_account("acme")
    assert api(kommo, kommo.sandbox.access_token(other), "account", host=other).status_code == 200
    kommo.sandbox.clock.advance(1)
    assert api(kommo, token, "account").status_code == 200


def test_faults_look_like_a_dead_blocked_or_failing_kommo(sandbox_for: RunningKommo) -> None:
    sb = sandbox_for.sandbox
    pair = tokens(sandbox_for)
    token = pair["access_token"]

    sb.set_fault("outage")
    for response in (api(sandbox_for, token, "account"), refresh(sandbox_for, pair["refresh_token"])):
        assert response.status_code == 503
        assert response.headers["Content-Type"].startswith("text/html") and "nginx" in response.text
    sb.clear_faults()

    sb.set_fault("block")
    blocked = api(sandbox_for, token, "account")
    assert blocked.status_code == 403 and "<h1>403 Forbidden</h1>" in blocked.text
    sb.clear_faults()

    sb.set_fault("error", status=502, count=2)
    assert [api(sandbox_for, token, "account").status_code for _ in range(3)] == [502, 502, 200]
    sb.set_fault("error", status=500, count=1)
    assert "trace_id" in assert_problem(api(sandbox_for, token, "account"), 500)

    sb.set_fault("rate_limit", retry_after=30, count=1)
    throttled = api(sandbox_for, token, "account")
    assert assert_problem(throttled, 429)["retry_after"] == 30 and throttled.headers["Retry-After"] == "30"

    sb.set_fault("error", status=503, path_contains="/oauth2/access_token")
    assert refresh(sandbox_for, pair["refresh_token"]).status_code == 503
    assert api(sandbox_for, token, "account").status_code == 200
    sb.clear_faults()

    sb.set_fault("latency", seconds=0.05, count=1)
    assert api(sandbox_for, token, "account").status_code == 200
    assert sb.faults() == []
    with pytest.raises(ValueError):
        sb.set_fault("error", status=418)


def test_the_request_log_counts_what_was_sent(sandbox_for: RunningKommo) -> None:
    sb = sandbox_for.sandbox
    token = tokens(sandbox_for)["access_token"]
    sb.reset_log()
    api(sandbox_for, token, "contacts", params={"query": "123456"})
    api(sandbox_for, token, "leads", "POST", json=[{"name": "Logged"}])
    assert sb.count() == 2
    assert sb.count("POST", "/api/v4/leads", DEMO_HOST) == 1
    (entry,) = [e for e in sb.requests_log() if e["method"] == "POST"]
    assert entry["json"] == [{"name": "Logged"}] and entry["status"] == 200
    assert entry["headers"]["Authorization"] == f"Bearer {token}"
    assert entry["query"] == {} and entry["host"] == DEMO_HOST


# --- the control API over HTTP ------------------------------------------------------------------------


def test_the_controls_work_over_http_for_tests_in_other_processes(
    sandbox_for: RunningKommo, ours: tuple[Recorder, LiveServer]
) -> None:
    recorder, _ = ours
    base = f"{sandbox_for.url}/_sandbox"
    sb = sandbox_for.sandbox

    installed = requests.post(f"{base}/install-webhook", json={"host": DEMO_HOST}, timeout=TIMEOUT).json()
    assert installed["status"] == 200 and recorder.calls[-1]["path"] == "/kommo/oauth/callback"
    pair = exchange(sandbox_for, recorder.calls[-1]["args"]["code"]).json()

    assert requests.post(f"{base}/expire-tokens", json={"host": DEMO_HOST}, timeout=TIMEOUT).json() == {"expired": 1}
    assert api(sandbox_for, pair["access_token"], "account").status_code == 401
    assert refresh(sandbox_for, pair["refresh_token"]).status_code == 200
    count = requests.get(f"{base}/refresh-count", params={"host": DEMO_HOST}, timeout=TIMEOUT).json()
    assert count == {"count": 1}
    logged = requests.get(f"{base}/log/count", params={"path": "/oauth2/access_token"}, timeout=TIMEOUT).json()
    assert logged == {"count": 2}

    minted = requests.post(f"{base}/jwt", json={"host": DEMO_HOST, "user_id": sb.admin_id(DEMO_HOST)}, timeout=TIMEOUT)
    assert jwt.decode(minted.json()["token"], sb.client_secret, algorithms=["HS256"], audience=sb.redirect_origin)

    requests.post(f"{base}/faults", json={"kind": "outage"}, timeout=TIMEOUT).raise_for_status()
    assert api(sandbox_for, pair["access_token"], "account").status_code == 503
    requests.delete(f"{base}/faults", timeout=TIMEOUT).raise_for_status()

    hook = requests.post(f"{base}/revoke-hook", json={"host": DEMO_HOST}, timeout=TIMEOUT).json()
    assert hook["status"] == 200 and recorder.calls[-1]["path"] == "/kommo/uninstall"
    # Writes must be JSON, which a foreign page cannot send without a preflight we never grant.
    assert requests.post(f"{base}/expire-tokens", data={"host": DEMO_HOST}, timeout=TIMEOUT).status_code == 415


# --- the CRM shell ------------------------------------------------------------------------------------


def test_the_shell_opens_our_pages_through_kommo_session_once_installed(sandbox_for: RunningKommo) -> None:
    sb = sandbox_for.sandbox
    shell = f"{sandbox_for.url}/shell"
    page = requests.get(shell, timeout=TIMEOUT)
    assert page.status_code == 200
    assert f'data-session-url="{sb.widget_origin}/kommo/session"' in page.text
    assert "Wazzup chats" not in page.text  # the left-menu item comes with the install
    script = requests.get(f"{sandbox_for.url}/static/shell.js", timeout=TIMEOUT).text
    assert "X-Auth-Token" in script and "sessionUrl" in script

    installed = requests.post(f"{shell}/settings/widgets/install", params={"user": sb.admin_id(DEMO_HOST)},
                              timeout=TIMEOUT)  # fmt: skip
    assert 'id="hook-status">200<' in installed.text
    menu_page = requests.get(f"{shell}/wazzup", timeout=TIMEOUT).text
    assert 'id="menu-wazzup"' in menu_page
    assert 'id="work-area-wazzup"' in menu_page and 'data-widget-location="widget_page"' in menu_page
    lead_id = next(iter(sb.account(DEMO_HOST).leads))
    card = requests.get(f"{shell}/leads/{lead_id}", timeout=TIMEOUT).text
    assert 'data-widget-location="lcard"' in card and f'data-entity-id="{lead_id}"' in card
    advanced = requests.get(f"{shell}/settings/wazzup", timeout=TIMEOUT).text
    assert 'data-widget-location="advanced_settings"' in advanced


def test_the_shell_lets_only_admins_install(sandbox_for: RunningKommo, ours: tuple[Recorder, LiveServer]) -> None:
    recorder, _ = ours
    seller = user_named(sandbox_for, "Liam O'Connor")
    page = requests.get(f"{sandbox_for.url}/shell/settings/widgets", params={"user": seller}, timeout=TIMEOUT).text
    assert "Only an administrator can install." in page and "Liam O&#39;Connor" in page
    refused = requests.post(f"{sandbox_for.url}/shell/settings/widgets/install", params={"user": seller},
                            timeout=TIMEOUT)  # fmt: skip
    assert "Only an administrator can install Wazzup" in refused.text
    assert recorder.calls == []


# --- the shell's script in a real browser -------------------------------------------------------------


@dataclass
class FakeSessionEndpoint:
    """Our ``/kommo/session`` reduced to what the shell relies on: CORS, the token, a URL back."""

    mode: str = "ok"  # ok | refuse | no_cors
    seen: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Flask:
        app = Flask("fake-widget-server")

        def cors(response: Any) -> Any:
            origin = request.headers.get("Origin")
            if origin and self.mode != "no_cors":
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Allow-Headers"] = "X-Auth-Token, Content-Type"
                response.headers["Access-Control-Allow-Methods"] = "POST"
            return response

        @app.route("/kommo/session", methods=["OPTIONS"])
        def preflight() -> Any:
            return cors(app.response_class(status=204))

        @app.post("/kommo/session")
        def session() -> Any:
            self.seen.append({"token": request.headers.get("X-Auth-Token"), "body": request.get_json()})
            if self.mode == "refuse":
                refused = jsonify(error="forbidden", message="Wazzup is not connected to this account.")
                refused.status_code = 403
                return cors(refused)
            return cors(jsonify(url=f"{request.host_url}page?st=abc"))

        @app.get("/page")
        def page() -> str:
            return "<p id='inside'>Hello from Wazzup</p>"

        @app.get("/kommo/oauth/callback")
        def callback() -> Any:
            return jsonify(status="accepted")

        return app


@pytest.mark.browser
def test_the_shell_script_frames_our_page_or_shows_the_refusal(playwright: Any) -> None:
    from tests.support.browser import chromium, chromium_missing_reason

    reason = chromium_missing_reason()
    if reason:
        pytest.skip(reason)
    fake = FakeSessionEndpoint()
    with live_server(fake.app()) as ours, running_kommo(our_url=ours.url) as k:
        sb = k.sandbox
        sb.deliver_install_webhook(DEMO_HOST)
        with chromium(playwright, block_third_party_cookies=False) as context:
            page = context.new_page()
            try:
                page.goto(f"{k.url}/shell/wazzup")
                frame = page.frame_locator("#work-area-wazzup iframe")
                assert frame.locator("#inside").inner_text() == "Hello from Wazzup"
                (call,) = fake.seen
                assert call["body"] == {"location": "widget_page"}
                claims = jwt.decode(call["token"], sb.client_secret, algorithms=["HS256"], audience=ours.url)
                assert claims["user_id"] == sb.admin_id(DEMO_HOST)

                fake.mode = "refuse"
                lead_id = next(iter(sb.account(DEMO_HOST).leads))
                seller = user_named(k, "José Núñez")
                page.goto(f"{k.url}/shell/leads/{lead_id}?user={seller}")
                error = page.locator("[data-testid=widget-error]")
                assert "Wazzup is not connected to this account." in error.inner_text()
                assert fake.seen[-1]["body"] == {"location": "lcard", "entity_type": "lead", "entity_id": lead_id}
                assert jwt.decode(fake.seen[-1]["token"], options={"verify_signature": False})["user_id"] == seller

                fake.mode = "no_cors"
                page.goto(f"{k.url}/shell/settings/wazzup")
                assert "CORS" in page.locator("[data-testid=widget-error]").inner_text()
            finally:
                page.close()


def test_token_requests_are_counted_by_grant_including_refused_ones(sandbox_for: RunningKommo) -> None:
    pair = tokens(sandbox_for)
    refresh(sandbox_for, pair["refresh_token"])
    refresh(sandbox_for, "def502-unknown")
    token_request(sandbox_for, form=True, grant_type="refresh_token", refresh_token=pair["refresh_token"])
    sb = sandbox_for.sandbox
    assert sb.token_requests("authorization_code") == 1
    assert sb.token_requests("refresh_token", DEMO_HOST) == 3
    assert sb.refresh_count(DEMO_HOST) == 2  # the unknown refresh token was refused


def test_the_embedded_default_serves_the_sandbox_on_the_configured_port(make_settings: Any) -> None:
    import socket

    from sandbox.kommo.run import start_kommo_sandbox

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(SANDBOX_KOMMO_PORT=port)
    url = start_kommo_sandbox(settings)  # a daemon thread: it lives as long as the test process
    assert url == f"http://localhost:{port}"
    shell = requests.get(f"{url}/shell", timeout=TIMEOUT)
    assert f'data-session-url="{settings.public_origin}/kommo/session"' in shell.text
    state = requests.get(f"{url}/_sandbox/state", timeout=TIMEOUT).json()
    assert state["redirect_uri"] == settings.public_url + "/kommo/oauth/callback"
    assert state["revoke_hook_url"] == settings.public_url + "/kommo/uninstall"
    assert state["client_id"] == settings.kommo_client_id
    # Widget JWTs name the account by the address our server reaches it at (KOMMO_BASE_URL).
    minted = requests.post(f"{url}/_sandbox/jwt", json={"host": DEMO_HOST, "user_id": 10000001}, timeout=TIMEOUT)
    claims = jwt.decode(minted.json()["token"], options={"verify_signature": False})
    assert claims["iss"] == settings.kommo_base_url.format(host=DEMO_HOST)


def test_added_accounts_never_share_the_demo_accounts_id(kommo):
    sandbox = kommo.sandbox
    ids = {sandbox.account(h).id for h in [sandbox.add_account("alpha"), sandbox.add_account("beta")]}
    ids.add(sandbox.account("demo.kommo.test").id)
    assert len(ids) == 3
