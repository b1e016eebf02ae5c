"""Typed views of what Bitrix24 sends us and answers, built at the edge: the iframe POST and
events, the OAuth server's answers, and the portal's REST answers.

Everything here turns untrusted input (decoded by ``widget.crm.bitrix24.php``) into frozen
dataclasses, raising ``PayloadError`` (inbound) or ``CrmBadResponse`` (CRM answers) instead of a
``KeyError`` somewhere deep inside.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from widget.crm.bitrix24.php import PayloadError, as_dict, as_list, php_decode
from widget.crm.errors import CrmBadResponse
from widget.crm.tokens import TokenPair
from widget.domain.crm import STAGE_LOST, STAGE_OPEN, STAGE_WON, CrmStage, CrmUser

_MEMBER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _str(value: Any, limit: int = 500) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise PayloadError("a scalar field holds a structure")
    return str(value)[:limit]


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def host_of(url: str) -> str:
    return urlsplit(url).netloc.lower()


# --------------------------------------------------------------------------------------------
# Inbound: the iframe POST (reference §2.1) and events (§1.3, §5.2)


@dataclass(frozen=True)
class FramePost:
    """What Bitrix24's hidden form posts into our iframe (query part + body part)."""

    domain: str
    protocol: int
    lang: str
    app_sid: str
    auth_id: str
    auth_expires: int
    refresh_id: str
    server_endpoint: str
    application_token: str
    member_id: str
    status: str
    placement: str
    placement_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, query: Mapping[str, str], form: Mapping[str, str]) -> FramePost:
        def get(name: str) -> str:
            # Bitrix24 puts DOMAIN/PROTOCOL/LANG/APP_SID in the query and the rest in the body;
            # read either, preferring the documented place.
            return _str(query.get(name) or form.get(name) or "", 2000).strip()

        member_id = _str(form.get("member_id") or query.get("member_id") or "").strip()
        if not _MEMBER_ID.match(member_id):
            raise PayloadError("member_id is missing or malformed")
        auth_id = get("AUTH_ID")
        if not auth_id:
            raise PayloadError("AUTH_ID is missing")
        raw_options = _str(form.get("PLACEMENT_OPTIONS") or "", 20000)
        try:
            options = json.loads(raw_options) if raw_options else {}
        except (ValueError, RecursionError):  # 20,000 characters can nest past the parser's limit
            raise PayloadError("PLACEMENT_OPTIONS is not JSON") from None
        return cls(
            domain=get("DOMAIN").lower(),
            protocol=1 if get("PROTOCOL") == "1" else 0,
            lang=get("LANG")[:8],
            app_sid=get("APP_SID")[:64],
            auth_id=auth_id,
            auth_expires=_int(get("AUTH_EXPIRES"), 3600),
            refresh_id=get("REFRESH_ID"),
            server_endpoint=get("SERVER_ENDPOINT"),
            application_token=get("APPLICATION_TOKEN"),
            member_id=member_id,
            status=get("status")[:2],
            placement=(get("PLACEMENT") or "DEFAULT").upper()[:64],
            placement_options=options if isinstance(options, dict) else {},
        )

    def expires_at(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(UTC)) + timedelta(seconds=max(0, self.auth_expires))


@dataclass(frozen=True)
class EventAuth:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str
    domain: str
    member_id: str
    client_endpoint: str
    server_endpoint: str
    status: str
    application_token: str

    def expires_at(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(UTC)) + timedelta(seconds=max(0, self.expires_in or 3600))


@dataclass(frozen=True)
class EventPost:
    """A server-to-server event: ``event``, ``event_handler_id``, ``ts``, ``data[...]``, ``auth[...]``.

    ``event_handler_id`` and ``auth[expires]`` (Addendum) are tolerated whether present or not.
    """

    event: str
    event_handler_id: str
    ts: str
    data: dict[str, Any]
    auth: EventAuth

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]]) -> EventPost:
        tree = php_decode(pairs)
        event = _str(tree.get("event")).strip().upper()
        if not event:
            raise PayloadError("event is missing")
        auth = tree.get("auth")
        if not isinstance(auth, dict):
            raise PayloadError("auth[...] is missing")
        member_id = _str(auth.get("member_id")).strip()
        if not _MEMBER_ID.match(member_id):
            raise PayloadError("auth[member_id] is missing or malformed")
        data = tree.get("data")
        return cls(
            event=event[:64],
            event_handler_id=_str(tree.get("event_handler_id"))[:32],
            ts=_str(tree.get("ts"))[:32],
            data=data if isinstance(data, dict) else {},
            auth=EventAuth(
                access_token=_str(auth.get("access_token"), 2000),
                refresh_token=_str(auth.get("refresh_token"), 2000),
                expires_in=_int(auth.get("expires_in"), 3600),
                scope=_str(auth.get("scope")),
                domain=_str(auth.get("domain")).lower(),
                member_id=member_id,
                client_endpoint=_str(auth.get("client_endpoint")),
                server_endpoint=_str(auth.get("server_endpoint")),
                status=_str(auth.get("status"))[:2],
                application_token=_str(auth.get("application_token"), 200),
            ),
        )

    def entity_id(self) -> str:
        fields = as_dict(self.data.get("FIELDS"))
        return _str(fields.get("ID"))[:64]


# --------------------------------------------------------------------------------------------
# Answers of the OAuth server (§2.2, §4.2)


@dataclass(frozen=True)
class AppInfo:
    """The OAuth server's trusted view of a token: which app, portal and user it belongs to."""

    client_id: str
    user_id: str
    scope: str
    installed: bool
    status: str
    domain: str
    member_id: str
    client_endpoint: str

    @classmethod
    def parse(cls, body: Any) -> AppInfo:
        result = as_dict(body.get("result") if isinstance(body, dict) else None)
        install = as_dict(result.get("install"))
        try:
            client_id = str(result["client_id"])
            member_id = str(install["member_id"])
            domain = str(install["domain"]).lower()
        except KeyError as exc:
            raise CrmBadResponse(f"app.info answer lacks {exc}", details=body) from None
        return cls(
            client_id=client_id,
            user_id=str(result.get("user_id") or ""),
            scope=str(result.get("scope") or install.get("scope") or ""),
            installed=bool(install.get("installed")),
            status=str(install.get("status") or ""),
            domain=domain,
            member_id=member_id,
            client_endpoint=str(install.get("client_endpoint") or ""),
        )


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    refresh_token: str
    expires_at: datetime
    member_id: str
    client_endpoint: str
    server_endpoint: str
    user_id: str

    @property
    def pair(self) -> TokenPair:
        return TokenPair(self.access_token, self.refresh_token, self.expires_at)

    @classmethod
    def parse(cls, body: Any, now: datetime | None = None) -> TokenGrant:
        if not isinstance(body, dict):
            raise CrmBadResponse("token answer is not an object", details=body)
        try:
            access, refresh = str(body["access_token"]), str(body["refresh_token"])
        except KeyError as exc:
            raise CrmBadResponse(f"token answer lacks {exc}", details=body) from None
        now = now or datetime.now(UTC)
        # Prefer the relative lifetime: our clock and the OAuth server's need not agree.
        expires_in = _int(body.get("expires_in"), 3600)
        return cls(
            access_token=access,
            refresh_token=refresh,
            expires_at=now + timedelta(seconds=max(0, expires_in)),
            member_id=str(body.get("member_id") or ""),
            client_endpoint=str(body.get("client_endpoint") or ""),
            server_endpoint=str(body.get("server_endpoint") or ""),
            user_id=str(body.get("user_id") or ""),
        )


# --------------------------------------------------------------------------------------------
# Answers of the portal's REST (§6)


@dataclass(frozen=True)
class Profile:
    user_id: str
    is_admin: bool
    name: str

    @classmethod
    def parse(cls, result: Any) -> Profile:
        data = as_dict(result)
        if not data.get("ID"):
            # ``profile`` answers an empty object for an inactive user (§6.2).
            raise CrmBadResponse("profile is empty (inactive user)", details=result)
        name = " ".join(p for p in (str(data.get("NAME") or ""), str(data.get("LAST_NAME") or "")) if p)
        return cls(user_id=str(data["ID"]), is_admin=data.get("ADMIN") in (True, "Y", "1", 1), name=name.strip())


def parse_user(item: Any, admin_ids: frozenset[str] = frozenset()) -> CrmUser:
    data = as_dict(item)
    uid = str(data.get("ID") or "")
    if not uid:
        raise CrmBadResponse("user without ID", details=item)
    parts = [str(data.get(k) or "").strip() for k in ("NAME", "LAST_NAME")]
    name = " ".join(p for p in parts if p) or str(data.get("EMAIL") or "") or f"#{uid}"
    # Legacy user.get answers ACTIVE as a boolean; older portals used "Y"/"N".
    active = data.get("ACTIVE") in (True, "Y", "1", 1, "true")
    return CrmUser(
        crm_user_id=uid,
        name=name[:255],
        email=str(data.get("EMAIL") or "")[:255],
        is_active=active,
        is_admin=uid in admin_ids,
    )


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    sort: int
    is_default: bool


def parse_categories(result: Any) -> list[Category]:
    out = []
    for item in as_list(as_dict(result).get("categories")):
        data = as_dict(item)
        if "id" not in data:
            raise CrmBadResponse("category without id", details=item)
        out.append(
            Category(
                id=str(data["id"]),
                name=str(data.get("name") or ""),
                sort=_int(data.get("sort")),
                is_default=data.get("isDefault") in ("Y", True),
            )
        )
    return out


def stage_kind(item: Mapping[str, Any]) -> str:
    semantics = str(item.get("SEMANTICS") or as_dict(item.get("EXTRA")).get("SEMANTICS") or "").lower()
    if semantics in ("s", "success"):
        return STAGE_WON
    if semantics in ("f", "failure"):
        return STAGE_LOST
    return STAGE_OPEN


def parse_stages(result: Any) -> tuple[CrmStage, ...]:
    stages = []
    for item in as_list(result):
        data = as_dict(item)
        status_id = str(data.get("STATUS_ID") or "")
        if not status_id:
            raise CrmBadResponse("stage without STATUS_ID", details=item)
        stages.append(CrmStage(status_id, str(data.get("NAME") or status_id), _int(data.get("SORT")), stage_kind(data)))
    stages.sort(key=lambda s: (s.sort, s.crm_stage_id))
    return tuple(stages)
