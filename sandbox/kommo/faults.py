"""Misbehaviour on demand (faults) and the always-on rate limit (reference §6).

Faults are what a dead, slow, blocked or throttling Kommo looks like on the wire, so our client's
retries and error messages can be exercised: nginx HTML where real outages and IP blocks have shown
HTML, problem+json where Kommo documents JSON.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from sandbox.kommo.clock import SandboxClock

FAULT_KINDS = ("latency", "error", "outage", "block", "rate_limit")
ERROR_STATUSES = (500, 502, 503, 504)


@dataclass
class Fault:
    kind: str
    seconds: float = 0.0  # latency
    status: int = 500  # error
    retry_after: int = 1  # rate_limit
    count: int | None = None  # how many matching requests it hits; None = until cleared
    host: str | None = None  # only this account
    path_contains: str | None = None  # only matching paths, e.g. "/oauth2/access_token"
    hits: int = 0

    def matches(self, host: str | None, path: str) -> bool:
        if self.host is not None and host != self.host:
            return False
        return self.path_contains is None or self.path_contains in path

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seconds": self.seconds,
            "status": self.status,
            "retry_after": self.retry_after,
            "count": self.count,
            "host": self.host,
            "path_contains": self.path_contains,
            "hits": self.hits,
        }


class FaultBoard:
    """At most one fault of each kind; ``count`` faults remove themselves once spent."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._faults: dict[str, Fault] = {}

    def set(self, kind: str, **params: Any) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        fault = Fault(kind=kind)
        for name, value in params.items():
            if name not in {"seconds", "status", "retry_after", "count", "host", "path_contains"}:
                raise ValueError(f"fault {kind!r} takes no parameter {name!r}")
            setattr(fault, name, value)
        if kind == "error" and fault.status not in ERROR_STATUSES:
            raise ValueError(f"error faults answer one of {ERROR_STATUSES}, not {fault.status}")
        if fault.count is not None and fault.count < 1:
            raise ValueError("count must be at least 1")
        fault.seconds = float(fault.seconds)
        with self._lock:
            self._faults[kind] = fault
        return fault

    def clear(self, kind: str | None = None) -> None:
        with self._lock:
            if kind is None:
                self._faults.clear()
            else:
                self._faults.pop(kind, None)

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._faults.values()]

    def take(self, host: str | None, path: str) -> tuple[float, Fault | None]:
        """For one incoming request: the delay to add, and the fault that answers it (if any)."""
        with self._lock:
            delay = 0.0
            latency = self._faults.get("latency")
            if latency and latency.matches(host, path):
                delay = latency.seconds
                self._spend(latency)
            for kind in ("block", "outage", "error", "rate_limit"):
                fault = self._faults.get(kind)
                if fault and fault.matches(host, path):
                    self._spend(fault)
                    return delay, fault
            return delay, None

    def _spend(self, fault: Fault) -> None:
        fault.hits += 1
        if fault.count is not None and fault.hits >= fault.count:
            self._faults.pop(fault.kind, None)


class RateLimiter:
    """Kommo's 7 requests per second, as a token bucket per account (burst = one second's worth).

    It reads the sandbox clock: with the clock frozen the bucket does not refill until the test
    advances it, which is what makes a 429 test deterministic.
    """

    def __init__(self, clock: SandboxClock, lock: threading.RLock, per_second: float = 7.0) -> None:
        self._clock = clock
        self._lock = lock
        self.per_second = per_second
        self._buckets: dict[str, _Bucket] = {}

    def set_rate(self, per_second: float) -> None:
        with self._lock:
            self.per_second = per_second
            self._buckets.clear()

    def take(self, key: str) -> int | None:
        """None when the request may pass, else the whole seconds to wait before retrying."""
        with self._lock:
            now = self._clock.now()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=self.per_second, stamp=now)
            bucket.tokens = min(self.per_second, bucket.tokens + max(0.0, now - bucket.stamp) * self.per_second)
            bucket.stamp = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return None
            return max(1, math.ceil((1 - bucket.tokens) / self.per_second))

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


@dataclass
class _Bucket:
    tokens: float
    stamp: float = field(default=0.0)
