"""Every inbound server-to-server call and iframe open is verified before it changes anything:
forged, foreign, expired, missing and replayed credentials are refused (401/403) and leave every
table as it was. Each group ends with the genuine call, so the refusals are about the credential."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from tests.security.conftest import World
from tests.support.bitrix24_sandbox import B24World, bitrix24_world, post_event
from tests.support.factories import identity, launch_token, session_token
from tests.support.security import changed_tables, fingerprint, widget_jwt, widget_jwt_issuer
from widget.config import SANDBOX_KOMMO_CLIENT_ID, SANDBOX_KOMMO_CLIENT_SECRET
from widget.crm.kommo.events import revoke_signature
from widget.crm.tokens import TokenPair
from widget.db import db
from widget.models import AccountToken
from widget.models._base import utcnow
from widget.models.conversations import Message
from widget.services.accounts.tokens import store_tokens
from widget.services.channels.signing import sign


def refused_without_change(send: Any, cases: dict[str, Any], statuses: tuple[int, ...] = (401, 403)) -> None:
    problems = []
    for name, case in cases.items():
        before = fingerprint()
        response = send(case)
        status = getattr(response, "status_code", None) or response.status
        if status not in statuses:
            problems.append(f"{name}: {status}")
        changed = changed_tables(before, fingerprint())
        if changed:
            problems.append(f"{name}: changed {changed}")
    assert not problems, "\n".join(problems)


# --- the messaging gateway ------------------------------------------------------------------------


def _inbound(world: World, n: int) -> bytes:
    body = {
        "message_id": f"sec-{n}",
        "channel_id": world.a.channel_id,
        "chat_type": "whatsapp",
        "chat_id": f"sec-chat-{n}",
        "phone": f"+1555777{n:04d}",
        "sender_name": "Signed client",
        "text": "hello",
        "sent_at": "2026-01-31T12:00:00Z",
    }
    return json.dumps(body).encode()


def _with_channel(raw: bytes, channel_id: int) -> bytes:
    return json.dumps(json.loads(raw) | {"channel_id": channel_id}).encode()


def test_gateway_messages_need_the_channels_own_signature_and_are_stored_once(world: World):
    raw = _inbound(world, 1)
    huge = _with_channel(raw, 2**64)  # past any id column: must read as "no such channel"
    theirs = _with_channel(raw, world.c.channel_id)

    def send(case: tuple[bytes, str | None]) -> Any:
        body, signature = case
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Gateway-Signature"] = signature
        return world.client.post("/gateway/messages", data=body, headers=headers)

    refused_without_change(
        send,
        {
            "missing signature": (raw, None),
            "empty signature": (raw, ""),
            "garbage": (raw, "not-hex"),
            "signed with another account's secret": (raw, sign(world.b.secret, raw)),
            "signature of another body": (raw, sign(world.a.secret, _inbound(world, 2))),
            "tampered after signing": (raw.replace(b"hello", b"HELLO"), sign(world.a.secret, raw)),
            "a channel id past the column's range": (huge, sign(world.a.secret, huge)),
            "uninstalled account's own signature": (theirs, sign(world.c.secret, theirs)),
        },
    )

    first = send((raw, sign(world.a.secret, raw)))
    assert first.status_code == 200 and first.get_json()["status"] == "stored"
    after_first = fingerprint()
    replay = send((raw, sign(world.a.secret, raw)))
    assert replay.status_code == 200 and replay.get_json()["status"] == "duplicate"
    assert changed_tables(after_first, fingerprint()) == [], "a replayed delivery is stored once"
    with db.transaction() as s:
        assert s.scalar(select(func.count()).where(Message.gateway_message_id == "sec-1")) == 1


# --- our own launch hop ---------------------------------------------------------------------------


def test_launch_tokens_are_ours_unexpired_and_single_use(world: World, app: Flask):
    ident = identity(world.a.account_id)
    good = launch_token(app, ident)

    refused_without_change(
        lambda lt: world.client.get("/app/launch", query_string={"lt": lt} if lt is not None else {}),
        {
            "missing": None,
            "garbage": "not-a-token",
            "a session token instead": session_token(app, ident),
            "signed with another key": _resign(good, app, "another-secret-key-0123456789abcdef"),
            "expired": _expired_launch(app, ident),
        },
    )
    opened = world.client.get("/app/launch", query_string={"lt": good})
    assert opened.status_code == 302 and "st=" in opened.headers["Location"]
    refused_without_change(lambda lt: world.client.get("/app/launch", query_string={"lt": lt}), {"replayed": good})


def _resign(token: str, app: Flask, key: str) -> str:
    from itsdangerous import URLSafeTimedSerializer

    with app.test_request_context():
        claims = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="widget-launch").loads(token)
    return URLSafeTimedSerializer(key, salt="widget-launch").dumps(claims)


def _expired_launch(app: Flask, ident: Any) -> str:
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    from widget.web.identity import LAUNCH_MAX_AGE

    class Past(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - LAUNCH_MAX_AGE - 5

    claims = ident.to_claims() | {"jti": uuid.uuid4().hex}
    return URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="widget-launch", signer=Past).dumps(claims)


# --- Kommo ----------------------------------------------------------------------------------------

KOMMO_A = "31001"  # account A's Kommo account id (external_id)


def _give_tokens(app: Flask, account_id: int) -> None:
    with app.app_context(), db.transaction() as s:
        pair = TokenPair("access-" + uuid.uuid4().hex, "refresh-" + uuid.uuid4().hex, utcnow() + timedelta(hours=1))
        store_tokens(s, app.extensions["widget"].box, account_id, pair)


def test_kommo_uninstall_hook_needs_our_signature_and_client_uuid(world: World, app: Flask):
    _give_tokens(app, world.a.account_id)
    good_sig = revoke_signature(SANDBOX_KOMMO_CLIENT_ID, SANDBOX_KOMMO_CLIENT_SECRET, KOMMO_A)
    good = {"client_uuid": SANDBOX_KOMMO_CLIENT_ID, "account_id": KOMMO_A, "signature": good_sig}

    refused_without_change(
        lambda args: world.client.get("/kommo/uninstall", query_string=args),
        {
            "no parameters": {},
            "missing signature": {k: v for k, v in good.items() if k != "signature"},
            "bad signature": good | {"signature": "0" * 64},
            "signed with another secret": good
            | {"signature": revoke_signature(SANDBOX_KOMMO_CLIENT_ID, "another-secret", KOMMO_A)},
            "another account's signature": good | {"account_id": "31003"},
            "wrong client_uuid": good | {"client_uuid": str(uuid.uuid4())},
            "missing client_uuid": {k: v for k, v in good.items() if k != "client_uuid"},
        },
    )
    done = world.client.get("/kommo/uninstall", query_string=good)
    assert done.status_code == 200
    with db.transaction() as s:
        assert s.get(AccountToken, world.a.account_id) is None, "a genuine hook deletes the tokens at once"


def test_kommo_widget_jwt_is_verified_and_spent_once(world: World, app: Flask):
    def send(token: str | None) -> Any:
        headers = {"X-Auth-Token": token} if token is not None else {}
        return world.client.post("/kommo/session", headers=headers, json={"location": "widget_page"})

    past = int(time.time()) - 7200
    refused_without_change(
        send,
        {
            "missing": None,
            "garbage": "not.a.jwt",
            "wrong key": widget_jwt(app, key="x" * 44),
            "expired": widget_jwt(app, iat=past, nbf=past, exp=past + 1800),
            "wrong aud": widget_jwt(app, aud="https://evil.example"),
            "no aud": widget_jwt(app, aud=None),
            "another integration": widget_jwt(app, client_uuid=str(uuid.uuid4())),
            "alg none": jwt.encode(jwt.decode(widget_jwt(app), options={"verify_signature": False}), None, "none"),
            "other account": widget_jwt(app, account_id=31003, subdomain="coyote"),  # uninstalled
            "unknown account": widget_jwt(app, account_id=39999, subdomain="nobody"),
            "account id of A, subdomain of another": widget_jwt(app, subdomain="coyote"),
        },
    )
    token = widget_jwt(app)
    opened = send(token)
    assert opened.status_code == 200 and "/app/launch?lt=" in opened.get_json()["url"]
    refused_without_change(send, {"replayed jti": token})


def test_kommo_widget_jwt_must_be_issued_by_the_accounts_own_address(world: World, app: Flask):
    """Kommo signs every account's tokens with our one client secret, so the signature alone does
    not say which account's page asked: ``iss`` must be the account's own address (reference §3)."""

    def send(token: str) -> Any:
        return world.client.post("/kommo/session", headers={"X-Auth-Token": token}, json={"location": "widget_page"})

    refused_without_change(
        send,
        {
            "no iss": widget_jwt(app, iss=None),
            "another account's address": widget_jwt(app, iss=widget_jwt_issuer(app, "bison")),
            "a host that is no account": widget_jwt(app, iss="https://evil.example"),
            "the account's name under another site": widget_jwt(app, iss="https://aardvark.kommo.test.evil.example"),
            "empty": widget_jwt(app, iss=""),
        },
    )
    opened = send(widget_jwt(app, iss=widget_jwt_issuer(app, "aardvark").upper() + "/"))
    assert opened.status_code == 200, opened.get_json()


def test_kommo_webhooks_need_the_accounts_own_address(world: World):
    if world.a.webhook_token == "not-issued":
        pytest.skip("Kommo entity webhooks are not part of this build")

    def send(case: tuple[str, str]) -> Any:
        token, account = case
        form = {"account[id]": account, "leads[update][0][id]": "1001", "leads[update][0][responsible_user_id]": "101"}
        return world.client.post(f"/kommo/webhooks/{token}", data=form)

    refused_without_change(
        send,
        {
            "unknown address": ("x" * 43, KOMMO_A),
            "another account's address": (world.c.webhook_token, KOMMO_A),
            "our address, another account's body": (world.a.webhook_token, "31003"),
            "uninstalled account's own address": (world.c.webhook_token, "31003"),
        },
    )


# --- Bitrix24 -------------------------------------------------------------------------------------


@pytest.fixture
def b24(make_settings: Any, database_url: str) -> Iterator[B24World]:
    with bitrix24_world(make_settings) as w:
        w.install()
        yield w


def test_bitrix24_events_need_the_stored_application_token(b24: B24World):
    url = f"{b24.base_url}/bitrix24/events"
    data = {"FIELDS": {"ID": "1"}}

    def send(case: dict[str, Any]) -> Any:
        return post_event(url, case)

    def event(name: str = "ONCRMDEALUPDATE", **auth: Any) -> dict[str, Any]:
        payload = b24.state.event_payload(b24.portal, name, data if name != "ONAPPUNINSTALL" else {}, user_id=1)
        for key, value in auth.items():
            if value is None:
                payload["auth"].pop(key, None)
            else:
                payload["auth"][key] = value
        return payload

    refused_without_change(
        send,
        {
            "wrong application token": event(application_token="0" * 32),
            "missing application token": event(application_token=None),
            "unknown member_id": event(member_id="f" * 32),
            "forged uninstall": event("ONAPPUNINSTALL", application_token="0" * 32),
            "uninstall without a token": event("ONAPPUNINSTALL", application_token=None),
        },
    )
    assert send(event()).status_code == 200


def test_bitrix24_iframe_opens_are_verified_at_the_oauth_server(b24: B24World):
    evil_domain = "127.0.0.9:" + str(b24.sandbox.port)

    def frame(kind: str) -> Any:
        if kind == "placement":
            return b24.state.open_app(b24.portal, 1, placement="CRM_DEAL_DETAIL_TAB", options={"ID": "1"})
        return b24.state.open_app(b24.portal, 1)

    def forged(kind: str, how: str) -> Any:
        f = frame(kind)
        if how == "wrong application token":
            f.form["APPLICATION_TOKEN"] = "0" * 32
        elif how == "unknown AUTH_ID":
            f.form["AUTH_ID"] = "a" * 48
        elif how == "unknown member_id":
            f.form["member_id"] = "0123456789abcdef0123456789abcdef"
        elif how == "forged DOMAIN":
            f.url = f.url.replace(b24.portal.domain.replace(":", "%3A"), evil_domain)
            f.url = f.url.replace(b24.portal.domain, evil_domain)
        return f

    cases = {
        f"{kind}: {how}": (kind, how)
        for kind in ("app", "placement")
        for how in ("wrong application token", "unknown AUTH_ID", "unknown member_id", "forged DOMAIN")
    }
    refused_without_change(lambda c: forged(*c).post(), cases)
    for kind in ("app", "placement"):
        assert frame(kind).post().status_code == 303, kind


def test_bitrix24_install_is_verified_before_an_account_exists(make_settings: Any, database_url: str):
    with bitrix24_world(make_settings) as b24:
        url = f"{b24.base_url}/bitrix24/install"

        def installer(how: str) -> Any:
            f = b24.state.begin_install(b24.portal, 1)
            if how == "unknown AUTH_ID":
                f.form["AUTH_ID"] = "a" * 48
            elif how == "forged DOMAIN":
                f.url = f.url.replace(b24.portal.domain.replace(":", "%3A"), "127.0.0.9%3A1")
                f.url = f.url.replace(b24.portal.domain, "127.0.0.9:1")
            elif how == "another portal's token":
                other = b24.sandbox.add_portal("127.0.0.3")
                b24.state.begin_install(other, 1)
                f.form["AUTH_ID"] = b24.state.issue_token(other, 1).access_token
            return f.post()

        def onappinstall(how: str) -> Any:
            payload = b24.state.event_payload(
                b24.portal, "ONAPPINSTALL", {"VERSION": "1"}, user_id=1, with_refresh=True
            )
            if how == "unknown access token":
                payload["auth"]["access_token"] = "a" * 48
            return post_event(url, payload)

        refused_without_change(
            installer, {h: h for h in ("unknown AUTH_ID", "forged DOMAIN", "another portal's token")}
        )
        refused_without_change(onappinstall, {"ONAPPINSTALL with an unknown token": "unknown access token"})
        assert b24.account() is None
        b24.install()
        assert b24.account() is not None


def test_a_session_of_ours_does_not_open_bitrix24_frames(b24: B24World):
    """The iframe POSTs trust only what Bitrix24 sends; our session token is no key to them."""
    account = b24.account()
    assert account is not None
    st = session_token(b24.app, identity(account.id, crm="bitrix24"))
    for path in ("/bitrix24/app", "/bitrix24/placement", "/bitrix24/install"):
        response = requests.post(f"{b24.base_url}{path}", data={"st": st}, timeout=10, allow_redirects=False)
        assert response.status_code in (400, 401, 403), path
