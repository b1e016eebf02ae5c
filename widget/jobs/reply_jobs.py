"""Reply jobs: deliver one stored reply to the messaging gateway, send an account's test message,
and sweep for what a lost nudge or a dead worker left behind."""

from __future__ import annotations

from widget.db import db
from widget.extensions import app_services
from widget.jobs.registry import job, periodic
from widget.services.conversations import reply_delivery
from widget.services.settings import trial_message


@job
def deliver_reply(message_id: int) -> None:
    reply_delivery.deliver(db, app_services(), message_id)


@job
def send_test_message(account_id: int) -> None:
    trial_message.send_test_message(db, app_services(), account_id)


@periodic(1)
def sweep_replies() -> None:
    services = app_services()
    reply_delivery.sweep(db, services)
    for account_id in trial_message.pending_accounts(db):
        trial_message.nudge_test_message(services.jobs, account_id)
