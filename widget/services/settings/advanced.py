"""The "Advanced" tab (account-wide): the default channel, whether heads are told of every chat,
and the fallback responsible user. A save that changes nothing writes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from widget.db import Database
from widget.domain.problems import Invalid, Problem
from widget.domain.settings import AdvancedSetup, check_advanced
from widget.models import AccountSettings
from widget.services.channels.manage import ChannelView, list_channels, lock_account_settings
from widget.services.conversations.list_stamps import note_chat_list_change
from widget.services.crm_data.snapshot import EmployeeView
from widget.services.settings.crm_mirror import CrmData, load_crm_data, load_employees


@dataclass(frozen=True)
class AdvancedTab:
    crm: CrmData
    channels: list[ChannelView]
    setup: AdvancedSetup
    installer: EmployeeView | None  # the default fallback responsible
    flags: list[Problem]  # stored choices that are no longer valid (channel disabled, user gone)


def load_advanced_tab(session: Session, account_id: int) -> AdvancedTab:
    crm = load_crm_data(session, account_id)
    channels = list_channels(session, account_id)
    row = session.get(AccountSettings, account_id)
    setup = (
        AdvancedSetup(row.default_channel_id, row.notify_heads_all, row.fallback_employee_id)
        if row is not None
        else AdvancedSetup(None, False, None)
    )
    facts = crm.facts()
    return AdvancedTab(
        crm=crm,
        channels=channels,
        setup=setup,
        installer=crm.employee_by_crm_user(crm.account.installed_by_crm_user_id),
        flags=check_advanced(setup, channels, facts.employees),
    )


def save_advanced(database: Database, account_id: int, submitted: AdvancedSetup) -> bool:
    """Store the account-wide options; returns whether anything changed."""
    with database.transaction() as session:
        row = lock_account_settings(session, account_id)
        channels = list_channels(session, account_id)
        employees = {e.id: e for e in load_employees(session, account_id)}
        problems = check_advanced(submitted, channels, employees)
        if problems:
            raise Invalid(problems)
        values = {
            "default_channel_id": submitted.default_channel_id,
            "notify_heads_all": submitted.notify_heads_all,
            "fallback_employee_id": submitted.fallback_employee_id,
        }
        changed = any(getattr(row, k) != v for k, v in values.items())
        if changed:
            note_chat_list_change(session, account_id)  # "notify heads" colours the counters
            for k, v in values.items():
                setattr(row, k, v)
        return changed
