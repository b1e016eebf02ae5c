"""What a Bitrix24 portal sends to an application, built from the sandbox's records: the OAuth
server's token answer (reference §4.2), the hidden form that opens the app in its iframe (§2.1)
and an event body (§1.3, §5.2, Addendum). ``SandboxState`` issues the tokens and keeps the records;
these functions only shape what goes on the wire.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from sandbox.bitrix24.apps import AppRegistration, FrameOpen
from sandbox.bitrix24.portal import Portal, User
from sandbox.bitrix24.tokens import Grant


def install_status(portal: Portal) -> str:
    """The ``status`` a portal reports for the app: the installation's, "L" (local) before one."""
    return portal.installation.status if portal.installation else "L"


def expires_in(grant: Grant) -> int:
    return int(grant.expires_at - grant.issued_at)


def token_answer(grant: Grant, portal: Portal, oauth_url: str, server_endpoint: str) -> dict[str, Any]:
    """The OAuth server's token answer, incl. ``expires`` and ``user_id``."""
    return {
        "access_token": grant.access_token,
        "expires": int(grant.expires_at),
        "expires_in": expires_in(grant),
        "scope": grant.scope,
        "domain": urlsplit(oauth_url).netloc,
        "server_endpoint": server_endpoint,
        "status": install_status(portal),
        "client_endpoint": portal.client_endpoint,
        "member_id": portal.member_id,
        "user_id": grant.user_id,
        "refresh_token": grant.refresh_token,
    }


def frame_open(
    portal: Portal,
    user: User,
    app: AppRegistration,
    grant: Grant,
    url: str,
    *,
    server_endpoint: str,
    placement: str,
    options: Mapping[str, Any] | None,
    installer: bool,
    lang: str | None,
) -> FrameOpen:
    """The form Bitrix24 POSTs into the app's iframe for ``user``, carrying ``grant``."""
    sid = secrets.token_hex(16)
    query = {
        "DOMAIN": portal.domain,
        "PROTOCOL": str(portal.protocol),
        "LANG": lang or user.lang,
        "APP_SID": sid,
    }
    form = {
        "AUTH_ID": grant.access_token,
        "AUTH_EXPIRES": str(expires_in(grant)),
        "REFRESH_ID": grant.refresh_token,
        "SERVER_ENDPOINT": server_endpoint,
        "member_id": portal.member_id,
        "status": install_status(portal),
        "PLACEMENT": placement,
        "PLACEMENT_OPTIONS": json.dumps(dict(options or {})),
        "APPLICATION_SCOPE": ",".join(app.scopes),
    }
    if portal.installation is not None:
        form["APPLICATION_TOKEN"] = portal.installation.application_token
    sep = "&" if "?" in url else "?"
    return FrameOpen(
        url=f"{url}{sep}{urlencode(query)}",
        query=query,
        form=form,
        app_sid=sid,
        frame_name=f"{portal.domain}|{portal.protocol}|{sid}",
        portal_origin=portal.origin,
        member_id=portal.member_id,
        user_id=user.id,
        placement=placement,
        options=dict(options or {}),
        is_installer=installer,
        is_admin=user.admin,
    )


def event_body(
    portal: Portal,
    event: str,
    data: Mapping[str, Any],
    *,
    ts: int,
    server_endpoint: str,
    grant: Grant | None,
    with_refresh: bool,
    application_token: str | None,
    handler_id: int,
) -> dict[str, Any]:
    """``event``, ``event_handler_id``, ``data``, ``ts``, ``auth`` — tokens only when a user caused
    it (``grant``), ``refresh_token`` only on install."""
    inst = portal.installation
    auth: dict[str, Any] = {
        "domain": portal.domain,
        "client_endpoint": portal.client_endpoint,
        "server_endpoint": server_endpoint,
        "member_id": portal.member_id,
        "status": install_status(portal),
        "application_token": application_token
        if application_token is not None
        else (inst.application_token if inst else ""),
    }
    if grant is not None:
        auth.update(
            {
                "access_token": grant.access_token,
                "expires": int(grant.expires_at),
                "expires_in": expires_in(grant),
                "scope": grant.scope,
                "user_id": grant.user_id,
            }
        )
        if with_refresh:
            auth["refresh_token"] = grant.refresh_token
    return {
        "event": event,
        "event_handler_id": handler_id or secrets.randbelow(900) + 100,
        "data": dict(data),
        "ts": ts,
        "auth": auth,
    }
