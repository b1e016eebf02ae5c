"""The composition root: every collaborator of the app, chosen once, in one place.

``create_app`` calls ``build_services``; business code receives the result (``AppServices``) as an
argument and never looks a collaborator up by name. Tests replace a collaborator by setting the
typed field.
"""

from __future__ import annotations

from flask import Flask

from widget.config import Settings
from widget.crypto import TokenBox
from widget.extensions import AppServices
from widget.jobs.queue import HueyJobQueue
from widget.services.accounts.crm_clients import PORTS
from widget.services.channels.transports import build_transport
from widget.services.conversations.crm_responsible import HANDLERS as RESPONSIBLE_HANDLERS
from widget.services.conversations.distribution.handlers import HANDLERS as DISTRIBUTION_HANDLERS
from widget.services.conversations.outreach import port_card_reader
from widget.services.conversations.responsibility import port_responsible_reader
from widget.services.crm_data.refresh import refresh_crm_data


def build_services(app: Flask, settings: Settings) -> AppServices:
    """The production collaborators of ``app``. Nothing here does I/O: the job queue opens its
    storage and the transport its connections when first used."""
    return AppServices(
        settings=settings,
        box=TokenBox(settings.token_keys),
        jobs=HueyJobQueue(app, settings),
        transport=build_transport(settings),
        crm_ports=dict(PORTS),
        outbox_handlers={**DISTRIBUTION_HANDLERS, **RESPONSIBLE_HANDLERS},
        refresh_crm_data=refresh_crm_data,
        card_reader=port_card_reader,
        responsible_reader=port_responsible_reader,
    )
