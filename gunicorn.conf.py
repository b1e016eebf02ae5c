"""gunicorn's settings file, read from the working directory (the checkout) by ``gunicorn server:app``.

* Access log lines carry no credential: our logger class masks session tokens, OAuth codes and the
  Kommo webhook address's token (``widget/access_log.py``).
* A production start that lacks a required setting stops in the master, before any worker is
  forked, with the one message ``widget.config`` writes (every missing variable named). Without
  this, each worker would fail on its own and the master would halt with a traceback of its own.

Options given on the command line or in ``GUNICORN_CMD_ARGS`` override these. Another app started
from this folder (the benchmarks' bare Flask app) is not checked.
"""

from __future__ import annotations

from typing import Any

logger_class = "widget.access_log.GunicornLogger"


def on_starting(server: Any) -> None:
    if not str(getattr(server.app, "app_uri", "") or "").startswith("server:"):
        return
    from widget.config import ConfigError, Settings

    try:
        Settings.from_env()
    except ConfigError as exc:
        # gunicorn prints a RuntimeError raised here as "Error: <message>" and exits 1.
        raise RuntimeError(str(exc)) from None
