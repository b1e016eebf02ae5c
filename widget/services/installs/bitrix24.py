"""The life of a Bitrix24 installation: install (iframe installer or ``ONAPPINSTALL``), every verified
iframe open, events, uninstall (reference §1-5).

Trust rules, in order: the portal must be known by ``member_id`` (except on install); a presented
``APPLICATION_TOKEN`` must equal the stored one; the user's token must be vouched for by the
*configured* OAuth server's ``app.info`` (our ``client_id``, this ``member_id``, this domain); admin
rights come from ``profile`` called on the *stored* REST endpoint. Nothing a browser posts is used as
an address before that.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from widget.crm.bitrix24.events import (
    CRM_UPDATE_EVENTS,
    EVENT_INSTALL,
    EVENT_UNINSTALL,
    EVENT_UPDATE,
    application_token_matches,
)
from widget.crm.bitrix24.payloads import AppInfo, EventPost, FramePost, Profile, host_of, origin_of
from widget.crm.bitrix24.provider import Bitrix24Provider, VerificationFailed, normalise_domain
from widget.crm.tokens import TokenPair
from widget.db import Database, lock_for_update
from widget.extensions import AppServices
from widget.models import Account, CrmEvent, Employee
from widget.models._base import utcnow
from widget.models.accounts import CRM_BITRIX24, STATUS_ACTIVE, STATUS_NEEDS_REAUTH, STATUS_UNINSTALLED
from widget.services.accounts.state import find_account, mark_uninstalled, revoke_sessions, within_grace
from widget.services.accounts.tokens import store_tokens
from widget.services.channels.signing import get_or_create_gateway_secret
from widget.services.refusal import Refusal

log = logging.getLogger(__name__)


class Refused(Refusal):
    """An inbound Bitrix24 call we do not accept. ``status`` is the HTTP answer; ``message`` is safe
    to show."""


@dataclass(frozen=True)
class PortalUser:
    """A verified Bitrix24 user inside one installed portal."""

    account_id: int
    user_id: str
    name: str
    is_admin: bool
    frame_origin: str
    account_status: str
    status_reason: str
    newly_installed: bool = False


@dataclass(frozen=True)
class EventOutcome:
    event: str
    account_id: int | None
    installed: bool = False


def _trusted_endpoint(info: AppInfo, claimed: str, https: bool) -> str:
    """The portal's REST endpoint: the OAuth server's word first; a claimed one only on that domain."""
    if info.client_endpoint:
        return info.client_endpoint
    if claimed and normalise_domain(host_of(claimed)) == normalise_domain(info.domain):
        return claimed
    return f"{'https' if https else 'http'}://{info.domain}/rest/"


def _verified(
    provider: Bitrix24Provider, access_token: str, member_id: str, domain: str | None, action: str
) -> AppInfo:
    """The OAuth server's ``app.info`` vouches for the token; why it did not goes to the log only."""
    try:
        return provider.verify(access_token, member_id=member_id, domain=domain)
    except VerificationFailed as exc:
        log.warning("Bitrix24 %s refused for %s: %s", action, member_id, exc)
        raise Refused(401, exc.user_message) from None


def _server_endpoint(provider: Bitrix24Provider, claimed: str) -> str:
    """Refreshes go to the stored server endpoint, so only the configured OAuth server is stored."""
    try:
        provider.token_url(claimed or None)
    except Exception:
        raise Refused(400, "This Bitrix24 portal uses an OAuth server this service is not configured for.") from None
    return claimed or f"{provider.oauth_url}/rest/"


def _store_install(
    database: Database,
    services: AppServices,
    *,
    member_id: str,
    domain: str,
    client_endpoint: str,
    server_endpoint: str,
    application_token: str,
    tokens: TokenPair,
    installer_id: str,
) -> tuple[int, bool]:
    """Create or restore the account and store its secrets. Returns (account id, created).

    Callers have verified the request (``app.info``) and that its user is an admin, so a *different*
    application token is accepted here: a reinstall brings a new one even when the uninstall event
    was lost (Bitrix24 never retries events, §5.2)."""
    box = services.box
    grace = services.settings.uninstall_grace_days
    for attempt in range(2):
        try:
            with database.transaction() as session:
                account = find_account(session, CRM_BITRIX24, member_id)
                if account is not None and account.status == STATUS_UNINSTALLED and not within_grace(account, grace):
                    # The grace period is over: a reinstall starts clean, as if purged already.
                    session.delete(account)
                    session.flush()
                    account = None
                created = account is None or account.status == STATUS_UNINSTALLED
                if account is None:
                    account = Account(crm=CRM_BITRIX24, external_id=member_id, domain=domain)
                    session.add(account)
                if account.status == STATUS_UNINSTALLED:
                    log.info("Bitrix24 portal %s reinstalled within the grace period: settings restored", member_id)
                    revoke_sessions(account)
                account.domain = domain
                account.name = account.name or domain
                account.client_endpoint = client_endpoint
                account.server_endpoint = server_endpoint
                if application_token:
                    account.application_token_enc = box.seal(application_token)
                account.status = STATUS_ACTIVE
                account.status_reason = ""
                account.uninstalled_at = None
                account.installed_at = utcnow() if created else account.installed_at
                account.installed_by_crm_user_id = installer_id or account.installed_by_crm_user_id
                session.flush()
                store_tokens(session, box, account.id, tokens)
                get_or_create_gateway_secret(session, box, account.id)  # the gateway can be set up at once
                return account.id, created
        except (IntegrityError, OperationalError):
            # The installer page and ONAPPINSTALL raced for the same portal (PostgreSQL: unique
            # violation; SQLite: the loser could not take the write lock): retry as an update.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _install_by_admin(
    database: Database,
    services: AppServices,
    provider: Bitrix24Provider,
    info: AppInfo,
    endpoint: str,
    installer: Profile,
    tokens: TokenPair,
    application_token: str,
    claimed_server_endpoint: str,
) -> tuple[int, bool]:
    """Store an installation that ``app.info`` vouched for (``info``), made by ``installer``.
    Returns (account id, created)."""
    if not installer.is_admin:
        # The stored tokens act for the whole portal in the background: only an admin may set them.
        raise Refused(403, "Only a Bitrix24 administrator can install this app.")
    account_id, created = _store_install(
        database,
        services,
        member_id=info.member_id,  # app.info checked it equals the one the request named
        domain=info.domain,
        client_endpoint=endpoint,
        server_endpoint=_server_endpoint(provider, claimed_server_endpoint),
        application_token=application_token,
        tokens=tokens,
        installer_id=installer.user_id,
    )
    _remember_admin(database, account_id, installer.user_id)
    return account_id, created


def install_from_frame(database: Database, services: AppServices, frame: FramePost) -> PortalUser:
    """The installer page opened in the iframe (``PLACEMENT=DEFAULT`` before ``installFinish``)."""
    if not frame.refresh_id:
        raise Refused(400, "Bitrix24 did not send a refresh token with the installation.")
    provider = Bitrix24Provider(services.settings)
    info = _verified(provider, frame.auth_id, frame.member_id, frame.domain, "install")
    endpoint = _trusted_endpoint(info, "", frame.protocol == 1)
    profile = provider.user_client(endpoint, frame.auth_id, frame.member_id).profile()
    if info.user_id and profile.user_id != info.user_id:
        raise Refused(401, VerificationFailed.user_message)
    tokens = TokenPair(frame.auth_id, frame.refresh_id, frame.expires_at())
    account_id, created = _install_by_admin(
        database, services, provider, info, endpoint, profile, tokens, frame.application_token, frame.server_endpoint
    )
    return PortalUser(
        account_id=account_id,
        user_id=profile.user_id,
        name=profile.name,
        is_admin=True,
        frame_origin=origin_of(endpoint),
        account_status=STATUS_ACTIVE,
        status_reason="",
        newly_installed=created,
    )


def install_from_event(database: Database, services: AppServices, event: EventPost) -> int:
    """``ONAPPINSTALL`` (or ``ONAPPUPDATE``): no stored token to compare yet, so the event's own access
    token is checked with ``app.info`` before anything is stored."""
    auth = event.auth
    if not auth.access_token or not auth.refresh_token:
        raise Refused(401, "The installation event carries no tokens.")
    provider = Bitrix24Provider(services.settings)
    info = _verified(provider, auth.access_token, auth.member_id, auth.domain or None, event.event)
    endpoint = _trusted_endpoint(info, auth.client_endpoint, urlsplit(auth.client_endpoint).scheme == "https")
    profile = provider.user_client(endpoint, auth.access_token, auth.member_id).profile()
    tokens = TokenPair(auth.access_token, auth.refresh_token, auth.expires_at())
    account_id, _ = _install_by_admin(
        database, services, provider, info, endpoint, profile, tokens, auth.application_token, auth.server_endpoint
    )
    return account_id


def open_frame(database: Database, services: AppServices, frame: FramePost) -> PortalUser:
    """Authenticate a user opening our app page or a placement inside Bitrix24 (§2.2)."""
    box = services.box
    with database.transaction() as session:
        account = find_account(session, CRM_BITRIX24, frame.member_id)
        if account is None:
            raise Refused(401, "This Bitrix24 portal has not installed the app.")
        if account.status == STATUS_UNINSTALLED:
            raise Refused(403, "This app has been uninstalled from your Bitrix24.")
        account_id = account.id
        stored_token = box.open(account.application_token_enc) if account.application_token_enc else None
        stored_domain = account.domain
        endpoint = account.client_endpoint or ""
    # APPLICATION_TOKEN is optional in older portals (Uncertain #5); when it is sent it must match.
    if (
        frame.application_token
        and stored_token
        and not application_token_matches(stored_token, frame.application_token)
    ):
        log.warning("Bitrix24 frame open with a wrong application token for %s", frame.member_id)
        raise Refused(401, VerificationFailed.user_message)

    provider = Bitrix24Provider(services.settings)
    info = _verified(provider, frame.auth_id, frame.member_id, frame.domain, "frame open")
    if normalise_domain(info.domain) != normalise_domain(stored_domain) or not endpoint:
        # Renamed portal: the OAuth server's word is trusted, the posted DOMAIN only matched it.
        endpoint = _trusted_endpoint(info, "", urlsplit(endpoint).scheme == "https" or frame.protocol == 1)
        with database.transaction() as session:
            acc = lock_for_update(session, Account, id=account_id)
            if acc is not None:
                acc.domain, acc.client_endpoint = info.domain, endpoint

    profile = provider.user_client(endpoint, frame.auth_id, frame.member_id).profile()
    if info.user_id and profile.user_id != info.user_id:
        raise Refused(401, VerificationFailed.user_message)

    with database.transaction() as session:
        current = session.execute(select(Account.status, Account.status_reason).where(Account.id == account_id)).one()
    status, reason = current.status, current.status_reason
    if profile.is_admin and status == STATUS_NEEDS_REAUTH and frame.refresh_id:
        # An admin's verified fresh pair mends a broken refresh chain without a reinstall.
        with database.transaction() as session:
            acc = lock_for_update(session, Account, id=account_id)
            if acc is not None and acc.status == STATUS_NEEDS_REAUTH:
                store_tokens(session, box, account_id, TokenPair(frame.auth_id, frame.refresh_id, frame.expires_at()))
                acc.status, acc.status_reason = STATUS_ACTIVE, ""
                status, reason = STATUS_ACTIVE, ""
                log.info("Bitrix24 account %s re-authorised by admin %s", account_id, profile.user_id)
    _remember_admin(database, account_id, profile.user_id, profile.is_admin)
    return PortalUser(
        account_id=account_id,
        user_id=profile.user_id,
        name=profile.name,
        is_admin=profile.is_admin,
        frame_origin=origin_of(endpoint),
        account_status=status,
        status_reason=reason,
    )


def handle_event(
    database: Database, services: AppServices, event: EventPost, now: datetime | None = None
) -> EventOutcome:
    """A server-to-server event: verified by the stored application token of ``auth[member_id]``."""
    if event.event in (EVENT_INSTALL, EVENT_UPDATE):
        return EventOutcome(event.event, install_from_event(database, services, event), installed=True)

    box = services.box
    with database.transaction() as session:
        account = find_account(session, CRM_BITRIX24, event.auth.member_id)
        sealed = account.application_token_enc if account is not None else None
        account_id = account.id if account is not None else None
    stored = box.open(sealed) if sealed else None
    if account_id is None or not application_token_matches(stored, event.auth.application_token):
        log.warning("Bitrix24 event %s refused: unknown portal or wrong application token", event.event)
        raise Refused(401, "invalid_application_token")

    if event.event == EVENT_UNINSTALL:
        with database.transaction() as session:
            # Write lock first (SQLite cannot upgrade a reading transaction under contention).
            locked = lock_for_update(session, Account, id=account_id)
            if locked is None:
                return EventOutcome(event.event, account_id)
            mark_uninstalled(session, locked, now)
            if str(event.data.get("CLEAN") or "0") == "1":
                # The admin ticked "delete application settings and data" (§5.3): honour it now.
                log.info("Bitrix24 portal %s uninstalled with CLEAN=1: settings deleted", event.auth.member_id)
                session.delete(locked)
        return EventOutcome(event.event, account_id)

    entity = CRM_UPDATE_EVENTS.get(event.event)
    if entity is not None:
        with database.transaction() as session:
            session.add(
                CrmEvent(
                    account_id=account_id,
                    event=event.event,
                    entity_type=entity,
                    entity_id=event.entity_id(),
                    # Never the auth block: it holds a live access token.
                    payload=json.dumps(
                        {"data": event.data, "ts": event.ts, "event_handler_id": event.event_handler_id},
                        ensure_ascii=False,
                    ),
                )
            )
    return EventOutcome(event.event, account_id)


def _remember_admin(database: Database, account_id: int, user_id: str, is_admin: bool = True) -> None:
    """``user.get`` does not say who is an admin; a verified ``profile`` does, so keep it (a change
    ends the employee's other page sessions, issued with the old right)."""
    with database.transaction() as session:
        session.execute(
            update(Employee)
            .where(
                Employee.account_id == account_id,
                Employee.crm_user_id == user_id,
                Employee.is_admin.is_(not is_admin),
            )
            .values(is_admin=is_admin, session_epoch=Employee.session_epoch + 1)
        )
