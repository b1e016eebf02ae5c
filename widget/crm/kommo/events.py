"""Verification of everything Kommo sends us, before it is parsed further or touches the database.

* the ``referer`` of an install callback (the host we will send our client secret to),
* the access-revoked hook (reference §2),
* the widget's one-time ``X-Auth-Token`` JWT (reference §3).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

# A DNS host name: labels of letters, digits and inner hyphens. Anything else (a port, userinfo,
# a path, a scheme, percent-escapes, a trailing dot) is refused outright rather than cleaned up.
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")

# Clock tolerance for the widget JWT's time claims, as the PHP library's "loose" validation allows.
JWT_LEEWAY_SECONDS = 30


class InboundRejected(Exception):
    """A call claiming to come from Kommo failed verification. ``reason`` is safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Labels Kommo and amoCRM use for their own services (the marketing site, the OAuth account picker,
# the Chats API, the developer docs) or that no account can have. An account lives at exactly one
# label under a Kommo domain (``acme.kommo.com``, reference §1.2-1.3); these never name one.
RESERVED_LABELS = frozenset(
    {
        "www",
        "api",
        "oauth",
        "oauth2",
        "id",
        "auth",
        "login",
        "sso",
        "app",
        "static",
        "cdn",
        "mail",
        "help",
        "support",
        "status",
        "admin",
        "amojo",
        "developers",
        "es-developers",
        "pt-developers",
        "marketplace",
        "widgets",
        "localhost",
    }
)


def verify_account_host(referer: str | None, domains: Iterable[str]) -> str:
    """The Kommo account host from ``referer`` (``acme.kommo.com``): exactly one label, not one of
    Kommo's own service names, under one of our configured Kommo domains. This host receives our
    client secret, so nothing loose is accepted: no deeper names (``deep.sub.kommo.com``), no bare
    domain, no ``www``/``oauth``/``api``."""
    host = (referer or "").strip().lower()
    if len(host) > 253 or not _HOST_RE.fullmatch(host):
        raise InboundRejected(f"referer {referer!r} is not a plain host name")
    for domain in domains:
        domain = domain.strip().lower().lstrip(".")
        if not domain or not host.endswith("." + domain):
            continue
        label = host[: -len(domain) - 1]
        if "." in label:
            raise InboundRejected(f"referer host {host!r} is not an account address (one name under {domain})")
        if label in RESERVED_LABELS:
            raise InboundRejected(f"referer host {host!r} is one of Kommo's own services, not an account")
        return host
    raise InboundRejected(f"referer host {host!r} is not under a Kommo domain")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def revoke_signature(client_id: str, client_secret: str, account_id: str) -> str:
    """Hex HMAC-SHA256 of ``{client_id}|{account_id}`` keyed with the client secret (reference §2)."""
    message = f"{client_id}|{account_id}".encode()
    return hmac.new(client_secret.encode(), message, hashlib.sha256).hexdigest()


def verify_revoke_hook(args: Mapping[str, str], client_id: str, client_secret: str) -> int:
    """The Kommo account id of a genuine access-revoked hook; ``InboundRejected`` otherwise.
    Both the signature and ``client_uuid`` are compared in constant time."""
    client_uuid = args.get("client_uuid") or ""
    account_id = args.get("account_id") or ""
    signature = (args.get("signature") or "").lower()
    good_signature = _same(signature, revoke_signature(client_id, client_secret, account_id))
    good_client = _same(client_uuid, client_id)
    if not (good_signature and good_client):
        raise InboundRejected("revoke hook signature or client_uuid does not match")
    if not account_id.isdigit():
        raise InboundRejected("revoke hook account_id is not a number")
    return int(account_id)


@dataclass(frozen=True)
class WidgetClaims:
    """The verified claims of a widget ``X-Auth-Token``. Only these are trusted, never values the
    widget JS sends alongside (reference §4.6)."""

    account_id: int
    user_id: int
    subdomain: str
    jti: str
    expires_at: int
    is_admin: bool | None  # read by the official library, absent from Kommo's own example
    issuer: str


def _claim_int(claims: Mapping[str, Any], key: str) -> int:
    value = claims.get(key)
    if isinstance(value, bool):
        raise InboundRejected(f"widget token claim {key!r} is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise InboundRejected(f"widget token claim {key!r} is missing or not a number")


def verify_widget_token(
    token: str | None,
    *,
    client_id: str,
    client_secret: str,
    audience: str,
) -> WidgetClaims:
    """Check the one-time JWT ``$authorizedAjax`` sends: HS256 keyed with our client secret,
    ``aud`` = our origin, ``exp``/``nbf``/``iat`` valid, ``client_uuid`` = our client id, an
    ``iss`` present (which account it must name is checked by ``issued_by`` once the account is known)."""
    if not token:
        raise InboundRejected("no X-Auth-Token")
    try:
        claims = jwt.decode(
            token,
            client_secret,
            algorithms=["HS256"],
            audience=audience,
            leeway=JWT_LEEWAY_SECONDS,
            options={"require": ["exp", "nbf", "iat", "aud", "jti", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise InboundRejected("widget token has expired") from None
    except jwt.ImmatureSignatureError:
        raise InboundRejected("widget token is not valid yet") from None
    except jwt.InvalidAudienceError:
        raise InboundRejected("widget token was issued for another address") from None
    except jwt.InvalidTokenError as exc:
        raise InboundRejected(f"widget token is not valid: {type(exc).__name__}") from None
    client_uuid = claims.get("client_uuid")
    if not isinstance(client_uuid, str) or not _same(client_uuid, client_id):
        raise InboundRejected("widget token was issued for another integration")
    subdomain = claims.get("subdomain")
    if not isinstance(subdomain, str) or not subdomain:
        raise InboundRejected("widget token has no subdomain")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InboundRejected("widget token has no jti")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise InboundRejected("widget token has no issuer")
    is_admin = claims.get("is_admin")
    return WidgetClaims(
        account_id=_claim_int(claims, "account_id"),
        user_id=_claim_int(claims, "user_id"),
        subdomain=subdomain.lower(),
        jti=jti,
        expires_at=_claim_int(claims, "exp"),
        is_admin=bool(is_admin) if isinstance(is_admin, bool | int) else None,
        issuer=issuer,
    )


def issued_by(claims: WidgetClaims, account_address: str) -> bool:
    """Did the account at ``account_address`` issue this token? Kommo puts the account's own
    address in ``iss`` ("https://acme.kommo.com", reference §3): a token whose issuer is another
    address was not minted for this account's page, whatever its other claims say."""
    given = claims.issuer.strip().rstrip("/").lower()
    return _same(given, account_address.rstrip("/").lower())
