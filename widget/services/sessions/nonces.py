"""Accept-once values (widget JWT ``jti``, launch token ids), atomic across processes."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from widget.models import UsedNonce
from widget.models._base import utcnow


def consume_nonce(session: Session, key: str, expires_at: datetime) -> bool:
    """Record ``key`` as used. False when it was used before (a replay)."""
    try:
        with session.begin_nested():
            session.add(UsedNonce(key=key[:200], expires_at=expires_at))
            session.flush()
    except IntegrityError:
        return False
    return True


def use_once(session: Session, key: str, lifetime: timedelta) -> bool:
    """``consume_nonce`` as its own unit of work: committed when ``key`` is new, rolled back when
    it is a replay (False)."""
    if consume_nonce(session, key, utcnow() + lifetime):
        session.commit()
        return True
    session.rollback()
    return False


def purge_nonces(session: Session, now: datetime | None = None) -> int:
    result = session.execute(delete(UsedNonce).where(UsedNonce.expires_at < (now or utcnow())))
    return int(getattr(result, "rowcount", 0) or 0)
