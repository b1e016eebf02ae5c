"""The embedded default: ``python server.py`` on a fresh machine with no account anywhere.

Applies migrations, starts the sandbox Kommo, Bitrix24 and messaging gateway (threads of this
process, with their CRM shell pages) on loopback, starts a job worker process, and serves the app on
HOST:PORT. Stopping the server (SIGTERM, SIGINT or Ctrl-C, SIGHUP) stops the worker with it; a worker
whose server was killed outright (SIGKILL) notices and stops by itself (``widget.jobs.worker``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, MutableMapping
from types import FrameType

from flask import Flask
from werkzeug.serving import run_simple

from widget.config import ConfigError, Settings
from widget.extensions import AppServices
from widget.migrate import upgrade

# Starts the sandbox CRMs, gateway and messengers for these settings; returns their addresses by name.
StartSandboxes = Callable[[Settings], dict[str, str]]

log = logging.getLogger("widget")

# Set in the job worker's environment: the pid of the server that started it, which it watches.
PARENT_PID_ENV = "WIDGET_PARENT_PID"
WORKER_STOP_SECONDS = 10.0


def use_embedded_default(environ: MutableMapping[str, str]) -> None:
    """``python server.py`` is the one start that runs the sandbox without being told to. Recorded
    in the environment, so the job worker it starts (which inherits it) runs the same default. An
    explicit ``SANDBOX`` wins."""
    if not environ.get("SANDBOX"):
        environ["SANDBOX"] = "1"


def run(start_sandboxes: StartSandboxes) -> int:
    """``python server.py``: build the app on the embedded default and serve it, with the sandboxes
    (``sandbox/``, outside the product package) started by ``start_sandboxes``."""
    use_embedded_default(os.environ)
    from widget import create_app

    try:
        app = create_app()
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    return main(app, start_sandboxes)


class _Stop(Exception):
    """Raised in the main thread by a stop signal, to leave ``run_simple`` through ``finally``."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _publish_channels(app: Flask) -> None:
    """The sandbox messaging gateway keeps nothing across restarts: list every channel again."""
    from widget.db import db
    from widget.services.channels.sandbox_gateway import publish_channels
    from widget.services.channels.transports import TransportError

    with app.app_context():
        try:
            count = publish_channels(db, app.extensions["widget"])
        except TransportError as exc:
            log.warning("the sandbox messaging gateway did not take our channels: %s", exc)
        else:
            log.info("the sandbox messaging gateway lists our %d channel(s)", count)


def main(app: Flask, start_sandboxes: StartSandboxes) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services: AppServices = app.extensions["widget"]
    settings = services.settings
    # SIGTERM's default would end this process at once and orphan the worker (atexit does not run).
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    worker: subprocess.Popen[bytes] | None = None
    try:
        upgrade(settings.database_url)
        if settings.sandbox:
            urls = start_sandboxes(settings)
            for name, url in urls.items():
                log.info("sandbox %s: %s", name, url)
            _publish_channels(app)
        worker = _start_worker(settings.instance_path)
        log.info("serving on http://%s:%s (public URL %s)", settings.host, settings.port, settings.public_url)
        if settings.sandbox:
            log.info(
                "open the CRM shell: %s/shell  (Kommo)  and  %s/shell  (Bitrix24)",
                settings.sandbox_kommo_url,
                settings.sandbox_bitrix24_url,
            )
        run_simple(settings.host, settings.port, app, threaded=True, use_reloader=False)
    except _Stop as stop:
        log.info("%s: stopping", stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the worker's stop short
        if worker is not None:
            _stop_worker(worker)
    return 0


def _start_worker(instance_path: str) -> subprocess.Popen[bytes]:
    from widget.config import ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("INSTANCE_PATH", instance_path)
    env[PARENT_PID_ENV] = str(os.getpid())
    return subprocess.Popen([sys.executable, "-m", "widget.jobs.worker", "2"], env=env, cwd=ROOT)


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Huey stops at once; every job is safe to run again), then SIGKILL if it hangs."""
    if worker.poll() is not None:
        return
    worker.terminate()
    try:
        worker.wait(WORKER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    log.info("job worker stopped")
