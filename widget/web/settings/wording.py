"""What the admin pages say, in the reader's language: the problems the rules found (codes from
``widget.domain.settings``), CRM failures, the notices after a redirect, the strings of
``static/settings.js`` and the summary of a "Refresh CRM data"."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from widget.crm.errors import (
    CrmAuthError,
    CrmBadResponse,
    CrmError,
    CrmForbidden,
    CrmNotFound,
    CrmRateLimited,
    CrmUnavailable,
)
from widget.domain.crm import SyncReport
from widget.domain.distribution import FIRST_REPLY, ROUND_ROBIN
from widget.domain.problems import Problem
from widget.domain.role_roster import NEW_CLIENTS, RoleMove
from widget.domain.roles import HEAD, QC, SELLER
from widget.domain.settings import RoleChoice

# --- problems ---------------------------------------------------------------------------------------

# By field root first ("roles" covers "roles.<id>.role"), then by the code alone.
_BY_FIELD: dict[str, dict[str, Any]] = {
    "transport": {"invalid_choice": _l("Choose WhatsApp, WABA, Telegram or Instagram.")},
    "channels": {
        "too_many": _l(
            "This account already has %(max)s channels, the most one account can have. Enable a disabled "
            "channel instead, or ask support to raise the limit."
        )
    },
    "name": {"required": _l("Give the channel a name.")},
    "address": {
        "required": _l("Enter the phone number or username."),
        "invalid_phone": _l(
            "Enter the number in international format: + and the country code, for example +34 600 123 456."
        ),
        "invalid_telegram_handle": _l(
            "Enter a Telegram username like @shop_support_bot (5 to 32 letters, digits or _), "
            "or the account's phone number starting with +."
        ),
        "invalid_instagram_handle": _l("Enter an Instagram username: up to 30 letters, digits, dots or underscores."),
        "duplicate_address": _l("This number or username is already connected as “%(name)s”."),
        "duplicate_disabled_address": _l(
            "This number or username is already connected as “%(name)s”, which is disabled. Enable it instead."
        ),
    },
    "new_client_entity": {
        "invalid_choice": _l("Choose what to create for a new client."),
        "leads_off_in_simple_crm": _l(
            "Your Bitrix24 works in simple CRM mode, which has no leads. Choose a deal pipeline."
        ),
    },
    "pipeline": {
        "required": _l("Choose a pipeline."),
        "no_pipelines": _l("We have no pipelines from your CRM yet. Press “Refresh CRM data”."),
        "unknown": _l("This pipeline is not in your CRM. Press “Refresh CRM data” and choose again."),
        "vanished": _l(
            "This pipeline was removed from your CRM. Until you choose another one, new clients go to the "
            "main pipeline's first stage."
        ),
    },
    "stage": {
        "required": _l("Choose a stage."),
        "unknown": _l("This stage is not in the chosen pipeline."),
        "vanished": _l(
            "This stage was removed from your CRM. Until you choose another one, new clients go to the "
            "main pipeline's first stage."
        ),
        "closed_stage": _l("A new client cannot start in a closed stage. Choose an open one."),
    },
    "distribution": {
        "invalid_choice": _l("Choose how new clients are distributed."),
        "incoming_pairs_with_first_reply": _l(
            "Kommo's “Incoming leads” stage pairs best with “First to answer”: the lead is accepted by "
            "whoever answers first."
        ),
    },
    "roles": {
        "unknown_employee": _l("This employee is not in your CRM. Press “Refresh CRM data”."),
        "invalid_choice": _l("Choose a role for %(name)s."),
        "inactive_employee": _l("%(name)s is inactive in the CRM and cannot be given a role."),
        "qc_cannot_get_new_clients": _l("Quality control cannot write to clients, so %(name)s cannot get new clients."),
        "no_role_cannot_get_new_clients": _l(
            "Give %(name)s the Sales rep or Head role first: only they can get new clients."
        ),
        "nobody_sees_chats": _l("Nobody has a role on this channel, so nobody will see its chats."),
        "nobody_gets_new_clients": _l(
            "Nobody gets new clients on this channel: new chats are shown to the heads as unanswered, and "
            "the fallback user from “Advanced” becomes responsible in the CRM."
        ),
    },
    "default_channel": {
        "unknown": _l("This channel is not in your account."),
        "disabled_channel": _l("This channel is disabled. Choose an enabled one."),
    },
    "fallback_employee": {
        "unknown": _l("This employee is not in your CRM."),
        "inactive_employee": _l("%(name)s is inactive in the CRM. Choose an active employee."),
    },
}
_BY_CODE: dict[str, Any] = {
    "required": _l("Please fill this in."),
    "too_long": _l("Please use at most %(max)s characters."),
    "invalid_choice": _l("Please choose one of the options."),
    "unknown": _l("This choice is not available. Reload the page and try again."),
}


def problem_message(p: Problem) -> str:
    root = p.field.split(".", 1)[0]
    template = _BY_FIELD.get(root, {}).get(p.code) or _BY_CODE.get(p.code) or _l("Please check this field.")
    return str(template) % dict(p.params) if p.params else str(template)


def problems_by_field(problems: Iterable[Problem]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in problems:
        out.setdefault(p.field, problem_message(p))
    return out


# --- CRM failures -----------------------------------------------------------------------------------

_CRM_ERRORS: tuple[tuple[type[CrmError], Any], ...] = (
    (CrmRateLimited, _l("The CRM is limiting our requests right now. Please try again in a minute.")),
    (CrmAuthError, _l("The CRM no longer accepts our authorization. Please reinstall or reauthorize the integration.")),
    (CrmForbidden, _l("The CRM refused: the user who installed the integration lacks the rights for this.")),
    (CrmUnavailable, _l("The CRM is not reachable at the moment. Please try again in a few minutes.")),
    (CrmNotFound, _l("The CRM could not find the requested record.")),
    (CrmBadResponse, _l("The CRM answered in an unexpected way. Please try again later.")),
    (CrmError, _l("The CRM did not answer as expected. Please try again later.")),
)


def crm_error_message(exc: CrmError) -> str:
    """The error in the reader's language; a CRM-specific wording of a subclass is kept as is."""
    for cls, message in _CRM_ERRORS:
        if isinstance(exc, cls):
            return str(message) if exc.user_message == cls.user_message else exc.user_message
    return exc.user_message


# --- notices and the page script's strings ------------------------------------------------------------

NOTICES = {
    "saved": _l("Settings saved."),
    "unchanged": _l("Nothing to save: the settings are as you left them."),
    "refreshed": _l("CRM data refreshed."),
    "test": _l("The test message is on its way."),
    "added": _l("Channel added."),
    "renamed": _l("Channel renamed."),
    "disabled": _l("Channel disabled. Its settings are kept for when you enable it again."),
    "enabled": _l("Channel enabled."),
    "rotated": _l("New gateway secret created. Enter it in the gateway before the old one stops working (see below)."),
    "rotated_now": _l("New gateway secret created. The old one no longer works: enter the new one in the gateway now."),
}


def redirect_notice() -> str | None:
    """The notice a redirect asked for with ``?notice=<key>`` (unknown keys say nothing)."""
    key = request.args.get("notice", "")
    return str(NOTICES[key]) if key in NOTICES else None


def js_strings() -> dict[str, Any]:
    return {
        "saving": _("Saving…"),
        "saved": _("Settings saved."),
        "unchanged": _("Nothing to save: the settings are as you left them."),
        "fix": _("Some fields need your attention."),
        "failed": _("We could not reach our server. Check your connection and try again."),
        "refreshing": _("Reading employees and pipelines from your CRM…"),
        "unsaved": _("You have unsaved changes. Leave without saving?"),
        "inactive": _("inactive"),
        "you": _("you"),
        "removed": _("removed from the CRM"),
        "no_role": _("No role"),
        "seller": _("Sales rep"),
        "head": _("Head"),
        "qc": _("Quality control"),
        "choose": _("Choose…"),
        "summary_none": _("Nobody has a role yet."),
        "summary": _("Sales reps: %(seller)s · Heads: %(head)s · Quality control: %(qc)s · Get new clients: %(new)s"),
        "shown": _("Showing %(shown)s of %(total)s"),
        "preset_applied": _("Example applied to the form, not saved yet. Check the roles, then press Save."),
        "preset_unchanged": _("The roles already match this example: nothing to change."),
        "preset_title": _("Apply the example “%(name)s”?"),
        "roster": {group: str(label) for group, label in ROSTER_LABELS.items()},
        "more": _("+%(num)s more"),
        "distribution": _("Distribution"),
    }


# --- who has which role, and what an example changes ---------------------------------------------------

ROSTER_LABELS = {
    SELLER: _l("Sales reps"),
    HEAD: _l("Heads"),
    QC: _l("Quality control"),
    NEW_CLIENTS: _l("Get new clients"),
}
# Names shown in a group of the roles summary before "+N more".
ROSTER_SHOWN = 5

_ROLE_LABELS = {None: _l("No role"), SELLER: _l("Sales rep"), HEAD: _l("Head"), QC: _l("Quality control")}
_DISTRIBUTIONS = {FIRST_REPLY: _l("First to answer"), ROUND_ROBIN: _l("In turn")}


def choice_label(choice: RoleChoice) -> str:
    """A role as the roles dialog names it, and whether the employee gets new clients."""
    role = str(_ROLE_LABELS.get(choice.role, _ROLE_LABELS[None]))
    return _("%(role)s, gets new clients", role=role) if choice.gets_new_clients else role


def preset_changes(moves: Iterable[RoleMove], distribution_before: str, distribution_after: str) -> dict[str, Any]:
    """What applying an example would change in the form, in the reader's language (names are data:
    the page shows them as text)."""
    changes: dict[str, Any] = {
        "roles": [
            {
                "from": choice_label(m.before),
                "to": choice_label(m.after),
                "ids": list(m.employee_ids),
                "names": list(m.names),
            }
            for m in moves
        ],
        "distribution": None,
    }
    if distribution_before != distribution_after:
        changes["distribution"] = {
            "from": str(_DISTRIBUTIONS.get(distribution_before, _l("not chosen"))),
            "to": str(_DISTRIBUTIONS.get(distribution_after, distribution_after)),
        }
    return changes


# --- what a refresh changed ---------------------------------------------------------------------------


def sync_summary(report: SyncReport) -> list[dict[str, str]]:
    """What a refresh changed, in sentences (names are data: the page shows them as text)."""

    def names(items: list[str]) -> str:
        shown = ", ".join(items[:10])
        if len(items) > 10:
            shown += " " + _("and %(num)s more", num=len(items) - 10)
        return shown

    lines: list[dict[str, str]] = []
    if report.added:
        n = len(report.added)
        text = ngettext(
            "%(num)d new employee: %(names)s", "%(num)d new employees: %(names)s", n, names=names(report.added)
        )
        lines.append({"kind": "added", "text": text})
    if report.deactivated:
        text = ngettext(
            "%(num)d employee is no longer active in the CRM: %(names)s",
            "%(num)d employees are no longer active in the CRM: %(names)s",
            len(report.deactivated),
            names=names(report.deactivated),
        )
        lines.append({"kind": "deactivated", "text": text})
    if report.reactivated:
        text = ngettext(
            "%(num)d employee is active again: %(names)s",
            "%(num)d employees are active again: %(names)s",
            len(report.reactivated),
            names=names(report.reactivated),
        )
        lines.append({"kind": "reactivated", "text": text})
    if report.pipelines_added:
        n = len(report.pipelines_added)
        text = ngettext("New pipeline: %(names)s", "New pipelines: %(names)s", n, names=names(report.pipelines_added))
        lines.append({"kind": "pipelines_added", "text": text})
    if report.pipelines_removed:
        text = ngettext(
            "Pipeline removed from the CRM: %(names)s",
            "Pipelines removed from the CRM: %(names)s",
            len(report.pipelines_removed),
            names=names(report.pipelines_removed),
        )
        lines.append({"kind": "pipelines_removed", "text": text})
    if not lines:
        lines.append({"kind": "none", "text": _("Everything is up to date: nothing changed in the CRM.")})
    return lines
