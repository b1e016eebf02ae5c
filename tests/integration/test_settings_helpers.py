"""Helpers for the settings and channels tests (no tests here): an admin's browser session as our
pages carry it (session token in URL/form/header, CSRF token from the page), and CRM data."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from tests.support.factories import identity, make_account, seed_crm, session_token
from widget.db import db
from widget.domain.crm import CrmPipeline, CrmSnapshot, CrmStage, CrmUser
from widget.models import Channel, Employee
from widget.models.accounts import CRM_BITRIX24, CRM_KOMMO

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


class Browser:
    """One CRM user looking at our pages inside the iframe."""

    def __init__(
        self, app: Flask, client: FlaskClient, account_id: int, *, user: str = "100", admin: bool = True, crm: str = ""
    ) -> None:
        crm = crm or _crm_of(account_id)
        self.account_id = account_id
        self.client = client
        self.st = session_token(app, identity(account_id, crm=crm, user=user, admin=admin))
        self._csrf: str | None = None

    @property
    def csrf(self) -> str:
        if self._csrf is None:
            page = self.get("/app", view="chats")  # every signed-in user can open it
            found = CSRF_META.search(page.get_data(as_text=True))
            assert found, "our pages carry the CSRF token in a meta tag"
            self._csrf = found.group(1)
        return self._csrf

    def get(self, path: str, **params: Any) -> TestResponse:
        return self.client.get(path, query_string={"st": self.st, **params})

    def xhr(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True) -> TestResponse:
        """What our scripts send: form data, session and CSRF tokens in headers, JSON wanted."""
        headers = {"X-Session-Token": self.st, "Accept": "application/json"}
        if csrf:
            headers["X-CSRFToken"] = self.csrf
        return self.client.post(path, data=data or {}, headers=headers)

    def form(self, path: str, data: dict[str, Any] | None = None) -> TestResponse:
        """A plain form post (no script): tokens as hidden fields, an HTML answer."""
        body = {"st": self.st, "csrf_token": self.csrf, **(data or {})}
        return self.client.post(path, data=body)


def _crm_of(account_id: int) -> str:
    from widget.models import Account

    with db.transaction() as s:
        acc = s.get(Account, account_id)
        assert acc is not None
        return acc.crm


KOMMO_STAGES = (
    CrmStage("10", "Incoming leads", 10, "incoming"),
    CrmStage("11", "First contact", 20, "open"),
    CrmStage("12", "Negotiation", 30, "open"),
    CrmStage("142", "Closed - won", 10000, "won"),
    CrmStage("143", "Closed - lost", 11000, "lost"),
)


def kommo_snapshot(users: tuple[CrmUser, ...] | None = None, *, with_second_pipeline: bool = True) -> CrmSnapshot:
    users = users or (
        CrmUser("100", "Ana Admin", "ana@example.com", True, True, "en"),
        CrmUser("101", "Bruno Seller", "bruno@example.com", True, False, "en"),
        CrmUser("102", "Carla Seller", "carla@example.com", True, False, "en"),
        CrmUser("103", "Dario Gone", "dario@example.com", False, False, "en"),
    )
    pipes = [CrmPipeline("lead", "1", "Sales", 1, True, KOMMO_STAGES)]
    if with_second_pipeline:
        pipes.append(
            CrmPipeline(
                "lead",
                "2",
                "Wholesale",
                2,
                False,
                (CrmStage("20", "Incoming leads", 10, "incoming"), CrmStage("21", "Qualified", 20, "open")),
            )
        )
    return CrmSnapshot(users=users, pipelines=tuple(pipes))


def bitrix_snapshot(mode: str = "classic") -> CrmSnapshot:
    users = (
        CrmUser("1", "Portal Admin", "admin@example.com", True, True, "en"),
        CrmUser("2", "Olga Manager", "olga@example.com", True, False, "ru"),
    )
    deal0 = CrmPipeline(
        "deal",
        "0",
        "General",
        0,
        True,
        (
            CrmStage("NEW", "New", 10, "open"),
            CrmStage("WON", "Deal won", 60, "won"),
            CrmStage("LOSE", "Lost", 70, "lost"),
        ),
    )
    deal1 = CrmPipeline("deal", "1", "Wholesale", 1, False, (CrmStage("C1:NEW", "New", 10, "open"),))
    leads = CrmPipeline(
        "lead",
        "0",
        "Leads",
        0,
        True,
        (CrmStage("NEW", "Unassigned", 10, "open"), CrmStage("CONVERTED", "Good lead", 20, "won")),
    )
    return CrmSnapshot(users=users, pipelines=(deal0, deal1, leads), crm_mode=mode)


def kommo_account(external_id: str = "1001", domain: str = "acme.kommo.test", **kw: Any) -> int:
    acc = make_account(CRM_KOMMO, external_id, domain, installed_by_crm_user_id="100", **kw)
    seed_crm(acc, kommo_snapshot())
    return acc


def bitrix_account(mode: str = "classic", external_id: str = "m-1") -> int:
    acc = make_account(CRM_BITRIX24, external_id, "acme.bitrix24.test", installed_by_crm_user_id="1")
    seed_crm(acc, bitrix_snapshot(mode))
    return acc


def employee_ids(account_id: int) -> dict[str, int]:
    """CRM user id -> our employee id."""
    with db.transaction() as s:
        rows = s.execute(select(Employee.crm_user_id, Employee.id).where(Employee.account_id == account_id)).all()
    return {crm_id: emp_id for crm_id, emp_id in rows}


def add_channels(account_id: int, *specs: tuple[str, str, str], enabled: bool = True) -> list[int]:
    ids = []
    with db.transaction() as s:
        for transport, name, address in specs:
            ch = Channel(account_id=account_id, transport=transport, name=name, address=address, is_enabled=enabled)
            s.add(ch)
            s.flush()
            ids.append(ch.id)
    return ids


def kommo_form(roles: dict[int, tuple[str, bool]] | None = None, **overrides: str) -> dict[str, str]:
    """The settings form as the page posts it."""
    form = {"new_client_entity": "lead", "pipeline": "1", "stage": "10", "distribution": "first_reply"}
    form.update(overrides)
    for emp_id, (role, gets) in (roles or {}).items():
        form[f"role-{emp_id}"] = role
        if gets:
            form[f"new-{emp_id}"] = "1"
    return form
