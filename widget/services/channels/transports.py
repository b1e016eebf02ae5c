"""How replies leave us: one interface, a transport per kind of messaging gateway.

* ``HttpGatewayTransport`` — production: a signed JSON POST to ``GATEWAY_URL`` (hex HMAC-SHA256 of
  the raw body with the account's gateway secret in ``X-Gateway-Signature``, the same scheme the
  gateway uses towards us). The message's idempotency key travels as ``message_id`` and in
  ``Idempotency-Key``, so a resend after a lost answer is recognised by the gateway.
* ``SandboxGatewayTransport`` — the embedded default: the same HTTP call to the sandbox messaging
  gateway (``sandbox.gateway``), which we also configure ourselves (the channel's secret
  and our inbound URL) and which can play a client who writes to us — the test message.
* ``UnconfiguredTransport`` — a real deployment without ``GATEWAY_URL``: every send fails with a
  reason the employee can read, and nothing pretends to have been delivered.

A transport only sends. Retries, backoff and the message's status are the job of
``widget.services.conversations.replies``; a transport says whether a failure is worth retrying.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

import requests

from widget.config import Settings
from widget.services.channels.signing import SIGNATURE_HEADER, sign

T = TypeVar("T")
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "wazzup-crm-widget/1 (+replies)"


@dataclass(frozen=True)
class OutboundMessage:
    """What the gateway needs to deliver one reply (the JSON body, field for field)."""

    message_id: str  # our idempotency key: the same on every attempt
    channel_id: int
    chat_type: str
    chat_id: str
    text: str
    author_name: str
    sent_at: str  # ISO 8601, UTC

    def body(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ClientMessage:
    """A client writing to one of our channels (what the sandbox gateway can play)."""

    message_id: str
    channel_id: int
    chat_type: str
    chat_id: str
    phone: str | None
    sender_name: str
    text: str
    sent_at: datetime
    answers: bool = False  # the played client answers every reply it gets


@dataclass(frozen=True)
class ChannelListing:
    """A channel as a gateway's console lists it (the sandbox gateway's, on the embedded default)."""

    channel_id: int
    chat_type: str
    name: str
    address: str
    account: str
    enabled: bool


@dataclass(frozen=True)
class Delivered:
    gateway_message_id: str | None


class TransportError(Exception):
    """The gateway did not take the message. ``reason`` is shown to the employee next to it."""

    def __init__(
        self, reason: str, *, retryable: bool, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status  # the gateway's HTTP status, when it answered


@runtime_checkable
class Transport(Protocol):
    def send(self, message: OutboundMessage, secret: str, previous: str | None = None) -> Delivered:
        """Deliver one reply, signed with the account's gateway secret (and, during a rotation's
        grace period, also with the ``previous`` one), or raise ``TransportError``."""
        ...


@runtime_checkable
class ClientPlayer(Protocol):
    """A gateway that can make a (test) client write to us through its real inbound path."""

    def play_client(self, message: ClientMessage, secret: str) -> None: ...


def signature_header(body: bytes, secret: str, previous: str | None = None) -> str:
    """``X-Gateway-Signature`` of a reply: the HMAC with the current secret, then, while a rotation's
    grace period lasts, a comma and the HMAC with the previous one. A gateway still configured with
    the old secret finds its match in the list, so no reply is refused while it is switched over."""
    if previous and previous != secret:
        return f"{sign(secret, body)},{sign(previous, body)}"
    return sign(secret, body)


def _reason_from(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        data = None
    detail = ""
    if isinstance(data, dict):
        detail = str(data.get("message") or data.get("error") or "")[:300]
    base = f"The messaging gateway refused the message (HTTP {response.status_code})"
    return f"{base}: {detail}" if detail else base + "."


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


@dataclass
class HttpGatewayTransport:
    url: str
    timeout: float = 10.0
    _http: requests.Session = field(default_factory=requests.Session, repr=False)

    def send(self, message: OutboundMessage, secret: str, previous: str | None = None) -> Delivered:
        body = message.body()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(body, secret, previous),
            IDEMPOTENCY_HEADER: message.message_id,
            "User-Agent": USER_AGENT,
        }
        try:
            response = self._http.post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            raise TransportError("The messaging gateway did not answer in time.", retryable=True) from None
        except requests.RequestException:
            raise TransportError("The messaging gateway cannot be reached.", retryable=True) from None
        status = response.status_code
        if 200 <= status < 300:
            gateway_id = None
            try:
                data = response.json()
            except ValueError:
                data = None
            if isinstance(data, dict) and data.get("id") is not None:
                gateway_id = str(data["id"])[:128]
            return Delivered(gateway_id)
        if status == 429:
            raise TransportError(
                "The messaging gateway asked us to slow down.", retryable=True, retry_after=_retry_after(response)
            )
        if status >= 500 or status in (408, 425):
            raise TransportError(
                f"The messaging gateway is unavailable (HTTP {status}).",
                retryable=True,
                retry_after=_retry_after(response),
            )
        # 4xx: the gateway looked at this message and will not take it; sending it again is useless.
        raise TransportError(_reason_from(response), retryable=False, status=status)


class SandboxGatewayTransport(HttpGatewayTransport):
    """The sandbox messaging gateway: configured by us on first use, and able to play clients."""

    def __init__(self, base_url: str, inbound_url: str, timeout: float = 10.0) -> None:
        super().__init__(url=base_url.rstrip("/") + "/api/v1/messages", timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self.inbound_url = inbound_url
        self._linked: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def _link(self, channel_id: int, chat_type: str, secret: str) -> None:
        """Tell the sandbox which secret signs this channel and where its clients' messages go —
        what an operator types into a real gateway's console."""
        fingerprint = hashlib.sha256(secret.encode()).hexdigest()
        with self._lock:
            if (channel_id, fingerprint) in self._linked:
                return
        try:
            response = self._http.put(
                f"{self.base_url}/_sandbox/channels/{channel_id}",
                json={"secret": secret, "inbound_url": self.inbound_url, "transport": chat_type},
                timeout=self.timeout,
            )
        except requests.RequestException:
            raise TransportError("The sandbox messaging gateway cannot be reached.", retryable=True) from None
        if response.status_code >= 300:
            raise TransportError(_reason_from(response), retryable=response.status_code >= 500)
        with self._lock:
            self._linked.add((channel_id, fingerprint))

    def configure_channel(self, channel_id: int, chat_type: str, secret: str) -> None:
        """Give the sandbox a channel's (new) secret now rather than at its next reply: after a
        rotation the sandbox's clients then sign with the new secret at once."""
        self._link(channel_id, chat_type, secret)

    def register_channel(self, listing: ChannelListing, secret: str) -> None:
        """Connect a channel with what the sandbox's console shows of it (its account's and its
        own name, its number, whether it is enabled), whether or not anything was sent on it."""
        body = {"secret": secret, "inbound_url": self.inbound_url, **asdict(listing)}
        body["transport"] = body.pop("chat_type")
        del body["channel_id"]
        try:
            response = self._http.put(
                f"{self.base_url}/_sandbox/channels/{listing.channel_id}", json=body, timeout=self.timeout
            )
        except requests.RequestException:
            raise TransportError("The sandbox messaging gateway cannot be reached.", retryable=True) from None
        if response.status_code >= 300:
            raise TransportError(_reason_from(response), retryable=response.status_code >= 500)
        with self._lock:
            self._linked.add((listing.channel_id, hashlib.sha256(secret.encode()).hexdigest()))

    def _with_link(self, channel_id: int, chat_type: str, secret: str, call: Callable[[], T]) -> T:
        self._link(channel_id, chat_type, secret)
        try:
            return call()
        except TransportError as exc:
            if exc.status != 404:
                raise
        # The sandbox forgot the channel (it restarted, and it keeps everything in memory): link it
        # again and try once more; the message id keeps this from becoming a second copy.
        with self._lock:
            self._linked = {k for k in self._linked if k[0] != channel_id}
        self._link(channel_id, chat_type, secret)
        return call()

    def send(self, message: OutboundMessage, secret: str, previous: str | None = None) -> Delivered:
        parent = super().send
        return self._with_link(message.channel_id, message.chat_type, secret, lambda: parent(message, secret, previous))

    def play_client(self, message: ClientMessage, secret: str) -> None:
        self._with_link(message.channel_id, message.chat_type, secret, lambda: self._write(message))

    def _write(self, message: ClientMessage) -> None:
        body = {
            "message_id": message.message_id,
            "channel_id": message.channel_id,
            "chat_type": message.chat_type,
            "chat_id": message.chat_id,
            "phone": message.phone,
            "sender_name": message.sender_name,
            "text": message.text,
            "sent_at": message.sent_at.isoformat(),
            "answers": message.answers,
        }
        try:
            response = self._http.post(f"{self.base_url}/_sandbox/write", json=body, timeout=self.timeout)
        except requests.RequestException:
            raise TransportError("The sandbox messaging gateway cannot be reached.", retryable=True) from None
        if response.status_code >= 300:
            raise TransportError(
                _reason_from(response), retryable=response.status_code >= 500, status=response.status_code
            )


class UnconfiguredTransport:
    def send(self, message: OutboundMessage, secret: str, previous: str | None = None) -> Delivered:
        raise TransportError(
            "No messaging gateway is configured (GATEWAY_URL), so replies cannot be delivered.", retryable=False
        )


def build_transport(settings: Settings) -> Transport:
    """The transport these settings name: ``GATEWAY_URL``, else the sandbox gateway on the embedded
    default, else none. Built once per app (``widget.wiring``), so its HTTP connections (and the
    sandbox links) are reused."""
    if settings.gateway_url:
        return HttpGatewayTransport(settings.gateway_url, timeout=settings.http_timeout)
    if settings.sandbox:
        return SandboxGatewayTransport(
            settings.sandbox_gateway_url, settings.public_url + "/gateway/messages", timeout=settings.http_timeout
        )
    return UnconfiguredTransport()
