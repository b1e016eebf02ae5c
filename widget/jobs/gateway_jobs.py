"""The sandbox messaging gateway's list of our channels (embedded default only)."""

from __future__ import annotations

from widget.db import db
from widget.extensions import app_services
from widget.jobs.registry import job
from widget.services.channels.sandbox_gateway import publish_channels


@job
def publish_sandbox_channels(account_id: int) -> None:
    """Register the account's channels; an unreachable sandbox raises, so the queue retries."""
    publish_channels(db, app_services(), account_id)
