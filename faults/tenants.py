"""Installed accounts on a running stack, set up the way a CRM admin would leave them.

The install itself goes through the CRMs' real flows (Kommo's install webhook, Bitrix24's
``ONAPPINSTALL``) into our gunicorn and job workers; the channel, its settings and its roles are
written straight to the database (the settings page has its own tests and benchmark).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests
from sqlalchemy import select

from faults.stack import Stack, wait_for

KOMMO_HOST = "demo.kommo.test"


@dataclass(frozen=True)
class Tenant:
    crm: str
    account_id: int
    channel_id: int
    secret: str
    crm_url: str  # the sandbox, for faults and the census
    sellers: tuple[int, ...]  # employee ids getting new clients
    portal: str = ""  # Bitrix24: the portal's domain
    kommo_host: str = ""


def _account_id(stack: Stack, crm: str, external_id: str) -> int | None:
    from widget.db import db
    from widget.models import Account

    with db.transaction() as s:
        return s.execute(
            select(Account.id).where(Account.crm == crm, Account.external_id == external_id, Account.status == "active")
        ).scalar_one_or_none()


def install_kommo(stack: Stack, host: str = KOMMO_HOST) -> int:
    """Kommo's install webhook to our server; the code exchange runs in a job worker."""
    stack.app()
    kommo_id = str(requests.get(f"{stack.kommo_url}/_sandbox/accounts/{host}", timeout=10).json()["id"])
    answer = requests.post(f"{stack.kommo_url}/_sandbox/install-webhook", json={"host": host}, timeout=30).json()
    if answer.get("status") != 200:
        raise RuntimeError(f"Kommo install webhook answered {answer}")
    found: dict[str, int] = {}

    def installed() -> bool:
        account_id = _account_id(stack, "kommo", kommo_id)
        if account_id is not None:
            found["id"] = account_id
        return account_id is not None

    wait_for(installed, 60, "the Kommo install (job worker)", interval=0.3)
    return found["id"]


def install_bitrix24(stack: Stack) -> tuple[int, str]:
    """The API-only install: Bitrix24 POSTs ``ONAPPINSTALL`` with tokens to our install URL."""
    stack.app()
    portal = f"localhost:{stack.bitrix24_port}"
    answer = requests.post(f"{stack.bitrix24_url}/_sandbox/install-api-only", json={"portal": portal}, timeout=30)
    result = answer.json().get("result") or {}
    if result.get("status") != 200:
        raise RuntimeError(f"ONAPPINSTALL was answered {result}")
    state = requests.get(f"{stack.bitrix24_url}/_sandbox/state", timeout=10).json()
    member_id = state["portals"][0]["member_id"]
    account_id = _account_id(stack, "bitrix24", member_id)
    if account_id is None:
        raise RuntimeError("ONAPPINSTALL was accepted but no account was stored")
    return account_id, portal


def refresh(stack: Stack, crm: str, account_id: int) -> None:
    """ "Refresh CRM data" now (the install also queues one; both only upsert)."""
    from widget.db import db

    services = stack.app().extensions["widget"]
    for attempt in range(5):
        try:
            if crm == "kommo":
                from widget.services.crm_data.kommo import refresh_kommo_data

                refresh_kommo_data(db, services, account_id)
            else:
                from widget.services.crm_data.bitrix24 import refresh_bitrix24_data

                refresh_bitrix24_data(db, services, account_id)
            return
        except Exception:
            if attempt == 4:
                raise
            time.sleep(1)


def add_channel(
    stack: Stack,
    crm: str,
    account_id: int,
    *,
    sellers: int = 4,
    distribution: str = "round_robin",
    name: str = "Fault suite WhatsApp",
) -> tuple[int, str, tuple[int, ...]]:
    """A WhatsApp channel: new clients become a contact + lead (Kommo) / contact + deal (Bitrix24)
    in the main pipeline's first working stage, given in turn to ``sellers`` active reps."""
    from widget.db import db
    from widget.domain.crm import ENTITY_DEAL, ENTITY_LEAD, STAGE_OPEN
    from widget.models import AccountSettings, Channel, ChannelRole, ChannelSettings, Employee, Pipeline, Stage
    from widget.models._base import utcnow
    from widget.services.channels.signing import get_or_create_gateway_secret

    entity = ENTITY_LEAD if crm == "kommo" else ENTITY_DEAL
    box = stack.app().extensions["widget"].box
    with db.transaction() as s:
        pipeline = s.execute(
            select(Pipeline)
            .where(Pipeline.account_id == account_id, Pipeline.entity == entity, Pipeline.is_active)
            .order_by(Pipeline.is_main.desc(), Pipeline.sort)
            .limit(1)
        ).scalar_one()
        stage = s.execute(
            select(Stage)
            .where(Stage.pipeline_id == pipeline.id, Stage.kind == STAGE_OPEN, Stage.is_active)
            .order_by(Stage.sort)
            .limit(1)
        ).scalar_one()
        reps = list(
            s.execute(
                select(Employee)
                .where(Employee.account_id == account_id, Employee.is_active, Employee.in_crm, ~Employee.is_admin)
                .order_by(Employee.id)
                .limit(sellers)
            ).scalars()
        )
        channel = Channel(account_id=account_id, transport="whatsapp", name=name, address="+15550100")
        s.add(channel)
        s.flush()
        s.add(
            ChannelSettings(
                channel_id=channel.id,
                account_id=account_id,
                new_client_entity=entity,
                crm_pipeline_id=pipeline.crm_pipeline_id,
                crm_stage_id=stage.crm_stage_id,
                distribution=distribution,
                saved_at=utcnow(),
            )
        )
        for rep in reps:
            s.add(
                ChannelRole(
                    account_id=account_id,
                    channel_id=channel.id,
                    employee_id=rep.id,
                    role="seller",
                    gets_new_clients=True,
                )
            )
        if s.get(AccountSettings, account_id) is None:
            s.add(AccountSettings(account_id=account_id))
        secret = get_or_create_gateway_secret(s, box, account_id)
        return channel.id, secret, tuple(r.id for r in reps)


def kommo_tenant(stack: Stack, **kw: Any) -> Tenant:
    account_id = install_kommo(stack)
    refresh(stack, "kommo", account_id)
    channel_id, secret, reps = add_channel(stack, "kommo", account_id, **kw)
    return Tenant("kommo", account_id, channel_id, secret, stack.kommo_url, reps, kommo_host=KOMMO_HOST)


def bitrix24_tenant(stack: Stack, **kw: Any) -> Tenant:
    account_id, portal = install_bitrix24(stack)
    refresh(stack, "bitrix24", account_id)
    channel_id, secret, reps = add_channel(stack, "bitrix24", account_id, **kw)
    return Tenant("bitrix24", account_id, channel_id, secret, stack.bitrix24_url, reps, portal=portal)
