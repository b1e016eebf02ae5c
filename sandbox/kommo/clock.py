"""The sandbox's sense of time: real by default, frozen or moved forward by tests.

Code lifetimes (20 minutes), token expiry (24 hours) and the 7 rps bucket all read this clock, so a
test can walk past an expiry with ``advance(1201)`` instead of sleeping.
"""

from __future__ import annotations

import threading
import time


class SandboxClock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._frozen_at: float | None = None
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset

    def freeze(self, at: float | None = None) -> float:
        """Stop time at ``at`` (unix seconds) or at the current sandbox time."""
        with self._lock:
            current = self._frozen_at if self._frozen_at is not None else time.time() + self._offset
            self._frozen_at = current if at is None else float(at)
            return self._frozen_at

    def unfreeze(self) -> None:
        """Let time run again from where it stood."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.time()
                self._frozen_at = None

    def advance(self, seconds: float) -> float:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
                return self._frozen_at
            self._offset += seconds
            return time.time() + self._offset

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None
