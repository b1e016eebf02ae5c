"""Fault modes and limits of the sandbox portal (reference §7, §10).

* a leaky bucket per portal: +1 per REST request, draining ``rate``/s; over ``burst`` the request
  is refused with 503 ``QUERY_LIMIT_EXCEEDED`` (``batch`` counts once);
* per-method ``OPERATION_TIME_LIMIT`` (429) until a reset time;
* latency, 5xx for the next N requests, a full outage.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LeakyBucket:
    rate: float
    burst: float
    level: float = 0.0
    stamp: float = 0.0

    def admit(self, now: float) -> bool:
        if self.stamp:
            self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level + 1 > self.burst:
            return False
        self.level += 1
        return True


@dataclass
class Faults:
    latency: float = 0.0
    outage: bool = False
    # Next N REST/OAuth answers fail with this status (500: JSON INTERNAL_SERVER_ERROR; others HTML).
    fail_next: int = 0
    fail_status: int = 500
    # Next N REST requests are refused as over the leaky bucket regardless of its level.
    query_limit_next: int = 0
    # (member_id, lower-case method) -> unix time when OPERATION_TIME_LIMIT lifts.
    operation_limits: dict[tuple[str, str], float] = field(default_factory=dict)
    # member_id -> an auth error code every token of that portal gets (e.g. "invalid_token").
    token_errors: dict[str, str] = field(default_factory=dict)

    def take_failure(self) -> int | None:
        if self.fail_next > 0:
            self.fail_next -= 1
            return self.fail_status
        return None

    def take_query_limit(self) -> bool:
        if self.query_limit_next > 0:
            self.query_limit_next -= 1
            return True
        return False
