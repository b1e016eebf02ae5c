"""Verification of what claims to come from Kommo: install referer, revoke hook, widget JWT."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from widget.crm.kommo.events import (
    InboundRejected,
    revoke_signature,
    verify_account_host,
    verify_revoke_hook,
    verify_widget_token,
)

DOMAINS = ("kommo.com", "amocrm.ru")
CLIENT_ID = "6f2b1c3e-0d4a-4e8b-9a57-5a1c0de0a001"
SECRET = "client-secret-for-unit-tests-0001"
AUD = "https://widget.example.org"


@pytest.mark.parametrize(
    ("referer", "host"),
    [
        ("acme.kommo.com", "acme.kommo.com"),
        ("ACME.Kommo.com", "acme.kommo.com"),
        ("shop-1.amocrm.ru", "shop-1.amocrm.ru"),
        (" acme.kommo.com ", "acme.kommo.com"),
    ],
)
def test_account_hosts_under_our_domains_are_accepted(referer, host):
    assert verify_account_host(referer, DOMAINS) == host


@pytest.mark.parametrize(
    "referer",
    [
        None,
        "",
        "evil.com",
        "acme.kommo.com.evil.com",
        "acmekommo.com",  # ends with the domain, but not at a label boundary
        "evil.com/acme.kommo.com",
        "acme.kommo.com:8443",
        "user@acme.kommo.com",
        "evil.com#.kommo.com",
        "evil.com?.kommo.com",
        "https://acme.kommo.com",
        "acme.kommo.com.",
        "acme.kommo.com/",
        "acme%2ekommo.com",
        "-acme.kommo.com",
        "acme..kommo.com",
        "evil.com\\.kommo.com",
        "evil.com\n.kommo.com",
        "ac me.kommo.com",
        "kommo.com",  # the bare domain is no account
        "deep.sub.kommo.com",  # an account is one label under the domain
        "www.kommo.com",  # Kommo's own services
        "oauth.amocrm.ru",
        "api.kommo.com",
    ],
)
def test_anything_but_a_plain_kommo_host_is_refused(referer):
    with pytest.raises(InboundRejected):
        verify_account_host(referer, DOMAINS)


def _hook(account_id="32720107", client_uuid=CLIENT_ID, secret=SECRET):
    return {
        "client_uuid": client_uuid,
        "account_id": account_id,
        "signature": revoke_signature(CLIENT_ID, secret, account_id),
    }


def test_revoke_hook_signed_by_kommo_is_accepted():
    assert verify_revoke_hook(_hook(), CLIENT_ID, SECRET) == 32720107


def test_revoke_signature_is_hex_hmac_sha256_of_client_and_account():
    # The Python line of reference §2, computed independently.
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"{CLIENT_ID}|42".encode(), hashlib.sha256).hexdigest()
    assert revoke_signature(CLIENT_ID, SECRET, "42") == expected


@pytest.mark.parametrize(
    "args",
    [
        _hook(secret="another-secret"),
        _hook(client_uuid="00000000-0000-0000-0000-000000000000"),
        {**_hook(), "account_id": "32720108"},  # signature of another account
        {**_hook(), "signature": ""},
        {"client_uuid": CLIENT_ID, "account_id": "1"},
        {**_hook(), "signature": "ü" * 64},
    ],
)
def test_revoke_hook_with_a_bad_signature_or_client_is_refused(args):
    with pytest.raises(InboundRejected):
        verify_revoke_hook(args, CLIENT_ID, SECRET)


def _claims(**over):
    now = int(time.time())
    claims = {
        "iss": "https://acme.kommo.com",
        "aud": AUD,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 1800,
        "account_id": 30000001,
        "user_id": 10000001,
        "subdomain": "acme",
        "client_uuid": CLIENT_ID,
        "is_admin": True,
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _token(key=SECRET, alg="HS256", **over):
    return jwt.encode(_claims(**over), key, algorithm=alg)


def _verify(token):
    return verify_widget_token(token, client_id=CLIENT_ID, client_secret=SECRET, audience=AUD)


def test_a_valid_widget_token_gives_its_claims():
    claims = _verify(_token())
    assert (claims.account_id, claims.user_id, claims.subdomain, claims.is_admin) == (30000001, 10000001, "acme", True)


def test_is_admin_is_optional_because_kommo_docs_omit_it():
    assert _verify(_token(is_admin=None)).is_admin is None


# Tokens are made when the test runs (a lambda each), not when the module is collected: a token
# "valid in ten minutes" made at collection is valid by the time a long run reaches it.
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: None, "no X-Auth-Token"),
        (lambda: "not-a-jwt", "not valid"),
        (
            lambda: _token(exp=int(time.time()) - 120, iat=int(time.time()) - 2000, nbf=int(time.time()) - 2000),
            "expired",
        ),
        (lambda: _token(nbf=int(time.time()) + 600), "not valid yet"),
        (lambda: _token(aud="https://someone-else.example"), "another address"),
        (lambda: _token(key="wrong-secret-wrong-secret-wrong!!"), "not valid"),
        (lambda: _token(key=SECRET * 2, alg="HS512"), "not valid"),  # salesbot tokens are HS512, never ours
        (lambda: _token(client_uuid="00000000-0000-0000-0000-000000000000"), "another integration"),
        (lambda: _token(jti=None), "not valid"),
        (lambda: _token(exp=None), "not valid"),
        (lambda: _token(account_id="abc"), "not a number"),
        (lambda: _token(subdomain=None), "no subdomain"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_widget_tokens_are_refused(make, reason):
    with pytest.raises(InboundRejected) as caught:
        _verify(make())
    assert reason in caught.value.reason


def test_a_token_stripped_of_its_signature_is_refused():
    header_and_claims = _token().rsplit(".", 1)[0]
    with pytest.raises(InboundRejected):
        _verify(header_and_claims + ".")


def test_a_token_with_alg_none_is_refused():
    unsigned = jwt.encode(_claims(), key=None, algorithm="none")
    with pytest.raises(InboundRejected):
        _verify(unsigned)
