"""A job's name travels in the queue (Redis) with its arguments, so a deploy must not rename jobs:
work queued by the old code is run by the new workers only when the names still match."""

from __future__ import annotations

from flask import Flask
from huey import MemoryHuey

from widget.jobs.queue import jobs, register_all
from widget.jobs.registry import PERIODIC

# The names every deploy so far has put in the queue ("<module>.<job>", Huey's naming).
NAMESPACE = "widget.jobs.registry"


def test_every_job_keeps_the_name_older_deploys_queued_it_under() -> None:
    huey = MemoryHuey("names")
    register_all(huey, Flask(__name__))
    registered = set(huey._registry._registry)
    expected = {f"{NAMESPACE}.{name}" for name in [*jobs(), *PERIODIC]}
    assert expected <= registered, sorted(expected - registered)
    assert "widget.jobs.registry.run_crm_operation" in registered
    assert "widget.jobs.registry.process_inbound" in registered
