"""The portal REST's building blocks: errors, answers, the call context, paging, the ``time`` block."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.bitrix24.portal import Portal, User
from sandbox.bitrix24.state import SandboxState
from sandbox.bitrix24.tokens import Grant

PAGE = 50
BATCH_MAX = 50


class RestError(Exception):
    def __init__(self, status: int, code: str, description: str, **extra: Any) -> None:
        super().__init__(f"{code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "error_description": self.description}
        out.update(self.extra)
        return out


def legacy(description: str) -> RestError:
    """crm.contact/deal/lead errors: HTTP 400 with an EMPTY code (reference §0.8, §6.4)."""
    return RestError(400, "", description)


@dataclass
class Answer:
    result: Any
    total: int | None = None
    next: int | None = None


@dataclass
class Ctx:
    state: SandboxState
    portal: Portal
    grant: Grant
    user: User

    @property
    def scopes(self) -> set[str]:
        return set(self.grant.scope.split(","))


Handler = Callable[[Ctx, dict[str, Any]], Answer]


def time_block(start: float, finish: float, reset_at: float | None = None, operating: float = 0.0) -> dict[str, Any]:
    def iso(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat()

    return {
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": finish - start,
        "date_start": iso(start),
        "date_finish": iso(finish),
        "operating_reset_at": int(reset_at if reset_at is not None else finish + 600),
        "operating": operating,
    }


def arg(params: dict[str, Any], name: str, default: Any = None) -> Any:
    """Parameter names are case-insensitive (docs use both ``fields`` and ``FIELDS``, §6.4)."""
    if name in params:
        return params[name]
    low = name.lower()
    for key, value in params.items():
        if key.lower() == low:
            return value
    return default


def to_int(value: Any, default: int = 0) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def empty(value: Any) -> Any:
    """PHP serialises an empty array as ``[]`` even where a map is expected (§6.1)."""
    return value if value else []


def page(items: list[Any], params: dict[str, Any]) -> Answer:
    start = to_int(arg(params, "start", 0))
    if start == -1:
        # Fast mode: no total, no next; callers page by ">ID" (§6.1).
        return Answer(items[:PAGE])
    start = max(0, start)
    chunk = items[start : start + PAGE]
    nxt = start + PAGE if start + PAGE < len(items) else None
    return Answer(chunk, total=len(items), next=nxt)
