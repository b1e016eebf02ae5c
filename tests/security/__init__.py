"""The security suite: "every inbound call is verified, accounts never see each other's data, CRM
text stays text", as tests that cover new routes without being edited.

Routes come from the app's URL map (``tests/support/security.py``). The world (``conftest.py``) is
account A (Kommo) and account B (Bitrix24), each with employees, pipelines, channels, roles,
settings, chats and messages, plus C, a Kommo account that uninstalled us. Every text from outside
carries its account's tag (to see leaks) and a markup payload (to see markup that stops being text).

* ``test_routes_auth``: public only with a stated reason; else strangers, forged/expired tokens,
  uninstalled accounts and (on admin routes) non-admins are refused and nothing changes.
* ``test_cross_account``: one account's session with the other's ids in path, query and form.
* ``test_csrf``: every state-changing route needs the page's own CSRF token.
* ``test_inbound_signatures``: gateway, launch hop, Kommo hooks and JWT, Bitrix24 events and frames.
* ``test_markup_stays_text``: every page and its JSON, as every kind of user.
* ``test_api_fuzz``: schemathesis on ``/openapi.yaml``, and hostile bodies on every route.

A new route that fails here is either unprotected (protect it) or of a new kind: list it in
``PUBLIC`` / ``EMPLOYEE`` with the reason, or name its URL parameter in ``PATH_VALUES``.
Run: ``.venv/bin/python -m pytest tests/security -q`` (add ``TEST_DATABASE_URL`` for PostgreSQL).
"""
