"""HTTP requests our server sends to a Bitrix24 portal, counted at the sandbox (printed, not asserted):

* "Refresh CRM data" at 130 and 1,000 users (budget: ceil(users / 50) + 2);
* a new contact + deal (one ``batch`` with a ``$result[c]`` reference);
* an iframe open (``app.info`` on the OAuth server + ``profile`` on the portal) and an install.

    .venv/bin/python bench/bitrix24_requests.py            # SQLite in a temporary folder
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1/bench .venv/bin/python bench/bitrix24_requests.py
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cryptography.fernet import Fernet

from sandbox.bitrix24.reqlog import KIND_APP_INFO, KIND_REST, KIND_TOKEN
from tests.support.bitrix24_sandbox import bitrix24_world
from widget.config import Settings
from widget.crm.bitrix24.client import NewContact, NewDeal
from widget.db import db
from widget.migrate import upgrade
from widget.services.accounts.crm_clients import bitrix24_client
from widget.services.crm_data.bitrix24 import refresh_bitrix24_data

ROWS: list[tuple[str, int, str, float]] = []


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("widget").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
        env = {
            "SANDBOX": "1",
            "INSTANCE_PATH": tmp,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "bench-secret-key-0123456789abcdef",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        }
        upgrade(database_url)

        def make_settings(**extra: Any) -> Settings:
            return Settings.from_env({**env, **{k: str(v) for k, v in extra.items()}})

        with bitrix24_world(make_settings) as world:
            state = world.state
            state.reset_log()
            started = time.perf_counter()
            world.install()
            calls = state.log.count(kind=KIND_REST) + state.log.count(kind=KIND_APP_INFO)
            ROWS.append(("install (installer page + first refresh + binds)", calls, "", time.perf_counter() - started))

            state.reset_log()
            started = time.perf_counter()
            world.open(user_id=1)
            calls = state.log.count(kind=KIND_REST) + state.log.count(kind=KIND_APP_INFO)
            ROWS.append(("iframe open (app.info + profile)", calls, "2", time.perf_counter() - started))

            account_id = world.account().id
            services = world.app.extensions["widget"]
            for users in (130, 1000):
                state.set_users(world.portal, users)
                state.reset_log()
                started = time.perf_counter()
                report = refresh_bitrix24_data(db, services, account_id)
                elapsed = time.perf_counter() - started
                sent = state.log.count(kind=KIND_REST)
                assert sent == report.requests, (sent, report.requests)
                ROWS.append((f'"Refresh CRM data", {users} users', sent, f"<= {math.ceil(users / 50) + 2}", elapsed))

            client = bitrix24_client(db, services, account_id)
            state.reset_log()
            started = time.perf_counter()
            client.create_contact_with_deal(
                NewContact(name="Bench Client", phone="+1 555 010 0000", responsible_id="1"),
                NewDeal(title="Bench deal", category_id="0", stage_id="NEW", responsible_id="1"),
            )
            ROWS.append(("new contact + deal", state.log.count(kind=KIND_REST), "1", time.perf_counter() - started))

            state.expire_tokens_now(world.portal)
            state.reset_log()
            started = time.perf_counter()
            client.profile()
            rest, refresh = state.log.count(kind=KIND_REST), state.log.count(kind=KIND_TOKEN)
            ROWS.append(
                (f"call with an expired token ({refresh} refresh)", rest + refresh, "3", time.perf_counter() - started)
            )
        db.engine.dispose()

    width = max(len(r[0]) for r in ROWS)
    print(f"{'what':<{width}}  requests  target   wall ms")
    for what, count, target, elapsed in ROWS:
        print(f"{what:<{width}}  {count:>8}  {target:<7}  {elapsed * 1000:>7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
