"""Factory helpers that build records the way the install flows would."""

from __future__ import annotations

from typing import Any

from flask import Flask

from widget.db import db
from widget.domain.crm import CrmPipeline, CrmSnapshot, CrmStage, CrmUser
from widget.models import Account
from widget.models.accounts import CRM_KOMMO, STATUS_ACTIVE
from widget.services.crm_data.snapshot import apply_snapshot
from widget.web.identity import Identity, issue_launch_token, issue_session_token


def make_account(crm: str = CRM_KOMMO, external_id: str = "1001", domain: str = "acme.kommo.test", **kw: Any) -> int:
    with db.transaction() as s:
        acc = Account(crm=crm, external_id=external_id, domain=domain, status=kw.pop("status", STATUS_ACTIVE), **kw)
        s.add(acc)
        s.flush()
        return acc.id


def small_snapshot(n_users: int = 3) -> CrmSnapshot:
    users = tuple(CrmUser(str(100 + i), f"User {i}", f"u{i}@example.com", True, i == 0, "en") for i in range(n_users))
    stages = (
        CrmStage("10", "Incoming leads", 10, "incoming"),
        CrmStage("11", "First contact", 20, "open"),
        CrmStage("142", "Closed - won", 10000, "won"),
        CrmStage("143", "Closed - lost", 11000, "lost"),
    )
    return CrmSnapshot(users=users, pipelines=(CrmPipeline("lead", "1", "Sales", 1, True, stages),))


def seed_crm(account_id: int, snap: CrmSnapshot | None = None) -> None:
    with db.transaction() as s:
        apply_snapshot(s, account_id, snap or small_snapshot())


def identity(
    account_id: int,
    *,
    crm: str = CRM_KOMMO,
    user: str = "100",
    admin: bool = True,
    lang: str = "en",
    origin: str = "http://localhost:5001",
) -> Identity:
    return Identity(account_id=account_id, crm=crm, crm_user_id=user, is_admin=admin, lang=lang, frame_origin=origin)


def session_token(app: Flask, ident: Identity) -> str:
    with app.test_request_context():
        return issue_session_token(ident)


def launch_token(app: Flask, ident: Identity) -> str:
    with app.test_request_context():
        return issue_launch_token(ident)
