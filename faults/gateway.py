"""The messaging gateway's side of ``POST /gateway/messages``: signed deliveries, resent until they
are acknowledged (at-least-once, as a real gateway delivers), at a chosen pace."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests

from faults.sandbox import client_name
from faults.tenants import Tenant

RESEND_STATUSES = {429, 500, 502, 503, 504}


@dataclass
class Delivery:
    body: bytes
    signature: str


@dataclass
class SendStats:
    deliveries: int = 0  # signed POSTs we meant to make (copies included)
    attempts: int = 0  # HTTP attempts, resends included
    resent: int = 0  # answers that were not 200 (or no answer), so the gateway tried again
    refused: list[str] = field(default_factory=list)  # 4xx: a delivery we gave up on (a bug)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, attempts: int, refused: str | None) -> None:
        with self.lock:
            self.deliveries += 1
            self.attempts += attempts
            self.resent += attempts - 1
            if refused:
                self.refused.append(refused)


def message(tenant: Tenant, digits: str, n: int = 0, text: str = "Hello, is this still available?") -> Delivery:
    from widget.services.channels.signing import sign

    body = json.dumps(
        {
            "message_id": f"fs-{digits}-{n}",
            "channel_id": tenant.channel_id,
            "chat_type": "whatsapp",
            "chat_id": f"wa-{digits}",
            "phone": f"+{digits}",
            "sender_name": client_name(digits),
            "text": text,
            "sent_at": datetime.now(UTC).isoformat(),
        }
    ).encode()
    return Delivery(body, sign(tenant.secret, body))


_local = threading.local()


def _session() -> requests.Session:
    if not hasattr(_local, "http"):
        _local.http = requests.Session()
    session: requests.Session = _local.http
    return session


def deliver(base_url: str, delivery: Delivery, stats: SendStats, *, give_up_after: float = 300) -> None:
    """POST until acknowledged. 5xx, 429 and no answer at all are resent with a short back-off;
    any other answer than 200 is a refusal, recorded and not resent."""
    deadline = time.monotonic() + give_up_after
    attempts, wait = 0, 0.05
    while True:
        attempts += 1
        try:
            r = _session().post(
                f"{base_url}/gateway/messages",
                data=delivery.body,
                headers={"X-Gateway-Signature": delivery.signature, "Content-Type": "application/json"},
                timeout=30,
            )
            if r.status_code == 200:
                stats.add(attempts, None)
                return
            if r.status_code not in RESEND_STATUSES:
                stats.add(attempts, f"{r.status_code} {r.text[:200]}")
                return
        except requests.RequestException:
            _local.__dict__.pop("http", None)  # a dropped keep-alive connection: start a new one
        if time.monotonic() > deadline:
            stats.add(attempts, "never acknowledged")
            return
        time.sleep(wait)
        wait = min(1.0, wait * 2)


def send(
    base_url: str,
    deliveries: Iterable[Delivery],
    *,
    rate: float | None = None,
    concurrency: int = 16,
    on_sent: Callable[[int], None] | None = None,
) -> SendStats:
    """Deliver everything, ``rate`` deliveries per second (None: as fast as ``concurrency`` allows).
    ``on_sent(i)`` is called as delivery ``i`` is handed out (scenarios inject faults from it)."""
    stats = SendStats()
    start = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        futures = []
        for i, d in enumerate(deliveries):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if on_sent is not None:
                on_sent(i)
            futures.append(pool.submit(deliver, base_url, d, stats))
        for f in futures:
            f.result()
    return stats
