"""HTTP only: blueprints parse, call one service, render or jsonify."""

from __future__ import annotations

from flask import Flask

from widget.web import identity
from widget.web.identity import TokenSessionInterface, current_session_token


def init_app(app: Flask) -> None:
    from widget.web import body_limit, context, errors, frame, limits, security
    from widget.web.health import bp as health_bp

    app.session_interface = TokenSessionInterface()
    # A global, not a context variable: macros imported without context still see it.
    app.jinja_env.globals["current_session_token"] = current_session_token
    context.init_app(app)
    errors.init_app(app)
    body_limit.init_app(app)
    frame.init_app(app)
    security.init_app(app)
    limits.init_app(app)
    identity.init_app(app)
    app.register_blueprint(health_bp)
    # CRM-specific and page blueprints register themselves here as they are added.
    from widget.web import blueprints

    blueprints.register(app)
