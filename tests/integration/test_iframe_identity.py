"""Identity inside the CRM iframe travels in URLs, never in cookies."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.support.factories import identity, launch_token, make_account, seed_crm, session_token
from widget.db import db
from widget.models import Account
from widget.services.accounts.state import mark_uninstalled


def test_launch_token_opens_page_once_and_sets_no_cookie(app, client):
    acc = make_account()
    seed_crm(acc)
    lt = launch_token(app, identity(acc))
    resp = client.get(f"/app/launch?lt={lt}")
    assert resp.status_code == 302
    assert "Set-Cookie" not in resp.headers
    st = parse_qs(urlsplit(resp.headers["Location"]).query)["st"][0]

    page = client.get(f"/app?st={st}")
    assert page.status_code == 200
    assert "Set-Cookie" not in page.headers
    assert "User 1" in page.get_data(as_text=True)
    assert page.headers["Content-Security-Policy"].startswith("frame-ancestors http://localhost:5001;")

    replay = client.get(f"/app/launch?lt={lt}")
    assert replay.status_code == 401
    assert "already used" in replay.get_data(as_text=True)


def test_pages_refuse_without_or_with_forged_session(app, client):
    acc = make_account()
    assert client.get("/app").status_code == 401
    assert client.get("/app?st=forged.token.value").status_code == 401
    good = session_token(app, identity(acc))
    assert client.get(f"/app?st={good[:-2]}xx").status_code == 401


def test_uninstalled_account_is_refused(app, client):
    acc = make_account()
    st = session_token(app, identity(acc))
    assert client.get(f"/app?st={st}").status_code == 200
    with db.transaction() as s:
        mark_uninstalled(s, s.get(Account, acc))
    resp = client.get(f"/app?st={st}")
    assert resp.status_code == 403
    assert "uninstalled" in resp.get_data(as_text=True)


def test_expired_launch_token_is_refused(app, client, monkeypatch):
    import widget.web.identity as ident_mod

    acc = make_account()
    lt = launch_token(app, identity(acc))
    monkeypatch.setattr(ident_mod, "LAUNCH_MAX_AGE", -1)
    resp = client.get(f"/app/launch?lt={lt}")
    assert resp.status_code == 401
    assert "expired" in resp.get_data(as_text=True)
