"""The sandbox gateway's memory: linked channels, recorded messages both ways, faults."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

SIGNATURE_HEADER = "X-Gateway-Signature"


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class LinkedChannel:
    """A channel as the gateway's operator connected it: the secret and our inbound URL, and what
    the console shows of it (our server registers every channel as soon as it exists)."""

    channel_id: int
    secret: str
    inbound_url: str
    transport: str = "whatsapp"
    name: str = ""  # what the account calls it, e.g. "Sales WhatsApp"
    address: str = ""  # its number or username
    account: str = ""  # the account it belongs to, as the console groups channels
    enabled: bool = True  # a disabled channel (or one of an uninstalled account) is not listed


@dataclass
class Outbound:
    """A reply we received from the backend, as the messenger would deliver it to the client."""

    id: str
    message_id: str  # the backend's idempotency key
    channel_id: int
    chat_type: str
    chat_id: str
    text: str
    author_name: str
    sent_at: str
    received_at: str
    attempts: int = 1  # how many times the backend sent it (duplicates are answered, not re-recorded)


@dataclass
class Inbound:
    """A client message the sandbox delivered to the backend, and what the backend answered."""

    message_id: str
    channel_id: int
    chat_type: str
    chat_id: str
    phone: str | None
    sender_name: str
    text: str
    sent_at: str
    status: int
    answer: Any


@dataclass
class PlayedClient:
    channel_id: int
    chat_type: str
    chat_id: str
    phone: str | None
    sender_name: str
    answers: bool


class GatewayRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class GatewaySandbox:
    answer_delay: float = 0.3  # seconds before a played client answers a reply
    timeout: float = 10.0
    channels: dict[int, LinkedChannel] = field(default_factory=dict)
    outbound: list[Outbound] = field(default_factory=list)
    inbound: list[Inbound] = field(default_factory=list)
    clients: dict[tuple[int, str], PlayedClient] = field(default_factory=dict)
    # Answers for the next outbound calls, consumed in order: {"status": 503} refuses (nothing is
    # recorded); {"delay": 2.5} records the message and answers 2.5 s late.
    faults: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0  # outbound calls seen, duplicates and refusals included

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._http = requests.Session()
        self._by_key: dict[tuple[int, str], Outbound] = {}
        self._changed = threading.Condition(self._lock)

    # --- controls --------------------------------------------------------------------------------

    def link(
        self,
        channel_id: int,
        secret: str,
        inbound_url: str,
        transport: str = "whatsapp",
        *,
        name: str | None = None,
        address: str | None = None,
        account: str | None = None,
        enabled: bool | None = None,
    ) -> LinkedChannel:
        """Connect (or update) a channel. What a call leaves out (``None``) keeps its last value,
        so linking again with only the secret does not lose the names."""
        with self._lock:
            known = self.channels.get(channel_id)
            linked = LinkedChannel(
                channel_id,
                secret,
                inbound_url,
                transport,
                name=name if name is not None else (known.name if known else ""),
                address=address if address is not None else (known.address if known else ""),
                account=account if account is not None else (known.account if known else ""),
                enabled=enabled if enabled is not None else (known.enabled if known else True),
            )
            self.channels[channel_id] = linked
            return linked

    def reset(self) -> None:
        with self._lock:
            self.channels.clear()
            self.outbound.clear()
            self.inbound.clear()
            self.clients.clear()
            self.faults.clear()
            self._by_key.clear()
            self.calls = 0

    def add_faults(self, *faults: dict[str, Any]) -> None:
        with self._lock:
            self.faults.extend(faults)

    # --- our side receiving the backend's replies ------------------------------------------------

    def receive(self, raw: bytes, signature: str) -> tuple[int, dict[str, Any]]:
        """``POST /api/v1/messages``: verify, deduplicate, record; maybe make the client answer."""
        with self._lock:
            self.calls += 1
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None and fault.get("status"):
            # Refused before anything is recorded (after an optional wait).
            time.sleep(float(fault.get("delay") or 0))
            status = int(fault["status"])
            return status, {"error": "fault", "message": f"Injected fault: HTTP {status}"}
        answer = self._receive(raw, signature)
        if fault is not None and fault.get("delay"):
            # Recorded, but the answer comes late: the caller may give up and send it again.
            time.sleep(float(fault["delay"]))
        return answer

    def _receive(self, raw: bytes, signature: str) -> tuple[int, dict[str, Any]]:
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"error": "bad_request", "message": "The body is not JSON."}
        if not isinstance(body, dict):
            return 400, {"error": "bad_request", "message": "The body must be a JSON object."}
        problems = [k for k in ("message_id", "chat_id", "text") if not isinstance(body.get(k), str) or not body[k]]
        raw_channel = body.get("channel_id")
        channel_id = raw_channel if isinstance(raw_channel, int) and not isinstance(raw_channel, bool) else 0
        if not channel_id:
            problems.append("channel_id")
        if problems:
            return 400, {"error": "bad_request", "message": "Missing or malformed: " + ", ".join(problems)}
        with self._lock:
            linked = self.channels.get(channel_id)
        if linked is None:
            return 404, {"error": "not_found", "message": f"Channel {channel_id} is not connected to this gateway."}
        # During a rotation the backend signs with its new and its previous secret ("new,old"):
        # one match with the secret this gateway holds is enough.
        expected = sign(linked.secret, raw).encode()
        if not any(hmac.compare_digest(expected, part.strip().lower().encode()) for part in signature.split(",")):
            return 401, {"error": "unauthorized", "message": "The signature does not match the channel's secret."}
        key = (channel_id, str(body["message_id"]))
        with self._lock:
            earlier = self._by_key.get(key)
            if earlier is not None:
                earlier.attempts += 1
                return 200, {"id": earlier.id, "status": "duplicate"}
            record = Outbound(
                id=f"sbx-{next(self._ids)}",
                message_id=key[1],
                channel_id=channel_id,
                chat_type=str(body.get("chat_type") or linked.transport),
                chat_id=str(body["chat_id"]),
                text=str(body["text"]),
                author_name=str(body.get("author_name") or ""),
                sent_at=str(body.get("sent_at") or ""),
                received_at=_now(),
            )
            self.outbound.append(record)
            self._by_key[key] = record
            client = self.clients.get((channel_id, record.chat_id))
            self._changed.notify_all()
        if client is not None and client.answers:
            timer = threading.Timer(self.answer_delay, self._answer, args=(client, record))
            timer.daemon = True
            timer.start()
        return 201, {"id": record.id, "status": "accepted"}

    def _answer(self, client: PlayedClient, reply: Outbound) -> None:
        quoted = reply.text if len(reply.text) <= 60 else reply.text[:57] + "..."
        try:
            self.write(
                channel_id=client.channel_id,
                chat_id=client.chat_id,
                text=f"Thanks, got your answer: “{quoted}”",
                sender_name=client.sender_name,
                phone=client.phone,
                chat_type=client.chat_type,
            )
        except GatewayRefused:
            pass  # the backend is gone (test over); nothing to do in a timer thread

    # --- playing a client --------------------------------------------------------------------------

    def write(
        self,
        *,
        channel_id: int,
        chat_id: str,
        text: str,
        sender_name: str = "",
        phone: str | None = None,
        chat_type: str | None = None,
        message_id: str | None = None,
        sent_at: str | None = None,
        answers: bool | None = None,
    ) -> Inbound:
        """A client writes: a signed POST to the backend's inbound URL, as the real gateway does."""
        with self._lock:
            linked = self.channels.get(channel_id)
            if linked is None:
                raise GatewayRefused(404, f"Channel {channel_id} is not connected to this gateway.")
            kind = chat_type or linked.transport
            known = self.clients.get((channel_id, chat_id))
            self.clients[(channel_id, chat_id)] = PlayedClient(
                channel_id,
                kind,
                chat_id,
                phone,
                sender_name,
                answers if answers is not None else bool(known and known.answers),
            )
            mid = message_id or f"sbx-in-{next(self._ids)}"
        when = sent_at or _now()
        payload = {
            "message_id": mid,
            "channel_id": channel_id,
            "chat_type": kind,
            "chat_id": chat_id,
            "phone": phone,
            "sender_name": sender_name,
            "text": text,
            "sent_at": when,
        }
        raw = json.dumps(payload, ensure_ascii=False).encode()
        try:
            response = self._http.post(
                linked.inbound_url,
                data=raw,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(linked.secret, raw)},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise GatewayRefused(502, f"The backend at {linked.inbound_url} cannot be reached: {exc}") from None
        try:
            answer: Any = response.json()
        except ValueError:
            answer = response.text[:500]
        record = Inbound(mid, channel_id, kind, chat_id, phone, sender_name, text, when, response.status_code, answer)
        with self._lock:
            self.inbound.append(record)
            self._changed.notify_all()
        return record

    # --- what tests look at ----------------------------------------------------------------------

    def sent_to(self, chat_id: str) -> list[Outbound]:
        with self._lock:
            return [m for m in self.outbound if m.chat_id == chat_id]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Block until ``predicate(self)`` holds (checked on every recorded message) or time is up."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "channels": [
                    {
                        "channel_id": c.channel_id,
                        "inbound_url": c.inbound_url,
                        "transport": c.transport,
                        "name": c.name,
                        "address": c.address,
                        "account": c.account,
                        "enabled": c.enabled,
                    }
                    for c in sorted(self.channels.values(), key=lambda c: (c.account.casefold(), c.channel_id))
                ],
                "outbound": [asdict(m) for m in self.outbound],
                "inbound": [asdict(m) for m in self.inbound],
                "faults": list(self.faults),
                "calls": self.calls,
            }
