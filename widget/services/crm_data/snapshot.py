"""Applying a CRM snapshot ("Refresh CRM data") and reading the mirrored data back."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from widget.db import lock_for_update
from widget.domain.crm import CrmSnapshot, SyncReport
from widget.models import Account, Employee, Pipeline, Stage
from widget.models._base import utcnow
from widget.services.accounts.state import set_employee_rights
from widget.services.conversations.list_stamps import note_chat_list_change


def apply_snapshot(session: Session, account_id: int, snap: CrmSnapshot) -> SyncReport:
    """Upsert employees, pipelines and stages. Users and pipelines missing from the snapshot are
    marked inactive, never deleted: their roles and the settings that point at them survive."""
    from widget.services.conversations.distribution.redistribution import redistribute_open_chats, watch_eligibility

    # Two refreshes of one account at once (the install's and the admin's, or two job workers) take
    # turns: otherwise both would insert the same new employee and the second would fail.
    lock_for_update(session, Account, id=account_id)
    now = utcnow()
    report = SyncReport()
    eligibility = watch_eligibility(session, account_id)
    note_chat_list_change(session, account_id)  # names, activity: what the chat panel shows and to whom

    existing = {
        e.crm_user_id: e for e in session.execute(select(Employee).where(Employee.account_id == account_id)).scalars()
    }
    seen: set[str] = set()
    for user in snap.users:
        seen.add(user.crm_user_id)
        emp = existing.get(user.crm_user_id)
        if emp is None:
            emp = Employee(account_id=account_id, crm_user_id=user.crm_user_id)
            session.add(emp)
            report.added.append(user.name)
        else:
            if emp.name != user.name and emp.name:
                report.renamed.append(user.name)
            was_active = emp.is_active and emp.in_crm
            if was_active and not user.is_active:
                report.deactivated.append(user.name)
            elif not was_active and user.is_active:
                report.reactivated.append(user.name)
        emp.name = user.name
        emp.email = user.email
        set_employee_rights(emp, is_admin=user.is_admin, is_active=user.is_active, in_crm=True)
        emp.lang = user.lang
        emp.synced_at = now
    for crm_id, emp in existing.items():
        if crm_id not in seen and emp.in_crm:
            if emp.is_active:
                report.deactivated.append(emp.name)
            set_employee_rights(emp, is_admin=bool(emp.is_admin), is_active=False, in_crm=False)
            emp.synced_at = now

    pipes = {
        (p.entity, p.crm_pipeline_id): p
        for p in session.execute(select(Pipeline).where(Pipeline.account_id == account_id)).scalars()
    }
    stages_by_pipe: dict[int, dict[str, Stage]] = {}
    for st in session.execute(select(Stage).where(Stage.account_id == account_id)).scalars():
        stages_by_pipe.setdefault(st.pipeline_id, {})[st.crm_stage_id] = st
    seen_pipes: set[tuple[str, str]] = set()
    for cp in snap.pipelines:
        key = (cp.entity, cp.crm_pipeline_id)
        seen_pipes.add(key)
        pipe = pipes.get(key)
        if pipe is None:
            pipe = Pipeline(account_id=account_id, entity=cp.entity, crm_pipeline_id=cp.crm_pipeline_id)
            session.add(pipe)
            session.flush()
            report.pipelines_added.append(cp.name)
        elif not pipe.is_active:
            report.pipelines_added.append(cp.name)
        pipe.name, pipe.sort, pipe.is_main, pipe.is_active, pipe.synced_at = (
            cp.name,
            cp.sort,
            cp.is_main,
            True,
            now,
        )
        known = stages_by_pipe.get(pipe.id, {})
        seen_stages: set[str] = set()
        for cs in cp.stages:
            seen_stages.add(cs.crm_stage_id)
            stage = known.get(cs.crm_stage_id)
            if stage is None:
                stage = Stage(account_id=account_id, pipeline_id=pipe.id, crm_stage_id=cs.crm_stage_id)
                session.add(stage)
            stage.name, stage.sort, stage.kind, stage.is_active = cs.name, cs.sort, cs.kind, True
        for crm_stage_id, stage in known.items():
            if crm_stage_id not in seen_stages:
                stage.is_active = False
    for key, pipe in pipes.items():
        if key not in seen_pipes and pipe.is_active:
            pipe.is_active = False
            report.pipelines_removed.append(pipe.name)
            for stage in stages_by_pipe.get(pipe.id, {}).values():
                stage.is_active = False

    account = session.get(Account, account_id)
    if account is not None:
        account.synced_at = now
        account.sync_failure = account.sync_failed_at = None
        if snap.crm_mode:
            account.crm_mode = snap.crm_mode
    session.flush()
    # A user who turned inactive or left the CRM no longer holds open offers or unanswered new
    # chats; the CRM follow-ups this records are run by the outbox sweep.
    redistribute_open_chats(session, eligibility, now)
    return report


@dataclass(frozen=True)
class StageView:
    crm_stage_id: str
    name: str
    kind: str
    is_active: bool


@dataclass(frozen=True)
class PipelineView:
    entity: str
    crm_pipeline_id: str
    name: str
    is_main: bool
    is_active: bool
    stages: tuple[StageView, ...]


@dataclass(frozen=True)
class EmployeeView:
    id: int
    crm_user_id: str
    name: str
    email: str
    is_active: bool
    is_admin: bool


@dataclass(frozen=True)
class CrmOverview:
    account: Account
    employees: tuple[EmployeeView, ...]
    pipelines: tuple[PipelineView, ...]


def load_crm_overview(session: Session, account_id: int) -> CrmOverview:
    """Everything the settings page shows of the CRM, in three queries whatever the sizes."""
    account = session.get(Account, account_id)
    if account is None:
        raise LookupError(account_id)
    emps = session.execute(
        select(Employee).where(Employee.account_id == account_id).order_by(Employee.name, Employee.id)
    ).scalars()
    pipes = (
        session.execute(
            select(Pipeline)
            .where(Pipeline.account_id == account_id)
            .order_by(Pipeline.entity, Pipeline.sort, Pipeline.id)
        )
        .scalars()
        .all()
    )
    stages: dict[int, list[StageView]] = {}
    for st in session.execute(
        select(Stage).where(Stage.account_id == account_id).order_by(Stage.sort, Stage.id)
    ).scalars():
        stages.setdefault(st.pipeline_id, []).append(StageView(st.crm_stage_id, st.name, st.kind, st.is_active))
    return CrmOverview(
        account=account,
        employees=tuple(
            EmployeeView(e.id, e.crm_user_id, e.name, e.email, e.is_active and e.in_crm, e.is_admin) for e in emps
        ),
        pipelines=tuple(
            PipelineView(p.entity, p.crm_pipeline_id, p.name, p.is_main, p.is_active, tuple(stages.get(p.id, ())))
            for p in pipes
        ),
    )
