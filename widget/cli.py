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
        from widget.services.accounts.state import purge_expired_uninstalls

        services: AppServices = app.extensions["widget"]
        with db.transaction() as session:
            n = purge_expired_uninstalls(session, services.settings.uninstall_grace_days)
        click.echo(f"purged {n} account(s)")

    @app.cli.command("gateway-secret")
    @click.argument("account", required=False)
    @click.option("--rotate", is_flag=True, help="Create a new secret; the old one keeps working for the grace period.")
    @click.option("--stop-previous", is_flag=True, help="With --rotate: the old secret leaked, stop it at once.")
    @click.option("--list", "list_accounts", is_flag=True, help="List the accounts (id, CRM, address), no secrets.")
    def gateway_secret(account: str | None, rotate: bool, stop_previous: bool, list_accounts: bool) -> None:
        """Print (or rotate) the secret the messaging gateway signs an ACCOUNT's deliveries with.

        ACCOUNT is the CRM address (e.g. acme.kommo.com, acme.bitrix24.com) or our account id."""
        from widget.db import db
        from widget.services.channels import gateway_secret as gs

        services: AppServices = app.extensions["widget"]
        if list_accounts:
            with db.transaction() as session:
                for a in gs.list_accounts(session):
                    click.echo(f"{a.id}\t{a.crm}\t{a.domain}\t{a.status}\t{a.name}")
            return
        if not account:
            raise click.UsageError("Name the account (its CRM address or id), or use --list.")
        if stop_previous and not rotate:
            raise click.UsageError("--stop-previous only makes sense with --rotate.")
        with db.transaction() as session:
            found = gs.find_account(session, account)
            account_id = found.id if found is not None else None
        if account_id is None:
            raise click.ClickException(f"No account {account!r}. See `gateway-secret --list`.")
        if rotate:
            state = gs.rotate(db, services, account_id, stop_previous=stop_previous)
        else:
            state = gs.read_secret(db, services, account_id)
        click.echo(state.secret)
        # The secret alone on stdout (for scripts); what to do with it on stderr.
        click.echo(f"inbound URL: {gs.inbound_url(services)}", err=True)
        if state.previous_valid_until is not None:
            click.echo(f"the previous secret keeps working until {state.previous_valid_until.isoformat()}", err=True)
        elif rotate:
            click.echo("the previous secret no longer works", err=True)
