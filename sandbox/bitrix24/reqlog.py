"""Every request the sandbox served, so tests can assert exact request counts."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

KIND_REST = "rest"  # /rest/<method> on a portal host (batch is one request)
KIND_TOKEN = "oauth.token"  # /oauth-server/oauth/token/
KIND_APP_INFO = "oauth.app_info"  # /oauth-server/rest/app.info
KIND_SHELL = "shell"
KIND_CONTROL = "control"


@dataclass(frozen=True)
class LoggedRequest:
    seq: int
    at: float
    kind: str
    host: str
    http_method: str
    path: str
    rest_method: str = ""
    member_id: str = ""
    user_id: int | None = None
    token: str = ""  # the access/refresh token presented, if any (sandbox-only, never real)
    grant_type: str = ""
    status: int = 0
    params: dict[str, Any] = field(default_factory=dict)


class RequestLog:
    def __init__(self) -> None:
        self._items: list[LoggedRequest] = []
        self._lock = threading.Lock()

    def add(self, **kw: Any) -> LoggedRequest:
        with self._lock:
            item = LoggedRequest(seq=len(self._items) + 1, **kw)
            self._items.append(item)
            return item

    def entries(self, **where: Any) -> list[LoggedRequest]:
        """Entries whose attributes equal every ``where`` value (e.g. ``kind="rest"``)."""
        with self._lock:
            items = list(self._items)
        return [i for i in items if all(getattr(i, k) == v for k, v in where.items())]

    def count(self, **where: Any) -> int:
        return len(self.entries(**where))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
