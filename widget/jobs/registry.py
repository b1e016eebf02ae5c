"""What the job modules declare: plain functions taking ids, by name (the function's name: work
queued by an older deploy must still find its task), and the periodic sweeps with their interval.

Independent of any Huey instance: ``widget.jobs.queue`` registers them on each app's queue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# What the job modules declare (filled at their import; the same in every process).
TASKS: dict[str, Callable[..., Any]] = {}
PERIODIC: dict[str, tuple[Callable[[], Any], int]] = {}


def job(fn: Callable[..., Any]) -> Callable[..., Any]:
    TASKS[fn.__name__] = fn
    return fn


def periodic(every_minutes: int) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def deco(fn: Callable[[], Any]) -> Callable[[], Any]:
        PERIODIC[fn.__name__] = (fn, every_minutes)
        return fn

    return deco
