""" "Refresh CRM data" against the sandbox Kommo: employees, pipelines and stages, in the fewest
requests Kommo's limits allow."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.support.kommo_sandbox import DEMO_HOST
from tests.support.kommo_world import world_fixture  # noqa: F401  (fixture)
from widget.crm.errors import CrmForbidden
from widget.crm.kommo.client import pages_needed
from widget.db import db
from widget.models import Channel, ChannelRole, Employee, Pipeline, Stage
from widget.models.accounts import STATUS_ACTIVE
from widget.services.crm_data.refresh import refresh_crm_data


def _employees(account_id):
    with db.transaction() as s:
        return {
            e.crm_user_id: e for e in s.execute(select(Employee).where(Employee.account_id == account_id)).scalars()
        }


def _refresh(world, account_id):
    return refresh_crm_data(db, world.app.extensions["widget"], account_id)


def test_600_users_take_four_requests(world):
    account_id = world.install()
    world.sandbox.add_users(DEMO_HOST, 600 - len(world.sandbox.users(DEMO_HOST)))
    world.sandbox.reset_log()

    report = _refresh(world, account_id)

    api_calls = world.sandbox.log.entries(host=DEMO_HOST)
    assert len(api_calls) == pages_needed(600) == 4  # ceil(600/250) users pages + 1 pipelines
    assert report.requests == 4
    assert all(e.query.get("limit", ["250"]) == ["250"] for e in api_calls if "/users" in e.path)
    assert len(_employees(account_id)) == 600
    assert 429 not in [e.status for e in api_calls]


def test_employees_carry_name_email_language_admin_and_active(world):
    account_id = world.install()
    employees = _employees(account_id)
    for user in world.sandbox.users(DEMO_HOST):
        e = employees[str(user.id)]
        assert (e.name, e.email, e.lang, e.is_admin, e.is_active) == (
            user.name,
            user.email,
            user.lang,
            user.is_admin,
            user.is_active,
        )


def test_pipelines_and_stages_are_mirrored_with_their_kinds(world):
    account_id = world.install()
    with db.transaction() as s:
        rows = s.execute(select(Pipeline).where(Pipeline.account_id == account_id)).scalars()
        pipes = {p.crm_pipeline_id: p for p in rows}
        stages = s.execute(select(Stage).where(Stage.account_id == account_id)).scalars().all()
    kommo_pipes = world.sandbox.pipelines(DEMO_HOST)
    assert {str(p.id) for p in kommo_pipes} == set(pipes)
    assert [p.is_main for p in kommo_pipes] == [pipes[str(p.id)].is_main for p in kommo_pipes]
    by_pipe: dict[int, dict[str, str]] = {}
    for st in stages:
        by_pipe.setdefault(st.pipeline_id, {})[st.crm_stage_id] = st.kind
    for kp in kommo_pipes:
        kinds = by_pipe[pipes[str(kp.id)].id]
        assert kinds["142"] == "won" and kinds["143"] == "lost"
        assert kinds[str(kp.incoming.id)] == "incoming"
        assert list(kinds.values()).count("incoming") == 1


def test_refresh_follows_kommo_changes_and_keeps_roles_of_vanished_users(world):
    account_id = world.install()
    users = world.sandbox.users(DEMO_HOST)
    leaver, deactivated = users[1], users[2]
    with db.transaction() as s:
        channel = Channel(account_id=account_id, transport="telegram", name="TG", address="@acme")
        s.add(channel)
        s.flush()
        emp_id = _employees(account_id)[str(leaver.id)].id
        s.add(ChannelRole(account_id=account_id, channel_id=channel.id, employee_id=emp_id, role="seller"))

    world.sandbox.remove_user(DEMO_HOST, leaver.id)
    world.sandbox.set_user(DEMO_HOST, deactivated.id, is_active=False)
    newcomer = world.sandbox.add_user(DEMO_HOST, "Nadia Novak", lang="pt")
    pipeline = world.sandbox.add_pipeline(DEMO_HOST, "Partners", ["Intro"])

    report = _refresh(world, account_id)

    employees = _employees(account_id)
    assert employees[str(leaver.id)].is_active is False and employees[str(leaver.id)].in_crm is False
    assert employees[str(deactivated.id)].is_active is False
    assert employees[str(newcomer)].name == "Nadia Novak"
    assert leaver.name in report.deactivated and deactivated.name in report.deactivated
    assert "Nadia Novak" in report.added and "Partners" in report.pipelines_added
    with db.transaction() as s:
        assert s.execute(select(ChannelRole.role).where(ChannelRole.employee_id == emp_id)).scalar_one() == "seller"

    world.sandbox.remove_pipeline(DEMO_HOST, pipeline)
    report = _refresh(world, account_id)
    assert report.pipelines_removed == ["Partners"]
    with db.transaction() as s:
        gone = s.execute(select(Pipeline).where(Pipeline.crm_pipeline_id == str(pipeline))).scalar_one()
        assert gone.is_active is False  # kept, so settings that chose it can be flagged


def test_a_non_admin_install_is_kept_but_refresh_says_rights_are_missing(world):
    # Listing users is admin-only in Kommo (403 "Insufficient rights") — reference §5.2.
    non_admin = next(u.id for u in world.sandbox.users(DEMO_HOST) if not u.is_admin and u.is_active)
    world.sandbox.account(DEMO_HOST).widget_installed = True
    account_id = world.install(user_id=non_admin)
    assert world.account().status == STATUS_ACTIVE
    with pytest.raises(CrmForbidden) as caught:
        _refresh(world, account_id)
    assert "Insufficient rights" in str(caught.value)
    assert caught.value.details["status"] == 403
    assert _employees(account_id) == {}
