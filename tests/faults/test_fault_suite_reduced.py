"""The fault and load suite, reduced: each scenario with ~20 new clients per CRM and short faults,
against PostgreSQL, gunicorn, job workers on Redis and both sandbox CRMs as separate processes.

What a user would notice is asserted: every client who wrote has exactly one contact and one
lead/deal in the CRM (lost 0, duplicated 0), and the gateway never had a delivery refused. How long
draining took is printed, never asserted. The full run is ``python -m faults`` (see the README).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

pytestmark = [
    pytest.mark.faults,
    pytest.mark.postgres_only(
        reason="the fault suite needs PostgreSQL: it drops connections and runs several server and worker "
        "processes on one database"
    ),
    pytest.mark.slow,
]


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="module")
def rows() -> Iterator[list]:
    if not _redis_up():
        pytest.fail("the fault suite needs Redis on 127.0.0.1:6379 (the job queue of the worker processes)")
    from faults.__main__ import reduced_config
    from faults.stack import Stack, drop_database, recreate_database, with_database
    from faults.suite import HEADER, REDUCED, format_row, run_suite

    # Its own database beside the test suite's: the scenarios terminate every connection to it.
    url = with_database(os.environ["TEST_DATABASE_URL"], f"faults_{uuid.uuid4().hex[:8]}")
    recreate_database(url)
    try:
        with Stack(reduced_config(url)) as stack:
            try:
                found = run_suite(stack, REDUCED, echo=lambda line: None)
            except Exception:
                print(stack.diagnostics())
                raise
    finally:
        drop_database(url)
    print("\n" + HEADER + "\n" + "\n".join(format_row(r) for r in found))
    yield found


SCENARIOS = ["duplicates", "outage", "throttling", "tokens", "worker-kill", "db-drop", "slow-crm"]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("crm", ["kommo", "bitrix24"])
def test_no_client_is_lost_or_duplicated(rows: list, scenario: str, crm: str):
    [row] = [r for r in rows if r.scenario == scenario and r.crm == crm]
    assert row.drain_s is not None, f"work was still pending when the suite gave up waiting: {row}"
    assert (row.lost, row.duplicated) == (0, 0), row
    assert row.contacts == row.entities == row.clients, row
    assert row.refused == 0, f"the gateway had deliveries refused: {row.notes}"
