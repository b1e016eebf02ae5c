"""Job worker entry point: ``python -m widget.jobs.worker [THREADS]`` (SQLite or Redis queue by environment).

Outside ``python server.py`` this is a production start: without the settings it needs it stops
with one message naming them (``widget.config``).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from huey.consumer import Consumer

PARENT_POLL_SECONDS = 0.5


def main(argv: list[str] | None = None) -> int:
    from widget import create_app
    from widget.config import ConfigError
    from widget.embedded import PARENT_PID_ENV
    from widget.jobs.queue import HueyJobQueue

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app()
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    parent = os.environ.get(PARENT_PID_ENV)
    if parent:
        watch_parent(int(parent))
    # The queue create_app wired: its Huey (Redis or SQLite, by the settings) has every job
    # registered, each run inside this app.
    queue = app.extensions["widget"].jobs
    assert isinstance(queue, HueyJobQueue)
    huey = queue.huey
    workers = int((argv or sys.argv[1:] or ["4"])[0])
    # An idle consumer polls a SQLite queue ever more slowly (Huey's default: up to every 10 s), so
    # an install webhook's code exchange could wait seconds before anyone saw the account. Polling
    # at most every half second costs one cheap query; Redis queues block and answer at once anyway.
    consumer = Consumer(
        huey,
        workers=workers,
        worker_type="thread",
        periodic=True,
        check_worker_health=True,
        max_delay=0.5,
    )
    consumer.run()
    return 0


def watch_parent(parent_pid: int) -> None:
    """Stop this worker (SIGTERM, which Huey handles) once ``parent_pid`` is no longer our parent.

    The embedded server stops its worker itself on SIGTERM and SIGINT; this covers a server that was
    killed outright (SIGKILL, the OOM killer), whose worker would otherwise run on forever with
    nobody to stop it. A dead parent's children are handed to another process, so ``getppid``
    changes; polling it works everywhere, unlike Linux's PR_SET_PDEATHSIG."""

    def loop() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        logging.getLogger("widget").warning("the server that started this worker is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=loop, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(main())
