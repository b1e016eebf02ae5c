"""Request-scoped helpers for the web layer: the database session of this request."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session

from widget.services.unit_of_work import end_session, open_session


def get_db() -> Session:
    session: Session | None = getattr(g, "db_session", None)
    if session is None:
        session = g.db_session = open_session()
    return session


def init_app(app: Flask) -> None:
    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            end_session(session, failed=exc is not None)
