"""Rate limits on what an attacker can repeat from outside, never on what the CRM or the gateway
does when it works.

Flask-Limiter keeps the counters (its ``limits`` backends): on Redis when ``REDIS_URL`` is set, so
every process and machine counts together, in the process's memory otherwise. Two kinds of limit:

* callback limits (the Kommo install callback): every accepted call counts, per client address
  and per account host, because an accepted call is what makes us send our client secret somewhere;
* failure limits (``/gateway/messages``, ``/kommo/session``): only refused calls (bad signature, bad
  token) count. A genuine delivery touches no counter at all — each process remembers for a
  window which addresses it saw fail, and only those are checked against the shared counter — so
  the gateway's hottest path gains no Redis round trip, and a client whose calls keep failing meets
  a 429 within a few dozen tries, on every process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import partial, wraps
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, request
from flask_babel import gettext
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from limits import RateLimitItem, parse

log = logging.getLogger(__name__)

# --- the limits (README "Rate limits" lists them) ---------------------------------------------------

# The Kommo install callback: Kommo sends it once per install, a person's button flow once per
# click. Every accepted call may send our client secret to the named host.
CALLBACK_PER_ADDRESS = "10/minute;60/hour"
CALLBACK_PER_HOST = "5 per 10 minutes"
# Refused calls (a bad signature, a bad or replayed token) per client address.
GATEWAY_FAILURES = "20/minute"
SESSION_FAILURES = "20/minute"

SUSPECTS_MAX = 10_000  # addresses one process remembers as having failed recently
KEY_PREFIX = "widget-limits"


def client_address() -> str:
    """The caller's address. Behind a TLS front, ``PROXY_HOPS`` (werkzeug's ProxyFix) makes it the
    client's, as the front saw it; without it every caller would share the front's address."""
    return request.remote_addr or "-"


limiter = Limiter(
    key_func=client_address,
    strategy="moving-window",
    key_prefix=KEY_PREFIX,
    headers_enabled=False,
    # A Redis outage must not take the product down with it: the limits then count in memory.
    swallow_errors=True,
    in_memory_fallback_enabled=True,
)


def init_app(app: Flask) -> None:
    settings = app.extensions["widget"].settings
    app.config["RATELIMIT_STORAGE_URI"] = settings.redis_url or "memory://"
    limiter.init_app(app)
    _confine_to(app, "kommo")
    app.extensions["widget_failure_guards"] = {}

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded) -> Any:
        breached = limiter.current_limit
        try:
            seconds = breached.reset_at - int(time.time()) if breached is not None else 0
        except Exception:  # storage unreachable: a plain guess is as good
            seconds = 0
        return too_many(max(1, seconds or int(exc.limit.limit.get_expiry())))


def _is_limiter_hook(fn: Any) -> bool:
    if getattr(fn, "__self__", None) is limiter:
        return True
    return isinstance(fn, partial) and bool(fn.args) and fn.args[0] is limiter


def _confine_to(app: Flask, blueprint: str) -> None:
    """Flask-Limiter hooks itself before and after every request of the app; only the Kommo
    blueprint has limits of its own (the install callback), so its hooks run for that blueprint
    alone and every other request, the gateway's and the chat poll's above all, skips them."""
    registries: tuple[dict[str | None, list[Any]], ...] = (
        cast(dict[str | None, list[Any]], app.before_request_funcs),
        cast(dict[str | None, list[Any]], app.after_request_funcs),
        cast(dict[str | None, list[Any]], app.teardown_request_funcs),
    )
    hooks = [[fn for fn in registry.get(None, []) if _is_limiter_hook(fn)] for registry in registries]
    if any(len(found) != 1 for found in hooks):
        log.warning("Flask-Limiter's request hooks were not found as expected: they stay on every request")
        return
    for registry, (fn,) in zip(registries, hooks, strict=True):
        registry[None].remove(fn)
        registry.setdefault(blueprint, []).append(fn)


def retry_after(item: RateLimitItem, *identifiers: str) -> int:
    """Seconds until the limit lets the caller in again (at least 1)."""
    try:
        reset = limiter.limiter.get_window_stats(item, *identifiers).reset_time
    except Exception:  # storage unreachable: a plain guess is as good
        return int(item.get_expiry())
    return max(1, int(reset - time.time()) + 1)


def too_many(seconds: int) -> Response:
    from widget.web.errors import error_response

    body, status = error_response(
        429, gettext("Too many attempts from your address. Please wait a minute and try again.")
    )
    response = current_app.make_response((body, status))
    response.headers["Retry-After"] = str(seconds)
    return response


def host_key() -> str:
    """The account host a Kommo callback names, for the per-host limit ("-" when it names none)."""
    return (request.args.get("referer") or "-").strip().lower()[:255] or "-"


F = TypeVar("F", bound=Callable[..., Any])


def _accepted(response: Response) -> bool:
    return response.status_code < 400


def callback_limits(view: F) -> F:
    """The Kommo install callback's limits: per client address, and per account host. A callback
    counts once it is accepted (a code stored, a secret about to be sent); one refused for a bad
    referer or state has cost nothing and is not counted."""
    per_address = limiter.limit(CALLBACK_PER_ADDRESS, key_func=client_address, deduct_when=_accepted)
    per_host = limiter.limit(CALLBACK_PER_HOST, key_func=host_key, deduct_when=_accepted)
    return cast(F, per_address(per_host(view)))


# --- failure limits ---------------------------------------------------------------------------------


class FailureGuard:
    """Counts one route's refused calls per client address; past the limit the address meets 429.

    Which addresses failed lately is kept per process too (at most ``SUSPECTS_MAX``, for the
    limit's window): only those are checked against the shared counter before a call is served."""

    def __init__(self, name: str, limit: str) -> None:
        self.name = f"{KEY_PREFIX}/{name}"
        self.item = parse(limit)
        self._suspects: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def _suspected(self, address: str, now: float) -> bool:
        with self._lock:
            until = self._suspects.get(address)
            if until is None:
                return False
            if until < now:
                del self._suspects[address]
                return False
            return True

    def _suspect(self, address: str, now: float) -> None:
        with self._lock:
            self._suspects[address] = now + self.item.get_expiry()
            self._suspects.move_to_end(address)
            while len(self._suspects) > SUSPECTS_MAX:
                self._suspects.popitem(last=False)

    def refusal(self) -> Response | None:
        """A 429 for an address past its limit; None (and no storage call) for everyone else."""
        address = client_address()
        if not self._suspected(address, time.monotonic()):
            return None
        try:
            allowed = limiter.limiter.test(self.item, self.name, address)
        except Exception as exc:  # storage unreachable: serve rather than refuse
            log.warning("rate limit storage unreachable: %s", exc)
            return None
        if allowed:
            return None
        return too_many(retry_after(self.item, self.name, address))

    def failed(self) -> None:
        """Count a refused call of the current client."""
        address = client_address()
        self._suspect(address, time.monotonic())
        try:
            limiter.limiter.hit(self.item, self.name, address)
        except Exception as exc:  # storage unreachable: count nothing, serve
            log.warning("rate limit storage unreachable: %s", exc)

    def reset(self) -> None:
        with self._lock:
            self._suspects.clear()


def failure_guard(name: str, limit: str) -> FailureGuard:
    """The app's guard of that name (one per app, so two apps in one process never share one)."""
    guards: dict[str, FailureGuard] = current_app.extensions["widget_failure_guards"]
    guard = guards.get(name)
    if guard is None:
        guard = guards.setdefault(name, FailureGuard(name, limit))
    return guard


def guarded_by_failures(name: str, limit: str, counts: Callable[[int], bool]) -> Callable[[F], F]:
    """Serve the view unless the client is past ``limit`` refusals; count a response whose status
    ``counts`` says is a refusal."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            guard = failure_guard(name, limit)
            refused = guard.refusal()
            if refused is not None:
                return refused
            response = current_app.make_response(view(*args, **kwargs))
            if counts(response.status_code):
                guard.failed()
            return response

        return cast(F, wrapper)

    return decorate
