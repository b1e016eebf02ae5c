"""Request bodies over ``MAX_CONTENT_LENGTH``: a 413 on every route, and the connection closed.

* Every route answers 413, whether or not it reads its body: the session interface must not read an
  oversized form looking for the ``st`` field (it runs before any error handler, so the limit it hit
  became a 500), a route that never reads the body would otherwise answer as if nothing was sent,
  and a chunked body (no ``Content-Length``) past the limit must not be parsed from its first part.
* After a 413 the rest of the body is still on its way. gunicorn would keep the connection alive
  (it says ``Connection: keep-alive``), try to drain the body, give up after 64 KiB and close it, so
  a client reusing the connection — a gateway with a connection pool — lost its next request. So
  every 413 closes the connection, and says so: ``Connection: close``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, abort, request
from flask_babel import gettext
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import LimitedStream

TOO_LARGE_KEY = "widget.body_too_large"  # the answer of body_over_limit, kept in the WSGI environ


def body_over_limit() -> bool:
    """Is the body over ``MAX_CONTENT_LENGTH``? Asked by the session interface and before every view;
    measured once per request."""
    known = request.environ.get(TOO_LARGE_KEY)
    if known is None:
        known = request.environ[TOO_LARGE_KEY] = _measure()
    return bool(known)


def _measure() -> bool:
    limit = request.max_content_length
    if limit is None:
        return False
    if request.content_length is not None:
        return request.content_length > limit
    if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return False
    # A chunked body announces no length, and werkzeug's limited stream stops at the limit without
    # complaint: a form would be parsed from its first MiB. So read it (at most the limit, kept for
    # the view) and call it too large when it reached the limit.
    request.get_data(cache=True)
    stream = request.stream
    return isinstance(stream, LimitedStream) and stream.is_exhausted


class CloseAfterRefusedBody:
    """WSGI middleware: a 413 ends its connection.

    PEP 3333 leaves connection management to the server, and gunicorn drops a ``Connection``
    header an application sets. Its response object — whose bound ``start_response`` we are handed
    — has ``force_close()``, the call gunicorn itself makes when a worker is about to restart; after
    it gunicorn sends ``Connection: close`` and closes the socket gracefully. Under any other server
    the header is sent, which such servers (and clients) honour.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("413"):
                force_close = getattr(getattr(start_response, "__self__", None), "force_close", None)
                if callable(force_close):
                    force_close()
                else:
                    headers = [(k, v) for k, v in headers if k.lower() != "connection"] + [("Connection", "close")]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def init_app(app: Flask) -> None:
    # First of all before-request hooks: nothing else should read a body that is over the limit.
    def refuse_oversized_body() -> None:
        if body_over_limit():
            abort(413)

    app.before_request_funcs.setdefault(None, []).insert(0, refuse_oversized_body)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> Any:
        from widget.web.errors import error_response

        limit = app.config["MAX_CONTENT_LENGTH"]
        return error_response(
            413, gettext("This request is too large: at most %(size)s KB can be sent.", size=limit // 1024)
        )

    app.wsgi_app = CloseAfterRefusedBody(app.wsgi_app)  # type: ignore[method-assign]
