"""Task registry independent of the Huey instance, so the queue can be chosen at run time.

Jobs are plain functions taking ids. ``enqueue`` hands one to whatever Huey this process uses;
``run_in_app`` gives it the Flask app (database, settings) of this process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask, current_app, has_app_context
from huey import Huey, crontab
from huey.api import TaskWrapper

from widget.jobs.queue import get_huey

log = logging.getLogger(__name__)

_TASKS: dict[str, Callable[..., Any]] = {}
_PERIODIC: dict[str, tuple[Callable[[], Any], int]] = {}
_wrapped: dict[int, dict[str, TaskWrapper]] = {}
_app: Flask | None = None


def job(fn: Callable[..., Any]) -> Callable[..., Any]:
    _TASKS[fn.__name__] = fn
    return fn


def periodic(every_minutes: int) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def deco(fn: Callable[[], Any]) -> Callable[[], Any]:
        _PERIODIC[fn.__name__] = (fn, every_minutes)
        return fn

    return deco


def bind_app(app: Flask) -> None:
    global _app
    _app = app


def _in_app(fn: Callable[..., Any]) -> Callable[..., Any]:
    def runner(*args: Any) -> Any:
        if has_app_context():
            return fn(*args)
        if _app is None:
            raise RuntimeError("no Flask app bound for jobs (call widget.jobs.registry.bind_app)")
        with _app.app_context():
            return fn(*args)

    runner.__name__ = fn.__name__
    runner.__qualname__ = fn.__qualname__
    return runner


def register_all(huey: Huey) -> dict[str, TaskWrapper]:
    import widget.jobs.tasks  # noqa: F401  (defines the jobs)

    key = id(huey)
    if key not in _wrapped:
        wrapped = {name: huey.task(retries=5, retry_delay=10, name=name)(_in_app(fn)) for name, fn in _TASKS.items()}
        for name, (pfn, minutes) in _PERIODIC.items():
            huey.periodic_task(crontab(minute=f"*/{minutes}"), name=name)(_in_app(pfn))
        _wrapped[key] = wrapped
    return _wrapped[key]


def enqueue(name: str, *args: Any, delay: timedelta | None = None) -> None:
    """Nudge a job. The work it does is already recorded in the database, so a lost nudge is
    picked up by the periodic sweep."""
    huey = get_huey()
    tasks = register_all(huey)
    app = current_app._get_current_object() if has_app_context() else _app  # type: ignore[attr-defined]
    if app is not None and "enqueue" in app.extensions["widget"].overrides:
        app.extensions["widget"].overrides["enqueue"](name, *args, delay=delay)
        return
    try:
        if delay is not None and not huey.immediate:
            tasks[name].schedule(args=args, delay=delay.total_seconds())
        else:
            tasks[name](*args)
    except Exception:  # the sweep will retry; the request must not fail because a queue hiccuped
        log.exception("could not enqueue %s%r", name, args)
