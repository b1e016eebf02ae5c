"""The documented ways to start us, as real processes with a deployer's bare environment.

``python server.py`` (and ``./run.sh``) is the embedded default; ``gunicorn server:app``,
``flask --app server …`` and ``python -m widget.jobs.worker`` are production starts, which never run
the sandbox by accident: without their settings they stop with one message naming every one missing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from tests.support.processes import BIN, alive, clean_env, environ_of, free_port, run_to_end, started

pytestmark = pytest.mark.slow

PRODUCTION_NAMES = ("SECRET_KEY", "TOKEN_ENCRYPTION_KEY", "PUBLIC_URL", "DATABASE_URL", "GATEWAY_URL")


@pytest.mark.parametrize(
    "argv",
    [
        [str(BIN / "gunicorn"), "-w", "2", "--worker-class", "gthread", "--threads", "2", "server:app"],
        [str(BIN / "flask"), "--app", "server", "db-upgrade"],
        [str(BIN / "flask"), "--app", "server", "purge-uninstalled"],
        [sys.executable, "-m", "widget.jobs.worker", "1"],
    ],
    ids=["gunicorn", "flask-db-upgrade", "flask-purge", "job-worker"],
)
def test_a_production_start_without_its_settings_stops_naming_every_missing_one(tmp_path: Path, argv: list[str]):
    instance = tmp_path / "instance"
    port = free_port()
    env = clean_env(INSTANCE_PATH=instance, GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}")
    code, output = run_to_end(argv, env, timeout=60)
    assert code is not None, f"still running a minute later (the sandbox by accident?):\n{output}"
    assert code != 0, output
    for name in PRODUCTION_NAMES:
        assert f"  - {name}: " in output, output
    assert "KOMMO_CLIENT_ID and KOMMO_CLIENT_SECRET, or BITRIX24_CLIENT_ID and BITRIX24_CLIENT_SECRET" in output
    assert "Traceback" not in output, output
    # One message, once: gunicorn stops in its master (gunicorn.conf.py) before it boots a worker.
    assert output.count("is missing 6 setting(s)") == 1, output
    assert "Booting worker" not in output, output
    assert not instance.exists() or not any(instance.iterdir()), "nothing is generated or created"


def test_gunicorn_with_the_production_settings_serves_without_any_sandbox(tmp_path: Path):
    port, kommo_port, bitrix_port, gateway_port = (free_port() for _ in range(4))
    db = tmp_path / "widget.db"
    env = clean_env(
        INSTANCE_PATH=tmp_path / "instance",
        SECRET_KEY="production-secret-key-0123456789",
        TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        DATABASE_URL=f"sqlite:///{db}",
        GATEWAY_URL="http://127.0.0.1:9/messages",
        KOMMO_CLIENT_ID="real-client-id",
        KOMMO_CLIENT_SECRET="real-client-secret",
        SANDBOX_KOMMO_PORT=kommo_port,
        SANDBOX_BITRIX24_PORT=bitrix_port,
        SANDBOX_GATEWAY_PORT=gateway_port,
    )
    code, output = run_to_end([str(BIN / "flask"), "--app", "server", "db-upgrade"], env)
    assert code == 0, output
    argv = [str(BIN / "gunicorn"), "-w", "1", "--worker-class", "gthread", "--threads", "2"]
    with started([*argv, "-b", f"127.0.0.1:{port}", "server:app"], env, tmp_path / "gunicorn.log") as web:
        web.wait_http(f"http://127.0.0.1:{port}/healthz")
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200
        assert "Wazzup chats for Kommo and Bitrix24" in page.text
        assert "sandbox" not in page.text.lower() and "localhost:" not in page.text
        assert requests.get(f"http://127.0.0.1:{port}/", headers={"Accept": "application/json"}, timeout=5).json() == {
            "service": "wazzup-crm-widget",
            "health": "/healthz",
        }
        for sandbox_port in (kommo_port, bitrix_port, gateway_port):
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://localhost:{sandbox_port}/", timeout=2)
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_python_server_py_runs_the_embedded_default_and_its_worker_inherits_it(tmp_path: Path):
    port, kommo_port, bitrix_port, gateway_port = (free_port() for _ in range(4))
    env = clean_env(
        INSTANCE_PATH=tmp_path / "instance",
        PORT=port,
        SANDBOX_KOMMO_PORT=kommo_port,
        SANDBOX_BITRIX24_PORT=bitrix_port,
        SANDBOX_GATEWAY_PORT=gateway_port,
    )
    with started([sys.executable, "server.py"], env, tmp_path / "server.log") as server:
        server.wait_http(f"http://127.0.0.1:{port}/healthz")
        assert requests.get(f"http://localhost:{kommo_port}/shell", timeout=5).status_code == 200
        worker = server.child_running("widget.jobs.worker")
        assert environ_of(worker)["SANDBOX"] == "1"
        time.sleep(3)  # a worker that took itself for a production start stops within a second
        assert alive(worker), f"the job worker stopped:\n{server.output()}"
        assert (tmp_path / "instance" / "secret_key").exists()
