"""Nothing crosses accounts: account A's session, given account B's ids, can neither read nor change
B's data on any route under /app or /kommo that exists now (product.md "Terms")."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import world_fixture  # noqa: F401  (fixture)
from widget.db import db
from widget.models import (
    Account,
    AccountSettings,
    AccountToken,
    Channel,
    ChannelRole,
    ChannelSettings,
    Employee,
    Pipeline,
    Stage,
)

B_MARKERS = ("Beta Only Ltd", "Beatrix Onlyinbeta", "Bruno Onlyinbeta", "Beta Secret Channel", "+49 999 000 111")


def _snapshot(account_id: int) -> dict[str, list[tuple]]:
    """Every row of B's that a route could change, as plain values."""
    tables = {
        "account": (Account, Account.id),
        "settings": (AccountSettings, AccountSettings.account_id),
        "tokens": (AccountToken, AccountToken.account_id),
        "channels": (Channel, Channel.account_id),
        "channel_settings": (ChannelSettings, ChannelSettings.account_id),
        "roles": (ChannelRole, ChannelRole.account_id),
        "employees": (Employee, Employee.account_id),
        "pipelines": (Pipeline, Pipeline.account_id),
        "stages": (Stage, Stage.account_id),
    }
    out = {}
    with db.transaction() as s:
        for name, (model, column) in tables.items():
            rows = s.execute(select(model).where(column == account_id)).scalars().all()
            cols = [c.key for c in model.__table__.columns if c.key not in ("updated_at", "synced_at")]
            out[name] = sorted(tuple(str(getattr(r, c)) for c in cols) for r in rows)
    return out


def _set_up_b(world) -> dict[str, int]:
    sb = world.sandbox
    # An explicit id: the sandbox's generated account ids start at the demo account's own id.
    host = sb.add_account("beta", account_id=31_000_001, n_users=0, name="Beta Only Ltd")
    sb.add_user(host, "Beatrix Onlyinbeta", is_admin=True)
    sb.add_user(host, "Bruno Onlyinbeta")
    account_id = world.install(host)
    with db.transaction() as s:
        channel = Channel(
            account_id=account_id, transport="whatsapp", name="Beta Secret Channel", address="+49 999 000 111"
        )
        s.add(channel)
        s.flush()
        s.add(ChannelSettings(channel_id=channel.id, account_id=account_id, distribution="round_robin"))
        employees = s.execute(select(Employee).where(Employee.account_id == account_id)).scalars().all()
        for emp in employees:
            s.add(ChannelRole(account_id=account_id, channel_id=channel.id, employee_id=emp.id, role="head"))
        s.add(
            AccountSettings(account_id=account_id, default_channel_id=channel.id, fallback_employee_id=employees[0].id)
        )
        pipeline = s.execute(select(Pipeline).where(Pipeline.account_id == account_id)).scalars().first()
        stage = s.execute(select(Stage).where(Stage.pipeline_id == pipeline.id)).scalars().first()
        return {
            "account_id": account_id,
            "channel_id": channel.id,
            "employee_id": employees[0].id,
            "pipeline_id": int(pipeline.crm_pipeline_id),
            "stage_id": int(stage.crm_stage_id),
            "crm_user_id": int(employees[0].crm_user_id),
        }


def _a_session(world) -> str:
    response = world.session_url(DEMO_HOST, world.sandbox.admin_id(DEMO_HOST))
    launch = world.app.test_client().get(response.json()["url"].replace(world.url, ""))
    return re.search(r"[?&]st=([^&]+)", launch.headers["Location"]).group(1)


def _value_for(name: str, b: dict[str, int]) -> int | str:
    for key, value in b.items():
        if name == key or name.endswith(key) or key.startswith(name.removesuffix("_id")):
            return value
    return b["channel_id"] if name.endswith("id") else "1"


def test_account_a_cannot_reach_account_b_through_any_route(world):
    world.install()
    b = _set_up_b(world)
    before = _snapshot(b["account_id"])
    st = _a_session(world)
    client = world.app.test_client()
    page = client.get(f"/app?st={st}")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True)).group(1)
    headers = {"X-Session-Token": st, "X-CSRFToken": csrf}
    # Plausible form fields too, so a route that skipped its ownership check would act, not 422.
    fields = {"name": "Renamed by A", "address": "+10000000000", "transport": "telegram", "role": "head"}
    body = {**b, **fields, "st": st, "csrf_token": csrf}

    visited = []
    for rule in world.app.url_map.iter_rules():
        if not rule.rule.startswith(("/app", "/kommo")):
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = re.sub(rf"<(?:[^:<>]+:)?{arg}>", str(_value_for(arg, b)), url)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            query = {"st": st, **{k: str(v) for k, v in b.items()}}
            if method == "GET":
                response = client.get(url, query_string=query, headers=headers)
            else:
                response = client.open(url, method=method, query_string=query, data=body, headers=headers)
                json_response = client.open(
                    url, method=method, query_string=query, json={**b, **fields}, headers=headers
                )
                text = json_response.get_data(as_text=True)
                assert json_response.status_code < 500, (method, url, json_response.status_code)
                assert not [m for m in B_MARKERS if m in text], (method, url, "JSON body")
            text = response.get_data(as_text=True)
            visited.append((method, url, response.status_code))
            assert response.status_code < 500, (method, url, response.status_code)
            assert not [m for m in B_MARKERS if m in text], (method, url)
            assert _snapshot(b["account_id"]) == before, (method, url)

    # The walk covered the pages and the Kommo edge, so an empty map cannot pass this vacuously.
    paths = {url for _, url, _ in visited}
    assert "/app" in paths and "/kommo/session" in paths

    # The control: B's own session sees B's data on our pages, so the markers would have shown a leak.
    b_session = world.session_url("beta.kommo.test", world.sandbox.admin_id("beta.kommo.test"))
    assert b_session.status_code == 200
    b_page = client.get(b_session.json()["url"].replace(world.url, ""), follow_redirects=True).get_data(as_text=True)
    assert [m for m in B_MARKERS if m in b_page]
