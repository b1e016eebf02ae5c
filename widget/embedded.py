"""The embedded default: ``python server.py`` on a fresh machine with no account anywhere.

Applies migrations, starts the sandbox Kommo and Bitrix24 (with their CRM shell pages) on
loopback, starts a job worker process, and serves the app on HOST:PORT.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
from collections.abc import MutableMapping

from flask import Flask
from werkzeug.serving import run_simple

from widget.config import ConfigError
from widget.extensions import AppServices
from widget.migrate import upgrade

log = logging.getLogger("widget")


def use_embedded_default(environ: MutableMapping[str, str]) -> None:
    """``python server.py`` is the one start that runs the sandbox without being told to. Recorded
    in the environment, so the job worker it starts (which inherits it) runs the same default. An
    explicit ``SANDBOX`` wins."""
    if not environ.get("SANDBOX"):
        environ["SANDBOX"] = "1"


def run() -> int:
    """``python server.py``: build the app on the embedded default and serve it."""
    use_embedded_default(os.environ)
    from widget import create_app

    try:
        app = create_app()
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    return main(app)


def main(app: Flask) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    services: AppServices = app.extensions["widget"]
    settings = services.settings
    upgrade(settings.database_url)

    if settings.sandbox:
        from widget.sandbox.runner import start_sandboxes

        urls = start_sandboxes(settings)
        for name, url in urls.items():
            log.info("sandbox %s: %s", name, url)

    from widget import ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("INSTANCE_PATH", settings.instance_path)
    worker = subprocess.Popen([sys.executable, "-m", "widget.jobs.worker", "2"], env=env, cwd=ROOT)
    atexit.register(worker.terminate)

    log.info("serving on http://%s:%s (public URL %s)", settings.host, settings.port, settings.public_url)
    if settings.sandbox:
        log.info(
            "open the CRM shell: %s/shell  (Kommo)  and  %s/shell  (Bitrix24)",
            settings.sandbox_kommo_url,
            settings.sandbox_bitrix24_url,
        )
    run_simple(settings.host, settings.port, app, threaded=True, use_reloader=False)
    return 0
