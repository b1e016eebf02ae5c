"""Who is opening our pages from inside Kommo (reference §3-4): a verified widget JWT becomes an
``Identity`` in one installed account."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from widget.config import Settings
from widget.crm.errors import CrmError
from widget.crm.kommo.events import InboundRejected, WidgetClaims, issued_by, verify_account_host
from widget.crm.kommo.provider import KommoProvider, kommo_base_url, kommo_origin
from widget.crypto import TokenBox
from widget.db import Database
from widget.models import Account, Employee, PendingInstall
from widget.models.accounts import CRM_KOMMO, STATUS_ACTIVE, STATUS_NEEDS_REAUTH
from widget.models.security import PENDING
from widget.services.accounts.crm_clients import kommo_tokens
from widget.services.accounts.state import find_account, set_employee_rights
from widget.services.refusal import Refusal
from widget.services.sessions.nonces import consume_nonce

log = logging.getLogger(__name__)


class SessionRefused(Refusal):
    """The widget token is genuine but does not open a session. ``status`` is 401 or 403."""


@dataclass(frozen=True)
class WidgetUser:
    """Everything an ``Identity`` needs, from verified sources only."""

    account_id: int
    crm_user_id: str
    is_admin: bool
    lang: str
    name: str
    frame_origin: str
    known: bool = True  # False: not synced yet, see ``fill_unknown_user``
    host: str = ""


def _subdomain(host: str) -> str:
    return host.split(".", 1)[0].lower()


def open_widget_session(session: Session, provider: KommoProvider, claims: WidgetClaims) -> WidgetUser:
    """Check the claims against our installed account and spend the token's ``jti``.

    The caller commits ``session`` only on success, so a refused token is not recorded as used;
    then, for a user we have not synced yet, it calls ``fill_unknown_user`` outside the transaction."""
    account = find_account(session, CRM_KOMMO, str(claims.account_id))
    if account is None or not account.is_usable:
        if install_in_progress(session, claims.subdomain):
            # Kommo shows the widget as soon as it sent the install webhook; our code exchange may
            # still be running. Say so, instead of "not installed".
            raise SessionRefused(503, "Wazzup is still being connected to this Kommo account. Try again in a moment.")
        raise SessionRefused(403, "The integration is not installed in this Kommo account.")
    if _subdomain(account.domain) != claims.subdomain:
        raise SessionRefused(403, "This token belongs to another Kommo account.")
    if not issued_by(claims, kommo_base_url(provider.settings, account.domain)):
        raise SessionRefused(403, "This token was issued by another Kommo account.")
    employee = session.execute(
        select(Employee).where(Employee.account_id == account.id, Employee.crm_user_id == str(claims.user_id))
    ).scalar_one_or_none()
    expires = datetime.fromtimestamp(claims.expires_at, UTC) + timedelta(minutes=5)
    if not consume_nonce(session, f"kommo-jwt:{claims.account_id}:{claims.jti}", expires):
        raise SessionRefused(401, "This token was already used. Please reopen the integration.")
    is_admin = claims.is_admin
    if is_admin is None and employee is not None:
        is_admin = employee.is_admin
    elif employee is not None and is_admin is not None and bool(employee.is_admin) != is_admin:
        # Kommo's signed word is fresher than our last "Refresh CRM data": keep it, so the
        # per-request check of rights agrees with the session about to be opened.
        set_employee_rights(employee, is_admin=is_admin, is_active=employee.is_active, in_crm=employee.in_crm)
    return WidgetUser(
        account_id=account.id,
        crm_user_id=str(claims.user_id),
        # Unknown rights never grant the admin pages.
        is_admin=bool(is_admin),
        lang=(employee.lang if employee is not None else "") or "en",
        name=employee.name if employee is not None else "",
        frame_origin=kommo_origin(provider.settings, account.domain),
        known=employee is not None,
        host=account.domain,
    )


def start_widget_session(
    session: Session,
    database: Database,
    box: TokenBox,
    provider: KommoProvider,
    claims: WidgetClaims,
    origin: str | None,
) -> WidgetUser:
    """``open_widget_session`` as one unit of work: committed only on success, so a refused token
    is not spent; ``origin`` (the calling page's, when it sent one) must be the account's Kommo.
    A user we have not synced yet is then filled in from Kommo, outside the transaction."""
    try:
        user = open_widget_session(session, provider, claims)
        if origin and origin.lower() != user.frame_origin.lower():
            # The token is genuine but the page calling us is not this account's Kommo.
            raise SessionRefused(403, "This request did not come from your Kommo account.")
    except SessionRefused:
        session.rollback()
        raise
    session.commit()
    return fill_unknown_user(database, box, provider, user, claims)


def install_in_progress(session: Session, subdomain: str | None = None) -> bool:
    """Is a Kommo install code waiting to be exchanged (for this subdomain, or for any)?"""
    query = select(PendingInstall.id).where(PendingInstall.crm == CRM_KOMMO, PendingInstall.status == PENDING)
    if subdomain is not None:
        query = query.where(PendingInstall.host.startswith(f"{subdomain.lower()}.", autoescape=True))
    return session.execute(query.limit(1)).first() is not None


def fill_unknown_user(
    database: Database, box: TokenBox, provider: KommoProvider, user: WidgetUser, claims: WidgetClaims
) -> WidgetUser:
    """A user added to Kommo since the last "Refresh CRM data": ask Kommo once for their language
    and (when the token did not say) their admin flag. A failure keeps the safe defaults."""
    if user.known:
        return user
    try:
        tokens = kommo_tokens(database, box, provider, user.account_id, user.host)
        found = provider.client(user.host, tokens).get_user(claims.user_id)
    except CrmError as exc:
        log.info("could not read Kommo user %s of account %s: %s", claims.user_id, user.account_id, exc)
        return user
    return replace(
        user,
        lang=found.lang or user.lang,
        name=found.name,
        is_admin=claims.is_admin if claims.is_admin is not None else found.is_admin,
    )


def _origin_pattern(settings: Settings) -> re.Pattern[str] | None:
    """Kommo origins are per account (``https://acme.kommo.com``); a template that keeps the host in
    the path (the sandbox) has one fixed origin, returned as ``None``."""
    marker = "kommohostmarker.invalid"
    sample = kommo_origin(settings, marker)
    if marker not in sample:
        return None
    return re.compile(re.escape(sample).replace(re.escape(marker), r"(?P<host>[a-z0-9.-]+)"))


def is_installed_kommo_origin(session: Session, settings: Settings, origin: str | None) -> bool:
    """Is ``origin`` the Kommo origin of an account that has us installed? Only those may call
    ``/kommo/session`` from a browser (CORS, reference §3)."""
    if not origin:
        return False
    origin = origin.lower()
    query = select(Account.id).where(Account.crm == CRM_KOMMO, Account.status.in_((STATUS_ACTIVE, STATUS_NEEDS_REAUTH)))
    # An install under way counts: Kommo shows the widget as soon as it sent the install webhook,
    # and the widget must then be able to read our "still connecting" answer.
    pending = select(PendingInstall.id).where(PendingInstall.crm == CRM_KOMMO, PendingInstall.status == PENDING)
    pattern = _origin_pattern(settings)
    if pattern is None:
        if origin != kommo_origin(settings, "x." + settings.kommo_domains[0]).lower():
            return False
    else:
        match = pattern.fullmatch(origin)
        if match is None:
            return False
        try:
            host = verify_account_host(match.group("host"), settings.kommo_domains)
        except InboundRejected:
            return False
        query = query.where(Account.domain == host)
        pending = pending.where(PendingInstall.host == host)
    return session.execute(query.limit(1)).first() is not None or session.execute(pending.limit(1)).first() is not None
