"""The "CRM integration" tab: load, validate, save and preview presets of one channel's setup (the
"Advanced" tab is in ``advanced``, the CRM data every tab shows in ``crm_mirror``, the test message
a first save asks for in ``trial_request``).

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
from widget.models import AccountSettings, Channel, ChannelRole, ChannelSettings
from widget.models._base import utcnow
from widget.services.channels.manage import ChannelNotFound, ChannelView, list_channels, lock_account_settings
from widget.services.conversations.distribution.redistribution import redistribute_open_chats, watch_eligibility
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.crm_data.snapshot import EmployeeView
from widget.services.outbox import nudge
from widget.services.settings.crm_mirror import CrmData, load_crm_data
from widget.services.settings.trial_request import TestMessageState, record_trial_request, trial_request_state

_roles: Table = ChannelRole.__table__  # type: ignore[assignment]  # Core executemany, not ORM bulk


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
        test_message=trial_request_state(session, account_id, channels),
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
            test_message = record_trial_request(session, account_id, acc_settings, by_crm_user_id, now, lang)
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
