"""Inbound gateway messages under load: p50/p99 of POST /gateway/messages at a given concurrency.

Target: p99 < 50 ms at concurrency 50. The app runs in this process behind a threaded WSGI server
on loopback; job nudges are counted, not run (in production they are a queue push and the CRM
work happens in the worker). Every delivery is a new chat of a new client, the most expensive case.

    .venv/bin/python bench/gateway_inbound.py postgresql://postgres@127.0.0.1/bench_gateway -n 3000 -c 50
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import requests
from cryptography.fernet import Fernet
from sqlalchemy import text

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])

from tests.support.servers import live_server
from widget import create_app
from widget.config import Settings
from widget.db import db
from widget.migrate import upgrade
from widget.models import Account, Channel
from widget.services.inbound import get_or_create_gateway_secret, sign


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("database_url")
    ap.add_argument("-n", type=int, default=3000)
    ap.add_argument("-c", type=int, default=50)
    args = ap.parse_args()
    instance = tempfile.mkdtemp()
    settings = Settings.from_env(
        {
            "DATABASE_URL": args.database_url,
            "INSTANCE_PATH": instance,
            "SECRET_KEY": "bench-secret-key-0123456789",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        }
    )
    upgrade(settings.database_url)
    app = create_app(settings)
    nudges: list[int] = []
    app.extensions["widget"].overrides["enqueue"] = lambda name, *a, delay=None: nudges.append(a[0])
    with db.engine.begin() as c:
        c.execute(text("DELETE FROM accounts"))
    with db.transaction() as s:
        acc = Account(crm="kommo", external_id="bench", domain="bench.kommo.test", status="active")
        s.add(acc)
        s.flush()
        ch = Channel(account_id=acc.id, transport="whatsapp", name="bench", address="+1")
        s.add(ch)
        s.flush()
        secret = get_or_create_gateway_secret(s, app.extensions["widget"].box, acc.id)
        channel_id = ch.id

    def body(n: int) -> bytes:
        return json.dumps(
            {
                "message_id": f"bench-{n}",
                "channel_id": channel_id,
                "chat_type": "whatsapp",
                "chat_id": f"chat-{n}",
                "phone": f"+1555{n:07d}",
                "sender_name": f"Client {n}",
                "text": "Hello, is this still available?",
                "sent_at": datetime.now(UTC).isoformat(),
            }
        ).encode()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with live_server(app) as server:
        url = server.url + "/gateway/messages"
        local = threading.local()

        def post(n: int) -> float:
            raw = body(n)
            t0 = time.perf_counter()
            if not hasattr(local, "http"):
                local.http = requests.Session()
            r = local.http.post(url, data=raw, headers={"X-Gateway-Signature": sign(secret, raw)}, timeout=30)
            elapsed = (time.perf_counter() - t0) * 1000
            assert r.status_code == 200, r.text
            return elapsed

        with ThreadPoolExecutor(args.c) as pool:
            list(pool.map(post, range(-200, 0)))  # warm up
            t0 = time.perf_counter()
            times = sorted(pool.map(post, range(args.n)))
            wall = time.perf_counter() - t0
    p = lambda q: times[min(len(times) - 1, int(len(times) * q))]  # noqa: E731
    print(
        f"{args.n} deliveries at concurrency {args.c} on {settings.database_url.split(':')[0]}: "
        f"p50 {statistics.median(times):.1f} ms  p95 {p(0.95):.1f} ms  p99 {p(0.99):.1f} ms  "
        f"({args.n / wall:.0f} req/s, {len(nudges)} jobs nudged)"
    )


if __name__ == "__main__":
    main()
