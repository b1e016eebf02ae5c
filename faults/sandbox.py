"""A sandbox CRM as its own OS process, so it survives whatever we kill, with one addition: a census.

    python -m faults.sandbox kommo    --port P --our-url http://127.0.0.1:G
    python -m faults.sandbox bitrix24 --port P --our-url http://127.0.0.1:G [--rate 2 --burst 50]
    python -m faults.sandbox gateway  --port P --our-url http://127.0.0.1:G

``--public-url https://kommo.crm.test:Q`` says where others reach the sandbox when a TLS front
stands before it (the production-shape browser tests): Kommo's account addresses and the Bitrix24
portal (its ``DOMAIN``, ``PROTOCOL`` and OAuth server) are then named after it. Without it each
sandbox names itself by its loopback port, as before.

Faults are set through the sandboxes' own ``/_sandbox/…`` controls. ``GET /_census?prefix=DIGITS``
(ours, not the CRM's) counts, per client phone starting with ``prefix``, the contacts holding that
phone and the leads/deals named after the client (``"FS <digits> (…"``, the name our adapters give a
new client's lead or deal), read straight from the sandbox's state under its lock.
``GET /_census/timeline?prefix=DIGITS`` says when each CRM request naming such a client started
and ended (the end-to-end benchmark subtracts the CRM's own time from the total).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import threading
from collections import Counter
from typing import Any

from flask import Blueprint, Flask, jsonify, request

CLIENT_NAME = re.compile(r"^FS (\d+) \(")
_NON_DIGITS = re.compile(r"\D+")


def client_name(digits: str) -> str:
    """The sender name a fault-suite client writes with (the CRM names its lead/deal after it)."""
    return f"FS {digits}"


def _digits(value: Any) -> str:
    return _NON_DIGITS.sub("", str(value or ""))


def _census(contacts: Counter[str], entities: Counter[str]) -> dict[str, Any]:
    phones = set(contacts) | set(entities)
    return {"clients": {p: {"contacts": contacts[p], "entities": entities[p]} for p in sorted(phones)}}


def kommo_census(sandbox: Any, prefix: str) -> dict[str, Any]:
    contacts: Counter[str] = Counter()
    entities: Counter[str] = Counter()
    with sandbox.lock:
        for account in sandbox.accounts.values():
            for contact in account.contacts.values():
                if contact.is_deleted:
                    continue
                phones = {_digits(v.get("value")) for f in contact.custom_fields for v in f.get("values", [])}
                for phone in phones:
                    if phone.startswith(prefix):
                        contacts[phone] += 1
            for lead in account.leads.values():
                match = CLIENT_NAME.match(lead.name)
                if not lead.is_deleted and match and match.group(1).startswith(prefix):
                    entities[match.group(1)] += 1
    return _census(contacts, entities)


def bitrix24_census(state: Any, prefix: str) -> dict[str, Any]:
    contacts: Counter[str] = Counter()
    entities: Counter[str] = Counter()
    with state.lock:
        for portal in state.portals.values():
            for contact in portal.records["contact"].values():
                phones = {_digits(p.get("VALUE")) for p in contact.get("PHONE") or []}
                for phone in phones:
                    if phone.startswith(prefix):
                        contacts[phone] += 1
            for kind in ("deal", "lead"):
                for record in portal.records[kind].values():
                    match = CLIENT_NAME.match(str(record.get("TITLE") or ""))
                    if match and match.group(1).startswith(prefix):
                        entities[match.group(1)] += 1
    return _census(contacts, entities)


# A client's 9-digit number as it appears in a CRM request: the phone of a contact search, the name
# of a create (JSON or PHP-form encoded).
_CLIENT_DIGITS = re.compile(r"(?<!\d)(\d{9})(?!\d)")
_CREATES = ("/leads/complex", "/leads/unsorted/forms", "/rest/batch", "crm.deal.add", "crm.lead.add")


class Timeline:
    """When each CRM request that names a client started and ended, as this process saw it, so the
    end-to-end benchmark can tell the CRM's time from ours."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, float, float, bool]] = []  # digits, start, end, is a create

    def hooks(self, app: Flask) -> None:
        import time

        from flask import g

        def _start() -> None:
            g.census_start = time.time()

        # First of all before-request hooks: the sandboxes sleep their latency fault in theirs.
        app.before_request_funcs.setdefault(None, []).insert(0, _start)

        @app.after_request
        def _end(response: Any) -> Any:
            if request.path.startswith("/_"):
                return response
            raw = request.query_string.decode("latin-1") + " " + request.get_data(as_text=True)
            found = set(_CLIENT_DIGITS.findall(raw))
            if found:
                create = any(c in request.path or c in raw for c in _CREATES)
                end = time.time()
                with self.lock:
                    self.entries.extend((d, g.census_start, end, create) for d in found)
            return response

    def since(self, prefix: str) -> dict[str, list[tuple[float, float, bool]]]:
        out: dict[str, list[tuple[float, float, bool]]] = {}
        with self.lock:
            for digits, start, end, create in self.entries:
                if digits.startswith(prefix):
                    out.setdefault(digits, []).append((start, end, create))
        return out


def census_blueprint(count: Any, target: Any, timeline: Timeline) -> Blueprint:
    bp = Blueprint("fault_census", __name__)

    @bp.get("/_census")
    def census() -> Any:
        return jsonify(count(target, request.args.get("prefix", "")))

    @bp.get("/_census/timeline")
    def requests_of_clients() -> Any:
        return jsonify(clients=timeline.since(request.args.get("prefix", "")))

    return bp


def serve_kommo(port: int, our_url: str, rate: float, public_url: str | None = None) -> None:
    from werkzeug.serving import make_server

    from sandbox.kommo import create_app
    from widget.config import SANDBOX_KOMMO_CLIENT_ID, SANDBOX_KOMMO_CLIENT_SECRET

    base = public_url or f"http://127.0.0.1:{port}"
    app: Flask = create_app(
        client_id=SANDBOX_KOMMO_CLIENT_ID,
        client_secret=SANDBOX_KOMMO_CLIENT_SECRET,
        redirect_uri=f"{our_url}/kommo/oauth/callback",
        revoke_hook_url=f"{our_url}/kommo/uninstall",
        widget_origin=our_url,
        rate_per_second=rate,
        base_url=base,
    )
    timeline = Timeline()
    timeline.hooks(app)
    app.register_blueprint(census_blueprint(kommo_census, app.extensions["kommo_sandbox"], timeline))
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"ready {base}", flush=True)
    server.serve_forever(poll_interval=0.1)


def serve_bitrix24(port: int, our_url: str, rate: float, burst: float, public_url: str | None = None) -> None:
    from urllib.parse import urlsplit

    from sandbox.bitrix24 import AppRegistration, SandboxServer, SandboxState, create_sandbox_app
    from widget.config import SANDBOX_BITRIX24_CLIENT_ID, SANDBOX_BITRIX24_CLIENT_SECRET
    from widget.crm.bitrix24.provider import load_app_card

    origin = public_url or f"http://localhost:{port}"
    state = SandboxState(oauth_url=f"{origin}/oauth-server", rate=rate, burst=burst)
    state.register_app(
        AppRegistration.from_card(
            load_app_card().data, our_url, SANDBOX_BITRIX24_CLIENT_ID, SANDBOX_BITRIX24_CLIENT_SECRET
        )
    )
    portal = state.add_portal(urlsplit(origin).netloc, name="Fault suite portal")
    portal.protocol = 1 if origin.startswith("https:") else 0  # what Bitrix24 sends as PROTOCOL
    app = create_sandbox_app(state)
    timeline = Timeline()
    timeline.hooks(app)
    app.register_blueprint(census_blueprint(bitrix24_census, state, timeline))
    server = SandboxServer(app)
    server.listen("127.0.0.1", port)
    print(f"ready {origin}", flush=True)
    threading.Event().wait()


def serve_gateway(port: int) -> None:
    """The sandbox messaging gateway: our server links channels to it and posts replies to it."""
    from werkzeug.serving import make_server

    from sandbox.gateway import create_app

    server = make_server("127.0.0.1", port, create_app(), threaded=True)
    print(f"ready http://127.0.0.1:{port}", flush=True)
    server.serve_forever(poll_interval=0.1)


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request costs the sandbox CPU
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("crm", choices=("kommo", "bitrix24", "gateway"))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--our-url", required=True)
    ap.add_argument("--rate", type=float, default=None, help="requests per second per account/portal")
    ap.add_argument("--burst", type=float, default=50)
    ap.add_argument("--public-url", default=None, help="the sandbox's address behind a TLS front")
    args = ap.parse_args(argv)
    public = args.public_url.rstrip("/") if args.public_url else None
    if args.crm == "kommo":
        serve_kommo(args.port, args.our_url.rstrip("/"), args.rate or 7.0, public)
    elif args.crm == "bitrix24":
        serve_bitrix24(args.port, args.our_url.rstrip("/"), args.rate or 2.0, args.burst, public)
    else:
        serve_gateway(args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
