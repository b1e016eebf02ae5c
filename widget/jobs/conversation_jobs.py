"""Conversation jobs: drive one outbox row; sweep for work a lost nudge or a dead worker left."""

from __future__ import annotations

from widget.db import db
from widget.extensions import app_services
from widget.jobs.registry import job, periodic
from widget.services import outbox
from widget.services.inbound import processing


@job
def run_crm_operation(op_id: int) -> None:
    outbox.run_operation(db, app_services(), op_id)


@periodic(1)
def sweep_crm_operations() -> None:
    outbox.sweep(db, app_services())


@job
def process_inbound() -> None:
    """Turn acknowledged gateway deliveries into clients, chats, messages and CRM work."""
    processing.process_pending(db, app_services().jobs)


@periodic(1)
def sweep_inbound() -> None:
    processing.process_pending(db, app_services().jobs)
