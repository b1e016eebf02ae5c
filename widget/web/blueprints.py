"""The list of blueprints, in one place so adding an area touches one line."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from widget.web.about import bp as about_bp

    app.register_blueprint(about_bp)
    from widget.web.pages import bp as pages_bp

    app.register_blueprint(pages_bp)
    from widget.web.settings import bp as settings_bp

    app.register_blueprint(settings_bp)
    from widget.web.gateway import bp as gateway_bp

    app.register_blueprint(gateway_bp)
    from widget.web.kommo import bp as kommo_bp

    app.register_blueprint(kommo_bp)
    from widget.web.bitrix24 import bp as bitrix24_bp

    app.register_blueprint(bitrix24_bp)
    from widget.web.kommo_webhooks import bp as kommo_webhooks_bp

    app.register_blueprint(kommo_webhooks_bp)
    from widget.web.chats import bp as chats_bp

    app.register_blueprint(chats_bp)
    from widget.web.chat_start import bp as chat_start_bp

    app.register_blueprint(chat_start_bp)
