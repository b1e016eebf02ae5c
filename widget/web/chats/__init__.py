"""The chat panel inside the CRM iframe, and its JSON API.

Pages: ``/app/chats`` (global: the left-menu page in both CRMs) and the same page on one CRM card
(``entity_type`` / ``entity_id``: Kommo's lead card panel, Bitrix24's deal / contact / lead tabs);
``/app/chats/<id>`` opens one chat. The page is a shell: ``static/chats.js`` reads the first data
embedded in it and then talks to ``/api/chats…`` (session token in ``X-Session-Token``, CSRF token
in ``X-CSRFToken``, no cookies), polling every two seconds with ``If-None-Match``.

Every rule is the server's, on every call: the list and the counters come from the visibility
rules, a chat is opened only if the employee may see it, and replies / "No reply needed" go
through ``widget.services.conversations.replies``, which checks the right to write under the chat's row lock.

One blueprint (``chats``) in ``blueprint`` with its shared request parsing and error answers, the
JSON the panel shows in ``listing``, the pages in ``pages`` and the API in ``api``.
"""

from __future__ import annotations

# Importing the modules registers their routes on ``bp``.
from widget.web.chats import api, pages
from widget.web.chats.blueprint import bp
from widget.web.chats.pages import render_panel

__all__ = ["api", "bp", "pages", "render_panel"]
