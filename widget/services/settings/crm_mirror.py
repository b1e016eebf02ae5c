"""The account and its mirrored CRM data (employees, pipelines and their stages) as every settings
page shows them: a fixed handful of column queries whatever the number of employees (no ORM
objects: 1,000 employees are read as plain rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from widget.domain.settings import CrmFacts
from widget.models import Account, Employee, Pipeline, Stage
from widget.services.crm_data.snapshot import EmployeeView, PipelineView, StageView


@dataclass(frozen=True)
class AccountInfo:
    id: int
    crm: str
    crm_mode: str
    name: str
    domain: str
    installed_by_crm_user_id: str | None
    synced_at: datetime | None
    status: str  # widget.models.accounts STATUS_* (the page warns when re-authorization is needed)


@dataclass(frozen=True)
class CrmData:
    account: AccountInfo
    employees: tuple[EmployeeView, ...]  # by name
    pipelines: tuple[PipelineView, ...]

    def facts(self) -> CrmFacts:
        return CrmFacts(
            crm=self.account.crm,
            crm_mode=self.account.crm_mode,
            employees={e.id: e for e in self.employees},
            pipelines=self.pipelines,
        )

    def employee_by_crm_user(self, crm_user_id: str | None) -> EmployeeView | None:
        if not crm_user_id:
            return None
        return next((e for e in self.employees if e.crm_user_id == crm_user_id), None)


def load_employees(session: Session, account_id: int) -> list[EmployeeView]:
    """The account's employees as plain rows; one who left the CRM counts as inactive."""
    return [
        EmployeeView(r.id, r.crm_user_id, r.name, r.email, r.is_active and r.in_crm, r.is_admin)
        for r in session.execute(
            select(
                Employee.id,
                Employee.crm_user_id,
                Employee.name,
                Employee.email,
                Employee.is_active,
                Employee.in_crm,
                Employee.is_admin,
            ).where(Employee.account_id == account_id)
        )
    ]


def load_crm_data(session: Session, account_id: int) -> CrmData:
    """The account and its mirrored CRM data in four column queries (no ORM objects: 1,000
    employees are read as plain rows)."""
    acc = session.execute(
        select(
            Account.id,
            Account.crm,
            Account.crm_mode,
            Account.name,
            Account.domain,
            Account.installed_by_crm_user_id,
            Account.synced_at,
            Account.status,
        ).where(Account.id == account_id)
    ).one_or_none()
    if acc is None:
        raise LookupError(account_id)
    employees = load_employees(session, account_id)
    employees.sort(key=lambda e: (e.name.casefold(), e.id))
    stages: dict[int, list[tuple[int, int, StageView]]] = {}
    for r in session.execute(
        select(
            Stage.id, Stage.pipeline_id, Stage.crm_stage_id, Stage.name, Stage.kind, Stage.is_active, Stage.sort
        ).where(Stage.account_id == account_id)
    ):
        stages.setdefault(r.pipeline_id, []).append(
            (r.sort, r.id, StageView(r.crm_stage_id, r.name, r.kind, r.is_active))
        )
    pipes = list(
        session.execute(
            select(
                Pipeline.id,
                Pipeline.entity,
                Pipeline.crm_pipeline_id,
                Pipeline.name,
                Pipeline.is_main,
                Pipeline.is_active,
                Pipeline.sort,
            ).where(Pipeline.account_id == account_id)
        )
    )
    pipes.sort(key=lambda p: (p.entity, not p.is_main, p.sort, p.id))
    return CrmData(
        account=AccountInfo(
            acc.id, acc.crm, acc.crm_mode, acc.name, acc.domain, acc.installed_by_crm_user_id, acc.synced_at, acc.status
        ),
        employees=tuple(employees),
        pipelines=tuple(
            PipelineView(
                p.entity,
                p.crm_pipeline_id,
                p.name,
                p.is_main,
                p.is_active,
                tuple(s for _, _, s in sorted(stages.get(p.id, []), key=lambda t: (t[0], t[1]))),
            )
            for p in pipes
        ),
    )
