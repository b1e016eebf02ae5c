"""Where the reading of the CRM's employees and pipelines stands, for the pages that wait for it.

Right after an install the CRM's data is read by a background job, so the first open of the
settings (or of Bitrix24's app page) can come before it. Those pages then say that it is being
read (``_partials/crm_read.html``), and ``static/crm_read.js`` polls ``GET /app/settings/crm-data``
until it is there, fills the lists, and stops; a failed read is said in words, with the way to
"Refresh CRM data".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import jsonify, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from widget.domain.settings import BITRIX24
from widget.services.crm_data.refresh import READ_DONE, READ_FAILED, CrmReadState, crm_read_state
from widget.services.settings.crm_mirror import load_crm_data
from widget.web.context import get_db
from widget.web.identity import require_admin
from widget.web.settings.blueprint import bp, current_admin
from widget.web.settings.payloads import crm_json
from widget.web.settings.wording import crm_error_message


def crm_name(crm: str) -> str:
    return "Bitrix24" if crm == BITRIX24 else "Kommo"


def read_message(read: CrmReadState, crm: str) -> str:
    name = crm_name(crm)
    if read.state == READ_DONE:
        return _("Employees and pipelines were read from %(crm)s.", crm=name)
    if read.state == READ_FAILED and read.failure is not None:
        reason = crm_error_message(read.failure(""))
        return " ".join(
            (
                _("%(crm)s did not give us its employees and pipelines: %(reason)s", crm=name, reason=reason),
                _("We try again by ourselves; you can also press “Refresh CRM data”."),
            )
        )
    return _("Reading employees and pipelines from %(crm)s…", crm=name)


@dataclass(frozen=True)
class CrmReadView:
    """What ``_partials/crm_read.html`` shows; ``None`` from ``crm_read_view`` once data is read."""

    state: str
    message: str
    url: str


def crm_read_view(account_id: int, crm: str) -> CrmReadView | None:
    read = crm_read_state(get_db(), account_id)
    if read.state == READ_DONE:
        return None
    return CrmReadView(read.state, read_message(read, crm), url_for("settings.crm_read"))


@bp.get("/app/settings/crm-data")
@require_admin
def crm_read() -> Any:
    """``state`` (loading, failed, ready) and ``message`` to show; once ready, the lists as
    "Refresh CRM data" answers them, and ``summary`` ("12 employees · 3 pipelines")."""
    ident = current_admin()
    session = get_db()
    read = crm_read_state(session, ident.account_id)
    crm = load_crm_data(session, ident.account_id)
    body: dict[str, Any] = {
        "state": read.state,
        "message": read_message(read, crm.account.crm),
        "synced_at": read.synced_at.isoformat() if read.synced_at else None,
    }
    if read.state == READ_DONE:
        body.update(crm_json(crm, ident.crm_user_id))
        body["summary"] = " · ".join(
            (
                ngettext("%(num)d employee", "%(num)d employees", len(crm.employees)),
                ngettext("%(num)d pipeline", "%(num)d pipelines", len(crm.pipelines)),
            )
        )
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response
