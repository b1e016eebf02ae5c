"""The production entry: ``server.app`` for ``gunicorn server:app`` and ``flask --app server …``.

A start without the settings it needs must stop at once with the one message ``widget.config``
writes, never run the sandbox by accident nor start a crash loop.
"""

from __future__ import annotations

import sys

from flask import Flask

from widget.config import ConfigError


def production_app() -> Flask:
    from widget import create_app

    try:
        return create_app()
    except ConfigError as exc:
        raise _stop(str(exc)) from None


def _stop(message: str) -> BaseException:
    # In a gunicorn worker, SystemExit would be taken for a worker that died, and the master would
    # start another one forever; AppImportError is gunicorn's own "the app cannot load": the worker
    # prints the message alone and the master halts. Anywhere else (flask's CLI, a plain import),
    # SystemExit prints the message without a traceback and exits 1.
    if "gunicorn.arbiter" in sys.modules:
        from gunicorn.errors import AppImportError

        return AppImportError(message)
    return SystemExit(message)
