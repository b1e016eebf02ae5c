"""Who opens our pages inside Bitrix24: every iframe POST is verified before anything is trusted."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox.bitrix24.reqlog import KIND_APP_INFO
from tests.support.bitrix24_sandbox import Bitrix24Sandbox, bitrix24_world
from widget.web.identity import read_session_token


@pytest.fixture
def b24(make_settings):
    with bitrix24_world(make_settings) as world:
        yield world


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _follow(b24, response: requests.Response) -> requests.Response:
    """The iframe follows our redirect (a GET, no cookies: none were ever set)."""
    assert response.status_code == 303, response.text
    assert "Set-Cookie" not in response.headers
    return requests.get(b24.base_url + response.headers["Location"], allow_redirects=False, timeout=10)


def _identity(b24, location: str):
    with b24.app.app_context():
        return read_session_token(_query(location)["st"])


def test_admin_opens_the_app_page_and_reaches_the_account_pages(b24):
    b24.install()
    _, opened = b24.open(user_id=1)

    page = _follow(b24, opened)
    assert page.status_code == 200
    assert "Set-Cookie" not in page.headers
    assert page.headers["Content-Security-Policy"].startswith(f"frame-ancestors {b24.portal.origin};")
    assert "Open Wazzup account" in page.text
    ident = _identity(b24, opened.headers["Location"])
    assert ident.is_admin and ident.crm == "bitrix24" and ident.crm_user_id == "1"
    assert ident.frame_origin == b24.portal.origin
    # "Open Wazzup account" leads into the account pages with the same session, no cookie needed.
    account_page = requests.get(f"{b24.base_url}/app?st={_query(opened.headers['Location'])['st']}", timeout=10)
    assert account_page.status_code == 200
    assert account_page.headers["Content-Security-Policy"].startswith(f"frame-ancestors {b24.portal.origin};")
    assert "Иван Петров" in account_page.text


def test_language_comes_from_lang(b24):
    b24.install()
    _, opened = b24.open(user_id=1, lang="ru")
    assert _identity(b24, opened.headers["Location"]).lang == "ru"
    _, opened = b24.open(user_id=1, lang="br")  # Bitrix24's Brazilian Portuguese
    assert _identity(b24, opened.headers["Location"]).lang == "pt"


def test_an_employee_gets_the_chat_panel_never_the_settings(b24):
    b24.install()
    _, opened = b24.open(user_id=2)

    location = opened.headers["Location"]
    assert urlsplit(location).path == "/app"
    assert _query(location)["view"] == "chats"
    ident = _identity(b24, location)
    assert ident.is_admin is False and ident.crm_user_id == "2" and ident.lang == "ru"
    st = _query(location)["st"]
    # The app page with the settings entry and the admin-only actions are closed to them.
    home = requests.get(f"{b24.base_url}/bitrix24/home?st={st}", allow_redirects=False, timeout=10)
    assert home.status_code == 302 and "view=chats" in home.headers["Location"]
    chats = requests.get(b24.base_url + location, timeout=10).text
    csrf = chats.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]
    refused = requests.post(f"{b24.base_url}/bitrix24/refresh", data={"st": st, "csrf_token": csrf}, timeout=10)
    assert refused.status_code == 403


def test_card_tab_opens_the_chat_panel_of_that_record(b24):
    b24.install()
    _, opened = b24.open(user_id=3, placement="CRM_DEAL_DETAIL_TAB", options={"ID": "1"})
    query = _query(opened.headers["Location"])
    assert (query["view"], query["entity_type"], query["entity_id"]) == ("chats", "deal", "1")


def test_forged_domain_is_refused_and_that_server_gets_no_token(b24):
    b24.install()
    evil = Bitrix24Sandbox()
    evil_portal = evil.add_portal("localhost")
    try:
        frame = b24.state.open_app(b24.portal, 1)
        frame.url = frame.url.replace(f"DOMAIN={b24.portal.domain.replace(':', '%3A')}", f"DOMAIN={evil_portal.domain}")
        response = frame.post()
        assert response.status_code == 401
        assert evil.state.log.entries() == []
    finally:
        evil.stop()


def test_forged_application_token_is_refused_before_any_token_leaves(b24):
    b24.install()
    frame = b24.state.open_app(b24.portal, 1)
    frame.form["APPLICATION_TOKEN"] = "0" * 32
    before = b24.state.log.count(kind=KIND_APP_INFO)

    assert frame.post().status_code == 401
    assert b24.state.log.count(kind=KIND_APP_INFO) == before


def test_missing_application_token_still_needs_a_genuine_auth_id(b24):
    b24.install()
    frame = b24.state.open_app(b24.portal, 1)
    del frame.form["APPLICATION_TOKEN"]  # optional in older portals (reference Uncertain #5)
    assert frame.post().status_code == 303

    frame = b24.state.open_app(b24.portal, 1)
    del frame.form["APPLICATION_TOKEN"]
    frame.form["AUTH_ID"] = "a" * 48
    assert frame.post().status_code == 401


def test_unknown_portal_is_refused(b24):
    b24.install()
    frame = b24.state.open_app(b24.portal, 1)
    frame.form["member_id"] = "0123456789abcdef0123456789abcdef"
    assert frame.post().status_code == 401


def test_a_token_of_another_portal_is_refused(b24):
    other = b24.sandbox.add_portal("127.0.0.3")
    b24.install()
    b24.install(other)
    frame = b24.state.open_app(b24.portal, 1)
    stranger = b24.state.issue_token(other, 1)
    frame.form["AUTH_ID"] = stranger.access_token  # genuine, but for the other portal
    assert frame.post().status_code == 401


def test_after_uninstall_access_is_refused(b24):
    b24.install()
    frame, opened = b24.open(user_id=1)
    st = _query(opened.headers["Location"])["st"]

    deliveries = b24.state.uninstall(b24.portal)
    assert [d.status for d in deliveries] == [200]

    assert frame.post().status_code in (401, 403)  # replaying the old iframe POST
    page = requests.get(f"{b24.base_url}/app?st={st}", timeout=10)
    assert page.status_code == 403 and "uninstalled" in page.text
    assert requests.get(f"{b24.base_url}/bitrix24/home?st={st}", timeout=10).status_code == 403


def test_our_own_forms_need_the_csrf_token(b24):
    b24.install()
    _, opened = b24.open(user_id=1)
    page = _follow(b24, opened)
    st = _query(opened.headers["Location"])["st"]
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]

    forged = requests.post(f"{b24.base_url}/bitrix24/refresh", data={"st": st}, timeout=10)
    assert forged.status_code == 400
    done = requests.post(f"{b24.base_url}/bitrix24/refresh", data={"st": st, "csrf_token": csrf}, timeout=10)
    assert done.status_code == 200
    assert 'id="refresh-report"' in done.text and "Nothing changed." in done.text


def test_one_portals_session_cannot_read_another_portals_data(b24):
    other = b24.sandbox.add_portal("127.0.0.3", demo=False, users=3)
    b24.install()
    b24.install(other)
    _, opened = b24.open(other, user_id=1)
    st_other = _query(opened.headers["Location"])["st"]
    _, opened = b24.open(user_id=1)
    st_acme = _query(opened.headers["Location"])["st"]

    acme = requests.get(f"{b24.base_url}/app?st={st_acme}", timeout=10).text
    theirs = requests.get(f"{b24.base_url}/app?st={st_other}", timeout=10).text
    assert "Иван Петров" in acme and "Employee2 Test" not in acme
    assert "Employee2 Test" in theirs and "Иван Петров" not in theirs
    # Their refresh touches only their portal.
    before = b24.state.log.count(host=b24.portal.domain)
    home = requests.get(f"{b24.base_url}/bitrix24/home?st={st_other}", timeout=10).text
    csrf = home.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    requests.post(f"{b24.base_url}/bitrix24/refresh", data={"st": st_other, "csrf_token": csrf}, timeout=10)
    assert b24.state.log.count(host=b24.portal.domain) == before
