"""The admin pages inside the CRM iframe: "CRM integration" (per channel), "Advanced" (account-wide)
and "Channels", plus their JSON endpoints (save, presets, "Refresh CRM data", test message).

Every route is for CRM admins of the identity's own account: ids in URLs and forms are looked up
inside that account only, so another account's ids are "not found". Pages work without script
(forms post and re-render); ``static/settings.js`` turns them into XHR with JSON answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from werkzeug.datastructures import MultiDict

from widget.crm.errors import (
    CrmAuthError,
    CrmBadResponse,
    CrmError,
    CrmForbidden,
    CrmNotFound,
    CrmRateLimited,
    CrmUnavailable,
)
from widget.db import db
from widget.domain.crm import SyncReport
from widget.domain.settings import (
    PRESETS,
    ROLES,
    AdvancedSetup,
    ChannelSetup,
    Invalid,
    Problem,
    RoleChoice,
    merge_roles,
)
from widget.extensions import app_services
from widget.services.accounts import account_is_usable, get_account
from widget.services.channels import (
    ChannelNotFound,
    add_channel,
    list_channels,
    rename_channel,
    set_channel_enabled,
)
from widget.services.crm_sync import refresh_crm_data
from widget.services.settings import (
    ChannelTab,
    CrmData,
    TestMessageState,
    load_advanced_tab,
    load_channel_tab,
    load_crm_data,
    preview_preset,
    request_test_message,
    save_advanced,
    save_channel_setup,
)
from widget.web.context import get_db
from widget.web.errors import error_response, wants_json
from widget.web.identity import Identity, current_identity, require_admin
from widget.web.pages import surl

bp = Blueprint("settings", __name__)

# --- wording of problems --------------------------------------------------------------------------

# (field root, code) first, then the code alone. Field roots: "roles" covers "roles.<id>.role".
_MESSAGES: dict[tuple[str, str] | str, Any] = {
    ("transport", "invalid_choice"): _l("Choose WhatsApp, WABA, Telegram or Instagram."),
    ("name", "required"): _l("Give the channel a name."),
    ("address", "required"): _l("Enter the phone number or username."),
    ("address", "invalid_phone"): _l(
        "Enter the number in international format: + and the country code, for example +34 600 123 456."
    ),
    ("address", "invalid_telegram_handle"): _l(
        "Enter a Telegram username like @shop_support_bot (5 to 32 letters, digits or _), "
        "or the account's phone number starting with +."
    ),
    ("address", "invalid_instagram_handle"): _l(
        "Enter an Instagram username: up to 30 letters, digits, dots or underscores."
    ),
    ("address", "duplicate_address"): _l("This number or username is already connected as “%(name)s”."),
    ("address", "duplicate_disabled_address"): _l(
        "This number or username is already connected as “%(name)s”, which is disabled. Enable it instead."
    ),
    ("new_client_entity", "invalid_choice"): _l("Choose what to create for a new client."),
    ("new_client_entity", "leads_off_in_simple_crm"): _l(
        "Your Bitrix24 works in simple CRM mode, which has no leads. Choose a deal pipeline."
    ),
    ("pipeline", "required"): _l("Choose a pipeline."),
    ("pipeline", "no_pipelines"): _l("We have no pipelines from your CRM yet. Press “Refresh CRM data”."),
    ("pipeline", "unknown"): _l("This pipeline is not in your CRM. Press “Refresh CRM data” and choose again."),
    ("pipeline", "vanished"): _l(
        "This pipeline was removed from your CRM. Until you choose another one, new clients go to the "
        "main pipeline's first stage."
    ),
    ("stage", "required"): _l("Choose a stage."),
    ("stage", "unknown"): _l("This stage is not in the chosen pipeline."),
    ("stage", "vanished"): _l(
        "This stage was removed from your CRM. Until you choose another one, new clients go to the "
        "main pipeline's first stage."
    ),
    ("stage", "closed_stage"): _l("A new client cannot start in a closed stage. Choose an open one."),
    ("distribution", "invalid_choice"): _l("Choose how new clients are distributed."),
    ("distribution", "incoming_pairs_with_first_reply"): _l(
        "Kommo's “Incoming leads” stage pairs best with “First to answer”: the lead is accepted by "
        "whoever answers first."
    ),
    ("roles", "unknown_employee"): _l("This employee is not in your CRM. Press “Refresh CRM data”."),
    ("roles", "invalid_choice"): _l("Choose a role for %(name)s."),
    ("roles", "inactive_employee"): _l("%(name)s is inactive in the CRM and cannot be given a role."),
    ("roles", "qc_cannot_get_new_clients"): _l(
        "Quality control cannot write to clients, so %(name)s cannot get new clients."
    ),
    ("roles", "no_role_cannot_get_new_clients"): _l(
        "Give %(name)s the Sales rep or Head role first: only they can get new clients."
    ),
    ("roles", "nobody_sees_chats"): _l("Nobody has a role on this channel, so nobody will see its chats."),
    ("roles", "nobody_gets_new_clients"): _l(
        "Nobody gets new clients on this channel: new chats are shown to the heads as unanswered, and "
        "the fallback user from “Advanced” becomes responsible in the CRM."
    ),
    ("default_channel", "unknown"): _l("This channel is not in your account."),
    ("default_channel", "disabled_channel"): _l("This channel is disabled. Choose an enabled one."),
    ("fallback_employee", "unknown"): _l("This employee is not in your CRM."),
    ("fallback_employee", "inactive_employee"): _l("%(name)s is inactive in the CRM. Choose an active employee."),
    "required": _l("Please fill this in."),
    "too_long": _l("Please use at most %(max)s characters."),
    "invalid_choice": _l("Please choose one of the options."),
    "unknown": _l("This choice is not available. Reload the page and try again."),
}


def problem_message(p: Problem) -> str:
    root = p.field.split(".", 1)[0]
    template = _MESSAGES.get((root, p.code)) or _MESSAGES.get(p.code) or _l("Please check this field.")
    return str(template) % dict(p.params) if p.params else str(template)


def problems_by_field(problems: Iterable[Problem]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in problems:
        out.setdefault(p.field, problem_message(p))
    return out


def _problems_json(problems: Iterable[Problem]) -> list[dict[str, str]]:
    return [{"field": p.field, "code": p.code, "message": problem_message(p)} for p in problems]


def _invalid_json(problems: list[Problem]) -> tuple[Response, int]:
    body = {
        "ok": False,
        "error": "invalid",
        "message": _("Some fields need your attention."),
        "errors": problems_by_field(problems),
        "problems": _problems_json(problems),
    }
    return jsonify(body), 422


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


def _identity() -> Identity:
    ident = current_identity()
    assert ident is not None  # require_admin ran
    return ident


@bp.errorhandler(403)
def _refused(exc: Any) -> Any:
    """A signed-in employee who is not a CRM admin gets a polite page with the way to their chats."""
    ident = current_identity()
    if (
        ident is not None
        and not ident.is_admin
        and not wants_json()
        and account_is_usable(get_db(), ident.account_id)  # else the refusal is about the uninstall
    ):
        return render_template("pages/not_admin.html"), 403
    return error_response(403, getattr(exc, "description", "") or _("Access denied."))


# --- the CRM integration tab ------------------------------------------------------------------------


def setup_from_form(form: Mapping[str, str]) -> ChannelSetup:
    """``role-<employee id>`` (""/seller/head/qc) and the ``new-<employee id>`` checkbox.
    An employee without a ``role-`` field is not part of the submission (kept as stored)."""
    roles: dict[int, RoleChoice] = {}
    for key, value in form.items():
        if key.startswith("role-") and key[5:].isdigit():
            roles[int(key[5:])] = RoleChoice(value or None, form.get(f"new-{key[5:]}") == "1")
    return ChannelSetup(
        new_client_entity=form.get("new_client_entity", ""),
        pipeline_id=form.get("pipeline") or None,
        stage_id=form.get("stage") or None,
        distribution=form.get("distribution", ""),
        roles=roles,
    )


def setup_json(setup: ChannelSetup) -> dict[str, Any]:
    return {
        "new_client_entity": setup.new_client_entity,
        "pipeline": setup.pipeline_id,
        "stage": setup.stage_id,
        "distribution": setup.distribution,
        "roles": {
            str(i): {"role": c.role or "", "gets_new_clients": c.gets_new_clients}
            for i, c in sorted(setup.roles.items())
        },
    }


def crm_json(crm: CrmData, me_crm_user_id: str) -> dict[str, Any]:
    return {
        "crm": crm.account.crm,
        "crm_mode": crm.account.crm_mode,
        "employees": [
            {
                "id": e.id,
                "name": e.name,
                "is_active": e.is_active,
                "is_admin": e.is_admin,
                "is_me": e.crm_user_id == me_crm_user_id,
            }
            for e in crm.employees
        ],
        "pipelines": [
            {
                "entity": p.entity,
                "id": p.crm_pipeline_id,
                "name": p.name,
                "is_main": p.is_main,
                "is_active": p.is_active,
                "stages": [
                    {"id": s.crm_stage_id, "name": s.name, "kind": s.kind, "is_active": s.is_active} for s in p.stages
                ],
            }
            for p in crm.pipelines
        ],
    }


def test_message_json(state: TestMessageState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    ch = state.channel
    return {
        "requested": state.requested,
        "just_requested": state.just_requested,
        "channel": None
        if ch is None
        else {"id": ch.id, "name": ch.name, "transport": ch.transport, "address": ch.address},
    }


_NOTICES = {
    "saved": _l("Settings saved."),
    "unchanged": _l("Nothing to save: the settings are as you left them."),
    "refreshed": _l("CRM data refreshed."),
    "test": _l("The test message is on its way."),
    "added": _l("Channel added."),
    "renamed": _l("Channel renamed."),
    "disabled": _l("Channel disabled. Its settings are kept for when you enable it again."),
    "enabled": _l("Channel enabled."),
}


def _notice() -> str | None:
    key = request.args.get("notice", "")
    return str(_NOTICES[key]) if key in _NOTICES else None


def render_crm_tab(
    channel_id: int | None,
    *,
    submitted: ChannelSetup | None = None,
    problems: list[Problem] | None = None,
    warnings: list[Problem] | None = None,
    status: int = 200,
    unsaved: bool = False,
) -> tuple[str, int]:
    ident = _identity()
    try:
        tab = load_channel_tab(get_db(), ident.account_id, channel_id, ident.crm_user_id)
    except ChannelNotFound:
        return error_response(404, _("This channel is not in your account."))  # type: ignore[return-value]
    state = tab.setup
    if submitted is not None and state is not None:
        facts = tab.crm.facts()
        state = replace(submitted, roles=merge_roles(state.roles, submitted.roles, facts))
    first_save = request.args.get("first") == "1"
    page_data = {
        "channel_id": tab.channel.id if tab.channel else None,
        **crm_json(tab.crm, ident.crm_user_id),
        "urls": {
            "refresh": surl("settings.refresh"),
            "test_message": surl("settings.test_message"),
            "preset": surl("settings.preset", channel_id=tab.channel.id, key="__KEY__") if tab.channel else None,
            "tab": surl("settings.crm_tab"),
        },
        "i18n": _js_strings(),
        "open_test_dialog": first_save,
        "test_message": test_message_json(tab.test_message),
    }
    errors = problems_by_field(problems or [])
    html = render_template(
        "settings/crm_tab.html",
        account_status=tab.crm.account,
        summary=roles_summary(state, tab.crm),
        rows=role_rows(tab, state, errors) if state is not None else [],
        tab=tab,
        state=state,
        errors=errors,
        flags=problems_by_field(tab.flags),
        warnings=[problem_message(w) for w in warnings or []],
        notice=_notice(),
        unsaved=unsaved,
        first_save=first_save,
        page_data=page_data,
    )
    return html, status


@dataclass(frozen=True, slots=True)
class RoleRow:
    """One line of the roles dialog, ready to print: the template does no lookups per employee."""

    id: int
    name: str
    key: str  # lower-case name, for the filter
    role: str  # "", seller, head or qc (anything else a form sent is shown as "")
    gets: bool
    active: bool
    is_me: bool
    error: str


def role_rows(tab: ChannelTab, state: ChannelSetup, errors: Mapping[str, str]) -> list[RoleRow]:
    me = tab.me.id if tab.me else None
    rows = []
    for e in tab.crm.employees:
        choice = state.roles.get(e.id)
        role = choice.role if choice is not None and choice.role in ROLES else ""
        error = ""
        if errors:
            key = f"roles.{e.id}"
            error = errors.get(f"{key}.role") or errors.get(f"{key}.gets_new_clients") or errors.get(key) or ""
        rows.append(
            RoleRow(
                e.id,
                e.name,
                e.name.lower(),
                role,
                bool(choice and choice.gets_new_clients),
                e.is_active,
                e.id == me,
                error,
            )
        )
    return rows


def roles_summary(state: ChannelSetup | None, crm: CrmData) -> dict[str, int]:
    counts = {"seller": 0, "head": 0, "qc": 0, "new": 0}
    if state is None:
        return counts
    active = {e.id for e in crm.employees if e.is_active}
    for emp_id, choice in state.roles.items():
        if emp_id in active and choice.role in counts:
            counts[choice.role] += 1
            counts["new"] += int(choice.gets_new_clients)
    return counts


def _js_strings() -> dict[str, str]:
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
        "preset_applied": _("Example applied. Check the roles, then press Save."),
    }


@bp.get("/app/settings")
@require_admin
def crm_tab() -> Any:
    return render_crm_tab(request.args.get("channel", type=int))


@bp.post("/app/settings/channels/<int:channel_id>")
@require_admin
def save_channel(channel_id: int) -> Any:
    ident = _identity()
    submitted = setup_from_form(request.form)
    try:
        outcome = save_channel_setup(db, ident.account_id, channel_id, submitted, ident.crm_user_id)
    except ChannelNotFound:
        return error_response(404, _("This channel is not in your account."))
    except Invalid as exc:
        if wants_json():
            return _invalid_json(exc.problems)
        return render_crm_tab(channel_id, submitted=submitted, problems=exc.problems, status=422, unsaved=True)
    if wants_json():
        return jsonify(
            ok=True,
            changed=outcome.changed,
            first_save=outcome.first_save,
            saved_at=outcome.saved_at.isoformat() if outcome.saved_at else None,
            message=_("Settings saved.") if outcome.changed else str(_NOTICES["unchanged"]),
            warnings=_problems_json(outcome.warnings),
            test_message=test_message_json(outcome.test_message),
        )
    extra = {"first": "1"} if outcome.first_save else {}
    notice = "saved" if outcome.changed else "unchanged"
    return redirect(surl("settings.crm_tab", channel=channel_id, notice=notice, **extra))


@bp.post("/app/settings/channels/<int:channel_id>/preset/<key>")
@require_admin
def preset(channel_id: int, key: str) -> Any:
    """An example setup applied to the unsaved form sent along; nothing is stored."""
    ident = _identity()
    if key not in PRESETS:
        return error_response(404, _("There is no such example setup."))
    submitted = setup_from_form(request.form)
    try:
        result = preview_preset(get_db(), ident.account_id, channel_id, key, submitted, ident.crm_user_id)
    except ChannelNotFound:
        return error_response(404, _("This channel is not in your account."))
    if wants_json():
        return jsonify(
            ok=True,
            preset=key,
            setup=setup_json(result),
            message=_("Example applied. Check the roles, then press Save."),
        )
    return render_crm_tab(channel_id, submitted=result, unsaved=True)


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


@bp.post("/app/settings/refresh")
@require_admin
def refresh() -> Any:
    """ "Refresh CRM data": re-read employees, pipelines and stages, answer with the new lists so
    the page merges them into its unsaved state."""
    ident = _identity()
    services = app_services()
    refresher = services.overrides.get("refresh_crm_data", refresh_crm_data)
    try:
        report: SyncReport = refresher(db, services, ident.account_id)
    except CrmError as exc:
        current_app.logger.warning("refresh of account %s failed: %r", ident.account_id, exc)
        message = crm_error_message(exc)
        if wants_json():
            return jsonify(ok=False, error="crm_error", message=message), 502
        return error_response(502, message)
    session = get_db()
    session.rollback()  # end this request's read snapshot: the refresh committed in its own session
    if not wants_json():
        channel = request.form.get("channel", type=int)
        return redirect(surl("settings.crm_tab", channel=channel, notice="refreshed"))
    crm = load_crm_data(session, ident.account_id)
    return jsonify(
        ok=True,
        report=report.as_dict(),
        changes=sync_summary(report),
        synced_at=crm.account.synced_at.isoformat() if crm.account.synced_at else None,
        **crm_json(crm, ident.crm_user_id),
    )


@bp.post("/app/settings/test-message")
@require_admin
def test_message() -> Any:
    """Ask for the test message (once per account) when the first save found no channel for it."""
    ident = _identity()
    state = request_test_message(db, ident.account_id, ident.crm_user_id)
    if wants_json():
        return jsonify(ok=state.requested, test_message=test_message_json(state))
    return redirect(surl("settings.crm_tab", notice="test" if state.requested else None))


# --- the Advanced tab -----------------------------------------------------------------------------------


def _optional_int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def render_advanced(
    submitted: AdvancedSetup | None = None, problems: list[Problem] | None = None, status: int = 200
) -> tuple[str, int]:
    ident = _identity()
    tab = load_advanced_tab(get_db(), ident.account_id)
    html = render_template(
        "settings/advanced.html",
        account_status=tab.crm.account,
        tab=tab,
        state=submitted or tab.setup,
        errors=problems_by_field(problems or []),
        flags=problems_by_field(tab.flags) if submitted is None else {},
        notice=_notice(),
    )
    return html, status


@bp.get("/app/settings/advanced")
@require_admin
def advanced() -> Any:
    return render_advanced()


@bp.post("/app/settings/advanced")
@require_admin
def save_advanced_view() -> Any:
    ident = _identity()
    form = request.form
    submitted = AdvancedSetup(
        default_channel_id=_optional_int(form.get("default_channel")),
        notify_heads_all=form.get("notify_heads_all") == "1",
        fallback_employee_id=_optional_int(form.get("fallback_employee")),
    )
    try:
        changed = save_advanced(db, ident.account_id, submitted)
    except Invalid as exc:
        if wants_json():
            return _invalid_json(exc.problems)
        return render_advanced(submitted, exc.problems, 422)
    notice = "saved" if changed else "unchanged"
    if wants_json():
        return jsonify(ok=True, changed=changed, message=str(_NOTICES[notice]))
    return redirect(surl("settings.advanced", notice=notice))


# --- Channels -------------------------------------------------------------------------------------------


def render_channels(
    *,
    add_form: Mapping[str, str] | None = None,
    add_errors: Mapping[str, str] | None = None,
    rename: tuple[int, str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    ident = _identity()
    html = render_template(
        "settings/channels.html",
        account_status=get_account(get_db(), ident.account_id),
        channels=list_channels(get_db(), ident.account_id),
        add_form=add_form or MultiDict(),
        add_errors=add_errors or {},
        rename=rename,
        notice=_notice(),
    )
    return html, status


def _channel_json(ch: Any) -> dict[str, Any]:
    return {"id": ch.id, "transport": ch.transport, "name": ch.name, "address": ch.address, "is_enabled": ch.is_enabled}


@bp.get("/app/channels")
@require_admin
def channels() -> Any:
    return render_channels()


@bp.post("/app/channels")
@require_admin
def add_channel_view() -> Any:
    ident = _identity()
    form = request.form
    try:
        ch = add_channel(db, ident.account_id, form.get("transport", ""), form.get("name", ""), form.get("address", ""))
    except Invalid as exc:
        if wants_json():
            return _invalid_json(exc.problems)
        return render_channels(add_form=form, add_errors=problems_by_field(exc.problems), status=422)
    if wants_json():
        return jsonify(ok=True, channel=_channel_json(ch)), 201
    return redirect(surl("settings.channels", notice="added"))


@bp.post("/app/channels/<int:channel_id>/rename")
@require_admin
def rename_channel_view(channel_id: int) -> Any:
    ident = _identity()
    name = request.form.get("name", "")
    try:
        ch = rename_channel(db, ident.account_id, channel_id, name)
    except ChannelNotFound:
        return error_response(404, _("This channel is not in your account."))
    except Invalid as exc:
        if wants_json():
            return _invalid_json(exc.problems)
        return render_channels(rename=(channel_id, name, problems_by_field(exc.problems)["name"]), status=422)
    if wants_json():
        return jsonify(ok=True, channel=_channel_json(ch))
    return redirect(surl("settings.channels", notice="renamed"))


def _switch(channel_id: int, enabled: bool) -> Any:
    ident = _identity()
    try:
        ch = set_channel_enabled(db, ident.account_id, channel_id, enabled)
    except ChannelNotFound:
        return error_response(404, _("This channel is not in your account."))
    if wants_json():
        return jsonify(ok=True, channel=_channel_json(ch))
    return redirect(surl("settings.channels", notice="enabled" if enabled else "disabled"))


@bp.post("/app/channels/<int:channel_id>/disable")
@require_admin
def disable_channel(channel_id: int) -> Any:
    return _switch(channel_id, False)


@bp.post("/app/channels/<int:channel_id>/enable")
@require_admin
def enable_channel(channel_id: int) -> Any:
    return _switch(channel_id, True)
