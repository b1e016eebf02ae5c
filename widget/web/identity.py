"""Who is looking at our iframe pages, carried without third-party cookies.

Inside a CRM's iframe our cookies are third-party: Safari and Chrome with third-party cookies off
drop them. So identity travels in the request itself:

* a *launch token* (signed, 2 minutes, single use) goes in the iframe URL that ``/kommo/session``
  hands to the widget, or is minted after a verified Bitrix24 iframe POST;
* opening it redirects to the page with a *session token* (signed, hours) in the URL; our pages
  carry it on every link (``st`` query), form (hidden ``st`` field) and XHR (``X-Session-Token``).

Flask's ``session`` is rebuilt from that token on every request and never written to a cookie. Its
CSRF key is derived from the session id, so Flask-WTF's CSRF protection works unchanged: a forged
form from another site knows neither the session token nor the CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Request, Response, abort, current_app, g
from flask.sessions import SessionInterface, SessionMixin
from flask_babel import gettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from widget.web.body_limit import body_over_limit

LAUNCH_MAX_AGE = 120
SESSION_MAX_AGE = 12 * 3600
SESSION_PARAM = "st"
SESSION_HEADER = "X-Session-Token"


@dataclass(frozen=True)
class Identity:
    """A verified CRM user inside one account. Built only from verified CRM data."""

    account_id: int
    crm: str
    crm_user_id: str
    is_admin: bool
    lang: str
    frame_origin: str  # the CRM origin allowed to frame our pages
    name: str = ""
    sid: str = ""

    def to_claims(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Identity:
        return cls(
            account_id=int(claims["account_id"]),
            crm=str(claims["crm"]),
            crm_user_id=str(claims["crm_user_id"]),
            is_admin=bool(claims["is_admin"]),
            lang=str(claims.get("lang") or "en"),
            frame_origin=str(claims["frame_origin"]),
            name=str(claims.get("name") or ""),
            sid=str(claims.get("sid") or ""),
        )


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"widget-{purpose}")


def issue_launch_token(identity: Identity) -> str:
    claims = identity.to_claims()
    claims["jti"] = secrets.token_urlsafe(16)
    return _serializer("launch").dumps(claims)


def read_launch_token(token: str) -> tuple[Identity, str]:
    """Return the identity and the token id (the caller records it as used)."""
    claims = _serializer("launch").loads(token, max_age=LAUNCH_MAX_AGE)
    return Identity.from_claims(claims), str(claims["jti"])


def issue_session_token(identity: Identity) -> str:
    claims = identity.to_claims()
    claims["sid"] = identity.sid or secrets.token_urlsafe(16)
    return _serializer("session").dumps(claims)


def read_session_token(token: str) -> Identity | None:
    try:
        claims = _serializer("session").loads(token, max_age=SESSION_MAX_AGE)
    except (BadSignature, SignatureExpired, KeyError, ValueError, TypeError):
        return None
    try:
        return Identity.from_claims(claims)
    except (KeyError, ValueError, TypeError):
        return None


def _token_from_request(req: Request) -> str | None:
    return req.headers.get(SESSION_HEADER) or req.args.get(SESSION_PARAM) or _form_token(req)


def _form_token(req: Request) -> str | None:
    """The ``st`` form field, unless the body is over the size limit: this runs before any error
    handler, so reading it would turn the limit into a 500 (``widget.web.body_limit`` answers 413)."""
    return None if body_over_limit() else req.form.get(SESSION_PARAM)


SERVER_TO_SERVER_PREFIX = "/gateway/"


class TokenSession(dict[str, Any], SessionMixin):
    """Flask's session, rebuilt per request from the session token; never persisted."""

    def __init__(self, identity: Identity | None, token: str | None, csrf_key: str | None) -> None:
        super().__init__()
        self.identity = identity
        self.token = token
        if csrf_key:
            self["csrf_token"] = csrf_key


class TokenSessionInterface(SessionInterface):
    def open_session(self, app: Flask, request: Request) -> TokenSession:
        if request.path.startswith(SERVER_TO_SERVER_PREFIX):
            # The messaging gateway signs its calls; no employee session ever rides on them, and its
            # hot inbound path should not parse a body as a form to look for one.
            return TokenSession(None, None, None)
        token = _token_from_request(request)
        identity = read_session_token(token) if token else None
        if identity is None:
            return TokenSession(None, None, None)
        key = hmac.new(app.config["SECRET_KEY"].encode(), f"csrf|{identity.sid}".encode(), hashlib.sha256)
        return TokenSession(identity, token, key.hexdigest())

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None  # nothing is ever stored in a cookie


def current_identity() -> Identity | None:
    from flask import session

    ident = getattr(g, "identity", None)
    if ident is not None:
        return cast(Identity, ident)
    return getattr(session, "identity", None)


def current_session_token() -> str | None:
    from flask import session

    tok = getattr(g, "session_token", None)
    if tok:
        return cast(str, tok)
    return getattr(session, "token", None)


F = TypeVar("F", bound=Callable[..., Any])


def require_identity(view: F) -> F:
    """Our iframe pages and JSON API: a valid session token for an account that is still installed."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ident = current_identity()
        if ident is None:
            abort(401, description=gettext("Your session has expired. Please reopen the integration from your CRM."))
        from widget.services.accounts import account_is_usable
        from widget.web.context import get_db

        if not account_is_usable(get_db(), ident.account_id):
            abort(403, description=gettext("This integration has been uninstalled from your CRM."))
        g.identity = ident
        return view(*args, **kwargs)

    return cast(F, wrapper)


def require_admin(view: F) -> F:
    @wraps(view)
    @require_identity
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ident = current_identity()
        assert ident is not None
        if not ident.is_admin:
            abort(403, description=gettext("This page is for CRM administrators. Ask your administrator for access."))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def session_lifetime() -> timedelta:
    return timedelta(seconds=SESSION_MAX_AGE)
