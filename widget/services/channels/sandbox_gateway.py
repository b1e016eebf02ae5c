"""Our channels, as the sandbox messaging gateway lists them (the embedded default only).

A real gateway learns a channel when its operator connects it. The sandbox gateway is a separate
HTTP server that cannot read our database, so our server tells it, through its control API, about
every channel as soon as it exists and whenever it changes (added, renamed, disabled, enabled, its
account installed or uninstalled), and about all of them when the embedded default starts: its
console then lists every enabled channel by account and name, and a client can write on any of
them. The call is a projection of what the database holds, so a lost one is made good by the
next; the job that makes it is safe to run twice.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from widget.db import Database
from widget.extensions import AppServices
from widget.models import Account, Channel
from widget.models.accounts import CRM_BITRIX24
from widget.services.channels.signing import get_or_create_gateway_secret
from widget.services.channels.transports import ChannelListing, SandboxGatewayTransport

log = logging.getLogger(__name__)
JOB_NAME = "publish_sandbox_channels"


def _sandbox(services: AppServices) -> SandboxGatewayTransport | None:
    transport = services.transport
    return transport if isinstance(transport, SandboxGatewayTransport) else None


def account_label(account: Account) -> str:
    crm = "Bitrix24" if account.crm == CRM_BITRIX24 else "Kommo"
    return f"{account.name or account.domain} ({crm})"


def publish_channels(database: Database, services: AppServices, account_id: int | None = None) -> int:
    """Register the channels of one account (or of every account) with the sandbox gateway;
    returns how many. Nothing happens when replies do not go to the sandbox gateway."""
    sandbox = _sandbox(services)
    if sandbox is None:
        return 0
    with database.transaction() as session:
        query = select(Channel, Account).join(Account, Account.id == Channel.account_id).order_by(Channel.id)
        if account_id is not None:
            query = query.where(Channel.account_id == account_id)
        rows = session.execute(query).all()
        secrets = {acc.id: get_or_create_gateway_secret(session, services.box, acc.id) for _, acc in rows}
        listings = [
            (
                ChannelListing(
                    ch.id, ch.transport, ch.name, ch.address, account_label(acc), ch.is_enabled and acc.is_usable
                ),
                secrets[acc.id],
            )
            for ch, acc in rows
        ]
    for listing, secret in listings:
        sandbox.register_channel(listing, secret)
    return len(listings)


def nudge_sandbox_gateway(services: AppServices, account_id: int) -> None:
    """After a change to an account's channels: have the sandbox gateway list them as they are."""
    if _sandbox(services) is not None:
        services.jobs.enqueue(JOB_NAME, account_id)
