"""The CRM shell: a page that looks and behaves enough like Kommo to click through our integration.

Who you are is a query parameter (``?account=<host>&user=<id>``) kept on every link, so several
browser tabs can be different users at once and no cookie is involved. What the widget's script.js
does inside Kommo -- obtain a one-time JWT, POST it to our ``/kommo/session``, frame the returned URL
in ``#work-area-wazzup`` -- is done by ``static/shell.js``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from flask import Blueprint, abort, current_app, render_template, request, url_for

from sandbox.kommo.records import LOST_STATUS_ID, WON_STATUS_ID, Account, User
from sandbox.kommo.state import Delivery, KommoSandbox

bp = Blueprint("kommo_shell", __name__, url_prefix="/shell")

WIDGET_CODE = "wazzup"
WIDGET_NAME = "Wazzup"


def sandbox() -> KommoSandbox:
    return current_app.extensions["kommo_sandbox"]


@dataclass
class Viewer:
    """The account shown and the user looking at it."""

    account: Account
    user: User

    def url(self, endpoint: str, **values: Any) -> str:
        values.setdefault("account", self.account.host)
        values.setdefault("user", self.user.id)
        return url_for(endpoint, **values)


def _viewer() -> Viewer:
    sb = sandbox()
    if not sb.accounts:
        abort(404, description="The sandbox has no account; add one with POST /_sandbox/accounts.")
    host = request.values.get("account") or ("demo.kommo.test" if "demo.kommo.test" in sb.accounts else "")
    acct = sb.accounts.get(host) or next(iter(sb.accounts.values()))
    raw_user = request.values.get("user", "")
    user = acct.users.get(int(raw_user)) if raw_user.isdigit() else None
    return Viewer(acct, user or acct.owner())


def _page(template: str, viewer: Viewer, active: str, **context: Any) -> str:
    sb = sandbox()
    return render_template(
        f"kommo_shell/{template}",
        v=viewer,
        acct=viewer.account,
        me=viewer.user,
        active=active,
        accounts=list(sb.accounts.values()),
        users=list(viewer.account.users.values()),
        installed=viewer.account.widget_installed,
        widget_code=WIDGET_CODE,
        widget_name=WIDGET_NAME,
        widget_origin=sb.widget_origin,
        session_url=f"{sb.widget_origin}/kommo/session",
        connect_url=f"{sb.widget_origin}/kommo/connect",
        jwt_url=url_for("kommo_control.mint_jwt"),
        account_url=sb.account_url(viewer.account.host),
        **context,
    )


def _user_name(acct: Account, user_id: int) -> str:
    user = acct.users.get(user_id)
    return user.name if user else f"#{user_id}"


@bp.get("")
@bp.get("/")
def dashboard() -> str:
    v = _viewer()
    sb = sandbox()
    with sb.lock:
        acct = v.account
        stats = {
            "leads": sum(1 for lead in acct.leads.values() if not lead.is_deleted),
            "contacts": sum(1 for c in acct.contacts.values() if not c.is_deleted and not c.is_unsorted),
            "users": sum(1 for u in acct.users.values() if u.is_active),
            "incoming": sum(1 for u in acct.unsorted.values() if u.state == "new"),
        }
        return _page("dashboard.html", v, "dashboard", stats=stats)


@bp.get("/leads")
def leads() -> str:
    v = _viewer()
    sb = sandbox()
    with sb.lock:
        acct = v.account
        pipelines = sorted(acct.pipelines.values(), key=lambda p: p.sort)
        raw = request.args.get("pipeline", "")
        current = acct.pipelines.get(int(raw)) if raw.isdigit() else None
        current = current or acct.main_pipeline
        columns = []
        for status in sorted(current.statuses, key=lambda s: s.sort):
            cards = [
                {"lead": lead, "responsible": _user_name(acct, lead.responsible_user_id)}
                for lead in acct.leads.values()
                if not lead.is_deleted and lead.pipeline_id == current.id and lead.status_id == status.id
            ]
            if status.id in (WON_STATUS_ID, LOST_STATUS_ID) and not cards:
                continue
            columns.append({"status": status, "cards": cards})
        return _page("leads.html", v, "leads", pipelines=pipelines, current=current, columns=columns)


@bp.get("/leads/<int:lead_id>")
def lead_card(lead_id: int) -> str:
    v = _viewer()
    sb = sandbox()
    with sb.lock:
        acct = v.account
        lead = acct.leads.get(lead_id)
        if lead is None:
            abort(404)
        pipeline = acct.pipelines.get(lead.pipeline_id)
        status = pipeline.status(lead.status_id) if pipeline else None
        contacts = [acct.contacts[c] for c in lead.contact_ids if c in acct.contacts]
        return _page(
            "lead.html",
            v,
            "leads",
            lead=lead,
            pipeline=pipeline,
            status=status,
            contacts=contacts,
            responsible=_user_name(acct, lead.responsible_user_id),
            deliveries=None,
        )


@bp.post("/leads/<int:lead_id>/responsible")
def change_responsible(lead_id: int) -> str:
    """A user reassigns the lead in Kommo: the change is made and subscribed webhooks are sent."""
    v = _viewer()
    sb = sandbox()
    try:
        new_user = int(request.form.get("responsible_user_id", ""))
    except ValueError:
        abort(400)
    if new_user not in v.account.users or lead_id not in v.account.leads:
        abort(400)
    deliveries = sb.fire_responsible_changed(v.account.host, "leads", lead_id, new_user, by_user_id=v.user.id)
    with sb.lock:
        acct = v.account
        lead = acct.leads[lead_id]
        pipeline = acct.pipelines.get(lead.pipeline_id)
        return _page(
            "lead.html",
            v,
            "leads",
            lead=lead,
            pipeline=pipeline,
            status=pipeline.status(lead.status_id) if pipeline else None,
            contacts=[acct.contacts[c] for c in lead.contact_ids if c in acct.contacts],
            responsible=_user_name(acct, lead.responsible_user_id),
            deliveries=[d.describe() for d in deliveries],
        )


@bp.get("/chats")
def chats() -> str:
    return _page("chats.html", _viewer(), "chats")


@bp.get("/wazzup")
def widget_page() -> str:
    """The widget's left-menu page (``widget_page`` location, ``initMenuPage``)."""
    v = _viewer()
    if not v.account.widget_installed:
        abort(404, description="The Wazzup widget is not installed in this account.")
    return _page("widget_page.html", v, "wazzup")


@bp.get("/settings")
def settings() -> str:
    return _page("settings.html", _viewer(), "settings", users_list=None)


@bp.get("/settings/users")
def settings_users() -> str:
    v = _viewer()
    return _page("settings.html", v, "settings", users_list=list(v.account.users.values()))


@bp.get("/settings/widgets")
def integrations() -> str:
    return _page("integrations.html", _viewer(), "settings", result=None)


@bp.post("/settings/widgets/install")
def install() -> str:
    """Install clicked: Kommo calls our redirect URI server-side and ignores the answer (§1.2)."""
    v = _viewer()
    if not v.user.is_admin and not v.account.widget_installed:
        return _page("integrations.html", v, "settings", result={
            "kind": "install", "ok": False, "refused": "Only an administrator can install Wazzup in this account.",
        })  # fmt: skip
    return _outbound_result(v, "install", lambda: sandbox().deliver_install_webhook(v.account.host, v.user.id))


@bp.post("/settings/widgets/uninstall")
def uninstall() -> str:
    """Disable clicked: tokens are revoked and the access-revoked hook is called (§2)."""
    v = _viewer()
    if not v.user.is_admin:
        return _page("integrations.html", v, "settings", result={
            "kind": "uninstall", "ok": False, "refused": "Only an administrator can disable Wazzup.",
        })  # fmt: skip
    return _outbound_result(v, "uninstall", lambda: sandbox().call_revoke_hook(v.account.host))


def _outbound_result(v: Viewer, kind: str, call: Any) -> str:
    sb = sandbox()
    try:
        call()
        error = None
    except requests.RequestException as exc:
        error = type(exc).__name__
    with sb.lock:
        last: Delivery | None = sb.deliveries[-1] if sb.deliveries else None
    described = last.describe() if last is not None else {}
    status = described.get("status")
    result = {
        "kind": kind,
        "ok": error is None and status is not None and status < 400,
        "url": described.get("url", ""),
        "status": status,
        "elapsed_ms": round((described.get("elapsed") or 0) * 1000),
        "body": described.get("body", ""),
        "error": error,
    }
    return _page("integrations.html", v, "settings", result=result)


@bp.get("/settings/wazzup")
def advanced_settings() -> str:
    """The widget's page under Settings (``advanced_settings`` location, ``advancedSettings``)."""
    v = _viewer()
    if not v.account.widget_installed:
        abort(404, description="The Wazzup widget is not installed in this account.")
    return _page("advanced.html", v, "settings")


@bp.app_template_global()
def query(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v is not None})
