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

from flask import Flask
from werkzeug.serving import run_simple

from widget.extensions import AppServices
from widget.migrate import upgrade

log = logging.getLogger("widget")


def _publish_channels(app: Flask) -> None:
    """The sandbox messaging gateway keeps nothing across restarts: list every channel again."""
    from widget.db import db
    from widget.services.sandbox_gateway import publish_channels
    from widget.services.transports import TransportError

    with app.app_context():
        try:
            count = publish_channels(db, app.extensions["widget"])
        except TransportError as exc:
            log.warning("the sandbox messaging gateway did not take our channels: %s", exc)
        else:
            log.info("the sandbox messaging gateway lists our %d channel(s)", count)


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
        _publish_channels(app)

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
