"""The messenger-to-CRM backend. ``create_app`` builds the Flask app; it does no I/O."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask_babel import Babel
from flask_wtf import CSRFProtect

from widget.config import Settings
from widget.crypto import TokenBox
from widget.db import db
from widget.extensions import AppServices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANGUAGES = ("en", "es", "pt", "ru")

csrf = CSRFProtect()
babel = Babel()


def create_app(config: Settings | dict[str, Any] | None = None) -> Flask:
    """Build the app from a ``Settings`` object, a dict of environment-style overrides, or the
    environment itself."""
    if isinstance(config, Settings):
        settings = config
    else:
        env = dict(os.environ)
        env.update({k: str(v) for k, v in (config or {}).items()})
        settings = Settings.from_env(env)

    app = Flask(
        __name__,
        instance_path=settings.instance_path,
        template_folder=os.path.join(ROOT, "templates"),
        static_folder=os.path.join(ROOT, "static"),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        WTF_CSRF_TIME_LIMIT=None,  # bounded by the session token's own lifetime
        WTF_CSRF_HEADERS=["X-CSRFToken", "X-CSRF-Token"],
        BABEL_DEFAULT_LOCALE="en",
        BABEL_TRANSLATION_DIRECTORIES=os.path.join(ROOT, "widget", "translations"),
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
        PREFERRED_URL_SCHEME=settings.public_url.split(":", 1)[0],
    )
    app.extensions["widget"] = AppServices(settings=settings, box=TokenBox(settings.token_keys))

    db.configure(settings.database_url)

    from widget.access_log import install_werkzeug_filter
    from widget.web import init_app as init_web

    install_werkzeug_filter()  # request logs of the built-in server never show a token

    init_web(app)
    csrf.init_app(app)

    from widget.web.i18n import select_locale

    babel.init_app(app, locale_selector=select_locale)

    from widget.cli import register_cli

    register_cli(app)
    return app
