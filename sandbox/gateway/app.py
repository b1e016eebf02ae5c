"""The sandbox gateway's HTTP side: the gateway API the backend calls, the controls, a console."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlencode

from flask import Flask, jsonify, redirect, render_template, request, url_for

from sandbox.gateway.clients import HINTS, MESSENGERS, console_client
from sandbox.gateway.state import SIGNATURE_HEADER, GatewayRefused, GatewaySandbox

HERE = os.path.dirname(os.path.abspath(__file__))


def _console_url(query: dict[str, str]) -> str:
    return url_for("console") + "?" + urlencode({k: v for k, v in query.items() if v})


def _kept(form: Any) -> dict[str, str]:
    """The client the console wrote as, filled in again for the next message."""
    return {k: form.get(k, "").strip() for k in ("client", "phone", "sender_name") if form.get(k, "").strip()}


def create_app(sandbox: GatewaySandbox | None = None) -> Flask:
    """``app.extensions["gateway_sandbox"]`` is the ``GatewaySandbox`` behind it."""
    app = Flask(__name__, template_folder=os.path.join(HERE, "templates"))
    app.config.update(MAX_CONTENT_LENGTH=1024 * 1024)
    state = sandbox or GatewaySandbox()
    app.extensions["gateway_sandbox"] = state

    def problem(status: int, message: str) -> Any:
        return jsonify(error="bad_request" if status == 400 else "error", message=message), status

    def json_body() -> dict[str, Any]:
        body = request.get_json(silent=True)
        return body if isinstance(body, dict) else {}

    # --- the gateway API (what the backend's HTTP transport calls) -------------------------------

    @app.post("/api/v1/messages")
    def outbound() -> Any:
        status, body = state.receive(request.get_data(cache=False), request.headers.get(SIGNATURE_HEADER, ""))
        return jsonify(body), status

    # --- controls ----------------------------------------------------------------------------------

    @app.put("/_sandbox/channels/<int:channel_id>")
    def link(channel_id: int) -> Any:
        """Connect a channel: ``secret`` and ``inbound_url`` (required), ``transport``; and for the
        console ``name``, ``address``, ``account`` (strings) and ``enabled`` (boolean). Fields left
        out keep what the channel had."""
        body = json_body()
        secret, inbound_url = body.get("secret"), body.get("inbound_url")
        if not isinstance(secret, str) or not secret or not isinstance(inbound_url, str) or not inbound_url:
            return problem(400, "secret and inbound_url are required strings.")
        texts = {k: body.get(k) for k in ("name", "address", "account")}
        if any(v is not None and not isinstance(v, str) for v in texts.values()):
            return problem(400, "name, address and account must be strings.")
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            return problem(400, "enabled must be true or false.")
        linked = state.link(
            channel_id,
            secret,
            inbound_url,
            str(body.get("transport") or "whatsapp"),
            name=texts["name"],
            address=texts["address"],
            account=texts["account"],
            enabled=enabled,
        )
        return jsonify(
            channel_id=linked.channel_id,
            inbound_url=linked.inbound_url,
            transport=linked.transport,
            name=linked.name,
            enabled=linked.enabled,
        )

    @app.post("/_sandbox/write")
    def write() -> Any:
        body = json_body()
        channel_id = body.get("channel_id")
        if isinstance(channel_id, bool) or not isinstance(channel_id, int):
            return problem(400, "channel_id is required (an integer).")
        if not isinstance(body.get("chat_id"), str) or not isinstance(body.get("text"), str):
            return problem(400, "chat_id and text are required strings.")
        try:
            record = state.write(
                channel_id=channel_id,
                chat_id=body["chat_id"],
                text=body["text"],
                sender_name=str(body.get("sender_name") or ""),
                phone=body.get("phone") if isinstance(body.get("phone"), str) else None,
                chat_type=body.get("chat_type") if isinstance(body.get("chat_type"), str) else None,
                message_id=body.get("message_id") if isinstance(body.get("message_id"), str) else None,
                sent_at=body.get("sent_at") if isinstance(body.get("sent_at"), str) else None,
                answers=bool(body["answers"]) if "answers" in body else None,
            )
        except GatewayRefused as exc:
            return problem(exc.status, exc.message)
        # The backend's own answer is passed on: a 4xx there is a problem of the played message.
        status = 200 if record.status < 300 else 502
        return jsonify(status=record.status, answer=record.answer), status

    @app.get("/_sandbox/state")
    def snapshot() -> Any:
        return jsonify(state.snapshot())

    @app.get("/_sandbox/messages")
    def messages() -> Any:
        chat_id = request.args.get("chat_id")
        found = [m for m in state.snapshot()["outbound"] if chat_id is None or m["chat_id"] == chat_id]
        return jsonify(messages=found)

    @app.post("/_sandbox/faults")
    def faults() -> Any:
        body = json_body()
        entries = body.get("faults")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            return problem(400, 'faults must be a list like [{"status": 503}, {"delay": 2}].')
        state.add_faults(*entries)
        return jsonify(faults=state.snapshot()["faults"])

    @app.delete("/_sandbox/faults")
    def clear_faults() -> Any:
        state.faults.clear()
        return jsonify(faults=[])

    @app.post("/_sandbox/reset")
    def reset() -> Any:
        state.reset()
        return jsonify(status="ok")

    # --- the console -------------------------------------------------------------------------------

    @app.get("/")
    def console() -> Any:
        snap = state.snapshot()
        channels = {c["channel_id"]: c for c in snap["channels"]}
        accounts: dict[str, list[dict[str, Any]]] = {}
        for c in snap["channels"]:
            if c["enabled"]:
                accounts.setdefault(c["account"] or "Unnamed account", []).append(c)
        chats: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for m in snap["inbound"]:
            chats.setdefault((m["channel_id"], m["chat_id"]), []).append({**m, "direction": "in"})
        for m in snap["outbound"]:
            chats.setdefault((m["channel_id"], m["chat_id"]), []).append({**m, "direction": "out"})
        conversations = [
            {
                "channel": channels.get(k[0]) or {"channel_id": k[0], "name": "", "account": "", "transport": ""},
                "chat_id": k[1],
                "messages": sorted(v, key=lambda m: m.get("received_at") or m["sent_at"]),
            }
            for k, v in sorted(chats.items())
        ]
        return render_template(
            "gateway_sandbox/console.html",
            accounts=accounts,
            hints=HINTS,
            messengers=MESSENGERS,
            conversations=conversations,
            error=request.args.get("error", ""),
            chosen=request.args.get("channel", type=int),
            last={k: request.args.get(k, "") for k in ("client", "phone", "sender_name")},
        )

    @app.post("/console/write")
    def console_write() -> Any:
        form = request.form
        channel_id = form.get("channel_id", type=int) or 0
        try:
            linked = state.channels.get(channel_id)
            if linked is None:
                raise GatewayRefused(404, "Choose one of the channels listed.")
            client = console_client(linked.transport, form.get("client", ""), form.get("phone", ""))
            state.write(
                channel_id=channel_id,
                chat_id=client.chat_id,
                text=form.get("text", "").strip() or "Hello!",
                sender_name=form.get("sender_name", "").strip(),
                phone=client.phone,
                answers=form.get("answers") == "1",
            )
        except (GatewayRefused, ValueError) as exc:
            message = exc.message if isinstance(exc, GatewayRefused) else str(exc)
            return redirect(_console_url({"error": message, "channel": str(channel_id or ""), **_kept(form)}))
        return redirect(_console_url({"channel": str(channel_id), **_kept(form)}))

    return app
