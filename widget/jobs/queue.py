"""The Huey-backed ``JobQueue`` of one app: SQLite storage on the embedded default, Redis when
``REDIS_URL`` is set, or inline (``immediate``) for tests.

One per app, built by ``create_app`` and held on its ``AppServices``; the Huey instance is made
when first needed (never at import or in the factory), and every job it runs gets this app.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, has_app_context
from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.api import TaskWrapper

from widget.config import Settings
from widget.jobs.registry import PERIODIC, TASKS

log = logging.getLogger(__name__)

NUDGE_INTERVAL = 0.01  # seconds between two coalesced pushes of one job by one process (``_Nudger``)


def jobs() -> dict[str, Callable[..., Any]]:
    """Every job function by task name."""
    import widget.jobs.tasks  # noqa: F401  (defines the jobs)

    return dict(TASKS)


TASK_NAMESPACE = "widget.jobs.registry"


def _in_app(fn: Callable[..., Any], app: Flask) -> Callable[..., Any]:
    def runner(*args: Any) -> Any:
        if has_app_context():
            return fn(*args)
        with app.app_context():
            return fn(*args)

    runner.__name__ = fn.__name__
    runner.__qualname__ = fn.__qualname__
    # Huey names a task "<module>.<name>" by its function, and a message in Redis carries that name.
    # Jobs were registered from widget.jobs.registry before this module held the wrapper: keep the
    # names they had, or work queued by an older deploy would find no task to run.
    runner.__module__ = TASK_NAMESPACE
    return runner


def register_all(huey: Huey, app: Flask) -> dict[str, TaskWrapper]:
    """Register every job (and the periodic sweeps) on ``huey``, run inside ``app``."""
    tasks = jobs()
    wrapped = {name: huey.task(retries=5, retry_delay=10, name=name)(_in_app(fn, app)) for name, fn in tasks.items()}
    for name, (pfn, minutes) in PERIODIC.items():
        huey.periodic_task(crontab(minute=f"*/{minutes}"), name=name)(_in_app(pfn, app))
    return wrapped


def build_huey(settings: Settings, *, immediate: bool = False) -> Huey:
    if immediate:
        return Huey("widget", immediate=True)
    if settings.redis_url:
        return RedisHuey("widget", url=settings.redis_url)
    os.makedirs(settings.instance_path, exist_ok=True)
    return SqliteHuey("widget", filename=os.path.join(settings.instance_path, "huey.db"))


class HueyJobQueue:
    """``widget.domain.ports.JobQueue`` on Huey. Task names are the job functions' names, so work
    queued by an older deploy still runs."""

    def __init__(self, app: Flask, settings: Settings, *, immediate: bool = False) -> None:
        self.app = app
        self._settings = settings
        self._immediate = immediate
        self._huey: Huey | None = None
        self._tasks: dict[str, TaskWrapper] = {}
        self._lock = threading.Lock()
        self._nudgers: dict[str, _Nudger] = {}

    @property
    def huey(self) -> Huey:
        """This app's Huey, with every job registered (the worker consumes it)."""
        with self._lock:
            if self._huey is None:
                huey = build_huey(self._settings, immediate=self._immediate)
                self._tasks = register_all(huey, self.app)
                self._huey = huey
            return self._huey

    def enqueue(self, name: str, *args: Any, delay: timedelta | None = None) -> None:
        """Nudge a job. The work it does is already recorded in the database, so a lost nudge is
        picked up by the periodic sweep."""
        huey = self.huey
        try:
            if delay is not None and not huey.immediate:
                self._tasks[name].schedule(args=args, delay=delay.total_seconds())
            else:
                self._tasks[name](*args)
        except Exception:  # the sweep will retry; the request must not fail because a queue hiccuped
            log.exception("could not enqueue %s%r", name, args)

    def nudge_soon(self, name: str) -> None:
        """At once when jobs run inline (tests); else through this process's nudger of ``name``."""
        if self.huey.immediate:
            self.enqueue(name)
            return
        nudger = self._nudgers.get(name)
        if nudger is None:
            with self._lock:
                nudger = self._nudgers.setdefault(name, _Nudger(lambda: self.enqueue(name), name))
        nudger.poke()


class _Nudger:
    """Coalesces one job's nudges of one process into few queue pushes.

    A request only sets an event; one thread per process wakes, clears it and pushes once, and the
    job processes everything pending. Every caller sets the event after its commit, and the thread
    clears it before it pushes, so each commit is followed by a push made after it: none waits for
    the sweep unless the process dies in between.
    """

    def __init__(self, push: Callable[[], None], name: str) -> None:
        self._push = push
        self._name = name
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def poke(self) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():  # first use in this process (gunicorn forks after import)
                    self._event = threading.Event()
                    threading.Thread(
                        target=self._loop, args=(self._event,), name=f"nudger-{self._name}", daemon=True
                    ).start()
                    self._pid = os.getpid()
        self._event.set()

    def _loop(self, event: threading.Event) -> None:
        while True:
            event.wait()
            event.clear()
            try:
                self._push()
            except Exception:  # the periodic sweep picks the work up
                log.exception("could not nudge %s", self._name)
            # At most one push per interval: under load the callers share it (a queue push costs
            # more CPU than an acknowledgement's own statements), at the price of a few
            # milliseconds before the job starts.
            time.sleep(NUDGE_INTERVAL)
