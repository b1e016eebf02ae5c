"""``KommoClient``: the one way we call an installed account's API v4 (reference §5-6).

Everything goes through ``HttpSender`` (timeout on every call, client-side rate limit per account,
retries only where safe). Responses are classified into our error types with Kommo's own
problem+json body kept in ``details``; successful bodies become typed objects from ``payloads``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from widget.crm.errors import (
    CrmAuthError,
    CrmTokenExpired,
)
from widget.crm.http import HttpSender
from widget.crm.kommo import creates, payloads
from widget.crm.kommo.creates import ComplexLeadResult, NewLead, NewUnsortedForm, UnsortedPage, UnsortedResult
from widget.crm.kommo.errors import classify
from widget.crm.kommo.payloads import (
    KommoAccount,
    KommoContact,
    KommoLead,
    KommoPipeline,
    KommoUser,
    WebhookSubscription,
)
from widget.crm.tokens import FixedToken, TokenStore

# Kommo returns at most 250 entities per page and refuses more with 422 (reference §6).
PAGE_LIMIT = 250
# Kommo caps complex-lead creation at 50 per request (reference §5.6).
COMPLEX_LIMIT = 50


def just_issued(token: str) -> FixedToken:
    """A token we just obtained and have not stored yet (the install reads the account with it)."""
    return FixedToken(token, lambda: CrmAuthError("Kommo refused a token that was just issued"))


class KommoClient:
    """API v4 of one Kommo account. ``base_url`` is the account's address (``https://{host}``)."""

    def __init__(self, base_url: str, tokens: TokenStore, sender: HttpSender) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.sender = sender

    @property
    def request_count(self) -> int:
        return self.sender.request_count

    def _call(self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> Any:
        """One API call. A 401 on a token we believed valid replaces that token once (the stored
        pair may have been refreshed elsewhere, or Kommo expired it early) and tries again: a 401
        means Kommo did nothing, so the retry is safe for any method."""
        token, generation = self.tokens.current()
        url = self.base_url + path
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            try:
                return self.sender.send(method, url, classify, idempotent=idempotent, headers=headers, **kwargs)
            except CrmTokenExpired as exc:
                if attempt == 2:
                    raise CrmAuthError(f"Kommo refused a freshly refreshed token: {exc}", status=401) from exc
                token, generation = self.tokens.refreshed(generation)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ account and users

    def get_account(self) -> KommoAccount:
        return payloads.parse_account(self._call("GET", "/api/v4/account"))

    def list_users(self) -> list[KommoUser]:
        """Every user, 250 a page: ceil(users/250) requests (admin-only: ``CrmForbidden`` otherwise)."""
        users: list[KommoUser] = []
        page = 1
        while True:
            data = self._call("GET", "/api/v4/users", params={"page": page, "limit": PAGE_LIMIT})
            parsed = payloads.parse_users_page(data)
            users.extend(parsed.users)
            # Kommo's birthday widget pages by _page < _page_count; _links.next is the HAL way when
            # the count is absent. An empty page (204) always ends the walk.
            more = page < parsed.page_count if parsed.page_count is not None else parsed.has_next
            if not more or not parsed.users:
                return users
            page += 1

    def get_user(self, user_id: int) -> KommoUser:
        return payloads.parse_user(self._call("GET", f"/api/v4/users/{int(user_id)}"))

    # ------------------------------------------------------------ pipelines

    def list_pipelines(self) -> tuple[KommoPipeline, ...]:
        """All lead pipelines with their statuses, in one request (the list is not paged)."""
        return payloads.parse_pipelines(self._call("GET", "/api/v4/leads/pipelines"))

    # ------------------------------------------------------------ contacts and leads

    def find_contacts_by_phone(self, phone: str) -> tuple[KommoContact, ...]:
        """Kommo recommends ``query=`` full-text search for phones; 204 means none found."""
        return self.search_contacts(phone)

    def search_contacts(self, query: str) -> tuple[KommoContact, ...]:
        """``query=`` full-text search over the contacts' filled fields, with their lead ids (one
        request, the first 250 hits); 204 means none found (reference §5.4)."""
        text = query.strip()
        if not text:
            return ()
        data = self._call("GET", "/api/v4/contacts", params={"query": text, "with": "leads", "limit": PAGE_LIMIT})
        return payloads.parse_contacts(data)

    def get_contacts(self, ids: Sequence[int]) -> tuple[KommoContact, ...]:
        """Contacts by id, 250 per request; ones Kommo no longer has are simply absent."""
        found: list[KommoContact] = []
        for chunk in _chunks(ids):
            params = [("filter[id][]", str(i)) for i in chunk] + [("limit", str(PAGE_LIMIT))]
            found.extend(payloads.parse_contacts(self._call("GET", "/api/v4/contacts", params=params)))
        return tuple(found)

    def get_leads(self, ids: Sequence[int], *, with_contacts: bool = False) -> tuple[KommoLead, ...]:
        """Leads by id, 250 per request (``filter[id][]``, reference §5.5)."""
        found: list[KommoLead] = []
        for chunk in _chunks(ids):
            params = [("filter[id][]", str(i)) for i in chunk] + [("limit", str(PAGE_LIMIT))]
            if with_contacts:
                params.append(("with", "contacts"))
            found.extend(payloads.parse_leads(self._call("GET", "/api/v4/leads", params=params)))
        return tuple(found)

    def create_complex_leads(self, leads: Sequence[NewLead]) -> tuple[ComplexLeadResult, ...]:
        """Lead + contact in one request. Not idempotent: a lost answer is not resent blindly."""
        if not leads:
            return ()
        results: list[ComplexLeadResult] = []
        for start in range(0, len(leads), COMPLEX_LIMIT):
            chunk = [lead.to_json() for lead in leads[start : start + COMPLEX_LIMIT]]
            data = self._call("POST", "/api/v4/leads/complex", json=chunk, idempotent=False)
            results.extend(creates.parse_complex_result(data))
        return tuple(results)

    def create_unsorted_forms(self, forms: Sequence[NewUnsortedForm]) -> tuple[UnsortedResult, ...]:
        if not forms:
            return ()
        data = self._call("POST", "/api/v4/leads/unsorted/forms", json=[f.to_json() for f in forms], idempotent=False)
        return creates.parse_unsorted_created(data)

    def accept_unsorted(self, uid: str, *, user_id: int | None = None, status_id: int | None = None) -> UnsortedResult:
        body: dict[str, int] = {}
        if user_id is not None:
            body["user_id"] = user_id
        if status_id is not None:
            body["status_id"] = status_id
        # Accepting twice fails rather than duplicating, so a retry after a lost answer is harmless.
        data = self._call("POST", f"/api/v4/leads/unsorted/{_path_part(uid)}/accept", json=body)
        return creates.parse_unsorted_accepted(data)

    def list_unsorted(self, *, category: str = "forms", page: int = 1) -> UnsortedPage:
        """Incoming leads still waiting in Unsorted, newest first, one page of 250."""
        params = {"filter[category][]": category, "order[created_at]": "desc", "page": page, "limit": PAGE_LIMIT}
        return creates.parse_unsorted_page(self._call("GET", "/api/v4/leads/unsorted", params=params))

    def set_lead_responsible(self, lead_id: int, user_id: int) -> None:
        # Setting a value is idempotent: repeating the PATCH leaves the same state.
        self._call(
            "PATCH", f"/api/v4/leads/{int(lead_id)}", json={"id": int(lead_id), "responsible_user_id": int(user_id)}
        )

    def set_contact_responsible(self, contact_id: int, user_id: int) -> None:
        self._call(
            "PATCH",
            f"/api/v4/contacts/{int(contact_id)}",
            json={"id": int(contact_id), "responsible_user_id": int(user_id)},
        )

    def set_responsible_many(self, contact_ids: Sequence[int], lead_ids: Sequence[int], user_id: int) -> None:
        """One batch PATCH per entity type (arrays with ``id``, reference §5.4-5.5). Repeating it
        leaves the same state, so it is safe to resend."""
        for path, ids in (("/api/v4/contacts", contact_ids), ("/api/v4/leads", lead_ids)):
            for chunk in _chunks(ids):
                self._call("PATCH", path, json=[{"id": int(i), "responsible_user_id": int(user_id)} for i in chunk])

    # ------------------------------------------------------------ webhooks

    def subscribe_webhook(self, destination: str, events: Sequence[str]) -> WebhookSubscription:
        data = self._call(
            "POST", "/api/v4/webhooks", json={"destination": destination, "settings": list(events)}, idempotent=False
        )
        return payloads.parse_webhook(data)

    def unsubscribe_webhook(self, destination: str) -> None:
        self._call("DELETE", "/api/v4/webhooks", json={"destination": destination})


def pages_needed(users: int) -> int:
    """Requests a "Refresh CRM data" makes: the users pages plus one for pipelines."""
    return max(1, math.ceil(users / PAGE_LIMIT)) + 1


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    unique = list(dict.fromkeys(int(i) for i in ids))
    return [unique[i : i + PAGE_LIMIT] for i in range(0, len(unique), PAGE_LIMIT)]


def _path_part(value: str) -> str:
    return quote(value, safe="")
