"""The "CRM integration" tab of one channel: where a new client's lead or deal goes, how new
clients are distributed, and the employees' roles; with its example setups, "Refresh CRM data"
and the test message of the first save. A channel id outside the account is answered by the
blueprint's "not found"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from flask import current_app, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from widget.crm.errors import CrmError
from widget.domain.crm import SyncReport
from widget.domain.problems import Invalid, Problem
from widget.domain.role_roster import role_roster
from widget.domain.settings import PRESETS, ROLES, ChannelSetup, merge_roles
from widget.extensions import app_services
from widget.services.channels.manage import ChannelNotFound
from widget.services.settings.crm_mirror import load_crm_data
from widget.services.settings.integration import ChannelTab, load_channel_tab, preview_preset, save_channel_setup
from widget.services.settings.trial_message import nudge_test_message
from widget.services.settings.trial_request import request_test_message
from widget.services.unit_of_work import database, reread
from widget.web.context import get_db
from widget.web.errors import error_response, wants_json
from widget.web.identity import require_admin
from widget.web.settings.blueprint import bp, current_admin
from widget.web.settings.crm_read import crm_read_view
from widget.web.settings.payloads import (
    crm_json,
    invalid_json,
    problems_json,
    setup_from_form,
    setup_json,
    test_message_json,
)
from widget.web.settings.wording import (
    NOTICES,
    ROSTER_LABELS,
    ROSTER_SHOWN,
    crm_error_message,
    js_strings,
    preset_changes,
    problem_message,
    problems_by_field,
    redirect_notice,
    sync_summary,
)
from widget.web.urls import surl


def render_crm_tab(
    channel_id: int | None,
    *,
    submitted: ChannelSetup | None = None,
    problems: list[Problem] | None = None,
    warnings: list[Problem] | None = None,
    status: int = 200,
    unsaved: bool = False,
    preset: dict[str, Any] | None = None,
) -> tuple[str, int]:
    ident = current_admin()
    try:
        tab = load_channel_tab(get_db(), ident.account_id, channel_id, ident.crm_user_id)
    except ChannelNotFound:  # caught here too: ``/app`` (another blueprint) renders this tab for admins
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
            # XHR carries the session token in a header, and the page script adds the current one
            # to the tab's address: none of these addresses holds a token.
            "refresh": url_for("settings.refresh"),
            "test_message": url_for("settings.test_message"),
            "preset": url_for("settings.preset", channel_id=tab.channel.id, key="__KEY__") if tab.channel else None,
            "tab": url_for("settings.crm_tab"),
        },
        "i18n": js_strings(),
        "open_test_dialog": first_save,
        "test_message": test_message_json(tab.test_message),
    }
    errors = problems_by_field(problems or [])
    html = render_template(
        "settings/crm_tab.html",
        account_status=tab.crm.account,
        roster=role_roster(state.roles, tab.crm.employees) if state is not None else {},
        roster_labels=ROSTER_LABELS,
        roster_shown=ROSTER_SHOWN,
        preset=preset,
        rows=role_rows(tab, state, errors) if state is not None else [],
        tab=tab,
        state=state,
        errors=errors,
        flags=problems_by_field(tab.flags),
        warnings=[problem_message(w) for w in warnings or []],
        notice=redirect_notice(),
        unsaved=unsaved,
        first_save=first_save,
        page_data=page_data,
        crm_read=crm_read_view(ident.account_id, tab.crm.account.crm),
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


@bp.get("/app/settings")
@require_admin
def crm_tab() -> Any:
    return render_crm_tab(request.args.get("channel", type=int))


@bp.post("/app/settings/channels/<int:channel_id>")
@require_admin
def save_channel(channel_id: int) -> Any:
    ident = current_admin()
    submitted = setup_from_form(request.form)
    try:
        outcome = save_channel_setup(
            database(),
            ident.account_id,
            channel_id,
            submitted,
            ident.crm_user_id,
            jobs=app_services().jobs,
            lang=str(get_locale()),
        )
    except Invalid as exc:
        if wants_json():
            return invalid_json(exc.problems)
        return render_crm_tab(channel_id, submitted=submitted, problems=exc.problems, status=422, unsaved=True)
    _send_test_message_if_new(ident.account_id, outcome.test_message)
    if wants_json():
        return jsonify(
            ok=True,
            changed=outcome.changed,
            first_save=outcome.first_save,
            saved_at=outcome.saved_at.isoformat() if outcome.saved_at else None,
            message=_("Settings saved.") if outcome.changed else str(NOTICES["unchanged"]),
            warnings=problems_json(outcome.warnings),
            test_message=test_message_json(outcome.test_message),
        )
    extra = {"first": "1"} if outcome.first_save else {}
    notice = "saved" if outcome.changed else "unchanged"
    return redirect(surl("settings.crm_tab", channel=channel_id, notice=notice, **extra))


@bp.post("/app/settings/channels/<int:channel_id>/preset/<key>")
@require_admin
def preset(channel_id: int, key: str) -> Any:
    """An example setup applied to the unsaved form sent along, with who it moves from which role
    to which (the page asks before it fills the form in); nothing is stored."""
    ident = current_admin()
    if key not in PRESETS:
        return error_response(404, _("There is no such example setup."))
    submitted = setup_from_form(request.form)
    preview = preview_preset(get_db(), ident.account_id, channel_id, key, submitted, ident.crm_user_id)
    changes = preset_changes(preview.moves, preview.distribution_before, preview.setup.distribution)
    if wants_json():
        return jsonify(
            ok=True,
            preset=key,
            setup=setup_json(preview.setup),
            changes=changes,
            message=_("Example applied to the form, not saved yet. Check the roles, then press Save."),
        )
    # Without script the page cannot ask first: it shows the example in the form, unsaved, and
    # says what it changed; Save keeps it, leaving the page drops it.
    return render_crm_tab(channel_id, submitted=preview.setup, unsaved=True, preset=changes)


@bp.post("/app/settings/refresh")
@require_admin
def refresh() -> Any:
    """ "Refresh CRM data": re-read employees, pipelines and stages, answer with the new lists so
    the page merges them into its unsaved state."""
    ident = current_admin()
    services = app_services()
    try:
        report: SyncReport = services.refresh_crm_data(database(), services, ident.account_id)
    except CrmError as exc:
        current_app.logger.warning("refresh of account %s failed: %r", ident.account_id, exc)
        message = crm_error_message(exc)
        if wants_json():
            return jsonify(ok=False, error="crm_error", message=message), 502
        return error_response(502, message)
    session = get_db()
    reread(session)  # the refresh committed in its own session
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
    ident = current_admin()
    state = request_test_message(database(), ident.account_id, ident.crm_user_id, lang=str(get_locale()))
    _send_test_message_if_new(ident.account_id, state)
    if wants_json():
        return jsonify(ok=state.requested, test_message=test_message_json(state))
    return redirect(surl("settings.crm_tab", notice="test" if state.requested else None))


def _send_test_message_if_new(account_id: int, state: Any) -> None:
    """The request is recorded; send it now rather than when "Go to chats" opens the panel or the
    sweep comes round, so "Later" still gets the test client writing within seconds."""
    if state is not None and state.just_requested:
        nudge_test_message(app_services().jobs, account_id)
