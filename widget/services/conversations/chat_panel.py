"""The chat panel's writes as its routes call them (``widget.web.chats``): a reply, "No reply
needed", "Retry", and what the panel reads right after them.

``widget.services.conversations.replies`` answers with an outcome; here a refused outcome becomes
a typed error, which the chat blueprint turns into its HTTP answer in one place. Each write commits
in its own transaction; the request's session then drops its read snapshot (``session.rollback()``)
so what it reads next includes the write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from widget.crm.errors import CrmError
from widget.db import Database
from widget.domain.ports import JobQueue
from widget.domain.visibility import Viewer
from widget.extensions import AppServices
from widget.models import Employee
from widget.models.conversations import Chat
from widget.models.trial_messages import TEST_MESSAGE_PENDING, TEST_MESSAGE_SENT
from widget.services.conversations import replies, responsibility
from widget.services.conversations.chat_list.one_chat import (
    ChatHidden,
    MessageRow,
    chat_view,
    one_message,
    visible_chat,
)
from widget.services.conversations.chat_list.rows import ChatRow
from widget.services.settings.trial_message import TestMessageNotice, notice_for, nudge_test_message

log = logging.getLogger(__name__)

# The employee the panel is shown to (None until "Refresh CRM data" saw them), named here so the
# web layer can speak of it without importing the models.
PanelEmployee = Employee


class ChatNotFound(LookupError):
    """No such chat in this account (another account's chat is "not found" too, never "hidden")."""


class NotSetUp(Exception):
    """The identity's CRM user is not a synced employee yet, so they cannot write."""


class ChatTaken(Exception):
    """A colleague took the chat before this reply; ``taken_by`` is their name."""

    def __init__(self, taken_by: str) -> None:
        super().__init__(taken_by)
        self.taken_by = taken_by


class WriteForbidden(Exception):
    """The employee's role on the chat's channel does not allow this write. ``on_offer``: the chat
    is a new client on offer, which only a head may mark as not needing a reply."""

    def __init__(self, on_offer: bool = False) -> None:
        super().__init__(on_offer)
        self.on_offer = on_offer


class KeyReused(Exception):
    """The idempotency key was used before for another reply."""


class MessageNotFound(LookupError):
    """No such message in this account."""


class NotRetryable(Exception):
    """Only a reply that failed to be delivered can be sent again."""


def open_chat(session: Session, account_id: int, employee: Employee | None, chat_id: int) -> None:
    """Check that this employee may see the chat: ``ChatNotFound`` when it is not in the account,
    ``ChatHidden`` (with who took it, when they may know) when it is and they may not."""
    try:
        visible_chat(session, account_id, employee, chat_id)
    except LookupError:
        raise ChatNotFound(chat_id) from None


@dataclass(frozen=True)
class SentReply:
    message: MessageRow
    chat: ChatRow | None  # None: the writer can no longer see the chat
    duplicate: bool  # the idempotency key named a reply stored before: this is that one


def _raise_refusal(outcome: replies.ReplyOutcome, chat_id: int) -> None:
    if outcome.status == replies.NOT_FOUND:
        raise ChatNotFound(chat_id)
    if outcome.status == replies.HIDDEN:
        raise ChatHidden()
    if outcome.status == replies.TAKEN:
        raise ChatTaken(outcome.taken_by)
    if outcome.status == replies.FORBIDDEN:
        raise WriteForbidden(on_offer=outcome.detail == replies.OFFER_DISMISS_TEXT)
    if outcome.status == replies.INVALID:
        raise KeyReused()


def _require_employee(session: Session, account_id: int, chat_id: int, employee: Employee | None) -> Employee:
    """The writer; else "not found" for a chat outside the account, "not set up" for one inside."""
    if employee is not None:
        return employee
    found = session.get(Chat, chat_id)
    if found is None or found.account_id != account_id:
        raise ChatNotFound(chat_id)
    raise NotSetUp()


def send(
    database: Database,
    jobs: JobQueue,
    session: Session,
    account_id: int,
    employee: Employee | None,
    chat_id: int,
    text: str,
    *,
    idempotency_key: str | None,
    expect_offer: bool,
    now: datetime,
) -> SentReply:
    writer = _require_employee(session, account_id, chat_id, employee)
    outcome = replies.send_reply(
        database,
        jobs,
        account_id,
        chat_id,
        writer.id,
        text,
        idempotency_key=idempotency_key,
        expect_offer=expect_offer,
        now=now,
    )
    _raise_refusal(outcome, chat_id)
    session.rollback()  # a fresh snapshot: the reply was committed in its own transaction
    assert outcome.message_id is not None
    sent = one_message(session, account_id, outcome.message_id)
    assert sent is not None
    try:
        chat: ChatRow | None = chat_view(session, account_id, writer, chat_id, limit=1).row
    except (LookupError, ChatHidden):
        chat = None
    return SentReply(sent, chat, outcome.status == replies.DUPLICATE)


def mark_no_reply(
    database: Database, session: Session, account_id: int, employee: Employee | None, chat_id: int, *, now: datetime
) -> ChatRow:
    """ "No reply needed", and the chat as the panel shows it afterwards."""
    writer = _require_employee(session, account_id, chat_id, employee)
    outcome = replies.mark_no_reply(database, account_id, chat_id, writer.id, now=now)
    if outcome.status != replies.DONE:
        _raise_refusal(outcome, chat_id)
    session.rollback()  # a fresh snapshot: the change was committed in its own transaction
    try:
        return chat_view(session, account_id, writer, chat_id, limit=1).row
    except LookupError:  # deleted since: as if it never was
        raise ChatNotFound(chat_id) from None


def retry(
    database: Database, jobs: JobQueue, session: Session, account_id: int, employee: Employee | None, message_id: int
) -> MessageRow:
    """Send a failed reply again, and the message as the panel shows it afterwards."""
    if employee is None:
        raise MessageNotFound(message_id)
    outcome = replies.retry_delivery(database, jobs, account_id, message_id, employee.id)
    if outcome.status == replies.NOT_FOUND:
        raise MessageNotFound(message_id)
    if outcome.status == replies.FORBIDDEN:
        raise WriteForbidden()
    if outcome.status == replies.INVALID:
        raise NotRetryable()
    session.rollback()  # a fresh snapshot: the change was committed in its own transaction
    found = one_message(session, account_id, message_id)
    assert found is not None
    return found


def refresh_responsible(
    database: Database,
    services: AppServices,
    account_id: int,
    chat_id: int,
    max_age: timedelta,
    *,
    reread: Session | None = None,
) -> None:
    """Ask the CRM who is responsible now (the CRM is the source of truth); a CRM hiccup never
    stops the chat from opening. ``reread``: the request's session, whose read snapshot is then
    dropped so it sees the new responsible."""
    try:
        responsibility.refresh_chat_responsible(database, services, account_id, chat_id, max_age)
    except CrmError as exc:
        log.info("chat %s: responsible not refreshed from the CRM: %s", chat_id, exc)
    if reread is not None:
        reread.rollback()  # a fresh snapshot: the change was committed in its own transaction


def panel_notice(jobs: JobQueue, session: Session, account_id: int, viewer: Viewer) -> TestMessageNotice | None:
    """What the panel says to the admin about the test message, if anything. "Go to chats" lands
    here: a request still pending is nudged (the job is idempotent) and read again."""
    notice = notice_for(session, account_id, viewer)
    if notice is not None and notice.status == TEST_MESSAGE_PENDING:
        nudge_test_message(jobs, account_id)
        session.rollback()  # a fresh snapshot: the change was committed in its own transaction
        notice = notice_for(session, account_id, viewer)
    if notice is not None and notice.status == TEST_MESSAGE_SENT and notice.viewer_sees_channel:
        return None  # the chat is in the list: nothing more to say
    return notice
