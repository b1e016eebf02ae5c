"""``flask --app server`` commands for operators."""

from __future__ import annotations

import click
from flask import Flask

from widget.extensions import AppServices


def register_cli(app: Flask) -> None:
    @app.cli.command("db-upgrade")
    def db_upgrade() -> None:
        """Apply database migrations."""
        from widget.migrate import upgrade

        services: AppServices = app.extensions["widget"]
        upgrade(services.settings.database_url)
        click.echo("database is up to date")

    @app.cli.command("purge-uninstalled")
    def purge_uninstalled() -> None:
        """Delete accounts whose post-uninstall grace period is over."""
        from widget.db import db
        from widget.services.accounts import purge_expired_uninstalls

        services: AppServices = app.extensions["widget"]
        with db.transaction() as session:
            n = purge_expired_uninstalls(session, services.settings.uninstall_grace_days)
        click.echo(f"purged {n} account(s)")
