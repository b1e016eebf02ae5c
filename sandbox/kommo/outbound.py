"""The calls the sandbox Kommo makes to our server — the install webhook, the revoke hook, entity
webhooks — and the record of each, for tests and the shell.

They are made without the sandbox's lock held (our server may call back into the sandbox while it
answers); only the record is written under it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

HOOK_USER_AGENT = "amoService-oAuth-Code-Sender/1.0"
WEBHOOK_USER_AGENT = "amoCRM-Webhooks/3.0"  # our assumption; the reference did not record it
KEPT = 500  # deliveries remembered, newest last


@dataclass
class Delivery:
    """One outbound call the sandbox made (install webhook, revoke hook, entity webhook)."""

    kind: str
    url: str
    host: str
    status: int | None
    error: str | None
    elapsed: float
    response: requests.Response | None = None

    def describe(self) -> dict[str, Any]:
        body = self.response.text[:2000] if self.response is not None else ""
        return {
            "kind": self.kind,
            "url": self.url,
            "host": self.host,
            "status": self.status,
            "error": self.error,
            "elapsed": round(self.elapsed, 4),
            "body": body,
        }


class Outbound:
    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock
        self.deliveries: list[Delivery] = []

    def get(self, kind: str, host: str, url: str, timeout: float) -> requests.Response:
        """A hook Kommo calls with GET (install, revoke); a failed call is recorded, then raised."""
        started = time.monotonic()
        try:
            response = requests.get(
                url, timeout=timeout, allow_redirects=False, headers={"User-Agent": HOOK_USER_AGENT}
            )
        except requests.RequestException as exc:
            self._record(Delivery(kind, url, host, None, repr(exc), time.monotonic() - started))
            raise
        self._record(Delivery(kind, url, host, response.status_code, None, time.monotonic() - started, response))
        return response

    def post_form(self, host: str, url: str, pairs: list[tuple[str, str]], timeout: float) -> Delivery:
        """An entity webhook (form-encoded POST); a failed call is recorded and returned, not raised."""
        started = time.monotonic()
        try:
            response = requests.post(
                url, data=pairs, timeout=timeout, allow_redirects=False, headers={"User-Agent": WEBHOOK_USER_AGENT}
            )
        except requests.RequestException as exc:
            delivery = Delivery("webhook", url, host, None, repr(exc), time.monotonic() - started)
        else:
            delivery = Delivery("webhook", url, host, response.status_code, None, time.monotonic() - started, response)
        self._record(delivery)
        return delivery

    def _record(self, delivery: Delivery) -> None:
        with self.lock:
            self.deliveries.append(delivery)
            del self.deliveries[:-KEPT]
