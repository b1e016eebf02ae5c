"""The database as the web layer reaches it, without importing ``widget.db``.

Services own their transactions: a write opens ``Database.transaction()`` (or commits the session
it was handed, as ``sessions.nonces.use_once`` does), so routes never commit or roll back. A route
hands ``database()`` to services that write, and reads through one session per request
(``widget.web.context.get_db``), opened and ended here."""

from __future__ import annotations

from sqlalchemy.orm import Session

from widget.db import Database, db


def database() -> Database:
    """The process's database, for services that open their own transactions."""
    return db


def open_session() -> Session:
    """A session for one request's reads."""
    return db.session()


def reread(session: Session) -> None:
    """End ``session``'s read snapshot, so its next read sees what a service committed in its own
    transaction since (SQLite keeps a reader's snapshot until its transaction ends)."""
    session.rollback()


def end_session(session: Session, failed: bool) -> None:
    """The request is over: drop what it left uncommitted (nothing, unless it failed) and close."""
    if failed:
        session.rollback()
    session.close()
