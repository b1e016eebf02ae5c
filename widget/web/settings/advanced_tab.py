"""The "Advanced" tab: the account-wide options (default channel, heads notified of every chat,
the fallback responsible user)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, redirect, render_template, request

from widget.domain.problems import Invalid, Problem
from widget.domain.settings import AdvancedSetup
from widget.services.settings.advanced import load_advanced_tab, save_advanced
from widget.services.unit_of_work import database
from widget.web.context import get_db
from widget.web.errors import wants_json
from widget.web.identity import require_admin
from widget.web.settings.blueprint import bp, current_admin
from widget.web.settings.payloads import advanced_from_form, invalid_json
from widget.web.settings.wording import NOTICES, problems_by_field, redirect_notice
from widget.web.urls import surl


def render_advanced(
    submitted: AdvancedSetup | None = None, problems: list[Problem] | None = None, status: int = 200
) -> tuple[str, int]:
    ident = current_admin()
    tab = load_advanced_tab(get_db(), ident.account_id)
    html = render_template(
        "settings/advanced.html",
        account_status=tab.crm.account,
        tab=tab,
        state=submitted or tab.setup,
        errors=problems_by_field(problems or []),
        flags=problems_by_field(tab.flags) if submitted is None else {},
        notice=redirect_notice(),
    )
    return html, status


@bp.get("/app/settings/advanced")
@require_admin
def advanced() -> Any:
    return render_advanced()


@bp.post("/app/settings/advanced")
@require_admin
def save_advanced_view() -> Any:
    ident = current_admin()
    submitted = advanced_from_form(request.form)
    try:
        changed = save_advanced(database(), ident.account_id, submitted)
    except Invalid as exc:
        if wants_json():
            return invalid_json(exc.problems)
        return render_advanced(submitted, exc.problems, 422)
    notice = "saved" if changed else "unchanged"
    if wants_json():
        return jsonify(ok=True, changed=changed, message=str(NOTICES[notice]))
    return redirect(surl("settings.advanced", notice=notice))
