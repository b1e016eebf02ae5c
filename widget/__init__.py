"""The messenger-to-CRM backend. ``create_app`` builds the Flask app; it does no I/O."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask_babel import Babel
from werkzeug.middleware.proxy_fix import ProxyFix

from widget.config import ROOT, Settings
from widget.db import db
from widget.web.same_origin import csrf

LANGUAGES = ("en", "es", "pt", "ru")

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

    from widget.catalogs import compiled_catalogs

    # Cheap when the catalogs are current (a stat per file); compiles them once on a plain checkout.
    translations = compiled_catalogs(
        os.path.join(ROOT, "widget", "translations"), os.path.join(settings.instance_path, "translations")
    )
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
        # Its https Referer check refused every form behind a TLS front; widget.web.same_origin
        # checks where a post came from instead (on http too).
        WTF_CSRF_SSL_STRICT=False,
        BABEL_DEFAULT_LOCALE="en",
        BABEL_TRANSLATION_DIRECTORIES=translations,
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
        PREFERRED_URL_SCHEME=settings.public_url.split(":", 1)[0],
    )
    from widget.wiring import build_services

    app.extensions["widget"] = build_services(app, settings)

    db.configure(settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)

    from widget.access_log import install_werkzeug_filter
    from widget.web import init_app as init_web

    install_werkzeug_filter()  # request logs of the built-in server never show a token

    init_web(app)
    csrf.init_app(app)
    if settings.proxy_hops:
        # Believe that many hops of X-Forwarded-* (client address, scheme, host) and no more. Links
        # we hand out never depend on it: they are built from PUBLIC_URL.
        n = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)  # type: ignore[method-assign]

    from widget.web.i18n import select_locale

    babel.init_app(app, locale_selector=select_locale)

    from widget.cli import register_cli

    register_cli(app)
    return app
