"""Kommo install figures, printed (not asserted):

* how fast our server answers Kommo's install webhook (Kommo waits at most 3 s and never resends),
  median of 20 deliveries over loopback, with the exchange left to a real (SQLite) job queue;
* how many requests one "Refresh CRM data" sends for an account of 600 users.

    .venv/bin/python bench/kommo_install.py            # SQLite in a temporary folder
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1/bench .venv/bin/python bench/kommo_install.py
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cryptography.fernet import Fernet

from tests.support.kommo_sandbox import DEMO_HOST, running_kommo, serving_ours
from widget import create_app
from widget.config import Settings
from widget.crm.kommo.client import pages_needed
from widget.db import db
from widget.migrate import upgrade
from widget.models import PendingInstall
from widget.services.crm_data.kommo import refresh_kommo_data
from widget.services.installs.kommo import complete_install

DELIVERIES = 20
USERS = 600


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the figures
    with tempfile.TemporaryDirectory() as tmp:
        database_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
        with running_kommo() as kommo:
            holder = {}

            def build(url: str):
                env = {
                    "SANDBOX": "1",
                    "INSTANCE_PATH": tmp,
                    "DATABASE_URL": database_url,
                    "SECRET_KEY": "bench-secret-key-0123456789abcdef",
                    "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                    "PUBLIC_URL": url,
                    **kommo.env(),
                }
                settings = Settings.from_env(env)
                upgrade(settings.database_url)
                app = create_app(settings)  # a real queue (by the settings): the webhook only nudges it
                holder["app"] = app
                return app

            with serving_ours(build) as ours:
                kommo.point_at(ours.url)
                sandbox = kommo.sandbox
                for _ in range(DELIVERIES):
                    response = sandbox.deliver_install_webhook(DEMO_HOST)
                    assert response.status_code == 200, response.text
                times = [d.elapsed * 1000 for d in sandbox.deliveries if d.kind == "install_webhook"]
                print(f"install webhook answer over loopback, {len(times)} deliveries:")
                print(
                    f"  median {statistics.median(times):.1f} ms, "
                    f"p90 {sorted(times)[int(len(times) * 0.9) - 1]:.1f} ms, max {max(times):.1f} ms "
                    "(Kommo gives up after 3000 ms)"
                )

                services = holder["app"].extensions["widget"]
                with db.transaction() as s:
                    first = s.query(PendingInstall).order_by(PendingInstall.id).first()
                    assert first is not None
                    pending_id = first.id
                started = time.perf_counter()
                outcome = complete_install(db, services, pending_id)
                print(f"  the background exchange + account + first refresh took {time.perf_counter() - started:.2f} s")
                assert outcome.account_id is not None

                sandbox.add_users(DEMO_HOST, USERS - len(sandbox.users(DEMO_HOST)))
                sandbox.reset_log()
                started = time.perf_counter()
                report = refresh_kommo_data(db, services, outcome.account_id)
                elapsed = time.perf_counter() - started
                seen = sandbox.count(host=DEMO_HOST)
                print(f'"Refresh CRM data" at {USERS} users:')
                print(
                    f"  {report.requests} requests by our count, {seen} seen by the sandbox "
                    f"(ceil({USERS}/250) + 1 = {pages_needed(USERS)}), {elapsed:.2f} s"
                )
        db.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
