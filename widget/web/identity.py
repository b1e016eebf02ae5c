"""Who is looking at our iframe pages, carried without third-party cookies.

Inside a CRM's iframe our cookies are third-party: Safari and Chrome with third-party cookies off
drop them. So identity travels in the request itself:

* a *launch token* (signed, 2 minutes, single use) goes in the iframe URL that ``/kommo/session``
  hands to the widget, or is minted after a verified Bitrix24 iframe POST;
* opening it redirects to the page with a *session token* in the URL; our pages carry it on
  every link (``st`` query), in the body of every form (hidden ``st`` field) and in every XHR
  (``X-Session-Token``); ``static/app.js`` takes it out of the address bar once the page is loaded.

A session token is a bearer token, so it is kept short and tied to the rights it was issued for:

* it expires ``SESSION_MAX_AGE`` after it was issued, but every use after ``SESSION_RENEW_AFTER``
  answers with a fresh one (``X-Session-Renewed``, picked up by the page scripts), so an open page
  keeps working — up to ``SESSION_LIFETIME_MAX`` after the CRM opened it; then the CRM mints a new one;
* on every request the account's state and the employee's admin right and activity are read again
  from our database (``widget.services.accounts.state.session_standing``): a deactivated employee is
  refused, admin pages need the right now, not when the token was issued;
* it carries the account's and the employee's session epoch: an uninstall, a reinstall or a change
  of the employee's right or activity raises one, which ends every session issued before.

Flask's ``session`` is rebuilt from that token on every request and never written to a cookie. Its
CSRF key is derived from the session id (kept across renewals), so Flask-WTF's CSRF protection
works unchanged: a forged form from another site knows neither the session token nor the CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Request, Response, abort, current_app, g
from flask.sessions import SessionInterface, SessionMixin
from flask_babel import gettext
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from widget.web.body_limit import body_over_limit

LAUNCH_MAX_AGE = 120
SESSION_MAX_AGE = 30 * 60  # a session token not renewed for this long has expired
SESSION_RENEW_AFTER = 5 * 60  # a token older than this is renewed on its next use
SESSION_LIFETIME_MAX = 24 * 3600  # renewals stop this long after the CRM opened the page
SESSION_PARAM = "st"
SESSION_HEADER = "X-Session-Token"
RENEWED_HEADER = "X-Session-Renewed"


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
    account_epoch: int = 0  # the session epochs it was issued under (see the module docstring)
    employee_epoch: int = 0
    opened_at: int = 0  # when the CRM opened the page (unix seconds); renewals keep it

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
            account_epoch=int(claims.get("account_epoch") or 0),
            employee_epoch=int(claims.get("employee_epoch") or 0),
            opened_at=int(claims.get("opened_at") or 0),
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
    """A new session for a user the CRM just vouched for, under the session epochs in force now."""
    from widget.services.accounts.state import session_standing
    from widget.web.context import get_db

    standing = session_standing(get_db(), identity.account_id, identity.crm_user_id)
    return _dump(
        replace(
            identity,
            sid=identity.sid or secrets.token_urlsafe(16),
            opened_at=identity.opened_at or int(time.time()),
            account_epoch=standing.account_epoch if standing else 0,
            employee_epoch=standing.employee_epoch if standing else 0,
        )
    )


def _dump(identity: Identity) -> str:
    return str(_serializer("session").dumps(identity.to_claims()))


def read_session(token: str) -> tuple[Identity, int] | None:
    """The identity a session token carries and when it was issued (unix seconds), if it is
    genuine and not expired."""
    try:
        claims, issued = _serializer("session").loads(token, max_age=SESSION_MAX_AGE, return_timestamp=True)
        return Identity.from_claims(claims), int(issued.timestamp())
    except (BadSignature, SignatureExpired, KeyError, ValueError, TypeError, AttributeError):
        return None


def read_session_token(token: str) -> Identity | None:
    found = read_session(token)
    return found[0] if found else None


def _token_from_request(req: Request) -> str | None:
    return req.headers.get(SESSION_HEADER) or req.args.get(SESSION_PARAM) or _form_token(req)


def _form_token(req: Request) -> str | None:
    """The ``st`` form field, unless the body is over the size limit: this runs before any error
    handler, so reading it would turn the limit into a 500 (``widget.web.body_limit`` answers 413)."""
    return None if body_over_limit() else req.form.get(SESSION_PARAM)


SERVER_TO_SERVER_PREFIX = "/gateway/"


class TokenSession(dict[str, Any], SessionMixin):
    """Flask's session, rebuilt per request from the session token; never persisted."""

    def __init__(self, identity: Identity | None, token: str | None, csrf_key: str | None, issued_at: int = 0) -> None:
        super().__init__()
        self.identity = identity
        self.token = token
        self.issued_at = issued_at
        if csrf_key:
            self["csrf_token"] = csrf_key


class TokenSessionInterface(SessionInterface):
    def open_session(self, app: Flask, request: Request) -> TokenSession:
        if request.path.startswith(SERVER_TO_SERVER_PREFIX):
            # The messaging gateway signs its calls; no employee session ever rides on them, and its
            # hot inbound path should not parse a body as a form to look for one.
            return TokenSession(None, None, None)
        token = _token_from_request(request)
        found = read_session(token) if token else None
        if found is None:
            return TokenSession(None, None, None)
        identity, issued_at = found
        key = hmac.new(app.config["SECRET_KEY"].encode(), f"csrf|{identity.sid}".encode(), hashlib.sha256)
        return TokenSession(identity, token, key.hexdigest(), issued_at)

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
    """Our iframe pages and JSON API: a valid session token for an account that is still installed,
    issued under the session epochs in force, for an employee who is still active; the admin right
    is the token's and our database's together (see the module docstring)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ident = current_identity()
        if ident is None:
            abort(401, description=gettext("Your session has expired. Please reopen the integration from your CRM."))
        from widget.services.accounts.state import session_standing
        from widget.web.context import get_db

        standing = session_standing(get_db(), ident.account_id, ident.crm_user_id)
        if standing is None or not standing.usable:
            abort(403, description=gettext("This integration has been uninstalled from your CRM."))
        if (standing.account_epoch, standing.employee_epoch) != (ident.account_epoch, ident.employee_epoch):
            abort(
                401,
                description=gettext(
                    "Your session has ended because your access changed. Please reopen the integration from your CRM."
                ),
            )
        if not standing.employee_active:
            abort(403, description=gettext("Your user is deactivated in the CRM. Ask your CRM administrator."))
        ident = replace(ident, is_admin=ident.is_admin and standing.employee_admin)
        g.identity = ident
        _renew_if_due(ident)
        return view(*args, **kwargs)

    return cast(F, wrapper)


def _renew_if_due(ident: Identity) -> None:
    """A token past ``SESSION_RENEW_AFTER`` gets a successor (same session id, so the CSRF token
    stays; same rights as just checked): the page renders with it, and XHR answers carry it in
    ``X-Session-Renewed``."""
    from flask import session

    issued = int(getattr(session, "issued_at", 0) or 0)
    now = int(time.time())
    if not issued or now - issued < SESSION_RENEW_AFTER:
        return
    if ident.opened_at and now - ident.opened_at >= SESSION_LIFETIME_MAX:
        return  # the page has lived its day: the CRM opens a new session
    token = _dump(ident)
    g.session_token = token
    g.renewed_session_token = token


def init_app(app: Flask) -> None:
    @app.after_request
    def _renewed(response: Response) -> Response:
        token = getattr(g, "renewed_session_token", None)
        if token:
            response.headers[RENEWED_HEADER] = token
            response.headers["Cache-Control"] = "no-store"
        return response


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
