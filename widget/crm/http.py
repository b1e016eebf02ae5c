"""The one HTTP base every CRM client sends through: timeouts, client-side rate limits, retries.

Each CRM client supplies a ``classify`` function that turns a response into data or raises one of
our error types (``widget.crm.errors``); this module decides what is worth retrying and how long to
wait, and never retries a call that might have changed something unless the CRM said it did not.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests

from widget.crm.errors import CrmRateLimited, CrmUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class TokenBucket:
    """A leaky/token bucket: ``rate`` tokens per second, at most ``burst`` stored."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one token; return how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.rate


class RateLimiter:
    """Per-key buckets (one per CRM account), shared by every client in this process."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def wait(self, key: str, sleep: Callable[[float], None] = time.sleep) -> None:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        delay = bucket.reserve()
        if delay > 0:
            sleep(delay)


_limiters: dict[tuple[str, float, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(name: str, rate: float, burst: float) -> RateLimiter:
    with _limiters_lock:
        key = (name, rate, burst)
        if key not in _limiters:
            _limiters[key] = RateLimiter(rate, burst)
        return _limiters[key]


@dataclass
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A rate-limit wait longer than this is not slept inline: the error goes to the caller (a job
    # then retries later; a page tells the user).
    max_inline_wait: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep)

    def backoff(self, attempt: int) -> float:
        delay: float = min(self.max_delay, self.base_delay * (2**attempt))
        return delay * (0.75 + random.random() / 2)  # noqa: S311  (jitter, not a secret)


class HttpSender:
    """Sends one logical call, with limits and retries, through a shared ``requests.Session``."""

    def __init__(
        self,
        *,
        timeout: float,
        limiter: RateLimiter | None,
        limiter_key: str,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.timeout = timeout
        self.limiter = limiter
        self.limiter_key = limiter_key
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        self.request_count = 0

    def send(
        self,
        method: str,
        url: str,
        classify: Callable[[requests.Response], T],
        *,
        idempotent: bool = True,
        allow_redirects: bool = False,
        **kwargs: Any,
    ) -> T:
        """Send and classify. Retries 429/503-style refusals always (the CRM did nothing), and
        5xx/timeouts only for idempotent calls."""
        attempt = 0
        while True:
            if self.limiter is not None:
                self.limiter.wait(self.limiter_key, self.retry.sleep)
            try:
                self.request_count += 1
                response = self.session.request(
                    method, url, timeout=self.timeout, allow_redirects=allow_redirects, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                error: Exception = CrmUnavailable(f"{method} {_safe(url)}: {type(exc).__name__}")
                retry_after = None
                retryable = idempotent or isinstance(exc, requests.ConnectTimeout)
            else:
                try:
                    return classify(response)
                except CrmRateLimited as exc:
                    error, retry_after, retryable = exc, exc.retry_after, True
                except CrmUnavailable as exc:
                    error, retry_after = exc, None
                    # A 503 "too many requests" means nothing was done; other 5xx may have been.
                    retryable = idempotent or getattr(exc, "not_applied", False)
            attempt += 1
            if not retryable or attempt >= self.retry.attempts:
                raise error
            wait = retry_after if retry_after is not None else self.retry.backoff(attempt - 1)
            if wait > self.retry.max_inline_wait:
                raise error
            log.info("retrying %s %s in %.2fs after %s", method, _safe(url), wait, error)
            self.retry.sleep(wait)


def _safe(url: str) -> str:
    """The URL without its query string (which may carry a token) for logs and messages."""
    return url.split("?", 1)[0]
