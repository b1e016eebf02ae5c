"""The one Bitrix24 REST client (reference §6-7), on the shared ``HttpSender``.

Wire rules it keeps:

* ``POST <client_endpoint><method>`` with a JSON body carrying ``auth`` (§6.1); never the posted
  ``DOMAIN`` — the endpoint is the one stored at a verified install.
* Errors are keyed on the body's ``error`` code, not the status: Bitrix24's docs and core disagree on
  statuses (Uncertain #4). Legacy ``crm.*`` methods answer an *empty* code with a human description.
* 401 ``expired_token`` → refresh → one retry; ``invalid_token`` → one refresh attempt (Addendum), then
  "needs reinstall"; ``NO_AUTH_FOUND`` / ``APPLICATION_NOT_FOUND`` → "needs reinstall" at once.
* 503 ``QUERY_LIMIT_EXCEEDED`` is retried with growing delay; 429 ``OPERATION_TIME_LIMIT`` waits until
  ``operating_reset_at``; a 302 after a portal rename is repeated as the same POST on the new host and
  the stored endpoint is updated (§6.1 "Domain change").
* ``batch`` always answers 200; per-command failures sit in ``result_error`` (§6.6).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from widget.crm.bitrix24.errors import REINSTALL_CODES, error_code, error_for
from widget.crm.bitrix24.payloads import (
    Category,
    Profile,
    parse_categories,
    parse_user,
)
from widget.crm.bitrix24.php import as_dict, as_list, php_query
from widget.crm.errors import (
    CrmAuthError,
    CrmBadResponse,
    CrmRateLimited,
    CrmUnavailable,
)
from widget.crm.http import HttpSender, RateLimiter, RetryPolicy
from widget.crm.tokens import TokenStore
from widget.domain.crm import CrmUser

PAGE_SIZE = 50  # fixed by Bitrix24 for every list method (§6.1)
BATCH_MAX = 50  # commands per batch (§6.6)
CRM_MODE_CLASSIC = "classic"
CRM_MODE_SIMPLE = "simple"
LEAD_PIPELINE_ID = "STATUS"  # leads have one "pipeline": the STATUS directory (§6.3)

# A 429 without ``operating_reset_at`` gives no hint; waiting this long sends it back to the caller.
_OPERATION_LIMIT_FALLBACK = 60.0


@dataclass(frozen=True)
class RestResponse:
    result: Any
    total: int | None = None
    next: int | None = None
    time: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Moved:
    location: str


@dataclass
class BatchResult:
    results: dict[str, Any]
    errors: dict[str, dict[str, Any]]
    totals: dict[str, int]
    nexts: dict[str, int]

    def get(self, key: str) -> Any:
        if key in self.errors:
            err = as_dict(self.errors[key])
            raise error_for(str(err.get("error") or ""), str(err.get("error_description") or ""), body=err)
        if key not in self.results:
            raise CrmBadResponse(f"batch answered nothing for {key!r} (halted earlier?)")
        return self.results[key]


@dataclass(frozen=True)
class NewContact:
    name: str
    phone: str
    responsible_id: str
    last_name: str = ""
    source_id: str = ""
    comments: str = ""
    im: tuple[tuple[str, str], ...] = ()  # (VALUE_TYPE, VALUE), e.g. ("TELEGRAM", "@client")

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"NAME": self.name, "ASSIGNED_BY_ID": self.responsible_id}
        if self.last_name:
            out["LAST_NAME"] = self.last_name
        if self.phone:
            out["PHONE"] = [{"VALUE": self.phone, "VALUE_TYPE": "WORK"}]
        if self.im:
            out["IM"] = [{"VALUE": v, "VALUE_TYPE": t} for t, v in self.im]
        if self.source_id:
            out["SOURCE_ID"] = self.source_id
        if self.comments:
            out["COMMENTS"] = self.comments
        return out


@dataclass(frozen=True)
class NewDeal:
    title: str
    category_id: str
    stage_id: str
    responsible_id: str
    source_id: str = ""


@dataclass(frozen=True)
class NewLead:
    title: str
    name: str
    phone: str
    responsible_id: str
    status_id: str = ""
    source_id: str = ""


_ENTITY_METHODS = {"contact": "crm.contact", "deal": "crm.deal", "lead": "crm.lead"}


class Bitrix24Client:
    def __init__(
        self,
        *,
        client_endpoint: str,
        auth: TokenStore,
        timeout: float,
        limiter: RateLimiter | None,
        limiter_key: str,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        on_moved: Callable[[str], None] | None = None,
    ) -> None:
        """``on_moved``: told the new REST endpoint when the portal was renamed (§6.1), to store it."""
        if not client_endpoint.endswith("/"):
            client_endpoint += "/"
        self.endpoint = client_endpoint
        self._auth = auth
        self._on_moved = on_moved
        self._clock = clock
        self._sender = HttpSender(
            timeout=timeout, limiter=limiter, limiter_key=limiter_key, retry=retry, session=session
        )

    @property
    def request_count(self) -> int:
        """HTTP requests sent to the portal by this client (retries and redirects included)."""
        return self._sender.request_count

    # ---------------------------------------------------------------------------------- core

    def call(self, method: str, params: Mapping[str, Any] | None = None, *, idempotent: bool = True) -> RestResponse:
        token, generation = self._auth.current()
        refreshed = False
        swaps = 0
        while True:
            try:
                return self._send(method, params or {}, token, idempotent)
            except CrmAuthError as exc:
                code = error_code(exc)
                newer = self._auth.newer(generation)
                if newer is not None and swaps < 3:
                    # Another caller refreshed while we were sending: the portal has already
                    # forgotten our token. Use the stored one; that is not our refresh.
                    swaps += 1
                    token, generation = newer
                    continue
                if code in ("expired_token", "invalid_token") and not refreshed:
                    refreshed = True
                    token, generation = self._auth.refreshed(generation)
                    continue
                if code in REINSTALL_CODES:
                    self._auth.revoked(
                        f"Bitrix24 no longer accepts the app's authorization ({code}). Please reinstall the app."
                    )
                raise

    def _send(self, method: str, params: Mapping[str, Any], token: str, idempotent: bool) -> RestResponse:
        body = dict(params)
        body["auth"] = token
        payload = json.dumps(body, ensure_ascii=False)
        hops = 0
        while True:
            outcome = self._sender.send(
                "POST",
                self.endpoint + method,
                lambda r: self._classify(r, method),
                idempotent=idempotent,
                data=payload.encode(),
                headers={"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"},
            )
            if not isinstance(outcome, _Moved):
                return outcome
            hops += 1
            if hops > 3:
                raise CrmBadResponse("Bitrix24 keeps redirecting the REST call")
            self._follow_rename(outcome.location, method)

    def _follow_rename(self, location: str, method: str) -> None:
        """Point the client at the portal's new address; repeat the same POST there (§6.1)."""
        target = urljoin(self.endpoint + method, location)
        parts = urlsplit(target)
        marker = "/rest/"
        if parts.scheme not in ("http", "https") or marker not in parts.path:
            raise CrmBadResponse(f"Bitrix24 redirected the REST call somewhere unexpected: {parts.netloc}")
        path = parts.path[: parts.path.index(marker) + len(marker)]
        new_endpoint = f"{parts.scheme}://{parts.netloc}{path}"
        if new_endpoint != self.endpoint:
            self.endpoint = new_endpoint
            if self._on_moved is not None:
                self._on_moved(new_endpoint)

    def _classify(self, response: requests.Response, method: str) -> RestResponse | _Moved:
        if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("Location"):
            return _Moved(response.headers["Location"])
        try:
            body = response.json()
        except ValueError:
            if response.status_code >= 500:
                raise CrmUnavailable(
                    f"Bitrix24 {method}: HTTP {response.status_code}", status=response.status_code
                ) from None
            raise CrmBadResponse(
                f"Bitrix24 {method}: HTTP {response.status_code} without JSON", status=response.status_code
            ) from None
        if not isinstance(body, dict):
            raise CrmBadResponse(f"Bitrix24 {method}: answer is not an object", status=response.status_code)
        if "error" in body:
            code = str(body.get("error") or "")
            description = str(body.get("error_description") or "")
            if code == "OPERATION_TIME_LIMIT":
                raise CrmRateLimited(
                    f"Bitrix24 {method}: OPERATION_TIME_LIMIT",
                    retry_after=self._operation_wait(body),
                    status=response.status_code,
                    details=body,
                )
            raise error_for(code, description, status=response.status_code, body=body)
        if response.status_code >= 400 or "result" not in body:
            raise CrmBadResponse(f"Bitrix24 {method}: HTTP {response.status_code}", status=response.status_code)
        total = body.get("total")
        nxt = body.get("next")
        return RestResponse(
            result=body["result"],
            total=int(total) if isinstance(total, int | str) and str(total).isdigit() else None,
            next=int(nxt) if isinstance(nxt, int | str) and str(nxt).isdigit() else None,
            time=as_dict(body.get("time")),
        )

    def _operation_wait(self, body: Mapping[str, Any]) -> float:
        reset_at: Any = as_dict(body.get("time")).get("operating_reset_at")
        try:
            return max(0.0, float(reset_at) - self._clock()) + 0.05
        except (TypeError, ValueError):
            return _OPERATION_LIMIT_FALLBACK

    def batch(
        self,
        commands: Mapping[str, tuple[str, Mapping[str, Any]]],
        *,
        halt: bool = True,
        idempotent: bool = True,
    ) -> BatchResult:
        if len(commands) > BATCH_MAX:
            raise ValueError(f"a batch holds at most {BATCH_MAX} commands")
        cmd = {key: f"{m}?{php_query(p)}" if p else m for key, (m, p) in commands.items()}
        resp = self.call("batch", {"halt": 1 if halt else 0, "cmd": cmd}, idempotent=idempotent)
        data = as_dict(resp.result)

        def ints(value: Any) -> dict[str, int]:
            return {k: int(v) for k, v in as_dict(value).items() if str(v).isdigit()}

        return BatchResult(
            results=as_dict(data.get("result")),
            errors={k: as_dict(v) for k, v in as_dict(data.get("result_error")).items()},
            totals=ints(data.get("result_total")),
            nexts=ints(data.get("result_next")),
        )

    # ---------------------------------------------------------------------------------- methods

    def profile(self) -> Profile:
        return Profile.parse(self.call("profile").result)

    def users(self) -> list[CrmUser]:
        """Every user, 50 per page following ``next`` (§6.2)."""
        out: list[CrmUser] = []
        start: int | None = 0
        while start is not None:
            resp = self.call("user.get", {"sort": "ID", "order": "ASC", "start": start})
            out.extend(parse_user(u) for u in as_list(resp.result))
            start = resp.next
        return out

    def crm_mode(self) -> str:
        # crm.settings.mode.get: 1 classic, 2 simple (no leads) (§6.4).
        return CRM_MODE_SIMPLE if str(self.call("crm.settings.mode.get").result) == "2" else CRM_MODE_CLASSIC

    def deal_categories(self) -> list[Category]:
        return parse_categories(self.call("crm.category.list", {"entityTypeId": 2}).result)

    def find_by_phone(self, phone: str) -> dict[str, list[str]]:
        """``{"CONTACT": [...], "LEAD": [...]}``; Bitrix24 answers ``[]`` when nothing matches (§6.5)."""
        resp = self.call("crm.duplicate.findbycomm", {"type": "PHONE", "values": [phone]})
        return {str(k): [str(i) for i in as_list(v)] for k, v in as_dict(resp.result).items()}

    def create_contact_with_deal(self, contact: NewContact, deal: NewDeal) -> tuple[str, str]:
        """Contact and deal in ONE request: the deal references the new contact via ``$result[c]``."""
        deal_fields: dict[str, Any] = {
            "TITLE": deal.title,
            "CATEGORY_ID": deal.category_id,
            "STAGE_ID": deal.stage_id,
            "CONTACT_ID": "$result[c]",
            "ASSIGNED_BY_ID": deal.responsible_id,
        }
        if deal.source_id:
            deal_fields["SOURCE_ID"] = deal.source_id
        answer = self.batch(
            {
                "c": ("crm.contact.add", {"fields": contact.fields()}),
                "d": ("crm.deal.add", {"fields": deal_fields}),
            },
            halt=True,
            idempotent=False,
        )
        return str(answer.get("c")), str(answer.get("d"))

    def create_lead(self, lead: NewLead) -> str:
        fields: dict[str, Any] = {
            "TITLE": lead.title,
            "NAME": lead.name,
            "ASSIGNED_BY_ID": lead.responsible_id,
        }
        if lead.phone:
            fields["PHONE"] = [{"VALUE": lead.phone, "VALUE_TYPE": "WORK"}]
        if lead.status_id:
            fields["STATUS_ID"] = lead.status_id
        if lead.source_id:
            fields["SOURCE_ID"] = lead.source_id
        return str(self.call("crm.lead.add", {"fields": fields}, idempotent=False).result)

    def set_responsible(self, entity: str, entity_id: str, user_id: str) -> None:
        """``ASSIGNED_BY_ID`` on a contact, deal or lead (only the changed field is sent, §6.4)."""
        prefix = _ENTITY_METHODS.get(entity)
        if prefix is None:
            raise ValueError(f"unknown Bitrix24 entity {entity!r}")
        self.call(f"{prefix}.update", {"id": entity_id, "fields": {"ASSIGNED_BY_ID": user_id}})

    def set_responsible_many(self, updates: list[tuple[str, str, str]]) -> None:
        """Several responsible changes (entity, id, user) in one batch, e.g. contact + its new deal."""
        commands: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for i, (entity, entity_id, user_id) in enumerate(updates):
            prefix = _ENTITY_METHODS.get(entity)
            if prefix is None:
                raise ValueError(f"unknown Bitrix24 entity {entity!r}")
            commands[f"u{i}"] = (f"{prefix}.update", {"id": entity_id, "fields": {"ASSIGNED_BY_ID": user_id}})
        answer = self.batch(commands, halt=False)
        for key in commands:
            answer.get(key)

    def bind_placement(
        self, placement: str, handler: str, title: str, lang_all: Mapping[str, Any] | None = None
    ) -> bool:
        """True when bound now, False when it already was ("Handler already binded" is not an error)."""
        params: dict[str, Any] = {"PLACEMENT": placement, "HANDLER": handler, "TITLE": title}
        if lang_all:
            params["LANG_ALL"] = dict(lang_all)
        return self._bind("placement.bind", params)

    def bind_event(self, event: str, handler: str) -> bool:
        return self._bind("event.bind", {"event": event, "handler": handler})

    def _bind(self, method: str, params: Mapping[str, Any]) -> bool:
        try:
            self.call(method, params)
        except CrmBadResponse as exc:
            if error_code(exc) == "ERROR_CORE" and "already binded" in str(exc).lower():
                return False
            raise
        return True
