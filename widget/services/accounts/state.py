"""Reading and changing the life cycle of installed accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, String, and_, bindparam, delete, select
from sqlalchemy.orm import Session

from widget.models import Account, AccountToken, Employee
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


@dataclass(frozen=True)
class SessionStanding:
    """What a page session is checked against on every request: the account's state and the
    employee's rights now, as our database knows them."""

    usable: bool
    account_epoch: int
    employee_known: bool  # False: not synced yet (a user added in the CRM since the last refresh)
    employee_active: bool
    employee_admin: bool
    employee_epoch: int


# Built once: this runs before every page and API call (the chat panel's two-second poll included),
# so only the parameters change from one call to the next.
_STANDING = (
    select(
        Account.status,
        Account.session_epoch,
        Employee.id,
        Employee.is_active,
        Employee.in_crm,
        Employee.is_admin,
        Employee.session_epoch,
    )
    .select_from(Account)
    .outerjoin(
        Employee,
        and_(Employee.account_id == Account.id, Employee.crm_user_id == bindparam("crm_user_id", type_=String)),
    )
    .where(Account.id == bindparam("account_id", type_=Integer))
)


def session_standing(session: Session, account_id: int, crm_user_id: str) -> SessionStanding | None:
    """One indexed statement; None when the account is gone."""
    row = session.execute(_STANDING, {"account_id": account_id, "crm_user_id": crm_user_id}).first()
    if row is None:
        return None
    known = row[2] is not None
    return SessionStanding(
        usable=row.status in (STATUS_ACTIVE, STATUS_NEEDS_REAUTH),
        account_epoch=int(row[1] or 0),
        employee_known=known,
        employee_active=bool(row.is_active and row.in_crm) if known else True,
        employee_admin=bool(row.is_admin) if known else True,
        employee_epoch=int(row[6] or 0) if known else 0,
    )


def revoke_sessions(account: Account) -> None:
    """End every page session of the account (they carry the old epoch)."""
    account.session_epoch = (account.session_epoch or 0) + 1


def set_employee_rights(employee: Employee, *, is_admin: bool, is_active: bool, in_crm: bool) -> None:
    """Apply what the CRM says of an employee; a change of right or activity ends their sessions."""
    before = (bool(employee.is_admin), bool(employee.is_active), bool(employee.in_crm))
    employee.is_admin, employee.is_active, employee.in_crm = is_admin, is_active, in_crm
    if employee.id is not None and before != (is_admin, is_active, in_crm):
        employee.session_epoch = (employee.session_epoch or 0) + 1


def mark_uninstalled(session: Session, account: Account, now: datetime | None = None) -> None:
    """Tokens are deleted at once; settings stay for the grace period so a reinstall restores them."""
    from widget.services.channels.signing import forget_keys_after_commit

    forget_keys_after_commit(session)  # the gateway's deliveries for it are refused from now on
    session.execute(delete(AccountToken).where(AccountToken.account_id == account.id))
    account.status = STATUS_UNINSTALLED
    revoke_sessions(account)  # no page session outlives the uninstall, even across a reinstall
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
