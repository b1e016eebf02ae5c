"""Who has which role on a channel, and who an example setup would move from which role to which:
what the "CRM integration" tab shows next to "Select roles" and asks before an example is applied.
Pure: the web layer words it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from widget.domain.roles import HEAD, QC, SELLER
from widget.domain.settings import NO_ROLE, EmployeeLike, RoleChoice

# The summary's groups, in the order the page lists them; NEW_CLIENTS is "Gets new clients" on.
NEW_CLIENTS = "new"
ROSTER_GROUPS = (SELLER, HEAD, QC, NEW_CLIENTS)


def role_roster(roles: Mapping[int, RoleChoice], employees: Sequence[EmployeeLike]) -> dict[str, list[str]]:
    """Names per role (and of those who get new clients), in the employees' order. Inactive
    employees keep their stored role but take no part, so they are left out."""
    roster: dict[str, list[str]] = {group: [] for group in ROSTER_GROUPS}
    for emp in employees:
        choice = roles.get(emp.id, NO_ROLE)
        if not emp.is_active or choice.role not in roster:
            continue
        roster[str(choice.role)].append(emp.name)
        if choice.gets_new_clients:
            roster[NEW_CLIENTS].append(emp.name)
    return roster


@dataclass(frozen=True)
class RoleMove:
    """Employees a change moves from one role (and "Gets new clients") to another."""

    before: RoleChoice
    after: RoleChoice
    employee_ids: tuple[int, ...]
    names: tuple[str, ...]


def role_moves(
    before: Mapping[int, RoleChoice], after: Mapping[int, RoleChoice], employees: Sequence[EmployeeLike]
) -> list[RoleMove]:
    """Every employee whose role or "Gets new clients" differs between ``before`` and ``after``,
    grouped by move; moves in the order their first employee comes, names in the employees' order."""
    groups: dict[tuple[RoleChoice, RoleChoice], list[EmployeeLike]] = {}
    for emp in employees:
        old, new = before.get(emp.id, NO_ROLE), after.get(emp.id, NO_ROLE)
        if old != new:
            groups.setdefault((old, new), []).append(emp)
    return [
        RoleMove(old, new, tuple(e.id for e in members), tuple(e.name for e in members))
        for (old, new), members in groups.items()
    ]
