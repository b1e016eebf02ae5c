"""Request-scoped helpers for the web layer: the database session of this request."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session

from widget.db import db


def get_db() -> Session:
    session: Session | None = getattr(g, "db_session", None)
    if session is None:
        session = g.db_session = db.session()
    return session


def init_app(app: Flask) -> None:
    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            if exc is not None:
                session.rollback()
            session.close()
