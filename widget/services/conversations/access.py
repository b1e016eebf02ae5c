"""What the chat panel tells an employee who can see no chat at all because no channel gives them a
role: the truth, and who can change it — the account's CRM administrators, by name."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from widget.domain.roles import capabilities
from widget.domain.visibility import Viewer
from widget.models import Employee


@dataclass(frozen=True)
class PanelAccess:
    has_role: bool  # some channel lets them see chats
    admins: list[str]  # the account's active CRM administrators but them, by name (only without a role)


def panel_access(session: Session, account_id: int, viewer: Viewer) -> PanelAccess:
    """Whether the viewer has a role that shows chats; if not, who can give them one (one query,
    only then)."""
    if any(capabilities(role).sees_anything for role in viewer.roles.values()):
        return PanelAccess(True, [])
    admins = session.execute(
        select(Employee.name)
        .where(
            Employee.account_id == account_id,
            Employee.is_admin.is_(True),
            Employee.is_active.is_(True),
            Employee.in_crm.is_(True),
            Employee.id != viewer.employee_id,
        )
        .order_by(Employee.name, Employee.id)
    ).scalars()
    return PanelAccess(False, [name for name in admins if name])
