"""The app's collaborators, wired once in ``create_app`` (``widget.wiring``) and reached through
``app_services()``.

Business code receives these as arguments; only the web and jobs layers look them up. Tests replace
a collaborator by setting the field (or ``dataclasses.replace``): every field is typed, and none
is a string-keyed hook.

The field types are declared here, from the domain's ports and narrow protocols, so this module
imports no service (services import it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from flask import current_app
from sqlalchemy.orm import Session

from widget.config import Settings
from widget.crypto import TokenBox
from widget.db import Database
from widget.domain.outreach import CardReader
from widget.domain.ports import CrmPort, JobQueue
from widget.domain.responsibility import ResponsibleReader
from widget.models._base import utcnow

# (database, services, account_id) -> the account's adapter; one factory per CRM name.
CrmPortFactory = Callable[[Database, "AppServices", int], CrmPort]
CardReaderFactory = Callable[[Database, "AppServices", int], CardReader]
ResponsibleReaderFactory = Callable[[Database, "AppServices", int], ResponsibleReader]
# "Refresh CRM data" of the settings page: (database, services, account_id) -> a SyncReport.
RefreshCrmData = Callable[[Database, "AppServices", int], Any]


class MessageTransport(Protocol):
    """How replies leave us (``widget.services.channels.transports.Transport``: the message is an
    ``OutboundMessage``, the answer a ``Delivered``)."""

    def send(self, message: Any, secret: str, previous: str | None = None) -> Any: ...


class OutboxHandler(Protocol):
    """What to run for one kind of outbox row (``widget.services.outbox.Handler``; ``op`` is an
    ``outbox.Operation``)."""

    def execute(self, database: Database, port: CrmPort, op: Any) -> dict[str, Any]: ...

    def record(self, session: Session, op: Any, result: dict[str, Any], now: datetime) -> list[int]: ...


@dataclass
class AppServices:
    settings: Settings
    box: TokenBox
    jobs: JobQueue
    transport: MessageTransport
    crm_ports: Mapping[str, CrmPortFactory]
    outbox_handlers: Mapping[str, OutboxHandler]
    refresh_crm_data: RefreshCrmData
    card_reader: CardReaderFactory
    responsible_reader: ResponsibleReaderFactory
    clock: Callable[[], datetime] = field(default=utcnow)


def app_services() -> AppServices:
    services: AppServices = current_app.extensions["widget"]
    return services
