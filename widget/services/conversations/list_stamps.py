"""The chat list's change stamp: a per-account counter raised by every write that can change what
an employee's chat list shows, in the writer's own transaction.

The chat panel polls every two seconds. Its answer depends on chats, offers, client messages,
channels, employees, roles and the account's options; recomputing it only to find it unchanged
is the list query all over again. Instead the poll reads the account's stamp first (one
primary-key read) and answers 304 while the stamp is the one its ETag was made with.

A writer calls ``note_chat_list_change(session, account_id)`` anywhere in its transaction. The
stamp itself is raised just before that transaction commits (``before_commit``, after the final
flush), so

* the raise commits or rolls back with the write it announces: a poll never sees the write
  without the new stamp, nor a new stamp for a write that did not happen;
* it is ``INSERT … ON CONFLICT DO UPDATE SET stamp = stamp + 1``: concurrent writers serialise on
  the account's row and none of their raises is lost;
* it is the transaction's last statement, so the row lock is held only for the commit and never
  while waiting for another lock (no deadlock with writers that lock chats first).

The poll must read the stamp *before* it reads the list (``widget.web.chats``): a write that
commits in between is then in the list but not in the stamp, and the next poll simply reloads.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from widget.models.chat_list import ChatListStamp

_PENDING = "chat_list_changed"  # session.info key: accounts whose stamp this transaction raises
_table: Any = ChatListStamp.__table__


def note_chat_list_change(session: Session, account_id: int) -> None:
    """This transaction changes what some employee of the account sees in the chat panel."""
    session.info.setdefault(_PENDING, set()).add(int(account_id))


def chat_list_stamp(session: Session, account_id: int) -> int:
    """The account's current stamp (0 before its first change)."""
    found = session.execute(select(ChatListStamp.stamp).where(ChatListStamp.account_id == account_id)).scalar()
    return int(found or 0)


def _raise_stamps(session: Session, account_ids: list[int]) -> None:
    dialect = session.get_bind().dialect.name
    for account_id in sorted(account_ids):  # one order for every writer
        ins: Any = postgresql.insert(_table) if dialect == "postgresql" else sqlite.insert(_table)
        session.execute(
            ins.values(account_id=account_id, stamp=1).on_conflict_do_update(
                index_elements=[_table.c.account_id], set_={"stamp": _table.c.stamp + 1}
            )
        )


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    session.flush()  # the writes first, so the stamp's row lock is the last one taken
    _raise_stamps(session, list(pending))
    pending.clear()


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back or closed: what was noted did not happen
        session.info.pop(_PENDING, None)
