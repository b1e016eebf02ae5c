"""The test message (product.md §4): after the first save, a test client writes to the account's
first WhatsApp, WABA or Telegram channel, so the whole new-client flow runs for real — the client
is looked up in the CRM, the contact and lead/deal are created as configured (through the outbox),
distribution is applied and the chat shows up in the chat panel.

The settings page records the request (``TestMessageRequest``, one per account); this module
sends it. The message goes in the way a client's would: through the sandbox messaging gateway on
the embedded default (a signed POST to our ``/gateway/messages``), otherwise straight into the
same inbound path (``store_inbound``) with a recognisable test client. Its message id is fixed per
request, so however often this runs, one message is stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from widget.db import Database
from widget.domain.inbound import InboundMessage
from widget.domain.languages import normalise
from widget.domain.ports import JobQueue
from widget.domain.roles import capabilities
from widget.domain.visibility import Viewer
from widget.extensions import AppServices
from widget.models import Channel, Employee
from widget.models.trial_messages import (
    TEST_MESSAGE_FAILED,
    TEST_MESSAGE_PENDING,
    TEST_MESSAGE_SENT,
    TestMessageRequest,
)
from widget.services.accounts.state import account_is_usable
from widget.services.channels.signing import get_or_create_gateway_secret
from widget.services.channels.transports import ClientMessage, ClientPlayer, TransportError
from widget.services.inbound.messages import STORED, store_inbound
from widget.services.outbox import clock

log = logging.getLogger(__name__)

JOB_NAME = "send_test_message"
TEST_CLIENT_NAME = "Wazzup test client"

# Outcomes of send_test_message.
NOTHING = "nothing"  # no pending request
SENT = TEST_MESSAGE_SENT
PENDING = TEST_MESSAGE_PENDING  # the gateway could not be reached; the sweep tries again
FAILED = TEST_MESSAGE_FAILED


def test_chat_id(account_id: int) -> str:
    """The test client's messenger chat id: recognisable, one per account."""
    return f"wazzup-test-{account_id}"


def _text(lang: str) -> str:
    with force_locale(normalise(lang)):
        return _(
            "Hello! I am a test client. Answer me to see how chats work: the contact and the deal or "
            "lead are already in your CRM."
        )


def send_test_message(database: Database, services: AppServices, account_id: int) -> str:
    """Make the test client write, once per request. Safe to run any number of times, anywhere."""
    now = clock(services)
    with database.transaction() as session:
        request = session.get(TestMessageRequest, account_id)
        if request is None or request.status != TEST_MESSAGE_PENDING:
            return NOTHING
        if not account_is_usable(session, account_id):
            return NOTHING  # uninstalled: a reinstall within the grace period picks it up again
        channel = session.get(Channel, request.channel_id)
        assert channel is not None  # the request goes with its channel (ON DELETE CASCADE)
        # The language of the page the admin saved on; a request recorded before it was kept
        # falls back to the admin's language in the CRM (Kommo's users carry one, Bitrix24's not).
        lang = (
            request.lang
            or session.execute(
                select(Employee.lang).where(
                    Employee.account_id == account_id, Employee.crm_user_id == request.requested_by_crm_user_id
                )
            ).scalar_one_or_none()
        )
        secret = get_or_create_gateway_secret(session, services.box, account_id)
        message = ClientMessage(
            message_id=f"wazzup-test:{account_id}:{int(request.requested_at.timestamp())}",
            channel_id=channel.id,
            chat_type=channel.transport,
            chat_id=test_chat_id(account_id),
            phone=None,  # no real person's number ends up in the CRM
            sender_name=TEST_CLIENT_NAME,
            text=_text(lang or "en"),
            sent_at=now,
            answers=True,
        )
    transport = services.transport
    try:
        if isinstance(transport, ClientPlayer):
            transport.play_client(message, secret)
        else:
            result = store_inbound(
                database,
                services.jobs,
                account_id,
                InboundMessage(
                    message_id=message.message_id,
                    channel_id=message.channel_id,
                    chat_type=message.chat_type,
                    chat_id=message.chat_id,
                    phone=None,
                    sender_name=message.sender_name,
                    text=message.text,
                    sent_at=message.sent_at,
                ),
                now=now,
            )
            if result.status not in (STORED, "duplicate"):
                raise TransportError("The test message's channel no longer exists.", retryable=False)
    except TransportError as exc:
        if exc.retryable:
            log.info("test message of account %s waits: %s", account_id, exc.reason)
            return PENDING
        _finish(database, account_id, TEST_MESSAGE_FAILED, now)
        log.warning("test message of account %s failed: %s", account_id, exc.reason)
        return FAILED
    _finish(database, account_id, TEST_MESSAGE_SENT, now)
    return SENT


def _finish(database: Database, account_id: int, status: str, now: datetime) -> None:
    with database.transaction() as session:
        session.execute(
            update(TestMessageRequest)
            .where(TestMessageRequest.account_id == account_id, TestMessageRequest.status == TEST_MESSAGE_PENDING)
            .values(status=status, processed_at=now)
        )


def pending_accounts(database: Database, limit: int = 200) -> list[int]:
    with database.transaction() as session:
        return [
            int(i)
            for i in session.execute(
                select(TestMessageRequest.account_id)
                .where(TestMessageRequest.status == TEST_MESSAGE_PENDING)
                .limit(limit)
            ).scalars()
        ]


def nudge_test_message(jobs: JobQueue, account_id: int) -> None:
    jobs.enqueue(JOB_NAME, account_id)


# --- what the chat panel says about it ----------------------------------------------------------


@dataclass(frozen=True)
class TestMessageNotice:
    __test__ = False

    status: str  # pending / sent / failed
    channel_id: int
    channel_name: str
    viewer_sees_channel: bool


def notice_for(session: Session, account_id: int, viewer: Viewer) -> TestMessageNotice | None:
    """For the admin who asked: the test message is on its way, or went to a channel where they
    have no role (so they would look for it in vain)."""
    row = session.execute(
        select(TestMessageRequest.status, Channel.id, Channel.name)
        .join(Channel, Channel.id == TestMessageRequest.channel_id)
        .where(TestMessageRequest.account_id == account_id)
    ).first()
    if row is None:
        return None
    sees = capabilities(viewer.role_on(row.id)).sees_anything
    return TestMessageNotice(row.status, row.id, row.name, sees)
