"""The PostgreSQL connections one gunicorn worker may hold, as README "Deploying at scale" sizes them:
DB_POOL_SIZE + DB_MAX_OVERFLOW through the pool, plus one per web thread that acknowledged a
gateway delivery (``PostgresIntake``). Measured on a real gunicorn under concurrent load."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from flask import Flask
from sqlalchemy.engine import make_url

from tests.conftest import base_env
from tests.support.conversations import World, make_world
from tests.support.processes import BIN, ROOT, free_port, started
from widget.services.channels.signing import sign

pytestmark = [pytest.mark.postgres_only(reason="counts PostgreSQL backends"), pytest.mark.slow]

# No overflow: the pool closes an overflow connection when it comes back, and the sampler could see
# that backend still exiting beside the one opened next (CI once counted 13 of 12 under load). The
# bound it checks is the README's formula all the same.
WORKERS, THREADS, POOL, OVERFLOW = 2, 4, 2, 0
TAG = "h2-connection-budget"


def _peak(dsn: str, load: Callable[[], None]) -> int:
    """The most backends tagged ``TAG`` seen at once while ``load`` runs (sampled every 10 ms)."""
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not done.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (TAG,)
                ).fetchone()
                peak = max(peak, row[0] if row else 0)
                time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        load()
    finally:
        done.set()
        sampler.join()
    return peak


def _hammer(calls: list[Callable[[], requests.Response]]) -> None:
    with ThreadPoolExecutor(16) as pool:
        for response in pool.map(lambda call: call(), calls):
            assert response.status_code == 200, response.text


def test_a_web_worker_holds_at_most_its_pool_plus_one_connection_per_thread(
    app: Flask, database_url: str, instance_dir: Path, tmp_path: Path
):
    world: World = make_world(app, roles={1: ("seller", True)})
    port = free_port()
    url = make_url(database_url).update_query_dict({"application_name": TAG}).render_as_string(hide_password=False)
    env = base_env(
        instance_dir,
        url,
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        DB_POOL_SIZE=POOL,
        DB_MAX_OVERFLOW=OVERFLOW,
        INSTANCE_PATH=tmp_path / "instance",
        PATH="/usr/bin:/bin",
        PYTHONPATH=ROOT,
    )
    argv = [str(BIN / "gunicorn"), "-w", str(WORKERS), "--worker-class", "gthread", "--threads", str(THREADS)]
    plain_dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    base = f"http://127.0.0.1:{port}"
    with started([*argv, "-b", f"127.0.0.1:{port}", "server:app"], env, tmp_path / "gunicorn.log") as web:
        web.wait_http(f"{base}/healthz")
        # Pages and probes go through the pool alone.
        pooled = _peak(plain_dsn, lambda: _hammer([lambda: requests.get(f"{base}/healthz", timeout=30)] * 400))
        assert pooled <= WORKERS * (POOL + OVERFLOW), web.output()

        def deliver(n: int) -> Any:
            raw = json.dumps(world.payload(n)).encode()
            headers = {"X-Gateway-Signature": sign(world.secret, raw), "Content-Type": "application/json"}
            return lambda: requests.post(f"{base}/gateway/messages", data=raw, headers=headers, timeout=30)

        mixed = [deliver(n) for n in range(300)] + [lambda: requests.get(f"{base}/healthz", timeout=30)] * 300
        everything = _peak(plain_dsn, lambda: _hammer(mixed))
        assert everything <= WORKERS * (THREADS + POOL + OVERFLOW), web.output()
