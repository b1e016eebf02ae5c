"""The "Channels" page: the account's messenger numbers and usernames, added, renamed, disabled
and enabled again (a disabled channel keeps its settings). A channel id outside the account is
answered by the blueprint's "not found"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import jsonify, redirect, render_template, request
from werkzeug.datastructures import MultiDict

from widget.domain.problems import Invalid
from widget.extensions import app_services
from widget.services.accounts.state import get_account
from widget.services.channels.manage import ChannelView, add_channel, list_channels, rename_channel, set_channel_enabled
from widget.services.channels.sandbox_gateway import nudge_sandbox_gateway
from widget.services.unit_of_work import database
from widget.web.context import get_db
from widget.web.errors import wants_json
from widget.web.identity import require_admin
from widget.web.settings.blueprint import bp, current_admin
from widget.web.settings.gateway_tab import current_gateway
from widget.web.settings.payloads import channel_json, invalid_json
from widget.web.settings.wording import problems_by_field, redirect_notice
from widget.web.urls import surl


def render_channels(
    *,
    add_form: Mapping[str, str] | None = None,
    add_errors: Mapping[str, str] | None = None,
    rename: tuple[int, str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    ident = current_admin()
    html = render_template(
        "settings/channels.html",
        account_status=get_account(get_db(), ident.account_id),
        channels=list_channels(get_db(), ident.account_id),
        add_form=add_form or MultiDict(),
        add_errors=add_errors or {},
        rename=rename,
        notice=redirect_notice(),
        gateway=current_gateway(),
    )
    return html, status


def _changed(ch: ChannelView, notice: str, status: int = 200) -> Any:
    """A change went through: the channel for the page script, else the list again with a notice."""
    nudge_sandbox_gateway(app_services(), current_admin().account_id)
    if wants_json():
        return jsonify(ok=True, channel=channel_json(ch)), status
    return redirect(surl("settings.channels", notice=notice))


@bp.get("/app/channels")
@require_admin
def channels() -> Any:
    return render_channels()


@bp.post("/app/channels")
@require_admin
def add_channel_view() -> Any:
    ident = current_admin()
    form = request.form
    try:
        ch = add_channel(
            database(),
            ident.account_id,
            form.get("transport", ""),
            form.get("name", ""),
            form.get("address", ""),
            limit=app_services().settings.max_channels,
        )
    except Invalid as exc:
        if wants_json():
            return invalid_json(exc.problems)
        return render_channels(add_form=form, add_errors=problems_by_field(exc.problems), status=422)
    return _changed(ch, "added", 201)


@bp.post("/app/channels/<int:channel_id>/rename")
@require_admin
def rename_channel_view(channel_id: int) -> Any:
    ident = current_admin()
    name = request.form.get("name", "")
    try:
        ch = rename_channel(database(), ident.account_id, channel_id, name)
    except Invalid as exc:
        if wants_json():
            return invalid_json(exc.problems)
        return render_channels(rename=(channel_id, name, problems_by_field(exc.problems)["name"]), status=422)
    return _changed(ch, "renamed")


def _switch(channel_id: int, enabled: bool) -> Any:
    ch = set_channel_enabled(database(), current_admin().account_id, channel_id, enabled)
    return _changed(ch, "enabled" if enabled else "disabled")


@bp.post("/app/channels/<int:channel_id>/disable")
@require_admin
def disable_channel(channel_id: int) -> Any:
    return _switch(channel_id, False)


@bp.post("/app/channels/<int:channel_id>/enable")
@require_admin
def enable_channel(channel_id: int) -> Any:
    return _switch(channel_id, True)
