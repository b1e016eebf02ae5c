"""The "CRM integration" tab: load, validate, save, presets, test message; and the read of the
mirrored CRM data that every settings page shows (the "Advanced" tab is in ``advanced_settings``).

Loads are a fixed handful of bulk queries whatever the number of employees or channels, and a
save writes with one executemany per kind of change, so the page stays fast on large teams. A save
that changes nothing writes nothing (``updated_at`` stays as it was).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from widget.db import Database
from widget.domain.channels import pick_test_message_channel
from widget.domain.ports import JobQueue
from widget.domain.problems import Invalid, Problem
from widget.domain.role_roster import RoleMove, role_moves
from widget.domain.settings import (
    ChannelSetup,
    CrmFacts,
    RoleChoice,
    apply_preset,
    check_setup,
    check_target,
    default_setup,
    merge_roles,
    plan_roles,
    setup_warnings,
)
from widget.models import Account, AccountSettings, Channel, ChannelRole, ChannelSettings, Employee, Pipeline, Stage
from widget.models._base import utcnow
from widget.models.trial_messages import TestMessageRequest
from widget.services.channels.manage import ChannelNotFound, ChannelView, list_channels, lock_account_settings
from widget.services.conversations.distribution import redistribute_open_chats, watch_eligibility
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.crm_data.snapshot import EmployeeView, PipelineView, StageView
from widget.services.outbox import nudge

_roles: Table = ChannelRole.__table__  # type: ignore[assignment]  # Core executemany, not ORM bulk


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


def _stored_roles(session: Session, account_id: int, channel_id: int) -> dict[int, RoleChoice]:
    rows = session.execute(
        select(ChannelRole.employee_id, ChannelRole.role, ChannelRole.gets_new_clients).where(
            ChannelRole.account_id == account_id, ChannelRole.channel_id == channel_id
        )
    )
    return {r.employee_id: RoleChoice(r.role, bool(r.gets_new_clients)) for r in rows}


def _stored_settings(session: Session, account_id: int, channel_id: int) -> ChannelSettings | None:
    return session.execute(
        select(ChannelSettings).where(
            ChannelSettings.channel_id == channel_id, ChannelSettings.account_id == account_id
        )
    ).scalar_one_or_none()


def _setup_of(row: ChannelSettings | None, roles: dict[int, RoleChoice], facts: CrmFacts) -> ChannelSetup:
    if row is None:
        return replace(default_setup(facts), roles=roles)
    return ChannelSetup(row.new_client_entity, row.crm_pipeline_id, row.crm_stage_id, row.distribution, roles)


# --- the test message ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TestMessageState:
    """What the test-message dialog says: asked now or before (and where), or why not."""

    __test__ = False

    requested: bool  # a request exists (made now or earlier)
    just_requested: bool
    channel: ChannelView | None
    requested_at: datetime | None = None


def _test_message_state(session: Session, account_id: int, channels: list[ChannelView]) -> TestMessageState:
    row = session.execute(
        select(TestMessageRequest.channel_id, TestMessageRequest.requested_at).where(
            TestMessageRequest.account_id == account_id
        )
    ).one_or_none()
    if row is None:
        return TestMessageState(False, False, pick_test_message_channel(channels))
    return TestMessageState(True, False, next((c for c in channels if c.id == row.channel_id), None), row.requested_at)


def _record_test_message(
    session: Session, account_id: int, acc_settings: AccountSettings, by_crm_user_id: str, now: datetime, lang: str
) -> TestMessageState:
    """Once per account: the first WhatsApp, WABA or Telegram channel gets the test client's
    message (product.md §4), written in ``lang``, the language of the admin's page. The
    conversations work picks up the pending request and sends it."""
    channels = list_channels(session, account_id)
    state = _test_message_state(session, account_id, channels)
    if state.requested or state.channel is None:
        return state
    session.add(
        TestMessageRequest(
            account_id=account_id,
            channel_id=state.channel.id,
            requested_by_crm_user_id=by_crm_user_id,
            requested_at=now,
            lang=lang,
        )
    )
    acc_settings.test_message_requested_at = now
    return TestMessageState(True, True, state.channel, now)


def request_test_message(
    database: Database, account_id: int, by_crm_user_id: str, *, lang: str = ""
) -> TestMessageState:
    """The "send the test message" button for an account that had no suitable channel at its
    first save. Asking twice records one request."""
    with database.transaction() as session:
        acc_settings = lock_account_settings(session, account_id)
        return _record_test_message(session, account_id, acc_settings, by_crm_user_id, utcnow(), lang)


# --- the CRM integration tab ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelTab:
    crm: CrmData
    channels: list[ChannelView]
    channel: ChannelView | None  # None: the account has no channel yet
    setup: ChannelSetup | None  # stored, or the defaults for a channel never saved
    saved: bool  # this channel's settings were saved at least once
    flags: list[Problem]  # stored choices the CRM no longer has (vanished pipeline/stage)
    me: EmployeeView | None  # the admin looking at the page, as a CRM employee
    first_saved: bool  # the account saved the tab at least once
    test_message: TestMessageState


def load_channel_tab(session: Session, account_id: int, channel_id: int | None, viewer_crm_user_id: str) -> ChannelTab:
    """Everything the tab shows for one channel (the first one when none is given)."""
    crm = load_crm_data(session, account_id)
    channels = list_channels(session, account_id)
    if channel_id is not None:
        channel = next((c for c in channels if c.id == channel_id), None)
        if channel is None:
            raise ChannelNotFound(channel_id)
    else:
        channel = next((c for c in channels if c.is_enabled), channels[0] if channels else None)
    acc_settings = session.get(AccountSettings, account_id)
    setup: ChannelSetup | None = None
    row: ChannelSettings | None = None
    flags: list[Problem] = []
    if channel is not None:
        row = _stored_settings(session, account_id, channel.id)
        facts = crm.facts()
        setup = _setup_of(row, _stored_roles(session, account_id, channel.id), facts)
        if row is not None:
            flags = check_target(facts, setup.new_client_entity, setup.pipeline_id, setup.stage_id)
    return ChannelTab(
        crm=crm,
        channels=channels,
        channel=channel,
        setup=setup,
        saved=row is not None,
        flags=flags,
        me=crm.employee_by_crm_user(viewer_crm_user_id),
        first_saved=acc_settings is not None and acc_settings.first_saved_at is not None,
        test_message=_test_message_state(session, account_id, channels),
    )


@dataclass(frozen=True)
class SaveOutcome:
    changed: bool
    first_save: bool
    saved_at: datetime | None
    warnings: list[Problem]
    test_message: TestMessageState | None  # set on the first save of the account


def save_channel_setup(
    database: Database,
    account_id: int,
    channel_id: int,
    submitted: ChannelSetup,
    by_crm_user_id: str,
    *,
    jobs: JobQueue,
    lang: str = "",
) -> SaveOutcome:
    """Validate everything together (``Invalid`` lists every problem) and store what changed.
    ``lang``: the admin's page language, for the test message a first save asks for.

    ``submitted.roles`` may be partial: employees it does not mention keep their roles."""
    with database.transaction() as session:
        acc_settings = lock_account_settings(session, account_id)  # one save at a time per account
        note_chat_list_change(session, account_id)  # roles decide who sees which chat
        if not _channel_exists(session, account_id, channel_id):
            raise ChannelNotFound(channel_id)
        crm = load_crm_data(session, account_id)
        facts = crm.facts()
        stored_roles = _stored_roles(session, account_id, channel_id)
        problems = check_setup(submitted, facts, stored_roles)
        if problems:
            raise Invalid(problems)
        wanted = merge_roles(stored_roles, submitted.roles, facts)
        plan = plan_roles(stored_roles, wanted)
        eligibility = watch_eligibility(session, account_id, [channel_id])
        if plan.insert:
            session.execute(
                insert(_roles),
                [
                    {
                        "account_id": account_id,
                        "channel_id": channel_id,
                        "employee_id": emp_id,
                        "role": c.role,
                        "gets_new_clients": c.gets_new_clients,
                        "assigned_count": 0,
                    }
                    for emp_id, c in plan.insert.items()
                ],
            )
        if plan.update:
            session.execute(
                update(_roles)
                .where(
                    _roles.c.account_id == account_id,
                    _roles.c.channel_id == channel_id,
                    _roles.c.employee_id == bindparam("b_employee"),
                )
                .values(role=bindparam("b_role"), gets_new_clients=bindparam("b_new")),
                [{"b_employee": i, "b_role": c.role, "b_new": c.gets_new_clients} for i, c in plan.update.items()],
            )
        now = utcnow()
        row = _stored_settings(session, account_id, channel_id)
        values = {
            "new_client_entity": submitted.new_client_entity,
            "crm_pipeline_id": submitted.pipeline_id or None,
            "crm_stage_id": submitted.stage_id or None,
            "distribution": submitted.distribution,
        }
        if row is None:
            row = ChannelSettings(account_id=account_id, channel_id=channel_id, saved_at=now, **values)
            session.add(row)
            changed = True
        else:
            differs = any(getattr(row, k) != v for k, v in values.items())
            if differs:
                for k, v in values.items():
                    setattr(row, k, v)
            if differs or plan.changed:
                row.saved_at = now
            changed = differs or plan.changed
        first = acc_settings.first_saved_at is None
        test_message = None
        if first:
            acc_settings.first_saved_at = now
            test_message = _record_test_message(session, account_id, acc_settings, by_crm_user_id, now, lang)
        warnings = setup_warnings(submitted, facts, wanted)
        session.flush()
        # Open offers and unanswered new chats follow who is eligible now (product.md §3).
        follow_ups = redistribute_open_chats(session, eligibility, now)
        outcome = SaveOutcome(changed, first, row.saved_at, warnings, test_message)
    nudge(jobs, follow_ups)
    return outcome


def _channel_exists(session: Session, account_id: int, channel_id: int) -> bool:
    found = session.execute(
        select(Channel.id).where(Channel.id == channel_id, Channel.account_id == account_id)
    ).first()
    return found is not None


@dataclass(frozen=True)
class PresetPreview:
    """An example setup applied to the unsaved form, and what it changes there; nothing stored."""

    setup: ChannelSetup
    moves: list[RoleMove]  # who it moves from which role to which
    distribution_before: str


def preview_preset(
    session: Session, account_id: int, channel_id: int, key: str, submitted: ChannelSetup, viewer_crm_user_id: str
) -> PresetPreview:
    """The example applied over the form as the admin left it (employees the form does not
    mention count with their stored roles), so the page can show what it would overwrite."""
    if not _channel_exists(session, account_id, channel_id):
        raise ChannelNotFound(channel_id)
    crm = load_crm_data(session, account_id)
    me = crm.employee_by_crm_user(viewer_crm_user_id)
    before = replace(
        submitted, roles=merge_roles(_stored_roles(session, account_id, channel_id), submitted.roles, crm.facts())
    )
    after = apply_preset(key, before, crm.employees, me.id if me else None)
    return PresetPreview(after, role_moves(before.roles, after.roles, crm.employees), submitted.distribution)
