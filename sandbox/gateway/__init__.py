"""A runnable stand-in for the messaging gateway (WhatsApp, WABA, Telegram, Instagram behind one
API), for the embedded default and the tests.

It does what the real gateway does towards us, over real HTTP on loopback:

* takes our outbound replies (``POST /api/v1/messages``, signed with the account's gateway secret,
  deduplicated by the message id we send) and records them;
* plays clients who write to us: signed ``POST {our}/gateway/messages`` with the body the gateway
  contract describes (``widget/openapi.yaml``); a played client may answer every reply it gets.

Its controls (``/_sandbox/...``, JSON) link a channel (the secret and our inbound URL, what an
operator types into a real gateway, and the account's and channel's names for the console), make a
client write, list what was recorded, and inject faults. Our server links every channel as soon as
it exists (``widget.services.channels.sandbox_gateway``). ``GET /`` is a small console that lists the enabled
channels by account and name, shows the conversations, and writes as a client of any messenger.
"""

from sandbox.gateway.app import create_app
from sandbox.gateway.state import GatewaySandbox

__all__ = ["GatewaySandbox", "create_app"]
