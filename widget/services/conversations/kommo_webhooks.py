"""Kommo's responsible-change webhooks: the subscription made at install, and checking what arrives.

Kommo entity webhooks carry no signature (our reference only knows signed chats-API hooks), so each
account gets an unguessable token in its destination URL, ``/kommo/webhooks/<token>``. A delivery is
accepted only when the token is one we issued (looked up by its SHA-256, compared in constant time)
and the body's ``account[id]`` is the Kommo account that token belongs to. The token is stored only
as that hash and sealed (to rebuild the address); the access log shows the path with it masked
(``widget.access_log``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from widget.crm.errors import CrmError
from widget.crm.kommo.webhooks import EVENTS, EntityWebhook
from widget.db import Database, lock_for_update
from widget.domain.ports import JobQueue
from widget.extensions import AppServices
from widget.models import Account
from widget.models.accounts import CRM_KOMMO, STATUS_ACTIVE, STATUS_NEEDS_REAUTH
from widget.models.responsibility import KommoWebhook
from widget.services.accounts.crm_clients import PORT_RETRY, kommo_client
from widget.services.conversations.responsibility import nudge_events, record_crm_events
from widget.services.outbox import clock, insert_or_ignore

log = logging.getLogger(__name__)

JOB_NAME = "kommo_subscribe_webhooks"
PATH = "/kommo/webhooks/"
MAX_ATTEMPTS = 20  # a subscription Kommo keeps refusing is retried by the sweep this many times


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def destination_url(public_url: str, token: str) -> str:
    return public_url.rstrip("/") + PATH + token


def webhook_token(session: Session, services: AppServices, account_id: int) -> str:
    """The account's token, made on first use (both racers read the one row that won)."""
    token = secrets.token_urlsafe(32)
    insert_or_ignore(
        session,
        KommoWebhook,
        {
            "account_id": account_id,
            "token_hash": _hash(token),
            "token_enc": services.box.seal(token),
            "destination_base": "",
            "events": "",
            "attempts": 0,
            "last_error": "",
            "created_at": clock(services),
        },
        ["account_id"],
    )
    sealed = session.execute(select(KommoWebhook.token_enc).where(KommoWebhook.account_id == account_id)).scalar_one()
    return services.box.open(sealed)


def _base(public_url: str) -> str:
    return public_url.rstrip("/")


def subscribe(database: Database, services: AppServices, account_id: int) -> str:
    """Subscribe the account's destination to ``EVENTS`` (``POST /api/v4/webhooks``; subscribing
    an address again replaces its events, so this is safe to repeat). An address from an earlier
    public URL is unsubscribed. Returns the destination; raises ``CrmError`` for the job to retry."""
    with database.transaction() as session:
        token = webhook_token(session, services, account_id)
        previous = session.execute(
            select(KommoWebhook.destination_base).where(KommoWebhook.account_id == account_id)
        ).scalar_one()
    base = _base(services.settings.public_url)
    destination = destination_url(base, token)
    try:
        client = kommo_client(database, services, account_id, retry=PORT_RETRY)
        if previous and previous != base:
            client.unsubscribe_webhook(destination_url(previous, token))
        client.subscribe_webhook(destination, EVENTS)
    except CrmError as exc:
        _record(database, account_id, clock(services), error=str(exc)[:1000])
        log.warning("Kommo account %s: webhook subscription failed: %s", account_id, exc)
        raise
    _record(database, account_id, clock(services), base=base)
    log.info("Kommo account %s: responsible changes are posted to our webhook", account_id)
    return destination


def _record(database: Database, account_id: int, now: datetime, *, base: str = "", error: str = "") -> None:
    with database.transaction() as session:
        row = lock_for_update(session, KommoWebhook, account_id=account_id)
        if row is None:
            return
        row.last_error = error
        if base:
            row.destination_base = base
            row.events = ",".join(EVENTS)
            row.subscribed_at = now
            row.attempts = 0
        else:
            row.attempts += 1


def nudge_subscription(jobs: JobQueue, account_id: int) -> None:
    jobs.enqueue(JOB_NAME, account_id)


def unsubscribed_accounts(database: Database, services: AppServices) -> list[int]:
    """Active Kommo accounts whose subscription is missing or points at another public URL."""
    with database.transaction() as session:
        rows = session.execute(
            select(Account.id, KommoWebhook.destination_base, KommoWebhook.attempts, KommoWebhook.token_enc)
            .outerjoin(KommoWebhook, KommoWebhook.account_id == Account.id)
            .where(Account.crm == CRM_KOMMO, Account.status == STATUS_ACTIVE)
        ).all()
    due = []
    current = _base(services.settings.public_url)
    for account_id, base, attempts, sealed in rows:
        if sealed is None:
            due.append(account_id)
            continue
        if base != current and (attempts or 0) < MAX_ATTEMPTS:
            due.append(account_id)
    return due


def sweep_subscriptions(database: Database, services: AppServices) -> list[int]:
    due = unsubscribed_accounts(database, services)
    for account_id in due:
        nudge_subscription(services.jobs, account_id)
    return due


# --- deliveries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookTarget:
    account_id: int
    kommo_account_id: str
    usable: bool


def target_of(session: Session, token: str) -> WebhookTarget | None:
    """The account a destination token belongs to, or None. Runs before the body is read."""
    if not token or len(token) > 200:
        return None
    digest = _hash(token)
    row = session.execute(
        select(KommoWebhook.token_hash, Account.id, Account.external_id, Account.status)
        .join(Account, Account.id == KommoWebhook.account_id)
        .where(KommoWebhook.token_hash == digest, Account.crm == CRM_KOMMO)
    ).first()
    if row is None or not hmac.compare_digest(row.token_hash.encode(), digest.encode()):
        return None
    usable = row.status in (STATUS_ACTIVE, STATUS_NEEDS_REAUTH)
    return WebhookTarget(int(row.id), str(row.external_id), usable)


def same_account(target: WebhookTarget, posted_account_id: str) -> bool:
    return hmac.compare_digest(target.kommo_account_id.encode(), posted_account_id.encode())


def record_webhook(database: Database, services: AppServices, target: WebhookTarget, hook: EntityWebhook) -> int:
    """Record every change of a verified delivery, then nudge the job that applies them."""
    rows = [
        (change.event, change.entity, change.entity_id, json.dumps(dict(change.fields), ensure_ascii=False))
        for change in hook.changes
    ]
    count = record_crm_events(database, target.account_id, rows, clock(services))
    if count:
        nudge_events(services.jobs, target.account_id)
    return count
