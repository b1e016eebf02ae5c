"""A runnable Bitrix24 stand-in: portals + the OAuth server, faithful to ``reference/bitrix24.md`` §10.

Hosts (offline we cannot use real portal names, and the embedded default must show a real
cross-site iframe):

* our app is ``http://127.0.0.1:5000`` — ``127.0.0.1`` is OUR site, never a portal's;
* the demo portal is ``localhost:5002`` (``settings.sandbox_bitrix24_port``); its CRM shell is
  ``http://localhost:5002/shell``, served from the portal's own origin, because BX24's postMessage
  goes to ``"http(s)://" + DOMAIN``;
* a portal's "domain" is ``host:port`` and the portal is chosen by the request's Host header; REST is
  ``http://<domain>/rest/<method>[.json]`` (``PROTOCOL=0``: plain HTTP), so ``PROTOCOL://DOMAIN/rest/``
  works from the browser too;
* the OAuth server lives on the same server under ``/oauth-server/`` (``settings.bitrix24_oauth_url``
  = ``http://localhost:5002/oauth-server``): token at ``…/oauth/token/``, ``app.info`` at
  ``…/rest/app.info`` and ``…/rest/app.info/``;
* a renamed portal moves to another loopback name on the same port (``127.0.0.2:5002``) — the server
  then listens there too — and its old address answers REST with a 302;
* tests run one or several sandbox servers on port 0 (several portals: several Host names or ports).

Public API (tests and the demo; the same controls over HTTP under ``/_sandbox/…``, see ``control``):

* ``create_sandbox_app(state)`` → Flask app; ``app.extensions["bitrix24_sandbox"]`` is the state;
  ``SandboxServer(app).listen(host, port)``; ``run.start_bitrix24_sandbox(settings)`` for ``server.py``.
* ``SandboxState(oauth_url=…, rate=2, burst=50, access_ttl=3600)``:
  setup — ``register_app(AppRegistration.from_card(card, public_url, client_id, secret))``,
  ``add_portal(domain, demo=True, users=None)``, ``portal(member_id_or_domain)``;
  iframe opens — ``begin_install(portal, user_id)``, ``open_app(portal, user_id, placement=…, options=…)``
  → ``FrameOpen`` (``.url``, ``.form``, ``.post()`` does what the browser does, ``.init_data()``),
  ``install_finish(portal)``, ``install_api_only(portal)`` (``ONAPPINSTALL``), ``uninstall(portal, clean=)``;
  events — ``send_event(portal, event, data, url=, application_token=, member_id=)``,
  ``update_record(portal, kind, id, fields)`` (fires ``ONCRM…UPDATE``), ``wait_deliveries()``,
  ``deliveries``; faults — ``set_latency``, ``set_outage``, ``fail_next(count, status)``,
  ``force_query_limit(count)``, ``set_rate_limit(rate, burst)``, ``limit_method(portal, method, seconds)``,
  ``expire_tokens_now(portal)``, ``invalidate_tokens(portal)``, ``expire_refresh_tokens(portal)``,
  ``reject_tokens(portal, code)``, ``set_crm_mode(portal, "simple")``,
  ``set_users(portal, n)``, ``rename_portal(portal, "127.0.0.2:<port>")``; request log —
  ``log.count(kind="rest", rest_method="batch")``, ``log.entries(...)``, ``reset_log()``;
  ``tokens.refreshes``.
"""

from sandbox.bitrix24.app import create_sandbox_app
from sandbox.bitrix24.server import SandboxServer
from sandbox.bitrix24.state import AppRegistration, FrameOpen, SandboxError, SandboxState

__all__ = ["AppRegistration", "FrameOpen", "SandboxError", "SandboxServer", "SandboxState", "create_sandbox_app"]
