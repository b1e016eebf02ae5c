"""Test wiring of the app's collaborators: run jobs inline, hand nudges to the test, plug one CRM
port in for every CRM. Each sets a typed field of the app's ``AppServices``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from flask import Flask

from widget.domain.ports import CrmPort
from widget.extensions import AppServices, CrmPortFactory
from widget.jobs.queue import HueyJobQueue, jobs


def services_of(app: Flask) -> AppServices:
    services: AppServices = app.extensions["widget"]
    return services


def run_jobs_inline(app: Flask) -> HueyJobQueue:
    """Jobs run at once, inside the call that nudges them (Huey's immediate mode)."""
    services = services_of(app)
    queue = HueyJobQueue(app, services.settings, immediate=True)
    services.jobs = queue
    return queue


class CallQueue:
    """A ``JobQueue`` that hands every nudge to ``on_enqueue(name, *args, delay=...)``."""

    def __init__(self, on_enqueue: Callable[..., Any]) -> None:
        self.on_enqueue = on_enqueue

    def enqueue(self, name: str, *args: Any, delay: timedelta | None = None) -> None:
        self.on_enqueue(name, *args, delay=delay)

    def nudge_soon(self, name: str) -> None:
        self.on_enqueue(name, delay=None)


@contextmanager
def jobs_replaced(app: Flask, on_enqueue: Callable[..., Any]) -> Iterator[CallQueue]:
    """Nudges go to ``on_enqueue`` inside the block; the app's queue is back after it."""
    services = services_of(app)
    real = services.jobs
    queue = CallQueue(on_enqueue)
    services.jobs = queue
    try:
        yield queue
    finally:
        services.jobs = real


def run_job(app: Flask, name: str, *args: Any) -> None:
    """Run one job now, as the worker would (inside the app)."""
    with app.app_context():
        jobs()[name](*args)


def every_crm(port: CrmPort | CrmPortFactory, app: Flask) -> dict[str, CrmPortFactory]:
    """The app's CRM port factories with ``port`` (an adapter or a factory) for every CRM."""
    factory: CrmPortFactory = port if callable(port) and not isinstance(port, CrmPort) else (lambda d, s, a: port)  # type: ignore[assignment,return-value]
    return {crm: factory for crm in services_of(app).crm_ports}


def use_crm_port(app: Flask, port: CrmPort | CrmPortFactory) -> None:
    """Every account's CRM work goes to ``port`` (an adapter, or a factory like the real ones)."""
    services = services_of(app)
    services.crm_ports = every_crm(port, app)


def jobs_of(holder: Any) -> Any:
    """The job queue of ``holder.app`` (a test world or flow): what the services get from the app."""
    return services_of(holder.app).jobs
