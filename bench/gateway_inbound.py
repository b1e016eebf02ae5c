"""Benchmark 1, inbound acknowledgement: signed gateway deliveries at concurrency 50 to
``gunicorn server:app`` (2 workers) on PostgreSQL, and in the same run and the same gunicorn
settings a bare Flask endpoint answering 200 (``bench/bare_app.py``). Prints requests/s, p50 and
p99 of both and their ratio. Target: ratio >= 0.5, our p99 < 50 ms.

Every delivery is a new client's first message. What the gateway waits for is the acknowledgement:
the signature and payload checked and the delivery stored durably (``widget/services/inbound/receipts.py``),
then a job nudged on Redis. No job worker runs, so nothing else competes for the two cores; the
chat, message and CRM work that the job makes of it are measured end to end by benchmark 5. The
load generator runs in its own processes (``wrk`` when installed, else Python; see
``bench/loadgen.py``).

    .venv/bin/python bench/gateway_inbound.py [--duration 10] [--connections 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # standalone: python bench/<this>.py

import requests

from bench.common import bench_database, table, write_results
from bench.loadgen import run_load
from faults.stack import Stack, StackConfig, free_port, peak_rss_mb, wait_for

WORKERS, THREADS = 2, 8
TARGET_RATIO, TARGET_P99_MS = 0.5, 50.0
PHONE_PREFIX = {"warm": 201, "load": 202}  # every delivery is a client never seen before


def make_tenant(stack: Stack) -> tuple[int, str]:
    """An installed account with one channel; returns (channel id, gateway secret)."""
    from widget.db import db
    from widget.models import Account, Channel
    from widget.services.channels.signing import get_or_create_gateway_secret

    app = stack.app()
    with db.transaction() as s:
        acc = Account(crm="kommo", external_id="bench", domain="bench.kommo.test", status="active")
        s.add(acc)
        s.flush()
        ch = Channel(account_id=acc.id, transport="whatsapp", name="bench", address="+1")
        s.add(ch)
        s.flush()
        return ch.id, get_or_create_gateway_secret(s, app.extensions["widget"].box, acc.id)


def write_deliveries(path: Path, channel_id: int, secret: str, tag: str, count: int) -> Path:
    from widget.services.channels.signing import sign

    now = datetime.now(UTC).isoformat()
    with path.open("w") as fh:
        for n in range(count):
            body = json.dumps(
                {
                    "message_id": f"{tag}-{n}",
                    "channel_id": channel_id,
                    "chat_type": "whatsapp",
                    "chat_id": f"{tag}-chat-{n}",
                    "phone": f"+1{PHONE_PREFIX[tag]}{n:07d}",
                    "sender_name": f"Client {n}",
                    "text": "Hello, is this still available?",
                    "sent_at": now,
                },
                separators=(",", ":"),
            )
            fh.write(f"{sign(secret, body.encode())} {body}\n")
    return path


def run(
    database_url: str | None = None,
    *,
    duration: float = 10.0,
    connections: int = 50,
    warmup: float = 3.0,
    threads: int = THREADS,
) -> dict[str, Any]:
    url = bench_database(database_url)
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    config = StackConfig(url, web_workers=WORKERS, web_threads=threads, job_workers=0, kommo=False, bitrix24=False)
    with Stack(config, run_dir=str(tmp / "stack")) as stack:
        channel_id, secret = make_tenant(stack)
        capacity = int(4000 * (duration + warmup))  # more lines than requests: no delivery repeats
        warm = write_deliveries(tmp / "warm.txt", channel_id, secret, "warm", int(4000 * warmup))
        lines = write_deliveries(tmp / "load.txt", channel_id, secret, "load", capacity)
        run_load(stack.url, warm, warmup, connections)
        ours = run_load(stack.url, lines, duration, connections)
        ours_rss = max((peak_rss_mb(p) or 0.0) for p in stack.web_worker_pids())

        port = free_port()
        bare = stack.gunicorn("bench.bare_app:app", port, stack.env(), name="bare")
        bare_url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: requests.post(f"{bare_url}/gateway/messages", data=b"{}", timeout=2).ok, 60, "bare app")
            run_load(bare_url, warm, warmup, connections)
            baseline = run_load(bare_url, lines, duration, connections)
        finally:
            bare.stop()
    ratio = ours["rps"] / baseline["rps"] if baseline["rps"] else 0.0
    return {
        "config": {
            "gunicorn": f"{WORKERS} workers, gthread x {threads}",
            "connections": connections,
            "duration_s": duration,
        },
        "ours": ours,
        "bare_flask": baseline,
        "ratio": ratio,
        "gunicorn_worker_peak_rss_mb": ours_rss,
        "targets": {"ratio_min": TARGET_RATIO, "p99_ms_max": TARGET_P99_MS},
        "met": ratio >= TARGET_RATIO and ours["p99_ms"] < TARGET_P99_MS,
    }


def report(result: dict[str, Any]) -> str:
    ours, bare = result["ours"], result["bare_flask"]
    rows = [
        ("POST /gateway/messages (ours)", ours["rps"], ours["p50_ms"], ours["p99_ms"], ours["errors"]),
        ("bare Flask 200", bare["rps"], bare["p50_ms"], bare["p99_ms"], bare["errors"]),
    ]
    cfg = result["config"]
    head = (
        f"1. Inbound acknowledgement — gunicorn {cfg['gunicorn']}, concurrency {cfg['connections']}, "
        f"{cfg['duration_s']:.0f}s, load by {ours['tool']}"
    )
    body = table(("endpoint", "req/s", "p50 ms", "p99 ms", "errors"), rows)
    verdict = (
        f"ratio {result['ratio']:.2f} (target >= {TARGET_RATIO}), our p99 {ours['p99_ms']:.1f} ms "
        f"(target < {TARGET_P99_MS:.0f}) -> {'met' if result['met'] else 'MISSED'}"
    )
    return f"{head}\n{body}\n{verdict}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=THREADS, help="gthread threads per worker (both apps)")
    args = ap.parse_args()
    started = time.monotonic()
    result = run(args.database_url, duration=args.duration, connections=args.connections, threads=args.threads)
    print(report(result))
    print(f"({time.monotonic() - started:.0f}s)")
    write_results({"gateway_inbound": result})


if __name__ == "__main__":
    main()
