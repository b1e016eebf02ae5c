"""Counting what reached the CRM: per client, its contacts and leads/deals in the sandbox, and
whether our outbox still has work for it. A client is *lost* when the CRM lacks its contact or its
lead/deal once everything has drained; *duplicated* when it has more than one of either."""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests
from sqlalchemy import case, func, select

from faults.tenants import Tenant


@dataclass(frozen=True)
class Census:
    expected: int
    contacts: int
    entities: int
    lost: int
    duplicated: int

    @property
    def complete(self) -> bool:
        return self.lost == 0


def crm_census(tenant: Tenant, prefix: str, expected: set[str]) -> Census:
    found = requests.get(f"{tenant.crm_url}/_census", params={"prefix": prefix}, timeout=30).json()["clients"]
    contacts = sum(v["contacts"] for k, v in found.items() if k in expected)
    entities = sum(v["entities"] for k, v in found.items() if k in expected)
    counts = [(found.get(d, {}).get("contacts", 0), found.get(d, {}).get("entities", 0)) for d in expected]
    lost = sum(1 for c, e in counts if c < 1 or e < 1)
    duplicated = sum(1 for c, e in counts if c > 1 or e > 1)
    return Census(len(expected), contacts, entities, lost, duplicated)


@dataclass(frozen=True)
class OutboxState:
    chats: int
    open_ops: int  # pending or running
    failed_ops: int
    retried_ops: int  # operations that needed more than one attempt


def outbox_state(tenant: Tenant, prefix: str) -> OutboxState:
    from widget.db import db
    from widget.models.conversations import Chat, CrmOperation

    mine = (Chat.account_id == tenant.account_id) & Chat.external_chat_id.like(f"wa-{prefix}%")
    with db.transaction() as s:
        chats = s.execute(select(func.count()).select_from(Chat).where(mine)).scalar_one()
        rows = s.execute(
            select(CrmOperation.status, func.count(), func.sum(case((CrmOperation.attempts > 1, 1), else_=0)))
            .join(Chat, Chat.id == CrmOperation.chat_id)
            .where(mine)
            .group_by(CrmOperation.status)
        ).all()
    by_status = {status: (n, retried or 0) for status, n, retried in rows}
    return OutboxState(
        chats=chats,
        open_ops=sum(by_status.get(k, (0, 0))[0] for k in ("pending", "running")),
        failed_ops=by_status.get("failed", (0, 0))[0],
        retried_ops=sum(r for _, r in by_status.values()),
    )


def wait_drained(
    tenant: Tenant, prefix: str, expected: set[str], since: float, timeout: float
) -> tuple[Census, OutboxState, float | None]:
    """Poll until every client is in the CRM and no work for them is left in the outbox. Returns the
    final census, the outbox, and the seconds from ``since`` (monotonic) to drained, or None."""
    deadline = time.monotonic() + timeout
    while True:
        state = outbox_state(tenant, prefix)
        census = crm_census(tenant, prefix, expected)
        if census.complete and state.open_ops == 0:
            drained = time.monotonic() - since
            time.sleep(0.5)  # nothing is left to run; a second look only confirms the counts
            return crm_census(tenant, prefix, expected), outbox_state(tenant, prefix), drained
        if time.monotonic() > deadline:
            return census, state, None
        time.sleep(0.5)
