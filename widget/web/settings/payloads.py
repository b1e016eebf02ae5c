"""The wire of the admin pages: forms in (the same fields with or without script) and the JSON that
``static/settings.js`` reads. Key names here are a contract with that script."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import Response, jsonify
from flask_babel import gettext as _

from widget.domain.problems import Problem
from widget.domain.settings import AdvancedSetup, ChannelSetup, RoleChoice
from widget.services.channels.manage import ChannelView
from widget.services.settings.crm_mirror import CrmData
from widget.services.settings.trial_request import TestMessageState
from widget.web.settings.wording import problem_message, problems_by_field

# --- forms in -----------------------------------------------------------------------------------------


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


def _optional_int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def advanced_from_form(form: Mapping[str, str]) -> AdvancedSetup:
    return AdvancedSetup(
        default_channel_id=_optional_int(form.get("default_channel")),
        notify_heads_all=form.get("notify_heads_all") == "1",
        fallback_employee_id=_optional_int(form.get("fallback_employee")),
    )


# --- JSON out -----------------------------------------------------------------------------------------


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


def channel_json(ch: ChannelView) -> dict[str, Any]:
    return {"id": ch.id, "transport": ch.transport, "name": ch.name, "address": ch.address, "is_enabled": ch.is_enabled}


def problems_json(problems: Iterable[Problem]) -> list[dict[str, str]]:
    return [{"field": p.field, "code": p.code, "message": problem_message(p)} for p in problems]


def invalid_json(problems: list[Problem]) -> tuple[Response, int]:
    body = {
        "ok": False,
        "error": "invalid",
        "message": _("Some fields need your attention."),
        "errors": problems_by_field(problems),
        "problems": problems_json(problems),
    }
    return jsonify(body), 422
