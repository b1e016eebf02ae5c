"""The "Refresh CRM data" read of a Bitrix24 portal (reference §6.2-6.3, §6.6, §7).

Two ``batch`` requests whatever the size up to ~2,400 users: (1) the CRM mode, the deal pipelines
(``crm.category.list`` with ``entityTypeId=2``, the default pipeline is id 0) and the first page of
``user.get``; (2) every pipeline's stages (``crm.status.list`` for ``DEAL_STAGE`` /
``DEAL_STAGE_<id>``; ``STATUS`` for leads when the CRM is classic) and the remaining user pages
(50 each, ``start`` from ``result_next``). One batch counts as one request for the rate limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widget.crm.bitrix24.client import (
    BATCH_MAX,
    CRM_MODE_CLASSIC,
    CRM_MODE_SIMPLE,
    LEAD_PIPELINE_ID,
    PAGE_SIZE,
    Bitrix24Client,
)
from widget.crm.bitrix24.payloads import parse_categories, parse_stages, parse_user
from widget.crm.bitrix24.php import as_list
from widget.domain.crm import ENTITY_DEAL, ENTITY_LEAD, CrmPipeline, CrmSnapshot, CrmUser


def read_snapshot(client: Bitrix24Client, admin_ids: frozenset[str] = frozenset()) -> CrmSnapshot:
    """Employees, deal pipelines with stages, and lead stages when the CRM is classic.

    Two batches whatever the size up to ~2,400 users: (1) mode, categories and the first user page;
    (2) every pipeline's stages and the remaining user pages. Never more than ceil(users/50) + 2.
    """
    first = client.batch(
        {
            "mode": ("crm.settings.mode.get", {}),
            "cats": ("crm.category.list", {"entityTypeId": 2}),
            "users": ("user.get", {"sort": "ID", "order": "ASC", "start": 0}),
        }
    )
    mode = CRM_MODE_SIMPLE if str(first.get("mode")) == "2" else CRM_MODE_CLASSIC
    categories = parse_categories(first.get("cats"))
    raw_users = as_list(first.get("users"))
    user_total = first.totals.get("users", len(raw_users))
    user_next = first.nexts.get("users")

    commands: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for cat in categories:
        entity_id = "DEAL_STAGE" if cat.id == "0" else f"DEAL_STAGE_{cat.id}"
        commands[f"stages_{cat.id}"] = ("crm.status.list", {"filter": {"ENTITY_ID": entity_id}})
    if mode == CRM_MODE_CLASSIC:
        commands["stages_lead"] = ("crm.status.list", {"filter": {"ENTITY_ID": "STATUS"}})
    if user_next is not None:
        for start in range(user_next, user_total, PAGE_SIZE):
            commands[f"users_{start}"] = ("user.get", {"sort": "ID", "order": "ASC", "start": start})
    if first.nexts.get("cats") is not None:
        # More than 50 pipelines: rare, so read them plainly; their stages follow below.
        cat_start: int | None = first.nexts["cats"]
        while cat_start is not None:
            resp = client.call("crm.category.list", {"entityTypeId": 2, "start": cat_start})
            extra = parse_categories(resp.result)
            categories.extend(extra)
            for cat in extra:
                commands[f"stages_{cat.id}"] = (
                    "crm.status.list",
                    {"filter": {"ENTITY_ID": f"DEAL_STAGE_{cat.id}"}},
                )
            cat_start = resp.next

    results: dict[str, Any] = {}
    keys = list(commands)
    for i in range(0, len(keys), BATCH_MAX):
        chunk = {k: commands[k] for k in keys[i : i + BATCH_MAX]}
        answer = client.batch(chunk)
        for key in chunk:
            results[key] = answer.get(key)

    for key in sorted((k for k in results if k.startswith("users_")), key=lambda k: int(k.split("_")[1])):
        raw_users.extend(as_list(results[key]))
    seen: set[str] = set()
    users: list[CrmUser] = []
    for item in raw_users:
        user = parse_user(item, admin_ids)
        if user.crm_user_id not in seen:  # a user added between pages may shift one over
            seen.add(user.crm_user_id)
            users.append(user)

    pipelines = [
        CrmPipeline(ENTITY_DEAL, cat.id, cat.name, cat.sort, cat.is_default, parse_stages(results[f"stages_{cat.id}"]))
        for cat in categories
    ]
    if mode == CRM_MODE_CLASSIC:
        pipelines.append(
            CrmPipeline(ENTITY_LEAD, LEAD_PIPELINE_ID, "Leads", 0, True, parse_stages(results.get("stages_lead")))
        )
    return CrmSnapshot(users=tuple(users), pipelines=tuple(pipelines), crm_mode=mode)
