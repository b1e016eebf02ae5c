"""Asking for the test message (product.md §4): once per account, on its first settings save or by
the dialog's button; the conversations work (``trial_message``) picks up the request and sends it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from widget.db import Database
from widget.domain.channels import pick_test_message_channel
from widget.models import AccountSettings
from widget.models._base import utcnow
from widget.models.trial_messages import TestMessageRequest
from widget.services.channels.manage import ChannelView, list_channels, lock_account_settings


@dataclass(frozen=True)
class TestMessageState:
    """What the test-message dialog says: asked now or before (and where), or why not."""

    __test__ = False

    requested: bool  # a request exists (made now or earlier)
    just_requested: bool
    channel: ChannelView | None
    requested_at: datetime | None = None


def trial_request_state(session: Session, account_id: int, channels: list[ChannelView]) -> TestMessageState:
    row = session.execute(
        select(TestMessageRequest.channel_id, TestMessageRequest.requested_at).where(
            TestMessageRequest.account_id == account_id
        )
    ).one_or_none()
    if row is None:
        return TestMessageState(False, False, pick_test_message_channel(channels))
    return TestMessageState(True, False, next((c for c in channels if c.id == row.channel_id), None), row.requested_at)


def record_trial_request(
    session: Session, account_id: int, acc_settings: AccountSettings, by_crm_user_id: str, now: datetime, lang: str
) -> TestMessageState:
    """Once per account: the first WhatsApp, WABA or Telegram channel gets the test client's
    message (product.md §4), written in ``lang``, the language of the admin's page. The
    conversations work picks up the pending request and sends it."""
    channels = list_channels(session, account_id)
    state = trial_request_state(session, account_id, channels)
    if state.requested or state.channel is None:
        return state
    session.add(
        TestMessageRequest(
            account_id=account_id,
            channel_id=state.channel.id,
            requested_by_crm_user_id=by_crm_user_id,
            requested_at=now,
            lang=lang,
        )
    )
    acc_settings.test_message_requested_at = now
    return TestMessageState(True, True, state.channel, now)


def request_test_message(
    database: Database, account_id: int, by_crm_user_id: str, *, lang: str = ""
) -> TestMessageState:
    """The "send the test message" button for an account that had no suitable channel at its
    first save. Asking twice records one request."""
    with database.transaction() as session:
        acc_settings = lock_account_settings(session, account_id)
        return record_trial_request(session, account_id, acc_settings, by_crm_user_id, utcnow(), lang)
