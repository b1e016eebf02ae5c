"""Task registry independent of the Huey instance, so each app's queue registers the same jobs.

Jobs are plain functions taking ids, registered by name (the function's name: work queued by an
older deploy must still find its task). ``register_all`` hands them to one Huey, each run inside
the given Flask app (database, settings, collaborators).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, has_app_context
from huey import Huey, crontab
from huey.api import TaskWrapper

# What the job modules declare (filled at their import; the same in every process).
_TASKS: dict[str, Callable[..., Any]] = {}
_PERIODIC: dict[str, tuple[Callable[[], Any], int]] = {}


def job(fn: Callable[..., Any]) -> Callable[..., Any]:
    _TASKS[fn.__name__] = fn
    return fn


def periodic(every_minutes: int) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def deco(fn: Callable[[], Any]) -> Callable[[], Any]:
        _PERIODIC[fn.__name__] = (fn, every_minutes)
        return fn

    return deco


def jobs() -> dict[str, Callable[..., Any]]:
    """Every job function by task name."""
    import widget.jobs.tasks  # noqa: F401  (defines the jobs)

    return dict(_TASKS)


def _in_app(fn: Callable[..., Any], app: Flask) -> Callable[..., Any]:
    def runner(*args: Any) -> Any:
        if has_app_context():
            return fn(*args)
        with app.app_context():
            return fn(*args)

    runner.__name__ = fn.__name__
    runner.__qualname__ = fn.__qualname__
    return runner


def register_all(huey: Huey, app: Flask) -> dict[str, TaskWrapper]:
    """Register every job (and the periodic sweeps) on ``huey``, run inside ``app``."""
    tasks = jobs()
    wrapped = {name: huey.task(retries=5, retry_delay=10, name=name)(_in_app(fn, app)) for name, fn in tasks.items()}
    for name, (pfn, minutes) in _PERIODIC.items():
        huey.periodic_task(crontab(minute=f"*/{minutes}"), name=name)(_in_app(pfn, app))
    return wrapped
