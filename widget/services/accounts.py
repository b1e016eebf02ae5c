"""Reading and changing the life cycle of installed accounts."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from widget.models import Account, AccountToken
from widget.models._base import utcnow
from widget.models.accounts import (
    STATUS_ACTIVE,
    STATUS_NEEDS_REAUTH,
    STATUS_UNINSTALLED,
)


def get_account(session: Session, account_id: int) -> Account | None:
    return session.get(Account, account_id)


def find_account(session: Session, crm: str, external_id: str) -> Account | None:
    return session.execute(
        select(Account).where(Account.crm == crm, Account.external_id == str(external_id))
    ).scalar_one_or_none()


def account_is_usable(session: Session, account_id: int) -> bool:
    status = session.execute(select(Account.status).where(Account.id == account_id)).scalar_one_or_none()
    return status in (STATUS_ACTIVE, STATUS_NEEDS_REAUTH)


def mark_needs_reauth(session: Session, account_id: int, reason: str) -> None:
    account = session.get(Account, account_id)
    if account is not None and account.status != STATUS_UNINSTALLED:
        account.status = STATUS_NEEDS_REAUTH
        account.status_reason = reason[:500]


def mark_uninstalled(session: Session, account: Account, now: datetime | None = None) -> None:
    """Tokens are deleted at once; settings stay for the grace period so a reinstall restores them."""
    from widget.services.intake import forget_keys_after_commit

    forget_keys_after_commit(session)  # the gateway's deliveries for it are refused from now on
    session.execute(delete(AccountToken).where(AccountToken.account_id == account.id))
    account.status = STATUS_UNINSTALLED
    account.status_reason = "uninstalled from the CRM"
    account.uninstalled_at = now or utcnow()
    account.application_token_enc = None


def within_grace(account: Account, grace_days: int, now: datetime | None = None) -> bool:
    if account.uninstalled_at is None:
        return True
    return (now or utcnow()) - account.uninstalled_at <= timedelta(days=grace_days)


def purge_expired_uninstalls(session: Session, grace_days: int, now: datetime | None = None) -> int:
    """Delete accounts whose grace period is over (their settings go with them, by cascade)."""
    limit = (now or utcnow()) - timedelta(days=grace_days)
    ids = (
        session.execute(select(Account.id).where(Account.status == STATUS_UNINSTALLED, Account.uninstalled_at < limit))
        .scalars()
        .all()
    )
    for account_id in ids:
        account = session.get(Account, account_id)
        if account is not None:
            session.delete(account)
    return len(ids)
