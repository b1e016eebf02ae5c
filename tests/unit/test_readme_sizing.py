"""README "Deploying at scale" sizes PostgreSQL connections from its own commands: the numbers it
uses must be the ones its commands set, and the sum must fit PostgreSQL's default budget (100 less
3 reserved). The bound per process is measured in tests/integration/test_connection_budget.py."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
DEFAULT_BUDGET = 100 - 3  # max_connections less superuser_reserved_connections


def _one(pattern: str) -> int:
    found = re.findall(pattern, README)
    assert len(set(found)) == 1, (pattern, found)
    return int(found[0])


def test_the_connection_sum_uses_the_readmes_own_settings_and_fits_the_default_budget() -> None:
    pool = _one(r"DB_POOL_SIZE=(\d+)")
    overflow = _one(r"DB_MAX_OVERFLOW=(\d+)")
    web_workers = _one(r"gunicorn -w (\d+) ")
    threads = _one(r"--threads (\d+)")
    job_threads = _one(r"python -m widget\.jobs\.worker (\d+)")
    stated = re.search(
        r"one machine needs (\d+) \u00d7 \((\d+) \+ (\d+) \+ (\d+)\) \+ (\d+) \u00d7 \((\d+) \+ (\d+)\) = (\d+)", README
    )
    assert stated, "the README no longer works the sum out"
    w, t, p, o, jobs, jp, jo, total = map(int, stated.groups())
    assert (w, t, p, o, jp, jo) == (web_workers, threads, pool, overflow, pool, overflow)
    assert total == w * (t + p + o) + jobs * (jp + jo)
    assert total < DEFAULT_BUDGET
    # Each process can serve its threads from its pool, or requests queue for a connection.
    assert pool + overflow >= max(threads, job_threads)
