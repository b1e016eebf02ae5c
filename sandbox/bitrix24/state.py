"""The sandbox's whole world and its controls: portals, the registered app, tokens, open frames,
event deliveries, fault modes and the request log.

Tests and the demo drive it through these methods (``app.extensions["bitrix24_sandbox"]``); the same
controls are reachable over HTTP under ``/_sandbox/…`` (``control.py``).
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.bitrix24.apps import AppRegistration, FrameOpen
from sandbox.bitrix24.faults import Faults, LeakyBucket
from sandbox.bitrix24.outbox import Delivery, Outbox
from sandbox.bitrix24.portal import MODE_CLASSIC, MODE_SIMPLE, Installation, Portal, new_member_id
from sandbox.bitrix24.reqlog import RequestLog
from sandbox.bitrix24.seed import bulk_users, seed_demo, seed_directories
from sandbox.bitrix24.tokens import GONE_UNINSTALLED, Grant, TokenStore
from sandbox.bitrix24.wire import event_body, expires_in, frame_open, token_answer

__all__ = ["AppRegistration", "Delivery", "FrameOpen", "SandboxError", "SandboxState"]

log = logging.getLogger(__name__)

PortalRef = Portal | str


class SandboxError(Exception):
    """A control was used in a way the real portal would not allow (e.g. opening an app that is not
    installed)."""


class SandboxState:
    def __init__(
        self,
        *,
        oauth_url: str = "",
        rate: float = 2.0,
        burst: float = 50,
        access_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
        delivery_timeout: float = 10.0,
    ) -> None:
        self.lock = threading.RLock()
        self.oauth_url = oauth_url.rstrip("/")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.delivery_timeout = delivery_timeout
        self.app: AppRegistration | None = None
        self.portals: dict[str, Portal] = {}
        self._hosts: dict[str, str] = {}  # current domain -> member_id
        self._moved: dict[str, str] = {}  # old domain -> member_id
        self._buckets: dict[str, LeakyBucket] = {}
        self.tokens = TokenStore(access_ttl)
        self.faults = Faults()
        self.log = RequestLog()
        self.frames: dict[str, FrameOpen] = {}
        self.codes: dict[str, tuple[str, int, float]] = {}  # authorization codes (30 s, §4.1)
        self.outbox = Outbox(clock, delivery_timeout)
        self.on_new_host: Callable[[str], None] | None = None

    # ------------------------------------------------------------------ setup

    @property
    def server_endpoint(self) -> str:
        return f"{self.oauth_url}/rest/"

    def register_app(self, app: AppRegistration) -> AppRegistration:
        with self.lock:
            self.app = app
            return app

    def add_portal(
        self, domain: str, *, member_id: str | None = None, name: str = "", demo: bool = True, users: int | None = None
    ) -> Portal:
        """A portal answering to ``domain`` (``host:port``). ``demo`` seeds the demo data; ``users``
        replaces the employees with that many generated ones."""
        domain = domain.lower()
        with self.lock:
            if domain in self._hosts:
                raise SandboxError(f"a portal already answers to {domain}")
            portal = Portal(member_id=member_id or new_member_id(), domain=domain, name=name or domain)
            if demo:
                seed_demo(portal)
            else:
                seed_directories(portal)
            if users is not None:
                bulk_users(portal, users)
            self.portals[portal.member_id] = portal
            self._hosts[domain] = portal.member_id
            return portal

    def portal(self, ref: PortalRef) -> Portal:
        if isinstance(ref, Portal):
            return ref
        with self.lock:
            if ref in self.portals:
                return self.portals[ref]
            member = self._hosts.get(ref.lower())
            if member is None:
                raise SandboxError(f"no portal {ref!r}")
            return self.portals[member]

    def resolve_host(self, host: str) -> tuple[Portal | None, Portal | None]:
        """(portal answering to ``host``, portal that moved away from ``host``)."""
        host = host.lower()
        with self.lock:
            if host in self._hosts:
                return self.portals[self._hosts[host]], None
            if host in self._moved:
                return None, self.portals[self._moved[host]]
            return None, None

    # ------------------------------------------------------------------ tokens

    def issue_token(self, portal: PortalRef, user_id: int) -> Grant:
        p = self.portal(portal)
        app = self._require_app()
        with self.lock:
            return self.tokens.issue(p.member_id, user_id, app.client_id, ",".join(app.scopes), self.clock())

    def token_response(self, grant: Grant) -> dict[str, Any]:
        """The OAuth server's token answer (reference §4.2), incl. ``expires`` and ``user_id``."""
        return token_answer(grant, self.portals[grant.member_id], self.oauth_url, self.server_endpoint)

    def _require_app(self) -> AppRegistration:
        if self.app is None:
            raise SandboxError("no application registered (register_app)")
        return self.app

    # ------------------------------------------------------------------ frames

    def _frame(
        self,
        portal: Portal,
        user_id: int,
        url: str,
        *,
        placement: str,
        options: Mapping[str, Any] | None,
        installer: bool,
        lang: str | None,
    ) -> FrameOpen:
        app = self._require_app()
        user = portal.users.get(user_id)
        if user is None or not user.active:
            raise SandboxError(f"user {user_id} cannot log in to {portal.domain}")
        grant = self.issue_token(portal, user_id)
        frame = frame_open(
            portal,
            user,
            app,
            grant,
            url,
            server_endpoint=self.server_endpoint,
            placement=placement,
            options=options,
            installer=installer,
            lang=lang,
        )
        with self.lock:
            self.frames[frame.app_sid] = frame
        return frame

    def open_app(
        self,
        portal: PortalRef,
        user_id: int,
        *,
        placement: str = "DEFAULT",
        options: Mapping[str, Any] | None = None,
        lang: str | None = None,
    ) -> FrameOpen:
        """The user clicks the app (or one of its placements). Before ``installFinish`` an admin gets
        the installer again and everyone else is refused (reference §1.2)."""
        p = self.portal(portal)
        app = self._require_app()
        inst = p.installation
        if inst is None:
            raise SandboxError("the app is not installed on this portal")
        user = p.users.get(user_id)
        if not inst.installed:
            if user is not None and user.admin:
                return self._frame(
                    p, user_id, app.install_url, placement="DEFAULT", options={}, installer=True, lang=lang
                )
            raise SandboxError("The application is not fully installed yet. Ask your administrator to finish it.")
        if placement == "DEFAULT":
            url = app.handler_url
        else:
            bound = inst.placements(placement)
            if not bound:
                raise SandboxError(f"no handler bound for {placement}")
            url = bound[0].handler
        opts = dict(options or {})
        if placement != "DEFAULT":
            opts.setdefault("URI", "/crm/")
        return self._frame(p, user_id, url, placement=placement, options=opts, installer=False, lang=lang)

    def begin_install(self, portal: PortalRef, user_id: int = 1, *, lang: str | None = None) -> FrameOpen:
        """An admin installs the app: a fresh application token, and the installer in the frame."""
        p = self.portal(portal)
        app = self._require_app()
        user = p.users.get(user_id)
        if user is None or not user.admin:
            raise SandboxError("only an administrator can install applications")
        with self.lock:
            if p.installation is None:
                p.installation = Installation(application_token=secrets.token_hex(16), installed_by=user_id)
        if app.api_only:
            raise SandboxError("this app is API-only: use install_api_only")
        return self._frame(p, user_id, app.install_url, placement="DEFAULT", options={}, installer=True, lang=lang)

    def install_finish(self, portal: PortalRef) -> None:
        """``BX24.installFinish()``: widgets appear, events start flowing."""
        p = self.portal(portal)
        with self.lock:
            if p.installation is None:
                raise SandboxError("installFinish without an installation in progress")
            p.installation.installed = True

    def install_finish_from_frame(self, app_sid: str) -> FrameOpen:
        frame = self.frame(app_sid)
        if not frame.is_installer or not frame.is_admin:
            raise SandboxError("setInstallFinish from a frame that is not the installer")
        self.install_finish(frame.member_id)
        return frame

    def install_api_only(self, portal: PortalRef, user_id: int = 1) -> Delivery:
        """API-only install: Bitrix24 POSTs ``ONAPPINSTALL`` with tokens to the install URL at once."""
        p = self.portal(portal)
        app = self._require_app()
        with self.lock:
            if p.installation is None:
                p.installation = Installation(application_token=secrets.token_hex(16), installed_by=user_id)
            p.installation.installed = True
        data = {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": p.users[user_id].lang}
        payload = self.event_payload(p, "ONAPPINSTALL", data, user_id=user_id, with_refresh=True)
        return self._deliver("ONAPPINSTALL", app.install_url, payload)

    def uninstall(self, portal: PortalRef, *, clean: bool = False) -> list[Delivery]:
        """Delete the app: ``ONAPPUNINSTALL`` (no tokens, §5.3) to its handlers, then every token,
        binding and widget is gone; old tokens answer ``APPLICATION_NOT_FOUND``."""
        p = self.portal(portal)
        with self.lock:
            inst = p.installation
            if inst is None:
                raise SandboxError("the app is not installed")
            targets = [b.handler for b in inst.events("ONAPPUNINSTALL")] if inst.installed else []
            payload = self.event_payload(
                p, "ONAPPUNINSTALL", {"LANGUAGE_ID": "en", "CLEAN": "1" if clean else "0"}, user_id=None
            )
            p.installation = None
            self.tokens.revoke_portal(p.member_id, GONE_UNINSTALLED)
        return [self._deliver("ONAPPUNINSTALL", url, payload) for url in targets]

    def frame(self, app_sid: str) -> FrameOpen:
        with self.lock:
            frame = self.frames.get(app_sid)
        if frame is None:
            raise SandboxError("unknown APP_SID")
        return frame

    def refresh_frame_auth(self, app_sid: str) -> dict[str, Any]:
        """The bridge's ``refreshAuth``: a new token for the frame's user."""
        frame = self.frame(app_sid)
        grant = self.issue_token(frame.member_id, frame.user_id)
        frame.form["AUTH_ID"] = grant.access_token
        frame.form["REFRESH_ID"] = grant.refresh_token
        return {
            "AUTH_ID": grant.access_token,
            "REFRESH_ID": grant.refresh_token,
            "AUTH_EXPIRES": expires_in(grant),
        }

    # ------------------------------------------------------------------ events

    def event_payload(
        self,
        portal: PortalRef,
        event: str,
        data: Mapping[str, Any],
        *,
        user_id: int | None,
        with_refresh: bool = False,
        application_token: str | None = None,
        handler_id: int = 0,
    ) -> dict[str, Any]:
        """An event body (reference §1.3, §5.2, Addendum): ``event``, ``event_handler_id``, ``data``,
        ``ts``, ``auth`` — tokens only when a user caused it, ``refresh_token`` only on install."""
        p = self.portal(portal)
        grant = self.issue_token(p, user_id) if user_id is not None else None
        return event_body(
            p,
            event,
            data,
            ts=int(self.clock()),
            server_endpoint=self.server_endpoint,
            grant=grant,
            with_refresh=with_refresh,
            application_token=application_token,
            handler_id=handler_id,
        )

    def send_event(
        self,
        portal: PortalRef,
        event: str,
        data: Mapping[str, Any] | None = None,
        *,
        url: str | None = None,
        user_id: int | None = 1,
        application_token: str | None = None,
        member_id: str | None = None,
    ) -> Delivery:
        """Send one event now (tests: forged tokens, foreign member ids, handlers not bound)."""
        p = self.portal(portal)
        payload = self.event_payload(p, event, data or {}, user_id=user_id, application_token=application_token)
        if member_id is not None:
            payload["auth"]["member_id"] = member_id
        if url is None:
            inst = p.installation
            bound = inst.events(event) if inst else []
            if not bound:
                raise SandboxError(f"nothing bound to {event}")
            url = bound[0].handler
        return self._deliver(event, url, payload)

    def fire(self, portal: PortalRef, event: str, data: Mapping[str, Any], user_id: int | None) -> int:
        """A change in the portal: queue the event to every bound handler (asynchronously, like
        Bitrix24's queue; never before ``installFinish``). Returns how many were queued."""
        p = self.portal(portal)
        inst = p.installation
        if inst is None or not inst.installed:
            return 0
        targets = inst.events(event)
        for binding in targets:
            payload = self.event_payload(p, event, data, user_id=user_id, handler_id=binding.id)
            self._enqueue(event, binding.handler, payload)
        return len(targets)

    def _enqueue(self, event: str, url: str, payload: dict[str, Any]) -> None:
        self.outbox.enqueue(event, url, payload)

    @property
    def deliveries(self) -> list[Delivery]:
        return self.outbox.deliveries

    def wait_deliveries(self, timeout: float = 10.0) -> bool:
        """Block until queued events were delivered (tests)."""
        return self.outbox.wait(timeout)

    def _deliver(self, event: str, url: str, payload: dict[str, Any]) -> Delivery:
        return self.outbox.deliver(event, url, payload)

    def add_record(self, portal: PortalRef, kind: str, fields: Mapping[str, Any], user_id: int = 1) -> dict[str, Any]:
        """A user adds a contact or lead in the portal (no app involved): multifields stored as
        ``crm.*.add`` stores them, ``ASSIGNED_BY_ID`` defaulting to that user; ONCRM…ADD fires."""
        from sandbox.bitrix24.crm_methods import normalise_fields

        p = self.portal(portal)
        with self.lock:
            record = p.new_record(kind, normalise_fields(p, {str(k).upper(): v for k, v in fields.items()}, user_id))
            snapshot = dict(record)
        self.fire(p, f"ONCRM{kind.upper()}ADD", {"FIELDS": {"ID": int(snapshot["ID"])}}, user_id)
        return snapshot

    def update_record(
        self, portal: PortalRef, kind: str, record_id: int, fields: Mapping[str, Any], user_id: int | None = 1
    ) -> dict[str, Any]:
        """A user edits a contact/deal/lead in the portal: the record changes and ONCRM…UPDATE fires."""
        p = self.portal(portal)
        with self.lock:
            record = p.records[kind].get(int(record_id))
            if record is None:
                raise SandboxError(f"no {kind} {record_id}")
            record.update({k: v for k, v in fields.items() if k != "ID"})
            snapshot = dict(record)
        self.fire(p, f"ONCRM{kind.upper()}UPDATE", {"FIELDS": {"ID": record_id}}, user_id)
        return snapshot

    # ------------------------------------------------------------------ limits and faults

    def admit(self, member_id: str) -> bool:
        """The per-portal leaky bucket (reference §7)."""
        with self.lock:
            if self.faults.take_query_limit():
                return False
            bucket = self._buckets.get(member_id)
            if bucket is None or bucket.rate != self.rate or bucket.burst != self.burst:
                bucket = self._buckets[member_id] = LeakyBucket(self.rate, self.burst)
            return bucket.admit(self.clock())

    def set_rate_limit(self, rate: float, burst: float) -> None:
        with self.lock:
            self.rate, self.burst = rate, burst
            self._buckets.clear()

    def force_query_limit(self, count: int = 1) -> None:
        """The next ``count`` REST requests get 503 ``QUERY_LIMIT_EXCEEDED``."""
        with self.lock:
            self.faults.query_limit_next = count

    def limit_method(self, portal: PortalRef, method: str, seconds: float) -> float:
        """``method`` answers 429 ``OPERATION_TIME_LIMIT`` for ``seconds``; returns the reset time."""
        p = self.portal(portal)
        # Bitrix24 reports the reset as a whole unix second; the block lifts exactly then.
        reset_at = float(math.ceil(self.clock() + seconds))
        with self.lock:
            self.faults.operation_limits[(p.member_id, method.lower())] = reset_at
        return reset_at

    def set_latency(self, seconds: float) -> None:
        with self.lock:
            self.faults.latency = seconds

    def set_outage(self, on: bool) -> None:
        with self.lock:
            self.faults.outage = on

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        with self.lock:
            self.faults.fail_next, self.faults.fail_status = count, status

    def expire_tokens_now(self, portal: PortalRef | None = None) -> int:
        member = self.portal(portal).member_id if portal is not None else None
        with self.lock:
            return self.tokens.expire_now(self.clock(), member)

    def invalidate_tokens(self, portal: PortalRef) -> int:
        """Access tokens of the portal answer ``invalid_token`` (their refresh tokens still work)."""
        with self.lock:
            return self.tokens.invalidate(self.portal(portal).member_id)

    def expire_refresh_tokens(self, portal: PortalRef) -> int:
        """Every refresh token of the portal is past its lifetime: refreshes get ``invalid_grant``."""
        with self.lock:
            return self.tokens.expire_refresh(self.clock(), self.portal(portal).member_id)

    def reject_tokens(self, portal: PortalRef, code: str | None) -> None:
        """Every token of the portal (old and new) is answered with ``code`` (e.g. ``invalid_token``)
        until called again with None."""
        member = self.portal(portal).member_id
        with self.lock:
            if code:
                self.faults.token_errors[member] = code
            else:
                self.faults.token_errors.pop(member, None)

    def set_crm_mode(self, portal: PortalRef, mode: str) -> None:
        if mode not in ("classic", "simple"):
            raise SandboxError("mode is 'classic' or 'simple'")
        with self.lock:
            self.portal(portal).crm_mode = MODE_SIMPLE if mode == "simple" else MODE_CLASSIC

    def set_users(self, portal: PortalRef, count: int) -> None:
        """Replace the employees with ``count`` generated ones (paging)."""
        with self.lock:
            bulk_users(self.portal(portal), count)

    def rename_portal(self, portal: PortalRef, new_domain: str) -> Portal:
        """The portal's address changes (member_id stays). REST calls to the old address answer 302
        with ``Location`` on the new one and an empty body (reference §6.1, Addendum)."""
        p = self.portal(portal)
        new_domain = new_domain.lower()
        host = new_domain.rsplit(":", 1)[0]
        if host == "127.0.0.1":
            raise SandboxError("127.0.0.1 is the app's own site; give the portal another loopback name")
        with self.lock:
            if new_domain in self._hosts:
                raise SandboxError(f"{new_domain} is taken")
            del self._hosts[p.domain]
            self._moved[p.domain] = p.member_id
            p.old_domains.append(p.domain)
            p.domain = new_domain
            p.name = p.name if p.name not in p.old_domains else new_domain
            self._hosts[new_domain] = p.member_id
            self._moved.pop(new_domain, None)
        if self.on_new_host is not None:
            self.on_new_host(host)
        return p

    def reset_log(self) -> None:
        self.log.clear()
