"""The app as registered in a portal, and one iframe open as Bitrix24 renders it (reference §2.1, §8.1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests


@dataclass
class AppRegistration:
    """The local-application form (reference §8.1)."""

    client_id: str
    client_secret: str
    handler_url: str
    install_url: str
    menu_title: dict[str, str]
    scopes: tuple[str, ...] = ("crm", "user", "placement")
    api_only: bool = False
    code: str = "local.app"

    @classmethod
    def from_card(cls, card: Mapping[str, Any], public_url: str, client_id: str, client_secret: str) -> AppRegistration:
        base = public_url.rstrip("/")
        return cls(
            client_id=client_id,
            client_secret=client_secret,
            handler_url=base + card["handler_path"],
            install_url=base + card["install_path"],
            menu_title=dict(card["menu_item_name"]),
            scopes=tuple(card["scopes"]),
            api_only=bool(card.get("api_only")),
            code=str(card.get("code") or "local.app"),
        )

    def title(self, lang: str) -> str:
        return self.menu_title.get(lang) or self.menu_title.get("en") or "App"


@dataclass
class FrameOpen:
    """One iframe open as Bitrix24 renders it: a hidden form POSTed to ``url`` (query part already
    in it) with ``form`` as the body, into a frame named ``HOST|PROTO|APP_SID`` (reference §2.1)."""

    url: str
    query: dict[str, str]
    form: dict[str, str]
    app_sid: str
    frame_name: str
    portal_origin: str
    member_id: str
    user_id: int
    placement: str
    options: dict[str, Any]
    is_installer: bool
    is_admin: bool

    @property
    def app_origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def init_data(self) -> dict[str, Any]:
        """The answer to the BX24 bridge's ``getInitData`` (reference §2.3)."""
        return {
            "DOMAIN": self.query["DOMAIN"],
            "PROTOCOL": int(self.query["PROTOCOL"]),
            "PATH": "/rest",
            "LANG": self.query["LANG"],
            "MEMBER_ID": self.member_id,
            "IS_ADMIN": self.is_admin,
            "AUTH_ID": self.form["AUTH_ID"],
            "REFRESH_ID": self.form["REFRESH_ID"],
            "AUTH_EXPIRES": int(self.form["AUTH_EXPIRES"]),
            "APP_OPTIONS": [],
            "USER_OPTIONS": [],
            "PLACEMENT": self.placement,
            "PLACEMENT_OPTIONS": self.options,
            "INSTALL": self.is_installer,
            "FIRST_RUN": self.is_installer,
        }

    def post(self, session: requests.Session | None = None, timeout: float = 30.0) -> requests.Response:
        """What the user's browser does: a cross-site form POST with the portal as Origin/Referer."""
        sender = session or requests
        return sender.post(
            self.url,
            data=self.form,
            headers={"Origin": self.portal_origin, "Referer": self.portal_origin + "/"},
            allow_redirects=False,
            timeout=timeout,
        )
