"""Event delivery: PHP-form POSTs to bound handlers, queued like Bitrix24's queue servers do, never
retried (reference §5.2: a handler that is down loses the event)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from sandbox.bitrix24 import phpform


@dataclass
class Delivery:
    event: str
    url: str
    status: int | None
    body: str
    at: float
    error: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


class Outbox:
    def __init__(self, clock: Callable[[], float], timeout: float) -> None:
        self.clock = clock
        self.timeout = timeout
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, str, dict[str, Any]] | None] = queue.Queue()
        self._pending = 0
        self._pending_cv = threading.Condition()
        self._worker: threading.Thread | None = None

    def enqueue(self, event: str, url: str, payload: dict[str, Any]) -> None:
        with self._pending_cv:
            self._pending += 1
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._drain, name="b24-sandbox-events", daemon=True)
                self._worker.start()
        self._queue.put((event, url, payload))

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self.deliver(*item)
            finally:
                with self._pending_cv:
                    self._pending -= 1
                    self._pending_cv.notify_all()

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until queued events were delivered (tests)."""
        deadline = time.monotonic() + timeout
        with self._pending_cv:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._pending_cv.wait(left)
        return True

    def deliver(self, event: str, url: str, payload: dict[str, Any]) -> Delivery:
        try:
            resp = requests.post(
                url,
                data=phpform.pairs(payload),
                headers={"User-Agent": "Bitrix24 Webhook Engine (sandbox)"},
                timeout=self.timeout,
                allow_redirects=False,
            )
            delivery = Delivery(event, url, resp.status_code, resp.text[:2000], self.clock(), payload=payload)
        except requests.RequestException as exc:
            # Bitrix24 does not retry a failed delivery (§5.2): the event is lost.
            delivery = Delivery(event, url, None, "", self.clock(), error=type(exc).__name__, payload=payload)
        with self._lock:
            self.deliveries.append(delivery)
        return delivery
