"""Stopping ``python server.py`` stops everything it started: the job worker is a process of its own
(the sandboxes are threads of the server, so they end with it)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.processes import Running, alive, clean_env, descendants, free_port, started, wait_until

pytestmark = pytest.mark.slow


@contextmanager
def embedded(tmp_path: Path) -> Iterator[tuple[Running, int]]:
    """``python server.py`` on ports of its own, up and serving, with its job worker running."""
    port = free_port()
    env = clean_env(
        INSTANCE_PATH=tmp_path / "instance",
        PORT=port,
        SANDBOX_KOMMO_PORT=free_port(),
        SANDBOX_BITRIX24_PORT=free_port(),
        SANDBOX_GATEWAY_PORT=free_port(),
    )
    with started([sys.executable, "server.py"], env, tmp_path / "server.log") as server:
        server.wait_http(f"http://127.0.0.1:{port}/healthz")
        yield server, server.child_running("widget.jobs.worker")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_the_server_and_its_job_worker(tmp_path: Path, signum: int):
    with embedded(tmp_path) as (server, worker):
        children = descendants(server.pid)
        assert worker in children
        os.kill(server.pid, signum)  # `kill <pid>` / `kill -INT <pid>`: the server alone is told
        server.proc.wait(30)
        assert server.proc.returncode == 0, server.output()
        wait_until(lambda: not any(alive(p) for p in children), 15, "every child of the server to stop")
        assert "job worker stopped" in server.output()


def test_a_worker_whose_server_was_killed_stops_by_itself(tmp_path: Path):
    with embedded(tmp_path) as (server, worker):
        os.kill(server.pid, signal.SIGKILL)  # no chance to clean up: the worker must notice
        server.proc.wait(10)
        wait_until(lambda: not alive(worker), 15, "the orphaned job worker to stop")
        assert "the server that started this worker is gone" in server.output()
