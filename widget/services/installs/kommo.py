"""Installing Kommo and reacting to its removal (reference §1-2, product.md §6).

Kommo waits at most 3 s for the install webhook and never resends it, so the callback only stores
the code (``record_install_code``) and nudges a job; ``complete_install`` does the slow part and is
safe to run any number of times, from the job or from the periodic sweep, until the code expires.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from widget.crm.errors import CrmAuthError, CrmBadResponse, CrmError
from widget.crm.kommo.client import just_issued
from widget.crm.kommo.payloads import KommoAccount
from widget.crm.kommo.provider import KommoProvider
from widget.crm.tokens import TokenPair
from widget.crypto import TokenBox
from widget.db import Database, lock_for_update
from widget.extensions import AppServices
from widget.models import Account, PendingInstall
from widget.models._base import utcnow
from widget.models.accounts import CRM_KOMMO, STATUS_ACTIVE, STATUS_UNINSTALLED
from widget.models.kommo import KommoExchangedTokens
from widget.models.security import DONE, FAILED, PENDING
from widget.services.accounts.state import find_account, mark_uninstalled, revoke_sessions, within_grace
from widget.services.accounts.tokens import store_tokens
from widget.services.channels.signing import get_or_create_gateway_secret
from widget.services.outbox import insert_or_ignore
from widget.services.refusal import Refusal

log = logging.getLogger(__name__)

# An authorization code lives 20 minutes (reference §1.2).
CODE_LIFETIME = timedelta(minutes=20)
# Codes waiting for their exchange: per account host (a person may click "Allow" again), and in all.
MAX_PENDING_PER_HOST = 3
MAX_PENDING = 100
# How long finished (done or failed) installs are kept for support questions.
FINISHED_KEPT = timedelta(days=7)
SOURCE_WIDGET = "widget"  # the widget-install webhook (from_widget, no state)
SOURCE_BUTTON = "button"  # the button/popup flow (state verified)


@dataclass(frozen=True)
class InstallOutcome:
    status: str  # PENDING (will be retried), DONE or FAILED
    account_id: int | None = None
    error: str = ""


class InstallRefused(Refusal):
    """Too many installs are waiting for an exchange (for this host, or overall)."""


def _pending(session: Session, host: str | None = None) -> int:
    query = (
        select(func.count())
        .select_from(PendingInstall)
        .where(PendingInstall.crm == CRM_KOMMO, PendingInstall.status == PENDING)
    )
    if host is not None:
        query = query.where(PendingInstall.host == host)
    return int(session.execute(query).scalar_one())


def record_install_code(
    session: Session,
    provider: KommoProvider,
    box: TokenBox,
    host: str,
    code: str,
    source: str,
    now: datetime | None = None,
) -> tuple[PendingInstall, bool]:
    """Store the code (encrypted) before anything else, so no later failure can lose it. Returns
    the row and whether it is new: the same code for the same host is stored once.

    Each stored code makes us send our client secret to its host, so what waits is capped: a few
    codes per host, ``MAX_PENDING`` in all (``InstallRefused`` past them). Kommo sends one code per
    install, so genuine installs stay far below both."""
    received = now or utcnow()
    host = provider.verified_host(host)
    digest = hashlib.sha256(code.encode()).hexdigest()
    existing = session.execute(
        select(PendingInstall).where(
            PendingInstall.crm == CRM_KOMMO, PendingInstall.host == host, PendingInstall.code_hash == digest
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    if _pending(session, host) >= MAX_PENDING_PER_HOST:
        raise InstallRefused(429, "Too many connections to this Kommo account are waiting. Try again in a few minutes.")
    if _pending(session) >= MAX_PENDING:
        raise InstallRefused(503, "Too many Kommo connections are waiting. Try again in a few minutes.")
    values = {
        "crm": CRM_KOMMO,
        "host": host,
        "code_enc": box.seal(code),
        "code_hash": digest,
        "source": source,
        "status": PENDING,
        "attempts": 0,
        "last_error": "",
        "received_at": received,
        "expires_at": received + CODE_LIFETIME,
    }
    new_id = insert_or_ignore(session, PendingInstall, values, ["crm", "host", "code_hash"])
    row = session.execute(
        select(PendingInstall).where(
            PendingInstall.crm == CRM_KOMMO, PendingInstall.host == host, PendingInstall.code_hash == digest
        )
    ).scalar_one()
    return row, new_id is not None


def _short(exc: Exception) -> str:
    return str(exc)[:1000]


def complete_install(
    database: Database,
    services: AppServices,
    pending_id: int,
    *,
    provider: KommoProvider | None = None,
    now: Callable[[], datetime] = utcnow,
) -> InstallOutcome:
    """Exchange the code, create or restore the account, store its tokens, sync its CRM data.

    Transient failures (Kommo down, rate limited, a timeout) leave the install pending for the next
    try; a refusal (code spent or expired, credentials refused) fails it for good."""
    provider = provider or KommoProvider(services.settings)
    box = services.box

    # 1. The code → a token pair, under the row lock so two workers never spend one code twice.
    #    The pair is committed before anything else is tried.
    with database.transaction() as session:
        row = lock_for_update(session, PendingInstall, id=pending_id)
        if row is None or row.status != PENDING:
            return InstallOutcome(row.status if row else FAILED, row.account_id if row else None)
        staged = session.get(KommoExchangedTokens, pending_id)
        if staged is None:
            if row.expires_at <= now():
                row.status = FAILED
                row.last_error = "the authorization code expired before it could be exchanged"
                return InstallOutcome(FAILED, error=row.last_error)
            row.attempts += 1
            try:
                pair = provider.exchange_code(row.host, box.open(row.code_enc))
            except (CrmAuthError, CrmBadResponse) as exc:
                row.status = FAILED
                row.last_error = _short(exc)
                log.warning("Kommo install for %s refused: %s", row.host, exc)
                return InstallOutcome(FAILED, error=row.last_error)
            except CrmError as exc:
                row.last_error = _short(exc)
                log.info("Kommo install for %s will be retried: %s", row.host, exc)
                return InstallOutcome(PENDING, error=row.last_error)
            staged = KommoExchangedTokens(
                pending_install_id=pending_id,
                access_token_enc=box.seal(pair.access_token),
                refresh_token_enc=box.seal(pair.refresh_token),
                expires_at=pair.expires_at,
            )
            session.add(staged)
        else:
            pair = TokenPair(box.open(staged.access_token_enc), box.open(staged.refresh_token_enc), staged.expires_at)
            if pair.expires_at <= now():
                row.status = FAILED
                row.last_error = "the exchanged token expired before the account could be read"
                return InstallOutcome(FAILED, error=row.last_error)
        host = row.host

    # 2. Which account is it? Read with the new token, outside any lock.
    try:
        info = provider.client(host, just_issued(pair.access_token)).get_account()
    except CrmAuthError as exc:
        return _fail(database, pending_id, exc)
    except CrmError as exc:
        with database.transaction() as session:
            row = lock_for_update(session, PendingInstall, id=pending_id)
            if row is not None:
                row.last_error = _short(exc)
        return InstallOutcome(PENDING, error=_short(exc))

    # 3. Create or restore the account and move the pair to it, once.
    with database.transaction() as session:
        row = lock_for_update(session, PendingInstall, id=pending_id)
        if row is None or row.status != PENDING:
            return InstallOutcome(row.status if row else FAILED, row.account_id if row else None)
        account = attach_account(session, info, host, services.settings.uninstall_grace_days, now())
        if services.settings.sandbox:
            # The embedded default's demo: the account comes with three channels to try the settings on.
            from widget.services.channels.manage import seed_demo_channels

            seed_demo_channels(session, account.id)
        store_tokens(session, box, account.id, pair)
        get_or_create_gateway_secret(session, box, account.id)  # the gateway can be set up at once
        row.status = DONE
        row.account_id = account.id
        row.last_error = ""
        staged_row = session.get(KommoExchangedTokens, pending_id)
        if staged_row is not None:
            session.delete(staged_row)
        account_id = account.id
    log.info("Kommo account %s (%s) installed as %s", info.id, host, account_id)
    # Responsible changes made in Kommo come back through entity webhooks, subscribed by a job.
    from widget.services.conversations.kommo_webhooks import nudge_subscription

    nudge_subscription(services.jobs, account_id)

    # The sandbox messaging gateway lists the account's (demo) channels at once.
    from widget.services.channels.sandbox_gateway import nudge_sandbox_gateway

    nudge_sandbox_gateway(services, account_id)
    # 4. The first "Refresh CRM data". A failure here does not undo the install: it is retried.
    from widget.services.crm_data.kommo import refresh_kommo_data

    try:
        refresh_kommo_data(database, services, account_id, provider=provider)
    except CrmError as exc:
        log.warning("first Refresh CRM data for account %s failed, will retry: %s", account_id, exc)
        services.jobs.enqueue("kommo_refresh_data", account_id, delay=timedelta(minutes=1))
    return InstallOutcome(DONE, account_id)


def _fail(database: Database, pending_id: int, exc: Exception) -> InstallOutcome:
    with database.transaction() as session:
        row = lock_for_update(session, PendingInstall, id=pending_id)
        if row is not None and row.status == PENDING:
            row.status = FAILED
            row.last_error = _short(exc)
    return InstallOutcome(FAILED, error=_short(exc))


def attach_account(session: Session, info: KommoAccount, host: str, grace_days: int, now: datetime) -> Account:
    """The Account row for a Kommo account that (re)authorized us.

    Reinstalled within the grace period: the same row comes back with its channels, settings and
    roles. After it: the old row is purged and the account starts fresh."""
    account = find_account(session, CRM_KOMMO, str(info.id))
    if account is not None and account.status == STATUS_UNINSTALLED and not within_grace(account, grace_days, now):
        session.delete(account)
        session.flush()
        account = None
    installer = str(info.current_user_id) if info.current_user_id is not None else None
    if account is None:
        account = Account(crm=CRM_KOMMO, external_id=str(info.id), installed_at=now, installed_by_crm_user_id=installer)
        session.add(account)
    elif account.status == STATUS_UNINSTALLED:
        account.installed_at = now
        account.installed_by_crm_user_id = installer
        revoke_sessions(account)
    account.domain = host  # a renamed subdomain follows the latest install
    account.name = info.name or account.name or host
    account.status = STATUS_ACTIVE
    account.status_reason = ""
    account.uninstalled_at = None
    session.flush()
    return account


def retryable_installs(session: Session) -> list[int]:
    return list(
        session.execute(
            select(PendingInstall.id)
            .where(PendingInstall.crm == CRM_KOMMO, PendingInstall.status == PENDING)
            .order_by(PendingInstall.id)
        ).scalars()
    )


def sweep_pending_installs(
    database: Database, services: AppServices, *, now: Callable[[], datetime] = utcnow
) -> list[InstallOutcome]:
    """Retry every pending install (a lost job, a Kommo hiccup); expired codes are failed.
    Finished installs are kept a week for support questions, then deleted."""
    with database.transaction() as session:
        ids = retryable_installs(session)
        session.execute(
            delete(PendingInstall).where(
                PendingInstall.crm == CRM_KOMMO,
                PendingInstall.status.in_((DONE, FAILED)),
                PendingInstall.received_at < now() - FINISHED_KEPT,
            )
        )
    provider = KommoProvider(services.settings)
    return [complete_install(database, services, pid, provider=provider, now=now) for pid in ids]


def revoke_access(database: Database, kommo_account_id: int, now: datetime | None = None) -> bool:
    """Kommo's access-revoked hook (already verified): tokens go at once, settings stay for the
    grace period. False when we never had (or no longer have) that account."""
    with database.transaction() as session:
        account = find_account(session, CRM_KOMMO, str(kommo_account_id))
        if account is None or account.status == STATUS_UNINSTALLED:
            return False
        mark_uninstalled(session, account, now)
    log.info("Kommo account %s revoked our access", kommo_account_id)
    return True
