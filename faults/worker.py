"""The job worker of the fault suite: ``python -m widget.jobs.worker`` with time optionally compressed.

    python -m faults.worker 4                          # exactly the production worker
    python -m faults.worker 4 --lease 20 --sweep 2     # the reduced (CI) run

A worker killed mid-job leaves its operation ``running`` until the claim's lease ends (two minutes
in production) and the periodic sweep (every minute) hands it out again. The reduced run cannot
wait that long, so it shortens both; the recovery path is the same code. The lease must stay longer
than one operation can legitimately take (the suite sets ``HTTP_TIMEOUT`` low enough), or a slow but
live worker would see its work taken over.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from datetime import timedelta
from typing import Any


def compress_time(lease: float | None, sweep: float | None, app: Any) -> None:
    from widget.db import db
    from widget.services import outbox

    if lease:
        original = outbox.claim

        def claim(database: Any, op_id: int, now: Any, lease_: timedelta = timedelta(seconds=lease)) -> Any:
            return original(database, op_id, now, lease_)

        outbox.claim = claim  # type: ignore[assignment]
    if sweep:

        def sweeping() -> None:
            while True:
                time.sleep(sweep)
                try:
                    with app.app_context():
                        outbox.sweep(db, app.extensions["widget"])
                except Exception:  # a dropped database connection; the next round tries again
                    logging.getLogger(__name__).exception("sweep failed")

        threading.Thread(target=sweeping, name="fast-sweep", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("threads", type=int, nargs="?", default=4)
    ap.add_argument("--lease", type=float, default=None, help="claim lease in seconds (production: 120)")
    ap.add_argument("--sweep", type=float, default=None, help="extra outbox sweep every N seconds")
    args = ap.parse_args(argv)

    from huey.consumer import Consumer

    from widget import create_app
    from widget.jobs.queue import HueyJobQueue

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    app = create_app()
    compress_time(args.lease, args.sweep, app)
    queue = app.extensions["widget"].jobs
    assert isinstance(queue, HueyJobQueue)
    huey = queue.huey
    consumer = Consumer(huey, workers=args.threads, worker_type="thread", periodic=True, check_worker_health=True)
    consumer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
