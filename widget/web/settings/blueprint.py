"""The blueprint of the admin pages and what all of its routes share: the admin looking at them,
the polite refusal for other employees, and "not found" for a channel outside the account."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from flask_babel import gettext as _

from widget.services.accounts.state import account_is_usable
from widget.services.channels.manage import ChannelNotFound
from widget.web.context import get_db
from widget.web.errors import error_response, wants_json
from widget.web.identity import Identity, current_identity

bp = Blueprint("settings", __name__)


def current_admin() -> Identity:
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


@bp.errorhandler(ChannelNotFound)
def _channel_not_found(exc: ChannelNotFound) -> Any:
    """Ids are looked up inside the identity's account only: another account's channel (or a
    channel that never was) is "not found" on every route of these pages, never "forbidden"."""
    return error_response(404, _("This channel is not in your account."))
