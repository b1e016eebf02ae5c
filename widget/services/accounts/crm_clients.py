"""Account → CRM client: the one place that loads an installed account, checks its CRM and status,
and builds the adapter's client on the account's stored tokens (``StoredTokens``), or its
``CrmPort``. The adapters in ``widget.crm`` are handed what they need from here; they never read
our tables themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from widget.crm.bitrix24.client import Bitrix24Client
from widget.crm.bitrix24.payloads import host_of
from widget.crm.bitrix24.port import Bitrix24CrmPort
from widget.crm.bitrix24.provider import Bitrix24Provider
from widget.crm.errors import CrmAuthError
from widget.crm.http import RetryPolicy
from widget.crm.kommo.client import KommoClient
from widget.crm.kommo.port import KommoCrmPort
from widget.crm.kommo.provider import KommoProvider
from widget.crm.tokens import TokenPair
from widget.crypto import TokenBox
from widget.db import Database, lock_for_update
from widget.domain.crm import ENTITY_DEAL, ENTITY_LEAD, STAGE_LOST, STAGE_WON
from widget.domain.ports import CrmPort
from widget.extensions import AppServices
from widget.models import Account, Pipeline, Stage
from widget.models.accounts import CRM_BITRIX24, CRM_KOMMO
from widget.services.accounts.tokens import StoredTokens

log = logging.getLogger(__name__)

# The outbox retries durably with its own back-off, so a port's call retries inline only briefly.
PORT_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0)

_NAMES = {CRM_KOMMO: "Kommo", CRM_BITRIX24: "Bitrix24"}
_NOT_INSTALLED = {
    CRM_KOMMO: "the integration is not installed in this Kommo account",
    CRM_BITRIX24: "the app is not installed on this portal",
}


class CrmNotPlugged(LookupError):
    """The account's CRM has no adapter here (``widget.services.outbox`` keeps its work waiting)."""


@dataclass(frozen=True)
class InstalledAccount:
    id: int
    crm: str
    domain: str
    client_endpoint: str | None
    external_id: str
    crm_mode: str


def installed_account(database: Database, account_id: int, crm: str, *, usable: bool = True) -> InstalledAccount:
    """The account, which must be of ``crm`` (``LookupError`` otherwise) and, when ``usable``,
    installed and authorized (``CrmAuthError`` otherwise)."""
    with database.transaction() as session:
        account = session.get(Account, account_id)
        if account is None or account.crm != crm:
            raise LookupError(f"{_NAMES[crm]} account {account_id} does not exist")
        if usable and not account.is_usable:
            raise CrmAuthError(_NOT_INSTALLED[crm])
        return InstalledAccount(
            account.id, account.crm, account.domain, account.client_endpoint, account.external_id, account.crm_mode
        )


# --- Kommo ---------------------------------------------------------------------------------------


def kommo_tokens(
    database: Database, box: TokenBox, provider: KommoProvider, account_id: int, host: str
) -> StoredTokens:
    """The account's stored pair, refreshed at its Kommo host's token endpoint."""
    return StoredTokens(database, box, account_id, lambda refresh_token: provider.refresh_tokens(host, refresh_token))


def kommo_client(
    database: Database,
    services: AppServices,
    account_id: int,
    *,
    provider: KommoProvider | None = None,
    retry: RetryPolicy | None = None,
) -> KommoClient:
    """The API v4 client of an installed Kommo account, acting with its stored (refreshed) tokens."""
    account = installed_account(database, account_id, CRM_KOMMO)
    provider = provider or KommoProvider(services.settings, retry=retry)
    return provider.client(account.domain, kommo_tokens(database, services.box, provider, account_id, account.domain))


# --- Bitrix24 ------------------------------------------------------------------------------------


def bitrix24_client(
    database: Database,
    services: AppServices,
    account_id: int,
    *,
    retry: RetryPolicy | None = None,
    usable: bool = False,
) -> Bitrix24Client:
    """A REST client for the portal of ``account_id``, acting with its stored tokens (the installing
    admin's). Its status is checked only when ``usable``: a portal marked "needs reinstall" may still
    be asked, and its answer tells whether that is still so."""
    return _bitrix24_client(
        database, services, installed_account(database, account_id, CRM_BITRIX24, usable=usable), retry
    )


def _bitrix24_client(
    database: Database, services: AppServices, account: InstalledAccount, retry: RetryPolicy | None
) -> Bitrix24Client:
    account_id = account.id
    if not account.client_endpoint:
        raise CrmAuthError("this portal has no stored REST endpoint")
    provider = Bitrix24Provider(services.settings)

    def refresh(refresh_token: str) -> TokenPair:
        # The endpoint is read when needed: a reinstall may have moved it since the client was built.
        with database.transaction() as session:
            endpoint = session.execute(
                select(Account.server_endpoint).where(Account.id == account_id)
            ).scalar_one_or_none()
        return provider.refresh(endpoint, refresh_token).pair

    tokens = StoredTokens(database, services.box, account_id, refresh)
    return provider.client(
        account.client_endpoint, tokens, account.external_id, retry, on_moved=_portal_moved(database, account_id)
    )


def _portal_moved(database: Database, account_id: int) -> Callable[[str], None]:
    def moved(client_endpoint: str) -> None:
        """The portal was renamed (302 on REST): keep its new address; member_id stays (§6.1)."""
        log.info("Bitrix24 account %s moved to %s", account_id, host_of(client_endpoint))
        with database.transaction() as session:
            account = lock_for_update(session, Account, id=account_id)
            if account is not None:
                account.client_endpoint = client_endpoint
                account.domain = host_of(client_endpoint)

    return moved


def _closed_stages(database: Database, account_id: int) -> Callable[[], dict[str, frozenset[str]]]:
    def closed() -> dict[str, frozenset[str]]:
        """Won/lost deal stages and lead statuses as our last "Refresh CRM data" saw them."""
        with database.transaction() as session:
            rows = session.execute(
                select(Pipeline.entity, Stage.crm_stage_id)
                .join(Pipeline, Pipeline.id == Stage.pipeline_id)
                .where(Stage.account_id == account_id, Stage.kind.in_((STAGE_WON, STAGE_LOST)))
            ).all()
        return {
            ENTITY_DEAL: frozenset(s for e, s in rows if e == ENTITY_DEAL),
            ENTITY_LEAD: frozenset(s for e, s in rows if e == ENTITY_LEAD),
        }

    return closed


# --- the port ------------------------------------------------------------------------------------


def account_crm(database: Database, account_id: int) -> str:
    """Which CRM the account is in (``LookupError`` when there is no such account): the key of its
    CRM port factory."""
    with database.transaction() as session:
        crm = session.execute(select(Account.crm).where(Account.id == account_id)).scalar_one_or_none()
    if crm is None:
        raise LookupError(f"account {account_id} does not exist")
    return crm


def kommo_port(database: Database, services: AppServices, account_id: int) -> CrmPort:
    """The ``CrmPort`` of an installed Kommo account (the app's factory for Kommo)."""
    kommo = kommo_client(database, services, account_id, retry=PORT_RETRY)
    return KommoCrmPort(kommo, account_id, form_page=services.settings.public_url)


def bitrix24_port(database: Database, services: AppServices, account_id: int) -> CrmPort:
    """The ``CrmPort`` of an installed Bitrix24 portal (the app's factory for Bitrix24)."""
    account = installed_account(database, account_id, CRM_BITRIX24)
    bitrix24 = _bitrix24_client(database, services, account, PORT_RETRY)
    return Bitrix24CrmPort(bitrix24, account_id, account.crm_mode, _closed_stages(database, account_id))


PORTS = {CRM_KOMMO: kommo_port, CRM_BITRIX24: bitrix24_port}


def crm_port(database: Database, services: AppServices, account_id: int) -> CrmPort:
    """The ``CrmPort`` of an installed account, whichever its CRM (``CrmNotPlugged`` for a CRM we
    have no adapter for; ``LookupError`` when there is no such account)."""
    crm = account_crm(database, account_id)
    if crm not in PORTS:
        raise CrmNotPlugged(f"no CRM port for {crm!r} is plugged in")
    return PORTS[crm](database, services, account_id)
