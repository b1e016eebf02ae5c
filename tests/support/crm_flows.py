"""New-client flows against a sandbox CRM: a channel with roles and settings on an installed
account, signed gateway deliveries over real HTTP to our server, and looks at what we stored.

The CRM side is real (our adapters, over HTTP, to the sandbox); jobs run immediately inside the
request or call that nudges them, unless a test captures the nudges (``capture_nudges``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from tests.support.jobs import CallQueue
from widget.db import db
from widget.domain.ports import CrmPort, NewClientSpec
from widget.models import AccountSettings, Channel, ChannelRole, ChannelSettings, CrmEvent, Employee
from widget.models._base import utcnow
from widget.models.conversations import Chat, ChatOffer, CrmOperation
from widget.services import outbox
from widget.services.channels.signing import get_or_create_gateway_secret, sign
from widget.services.conversations.chat_list.page import visible_page
from widget.services.inbound import processing, receipts


class SimulatedCrash(BaseException):
    """A worker dying mid-job: not an ``Exception``, so nothing in our code catches and records it."""


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@dataclass
class Flow:
    app: Flask
    base_url: str
    account_id: int
    channel_id: int
    secret: str
    employees: dict[str, int] = field(default_factory=dict)  # CRM user id -> employee id

    @property
    def services(self) -> Any:
        return self.app.extensions["widget"]

    def emp(self, crm_user_id: int | str) -> int:
        return self.employees[str(crm_user_id)]

    def payload(self, n: int = 1, **over: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": f"msg-{n}",
            "channel_id": self.channel_id,
            "chat_type": "whatsapp",
            "chat_id": f"chat-{n}",
            "phone": f"+1777{n:07d}",
            "sender_name": f"Client {n}",
            "text": f"Hello from client {n}",
            "sent_at": datetime.now(UTC).isoformat(),
        }
        body.update(over)
        return body

    def post(self, body: dict[str, Any], *, secret: str | None = None) -> requests.Response:
        """What the messaging gateway does: a signed POST to our server over HTTP."""
        raw = json.dumps(body).encode()
        return requests.post(
            f"{self.base_url}/gateway/messages",
            data=raw,
            headers={"X-Gateway-Signature": sign(secret or self.secret, raw), "Content-Type": "application/json"},
            timeout=60,
        )

    def chat(self, n: int = 1) -> Chat:
        with db.transaction() as s:
            chat = s.execute(
                select(Chat).where(Chat.account_id == self.account_id, Chat.external_chat_id == f"chat-{n}")
            ).scalar_one()
            s.expunge(chat)
            return chat

    def offers(self, chat_id: int) -> set[int]:
        with db.transaction() as s:
            return set(s.execute(select(ChatOffer.employee_id).where(ChatOffer.chat_id == chat_id)).scalars())

    def visible(self, employee_id: int) -> set[int]:
        with db.transaction() as s:
            return {i.chat_id for i in visible_page(s, self.account_id, employee_id)}

    def ops(self) -> list[CrmOperation]:
        with db.transaction() as s:
            rows = list(
                s.execute(
                    select(CrmOperation).where(CrmOperation.account_id == self.account_id).order_by(CrmOperation.id)
                ).scalars()
            )
            s.expunge_all()
            return rows

    def events(self) -> list[CrmEvent]:
        with db.transaction() as s:
            rows = list(s.execute(select(CrmEvent).where(CrmEvent.account_id == self.account_id)).scalars())
            s.expunge_all()
            return rows

    def drain(self, clock: Clock, minutes: float = 20) -> None:
        """Let time pass and run the outbox sweep, as the periodic job would."""
        clock.advance(minutes=minutes)
        outbox.sweep(db, self.services)


def telegram_message(flow: Flow, n: int, chat_id: str) -> dict[str, Any]:
    """A Telegram client's message without a phone: only its messenger id can find it in the CRM."""
    return flow.payload(n, chat_type="telegram", chat_id=chat_id, phone=None, sender_name=f"Tg {n}")


def chat_on(flow: Flow, chat_id: str) -> Chat:
    """The chat with this messenger chat id on the flow's channel."""
    with db.transaction() as s:
        chat = s.execute(
            select(Chat).where(Chat.channel_id == flow.channel_id, Chat.external_chat_id == chat_id)
        ).scalar_one()
        s.expunge(chat)
        return chat


def add_channel(
    app: Flask,
    account_id: int,
    base_url: str,
    *,
    entity: str,
    pipeline_id: str | None,
    stage_id: str | None,
    distribution: str,
    roles: dict[str, tuple[str | None, bool]],
    transport: str = "whatsapp",
) -> Flow:
    """A channel with saved settings and roles (``roles``: CRM user id -> (role, gets new clients))."""
    with db.transaction() as s:
        employees = {
            e.crm_user_id: e.id for e in s.execute(select(Employee).where(Employee.account_id == account_id)).scalars()
        }
        channel = Channel(account_id=account_id, transport=transport, name="Sales WhatsApp", address="+15550001")
        s.add(channel)
        s.flush()
        s.add(
            ChannelSettings(
                channel_id=channel.id,
                account_id=account_id,
                new_client_entity=entity,
                crm_pipeline_id=pipeline_id,
                crm_stage_id=stage_id,
                distribution=distribution,
                saved_at=utcnow(),
            )
        )
        for crm_user, (role, gets) in roles.items():
            s.add(
                ChannelRole(
                    account_id=account_id,
                    channel_id=channel.id,
                    employee_id=employees[crm_user],
                    role=role,
                    gets_new_clients=gets,
                )
            )
        if s.get(AccountSettings, account_id) is None:
            s.add(AccountSettings(account_id=account_id))
        secret = get_or_create_gateway_secret(s, app.extensions["widget"].box, account_id)
        return Flow(app, base_url, account_id, channel.id, secret, employees)


def capture_into(nudged: list[int]) -> CallQueue:
    """A job queue that records the outbox's nudges (operation ids) in ``nudged`` for the test to
    run by hand, processes acknowledged gateway deliveries at once, and drops the rest."""

    def enqueue(name: str, *args: Any, delay: Any = None) -> None:
        if name == outbox.JOB_NAME:
            nudged.append(args[0])
        elif name == receipts.JOB_NAME:
            processing.process_pending(db, queue)

    queue = CallQueue(enqueue)
    return queue


@pytest.fixture
def capture_nudges() -> Iterator[Callable[[Flask], list[int]]]:
    """``capture(app)`` stops jobs from running inline and returns the list the outbox's nudges
    (operation ids) land in; other jobs' nudges are dropped (the test runs those itself)."""
    apps: list[tuple[Flask, Any]] = []

    def capture(app: Flask) -> list[int]:
        nudged: list[int] = []
        services = app.extensions["widget"]
        apps.append((app, services.jobs))
        services.jobs = capture_into(nudged)
        return nudged

    yield capture
    for app, real in reversed(apps):
        app.extensions["widget"].jobs = real


def crash_after_create(real: Callable[..., CrmPort]) -> Callable[..., CrmPort]:
    """A port factory whose creates reach the CRM and then kill the worker before we record them."""

    class Crashing:
        def __init__(self, port: CrmPort) -> None:
            self.port = port

        def __getattr__(self, name: str) -> Any:
            return getattr(self.port, name)

        def create_contact_with_entity(self, spec: NewClientSpec, key: str) -> Any:
            self.port.create_contact_with_entity(spec, key)
            raise SimulatedCrash("worker killed after the CRM created the entities")

        def create_incoming_lead(self, spec: NewClientSpec, key: str) -> Any:
            self.port.create_incoming_lead(spec, key)
            raise SimulatedCrash("worker killed after the CRM created the incoming lead")

    return lambda database, services, account_id: Crashing(real(database, services, account_id))  # type: ignore[return-value]
