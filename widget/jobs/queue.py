"""The Huey instance: SQLite storage on the embedded default, Redis when ``REDIS_URL`` is set.

Built from the environment when first asked for (never at import), so tests and the web process
choose their storage before any task is enqueued.
"""

from __future__ import annotations

import os
import threading

from huey import Huey, RedisHuey, SqliteHuey

from widget.config import Settings

_huey: Huey | None = None
_lock = threading.Lock()


def build_huey(settings: Settings, *, immediate: bool = False) -> Huey:
    if immediate:
        return Huey("widget", immediate=True)
    if settings.redis_url:
        return RedisHuey("widget", url=settings.redis_url)
    os.makedirs(settings.instance_path, exist_ok=True)
    return SqliteHuey("widget", filename=os.path.join(settings.instance_path, "huey.db"))


def get_huey() -> Huey:
    global _huey
    with _lock:
        if _huey is None:
            _huey = build_huey(Settings.from_env())
        return _huey


def set_huey(huey: Huey) -> None:
    """Choose the queue for this process (the app factory's caller, the worker, the tests)."""
    global _huey
    with _lock:
        _huey = huey
