"""Every request the sandbox answered, so tests can assert what our server actually sent."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_ENTRIES = 20_000


@dataclass
class LoggedRequest:
    method: str
    path: str
    host: str | None  # the account host (first path segment) or None for shell/control pages
    query: dict[str, list[str]]
    headers: dict[str, str]
    form: dict[str, list[str]]
    json: Any
    status: int
    timestamp: float
    body: str = field(default="", repr=False)


class RequestLog:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._entries: list[LoggedRequest] = []

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)
            if len(self._entries) > MAX_ENTRIES:
                del self._entries[: len(self._entries) - MAX_ENTRIES]

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(e) for e in self._entries]

    def entries(
        self, method: str | None = None, path_contains: str | None = None, host: str | None = None
    ) -> list[LoggedRequest]:
        with self._lock:
            return [
                e
                for e in self._entries
                if (method is None or e.method == method.upper())
                and (path_contains is None or path_contains in e.path)
                and (host is None or e.host == host)
            ]

    def count(self, method: str | None = None, path_contains: str | None = None, host: str | None = None) -> int:
        return len(self.entries(method, path_contains, host))

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
