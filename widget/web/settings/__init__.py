"""The admin pages inside the CRM iframe: "CRM integration" (per channel), "Advanced" (account-wide)
and "Channels", plus their JSON endpoints (save, presets, "Refresh CRM data", test message).

Every route is for CRM admins of the identity's own account: ids in URLs and forms are looked up
inside that account only, so another account's ids are "not found". Pages work without script
(forms post and re-render); ``static/settings.js`` turns them into XHR with JSON answers.

One blueprint (``settings``), one module per tab: ``integration_tab``, ``advanced_tab``,
``channels_tab`` (and ``gateway_tab``, its messaging-gateway section); ``crm_read`` says where the
first read of the CRM's data stands. What they share is in ``blueprint`` (the admin, refusals),
``payloads`` (forms in, JSON out) and ``wording`` (what the pages say).
"""

from __future__ import annotations

# Importing the tabs registers their routes on ``bp``.
from widget.web.settings import advanced_tab, channels_tab, crm_read, gateway_tab, integration_tab
from widget.web.settings.blueprint import bp
from widget.web.settings.integration_tab import render_crm_tab
from widget.web.settings.wording import crm_error_message, problem_message, problems_by_field

__all__ = [
    "advanced_tab",
    "bp",
    "channels_tab",
    "crm_error_message",
    "crm_read",
    "gateway_tab",
    "integration_tab",
    "problem_message",
    "problems_by_field",
    "render_crm_tab",
]
